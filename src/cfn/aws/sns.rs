//! SNS topics.

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::{resource, Tag};
use crate::cfn::{Expr, Handle};

/// `AWS::SNS::Topic`
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Topic {
    pub display_name: Option<String>,
    pub tags: Vec<Tag>,
}
resource!(Topic, "AWS::SNS::Topic");

impl Handle<Topic> {
    /// The topic ARN (what `Ref` returns for a topic).
    pub fn arn(&self) -> Expr {
        self.r#ref()
    }
}
