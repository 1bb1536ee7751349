//! Fakes of the scaler's ports: an in-memory Airflow, worker service, metrics sink,
//! state table and notifier, each recording what was asked of it.

#![allow(dead_code)]

pub mod emulator;
pub mod http;

use std::collections::BTreeMap;
use std::sync::Mutex;

use airflow_scaler::notify::Notice;
use airflow_scaler::ports::*;
use async_trait::async_trait;

/// Airflow with task instances and ended DAG runs in memory.
#[derive(Default)]
pub struct FakeAirflow {
    pub queued: u64,
    pub running: Vec<TaskInstance>,
    pub runs: Mutex<Vec<DagRun>>,
    pub failed_tasks: BTreeMap<(String, String), Vec<String>>,
    /// Every `ended_dag_runs` call: (since, offset, limit).
    pub run_calls: Mutex<Vec<(String, u64, u64)>>,
}

impl FakeAirflow {
    pub fn push_run(&self, dag: &str, run: &str, state: &str, end: &str) {
        self.runs.lock().unwrap().push(DagRun {
            dag_id: dag.into(),
            run_id: run.into(),
            state: state.into(),
            end_date: end.into(),
        });
    }
}

fn page<T: Clone>(items: &[T], offset: u64, limit: u64) -> Page<T> {
    Page {
        items: items
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .cloned()
            .collect(),
        total_entries: items.len() as u64,
    }
}

#[async_trait]
impl AirflowApi for FakeAirflow {
    async fn task_instances(
        &self,
        state: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<TaskInstance>, PortError> {
        match state {
            "queued" => Ok(Page {
                items: Vec::new(),
                total_entries: self.queued,
            }),
            "running" => Ok(page(&self.running, offset, limit)),
            other => Err(PortError(format!("unexpected state {other}"))),
        }
    }

    async fn ended_dag_runs(
        &self,
        since: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<DagRun>, PortError> {
        self.run_calls
            .lock()
            .unwrap()
            .push((since.to_string(), offset, limit));
        let since = chrono::DateTime::parse_from_rfc3339(since).unwrap();
        let runs: Vec<DagRun> = self
            .runs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| chrono::DateTime::parse_from_rfc3339(&r.end_date).unwrap() >= since)
            .cloned()
            .collect();
        Ok(page(&runs, offset, limit))
    }

    async fn failed_task_ids(&self, dag_id: &str, run_id: &str) -> Result<Vec<String>, PortError> {
        Ok(self
            .failed_tasks
            .get(&(dag_id.to_string(), run_id.to_string()))
            .cloned()
            .unwrap_or_default())
    }
}

/// One call made to the fake worker service, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcsCall {
    Protect(Vec<String>),
    Unprotect(Vec<String>),
    SetCount(u32),
}

/// A worker service with a count and tasks.
#[derive(Default)]
pub struct FakeWorkers {
    pub count: Mutex<u32>,
    pub tasks: Vec<WorkerTask>,
    pub calls: Mutex<Vec<EcsCall>>,
    pub fail_protect: bool,
}

impl FakeWorkers {
    pub fn new(count: u32, tasks: &[(&str, &str)]) -> FakeWorkers {
        FakeWorkers {
            count: Mutex::new(count),
            tasks: tasks
                .iter()
                .map(|(arn, ip)| WorkerTask {
                    task_arn: arn.to_string(),
                    private_ip: Some(ip.to_string()),
                })
                .collect(),
            ..FakeWorkers::default()
        }
    }

    pub fn calls(&self) -> Vec<EcsCall> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self) -> u32 {
        *self.count.lock().unwrap()
    }
}

#[async_trait]
impl WorkerService for FakeWorkers {
    async fn desired_count(&self) -> Result<u32, PortError> {
        Ok(self.count())
    }

    async fn tasks(&self) -> Result<Vec<WorkerTask>, PortError> {
        Ok(self.tasks.clone())
    }

    async fn set_protection(
        &self,
        task_arns: &[String],
        protected: bool,
        _expires_in_minutes: i32,
    ) -> Result<(), PortError> {
        if protected && self.fail_protect {
            return Err(PortError("UpdateTaskProtection: AccessDenied".into()));
        }
        let call = if protected {
            EcsCall::Protect(task_arns.to_vec())
        } else {
            EcsCall::Unprotect(task_arns.to_vec())
        };
        self.calls.lock().unwrap().push(call);
        Ok(())
    }

    async fn set_desired_count(&self, count: u32) -> Result<(), PortError> {
        *self.count.lock().unwrap() = count;
        self.calls.lock().unwrap().push(EcsCall::SetCount(count));
        Ok(())
    }
}

/// Metrics kept in memory.
#[derive(Default)]
pub struct FakeMetrics(pub Mutex<Vec<Metric>>);

#[async_trait]
impl Metrics for FakeMetrics {
    async fn put(&self, metrics: &[Metric]) -> Result<(), PortError> {
        self.0.lock().unwrap().extend_from_slice(metrics);
        Ok(())
    }
}

impl FakeMetrics {
    pub fn last(&self, name: &str) -> Option<f64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

/// The state table in memory.
#[derive(Default)]
pub struct MemoryState(pub Mutex<BTreeMap<String, Item>>);

#[async_trait]
impl StateStore for MemoryState {
    async fn get(&self, key: &str) -> Result<Option<Item>, PortError> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }

    async fn put(&self, key: &str, item: Item) -> Result<(), PortError> {
        self.0.lock().unwrap().insert(key.to_string(), item);
        Ok(())
    }
}

/// A notifier that records notices (or fails when told to).
#[derive(Default)]
pub struct Recorder {
    pub sent: std::sync::Arc<Mutex<Vec<Notice>>>,
    pub fail: std::sync::Arc<Mutex<bool>>,
}

#[async_trait]
impl Notifier for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    async fn send(&self, notice: &Notice) -> Result<(), PortError> {
        if *self.fail.lock().unwrap() {
            return Err(PortError("target down".into()));
        }
        self.sent.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

/// A reqwest client; reqwest is built without a bundled crypto provider, so the
/// process-wide rustls default is installed first (as main.rs does).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}
