//! The response document PUT to the `ResponseURL`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::request::Envelope;

/// CloudFormation rejects response bodies over 4,096 bytes.
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// Longest `Reason` we ever send: stack events are read by people, keep it short.
const MAX_REASON_CHARS: usize = 1024;

/// Outcome reported to CloudFormation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The resource operation succeeded.
    Success,
    /// The resource operation failed; `Reason` says why.
    Failed,
}

/// The JSON document CloudFormation expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseDocument {
    /// SUCCESS or FAILED.
    pub status: Status,
    /// Why it failed; only sent with FAILED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Must be the same in every response about one resource.
    pub physical_resource_id: String,
    /// Copied from the request.
    pub stack_id: String,
    /// Copied from the request.
    pub request_id: String,
    /// Copied from the request.
    pub logical_resource_id: String,
    /// Masks `Data` in stack events.
    pub no_echo: bool,
    /// Attributes readable with `Fn::GetAtt`; never secret values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

impl ResponseDocument {
    /// A SUCCESS answer for the request described by `envelope`.
    pub fn success(
        envelope: &Envelope,
        physical_resource_id: String,
        data: BTreeMap<String, String>,
    ) -> Self {
        Self::new(envelope, Status::Success, None, physical_resource_id, data)
    }

    /// A FAILED answer; `reason` is cut to a readable length.
    pub fn failed(envelope: &Envelope, physical_resource_id: String, reason: &str) -> Self {
        let reason = truncate_chars(reason, MAX_REASON_CHARS);
        Self::new(
            envelope,
            Status::Failed,
            Some(reason),
            physical_resource_id,
            BTreeMap::new(),
        )
    }

    fn new(
        envelope: &Envelope,
        status: Status,
        reason: Option<String>,
        physical_resource_id: String,
        data: BTreeMap<String, String>,
    ) -> Self {
        let copy = |field: &Option<String>| field.clone().unwrap_or_default();
        Self {
            status,
            reason,
            physical_resource_id,
            stack_id: copy(&envelope.stack_id),
            request_id: copy(&envelope.request_id),
            logical_resource_id: copy(&envelope.logical_resource_id),
            no_echo: true,
            data,
        }
    }

    /// Serialises the document, shrinking it to fit [`MAX_RESPONSE_BYTES`]: first `Data`
    /// is dropped, then `Reason` is shortened. The ids are never altered (an altered id
    /// would be worse than a rejected response), so absurd ids can still exceed it.
    pub fn to_body(&self) -> Vec<u8> {
        let body = self.serialise();
        if body.len() <= MAX_RESPONSE_BYTES {
            return body;
        }
        let mut smaller = self.clone();
        if !smaller.data.is_empty() {
            smaller.data.clear();
            if smaller.status == Status::Success {
                smaller.status = Status::Failed;
                smaller.reason = Some("response Data exceeded the 4096-byte limit".into());
            }
        }
        let body = smaller.serialise();
        let excess = body.len().saturating_sub(MAX_RESPONSE_BYTES);
        match (&smaller.reason, excess) {
            (_, 0) => body,
            (Some(reason), _) => {
                let keep = reason.len().saturating_sub(excess + 3);
                smaller.reason = Some(format!("{}...", truncate_bytes(reason, keep)));
                smaller.serialise()
            }
            (None, _) => body,
        }
    }

    fn serialise(&self) -> Vec<u8> {
        // Serialising a struct of strings and a string map cannot fail.
        serde_json::to_vec(self).expect("response document serialises")
    }
}

fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{cut}...")
}

/// Longest prefix of `text` within `max` bytes that ends on a character boundary.
fn truncate_bytes(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            response_url: Some("http://x".into()),
            stack_id: Some("stack".into()),
            request_id: Some("req".into()),
            logical_resource_id: Some("Logical".into()),
            physical_resource_id: None,
            request_type: Some("Create".into()),
        }
    }

    #[test]
    fn success_document_has_the_protocol_field_names() {
        let doc = ResponseDocument::success(&envelope(), "pid".into(), BTreeMap::new());
        let value: serde_json::Value = serde_json::from_slice(&doc.to_body()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"Status": "SUCCESS", "PhysicalResourceId": "pid", "StackId": "stack",
                "RequestId": "req", "LogicalResourceId": "Logical", "NoEcho": true})
        );
    }

    #[test]
    fn huge_reasons_are_cut_below_the_limit() {
        let reason = "é".repeat(10_000);
        let doc = ResponseDocument::failed(&envelope(), "pid".into(), &reason);
        assert!(doc.to_body().len() <= MAX_RESPONSE_BYTES);
        assert!(doc.reason.as_ref().unwrap().chars().count() <= MAX_REASON_CHARS);
    }

    #[test]
    fn a_long_stack_id_still_fits_by_shortening_the_reason() {
        let mut env = envelope();
        env.stack_id = Some("s".repeat(3500));
        let doc = ResponseDocument::failed(&env, "pid".into(), &"r".repeat(1000));
        let body = doc.to_body();
        assert!(body.len() <= MAX_RESPONSE_BYTES, "{}", body.len());
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(value["Reason"].as_str().unwrap().ends_with("..."));
    }

    #[test]
    fn oversized_data_turns_into_a_failure_that_fits() {
        let data = (0..100)
            .map(|i| (format!("K{i}"), "v".repeat(100)))
            .collect();
        let doc = ResponseDocument::success(&envelope(), "pid".into(), data);
        let body = doc.to_body();
        assert!(body.len() <= MAX_RESPONSE_BYTES);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["Status"], "FAILED");
        assert!(value.get("Data").is_none());
    }
}
