//! What the streams code needs from the outside world, as small traits so the logic is
//! tested with fakes: the table (events, leases, the processor's marks), Lambda's
//! asynchronous invoke, the Airflow REST API and the alert targets. [`crate::aws`],
//! [`crate::airflow`] and [`crate::notify`] implement them; [`crate::memory`] is the
//! table in memory, with DynamoDB's conditional semantics.

use airflow_stack_contract::streams::ManagerInvocation;
use async_trait::async_trait;

/// A failed call, described without secrets: SDK errors carry none, and the HTTP
/// clients never put a header value, a password or a token in their messages. The
/// scaler's type, so its Secrets Manager read is used as it is.
pub use airflow_scaler::ports::PortError;

/// An event item, as the manager writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventItem {
    /// `event#<stream>#<identity>`.
    pub key: String,
    /// The stream.
    pub stream: String,
    /// The identity.
    pub identity: String,
    /// The data as received.
    pub data: String,
    /// The SSE `id:` it came with.
    pub event_id: Option<String>,
    /// `dag` or `asset`.
    pub target_kind: String,
    /// The DAG id or asset URI.
    pub target: String,
    /// When it was read, epoch milliseconds.
    pub received_at_ms: i64,
    /// When it expires, epoch seconds (the TTL attribute).
    pub expires_at: i64,
}

/// What a conditional put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The first writer: stored.
    Stored,
    /// An item with the key exists: a duplicate, nothing written.
    Duplicate,
}

/// The event items.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// `PutItem` with `attribute_not_exists(pk)`.
    async fn put_event(&self, item: &EventItem) -> Result<Put, PortError>;
}

/// A stream's lease item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lease {
    /// The holding chain.
    pub holder: String,
    /// The holder's generation.
    pub generation: u64,
    /// Its last renewal, epoch seconds.
    pub heartbeat_at: i64,
    /// When it lapses, epoch seconds.
    pub expires_at: i64,
    /// The last SSE event ID its holder read.
    pub last_event_id: Option<String>,
    /// When the watchdog alerted about the current outage, epoch seconds.
    pub alerted_at: Option<i64>,
}

/// A manager's claim on a stream's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The stream.
    pub stream: String,
    /// The claiming chain.
    pub chain_id: String,
    /// Its generation.
    pub generation: u64,
    /// Now, epoch seconds.
    pub now: i64,
    /// How long the lease lasts from now.
    pub lease_seconds: u32,
    /// The last SSE event ID read, to keep for a restarted chain.
    pub last_event_id: Option<String>,
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours: renewed.
    Renewed,
    /// Our chain's successor (a higher generation) holds it now: the overlap, keep
    /// reading until the stop time but renew no more.
    Superseded,
    /// Another chain holds it (or it is gone): stop reading at once.
    Lost,
}

/// The lease items.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes the lease if it is absent, lapsed (`expires_at < now`), or held by the
    /// same chain at a lower generation (a successor taking over). Returns whether it
    /// was taken; another live holder is `Ok(false)`.
    async fn acquire(&self, claim: &Claim) -> Result<bool, PortError>;
    /// Renews it if the holder and generation are still the claim's.
    async fn renew(&self, claim: &Claim) -> Result<Renewal, PortError>;
    /// Lets it lapse now, if still held by the claim (a service shutting down).
    async fn release(&self, claim: &Claim) -> Result<(), PortError>;
    /// The stream's lease, if any.
    async fn lease(&self, stream: &str) -> Result<Option<Lease>, PortError>;
    /// Records an alert for the outage whose last heartbeat was `heartbeat_at`, if none
    /// is recorded yet. Returns whether this call recorded it (and so should alert).
    async fn mark_alerted(
        &self,
        stream: &str,
        heartbeat_at: i64,
        now: i64,
    ) -> Result<bool, PortError>;
    /// Removes the alert record. Returns whether this call removed it.
    async fn clear_alerted(&self, stream: &str) -> Result<bool, PortError>;
}

/// What the processor's claim on an event found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// Ours to process.
    Claimed,
    /// Processed before: a redelivery.
    AlreadyProcessed,
    /// Another invocation claimed it moments ago: try again later.
    InFlight,
}

/// The processor's marks on event items (its redelivery guard for asset events).
#[async_trait]
pub trait ProcessedMarks: Send + Sync {
    /// Claims the event: succeeds when it is not processed and not claimed after
    /// `stale_before_ms` (an older claim belongs to an invocation that died).
    async fn claim(
        &self,
        key: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Claimed, PortError>;
    /// Marks the claimed event processed.
    async fn finish(&self, key: &str, now_ms: i64) -> Result<(), PortError>;
    /// Drops our claim after a failure, so a retry may process it.
    async fn unclaim(&self, key: &str, claimed_at_ms: i64) -> Result<(), PortError>;
}

/// Lambda's asynchronous invoke.
#[async_trait]
pub trait Invoker: Send + Sync {
    /// `Invoke` with `InvocationType=Event`.
    async fn invoke_async(
        &self,
        function: &str,
        payload: &ManagerInvocation,
    ) -> Result<(), PortError>;
}

/// ECS, for a stream run as an always-on Fargate service.
#[async_trait]
pub trait ServiceRestarter: Send + Sync {
    /// Replaces the service's task (`UpdateService` with `forceNewDeployment`): a task
    /// that runs but no longer heartbeats (hung on a dead connection, say) is one ECS
    /// itself keeps running.
    async fn restart(&self, service: &str) -> Result<(), PortError>;
}

/// What Airflow said to a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triggered {
    /// A new DAG run.
    Created,
    /// HTTP 409: the run exists (a redelivery).
    AlreadyExists,
}

/// The Airflow REST API v2, logged in.
#[async_trait]
pub trait AirflowApi: Send + Sync {
    /// `POST /api/v2/dags/{dag_id}/dagRuns`.
    async fn trigger_dag_run(
        &self,
        dag_id: &str,
        run_id: &str,
        conf: &serde_json::Value,
    ) -> Result<Triggered, PortError>;
    /// The id of the asset with exactly this URI.
    async fn asset_id(&self, uri: &str) -> Result<Option<i64>, PortError>;
    /// `POST /api/v2/assets/events`.
    async fn create_asset_event(
        &self,
        asset_id: i64,
        extra: &serde_json::Value,
    ) -> Result<(), PortError>;
}

/// An alert target (Slack webhook, SNS topic).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Delivers one notice.
    async fn send(&self, notice: &crate::notify::Notice) -> Result<(), PortError>;
}
