//! An event's identity (what duplicates collapse on) and the DAG run ID derived from it.

use airflow_stack_contract::streams::{dag_run_id, Identity, MAX_IDENTITY_BYTES};
use sha2::{Digest, Sha256};

use crate::decode::StreamEvent;

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The event's identity by the stream's rule, and whether the rule had to fall back to
/// the hash (a `field:` identity the event does not carry: see [`Identity::Field`]).
pub fn identity(rule: &Identity, event: &StreamEvent) -> (String, bool) {
    let hash = || sha256_hex(event.data.as_bytes());
    let (raw, fell_back) = match rule {
        Identity::Hash => (hash(), false),
        Identity::Field(name) => match field(&event.data, name).or_else(|| sse_id(name, event)) {
            Some(value) => (value, false),
            None => (hash(), true),
        },
    };
    (bounded(raw), fell_back)
}

/// A top-level string, number or boolean field of a JSON object.
fn field(data: &str, name: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(data).ok()?;
    match value.get(name)? {
        serde_json::Value::String(s) => Some(s.clone()),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

/// `field:id` falls back to the event's own SSE `id:` line.
fn sse_id(name: &str, event: &StreamEvent) -> Option<String> {
    (name == "id").then(|| event.id.clone()).flatten()
}

/// An identity longer than [`MAX_IDENTITY_BYTES`] becomes `sha256:<hex>` of it.
fn bounded(identity: String) -> String {
    if identity.len() > MAX_IDENTITY_BYTES {
        format!("sha256:{}", sha256_hex(identity.as_bytes()))
    } else {
        identity
    }
}

/// The DAG run ID of an event of `stream` with this identity ([`dag_run_id`]).
pub fn run_id(stream: &str, identity: &str) -> String {
    dag_run_id(stream, &sha256_hex(identity.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str, id: Option<&str>) -> StreamEvent {
        StreamEvent {
            data: data.into(),
            id: id.map(str::to_owned),
            last_event_id: id.map(str::to_owned),
        }
    }

    #[test]
    fn hash_is_of_the_data_bytes() {
        let (id, fell_back) = identity(&Identity::Hash, &event("{\"a\":1}", Some("9")));
        assert_eq!(id, sha256_hex(b"{\"a\":1}"));
        assert_eq!(id.len(), 64);
        assert!(!fell_back);
    }

    #[test]
    fn field_then_sse_id_then_hash() {
        let order = Identity::Field("order".into());
        assert_eq!(
            identity(&order, &event("{\"order\":\"A-1\"}", None)).0,
            "A-1"
        );
        assert_eq!(identity(&order, &event("{\"order\":42}", None)).0, "42");
        let (id, fell_back) = identity(&order, &event("{\"order\":null}", Some("5")));
        assert_eq!(
            (id.len(), fell_back),
            (64, true),
            "only field:id uses the SSE id"
        );
        let by_id = Identity::Field("id".into());
        assert_eq!(identity(&by_id, &event("{\"id\":\"x\"}", Some("5"))).0, "x");
        assert_eq!(identity(&by_id, &event("plain text", Some("5"))).0, "5");
        assert!(identity(&by_id, &event("plain text", None)).1);
    }

    #[test]
    fn long_identities_are_hashed_and_run_ids_are_stable() {
        let long = format!("{{\"id\":\"{}\"}}", "x".repeat(600));
        let (id, _) = identity(&Identity::Field("id".into()), &event(&long, None));
        assert!(id.starts_with("sha256:") && id.len() == 71);
        let a = run_id("orders", "A-1");
        assert_eq!(a, run_id("orders", "A-1"));
        assert_ne!(a, run_id("orders", "A-2"));
        assert_ne!(a, run_id("clicks", "A-1"));
        assert_eq!(a, format!("stream__orders__{}", &sha256_hex(b"A-1")[..32]));
    }
}
