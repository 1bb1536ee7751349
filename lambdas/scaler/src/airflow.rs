//! The Airflow REST API v2 over HTTP: log in with `POST /auth/token`, then read task
//! instances and DAG runs with the bearer token. Neither the password nor the token
//! ever reaches a log line or an error message.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ports::{AirflowApi, DagRun, Page, PortError, TaskInstance};

/// A logged-in API client.
pub struct AirflowClient {
    client: reqwest::Client,
    base: String,
    token: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

#[derive(Deserialize)]
struct TaskInstanceJson {
    #[serde(default)]
    id: String,
    dag_id: String,
    task_id: String,
    #[serde(default)]
    hostname: Option<String>,
}

#[derive(Deserialize)]
struct TaskInstances {
    task_instances: Vec<TaskInstanceJson>,
    total_entries: u64,
}

#[derive(Deserialize)]
struct DagRunJson {
    dag_id: String,
    dag_run_id: String,
    state: String,
    #[serde(default)]
    end_date: Option<String>,
}

#[derive(Deserialize)]
struct DagRuns {
    dag_runs: Vec<DagRunJson>,
    total_entries: u64,
}

/// Describes a transport error without its URL's query or any header.
fn transport(what: &str, e: reqwest::Error) -> PortError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    PortError(format!("{what}: {kind}: {}", e.without_url()))
}

/// The body of `POST /auth/token` (Airflow 3's simple and FAB auth managers).
#[derive(Serialize)]
struct LoginRequest<'a> {
    username: &'a str,
    password: &'a str,
}

impl AirflowClient {
    /// Logs in as `username` at `base` (e.g. `http://api-server.airflow:8080`).
    pub async fn login(
        client: reqwest::Client,
        base: &str,
        username: &str,
        password: &str,
    ) -> Result<AirflowClient, PortError> {
        let base = base.trim_end_matches('/').to_string();
        let body = LoginRequest { username, password };
        let response = client
            .post(format!("{base}/auth/token"))
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("POST /auth/token", e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(PortError(format!(
                "POST /auth/token answered HTTP {status}"
            )));
        }
        let token: TokenResponse = response.json().await.map_err(|e| {
            PortError(format!(
                "POST /auth/token: unexpected body: {}",
                e.without_url()
            ))
        })?;
        Ok(AirflowClient {
            client,
            base,
            token: token.access_token,
        })
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, PortError> {
        let what = format!("GET {path}");
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| transport(&what, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(PortError(format!("{what} answered HTTP {status}")));
        }
        response
            .json()
            .await
            .map_err(|e| PortError(format!("{what}: unexpected body: {}", e.without_url())))
    }
}

/// Encodes one path segment (DAG and run ids may hold `:`, `+` and more).
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::notify::SEGMENT).to_string()
}

/// The query of the all-DAGs task-instance list, as Airflow 3's
/// `get_task_instances` (airflow-core/src/airflow/api_fastapi/core_api/routes/public/
/// task_instances.py) reads it: `state` and `queue` are list filters
/// (`QueryTIStateFilter`, `QueryTIQueueFilter`: the parameter repeated, any value
/// matches); `order_by` takes `id`, the task instance's unique UUID key, where the
/// default `map_index` is not unique and lets offset paging repeat or skip rows.
fn task_instance_query(
    states: &[&str],
    queues: &[String],
    offset: u64,
    limit: u64,
) -> Vec<(&'static str, String)> {
    let mut query: Vec<(&'static str, String)> =
        states.iter().map(|s| ("state", s.to_string())).collect();
    query.extend(queues.iter().map(|q| ("queue", q.clone())));
    query.extend([
        ("order_by", "id".to_string()),
        ("offset", offset.to_string()),
        ("limit", limit.to_string()),
    ]);
    query
}

#[async_trait]
impl AirflowApi for AirflowClient {
    async fn task_instances(
        &self,
        states: &[&str],
        queues: &[String],
        offset: u64,
        limit: u64,
    ) -> Result<Page<TaskInstance>, PortError> {
        let page: TaskInstances = self
            .get(
                "/api/v2/dags/~/dagRuns/~/taskInstances",
                &task_instance_query(states, queues, offset, limit),
            )
            .await?;
        Ok(Page {
            items: page
                .task_instances
                .into_iter()
                .map(|t| TaskInstance {
                    id: t.id,
                    dag_id: t.dag_id,
                    task_id: t.task_id,
                    hostname: t.hostname.filter(|h| !h.is_empty()),
                })
                .collect(),
            total_entries: page.total_entries,
        })
    }

    async fn ended_dag_runs(
        &self,
        since: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<DagRun>, PortError> {
        let page: DagRuns = self
            .get(
                "/api/v2/dags/~/dagRuns",
                &[
                    ("end_date_gte", since.to_string()),
                    ("state", "success".into()),
                    ("state", "failed".into()),
                    ("order_by", "end_date".into()),
                    ("offset", offset.to_string()),
                    ("limit", limit.to_string()),
                ],
            )
            .await?;
        Ok(Page {
            items: page
                .dag_runs
                .into_iter()
                .filter_map(|r| {
                    Some(DagRun {
                        end_date: r.end_date?,
                        dag_id: r.dag_id,
                        run_id: r.dag_run_id,
                        state: r.state,
                    })
                })
                .collect(),
            total_entries: page.total_entries,
        })
    }

    async fn failed_task_ids(&self, dag_id: &str, run_id: &str) -> Result<Vec<String>, PortError> {
        let path = format!(
            "/api/v2/dags/{}/dagRuns/{}/taskInstances",
            segment(dag_id),
            segment(run_id)
        );
        let page: TaskInstances = self
            .get(
                &path,
                &[("state", "failed".into()), ("limit", "100".into())],
            )
            .await?;
        let mut ids: Vec<String> = page.task_instances.into_iter().map(|t| t.task_id).collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}
