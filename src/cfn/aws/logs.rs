//! CloudWatch Logs log groups.

use serde::Serialize;

use super::{resource, Tag};
use crate::cfn::{Expr, Handle};

/// `AWS::Logs::LogGroup`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogGroup {
    pub log_group_name: Expr,
    pub retention_in_days: u32,
    pub tags: Vec<Tag>,
}
resource!(LogGroup, "AWS::Logs::LogGroup");

impl Handle<LogGroup> {
    /// `Fn::GetAtt Arn` (ends in `:*`, covering the group's streams).
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}
