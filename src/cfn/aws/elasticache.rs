//! ElastiCache for Redis (OSS): a replication group with TLS and an auth token.

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::{resource, Tag};
use crate::cfn::{Expr, Handle};

/// `AWS::ElastiCache::SubnetGroup`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubnetGroup {
    pub description: String,
    pub subnet_ids: Vec<Expr>,
    pub tags: Vec<Tag>,
}
resource!(SubnetGroup, "AWS::ElastiCache::SubnetGroup");

/// `AWS::ElastiCache::ReplicationGroup`
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicationGroup {
    pub replication_group_description: String,
    pub engine: &'static str,
    pub engine_version: String,
    pub cache_node_type: String,
    pub num_cache_clusters: u32,
    pub automatic_failover_enabled: bool,
    #[serde(rename = "MultiAZEnabled")]
    pub multi_az_enabled: bool,
    pub transit_encryption_enabled: bool,
    pub at_rest_encryption_enabled: bool,
    pub auth_token: Expr,
    pub cache_subnet_group_name: Expr,
    pub security_group_ids: Vec<Expr>,
    pub port: u16,
    pub tags: Vec<Tag>,
}
resource!(ReplicationGroup, "AWS::ElastiCache::ReplicationGroup");

impl Handle<ReplicationGroup> {
    /// `Fn::GetAtt PrimaryEndPoint.Address`
    pub fn primary_address(&self) -> Expr {
        self.get_att("PrimaryEndPoint.Address")
    }
    /// `Fn::GetAtt PrimaryEndPoint.Port`
    pub fn primary_port(&self) -> Expr {
        self.get_att("PrimaryEndPoint.Port")
    }
}
