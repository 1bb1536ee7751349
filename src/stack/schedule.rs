//! `schedule:` pause and resume on a timetable: per ECS service one EventBridge
//! Scheduler schedule that sets DesiredCount to 0 and one that sets it back to the
//! template's count, calling ECS UpdateService directly through the universal target
//! (no Lambda), with a role allowed only `ecs:UpdateService` on these services.
//!
//! The database is left alone: Aurora at MinCapacity 0 pauses itself once nothing
//! connects; an RDS instance keeps running (see `airflow-stack pause`).

use super::cluster::Cluster;
use super::scope::{ScaledService, Scope};
use super::service_role::{self, ServiceRole};
use crate::cfn::l1::scheduler::schedule::{
    FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState, Target,
};
use crate::cfn::l1::scheduler::Schedule;
use crate::cfn::l1::Statement;
use crate::cfn::{Expr, LogicalId, Pseudo};

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

/// Adds the schedules and their role when the stack file has a `schedule`.
pub fn add(s: &mut Scope, cluster: &Cluster) {
    let scaled = s.services();
    let (t, spec, tags) = (&mut s.t, s.spec, &s.tags);
    let Some(plan) = &spec.schedule else {
        return;
    };
    let service_arns = scaled.iter().map(|s| Expr::Ref(s.id.clone())).collect();
    let role = t.add(
        "ScheduleRole",
        service_role::role(
            ServiceRole {
                service: "scheduler.amazonaws.com",
                description: "Pauses and resumes the Airflow services on the stack file's schedule"
                    .into(),
                policy_name: "scale-airflow-services",
                statements: vec![Statement::allow(&["ecs:UpdateService"], service_arns)],
            },
            tags.all(),
        ),
    );
    let target_arn = Expr::concat(vec![
        Expr::lit("arn:"),
        Expr::Pseudo(Pseudo::Partition),
        Expr::lit(":scheduler:::aws-sdk:ecs:updateService"),
    ]);
    for s in &scaled {
        for (verb, expression, count) in [
            ("Pause", &plan.pause, 0),
            ("Resume", &plan.resume, resumed_count(s)),
        ] {
            t.add(
                &format!("{}{verb}Schedule", s.id),
                Schedule {
                    description: Some(format!("{verb} {}: DesiredCount {count}", s.id).into()),
                    schedule_expression: Some(expression.clone().into()),
                    schedule_expression_timezone: Some(plan.timezone.clone().into()),
                    flexible_time_window: Some(FlexibleTimeWindow {
                        mode: Some(FlexibleTimeWindowMode::Off),
                        maximum_window_in_minutes: None,
                    }),
                    state: Some(ScheduleState::Enabled),
                    target: Some(Target {
                        arn: Some(target_arn.clone()),
                        role_arn: Some(role.arn()),
                        input: Some(update_service_input(cluster, &s.id, count)),
                        retry_policy: Some(RetryPolicy {
                            maximum_retry_attempts: Some(3.into()),
                            maximum_event_age_in_seconds: Some(3600.into()),
                        }),
                        ..Target::default()
                    }),
                    ..Schedule::default()
                },
            );
        }
    }
}
