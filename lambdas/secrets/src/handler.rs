//! Dispatch on `ResourceType` and `RequestType`.

use std::sync::Arc;

use cfn_custom_resource::{CustomResourceRequest, HandlerOutput, OriginCheck, RequestType};

use crate::error::HandlerError;
use crate::store::SecretStore;
use crate::{airflow_secrets, connection_urls};

/// Generates keys and passwords.
pub const AIRFLOW_SECRETS: &str = airflow_stack_contract::secrets::SECRETS_RESOURCE_TYPE;
/// Writes connection URLs.
pub const CONNECTION_URLS: &str = airflow_stack_contract::secrets::CONNECTION_URLS_RESOURCE_TYPE;

/// Handles one validated request.
///
/// A Create or Update is first confirmed with CloudFormation ([`OriginCheck`]): anyone
/// allowed to invoke the function could otherwise have a connection URL with the real
/// password written for a host of their choosing. A refused request touches no secret.
///
/// Delete never touches a secret (the values may encrypt data that outlives the stack)
/// and always succeeds, whatever the resource type, properties or physical id: a
/// failing Delete would block the stack.
pub async fn handle(
    request: CustomResourceRequest,
    store: Arc<dyn SecretStore>,
    origin: OriginCheck,
) -> Result<HandlerOutput, HandlerError> {
    origin.confirm(&request).await?;
    let store = store.as_ref();
    match (request.request_type, request.resource_type.as_str()) {
        (RequestType::Delete, _) => {
            tracing::info!("delete: leaving every secret in place");
            Ok(HandlerOutput::default())
        }
        (RequestType::Create, AIRFLOW_SECRETS) => airflow_secrets::create(&request, store).await,
        (RequestType::Update, AIRFLOW_SECRETS) => airflow_secrets::update(&request, store).await,
        (RequestType::Create | RequestType::Update, CONNECTION_URLS) => {
            connection_urls::write_urls(&request, store, &connection_urls::HostRules::from_env())
                .await
        }
        (_, other) => Err(HandlerError::UnknownResourceType(other.to_owned())),
    }
}
