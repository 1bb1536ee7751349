//! The bootstrap stack: one private bucket for Lambda code assets and large templates,
//! shared by every airflow-stack stack of an account and region (like CDK's
//! CDKToolkit, without the roles).

use super::storage::{private_bucket, tls_only_policy};
use crate::cfn::l1::Tag;
use crate::cfn::{Attributes, Policy, Template, TemplateError};

/// The bootstrap stack's name.
pub const BOOTSTRAP_STACK: &str = "airflow-stack-bootstrap";

/// The bootstrap template: the assets bucket and its TLS-only policy.
pub fn bootstrap_template() -> Result<Template, TemplateError> {
    let mut t =
        Template::new("airflow-stack bootstrap: assets bucket for Lambda code and large templates");
    let tags = vec![Tag::new("airflow-stack:stack", BOOTSTRAP_STACK)];
    let bucket = t.add_with(
        "AssetsBucket",
        // S3's own keys: the bucket is shared by every stack of the account and region
        // and holds only Lambda code and templates, no data or secrets.
        private_bucket(tags, None),
        Attributes::default().keep_on_delete(Policy::Retain),
    );
    t.add("AssetsBucketPolicy", tls_only_policy(&bucket));
    t.output(
        "AssetsBucket",
        "Bucket holding airflow-stack assets",
        bucket.r#ref(),
    );
    t.check()?;
    Ok(t)
}
