//! The shape of every IAM role of the stack: one AWS service may assume it, and one
//! named inline policy says what it may do. A leaf of the construct graph, so the
//! Lambda construct, the tasks' roles, the broker and the schedule share it.

use crate::cfn::l1::iam::{role, Role};
use crate::cfn::l1::{PolicyDocument, Statement, Tag};
use crate::cfn::{Expr, Pseudo};

/// What a role is for and what it may do.
pub struct ServiceRole<'a> {
    /// The service principal that assumes it, e.g. `ecs-tasks.amazonaws.com`.
    pub service: &'a str,
    /// What the role is for, shown in the console.
    pub description: String,
    /// Name of its inline policy.
    pub policy_name: &'a str,
    /// The inline policy's statements.
    pub statements: Vec<Statement>,
}

/// The role: a trust policy for `service` and the one inline policy.
pub fn role(r: ServiceRole, tags: Vec<Tag>) -> Role {
    Role {
        assume_role_policy_document: Some(PolicyDocument::new(vec![Statement::assume_role(
            r.service,
        )])),
        description: Some(r.description.into()),
        policies: vec![role::Policy {
            policy_name: Some(r.policy_name.into()),
            policy_document: Some(PolicyDocument::new(r.statements)),
        }],
        tags,
        ..Role::default()
    }
}

/// `cloudformation:DescribeStackResource` on this stack only
/// (`arn:${Partition}:cloudformation:${Region}:${AccountId}:stack/${StackName}/*`): a
/// custom-resource Lambda asks it whether CloudFormation really is creating or updating
/// the resource an event names before acting on the event (lambdas/cfn-custom-resource,
/// `origin`). Scoped to the stack, so a forged event naming another stack's resource
/// that happens to be in progress is denied, not confirmed.
pub fn describe_own_stack_resources() -> Statement {
    let own_stack = Expr::arn(
        "cloudformation",
        Expr::concat(vec![
            Expr::lit("stack/"),
            Expr::Pseudo(Pseudo::StackName),
            Expr::lit("/*"),
        ]),
    );
    Statement::allow(&["cloudformation:DescribeStackResource"], vec![own_stack])
}
