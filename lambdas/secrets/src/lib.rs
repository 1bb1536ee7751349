//! The `airflow-secrets` custom-resource Lambda.
//!
//! One function serves two resource types, dispatched on `ResourceType`:
//! - `Custom::AirflowSecrets` generates the Fernet key, `[api] secret_key`,
//!   `[api_auth] jwt_secret` and the db, redis and admin passwords into five secrets
//!   (three of them JSON objects, see [`airflow_secrets`]);
//! - `Custom::AirflowConnectionUrls` writes `sql_alchemy_conn` and the Celery broker
//!   URL into the database and Redis JSON secrets once the endpoints are known.
//!
//! Secret values only ever travel between the random generator and Secrets Manager:
//! never into the response, the logs or an error message.

// Not in [workspace.lints] yet: the CLI crate still has undocumented fields (the old
// hand-written src/cfn/aws), and a member cannot add lints to the workspace set.
#![warn(missing_docs)]

pub mod airflow_secrets;
pub mod aws_store;
pub mod connection_urls;
pub mod error;
pub mod generate;
pub mod handler;
pub mod json_secret;
pub mod props;
pub mod store;

use std::sync::Arc;
use std::time::SystemTime;

use cfn_custom_resource::{
    respond_guarded, GuardConfig, GuardOutcome, OriginCheck, ResponseSender,
};
use serde_json::{json, Value};

pub use error::HandlerError;
pub use store::{MemoryStore, SecretStore, StoreError};

/// Why an invocation ends as a Lambda error (CloudFormation was not answered, so
/// Lambda's own retry of the async invocation gets another chance).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The event has no ResponseURL.
    #[error("the event has no ResponseURL; CloudFormation cannot be answered")]
    NoResponseUrl,
    /// The PUT failed after bounded retries.
    #[error("the response could not be delivered: {0}")]
    NotDelivered(#[from] cfn_custom_resource::SendError),
}

/// Handles one Lambda invocation: answers CloudFormation through the guard and returns
/// a small, secret-free summary as the Lambda result. `origin` confirms a Create or
/// Update with CloudFormation before any secret is read or written.
pub async fn invoke(
    event: Value,
    deadline: SystemTime,
    config: &GuardConfig,
    sender: &ResponseSender,
    store: Arc<dyn SecretStore>,
    origin: OriginCheck,
) -> Result<Value, InvokeError> {
    let outcome = respond_guarded(event, deadline, config, sender, move |request| {
        handler::handle(request, store, origin)
    })
    .await;
    match outcome {
        GuardOutcome::Answered(document) => Ok(json!({
            "Status": document.status,
            "PhysicalResourceId": document.physical_resource_id,
        })),
        GuardOutcome::NoResponseUrl => Err(InvokeError::NoResponseUrl),
        GuardOutcome::NotDelivered(_, error) => Err(InvokeError::NotDelivered(error)),
    }
}
