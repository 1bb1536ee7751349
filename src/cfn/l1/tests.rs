//! Tests of the generated L1 layer against the behaviour the constructs rely on (this
//! file is hand-written; the generator's own tests are in codegen/).

use serde_json::{json, Value};

use super::{
    conditional_create_only_properties, create_only_properties, dynamodb, ecs, elasticache, lambda,
    rds, required_properties, s3, servicediscovery, PolicyDocument, Statement, Tag, RESOURCE_TYPES,
};
use crate::cfn::{Expr, Template};

fn json_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

#[test]
fn none_and_empty_properties_are_left_out() {
    let container = ecs::task_definition::ContainerDefinition {
        name: Some("api".into()),
        essential: Some(true),
        // The hand-written layer rendered these as `"PortMappings": []`.
        port_mappings: Vec::new(),
        environment: Vec::new(),
        ..Default::default()
    };
    assert_eq!(
        json_of(&container),
        json!({"Essential": true, "Name": "api"})
    );
    assert_eq!(json_of(&ecs::TaskDefinition::default()), json!({}));
}

#[test]
fn lists_whose_empty_value_means_something_render_brackets() {
    // "To remove this property from your service resource, specify an empty
    // ServiceRegistry array" (the ECS service schema).
    let cleared = ecs::Service {
        service_registries: Some(Vec::new()),
        ..Default::default()
    };
    assert_eq!(json_of(&cleared), json!({"ServiceRegistries": []}));
    assert_eq!(json_of(&ecs::Service::default()), json!({}));
}

#[test]
fn properties_render_in_alphabetical_order_under_their_cloudformation_names() {
    let cluster = rds::DbCluster {
        storage_encrypted: Some(true),
        db_subnet_group_name: Some("g".into()),
        database_name: Some("airflow".into()),
        engine: Some("aurora-postgresql".into()),
        serverless_v2_scaling_configuration: Some(
            rds::db_cluster::ServerlessV2ScalingConfiguration {
                max_capacity: Some(4.0.into()),
                min_capacity: Some(0.5.into()),
                ..Default::default()
            },
        ),
        ..Default::default()
    };
    let text = serde_json::to_string(&cluster).unwrap();
    assert_eq!(
        text,
        r#"{"DBSubnetGroupName":"g","DatabaseName":"airflow","Engine":"aurora-postgresql","ServerlessV2ScalingConfiguration":{"MaxCapacity":4.0,"MinCapacity":0.5},"StorageEncrypted":true}"#
    );
}

#[test]
fn enums_serialise_to_the_exact_schema_strings() {
    assert_eq!(
        json_of(&lambda::function::Runtime::ProvidedAl2023),
        json!("provided.al2023")
    );
    assert_eq!(
        json_of(&lambda::function::ArchitecturesItem::Arm64),
        json!("arm64")
    );
    assert_eq!(
        json_of(&dynamodb::table::BillingMode::PayPerRequest),
        json!("PAY_PER_REQUEST")
    );
    assert_eq!(
        json_of(&ecs::task_definition::NetworkMode::Awsvpc),
        json!("awsvpc")
    );
    // S3 lists `GLACIER` and `Glacier`; both stay reachable.
    assert_eq!(s3::bucket::StorageClass::Glacier.as_str(), "GLACIER");
    assert_eq!(s3::bucket::StorageClass::Glacier2.as_str(), "Glacier");
}

#[test]
fn get_att_accessors_name_nested_and_list_attributes() {
    let mut t = Template::new("t");
    let db = t.add("Db", rds::DbCluster::default());
    assert_eq!(
        json_of(&db.endpoint_address()),
        json!({"Fn::GetAtt": ["Db", "Endpoint.Address"]})
    );
    let redis = t.add("Redis", elasticache::ReplicationGroup::default());
    assert_eq!(
        json_of(&redis.primary_end_point_port()),
        json!({"Fn::GetAtt": ["Redis", "PrimaryEndPoint.Port"]})
    );
    let vpc = t.add("Vpc", super::ec2::Vpc::default());
    // A documented extra attribute (codegen/resource-types.txt) and a list attribute.
    assert_eq!(
        json_of(&vpc.cidr_block()),
        json!({"Fn::GetAtt": ["Vpc", "CidrBlock"]})
    );
    assert_eq!(
        json_of(&Expr::select(0, vpc.ipv6_cidr_blocks())),
        json!({"Fn::Select": ["0", {"Fn::GetAtt": ["Vpc", "Ipv6CidrBlocks"]}]})
    );
    // `Id` would clash with `Handle::id`.
    let ns = t.add(
        "Ns",
        servicediscovery::PrivateDnsNamespace {
            name: Some("airflow.local".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        json_of(&ns.get_att_id()),
        json!({"Fn::GetAtt": ["Ns", "Id"]})
    );
}

#[test]
fn create_only_lists_come_from_the_schemas() {
    let cluster = create_only_properties("AWS::RDS::DBCluster").unwrap();
    for p in [
        "/properties/DBClusterIdentifier",
        "/properties/DatabaseName",
        "/properties/StorageEncrypted",
        "/properties/DBSubnetGroupName",
    ] {
        assert!(cluster.contains(&p), "{p}");
    }
    // Changing the engine or the master user name replaces the cluster for some
    // changes only, which the schema says separately.
    let conditional = conditional_create_only_properties("AWS::RDS::DBCluster").unwrap();
    assert!(conditional.contains(&"/properties/Engine"));
    assert!(conditional.contains(&"/properties/MasterUsername"));
    assert!(!cluster.contains(&"/properties/MasterUserPassword"));

    assert!(create_only_properties("AWS::S3::Bucket")
        .unwrap()
        .contains(&"/properties/BucketName"));
    assert_eq!(
        create_only_properties("AWS::S3::Bucket"),
        Some(s3::Bucket::CREATE_ONLY)
    );
    assert_eq!(create_only_properties("Custom::Anything"), None);
}

#[test]
fn a_task_definition_is_replaced_by_any_change_but_its_tags() {
    // ECS task definitions are immutable revisions: the schema makes every writable
    // property create-only except `Tags`, which its update handler changes in place
    // (ecs:TagResource/UntagResource).
    let writable = [
        "ContainerDefinitions",
        "Cpu",
        "EnableFaultInjection",
        "EphemeralStorage",
        "ExecutionRoleArn",
        "Family",
        "InferenceAccelerators",
        "IpcMode",
        "Memory",
        "NetworkMode",
        "PidMode",
        "PlacementConstraints",
        "ProxyConfiguration",
        "RequiresCompatibilities",
        "RuntimePlatform",
        "TaskRoleArn",
        "Volumes",
    ];
    let create_only = create_only_properties("AWS::ECS::TaskDefinition").unwrap();
    let mut expected: Vec<String> = writable
        .iter()
        .map(|p| format!("/properties/{p}"))
        .collect();
    expected.sort();
    assert_eq!(create_only, expected.as_slice());
    assert!(!create_only.contains(&"/properties/Tags"));
}

#[test]
fn every_generated_type_has_lookups() {
    assert!(RESOURCE_TYPES.windows(2).all(|w| w[0] < w[1]));
    for t in RESOURCE_TYPES {
        assert!(create_only_properties(t).is_some(), "{t}");
        assert!(conditional_create_only_properties(t).is_some(), "{t}");
        assert!(required_properties(t).is_some(), "{t}");
    }
    assert_eq!(
        required_properties("AWS::IAM::Role"),
        Some(&["AssumeRolePolicyDocument"][..])
    );
}

#[test]
fn shared_tags_and_policy_documents_render_as_before() {
    let role = super::iam::Role {
        assume_role_policy_document: Some(PolicyDocument::new(vec![Statement::assume_role(
            "lambda.amazonaws.com",
        )])),
        policies: vec![super::iam::role::Policy {
            policy_name: Some("logs".into()),
            policy_document: Some(PolicyDocument::new(vec![Statement::allow(
                &["logs:PutLogEvents"],
                vec![Expr::lit("*")],
            )])),
        }],
        tags: vec![Tag::new("airflow-stack", "dev")],
        ..Default::default()
    };
    assert_eq!(
        json_of(&role),
        json!({
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                 "Action": ["sts:AssumeRole"]}]},
            "Policies": [{"PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": ["*"]}]},
                "PolicyName": "logs"}],
            "Tags": [{"Key": "airflow-stack", "Value": "dev"}]
        })
    );
}

#[test]
fn numbers_render_as_given() {
    let record = servicediscovery::service::DnsRecord {
        ttl: Some(10.into()),
        r#type: Some(servicediscovery::service::Type::A),
    };
    assert_eq!(
        serde_json::to_string(&record).unwrap(),
        r#"{"TTL":10,"Type":"A"}"#
    );
    let scaling = rds::db_cluster::ServerlessV2ScalingConfiguration {
        max_capacity: Some(4.0.into()),
        min_capacity: Some(0.0.into()),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_string(&scaling).unwrap(),
        r#"{"MaxCapacity":4.0,"MinCapacity":0.0}"#
    );
}

#[test]
fn debug_shows_the_rendered_json() {
    let tag = super::sns::Topic {
        display_name: Some("alerts".into()),
        ..Default::default()
    };
    assert_eq!(format!("{tag:?}"), r#"{"DisplayName":"alerts"}"#);
}
