//! Template parameters naming the Lambda code assets. `synth` leaves them open (so it
//! needs no build and no AWS account); `deploy` fills them with content-hash keys.

use crate::cfn::{Expr, Parameter, Template};

/// The instruction set every Lambda of the stack runs on: arm64 (Graviton) costs 20 %
/// less per GB-second than x86_64 for the same code, and the Lambdas are pure Rust.
/// <https://aws.amazon.com/lambda/pricing/>
pub const LAMBDA_ARCHITECTURE: &str = "arm64";

/// The Lambda crates whose `bootstrap.zip` the template needs, by parameter id.
pub const ASSET_LAMBDAS: &[(&str, &str)] = &[
    ("SecretsFunctionCodeKey", "airflow-secrets"),
    ("MigrationFunctionCodeKey", "airflow-migration"),
    ("ScalerFunctionCodeKey", "airflow-scaler"),
];

/// `Ref`s to the asset parameters.
pub struct AssetParameters {
    /// Bucket holding the assets (from `airflow-stack bootstrap`).
    pub bucket: Expr,
    /// Key of the secrets Lambda's zip.
    pub secrets_key: Expr,
    /// Key of the migration Lambda's zip.
    pub migration_key: Expr,
}

/// The scaler Lambda's key parameter, declared only by templates with autoscaling or
/// alerts on (an unused parameter is a cfn-lint warning); deploy passes only the asset
/// parameters a template declares.
pub fn add_scaler_key(t: &mut Template) -> Expr {
    let (id, crate_name) = ASSET_LAMBDAS[2];
    t.parameter(id, key_parameter(crate_name))
}

fn key_parameter(crate_name: &str) -> Parameter {
    Parameter {
        type_name: "String",
        description: format!("S3 key of the {crate_name} Lambda zip, named by its SHA-256"),
        allowed_pattern: Some("^assets/[0-9a-f]{64}\\.zip$".into()),
        default: None,
    }
}

pub fn add(t: &mut Template) -> AssetParameters {
    let bucket = t.parameter(
        "AssetsBucket",
        Parameter {
            type_name: "String",
            description:
                "S3 bucket with the Lambda code assets (created by airflow-stack bootstrap)".into(),
            allowed_pattern: Some("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$".into()),
            default: None,
        },
    );
    let key =
        |t: &mut Template, id: &str, crate_name: &str| t.parameter(id, key_parameter(crate_name));
    let secrets_key = key(t, ASSET_LAMBDAS[0].0, ASSET_LAMBDAS[0].1);
    let migration_key = key(t, ASSET_LAMBDAS[1].0, ASSET_LAMBDAS[1].1);
    AssetParameters {
        bucket,
        secrets_key,
        migration_key,
    }
}
