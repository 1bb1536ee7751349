//! `synth` of the default stack: snapshot, determinism, and the secret-handling rules.

mod common;

use common::{cli, containers, default_template, root, synth};
use serde_json::Value;

#[test]
fn default_template_matches_the_snapshot() {
    let text = synth(&root().join("stacks/dev.yaml"), "json");
    insta::assert_snapshot!("dev_template_json", text);
}

#[test]
fn two_runs_render_identical_bytes_in_both_formats() {
    for format in ["json", "yaml"] {
        for file in ["stacks/dev.yaml", "stacks/prod.yaml"] {
            let a = synth(&root().join(file), format);
            let b = synth(&root().join(file), format);
            assert_eq!(a, b, "{file} as {format} differs between runs");
        }
    }
}

#[test]
fn yaml_output_is_the_same_template_as_json() {
    let json: Value =
        serde_json::from_str(&synth(&root().join("stacks/dev.yaml"), "json")).unwrap();
    let yaml: Value =
        serde_yaml_ng::from_str(&synth(&root().join("stacks/dev.yaml"), "yaml")).unwrap();
    assert_eq!(json, yaml);
}

#[test]
fn out_writes_the_file_and_nothing_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let out = cli()
        .args(["synth", "stacks/dev.yaml", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(written, default_template());
}

/// Strings that must never be literal in a template: anything that looks like a key,
/// password or connection URL with credentials.
fn looks_secret(s: &str) -> bool {
    let fernet_like = s.len() == 44
        && s.ends_with('=')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=".contains(c));
    let url_with_password = ["postgresql", "redis://", "rediss://", "db+"]
        .iter()
        .any(|p| s.contains(p))
        && s.contains('@');
    let long_token = s.len() >= 32
        && s.chars().all(|c| c.is_ascii_alphanumeric())
        && s.chars().any(|c| c.is_ascii_digit());
    fernet_like || url_with_password || long_token
}

fn walk_strings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path, s)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| walk_strings(x, format!("{path}[{i}]"), out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| walk_strings(x, format!("{path}.{k}"), out)),
        _ => {}
    }
}

#[test]
fn no_secret_value_or_password_like_literal_appears_anywhere() {
    for file in ["stacks/dev.yaml", "stacks/prod.yaml"] {
        let template: Value = serde_json::from_str(&synth(&root().join(file), "json")).unwrap();
        let mut strings = Vec::new();
        walk_strings(&template, String::new(), &mut strings);
        let logical_ids = template["Resources"].as_object().unwrap();
        for (path, s) in strings {
            // A resource's own logical id (in DependsOn, Ref, GetAtt) names it; it is
            // no secret, however long.
            if logical_ids.contains_key(s) {
                continue;
            }
            assert!(
                !looks_secret(s),
                "{file}: secret-like literal at {path}: {s}"
            );
            let lower = s.to_ascii_lowercase();
            assert!(
                !lower.contains("password=") && !lower.contains("secret="),
                "{file}: {path}: {s}"
            );
        }
        for (id, c) in containers(&template) {
            // A container without environment (Redis) has no `Environment` key at all.
            for env in c["Environment"].as_array().into_iter().flatten() {
                let name = env["Name"].as_str().unwrap();
                let secret_name = [
                    "PASSWORD",
                    "FERNET",
                    "SECRET_KEY",
                    "JWT",
                    "SQL_ALCHEMY_CONN",
                    "BROKER_URL",
                    "RESULT_BACKEND",
                ]
                .iter()
                .any(|k| name.contains(k));
                assert!(
                    !secret_name,
                    "{file}: {id} passes {name} as plain environment"
                );
            }
        }
        for (id, output) in template["Outputs"].as_object().unwrap() {
            let v = &output["Value"];
            assert!(
                v.get("Fn::GetAtt").is_none() || !v.to_string().contains("Secret"),
                "{file}: output {id} exposes a secret attribute"
            );
        }
        assert_dynamic_references_only_in_password_fields(file, &template);
    }
}

/// `{{resolve:secretsmanager:…}}` is allowed only where AWS takes a password.
fn assert_dynamic_references_only_in_password_fields(file: &str, template: &Value) {
    for (id, res) in template["Resources"].as_object().unwrap() {
        for (key, value) in res["Properties"].as_object().into_iter().flatten() {
            if value.to_string().contains("{{resolve:") {
                assert!(
                    ["MasterUserPassword", "AuthToken"].contains(&key.as_str()),
                    "{file}: {id}.{key} resolves a secret"
                );
            }
        }
    }
}

/// Which secrets each Airflow container gets (issue 11): Celery workers and Flower run
/// or watch task code and get the broker only; the migration the database only.
const SECRETS_BY_CONTAINER: &[(&str, &[&str])] = &[
    ("api-server", &["FERNET", "API_SECRET", "JWT", "DB"]),
    (
        "scheduler",
        &["FERNET", "API_SECRET", "JWT", "DB", "BROKER", "RESULTS"],
    ),
    ("dag-processor", &["FERNET", "API_SECRET", "JWT", "DB"]),
    ("triggerer", &["FERNET", "API_SECRET", "JWT", "DB"]),
    ("worker", &["BROKER", "RESULTS"]),
    ("flower", &["BROKER", "RESULTS"]),
    (
        "migrate",
        &[
            "MASTER_DB",
            "AIRFLOW_DB_URL",
            "AIRFLOW_DB_PASSWORD",
            "ADMIN",
        ],
    ),
    ("rotate-fernet", &["FERNET", "DB"]),
];

/// Environment variable of each secret above.
const SECRET_ENV: &[(&str, &str)] = &[
    ("FERNET", "AIRFLOW__CORE__FERNET_KEY"),
    ("API_SECRET", "AIRFLOW__API__SECRET_KEY"),
    ("JWT", "AIRFLOW__API_AUTH__JWT_SECRET"),
    ("DB", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"),
    ("BROKER", "AIRFLOW__CELERY__BROKER_URL"),
    ("RESULTS", "AIRFLOW__CELERY__RESULT_BACKEND"),
    ("ADMIN", "AIRFLOW_STACK_ADMIN_PASSWORD"),
    // The migration's: the image's entrypoint checks the database as the master, and the
    // migration creates the Airflow user with it; then it migrates as that user.
    ("MASTER_DB", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"),
    ("AIRFLOW_DB_URL", "AIRFLOW_STACK_AIRFLOW_DB_URL"),
    ("AIRFLOW_DB_PASSWORD", "AIRFLOW_STACK_AIRFLOW_DB_PASSWORD"),
];

/// The secret a `ValueFrom` names: `{"Ref": S}` or one JSON key of it,
/// `{"Fn::Join": ["", [{"Ref": S}, ":key::"]]}`.
fn secret_of(value_from: &Value) -> Option<&str> {
    if let Some(id) = value_from["Ref"].as_str() {
        return Some(id);
    }
    let parts = value_from["Fn::Join"][1].as_array()?;
    let key = parts.get(1)?.as_str()?;
    (parts.len() == 2 && key.starts_with(':') && key.ends_with("::")).then_some(())?;
    parts[0]["Ref"].as_str()
}

#[test]
fn each_airflow_container_gets_only_its_secrets_each_from_one_secret_resource() {
    for file in ["stacks/dev.yaml", "stacks/prod.yaml"] {
        let template: Value = serde_json::from_str(&synth(&root().join(file), "json")).unwrap();
        let airflow: Vec<_> = containers(&template)
            .into_iter()
            .filter(|(_, c)| c["Image"].as_str().unwrap().starts_with("apache/airflow"))
            .collect();
        let expected = if file.contains("prod") { 8 } else { 7 };
        assert_eq!(
            airflow.len(),
            expected,
            "{file}: api-server, scheduler, dag-processor, triggerer, worker, migrate, rotate-fernet (+flower)"
        );
        let mut sources: std::collections::BTreeMap<&str, std::collections::BTreeSet<String>> =
            Default::default();
        for (id, c) in &airflow {
            let name = c["Name"].as_str().unwrap();
            let (_, wanted) = SECRETS_BY_CONTAINER
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{file}: unexpected container {name} in {id}"));
            let mut want: Vec<&str> = wanted
                .iter()
                .map(|w| SECRET_ENV.iter().find(|(k, _)| k == w).unwrap().1)
                .collect();
            let mut got: Vec<&str> = c["Secrets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["Name"].as_str().unwrap())
                .collect();
            if name == "api-server" && file.contains("simple") {
                want.push("AIRFLOW_STACK_ADMIN_PASSWORD");
            }
            want.sort();
            got.sort();
            assert_eq!(got, want, "{file}: secrets of the {name} container ({id})");
            for s in c["Secrets"].as_array().unwrap() {
                let target = secret_of(&s["ValueFrom"]).unwrap_or_else(|| {
                    panic!("{file}: {name}: ValueFrom is not a secret ARN or key: {s}")
                });
                assert_eq!(
                    template["Resources"][target]["Type"],
                    "AWS::SecretsManager::Secret"
                );
                let from = s["ValueFrom"].to_string();
                if s["Name"] == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" {
                    // Only the migration connects as the master.
                    let key = if name == "migrate" {
                        "\":sql_alchemy_conn::\""
                    } else {
                        "\":airflow_sql_alchemy_conn::\""
                    };
                    assert!(from.contains(key), "{file}: {name} gets {from}");
                    if name == "migrate" {
                        continue;
                    }
                }
                sources
                    .entry(s["Name"].as_str().unwrap())
                    .or_default()
                    .insert(s["ValueFrom"].to_string());
            }
        }
        for (name, from) in &sources {
            assert_eq!(
                from.len(),
                1,
                "{file}: {name} comes from different secrets: {from:?}"
            );
        }
        // The result backend is the broker's Redis (workers hold no database URL).
        assert_eq!(
            sources["AIRFLOW__CELERY__RESULT_BACKEND"],
            sources["AIRFLOW__CELERY__BROKER_URL"]
        );
        let envs: std::collections::BTreeSet<String> = airflow
            .iter()
            .map(|(_, c)| {
                let shared: Vec<_> = c["Environment"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| {
                        e["Name"] != "AIRFLOW__API__WORKERS" && e["Name"] != "DUMB_INIT_SETSID"
                    })
                    .cloned()
                    .collect();
                serde_json::to_string(&shared).unwrap()
            })
            .collect();
        assert_eq!(
            envs.len(),
            1,
            "{file}: Airflow containers disagree on the shared configuration"
        );
    }
}

#[test]
fn services_and_the_database_wait_for_the_generated_secrets() {
    let t = default_template();
    let res = t["Resources"].as_object().unwrap();
    let depends = |id: &str| -> Vec<String> {
        res[id]["DependsOn"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    for (id, r) in res {
        if r["Type"] == "AWS::ECS::Service" && id != "RedisService" {
            assert!(
                depends(id).contains(&"Migration".to_string()),
                "{id} must depend on the migration"
            );
        }
    }
    assert!(depends("RedisService").contains(&"GeneratedSecrets".to_string()));
    assert!(depends("DatabaseInstance").contains(&"GeneratedSecrets".to_string()));
    assert!(depends("ConnectionUrls").contains(&"GeneratedSecrets".to_string()));
    assert!(depends("Migration").contains(&"ConnectionUrls".to_string()));
}

#[test]
fn data_survives_deletion_and_replacement() {
    let t = default_template();
    let r = &t["Resources"];
    for (id, policy) in [
        ("DataBucket", "Retain"),
        ("FernetKeySecret", "Retain"),
        ("DatabaseSecret", "Retain"),
        ("AdminPasswordSecret", "Retain"),
        ("DatabaseInstance", "Snapshot"),
    ] {
        assert_eq!(r[id]["DeletionPolicy"], policy, "{id}");
        assert_eq!(r[id]["UpdateReplacePolicy"], policy, "{id}");
    }
}

#[test]
fn every_service_has_a_circuit_breaker_and_workers_shut_down_warmly() {
    let t = default_template();
    for (id, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] == "AWS::ECS::Service" {
            let cb = &r["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"];
            assert_eq!(
                cb,
                &serde_json::json!({"Enable": true, "Rollback": true}),
                "{id}"
            );
        }
    }
    let worker = &t["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    assert_eq!(worker["StopTimeout"], 120);
    assert!(worker["Environment"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"Name": "DUMB_INIT_SETSID", "Value": "0"})));
    let strategy = &t["Resources"]["WorkerService"]["Properties"]["CapacityProviderStrategy"][0]
        ["CapacityProvider"];
    assert_eq!(strategy, "FARGATE_SPOT", "dev.yaml puts workers on Spot");
}

#[test]
fn celery_visibility_timeout_is_set_everywhere() {
    // Regression (end-to-end finding): unset, Celery defaults to 24 h and Airflow warns.
    for (id, c) in containers(&default_template())
        .into_iter()
        .filter(|(_, c)| c["Image"].as_str().unwrap().starts_with("apache/airflow"))
    {
        let env = c["Environment"].as_array().unwrap();
        let timeout = env
            .iter()
            .find(|e| e["Name"] == "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT");
        assert_eq!(
            timeout.map(|e| &e["Value"]),
            Some(&serde_json::json!("21600")),
            "{id}"
        );
    }
}

#[test]
fn execution_api_url_points_at_the_cloud_map_name() {
    let t = default_template();
    let (_, c) = containers(&t)
        .into_iter()
        .find(|(id, _)| id == "WorkerTaskDefinition")
        .unwrap();
    let env = c["Environment"].as_array().unwrap();
    let url = env
        .iter()
        .find(|e| e["Name"] == "AIRFLOW__CORE__EXECUTION_API_SERVER_URL")
        .unwrap();
    assert_eq!(url["Value"], "http://api-server.airflow:8080/execution/");
    assert_eq!(
        t["Resources"]["ApiServerDiscovery"]["Properties"]["Name"],
        "api-server"
    );
    assert_eq!(t["Resources"]["Namespace"]["Properties"]["Name"], "airflow");
}

#[test]
fn no_iam_statement_allows_every_action_on_every_resource() {
    for file in ["stacks/dev.yaml", "stacks/prod.yaml"] {
        let template: Value = serde_json::from_str(&synth(&root().join(file), "json")).unwrap();
        for (id, r) in template["Resources"].as_object().unwrap() {
            if r["Type"] != "AWS::IAM::Role" {
                continue;
            }
            for policy in r["Properties"]["Policies"].as_array().unwrap() {
                for st in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                    let actions = st["Action"].as_array().unwrap();
                    assert!(
                        actions.iter().all(|a| !a.as_str().unwrap().ends_with('*')),
                        "{file}: {id} has a wildcard action"
                    );
                    let resources = st["Resource"].as_array().unwrap();
                    // Only actions IAM authorizes on "*" alone may have it: ECS Exec's
                    // (access.mode tunnel, the dev default) - ssmmessages has no resource
                    // types, nor has logs:DescribeLogGroups (Service Authorization
                    // Reference).
                    let star_only = |a: &Value| {
                        let a = a.as_str().unwrap();
                        a.starts_with("ssmmessages:") || a == "logs:DescribeLogGroups"
                    };
                    assert!(
                        resources.iter().all(|r| r != "*") || actions.iter().all(star_only),
                        "{file}: {id} has Resource * for {actions:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn schema_command_prints_the_stack_file_schema() {
    let out = cli().arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "Spec");
    assert_eq!(schema["required"], serde_json::json!(["name", "region"]));
    assert!(schema["properties"]["services"].is_object());
}

#[test]
fn validate_reports_the_resource_count() {
    let out = cli()
        .args(["validate", "stacks/prod.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("stacks/prod.yaml: valid ("), "{text}");
}

fn depends_on(res: &Value) -> Vec<&str> {
    res["DependsOn"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// Logical id of a `{"Fn::GetAtt": [X, "GroupId"]}`.
fn group_of(v: &Value) -> &str {
    v["Fn::GetAtt"][0].as_str().unwrap()
}

/// Issue 11, defect 7: CloudFormation creates independent resources in parallel, so a
/// task that needs a security-group rule or a route to start must depend on it.
#[test]
fn tasks_wait_for_the_rules_and_routes_they_need() {
    for file in ["stacks/dev.yaml", "stacks/prod.yaml"] {
        let t: Value = serde_json::from_str(&synth(&root().join(file), "json")).unwrap();
        let res = t["Resources"].as_object().unwrap();
        let of_type = |kind: &str| -> Vec<&str> {
            res.iter()
                .filter(|(_, r)| r["Type"] == kind)
                .map(|(id, _)| id.as_str())
                .collect()
        };
        let mut egress = of_type("AWS::EC2::Route");
        egress.extend(of_type("AWS::EC2::SubnetRouteTableAssociation"));
        assert!(!egress.is_empty(), "{file}: no routes");
        // Rules from a group of the stack (access's CIDR rules let people in; no task of
        // the stack connects through them).
        let rules: Vec<(&str, &str)> = of_type("AWS::EC2::SecurityGroupIngress")
            .into_iter()
            .filter_map(|id| {
                let source = &res[id]["Properties"]["SourceSecurityGroupId"];
                source["Fn::GetAtt"][0].as_str().map(|group| (id, group))
            })
            .collect();
        let migration = depends_on(&res["Migration"]);
        for id in &egress {
            assert!(
                migration.contains(id),
                "{file}: Migration does not wait for {id}"
            );
        }
        assert!(
            migration.contains(&"DatabaseFromMigrateIngress"),
            "{file}: Migration does not wait for its database rule"
        );
        for (id, r) in res.iter().filter(|(_, r)| r["Type"] == "AWS::ECS::Service") {
            let deps = depends_on(r);
            for route in &egress {
                assert!(
                    deps.contains(route),
                    "{file}: {id} does not wait for {route}"
                );
            }
            let groups: Vec<&str> = r["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
                ["SecurityGroups"]
                .as_array()
                .unwrap()
                .iter()
                .map(group_of)
                .collect();
            for (rule, source) in &rules {
                // Rules this task's connections use (not the ones that let others in).
                if groups.contains(source) {
                    assert!(deps.contains(rule), "{file}: {id} does not wait for {rule}");
                }
            }
        }
    }
}

/// Issue 11, defect 6: two Redis tasks behind one Cloud Map name split the queue.
#[test]
fn redis_on_fargate_is_replaced_stop_first() {
    let t = default_template();
    let dc = &t["Resources"]["RedisService"]["Properties"]["DeploymentConfiguration"];
    assert_eq!(dc["MinimumHealthyPercent"], 0, "{dc}");
    assert_eq!(dc["MaximumPercent"], 100, "{dc}");
    let worker = &t["Resources"]["WorkerService"]["Properties"]["DeploymentConfiguration"];
    assert_eq!(
        worker["MaximumPercent"], 200,
        "other services still start first: {worker}"
    );
}

/// Issue 11, defect 1: HeadBucket and the 404 of a missing key need s3:ListBucket with
/// no prefix in the request; listings stay limited to the component's prefixes.
#[test]
fn task_roles_may_list_the_bucket_without_a_prefix_and_only_their_prefixes_with_one() {
    for file in ["stacks/dev.yaml", "stacks/prod.yaml"] {
        let t: Value = serde_json::from_str(&synth(&root().join(file), "json")).unwrap();
        let mut roles = 0;
        for (id, r) in t["Resources"].as_object().unwrap() {
            // Flower's role is ECS Exec's alone: Flower reads no bucket (tests/access.rs).
            if r["Type"] != "AWS::IAM::Role" || !id.ends_with("TaskRole") || id == "FlowerTaskRole"
            {
                continue;
            }
            roles += 1;
            let statements = r["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                .as_array()
                .unwrap();
            let list = statements
                .iter()
                .find(|s| s["Action"].to_string().contains("s3:ListBucket"))
                .unwrap_or_else(|| panic!("{file}: {id} cannot list the bucket"));
            let prefixes = &list["Condition"]["StringLikeIfExists"]["s3:prefix"];
            let prefixes: Vec<&str> = prefixes
                .as_array()
                .unwrap_or_else(|| panic!("{file}: {id}: {list}"))
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            assert!(prefixes.contains(&""), "{file}: {id}: {prefixes:?}");
            assert!(prefixes.contains(&"dags/*"), "{file}: {id}: {prefixes:?}");
            assert!(
                prefixes
                    .iter()
                    .all(|p| p.is_empty() || p.starts_with("dags") || p.starts_with("logs")),
                "{file}: {id}: {prefixes:?}"
            );
        }
        assert!(roles >= 2, "{file}: {roles} task roles");
    }
}

/// Issue 11, defects 2 and 3: nothing that runs or watches task code reaches PostgreSQL,
/// and the api-server does not call the workers' log servers (they hold no log key).
#[test]
fn workers_and_flower_have_no_path_to_the_database() {
    let t: Value = serde_json::from_str(&synth(&root().join("stacks/prod.yaml"), "json")).unwrap();
    for (id, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::EC2::SecurityGroupIngress" {
            continue;
        }
        let p = &r["Properties"];
        // access's CIDR rules let people in; they are no path between the stack's tasks.
        let Some(from) = p["SourceSecurityGroupId"]["Fn::GetAtt"][0].as_str() else {
            continue;
        };
        let to = group_of(&p["GroupId"]);
        assert!(
            !(to == "DatabaseSecurityGroup"
                && ["WorkerSecurityGroup", "FlowerSecurityGroup"].contains(&from)),
            "{id}: {from} -> {to}"
        );
        assert!(
            !(to == "WorkerSecurityGroup" && p["FromPort"] == 8793),
            "{id}: the api-server reaches the worker log server"
        );
    }
}
