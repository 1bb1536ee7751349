//! The Celery broker: Redis as a Fargate service registered as `redis.<namespace>`, or
//! an ElastiCache replication group with TLS and the generated password as auth token.

use super::fargate::{self, Deployment, Infra, ServiceSpec, TaskDefinitionSpec};
use super::keys::Keys;
use super::scope::{Scope, Tags};
use super::security;
use super::service_role::{self, ServiceRole};
use crate::cfn::l1::ecs::task_definition::{ContainerDefinition, HealthCheck, Secret};
use crate::cfn::l1::elasticache::{ReplicationGroup, SubnetGroup};
use crate::cfn::l1::Statement;
use crate::cfn::{Attributes, Expr, LogicalId, Template};
use crate::spec::{RedisEngine, Spec};

/// Where Celery finds its broker.
pub struct Broker {
    /// Host name.
    pub host: Expr,
    /// Port (a string, as `PrimaryEndPoint.Port` is).
    pub port: Expr,
    /// `rediss://` (ElastiCache with in-transit encryption) instead of `redis://`.
    pub tls: bool,
    /// The resource that must exist before Celery connects.
    pub ready: LogicalId,
}

/// Adds the broker the stack file asks for.
pub fn add(s: &mut Scope, infra: &Infra, keys: &Keys) -> Broker {
    match s.spec.redis.engine {
        RedisEngine::Fargate => add_fargate(s, infra, keys),
        RedisEngine::Elasticache => add_elasticache(&mut s.t, s.spec, infra, keys, &s.tags),
    }
}

fn add_fargate(s: &mut Scope, infra: &Infra, keys: &Keys) -> Broker {
    let spec = s.spec;
    let log_group = fargate::log_group(s, "Redis", "redis");
    let mut statements = vec![
        Statement::allow(&["secretsmanager:GetSecretValue"], vec![keys.redis.clone()]),
        Statement::allow(
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            vec![log_group.arn()],
        ),
    ];
    // With a customer-managed key, reading the password needs kms:Decrypt.
    statements.extend(s.key_use(&statements));
    let (t, tags) = (&mut s.t, &s.tags);
    let execution_role = t.add(
        "RedisExecutionRole",
        service_role::role(
            ServiceRole {
                service: "ecs-tasks.amazonaws.com",
                description: "Starts the Redis task: reads its password, writes its logs".into(),
                policy_name: "start-redis",
                statements,
            },
            tags.all(),
        ),
    );
    // The password reaches redis-server on stdin as a config line, so it is neither in
    // the task definition nor in the process list.
    let command = "printf 'requirepass %s\\n' \"$REDIS_PASSWORD\" | exec redis-server - --save '' --appendonly no";
    let container = ContainerDefinition {
        command: vec!["sh".into(), "-c".into(), command.into()],
        secrets: vec![Secret {
            name: Some("REDIS_PASSWORD".into()),
            value_from: Some(keys.redis_password()),
        }],
        port_mappings: vec![fargate::tcp_port("redis", 6379)],
        // redis-cli takes the password from REDISCLI_AUTH, so it is not in its argument
        // list (which `ps` shows to every process of the task), as `-a` would put it.
        health_check: Some(HealthCheck {
            command: vec![
                "CMD-SHELL".into(),
                "REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli ping | grep -q PONG".into(),
            ],
            interval: Some(15),
            timeout: Some(5),
            retries: Some(3),
            start_period: Some(10),
        }),
        ..fargate::container("redis", spec.redis.image.clone(), &log_group)
    };
    let execution_role = execution_role.arn();
    let registry = infra.cluster.register(s, "Redis", "redis");
    let service = fargate::add_service(
        s,
        infra,
        ServiceSpec {
            id: "Redis".into(),
            service_name: None,
            task: TaskDefinitionSpec {
                family_suffix: "redis".into(),
                cpu: spec.redis.cpu,
                memory: spec.redis.memory,
                containers: vec![container],
                execution_role,
                task_role: None,
                architecture: None,
            },
            desired_count: Some(1),
            spot: false,
            security_groups: security::ids(&[&infra.sg.redis]),
            registry: Some(registry),
            depends_on: Attributes::depends_on(
                [keys.generated.clone()]
                    .into_iter()
                    .chain(infra.net.egress_ready.iter().cloned()),
            ),
            deployment: Deployment::StopFirst,
            reach: fargate::Reach::default(),
        },
    );
    Broker {
        host: Expr::lit(format!("redis.{}", spec.network.namespace)),
        port: Expr::lit("6379"),
        tls: false,
        ready: service.id().clone(),
    }
}

fn add_elasticache(
    t: &mut Template,
    spec: &Spec,
    infra: &Infra,
    keys: &Keys,
    tags: &Tags,
) -> Broker {
    let (net, sg) = (infra.net, infra.sg);
    let subnets = t.add(
        "RedisSubnetGroup",
        SubnetGroup {
            description: Some(format!("{} redis broker", spec.name).into()),
            subnet_ids: net.subnets.clone(),
            tags: tags.all(),
            ..SubnetGroup::default()
        },
    );
    let group = t.add_with(
        "RedisReplicationGroup",
        ReplicationGroup {
            replication_group_description: Some(format!("{} Celery broker", spec.name).into()),
            engine: Some("redis".into()),
            engine_version: Some(spec.redis.engine_version.clone().into()),
            cache_node_type: Some(spec.redis.node_type.clone().into()),
            num_cache_clusters: Some(1),
            automatic_failover_enabled: Some(false),
            multi_az_enabled: Some(false),
            transit_encryption_enabled: Some(true),
            at_rest_encryption_enabled: Some(true),
            // A dynamic reference: the token is read at deploy time, never written here.
            auth_token: Some(keys.redis_password_reference()),
            cache_subnet_group_name: Some(subnets.r#ref()),
            security_group_ids: security::ids(&[&sg.redis]),
            port: Some(6379),
            tags: tags.all(),
            ..ReplicationGroup::default()
        },
        Attributes::depends_on([keys.generated.clone()]),
    );
    Broker {
        host: group.primary_end_point_address(),
        port: group.primary_end_point_port(),
        tls: true,
        ready: group.id().clone(),
    }
}
