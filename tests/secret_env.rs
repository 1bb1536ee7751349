//! `airflow.secret_env`: a user's own secrets reach exactly the components named, as
//! ECS `Secrets` (never as plain environment), and the execution role may read exactly
//! those ARNs.

mod common;

use common::{containers, synth};
use serde_json::Value;

const SMTP: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:smtp-AbCdEf";
const API: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team/api-x1Y2z3";

fn template() -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(
        &file,
        format!(
            "name: a\nregion: us-east-1\nservices:\n  flower: {{ enabled: true }}\nairflow:\n  secret_env:\n    AIRFLOW__SMTP__SMTP_PASSWORD:\n      secret: {SMTP}\n      components: [worker, scheduler]\n    AIRFLOW_CONN_TEAM_API:\n      secret: {API}\n      json_key: uri\n"
        ),
    )
    .unwrap();
    serde_json::from_str(&synth(&file, "json")).unwrap()
}

/// `(container name, variable) -> valueFrom` of every container's secrets.
fn secrets_by_container(t: &Value) -> Vec<(String, String, String)> {
    containers(t)
        .into_iter()
        .flat_map(|(_, c)| {
            let name = c["Name"].as_str().unwrap().to_string();
            c["Secrets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |s| {
                    (
                        name.clone(),
                        s["Name"].as_str().unwrap().to_string(),
                        s["ValueFrom"].as_str().unwrap_or_default().to_string(),
                    )
                })
        })
        .collect()
}

fn holders(t: &Value, variable: &str) -> Vec<String> {
    let mut names: Vec<String> = secrets_by_container(t)
        .into_iter()
        .filter(|(_, v, _)| v == variable)
        .map(|(c, _, _)| c)
        .collect();
    names.sort();
    names
}

#[test]
fn each_secret_reaches_exactly_the_components_named() {
    let t = template();
    assert_eq!(
        holders(&t, "AIRFLOW__SMTP__SMTP_PASSWORD"),
        ["scheduler", "worker"]
    );
    // The default: every Airflow component but Flower (and never the one-off tasks).
    assert_eq!(
        holders(&t, "AIRFLOW_CONN_TEAM_API"),
        [
            "api-server",
            "dag-processor",
            "scheduler",
            "triggerer",
            "worker"
        ]
    );
    let value_from: Vec<String> = secrets_by_container(&t)
        .into_iter()
        .filter(|(_, v, _)| v == "AIRFLOW_CONN_TEAM_API")
        .map(|(_, _, from)| from)
        .collect();
    assert!(
        value_from.iter().all(|f| *f == format!("{API}:uri::")),
        "{value_from:?}"
    );
}

#[test]
fn no_container_gets_them_as_plain_environment() {
    let t = template();
    for (_, c) in containers(&t) {
        for e in c["Environment"].as_array().cloned().unwrap_or_default() {
            let name = e["Name"].as_str().unwrap_or_default();
            assert!(
                name != "AIRFLOW__SMTP__SMTP_PASSWORD" && name != "AIRFLOW_CONN_TEAM_API",
                "{name} in a plain environment"
            );
        }
    }
}

#[test]
fn the_execution_role_reads_exactly_those_arns_besides_the_stacks_own() {
    let t = template();
    let role = &t["Resources"]["AirflowExecutionRole"]["Properties"];
    let statements = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let user: Vec<&Value> = statements
        .iter()
        .filter(|s| {
            s["Resource"]
                .as_array()
                .is_some_and(|r| r.iter().all(Value::is_string))
                && s["Action"]
                    .to_string()
                    .contains("secretsmanager:GetSecretValue")
        })
        .collect();
    assert_eq!(user.len(), 1, "{statements:?}");
    assert_eq!(
        user[0]["Resource"],
        serde_json::json!([SMTP, API]
            .map(String::from)
            .iter()
            .collect::<std::collections::BTreeSet<_>>())
    );
}
