//! The resource's properties. Their names, how they are read (every scalar a string)
//! and their defaults are the contract's (`airflow_stack_contract::migration`); this
//! module adds what only the Lambda needs from them.

use airflow_stack_contract::migration::{MigrationProperties, MIGRATION_TRIGGERS};
use cfn_custom_resource::{Properties, PropertyError};

/// Everything needed to run and watch the migration task.
pub type MigrationProps = MigrationProperties<String>;

/// Reads and checks the properties. Errors name the property, never its value.
pub fn parse(props: &Properties) -> Result<MigrationProps, PropertyError> {
    MigrationProperties::read(&props.0)
}

/// The awslogs stream of `task_arn`'s migration container:
/// `<prefix>/<container>/<task id>`.
pub fn log_stream_name(props: &MigrationProps, task_arn: &str) -> String {
    format!(
        "{}/{}/{}",
        props.log_stream_prefix,
        props.container_name,
        task_id(task_arn)
    )
}

/// The task id is the last path segment of its ARN
/// (`arn:aws:ecs:region:account:task/cluster/<id>`).
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

/// Whether an Update must run the migration again: only when one of
/// [`MIGRATION_TRIGGERS`] differs. A missing old map (should not happen on Update)
/// counts as a change, because migrating needlessly is safe and skipping is not. The
/// raw values are compared, so old properties that no longer parse still compare.
pub fn needs_migration(old: Option<&Properties>, new: &Properties) -> bool {
    let Some(old) = old else { return true };
    MIGRATION_TRIGGERS
        .iter()
        .any(|name| old.0.get(*name) != new.0.get(*name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airflow_stack_contract::migration::{property, DEFAULT_CONTAINER_NAME, MAX_WAIT_SECONDS};
    use serde_json::{json, Value};

    /// The properties as the template writes them (through the contract).
    fn full() -> Value {
        let template = MigrationProperties {
            cluster: "c".to_owned(),
            task_definition: "arn:td".into(),
            container_name: DEFAULT_CONTAINER_NAME.into(),
            subnets: vec!["s1".into(), "s2".into()],
            security_groups: vec!["sg".into()],
            assign_public_ip: true,
            log_group_name: "/g".into(),
            log_stream_prefix: DEFAULT_CONTAINER_NAME.into(),
            airflow_version: Some("3.1.0".into()),
            image: Some("apache/airflow:3.1.0".into()),
            database_host: Some("db".into()),
            max_wait_seconds: MAX_WAIT_SECONDS,
        };
        serde_json::to_value(template).unwrap()
    }

    fn props(value: Value) -> Properties {
        Properties(value.as_object().unwrap().clone())
    }

    #[test]
    fn the_log_stream_is_prefix_container_and_task_id() {
        let parsed = parse(&props(full())).unwrap();
        assert_eq!(
            log_stream_name(&parsed, "arn:aws:ecs:r:1:task/c/abc123"),
            "migrate/migrate/abc123"
        );
        assert_eq!(task_id("no-slash"), "no-slash");
    }

    #[test]
    fn only_trigger_properties_need_a_migration() {
        let old = props(full());
        let mut raw = full();
        raw[property::SUBNETS] = json!(["s9"]);
        raw[property::MAX_WAIT_SECONDS] = json!("99");
        assert!(!needs_migration(Some(&old), &props(raw)));
        for key in MIGRATION_TRIGGERS {
            let mut raw = full();
            raw[key] = json!("changed");
            assert!(needs_migration(Some(&old), &props(raw)), "{key}");
        }
        assert!(needs_migration(None, &old));
    }
}
