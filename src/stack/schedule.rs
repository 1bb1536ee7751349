//! `schedule:` pause and resume on a timetable: per ECS service one EventBridge
//! Scheduler schedule that sets DesiredCount to 0 and one that sets it back to the
//! template's count, calling ECS UpdateService directly through the universal target
//! (no Lambda), with a role allowed only `ecs:UpdateService` on these services.
//!
//! With the scaler, two more schedules mark it paused and clear that mark, as
//! `airflow-stack pause`/`resume` do: DynamoDB PutItem/DeleteItem of the state table's
//! paused item (`airflow_stack_contract::scaler::PAUSED_KEY`), so the scaler neither
//! starts workers nor raises its read-failure alarm over an api-server stopped on
//! purpose.
//!
//! The database, as `airflow-stack pause`/`resume` treat it: an RDS instance, or an
//! Aurora cluster above MinCapacity 0, gets a schedule that stops it
//! (`rds:stopDBInstance`/`stopDBCluster`) 10 minutes after the pause, once the services'
//! tasks have stopped (Fargate gives them at most 120 s), and one that starts it 15
//! minutes before the resume, so it answers when the services start. Where the
//! expression does not allow that shift (a `rate(...)`, or a cron whose minute and hour
//! are not single numbers or whose shifted time would change the day), both fire on the
//! services' time, and the image's entrypoint holds each Airflow container until the
//! database answers (`airflow db check`, 20 tries by default; a container that gives up
//! exits, and ECS starts another). Aurora at MinCapacity 0 pauses itself once nothing
//! connects and gets no schedule.
//!
//! With `streams:`, the stream processor's event source mapping is disabled 5 minutes
//! before the pause and enabled 10 minutes after the resume (the universal target
//! `lambda:updateEventSourceMapping`), as `airflow-stack pause`/`resume` do: events that
//! arrive meanwhile wait in the table's stream (24 hours) instead of failing at a
//! stopped api-server and reaching the dead-letter queue; the api-server has started by
//! the time they are delivered. Where [`shifted`] cannot move the times, both fire on
//! the services' time.
//!
//! AWS starts a stopped database again by itself after 7 days (RDS API Reference,
//! StopDBInstance): the next pause of the schedule stops it again. A daily "stop it
//! again" schedule is not added: a schedule cannot tell a database that AWS restarted
//! from one that a resume started, and stopping the latter would take Airflow down.
//!
//! Every schedule has a dead-letter queue (SQS, SSE-SQS encrypted, 14 days' retention):
//! a call that still fails after the retries (no permission, a database that is not
//! in a state to stop or start) leaves a message there with the target's error
//! (EventBridge Scheduler User Guide, "Configuring a dead-letter queue",
//! configuring-schedule-dlq.html; the execution role needs `sqs:SendMessage` on it).
//! The universal targets take the SDK's JSON casing, `DbInstanceIdentifier` (Scheduler
//! User Guide, "Using universal targets", managing-targets-universal.html).

use super::cluster::Cluster;
use super::scope::{ScaledService, Scope};
use super::service_role::{self, ServiceRole};
use crate::cfn::l1::dynamodb::Table;
use crate::cfn::l1::lambda::EventSourceMapping;
use crate::cfn::l1::scheduler::schedule::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState,
    Target,
};
use crate::cfn::l1::scheduler::Schedule;
use crate::cfn::l1::sqs::Queue;
use crate::cfn::l1::Statement;
use crate::cfn::{Expr, Handle, LogicalId, Pseudo};
use crate::spec::ScheduleExpression;
use crate::spec::{DatabaseEngine, Spec};
use airflow_stack_contract::scaler::{PAUSED_KEY, PAUSED_SINCE, STATE_TABLE_KEY};

/// `{"Cluster": "<name>", "Service": "<name>", "DesiredCount": n}` as JSON text.
fn update_service_input(cluster: &Cluster, service: &LogicalId, count: u32) -> Expr {
    Expr::concat(vec![
        Expr::lit(r#"{"Cluster":""#),
        cluster.handle.r#ref(),
        Expr::lit(r#"","Service":""#),
        Expr::GetAtt(service.clone(), "Name"),
        Expr::lit(format!(r#"","DesiredCount":{count}}}"#)),
    ])
}

/// The count `resume` restores: the template's, or for a service whose count a scaler
/// owns, CloudFormation's default of 1 (the scaler takes it from there).
fn resumed_count(service: &ScaledService) -> u32 {
    service.desired_count.unwrap_or(1)
}

/// `{"TableName": "<table>", ...rest}` as JSON text, for the DynamoDB universal targets.
fn table_input(table: &Handle<Table>, rest: &str) -> Expr {
    Expr::concat(vec![
        Expr::lit(r#"{"TableName":""#),
        table.r#ref(),
        Expr::lit(format!(r#"",{rest}}}"#)),
    ])
}

/// The paused item's key, as DynamoDB's JSON protocol writes an attribute map.
fn paused_key() -> String {
    format!(r#"{{"{STATE_TABLE_KEY}":{{"S":"{PAUSED_KEY}"}}}}"#)
}

/// `(verb, target operation, input)` of the scaler's pause and resume schedules.
/// `<aws.scheduler.scheduled-time>` is a Scheduler context attribute, replaced by the
/// time the schedule fired (EventBridge Scheduler User Guide, "Adding context
/// attributes").
fn scaler_targets(table: &Handle<Table>) -> [(&'static str, &'static str, Expr); 2] {
    let item = format!(
        r#"{{"{STATE_TABLE_KEY}":{{"S":"{PAUSED_KEY}"}},"{PAUSED_SINCE}":{{"S":"<aws.scheduler.scheduled-time>"}}}}"#
    );
    [
        (
            "Pause",
            "dynamodb:putItem",
            table_input(table, &format!(r#""Item":{item}"#)),
        ),
        (
            "Resume",
            "dynamodb:deleteItem",
            table_input(table, &format!(r#""Key":{}"#, paused_key())),
        ),
    ]
}

/// The database's stop and start calls for the schedule, when pausing stops it.
struct DatabaseCalls {
    /// `(universal target operation, IAM action)` of the stop and of the start.
    stop: (&'static str, &'static str),
    start: (&'static str, &'static str),
    /// `{"DbInstanceIdentifier": "<id>"}` or `{"DbClusterIdentifier": "<id>"}`.
    input: Expr,
    /// The instance's or cluster's ARN, for the role.
    arn: Expr,
}

/// What the schedule calls to stop and start the database: an RDS instance, or an
/// Aurora cluster above MinCapacity 0 (at 0 it pauses itself: nothing to call).
fn database_calls(spec: &Spec, database: &LogicalId) -> Option<DatabaseCalls> {
    let d = &spec.database;
    let (stop, start, key, arn_kind) = match d.engine {
        DatabaseEngine::RdsPostgres => (
            ("rds:stopDBInstance", "rds:StopDBInstance"),
            ("rds:startDBInstance", "rds:StartDBInstance"),
            "DbInstanceIdentifier",
            "db",
        ),
        DatabaseEngine::AuroraServerlessV2 if d.min_capacity > 0.0 => (
            ("rds:stopDBCluster", "rds:StopDBCluster"),
            ("rds:startDBCluster", "rds:StartDBCluster"),
            "DbClusterIdentifier",
            "cluster",
        ),
        DatabaseEngine::AuroraServerlessV2 => return None,
    };
    let id = Expr::Ref(database.clone());
    Some(DatabaseCalls {
        stop,
        start,
        input: Expr::concat(vec![
            Expr::lit(format!(r#"{{"{key}":""#)),
            id.clone(),
            Expr::lit(r#""}"#),
        ]),
        // `Ref` of a DBInstance or DBCluster is its identifier; the ARN is built from it.
        arn: Expr::arn(
            "rds",
            Expr::concat(vec![Expr::lit(format!("{arn_kind}:")), id]),
        ),
    })
}

/// Minutes after the pause at which the database stops: the services' tasks have
/// stopped by then (at most 120 s each), with room for the pause's own retries.
const DATABASE_STOP_AFTER_MINUTES: i32 = 10;

/// Minutes before the resume at which the database starts: RDS takes minutes to start
/// an instance, and the services should find it answering.
const DATABASE_START_BEFORE_MINUTES: i32 = 15;

/// A cron expression whose minute and hour fields are single numbers: the minute of the
/// day and the other four fields (day-of-month, month, day-of-week, year); `None` for
/// any other expression.
fn cron_time(expression: &ScheduleExpression) -> Option<(i32, [String; 4])> {
    let [minute, hour, rest @ ..] = expression.cron_fields()?.clone();
    let minute: i32 = minute.parse().ok()?;
    let hour: i32 = hour.parse().ok()?;
    ((0..60).contains(&minute) && (0..24).contains(&hour)).then(|| (hour * 60 + minute, rest))
}

/// A cron expression moved by `minutes`, when its minute and hour are single numbers and
/// the moved time stays on the same day (so the day fields still hold); otherwise `None`.
pub fn shifted(expression: &ScheduleExpression, minutes: i32) -> Option<ScheduleExpression> {
    let (at, [dom, month, dow, year]) = cron_time(expression)?;
    let at = at + minutes;
    (0..24 * 60).contains(&at).then(|| {
        ScheduleExpression::Cron([
            (at % 60).to_string(),
            (at / 60).to_string(),
            dom,
            month,
            dow,
            year,
        ])
    })
}

/// The database's `(stop, start)` expressions: 10 minutes after the pause and 15 before
/// the resume where [`shifted`] can move them, else the services' own times (see
/// [`moved_times`]).
fn database_times(
    pause: &ScheduleExpression,
    resume: &ScheduleExpression,
) -> (ScheduleExpression, ScheduleExpression) {
    moved_times(
        pause,
        resume,
        DATABASE_STOP_AFTER_MINUTES,
        -DATABASE_START_BEFORE_MINUTES,
    )
}

/// Minutes before the pause that the stream processor's mapping is disabled (no batch
/// is still on its way to the api-server when it stops).
const STREAM_HOLD_BEFORE_MINUTES: i32 = 5;
/// Minutes after the resume that it is enabled again (the api-server has started; its
/// health check grace and Airflow's start take 2-3 minutes).
const STREAM_RELEASE_AFTER_MINUTES: i32 = 10;

/// The stream mapping's `(disable, enable)` expressions (see [`moved_times`]).
fn stream_mapping_times(
    pause: &ScheduleExpression,
    resume: &ScheduleExpression,
) -> (ScheduleExpression, ScheduleExpression) {
    moved_times(
        pause,
        resume,
        -STREAM_HOLD_BEFORE_MINUTES,
        STREAM_RELEASE_AFTER_MINUTES,
    )
}

/// The pause moved by `pause_by` and the resume by `resume_by` minutes where [`shifted`]
/// can move them, else their own times. When the pause and the resume fall on the same
/// days within 30 minutes plus both moves of each other, neither moves: moved, the two
/// could swap order (a database stopped under running services, a mapping enabled
/// before the services it feeds).
fn moved_times(
    pause: &ScheduleExpression,
    resume: &ScheduleExpression,
    pause_by: i32,
    resume_by: i32,
) -> (ScheduleExpression, ScheduleExpression) {
    let close = match (cron_time(pause), cron_time(resume)) {
        (Some((p, p_days)), Some((r, r_days))) => {
            let gap = (r - p).rem_euclid(24 * 60).min((p - r).rem_euclid(24 * 60));
            p_days == r_days && gap < 30 + pause_by.abs() + resume_by.abs()
        }
        _ => false,
    };
    let moved = |e: &ScheduleExpression, by: i32| {
        (!close)
            .then(|| shifted(e, by))
            .flatten()
            .unwrap_or_else(|| e.clone())
    };
    (moved(pause, pause_by), moved(resume, resume_by))
}

/// `{"Uuid": "<mapping id>", "Enabled": <enabled>}` as JSON text.
fn mapping_input(mapping: &Handle<EventSourceMapping>, enabled: bool) -> Expr {
    Expr::concat(vec![
        Expr::lit(r#"{"Uuid":""#),
        mapping.r#ref(),
        Expr::lit(format!(r#"","Enabled":{enabled}}}"#)),
    ])
}

/// The mapping's ARN, the resource of `lambda:UpdateEventSourceMapping`.
fn mapping_arn(mapping: &Handle<EventSourceMapping>) -> Expr {
    Expr::arn(
        "lambda",
        Expr::concat(vec![Expr::lit("event-source-mapping:"), mapping.r#ref()]),
    )
}

/// The dead-letter queue of every schedule: SSE-SQS encrypted, messages kept 14 days
/// (SQS's maximum), so a failed pause or resume can be read days later.
fn dead_letter_queue(s: &mut Scope) -> Handle<Queue> {
    let tags = s.tags.all();
    s.t.add(
        "ScheduleDeadLetterQueue",
        Queue {
            sqs_managed_sse_enabled: Some(true),
            message_retention_period: Some(14 * 24 * 3600),
            tags,
            ..Queue::default()
        },
    )
}

/// Adds the schedules, their role and their dead-letter queue when the stack file has a
/// `schedule`. `database` is what pausing stops: the RDS instance or the Aurora cluster;
/// `stream_mapping` the stream processor's event source mapping, held while paused.
pub fn add(
    s: &mut Scope,
    cluster: &Cluster,
    scaler_table: Option<&Handle<Table>>,
    database: &LogicalId,
    stream_mapping: Option<&Handle<EventSourceMapping>>,
) {
    let Some(plan) = s.spec.schedule.clone() else {
        return;
    };
    let scaled = s.services();
    let dlq = dead_letter_queue(s);
    let db = database_calls(s.spec, database);
    let role = add_role(s, &scaled, scaler_table, db.as_ref(), stream_mapping, &dlq);
    let target = |arn: Expr, input: Expr| Target {
        arn: Some(arn),
        role_arn: Some(role.arn()),
        input: Some(input),
        retry_policy: Some(retries()),
        dead_letter_config: Some(DeadLetterConfig {
            arn: Some(dlq.arn()),
        }),
        ..Target::default()
    };
    let t = &mut s.t;
    let scaler = scaler_table.map(scaler_targets).into_iter().flatten();
    for (verb, operation, input) in scaler {
        let expression = if verb == "Pause" {
            &plan.pause
        } else {
            &plan.resume
        };
        t.add(
            &format!("Scaler{verb}Schedule"),
            schedule(
                format!("{verb} the scaler (its paused item)"),
                expression,
                &plan.timezone,
                target(universal_target(operation), input),
            ),
        );
    }
    for s in &scaled {
        for (verb, expression, count) in [
            ("Pause", &plan.pause, 0),
            ("Resume", &plan.resume, resumed_count(s)),
        ] {
            t.add(
                &format!("{}{verb}Schedule", s.id),
                schedule(
                    format!("{verb} {}: DesiredCount {count}", s.id),
                    expression,
                    &plan.timezone,
                    target(
                        universal_target("ecs:updateService"),
                        update_service_input(cluster, &s.id, count),
                    ),
                ),
            );
        }
    }
    if let Some(mapping) = stream_mapping {
        let (hold_at, release_at) = stream_mapping_times(&plan.pause, &plan.resume);
        for (verb, enabled, expression) in [("Pause", false, hold_at), ("Resume", true, release_at)]
        {
            t.add(
                &format!("StreamProcessorEventSource{verb}Schedule"),
                schedule(
                    format!(
                        "{verb}: {} the stream processor's event source mapping",
                        if enabled { "enable" } else { "disable" }
                    ),
                    &expression,
                    &plan.timezone,
                    target(
                        universal_target("lambda:updateEventSourceMapping"),
                        mapping_input(mapping, enabled),
                    ),
                ),
            );
        }
    }
    if let Some(db) = db {
        let (stop_at, start_at) = database_times(&plan.pause, &plan.resume);
        for (verb, (operation, _), expression) in
            [("Pause", db.stop, stop_at), ("Resume", db.start, start_at)]
        {
            t.add(
                &format!("Database{verb}Schedule"),
                schedule(
                    format!("{verb}: {operation} of {database}"),
                    &expression,
                    &plan.timezone,
                    target(universal_target(operation), db.input.clone()),
                ),
            );
        }
    }
    t.output(
        "ScheduleDeadLetterQueueUrl",
        "Failed scheduled pauses and resumes, with the target's error (14 days)",
        dlq.r#ref(),
    );
}

/// The role the schedules run as: UpdateService on the stack's services, the scaler's
/// paused item, the database's stop and start, and sending to the dead-letter queue.
fn add_role(
    s: &mut Scope,
    scaled: &[ScaledService],
    scaler_table: Option<&Handle<Table>>,
    db: Option<&DatabaseCalls>,
    stream_mapping: Option<&Handle<EventSourceMapping>>,
    dlq: &Handle<Queue>,
) -> Handle<crate::cfn::l1::iam::Role> {
    let service_arns = scaled.iter().map(|s| Expr::Ref(s.id.clone())).collect();
    let mut statements = vec![Statement::allow(&["ecs:UpdateService"], service_arns)];
    if let Some(table) = scaler_table {
        statements.push(Statement::allow(
            &["dynamodb:PutItem", "dynamodb:DeleteItem"],
            vec![table.arn()],
        ));
    }
    if let Some(db) = db {
        statements.push(Statement::allow(
            &[db.stop.1, db.start.1],
            vec![db.arn.clone()],
        ));
    }
    if let Some(mapping) = stream_mapping {
        statements.push(Statement::allow(
            &["lambda:UpdateEventSourceMapping"],
            vec![mapping_arn(mapping)],
        ));
    }
    statements.push(Statement::allow(&["sqs:SendMessage"], vec![dlq.arn()]));
    let tags = s.tags.all();
    s.t.add(
        "ScheduleRole",
        service_role::role(
            ServiceRole {
                service: "scheduler.amazonaws.com",
                description: "Pauses and resumes the Airflow services and database on the stack file's schedule"
                    .into(),
                policy_name: "scale-airflow-services",
                statements,
            },
            tags,
        ),
    )
}

/// `arn:<partition>:scheduler:::aws-sdk:<service>:<operation>`: a universal target.
fn universal_target(operation: &str) -> Expr {
    Expr::concat(vec![
        Expr::lit("arn:"),
        Expr::Pseudo(Pseudo::Partition),
        Expr::lit(format!(":scheduler:::aws-sdk:{operation}")),
    ])
}

/// Three retries within an hour: a pause or resume missed by minutes still happens.
fn retries() -> RetryPolicy {
    RetryPolicy {
        maximum_retry_attempts: Some(3.into()),
        maximum_event_age_in_seconds: Some(3600.into()),
    }
}

/// One enabled schedule, on time (no flexible window), in the plan's timezone.
fn schedule(
    description: String,
    expression: &ScheduleExpression,
    timezone: &str,
    target: Target,
) -> Schedule {
    Schedule {
        description: Some(description.into()),
        schedule_expression: Some(expression.to_string().into()),
        schedule_expression_timezone: Some(timezone.to_owned().into()),
        flexible_time_window: Some(FlexibleTimeWindow {
            mode: Some(FlexibleTimeWindowMode::Off),
            maximum_window_in_minutes: None,
        }),
        state: Some(ScheduleState::Enabled),
        target: Some(target),
        ..Schedule::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_cron_moves_within_its_day_and_nothing_else_moves() {
        let shifted = |e: &str, by| shifted(&e.parse().unwrap(), by).map(|e| e.to_string());
        assert_eq!(
            shifted("cron(0 19 ? * MON-FRI *)", 10).as_deref(),
            Some("cron(10 19 ? * MON-FRI *)")
        );
        assert_eq!(
            shifted("cron(5 7 ? * MON-FRI *)", -15).as_deref(),
            Some("cron(50 6 ? * MON-FRI *)")
        );
        assert_eq!(shifted("cron(55 23 * * ? *)", 10), None); // the next day
        assert_eq!(shifted("cron(5 0 * * ? *)", -15), None); // the day before
        assert_eq!(shifted("cron(0/30 7 * * ? *)", 10), None);
        assert_eq!(shifted("cron(0 7,19 * * ? *)", 10), None);
        assert_eq!(shifted("rate(12 hours)", 10), None);
    }

    #[test]
    fn a_pause_and_resume_close_together_keep_the_services_times() {
        let times = |p: &str, r: &str| {
            let (stop, start) = database_times(&p.parse().unwrap(), &r.parse().unwrap());
            (stop.to_string(), start.to_string())
        };
        assert_eq!(
            times("cron(0 19 ? * MON-FRI *)", "cron(0 7 ? * MON-FRI *)"),
            (
                "cron(10 19 ? * MON-FRI *)".into(),
                "cron(45 6 ? * MON-FRI *)".into()
            )
        );
        // Shifted, the stop (19:10) would follow the start (19:05) and hit the services.
        assert_eq!(
            times("cron(0 19 * * ? *)", "cron(20 19 * * ? *)"),
            ("cron(0 19 * * ? *)".into(), "cron(20 19 * * ? *)".into())
        );
        assert_eq!(
            times("rate(12 hours)", "cron(0 7 * * ? *)"),
            ("rate(12 hours)".into(), "cron(45 6 * * ? *)".into())
        );
    }

    fn template(extra: &str) -> Value {
        let text = format!("name: sched\nregion: us-east-1\n{extra}schedule:\n  timezone: Europe/Berlin\n  resume: \"cron(0 7 ? * MON-FRI *)\"\n  pause: \"cron(0 19 ? * MON-FRI *)\"\n");
        let spec = crate::spec::parse(&text, std::path::Path::new("sched.yaml")).unwrap();
        crate::stack::build(&spec).unwrap().to_value()
    }

    #[test]
    fn an_rds_instance_stops_after_the_services_and_starts_before_them() {
        let t = template("database:\n  engine: rds-postgres\n");
        let r = &t["Resources"];
        let target = |id: &str| &r[id]["Properties"]["Target"];
        let stop = &r["DatabasePauseSchedule"]["Properties"];
        assert_eq!(stop["ScheduleExpression"], "cron(10 19 ? * MON-FRI *)");
        assert!(target("DatabasePauseSchedule")["Arn"]
            .to_string()
            .contains(":scheduler:::aws-sdk:rds:stopDBInstance"));
        assert_eq!(
            target("DatabasePauseSchedule")["Input"],
            json!({"Fn::Join": ["", [
                "{\"DbInstanceIdentifier\":\"", {"Ref": "DatabaseInstance"}, "\"}"]]})
        );
        let start = &r["DatabaseResumeSchedule"]["Properties"];
        assert_eq!(start["ScheduleExpression"], "cron(45 6 ? * MON-FRI *)");
        assert!(target("DatabaseResumeSchedule")["Arn"]
            .to_string()
            .contains("rds:startDBInstance"));
        let rds = role_statement(&t, "rds:");
        assert_eq!(
            rds["Action"],
            json!(["rds:StopDBInstance", "rds:StartDBInstance"])
        );
        assert!(rds["Resource"].to_string().contains("\":rds:\""), "{rds}");
        assert!(rds["Resource"].to_string().contains("db:"), "{rds}");
    }

    #[test]
    fn every_schedule_sends_its_failures_to_one_encrypted_queue() {
        let t = template("database:\n  engine: rds-postgres\n");
        let r = r_of(&t);
        let schedules: Vec<&String> = r
            .iter()
            .filter(|(_, v)| v["Type"] == "AWS::Scheduler::Schedule")
            .map(|(k, _)| k)
            .collect();
        assert!(schedules.len() >= 4, "{schedules:?}");
        for id in schedules {
            assert_eq!(
                r[id]["Properties"]["Target"]["DeadLetterConfig"]["Arn"],
                json!({"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}),
                "{id}"
            );
        }
        let queue = &r["ScheduleDeadLetterQueue"]["Properties"];
        assert_eq!(queue["SqsManagedSseEnabled"], true);
        assert_eq!(queue["MessageRetentionPeriod"], 1_209_600);
        let role = r["ScheduleRole"].to_string();
        assert!(role.contains("sqs:SendMessage"), "{role}");
        assert_eq!(
            t["Outputs"]["ScheduleDeadLetterQueueUrl"]["Value"],
            json!({"Ref": "ScheduleDeadLetterQueue"})
        );
    }

    /// The schedule role's statement whose actions are of the service `prefix`.
    fn role_statement(t: &Value, prefix: &str) -> Value {
        t["Resources"]["ScheduleRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Action"].to_string().contains(prefix))
            .unwrap_or_else(|| panic!("no {prefix} statement"))
            .clone()
    }

    fn r_of(t: &Value) -> &serde_json::Map<String, Value> {
        t["Resources"].as_object().unwrap()
    }

    #[test]
    fn stream_events_are_held_from_before_the_pause_until_after_the_resume() {
        let t = template("network:\n  nat_gateways: 1\nstreams:\n  - name: orders\n    url: https://e.example.com/o\n    format: sse\n    target: {dag: orders}\n");
        let r = r_of(&t);
        let schedule = |id: &str| &r[id]["Properties"];
        for (id, expression, enabled) in [
            (
                "StreamProcessorEventSourcePauseSchedule",
                "cron(55 18 ? * MON-FRI *)",
                false,
            ),
            (
                "StreamProcessorEventSourceResumeSchedule",
                "cron(10 7 ? * MON-FRI *)",
                true,
            ),
        ] {
            assert_eq!(schedule(id)["ScheduleExpression"], expression, "{id}");
            let target = &schedule(id)["Target"];
            assert!(target["Arn"]
                .to_string()
                .contains(":scheduler:::aws-sdk:lambda:updateEventSourceMapping"));
            assert_eq!(
                target["Input"],
                json!({"Fn::Join": ["", [
                    "{\"Uuid\":\"", {"Ref": "StreamProcessorEventSource"},
                    format!("\",\"Enabled\":{enabled}}}")]]}),
                "{id}"
            );
        }
        let lambda = role_statement(&t, "lambda:");
        assert_eq!(lambda["Action"], json!(["lambda:UpdateEventSourceMapping"]));
        let resource = lambda["Resource"].to_string();
        assert!(
            resource.contains("event-source-mapping:")
                && resource.contains("StreamProcessorEventSource"),
            "{resource}"
        );
        // Without streams: no such schedule, no Lambda right.
        let t = template("");
        assert!(t["Resources"]
            .get("StreamProcessorEventSourcePauseSchedule")
            .is_none());
        assert!(!t["Resources"]["ScheduleRole"]
            .to_string()
            .contains("lambda:"));
    }

    #[test]
    fn aurora_is_stopped_only_above_min_capacity_0() {
        let t = template("database:\n  engine: aurora-serverless-v2\n  min_capacity: 0.5\n");
        let stop = &t["Resources"]["DatabasePauseSchedule"]["Properties"]["Target"];
        assert!(stop["Arn"].to_string().contains("rds:stopDBCluster"));
        assert!(stop["Input"].to_string().contains("DbClusterIdentifier"));
        assert!(t["Resources"]["ScheduleRole"]
            .to_string()
            .contains("rds:StartDBCluster"));
        let t = template("database:\n  engine: aurora-serverless-v2\n  min_capacity: 0\n");
        assert!(t["Resources"].get("DatabasePauseSchedule").is_none());
        assert!(!t["Resources"]["ScheduleRole"].to_string().contains("rds:"));
    }
}
