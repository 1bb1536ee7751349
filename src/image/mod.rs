//! The image built in the account (`airflow.build`, and `airflow.lambda_functions`,
//! which needs the tracked Lambda operator's provider in the image): the Dockerfile,
//! the buildspec and the install script rendered from the minijinja templates in
//! `templates/image/` (compiled into the binary), the provider's source ([`provider`]),
//! and the build context zip CodeBuild reads from S3.
//!
//! The zip is reproducible (sorted entries, a fixed timestamp and fixed modes, the way
//! lambdas/build.sh zips the Lambdas), and its SHA-256 is the image tag and the asset
//! key: the same inputs give the same tag, so an unchanged stack file starts no build
//! (the build custom resource finds the tag in ECR), and any change gives a new tag, a
//! new image and a rolling update.

use std::io::{Cursor, Write};

use minijinja::{context, AutoEscape, Environment};
use sha2::{Digest, Sha256};

use crate::spec::{BuildInputs, ImageBuild, Spec};

pub mod provider;

const DOCKERFILE_TEMPLATE: &str = include_str!("../../templates/image/Dockerfile.j2");
const BUILDSPEC_TEMPLATE: &str = include_str!("../../templates/image/buildspec.yml.j2");
const INSTALL_TEMPLATE: &str = include_str!("../../templates/image/install-requirements.sh.j2");

/// The build context's file names (besides `plugins/...`).
pub const DOCKERFILE: &str = "Dockerfile";
/// The buildspec CodeBuild finds at the root of the source.
pub const BUILDSPEC: &str = "buildspec.yml";
/// The requirements install script.
pub const INSTALL_SCRIPT: &str = "install-requirements.sh";
/// The requirements file, as the build context holds it.
pub const REQUIREMENTS: &str = "requirements.txt";

/// One file of the build context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextFile {
    /// Path inside the zip, `/`-separated.
    pub path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Unix mode of the entry (0644 or 0755).
    pub mode: u32,
}

/// The build context of a stack that builds its image.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// Every file, in zip order.
    pub files: Vec<ContextFile>,
    /// The zip CodeBuild reads.
    pub zip: Vec<u8>,
    /// SHA-256 of the zip, lower-case hex: the image tag.
    pub sha256: String,
}

impl BuildContext {
    /// The asset key of the zip in the bootstrap bucket.
    pub fn key(&self) -> String {
        format!("assets/{}.zip", self.sha256)
    }

    /// A file's text, for tests and messages.
    pub fn text(&self, path: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .and_then(|f| std::str::from_utf8(&f.bytes).ok())
    }
}

/// The build context of `spec`, or `None` when it builds no image (neither
/// `airflow.build` nor `airflow.lambda_functions`). A stack file with
/// `lambda_functions` and no `build` builds the base image with the provider and nothing
/// else of its own.
///
/// Panics when the spec has `airflow.build` but no inputs: [`crate::spec::load`] and
/// [`crate::spec::parse`] always read them, so that is a programming error.
pub fn context(spec: &Spec) -> Option<BuildContext> {
    if !spec.builds_image() {
        return None;
    }
    let none = (ImageBuild::default(), BuildInputs::default());
    let (build, inputs) = match &spec.airflow.build {
        Some(build) => (
            build,
            spec.build_inputs
                .as_ref()
                .expect("spec::parse reads the inputs of airflow.build"),
        ),
        None => (&none.0, &none.1),
    };
    Some(assemble(spec, build, inputs))
}

/// Whether the image gets the tracked Lambda operator's provider.
fn has_provider(spec: &Spec) -> bool {
    !spec.airflow.lambda_functions.is_empty()
}

fn assemble(spec: &Spec, build: &ImageBuild, inputs: &BuildInputs) -> BuildContext {
    let mut files = vec![
        text_file(DOCKERFILE, dockerfile(spec, build, inputs), 0o644),
        text_file(BUILDSPEC, buildspec(build), 0o644),
    ];
    if inputs.requirements.is_some() || has_provider(spec) {
        files.push(text_file(
            INSTALL_SCRIPT,
            install_script(spec, inputs),
            0o755,
        ));
    }
    if let Some(requirements) = &inputs.requirements {
        files.push(text_file(REQUIREMENTS, requirements.clone(), 0o644));
    }
    if has_provider(spec) {
        files.extend(provider::FILES.iter().map(|(path, text)| {
            text_file(
                &format!("{}/{path}", provider::DIR),
                text.to_string(),
                0o644,
            )
        }));
    }
    files.extend(inputs.plugins.iter().map(|p| ContextFile {
        path: format!("plugins/{}", p.path),
        bytes: p.bytes.clone(),
        mode: if p.executable { 0o755 } else { 0o644 },
    }));
    let zip = zip_files(&files);
    let sha256 = hex::encode(Sha256::digest(&zip));
    BuildContext { files, zip, sha256 }
}

fn text_file(path: &str, text: String, mode: u32) -> ContextFile {
    ContextFile {
        path: path.into(),
        bytes: text.into_bytes(),
        mode,
    }
}

/// The environment every image template renders in: plain text (no HTML escaping),
/// and a template's final newline kept.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env
}

fn render(template: &str, ctx: minijinja::Value) -> String {
    environment()
        .render_str(template, ctx)
        .expect("the image templates are part of this binary and render with any context")
}

/// The Dockerfile: the base image, then Debian packages, requirements and plugins.
pub fn dockerfile(spec: &Spec, build: &ImageBuild, inputs: &BuildInputs) -> String {
    let os_packages: Vec<&str> = build.os_packages.iter().map(|p| p.as_str()).collect();
    render(
        DOCKERFILE_TEMPLATE,
        context! {
            base_image => spec.airflow_image(),
            unpinned_os_packages => os_packages.iter().any(|p| !p.contains('=')),
            os_packages => os_packages,
            requirements => inputs.requirements.is_some(),
            provider => has_provider(spec).then_some(provider::DIR),
            plugins => !inputs.plugins.is_empty(),
        },
    )
}

/// The buildspec CodeBuild runs.
pub fn buildspec(build: &ImageBuild) -> String {
    render(
        BUILDSPEC_TEMPLATE,
        context! { docker_hub_secret => build.docker_hub_secret.as_ref().map(|s| s.as_str()) },
    )
}

/// The script that installs the requirements and the provider, in the image and in the
/// e2e run.
pub fn install_script(spec: &Spec, inputs: &BuildInputs) -> String {
    render(
        INSTALL_TEMPLATE,
        context! {
            airflow_version => spec.airflow.version,
            requirements => inputs.requirements.is_some(),
            provider => has_provider(spec).then_some(provider::DIR),
        },
    )
}

/// A reproducible zip: entries in the given order, each with a fixed timestamp
/// (1980-01-01, the zip format's earliest), its mode, and Deflate at a fixed level.
/// Written with the `zip` crate; the fixed fields are what make two zips of the same
/// files identical byte for byte.
fn zip_files(files: &[ContextFile]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for file in files {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(file.mode);
        writer
            .start_file(file.path.as_str(), options)
            .and_then(|()| writer.write_all(&file.bytes).map_err(Into::into))
            .expect("writing a zip into memory does not fail");
    }
    writer
        .finish()
        .expect("writing a zip into memory does not fail")
        .into_inner()
}

#[cfg(test)]
mod tests;
