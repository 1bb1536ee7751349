//! How people reach the Airflow UI and REST API (`access:` in the stack file): the
//! ECS Exec set-up of the tunnel, the HTTPS Application Load Balancer, or the in-VPC
//! allow-list. Returns what the api-server's service and task role need of it.
//!
//! - **tunnel**: ECS Exec on the api-server's service, a log group for exec sessions
//!   (the cluster's `ExecuteCommandConfiguration`), and the task role statements the
//!   ECS Exec agent needs (AWS, "Monitor Amazon ECS containers with ECS Exec", IAM
//!   permissions required for ECS Exec:
//!   <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-exec.html>).
//! - **load_balancer**: an ALB whose HTTPS listener forwards to the api-server's target
//!   group and whose HTTP listener only redirects to HTTPS; the certificate is given or
//!   created with DNS validation in the hosted zone, plus an alias record. Ingress is
//!   one rule per allowed CIDR or security group and port; the balancer may only send
//!   to the api-server's 8080. The target group checks Airflow's own health endpoint.
//! - **in_vpc**: one ingress rule on the api-server's 8080 per allowed CIDR or group.
//!
//! Flower is never put behind the balancer: its only protection would be one shared
//! basic-auth password with no lockout in front of a UI that can revoke tasks and shut
//! workers down. In every mode its service runs with ECS Exec, and `airflow-stack ui
//! --flower` forwards a local port to it through Session Manager, so reaching it takes
//! an IAM principal allowed to start a session on the task (`ssm:StartSession`), and
//! each session is logged. `in_vpc` also allows its 5555 to the listed networks.
//!
//! Not offered: CloudFront with a VPC origin; see `spec/access.rs` and the README.

use super::component::Component;
use super::fargate;
use super::network::Network;
use super::scope::Scope;
use super::security::{self, SecurityGroups};
use super::service_role::{self, ServiceRole};
use crate::cfn::l1::certificatemanager::{certificate, Certificate};
use crate::cfn::l1::ec2::{security_group, SecurityGroup, SecurityGroupIngress};
use crate::cfn::l1::ecs::cluster::{
    ClusterConfiguration, ExecuteCommandConfiguration, ExecuteCommandLogConfiguration, Logging,
};
use crate::cfn::l1::ecs::service;
use crate::cfn::l1::elasticloadbalancingv2::{
    listener, load_balancer, target_group, Listener, LoadBalancer, TargetGroup,
};
use crate::cfn::l1::iam::Role;
use crate::cfn::l1::route53::{record_set, RecordSet};
use crate::cfn::l1::{Statement, Tag};
use crate::cfn::{Expr, Handle, LogicalId};
use crate::spec::{AccessMode, Scheme};

/// Airflow's health endpoint, which the balancer's target group checks: it answers
/// 200 as soon as the api-server serves requests (the body reports the scheduler and
/// the database; an unhealthy scheduler must not take the UI out of the balancer).
pub const HEALTH_CHECK_PATH: &str = "/api/v2/monitor/health";
/// The status the balancer counts as healthy.
pub const HEALTH_CHECK_MATCHER: &str = "200";
/// The api-server's port.
const API_PORT: u16 = 8080;
/// Flower's port.
const FLOWER_PORT: u16 = 5555;
/// TLS 1.3 and 1.2 only; the policy AWS recommends for new HTTPS listeners
/// ("Security policies for your Application Load Balancer").
const SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";
/// The grace period before the balancer's health checks count against a new task:
/// the api-server waits for the migration check and boots in about a minute.
const HEALTH_CHECK_GRACE_SECONDS: i64 = 180;

/// Flower's service with ECS Exec: its task role (Flower has no other) and the service
/// settings.
pub struct FlowerExec {
    /// The task role the ECS Exec agent in Flower's task uses.
    pub role: Handle<Role>,
}

/// What the api-server's service and task role get from the access construct.
pub struct Exposure {
    /// ECS Exec on the api-server's service (the tunnel).
    pub execute_command: bool,
    /// The target group the api-server's tasks register in, with the grace period.
    pub load_balancer: Option<service::LoadBalancer>,
    /// What the api-server's service must wait for (ECS refuses a target group that no
    /// listener uses yet).
    pub ready: Vec<LogicalId>,
    /// Statements for the api-server's task role (ECS Exec's channels and logging).
    pub task_role_statements: Vec<Statement>,
    /// The cluster's `Configuration` (exec logging), for the cluster construct.
    pub cluster_configuration: Option<ClusterConfiguration>,
    /// Flower's ECS Exec, when Flower runs.
    pub flower: Option<FlowerExec>,
}

impl Exposure {
    /// What the api-server's service (or the packed core service) gets.
    pub fn reach(&self) -> fargate::Reach {
        fargate::Reach {
            execute_command: self.execute_command,
            load_balancer: self.load_balancer.clone(),
            health_check_grace_seconds: self
                .load_balancer
                .as_ref()
                .map(|_| HEALTH_CHECK_GRACE_SECONDS),
        }
    }
}

/// Adds the resources of the stack file's access mode and the `UiUrl` output.
pub fn add(s: &mut Scope, net: &Network, sg: &SecurityGroups) -> Exposure {
    let access = &s.spec.access;
    let base_url = access.base_url(&s.spec.network.namespace);
    let exec = (access.mode == AccessMode::Tunnel || s.spec.services.flower.enabled)
        .then(|| exec_setup(s));
    let mut exposure = match (access.mode, &exec) {
        (AccessMode::Tunnel, Some(exec)) => tunnel(exec),
        (AccessMode::LoadBalancer, _) => balancer(s, net, sg),
        _ => in_vpc(s, sg),
    };
    if let Some(exec) = exec {
        exposure.cluster_configuration = Some(exec.configuration.clone());
        exposure.flower = s
            .spec
            .services
            .flower
            .enabled
            .then(|| flower_exec(s, &exec));
    }
    let how = match access.mode {
        AccessMode::Tunnel => "Airflow UI and REST API through `airflow-stack ui` (a Session Manager port forward to the api-server)",
        AccessMode::LoadBalancer => "Airflow UI and REST API behind the HTTPS load balancer",
        AccessMode::InVpc => "Airflow UI and REST API inside the VPC, for the allowed CIDRs and security groups",
    };
    s.t.output("UiUrl", how, Expr::lit(base_url));
    exposure
}

/// What ECS Exec needs once per stack (the cluster's session logging) and in every
/// task role whose task runs with it (the agent's channels and log writes).
struct ExecSetup {
    statements: Vec<Statement>,
    configuration: ClusterConfiguration,
}

fn tunnel(exec: &ExecSetup) -> Exposure {
    Exposure {
        execute_command: true,
        load_balancer: None,
        ready: Vec::new(),
        task_role_statements: exec.statements.clone(),
        cluster_configuration: Some(exec.configuration.clone()),
        flower: None,
    }
}

/// Flower's task role: ECS Exec's statements and nothing else (Flower makes no AWS
/// call of its own).
fn flower_exec(s: &mut Scope, exec: &ExecSetup) -> FlowerExec {
    let role = service_role::role(
        ServiceRole {
            service: "ecs-tasks.amazonaws.com",
            description: format!(
                "{} Flower: the ECS Exec agent of `airflow-stack ui --flower`",
                s.spec.name
            ),
            policy_name: "ecs-exec",
            statements: exec.statements.clone(),
        },
        s.tags.all(),
    );
    FlowerExec {
        role: s.t.add("FlowerTaskRole", role),
    }
}

fn exec_setup(s: &mut Scope) -> ExecSetup {
    let group = fargate::log_group(s, "ExecSession", "exec");
    let log_group_arn = Expr::arn(
        "logs",
        Expr::concat(vec![
            Expr::lit("log-group:"),
            group.r#ref(),
            Expr::lit(":*"),
        ]),
    );
    let key = s.kms_key_arn();
    let mut statements = vec![
        // The agent's Session Manager channels: ssmmessages has no resource types, so
        // IAM takes these actions on "*" only (Service Authorization Reference,
        // "Actions defined by Amazon Message Gateway Service").
        Statement::allow(
            &[
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            vec![Expr::lit("*")],
        ),
        // The agent checks that the log group exists before it writes; DescribeLogGroups
        // is authorized on "*" only (CloudWatch Logs has no resource for it).
        Statement::allow(&["logs:DescribeLogGroups"], vec![Expr::lit("*")]),
        Statement::allow(
            &[
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
            ],
            vec![log_group_arn],
        ),
    ];
    // A customer-managed key also encrypts the session's data channel; the agent
    // decrypts with the task role.
    if let Some(key) = &key {
        statements.push(Statement::allow(&["kms:Decrypt"], vec![key.clone()]));
    }
    let configuration = ClusterConfiguration {
        execute_command_configuration: Some(ExecuteCommandConfiguration {
            kms_key_id: key.clone(),
            logging: Some(Logging::Override),
            log_configuration: Some(ExecuteCommandLogConfiguration {
                cloud_watch_log_group_name: Some(group.r#ref()),
                // The agent refuses to log into a group without a KMS key when this is
                // on; the group has one only with a customer-managed key.
                cloud_watch_encryption_enabled: Some(key.is_some()),
                ..ExecuteCommandLogConfiguration::default()
            }),
        }),
        ..ClusterConfiguration::default()
    };
    ExecSetup {
        statements,
        configuration,
    }
}

fn in_vpc(s: &mut Scope, sg: &SecurityGroups) -> Exposure {
    let mut ports = vec![(Component::ApiServer, API_PORT, "Airflow UI and API")];
    if s.spec.services.flower.enabled {
        ports.push((Component::Flower, FLOWER_PORT, "Flower"));
    }
    for (component, port, what) in ports {
        let to = sg.of(component);
        allow_listed(s, &format!("{}From", component.id()), to, port, what);
    }
    Exposure {
        execute_command: false,
        load_balancer: None,
        ready: Vec::new(),
        task_role_statements: Vec::new(),
        cluster_configuration: None,
        flower: None,
    }
}

/// One ingress rule per allowed CIDR and security group on `port` of `to`, as
/// `<prefix>AllowedCidr<n>Ingress` and `<prefix>AllowedGroup<n>Ingress`.
fn allow_listed(s: &mut Scope, prefix: &str, to: &Handle<SecurityGroup>, port: u16, what: &str) {
    let access = &s.spec.access;
    for (i, cidr) in access.allowed_cidrs.iter().enumerate() {
        s.t.add(
            &format!("{prefix}AllowedCidr{}Ingress", i + 1),
            SecurityGroupIngress {
                group_id: Some(to.group_id()),
                ip_protocol: Some("tcp".into()),
                from_port: Some(port.into()),
                to_port: Some(port.into()),
                cidr_ip: Some(cidr.clone().into()),
                description: Some(
                    format!("{what} ({port}) from {cidr}, access.allowed_cidrs").into(),
                ),
                ..SecurityGroupIngress::default()
            },
        );
    }
    for (i, group) in access.allowed_security_groups.iter().enumerate() {
        s.t.add(
            &format!("{prefix}AllowedGroup{}Ingress", i + 1),
            SecurityGroupIngress {
                group_id: Some(to.group_id()),
                ip_protocol: Some("tcp".into()),
                from_port: Some(port.into()),
                to_port: Some(port.into()),
                source_security_group_id: Some(group.clone().into()),
                description: Some(
                    format!("{what} ({port}) from {group}, access.allowed_security_groups").into(),
                ),
                ..SecurityGroupIngress::default()
            },
        );
    }
}

fn balancer(s: &mut Scope, net: &Network, sg: &SecurityGroups) -> Exposure {
    let api_server = sg.of(Component::ApiServer);
    let group = balancer_group(s, net, api_server);
    let into_api = security::allow(
        &mut s.t,
        "ApiServerFromLoadBalancer",
        api_server,
        &group,
        API_PORT,
        "load balancer",
    );
    let open = s.spec.access.open_to_the_whole_internet;
    for port in [443, 80] {
        let what = if port == 443 {
            "HTTPS"
        } else {
            "HTTP, redirected to HTTPS"
        };
        if open {
            add_open_rule(s, &group, port, what);
        } else {
            allow_listed(s, &format!("LoadBalancer{port}"), &group, port, what);
        }
    }
    let lb = add_load_balancer(s, net, &group);
    let targets = add_target_group(s, net);
    let certificate = certificate(s);
    let https = s.t.add(
        "HttpsListener",
        Listener {
            load_balancer_arn: Some(lb.r#ref()),
            port: Some(443),
            protocol: Some(listener::Protocol::Https),
            ssl_policy: Some(SSL_POLICY.into()),
            certificates: vec![listener::Certificate {
                certificate_arn: Some(certificate),
            }],
            default_actions: vec![listener::Action {
                r#type: Some(listener::Type::Forward),
                target_group_arn: Some(targets.r#ref()),
                ..listener::Action::default()
            }],
            ..Listener::default()
        },
    );
    s.t.add(
        "HttpListener",
        Listener {
            load_balancer_arn: Some(lb.r#ref()),
            port: Some(80),
            protocol: Some(listener::Protocol::Http),
            default_actions: vec![listener::Action {
                r#type: Some(listener::Type::Redirect),
                redirect_config: Some(listener::RedirectConfig {
                    protocol: Some("HTTPS".into()),
                    port: Some("443".into()),
                    status_code: Some(listener::StatusCode::Http301),
                    ..listener::RedirectConfig::default()
                }),
                ..listener::Action::default()
            }],
            ..Listener::default()
        },
    );
    add_alias_record(s, &lb);
    s.t.output(
        "LoadBalancerDnsName",
        "The balancer's own DNS name; point access.domain at it when the stack creates no record",
        lb.dns_name(),
    );
    Exposure {
        execute_command: false,
        load_balancer: Some(service::LoadBalancer {
            container_name: Some(Component::ApiServer.name().into()),
            container_port: Some(API_PORT.into()),
            target_group_arn: Some(targets.r#ref()),
            ..service::LoadBalancer::default()
        }),
        ready: vec![https.id().clone(), into_api],
        task_role_statements: Vec::new(),
        cluster_configuration: None,
        flower: None,
    }
}

/// The balancer's group: no ingress of its own (rules are added one by one), and
/// egress to the api-server's 8080 only, so a compromised balancer configuration
/// cannot reach anything else.
fn balancer_group(
    s: &mut Scope,
    net: &Network,
    api_server: &Handle<SecurityGroup>,
) -> Handle<SecurityGroup> {
    let name = format!("{}-load-balancer", s.spec.name);
    let to_api = security_group::Egress {
        ip_protocol: Some("tcp".into()),
        from_port: Some(API_PORT.into()),
        to_port: Some(API_PORT.into()),
        destination_security_group_id: Some(api_server.group_id()),
        description: Some(format!("api-server ({API_PORT})").into()),
        ..security_group::Egress::default()
    };
    s.t.add(
        "LoadBalancerSecurityGroup",
        SecurityGroup {
            group_description: Some(format!("{} load balancer", s.spec.name).into()),
            vpc_id: Some(net.vpc_id.clone()),
            security_group_egress: vec![to_api],
            tags: s.tags.named(&name),
            ..SecurityGroup::default()
        },
    )
}

/// `open_to_the_whole_internet`: 0.0.0.0/0 on `port`, as the stack file asked in so
/// many words.
fn add_open_rule(s: &mut Scope, group: &Handle<SecurityGroup>, port: u16, what: &str) {
    s.t.add(
        &format!("LoadBalancer{port}FromInternetIngress"),
        SecurityGroupIngress {
            group_id: Some(group.group_id()),
            ip_protocol: Some("tcp".into()),
            from_port: Some(port.into()),
            to_port: Some(port.into()),
            cidr_ip: Some("0.0.0.0/0".into()),
            description: Some(
                format!("{what} ({port}) from anywhere, access.open_to_the_whole_internet").into(),
            ),
            ..SecurityGroupIngress::default()
        },
    );
}

fn add_load_balancer(
    s: &mut Scope,
    net: &Network,
    group: &Handle<SecurityGroup>,
) -> Handle<LoadBalancer> {
    let access = &s.spec.access;
    let (scheme, subnets) = match access.scheme() {
        Scheme::Internal => (load_balancer::Scheme::Internal, net.subnets.clone()),
        Scheme::InternetFacing => (
            load_balancer::Scheme::InternetFacing,
            net.public_subnets.clone(),
        ),
    };
    let subnets = if access.subnet_ids.is_empty() {
        subnets
    } else {
        access
            .subnet_ids
            .iter()
            .map(|id| Expr::lit(id.clone()))
            .collect()
    };
    let attributes = vec![
        // Requests with header names that are not valid HTTP are dropped, not passed to
        // the api-server (request smuggling).
        Tag::new(
            "routing.http.drop_invalid_header_fields.enabled",
            "true".to_string(),
        ),
    ];
    s.t.add(
        "LoadBalancer",
        LoadBalancer {
            r#type: Some(load_balancer::Type::Application),
            scheme: Some(scheme),
            subnets,
            security_groups: vec![group.group_id()],
            load_balancer_attributes: attributes,
            tags: s.tags.named(&format!("{}-ui", s.spec.name)),
            ..LoadBalancer::default()
        },
    )
}

fn add_target_group(s: &mut Scope, net: &Network) -> Handle<TargetGroup> {
    s.t.add(
        "ApiServerTargetGroup",
        TargetGroup {
            target_type: Some(target_group::TargetType::Ip),
            protocol: Some(target_group::Protocol::Http),
            port: Some(API_PORT.into()),
            vpc_id: Some(net.vpc_id.clone()),
            health_check_enabled: Some(true),
            health_check_protocol: Some(target_group::HealthCheckProtocol::Http),
            health_check_path: Some(HEALTH_CHECK_PATH.into()),
            matcher: Some(target_group::Matcher {
                http_code: Some(HEALTH_CHECK_MATCHER.into()),
                ..target_group::Matcher::default()
            }),
            health_check_interval_seconds: Some(15),
            health_check_timeout_seconds: Some(5),
            healthy_threshold_count: Some(2),
            unhealthy_threshold_count: Some(3),
            // A replaced api-server drains for 30 s, not the default 300: UI requests
            // are short, and a deploy would otherwise wait five minutes per task.
            target_group_attributes: vec![Tag::new(
                "deregistration_delay.timeout_seconds",
                "30".to_string(),
            )],
            tags: s.tags.all(),
            ..TargetGroup::default()
        },
    )
}

/// The certificate's ARN: given, or a new ACM certificate validated by DNS in the
/// hosted zone (CloudFormation writes the validation record itself when
/// `DomainValidationOptions` names the zone).
fn certificate(s: &mut Scope) -> Expr {
    let access = &s.spec.access;
    if let Some(arn) = &access.certificate_arn {
        return Expr::lit(arn.clone());
    }
    let domain = access.domain.clone().unwrap_or_default();
    let zone = access.hosted_zone_id.clone().unwrap_or_default();
    s.t.add(
        "Certificate",
        Certificate {
            domain_name: Some(domain.clone().into()),
            validation_method: Some("DNS".into()),
            domain_validation_options: vec![certificate::DomainValidationOption {
                domain_name: Some(domain.into()),
                hosted_zone_id: Some(zone.into()),
                ..certificate::DomainValidationOption::default()
            }],
            tags: s.tags.all(),
            ..Certificate::default()
        },
    )
    .r#ref()
}

/// An alias A record for the domain, when the stack file names its hosted zone.
fn add_alias_record(s: &mut Scope, lb: &Handle<LoadBalancer>) {
    let access = &s.spec.access;
    let (Some(zone), Some(domain)) = (&access.hosted_zone_id, &access.domain) else {
        return;
    };
    s.t.add(
        "UiDnsRecord",
        RecordSet {
            hosted_zone_id: Some(zone.clone().into()),
            name: Some(domain.clone().into()),
            r#type: Some("A".into()),
            alias_target: Some(record_set::AliasTarget {
                dns_name: Some(lb.dns_name()),
                hosted_zone_id: Some(lb.canonical_hosted_zone_id()),
                evaluate_target_health: Some(false),
            }),
            ..RecordSet::default()
        },
    );
}
