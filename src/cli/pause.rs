//! `airflow-stack pause` / `resume`: stop what costs money while nobody uses the stack,
//! and start it again, in an order that never leaves a service without its database.
//!
//! `pause`: with the scaler, mark it paused in its state table first (its ticks then
//! neither scale, alert nor count the stopped api-server as a read failure); every ECS
//! service to 0; wait for their tasks to stop; then stop the database: an RDS instance,
//! or an Aurora cluster whose MinCapacity is above 0. An Aurora cluster at MinCapacity 0
//! pauses itself once nothing connects, so it is left alone.
//!
//! `resume`: start the database and wait until RDS reports it `available` (polling
//! DescribeDBInstances/DescribeDBClusters, with `--timeout-minutes`); only then every
//! service back to its count in the stack file; then clear the scaler's mark. The
//! image's entrypoint also waits for the database (`airflow db check`, up to
//! CONNECTION_CHECK_MAX_COUNT tries, 20 by default, 3 s apart: apache/airflow
//! scripts/docker/entrypoint_prod.sh) before it starts Airflow, so a service that
//! starts early (the schedule's resume) still starts only once the database answers.
//!
//! With `streams:`, pause also disables the stream processor's event source mapping
//! before the api-server stops, and resume enables it once the services are back: the
//! events stay in the table's DynamoDB stream (24 hours) instead of failing at a
//! stopped api-server and going to the dead-letter queue. A pause longer than the
//! stream keeps records loses them from the stream (they stay in the table until their
//! TTL); the chains keep reading, so the events are stored either way.
//!
//! Both say what they did and what they could not; exit 1 when the database could not
//! be stopped or started (the services are scaled either way on pause, never on resume).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::anyhow;
use serde_json::Value;

use super::{Failure, StackFile};
use crate::aws::database::{self, Database};
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
    /// Minutes to wait for the database to stop (pause) or to be available (resume);
    /// RDS takes minutes for either.
    #[arg(long, default_value_t = 20)]
    timeout_minutes: u64,
}

/// Which way to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Every service to 0, then the database stopped.
    Pause,
    /// The database started, then every service to its count in the stack file.
    Resume,
}

/// How long `pause` waits for the services' tasks to stop before it stops the database:
/// Fargate's longest stop timeout (120 s, the workers') and a margin.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

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

/// What pause and resume do with the database.
#[derive(Debug, Clone, PartialEq)]
pub enum DatabasePlan {
    /// Stopped on pause, started on resume: an RDS instance, or an Aurora cluster that
    /// would otherwise keep its MinCapacity running.
    StopStart(Database),
    /// An Aurora cluster at MinCapacity 0: it pauses itself once idle (0 ACUs, storage
    /// billed only) and resumes on the first connection, so it is not stopped; resume
    /// starts it only if someone stopped it.
    AutoPause(Database),
    /// No database among the stack's resources.
    Nothing,
}

/// The plan for a stack's database, from its resources and the template's Aurora
/// MinCapacity (Aurora User Guide, "Scaling to zero ACUs with automatic pause and
/// resume for Aurora Serverless v2", aurora-serverless-v2-auto-pause.html).
pub fn database_plan(resources: &[StackResource], template: &Value) -> DatabasePlan {
    let Some(db) = Database::of(resources) else {
        return DatabasePlan::Nothing;
    };
    if let Database::Cluster(_) = db {
        let min = resources
            .iter()
            .find(|r| r.resource_type == "AWS::RDS::DBCluster")
            .and_then(|r| {
                template["Resources"][&r.logical_id]["Properties"]
                    ["ServerlessV2ScalingConfiguration"]["MinCapacity"]
                    .as_f64()
            })
            .unwrap_or(0.5);
        if min == 0.0 {
            return DatabasePlan::AutoPause(db);
        }
    }
    DatabasePlan::StopStart(db)
}

/// Everything one run needs.
struct Run<'a> {
    aws: &'a Aws,
    file: &'a std::path::Path,
    cluster: String,
    services: Vec<&'a StackResource>,
    counts: BTreeMap<String, i32>,
    scaler_table: Option<String>,
    /// The stack's event source mappings (the stream processor's), by UUID.
    event_sources: Vec<String>,
    database: DatabasePlan,
    timeout: Duration,
    scheduled: bool,
}

/// The UUIDs of the stack's event source mappings (physical ids of
/// `AWS::Lambda::EventSourceMapping`).
fn event_sources(resources: &[StackResource]) -> Vec<String> {
    resources
        .iter()
        .filter(|r| {
            r.resource_type == "AWS::Lambda::EventSourceMapping" && !r.physical_id.is_empty()
        })
        .map(|r| r.physical_id.clone())
        .collect()
}

/// Disables (pause) or enables (resume) each event source mapping; says so.
async fn hold_stream_events(run: &Run<'_>, enabled: bool) -> anyhow::Result<()> {
    let lambda = run.aws.lambda();
    for uuid in &run.event_sources {
        lambda
            .update_event_source_mapping()
            .uuid(uuid)
            .enabled(enabled)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "{} the event source mapping {uuid}: {}",
                    if enabled { "enabling" } else { "disabling" },
                    aws_sdk_lambda::error::DisplayErrorContext(&e)
                )
            })?;
        if enabled {
            println!(
                "  {:<16} delivering again: event source mapping {uuid} enabled",
                "stream events"
            );
        } else {
            println!(
                "  {:<16} held: event source mapping {uuid} disabled (the table's stream keeps events 24 h)",
                "stream events"
            );
        }
    }
    Ok(())
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
    crate::aws::runtime().block_on(async {
        let aws = Aws::connect(&args.aws, &spec.region).await;
        let resources = services::stack_resources(&aws.cloudformation(), &spec.name).await?;
        let cluster = resources
            .iter()
            .find(|r| r.resource_type == "AWS::ECS::Cluster")
            .ok_or_else(|| anyhow!("stack {} has no ECS cluster", spec.name))?
            .physical_id
            .clone();
        let run = Run {
            aws: &aws,
            file: &args.stack.file,
            cluster,
            services: resources
                .iter()
                .filter(|r| r.resource_type == "AWS::ECS::Service" && !r.physical_id.is_empty())
                .collect(),
            counts: spec_counts(&template),
            scaler_table: scaler_table(&resources),
            event_sources: event_sources(&resources),
            database: database_plan(&resources, &template),
            timeout: Duration::from_secs(args.timeout_minutes * 60),
            scheduled: spec.schedule.is_some(),
        };
        let verb = match direction {
            Direction::Pause => "pausing",
            Direction::Resume => "resuming",
        };
        println!(
            "{verb} {} in {}: {} services",
            spec.name,
            aws.region(),
            run.services.len()
        );
        match direction {
            Direction::Pause => pause(&run, &spec.name).await,
            Direction::Resume => resume(&run, &spec.name).await,
        }
        .map_err(Failure::from)
    })
}

/// Services to 0, their tasks stopped, then the database stopped.
async fn pause(run: &Run<'_>, name: &str) -> anyhow::Result<()> {
    // Before the services stop: a tick that ran in between would find the api-server
    // gone, count a read failure and could start workers for work still queued.
    if let Some(table) = &run.scaler_table {
        set_paused(&run.aws.dynamodb(), table).await?;
        println!(
            "  {:<16} paused: its ticks do nothing until resume",
            "scaler"
        );
    }
    // Before the api-server stops: a batch delivered in between would fail its calls.
    hold_stream_events(run, false).await?;
    let scaled = scale(run, Direction::Pause).await?;
    let ids: Vec<String> = scaled.iter().map(|r| r.physical_id.clone()).collect();
    let still = services::wait_drained(&run.aws.ecs(), &run.cluster, &ids, DRAIN_TIMEOUT).await?;
    for (service, tasks) in &still {
        println!(
            "  {:<16} still runs {tasks} task(s) after {} s (a busy worker keeps its scale-in protection until it is idle); the database stops anyway",
            short(service),
            DRAIN_TIMEOUT.as_secs()
        );
    }
    if still.is_empty() {
        println!("  {:<16} every task stopped", "services");
    }
    let outcome = stop_database(run).await;
    let summary = summary(run, &scaled).await?;
    match outcome {
        Ok(()) => {
            println!("{name} paused: running/desired {summary}; data kept.");
            Ok(())
        }
        Err(e) => {
            println!("{name} paused only in part: running/desired {summary}.");
            Err(e.context("the services are at 0, but the database still runs and costs money"))
        }
    }
}

/// The database started and answering, then the services up, then the scaler's mark
/// cleared. The services stay at 0 when the database does not come up.
async fn resume(run: &Run<'_>, name: &str) -> anyhow::Result<()> {
    start_database(run)
        .await
        .map_err(|e| e.context("the services stay at 0 until the database answers"))?;
    let scaled = scale(run, Direction::Resume).await?;
    // After the services: the processor's first batch may still find the api-server
    // starting; its retries (5, with an hour's record age) cover that.
    hold_stream_events(run, true).await?;
    let summary = summary(run, &scaled).await?;
    if let Some(table) = &run.scaler_table {
        clear_paused(&run.aws.dynamodb(), table).await?;
        println!(
            "  {:<16} resumed: scaling and alerts from its next tick",
            "scaler"
        );
    }
    println!("{name} resumed: running/desired {summary}.");
    Ok(())
}

/// Sets every service's desired count; returns the services it set.
async fn scale<'a>(run: &Run<'a>, direction: Direction) -> anyhow::Result<Vec<&'a StackResource>> {
    let ecs = run.aws.ecs();
    let mut done = Vec::new();
    for r in &run.services {
        let Some(count) = target(direction, &r.logical_id, &run.counts) else {
            println!(
                "  {:<16} not in {}; left as is",
                r.logical_id,
                run.file.display()
            );
            continue;
        };
        services::set_desired_count(&ecs, &run.cluster, &r.physical_id, count).await?;
        println!("  {:<16} desired {count}", r.logical_id);
        done.push(*r);
    }
    Ok(done)
}

/// `CoreService 0/0, WorkerService 0/0` as ECS reports them now.
async fn summary(run: &Run<'_>, scaled: &[&StackResource]) -> anyhow::Result<String> {
    let ids: Vec<String> = scaled.iter().map(|r| r.physical_id.clone()).collect();
    let now = services::counts(&run.aws.ecs(), &run.cluster, &ids).await?;
    Ok(scaled
        .iter()
        .zip(&now)
        .map(|(r, c)| format!("{} {}/{}", r.logical_id, c.running, c.desired))
        .collect::<Vec<_>>()
        .join(", "))
}

/// The last part of an ARN, for messages.
fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// What pause does about the database, printed; an error when it could not stop it.
async fn stop_database(run: &Run<'_>) -> anyhow::Result<()> {
    let db = match &run.database {
        DatabasePlan::Nothing => {
            println!("  {:<16} none in the stack", "database");
            return Ok(());
        }
        DatabasePlan::AutoPause(db) => {
            println!(
                "  {:<16} {} pauses itself once nothing connects (MinCapacity 0): 0 ACUs, storage billed only",
                "database",
                db.name()
            );
            return Ok(());
        }
        DatabasePlan::StopStart(db) => db,
    };
    let rds = run.aws.rds();
    let state = database::state(&rds, db).await?;
    if let Some(why) = &state.unstoppable {
        return Err(anyhow!("{} cannot be stopped: {why}", db.name()));
    }
    match state.status.as_str() {
        "stopped" => println!("  {:<16} {} was already stopped", "database", db.name()),
        "stopping" => wait_stopped(run, &rds, db).await?,
        status => {
            if status != "available" {
                // `starting` (AWS's restart after 7 days), `backing-up`, `modifying`...:
                // RDS stops only an available database, so wait for it to settle first.
                database::wait_until(
                    &rds,
                    db,
                    "available",
                    |s| s == "available",
                    run.timeout,
                    |s| println!("  {:<16} {} {s}", "database", db.name()),
                )
                .await?;
            }
            database::stop(&rds, db).await?;
            println!("  {:<16} {} stopping", "database", db.name());
            wait_stopped(run, &rds, db).await?;
        }
    }
    println!("  {:<16} {}", "", restart_note(db, run.scheduled));
    Ok(())
}

async fn wait_stopped(
    run: &Run<'_>,
    rds: &aws_sdk_rds::Client,
    db: &Database,
) -> anyhow::Result<()> {
    database::wait_until(
        rds,
        db,
        "stopped",
        |s| s == "stopped",
        run.timeout,
        |s| println!("  {:<16} {} {s}", "database", db.name()),
    )
    .await?;
    Ok(())
}

/// AWS starts a stopped instance or cluster again after seven days (RDS API Reference,
/// StopDBInstance; Aurora User Guide, aurora-cluster-stop-start.html), and the stack's
/// services stay at 0 then: the database runs, and is billed, for nothing.
pub fn restart_note(db: &Database, scheduled: bool) -> String {
    let again = if scheduled {
        "the schedule's next pause stops it again"
    } else {
        "run `airflow-stack pause` again to stop it (the services stay at 0)"
    };
    format!(
        "AWS starts a stopped {} again by itself 7 days after it stopped; {again}",
        match db {
            Database::Instance(_) => "instance",
            Database::Cluster(_) => "cluster",
        }
    )
}

/// What resume does about the database, printed; an error when it is not available
/// within the timeout.
async fn start_database(run: &Run<'_>) -> anyhow::Result<()> {
    let db = match &run.database {
        DatabasePlan::Nothing => return Ok(()),
        DatabasePlan::StopStart(db) | DatabasePlan::AutoPause(db) => db,
    };
    let rds = run.aws.rds();
    let status = database::state(&rds, db).await?.status;
    if status == "stopping" {
        // RDS starts only a stopped database.
        wait_stopped(run, &rds, db).await?;
    }
    if matches!(status.as_str(), "stopping" | "stopped") {
        database::start(&rds, db).await?;
        println!("  {:<16} {} starting", "database", db.name());
    }
    let status = database::wait_until(&rds, db, "available", database::answers, run.timeout, |s| {
        println!("  {:<16} {} {s}", "database", db.name())
    })
    .await?;
    if let DatabasePlan::AutoPause(_) = run.database {
        println!(
            "  {:<16} {status}; it resumes from a pause on the first connection",
            "database"
        );
    }
    Ok(())
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

    fn resource(logical: &str, kind: &str, physical: &str) -> StackResource {
        StackResource {
            logical_id: logical.into(),
            resource_type: kind.into(),
            physical_id: physical.into(),
        }
    }

    #[test]
    fn an_instance_is_stopped_and_aurora_only_above_min_capacity_0() {
        let instance = [resource("DatabaseInstance", "AWS::RDS::DBInstance", "db-1")];
        assert_eq!(
            database_plan(&instance, &json!({})),
            DatabasePlan::StopStart(Database::Instance("db-1".into()))
        );
        let aurora = [
            resource("DatabaseCluster", "AWS::RDS::DBCluster", "aurora-1"),
            resource("DatabaseInstance", "AWS::RDS::DBInstance", "member-1"),
        ];
        let with_min = |min: f64| {
            json!({"Resources": {"DatabaseCluster": {"Properties": {
                "ServerlessV2ScalingConfiguration": {"MinCapacity": min}}}}})
        };
        assert_eq!(
            database_plan(&aurora, &with_min(0.0)),
            DatabasePlan::AutoPause(Database::Cluster("aurora-1".into()))
        );
        assert_eq!(
            database_plan(&aurora, &with_min(0.5)),
            DatabasePlan::StopStart(Database::Cluster("aurora-1".into()))
        );
        assert_eq!(database_plan(&[], &json!({})), DatabasePlan::Nothing);
    }

    #[test]
    fn the_restart_note_says_who_stops_it_again() {
        let db = Database::Instance("db-1".into());
        assert!(restart_note(&db, true).contains("schedule's next pause"));
        let note = restart_note(&db, false);
        assert!(
            note.contains("7 days") && note.contains("airflow-stack pause"),
            "{note}"
        );
    }
}
