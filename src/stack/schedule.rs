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
//! The database is left alone: Aurora at MinCapacity 0 pauses itself once nothing
//! connects; an RDS instance keeps running (see `airflow-stack pause`).

use super::cluster::Cluster;
use super::scope::{ScaledService, Scope};
use super::service_role::{self, ServiceRole};
use crate::cfn::l1::dynamodb::Table;
use crate::cfn::l1::scheduler::schedule::{
    FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState, Target,
};
use crate::cfn::l1::scheduler::Schedule;
use crate::cfn::l1::Statement;
use crate::cfn::{Expr, Handle, LogicalId, Pseudo};
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

/// Adds the schedules and their role when the stack file has a `schedule`.
pub fn add(s: &mut Scope, cluster: &Cluster, scaler_table: Option<&Handle<Table>>) {
    let scaled = s.services();
    let (t, spec, tags) = (&mut s.t, s.spec, &s.tags);
    let Some(plan) = &spec.schedule else {
        return;
    };
    let service_arns = scaled.iter().map(|s| Expr::Ref(s.id.clone())).collect();
    let mut statements = vec![Statement::allow(&["ecs:UpdateService"], service_arns)];
    if let Some(table) = scaler_table {
        statements.push(Statement::allow(
            &["dynamodb:PutItem", "dynamodb:DeleteItem"],
            vec![table.arn()],
        ));
    }
    let role = t.add(
        "ScheduleRole",
        service_role::role(
            ServiceRole {
                service: "scheduler.amazonaws.com",
                description: "Pauses and resumes the Airflow services on the stack file's schedule"
                    .into(),
                policy_name: "scale-airflow-services",
                statements,
            },
            tags.all(),
        ),
    );
    let target_arn = universal_target("ecs:updateService");
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
                Target {
                    arn: Some(universal_target(operation)),
                    role_arn: Some(role.arn()),
                    input: Some(input),
                    retry_policy: Some(retries()),
                    ..Target::default()
                },
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
                    Target {
                        arn: Some(target_arn.clone()),
                        role_arn: Some(role.arn()),
                        input: Some(update_service_input(cluster, &s.id, count)),
                        retry_policy: Some(retries()),
                        ..Target::default()
                    },
                ),
            );
        }
    }
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
fn schedule(description: String, expression: &str, timezone: &str, target: Target) -> Schedule {
    Schedule {
        description: Some(description.into()),
        schedule_expression: Some(expression.to_owned().into()),
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
