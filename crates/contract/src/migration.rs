//! `Custom::AirflowMigration`: the template (src/stack) asks the migration Lambda
//! (lambdas/migration) to run `airflow db migrate` as a one-off ECS task and to answer
//! when it has stopped.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::wire::{self, PropertyError, PropertyMap, PropertyValue};

/// Resource type of the migration. Written by the CLI; `deploy` looks the resource up
/// by it in the deployed template and in stack events.
pub const RESOURCE_TYPE: &str = "Custom::AirflowMigration";

/// Seconds CloudFormation waits for the migration resource (`ServiceTimeout`, whose
/// maximum is 3600). Written by the CLI.
pub const SERVICE_TIMEOUT_SECONDS: u32 = 3600;
/// The Lambda's own overall limit across all its self-invocations, below
/// [`SERVICE_TIMEOUT_SECONDS`] so that it can still answer. The CLI writes it as
/// `MaxWaitSeconds`; the Lambda uses it when the property is absent.
pub const MAX_WAIT_SECONDS: u32 = 3300;
/// The values `MaxWaitSeconds` may take.
pub const MAX_WAIT_SECONDS_RANGE: std::ops::RangeInclusive<u32> = 1..=86_400;
const _: () = assert!(MAX_WAIT_SECONDS < SERVICE_TIMEOUT_SECONDS);

/// The migration container's name, and the awslogs stream prefix, when the properties
/// do not say otherwise.
pub const DEFAULT_CONTAINER_NAME: &str = "migrate";

/// The property names. Only this crate spells them.
pub mod property {
    /// The ECS cluster (name or ARN) to run the task in.
    pub const CLUSTER: &str = "Cluster";
    /// The one-off migration task definition (ARN). A change means a migration.
    pub const TASK_DEFINITION: &str = "TaskDefinition";
    /// The container whose exit code decides success.
    pub const CONTAINER_NAME: &str = "ContainerName";
    /// awsvpc subnets (a list).
    pub const SUBNETS: &str = "Subnets";
    /// awsvpc security groups (a list).
    pub const SECURITY_GROUPS: &str = "SecurityGroups";
    /// `ENABLED` or `DISABLED` (ECS's words).
    pub const ASSIGN_PUBLIC_IP: &str = "AssignPublicIp";
    /// The task's awslogs log group.
    pub const LOG_GROUP_NAME: &str = "LogGroupName";
    /// The task's awslogs stream prefix.
    pub const LOG_STREAM_PREFIX: &str = "LogStreamPrefix";
    /// The Airflow version (`3.1.0`). A change means a migration, unless it goes down.
    pub const AIRFLOW_VERSION: &str = "AirflowVersion";
    /// The Airflow image. A change means a migration.
    pub const IMAGE: &str = "Image";
    /// The database endpoint. A change (a new, empty database) means a migration.
    pub const DATABASE_HOST: &str = "DatabaseHost";
    /// The overall limit in seconds, in [`super::MAX_WAIT_SECONDS_RANGE`].
    pub const MAX_WAIT_SECONDS: &str = "MaxWaitSeconds";
}

/// Properties whose change means the database schema may have to move: a new image or
/// Airflow version brings new migrations, a new database host is a new (empty)
/// database, a new task definition may run a different command or configuration. The
/// Lambda compares them between the old and new properties of an Update.
pub const MIGRATION_TRIGGERS: [&str; 4] = [
    property::IMAGE,
    property::AIRFLOW_VERSION,
    property::DATABASE_HOST,
    property::TASK_DEFINITION,
];

/// `AssignPublicIp` when the task gets a public IP.
const ENABLED: &str = "ENABLED";
/// `AssignPublicIp` when it does not.
const DISABLED: &str = "DISABLED";

/// Properties of `Custom::AirflowMigration` (besides `ServiceToken` and
/// `ServiceTimeout`).
///
/// Written by the CLI (src/stack) with `V` its template expression type; read by the
/// migration Lambda with `V = String` through [`MigrationProperties::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationProperties<V> {
    /// `Cluster`.
    pub cluster: V,
    /// `TaskDefinition`.
    pub task_definition: V,
    /// `ContainerName`: [`DEFAULT_CONTAINER_NAME`] when absent.
    pub container_name: V,
    /// `Subnets`: at least one.
    pub subnets: Vec<V>,
    /// `SecurityGroups`.
    pub security_groups: Vec<V>,
    /// `AssignPublicIp`: `ENABLED` when true, `DISABLED` (also when absent) otherwise.
    pub assign_public_ip: bool,
    /// `LogGroupName`.
    pub log_group_name: V,
    /// `LogStreamPrefix`: [`DEFAULT_CONTAINER_NAME`] when absent; the stream is
    /// `<prefix>/<container>/<task id>`.
    pub log_stream_prefix: V,
    /// `AirflowVersion`: not needed to run the task, only compared on Update (see
    /// [`crate::version`]); absent reads as `None`.
    pub airflow_version: Option<V>,
    /// `Image`: compared on Update only.
    pub image: Option<V>,
    /// `DatabaseHost`: compared on Update only.
    pub database_host: Option<V>,
    /// `MaxWaitSeconds`: [`MAX_WAIT_SECONDS`] when absent.
    pub max_wait_seconds: u32,
}

impl<V> MigrationProperties<V> {
    /// The properties as the template holds them, by name.
    pub fn to_properties(&self) -> PropertyMap<V>
    where
        V: Clone + From<String>,
    {
        let one = |v: &V| PropertyValue::One(v.clone());
        let text = |s: &str| PropertyValue::One(V::from(s.to_owned()));
        let mut map = PropertyMap::from([
            (property::CLUSTER, one(&self.cluster)),
            (property::TASK_DEFINITION, one(&self.task_definition)),
            (property::CONTAINER_NAME, one(&self.container_name)),
            (property::SUBNETS, PropertyValue::List(self.subnets.clone())),
            (
                property::SECURITY_GROUPS,
                PropertyValue::List(self.security_groups.clone()),
            ),
            (
                property::ASSIGN_PUBLIC_IP,
                text(if self.assign_public_ip {
                    ENABLED
                } else {
                    DISABLED
                }),
            ),
            (property::LOG_GROUP_NAME, one(&self.log_group_name)),
            (property::LOG_STREAM_PREFIX, one(&self.log_stream_prefix)),
            (
                property::MAX_WAIT_SECONDS,
                text(&self.max_wait_seconds.to_string()),
            ),
        ]);
        let optional = [
            (property::AIRFLOW_VERSION, &self.airflow_version),
            (property::IMAGE, &self.image),
            (property::DATABASE_HOST, &self.database_host),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                map.insert(name, one(value));
            }
        }
        map
    }
}

impl MigrationProperties<String> {
    /// Reads the properties CloudFormation sent. Errors name the property, never its
    /// value.
    pub fn read(properties: &Map<String, Value>) -> Result<Self, PropertyError> {
        let required = |name| wire::required(properties, name).map(str::to_owned);
        let or_default = |name, default: &str| {
            wire::optional(properties, name).map(|v| v.unwrap_or(default).to_owned())
        };
        let optional = |name| wire::optional(properties, name).map(|v| v.map(str::to_owned));
        let assign_public_ip = match wire::optional(properties, property::ASSIGN_PUBLIC_IP)? {
            Some(ENABLED) => true,
            Some(DISABLED) | None => false,
            Some(_) => {
                return Err(PropertyError::invalid(
                    property::ASSIGN_PUBLIC_IP,
                    format!("{ENABLED} or {DISABLED}"),
                ))
            }
        };
        Ok(Self {
            cluster: required(property::CLUSTER)?,
            task_definition: required(property::TASK_DEFINITION)?,
            container_name: or_default(property::CONTAINER_NAME, DEFAULT_CONTAINER_NAME)?,
            subnets: wire::list(properties, property::SUBNETS, true)?,
            security_groups: wire::list(properties, property::SECURITY_GROUPS, false)?,
            assign_public_ip,
            log_group_name: required(property::LOG_GROUP_NAME)?,
            log_stream_prefix: or_default(property::LOG_STREAM_PREFIX, DEFAULT_CONTAINER_NAME)?,
            airflow_version: optional(property::AIRFLOW_VERSION)?,
            image: optional(property::IMAGE)?,
            database_host: optional(property::DATABASE_HOST)?,
            max_wait_seconds: wire::number_in(
                properties,
                property::MAX_WAIT_SECONDS,
                MAX_WAIT_SECONDS_RANGE,
                MAX_WAIT_SECONDS,
                &format!(
                    "a whole number of seconds between {} and {}",
                    MAX_WAIT_SECONDS_RANGE.start(),
                    MAX_WAIT_SECONDS_RANGE.end()
                ),
            )?,
        })
    }
}

impl<V: Serialize + Clone + From<String>> Serialize for MigrationProperties<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_properties().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MigrationProperties<String> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::deserialize_with(deserializer, Self::read)
    }
}

/// The `AirflowVersion` of the migration resource in a rendered template (JSON), if the
/// template has one: `deploy` compares the deployed template's with the new one's.
pub fn airflow_version_in_template(template: &Value) -> Option<&str> {
    template
        .get("Resources")?
        .as_object()?
        .values()
        .find(|resource| resource.get("Type").and_then(Value::as_str) == Some(RESOURCE_TYPE))?
        .get("Properties")?
        .get(property::AIRFLOW_VERSION)?
        .as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cli() -> MigrationProperties<String> {
        MigrationProperties {
            cluster: "airflow-dev".into(),
            task_definition: "arn:aws:ecs:us-east-1:1:task-definition/migrate:3".into(),
            container_name: DEFAULT_CONTAINER_NAME.into(),
            subnets: vec!["subnet-1".into(), "subnet-2".into()],
            security_groups: vec!["sg-1".into()],
            assign_public_ip: true,
            log_group_name: "/airflow-stack/dev/migrate".into(),
            log_stream_prefix: DEFAULT_CONTAINER_NAME.into(),
            airflow_version: Some("3.1.0".into()),
            image: Some("apache/airflow:3.1.0".into()),
            database_host: Some("db.example".into()),
            max_wait_seconds: MAX_WAIT_SECONDS,
        }
    }

    #[test]
    fn round_trips_from_the_cli_shape_to_the_lambda_shape() {
        let template = serde_json::to_value(cli()).unwrap();
        assert_eq!(template["AssignPublicIp"], "ENABLED");
        assert_eq!(template["MaxWaitSeconds"], "3300");
        assert_eq!(template["Subnets"], json!(["subnet-1", "subnet-2"]));
        let lambda: MigrationProperties<String> = serde_json::from_value(template).unwrap();
        assert_eq!(lambda, cli());
        let mut private = cli();
        private.assign_public_ip = false;
        let template = serde_json::to_value(&private).unwrap();
        assert_eq!(template["AssignPublicIp"], "DISABLED");
        assert_eq!(
            serde_json::from_value::<MigrationProperties<String>>(template).unwrap(),
            private
        );
    }

    #[test]
    fn absent_optional_properties_take_the_shared_defaults() {
        let minimal =
            json!({"Cluster": "c", "TaskDefinition": "td", "Subnets": ["s"], "LogGroupName": "/g"});
        let read = MigrationProperties::read(minimal.as_object().unwrap()).unwrap();
        assert_eq!(read.container_name, DEFAULT_CONTAINER_NAME);
        assert_eq!(read.log_stream_prefix, DEFAULT_CONTAINER_NAME);
        assert_eq!(read.max_wait_seconds, MAX_WAIT_SECONDS);
        assert!(!read.assign_public_ip);
        assert!(read.security_groups.is_empty());
        assert_eq!(read.airflow_version, None);
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (name, value) in [
            ("Subnets", json!("s1")),
            ("Subnets", json!([])),
            ("AssignPublicIp", json!("yes")),
            ("MaxWaitSeconds", json!("0")),
            ("MaxWaitSeconds", json!("86401")),
            ("MaxWaitSeconds", json!("soon")),
            ("Cluster", json!(7)),
        ] {
            let mut raw = serde_json::to_value(cli()).unwrap();
            raw[name] = value;
            let error = MigrationProperties::read(raw.as_object().unwrap()).unwrap_err();
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }

    #[test]
    fn the_deployed_version_is_found_by_resource_type() {
        let template = json!({"Resources": {
            "Other": {"Type": "AWS::S3::Bucket", "Properties": {"AirflowVersion": "1"}},
            "Migration": {"Type": RESOURCE_TYPE, "Properties": serde_json::to_value(cli()).unwrap()}
        }});
        assert_eq!(airflow_version_in_template(&template), Some("3.1.0"));
        assert_eq!(airflow_version_in_template(&json!({"Resources": {}})), None);
        assert_eq!(airflow_version_in_template(&json!([])), None);
    }

    #[test]
    fn every_trigger_is_a_property_the_cli_writes() {
        let written = cli().to_properties();
        for trigger in MIGRATION_TRIGGERS {
            assert!(written.contains_key(trigger), "{trigger}");
        }
    }
}
