//! What a stack costs per month, read from the template as synthesized plus the spec.
//!
//! Pure: `(template value, spec) -> Estimate`, no I/O. Every figure comes from the one
//! price table in [`prices`] and from the resources the template really contains, so a
//! change to a construct shows up in the estimate without touching this module. The
//! few properties a price depends on are read into small typed structs
//! (`template.rs`): a missing or mistyped one is an error naming the resource and the
//! property, never a guessed value.
//!
//! Two columns: *always on* (every service at its DesiredCount for 730 hours) and
//! *paused* (every ECS service at 0, the database stopped or auto-paused; what keeps
//! billing is storage, secrets, NAT gateways, load balancers and their addresses).

pub mod prices;

mod template;

use serde::Serialize;
use serde_json::Value;

use crate::spec::Spec;
use prices::{lookup, Prices, HOURS_PER_MONTH, PRICES_AS_OF};
use template::{self as t, Resource, Resources};

/// Usage the template cannot tell: written into every estimate.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Assumptions {
    /// CloudWatch Logs ingested per running task per month, GB.
    pub log_gb_per_task_month: f64,
    /// Data through each NAT gateway per month, GB.
    pub nat_gb_month: f64,
    /// Metadata database size (Aurora bills what is used), GB.
    pub database_gb: f64,
    /// DAGs and task logs in S3, GB.
    pub s3_gb: f64,
    /// Load balancer capacity units in use on average.
    pub alb_lcu: f64,
    /// ECR storage of the image built in the account, GB (the compressed Airflow base
    /// layers, stored once, plus the layers of your requirements and plugins).
    pub image_gb: f64,
    /// Minutes of one image build (pull the base, apt-get, pip install, push).
    pub build_minutes: f64,
    /// Image builds a month (deploys that change the image's build context: `airflow.build`,
    /// or the provider of `airflow.lambda_functions` after an upgrade of airflow-stack).
    pub builds_per_month: f64,
}

/// The assumptions `airflow-stack cost` uses.
pub const ASSUMPTIONS: Assumptions = Assumptions {
    log_gb_per_task_month: 0.5,
    nat_gb_month: 10.0,
    database_gb: 5.0,
    s3_gb: 1.0,
    alb_lcu: 1.0,
    image_gb: 1.5,
    build_minutes: 10.0,
    builds_per_month: 4.0,
};

/// One line of the estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// What is billed, e.g. `WorkerService`.
    pub item: String,
    /// How it was computed, e.g. `1 x 0.5 vCPU / 1 GB ARM64, FARGATE_SPOT`.
    pub detail: String,
    /// USD per month with everything running.
    pub always_on: f64,
    /// USD per month while paused.
    pub paused: f64,
}

/// An MWAA environment class for comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MwaaClass {
    /// e.g. `mw1.small`.
    pub class: String,
    /// USD per month (730 h), environment only (one scheduler, one worker, web server).
    pub monthly: f64,
}

/// A monthly estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Stack name.
    pub stack: String,
    /// Region priced.
    pub region: String,
    /// Date of the price table.
    pub prices_as_of: String,
    /// Hours per month.
    pub hours_per_month: f64,
    /// Every billed item.
    pub lines: Vec<Line>,
    /// Sum of the always-on column.
    pub always_on: f64,
    /// Sum of the paused column.
    pub paused: f64,
    /// What the numbers assume, in words.
    pub assumptions: Vec<String>,
    /// MWAA environment classes in the same region.
    pub mwaa: Vec<MwaaClass>,
}

/// Why no estimate could be made: input the table cannot price (exit 2), or a rendered
/// template the estimate cannot read (a bug in a construct, exit 1).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    /// The region is not in the price table.
    #[error("region: no prices for {region:?}; the price table knows {known} (add the region to src/cost/prices.rs)")]
    UnknownRegion {
        /// The stack's region.
        region: String,
        /// Known regions, comma separated.
        known: String,
    },
    /// An instance or node type is not in the price table.
    #[error("{field}: no {region} price for {name:?}; priced: {known}")]
    UnknownType {
        /// Field of the stack file.
        field: &'static str,
        /// Region.
        region: String,
        /// The type.
        name: String,
        /// Priced types, comma separated.
        known: String,
    },
    /// The template has no `Resources` object.
    #[error("the rendered template has no Resources object")]
    NoResources,
    /// A resource lacks or mistypes a property the price depends on, or is of a kind
    /// the estimate does not price. Nothing is guessed.
    #[error("the rendered template cannot be priced: {resource} ({resource_type}): {problem}")]
    Template {
        /// Logical id.
        resource: String,
        /// Resource type (`?` when the entry has none).
        resource_type: String,
        /// What is wrong, naming the property (`Properties.Cpu: ...`).
        problem: String,
    },
}

impl CostError {
    /// Whether the stack file is at fault (an unpriced region or type) rather than the
    /// template the constructs rendered.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            CostError::UnknownRegion { .. } | CostError::UnknownType { .. }
        )
    }
}

/// Estimates the monthly cost of `template` (synthesized from `spec`).
pub fn estimate(template: &Value, spec: &Spec) -> Result<Estimate, CostError> {
    let p = prices::for_region(&spec.region).ok_or_else(|| CostError::UnknownRegion {
        region: spec.region.to_string(),
        known: prices::known_regions().join(", "),
    })?;
    let resources = Resources::of(template)?;
    let tasks = fargate_tasks(&resources)?;
    let mut lines: Vec<Line> = tasks.iter().map(|t| t.line(p)).collect();
    lines.extend(database_lines(&resources, p)?);
    lines.extend(elasticache_lines(&resources, p)?);
    lines.extend(network_lines(&resources, &tasks, p)?);
    lines.extend(load_balancer_lines(&resources, p)?);
    lines.extend(fixed_lines(&resources, &tasks, p)?);
    lines.extend(image_build_lines(&resources, p)?);
    lines.extend(stream_manager_lines(&resources, p)?);
    let always_on = lines.iter().map(|l| l.always_on).sum();
    let paused = lines.iter().map(|l| l.paused).sum();
    Ok(Estimate {
        stack: spec.name.to_string(),
        region: p.region.to_string(),
        prices_as_of: PRICES_AS_OF.to_string(),
        hours_per_month: HOURS_PER_MONTH,
        lines,
        always_on,
        paused,
        assumptions: assumptions(&resources, p)?,
        mwaa: p
            .mwaa
            .iter()
            .map(|(class, hourly)| MwaaClass {
                class: class.to_string(),
                monthly: hourly * HOURS_PER_MONTH,
            })
            .collect(),
    })
}

/// One ECS service on Fargate, as billed.
#[derive(Debug, Clone, PartialEq)]
struct FargateTask {
    service: String,
    count: f64,
    vcpu: f64,
    gb: f64,
    arm: bool,
    spot: bool,
    public_ip: bool,
}

impl FargateTask {
    fn hourly(&self, p: &Prices) -> f64 {
        let rate = if self.arm {
            p.fargate_arm
        } else {
            p.fargate_x86
        };
        let factor = if self.spot {
            p.fargate_spot_factor
        } else {
            1.0
        };
        self.count * (self.vcpu * rate.vcpu_hour + self.gb * rate.gb_hour) * factor
    }

    fn line(&self, p: &Prices) -> Line {
        Line {
            item: self.service.clone(),
            detail: format!(
                "{} x {} vCPU / {} GB {}, {}",
                self.count,
                self.vcpu,
                self.gb,
                if self.arm { "ARM64" } else { "X86_64" },
                if self.spot { "FARGATE_SPOT" } else { "FARGATE" }
            ),
            always_on: self.hourly(p) * HOURS_PER_MONTH,
            paused: 0.0,
        }
    }
}

/// Every ECS service with its task definition's size and platform.
fn fargate_tasks(r: &Resources) -> Result<Vec<FargateTask>, CostError> {
    r.of_type("AWS::ECS::Service")?
        .into_iter()
        .map(|svc| {
            let props: t::EcsService = svc.properties()?;
            let task_id = &props.task_definition.target;
            let task = r
                .get(task_id)
                .filter(|t| t.type_name == "AWS::ECS::TaskDefinition")
                .ok_or_else(|| {
                    svc.error(format!(
                        "Properties.TaskDefinition: {task_id:?} is not a task definition of the template"
                    ))
                })?;
            let task: t::TaskDefinition = task.properties()?;
            Ok(FargateTask {
                service: svc.id.to_string(),
                count: props.desired_count.0,
                vcpu: task.cpu.0 / 1024.0,
                gb: task.memory.0 / 1024.0,
                arm: task.runtime_platform.cpu_architecture == t::CpuArchitecture::Arm64,
                spot: on_spot(&svc, &props)?,
                public_ip: props
                    .network_configuration
                    .and_then(|n| n.awsvpc_configuration)
                    .is_some_and(|a| a.assign_public_ip == t::AssignPublicIp::Enabled),
            })
        })
        .collect()
}

/// Whether a service runs on Fargate Spot (else on Fargate on demand): one capacity
/// provider, or `LaunchType: FARGATE`. A mixed strategy, another provider or launch
/// type, or neither (the cluster's default strategy then decides) is not priced.
fn on_spot(svc: &Resource, props: &t::EcsService) -> Result<bool, CostError> {
    let strategy = props.capacity_provider_strategy.as_slice();
    match (strategy, props.launch_type.as_deref()) {
        ([one], None) => match one.capacity_provider.as_str() {
            "FARGATE_SPOT" => Ok(true),
            "FARGATE" => Ok(false),
            other => Err(svc.error(format!(
                "Properties.CapacityProviderStrategy: capacity provider {other:?} is not priced \
                 (FARGATE or FARGATE_SPOT)"
            ))),
        },
        ([], Some("FARGATE")) => Ok(false),
        ([], Some(other)) => Err(svc.error(format!(
            "Properties.LaunchType: {other:?} is not priced (FARGATE)"
        ))),
        ([], None) => Err(svc.error(
            "no CapacityProviderStrategy or LaunchType: the cluster's default strategy \
             decides, which the estimate does not read"
                .into(),
        )),
        _ => Err(svc.error(
            "Properties.CapacityProviderStrategy: only a single FARGATE or FARGATE_SPOT \
             provider (and no LaunchType) is priced"
                .into(),
        )),
    }
}

/// Aurora Serverless v2 at its minimum capacity, or RDS instances, plus storage.
fn database_lines(r: &Resources, p: &Prices) -> Result<Vec<Line>, CostError> {
    let mut lines = Vec::new();
    let instances = r
        .of_type("AWS::RDS::DBInstance")?
        .into_iter()
        .map(|i| Ok((i, i.properties::<t::DbInstance>()?)))
        .collect::<Result<Vec<_>, CostError>>()?;
    let clusters = r.of_type("AWS::RDS::DBCluster")?;
    // Every cluster instance belongs to a cluster of the template and is db.serverless,
    // the only Aurora compute priced.
    for (i, props) in &instances {
        let Some(cluster) = &props.db_cluster_identifier else {
            continue;
        };
        if !clusters.iter().any(|c| c.id == cluster.target) {
            return Err(i.error(format!(
                "Properties.DBClusterIdentifier: {:?} is not a DB cluster of the template",
                cluster.target
            )));
        }
        if props.db_instance_class != "db.serverless" {
            return Err(i.error(format!(
                "Properties.DBInstanceClass: {:?} in an Aurora cluster is not priced \
                 (db.serverless)",
                props.db_instance_class
            )));
        }
    }
    for cluster in &clusters {
        let id = cluster.id;
        let props: t::DbCluster = cluster.properties()?;
        let min = props.serverless_v2_scaling_configuration.min_capacity.0;
        // Aurora bills compute per instance: one db.serverless instance per cluster
        // instance in the template (a cluster without one has no compute).
        let instances = instances
            .iter()
            .filter(|(_, i)| {
                i.db_cluster_identifier
                    .as_ref()
                    .is_some_and(|c| c.target == id)
            })
            .count() as f64;
        // A running Airflow queries the database every few seconds, so a cluster at
        // MinCapacity 0 never pauses while the services run: it runs at 0.5 ACU, the
        // smallest capacity of an active cluster.
        let active = min.max(0.5);
        let compute = instances * active * p.aurora_acu_hour * HOURS_PER_MONTH;
        // Paused, no ACU bills: a cluster at min 0 pauses itself once nothing connects,
        // and `airflow-stack pause` (or the schedule) stops one above 0.
        let paused_how = if min == 0.0 { "auto-paused" } else { "stopped" };
        lines.push(Line {
            item: id.to_string(),
            detail: format!("Aurora Serverless v2, {instances} x {active} ACU (MinCapacity {min}; {paused_how} while paused)"),
            always_on: compute,
            paused: 0.0,
        });
        let storage = ASSUMPTIONS.database_gb * p.aurora_storage_gb_month;
        lines.push(Line {
            item: format!("{id} storage"),
            detail: format!("{} GB used (assumed)", ASSUMPTIONS.database_gb),
            always_on: storage,
            paused: storage,
        });
    }
    for (db, props) in &instances {
        if props.db_cluster_identifier.is_some() {
            continue; // priced with its cluster
        }
        let id = db.id;
        let class = props.db_instance_class.as_str();
        let hourly = lookup(p.rds_instances, class).ok_or_else(|| CostError::UnknownType {
            field: "database.instance_class",
            region: p.region.to_string(),
            name: class.to_string(),
            known: names(p.rds_instances),
        })?;
        let multi_az = props.multi_az.ok_or_else(|| {
            db.error("Properties: missing field `MultiAZ` (a second AZ doubles the price)".into())
        })?;
        let azs = if multi_az { 2.0 } else { 1.0 };
        let gb = props
            .allocated_storage
            .ok_or_else(|| db.error("Properties: missing field `AllocatedStorage`".into()))?
            .0;
        let storage_type = match (props.storage_type.as_deref(), &props.iops) {
            (Some(s @ ("gp2" | "gp3")), _) => s,
            // The schema's default: "io1, if the Iops parameter is specified. Otherwise, gp3".
            (None, None) => "gp3",
            (other, _) => {
                let named =
                    other.map_or("io1 (the default with Iops)".into(), |s| format!("{s:?}"));
                return Err(db.error(format!(
                    "Properties.StorageType: {named} is not priced (gp2 or gp3)"
                )));
            }
        };
        lines.push(Line {
            item: id.to_string(),
            detail: format!("RDS {class}, {azs} AZ (stopped while paused)"),
            always_on: azs * hourly * HOURS_PER_MONTH,
            paused: 0.0,
        });
        let storage = azs * gb * p.rds_storage_gb_month;
        lines.push(Line {
            item: format!("{id} storage"),
            detail: format!("{gb} GB {storage_type} (billed while stopped)"),
            always_on: storage,
            paused: storage,
        });
    }
    Ok(lines)
}

fn names(list: &[(&str, f64)]) -> String {
    list.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// ElastiCache node hours (they keep billing while paused: a replication group cannot stop).
fn elasticache_lines(r: &Resources, p: &Prices) -> Result<Vec<Line>, CostError> {
    r.of_type("AWS::ElastiCache::ReplicationGroup")?
        .into_iter()
        .map(|g| {
            let props: t::ReplicationGroup = g.properties()?;
            if props.num_node_groups.is_some() || !props.node_group_configuration.is_empty() {
                return Err(g.error(
                    "Properties: a group with shards (NumNodeGroups, NodeGroupConfiguration) \
                     is not priced"
                        .into(),
                ));
            }
            let node = props.cache_node_type.as_str();
            let hourly =
                lookup(p.elasticache_nodes, node).ok_or_else(|| CostError::UnknownType {
                    field: "redis.node_type",
                    region: p.region.to_string(),
                    name: node.to_string(),
                    known: names(p.elasticache_nodes),
                })?;
            let nodes = match (props.num_cache_clusters, props.automatic_failover_enabled) {
                (Some(n), _) => n.0,
                (None, false) => 1.0,
                (None, true) => {
                    return Err(g.error(
                        "Properties: missing field `NumCacheClusters` (required with \
                         AutomaticFailoverEnabled)"
                            .into(),
                    ))
                }
            };
            let monthly = nodes * hourly * HOURS_PER_MONTH;
            Ok(Line {
                item: g.id.to_string(),
                detail: format!("ElastiCache {nodes} x {node} (cannot be stopped)"),
                always_on: monthly,
                paused: monthly,
            })
        })
        .collect()
}

/// NAT gateways and public IPv4 addresses: task IPs go away with the tasks, Elastic IPs stay.
fn network_lines(r: &Resources, tasks: &[FargateTask], p: &Prices) -> Result<Vec<Line>, CostError> {
    let mut lines = Vec::new();
    let nats = r.count("AWS::EC2::NatGateway")? as f64;
    if nats > 0.0 {
        let hours = nats * p.nat_hour * HOURS_PER_MONTH;
        let data = nats * ASSUMPTIONS.nat_gb_month * p.nat_gb;
        lines.push(Line {
            item: "NAT gateways".into(),
            detail: format!(
                "{nats} x hourly + {} GB each (assumed)",
                ASSUMPTIONS.nat_gb_month
            ),
            always_on: hours + data,
            paused: hours,
        });
    }
    let task_ips: f64 = tasks.iter().filter(|t| t.public_ip).map(|t| t.count).sum();
    if task_ips > 0.0 {
        lines.push(Line {
            item: "Public IPv4 (tasks)".into(),
            detail: format!("{task_ips} running tasks with AssignPublicIp ENABLED"),
            always_on: task_ips * p.public_ipv4_hour * HOURS_PER_MONTH,
            paused: 0.0,
        });
    }
    let eips = r.count("AWS::EC2::EIP")? as f64;
    if eips > 0.0 {
        let monthly = eips * p.public_ipv4_hour * HOURS_PER_MONTH;
        lines.push(Line {
            item: "Public IPv4 (Elastic IPs)".into(),
            detail: format!("{eips} Elastic IPs of NAT gateways"),
            always_on: monthly,
            paused: monthly,
        });
    }
    Ok(lines)
}

/// Load balancers: hourly plus the assumed capacity units; the hours bill while paused
/// (no traffic then, so no LCUs). An internet-facing balancer also holds one public
/// IPv4 address per subnet (AZ) it has a node in, billed like any other ("Public IPv4
/// Address" on the VPC pricing page; Elastic Load Balancing pricing, "LCU"). Its
/// certificate (ACM, public) and alias record (Route 53 answers alias queries to a
/// load balancer free of charge; the hosted zone is the owner's) cost nothing.
fn load_balancer_lines(r: &Resources, p: &Prices) -> Result<Vec<Line>, CostError> {
    let mut lines = Vec::new();
    for lb in r.of_type("AWS::ElasticLoadBalancingV2::LoadBalancer")? {
        let properties: Value = lb.properties()?;
        let hours = p.alb_hour * HOURS_PER_MONTH;
        let lcu = ASSUMPTIONS.alb_lcu * p.alb_lcu_hour * HOURS_PER_MONTH;
        lines.push(Line {
            item: lb.id.to_string(),
            detail: format!(
                "load balancer hours + {} LCU (assumed; none while paused)",
                ASSUMPTIONS.alb_lcu
            ),
            always_on: hours + lcu,
            paused: hours,
        });
        // CloudFormation's default scheme is internet-facing.
        let public =
            properties["Scheme"].as_str().unwrap_or("internet-facing") == "internet-facing";
        if !public {
            continue;
        }
        let subnets = properties["Subnets"]
            .as_array()
            .or_else(|| properties["SubnetMappings"].as_array())
            .map(Vec::len)
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                lb.error("Properties: an internet-facing balancer without Subnets or SubnetMappings cannot be priced (one public IPv4 address per subnet)".into())
            })? as f64;
        let ips = subnets * p.public_ipv4_hour * HOURS_PER_MONTH;
        lines.push(Line {
            item: format!("{} public IPv4", lb.id),
            detail: format!("{subnets} addresses, one per subnet of the internet-facing balancer (more while it scales out)"),
            always_on: ips,
            paused: ips,
        });
    }
    let zero = |item: &str, count: usize, detail: &str| Line {
        item: item.to_string(),
        detail: format!("{count} x {detail}"),
        always_on: 0.0,
        paused: 0.0,
    };
    let certificates = r.count("AWS::CertificateManager::Certificate")?;
    if certificates > 0 {
        lines.push(zero(
            "ACM certificate",
            certificates,
            "public certificate (free)",
        ));
    }
    let records = r.count("AWS::Route53::RecordSet")?;
    if records > 0 {
        lines.push(zero(
            "Route 53 record",
            records,
            "alias record to the balancer (alias queries free; the hosted zone is yours)",
        ));
    }
    Ok(lines)
}

/// Secrets, log ingestion, S3 and a created KMS key: small, but honest.
fn fixed_lines(r: &Resources, tasks: &[FargateTask], p: &Prices) -> Result<Vec<Line>, CostError> {
    let secrets = r.count("AWS::SecretsManager::Secret")? as f64;
    // Only a key the stack creates is billed to it; a key given by ARN is the owner's.
    let keys = r.count("AWS::KMS::Key")? as f64;
    let running: f64 = tasks.iter().map(|t| t.count).sum();
    let log_gb = running * ASSUMPTIONS.log_gb_per_task_month;
    let s3 = ASSUMPTIONS.s3_gb * p.s3_gb_month;
    Ok(vec![
        Line {
            item: "Secrets Manager".into(),
            detail: format!("{secrets} secrets"),
            always_on: secrets * p.secret_month,
            paused: secrets * p.secret_month,
        },
        Line {
            item: "CloudWatch Logs".into(),
            detail: format!(
                "{log_gb} GB ingested ({} GB per running task, assumed)",
                ASSUMPTIONS.log_gb_per_task_month
            ),
            always_on: log_gb * p.logs_ingest_gb,
            paused: 0.0,
        },
        Line {
            item: "S3".into(),
            detail: format!("{} GB of DAGs and task logs (assumed)", ASSUMPTIONS.s3_gb),
            always_on: s3,
            paused: s3,
        },
    ]
    .into_iter()
    .chain((keys > 0.0).then(|| Line {
        item: "KMS".into(),
        detail: format!(
            "{keys} customer-managed key, first year (each yearly rotation adds its price; requests within the free tier, assumed)"
        ),
        always_on: keys * p.kms_key_month,
        paused: keys * p.kms_key_month,
    }))
    .collect())
}

/// Seconds of Lambda billed per second of wall time for a stream chain: a link starts
/// its successor `DEFAULT_HANDOFF_SECONDS` before its time limit and keeps reading for
/// `DEFAULT_OVERLAP_SECONDS` (the contract's), so two links run at once that long per
/// link.
fn chain_duty(timeout_seconds: f64) -> f64 {
    use airflow_stack_contract::streams::{DEFAULT_HANDOFF_SECONDS, DEFAULT_OVERLAP_SECONDS};
    let interval = (timeout_seconds - f64::from(DEFAULT_HANDOFF_SECONDS)).max(1.0);
    (interval + f64::from(DEFAULT_OVERLAP_SECONDS)) / interval
}

/// The stream managers (`streams:`): Lambda chains that run around the clock, paused
/// too (`pause` stops the ECS services, not the chains). Each line also names what the
/// smallest Fargate task would cost for the same stream, so the choice of runner is
/// informed. Requests (one per link, about 3,100 a month) are within cents and left out.
fn stream_manager_lines(r: &Resources, p: &Prices) -> Result<Vec<Line>, CostError> {
    let mut lines = Vec::new();
    for f in r.of_type("AWS::Lambda::Function")? {
        let props: t::LambdaFunction = f.properties()?;
        if props.recursive_loop.as_deref() != Some("Allow") {
            continue;
        }
        let arm = props.architectures.first().is_some_and(|a| a == "arm64");
        let gb = props.memory_size.0 / 1024.0;
        let rate = if arm {
            p.lambda_arm_gb_second
        } else {
            p.lambda_x86_gb_second
        };
        let duty = chain_duty(props.timeout.0);
        let monthly = gb * HOURS_PER_MONTH * 3600.0 * duty * rate;
        let fargate = if arm { p.fargate_arm } else { p.fargate_x86 };
        let task = (0.25 * fargate.vcpu_hour + 0.5 * fargate.gb_hour) * HOURS_PER_MONTH;
        lines.push(Line {
            item: f.id.to_string(),
            detail: format!(
                "Lambda chain around the clock, {} MB {}, {:.1} % overlap (a 0.25 vCPU / 0.5 GB Fargate task: ${task:.2})",
                props.memory_size.0,
                if arm { "arm64" } else { "x86_64" },
                (duty - 1.0) * 100.0
            ),
            always_on: monthly,
            paused: monthly,
        });
    }
    Ok(lines)
}

/// The image built in the account (`airflow.build`, `airflow.lambda_functions`): ECR storage of the kept images
/// (always, paused too) and CodeBuild minutes for the builds a month (only while the
/// stack is in use: a paused stack is not redeployed).
fn image_build_lines(r: &Resources, p: &Prices) -> Result<Vec<Line>, CostError> {
    let projects = r.of_type("AWS::CodeBuild::Project")?;
    let Some(project) = projects.first() else {
        return Ok(Vec::new());
    };
    let properties: Value = project.properties()?;
    let arm = properties
        .pointer("/Environment/Type")
        .and_then(Value::as_str)
        == Some("ARM_CONTAINER");
    let (per_minute, compute) = if arm {
        (p.codebuild_small_arm_minute, "arm1.small")
    } else {
        (p.codebuild_small_x86_minute, "general1.small")
    };
    let per_build = ASSUMPTIONS.build_minutes * per_minute;
    let storage = ASSUMPTIONS.image_gb * p.ecr_gb_month;
    Ok(vec![
        Line {
            item: "ECR".into(),
            detail: format!(
                "{} GB of image layers stored (assumed: the Airflow base layers once, plus your changes; kept images share layers)",
                ASSUMPTIONS.image_gb
            ),
            always_on: storage,
            paused: storage,
        },
        Line {
            item: "CodeBuild".into(),
            detail: format!(
                "${per_build:.3} per build ({} min on {compute}, assumed) x {} builds a month (assumed; an unchanged build context builds nothing)",
                ASSUMPTIONS.build_minutes, ASSUMPTIONS.builds_per_month
            ),
            always_on: per_build * ASSUMPTIONS.builds_per_month,
            paused: 0.0,
        },
    ])
}

/// The monitoring the template turns on that the estimate does not price, by name:
/// Container Insights (the cluster setting) and RDS Enhanced Monitoring (an
/// instance's `MonitoringInterval`).
fn unpriced_monitoring(r: &Resources) -> Result<Vec<String>, CostError> {
    let mut on = Vec::new();
    for cluster in r.of_type("AWS::ECS::Cluster")? {
        let properties: Value = cluster.properties()?;
        let insights = properties["ClusterSettings"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["Name"] == "containerInsights")
            .and_then(|s| s["Value"].as_str());
        if let Some(level) = insights.filter(|v| *v != "disabled") {
            on.push(format!("Container Insights ({level})"));
        }
    }
    for instance in r.of_type("AWS::RDS::DBInstance")? {
        let properties: Value = instance.properties()?;
        if let Some(seconds) = properties["MonitoringInterval"].as_i64().filter(|s| *s > 0) {
            on.push(format!("RDS Enhanced Monitoring every {seconds} s"));
        }
    }
    Ok(on)
}

/// Whether a cluster logs ECS Exec sessions (the tunnel's exec logging).
fn exec_logging(r: &Resources) -> Result<bool, CostError> {
    for cluster in r.of_type("AWS::ECS::Cluster")? {
        let properties: Value = cluster.properties()?;
        if properties["Configuration"]["ExecuteCommandConfiguration"].is_object() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What the estimate assumes, in words, for the table footer and the JSON.
fn assumptions(r: &Resources, p: &Prices) -> Result<Vec<String>, CostError> {
    let mut out = vec![
        format!("{HOURS_PER_MONTH} hours a month; on-demand list prices of {} dated {PRICES_AS_OF} (src/cost/prices.rs).", p.region),
        format!("Fargate Spot at {:.0} % of the on-demand price (the live Spot price moves).", p.fargate_spot_factor * 100.0),
        "Paused: every ECS service at DesiredCount 0 (`airflow-stack pause`), so no task, task IPv4 address or log ingestion is billed.".into(),
    ];
    if r.count("AWS::RDS::DBCluster")? > 0 {
        out.push("Aurora Serverless v2 is priced at max(MinCapacity, 0.5) ACU while Airflow runs (its scheduler keeps the cluster active); paused, a cluster at MinCapacity 0 pauses itself and `airflow-stack pause` (or the schedule) stops one above 0, so only storage bills; AWS starts a stopped cluster again after 7 days.".into());
    } else if r.count("AWS::RDS::DBInstance")? > 0 {
        out.push("Paused: the RDS instance is stopped (`airflow-stack pause`, or the schedule); storage keeps billing and AWS starts a stopped instance again after 7 days (the next scheduled pause stops it again).".into());
    }
    if r.count("AWS::ECR::Repository")? > 0 {
        out.push("The image built in the account: every task pulls it from ECR when it starts. In public subnets that is free (same region); behind a NAT gateway each pull (about the compressed image, 1 GB and more) adds NAT data processing, which the NAT figure above does not include.".into());
    }
    if exec_logging(r)? {
        out.push("ECS Exec (access.mode tunnel) costs nothing to keep on; shell sessions (`aws ecs execute-command`) log to CloudWatch Logs at the ingestion price above, and port forwards (`airflow-stack ui`) log nothing.".into());
    }
    let unpriced = unpriced_monitoring(r)?;
    if !unpriced.is_empty() {
        // Both bill CloudWatch by use, not by the hour: a figure here would be a guess.
        out.push(format!(
            "Not priced: {}. CloudWatch bills them by use (Container Insights per metric and per GB of performance log events, for every task and container; Enhanced Monitoring as CloudWatch Logs ingestion into RDSOSMetrics), which grows with the number of tasks and the interval.",
            unpriced.join(", ")
        ));
    }
    out.push(format!(
        "Usage: {} GB logs per running task, {} GB in S3, {} GB database data (Aurora), {} GB per NAT gateway, {} LCU per load balancer; Lambda other than stream managers (at deploy, or seconds a minute), DynamoDB requests, data transfer and backups within the free allowance are left out.",
        ASSUMPTIONS.log_gb_per_task_month, ASSUMPTIONS.s3_gb, ASSUMPTIONS.database_gb, ASSUMPTIONS.nat_gb_month, ASSUMPTIONS.alb_lcu
    ));
    Ok(out)
}

impl Estimate {
    /// The estimate as a plain-text table with assumptions and the MWAA comparison.
    pub fn table(&self) -> String {
        let mut s = format!(
            "Monthly cost of {} in {} (USD, {} h, prices of {})\n\n",
            self.stack, self.region, self.hours_per_month, self.prices_as_of
        );
        let width = self
            .lines
            .iter()
            .map(|l| l.item.len())
            .max()
            .unwrap_or(4)
            .max(5);
        s.push_str(&format!(
            "{:<width$}  {:>10}  {:>8}  how\n",
            "item", "always-on", "paused"
        ));
        for l in &self.lines {
            s.push_str(&format!(
                "{:<width$}  {:>10.2}  {:>8.2}  {}\n",
                l.item, l.always_on, l.paused, l.detail
            ));
        }
        s.push_str(&format!(
            "{:<width$}  {:>10.2}  {:>8.2}\n\n",
            "total", self.always_on, self.paused
        ));
        s.push_str("Assumptions:\n");
        for a in &self.assumptions {
            s.push_str(&format!("  - {a}\n"));
        }
        s.push('\n');
        s.push_str(&self.mwaa_comparison());
        s.push('\n');
        s
    }

    /// One line comparing the estimate with MWAA's environment classes.
    pub fn mwaa_comparison(&self) -> String {
        let classes: Vec<String> = self
            .mwaa
            .iter()
            .map(|m| format!("{} ${:.0}", m.class, m.monthly))
            .collect();
        let small = self.mwaa.iter().find(|m| m.class == "mw1.small");
        let ratio = small
            .filter(|_| self.always_on > 0.0)
            .map(|m| {
                let r = m.monthly / self.always_on;
                if r >= 1.0 {
                    format!(" - {r:.1}x cheaper than mw1.small always on")
                } else {
                    format!(" - {:.1}x the price of mw1.small always on", 1.0 / r)
                }
            })
            .unwrap_or_default();
        format!(
            "MWAA in {} (environment only, 730 h, no pause): {}. This stack: ${:.2} always on, ${:.2} paused{ratio}.",
            self.region,
            classes.join(", "),
            self.always_on,
            self.paused
        )
    }
}

#[cfg(test)]
mod tests;
