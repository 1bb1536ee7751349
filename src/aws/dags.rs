//! `dags push`: make an S3 prefix hold exactly the DAG files of a local folder.
//!
//! Unchanged files are skipped by comparing the local MD5 with the object's ETag (the
//! MD5 of a single-part upload), so a push after a one-line edit uploads one file.
//! Remote files missing locally are deleted only when asked, and only under the DAG
//! prefix ([`check_prefix`]).

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

/// The one hidden file a DAG folder needs in the bundle: the DAG processor reads it to
/// skip paths (Airflow's `[core] dag_ignore_file_syntax`, glob by default in Airflow 3).
/// Every path it names is still uploaded: such paths are typically modules that DAG
/// files import, which must be in the bundle even though they are not parsed as DAGs.
pub const AIRFLOW_IGNORE: &str = ".airflowignore";

/// Whether a walked entry stays out of the bundle: caches, and hidden files and folders
/// (`.git`, `.venv`, editor files) other than `.airflowignore`.
fn skipped(name: &str) -> bool {
    name == "__pycache__" || (name.starts_with('.') && name != AIRFLOW_IGNORE)
}

/// Why a push may not write to a prefix.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// No prefix: the push would treat the whole bucket as the DAG folder.
    #[error("--prefix is empty: the push would own the whole bucket; use the stack's DAG prefix `{dags}`")]
    Empty {
        /// The stack's DAG prefix.
        dags: String,
    },
    /// The prefix is, contains or lies inside the task-log prefix.
    #[error("--prefix `{requested}` overlaps the stack's task-log prefix `{logs}`: a push there (and --delete above all) would overwrite or remove task logs; DAGs live under `{dags}`")]
    Logs {
        /// What was asked for.
        requested: String,
        /// The stack's task-log prefix.
        logs: String,
        /// The stack's DAG prefix.
        dags: String,
    },
    /// Another prefix than the stack's DAG prefix, without `--force-prefix`.
    #[error("--prefix `{requested}` is not the stack's DAG prefix `{dags}` (storage.dags_prefix), so the DAG processor would not read it; pass --force-prefix to push there anyway")]
    NotTheDagPrefix {
        /// What was asked for.
        requested: String,
        /// The stack's DAG prefix.
        dags: String,
    },
}

/// Whether prefix `a` is `b` or a folder above or below it (`logs` and `logs/x`, not
/// `logsx`).
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (format!("{a}/"), format!("{b}/"));
    a.starts_with(&b) || b.starts_with(&a)
}

/// Checks a requested prefix against the stack's DAG and task-log prefixes, and returns
/// it without surrounding slashes. The task logs are never a target, even with `force`.
pub fn check_prefix(
    requested: &str,
    dags: &str,
    logs: &str,
    force: bool,
) -> Result<String, PrefixError> {
    let (requested, dags, logs) = (
        requested.trim_matches('/'),
        dags.trim_matches('/'),
        logs.trim_matches('/'),
    );
    if requested.is_empty() {
        return Err(PrefixError::Empty { dags: dags.into() });
    }
    if overlaps(requested, logs) {
        return Err(PrefixError::Logs {
            requested: requested.into(),
            logs: logs.into(),
            dags: dags.into(),
        });
    }
    if requested != dags && !force {
        return Err(PrefixError::NotTheDagPrefix {
            requested: requested.into(),
            dags: dags.into(),
        });
    }
    Ok(requested.into())
}

/// Files under `dir` by relative key, skipping caches and hidden files except
/// `.airflowignore`.
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
            e.depth() == 0 || !skipped(&name)
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
            // Only keys under the prefix: deletes are computed from this map, so a key
            // outside it (S3 listing is by string prefix) must never get in.
            let rel = object
                .key()
                .and_then(|key| key.strip_prefix(&format!("{prefix}/")));
            if let (Some(rel), Some(etag)) = (rel, object.e_tag()) {
                out.insert(rel.to_string(), etag.trim_matches('"').to_string());
            }
        }
    }
    Ok(out)
}

/// Pushes `dir` to `s3://bucket/prefix/`; `prefix` has passed [`check_prefix`].
pub async fn push(
    s3: &aws_sdk_s3::Client,
    dir: &Path,
    bucket: &str,
    prefix: &str,
    delete: bool,
) -> anyhow::Result<PushReport> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        bail!("refusing to push to the root of s3://{bucket}: no prefix");
    }
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
    fn airflowignore_files_are_pushed_at_every_depth_and_other_hidden_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("team/.cache")).unwrap();
        std::fs::write(dir.path().join(".airflowignore"), "helpers/\n").unwrap();
        std::fs::write(dir.path().join("team/.airflowignore"), "scratch_*\n").unwrap();
        std::fs::write(dir.path().join(".DS_Store"), "z").unwrap();
        std::fs::write(dir.path().join("team/.cache/x"), "z").unwrap();
        std::fs::write(dir.path().join("team/.env"), "SECRET=1").unwrap();
        std::fs::create_dir_all(dir.path().join("helpers")).unwrap();
        std::fs::write(dir.path().join("helpers/util.py"), "x").unwrap();
        let files = local_files(dir.path()).unwrap();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            vec![".airflowignore", "helpers/util.py", "team/.airflowignore"],
            "ignored paths are still uploaded: DAG files import them"
        );
    }

    #[test]
    fn the_prefix_must_be_the_stack_dag_prefix_and_never_the_logs() {
        assert_eq!(
            check_prefix("/dags/", "dags", "logs", false),
            Ok("dags".into())
        );
        assert!(matches!(
            check_prefix("logs", "dags", "logs", false),
            Err(PrefixError::Logs { .. })
        ));
        for near_logs in ["logs/", "logs/sub", "/logs"] {
            assert!(
                matches!(
                    check_prefix(near_logs, "dags", "logs", true),
                    Err(PrefixError::Logs { .. })
                ),
                "{near_logs} with --force-prefix"
            );
        }
        // A folder above the logs would list (and --delete) them too.
        assert!(matches!(
            check_prefix("airflow", "airflow/dags", "airflow/logs", true),
            Err(PrefixError::Logs { .. })
        ));
        assert!(matches!(
            check_prefix("", "dags", "logs", true),
            Err(PrefixError::Empty { .. })
        ));
        assert!(matches!(
            check_prefix("dags-old", "dags", "logs", false),
            Err(PrefixError::NotTheDagPrefix { .. })
        ));
        assert_eq!(
            check_prefix("dags-old", "dags", "logs", true),
            Ok("dags-old".into())
        );
        assert_eq!(
            check_prefix("logsx", "dags", "logs", true),
            Ok("logsx".into()),
            "a sibling that merely starts with the same letters is another folder"
        );
    }

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
