use std::path::Path;

use super::*;

fn spec_with(build: &str) -> Spec {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/image");
    let text = format!("name: built\nregion: eu-west-1\nairflow:\n  build:\n{build}");
    crate::spec::parse(&text, &dir.join("stack.yaml")).unwrap()
}

#[test]
fn the_same_inputs_give_the_same_zip_and_tag() {
    let build = "    requirements: requirements.txt\n    plugins: plugins\n";
    let a = context(&spec_with(build)).unwrap();
    let b = context(&spec_with(build)).unwrap();
    assert_eq!(a.zip, b.zip);
    assert_eq!(a.sha256.len(), 64);
    assert_eq!(a.key(), format!("assets/{}.zip", a.sha256));
}

#[test]
fn any_input_changes_the_tag() {
    let base = context(&spec_with("    requirements: requirements.txt\n")).unwrap();
    let with_package = context(&spec_with(
        "    requirements: requirements.txt\n    os_packages: [libpq5]\n",
    ))
    .unwrap();
    let with_plugins = context(&spec_with(
        "    requirements: requirements.txt\n    plugins: plugins\n",
    ))
    .unwrap();
    assert_ne!(base.sha256, with_package.sha256);
    assert_ne!(base.sha256, with_plugins.sha256);
    assert_ne!(with_package.sha256, with_plugins.sha256);
}

#[test]
fn the_zip_holds_every_file_with_its_mode() {
    let ctx = context(&spec_with(
        "    requirements: requirements.txt\n    plugins: plugins\n",
    ))
    .unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(ctx.zip.clone())).unwrap();
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    for name in [DOCKERFILE, BUILDSPEC, INSTALL_SCRIPT, REQUIREMENTS] {
        assert!(
            names.contains(&name.to_string()),
            "{name} missing from {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.starts_with("plugins/")), "{names:?}");
    let script = archive.by_name(INSTALL_SCRIPT).unwrap();
    assert_eq!(script.unix_mode().unwrap() & 0o777, 0o755);
}

#[test]
fn without_requirements_there_is_no_install_step() {
    let ctx = context(&spec_with("    os_packages: [libpq5=15.10-0+deb12u1]\n")).unwrap();
    let dockerfile = ctx.text(DOCKERFILE).unwrap();
    assert!(!dockerfile.contains("install-requirements"), "{dockerfile}");
    assert!(
        dockerfile.contains("libpq5=15.10-0+deb12u1"),
        "{dockerfile}"
    );
    // Every package pinned: no DL3008 exception.
    assert!(!dockerfile.contains("hadolint ignore"), "{dockerfile}");
    assert!(ctx.text(REQUIREMENTS).is_none());
}

#[test]
fn the_base_is_the_stack_files_image_when_set() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/image");
    let text = "name: built\nregion: eu-west-1\nairflow:\n  image: registry.example.com/airflow:3.3.2-a\n  build:\n    requirements: requirements.txt\n";
    let spec = crate::spec::parse(text, &dir.join("stack.yaml")).unwrap();
    let dockerfile = context(&spec)
        .unwrap()
        .text(DOCKERFILE)
        .unwrap()
        .to_string();
    assert!(
        dockerfile.contains("FROM registry.example.com/airflow:3.3.2-a\n"),
        "{dockerfile}"
    );
}

fn spec_text(text: &str) -> Spec {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/image");
    crate::spec::parse(text, &dir.join("stack.yaml")).unwrap()
}

#[test]
fn lambda_functions_alone_build_the_base_image_with_the_provider() {
    let spec = spec_text("name: built\nregion: eu-west-1\nairflow:\n  lambda_functions: [load]\n");
    let ctx = context(&spec).expect("lambda_functions turn the build on");
    let paths: Vec<&str> = ctx.files.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&INSTALL_SCRIPT), "{paths:?}");
    assert!(!paths.contains(&REQUIREMENTS), "{paths:?}");
    for (path, text) in provider::FILES {
        let full = format!("{}/{path}", provider::DIR);
        assert_eq!(ctx.text(&full), Some(*text), "{full}");
    }
    let script = ctx.text(INSTALL_SCRIPT).unwrap();
    assert!(!script.contains("requirements=\"$1\""), "{script}");
    assert!(
        script.ends_with(
            "pip install --no-cache-dir --constraint \"$constraints\" \"apache-airflow==${airflow_version}\" \"$here/providers/airflow-stack-lambda\"\n"
        ),
        "{script}"
    );
    let dockerfile = ctx.text(DOCKERFILE).unwrap();
    assert!(dockerfile.contains("COPY --chown=50000:0 providers/airflow-stack-lambda/ /opt/airflow-stack/providers/airflow-stack-lambda/\n"), "{dockerfile}");
    assert!(
        dockerfile.ends_with("RUN bash /opt/airflow-stack/install-requirements.sh\n"),
        "{dockerfile}"
    );
    // Without the list, no build at all.
    assert!(context(&spec_text("name: built\nregion: eu-west-1\n")).is_none());
}

#[test]
fn with_requirements_the_provider_is_installed_in_the_same_pip_call() {
    let spec = spec_text("name: built\nregion: eu-west-1\nairflow:\n  lambda_functions: [load]\n  build:\n    requirements: requirements.txt\n");
    let ctx = context(&spec).unwrap();
    let script = ctx.text(INSTALL_SCRIPT).unwrap();
    assert!(script.contains("requirements=\"$1\"\n"), "{script}");
    assert!(
        script
            .contains("--requirement \"$requirements\" \"$here/providers/airflow-stack-lambda\"\n"),
        "{script}"
    );
    let without = context(&spec_with("    requirements: requirements.txt\n")).unwrap();
    assert_ne!(
        ctx.sha256, without.sha256,
        "the provider is part of the tag"
    );
}
