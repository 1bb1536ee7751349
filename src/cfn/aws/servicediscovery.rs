//! Cloud Map: a private DNS namespace and service registrations.

use serde::Serialize;

use super::{resource, Tag};
use crate::cfn::{Expr, Handle};

/// `AWS::ServiceDiscovery::PrivateDnsNamespace`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PrivateDnsNamespace {
    pub name: String,
    pub vpc: Expr,
    pub description: String,
    pub tags: Vec<Tag>,
}
resource!(
    PrivateDnsNamespace,
    "AWS::ServiceDiscovery::PrivateDnsNamespace"
);

impl Handle<PrivateDnsNamespace> {
    /// `Fn::GetAtt Id`
    pub fn namespace_id(&self) -> Expr {
        self.get_att("Id")
    }
}

/// `AWS::ServiceDiscovery::Service`: an A record per running task.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    pub name: String,
    pub description: String,
    pub namespace_id: Expr,
    pub dns_config: DnsConfig,
    pub health_check_custom_config: HealthCheckCustomConfig,
    pub tags: Vec<Tag>,
}
resource!(Service, "AWS::ServiceDiscovery::Service");

impl Handle<Service> {
    /// `Fn::GetAtt Arn`
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// DNS records of a Cloud Map service.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DnsConfig {
    pub routing_policy: &'static str,
    pub dns_records: Vec<DnsRecord>,
}

/// One DNS record type and TTL.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DnsRecord {
    #[serde(rename = "Type")]
    pub record_type: &'static str,
    #[serde(rename = "TTL")]
    pub ttl: u32,
}

/// ECS reports task health to Cloud Map.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheckCustomConfig {
    pub failure_threshold: u32,
}
