//! Bundles the Lambda zips into the CLI when the cargo feature `bundled-lambdas` is on,
//! so an installed binary can `deploy` with no checkout and no Lambda build.
//!
//! The zips are built beforehand by lambdas/build.sh (cargo-lambda, reproducible zips)
//! and named by `AIRFLOW_STACK_BUNDLE_DIR`: the folder lambdas/build.sh writes for one
//! architecture, `<cargo target dir>/lambda/<architecture>`, holding
//! `<crate>/bootstrap.zip`. Its name says the architecture (`arm64` or `x86_64`);
//! `deploy` uses the bundle only for functions of that architecture.
//!
//! ```text
//! bash lambdas/build.sh --arch arm64
//! AIRFLOW_STACK_BUNDLE_DIR=$PWD/target/lambda/arm64 cargo build --release --features bundled-lambdas
//! ```
//!
//! Why not build them here: a build script running `cargo lambda build` would be a
//! cargo inside cargo (its own target dir to avoid the lock, a second copy of the AWS
//! SDK's build, cargo-lambda and zig needed by every build of the CLI). Prebuilt zips
//! keep this script to reading files, and the zips byte-identical to the ones `deploy`
//! from a checkout uses.
//!
//! Without the feature this writes an empty list and never runs again.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const BUNDLE_DIR: &str = "AIRFLOW_STACK_BUNDLE_DIR";
const ARCHITECTURES: [&str; 2] = ["arm64", "x86_64"];

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let code = if std::env::var_os("CARGO_FEATURE_BUNDLED_LAMBDAS").is_some() {
        println!("cargo::rerun-if-env-changed={BUNDLE_DIR}");
        match bundle() {
            Ok(code) => code,
            Err(message) => {
                // A build script's error: cargo shows it and the build fails.
                println!("cargo::error=bundled-lambdas: {message}");
                String::new()
            }
        }
    } else {
        println!("cargo::rerun-if-changed=build.rs");
        String::from("pub const ZIPS: &[(&str, &str, &[u8])] = &[];\n")
    };
    std::fs::write(out.join("bundled_lambdas.rs"), code).expect("write bundled_lambdas.rs");
}

/// `pub const ZIPS` with one `include_bytes!` per `<crate>/bootstrap.zip` in the
/// bundle folder.
fn bundle() -> Result<String, String> {
    let dir = std::env::var_os(BUNDLE_DIR).map(PathBuf::from).ok_or_else(|| {
        format!("set {BUNDLE_DIR} to the folder lambdas/build.sh wrote for the Lambdas' architecture (<cargo target dir>/lambda/arm64, holding <crate>/bootstrap.zip)")
    })?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{BUNDLE_DIR}={}: {e}", dir.display()))?;
    let arch = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| ARCHITECTURES.contains(n))
        .ok_or_else(|| {
            format!(
                "{BUNDLE_DIR}={}: the folder's name must be the architecture (arm64 or x86_64), as lambdas/build.sh names it",
                dir.display()
            )
        })?
        .to_string();
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut entries = Vec::new();
    for zip in zips(&dir)? {
        let crate_name = zip
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{} has no crate folder name", zip.display()))?
            .to_string();
        println!("cargo::rerun-if-changed={}", zip.display());
        entries.push((&arch, crate_name, zip));
    }
    if entries.is_empty() {
        return Err(format!(
            "no <crate>/bootstrap.zip in {}: run `bash lambdas/build.sh --arch {arch}` first",
            dir.display()
        ));
    }
    let mut code = String::from("pub const ZIPS: &[(&str, &str, &[u8])] = &[\n");
    for (arch, crate_name, zip) in entries {
        writeln!(
            code,
            "    ({arch:?}, {crate_name:?}, include_bytes!({:?})),",
            zip.display().to_string()
        )
        .expect("write to a String");
    }
    code.push_str("];\n");
    Ok(code)
}

/// `<dir>/<crate>/bootstrap.zip` for every crate folder, sorted (a stable order keeps
/// the binary reproducible); none when `dir` does not exist.
fn zips(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let zip = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path()
            .join("bootstrap.zip");
        if zip.is_file() {
            found.push(zip);
        }
    }
    found.sort();
    Ok(found)
}
