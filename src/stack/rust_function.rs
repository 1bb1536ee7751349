//! One construct for every Rust Lambda of the stack: its log group, a least-privilege
//! role (the caller's statements plus writing its own logs) and the function on
//! `provided.al2023`, with code from the content-addressed asset the CLI uploads.

use std::collections::BTreeMap;

use super::scope::Scope;
use crate::cfn::aws::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::cfn::aws::lambda::{Code, Environment, Function, LoggingConfig, VpcConfig};
use crate::cfn::aws::logs::LogGroup;
use crate::cfn::{Expr, Handle};

/// What differs between the stack's Lambdas.
pub struct RustFunctionSpec {
    /// Logical id prefix: `<id>Function`, `<id>FunctionRole`, `<id>FunctionLogGroup`.
    pub id: &'static str,
    /// Last part of its log group's name, `/airflow-stack/<stack>/<log_name>`.
    pub log_name: &'static str,
    /// A fixed function name, for a function that must know its own ARN before it
    /// exists (one that re-invokes itself) or that people look for by name.
    pub function_name: Option<String>,
    /// What the function does, shown in the console.
    pub description: &'static str,
    /// What its role is for.
    pub role_description: &'static str,
    /// Name of the role's inline policy.
    pub policy_name: &'static str,
    /// The permissions it needs besides writing its own logs.
    pub statements: Vec<Statement>,
    /// AWS managed policies, only where no resource can be named in advance.
    pub managed_policies: Option<Vec<Expr>>,
    /// The asset parameter holding the S3 key of its zip.
    pub code_key: Expr,
    /// Seconds per invocation.
    pub timeout: u32,
    /// Environment variables (never secret values).
    pub environment: Option<BTreeMap<String, Expr>>,
    /// Subnets and security groups, for a function that calls into the VPC.
    pub vpc_config: Option<VpcConfig>,
}

/// Memory of every function: they are small Rust binaries; 256 MB keeps a cold start
/// fast without paying for memory they do not use.
const MEMORY_MB: u32 = 256;

/// Adds the log group, the role and the function; returns the function.
pub fn add(s: &mut Scope, f: RustFunctionSpec) -> Handle<Function> {
    let log_group = s.t.add(
        &format!("{}FunctionLogGroup", f.id),
        LogGroup {
            log_group_name: s.log_group_name(f.log_name),
            retention_in_days: s.spec.logs.retention_days,
            tags: s.tags.all(),
        },
    );
    let mut statements = f.statements;
    statements.push(Statement::allow(
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        vec![log_group.arn()],
    ));
    let mut role = Role::for_service(
        "lambda.amazonaws.com",
        f.role_description.into(),
        vec![InlinePolicy {
            policy_name: f.policy_name.into(),
            policy_document: PolicyDocument::new(statements),
        }],
        s.tags.all(),
    );
    role.managed_policy_arns = f.managed_policies;
    let role = s.t.add(&format!("{}FunctionRole", f.id), role);
    let function = Function {
        function_name: f.function_name.map(Expr::lit),
        description: f.description.into(),
        runtime: "provided.al2023",
        handler: "bootstrap",
        architectures: vec!["x86_64"],
        code: Code {
            s3_bucket: s.assets.bucket.clone(),
            s3_key: f.code_key,
        },
        role: role.arn(),
        timeout: f.timeout,
        memory_size: MEMORY_MB,
        logging_config: Some(LoggingConfig {
            log_group: log_group.r#ref(),
            log_format: "JSON",
        }),
        environment: f.environment.map(|variables| Environment { variables }),
        vpc_config: f.vpc_config,
        tags: s.tags.all(),
    };
    s.t.add(&format!("{}Function", f.id), function)
}
