//! The files `airflow.build` names, read when the stack file is loaded: the
//! requirements file and every file of the plugins folder, with the limits that keep a
//! build context small and a build reproducible. Paths are relative to the stack file's
//! folder. Reading happens once, here, so the template (whose image tag is the hash of
//! the build context) and the upload in `deploy` are made from the same bytes.

use std::path::{Component, Path, PathBuf};

use super::types::ImageBuild;
use super::validate::Problems;

/// At most this many files in the plugins folder.
pub const MAX_PLUGIN_FILES: usize = 2_000;
/// At most this many bytes in the plugins folder, all files together (50 MiB): plugins
/// are code; data belongs in S3.
pub const MAX_PLUGIN_BYTES: u64 = 50 * 1024 * 1024;
/// At most this many bytes in the requirements file.
const MAX_REQUIREMENTS_BYTES: u64 = 256 * 1024;

/// The contents behind `airflow.build`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInputs {
    /// The requirements file's text.
    pub requirements: Option<String>,
    /// Every file of the plugins folder, by path relative to the folder (`/`-separated),
    /// sorted by that path.
    pub plugins: Vec<PluginFile>,
    /// Whether a plugins folder was named (it may hold no file).
    pub has_plugins: bool,
}

/// One file of the plugins folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginFile {
    /// Path relative to the plugins folder, `/`-separated.
    pub path: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Whether any execute bit is set (kept in the image for scripts).
    pub executable: bool,
}

/// Reads what `build` names, relative to `base` (the stack file's folder).
pub fn read(build: &ImageBuild, base: &Path) -> Result<BuildInputs, Problems> {
    let mut problems = Problems::new();
    let mut inputs = BuildInputs::default();
    if let Some(path) = &build.requirements {
        match read_requirements(&base.join(path)) {
            Ok(text) => inputs.requirements = Some(text),
            Err(e) => problems.push(("airflow.build.requirements".into(), e)),
        }
    }
    if let Some(path) = &build.plugins {
        inputs.has_plugins = true;
        match read_plugins(&base.join(path)) {
            Ok(files) => inputs.plugins = files,
            Err(e) => problems.push(("airflow.build.plugins".into(), e)),
        }
    }
    if problems.is_empty() {
        Ok(inputs)
    } else {
        Err(problems)
    }
}

fn read_requirements(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| cannot_read(path, &e))?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a file; name a pip requirements file",
            path.display()
        ));
    }
    if meta.len() > MAX_REQUIREMENTS_BYTES {
        return Err(format!(
            "{} is {} bytes; a requirements file is at most {MAX_REQUIREMENTS_BYTES} bytes",
            path.display(),
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| cannot_read(path, &e))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    check_requirement_lines(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

/// Refuses the lines that would not work in the build: the build context holds the
/// requirements file alone, so an include (`-r`, `-c`, `-e` with a local path) names a
/// file that is not there, and a second constraints file would fight Airflow's.
fn check_requirement_lines(text: &str) -> Result<(), String> {
    const REFUSED: &[(&str, &str)] = &[
        ("-r", "includes another requirements file, which the build context does not hold; put its lines into this file"),
        ("--requirement", "includes another requirements file, which the build context does not hold; put its lines into this file"),
        ("-c", "adds a constraints file; the build installs with Airflow's own constraints for the image's Airflow and Python versions"),
        ("--constraint", "adds a constraints file; the build installs with Airflow's own constraints for the image's Airflow and Python versions"),
        ("-e", "installs an editable local project, which the build context does not hold; publish it as a package or put it into the plugins folder"),
        ("--editable", "installs an editable local project, which the build context does not hold; publish it as a package or put it into the plugins folder"),
    ];
    for (number, line) in text.lines().enumerate() {
        let first = line.split_whitespace().next().unwrap_or("");
        let option = first.split('=').next().unwrap_or("");
        if let Some((_, why)) = REFUSED.iter().find(|(o, _)| {
            option == *o || (o.len() == 2 && first.starts_with(o) && first.len() > 2)
        }) {
            return Err(format!("line {}: {line:?} {why}", number + 1));
        }
    }
    Ok(())
}

fn read_plugins(root: &Path) -> Result<Vec<PluginFile>, String> {
    let meta = std::fs::metadata(root).map_err(|e| cannot_read(root, &e))?;
    if !meta.is_dir() {
        return Err(format!(
            "{} is not a folder; name the folder holding your plugins",
            root.display()
        ));
    }
    let mut files = Vec::new();
    let mut total = 0u64;
    // walkdir does not follow links by default: a link is refused below rather than
    // followed out of the folder.
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", root.display()))?;
        let path = entry.path();
        if is_skipped(entry.file_name()) {
            continue;
        }
        if entry.path_is_symlink() {
            return Err(format!("{} is a symbolic link; the plugins folder may hold files and folders only (the build copies the folder as it is)", path.display()));
        }
        if !entry.file_type().is_file() {
            continue;
        }
        if within_skipped(path, root) {
            continue;
        }
        let bytes = std::fs::read(path).map_err(|e| cannot_read(path, &e))?;
        total += bytes.len() as u64;
        if files.len() >= MAX_PLUGIN_FILES || total > MAX_PLUGIN_BYTES {
            return Err(format!("{} holds more than {MAX_PLUGIN_FILES} files or {} MiB; plugins are code, data belongs in S3", root.display(), MAX_PLUGIN_BYTES >> 20));
        }
        files.push(PluginFile {
            path: relative(path, root)?,
            executable: is_executable(&entry),
            bytes,
        });
    }
    Ok(files)
}

/// Python's caches and version-control folders are not part of a plugin: `.pyc` files
/// differ between machines and would change the image tag for nothing.
fn is_skipped(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name == "__pycache__" || name == ".git" || name.ends_with(".pyc")
}

fn within_skipped(path: &Path, root: &Path) -> bool {
    path.strip_prefix(root)
        .map(|p| p.components().any(|c| is_skipped(c.as_os_str())))
        .unwrap_or(false)
}

fn relative(path: &Path, root: &Path) -> Result<String, String> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| format!("{} is outside {}", path.display(), root.display()))?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(part) => parts.push(
                part.to_str()
                    .ok_or_else(|| format!("{} has a name that is not UTF-8", path.display()))?
                    .to_string(),
            ),
            _ => {
                return Err(format!(
                    "{} is not a plain path inside the plugins folder",
                    path.display()
                ))
            }
        }
    }
    Ok(parts.join("/"))
}

#[cfg(unix)]
fn is_executable(entry: &walkdir::DirEntry) -> bool {
    use std::os::unix::fs::PermissionsExt;
    entry
        .metadata()
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(_entry: &walkdir::DirEntry) -> bool {
    false
}

fn cannot_read(path: &Path, e: &std::io::Error) -> String {
    format!("cannot read {}: {e}", path.display())
}

/// The folder paths in the stack file are relative to.
pub fn base_dir(stack_file: &Path) -> PathBuf {
    match stack_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_and_constraints_are_refused_with_the_line() {
        for line in [
            "-r other.txt",
            "--requirement=other.txt",
            "-cother.txt",
            "--constraint x",
            "-e ./pkg",
        ] {
            let err = check_requirement_lines(&format!("pandas\n{line}\n")).unwrap_err();
            assert!(err.starts_with("line 2:"), "{err}");
        }
        check_requirement_lines("pandas==2.2.3\n# -r in a comment\nrequests>=2\n--index-url https://example.invalid/simple\n").unwrap();
    }

    #[test]
    fn plugins_are_read_sorted_without_caches() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/__pycache__")).unwrap();
        std::fs::write(dir.path().join("b/__pycache__/x.cpython-312.pyc"), b"x").unwrap();
        std::fs::write(dir.path().join("b/mod.py"), b"B = 1\n").unwrap();
        std::fs::write(dir.path().join("a.py"), b"A = 1\n").unwrap();
        std::fs::write(dir.path().join("a.pyc"), b"x").unwrap();
        let files = read_plugins(dir.path()).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.py", "b/mod.py"]);
    }

    #[test]
    fn a_symbolic_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("p.py")).unwrap();
        let err = read_plugins(dir.path()).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
    }
}
