//! `airflow.secrets_backend` (issue 15, point 3) and the images' registries (point 2):
//! the backend setting reaches exactly the components named, only their task roles may
//! read Secrets Manager, and only under the two prefixes; with the backend off nothing
//! changes. No image of the stack but the Airflow image comes from Docker Hub.

mod common;

use common::{containers, default_template, synth};
use serde_json::Value;

const BACKEND: &str = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend";

fn template(extra: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, format!("name: a\nregion: eu-west-1\n{extra}")).unwrap();
    serde_json::from_str(&synth(&file, "json")).unwrap()
}

/// The names of the containers whose environment sets `variable`, sorted.
fn setting(t: &Value, variable: &str) -> Vec<String> {
    let mut names: Vec<String> = containers(t)
        .into_iter()
        .filter(|(_, c)| {
            c["Environment"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["Name"] == variable)
        })
        .map(|(_, c)| c["Name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// `(role logical id, statement)` of every statement naming a Secrets Manager action,
/// but the execution roles' and the Lambdas' (which read the stack's own secrets).
fn task_role_secret_statements(t: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (id, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::IAM::Role" || !id.ends_with("TaskRole") {
            continue;
        }
        for policy in r["Properties"]["Policies"].as_array().into_iter().flatten() {
            for s in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                if s["Action"].to_string().contains("secretsmanager:") {
                    found.push((id.clone(), s.clone()));
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// `arn:${Partition}:secretsmanager:${Region}:${AccountId}:secret:<prefix>/*` as the
/// template writes it.
fn prefix_arn(prefix: &str) -> Value {
    serde_json::json!({"Fn::Join": ["", [
        "arn:", {"Ref": "AWS::Partition"}, ":secretsmanager:", {"Ref": "AWS::Region"}, ":",
        {"Ref": "AWS::AccountId"}, ":", format!("secret:{prefix}/*")
    ]]})
}

#[test]
fn the_default_components_get_the_backend_and_their_roles_read_exactly_the_two_prefixes() {
    let t = template("airflow:\n  secrets_backend: {}\nservices:\n  flower: { enabled: true }\n");
    assert_eq!(
        setting(&t, "AIRFLOW__SECRETS__BACKEND"),
        ["dag-processor", "triggerer", "worker"]
    );
    assert_eq!(
        setting(&t, "AIRFLOW__SECRETS__BACKEND_KWARGS"),
        ["dag-processor", "triggerer", "worker"]
    );
    let (_, worker) = containers(&t)
        .into_iter()
        .find(|(_, c)| c["Name"] == "worker")
        .unwrap();
    let env = |name: &str| {
        worker["Environment"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["Name"] == name)
            .unwrap()["Value"]
            .clone()
    };
    assert_eq!(env("AIRFLOW__SECRETS__BACKEND"), BACKEND);
    // The JSON the provider reads: both prefixes, never the stack's own connection
    // (aws_default, in the environment), no configuration lookups, the stack's region.
    assert_eq!(
        env("AIRFLOW__SECRETS__BACKEND_KWARGS"),
        serde_json::json!({"Fn::Join": ["", [
            "{\"connections_prefix\": \"airflow/connections\", \"connections_lookup_pattern\": \"^(?!aws_default$)\", \"variables_prefix\": \"airflow/variables\", \"config_prefix\": null, \"region_name\": \"",
            {"Ref": "AWS::Region"},
            "\"}"
        ]]})
    );
    let allowed = serde_json::json!({
        "Action": ["secretsmanager:GetSecretValue"],
        "Effect": "Allow",
        "Resource": [prefix_arn("airflow/connections"), prefix_arn("airflow/variables")]
    });
    let statements = task_role_secret_statements(&t);
    let roles: Vec<&str> = statements.iter().map(|(id, _)| id.as_str()).collect();
    // The api-server's, the scheduler's and Flower's roles (Flower has none) get nothing.
    assert_eq!(
        roles,
        [
            "DagProcessorTaskRole",
            "TriggererTaskRole",
            "WorkerTaskRole"
        ]
    );
    for (id, s) in &statements {
        assert_eq!(s, &allowed, "{id}");
    }
}

#[test]
fn named_components_and_prefixes_are_exactly_what_is_granted() {
    let t = template(
        "airflow:\n  secrets_backend:\n    connections_prefix: team-a/conns\n    variables_prefix: team-a/vars\n    components: [worker, api_server]\n",
    );
    assert_eq!(
        setting(&t, "AIRFLOW__SECRETS__BACKEND"),
        ["api-server", "worker"]
    );
    let statements = task_role_secret_statements(&t);
    let roles: Vec<&str> = statements.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(roles, ["ApiServerTaskRole", "WorkerTaskRole"]);
    for (_, s) in statements {
        assert_eq!(
            s["Resource"],
            serde_json::json!([prefix_arn("team-a/conns"), prefix_arn("team-a/vars")])
        );
    }
}

#[test]
fn with_the_packed_core_the_shared_role_reads_only_when_a_core_component_is_named() {
    let packed = "services:\n  packing: core\n";
    let worker_only = template(&format!(
        "{packed}airflow:\n  secrets_backend: {{ components: [worker] }}\n"
    ));
    let roles: Vec<String> = task_role_secret_statements(&worker_only)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(roles, ["WorkerTaskRole"]);
    let scheduler = template(&format!(
        "{packed}airflow:\n  secrets_backend: {{ components: [scheduler] }}\n"
    ));
    let roles: Vec<String> = task_role_secret_statements(&scheduler)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(roles, ["CoreTaskRole"]);
    // The setting still goes to the scheduler's container alone.
    assert_eq!(
        setting(&scheduler, "AIRFLOW__SECRETS__BACKEND"),
        ["scheduler"]
    );
}

#[test]
fn off_by_default_no_task_role_reads_secrets_manager_and_no_container_has_a_backend() {
    let t = default_template();
    assert!(task_role_secret_statements(&t).is_empty());
    assert!(setting(&t, "AIRFLOW__SECRETS__BACKEND").is_empty());
    // With the backend off, a backend of the user's own may still be configured.
    let own = template(
        "airflow:\n  extra_env:\n    AIRFLOW__SECRETS__BACKEND: airflow.providers.hashicorp.secrets.vault.VaultBackend\n",
    );
    let holders = setting(&own, "AIRFLOW__SECRETS__BACKEND");
    assert!(
        holders.contains(&"worker".to_string()) && holders.contains(&"scheduler".to_string()),
        "{holders:?}"
    );
    assert!(task_role_secret_statements(&own).is_empty());
}

#[test]
fn with_a_customer_managed_key_the_backend_statement_adds_no_key_use() {
    // The connections are the user's secrets, under the user's key (as for
    // airflow.secret_env): the backend grants GetSecretValue on the prefixes and nothing
    // else, so the worker's role gains no KMS statement from it.
    let base = "encryption:\n  kms_key: create\n";
    let kms_actions = |t: &Value| -> Vec<String> {
        t["Resources"]["WorkerTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Action"].to_string().contains("kms:"))
            .map(|s| s.to_string())
            .collect()
    };
    let off = template(base);
    let on = template(&format!("{base}airflow:\n  secrets_backend: {{}}\n"));
    assert_eq!(kms_actions(&off), kms_actions(&on));
}

#[test]
fn only_the_airflow_image_comes_from_docker_hub() {
    // Docker Hub limits anonymous pulls per source address; every image the stack picks
    // but Airflow's (which has no official mirror) names another registry.
    for t in [default_template(), template("redis: { engine: fargate }\n")] {
        for (_, c) in containers(&t) {
            let image = c["Image"].as_str().unwrap();
            if image.starts_with("apache/airflow:") {
                continue;
            }
            let host = image.split('/').next().unwrap();
            assert!(
                host.contains('.') && host != "docker.io",
                "{}: {image} would be pulled from Docker Hub",
                c["Name"]
            );
        }
    }
    let t = template("");
    let redis = containers(&t)
        .into_iter()
        .find(|(_, c)| c["Name"] == "redis")
        .unwrap()
        .1;
    assert_eq!(
        redis["Image"],
        "public.ecr.aws/docker/library/redis:7.4-alpine"
    );
}
