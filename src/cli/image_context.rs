//! `airflow-stack image-context`: writes the build context of the image built in the
//! account (`airflow.build`, `airflow.lambda_functions`) to a folder, exactly as
//! CodeBuild receives it: the Dockerfile, the buildspec, the install script, the
//! requirements, the plugins and the tracked Lambda operator's provider. To
//! read what will be built, or to `docker build` it on a machine with Docker before a
//! deploy.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};

use super::{Failure, StackFile};
use crate::{image, spec};

/// Arguments of `image-context`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackFile,
    /// The folder to write; it must not exist yet (nothing is overwritten).
    #[arg(long, short)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let spec = spec::load(&args.stack.file)?;
    let context = image::context(&spec).ok_or_else(|| {
        Failure::BadInput(format!(
            "{}: airflow.build: not set; the stack runs {} as it is, and there is no image to build (add airflow.build with requirements, plugins or os_packages, or airflow.lambda_functions)",
            args.stack.file.display(),
            spec.airflow_image()
        ))
    })?;
    if args.out.exists() {
        return Err(Failure::BadInput(format!(
            "--out {}: already exists; name a folder that does not exist yet",
            args.out.display()
        )));
    }
    write_folder(&context, &args.out)?;
    println!(
        "Wrote the build context to {} ({} files); its image tag is {}.",
        args.out.display(),
        context.files.len(),
        context.sha256
    );
    Ok(())
}

/// Writes every file into a temporary folder beside `out`, then renames it to `out`, so
/// a failure leaves nothing half-written.
fn write_folder(context: &image::BuildContext, out: &Path) -> anyhow::Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".image-context-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    for file in &context.files {
        let path = tmp.path().join(&file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, &file.bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        set_mode(&path, file.mode)?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        anyhow!("cannot rename the written folder to {}: {e}", out.display())
    })
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> anyhow::Result<()> {
    Ok(())
}
