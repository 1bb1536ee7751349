//! EventBridge rules.

use serde::Serialize;

use super::resource;
use crate::cfn::{Expr, Handle};

/// `AWS::Events::Rule` on a schedule.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rule {
    pub description: String,
    /// `rate(1 minute)`, `cron(...)`.
    pub schedule_expression: String,
    /// `ENABLED` or `DISABLED`.
    pub state: &'static str,
    pub targets: Vec<Target>,
}
resource!(Rule, "AWS::Events::Rule");

impl Handle<Rule> {
    /// `Fn::GetAtt Arn`
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// A rule's target.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    pub arn: Expr,
    pub id: String,
}
