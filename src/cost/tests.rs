//! The estimator on fixed templates, with the arithmetic written out.

use std::path::Path;

use serde_json::{json, Value};

use super::*;

fn spec(region: &str) -> Spec {
    crate::spec::parse(
        &format!("name: cost-test\nregion: {region}\n"),
        Path::new("cost-test.yaml"),
    )
    .expect("a minimal stack file parses")
}

fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-6,
        "expected {expected}, got {actual}"
    );
}

fn line<'a>(e: &'a Estimate, item: &str) -> &'a Line {
    e.lines
        .iter()
        .find(|l| l.item == item)
        .unwrap_or_else(|| panic!("no line {item} in {:#?}", e.lines))
}

fn task(cpu: &str, memory: &str, arch: &str) -> Value {
    json!({"Type": "AWS::ECS::TaskDefinition", "Properties": {
        "Cpu": cpu, "Memory": memory,
        "RuntimePlatform": {"CpuArchitecture": arch, "OperatingSystemFamily": "LINUX"}}})
}

fn service(task: &str, count: u32, provider: &str, public_ip: &str) -> Value {
    json!({"Type": "AWS::ECS::Service", "Properties": {
        "TaskDefinition": {"Ref": task}, "DesiredCount": count,
        "CapacityProviderStrategy": [{"CapacityProvider": provider, "Weight": 1, "Base": 0}],
        "NetworkConfiguration": {"AwsvpcConfiguration": {"AssignPublicIp": public_ip}}}})
}

#[test]
fn fargate_rds_public_ips_and_secrets_in_us_east_1() {
    let t = json!({"Resources": {
        "ATask": task("512", "1024", "ARM64"),
        "AService": service("ATask", 2, "FARGATE", "ENABLED"),
        "BTask": task("1024", "2048", "X86_64"),
        "BService": service("BTask", 1, "FARGATE_SPOT", "DISABLED"),
        "Db": {"Type": "AWS::RDS::DBInstance", "Properties": {
            "DBInstanceClass": "db.t4g.micro", "AllocatedStorage": "20", "MultiAZ": false}},
        "S1": {"Type": "AWS::SecretsManager::Secret"},
        "S2": {"Type": "AWS::SecretsManager::Secret"},
    }});
    let e = estimate(&t, &spec("us-east-1")).unwrap();
    // A: 2 x (0.5 vCPU x 0.03238 + 1 GB x 0.00356) = 2 x 0.01975 = 0.0395/h x 730 = 28.835
    close(line(&e, "AService").always_on, 28.835);
    // B: (1 x 0.04048 + 2 x 0.004445) x 0.33 (Spot) = 0.04937 x 0.33 = 0.0162921/h x 730 = 11.893233
    close(line(&e, "BService").always_on, 11.893233);
    // RDS: 0.016 x 730 = 11.68, stopped while paused; 20 GB x 0.115 = 2.30 always
    close(line(&e, "Db").always_on, 11.68);
    close(line(&e, "Db").paused, 0.0);
    close(line(&e, "Db storage").paused, 2.30);
    // Public IPv4: only A's 2 tasks: 2 x 0.005 x 730 = 7.30
    close(line(&e, "Public IPv4 (tasks)").always_on, 7.30);
    // Secrets 2 x 0.40 = 0.80; logs 3 tasks x 0.5 GB x 0.50 = 0.75; S3 1 GB x 0.023
    close(line(&e, "Secrets Manager").paused, 0.80);
    close(line(&e, "CloudWatch Logs").always_on, 0.75);
    // 28.835 + 11.893233 + 11.68 + 2.30 + 7.30 + 0.80 + 0.75 + 0.023 = 63.581233
    close(e.always_on, 63.581233);
    // paused: storage 2.30 + secrets 0.80 + S3 0.023 = 3.123
    close(e.paused, 3.123);
    assert_eq!(e.region, "us-east-1");
}

#[test]
fn aurora_elasticache_nat_and_load_balancer_in_eu_west_1() {
    let t = json!({"Resources": {
        "Cluster": {"Type": "AWS::RDS::DBCluster", "Properties": {
            "ServerlessV2ScalingConfiguration": {"MinCapacity": 0.5, "MaxCapacity": 8}}},
        "Writer": {"Type": "AWS::RDS::DBInstance", "Properties": {
            "DBInstanceClass": "db.serverless", "DBClusterIdentifier": {"Ref": "Cluster"}}},
        "Redis": {"Type": "AWS::ElastiCache::ReplicationGroup", "Properties": {
            "CacheNodeType": "cache.t4g.small", "NumCacheClusters": 2}},
        "Nat1": {"Type": "AWS::EC2::NatGateway"}, "Nat2": {"Type": "AWS::EC2::NatGateway"},
        "Eip1": {"Type": "AWS::EC2::EIP"}, "Eip2": {"Type": "AWS::EC2::EIP"},
        "Alb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
            "Scheme": "internal", "Subnets": ["subnet-1", "subnet-2"]}},
    }});
    let e = estimate(&t, &spec("eu-west-1")).unwrap();
    // Aurora: 1 x 0.5 ACU x 0.13 x 730 = 47.45; paused, `pause` stops the cluster
    // (min > 0), so no ACU bills
    close(line(&e, "Cluster").always_on, 47.45);
    close(line(&e, "Cluster").paused, 0.0);
    // storage: 5 GB (assumed) x 0.11 = 0.55
    close(line(&e, "Cluster storage").always_on, 0.55);
    // ElastiCache: 2 x 0.0352 x 730 = 51.392
    close(line(&e, "Redis").always_on, 51.392);
    // NAT: 2 x 0.048 x 730 = 70.08 + 2 x 10 GB x 0.048 = 0.96 -> 71.04; paused 70.08
    close(line(&e, "NAT gateways").always_on, 71.04);
    close(line(&e, "NAT gateways").paused, 70.08);
    // Elastic IPs: 2 x 0.005 x 730 = 7.30; ALB: (0.0252 + 1 x 0.008) x 730 = 24.236
    close(line(&e, "Public IPv4 (Elastic IPs)").paused, 7.30);
    close(line(&e, "Alb").always_on, 24.236);
    // paused: the hours only (no traffic, no LCU): 0.0252 x 730 = 18.396
    close(line(&e, "Alb").paused, 18.396);
    // 47.45 + 0.55 + 51.392 + 71.04 + 7.30 + 24.236 + 0 secrets + 0 logs + 0.023 S3 = 201.991
    close(e.always_on, 201.991);
    // paused: the same minus the cluster's ACUs (47.45), NAT data (0.96) and the LCU
    // (5.84) = 147.741
    close(e.paused, 147.741);
}

#[test]
fn aurora_at_min_zero_costs_nothing_while_paused() {
    let t = json!({"Resources": {
        "Cluster": {"Type": "AWS::RDS::DBCluster", "Properties": {
            "ServerlessV2ScalingConfiguration": {"MinCapacity": 0, "MaxCapacity": 2}}},
        "Writer": {"Type": "AWS::RDS::DBInstance", "Properties": {
            "DBInstanceClass": "db.serverless", "DBClusterIdentifier": {"Ref": "Cluster"}}},
    }});
    let e = estimate(&t, &spec("us-east-1")).unwrap();
    // while Airflow runs the cluster is active: 0.5 ACU x 0.12 x 730 = 43.80
    close(line(&e, "Cluster").always_on, 43.80);
    close(line(&e, "Cluster").paused, 0.0);
    // storage 5 x 0.10 = 0.50 + S3 0.023
    close(e.paused, 0.523);
}

#[test]
fn a_cluster_without_instances_bills_storage_but_no_compute() {
    // Aurora bills compute per instance; the estimate used to assume one.
    let t = json!({"Resources": {
        "Cluster": {"Type": "AWS::RDS::DBCluster", "Properties": {
            "ServerlessV2ScalingConfiguration": {"MinCapacity": 1, "MaxCapacity": 2}}},
    }});
    let e = estimate(&t, &spec("us-east-1")).unwrap();
    close(line(&e, "Cluster").always_on, 0.0);
    close(line(&e, "Cluster storage").always_on, 0.50);
}

#[test]
fn cloudformation_defaults_apply_only_where_cloudformation_has_them() {
    // No DesiredCount: CloudFormation starts a new service with 1 task. No
    // AssignPublicIp: ECS's default is DISABLED, so no IPv4 line.
    let t = json!({"Resources": {
        "ATask": task("256", "512", "ARM64"),
        "AService": {"Type": "AWS::ECS::Service", "Properties": {
            "TaskDefinition": {"Ref": "ATask"}, "LaunchType": "FARGATE",
            "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": ["subnet-1"]}}}},
    }});
    let e = estimate(&t, &spec("us-east-1")).unwrap();
    assert_eq!(
        line(&e, "AService").detail,
        "1 x 0.25 vCPU / 0.5 GB ARM64, FARGATE"
    );
    assert!(e.lines.iter().all(|l| l.item != "Public IPv4 (tasks)"));
}

/// The error of estimating `resources` (a template the estimate must refuse).
fn refused(resources: Value) -> String {
    let err = estimate(&json!({ "Resources": resources }), &spec("us-east-1")).unwrap_err();
    assert!(
        !err.is_bad_input(),
        "a template problem is not the user's: {err}"
    );
    err.to_string()
}

#[test]
fn a_task_size_is_never_guessed() {
    // The estimate used to price a task without Cpu as 256 units.
    let text = refused(json!({
        "ATask": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"Memory": "512",
            "RuntimePlatform": {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"}}},
        "AService": service("ATask", 1, "FARGATE", "DISABLED"),
    }));
    assert!(
        text.contains("ATask (AWS::ECS::TaskDefinition): Properties: missing field `Cpu`"),
        "{text}"
    );
    let text = refused(json!({
        "ATask": task("256", "512", "ARM64"),
        "AService": {"Type": "AWS::ECS::Service", "Properties": {
            "TaskDefinition": {"Ref": "ATask"}, "DesiredCount": {"Ref": "Count"},
            "LaunchType": "FARGATE"}},
    }));
    assert!(
        text.contains("AService (AWS::ECS::Service): Properties.DesiredCount: invalid type: map"),
        "{text}"
    );
}

#[test]
fn a_service_must_run_a_task_definition_of_the_template_on_fargate() {
    let text = refused(json!({"AService": service("Elsewhere", 1, "FARGATE", "DISABLED")}));
    assert!(
        text.contains("Properties.TaskDefinition: \"Elsewhere\" is not a task definition"),
        "{text}"
    );
    let text = refused(json!({
        "ATask": task("256", "512", "ARM64"),
        "AService": {"Type": "AWS::ECS::Service", "Properties": {"TaskDefinition": {"Ref": "ATask"}}},
    }));
    assert!(
        text.contains("the cluster's default strategy decides"),
        "{text}"
    );
    let text = refused(json!({
        "ATask": task("256", "512", "ARM64"),
        "AService": service("ATask", 1, "MY_EC2_PROVIDER", "DISABLED"),
    }));
    assert!(text.contains("\"MY_EC2_PROVIDER\" is not priced"), "{text}");
}

#[test]
fn database_properties_the_price_depends_on_are_required() {
    let text = refused(
        json!({"Db": {"Type": "AWS::RDS::DBInstance", "Properties": {
        "DBInstanceClass": "db.t4g.micro", "MultiAZ": false}}}),
    );
    assert!(
        text.contains("Db (AWS::RDS::DBInstance): Properties: missing field `AllocatedStorage`"),
        "{text}"
    );
    let text = refused(
        json!({"Db": {"Type": "AWS::RDS::DBInstance", "Properties": {
        "DBInstanceClass": "db.t4g.micro", "MultiAZ": false, "AllocatedStorage": 100,
        "StorageType": "io2", "Iops": 3000}}}),
    );
    assert!(
        text.contains("Properties.StorageType: \"io2\" is not priced"),
        "{text}"
    );
    let text = refused(json!({"Cluster": {"Type": "AWS::RDS::DBCluster", "Properties": {}}}));
    assert!(
        text.contains("missing field `ServerlessV2ScalingConfiguration`"),
        "{text}"
    );
    let text = refused(
        json!({"Writer": {"Type": "AWS::RDS::DBInstance", "Properties": {
        "DBInstanceClass": "db.serverless", "DBClusterIdentifier": {"Ref": "Gone"}}}}),
    );
    assert!(
        text.contains("\"Gone\" is not a DB cluster of the template"),
        "{text}"
    );
}

#[test]
fn an_unknown_region_names_the_known_ones() {
    let err = estimate(&json!({"Resources": {}}), &spec("ap-south-2")).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("region: "), "{text}");
    assert!(
        text.contains("us-east-1") && text.contains("eu-west-1"),
        "{text}"
    );
}

#[test]
fn an_unpriced_instance_class_names_the_priced_ones() {
    let t = json!({"Resources": {"Db": {"Type": "AWS::RDS::DBInstance",
        "Properties": {"DBInstanceClass": "db.x2g.16xlarge"}}}});
    let text = estimate(&t, &spec("us-east-1")).unwrap_err().to_string();
    assert!(text.starts_with("database.instance_class:"), "{text}");
    assert!(text.contains("db.t4g.micro"), "{text}");
}

#[test]
fn the_table_prints_totals_assumptions_and_mwaa() {
    let e = estimate(&json!({"Resources": {}}), &spec("us-east-1")).unwrap();
    let table = e.table();
    assert!(table.contains("total"));
    assert!(table.contains("Assumptions:"));
    // mw1.small: 0.49 x 730 = 357.70
    assert!(table.contains("mw1.small $358"), "{table}");
}

fn estimate_file(file: &str) -> Estimate {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let spec = crate::spec::load(&path).unwrap();
    let template = crate::stack::build(&spec).unwrap().to_value();
    estimate(&template, &spec).unwrap()
}

/// The promise of the dev shape (docs/cost.md): a change that breaks it fails here.
///
/// Always on: at most $60 (measured $51.76). Paused: at most $5 (measured $4.32: 5
/// secrets x $0.40 = $2.00, the 20 GB gp3 minimum of the stopped RDS instance x $0.115
/// = $2.30, S3 $0.02).
#[test]
fn the_dev_stack_stays_within_60_dollars_on_and_5_paused() {
    let e = estimate_file("stacks/dev.yaml");
    assert!(
        e.always_on <= 60.0,
        "dev always-on ${:.2}:\n{}",
        e.always_on,
        e.table()
    );
    assert!(
        e.paused <= 5.0,
        "dev paused ${:.2}:\n{}",
        e.paused,
        e.table()
    );
}

#[test]
fn the_prod_stack_is_priced() {
    let e = estimate_file("stacks/prod.yaml");
    assert!(e.always_on > e.paused && e.paused > 0.0);
}

/// A key the stack creates costs $1 a month, on or paused; a key given by ARN is not
/// the stack's to pay, and the default has none.
#[test]
fn a_created_kms_key_is_priced_and_a_given_one_is_not() {
    let estimate_of = |kms_key: &str| {
        let text =
            format!("name: cost-test\nregion: us-east-1\nencryption:\n  kms_key: {kms_key}\n");
        let spec = crate::spec::parse(&text, Path::new("cost-test.yaml")).unwrap();
        let template = crate::stack::build(&spec).unwrap().to_value();
        estimate(&template, &spec).unwrap()
    };
    let created = estimate_of("create");
    let kms = line(&created, "KMS");
    close(kms.always_on, 1.00);
    close(kms.paused, 1.00);
    let given =
        estimate_of("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    assert!(given.lines.iter().all(|l| l.item != "KMS"));
    close(created.always_on - given.always_on, 1.00);
    assert!(estimate_of("aws-managed")
        .lines
        .iter()
        .all(|l| l.item != "KMS"));
}

/// Container Insights and Enhanced Monitoring bill by use: the estimate says it leaves
/// them out when they are on (the prod example), and says nothing when they are off.
#[test]
fn monitoring_by_use_is_named_as_not_priced() {
    let note = |e: &Estimate| {
        e.assumptions
            .iter()
            .find(|a| a.starts_with("Not priced:"))
            .cloned()
    };
    let prod = estimate_file("stacks/prod.yaml");
    let said = note(&prod).expect("prod turns both on");
    assert!(
        said.contains("Container Insights (enabled)")
            && said.contains("RDS Enhanced Monitoring every 60 s"),
        "{said}"
    );
    assert_eq!(note(&estimate_file("stacks/dev.yaml")), None);
}

#[test]
fn an_internet_facing_balancer_adds_its_public_addresses() {
    let t = json!({"Resources": {
        "LoadBalancer": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
            "Scheme": "internet-facing", "Subnets": [{"Ref": "A"}, {"Ref": "B"}]}},
        "Certificate": {"Type": "AWS::CertificateManager::Certificate"},
        "UiDnsRecord": {"Type": "AWS::Route53::RecordSet"},
    }});
    let e = estimate(&t, &spec("us-east-1")).unwrap();
    // (0.0225 + 1 x 0.008) x 730 = 22.265; paused 0.0225 x 730 = 16.425
    close(line(&e, "LoadBalancer").always_on, 22.265);
    close(line(&e, "LoadBalancer").paused, 16.425);
    // 2 subnets -> 2 public IPv4 addresses: 2 x 0.005 x 730 = 7.30, paused too
    close(line(&e, "LoadBalancer public IPv4").paused, 7.30);
    close(line(&e, "ACM certificate").always_on, 0.0);
    close(line(&e, "Route 53 record").always_on, 0.0);
    // CloudFormation's default scheme is internet-facing: without subnets, no guess.
    let t = json!({"Resources": {"Lb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer"}}});
    let err = estimate(&t, &spec("us-east-1")).unwrap_err().to_string();
    assert!(
        err.contains("Lb (AWS::ElasticLoadBalancingV2::LoadBalancer)"),
        "{err}"
    );
}

#[test]
fn stream_managers_are_priced_around_the_clock_paused_too_and_other_lambdas_are_not() {
    let t = json!({"Resources": {
        "StreamOrdersFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "MemorySize": 256, "Architectures": ["arm64"], "Timeout": 900,
            "RecursiveLoop": "Allow"}},
        "ScalerFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "MemorySize": 256, "Architectures": ["arm64"], "Timeout": 50}},
    }});
    let e = estimate(&t, &spec("us-east-1")).unwrap();
    // A link starts its successor 60 s before its 900 s limit and reads 20 s more:
    // 860 s billed per 840 s. 0.25 GB x 730 h x 3600 s x 860/840 x 0.0000133334
    // = 657,000 GB-s x 1.0238095 x 0.0000133334 = 8.968594
    let l = line(&e, "StreamOrdersFunction");
    close(
        l.always_on,
        0.25 * 730.0 * 3600.0 * 860.0 / 840.0 * 0.0000133334,
    );
    assert!((l.always_on - 8.9686).abs() < 1e-3, "{}", l.always_on);
    close(l.paused, l.always_on);
    // The same stream on the smallest arm64 Fargate task: (0.25 x 0.03238 + 0.5 x
    // 0.00356) x 730 = 7.208675, named in the line.
    assert!(l.detail.contains("$7.21"), "{}", l.detail);
    assert!(!e.lines.iter().any(|l| l.item == "ScalerFunction"));
}
