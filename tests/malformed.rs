//! Malformed stack files: each one exits 2 with a message naming the file, the exact
//! line and column, the field path, and writes no output file. The same corpus checks
//! the JSON Schema (`airflow-stack schema`): every mistake in a single field is refused
//! by a JSON Schema validator too, so an editor flags it while typing.

mod common;

use common::{cli, root};

const BASE: &str = "name: a\nregion: us-east-1\n";

/// What kind of rule a case breaks, which decides whether the JSON Schema must refuse it.
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// A rule on one field's value: the schema states it too.
    Field,
    /// A rule across fields (or across a map's entries); only the CLI checks it, because
    /// JSON Schema cannot say it. The text says which.
    Across(&'static str),
    /// What the YAML text is (syntax, a key given twice, size, nesting): a JSON Schema
    /// validator sees parsed values only.
    Text,
}

struct Case {
    name: &'static str,
    text: String,
    field: &'static str,
    at: (usize, usize),
    rule: Rule,
}

fn case(
    name: &'static str,
    text: String,
    field: &'static str,
    at: (usize, usize),
    rule: Rule,
) -> Case {
    Case {
        name,
        text,
        field,
        at,
        rule,
    }
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// The corpus: every class of mistake issue 13 names and the earlier ones, with the
/// field and the 1-based line and column the first message must carry.
fn cases() -> Vec<Case> {
    use Rule::*;
    vec![
        case(
            "missing name",
            "region: us-east-1\n".into(),
            "(file)",
            (1, 1),
            Field,
        ),
        case(
            "unknown top-level key",
            with("bogus: 1\n"),
            "bogus",
            (3, 1),
            Field,
        ),
        case(
            "unknown nested key",
            with("services:\n  worker:\n    cpuu: 1\n"),
            "services.worker.cpuu",
            (5, 5),
            Field,
        ),
        case(
            "wrong type",
            with("services:\n  worker:\n    cpu: big\n"),
            "services.worker.cpu",
            (5, 5),
            Field,
        ),
        case(
            "unknown enum variant",
            with("database:\n  engine: mysql\n"),
            "database.engine",
            (4, 3),
            Field,
        ),
        case(
            "bad stack name",
            "name: 1bad_name\nregion: us-east-1\n".into(),
            "name",
            (1, 1),
            Field,
        ),
        case(
            "stack name null",
            "name: null\nregion: us-east-1\n".into(),
            "name",
            (1, 1),
            Field,
        ),
        case(
            "stack name empty",
            "name:\nregion: us-east-1\n".into(),
            "name",
            (1, 1),
            Field,
        ),
        case(
            "bad region",
            "name: a\nregion: moon-base\n".into(),
            "region",
            (2, 1),
            Field,
        ),
        case(
            "not Airflow 3",
            with("airflow:\n  version: \"2.10.5\"\n"),
            "airflow.version",
            (4, 3),
            Field,
        ),
        case(
            "image with spaces",
            with("airflow:\n  image: \"my image\"\n"),
            "airflow.image",
            (4, 3),
            Field,
        ),
        case(
            "managed env override",
            with("airflow:\n  extra_env:\n    AIRFLOW__CORE__FERNET_KEY: x\n"),
            "airflow.extra_env.AIRFLOW__CORE__FERNET_KEY",
            (5, 5),
            Field,
        ),
        case(
            "managed env override in lower case",
            with("airflow:\n  extra_env:\n    airflow__core__fernet_key: x\n"),
            "airflow.extra_env.airflow__core__fernet_key",
            (5, 5),
            Field,
        ),
        case(
            "env key in mixed case",
            with("airflow:\n  extra_env:\n    AIRFLOW__Core__Parallelism: \"64\"\n"),
            "airflow.extra_env.AIRFLOW__Core__Parallelism",
            (5, 5),
            Field,
        ),
        case(
            "bad env key",
            with("airflow:\n  extra_env:\n    FOO: x\n"),
            "airflow.extra_env.FOO",
            (5, 5),
            Field,
        ),
        case(
            "secret in extra_env",
            with("airflow:\n  extra_env:\n    AIRFLOW__SMTP__SMTP_PASSWORD: hunter2\n"),
            "airflow.extra_env.AIRFLOW__SMTP__SMTP_PASSWORD",
            (5, 5),
            Field,
        ),
        case(
            "simple auth users set twice",
            with("airflow:\n  auth_manager: simple\n  extra_env:\n    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS: \"me:admin\"\n"),
            "airflow.extra_env.AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
            (6, 5),
            Across("extra_env against airflow.auth_manager"),
        ),
        case(
            "extra_env value too long",
            with(&format!("airflow:\n  extra_env:\n    AIRFLOW__CORE__X: {}\n", "v".repeat(5000))),
            "airflow.extra_env.AIRFLOW__CORE__X",
            (5, 5),
            Field,
        ),
        case(
            "extra_env too large in all",
            with(&format!("airflow:\n  extra_env:\n{}", (0..20).map(|i| format!("    AIRFLOW__CORE__X{i:03}: {}\n", "v".repeat(1000))).collect::<String>())),
            "airflow.extra_env",
            (4, 3),
            Across("a sum over the map's entries, which JSON Schema cannot state"),
        ),
        case(
            "duplicate key in extra_env",
            with("airflow:\n  extra_env:\n    AIRFLOW__CORE__PARALLELISM: \"32\"\n    AIRFLOW__CORE__PARALLELISM: \"64\"\n"),
            "airflow.extra_env.AIRFLOW__CORE__PARALLELISM",
            (6, 5),
            Text,
        ),
        case(
            "duplicate tag",
            with("tags:\n  team: data\n  owner: me\n  team: platform\n"),
            "tags.team",
            (6, 3),
            Text,
        ),
        case(
            "duplicate field",
            with("services:\n  worker:\n    cpu: 512\n    memory: 2048\n    cpu: 1024\n"),
            "services.worker.cpu",
            (7, 5),
            Text,
        ),
        case(
            "duplicate key in a flow map",
            with("services:\n  worker: { cpu: 512, cpu: 1024 }\n"),
            "services.worker.cpu",
            (4, 23),
            Text,
        ),
        case(
            "too many tags",
            with(&format!("tags:\n{}", (0..49).map(|i| format!("  t{i}: v\n")).collect::<String>())),
            "tags",
            (3, 1),
            Field,
        ),
        case(
            "tag named like the stack's own",
            with("tags:\n  Name: mine\n"),
            "tags.Name",
            (4, 3),
            Field,
        ),
        case(
            "tags aws prefix",
            with("tags:\n  \"aws:owner\": me\n"),
            "tags.aws:owner",
            (4, 3),
            Field,
        ),
        case(
            "subnets without vpc",
            with("network:\n  subnet_ids: [subnet-12345678, subnet-87654321]\n"),
            "network.subnet_ids",
            (4, 3),
            Across("subnet_ids against vpc_id"),
        ),
        case(
            "vpc with one subnet",
            with("network:\n  vpc_id: vpc-12345678\n  subnet_ids: [subnet-12345678]\n"),
            "network.subnet_ids",
            (5, 3),
            Across("subnet_ids against vpc_id"),
        ),
        case(
            "same subnet twice",
            with("network:\n  vpc_id: vpc-12345678\n  subnet_ids:\n    - subnet-12345678\n    - subnet-12345678\n"),
            "network.subnet_ids[1]",
            (7, 7),
            Field,
        ),
        case(
            "bad subnet in a flow list",
            with("network:\n  vpc_id: vpc-12345678\n  subnet_ids: [subnet-12345678, subnet-XYZ]\n"),
            "network.subnet_ids[1]",
            (5, 33),
            Field,
        ),
        case(
            "bad vpc id",
            with("network:\n  vpc_id: vpc-XYZ\n  subnet_ids: [subnet-12345678, subnet-87654321]\n"),
            "network.vpc_id",
            (4, 3),
            Field,
        ),
        case(
            "bad cidr",
            with("network:\n  cidr: 10.0.0.0/8\n"),
            "network.cidr",
            (4, 3),
            Field,
        ),
        case(
            "cidr with host bits",
            with("network:\n  cidr: 10.40.7.0/16\n"),
            "network.cidr",
            (4, 3),
            Field,
        ),
        case(
            "too many NAT gateways",
            with("network:\n  nat_gateways: 3\n"),
            "network.nat_gateways",
            (4, 3),
            Field,
        ),
        case(
            "bad namespace",
            with("network:\n  namespace: Air_Flow\n"),
            "network.namespace",
            (4, 3),
            Field,
        ),
        case(
            "ACU out of range",
            with("database:\n  min_capacity: 0.3\n"),
            "database.min_capacity",
            (4, 3),
            Field,
        ),
        case(
            "max below min",
            with("database:\n  min_capacity: 4\n  max_capacity: 2\n"),
            "database.max_capacity",
            (5, 3),
            Across("max_capacity against min_capacity"),
        ),
        case(
            "bad instance class",
            with("database:\n  engine: rds-postgres\n  instance_class: t4g.micro\n"),
            "database.instance_class",
            (5, 3),
            Field,
        ),
        case(
            "old postgres",
            with("database:\n  engine_version: \"11.22\"\n"),
            "database.engine_version",
            (4, 3),
            Field,
        ),
        case(
            "engine version that only looks like one",
            with("database:\n  engine_version: 17.x\n"),
            "database.engine_version",
            (4, 3),
            Field,
        ),
        case(
            "reserved db user",
            with("database:\n  username: admin\n"),
            "database.username",
            (4, 3),
            Field,
        ),
        case(
            "master named like the Airflow database user",
            with("database:\n  username: Airflow_App\n"),
            "database.username",
            (4, 3),
            Field,
        ),
        case(
            "backup days",
            with("database:\n  backup_retention_days: 0\n"),
            "database.backup_retention_days",
            (4, 3),
            Field,
        ),
        case(
            "bad fargate cpu",
            with("services:\n  worker:\n    cpu: 300\n"),
            "services.worker.cpu",
            (5, 5),
            Field,
        ),
        case(
            "bad fargate cpu in a flow map",
            with("services:\n  worker: { cpu: 300, memory: 1024 }\n"),
            "services.worker.cpu",
            (4, 13),
            Field,
        ),
        case(
            "memory does not fit cpu",
            with("services:\n  scheduler:\n    cpu: 256\n    memory: 4096\n"),
            "services.scheduler.memory",
            (6, 5),
            Across("memory against cpu"),
        ),
        case(
            "memory does not fit cpu in a flow map",
            with("services:\n  scheduler: { cpu: 256, memory: 4096 }\n"),
            "services.scheduler.memory",
            (4, 26),
            Across("memory against cpu"),
        ),
        case(
            "no scheduler",
            with("services:\n  scheduler:\n    cpu: 512\n    memory: 1024\n    count: 0\n"),
            "services.scheduler.count",
            (7, 5),
            Field,
        ),
        case(
            "service cpu null",
            with("services:\n  scheduler: { cpu: null }\n"),
            "services.scheduler.cpu",
            (4, 16),
            Field,
        ),
        case(
            "concurrency zero",
            with("services:\n  worker:\n    concurrency: 0\n"),
            "services.worker.concurrency",
            (5, 5),
            Field,
        ),
        case(
            "worker too small for its concurrency (OOM-killed in the e2e run)",
            with("services:\n  worker:\n    cpu: 512\n    memory: 1024\n    concurrency: 8\n"),
            "services.worker.memory",
            (6, 5),
            Across("memory against concurrency"),
        ),
        case(
            "negative count",
            with("services:\n  worker:\n    count: -1\n"),
            "services.worker.count",
            (5, 5),
            Field,
        ),
        case(
            "overlapping prefixes",
            with("storage:\n  dags_prefix: data\n  logs_prefix: data/logs\n"),
            "storage.logs_prefix",
            (5, 3),
            Across("logs_prefix against dags_prefix"),
        ),
        case(
            "prefix with dot-dot",
            with("storage:\n  dags_prefix: ../dags\n"),
            "storage.dags_prefix",
            (4, 3),
            Field,
        ),
        case(
            "retention not allowed",
            with("logs:\n  retention_days: 10\n"),
            "logs.retention_days",
            (4, 3),
            Field,
        ),
        case(
            "short passwords",
            with("secrets:\n  password_length: 8\n"),
            "secrets.password_length",
            (4, 3),
            Field,
        ),
        case(
            "bad rotation token",
            with("secrets:\n  fernet_rotation: \"a b\"\n"),
            "secrets.fernet_rotation",
            (4, 3),
            Field,
        ),
        case(
            "redis node type",
            with("redis:\n  engine: elasticache\n  node_type: t4g.micro\n"),
            "redis.node_type",
            (5, 3),
            Field,
        ),
        case(
            "dynamic reference in extra_env",
            with("airflow:\n  extra_env:\n    AIRFLOW__CORE__X: \"{{resolve:secretsmanager:db:SecretString:password}}\"\n"),
            "airflow.extra_env.AIRFLOW__CORE__X",
            (5, 5),
            Across("a rule on every string of the file"),
        ),
        case(
            "dynamic reference in a tag",
            with("tags:\n  team: \"{{resolve:ssm-secure:/team/token}}\"\n"),
            "tags.team",
            (4, 3),
            Across("a rule on every string of the file"),
        ),
        case(
            "kms key neither a choice nor an ARN",
            with("encryption:\n  kms_key: my-key\n"),
            "encryption.kms_key",
            (4, 3),
            Field,
        ),
        case(
            "kms key alias instead of a key",
            with("encryption:\n  kms_key: arn:aws:kms:us-east-1:123456789012:alias/airflow\n"),
            "encryption.kms_key",
            (4, 3),
            Field,
        ),
        case(
            "kms key in another region",
            with("encryption:\n  kms_key: arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\n"),
            "encryption.kms_key",
            (4, 3),
            Across("kms_key against region"),
        ),
        case(
            "unknown encryption key",
            with("encryption:\n  kms: create\n"),
            "encryption.kms",
            (4, 3),
            Field,
        ),
        case(
            "enhanced monitoring interval",
            with("database:\n  monitoring_interval: 20\n"),
            "database.monitoring_interval",
            (4, 3),
            Field,
        ),
        case(
            "container insights value",
            with("monitoring:\n  container_insights: on\n"),
            "monitoring.container_insights",
            (4, 3),
            Field,
        ),
        case(
            "cron with both day fields",
            with("schedule:\n  resume: cron(0 7 * * MON-FRI *)\n  pause: cron(0 19 ? * MON-FRI *)\n"),
            "schedule.resume",
            (4, 3),
            Field,
        ),
        case(
            "cron with five fields",
            with("schedule:\n  resume: cron(0 7 * * MON-FRI)\n  pause: cron(0 19 ? * MON-FRI *)\n"),
            "schedule.resume",
            (4, 3),
            Field,
        ),
        case(
            "secret_env with a partial secret ARN",
            with("airflow:\n  secret_env:\n    AIRFLOW__SMTP__SMTP_PASSWORD:\n      secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:smtp\n"),
            "airflow.secret_env.AIRFLOW__SMTP__SMTP_PASSWORD.secret",
            (6, 7),
            Field,
        ),
        case(
            "secret_env naming a managed variable",
            with("airflow:\n  secret_env:\n    AIRFLOW__CORE__FERNET_KEY: { secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf }\n"),
            "airflow.secret_env.AIRFLOW__CORE__FERNET_KEY",
            (5, 5),
            Field,
        ),
        case(
            "secret_env name in lower case",
            with("airflow:\n  secret_env:\n    smtp_password: { secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf }\n"),
            "airflow.secret_env.smtp_password",
            (5, 5),
            Field,
        ),
        case(
            "stream with a plain http URL",
            with("network:\n  nat_gateways: 1\nstreams:\n  - name: s\n    url: http://e.example.com/s\n    format: sse\n    target: {dag: d}\n"),
            "streams[0].url",
            (7, 5),
            Field,
        ),
        case(
            "stream with two targets",
            with("network:\n  nat_gateways: 1\nstreams:\n  - name: s\n    url: https://e.example.com/s\n    format: sse\n    target: {dag: d, asset: s3://b/k}\n"),
            "streams[0].target",
            (9, 5),
            Field,
        ),
        case(
            "two streams with one name",
            with("network:\n  nat_gateways: 1\nstreams:\n  - name: s\n    url: https://e.example.com/s\n    format: sse\n    target: {dag: d}\n  - name: s\n    url: https://e.example.com/t\n    format: ndjson\n    target: {asset: s3://b/k}\n"),
            "streams[1].name",
            (10, 5),
            Across("a rule across the list's entries"),
        ),
        case(
            "lambda_functions with a bad function name",
            with("airflow:\n  lambda_functions: [load-orders, \"load*\"]\n"),
            "airflow.lambda_functions[1]",
            (4, 35),
            Field,
        ),
        case(
            "lambda_functions with a bad function ARN in a map",
            with("airflow:\n  lambda_functions:\n    - function: arn:aws:lambda:eu-west-1:1234:function:x\n"),
            "airflow.lambda_functions[0].function",
            (5, 7),
            Field,
        ),
        case(
            "lambda_functions with a bad log group",
            with("airflow:\n  lambda_functions:\n    - function: x\n      log_group: /aws/lambda/*\n"),
            "airflow.lambda_functions[0].log_group",
            (6, 7),
            Field,
        ),
        case(
            "lambda_functions naming a function twice",
            with("airflow:\n  lambda_functions:\n    - x\n    - function: x\n      log_group: /y\n"),
            "airflow.lambda_functions[1]",
            (6, 7),
            Across("a rule across the list's entries (a name and a map of the same function differ as JSON)"),
        ),
        case(
            "secret_env and extra_env give one variable",
            with("airflow:\n  extra_env:\n    AIRFLOW__SMTP__SMTP_USER: me\n  secret_env:\n    AIRFLOW__SMTP__SMTP_USER: { secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf }\n"),
            "airflow.secret_env.AIRFLOW__SMTP__SMTP_USER",
            (7, 5),
            Across("secret_env against extra_env"),
        ),
        case(
            "secret_env for a Flower that does not run",
            with("airflow:\n  secret_env:\n    AIRFLOW__SMTP__SMTP_PASSWORD:\n      secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf\n      components: [worker, flower]\n"),
            "airflow.secret_env.AIRFLOW__SMTP__SMTP_PASSWORD.components[1]",
            (7, 28),
            Across("components against services.flower.enabled"),
        ),
        case(
            "secrets_backend prefix with a wildcard",
            with("airflow:\n  secrets_backend:\n    connections_prefix: airflow/*\n"),
            "airflow.secrets_backend.connections_prefix",
            (5, 5),
            Field,
        ),
        case(
            "secrets_backend prefix ending in a slash",
            with("airflow:\n  secrets_backend: { variables_prefix: airflow/variables/ }\n"),
            "airflow.secrets_backend.variables_prefix",
            (4, 22),
            Field,
        ),
        case(
            "secrets_backend for Flower",
            with("airflow:\n  secrets_backend:\n    components: [worker, flower]\n"),
            "airflow.secrets_backend.components[1]",
            (5, 26),
            Field,
        ),
        case(
            "secrets_backend component listed twice",
            with("airflow:\n  secrets_backend:\n    components: [worker, triggerer, worker]\n"),
            "airflow.secrets_backend.components[2]",
            (5, 37),
            Field,
        ),
        case(
            "secrets_backend with no component",
            with("airflow:\n  secrets_backend:\n    components: []\n"),
            "airflow.secrets_backend.components",
            (5, 5),
            Field,
        ),
        case(
            "secrets_backend prefix over the stack's own secrets",
            with("airflow:\n  secrets_backend:\n    variables_prefix: a/vars\n"),
            "airflow.secrets_backend.variables_prefix",
            (5, 5),
            Across("a prefix against the stack name, under which the stack's own secrets are"),
        ),
        case(
            "secrets_backend with one prefix for both",
            with("airflow:\n  secrets_backend:\n    connections_prefix: team/airflow\n    variables_prefix: team/airflow\n"),
            "airflow.secrets_backend.variables_prefix",
            (6, 5),
            Across("variables_prefix against connections_prefix"),
        ),
        case(
            "extra_env setting the secrets backend while the stack does",
            with("airflow:\n  secrets_backend: {}\n  extra_env:\n    AIRFLOW__SECRETS__BACKEND_KWARG__CONNECTIONS_PREFIX: other\n"),
            "airflow.extra_env.AIRFLOW__SECRETS__BACKEND_KWARG__CONNECTIONS_PREFIX",
            (6, 5),
            Across("extra_env against airflow.secrets_backend (free while it is off)"),
        ),
        case(
            "secret_env setting the workers' backend while the stack sets one",
            with("airflow:\n  secret_env:\n    AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS: { secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf }\n  secrets_backend: { components: [worker] }\n"),
            "airflow.secret_env.AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS",
            (5, 5),
            Across("secret_env against airflow.secrets_backend (free while it is off)"),
        ),
        case(
            "more subnets than a service takes",
            with(&format!(
                "network:\n  vpc_id: vpc-12345678\n  subnet_ids: [{}]\n",
                (10..27).map(|i| format!("subnet-000000{i}")).collect::<Vec<_>>().join(", ")
            )),
            "network.subnet_ids",
            (5, 3),
            Field,
        ),
        case(
            "more keys and values than any stack file has",
            with(&format!(
                "tags: {{{}}}\n",
                (1..=10_001).map(|i| format!("t{i}: v, ")).collect::<String>()
            )),
            "tags.t4997",
            (3, 48868),
            Text,
        ),
        case(
            "not a mapping",
            "just a string\n".into(),
            "(file)",
            (1, 1),
            Field,
        ),
        case(
            "only null",
            "null\n".into(),
            "(file)",
            (1, 1),
            Field,
        ),
        case(
            "a list, not a map",
            "- name: a\n- region: us-east-1\n".into(),
            "(file)",
            (1, 1),
            Field,
        ),
        case(
            "invalid YAML",
            "name: a\nregion: \"us-east-1\n".into(),
            "region",
            (2, 1),
            Text,
        ),
        case(
            "unclosed quote in a nested field",
            with("airflow:\n  image: \"apache/airflow:3.3.2\n  load_examples: false\n"),
            "airflow.image",
            (4, 3),
            Text,
        ),
        case(
            "NUL byte",
            with("tags:\n  team: data\n  owner: \"me\0\"\n"),
            "tags.owner",
            (5, 13),
            Text,
        ),
        case(
            "tab indentation",
            with("services:\n\tworker:\n\t\tcpu: 512\n"),
            "services",
            (3, 1),
            Text,
        ),
        case(
            "two documents",
            with("---\nname: b\n"),
            "(file)",
            (3, 1),
            Text,
        ),
        case(
            "nested too deep",
            with(&format!("tags: {}{}\n", "[".repeat(20), "]".repeat(20))),
            "tags[0][0][0][0][0][0][0][0][0][0][0][0][0][0]",
            (3, 22),
            Text,
        ),
    ]
}

#[test]
fn malformed_stack_files_exit_2_name_the_spot_and_write_nothing() {
    let cases = cases();
    assert!(
        cases.len() >= 70,
        "the corpus covers every class of mistake"
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, case) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&file, &case.text).unwrap();
        let out_path = dir.path().join(format!("case{i}.json"));
        let out = cli()
            .arg("synth")
            .arg(&file)
            .arg("--out")
            .arg(&out_path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = case.name;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: exit code; stderr: {stderr}"
        );
        assert!(!out_path.exists(), "{name}: an output file was written");
        assert!(out.stdout.is_empty(), "{name}: printed to stdout");
        let (line, column) = case.at;
        let first = stderr.lines().next().unwrap_or_default();
        let spot = format!("{}:{line}:{column}: {}: ", file.display(), case.field);
        assert!(
            first.contains(&spot),
            "{name}: expected `{spot}` in the first line of: {stderr}"
        );
        let validate = cli().arg("validate").arg(&file).output().unwrap();
        assert_eq!(
            validate.status.code(),
            Some(2),
            "{name}: validate exit code"
        );
    }
}

/// The stack file as an editor's YAML language server reads it (YAML 1.2 core schema),
/// as JSON for the validator.
fn as_json(text: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(text).unwrap_or(serde_json::Value::Null)
}

fn schema_validator() -> jsonschema::Validator {
    let out = cli().arg("schema").output().unwrap();
    assert!(out.status.success(), "airflow-stack schema failed");
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

#[test]
fn the_json_schema_refuses_every_single_field_mistake_the_cli_refuses() {
    let validator = schema_validator();
    let mut checked = 0;
    for case in cases() {
        match case.rule {
            Rule::Field => {
                let value = as_json(&case.text);
                assert!(
                    !validator.is_valid(&value),
                    "{}: the CLI refuses {} but the JSON Schema accepts it",
                    case.name,
                    case.field
                );
                checked += 1;
            }
            Rule::Across(why) => assert!(!why.is_empty()),
            Rule::Text => {}
        }
    }
    assert!(checked >= 50, "only {checked} single-field cases");
}

#[test]
fn the_json_schema_accepts_the_example_stacks_and_a_partial_service_block() {
    let validator = schema_validator();
    let partial = with("services:\n  scheduler: { count: 2 }\n  worker: { memory: 4096 }\n");
    let backend = with(
        "airflow:\n  secrets_backend:\n    connections_prefix: team/conns\n    components: [worker]\n",
    );
    let lambdas = with(
        "airflow:\n  lambda_functions:\n    - load-orders\n    - arn:aws:lambda:eu-west-1:210987654321:function:reports:live\n    - arn:aws-us-gov:lambda:us-gov-west-1:210987654321:function:f:$LATEST\n    - function: enrich\n      log_group: /team/functions#1\n    - { function: \"arn:aws:lambda:eu-west-1:210987654321:function:g\" }\n",
    );
    let examples = ["stacks/dev.yaml", "stacks/prod.yaml"].map(|f| {
        (
            f.to_string(),
            std::fs::read_to_string(root().join(f)).unwrap(),
        )
    });
    for (name, text) in examples.into_iter().chain([
        ("partial".to_string(), partial),
        ("secrets backend".to_string(), backend),
        ("lambda functions".to_string(), lambdas),
    ]) {
        let value = as_json(&text);
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

#[test]
fn a_file_over_1_mib_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.yaml");
    let filler = "# ".to_string() + &"x".repeat(1024 * 1024);
    std::fs::write(&file, format!("{BASE}{filler}\n")).unwrap();
    let out = cli().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("at most 1048576 bytes (1 MiB)"), "{stderr}");
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
