//! cfn-lint (from the test command's virtualenv) on the templates of stacks/dev.yaml,
//! stacks/prod.yaml and variations: nothing at error or warning level.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{root, synth, venv_bin};

const BASE: &str = "name: lint-variation\nregion: us-east-1\n";

/// `(name, stack file additions, output format)`.
fn variations() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("existing-vpc", "network:\n  vpc_id: vpc-0a1b2c3d4e5f60718\n  subnet_ids: [subnet-0a1b2c3d, subnet-1a2b3c4d]\n  assign_public_ip: false\n", "json"),
        ("existing-vpc-public-ip", "network:\n  vpc_id: vpc-0a1b2c3d\n  subnet_ids: [subnet-0a1b2c3d, subnet-1a2b3c4d]\n  assign_public_ip: true\n", "yaml"),
        ("new-vpc-one-nat", "network:\n  nat_gateways: 1\n", "json"),
        ("elasticache", "redis:\n  engine: elasticache\n", "json"),
        ("redis-on-fargate-aurora", "redis:\n  engine: fargate\ndatabase:\n  engine: aurora-serverless-v2\n  min_capacity: 0\n  max_capacity: 2\n", "json"),
        ("rds", "database:\n  engine: rds-postgres\n  instance_class: db.t4g.small\n", "yaml"),
        ("flower-on", "services:\n  flower:\n    enabled: true\n", "json"),
        ("flower-off", "services:\n  flower:\n    enabled: false\n", "yaml"),
        ("spot-everywhere", "services:\n  api_server: {cpu: 512, memory: 1024, spot: true}\n  scheduler: {cpu: 512, memory: 1024, spot: true}\n  worker: {spot: true}\n", "json"),
        ("spot-off-arm64", "services:\n  architecture: arm64\n  worker: {spot: false}\n", "json"),
        ("simple-auth-no-triggerer", "airflow:\n  auth_manager: simple\n  extra_env:\n    AIRFLOW__CORE__PARALLELISM: \"64\"\nservices:\n  triggerer: {cpu: 256, memory: 512, count: 0}\n", "yaml"),
        ("schedule-packed-core", "services:\n  packing: core\n  core: {cpu: 1024, memory: 3072, spot: true}\nschedule:\n  timezone: Europe/Berlin\n  resume: \"cron(0 7 ? * MON-FRI *)\"\n  pause: \"cron(0 19 ? * MON-FRI *)\"\n", "yaml"),
        ("tags-and-rotation", "tags:\n  team: data\nsecrets:\n  fernet_rotation: r1\n  password_length: 48\n", "json"),
        ("autoscaling-and-alerts-created-targets", "network:\n  nat_gateways: 1\nautoscaling:\n  enabled: true\n  max_workers: 8\nalerts:\n  enabled: true\n  slack_webhook_secret: create\n  sns_topic: create\n  ui_base_url: https://airflow.example.com\n", "json"),
        ("autoscaling-only-existing-vpc", "network:\n  vpc_id: vpc-0a1b2c3d4e5f60718\n  subnet_ids: [subnet-0a1b2c3d, subnet-1a2b3c4d]\nautoscaling:\n  enabled: true\n  min_workers: 1\n", "yaml"),
        ("schedule-with-scaler", "network:\n  nat_gateways: 1\nautoscaling:\n  enabled: true\nschedule:\n  timezone: Europe/Berlin\n  resume: \"cron(0 7 ? * MON-FRI *)\"\n  pause: \"cron(0 19 ? * MON-FRI *)\"\n", "yaml"),
        ("kms-key-created", "network:\n  nat_gateways: 1\nredis:\n  engine: fargate\nencryption:\n  kms_key: create\nautoscaling:\n  enabled: true\nalerts:\n  enabled: true\n  slack_webhook_secret: create\n", "json"),
        ("rds-monitoring-on", "database:\n  engine: rds-postgres\n  monitoring_interval: 30\nmonitoring:\n  container_insights: enhanced\n", "yaml"),
        ("kms-key-existing", "encryption:\n  kms_key: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\n", "yaml"),
        ("access-load-balancer-internal-created-certificate", "network:\n  nat_gateways: 1\naccess:\n  mode: load_balancer\n  domain: airflow.example.com\n  hosted_zone_id: Z0123456789EXAMPLEZONE\n  allowed_cidrs: [10.0.0.0/8]\n  allowed_security_groups: [sg-0a1b2c3d4e5f60718]\n", "json"),
        ("access-load-balancer-internet-facing-given-certificate", "access:\n  mode: load_balancer\n  scheme: internet-facing\n  domain: airflow.example.org\n  certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/1234abcd-12ab-34cd-56ef-1234567890ab\n  allowed_cidrs: [203.0.113.0/24, 198.51.100.7/32]\n", "yaml"),
        ("access-load-balancer-open-existing-vpc-packed", "network:\n  vpc_id: vpc-0a1b2c3d4e5f60718\n  subnet_ids: [subnet-0a1b2c3d, subnet-1a2b3c4d]\nservices:\n  packing: core\naccess:\n  mode: load_balancer\n  scheme: internet-facing\n  domain: airflow.example.org\n  hosted_zone_id: Z0123456789EXAMPLEZONE\n  open_to_the_whole_internet: true\n  subnet_ids: [subnet-2a2b3c4d, subnet-3a2b3c4d]\n", "json"),
        ("access-in-vpc-with-flower", "services:\n  flower: {enabled: true}\naccess:\n  mode: in_vpc\n  allowed_cidrs: [10.8.0.0/16]\n  allowed_security_groups: [sg-0a1b2c3d]\n", "yaml"),
        ("access-tunnel-packed-kms", "services:\n  packing: core\nencryption:\n  kms_key: create\naccess:\n  mode: tunnel\n", "json"),
        ("secrets-backend-packed-kms", "services:\n  packing: core\nencryption:\n  kms_key: create\nairflow:\n  secrets_backend:\n    connections_prefix: team/conns\n    components: [worker, scheduler]\n", "yaml"),
        ("streams-alerts-kms", "network:\n  nat_gateways: 1\nencryption:\n  kms_key: create\nalerts:\n  enabled: true\n  sns_topic: create\n  slack_webhook_secret: create\nstreams:\n  - name: orders\n    url: https://events.example.com/orders\n    format: sse\n    auth:\n      header: Authorization\n      secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-token-AbCdEf\n    id_field: id\n    target:\n      dag: ingest_order\n  - name: prices-eu\n    url: https://feed.example.org/prices.ndjson\n    format: ndjson\n    target:\n      asset: s3://prices/eu\n    read_timeout_seconds: 30\n", "json"),
        ("streams-service-runner", "network:\n  nat_gateways: 1\nschedule:\n  timezone: Europe/Berlin\n  resume: \"cron(0 7 ? * MON-FRI *)\"\n  pause: \"cron(0 19 ? * MON-FRI *)\"\nalerts:\n  enabled: true\n  sns_topic: create\nstreams:\n  - name: ticks\n    url: https://ticks.example.com/sse\n    format: sse\n    auth:\n      header: X-Api-Key\n      secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:ticks-key-AbCdEf\n    target: {dag: ticks}\n    runner: service\n  - name: orders\n    url: https://events.example.com/orders\n    format: ndjson\n    target: {dag: orders}\n", "json"),
        ("streams-existing-vpc-simple-auth", "network:\n  vpc_id: vpc-0a1b2c3d4e5f60718\n  subnet_ids: [subnet-0a1b2c3d, subnet-1a2b3c4d]\nairflow:\n  auth_manager: simple\nstreams:\n  - name: clicks\n    url: https://clicks.example.com/v1/stream?format=ndjson\n    format: ndjson\n    target: {dag: clicks}\n", "yaml"),
        ("alerts-only-existing-targets", "network:\n  nat_gateways: 2\nalerts:\n  enabled: true\n  slack_webhook_secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbCdEf\n  sns_topic: arn:aws:sns:us-east-1:123456789012:ops\n", "json"),
    ]
}

fn render_all(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (stack, format) in [
        ("dev", "json"),
        ("prod", "json"),
        ("dev", "yaml"),
        ("prod", "yaml"),
    ] {
        let path = dir.join(format!("{stack}.{format}"));
        std::fs::write(
            &path,
            synth(&root().join(format!("stacks/{stack}.yaml")), format),
        )
        .unwrap();
        files.push(path);
    }
    for (name, extra, format) in variations() {
        let spec = dir.join(format!("{name}.stack.yaml"));
        std::fs::write(&spec, format!("{BASE}{extra}")).unwrap();
        let path = dir.join(format!("{name}.{format}"));
        std::fs::write(&path, synth(&spec, format)).unwrap();
        files.push(path);
    }
    files
}

#[test]
fn cfn_lint_reports_no_error_or_warning_on_any_variation() {
    let dir = tempfile::tempdir().unwrap();
    let files = render_all(dir.path());
    assert!(files.len() >= 2 + 8, "dev, prod and at least 8 variations");
    let out = Command::new(venv_bin("cfn-lint"))
        .args([
            "--format",
            "parseable",
            "--non-zero-exit-code",
            "warning",
            "--regions",
            "us-east-1",
            "eu-west-1",
            "--",
        ])
        .args(&files)
        .output()
        .expect("run cfn-lint");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cfn-lint found problems (exit {:?}):\n{report}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("cfn-lint: {} templates clean", files.len());
}

#[test]
fn cfn_lint_catches_a_broken_template() {
    // Proves the lint step can fail: a property CloudFormation does not know.
    let dir = tempfile::tempdir().unwrap();
    let mut t: serde_json::Value =
        serde_json::from_str(&synth(&root().join("stacks/dev.yaml"), "json")).unwrap();
    t["Resources"]["DataBucket"]["Properties"]["NoSuchProperty"] = serde_json::json!(true);
    let path = dir.path().join("broken.json");
    std::fs::write(&path, serde_json::to_string(&t).unwrap()).unwrap();
    let out = Command::new(venv_bin("cfn-lint"))
        .args(["--format", "parseable", "--"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("E3002"));
}

/// Every template above, as a snapshot (tests/snapshots/cfn_lint__*.snap): a refactor of
/// the constructs or the CloudFormation layer must render byte-identical templates, and an
/// intended difference shows up as a reviewed snapshot change, listed in its commit.
#[test]
fn every_rendered_template_matches_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let files = render_all(dir.path());
    for path in files {
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('.', "_");
        let text = std::fs::read_to_string(&path).unwrap();
        insta::assert_snapshot!(name, text);
    }
}
