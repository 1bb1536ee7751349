//! IAM roles with inline policies.

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::{resource, Tag};
use crate::cfn::{Expr, Handle};

/// `AWS::IAM::Role`
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Role {
    pub assume_role_policy_document: PolicyDocument,
    pub description: String,
    pub managed_policy_arns: Option<Vec<Expr>>,
    pub policies: Vec<InlinePolicy>,
    pub tags: Vec<Tag>,
}
resource!(Role, "AWS::IAM::Role");

impl Handle<Role> {
    /// `Fn::GetAtt Arn`
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

impl Role {
    /// A role that `service` (e.g. `ecs-tasks.amazonaws.com`) may assume.
    pub fn for_service(
        service: &str,
        description: String,
        policies: Vec<InlinePolicy>,
        tags: Vec<Tag>,
    ) -> Role {
        let trust = Statement {
            effect: "Allow",
            principal: Some(Principal::Service(service.to_string())),
            action: vec!["sts:AssumeRole".to_string()],
            resource: None,
            condition: None,
        };
        Role {
            assume_role_policy_document: PolicyDocument::new(vec![trust]),
            description,
            managed_policy_arns: None,
            policies,
            tags,
        }
    }
}

/// A named inline policy.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InlinePolicy {
    pub policy_name: String,
    pub policy_document: PolicyDocument,
}

/// An IAM policy document.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    pub version: &'static str,
    pub statement: Vec<Statement>,
}

impl PolicyDocument {
    /// A policy document of the 2012-10-17 language version.
    pub fn new(statement: Vec<Statement>) -> PolicyDocument {
        PolicyDocument {
            version: "2012-10-17",
            statement,
        }
    }
}

/// A policy statement.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub effect: &'static str,
    pub principal: Option<Principal>,
    pub action: Vec<String>,
    pub resource: Option<Vec<Expr>>,
    pub condition: Option<serde_json::Value>,
}

impl Statement {
    /// Allows `actions` on `resources`.
    pub fn allow(actions: &[&str], resources: Vec<Expr>) -> Statement {
        Statement {
            effect: "Allow",
            principal: None,
            action: actions.iter().map(|a| a.to_string()).collect(),
            resource: Some(resources),
            condition: None,
        }
    }

    /// The same statement for every principal (resource policies).
    pub fn with_any_principal(mut self) -> Statement {
        self.principal = Some(Principal::Any);
        self
    }
}

/// Who a statement applies to.
#[derive(Clone, Debug)]
pub enum Principal {
    /// An AWS service, e.g. `lambda.amazonaws.com`.
    Service(String),
    /// Everyone (`"*"`), for deny statements in resource policies.
    Any,
}

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Principal::Any => s.serialize_str("*"),
            Principal::Service(name) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("Service", name)?;
                map.end()
            }
        }
    }
}
