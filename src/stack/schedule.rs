//! `schedule:` pause and resume on a timetable: per ECS service one EventBridge
//! Scheduler schedule that sets DesiredCount to 0 and one that sets it back to the
//! template's count, calling ECS UpdateService directly through the universal target
//! (no Lambda), with a role allowed only `ecs:UpdateService` on these services.
//!
//! The database is left alone: Aurora at MinCapacity 0 pauses itself once nothing
//! connects; an RDS instance keeps running (see `airflow-stack pause`).

use super::cluster::Cluster;
use super::Tags;
use crate::cfn::aws::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::cfn::aws::scheduler::{FlexibleTimeWindow, RetryPolicy, Schedule, Target};
use crate::cfn::{Expr, LogicalId, Pseudo, Template};
use crate::spec::Spec;

/// An ECS service of the template and the count `resume` restores.
struct Scaled {
    id: LogicalId,
    count: u64,
}

/// The ECS services already in the template. Read from the rendered value because
/// every construct adds services of its own (components, Redis, Flower); the final
/// `Template::check` still proves each reference made from these ids.
fn services(t: &Template) -> Vec<Scaled> {
    let value = t.to_value();
    let Some(resources) = value["Resources"].as_object() else {
        return Vec::new();
    };
    resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::ECS::Service")
        .map(|(id, r)| Scaled {
            id: LogicalId::new(id.clone()).expect("template ids are valid"),
            // No DesiredCount (a scaler owns it): CloudFormation's own default, 1.
            count: r["Properties"]["DesiredCount"].as_u64().unwrap_or(1),
        })
        .collect()
}

/// `{"Cluster": "<name>", "Service": "<name>", "DesiredCount": n}` as JSON text.
fn update_service_input(cluster: &Cluster, service: &LogicalId, count: u64) -> Expr {
    Expr::concat(vec![
        Expr::lit(r#"{"Cluster":""#),
        cluster.handle.r#ref(),
        Expr::lit(r#"","Service":""#),
        Expr::GetAtt(service.clone(), "Name"),
        Expr::lit(format!(r#"","DesiredCount":{count}}}"#)),
    ])
}

/// Adds the schedules and their role when the stack file has a `schedule`.
pub fn add(t: &mut Template, spec: &Spec, cluster: &Cluster, tags: &Tags) {
    let Some(plan) = &spec.schedule else {
        return;
    };
    let scaled = services(t);
    let service_arns = scaled.iter().map(|s| Expr::Ref(s.id.clone())).collect();
    let role = t.add(
        "ScheduleRole",
        Role::for_service(
            "scheduler.amazonaws.com",
            "Pauses and resumes the Airflow services on the stack file's schedule".into(),
            vec![InlinePolicy {
                policy_name: "scale-airflow-services".into(),
                policy_document: PolicyDocument::new(vec![Statement::allow(
                    &["ecs:UpdateService"],
                    service_arns,
                )]),
            }],
            tags.all(),
        ),
    );
    let target_arn = Expr::concat(vec![
        Expr::lit("arn:"),
        Expr::Pseudo(Pseudo::Partition),
        Expr::lit(":scheduler:::aws-sdk:ecs:updateService"),
    ]);
    for s in &scaled {
        for (verb, expression, count) in
            [("Pause", &plan.pause, 0), ("Resume", &plan.resume, s.count)]
        {
            t.add(
                &format!("{}{verb}Schedule", s.id),
                Schedule {
                    description: Some(format!("{verb} {}: DesiredCount {count}", s.id)),
                    schedule_expression: expression.clone(),
                    schedule_expression_timezone: Some(plan.timezone.clone()),
                    flexible_time_window: FlexibleTimeWindow {
                        mode: "OFF",
                        maximum_window_in_minutes: None,
                    },
                    state: "ENABLED",
                    target: Target {
                        arn: target_arn.clone(),
                        role_arn: role.arn(),
                        input: Some(update_service_input(cluster, &s.id, count)),
                        retry_policy: Some(RetryPolicy {
                            maximum_retry_attempts: 3,
                            maximum_event_age_in_seconds: 3600,
                        }),
                    },
                },
            );
        }
    }
}
