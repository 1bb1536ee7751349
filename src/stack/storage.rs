//! One S3 bucket for the DAG bundle and task logs: encrypted, private, versioned,
//! TLS-only, kept when the stack is deleted.

use super::scope::Scope;
use crate::cfn::aws::iam::{PolicyDocument, Statement};
use crate::cfn::aws::s3::{self, *};
use crate::cfn::aws::Tag;
use crate::cfn::{Attributes, Expr, Handle, Policy};

/// The bucket and what consumers need of it.
pub struct Bucket {
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
    let (t, spec, tags) = (&mut s.t, s.spec, &s.tags);
    let bucket = private_bucket(tags.named(&format!("{}-data", spec.name)));
    let handle = t.add_with(
        "DataBucket",
        bucket,
        Attributes::default().keep_on_delete(Policy::Retain),
    );
    t.add("DataBucketPolicy", tls_only_policy(&handle));
    Bucket { handle }
}

/// A bucket that is encrypted, blocks every kind of public access, disables ACLs, keeps
/// versions (and expires old ones after 30 days).
pub fn private_bucket(tags: Vec<Tag>) -> s3::Bucket {
    s3::Bucket {
        bucket_encryption: BucketEncryption {
            server_side_encryption_configuration: vec![EncryptionRule {
                server_side_encryption_by_default: EncryptionByDefault {
                    sse_algorithm: "AES256",
                },
                bucket_key_enabled: true,
            }],
        },
        public_access_block_configuration: PublicAccessBlockConfiguration {
            block_public_acls: true,
            block_public_policy: true,
            ignore_public_acls: true,
            restrict_public_buckets: true,
        },
        ownership_controls: OwnershipControls {
            rules: vec![OwnershipRule {
                object_ownership: "BucketOwnerEnforced",
            }],
        },
        versioning_configuration: VersioningConfiguration { status: "Enabled" },
        lifecycle_configuration: LifecycleConfiguration {
            rules: vec![LifecycleRule {
                id: "expire-old-versions".into(),
                status: "Enabled",
                noncurrent_version_expiration: NoncurrentVersionExpiration {
                    noncurrent_days: 30,
                },
                abort_incomplete_multipart_upload: AbortIncompleteMultipartUpload {
                    days_after_initiation: 7,
                },
            }],
        },
        tags,
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
        bucket: bucket.r#ref(),
        policy_document: PolicyDocument::new(vec![deny_plain_http.with_any_principal()]),
    }
}
