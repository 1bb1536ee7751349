//! `airflow-stack pause` / `resume`: every ECS service of the stack to 0 tasks and back
//! to the counts of the stack file, leaving the database and all data in place. With the
//! scaler, `pause` first marks it paused in its state table (its ticks then neither scale,
//! alert nor count the stopped api-server as a read failure) and `resume` clears that
//! last.

use std::collections::BTreeMap;

use anyhow::anyhow;
use serde_json::Value;

use super::{Failure, StackFile};
use crate::aws::services::{self, StackResource};
use crate::aws::{Aws, AwsOptions};
use crate::{spec, stack};
use airflow_stack_contract::scaler::{PAUSED_KEY, PAUSED_SINCE, STATE_TABLE_KEY};

/// Arguments of `pause` and `resume`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackFile,
    #[command(flatten)]
    aws: AwsOptions,
}

/// Which way to scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Every service to 0.
    Pause,
    /// Every service to its count in the stack file.
    Resume,
}

/// The desired count of each ECS service in the template synthesized from the stack
/// file, by logical id (`WorkerService` -> `services.worker.count`, ...). A service
/// without DesiredCount (the scaler owns it) gets CloudFormation's default, 1.
pub fn spec_counts(template: &Value) -> BTreeMap<String, i32> {
    template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == "AWS::ECS::Service")
        .map(|(id, r)| {
            let count = r["Properties"]["DesiredCount"].as_i64().unwrap_or(1);
            (id.clone(), i32::try_from(count).unwrap_or(1))
        })
        .collect()
}

/// The count a service goes to, or `None` when the stack file no longer has it.
pub fn target(
    direction: Direction,
    logical_id: &str,
    counts: &BTreeMap<String, i32>,
) -> Option<i32> {
    match direction {
        Direction::Pause => Some(0),
        Direction::Resume => counts.get(logical_id).copied(),
    }
}

/// What to say about the database, which pause/resume never touch.
pub fn database_note(
    direction: Direction,
    resources: &[StackResource],
    template: &Value,
) -> Option<String> {
    let db = |t: &str| resources.iter().find(|r| r.resource_type == t);
    if let Some(cluster) = db("AWS::RDS::DBCluster") {
        let min = template["Resources"][&cluster.logical_id]["Properties"]
            ["ServerlessV2ScalingConfiguration"]["MinCapacity"]
            .as_f64()
            .unwrap_or(0.5);
        return Some(if min == 0.0 {
            format!("Aurora cluster {} pauses itself once idle (MinCapacity 0) and resumes on the first connection.", cluster.physical_id)
        } else {
            format!("Aurora cluster {} keeps running at MinCapacity {min} ACU (set database.min_capacity: 0 to let it pause).", cluster.physical_id)
        });
    }
    let instance = db("AWS::RDS::DBInstance")?;
    let id = &instance.physical_id;
    Some(match direction {
        Direction::Pause => format!("database {id} keeps running; to stop paying for it too: aws rds stop-db-instance --db-instance-identifier {id} (AWS starts a stopped instance again after 7 days)"),
        Direction::Resume => format!("if you stopped database {id}: aws rds start-db-instance --db-instance-identifier {id} (the services retry until it is up)"),
    })
}

/// The scaler's state table, when the stack runs the scaler.
fn scaler_table(resources: &[StackResource]) -> Option<String> {
    resources
        .iter()
        .find(|r| r.logical_id == stack::SCALER_STATE_TABLE && !r.physical_id.is_empty())
        .map(|r| r.physical_id.clone())
}

/// Writes the paused item the scaler checks first on every tick
/// (`airflow_stack_contract::scaler::PAUSED_KEY`).
async fn set_paused(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
    use aws_sdk_dynamodb::types::AttributeValue;
    let since = DateTime::from(std::time::SystemTime::now()).fmt(DateTimeFormat::DateTime)?;
    dynamodb
        .put_item()
        .table_name(table)
        .item(STATE_TABLE_KEY, AttributeValue::S(PAUSED_KEY.into()))
        .item(PAUSED_SINCE, AttributeValue::S(since))
        .send()
        .await
        .map_err(|e| anyhow!("marking the scaler paused in table {table}: {e}"))?;
    Ok(())
}

/// Deletes the paused item (deleting a missing item succeeds: resume twice is fine).
async fn clear_paused(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::AttributeValue;
    dynamodb
        .delete_item()
        .table_name(table)
        .key(STATE_TABLE_KEY, AttributeValue::S(PAUSED_KEY.into()))
        .send()
        .await
        .map_err(|e| anyhow!("clearing the scaler's paused mark in table {table}: {e}"))?;
    Ok(())
}

pub fn run(args: Args, direction: Direction) -> Result<(), Failure> {
    let spec = spec::load(&args.stack.file)?;
    let template = stack::build(&spec)
        .map_err(|e| Failure::BadInput(format!("{}: {e}", args.stack.file.display())))?
        .to_value();
    let counts = spec_counts(&template);
    crate::aws::runtime().block_on(async {
        let aws = Aws::connect(&args.aws, &spec.region).await;
        let resources = services::stack_resources(&aws.cloudformation(), &spec.name).await?;
        let cluster = resources
            .iter()
            .find(|r| r.resource_type == "AWS::ECS::Cluster")
            .ok_or_else(|| anyhow!("stack {} has no ECS cluster", spec.name))?
            .physical_id
            .clone();
        let scaled: Vec<&StackResource> = resources
            .iter()
            .filter(|r| r.resource_type == "AWS::ECS::Service" && !r.physical_id.is_empty())
            .collect();
        let ecs = aws.ecs();
        let scaler_table = scaler_table(&resources);
        let verb = if direction == Direction::Pause {
            "pausing"
        } else {
            "resuming"
        };
        println!(
            "{verb} {} in {}: {} services",
            spec.name,
            aws.region(),
            scaled.len()
        );
        // Before the services stop: a tick that ran in between would find the api-server
        // gone, count a read failure and could start workers for work still queued.
        if let (Direction::Pause, Some(table)) = (direction, &scaler_table) {
            set_paused(&aws.dynamodb(), table).await?;
            println!(
                "  {:<16} paused: its ticks do nothing until resume",
                "scaler"
            );
        }
        let mut done = Vec::new();
        for r in &scaled {
            let Some(count) = target(direction, &r.logical_id, &counts) else {
                println!(
                    "  {:<16} not in {}; left as is",
                    r.logical_id,
                    args.stack.file.display()
                );
                continue;
            };
            services::set_desired_count(&ecs, &cluster, &r.physical_id, count).await?;
            println!("  {:<16} desired {count}", r.logical_id);
            done.push(*r);
        }
        let ids: Vec<String> = done.iter().map(|r| r.physical_id.clone()).collect();
        let now = services::counts(&ecs, &cluster, &ids).await?;
        let summary: Vec<String> = done
            .iter()
            .zip(&now)
            .map(|(r, c)| format!("{} {}/{}", r.logical_id, c.running, c.desired))
            .collect();
        if let (Direction::Resume, Some(table)) = (direction, &scaler_table) {
            clear_paused(&aws.dynamodb(), table).await?;
            println!(
                "  {:<16} resumed: scaling and alerts from its next tick",
                "scaler"
            );
        }
        if let Some(note) = database_note(direction, &resources, &template) {
            println!("  {note}");
        }
        let state = if direction == Direction::Pause {
            "paused"
        } else {
            "resumed"
        };
        println!(
            "{} {state}: running/desired {}; database and data kept.",
            spec.name,
            summary.join(", ")
        );
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_restores_the_template_counts_and_pause_zeroes_them() {
        let t = json!({"Resources": {
            "WorkerService": {"Type": "AWS::ECS::Service", "Properties": {"DesiredCount": 3}},
            "CoreService": {"Type": "AWS::ECS::Service", "Properties": {"DesiredCount": 1}},
            "ScaledService": {"Type": "AWS::ECS::Service", "Properties": {}},
            "Cluster": {"Type": "AWS::ECS::Cluster"}
        }});
        let counts = spec_counts(&t);
        assert_eq!(counts.len(), 3);
        assert_eq!(target(Direction::Resume, "WorkerService", &counts), Some(3));
        assert_eq!(target(Direction::Resume, "ScaledService", &counts), Some(1));
        assert_eq!(target(Direction::Resume, "GoneService", &counts), None);
        assert_eq!(target(Direction::Pause, "GoneService", &counts), Some(0));
    }

    #[test]
    fn the_database_note_names_the_instance_to_stop() {
        let r = vec![StackResource {
            logical_id: "DatabaseInstance".into(),
            resource_type: "AWS::RDS::DBInstance".into(),
            physical_id: "db-abc".into(),
        }];
        let note = database_note(Direction::Pause, &r, &json!({})).unwrap();
        assert!(note.contains("stop-db-instance --db-instance-identifier db-abc"));
    }
}
