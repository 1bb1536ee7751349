//! Handler errors. Every message names properties or secrets by role, never a value,
//! because it becomes the `Reason` CloudFormation shows in stack events.

use cfn_custom_resource::PropertyError;

use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A property is missing or invalid.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// This function does not serve the resource type.
    #[error("unsupported ResourceType {0} (expected Custom::AirflowSecrets or Custom::AirflowConnectionUrls)")]
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
