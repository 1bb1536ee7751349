//! The rendered template as the estimate reads it: each priced resource's few
//! properties deserialised into a small struct, so that a missing or mistyped property
//! is an error naming the resource and the property rather than a guess.
//!
//! A default is used only where AWS documents one, and the field quotes it (from the
//! resource provider schemas vendored in `codegen/schemas/`, or the service's API
//! reference). Everything else the price depends on is required.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::CostError;

/// The template's resources, in template order.
pub(super) struct Resources<'a>(Vec<Resource<'a>>);

/// One resource: its logical id, type and properties.
#[derive(Clone, Copy)]
pub(super) struct Resource<'a> {
    /// Logical id.
    pub id: &'a str,
    /// `Type`.
    pub type_name: &'a str,
    properties: &'a Value,
    condition: Option<&'a Value>,
}

/// What every resource entry has: a type (its properties and condition are read apart).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry<'a> {
    #[serde(borrow)]
    r#type: &'a str,
}

/// Properties read from a resource without a `Properties` object (an
/// `AWS::EC2::InternetGateway` has none): every required field is then reported
/// missing, never defaulted.
static NO_PROPERTIES: Value = Value::Null;

impl<'a> Resources<'a> {
    /// Reads `Resources`; a template without one, or an entry without a `Type`, is an error.
    pub fn of(template: &'a Value) -> Result<Resources<'a>, CostError> {
        let entries = template
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or(CostError::NoResources)?;
        entries
            .iter()
            .map(|(id, entry)| {
                let Entry { r#type } =
                    Entry::deserialize(entry).map_err(|e| CostError::Template {
                        resource: id.clone(),
                        resource_type: "?".into(),
                        problem: e.to_string(),
                    })?;
                Ok(Resource {
                    id,
                    type_name: r#type,
                    properties: entry.get("Properties").unwrap_or(&NO_PROPERTIES),
                    condition: entry.get("Condition"),
                })
            })
            .collect::<Result<_, _>>()
            .map(Resources)
    }

    /// The resources of one type, in template order. A resource with a `Condition` is
    /// an error: whether it exists depends on parameters the estimate does not have.
    pub fn of_type(&self, type_name: &str) -> Result<Vec<Resource<'a>>, CostError> {
        self.0
            .iter()
            .filter(|r| r.type_name == type_name)
            .map(|r| match r.condition {
                None => Ok(*r),
                Some(c) => Err(r.error(format!(
                    "has Condition {c}; the estimate cannot tell whether it is created"
                ))),
            })
            .collect()
    }

    /// How many resources of one type the template has.
    pub fn count(&self, type_name: &str) -> Result<usize, CostError> {
        Ok(self.of_type(type_name)?.len())
    }

    /// The resource with this logical id.
    pub fn get(&self, id: &str) -> Option<Resource<'a>> {
        self.0.iter().find(|r| r.id == id).copied()
    }
}

impl Resource<'_> {
    /// The properties as `T`; an error names the resource and the property path.
    pub fn properties<T: DeserializeOwned>(&self) -> Result<T, CostError> {
        let properties = match self.properties {
            Value::Null => &Value::Object(Default::default()),
            p => p,
        };
        serde_path_to_error::deserialize(properties).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                "Properties".to_string()
            } else {
                format!("Properties.{path}")
            };
            self.error(format!("{at}: {}", e.into_inner()))
        })
    }

    /// An error about this resource.
    pub fn error(&self, problem: String) -> CostError {
        CostError::Template {
            resource: self.id.to_string(),
            resource_type: self.type_name.to_string(),
            problem,
        }
    }
}

/// A number as CloudFormation takes it: `512` or `"512"`. An intrinsic function (an
/// object) is an error: its value is known only at deploy time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Number(pub f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Number, D::Error> {
        // Hand-written rather than serde_with's `PickFirst<(_, DisplayFromStr)>`, whose
        // error ("PickFirst could not deserialize data") would not say what was expected.
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a literal number or numeric string (an intrinsic function cannot be priced)",
                )
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
                match v.parse::<f64>() {
                    Ok(n) if n.is_finite() => Ok(Number(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

/// `{"Ref": "LogicalId"}`: a reference to another resource of the template.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Ref {
    /// The logical id referred to.
    #[serde(rename = "Ref")]
    pub target: String,
}

/// `AWS::ECS::Service`, as priced.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EcsService {
    /// "For new services, if a desired count is not specified, a default value of `1`
    /// is used" (schema of `AWS::ECS::Service`, `DesiredCount`).
    #[serde(default = "one")]
    pub desired_count: Number,
    /// The task definition of the template the service runs.
    pub task_definition: Ref,
    /// How the service's tasks are placed: Fargate or Fargate Spot.
    #[serde(default)]
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    /// The alternative to a capacity provider strategy.
    pub launch_type: Option<String>,
    /// awsvpc networking (public IP or not).
    pub network_configuration: Option<NetworkConfiguration>,
}

fn one() -> Number {
    Number(1.0)
}

/// One entry of a capacity provider strategy.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CapacityProviderStrategyItem {
    /// `FARGATE` or `FARGATE_SPOT` (anything else is not priced).
    pub capacity_provider: String,
}

/// `NetworkConfiguration` of a service.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct NetworkConfiguration {
    /// The awsvpc settings.
    pub awsvpc_configuration: Option<AwsvpcConfiguration>,
}

/// `AwsvpcConfiguration` of a service.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AwsvpcConfiguration {
    /// "When you use `create-service` or `update-service`, the default is `DISABLED`"
    /// (schema of `AWS::ECS::Service`, `AssignPublicIp`).
    #[serde(default)]
    pub assign_public_ip: AssignPublicIp,
}

/// Whether a task gets a public IPv4 address.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum AssignPublicIp {
    /// Public IPv4 address per task.
    Enabled,
    /// None (ECS's default).
    #[default]
    Disabled,
}

/// `AWS::ECS::TaskDefinition`, as priced. Fargate requires the task-level `Cpu` and
/// `Memory` ("This field is required for Fargate", schema of the type); the runtime
/// platform has no documented default, and the price depends on it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TaskDefinition {
    /// CPU units (1024 = 1 vCPU).
    pub cpu: Number,
    /// MiB.
    pub memory: Number,
    /// Architecture and operating system.
    pub runtime_platform: RuntimePlatform,
}

/// `RuntimePlatform` of a task definition.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RuntimePlatform {
    /// ARM64 (Graviton) or X86_64.
    pub cpu_architecture: CpuArchitecture,
    /// Checked, not read: only `LINUX` deserialises, the one operating system priced.
    #[serde(rename = "OperatingSystemFamily")]
    pub _operating_system_family: OperatingSystemFamily,
}

/// The CPU architecture of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum CpuArchitecture {
    /// Graviton.
    #[serde(rename = "ARM64")]
    Arm64,
    /// Intel or AMD.
    #[serde(rename = "X86_64")]
    X86_64,
}

/// The operating system of a task: the price table has Linux prices only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum OperatingSystemFamily {
    /// Linux.
    #[serde(rename = "LINUX")]
    Linux,
}

/// `AWS::RDS::DBCluster`, as priced: Aurora Serverless v2 only.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DbCluster {
    /// Required: a cluster without it is not Serverless v2 and is not priced.
    pub serverless_v2_scaling_configuration: ServerlessV2ScalingConfiguration,
}

/// `ServerlessV2ScalingConfiguration` of a cluster.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ServerlessV2ScalingConfiguration {
    /// ACUs the cluster never goes below (0 pauses it when idle).
    pub min_capacity: Number,
}

/// `AWS::RDS::DBInstance`, as priced.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DbInstance {
    /// `db.t4g.micro`, or `db.serverless` in an Aurora Serverless v2 cluster.
    #[serde(rename = "DBInstanceClass")]
    pub db_instance_class: String,
    /// The cluster the instance belongs to (a reference to one in the template).
    #[serde(rename = "DBClusterIdentifier")]
    pub db_cluster_identifier: Option<Ref>,
    /// Required for an instance outside a cluster (its storage is billed).
    pub allocated_storage: Option<Number>,
    /// A standby in a second AZ (twice the instance and storage). The schema documents
    /// no default, so a standalone instance must say.
    #[serde(rename = "MultiAZ")]
    pub multi_az: Option<bool>,
    /// "Default: `io1`, if the `Iops` parameter is specified. Otherwise, `gp3`"
    /// (schema of `AWS::RDS::DBInstance`, `StorageType`). Only gp2 and gp3 are priced.
    pub storage_type: Option<String>,
    /// Provisioned IOPS (their storage type is not priced).
    pub iops: Option<Value>,
}

/// `AWS::ElastiCache::ReplicationGroup`, as priced: cluster mode disabled.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ReplicationGroup {
    /// `cache.t4g.small`.
    pub cache_node_type: String,
    /// Nodes in the one shard. "If `AutomaticFailoverEnabled` is false you can omit
    /// this parameter (it will default to 1)" (ElastiCache API, `CreateReplicationGroup`,
    /// `NumCacheClusters`); with failover on it must be at least 2, so it is required.
    pub num_cache_clusters: Option<Number>,
    /// Automatic failover (then `NumCacheClusters` is required). "Default: false"
    /// (ElastiCache API, `CreateReplicationGroup`, `AutomaticFailoverEnabled`).
    #[serde(default)]
    pub automatic_failover_enabled: bool,
    /// Cluster mode (shards): not priced.
    pub num_node_groups: Option<Value>,
    /// Cluster mode (shards): not priced.
    #[serde(default)]
    pub node_group_configuration: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_come_as_numbers_or_numeric_strings_but_not_intrinsics() {
        let n: Number = serde_json::from_value(json!("512")).unwrap();
        assert_eq!(n, Number(512.0));
        let n: Number = serde_json::from_value(json!(0.5)).unwrap();
        assert_eq!(n, Number(0.5));
        let err = serde_json::from_value::<Number>(json!({"Ref": "Size"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("an intrinsic function cannot be priced"),
            "{err}"
        );
        assert!(serde_json::from_value::<Number>(json!("large")).is_err());
        assert!(serde_json::from_value::<Number>(json!("NaN")).is_err());
    }

    #[test]
    fn a_missing_property_names_the_resource_and_the_property() {
        let t = json!({"Resources": {"Task": {"Type": "AWS::ECS::TaskDefinition",
            "Properties": {"Memory": "512",
                "RuntimePlatform": {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"}}}}});
        let resources = Resources::of(&t).unwrap();
        let task = resources.get("Task").unwrap();
        let err = task.properties::<TaskDefinition>().unwrap_err().to_string();
        assert!(
            err.contains("Task (AWS::ECS::TaskDefinition)") && err.contains("missing field `Cpu`"),
            "{err}"
        );
    }

    #[test]
    fn a_mistyped_nested_property_names_its_path() {
        let t = json!({"Resources": {"Task": {"Type": "AWS::ECS::TaskDefinition",
            "Properties": {"Cpu": 256, "Memory": 512,
                "RuntimePlatform": {"CpuArchitecture": "RISCV", "OperatingSystemFamily": "LINUX"}}}}});
        let resources = Resources::of(&t).unwrap();
        let err = resources
            .get("Task")
            .unwrap()
            .properties::<TaskDefinition>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Properties.RuntimePlatform.CpuArchitecture: unknown variant `RISCV`"),
            "{err}"
        );
    }

    #[test]
    fn a_template_without_resources_or_types_is_an_error() {
        assert!(matches!(
            Resources::of(&json!({})),
            Err(CostError::NoResources)
        ));
        let err = Resources::of(&json!({"Resources": {"A": {"Properties": {}}}}))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("A (?)") && err.contains("missing field `Type`"),
            "{err}"
        );
    }

    #[test]
    fn a_conditional_resource_is_not_guessed() {
        let t =
            json!({"Resources": {"Nat": {"Type": "AWS::EC2::NatGateway", "Condition": "WithNat"}}});
        let err = Resources::of(&t)
            .unwrap()
            .count("AWS::EC2::NatGateway")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has Condition \"WithNat\""), "{err}");
    }
}

/// The properties of a Lambda function the estimate reads: only functions that run
/// around the clock are priced (the stream managers, `RecursiveLoop: Allow`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct LambdaFunction {
    /// MB; 128 when absent (the resource schema's default).
    #[serde(default = "default_lambda_memory")]
    pub memory_size: Number,
    /// `["arm64"]` or `["x86_64"]`; x86_64 when absent (the schema's default).
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Seconds an invocation may run; 3 when absent (the schema's default).
    #[serde(default = "default_lambda_timeout")]
    pub timeout: Number,
    /// `Allow` lets the function invoke itself without end: a chain that holds a stream.
    #[serde(default)]
    pub recursive_loop: Option<String>,
}

fn default_lambda_memory() -> Number {
    Number(128.0)
}

fn default_lambda_timeout() -> Number {
    Number(3.0)
}
