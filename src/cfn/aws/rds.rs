//! RDS: Aurora Serverless v2 clusters, instances and subnet groups.

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::{resource, Tag};
use crate::cfn::{Expr, Handle};

/// `AWS::RDS::DBSubnetGroup`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbSubnetGroup {
    #[serde(rename = "DBSubnetGroupDescription")]
    pub description: String,
    pub subnet_ids: Vec<Expr>,
    pub tags: Vec<Tag>,
}
resource!(DbSubnetGroup, "AWS::RDS::DBSubnetGroup");

/// `AWS::RDS::DBCluster` (Aurora PostgreSQL, Serverless v2 scaling).
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbCluster {
    pub engine: &'static str,
    pub engine_version: String,
    pub database_name: String,
    pub master_username: String,
    pub master_user_password: Expr,
    #[serde(rename = "DBSubnetGroupName")]
    pub db_subnet_group_name: Expr,
    pub vpc_security_group_ids: Vec<Expr>,
    pub port: u16,
    pub storage_encrypted: bool,
    pub backup_retention_period: u32,
    pub deletion_protection: bool,
    pub copy_tags_to_snapshot: bool,
    pub serverless_v2_scaling_configuration: ServerlessV2ScalingConfiguration,
    pub tags: Vec<Tag>,
}
resource!(DbCluster, "AWS::RDS::DBCluster");

/// Aurora capacity range in ACUs; `SecondsUntilAutoPause` applies when the minimum is 0.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServerlessV2ScalingConfiguration {
    pub min_capacity: f64,
    pub max_capacity: f64,
    pub seconds_until_auto_pause: Option<u32>,
}

impl Handle<DbCluster> {
    /// `Fn::GetAtt Endpoint.Address`: the writer endpoint.
    pub fn endpoint_address(&self) -> Expr {
        self.get_att("Endpoint.Address")
    }
    /// `Fn::GetAtt Endpoint.Port`
    pub fn endpoint_port(&self) -> Expr {
        self.get_att("Endpoint.Port")
    }
}

/// `AWS::RDS::DBInstance`: an Aurora writer (`db.serverless`) or a plain PostgreSQL
/// instance.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DbInstance {
    pub engine: &'static str,
    pub engine_version: Option<String>,
    #[serde(rename = "DBInstanceClass")]
    pub db_instance_class: String,
    #[serde(rename = "DBClusterIdentifier")]
    pub db_cluster_identifier: Option<Expr>,
    #[serde(rename = "DBName")]
    pub db_name: Option<String>,
    pub master_username: Option<String>,
    pub master_user_password: Option<Expr>,
    #[serde(rename = "DBSubnetGroupName")]
    pub db_subnet_group_name: Option<Expr>,
    #[serde(rename = "VPCSecurityGroups")]
    pub vpc_security_groups: Option<Vec<Expr>>,
    pub allocated_storage: Option<String>,
    pub storage_type: Option<&'static str>,
    pub storage_encrypted: Option<bool>,
    pub backup_retention_period: Option<u32>,
    pub deletion_protection: Option<bool>,
    #[serde(rename = "MultiAZ")]
    pub multi_az: Option<bool>,
    pub port: Option<String>,
    pub publicly_accessible: bool,
    pub auto_minor_version_upgrade: bool,
    pub copy_tags_to_snapshot: Option<bool>,
    pub tags: Vec<Tag>,
}
resource!(DbInstance, "AWS::RDS::DBInstance");

impl Handle<DbInstance> {
    /// `Fn::GetAtt Endpoint.Address`
    pub fn endpoint_address(&self) -> Expr {
        self.get_att("Endpoint.Address")
    }
    /// `Fn::GetAtt Endpoint.Port`
    pub fn endpoint_port(&self) -> Expr {
        self.get_att("Endpoint.Port")
    }
}
