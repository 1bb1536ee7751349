//! Event streams that trigger DAGs (lambdas/streams): the settings the template
//! (src/stack) writes as environment variables, the DynamoDB table's key and item
//! shapes, the manager's invocation payload, the function name the watchdog invokes and
//! the DAG run ID the processor derives from an event's identity.
//!
//! One binary, four roles ([`Role`], variable `ROLE`): the connection manager as a
//! Lambda chain ([`Role::Manager`]) or as an always-on Fargate task
//! ([`Role::Service`]), the event processor on the table's DynamoDB stream
//! ([`Role::Processor`]) and the scheduled watchdog ([`Role::Watchdog`]).
//!
//! None of the settings is a secret: the stream's auth header value and the Airflow
//! password are passed by secret ARN and read from Secrets Manager at run time.
//!
//! # The table
//!
//! One table per stack, partition key [`TABLE_KEY`] (a string), TTL on
//! [`TTL_ATTRIBUTE`]. Two kinds of item, told apart by [`KIND_ATTRIBUTE`]:
//!
//! - events ([`EVENT_KIND`], key [`event_key`]): written once by a conditional put
//!   (`attribute_not_exists(pk)`: the first writer wins, a repeat is a duplicate), read
//!   by the processor through the stream; attributes in [`attribute`];
//! - leases ([`LEASE_KIND`], key [`lease_key`]): one per stream, held by one manager
//!   chain, renewed by its heartbeat, read by the watchdog.
//!
//! The processor's event source mapping passes only new events
//! ([`processor_filter_pattern`]): lease updates and the processor's own "processed"
//! marks never invoke it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The table's partition key (type S).
pub const TABLE_KEY: &str = "pk";
/// The table's TTL attribute (type N, epoch seconds): the template sets
/// `TimeToLiveSpecification` on it. Events expire [`DEFAULT_EVENT_TTL_HOURS`] after
/// they were received (by default); a lease item expires too, which is harmless (an
/// expired lease is free anyway) and keeps a removed stream's lease from lingering.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The item-kind attribute (type S): [`EVENT_KIND`] or [`LEASE_KIND`].
pub const KIND_ATTRIBUTE: &str = "kind";
/// [`KIND_ATTRIBUTE`] of an event item.
pub const EVENT_KIND: &str = "event";
/// [`KIND_ATTRIBUTE`] of a lease item.
pub const LEASE_KIND: &str = "lease";

/// The processor's Airflow user: it triggers DAG runs and records asset events (FAB
/// role `User`, simple auth manager role `user`); its password is in a secret only the
/// processor, the migration task and (with the simple auth manager) the api-server read.
pub const STREAMS_USERNAME: &str = "airflow-stack-streams";

/// How long an event item lives by default (`EVENT_TTL_HOURS`): a week, so a
/// redelivery or a repeat sent days later still collapses onto the first one, while
/// the table stays bounded.
pub const DEFAULT_EVENT_TTL_HOURS: u32 = 168;
/// The read deadline on a silent stream (`READ_TIMEOUT_SECONDS`): no byte for this long
/// and the manager drops the connection and reconnects (keepalive comments count as
/// bytes).
pub const DEFAULT_READ_TIMEOUT_SECONDS: u32 = 60;
/// How long before the invocation's deadline the manager starts its successor
/// (`HANDOFF_SECONDS`). It must exceed [`DEFAULT_OVERLAP_SECONDS`] so the manager stops
/// with a margin before Lambda would kill it.
pub const DEFAULT_HANDOFF_SECONDS: u32 = 60;
/// How long the manager keeps reading after it started its successor
/// (`OVERLAP_SECONDS`): long enough for a cold start and the successor's own connect,
/// so no event falls between the two.
pub const DEFAULT_OVERLAP_SECONDS: u32 = 20;
/// How often the lease holder renews its lease (`HEARTBEAT_SECONDS`).
pub const DEFAULT_HEARTBEAT_SECONDS: u32 = 20;
/// How long a lease lasts without renewal (`LEASE_SECONDS`): four missed heartbeats and
/// a margin, so a slow DynamoDB call does not lose it, and a dead holder frees it soon.
pub const DEFAULT_LEASE_SECONDS: u32 = 90;
/// How old a heartbeat may get before the watchdog restarts the chain and alerts
/// (`STALE_SECONDS`). At least [`DEFAULT_LEASE_SECONDS`]: the new chain can only take an
/// expired lease. Five minutes: a successor's cold start and reconnect never trip it.
pub const DEFAULT_STALE_SECONDS: u32 = 300;

/// Longest identity kept as it is, in bytes: a longer one (an ID field with a huge
/// value) is replaced by `sha256:<hex of it>` so the item key stays far below
/// DynamoDB's 2048-byte partition-key limit.
pub const MAX_IDENTITY_BYTES: usize = 512;

/// The environment variable names. Only this crate spells them.
pub mod variable {
    /// The binary's role ([`super::Role`]).
    pub const ROLE: &str = "ROLE";
    /// The stack's name (function names, alert texts).
    pub const STACK_NAME: &str = "STACK_NAME";
    /// The DynamoDB table of events and leases.
    pub const TABLE: &str = "TABLE";
    /// The stream's name (`[a-z][a-z0-9-]{0,19}`, checked by the stack file).
    pub const STREAM_NAME: &str = "STREAM_NAME";
    /// The stream's URL.
    pub const STREAM_URL: &str = "STREAM_URL";
    /// `sse` or `ndjson` ([`super::Format`]).
    pub const STREAM_FORMAT: &str = "STREAM_FORMAT";
    /// The auth header's name (optional; with [`AUTH_SECRET_ARN`], both or neither).
    pub const AUTH_HEADER: &str = "AUTH_HEADER";
    /// The secret whose `SecretString` is the auth header's value.
    pub const AUTH_SECRET_ARN: &str = "AUTH_SECRET_ARN";
    /// How an event's identity is derived ([`super::Identity`]).
    pub const IDENTITY: &str = "IDENTITY";
    /// `dag` or `asset` ([`super::Target`]).
    pub const TARGET_KIND: &str = "TARGET_KIND";
    /// The DAG id or the asset URI.
    pub const TARGET: &str = "TARGET";
    /// Hours an event item lives.
    pub const EVENT_TTL_HOURS: &str = "EVENT_TTL_HOURS";
    /// Seconds of silence before the manager reconnects.
    pub const READ_TIMEOUT_SECONDS: &str = "READ_TIMEOUT_SECONDS";
    /// Seconds before the invocation's deadline at which the successor is started.
    pub const HANDOFF_SECONDS: &str = "HANDOFF_SECONDS";
    /// Seconds the manager keeps reading after starting its successor.
    pub const OVERLAP_SECONDS: &str = "OVERLAP_SECONDS";
    /// Seconds between lease renewals.
    pub const HEARTBEAT_SECONDS: &str = "HEARTBEAT_SECONDS";
    /// Seconds a lease lasts without renewal.
    pub const LEASE_SECONDS: &str = "LEASE_SECONDS";
    /// The api-server's base URL (processor).
    pub const AIRFLOW_API_URL: &str = "AIRFLOW_API_URL";
    /// The processor's Airflow user ([`super::STREAMS_USERNAME`]).
    pub const API_USERNAME: &str = "API_USERNAME";
    /// The secret holding that user's password (a plain string).
    pub const API_PASSWORD_SECRET_ARN: &str = "API_PASSWORD_SECRET_ARN";
    /// The Lambda-run streams the watchdog watches, comma-separated names.
    pub const STREAMS: &str = "STREAMS";
    /// The Fargate-run streams the watchdog watches, comma-separated names (each one's
    /// ECS service is [`super::manager_service_name`]).
    pub const SERVICE_STREAMS: &str = "SERVICE_STREAMS";
    /// The ECS cluster of the Fargate-run streams (set when there are any).
    pub const CLUSTER: &str = "CLUSTER";
    /// Seconds after which the watchdog calls a heartbeat stale.
    pub const STALE_SECONDS: &str = "STALE_SECONDS";
    /// The SNS topic the watchdog alerts to (optional).
    pub const SNS_TOPIC_ARN: &str = "SNS_TOPIC_ARN";
    /// The secret holding the Slack incoming-webhook URL (optional).
    pub const SLACK_SECRET_ARN: &str = "SLACK_SECRET_ARN";
    /// Base URL of the Airflow UI for links in alerts (optional).
    pub const UI_BASE_URL: &str = "UI_BASE_URL";
}

/// The values of `ROLE`.
pub mod role {
    /// The connection manager as a chain of Lambda invocations.
    pub const MANAGER: &str = "manager";
    /// The connection manager as an always-on process (a Fargate task): reads until
    /// SIGTERM, starts no successor, still holds the lease and heartbeats.
    pub const SERVICE: &str = "service";
    /// The event processor (DynamoDB stream batches).
    pub const PROCESSOR: &str = "processor";
    /// The scheduled watchdog.
    pub const WATCHDOG: &str = "watchdog";
}

/// What the binary does, from `ROLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// [`role::MANAGER`]: reads [`ManagerSettings`].
    Manager,
    /// [`role::SERVICE`]: reads [`ManagerSettings`] (the handoff and overlap unused).
    Service,
    /// [`role::PROCESSOR`]: reads [`ProcessorSettings`].
    Processor,
    /// [`role::WATCHDOG`]: reads [`WatchdogSettings`].
    Watchdog,
}

impl Role {
    /// The value of `ROLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => role::MANAGER,
            Role::Service => role::SERVICE,
            Role::Processor => role::PROCESSOR,
            Role::Watchdog => role::WATCHDOG,
        }
    }

    /// Parses a value of `ROLE`.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Role::Manager,
            Role::Service,
            Role::Processor,
            Role::Watchdog,
        ]
        .into_iter()
        .find(|r| r.as_str() == value)
    }

    /// Reads `ROLE` through `var`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let value = required(&var, variable::ROLE)?;
        Role::parse(&value).ok_or_else(|| SettingsError {
            name: variable::ROLE,
            problem: "is not one of manager, service, processor, watchdog".into(),
        })
    }
}

/// The stream's wire format (`STREAM_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Server-sent events (`text/event-stream`): one event per `data:` block; `id:`
    /// lines give the resume point (`Last-Event-ID`).
    Sse,
    /// Newline-delimited JSON: one event per non-blank line. No resume point.
    Ndjson,
}

impl Format {
    /// The value of `STREAM_FORMAT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Sse => "sse",
            Format::Ndjson => "ndjson",
        }
    }

    /// Parses a value of `STREAM_FORMAT`.
    pub fn parse(value: &str) -> Option<Self> {
        [Format::Sse, Format::Ndjson]
            .into_iter()
            .find(|f| f.as_str() == value)
    }
}

/// How an event's identity (the key duplicates collapse on) is derived (`IDENTITY`).
///
/// The identity is a string. Longer than [`MAX_IDENTITY_BYTES`], it is replaced by
/// `sha256:<hex>` of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `hash`: the lowercase hex SHA-256 of the event's data bytes (for SSE the `data:`
    /// lines joined by `\n`, for NDJSON the line without its line ending). Two events
    /// are the same exactly when their bytes are.
    Hash,
    /// `field:<name>`: the top-level field `<name>` of the event's data, a JSON object.
    /// A string value is the identity as it is; a number or boolean its JSON text.
    ///
    /// For SSE, the field is looked up in the data first; when the data has no such
    /// field (or is not a JSON object) and `<name>` is `id`, the event's own SSE `id:`
    /// line is the identity (only its own: the last event ID an event without an `id:`
    /// line inherits would make it look like a repeat of its predecessor). When neither gives one (a missing or `null` field, an object or
    /// array value), the event falls back to [`Identity::Hash`] and the manager logs
    /// a warning: an event is never dropped for want of an ID.
    Field(String),
}

/// The prefix of a `field:<name>` identity.
const FIELD_PREFIX: &str = "field:";

impl Identity {
    /// The value of `IDENTITY`.
    pub fn as_str(&self) -> String {
        match self {
            Identity::Hash => "hash".to_owned(),
            Identity::Field(name) => format!("{FIELD_PREFIX}{name}"),
        }
    }

    /// Parses a value of `IDENTITY`: `hash` or `field:<name>` with a non-empty name.
    pub fn parse(value: &str) -> Option<Self> {
        if value == "hash" {
            return Some(Identity::Hash);
        }
        let name = value.strip_prefix(FIELD_PREFIX)?;
        (!name.is_empty()).then(|| Identity::Field(name.to_owned()))
    }
}

/// What an event starts (`TARGET_KIND` and `TARGET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A DAG run of this DAG, with the event as its `conf`.
    Dag(String),
    /// An asset event on the asset with this URI, with the event as its `extra`.
    Asset(String),
}

impl Target {
    /// The value of `TARGET_KIND` (and of the event item's `target_kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Dag(_) => "dag",
            Target::Asset(_) => "asset",
        }
    }

    /// The value of `TARGET`: the DAG id or the asset URI.
    pub fn name(&self) -> &str {
        match self {
            Target::Dag(name) | Target::Asset(name) => name,
        }
    }

    /// Builds a target from a kind (`dag` or `asset`) and a name.
    pub fn parse(kind: &str, name: &str) -> Option<Self> {
        match kind {
            "dag" => Some(Target::Dag(name.to_owned())),
            "asset" => Some(Target::Asset(name.to_owned())),
            _ => None,
        }
    }
}

/// The attribute names of the table's items, besides [`TABLE_KEY`], [`KIND_ATTRIBUTE`]
/// and [`TTL_ATTRIBUTE`].
pub mod attribute {
    /// Event: the stream's name (S).
    pub const STREAM: &str = "stream";
    /// Event: its identity (S).
    pub const IDENTITY: &str = "identity";
    /// Event: its data as received (S): the JSON text (or any text) of the event.
    pub const DATA: &str = "data";
    /// Event: `dag` or `asset` (S, [`super::Target::kind`]).
    pub const TARGET_KIND: &str = "target_kind";
    /// Event: the DAG id or asset URI (S).
    pub const TARGET: &str = "target";
    /// Event: when the manager read it, epoch milliseconds (N): latency is measured
    /// from it.
    pub const RECEIVED_AT: &str = "received_at";
    /// Event: the SSE `id:` it came with, if any (S).
    pub const EVENT_ID: &str = "event_id";
    /// Event: when the processor claimed it for an asset event, epoch milliseconds
    /// (N): a claim older than the processor's timeout is taken over by a redelivery.
    pub const CLAIMED_AT: &str = "claimed_at";
    /// Event: when the processor finished it (the asset event was recorded), epoch
    /// milliseconds (N): a redelivery skips it.
    pub const PROCESSED_AT: &str = "processed_at";
    /// Lease: the chain holding it (S).
    pub const HOLDER: &str = "holder";
    /// Lease: the holder's generation in its chain (N).
    pub const GENERATION: &str = "generation";
    /// Lease: the holder's last renewal, epoch seconds (N).
    pub const HEARTBEAT_AT: &str = "heartbeat_at";
    /// Lease: the last SSE event ID the holder read (S).
    pub const LAST_EVENT_ID: &str = "last_event_id";
    /// Lease: when the watchdog alerted about this outage, epoch seconds (N); removed
    /// once the heartbeat is fresh again.
    pub const ALERTED_AT: &str = "alerted_at";
}

/// The key of an event item: `event#<stream>#<identity>`.
pub fn event_key(stream: &str, identity: &str) -> String {
    format!("{EVENT_KIND}#{stream}#{identity}")
}

/// The key of a stream's lease item: `lease#<stream>`.
pub fn lease_key(stream: &str) -> String {
    format!("{LEASE_KIND}#{stream}")
}

/// The event source mapping's filter pattern (`FilterCriteria.Filters[].Pattern`): only
/// inserts of event items reach the processor.
pub fn processor_filter_pattern() -> String {
    serde_json::json!({
        "eventName": ["INSERT"],
        "dynamodb": { "NewImage": { KIND_ATTRIBUTE: { "S": [EVENT_KIND] } } }
    })
    .to_string()
}

/// The manager function's name, `{stack}-stream-{stream}`: the template sets it as
/// `FunctionName` so the watchdog can invoke a chain by name (stack names are at most
/// 32 characters, stream names 20, so it stays within Lambda's 64).
pub fn manager_function_name(stack: &str, stream: &str) -> String {
    format!("{stack}-stream-{stream}")
}

/// The ECS service name of a stream run by an always-on Fargate task (`runner:
/// service`), `{stack}-stream-{stream}` like the function name: the template sets it as
/// `ServiceName` so the watchdog can restart the service by name.
pub fn manager_service_name(stack: &str, stream: &str) -> String {
    manager_function_name(stack, stream)
}

/// Hex digits of the identity's digest in a DAG run ID (128 bits: no collision among
/// any number of events a stream will ever send).
pub const RUN_ID_DIGEST_HEX: usize = 32;

/// The DAG run ID of an event: `stream__<stream>__<first 32 hex of identity_sha256>`.
///
/// `identity_sha256` is the lowercase hex SHA-256 of the event's identity string
/// (the Lambda computes it with `sha2`; this crate stays serde-only, so it holds the
/// format, not the hash). Deterministic, so a redelivery asks Airflow for the same run
/// and gets "409 already exists"; within Airflow's default `allowed_run_id_pattern`
/// (`[A-Za-z0-9_.~:+-]`) and far below its 250 characters.
pub fn dag_run_id(stream: &str, identity_sha256: &str) -> String {
    let digest: String = identity_sha256.chars().take(RUN_ID_DIGEST_HEX).collect();
    format!("stream__{stream}__{digest}")
}

/// Who started a manager invocation ([`ManagerInvocation::started_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartedBy {
    /// The watchdog, for a stream without a live chain.
    Watchdog,
    /// The predecessor in the same chain, before its deadline.
    Successor,
    /// The deployment (the template's first start).
    Deploy,
}

/// The payload a manager Lambda is invoked with. `{}` (every field absent) starts a
/// new chain, as an invocation by hand would.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerInvocation {
    /// The chain: kept by successors, new for a new chain. Absent: the manager makes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    /// The invocation's place in its chain, 0 for the first.
    #[serde(default)]
    pub generation: u64,
    /// The SSE event ID to resume from (`Last-Event-ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<String>,
    /// Who started it (absent: by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<StartedBy>,
}

/// The auth header sent with the stream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth<V> {
    /// `AUTH_HEADER`: the header's name.
    pub header: V,
    /// `AUTH_SECRET_ARN`: the secret whose `SecretString` is its value.
    pub secret_arn: V,
}

/// The connection manager's settings ([`Role::Manager`] and [`Role::Service`]).
/// Written by the CLI through [`ManagerSettings::to_environment`], read by the Lambda
/// through [`ManagerSettings::from_env`]. `ROLE` is not part of it: the template adds
/// it ([`Role::as_str`]), the binary reads it with [`Role::from_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerSettings<V> {
    /// `STACK_NAME`.
    pub stack_name: V,
    /// `TABLE`.
    pub table: V,
    /// `STREAM_NAME`.
    pub stream_name: V,
    /// `STREAM_URL`.
    pub url: V,
    /// `STREAM_FORMAT`.
    pub format: Format,
    /// `AUTH_HEADER` and `AUTH_SECRET_ARN`, both or neither.
    pub auth: Option<Auth<V>>,
    /// `IDENTITY`.
    pub identity: Identity,
    /// `TARGET_KIND` and `TARGET`.
    pub target: Target,
    /// `EVENT_TTL_HOURS`.
    pub event_ttl_hours: u32,
    /// `READ_TIMEOUT_SECONDS`.
    pub read_timeout_seconds: u32,
    /// `HANDOFF_SECONDS`.
    pub handoff_seconds: u32,
    /// `OVERLAP_SECONDS` (less than `HANDOFF_SECONDS`).
    pub overlap_seconds: u32,
    /// `HEARTBEAT_SECONDS`.
    pub heartbeat_seconds: u32,
    /// `LEASE_SECONDS` (more than `HEARTBEAT_SECONDS`).
    pub lease_seconds: u32,
}

/// The event processor's settings ([`Role::Processor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorSettings<V> {
    /// `AIRFLOW_API_URL`.
    pub airflow_api_url: V,
    /// `API_USERNAME`.
    pub api_username: V,
    /// `API_PASSWORD_SECRET_ARN`.
    pub api_password_secret_arn: V,
    /// `TABLE` (the processor marks events processed).
    pub table: V,
}

/// The watchdog's settings ([`Role::Watchdog`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchdogSettings<V> {
    /// `STACK_NAME`.
    pub stack_name: V,
    /// `TABLE`.
    pub table: V,
    /// `STREAMS`: the streams run by a Lambda chain, each started as
    /// [`manager_function_name`].
    pub streams: Vec<String>,
    /// `SERVICE_STREAMS`: the streams run by a Fargate service, each restarted (a new
    /// deployment of [`manager_service_name`]) when its heartbeat goes stale.
    pub service_streams: Vec<String>,
    /// `CLUSTER`: the ECS cluster of `service_streams` (set when there are any).
    pub cluster: Option<V>,
    /// `STALE_SECONDS` (at least the managers' `LEASE_SECONDS`).
    pub stale_seconds: u32,
    /// `SNS_TOPIC_ARN`.
    pub sns_topic_arn: Option<V>,
    /// `SLACK_SECRET_ARN`.
    pub slack_secret_arn: Option<V>,
    /// `UI_BASE_URL`.
    pub ui_base_url: Option<V>,
}

/// A missing or malformed variable (the scaler's type: one error for every Lambda's
/// settings).
pub use crate::scaler::SettingsError;

/// A set variable (empty counts as unset).
fn optional(var: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    var(name).filter(|v| !v.is_empty())
}

/// A variable that must be set.
fn required(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, SettingsError> {
    optional(var, name).ok_or_else(|| SettingsError {
        name,
        problem: "is not set".into(),
    })
}

/// A whole number, `default` when unset.
fn number(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u32,
) -> Result<u32, SettingsError> {
    match optional(var, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| SettingsError {
            name,
            problem: "is not a whole number".into(),
        }),
    }
}

/// A comma-separated list of names; unset or empty is none.
fn names(var: &impl Fn(&str) -> Option<String>, name: &str) -> Vec<String> {
    optional(var, name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A value the parser refused.
fn invalid(name: &'static str, expected: &str) -> SettingsError {
    SettingsError {
        name,
        problem: format!("is not {expected}"),
    }
}

impl<V> ManagerSettings<V> {
    /// The environment variables, by name (without `ROLE`).
    pub fn to_environment(&self) -> BTreeMap<&'static str, V>
    where
        V: Clone + From<String>,
    {
        use variable::*;
        let number = |n: u32| V::from(n.to_string());
        let mut env = BTreeMap::from([
            (STACK_NAME, self.stack_name.clone()),
            (TABLE, self.table.clone()),
            (STREAM_NAME, self.stream_name.clone()),
            (STREAM_URL, self.url.clone()),
            (STREAM_FORMAT, V::from(self.format.as_str().to_owned())),
            (IDENTITY, V::from(self.identity.as_str())),
            (TARGET_KIND, V::from(self.target.kind().to_owned())),
            (TARGET, V::from(self.target.name().to_owned())),
            (EVENT_TTL_HOURS, number(self.event_ttl_hours)),
            (READ_TIMEOUT_SECONDS, number(self.read_timeout_seconds)),
            (HANDOFF_SECONDS, number(self.handoff_seconds)),
            (OVERLAP_SECONDS, number(self.overlap_seconds)),
            (HEARTBEAT_SECONDS, number(self.heartbeat_seconds)),
            (LEASE_SECONDS, number(self.lease_seconds)),
        ]);
        if let Some(auth) = &self.auth {
            env.insert(AUTH_HEADER, auth.header.clone());
            env.insert(AUTH_SECRET_ARN, auth.secret_arn.clone());
        }
        env
    }
}

impl ManagerSettings<String> {
    /// Reads the settings through `var` (the process environment). Empty counts as
    /// unset; unset numbers take their defaults; the timing must hang together
    /// (overlap < handoff, heartbeat < lease).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        use variable::*;
        let format = Format::parse(&required(&var, STREAM_FORMAT)?)
            .ok_or_else(|| invalid(STREAM_FORMAT, "sse or ndjson"))?;
        let identity = Identity::parse(&required(&var, IDENTITY)?)
            .ok_or_else(|| invalid(IDENTITY, "hash or field:<name>"))?;
        let target = Target::parse(&required(&var, TARGET_KIND)?, &required(&var, TARGET)?)
            .ok_or_else(|| invalid(TARGET_KIND, "dag or asset"))?;
        let auth = match (optional(&var, AUTH_HEADER), optional(&var, AUTH_SECRET_ARN)) {
            (Some(header), Some(secret_arn)) => Some(Auth { header, secret_arn }),
            (None, None) => None,
            (Some(_), None) => return Err(invalid(AUTH_SECRET_ARN, "set while AUTH_HEADER is")),
            (None, Some(_)) => return Err(invalid(AUTH_HEADER, "set while AUTH_SECRET_ARN is")),
        };
        let settings = ManagerSettings {
            stack_name: required(&var, STACK_NAME)?,
            table: required(&var, TABLE)?,
            stream_name: required(&var, STREAM_NAME)?,
            url: required(&var, STREAM_URL)?,
            format,
            auth,
            identity,
            target,
            event_ttl_hours: number(&var, EVENT_TTL_HOURS, DEFAULT_EVENT_TTL_HOURS)?,
            read_timeout_seconds: number(&var, READ_TIMEOUT_SECONDS, DEFAULT_READ_TIMEOUT_SECONDS)?,
            handoff_seconds: number(&var, HANDOFF_SECONDS, DEFAULT_HANDOFF_SECONDS)?,
            overlap_seconds: number(&var, OVERLAP_SECONDS, DEFAULT_OVERLAP_SECONDS)?,
            heartbeat_seconds: number(&var, HEARTBEAT_SECONDS, DEFAULT_HEARTBEAT_SECONDS)?,
            lease_seconds: number(&var, LEASE_SECONDS, DEFAULT_LEASE_SECONDS)?,
        };
        settings.check_timing()?;
        Ok(settings)
    }

    /// Overlap ends before the deadline; a heartbeat comes before the lease lapses;
    /// nothing is zero that would spin.
    fn check_timing(&self) -> Result<(), SettingsError> {
        use variable::*;
        if self.overlap_seconds >= self.handoff_seconds {
            return Err(invalid(OVERLAP_SECONDS, "less than HANDOFF_SECONDS"));
        }
        if self.heartbeat_seconds == 0 || self.heartbeat_seconds >= self.lease_seconds {
            return Err(invalid(
                HEARTBEAT_SECONDS,
                "above 0 and less than LEASE_SECONDS",
            ));
        }
        if self.read_timeout_seconds == 0 {
            return Err(invalid(READ_TIMEOUT_SECONDS, "above 0"));
        }
        Ok(())
    }
}

impl<V> ProcessorSettings<V> {
    /// The environment variables, by name (without `ROLE`).
    pub fn to_environment(&self) -> BTreeMap<&'static str, V>
    where
        V: Clone + From<String>,
    {
        use variable::*;
        BTreeMap::from([
            (AIRFLOW_API_URL, self.airflow_api_url.clone()),
            (API_USERNAME, self.api_username.clone()),
            (
                API_PASSWORD_SECRET_ARN,
                self.api_password_secret_arn.clone(),
            ),
            (TABLE, self.table.clone()),
        ])
    }
}

impl ProcessorSettings<String> {
    /// Reads the settings through `var`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        use variable::*;
        Ok(ProcessorSettings {
            airflow_api_url: required(&var, AIRFLOW_API_URL)?,
            api_username: required(&var, API_USERNAME)?,
            api_password_secret_arn: required(&var, API_PASSWORD_SECRET_ARN)?,
            table: required(&var, TABLE)?,
        })
    }
}

impl<V> WatchdogSettings<V> {
    /// The environment variables, by name (without `ROLE`).
    pub fn to_environment(&self) -> BTreeMap<&'static str, V>
    where
        V: Clone + From<String>,
    {
        use variable::*;
        let mut env = BTreeMap::from([
            (STACK_NAME, self.stack_name.clone()),
            (TABLE, self.table.clone()),
            (STREAMS, V::from(self.streams.join(","))),
            (STALE_SECONDS, V::from(self.stale_seconds.to_string())),
        ]);
        if !self.service_streams.is_empty() {
            env.insert(SERVICE_STREAMS, V::from(self.service_streams.join(",")));
        }
        let optional = [
            (CLUSTER, &self.cluster),
            (SNS_TOPIC_ARN, &self.sns_topic_arn),
            (SLACK_SECRET_ARN, &self.slack_secret_arn),
            (UI_BASE_URL, &self.ui_base_url),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                env.insert(name, value.clone());
            }
        }
        env
    }
}

impl WatchdogSettings<String> {
    /// Reads the settings through `var`. `STREAMS` and `SERVICE_STREAMS` may be empty
    /// (nothing of that runner to watch); `CLUSTER` must be set when `SERVICE_STREAMS`
    /// is not empty.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        use variable::*;
        let streams = names(&var, STREAMS);
        let service_streams = names(&var, SERVICE_STREAMS);
        let cluster = optional(&var, CLUSTER);
        if !service_streams.is_empty() && cluster.is_none() {
            return Err(invalid(CLUSTER, "set while SERVICE_STREAMS is"));
        }
        let stale_seconds = number(&var, STALE_SECONDS, DEFAULT_STALE_SECONDS)?;
        if stale_seconds == 0 {
            return Err(invalid(STALE_SECONDS, "above 0"));
        }
        Ok(WatchdogSettings {
            stack_name: required(&var, STACK_NAME)?,
            table: required(&var, TABLE)?,
            streams,
            service_streams,
            cluster,
            stale_seconds,
            sns_topic_arn: optional(&var, SNS_TOPIC_ARN),
            slack_secret_arn: optional(&var, SLACK_SECRET_ARN),
            ui_base_url: optional(&var, UI_BASE_URL),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the CLI's expression type.
    #[derive(Debug, Clone, PartialEq)]
    enum Expr {
        Lit(String),
        Ref(&'static str),
    }

    impl From<String> for Expr {
        fn from(s: String) -> Self {
            Expr::Lit(s)
        }
    }

    /// What Lambda does with the template's `Environment.Variables`.
    fn deploy(env: BTreeMap<&'static str, Expr>) -> BTreeMap<String, String> {
        env.into_iter()
            .map(|(k, v)| {
                let value = match v {
                    Expr::Lit(s) => s,
                    Expr::Ref(id) => format!("resolved-{id}"),
                };
                (k.to_owned(), value)
            })
            .collect()
    }

    fn manager(auth: bool) -> ManagerSettings<Expr> {
        ManagerSettings {
            stack_name: Expr::Lit("airflow-dev".into()),
            table: Expr::Ref("StreamsTable"),
            stream_name: Expr::Lit("orders".into()),
            url: Expr::Lit("https://vendor.example/events".into()),
            format: Format::Sse,
            auth: auth.then(|| Auth {
                header: Expr::Lit("Authorization".into()),
                secret_arn: Expr::Ref("OrdersAuthSecret"),
            }),
            identity: Identity::Field("id".into()),
            target: Target::Asset("s3://bucket/orders".into()),
            event_ttl_hours: 24,
            read_timeout_seconds: 30,
            handoff_seconds: 45,
            overlap_seconds: 15,
            heartbeat_seconds: 10,
            lease_seconds: 40,
        }
    }

    fn read(env: &BTreeMap<String, String>) -> Result<ManagerSettings<String>, SettingsError> {
        ManagerSettings::from_env(|n| env.get(n).cloned())
    }

    #[test]
    fn manager_settings_round_trip() {
        for auth in [true, false] {
            let got = read(&deploy(manager(auth).to_environment())).unwrap();
            assert_eq!(got.table, "resolved-StreamsTable");
            assert_eq!(got.format, Format::Sse);
            assert_eq!(got.identity, Identity::Field("id".into()));
            assert_eq!(got.target, Target::Asset("s3://bucket/orders".into()));
            assert_eq!(
                (
                    got.event_ttl_hours,
                    got.read_timeout_seconds,
                    got.handoff_seconds
                ),
                (24, 30, 45)
            );
            assert_eq!(
                (
                    got.overlap_seconds,
                    got.heartbeat_seconds,
                    got.lease_seconds
                ),
                (15, 10, 40)
            );
            assert_eq!(
                got.auth,
                auth.then(|| Auth {
                    header: "Authorization".into(),
                    secret_arn: "resolved-OrdersAuthSecret".into()
                })
            );
        }
    }

    #[test]
    fn manager_defaults_and_errors_name_the_variable() {
        let mut env = deploy(manager(true).to_environment());
        for name in [
            "EVENT_TTL_HOURS",
            "READ_TIMEOUT_SECONDS",
            "HANDOFF_SECONDS",
            "OVERLAP_SECONDS",
            "HEARTBEAT_SECONDS",
            "LEASE_SECONDS",
        ] {
            env.remove(name);
        }
        let got = read(&env).unwrap();
        assert_eq!(got.lease_seconds, DEFAULT_LEASE_SECONDS);
        assert_eq!(got.handoff_seconds, DEFAULT_HANDOFF_SECONDS);
        env.remove("AUTH_SECRET_ARN");
        assert_eq!(
            read(&env).unwrap_err().to_string(),
            "environment variable AUTH_SECRET_ARN: is not set while AUTH_HEADER is"
        );
        env.remove("AUTH_HEADER");
        env.insert("STREAM_FORMAT".into(), "xml".into());
        assert_eq!(read(&env).unwrap_err().name, "STREAM_FORMAT");
        env.insert("STREAM_FORMAT".into(), "ndjson".into());
        env.insert("IDENTITY".into(), "field:".into());
        assert_eq!(read(&env).unwrap_err().name, "IDENTITY");
        env.insert("IDENTITY".into(), "hash".into());
        env.insert("OVERLAP_SECONDS".into(), "60".into());
        assert_eq!(read(&env).unwrap_err().name, "OVERLAP_SECONDS");
        env.insert("OVERLAP_SECONDS".into(), "soon".into());
        assert_eq!(
            read(&env).unwrap_err().to_string(),
            "environment variable OVERLAP_SECONDS: is not a whole number"
        );
    }

    #[test]
    fn processor_and_watchdog_settings_round_trip() {
        let processor = ProcessorSettings {
            airflow_api_url: Expr::Lit("http://api-server.airflow:8080".into()),
            api_username: Expr::Lit(STREAMS_USERNAME.into()),
            api_password_secret_arn: Expr::Ref("StreamsPassword"),
            table: Expr::Ref("StreamsTable"),
        };
        let env = deploy(processor.to_environment());
        let got = ProcessorSettings::from_env(|n| env.get(n).cloned()).unwrap();
        assert_eq!(got.api_username, STREAMS_USERNAME);
        assert_eq!(got.api_password_secret_arn, "resolved-StreamsPassword");

        let watchdog = WatchdogSettings {
            stack_name: Expr::Lit("airflow-dev".into()),
            table: Expr::Ref("StreamsTable"),
            streams: vec!["orders".into(), "clicks".into()],
            service_streams: vec!["ticks".into()],
            cluster: Some(Expr::Ref("Cluster")),
            stale_seconds: 120,
            sns_topic_arn: Some(Expr::Ref("Alerts")),
            slack_secret_arn: None,
            ui_base_url: None,
        };
        let env = deploy(watchdog.to_environment());
        assert!(!env.contains_key("SLACK_SECRET_ARN"));
        let got = WatchdogSettings::from_env(|n| env.get(n).cloned()).unwrap();
        assert_eq!(got.streams, ["orders", "clicks"]);
        assert_eq!(got.service_streams, ["ticks"]);
        assert_eq!(got.cluster.as_deref(), Some("resolved-Cluster"));
        assert_eq!(got.stale_seconds, 120);
        assert_eq!(got.sns_topic_arn.as_deref(), Some("resolved-Alerts"));
        assert_eq!(got.slack_secret_arn, None);
    }

    #[test]
    fn service_streams_need_their_cluster() {
        let env = BTreeMap::from([
            ("STACK_NAME", "airflow-dev"),
            ("TABLE", "t"),
            ("SERVICE_STREAMS", "ticks"),
        ]);
        let err = WatchdogSettings::from_env(|n| env.get(n).map(|v| v.to_string())).unwrap_err();
        assert_eq!(err.name, "CLUSTER");
        let lambda_only = BTreeMap::from([("STACK_NAME", "airflow-dev"), ("TABLE", "t")]);
        let got =
            WatchdogSettings::from_env(|n| lambda_only.get(n).map(|v| v.to_string())).unwrap();
        assert!(got.service_streams.is_empty() && got.cluster.is_none());
    }

    #[test]
    fn roles_formats_identities_targets_parse_back() {
        for role in [
            Role::Manager,
            Role::Service,
            Role::Processor,
            Role::Watchdog,
        ] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(
            Role::from_env(|_| Some("cron".into())).unwrap_err().name,
            "ROLE"
        );
        for format in [Format::Sse, Format::Ndjson] {
            assert_eq!(Format::parse(format.as_str()), Some(format));
        }
        for identity in [Identity::Hash, Identity::Field("order_id".into())] {
            assert_eq!(Identity::parse(&identity.as_str()), Some(identity));
        }
        assert_eq!(Identity::parse("id"), None);
        assert_eq!(Target::parse("dag", "d"), Some(Target::Dag("d".into())));
        assert_eq!(Target::parse("sensor", "d"), None);
    }

    #[test]
    fn keys_names_and_run_ids() {
        assert_eq!(event_key("orders", "42"), "event#orders#42");
        assert_eq!(lease_key("orders"), "lease#orders");
        assert_eq!(
            manager_function_name("airflow-dev", "orders"),
            "airflow-dev-stream-orders"
        );
        let longest = manager_function_name(&"s".repeat(32), &"t".repeat(20));
        assert!(longest.len() <= 64);
        let digest = "ab".repeat(32);
        let run_id = dag_run_id("orders", &digest);
        assert_eq!(run_id, format!("stream__orders__{}", "ab".repeat(16)));
        assert!(run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.~:+-".contains(c)));
        let pattern: serde_json::Value = serde_json::from_str(&processor_filter_pattern()).unwrap();
        assert_eq!(
            pattern,
            serde_json::json!({"eventName": ["INSERT"],
                "dynamodb": {"NewImage": {"kind": {"S": ["event"]}}}})
        );
    }

    #[test]
    fn an_empty_invocation_starts_a_new_chain() {
        let empty: ManagerInvocation = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, ManagerInvocation::default());
        let next = ManagerInvocation {
            chain_id: Some("c-1".into()),
            generation: 3,
            last_event_id: Some("17".into()),
            started_by: Some(StartedBy::Successor),
        };
        let json = serde_json::to_value(&next).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"chain_id": "c-1", "generation": 3,
                "last_event_id": "17", "started_by": "successor"})
        );
        assert_eq!(
            serde_json::from_value::<ManagerInvocation>(json).unwrap(),
            next
        );
    }
}
