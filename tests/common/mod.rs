//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod emulator;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The built `airflow-stack` binary.
pub fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airflow-stack"));
    cmd.current_dir(root());
    cmd
}

/// Runs `synth` on a stack file and returns the template text.
pub fn synth(file: &Path, format: &str) -> String {
    let out = cli()
        .args(["synth", "--format", format])
        .arg(file)
        .output()
        .expect("run airflow-stack");
    assert!(
        out.status.success(),
        "synth {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 template")
}

/// Runs `synth` on the default stack file and parses the JSON template.
pub fn default_template() -> serde_json::Value {
    serde_json::from_str(&synth(&root().join("stacks/dev.yaml"), "json")).expect("JSON template")
}

/// The Python virtualenv the test command creates (cfn-lint, moto). A missing venv is a
/// test failure, never a silent skip.
pub fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var("AIRFLOW_STACK_VENV").unwrap_or_else(|_| {
        panic!("AIRFLOW_STACK_VENV is not set: run the README's test command (bash tests/run-all.sh), which creates the virtualenv with cfn-lint and moto")
    });
    let bin = Path::new(&venv).join("bin").join(tool);
    assert!(
        bin.exists(),
        "{} is missing: run bash tests/run-all.sh to install it",
        bin.display()
    );
    bin
}

/// Every container definition of every task definition: `(logical id, container)`.
pub fn containers(template: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for (id, res) in template["Resources"].as_object().unwrap() {
        if res["Type"] == "AWS::ECS::TaskDefinition" {
            for c in res["Properties"]["ContainerDefinitions"]
                .as_array()
                .unwrap()
            {
                out.push((id.clone(), c.clone()));
            }
        }
    }
    out
}
