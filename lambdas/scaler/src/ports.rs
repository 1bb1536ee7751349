//! What the scaler needs from the outside world, as small traits so tests can use
//! fakes: the Airflow REST API, the worker service in ECS, CloudWatch metrics, the
//! DynamoDB state table and the alert targets.

use std::collections::BTreeMap;

use async_trait::async_trait;

/// A failed call to AWS or Airflow, described without secrets: SDK errors carry none,
/// and the Airflow client never puts the token or the password in its messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

/// One task instance, as far as the scaler cares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskInstance {
    /// Its DAG.
    pub dag_id: String,
    /// Its task id.
    pub task_id: String,
    /// Where it runs: the worker's IP, because the stack sets
    /// `AIRFLOW__CORE__HOSTNAME_CALLABLE=airflow.utils.net.get_host_ip_address`.
    pub hostname: Option<String>,
}

/// One page of a list endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items match in total (Airflow's `total_entries`).
    pub total_entries: u64,
}

/// A DAG run that has ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DagRun {
    /// Its DAG.
    pub dag_id: String,
    /// Its run id (`dag_run_id` in the API).
    pub run_id: String,
    /// `success` or `failed` (anything else is ignored).
    pub state: String,
    /// When it ended, RFC 3339 as Airflow returns it.
    pub end_date: String,
}

/// The Airflow REST API v2, logged in.
#[async_trait]
pub trait AirflowApi: Send + Sync {
    /// `GET /api/v2/dags/~/dagRuns/~/taskInstances?state=<state>&offset&limit`.
    async fn task_instances(
        &self,
        state: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<TaskInstance>, PortError>;

    /// `GET /api/v2/dags/~/dagRuns?end_date_gte=<since>&order_by=end_date&offset&limit`.
    async fn ended_dag_runs(
        &self,
        since: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<DagRun>, PortError>;

    /// Task ids of the failed task instances of one run.
    async fn failed_task_ids(&self, dag_id: &str, run_id: &str) -> Result<Vec<String>, PortError>;
}

/// One task of the worker service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerTask {
    /// Task ARN.
    pub task_arn: String,
    /// Private IPv4 address of its ENI, once attached.
    pub private_ip: Option<String>,
}

/// The worker service in ECS.
#[async_trait]
pub trait WorkerService: Send + Sync {
    /// The service's current desired count.
    async fn desired_count(&self) -> Result<u32, PortError>;
    /// The service's tasks that are meant to run (`desiredStatus=RUNNING`).
    async fn tasks(&self) -> Result<Vec<WorkerTask>, PortError>;
    /// `UpdateTaskProtection` on these tasks (the implementation batches by 10).
    async fn set_protection(
        &self,
        task_arns: &[String],
        protected: bool,
        expires_in_minutes: i32,
    ) -> Result<(), PortError>;
    /// `UpdateService` with a new desired count.
    async fn set_desired_count(&self, count: u32) -> Result<(), PortError>;
}

/// One CloudWatch datum.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Metric name, e.g. `QueuedTasks`.
    pub name: &'static str,
    /// Its value (unit: Count).
    pub value: f64,
}

/// CloudWatch `PutMetricData` in the stack's namespace with the stack dimension.
#[async_trait]
pub trait Metrics: Send + Sync {
    /// Publishes the data points.
    async fn put(&self, metrics: &[Metric]) -> Result<(), PortError>;
}

/// One item of the state table: string attributes besides the key.
pub type Item = BTreeMap<String, String>;

/// The DynamoDB state table, keyed by `pk`.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The item with this key, if any.
    async fn get(&self, key: &str) -> Result<Option<Item>, PortError>;
    /// Writes (replaces) the item with this key.
    async fn put(&self, key: &str, item: Item) -> Result<(), PortError>;
}

/// An alert target (Slack webhook, SNS topic).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// A short name for logs, e.g. `slack` or `sns`.
    fn name(&self) -> &'static str;
    /// Delivers one notice.
    async fn send(&self, notice: &crate::notify::Notice) -> Result<(), PortError>;
}
