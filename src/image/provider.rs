//! The tracked Lambda operator's provider (providers/airflow-stack-lambda), compiled
//! into the binary: with `airflow.lambda_functions`, its source goes into the image's
//! build context and the install script installs it, so an installed CLI needs no
//! checkout. The list is explicit; a unit test checks that it names every file the
//! package is built from (`pyproject.toml`, `README.md`, everything under `src/`), so a
//! file added to the provider cannot be left out of the image.

/// Where the provider sits in the build context (and in the repository).
pub const DIR: &str = "providers/airflow-stack-lambda";

/// Every file pip builds the provider from: its path under [`DIR`] and its text.
pub const FILES: &[(&str, &str)] = &[
    (
        "README.md",
        include_str!("../../providers/airflow-stack-lambda/README.md"),
    ),
    (
        "pyproject.toml",
        include_str!("../../providers/airflow-stack-lambda/pyproject.toml"),
    ),
    (
        "src/airflow_stack_lambda/__init__.py",
        include_str!("../../providers/airflow-stack-lambda/src/airflow_stack_lambda/__init__.py"),
    ),
    (
        "src/airflow_stack_lambda/clock.py",
        include_str!("../../providers/airflow-stack-lambda/src/airflow_stack_lambda/clock.py"),
    ),
    (
        "src/airflow_stack_lambda/correlation.py",
        include_str!(
            "../../providers/airflow-stack-lambda/src/airflow_stack_lambda/correlation.py"
        ),
    ),
    (
        "src/airflow_stack_lambda/exceptions.py",
        include_str!("../../providers/airflow-stack-lambda/src/airflow_stack_lambda/exceptions.py"),
    ),
    (
        "src/airflow_stack_lambda/follower.py",
        include_str!("../../providers/airflow-stack-lambda/src/airflow_stack_lambda/follower.py"),
    ),
    (
        "src/airflow_stack_lambda/get_provider_info.py",
        include_str!(
            "../../providers/airflow-stack-lambda/src/airflow_stack_lambda/get_provider_info.py"
        ),
    ),
    (
        "src/airflow_stack_lambda/operators.py",
        include_str!("../../providers/airflow-stack-lambda/src/airflow_stack_lambda/operators.py"),
    ),
    (
        "src/airflow_stack_lambda/records.py",
        include_str!("../../providers/airflow-stack-lambda/src/airflow_stack_lambda/records.py"),
    ),
    (
        "src/airflow_stack_lambda/triggers.py",
        include_str!("../../providers/airflow-stack-lambda/src/airflow_stack_lambda/triggers.py"),
    ),
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// What a local build leaves in the source tree, which is not part of the package.
    fn is_build_output(path: &str) -> bool {
        path.split('/').any(|part| {
            part == "__pycache__" || part.ends_with(".egg-info") || part.ends_with(".pyc")
        })
    }

    #[test]
    fn the_list_names_every_file_the_provider_is_built_from() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
        let mut on_disk: Vec<String> = ["README.md", "pyproject.toml"]
            .into_iter()
            .map(String::from)
            .collect();
        for entry in walkdir::WalkDir::new(root.join("src")).sort_by_file_name() {
            let entry = entry.unwrap();
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry.path().strip_prefix(&root).unwrap();
            let rel = rel.to_str().unwrap().replace('\\', "/");
            if !is_build_output(&rel) {
                on_disk.push(rel);
            }
        }
        on_disk.sort();
        let listed: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            listed, on_disk,
            "src/image/provider.rs FILES must list exactly the provider's files (sorted)"
        );
    }
}
