//! Template parameters naming the Lambda code assets. `synth` leaves them open (so it
//! needs no build and no AWS account); `deploy` fills them with content-hash keys and
//! the S3 version id of each object it verified.
//!
//! Why a version as well as a key: the key names the zip's SHA-256, and deploy checks
//! the object under it, but anyone who may write the assets bucket could put other bytes
//! under the same key between that check and CloudFormation's read. With
//! `Code.S3ObjectVersion` pinned to the version deploy checked, Lambda gets exactly
//! those bytes; a later object under the key is a new version and is never read. The
//! bootstrap bucket is versioned ([`super::storage::private_bucket`]), so every object
//! has a version id.

use crate::cfn::{Expr, Parameter, Template};

/// The instruction set every Lambda of the stack runs on: arm64 (Graviton) costs 20 %
/// less per GB-second than x86_64 for the same code, and the Lambdas are pure Rust.
/// <https://aws.amazon.com/lambda/pricing/>
pub const LAMBDA_ARCHITECTURE: &str = "arm64";

/// One Lambda crate whose `bootstrap.zip` the template needs, and the two parameters
/// that locate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssetLambda {
    /// The parameter holding the S3 key, `assets/<sha256>.zip`.
    pub key_parameter: &'static str,
    /// The parameter holding the S3 version id of the object deploy verified.
    pub version_parameter: &'static str,
    /// The Lambda crate.
    pub crate_name: &'static str,
}

/// The Lambda crates whose `bootstrap.zip` the template needs, by parameter id.
pub const ASSET_LAMBDAS: &[AssetLambda] = &[
    AssetLambda {
        key_parameter: "SecretsFunctionCodeKey",
        version_parameter: "SecretsFunctionCodeVersion",
        crate_name: "airflow-secrets",
    },
    AssetLambda {
        key_parameter: "MigrationFunctionCodeKey",
        version_parameter: "MigrationFunctionCodeVersion",
        crate_name: "airflow-migration",
    },
    AssetLambda {
        key_parameter: "ScalerFunctionCodeKey",
        version_parameter: "ScalerFunctionCodeVersion",
        crate_name: "airflow-scaler",
    },
    AssetLambda {
        key_parameter: "ImageBuildFunctionCodeKey",
        version_parameter: "ImageBuildFunctionCodeVersion",
        crate_name: "airflow-image-build",
    },
    AssetLambda {
        key_parameter: "StreamsFunctionCodeKey",
        version_parameter: "StreamsFunctionCodeVersion",
        crate_name: "airflow-streams",
    },
];

/// The parameter holding the S3 key of the image build context (`airflow.build`),
/// `assets/<sha256>.zip`; deploy fills it with the zip src/image renders.
pub const IMAGE_CONTEXT_KEY: &str = "ImageContextKey";
/// The parameter holding the S3 version id of the build context deploy verified.
pub const IMAGE_CONTEXT_VERSION: &str = "ImageContextVersion";

/// `Ref`s to one asset's parameters: where a function's code is.
#[derive(Clone, Debug)]
pub struct AssetCode {
    /// `Ref` to the S3 key parameter.
    pub key: Expr,
    /// `Ref` to the S3 object version parameter.
    pub version: Expr,
}

/// `Ref`s to the asset parameters.
pub struct AssetParameters {
    /// Bucket holding the assets (from `airflow-stack bootstrap`).
    pub bucket: Expr,
    /// Key and version of the secrets Lambda's zip.
    pub secrets_key: AssetCode,
    /// Key and version of the migration Lambda's zip.
    pub migration_key: AssetCode,
}

/// The scaler Lambda's parameters, declared only by templates with autoscaling or
/// alerts on (an unused parameter is a cfn-lint warning); deploy passes only the asset
/// parameters a template declares.
pub fn add_scaler_key(t: &mut Template) -> AssetCode {
    add_code(t, &ASSET_LAMBDAS[2])
}

/// The image-build Lambda's parameters, declared only by templates with
/// `airflow.build`.
pub fn add_image_build_key(t: &mut Template) -> AssetCode {
    add_code(t, &ASSET_LAMBDAS[3])
}

/// The streams Lambda's parameters (one zip for the managers, the processor and the
/// watchdog), declared only by templates with `streams:`.
pub fn add_streams_key(t: &mut Template) -> AssetCode {
    add_code(t, &ASSET_LAMBDAS[4])
}

/// The build context's key and version parameters, declared only by templates with
/// `airflow.build`. The image's tag (a literal in the template) is the same SHA-256 as
/// the key, so `synth` shows a change of requirements or plugins as a change.
pub fn add_image_context(t: &mut Template) -> AssetCode {
    let key = t.parameter(
        IMAGE_CONTEXT_KEY,
        Parameter {
            type_name: "String",
            description: "S3 key of the Airflow image's build context zip, named by its SHA-256"
                .into(),
            allowed_pattern: Some("^assets/[0-9a-f]{64}\\.zip$".into()),
            default: None,
        },
    );
    let version = t.parameter(
        IMAGE_CONTEXT_VERSION,
        Parameter {
            type_name: "String",
            description: "S3 version id of the build context zip that deploy verified".into(),
            allowed_pattern: Some("^\\S{1,1024}$".into()),
            default: None,
        },
    );
    AssetCode { key, version }
}

/// Declares an asset's key and version parameters.
fn add_code(t: &mut Template, asset: &AssetLambda) -> AssetCode {
    let key = t.parameter(
        asset.key_parameter,
        Parameter {
            type_name: "String",
            description: format!(
                "S3 key of the {} Lambda zip, named by its SHA-256",
                asset.crate_name
            ),
            allowed_pattern: Some("^assets/[0-9a-f]{64}\\.zip$".into()),
            default: None,
        },
    );
    let version = t.parameter(
        asset.version_parameter,
        Parameter {
            type_name: "String",
            description: format!(
                "S3 version id of the {} Lambda zip that deploy verified",
                asset.crate_name
            ),
            // S3 version ids are opaque, URL-ready strings of at most 1,024 bytes.
            // Deploy refuses "null" (an object written while versioning was off, which
            // a later write can replace in place) before it gets here.
            allowed_pattern: Some("^\\S{1,1024}$".into()),
            default: None,
        },
    );
    AssetCode { key, version }
}

/// Declares the bucket parameter and the secrets and migration Lambdas' asset
/// parameters.
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
    let secrets_key = add_code(t, &ASSET_LAMBDAS[0]);
    let migration_key = add_code(t, &ASSET_LAMBDAS[1]);
    AssetParameters {
        bucket,
        secrets_key,
        migration_key,
    }
}
