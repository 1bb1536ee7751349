//! Secrets Manager secrets. They are created empty; the secrets custom resource writes
//! their values, so no value ever passes through the template.

use serde::Serialize;

use super::{resource, Tag};
use crate::cfn::Expr;

/// `AWS::SecretsManager::Secret` with no `SecretString` and no `GenerateSecretString`:
/// an empty secret whose first version the custom resource writes.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Secret {
    pub name: Expr,
    pub description: String,
    pub tags: Vec<Tag>,
}
resource!(Secret, "AWS::SecretsManager::Secret");
