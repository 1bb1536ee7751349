//! `dags push`: make an S3 prefix hold exactly the DAG files of a local folder.
//!
//! Unchanged files are skipped by comparing the local MD5 with the object's ETag (the
//! MD5 of a single-part upload), so a push after a one-line edit uploads one file.
//! Remote files missing locally are deleted only when asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use md5::{Digest, Md5};

/// What a push did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Keys uploaded (new or changed).
    pub uploaded: Vec<String>,
    /// Keys already up to date.
    pub unchanged: usize,
    /// Keys deleted (with `delete`).
    pub deleted: Vec<String>,
    /// Keys only in S3, left in place (without `delete`).
    pub stale: Vec<String>,
}

/// A local file to push: its key relative to the folder and its MD5.
struct LocalFile {
    path: PathBuf,
    md5: String,
}

/// Files under `dir` by relative key, skipping caches and hidden files.
fn local_files(dir: &Path) -> anyhow::Result<BTreeMap<String, LocalFile>> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut files = BTreeMap::new();
    let walker = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            e.depth() == 0 || !(name.starts_with('.') || name == "__pycache__")
        });
    for entry in walker {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        if !entry.file_type().is_file() || entry.path().extension().is_some_and(|e| e == "pyc") {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("walkdir yields paths under dir");
        let key = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let bytes = std::fs::read(entry.path())
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        files.insert(
            key,
            LocalFile {
                path: entry.path().to_path_buf(),
                md5: hex::encode(Md5::digest(&bytes)),
            },
        );
    }
    Ok(files)
}

/// Keys and ETags (quotes removed) under `prefix/`.
async fn remote_files(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("{prefix}/"))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow::anyhow!(
                "cannot list s3://{bucket}/{prefix}/: {}",
                super::describe(&e)
            )
        })?;
        for object in page.contents() {
            if let (Some(key), Some(etag)) = (object.key(), object.e_tag()) {
                let rel = key.strip_prefix(&format!("{prefix}/")).unwrap_or(key);
                out.insert(rel.to_string(), etag.trim_matches('"').to_string());
            }
        }
    }
    Ok(out)
}

/// Pushes `dir` to `s3://bucket/prefix/`.
pub async fn push(
    s3: &aws_sdk_s3::Client,
    dir: &Path,
    bucket: &str,
    prefix: &str,
    delete: bool,
) -> anyhow::Result<PushReport> {
    let prefix = prefix.trim_matches('/');
    let local = local_files(dir)?;
    let remote = remote_files(s3, bucket, prefix).await?;
    let mut report = PushReport::default();
    for (key, file) in &local {
        if remote.get(key) == Some(&file.md5) {
            report.unchanged += 1;
            continue;
        }
        let body = aws_sdk_s3::primitives::ByteStream::from_path(&file.path)
            .await
            .with_context(|| format!("cannot read {}", file.path.display()))?;
        s3.put_object()
            .bucket(bucket)
            .key(format!("{prefix}/{key}"))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot upload {key} to s3://{bucket}/{prefix}/: {}",
                    super::describe(&e)
                )
            })?;
        report.uploaded.push(key.clone());
    }
    for key in remote.keys().filter(|k| !local.contains_key(*k)) {
        if delete {
            s3.delete_object()
                .bucket(bucket)
                .key(format!("{prefix}/{key}"))
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot delete s3://{bucket}/{prefix}/{key}: {}",
                        super::describe(&e)
                    )
                })?;
            report.deleted.push(key.clone());
        } else {
            report.stale.push(key.clone());
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_files_skip_caches_and_hidden_files_and_use_slash_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/__pycache__")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join("a.py"), "x").unwrap();
        std::fs::write(dir.path().join("sub/b.py"), "y").unwrap();
        std::fs::write(dir.path().join("sub/__pycache__/b.pyc"), "z").unwrap();
        std::fs::write(dir.path().join("c.pyc"), "z").unwrap();
        std::fs::write(dir.path().join(".git/config"), "z").unwrap();
        let files = local_files(dir.path()).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), vec!["a.py", "sub/b.py"]);
        assert_eq!(files["a.py"].md5, "9dd4e461268c8034f5c8564e155c67a6");
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let err = local_files(Path::new("/no/such/dir")).err().unwrap();
        assert!(err.to_string().contains("/no/such/dir"));
    }
}
