//! The Celery broker: Redis as a Fargate service registered as `redis.<namespace>`, or
//! an ElastiCache replication group with TLS and the generated password as auth token.

use super::cluster::Cluster;
use super::network::Network;
use super::secrets::Keys;
use super::security::{self, SecurityGroups};
use super::services::{self, Deployment, TaskSpec};
use super::Tags;
use crate::cfn::aws::ecs::{HealthCheck, PortMapping, SecretRef};
use crate::cfn::aws::elasticache::{ReplicationGroup, SubnetGroup};
use crate::cfn::aws::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::cfn::{Attributes, Expr, LogicalId, Template};
use crate::spec::{RedisEngine, Spec};

/// Where Celery finds its broker.
pub struct Broker {
    pub host: Expr,
    pub port: Expr,
    /// `rediss://` (ElastiCache with in-transit encryption) instead of `redis://`.
    pub tls: bool,
    /// The resource that must exist before Celery connects.
    pub ready: LogicalId,
}

pub fn add(
    t: &mut Template,
    spec: &Spec,
    net: &Network,
    sg: &SecurityGroups,
    keys: &Keys,
    cluster: &Cluster,
    tags: &Tags,
) -> Broker {
    match spec.redis.engine {
        RedisEngine::Fargate => add_fargate(t, spec, net, sg, keys, cluster, tags),
        RedisEngine::Elasticache => add_elasticache(t, spec, net, sg, keys, tags),
    }
}

fn add_fargate(
    t: &mut Template,
    spec: &Spec,
    net: &Network,
    sg: &SecurityGroups,
    keys: &Keys,
    cluster: &Cluster,
    tags: &Tags,
) -> Broker {
    let log_group = services::log_group(t, spec, "Redis", "redis", tags);
    let execution_role = t.add(
        "RedisExecutionRole",
        Role::for_service(
            "ecs-tasks.amazonaws.com",
            "Starts the Redis task: reads its password, writes its logs".into(),
            vec![InlinePolicy {
                policy_name: "start-redis".into(),
                policy_document: PolicyDocument::new(vec![
                    Statement::allow(&["secretsmanager:GetSecretValue"], vec![keys.redis.clone()]),
                    Statement::allow(
                        &["logs:CreateLogStream", "logs:PutLogEvents"],
                        vec![log_group.arn()],
                    ),
                ]),
            }],
            tags.all(),
        ),
    );
    // The password reaches redis-server on stdin as a config line, so it is neither in
    // the task definition nor in the process list.
    let command = "printf 'requirepass %s\\n' \"$REDIS_PASSWORD\" | exec redis-server - --save '' --appendonly no";
    let container = services::container(spec, "redis", spec.redis.image.clone(), &log_group)
        .with_command(vec!["sh".into(), "-c".into(), command.into()])
        .with_secrets(vec![SecretRef {
            name: "REDIS_PASSWORD".into(),
            value_from: keys.redis_password(),
        }])
        .with_ports(vec![PortMapping {
            container_port: 6379,
            protocol: "tcp",
            name: "redis".into(),
        }])
        .with_health_check(HealthCheck {
            command: vec![
                "CMD-SHELL".into(),
                "redis-cli --no-auth-warning -a \"$REDIS_PASSWORD\" ping | grep -q PONG".into(),
            ],
            interval: 15,
            timeout: 5,
            retries: 3,
            start_period: 10,
        });
    let registry = cluster.register(t, "Redis", "redis", tags);
    let service = services::add_service(
        t,
        spec,
        TaskSpec {
            id: "Redis",
            family_suffix: "redis",
            cpu: spec.redis.cpu,
            memory: spec.redis.memory,
            count: 1,
            spot: false,
            containers: vec![container],
            execution_role: execution_role.arn(),
            task_role: None,
            security_groups: security::ids(&[&sg.redis]),
            registry: Some(registry),
            depends_on: Attributes::depends_on(
                [keys.generated.clone()]
                    .into_iter()
                    .chain(net.egress_ready.iter().cloned()),
            ),
            deployment: Deployment::StopFirst,
        },
        net,
        cluster,
        tags,
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
    net: &Network,
    sg: &SecurityGroups,
    keys: &Keys,
    tags: &Tags,
) -> Broker {
    let subnets = t.add(
        "RedisSubnetGroup",
        SubnetGroup {
            description: format!("{} redis broker", spec.name),
            subnet_ids: net.subnets.clone(),
            tags: tags.all(),
        },
    );
    let group = t.add_with(
        "RedisReplicationGroup",
        ReplicationGroup {
            replication_group_description: format!("{} Celery broker", spec.name),
            engine: "redis",
            engine_version: spec.redis.engine_version.clone(),
            cache_node_type: spec.redis.node_type.clone(),
            num_cache_clusters: 1,
            automatic_failover_enabled: false,
            multi_az_enabled: false,
            transit_encryption_enabled: true,
            at_rest_encryption_enabled: true,
            auth_token: keys.redis_password_reference(),
            cache_subnet_group_name: subnets.r#ref(),
            security_group_ids: security::ids(&[&sg.redis]),
            port: 6379,
            tags: tags.all(),
        },
        Attributes::depends_on([keys.generated.clone()]),
    );
    Broker {
        host: group.primary_address(),
        port: group.primary_port(),
        tls: true,
        ready: group.id().clone(),
    }
}
