//! Malformed stack files: each one exits 2 with a message naming the file, the field
//! path (and the line where it is known), and writes no output file.

mod common;

use common::cli;

const BASE: &str = "name: a\nregion: us-east-1\n";

/// `(case, stack file text, field path in the message, line expected in the message)`.
fn cases() -> Vec<(&'static str, String, &'static str, Option<usize>)> {
    let with = |extra: &str| format!("{BASE}{extra}");
    vec![
        ("empty file", String::new(), "(file)", None),
        (
            "missing name",
            "region: us-east-1\n".into(),
            "(file)",
            Some(1),
        ),
        (
            "unknown top-level key",
            with("bogus: 1\n"),
            "bogus",
            Some(3),
        ),
        (
            "unknown nested key",
            with("services:\n  worker:\n    cpuu: 1\n"),
            "services.worker.cpuu",
            Some(5),
        ),
        (
            "wrong type",
            with("services:\n  worker:\n    cpu: big\n"),
            "services.worker.cpu",
            Some(5),
        ),
        (
            "unknown enum variant",
            with("database:\n  engine: mysql\n"),
            "database.engine",
            Some(4),
        ),
        (
            "bad stack name",
            "name: 1bad_name\nregion: us-east-1\n".into(),
            "name",
            Some(1),
        ),
        (
            "bad region",
            "name: a\nregion: moon-base\n".into(),
            "region",
            Some(2),
        ),
        (
            "not Airflow 3",
            with("airflow:\n  version: \"2.10.5\"\n"),
            "airflow.version",
            Some(4),
        ),
        (
            "image with spaces",
            with("airflow:\n  image: \"my image\"\n"),
            "airflow.image",
            Some(4),
        ),
        (
            "managed env override",
            with("airflow:\n  extra_env:\n    AIRFLOW__CORE__FERNET_KEY: x\n"),
            "airflow.extra_env.AIRFLOW__CORE__FERNET_KEY",
            Some(5),
        ),
        (
            "bad env key",
            with("airflow:\n  extra_env:\n    FOO: x\n"),
            "airflow.extra_env.FOO",
            Some(5),
        ),
        (
            "subnets without vpc",
            with("network:\n  subnet_ids: [subnet-12345678, subnet-87654321]\n"),
            "network.subnet_ids",
            Some(4),
        ),
        (
            "vpc with one subnet",
            with("network:\n  vpc_id: vpc-12345678\n  subnet_ids: [subnet-12345678]\n"),
            "network.subnet_ids",
            Some(5),
        ),
        (
            "bad vpc id",
            with("network:\n  vpc_id: vpc-XYZ\n  subnet_ids: [subnet-12345678, subnet-87654321]\n"),
            "network.vpc_id",
            Some(4),
        ),
        (
            "bad cidr",
            with("network:\n  cidr: 10.0.0.0/8\n"),
            "network.cidr",
            Some(4),
        ),
        (
            "too many NAT gateways",
            with("network:\n  nat_gateways: 3\n"),
            "network.nat_gateways",
            Some(4),
        ),
        (
            "bad namespace",
            with("network:\n  namespace: Air_Flow\n"),
            "network.namespace",
            Some(4),
        ),
        (
            "ACU out of range",
            with("database:\n  min_capacity: 0.3\n"),
            "database.min_capacity",
            Some(4),
        ),
        (
            "max below min",
            with("database:\n  min_capacity: 4\n  max_capacity: 2\n"),
            "database.max_capacity",
            Some(5),
        ),
        (
            "bad instance class",
            with("database:\n  engine: rds-postgres\n  instance_class: t4g.micro\n"),
            "database.instance_class",
            Some(5),
        ),
        (
            "old postgres",
            with("database:\n  engine_version: \"11.22\"\n"),
            "database.engine_version",
            Some(4),
        ),
        (
            "reserved db user",
            with("database:\n  username: admin\n"),
            "database.username",
            Some(4),
        ),
        (
            "master named like the Airflow database user",
            with("database:\n  username: Airflow_App\n"),
            "database.username",
            Some(4),
        ),
        (
            "backup days",
            with("database:\n  backup_retention_days: 0\n"),
            "database.backup_retention_days",
            Some(4),
        ),
        (
            "bad fargate cpu",
            with("services:\n  worker:\n    cpu: 300\n"),
            "services.worker.cpu",
            Some(5),
        ),
        (
            "memory does not fit cpu",
            with("services:\n  scheduler:\n    cpu: 256\n    memory: 4096\n"),
            "services.scheduler.memory",
            Some(6),
        ),
        (
            "no scheduler",
            with("services:\n  scheduler:\n    cpu: 512\n    memory: 1024\n    count: 0\n"),
            "services.scheduler.count",
            Some(7),
        ),
        (
            "concurrency zero",
            with("services:\n  worker:\n    concurrency: 0\n"),
            "services.worker.concurrency",
            Some(5),
        ),
        (
            "worker too small for its concurrency (OOM-killed in the e2e run)",
            with("services:\n  worker:\n    cpu: 512\n    memory: 1024\n    concurrency: 8\n"),
            "services.worker.memory",
            Some(6),
        ),
        (
            "negative count",
            with("services:\n  worker:\n    count: -1\n"),
            "services.worker.count",
            Some(5),
        ),
        (
            "overlapping prefixes",
            with("storage:\n  dags_prefix: data\n  logs_prefix: data/logs\n"),
            "storage.logs_prefix",
            Some(5),
        ),
        (
            "prefix with dot-dot",
            with("storage:\n  dags_prefix: ../dags\n"),
            "storage.dags_prefix",
            Some(4),
        ),
        (
            "retention not allowed",
            with("logs:\n  retention_days: 10\n"),
            "logs.retention_days",
            Some(4),
        ),
        (
            "short passwords",
            with("secrets:\n  password_length: 8\n"),
            "secrets.password_length",
            Some(4),
        ),
        (
            "bad rotation token",
            with("secrets:\n  fernet_rotation: \"a b\"\n"),
            "secrets.fernet_rotation",
            Some(4),
        ),
        (
            "redis node type",
            with("redis:\n  engine: elasticache\n  node_type: t4g.micro\n"),
            "redis.node_type",
            Some(5),
        ),
        (
            "tags aws prefix",
            with("tags:\n  \"aws:owner\": me\n"),
            "tags.aws:owner",
            None,
        ),
        (
            "dynamic reference in extra_env",
            with("airflow:\n  extra_env:\n    AIRFLOW__CORE__X: \"{{resolve:secretsmanager:db:SecretString:password}}\"\n"),
            "airflow.extra_env.AIRFLOW__CORE__X",
            Some(5),
        ),
        (
            "dynamic reference in a tag",
            with("tags:\n  team: \"{{resolve:ssm-secure:/team/token}}\"\n"),
            "tags.team",
            Some(4),
        ),
        (
            "kms key neither a choice nor an ARN",
            with("encryption:\n  kms_key: my-key\n"),
            "encryption.kms_key",
            Some(4),
        ),
        (
            "kms key alias instead of a key",
            with("encryption:\n  kms_key: arn:aws:kms:us-east-1:123456789012:alias/airflow\n"),
            "encryption.kms_key",
            Some(4),
        ),
        (
            "kms key in another region",
            with("encryption:\n  kms_key: arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\n"),
            "encryption.kms_key",
            Some(4),
        ),
        (
            "unknown encryption key",
            with("encryption:\n  kms: create\n"),
            "encryption.kms",
            Some(4),
        ),
        (
            "enhanced monitoring interval",
            with("database:\n  monitoring_interval: 20\n"),
            "database.monitoring_interval",
            Some(4),
        ),
        (
            "container insights value",
            with("monitoring:\n  container_insights: on\n"),
            "monitoring.container_insights",
            Some(4),
        ),
        ("not a mapping", "just a string\n".into(), "(file)", None),
        (
            "invalid YAML",
            "name: a\nregion: \"us-east-1\n".into(),
            "region",
            Some(3),
        ),
    ]
}

#[test]
fn malformed_stack_files_exit_2_name_the_field_and_write_nothing() {
    let cases = cases();
    assert!(
        cases.len() >= 25,
        "the acceptance bar is at least 25 malformed files"
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, (case, text, field, line)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&file, &text).unwrap();
        let out_path = dir.path().join(format!("case{i}.json"));
        let out = cli()
            .arg("synth")
            .arg(&file)
            .arg("--out")
            .arg(&out_path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{case}: exit code; stderr: {stderr}"
        );
        assert!(!out_path.exists(), "{case}: an output file was written");
        assert!(out.stdout.is_empty(), "{case}: printed to stdout");
        let location = match line {
            Some(l) => format!("{}:{l}", file.display()),
            None => file.display().to_string(),
        };
        assert!(
            stderr.contains(&location),
            "{case}: expected {location} in: {stderr}"
        );
        assert!(
            stderr.contains(&format!(": {field}: ")),
            "{case}: expected field {field} in: {stderr}"
        );
        let validate = cli().arg("validate").arg(&file).output().unwrap();
        assert_eq!(
            validate.status.code(),
            Some(2),
            "{case}: validate exit code"
        );
    }
}

#[test]
fn a_missing_file_is_bad_input_naming_the_file() {
    let out = cli()
        .args(["synth", "stacks/does-not-exist.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stacks/does-not-exist.yaml"));
}

#[test]
fn several_problems_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(
        &file,
        "name: a\nregion: us-east-1\nlogs:\n  retention_days: 10\nsecrets:\n  password_length: 8\n",
    )
    .unwrap();
    let out = cli().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("logs.retention_days") && stderr.contains("secrets.password_length"),
        "{stderr}"
    );
}
