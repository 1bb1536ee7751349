//! The metadata database: Aurora Serverless v2 PostgreSQL (a cluster, its writer
//! `db.serverless` instance, a subnet group) or one RDS PostgreSQL instance. Encrypted,
//! backed up, snapshotted on delete or replacement; the master password comes from the
//! generated secret through a dynamic reference, never as text in the template. With
//! `database.monitoring_interval`, RDS Enhanced Monitoring and the role it sends the OS
//! metrics with.

use super::keys::Keys;
use super::network::Network;
use super::scope::Scope;
use super::security::{self, SecurityGroups};
use super::service_role::{self, ServiceRole};
use crate::cfn::l1::rds::db_cluster::ServerlessV2ScalingConfiguration;
use crate::cfn::l1::rds::{DbCluster, DbInstance, DbSubnetGroup};
use crate::cfn::l1::Statement;
use crate::cfn::{Attributes, Expr, LogicalId, Policy};
use crate::spec::DatabaseEngine;

/// What clients need of the database.
pub struct Database {
    /// Writer endpoint host name.
    pub host: Expr,
    /// Port (a string, as `Endpoint.Port` is).
    pub port: Expr,
    /// A resource that must exist before anything connects and that the endpoint does
    /// not already imply: Aurora's writer instance (the endpoint belongs to the cluster).
    pub writer: Option<LogicalId>,
    /// What `pause` and the schedule stop: the Aurora cluster or the RDS instance.
    pub stoppable: LogicalId,
}

/// Seconds of no connections before an Aurora cluster at 0 ACU pauses.
const AUTO_PAUSE_SECONDS: i64 = 600;

/// The Aurora engine (PostgreSQL-compatible).
const AURORA: &str = "aurora-postgresql";

/// PostgreSQL's port.
const PORT: u16 = 5432;

/// The role RDS Enhanced Monitoring sends an instance's OS metrics with, when
/// `database.monitoring_interval` is not 0: trusted by `monitoring.rds.amazonaws.com`,
/// with the permissions of the AWS managed `AmazonRDSEnhancedMonitoringRole` (the
/// project attaches no AWS managed policy) narrowed from `RDS*` to the one log group
/// Enhanced Monitoring writes, `RDSOSMetrics`. Returns the `MonitoringInterval` and
/// `MonitoringRoleArn` for the instance.
fn add_monitoring_role(s: &mut Scope) -> (Option<i64>, Option<Expr>) {
    let interval = s.spec.database.monitoring_interval;
    if interval == 0 {
        return (None, None);
    }
    let group = || Expr::arn("logs", Expr::lit("log-group:RDSOSMetrics"));
    let role = service_role::role(
        ServiceRole {
            service: "monitoring.rds.amazonaws.com",
            description: "Sends the database's Enhanced Monitoring metrics to CloudWatch Logs"
                .into(),
            policy_name: "enhanced-monitoring",
            statements: vec![
                Statement::allow(
                    &["logs:CreateLogGroup", "logs:PutRetentionPolicy"],
                    vec![group()],
                ),
                Statement::allow(
                    &[
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                        "logs:GetLogEvents",
                    ],
                    vec![Expr::concat(vec![group(), Expr::lit(":log-stream:*")])],
                ),
            ],
        },
        s.tags.all(),
    );
    let role = s.t.add("DatabaseMonitoringRole", role);
    (Some(interval.into()), Some(role.arn()))
}

/// Adds the database in the stack's subnets, behind its security group.
pub fn add(s: &mut Scope, net: &Network, sg: &SecurityGroups, keys: &Keys) -> Database {
    let (monitoring_interval, monitoring_role_arn) = add_monitoring_role(s);
    let (t, spec, tags) = (&mut s.t, s.spec, &s.tags);
    let d = &spec.database;
    let subnets = t.add(
        "DatabaseSubnetGroup",
        DbSubnetGroup {
            db_subnet_group_description: Some(format!("{} metadata database", spec.name).into()),
            subnet_ids: net.subnets.clone(),
            tags: tags.all(),
            ..DbSubnetGroup::default()
        },
    );
    // The password is read at deploy time through a dynamic reference, which creates no
    // dependency by itself: the generator must have written it first.
    let after_secrets =
        || Attributes::depends_on([keys.generated.clone()]).keep_on_delete(Policy::Snapshot);
    let password = keys.db_password_reference();
    let groups = security::ids(&[&sg.database]);
    match d.engine {
        DatabaseEngine::AuroraServerlessV2 => {
            let cluster = t.add_with(
                "DatabaseCluster",
                DbCluster {
                    engine: Some(AURORA.into()),
                    engine_version: Some(d.engine_version.to_string().into()),
                    database_name: Some(d.name.clone().into()),
                    master_username: Some(d.username.clone().into()),
                    master_user_password: Some(password),
                    db_subnet_group_name: Some(subnets.r#ref()),
                    vpc_security_group_ids: groups,
                    port: Some(PORT.into()),
                    storage_encrypted: Some(true),
                    backup_retention_period: Some(d.backup_retention_days.into()),
                    deletion_protection: Some(d.deletion_protection),
                    copy_tags_to_snapshot: Some(true),
                    serverless_v2_scaling_configuration: Some(ServerlessV2ScalingConfiguration {
                        // Floats, as the stack file gives them: `4.0` stays `4.0`.
                        min_capacity: Some(d.min_capacity.into()),
                        max_capacity: Some(d.max_capacity.into()),
                        seconds_until_auto_pause: (d.min_capacity == 0.0)
                            .then_some(AUTO_PAUSE_SECONDS),
                    }),
                    tags: tags.all(),
                    ..DbCluster::default()
                },
                after_secrets(),
            );
            let writer = t.add_with(
                "DatabaseWriter",
                DbInstance {
                    engine: Some(AURORA.into()),
                    db_instance_class: Some("db.serverless".into()),
                    db_cluster_identifier: Some(cluster.r#ref()),
                    publicly_accessible: Some(false),
                    auto_minor_version_upgrade: Some(true),
                    monitoring_interval,
                    monitoring_role_arn,
                    tags: tags.all(),
                    ..DbInstance::default()
                },
                Attributes::default().keep_on_delete(Policy::Snapshot),
            );
            Database {
                host: cluster.endpoint_address(),
                port: cluster.endpoint_port(),
                writer: Some(writer.id().clone()),
                stoppable: cluster.id().clone(),
            }
        }
        DatabaseEngine::RdsPostgres => {
            let instance = t.add_with(
                "DatabaseInstance",
                DbInstance {
                    engine: Some("postgres".into()),
                    engine_version: Some(d.engine_version.to_string().into()),
                    db_instance_class: Some(d.instance_class.clone().into()),
                    db_name: Some(d.name.clone().into()),
                    master_username: Some(d.username.clone().into()),
                    master_user_password: Some(password),
                    db_subnet_group_name: Some(subnets.r#ref()),
                    vpc_security_groups: groups,
                    allocated_storage: Some(d.storage_gb.to_string().into()),
                    storage_type: Some("gp3".into()),
                    storage_encrypted: Some(true),
                    backup_retention_period: Some(d.backup_retention_days.into()),
                    deletion_protection: Some(d.deletion_protection),
                    multi_az: Some(false),
                    // A string here, an integer on DBCluster: the two schemas differ.
                    port: Some(PORT.to_string().into()),
                    publicly_accessible: Some(false),
                    auto_minor_version_upgrade: Some(true),
                    copy_tags_to_snapshot: Some(true),
                    monitoring_interval,
                    monitoring_role_arn,
                    tags: tags.all(),
                    ..DbInstance::default()
                },
                after_secrets(),
            );
            Database {
                host: instance.endpoint_address(),
                port: instance.endpoint_port(),
                writer: None,
                stoppable: instance.id().clone(),
            }
        }
    }
}
