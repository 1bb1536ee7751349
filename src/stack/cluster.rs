//! The ECS cluster (Fargate and Fargate Spot) and the Cloud Map namespace in which the
//! api-server, flower and redis are registered.

use super::network::Network;
use super::scope::Scope;
use crate::cfn::aws::ecs::{self, CapacityProviderStrategyItem, ClusterSetting};
use crate::cfn::aws::servicediscovery::{
    self, DnsConfig, DnsRecord, HealthCheckCustomConfig, PrivateDnsNamespace,
};
use crate::cfn::{Expr, Handle};

/// The cluster and its namespace.
pub struct Cluster {
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
                name: name.to_string(),
                description: format!("{name} tasks"),
                namespace_id: self.namespace.namespace_id(),
                dns_config: DnsConfig {
                    routing_policy: "MULTIVALUE",
                    dns_records: vec![DnsRecord {
                        record_type: "A",
                        ttl: 10,
                    }],
                },
                health_check_custom_config: HealthCheckCustomConfig {
                    failure_threshold: 1,
                },
                tags: tags.all(),
            },
        );
        service.arn()
    }
}

/// Adds the cluster and its Cloud Map namespace in the stack's VPC.
pub fn add(s: &mut Scope, net: &Network) -> Cluster {
    let (t, spec, tags) = (&mut s.t, s.spec, &s.tags);
    let handle = t.add(
        "Cluster",
        ecs::Cluster {
            cluster_name: None,
            capacity_providers: vec!["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategy: vec![CapacityProviderStrategyItem {
                capacity_provider: "FARGATE",
                weight: 1,
                base: 0,
            }],
            cluster_settings: vec![ClusterSetting {
                name: "containerInsights",
                value: "disabled",
            }],
            tags: tags.all(),
        },
    );
    let namespace = t.add(
        "Namespace",
        PrivateDnsNamespace {
            name: spec.network.namespace.clone(),
            vpc: net.vpc_id.clone(),
            description: format!("{} private DNS", spec.name),
            tags: tags.all(),
        },
    );
    Cluster { handle, namespace }
}
