//! EventBridge Scheduler: schedules that call an AWS API directly (universal targets).

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::resource;
use crate::cfn::Expr;

/// `AWS::Scheduler::Schedule`
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Schedule {
    pub description: Option<String>,
    /// `cron(...)`, `rate(...)` or `at(...)`.
    pub schedule_expression: String,
    /// IANA time zone the expression is read in, e.g. `Europe/Berlin`.
    pub schedule_expression_timezone: Option<String>,
    pub flexible_time_window: FlexibleTimeWindow,
    /// `ENABLED` or `DISABLED`.
    pub state: &'static str,
    pub target: Target,
}
resource!(Schedule, "AWS::Scheduler::Schedule");

/// When within a window the schedule may fire; `OFF` fires on time.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FlexibleTimeWindow {
    pub mode: &'static str,
    pub maximum_window_in_minutes: Option<u32>,
}

/// What a schedule invokes. For a universal target the ARN is
/// `arn:aws:scheduler:::aws-sdk:<service>:<apiAction>` and `Input` is the API request
/// as JSON text, with the parameter names of the service's API reference.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    pub arn: Expr,
    pub role_arn: Expr,
    pub input: Option<Expr>,
    pub retry_policy: Option<RetryPolicy>,
}

/// How often and how long a failed invocation is retried.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetryPolicy {
    pub maximum_retry_attempts: u32,
    pub maximum_event_age_in_seconds: u32,
}
