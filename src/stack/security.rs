//! One security group per component and one ingress rule per peer and port: only the
//! connections Airflow makes are allowed (checklist in shared/reference/airflow3.md §13).

use std::collections::BTreeMap;

use super::network::Network;
use super::Tags;
use crate::cfn::aws::ec2::{EgressRule, SecurityGroup, SecurityGroupIngress};
use crate::cfn::{Expr, Handle, LogicalId, Template};
use crate::spec::Spec;

/// The security groups, by component.
pub struct SecurityGroups {
    pub api_server: Handle<SecurityGroup>,
    pub scheduler: Handle<SecurityGroup>,
    pub dag_processor: Handle<SecurityGroup>,
    pub triggerer: Handle<SecurityGroup>,
    pub worker: Handle<SecurityGroup>,
    pub flower: Option<Handle<SecurityGroup>>,
    pub migrate: Handle<SecurityGroup>,
    pub redis: Handle<SecurityGroup>,
    pub database: Handle<SecurityGroup>,
    /// The ingress rules that open a client's connections, by client (`ApiServer`,
    /// `Migrate`, ...). CloudFormation creates independent resources in parallel, so a
    /// client that starts before its rule exists finds its port closed: whatever
    /// connects at start-up depends on these.
    paths: BTreeMap<&'static str, Vec<LogicalId>>,
}

impl SecurityGroups {
    /// The ingress rules `client` needs to reach its peers (none for an unknown client).
    pub fn paths_of(&self, client: &str) -> Vec<LogicalId> {
        self.paths.get(client).cloned().unwrap_or_default()
    }
}

pub fn add(t: &mut Template, spec: &Spec, net: &Network, tags: &Tags) -> SecurityGroups {
    let mut group = |id: &str, what: &str| {
        t.add(
            &format!("{id}SecurityGroup"),
            SecurityGroup {
                group_description: format!("{} {what}", spec.name),
                vpc_id: net.vpc_id.clone(),
                security_group_egress: vec![EgressRule::all()],
                tags: tags.named(&format!("{}-{}", spec.name, what.replace(' ', "-"))),
            },
        )
    };
    let mut sg = SecurityGroups {
        api_server: group("ApiServer", "api-server"),
        scheduler: group("Scheduler", "scheduler"),
        dag_processor: group("DagProcessor", "dag-processor"),
        triggerer: group("Triggerer", "triggerer"),
        worker: group("Worker", "celery worker"),
        flower: spec
            .services
            .flower
            .enabled
            .then(|| group("Flower", "flower")),
        migrate: group("Migrate", "database migration"),
        redis: group("Redis", "redis broker"),
        database: group("Database", "metadata database"),
        paths: BTreeMap::new(),
    };
    sg.paths = add_rules(t, &sg);
    sg
}

/// Only the connections Airflow makes. Workers and Flower hold no database credentials
/// (see `SharedConfig::secrets_for`), so they get no path to PostgreSQL; nor does the
/// api-server reach the workers' log servers on 8793, which cannot check its log
/// tokens without `[api] secret_key` (logs of finished tasks are read from S3).
fn add_rules(t: &mut Template, sg: &SecurityGroups) -> BTreeMap<&'static str, Vec<LogicalId>> {
    let mut paths: BTreeMap<&'static str, Vec<LogicalId>> = BTreeMap::new();
    let mut db_clients = vec![
        ("ApiServer", &sg.api_server),
        ("Scheduler", &sg.scheduler),
        ("DagProcessor", &sg.dag_processor),
        ("Triggerer", &sg.triggerer),
        ("Migrate", &sg.migrate),
    ];
    db_clients.sort_by_key(|(name, _)| *name);
    for (name, peer) in db_clients {
        let rule = allow(
            t,
            &format!("DatabaseFrom{name}"),
            &sg.database,
            peer,
            5432,
            "PostgreSQL",
        );
        paths.entry(name).or_default().push(rule);
    }
    let mut broker_clients = vec![("Scheduler", &sg.scheduler), ("Worker", &sg.worker)];
    if let Some(flower) = &sg.flower {
        broker_clients.push(("Flower", flower));
    }
    for (name, peer) in broker_clients {
        let rule = allow(
            t,
            &format!("RedisFrom{name}"),
            &sg.redis,
            peer,
            6379,
            "Celery broker",
        );
        paths.entry(name).or_default().push(rule);
    }
    let rule = allow(
        t,
        "ApiServerFromWorker",
        &sg.api_server,
        &sg.worker,
        8080,
        "Execution API",
    );
    paths.entry("Worker").or_default().push(rule);
    let rule = allow(
        t,
        "TriggererFromApiServer",
        &sg.triggerer,
        &sg.api_server,
        8794,
        "triggerer logs",
    );
    paths.entry("ApiServer").or_default().push(rule);
    paths
}

/// Adds one ingress rule: `port` on `to` from members of `from`.
pub fn allow(
    t: &mut Template,
    id: &str,
    to: &Handle<SecurityGroup>,
    from: &Handle<SecurityGroup>,
    port: u16,
    what: &str,
) -> LogicalId {
    t.add(
        &format!("{id}Ingress"),
        SecurityGroupIngress {
            group_id: to.group_id(),
            ip_protocol: "tcp",
            from_port: port,
            to_port: port,
            source_security_group_id: Some(from.group_id()),
            cidr_ip: None,
            description: format!("{what} ({port})"),
        },
    )
    .id()
    .clone()
}

/// Security group ids as template values.
pub fn ids(groups: &[&Handle<SecurityGroup>]) -> Vec<Expr> {
    groups.iter().map(|g| g.group_id()).collect()
}
