//! The resource's properties, as the template sends them (every scalar a string).

use cfn_custom_resource::{Properties, PropertyError};
use serde_json::Value;

/// Overall limit when `MaxWaitSeconds` is absent: below the template's 3600 s
/// `ServiceTimeout`, so the answer still reaches CloudFormation in time.
pub const DEFAULT_MAX_WAIT_SECONDS: u64 = 3300;

/// Properties whose change means the database schema may have to move: a new image or
/// Airflow version brings new migrations, a new database host is a new (empty)
/// database, a new task definition may run a different command or configuration.
pub const MIGRATION_TRIGGERS: [&str; 4] =
    ["Image", "AirflowVersion", "DatabaseHost", "TaskDefinition"];

/// Everything needed to run and watch the migration task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationProps {
    /// Cluster name (or ARN).
    pub cluster: String,
    /// Task definition ARN of the one-off migration task.
    pub task_definition: String,
    /// The container whose exit code decides success (`migrate`).
    pub container_name: String,
    /// awsvpc subnets.
    pub subnets: Vec<String>,
    /// awsvpc security groups.
    pub security_groups: Vec<String>,
    /// `true` for `AssignPublicIp: ENABLED`.
    pub assign_public_ip: bool,
    /// Log group of the task's awslogs driver.
    pub log_group_name: String,
    /// awslogs stream prefix; the stream is `<prefix>/<container>/<task id>`.
    pub log_stream_prefix: String,
    /// Overall limit from the first start, across every self-invocation.
    pub max_wait_seconds: u64,
}

impl MigrationProps {
    /// Reads and checks the properties. Errors name the property, never its value.
    pub fn parse(props: &Properties) -> Result<Self, PropertyError> {
        Ok(Self {
            cluster: props.required("Cluster")?.to_owned(),
            task_definition: props.required("TaskDefinition")?.to_owned(),
            container_name: props.or_default("ContainerName", "migrate")?.to_owned(),
            subnets: string_list(props, "Subnets", true)?,
            security_groups: string_list(props, "SecurityGroups", false)?,
            assign_public_ip: parse_assign_public_ip(props)?,
            log_group_name: props.required("LogGroupName")?.to_owned(),
            log_stream_prefix: props.or_default("LogStreamPrefix", "migrate")?.to_owned(),
            max_wait_seconds: parse_max_wait(props)?,
        })
    }

    /// The awslogs stream of `task_arn`'s migration container.
    pub fn log_stream_name(&self, task_arn: &str) -> String {
        format!(
            "{}/{}/{}",
            self.log_stream_prefix,
            self.container_name,
            task_id(task_arn)
        )
    }
}

/// The task id is the last path segment of its ARN
/// (`arn:aws:ecs:region:account:task/cluster/<id>`).
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

/// Whether an Update must run the migration again: only when one of
/// [`MIGRATION_TRIGGERS`] differs. A missing old map (should not happen on Update)
/// counts as a change, because migrating needlessly is safe and skipping is not.
pub fn needs_migration(old: Option<&Properties>, new: &Properties) -> bool {
    let Some(old) = old else { return true };
    MIGRATION_TRIGGERS
        .iter()
        .any(|name| old.0.get(*name) != new.0.get(*name))
}

fn string_list(
    props: &Properties,
    name: &str,
    required: bool,
) -> Result<Vec<String>, PropertyError> {
    let items = match props.0.get(name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                _ => Err(PropertyError::Invalid {
                    name: name.to_owned(),
                    expected: "a list of non-empty strings".into(),
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(PropertyError::Invalid {
                name: name.to_owned(),
                expected: "a list of strings".into(),
            })
        }
    };
    if required && items.is_empty() {
        return Err(PropertyError::Missing(name.to_owned()));
    }
    Ok(items)
}

fn parse_assign_public_ip(props: &Properties) -> Result<bool, PropertyError> {
    match props.or_default("AssignPublicIp", "DISABLED")? {
        "ENABLED" => Ok(true),
        "DISABLED" => Ok(false),
        _ => Err(PropertyError::Invalid {
            name: "AssignPublicIp".into(),
            expected: "ENABLED or DISABLED".into(),
        }),
    }
}

fn parse_max_wait(props: &Properties) -> Result<u64, PropertyError> {
    let invalid = || PropertyError::Invalid {
        name: "MaxWaitSeconds".into(),
        expected: "a whole number of seconds between 1 and 86400".into(),
    };
    match props.optional("MaxWaitSeconds")? {
        None => Ok(DEFAULT_MAX_WAIT_SECONDS),
        Some(raw) => match raw.parse::<u64>() {
            Ok(secs) if (1..=86_400).contains(&secs) => Ok(secs),
            _ => Err(invalid()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(value: Value) -> Properties {
        Properties(value.as_object().unwrap().clone())
    }

    fn full() -> Value {
        json!({"Cluster": "c", "TaskDefinition": "arn:td", "ContainerName": "migrate",
               "Subnets": ["s1", "s2"], "SecurityGroups": ["sg"], "AssignPublicIp": "ENABLED",
               "LogGroupName": "/g", "LogStreamPrefix": "migrate", "MaxWaitSeconds": "60",
               "Image": "apache/airflow:3.1.0", "AirflowVersion": "3.1.0", "DatabaseHost": "db"})
    }

    #[test]
    fn parses_the_template_shape() {
        let parsed = MigrationProps::parse(&props(full())).unwrap();
        assert_eq!(parsed.subnets, vec!["s1", "s2"]);
        assert!(parsed.assign_public_ip);
        assert_eq!(parsed.max_wait_seconds, 60);
        assert_eq!(
            parsed.log_stream_name("arn:aws:ecs:r:1:task/c/abc123"),
            "migrate/migrate/abc123"
        );
    }

    #[test]
    fn rejects_bad_values_by_name() {
        for (key, value) in [
            ("Subnets", json!("s1")),
            ("Subnets", json!([])),
            ("AssignPublicIp", json!("yes")),
            ("MaxWaitSeconds", json!("0")),
            ("MaxWaitSeconds", json!("soon")),
            ("Cluster", json!(7)),
        ] {
            let mut raw = full();
            raw[key] = value;
            let err = MigrationProps::parse(&props(raw)).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn only_trigger_properties_need_a_migration() {
        let old = props(full());
        let mut raw = full();
        raw["Subnets"] = json!(["s9"]);
        raw["MaxWaitSeconds"] = json!("99");
        assert!(!needs_migration(Some(&old), &props(raw)));
        for key in MIGRATION_TRIGGERS {
            let mut raw = full();
            raw[key] = json!("changed");
            assert!(needs_migration(Some(&old), &props(raw)), "{key}");
        }
        assert!(needs_migration(None, &old));
    }
}
