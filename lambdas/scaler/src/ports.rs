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
    /// Its unique id (a UUID in Airflow 3): the key pages are ordered by, and how a
    /// task instance seen twice while paging is recognised.
    pub id: String,
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
    /// `GET /api/v2/dags/~/dagRuns/~/taskInstances?state=<s>…&queue=<q>…&order_by=id&offset&limit`:
    /// one page of the task instances in any of `states` on any of `queues`, in a
    /// stable order (by their unique id) so that consecutive pages neither repeat nor
    /// skip items while the set is unchanged. Its `total_entries` is one count, taken
    /// in one database query, whatever the number of states.
    async fn task_instances(
        &self,
        states: &[&str],
        queues: &[String],
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
    /// Whether it has ECS task scale-in protection (`GetTaskProtection`): the worker
    /// sets it while it holds a message, the scaler for a few minutes on the workers it
    /// keeps when a drain ends.
    pub protected: bool,
    /// Whether it carries the drain tag (`airflow-stack:drain=true`, read with
    /// `DescribeTasks include=TAGS`): the worker stops consuming.
    pub draining: bool,
    /// When it started (seconds since the epoch), if it has: the youngest are drained
    /// first.
    pub started_at: Option<i64>,
}

/// The worker service in ECS. The scaler can protect tasks but never unprotect one:
/// a worker clears its own protection when it is idle.
#[async_trait]
pub trait WorkerService: Send + Sync {
    /// The service's current desired count.
    async fn desired_count(&self) -> Result<u32, PortError>;
    /// The service's tasks that are meant to run (`desiredStatus=RUNNING`), with their
    /// protection and drain tag.
    async fn tasks(&self) -> Result<Vec<WorkerTask>, PortError>;
    /// `UpdateTaskProtection` with `protectionEnabled=true` on these tasks for
    /// `expires_in_minutes` (the implementation batches by 10).
    async fn protect(&self, task_arns: &[String], expires_in_minutes: i32)
        -> Result<(), PortError>;
    /// `TagResource`: the drain tag on each task.
    async fn tag_drain(&self, task_arns: &[String]) -> Result<(), PortError>;
    /// `UntagResource`: the drain tag off each task.
    async fn untag_drain(&self, task_arns: &[String]) -> Result<(), PortError>;
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

/// The attribute that versions items written with [`StateStore::put_if`]: a decimal
/// number the writer raises by one on every write (see `state::next_version`), so a
/// version is never reused and a compare-and-set on it cannot be fooled by an item
/// that changed and changed back.
pub const VERSION: &str = "version";

/// The DynamoDB state table, keyed by `pk`.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The item with this key, if any.
    async fn get(&self, key: &str) -> Result<Option<Item>, PortError>;
    /// Writes (replaces) the item with this key.
    async fn put(&self, key: &str, item: Item) -> Result<(), PortError>;
    /// Writes (replaces) the item with this key only if the stored item is still the
    /// one the caller read: with `expected: None`, if there is no item with a
    /// [`VERSION`] (none at all, or one written before items were versioned); with
    /// `Some(v)`, if the stored item's [`VERSION`] is `v`. Returns whether the write
    /// happened; a lost race is `Ok(false)`, not an error.
    async fn put_if(
        &self,
        key: &str,
        item: Item,
        expected: Option<&str>,
    ) -> Result<bool, PortError>;
}

/// An alert target (Slack webhook, SNS topic).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// A short name for logs, e.g. `slack` or `sns`.
    fn name(&self) -> &'static str;
    /// Delivers one notice.
    async fn send(&self, notice: &crate::notify::Notice) -> Result<(), PortError>;
}
