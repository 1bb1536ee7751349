//! [`SecretStore`] backed by the AWS SDK's Secrets Manager client.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::Client;

use crate::store::{SecretStore, SecretVersions, StoreError};

/// Secrets Manager through `aws-sdk-secretsmanager`.
#[derive(Debug, Clone)]
pub struct AwsSecretStore {
    client: Client,
}

impl AwsSecretStore {
    /// Wraps a configured client (the endpoint comes from `AWS_ENDPOINT_URL` if set).
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

const CURRENT_STAGE: &str = "AWSCURRENT";

#[async_trait]
impl SecretStore for AwsSecretStore {
    async fn versions(&self, secret_arn: &str) -> Result<SecretVersions, StoreError> {
        let output = self
            .client
            .describe_secret()
            .secret_id(secret_arn)
            .send()
            .await
            .map_err(|err| {
                let not_found = err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception());
                service_error(not_found, &err)
            })?;
        let stages = output.version_ids_to_stages().cloned().unwrap_or_default();
        let current = stages
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == CURRENT_STAGE))
            .map(|(id, _)| id.clone());
        Ok(SecretVersions {
            current,
            all: stages.into_keys().collect(),
        })
    }

    async fn current_value(&self, secret_arn: &str) -> Result<Option<String>, StoreError> {
        // An empty secret makes GetSecretValue fail with the same error as a missing
        // one, so ask DescribeSecret first.
        if self.versions(secret_arn).await?.current.is_none() {
            return Ok(None);
        }
        let output = self
            .client
            .get_secret_value()
            .secret_id(secret_arn)
            .version_stage(CURRENT_STAGE)
            .send()
            .await
            .map_err(|err| {
                let not_found = err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception());
                service_error(not_found, &err)
            })?;
        Ok(output.secret_string().map(str::to_owned))
    }

    async fn put_value(
        &self,
        secret_arn: &str,
        version_id: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_secret_value()
            .secret_id(secret_arn)
            .client_request_token(version_id)
            .secret_string(value)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                let service = err.as_service_error();
                if service.is_some_and(|e| e.is_resource_exists_exception()) {
                    return Err(StoreError::TokenConflict);
                }
                let not_found = service.is_some_and(|e| e.is_resource_not_found_exception());
                Err(service_error(not_found, &err))
            }
        }
    }
}

/// SDK errors name the operation and AWS's message; requests (and so secret values)
/// are never part of them.
fn service_error<E: std::error::Error>(not_found: bool, err: &E) -> StoreError {
    if not_found {
        StoreError::NotFound
    } else {
        StoreError::Service(DisplayErrorContext(err).to_string())
    }
}
