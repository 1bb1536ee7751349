//! The stack's customer-managed KMS key, when the stack file asks for one
//! (`encryption.kms_key`): created here (`create`) or named by ARN. The key encrypts
//! every log group, every secret and the data bucket; the constructs of those read it
//! from the [`Scope`](super::scope::Scope). Who may use it follows from what each role
//! already does: [`key_use`] derives the KMS grants from a role's own statements, so a
//! role that reads no secret and no object gets none.
//!
//! With `aws-managed` (the default) nothing is added and the template is unchanged.

use serde_json::json;

use crate::cfn::l1::kms::Key;
use crate::cfn::l1::{PolicyDocument, Principal, Statement, Tag};
use crate::cfn::{Attributes, Expr, Policy, Pseudo, Template};
use crate::spec::{KmsKey, Spec};

/// Logical id of the key `create` makes.
pub const KEY_ID: &str = "EncryptionKey";

/// The customer-managed key of the stack.
#[derive(Clone, Debug)]
pub struct StackKey {
    /// The key's ARN (its `Fn::GetAtt Arn`, or the ARN from the stack file).
    pub arn: Expr,
    /// The stack's region, for the `kms:ViaService` conditions.
    region: String,
}

/// Adds the key for `encryption.kms_key: create`; returns the key to encrypt with, or
/// `None` for `aws-managed`.
pub fn add(t: &mut Template, spec: &Spec, tags: Vec<Tag>) -> Option<StackKey> {
    let arn = match spec.encryption.key() {
        KmsKey::AwsManaged => return None,
        KmsKey::Existing(arn) => Expr::lit(arn),
        KmsKey::Create => {
            let key = Key {
                description: Some(Expr::lit(format!(
                    "airflow-stack {}: log groups, secrets and the data bucket",
                    spec.name
                ))),
                enable_key_rotation: Some(true),
                key_policy: Some(key_policy(spec)),
                tags,
                ..Key::default()
            };
            // Retained: the secrets (the Fernet key among them) outlive the stack, and
            // without the key they cannot be read (DESIGN.md, 6).
            t.add_with(
                KEY_ID,
                key,
                Attributes::default().keep_on_delete(Policy::Retain),
            )
            .arn()
        }
    };
    Some(StackKey {
        arn,
        region: spec.region.to_string(),
    })
}

/// The created key's policy:
/// - the account may use and manage it through IAM policies (the default key policy's
///   statement; without it no IAM grant below would take effect, and the key could
///   become unmanageable);
/// - CloudWatch Logs of the stack's region may use it for this stack's log groups
///   only: the encryption context CloudWatch Logs sends names the log group
///   (`kms:EncryptionContext:aws:logs:arn`), as the CloudWatch Logs user guide's key
///   policy for "Encrypt log data in CloudWatch Logs using AWS KMS" has it.
fn key_policy(spec: &Spec) -> PolicyDocument {
    let account = Expr::concat(vec![
        Expr::lit("arn:"),
        Expr::Pseudo(Pseudo::Partition),
        Expr::lit(":iam::"),
        Expr::Pseudo(Pseudo::AccountId),
        Expr::lit(":root"),
    ]);
    let account_statement = Statement {
        principal: Some(Principal::Aws(account)),
        ..Statement::allow(&["kms:*"], vec![Expr::lit("*")])
    };
    let log_groups = Expr::arn(
        "logs",
        Expr::lit(format!("log-group:/airflow-stack/{}/*", spec.name)),
    );
    let logs_statement = Statement {
        principal: Some(Principal::Service(format!(
            "logs.{}.amazonaws.com",
            spec.region
        ))),
        condition: Some(json!({
            "ArnLike": { "kms:EncryptionContext:aws:logs:arn": log_groups }
        })),
        ..Statement::allow(
            &[
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            vec![Expr::lit("*")],
        )
    };
    PolicyDocument::new(vec![account_statement, logs_statement])
}

/// Services that encrypt with the stack's key on a caller's behalf, and the actions
/// that read or write data there: reading needs `kms:Decrypt`; writing needs
/// `kms:GenerateDataKey` (a new data key per secret version or object) and
/// `kms:Decrypt` (S3 multipart uploads; Secrets Manager reads the current version).
const DATA_ACTIONS: &[(&str, &[&str], &[&str])] = &[
    (
        "secretsmanager",
        &["secretsmanager:GetSecretValue"],
        &["secretsmanager:PutSecretValue"],
    ),
    (
        "s3",
        &["s3:GetObject", "s3:GetObjectVersion"],
        &["s3:PutObject"],
    ),
];

/// The KMS grants a role needs for its own statements: for each service above where
/// the role reads or writes data, the key use that implies, through that service only
/// (`kms:ViaService`). Empty when the role touches no encrypted data.
pub fn key_use(key: &StackKey, statements: &[Statement]) -> Vec<Statement> {
    let allows = |action: &str| {
        statements
            .iter()
            .any(|s| s.effect == "Allow" && s.action.iter().any(|a| a == action))
    };
    DATA_ACTIONS
        .iter()
        .filter_map(|(service, reads, writes)| {
            let writes = writes.iter().any(|a| allows(a));
            let reads = writes || reads.iter().any(|a| allows(a));
            let actions: &[&str] = match (reads, writes) {
                (_, true) => &["kms:Decrypt", "kms:GenerateDataKey"],
                (true, false) => &["kms:Decrypt"],
                (false, false) => return None,
            };
            Some(Statement {
                condition: Some(json!({
                    "StringEquals": {
                        "kms:ViaService": format!("{service}.{}.amazonaws.com", key.region)
                    }
                })),
                ..Statement::allow(actions, vec![key.arn.clone()])
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StackKey {
        StackKey {
            arn: Expr::lit("arn:aws:kms:eu-west-1:123456789012:key/k"),
            region: "eu-west-1".into(),
        }
    }

    fn grants(statements: &[Statement]) -> serde_json::Value {
        serde_json::to_value(key_use(&key(), statements)).unwrap()
    }

    #[test]
    fn a_reader_of_secrets_may_decrypt_through_secrets_manager_only() {
        let read = Statement::allow(&["secretsmanager:GetSecretValue"], vec![Expr::lit("s")]);
        assert_eq!(
            grants(&[read]),
            json!([{
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": ["arn:aws:kms:eu-west-1:123456789012:key/k"],
                "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}
            }])
        );
    }

    #[test]
    fn a_writer_also_generates_data_keys_and_each_service_gets_its_own_grant() {
        let statements = [
            Statement::allow(&["secretsmanager:PutSecretValue"], vec![Expr::lit("s")]),
            Statement::allow(&["s3:GetObject"], vec![Expr::lit("b/*")]),
        ];
        let got = grants(&statements);
        assert_eq!(
            got[0]["Action"],
            json!(["kms:Decrypt", "kms:GenerateDataKey"])
        );
        assert_eq!(got[1]["Action"], json!(["kms:Decrypt"]));
        assert_eq!(
            got[1]["Condition"]["StringEquals"]["kms:ViaService"],
            "s3.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn a_role_without_data_gets_nothing() {
        let statements = [Statement::allow(&["ecs:RunTask"], vec![Expr::lit("*")])];
        assert!(key_use(&key(), &statements).is_empty());
    }
}
