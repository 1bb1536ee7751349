//! The payload one invocation hands to the next when its own time runs out.
//!
//! It is wrapped in an object whose only key is [`MARKER`], a name CloudFormation
//! never sends, so a continuation can never be mistaken for a custom-resource event
//! (which always has `RequestType` at the top level) and vice versa.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The wrapper key that marks a continuation payload.
pub const MARKER: &str = "ImageBuildContinuation";

/// State carried from one invocation to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Continuation {
    /// The original CloudFormation event, untouched: the last hop answers it.
    pub event: Value,
    /// The build being waited for; never started again.
    pub build_id: String,
    /// When the first invocation started the build (Unix epoch, milliseconds): the
    /// overall limit counts from here, not from the latest hop.
    pub started_at_epoch_millis: u64,
    /// How many hand-overs happened before this invocation (the first hand-over
    /// produces 1).
    pub hop: u32,
}

impl Continuation {
    /// The wrapped JSON sent as the asynchronous invocation's payload.
    pub fn to_payload(&self) -> Vec<u8> {
        let wrapped = serde_json::json!({ MARKER: self });
        // A Value of strings and numbers always serialises.
        serde_json::to_vec(&wrapped).expect("continuation serialises")
    }
}

/// What one invocation was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// A CloudFormation event, straight from CloudFormation.
    Fresh(Value),
    /// A hand-over from an earlier invocation.
    Continue(Continuation),
    /// Marked as a continuation but unreadable; `event` is the embedded CloudFormation
    /// event if one could be found, so it can still be answered FAILED.
    BrokenContinuation {
        /// The embedded event, or `Null`.
        event: Value,
        /// Why the continuation could not be read.
        error: String,
    },
}

impl Work {
    /// Tells the payload kinds apart.
    pub fn from_payload(payload: Value) -> Self {
        let Some(wrapped) = payload.get(MARKER) else {
            return Work::Fresh(payload);
        };
        match serde_json::from_value::<Continuation>(wrapped.clone()) {
            Ok(continuation) => Work::Continue(continuation),
            Err(error) => Work::BrokenContinuation {
                event: wrapped.get("Event").cloned().unwrap_or(Value::Null),
                error: error.to_string(),
            },
        }
    }

    /// The CloudFormation event this work answers.
    pub fn event(&self) -> &Value {
        match self {
            Work::Fresh(event) => event,
            Work::Continue(continuation) => &continuation.event,
            Work::BrokenContinuation { event, .. } => event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_through_the_payload() {
        let continuation = Continuation {
            event: json!({"RequestType": "Create"}),
            build_id: "project:0b1c".into(),
            started_at_epoch_millis: 42,
            hop: 2,
        };
        let payload: Value = serde_json::from_slice(&continuation.to_payload()).unwrap();
        assert_eq!(payload[MARKER]["BuildId"], "project:0b1c");
        assert_eq!(Work::from_payload(payload), Work::Continue(continuation));
    }

    #[test]
    fn a_cloudformation_event_is_fresh_work() {
        let event = json!({"RequestType": "Create", "ResponseURL": "http://x"});
        assert_eq!(Work::from_payload(event.clone()), Work::Fresh(event));
    }

    #[test]
    fn a_broken_continuation_keeps_the_event_to_answer() {
        let payload = json!({MARKER: {"Event": {"ResponseURL": "http://x"}, "Hop": "x"}});
        match Work::from_payload(payload) {
            Work::BrokenContinuation { event, .. } => assert_eq!(event["ResponseURL"], "http://x"),
            other => panic!("{other:?}"),
        }
    }
}
