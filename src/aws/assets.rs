//! Lambda code assets and large templates in the bootstrap bucket, named by content
//! hash: an unchanged zip is not uploaded again and keeps its key and its object
//! version, so CloudFormation sees no change; a changed one gets a new key and forces a
//! Lambda update. Each function's code is pinned to the object version deploy verified
//! (`S3ObjectVersion`), so bytes written under the key after the check never run.
//!
//! Where the zips come from, first match wins:
//! 1. `--assets-dir` or `$AIRFLOW_STACK_ASSETS_DIR`: `<dir>/<crate>/bootstrap.zip`.
//! 2. The zips compiled into this binary (cargo feature `bundled-lambdas`, build.rs).
//! 3. `<cargo target dir>/lambda/<architecture>/<crate>/bootstrap.zip`, where
//!    lambdas/build.sh writes them.
//!
//! Zips missing from the folder of 1 or 3 are built there by lambdas/build.sh when this
//! binary runs from a checkout (see [`checkout`]); otherwise the error says how to get
//! them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::anyhow;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::describe;
use crate::stack::{AssetLambda, ASSET_LAMBDAS};

/// Lambda zips compiled into the binary: `(architecture, crate, zip)`. Empty unless the
/// cargo feature `bundled-lambdas` is on (build.rs writes this file).
mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_lambdas.rs"));
}

/// The architecture a function runs on when its `Architectures` is left out.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-lambda-function.html#cfn-lambda-function-architectures>
const DEFAULT_ARCHITECTURE: &str = "x86_64";

/// A Lambda zip, ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// The template parameter that takes its key.
    pub parameter: &'static str,
    /// The template parameter that takes the version id of its object.
    pub version_parameter: &'static str,
    /// The Lambda crate it comes from.
    pub crate_name: &'static str,
    /// Where it comes from, for messages: its path, or `bundled`.
    pub origin: String,
    /// The zip itself.
    pub bytes: Cow<'static, [u8]>,
    /// SHA-256 of the zip, hex.
    pub sha256: String,
}

impl Asset {
    fn new(lambda: &AssetLambda, origin: String, bytes: Cow<'static, [u8]>) -> Asset {
        Asset {
            parameter: lambda.key_parameter,
            version_parameter: lambda.version_parameter,
            crate_name: lambda.crate_name,
            origin,
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes,
        }
    }

    /// The image build context of `airflow.build` (src/image) as an asset: uploaded,
    /// verified and pinned to its object version like the Lambda zips, so CodeBuild
    /// builds exactly the bytes deploy checked.
    pub fn image_context(context: &crate::image::BuildContext, stack_file: &Path) -> Asset {
        Asset {
            parameter: crate::stack::IMAGE_CONTEXT_KEY,
            version_parameter: crate::stack::IMAGE_CONTEXT_VERSION,
            crate_name: "image build context",
            origin: format!("the image build of {}", stack_file.display()),
            bytes: Cow::Owned(context.zip.clone()),
            sha256: context.sha256.clone(),
        }
    }

    /// `assets/<sha256>.zip`
    pub fn key(&self) -> String {
        format!("assets/{}.zip", self.sha256)
    }
}

/// A Lambda zip a template needs: the asset parameter it declares, the crate, and the
/// architecture of the function whose `Code.S3Key` refers to the parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// The Lambda crate and its parameters.
    pub lambda: AssetLambda,
    /// `arm64` or `x86_64`.
    pub architecture: String,
}

/// The zips a rendered template needs: every asset parameter it declares (the scaler's
/// only with autoscaling or alerts on), each for the architecture of its function, so
/// the zip always matches the function that runs it.
pub fn needed(template: &Value) -> Result<Vec<Needed>, String> {
    let functions: Vec<&Value> = template["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|r| r.values())
        .filter(|r| r["Type"] == "AWS::Lambda::Function")
        .collect();
    let mut out = Vec::new();
    for lambda in ASSET_LAMBDAS.iter().copied() {
        let parameter = lambda.key_parameter;
        if template["Parameters"].get(parameter).is_none() {
            continue;
        }
        let reference = serde_json::json!({ "Ref": parameter });
        let users: Vec<&&Value> = functions
            .iter()
            .filter(|f| f["Properties"]["Code"]["S3Key"] == reference)
            .collect();
        // The version deploy verified must be the one Lambda reads: a function that names
        // the key without pinning the version would run whatever the key holds then.
        let pinned = serde_json::json!({ "Ref": lambda.version_parameter });
        if users
            .iter()
            .any(|f| f["Properties"]["Code"]["S3ObjectVersion"] != pinned)
        {
            return Err(format!(
                "a Lambda function uses {parameter} as Code.S3Key without Code.S3ObjectVersion {{\"Ref\": \"{}\"}}; its code would not be the object deploy verifies",
                lambda.version_parameter
            ));
        }
        let mut architectures: Vec<String> = users
            .iter()
            .map(|f| match &f["Properties"]["Architectures"][0] {
                Value::String(a) => a.clone(),
                _ => DEFAULT_ARCHITECTURE.to_string(),
            })
            .collect();
        architectures.sort();
        architectures.dedup();
        let architecture = match architectures.as_slice() {
            [one] => one.clone(),
            [] => return Err(format!("the template declares {parameter} but no Lambda function uses it as Code.S3Key")),
            many => return Err(format!("the functions using {parameter} run on different architectures ({}); one zip cannot serve both", many.join(", "))),
        };
        out.push(Needed {
            lambda,
            architecture,
        });
    }
    Ok(out)
}

/// The checkout this binary was built from, if it is still there: the crate folder
/// baked in at compile time (`CARGO_MANIFEST_DIR`) with the workspace's Lambda crates
/// and lambdas/build.sh next to it. A binary installed from crates.io has none (the
/// package holds no `lambdas/`), so it needs the zips bundled or given.
pub fn checkout() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let complete = dir.join("Cargo.toml").is_file()
        && dir.join("lambdas/build.sh").is_file()
        && ASSET_LAMBDAS.iter().all(|a| {
            dir.join("lambdas")
                .join(lambda_folder(a.crate_name))
                .join("Cargo.toml")
                .is_file()
        });
    complete.then(|| dir.to_path_buf())
}

/// `airflow-secrets` lives in `lambdas/secrets`.
fn lambda_folder(crate_name: &str) -> &str {
    crate_name.strip_prefix("airflow-").unwrap_or(crate_name)
}

/// `<cargo target dir>/lambda/<architecture>`: `$CARGO_TARGET_DIR`, else the
/// checkout's `target/`. None for a binary outside a checkout without that variable.
pub fn default_dir(architecture: &str) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| checkout().map(|c| c.join("target")))?;
    Some(target.join("lambda").join(architecture))
}

/// Bundled zips: `(architecture, crate, zip)`.
type Bundle = [(&'static str, &'static str, &'static [u8])];

/// The zips of `bundle` (this binary's: `bundled::ZIPS`) for these needs, if it holds
/// all of them.
fn from_bundle(needs: &[Needed], bundle: &'static Bundle) -> Option<Vec<Asset>> {
    needs
        .iter()
        .map(|n| {
            bundle
                .iter()
                .find(|(arch, name, _)| *arch == n.architecture && *name == n.lambda.crate_name)
                .map(|(arch, _, zip)| {
                    Asset::new(&n.lambda, format!("bundled ({arch})"), Cow::Borrowed(*zip))
                })
        })
        .collect()
}

/// The zip of `need` in `dir`, if it is there.
fn from_dir(dir: &Path, need: &Needed) -> Result<Option<Asset>, String> {
    let path = dir.join(need.lambda.crate_name).join("bootstrap.zip");
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(Asset::new(
            &need.lambda,
            path.display().to_string(),
            Cow::Owned(bytes),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Finds (or, from a checkout, builds) every zip the template needs, in the order of
/// the module documentation; `explicit` is `--assets-dir` (or its variable
/// `$AIRFLOW_STACK_ASSETS_DIR`). Messages about building go to stderr.
pub fn resolve(template: &Value, explicit: Option<&Path>) -> anyhow::Result<Vec<Asset>> {
    let needs = needed(template).map_err(|e| anyhow!(e))?;
    let explicit = explicit.map(Path::to_path_buf);
    if explicit.is_none() {
        if let Some(assets) = from_bundle(&needs, bundled::ZIPS) {
            return Ok(assets);
        }
    }
    if let (Some(dir), [first, rest @ ..]) = (&explicit, needs.as_slice()) {
        if rest.iter().any(|n| n.architecture != first.architecture) {
            return Err(anyhow!(
                "the template's Lambdas run on different architectures; one --assets-dir ({}) cannot hold both",
                dir.display()
            ));
        }
    }
    let mut assets = Vec::new();
    // One folder (and one build) per architecture.
    let mut by_dir: BTreeMap<(PathBuf, String), Vec<&Needed>> = BTreeMap::new();
    for need in &needs {
        let Some(dir) = explicit.clone().or_else(|| default_dir(&need.architecture)) else {
            return Err(anyhow!(not_found(&needs, None)));
        };
        by_dir
            .entry((dir, need.architecture.clone()))
            .or_default()
            .push(need);
    }
    for ((dir, architecture), group) in by_dir {
        let mut missing = Vec::new();
        for need in &group {
            match from_dir(&dir, need).map_err(|e| anyhow!(e))? {
                Some(asset) => assets.push(asset),
                None => missing.push(*need),
            }
        }
        if missing.is_empty() {
            continue;
        }
        let Some(checkout) = checkout() else {
            return Err(anyhow!(not_found(
                &missing.into_iter().cloned().collect::<Vec<_>>(),
                Some(&dir)
            )));
        };
        let crates: Vec<&str> = missing.iter().map(|n| n.lambda.crate_name).collect();
        // The script runs in the checkout: a relative folder must still mean this one.
        let dir = std::path::absolute(&dir)
            .map_err(|e| anyhow!("cannot resolve {}: {e}", dir.display()))?;
        build(&checkout, &architecture, &dir, &crates)?;
        for need in missing {
            let asset = from_dir(&dir, need)
                .map_err(|e| anyhow!(e))?
                .ok_or_else(|| {
                    anyhow!(
                        "lambdas/build.sh succeeded but wrote no {}/{}/bootstrap.zip",
                        dir.display(),
                        need.lambda.crate_name
                    )
                })?;
            assets.push(asset);
        }
    }
    assets.sort_by_key(|a| {
        ASSET_LAMBDAS
            .iter()
            .position(|l| l.key_parameter == a.parameter)
    });
    Ok(assets)
}

/// Runs the checkout's lambdas/build.sh for the missing zips; its progress (cargo's
/// `Compiling` lines, sizes, the glibc check) goes to stderr as it happens.
fn build(checkout: &Path, architecture: &str, out: &Path, crates: &[&str]) -> anyhow::Result<()> {
    eprintln!(
        "Lambda zips missing in {}: building {} for {architecture} from the checkout at {} (lambdas/build.sh; the first build compiles the AWS SDK and takes several minutes)",
        out.display(),
        crates.join(", "),
        checkout.display()
    );
    let started = Instant::now();
    let status = Command::new("bash")
        .arg(checkout.join("lambdas/build.sh"))
        .args(["--arch", architecture, "--out"])
        .arg(out)
        .args(crates)
        .current_dir(checkout)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| {
            anyhow!(
                "cannot run bash {}: {e}",
                checkout.join("lambdas/build.sh").display()
            )
        })?;
    if !status.success() {
        return Err(anyhow!(
            "building the Lambda zips failed (lambdas/build.sh: {status}); the reason is printed above"
        ));
    }
    eprintln!(
        "Lambda zips built in {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What to do when zips are missing and this binary cannot build them.
fn not_found(missing: &[Needed], dir: Option<&Path>) -> String {
    let names: Vec<String> = missing
        .iter()
        .map(|n| format!("{} ({})", n.lambda.crate_name, n.architecture))
        .collect();
    let place = match dir {
        Some(dir) => format!("in {}", dir.display()),
        None => "(no --assets-dir, no $CARGO_TARGET_DIR, not run from a checkout)".to_string(),
    };
    format!(
        "Lambda zips not found {place}: {}\nthis airflow-stack carries no bundled zips for them and does not run from a checkout it could build them in; either\n  - pass --assets-dir DIR holding <crate>/bootstrap.zip (built by `bash lambdas/build.sh --arch ARCH --out DIR` in a clone of airflow-stack), or\n  - install a build with the zips inside: in a clone, `bash lambdas/build.sh --arch ARCH`, then `AIRFLOW_STACK_BUNDLE_DIR=$PWD/target/lambda/ARCH cargo install --path . --features bundled-lambdas`",
        names.join(", ")
    )
}

/// The S3 version id of each asset's verified object, by the asset's key parameter.
pub type Versions = BTreeMap<&'static str, String>;

/// The template parameters naming the bucket, each asset's key and, for the assets in
/// `versions`, the version id of the object deploy verified. An asset without a version
/// (not uploaded yet) leaves its version parameter out, so the parameters differ from a
/// deployed stack's until [`upload_missing`] has put it there.
pub fn parameters(bucket: &str, assets: &[Asset], versions: &Versions) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    for a in assets {
        p.insert(a.parameter.to_string(), a.key());
        if let Some(version) = versions.get(a.parameter) {
            p.insert(a.version_parameter.to_string(), version.clone());
        }
    }
    p.insert("AssetsBucket".into(), bucket.to_string());
    p
}

async fn exists(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

/// What the bucket holds under an asset's key.
enum Stored {
    /// Nothing: upload it.
    Missing,
    /// Exactly this asset's bytes, as the object version with this id.
    Same(String),
    /// Other bytes, with this SHA-256 (hex).
    Different(String),
}

/// Compares the object under the asset's key with the asset. The key names the zip's
/// SHA-256, but a key is only a name: anyone who may write the bucket could put other
/// code under it (the hash of a reproducible build is predictable), and the function
/// that reads every secret of the stack would run it. S3's stored SHA-256 checksum is
/// compared when the object has one (uploads by this CLI do); otherwise that very
/// version is read and hashed. The version id returned is the one compared: the
/// function is pinned to it.
async fn stored(s3: &aws_sdk_s3::Client, bucket: &str, asset: &Asset) -> anyhow::Result<Stored> {
    use aws_sdk_s3::types::ChecksumMode;
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(asset.key())
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await;
    let head = match head {
        Ok(head) => head,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
            return Ok(Stored::Missing)
        }
        Err(e) => {
            return Err(anyhow!(
                "cannot check s3://{bucket}/{}: {}",
                asset.key(),
                describe(&e)
            ))
        }
    };
    let version = pinnable_version(bucket, &asset.key(), head.version_id())?;
    let sha256 = match head.checksum_sha256() {
        Some(stored) => hex_of_base64(stored),
        None => {
            let object = s3
                .get_object()
                .bucket(bucket)
                .key(asset.key())
                .version_id(&version)
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "cannot read s3://{bucket}/{}: {}",
                        asset.key(),
                        describe(&e)
                    )
                })?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|e| anyhow!("cannot read s3://{bucket}/{}: {e}", asset.key()))?
                .into_bytes();
            hex::encode(Sha256::digest(&bytes))
        }
    };
    Ok(if sha256 == asset.sha256 {
        Stored::Same(version)
    } else {
        Stored::Different(sha256)
    })
}

/// The version id S3 returned for an asset object, if it is one a function can be
/// pinned to. Without one (or with `null`, an object written while versioning was off
/// or suspended) a later write would replace the object in place, so the pin would
/// mean nothing: the assets bucket must be versioned, as `airflow-stack bootstrap`
/// makes it.
fn pinnable_version(bucket: &str, key: &str, version: Option<&str>) -> anyhow::Result<String> {
    match version {
        Some(v) if !v.is_empty() && v != "null" => Ok(v.to_string()),
        _ => Err(anyhow!(
            "s3://{bucket}/{key} has no object version: the assets bucket is not versioned, \
             so the Lambda code cannot be pinned to the object deploy checks. Turn on \
             versioning (`airflow-stack bootstrap` does; or `aws s3api put-bucket-versioning \
             --bucket {bucket} --versioning-configuration Status=Enabled`), delete \
             s3://{bucket}/{key} and deploy again"
        )),
    }
}

/// A base64 checksum as S3 returns it, in hex; an undecodable one as itself (it then
/// matches nothing).
fn hex_of_base64(value: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map(hex::encode)
        .unwrap_or_else(|_| value.to_owned())
}

/// The asset's SHA-256 as S3's `x-amz-checksum-sha256` takes it (base64).
fn checksum_sha256(asset: &Asset) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&asset.bytes))
}

/// The error for an asset whose key holds other bytes.
fn replaced(bucket: &str, asset: &Asset, found: &str) -> anyhow::Error {
    anyhow!(
        "s3://{bucket}/{key} holds other code than {origin}: its SHA-256 is {found}, \
         the key promises {want}. Someone with write access to the assets bucket \
         replaced it; deploying would run that code with the stack's secrets. \
         Find out who changed it (the bucket is versioned), then delete the object \
         and deploy again",
        key = asset.key(),
        origin = asset.origin,
        want = asset.sha256,
    )
}

/// Checks the assets already in the bucket without writing anything: the version id of
/// each one whose object holds its bytes. Missing ones are left out (they are uploaded
/// later); one holding other bytes is an error: the bucket was written by someone else, and
/// deploying would run their code.
pub async fn verify(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    assets: &[Asset],
) -> anyhow::Result<Versions> {
    let mut versions = Versions::new();
    for asset in assets {
        match stored(s3, bucket, asset).await? {
            Stored::Same(version) => {
                versions.insert(asset.parameter, version);
            }
            Stored::Different(found) => return Err(replaced(bucket, asset, &found)),
            Stored::Missing => {}
        }
    }
    Ok(versions)
}

/// Uploads the assets [`verify`] found missing (`verified` holds the others), each with
/// its SHA-256 checksum: S3 refuses the upload if the bytes it received differ. Returns
/// the version id of every asset's object: PutObject's for an upload, the verified one
/// for the rest, which the function's code reference pins, so the object cannot be
/// swapped between the check and CloudFormation's read.
pub async fn upload_missing(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    assets: &[Asset],
    verified: &Versions,
) -> anyhow::Result<Versions> {
    let mut versions = verified.clone();
    for asset in assets {
        if versions.contains_key(asset.parameter) {
            continue;
        }
        let put = s3
            .put_object()
            .bucket(bucket)
            .key(asset.key())
            .checksum_sha256(checksum_sha256(asset))
            .body(asset.bytes.to_vec().into())
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot upload {} to s3://{bucket}: {}",
                    asset.origin,
                    describe(&e)
                )
            })?;
        // S3 accepted exactly these bytes (the checksum), as this version.
        let version = pinnable_version(bucket, &asset.key(), put.version_id())?;
        versions.insert(asset.parameter, version);
    }
    Ok(versions)
}

/// Uploads a template body as `templates/<sha256>.json` and returns its key.
pub async fn upload_template(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    body: &str,
) -> anyhow::Result<String> {
    let key = format!(
        "templates/{}.json",
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    if !exists(s3, bucket, &key).await {
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .body(body.as_bytes().to_vec().into())
            .content_type("application/json")
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot upload the template to s3://{bucket}: {}",
                    describe(&e)
                )
            })?;
    }
    Ok(key)
}

/// The URL CloudFormation reads an uploaded template from: path style under an
/// overridden endpoint, the regional virtual-host form otherwise.
pub fn template_url(endpoint: Option<&str>, bucket: &str, region: &str, key: &str) -> String {
    match endpoint {
        Some(e) => format!("{}/{bucket}/{key}", e.trim_end_matches('/')),
        None => format!("https://{bucket}.s3.{region}.amazonaws.com/{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A template with the secrets and migration functions on `arch` (None: no
    /// `Architectures`, so x86_64).
    fn template(arch: Option<&str>) -> Value {
        let function = |key: &str| {
            let version = key.replace("CodeKey", "CodeVersion");
            let mut props = json!({ "Code": { "S3Bucket": { "Ref": "AssetsBucket" }, "S3Key": { "Ref": key }, "S3ObjectVersion": { "Ref": version } } });
            if let Some(a) = arch {
                props["Architectures"] = json!([a]);
            }
            json!({ "Type": "AWS::Lambda::Function", "Properties": props })
        };
        json!({
            "Parameters": { "AssetsBucket": {}, "SecretsFunctionCodeKey": {}, "MigrationFunctionCodeKey": {} },
            "Resources": {
                "SecretsFunction": function("SecretsFunctionCodeKey"),
                "MigrationFunction": function("MigrationFunctionCodeKey"),
            }
        })
    }

    #[test]
    fn each_zip_takes_the_architecture_of_its_function() {
        let needs = needed(&template(Some("arm64"))).unwrap();
        let got: Vec<(&str, &str)> = needs
            .iter()
            .map(|n| (n.lambda.crate_name, n.architecture.as_str()))
            .collect();
        // The scaler's parameter is not declared: not needed.
        assert_eq!(
            got,
            [("airflow-secrets", "arm64"), ("airflow-migration", "arm64")]
        );
        let needs = needed(&template(None)).unwrap();
        assert!(
            needs.iter().all(|n| n.architecture == "x86_64"),
            "{needs:?}"
        );
    }

    #[test]
    fn a_function_that_does_not_pin_the_verified_version_is_an_error() {
        let mut t = template(Some("arm64"));
        let code = &mut t["Resources"]["MigrationFunction"]["Properties"]["Code"];
        code.as_object_mut().unwrap().remove("S3ObjectVersion");
        let err = needed(&t).unwrap_err();
        assert!(
            err.contains("MigrationFunctionCodeKey")
                && err.contains("MigrationFunctionCodeVersion"),
            "{err}"
        );
    }

    #[test]
    fn a_parameter_no_function_uses_is_an_error() {
        let mut t = template(Some("arm64"));
        t["Resources"]
            .as_object_mut()
            .unwrap()
            .remove("SecretsFunction");
        let err = needed(&t).unwrap_err();
        assert!(err.contains("SecretsFunctionCodeKey"), "{err}");
    }

    #[test]
    fn zips_are_found_hashed_and_keyed_by_content() {
        let dir = tempfile::tempdir().unwrap();
        for AssetLambda { crate_name, .. } in ASSET_LAMBDAS {
            std::fs::create_dir_all(dir.path().join(crate_name)).unwrap();
            std::fs::write(
                dir.path().join(crate_name).join("bootstrap.zip"),
                crate_name.as_bytes(),
            )
            .unwrap();
        }
        let assets = resolve(&template(Some("arm64")), Some(dir.path())).unwrap();
        assert_eq!(assets.len(), 2);
        let secrets = &assets[0];
        assert_eq!(secrets.crate_name, "airflow-secrets");
        assert_eq!(
            secrets.sha256,
            hex::encode(Sha256::digest(b"airflow-secrets"))
        );
        assert_eq!(secrets.key(), format!("assets/{}.zip", secrets.sha256));
        let versions = Versions::from([("SecretsFunctionCodeKey", "v1".to_string())]);
        let params = parameters("bkt", &assets, &versions);
        assert_eq!(params["AssetsBucket"], "bkt");
        assert_eq!(params["SecretsFunctionCodeKey"], secrets.key());
        assert_eq!(params["SecretsFunctionCodeVersion"], "v1");
        // Not verified yet (missing from the bucket): no version parameter, so the
        // parameters differ from any deployed stack's until it is uploaded.
        assert!(!params.contains_key("MigrationFunctionCodeVersion"));
    }

    #[test]
    fn bundled_zips_serve_only_a_complete_set_of_the_right_architecture() {
        static BUNDLE: &Bundle = &[
            ("arm64", "airflow-secrets", b"s-arm"),
            ("arm64", "airflow-migration", b"m-arm"),
            ("x86_64", "airflow-secrets", b"s-x86"),
        ];
        let arm = needed(&template(Some("arm64"))).unwrap();
        let assets = from_bundle(&arm, BUNDLE).unwrap();
        assert_eq!(assets[1].bytes.as_ref(), b"m-arm");
        assert_eq!(assets[1].origin, "bundled (arm64)");
        // x86_64 lacks the migration zip: not served from the bundle at all.
        assert!(from_bundle(&needed(&template(None)).unwrap(), BUNDLE).is_none());
        // Without the feature, build.rs bundles nothing.
        if !cfg!(feature = "bundled-lambdas") {
            assert!(bundled::ZIPS.is_empty());
        }
    }

    #[test]
    fn the_missing_zips_message_says_how_to_get_them() {
        let needs = needed(&template(Some("arm64"))).unwrap();
        let msg = not_found(&needs, Some(Path::new("/nowhere")));
        assert!(
            msg.contains("airflow-secrets (arm64)")
                && msg.contains("/nowhere")
                && msg.contains("lambdas/build.sh")
                && msg.contains("--features bundled-lambdas"),
            "{msg}"
        );
    }

    #[test]
    fn this_test_binary_runs_from_a_checkout() {
        // Tests are built from the checkout, so it is found; a binary installed from
        // crates.io has no lambdas/ next to its manifest and gets None.
        assert_eq!(
            checkout().as_deref(),
            Some(Path::new(env!("CARGO_MANIFEST_DIR")))
        );
    }

    #[test]
    fn only_a_real_version_id_can_pin_the_code() {
        assert_eq!(
            pinnable_version("b", "k", Some("3sL4kq+X")).unwrap(),
            "3sL4kq+X"
        );
        // An unversioned bucket returns no version id; a suspended one returns "null".
        for missing in [None, Some("null"), Some("")] {
            let err = pinnable_version("b", "assets/x.zip", missing)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("not versioned") && err.contains("put-bucket-versioning"),
                "{err}"
            );
        }
    }

    #[test]
    fn template_urls_follow_the_endpoint() {
        assert_eq!(
            template_url(
                Some("http://127.0.0.1:5000/"),
                "b",
                "us-east-1",
                "templates/x.json"
            ),
            "http://127.0.0.1:5000/b/templates/x.json"
        );
        assert_eq!(
            template_url(None, "b", "eu-west-1", "k"),
            "https://b.s3.eu-west-1.amazonaws.com/k"
        );
    }
}
