//! One security group per component and one ingress rule per peer and port: only the
//! connections Airflow makes are allowed (checklist in shared/reference/airflow3.md §13).

use std::collections::BTreeMap;

use super::component::Component;
use super::network::Network;
use super::scope::Scope;
use crate::cfn::l1::ec2::{security_group, SecurityGroup, SecurityGroupIngress};
use crate::cfn::l1::Tag;
use crate::cfn::{Expr, Handle, LogicalId, Template};

/// The security groups, by component.
pub struct SecurityGroups {
    components: BTreeMap<Component, Handle<SecurityGroup>>,
    /// The Redis broker's group.
    pub redis: Handle<SecurityGroup>,
    /// The metadata database's group.
    pub database: Handle<SecurityGroup>,
    /// The ingress rules that open a client's connections, by client. CloudFormation
    /// creates independent resources in parallel, so a client that starts before its
    /// rule exists finds its port closed: whatever connects at start-up depends on these.
    paths: BTreeMap<Component, Vec<LogicalId>>,
}

impl SecurityGroups {
    /// The group of a component of this stack (Flower's only exists when enabled).
    pub fn of(&self, component: Component) -> &Handle<SecurityGroup> {
        self.components
            .get(&component)
            .unwrap_or_else(|| panic!("{component:?} is not part of this stack"))
    }

    /// The ingress rules `client` needs to reach its peers.
    pub fn paths_of(&self, client: Component) -> Vec<LogicalId> {
        self.paths.get(&client).cloned().unwrap_or_default()
    }
}

/// A security group `<id>SecurityGroup` that allows all egress and no ingress.
pub fn group(s: &mut Scope, vpc_id: &Expr, id: &str, what: &str) -> Handle<SecurityGroup> {
    let resource = egress_only(
        format!("{} {what}", s.spec.name),
        vpc_id,
        s.tags
            .named(&format!("{}-{}", s.spec.name, what.replace(' ', "-"))),
    );
    s.t.add(&format!("{id}SecurityGroup"), resource)
}

/// A security group that allows all egress (tasks pull images and reach AWS APIs) and
/// no ingress: ingress is added rule by rule with [`allow`], so each peer's port is one
/// visible resource.
pub fn egress_only(description: String, vpc_id: &Expr, tags: Vec<Tag>) -> SecurityGroup {
    let all_outbound = security_group::Egress {
        ip_protocol: Some("-1".into()),
        cidr_ip: Some("0.0.0.0/0".into()),
        description: Some("All outbound traffic".into()),
        ..security_group::Egress::default()
    };
    SecurityGroup {
        group_description: Some(description.into()),
        vpc_id: Some(vpc_id.clone()),
        security_group_egress: vec![all_outbound],
        tags,
        ..SecurityGroup::default()
    }
}

/// Adds the groups of every component of the stack, Redis and the database, and the
/// rules between them.
pub fn add(s: &mut Scope, net: &Network) -> SecurityGroups {
    let spec = s.spec;
    let components = Component::services(spec)
        .chain([Component::Migrate])
        .map(|c| (c, group(s, &net.vpc_id, c.id(), c.description())))
        .collect();
    let mut sg = SecurityGroups {
        components,
        redis: group(s, &net.vpc_id, "Redis", "redis broker"),
        database: group(s, &net.vpc_id, "Database", "metadata database"),
        paths: BTreeMap::new(),
    };
    sg.paths = add_rules(&mut s.t, &sg);
    sg
}

/// Only the connections Airflow makes. Workers and Flower hold no database credentials
/// (see [`Component::secrets`]), so they get no path to PostgreSQL; nor does the
/// api-server reach the workers' log servers on 8793, which cannot check its log
/// tokens without `[api] secret_key` (logs of finished tasks are read from S3).
fn add_rules(t: &mut Template, sg: &SecurityGroups) -> BTreeMap<Component, Vec<LogicalId>> {
    let mut paths: BTreeMap<Component, Vec<LogicalId>> = BTreeMap::new();
    let db_clients = [
        Component::ApiServer,
        Component::Scheduler,
        Component::DagProcessor,
        Component::Triggerer,
        Component::Migrate,
    ];
    for client in db_clients {
        let id = format!("DatabaseFrom{}", client.id());
        let rule = allow(t, &id, &sg.database, sg.of(client), 5432, "PostgreSQL");
        paths.entry(client).or_default().push(rule);
    }
    let broker_clients = [Component::Scheduler, Component::Worker, Component::Flower];
    for client in broker_clients {
        let Some(peer) = sg.components.get(&client) else {
            continue;
        };
        let id = format!("RedisFrom{}", client.id());
        let rule = allow(t, &id, &sg.redis, peer, 6379, "Celery broker");
        paths.entry(client).or_default().push(rule);
    }
    let api_server = sg.of(Component::ApiServer);
    let rule = allow(
        t,
        "ApiServerFromWorker",
        api_server,
        sg.of(Component::Worker),
        8080,
        "Execution API",
    );
    paths.entry(Component::Worker).or_default().push(rule);
    let rule = allow(
        t,
        "TriggererFromApiServer",
        sg.of(Component::Triggerer),
        api_server,
        8794,
        "triggerer logs",
    );
    paths.entry(Component::ApiServer).or_default().push(rule);
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
            group_id: Some(to.group_id()),
            ip_protocol: Some("tcp".into()),
            from_port: Some(port.into()),
            to_port: Some(port.into()),
            source_security_group_id: Some(from.group_id()),
            description: Some(format!("{what} ({port})").into()),
            ..SecurityGroupIngress::default()
        },
    )
    .id()
    .clone()
}

/// Security group ids as template values.
pub fn ids(groups: &[&Handle<SecurityGroup>]) -> Vec<Expr> {
    groups.iter().map(|g| g.group_id()).collect()
}
