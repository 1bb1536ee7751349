//! One security group per component and one ingress rule per peer and port: only the
//! connections Airflow makes are allowed (checklist in shared/reference/airflow3.md §13).

use super::network::Network;
use super::Tags;
use crate::cfn::aws::ec2::{EgressRule, SecurityGroup, SecurityGroupIngress};
use crate::cfn::{Expr, Handle, Template};
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
    let sg = SecurityGroups {
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
    };
    add_rules(t, &sg);
    sg
}

fn add_rules(t: &mut Template, sg: &SecurityGroups) {
    let mut db_clients = vec![
        ("ApiServer", &sg.api_server),
        ("Scheduler", &sg.scheduler),
        ("DagProcessor", &sg.dag_processor),
        ("Triggerer", &sg.triggerer),
        ("Worker", &sg.worker),
        ("Migrate", &sg.migrate),
    ];
    db_clients.sort_by_key(|(name, _)| *name);
    for (name, peer) in db_clients {
        allow(
            t,
            &format!("DatabaseFrom{name}"),
            &sg.database,
            peer,
            5432,
            "PostgreSQL",
        );
    }
    let mut broker_clients = vec![("Scheduler", &sg.scheduler), ("Worker", &sg.worker)];
    if let Some(flower) = &sg.flower {
        broker_clients.push(("Flower", flower));
    }
    for (name, peer) in broker_clients {
        allow(
            t,
            &format!("RedisFrom{name}"),
            &sg.redis,
            peer,
            6379,
            "Celery broker",
        );
    }
    allow(
        t,
        "ApiServerFromWorker",
        &sg.api_server,
        &sg.worker,
        8080,
        "Execution API",
    );
    allow(
        t,
        "WorkerFromApiServer",
        &sg.worker,
        &sg.api_server,
        8793,
        "task logs while running",
    );
    allow(
        t,
        "TriggererFromApiServer",
        &sg.triggerer,
        &sg.api_server,
        8794,
        "triggerer logs",
    );
}

/// Adds one ingress rule: `port` on `to` from members of `from`.
pub fn allow(
    t: &mut Template,
    id: &str,
    to: &Handle<SecurityGroup>,
    from: &Handle<SecurityGroup>,
    port: u16,
    what: &str,
) {
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
    );
}

/// Security group ids as template values.
pub fn ids(groups: &[&Handle<SecurityGroup>]) -> Vec<Expr> {
    groups.iter().map(|g| g.group_id()).collect()
}
