//! `streams:` long-lived HTTP event streams whose events start DAG runs or record Asset
//! events (issue 17).
//!
//! Each stream gets a connection manager (lambdas/streams, role `manager`): a Lambda
//! chain that holds the stream, writes every event once into a DynamoDB table (a
//! conditional put keyed by the event's identity) and starts its own successor shortly
//! before its time limit. A processor Lambda, fed by the table's stream, calls the
//! Airflow REST API with a DAG run id derived from the identity, so a redelivered event
//! cannot start a second run. A watchdog restarts a broken chain and alerts once.

use schemars::JsonSchema;
use serde::Deserialize;

use super::values::{AssetUri, DagId, EventField, HeaderName, StreamName, StreamUrl};
use super::SecretArn;

/// Most streams one stack holds: each is a Lambda running around the clock (about 9
/// USD a month each at 256 MB on arm64, `airflow-stack cost`), and every one adds a
/// function, a role and a log group to the template.
pub const MAX_STREAMS: usize = 10;

/// Shortest and longest silence (seconds) a stream may have before the manager stops
/// waiting on it and reconnects; Lambda's 15 minutes bound the longest.
pub const READ_TIMEOUT_RANGE: (u32, u32) = (5, 600);

/// One event stream.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// Names the stream in resource names, the DAG run ids and the table: 1 to 20
    /// lower-case letters, digits and hyphens, starting with a letter.
    pub name: StreamName,
    /// The stream's `https://` URL.
    pub url: StreamUrl,
    /// `sse` (server-sent events: `data:` lines, `id:` for resuming with
    /// `Last-Event-ID`) or `ndjson` (one JSON value per line).
    pub format: StreamFormat,
    /// An HTTP header whose value is a Secrets Manager secret (an API token): only the
    /// connection manager may read the secret; the value never enters the template.
    #[serde(default)]
    pub auth: Option<StreamAuth>,
    /// How an event is recognised when it comes twice: a top-level field of the event's
    /// JSON (e.g. `id`; for `sse`, the event's `id:` line when its data has no such
    /// field). Empty (the default): the SHA-256 of the event's data.
    #[serde(default)]
    pub id_field: Option<EventField>,
    /// What an event does: `{dag: <dag_id>}` triggers a run of that DAG with the event
    /// as its `conf`; `{asset: <uri>}` records an Asset event with the event as its
    /// `extra`.
    // A YAML map with one key (`dag:` or `asset:`), not serde_yaml_ng's default of a
    // YAML tag (`!dag x`), which few people have seen.
    #[serde(deserialize_with = "serde_yaml_ng::with::singleton_map::deserialize")]
    pub target: StreamTarget,
    /// Seconds of silence after which the manager stops waiting and reconnects (5 to
    /// 600). Default 60.
    #[serde(default = "default_read_timeout")]
    #[schemars(range(min = 5, max = 600))]
    pub read_timeout_seconds: u32,
    /// What holds the connection: `lambda` (the default: a chain of Lambda invocations,
    /// each up to 15 minutes, handing over to its successor) or `service` (one
    /// always-on Fargate task, 0.25 vCPU and 0.5 GB, in the stack's subnets).
    /// `airflow-stack cost` prices both.
    #[serde(default)]
    pub runner: StreamRunner,
}

/// What holds a stream's connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamRunner {
    /// A Lambda chain: no VPC, no NAT needed for the stream; keeps running while the
    /// stack is paused.
    #[default]
    Lambda,
    /// An always-on Fargate task in the stack's subnets (reaches the stream through
    /// the stack's NAT or public IP); stopped by `pause` with the other services, it
    /// resumes from the last event id (SSE) when the stack resumes.
    Service,
}

fn default_read_timeout() -> u32 {
    airflow_stack_contract::streams::DEFAULT_READ_TIMEOUT_SECONDS
}

/// The wire format of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamFormat {
    /// Server-sent events.
    Sse,
    /// Newline-delimited JSON.
    Ndjson,
}

/// `auth:` a header the stream server checks.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamAuth {
    /// The header's name, e.g. `Authorization` or `X-Api-Key`.
    pub header: HeaderName,
    /// The full ARN of the secret whose value (a plain string, e.g. `Bearer abc…`) is
    /// the header's value.
    pub secret: SecretArn,
}

/// What an event of the stream does in Airflow.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum StreamTarget {
    /// Trigger a run of this DAG, the event as its `conf`.
    Dag(DagId),
    /// Record an event of the Asset with this URI, the event as its `extra`.
    Asset(AssetUri),
}

type Problems = Vec<(String, String)>;

/// The rules across streams and the rest of the stack file.
pub(super) fn check(spec: &super::Spec) -> Problems {
    let mut p = Problems::new();
    let streams = &spec.streams;
    if streams.len() > MAX_STREAMS {
        p.push((
            "streams".into(),
            format!(
                "{} streams: at most {MAX_STREAMS} per stack (each is a Lambda running around the clock)",
                streams.len()
            ),
        ));
    }
    for (i, s) in streams.iter().enumerate() {
        if let Some(first) = streams[..i].iter().position(|o| o.name == s.name) {
            p.push((
                format!("streams[{i}].name"),
                format!(
                    "{:?} is also streams[{first}].name; each stream needs its own name",
                    s.name.as_str()
                ),
            ));
        }
        let (min, max) = READ_TIMEOUT_RANGE;
        if !(min..=max).contains(&s.read_timeout_seconds) {
            p.push((
                format!("streams[{i}].read_timeout_seconds"),
                format!("must be {min} to {max} seconds"),
            ));
        }
    }
    // The processor runs in the VPC (it reaches the api-server there) and calls
    // DynamoDB and Secrets Manager: without NAT or endpoints it never gets an answer.
    let no_egress = spec.network.vpc_id.is_none() && spec.network.nat_gateways == 0;
    if !streams.is_empty() && no_egress {
        p.push((
            "streams".into(),
            "the stream processor Lambda runs in the VPC and needs a route to AWS APIs, which a \
             created VPC with network.nat_gateways: 0 does not give it (Lambdas get no public IP); \
             set network.nat_gateways: 1, or use an existing VPC whose subnets have NAT or VPC \
             endpoints"
                .into(),
        ));
    }
    p
}
