//! Handler errors. Every message names properties or secrets by role, never a value,
//! because it becomes the `Reason` CloudFormation shows in stack events.

use cfn_custom_resource::{PropertyError, Refusal};

use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A property is missing or invalid.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// CloudFormation did not confirm that it sent this request.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// This function does not serve the resource type.
    #[error(
        "unsupported ResourceType {0} (expected {secrets} or {urls})",
        secrets = airflow_stack_contract::secrets::SECRETS_RESOURCE_TYPE,
        urls = airflow_stack_contract::secrets::CONNECTION_URLS_RESOURCE_TYPE
    )]
    UnknownResourceType(String),
    /// A Secrets Manager call failed.
    #[error("Secrets Manager {operation} failed for {property}: {source}")]
    Store {
        /// The operation that failed.
        operation: &'static str,
        /// The property naming the secret.
        property: &'static str,
        /// What Secrets Manager said.
        source: StoreError,
    },
    /// A secret that must already hold a value is empty.
    #[error("the secret named by {0} has no value yet")]
    EmptySecret(&'static str),
    /// A JSON-object secret has no (or an empty) value for a key that must be there.
    #[error("the secret named by {property} has no \"{key}\" yet")]
    MissingKey {
        /// The property naming the secret.
        property: &'static str,
        /// The JSON key.
        key: &'static str,
    },
    /// The secret's current value is not valid JSON.
    #[error("the secret named by {property} does not hold valid JSON ({detail}); it must be a JSON object of strings, fix or empty it by hand")]
    MalformedJson {
        /// The property naming the secret.
        property: &'static str,
        /// Error category and position, never the text.
        detail: String,
    },
    /// The secret's current value is JSON, but not an object.
    #[error("the secret named by {property} holds {found}, not a JSON object of strings; fix or empty it by hand")]
    NotAJsonObject {
        /// The property naming the secret.
        property: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A key of a JSON-object secret holds something other than a string.
    #[error("the secret named by {property} holds {found} under \"{key}\", not a string; fix it by hand")]
    KeyNotAString {
        /// The property naming the secret.
        property: &'static str,
        /// The JSON key.
        key: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// This resource wrote the key before, and it has since been removed: a new value
    /// would no longer match whatever uses the old one, so nothing is regenerated.
    #[error("the secret named by {property} lost the \"{key}\" this resource wrote; restore it by hand (a new value would not match what already uses the old one)")]
    KeyRemoved {
        /// The property naming the secret.
        property: &'static str,
        /// The JSON key.
        key: &'static str,
    },
}

impl HandlerError {
    /// Wraps a store error with the operation and the property that names the secret.
    pub fn store(
        operation: &'static str,
        property: &'static str,
    ) -> impl FnOnce(StoreError) -> Self {
        move |source| Self::Store {
            operation,
            property,
            source,
        }
    }
}
