//! Lambda code assets and large templates in the bootstrap bucket, named by content
//! hash: an unchanged zip is not uploaded again and keeps its key, so CloudFormation
//! sees no change; a changed one gets a new key and forces a Lambda update.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use sha2::{Digest, Sha256};

use super::describe;
use crate::stack::ASSET_LAMBDAS;

/// A built Lambda zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// The template parameter that takes its key.
    pub parameter: &'static str,
    /// The Lambda crate it comes from.
    pub crate_name: &'static str,
    /// The zip on disk.
    pub path: PathBuf,
    /// SHA-256 of the zip, hex.
    pub sha256: String,
}

impl Asset {
    /// `assets/<sha256>.zip`
    pub fn key(&self) -> String {
        format!("assets/{}.zip", self.sha256)
    }
}

/// Where built zips are looked for: `--assets-dir`, else `$AIRFLOW_STACK_ASSETS_DIR`,
/// else `<cargo target dir>/lambda` (what lambdas/build.sh writes).
pub fn assets_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("AIRFLOW_STACK_ASSETS_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("lambda")
}

/// Finds and hashes every Lambda zip the template needs; a missing one is an error that
/// says how to build it.
pub fn locate(dir: &Path) -> Result<Vec<Asset>, String> {
    let mut assets = Vec::new();
    let mut missing = Vec::new();
    for (parameter, crate_name) in ASSET_LAMBDAS {
        let path = dir.join(crate_name).join("bootstrap.zip");
        match std::fs::read(&path) {
            Ok(bytes) => assets.push(Asset {
                parameter,
                crate_name,
                path,
                sha256: hex::encode(Sha256::digest(&bytes)),
            }),
            Err(_) => missing.push(path.display().to_string()),
        }
    }
    if missing.is_empty() {
        Ok(assets)
    } else {
        Err(format!(
            "Lambda zips not found: {}\nbuild them with `bash lambdas/build.sh` (from a clone of airflow-stack), or pass --assets-dir DIR holding <crate>/bootstrap.zip",
            missing.join(", ")
        ))
    }
}

/// The template parameters naming the bucket and each asset's key.
pub fn parameters(bucket: &str, assets: &[Asset]) -> BTreeMap<String, String> {
    let mut p: BTreeMap<String, String> = assets
        .iter()
        .map(|a| (a.parameter.to_string(), a.key()))
        .collect();
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

/// Uploads the assets missing from the bucket; returns how many were uploaded.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    assets: &[Asset],
) -> anyhow::Result<usize> {
    let mut uploaded = 0;
    for asset in assets {
        if exists(s3, bucket, &asset.key()).await {
            continue;
        }
        let body = aws_sdk_s3::primitives::ByteStream::from_path(&asset.path).await?;
        s3.put_object()
            .bucket(bucket)
            .key(asset.key())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot upload {} to s3://{bucket}: {}",
                    asset.path.display(),
                    describe(&e)
                )
            })?;
        uploaded += 1;
    }
    Ok(uploaded)
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

    #[test]
    fn zips_are_found_hashed_and_keyed_by_content() {
        let dir = tempfile::tempdir().unwrap();
        for (_, crate_name) in ASSET_LAMBDAS {
            std::fs::create_dir_all(dir.path().join(crate_name)).unwrap();
            std::fs::write(
                dir.path().join(crate_name).join("bootstrap.zip"),
                crate_name.as_bytes(),
            )
            .unwrap();
        }
        let assets = locate(dir.path()).unwrap();
        assert_eq!(assets.len(), ASSET_LAMBDAS.len());
        let secrets = &assets[0];
        assert_eq!(
            secrets.sha256,
            hex::encode(Sha256::digest(b"airflow-secrets"))
        );
        assert_eq!(secrets.key(), format!("assets/{}.zip", secrets.sha256));
        let params = parameters("bkt", &assets);
        assert_eq!(params["AssetsBucket"], "bkt");
        assert_eq!(params["SecretsFunctionCodeKey"], secrets.key());
    }

    #[test]
    fn a_missing_zip_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate(dir.path()).unwrap_err();
        assert!(
            err.contains("airflow-secrets/bootstrap.zip") && err.contains("lambdas/build.sh"),
            "{err}"
        );
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
