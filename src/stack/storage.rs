//! One S3 bucket for the DAG bundle and task logs: encrypted (SSE-S3, or SSE-KMS with the
//! stack's customer-managed key), private, versioned, TLS-only, kept when the stack is
//! deleted.

use super::scope::Scope;
use crate::cfn::l1::s3::bucket::{
    AbortIncompleteMultipartUpload, BucketEncryption, LifecycleConfiguration,
    NoncurrentVersionExpiration, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration, Rule, RuleStatus, ServerSideEncryptionByDefault,
    ServerSideEncryptionRule, SseAlgorithm, VersioningConfiguration, VersioningConfigurationStatus,
};
use crate::cfn::l1::s3::{self, BucketPolicy};
use crate::cfn::l1::{PolicyDocument, Statement, Tag};
use crate::cfn::{Attributes, Expr, Handle, Policy};

/// The bucket and what consumers need of it.
pub struct Bucket {
    /// The bucket.
    pub handle: Handle<s3::Bucket>,
}

impl Bucket {
    /// `arn:…:bucket/prefix/*` for object-level permissions.
    pub fn objects_under(&self, prefix: &str) -> Expr {
        Expr::concat(vec![self.handle.arn(), Expr::lit(format!("/{prefix}/*"))])
    }
}

/// Adds the data bucket and its TLS-only policy.
pub fn add(s: &mut Scope) -> Bucket {
    let key = s.kms_key_arn();
    let (t, spec, tags) = (&mut s.t, s.spec, &s.tags);
    let bucket = private_bucket(tags.named(&format!("{}-data", spec.name)), key);
    let handle = t.add_with(
        "DataBucket",
        bucket,
        Attributes::default().keep_on_delete(Policy::Retain),
    );
    t.add("DataBucketPolicy", tls_only_policy(&handle));
    Bucket { handle }
}

/// A bucket that is encrypted, blocks every kind of public access, disables ACLs, keeps
/// versions (and expires old ones after 30 days). Encrypted with S3's own keys
/// (SSE-S3), or with `kms_key` (SSE-KMS). The S3 Bucket Key is on either way: with
/// SSE-KMS it makes S3 ask KMS for a bucket-level key instead of one data key per
/// object, which cuts the KMS requests (and their cost) by up to 99 %.
pub fn private_bucket(tags: Vec<Tag>, kms_key: Option<Expr>) -> s3::Bucket {
    let by_default = match kms_key {
        None => ServerSideEncryptionByDefault {
            sse_algorithm: Some(SseAlgorithm::Aes256),
            ..ServerSideEncryptionByDefault::default()
        },
        Some(key) => ServerSideEncryptionByDefault {
            sse_algorithm: Some(SseAlgorithm::AwsKms),
            kms_master_key_id: Some(key),
        },
    };
    s3::Bucket {
        bucket_encryption: Some(BucketEncryption {
            server_side_encryption_configuration: vec![ServerSideEncryptionRule {
                server_side_encryption_by_default: Some(by_default),
                bucket_key_enabled: Some(true),
                ..ServerSideEncryptionRule::default()
            }],
        }),
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(true),
            block_public_policy: Some(true),
            ignore_public_acls: Some(true),
            restrict_public_buckets: Some(true),
        }),
        ownership_controls: Some(OwnershipControls {
            rules: vec![OwnershipControlsRule {
                object_ownership: Some(ObjectOwnership::BucketOwnerEnforced),
            }],
        }),
        versioning_configuration: Some(VersioningConfiguration {
            status: Some(VersioningConfigurationStatus::Enabled),
        }),
        lifecycle_configuration: Some(LifecycleConfiguration {
            rules: vec![Rule {
                id: Some("expire-old-versions".into()),
                status: Some(RuleStatus::Enabled),
                noncurrent_version_expiration: Some(NoncurrentVersionExpiration {
                    noncurrent_days: Some(30),
                    ..NoncurrentVersionExpiration::default()
                }),
                abort_incomplete_multipart_upload: Some(AbortIncompleteMultipartUpload {
                    days_after_initiation: Some(7),
                }),
                ..Rule::default()
            }],
            ..LifecycleConfiguration::default()
        }),
        tags,
        ..s3::Bucket::default()
    }
}

/// A bucket policy denying every request that does not use TLS.
pub fn tls_only_policy(bucket: &Handle<s3::Bucket>) -> BucketPolicy {
    let deny_plain_http = Statement {
        effect: "Deny",
        principal: None,
        action: vec!["s3:*".into()],
        resource: Some(vec![
            bucket.arn(),
            Expr::concat(vec![bucket.arn(), Expr::lit("/*")]),
        ]),
        condition: Some(serde_json::json!({"Bool": {"aws:SecureTransport": "false"}})),
    };
    BucketPolicy {
        bucket: Some(bucket.r#ref()),
        policy_document: Some(PolicyDocument::new(vec![
            deny_plain_http.with_any_principal()
        ])),
    }
}
