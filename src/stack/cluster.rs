//! The ECS cluster (Fargate and Fargate Spot) and the Cloud Map namespace in which the
//! api-server, flower and redis are registered.

use super::network::Network;
use super::scope::Scope;
use crate::cfn::l1::ecs::{self, cluster};
use crate::cfn::l1::servicediscovery::service::{
    DnsConfig, DnsRecord, HealthCheckCustomConfig, RoutingPolicy, Type,
};
use crate::cfn::l1::servicediscovery::{self, PrivateDnsNamespace};
use crate::cfn::{Expr, Handle};

/// The cluster and its namespace.
pub struct Cluster {
    /// The ECS cluster.
    pub handle: Handle<ecs::Cluster>,
    namespace: Handle<PrivateDnsNamespace>,
}

impl Cluster {
    /// Registers `name.<namespace>` and returns the Cloud Map service ARN for a service's
    /// `ServiceRegistries`.
    pub fn register(&self, s: &mut Scope, id: &str, name: &str) -> Expr {
        let (t, tags) = (&mut s.t, &s.tags);
        let service = t.add(
            &format!("{id}Discovery"),
            servicediscovery::Service {
                name: Some(name.into()),
                description: Some(format!("{name} tasks").into()),
                namespace_id: Some(self.namespace.get_att_id()),
                dns_config: Some(DnsConfig {
                    routing_policy: Some(RoutingPolicy::Multivalue),
                    dns_records: vec![DnsRecord {
                        r#type: Some(Type::A),
                        ttl: Some(10.into()),
                    }],
                    ..DnsConfig::default()
                }),
                health_check_custom_config: Some(HealthCheckCustomConfig {
                    failure_threshold: Some(1.into()),
                }),
                tags: tags.all(),
                ..servicediscovery::Service::default()
            },
        );
        service.arn()
    }

    /// The ARNs of the cluster's tasks, `arn:…:ecs:<region>:<account>:task/<cluster>/*`,
    /// for IAM: a task ARN names its cluster but not its service.
    pub fn tasks_arn(&self) -> Expr {
        Expr::arn(
            "ecs",
            Expr::concat(vec![
                Expr::lit("task/"),
                self.handle.r#ref(),
                Expr::lit("/*"),
            ]),
        )
    }
}

/// Adds the cluster and its Cloud Map namespace in the stack's VPC. `configuration`
/// is the ECS Exec set-up of the access construct (the tunnel), if any.
pub fn add(
    s: &mut Scope,
    net: &Network,
    configuration: Option<cluster::ClusterConfiguration>,
) -> Cluster {
    let (t, spec, tags) = (&mut s.t, s.spec, &s.tags);
    let handle = t.add(
        "Cluster",
        ecs::Cluster {
            capacity_providers: vec!["FARGATE".into(), "FARGATE_SPOT".into()],
            default_capacity_provider_strategy: vec![cluster::CapacityProviderStrategyItem {
                capacity_provider: Some("FARGATE".into()),
                weight: Some(1),
                base: Some(0),
            }],
            // Container Insights as the stack file says (default `disabled`): it bills
            // metrics and performance log events per task.
            cluster_settings: vec![cluster::ClusterSettings {
                name: Some("containerInsights".into()),
                value: Some(spec.monitoring.container_insights.as_str().into()),
            }],
            configuration,
            tags: tags.all(),
            ..ecs::Cluster::default()
        },
    );
    let namespace = t.add(
        "Namespace",
        PrivateDnsNamespace {
            name: Some(spec.network.namespace.clone().into()),
            vpc: Some(net.vpc_id.clone()),
            description: Some(format!("{} private DNS", spec.name).into()),
            tags: tags.all(),
            ..PrivateDnsNamespace::default()
        },
    );
    Cluster { handle, namespace }
}
