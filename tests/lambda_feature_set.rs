//! Every Lambda compiles the dependencies it shares with the other Lambdas with the same
//! features (lambdas/feature-set/Cargo.toml says why: a cold build compiled the AWS SDK's
//! core once per Lambda). Reads cargo's own resolution (`cargo metadata`, `cargo tree`),
//! offline.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const FEATURE_SET: &str = "airflow-lambda-feature-set";
/// The triple lambdas/build.sh builds for (arm64, src/stack/assets.rs): features of
/// target-specific dependencies are resolved for it.
const LAMBDA_TRIPLE: &str = "aarch64-unknown-linux-gnu";

fn cargo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Workspace members under lambdas/ with a binary target: the Lambdas build.sh zips.
fn lambdas() -> Vec<(String, Vec<String>)> {
    let meta: serde_json::Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]))
    .expect("metadata is JSON");
    let mut out = Vec::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        let manifest = pkg["manifest_path"].as_str().expect("manifest_path");
        let is_bin = pkg["targets"].as_array().expect("targets").iter().any(|t| {
            t["kind"]
                .as_array()
                .expect("kind")
                .iter()
                .any(|k| k == "bin")
        });
        if manifest.contains("/lambdas/") && is_bin {
            let deps = pkg["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().expect("name").to_owned())
                .collect();
            out.push((pkg["name"].as_str().expect("name").to_owned(), deps));
        }
    }
    out
}

/// "name vX.Y.Z" -> enabled features, for every package in the Lambda's build graph.
fn resolved_features(package: &str) -> BTreeMap<String, String> {
    let tree = cargo(&[
        "tree",
        "--offline",
        "-p",
        package,
        "--target",
        LAMBDA_TRIPLE,
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "-f",
        "{p}|{f}",
    ]);
    tree.lines()
        .filter_map(|line| line.trim_end_matches(" (*)").split_once('|'))
        .map(|(p, f)| {
            let id: Vec<&str> = p.split_whitespace().take(2).collect();
            (id.join(" "), f.to_owned())
        })
        .collect()
}

#[test]
fn every_lambda_depends_on_the_feature_set() {
    let lambdas = lambdas();
    assert!(
        lambdas.len() >= 3,
        "expected the secrets, migration and scaler Lambdas, found {lambdas:?}"
    );
    for (name, deps) in &lambdas {
        assert!(
            deps.iter().any(|d| d == FEATURE_SET),
            "{name} does not depend on {FEATURE_SET}: add `{FEATURE_SET} = {{ workspace = true }}` \
             to its [dependencies]"
        );
    }
}

#[test]
fn shared_dependencies_have_the_same_features_in_every_lambda() {
    let graphs: Vec<(String, BTreeMap<String, String>)> = lambdas()
        .into_iter()
        .map(|(name, _)| {
            let graph = resolved_features(&name);
            (name, graph)
        })
        .collect();
    let shared: BTreeSet<&String> = graphs[0]
        .1
        .keys()
        .filter(|dep| graphs.iter().all(|(_, g)| g.contains_key(*dep)))
        .collect();
    assert!(
        shared.len() > 100,
        "the Lambdas share the AWS SDK's core: {shared:?}"
    );
    let differing: Vec<String> = shared
        .iter()
        .filter(|dep| {
            let first = &graphs[0].1[**dep];
            graphs.iter().any(|(_, g)| &g[**dep] != first)
        })
        .map(|dep| {
            let per_lambda: Vec<String> = graphs
                .iter()
                .map(|(name, g)| format!("{name}: [{}]", g[*dep]))
                .collect();
            format!("{dep}: {}", per_lambda.join("; "))
        })
        .collect();
    assert!(
        differing.is_empty(),
        "shared dependencies with different features (each Lambda would compile them \
         again); add the union to lambdas/feature-set/Cargo.toml:\n{}",
        differing.join("\n")
    );
}
