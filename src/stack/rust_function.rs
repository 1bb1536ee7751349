//! One construct for every Rust Lambda of the stack: its log group, a least-privilege
//! role (the caller's statements, writing its own logs and, for a function in the VPC,
//! its network interfaces) and the function on `provided.al2023`, with code from the
//! content-addressed asset the CLI uploads, pinned to the object version it verified.
//!
//! No role gets an AWS managed policy: `AWSLambdaBasicExecutionRole` and
//! `AWSLambdaVPCAccessExecutionRole` grant `logs:CreateLogGroup`, `logs:CreateLogStream`
//! and `logs:PutLogEvents` on `*` (every log group of the account). Each function logs
//! to its own log group, created here and named in its `LoggingConfig`, and may write to
//! that group only.

use std::collections::BTreeMap;

use super::assets::AssetCode;
use super::scope::Scope;
use super::service_role::{self, ServiceRole};
use crate::cfn::l1::lambda::function::{
    ArchitecturesItem, Code, Environment, LogFormat, LoggingConfig, Runtime, VpcConfig,
};
use crate::cfn::l1::lambda::Function;
use crate::cfn::l1::logs::LogGroup;
use crate::cfn::l1::Statement;
use crate::cfn::{Expr, Handle};

/// What differs between the stack's Lambdas.
pub struct RustFunctionSpec {
    /// Logical id prefix: `<id>Function`, `<id>FunctionRole`, `<id>FunctionLogGroup`.
    pub id: String,
    /// Last part of its log group's name, `/airflow-stack/<stack>/<log_name>`.
    pub log_name: String,
    /// A fixed function name, for a function that must know its own ARN before it
    /// exists (one that re-invokes itself) or that people look for by name.
    pub function_name: Option<String>,
    /// What the function does, shown in the console.
    pub description: String,
    /// What its role is for.
    pub role_description: &'static str,
    /// Name of the role's inline policy.
    pub policy_name: &'static str,
    /// The permissions it needs besides writing its own logs (and, with `vpc_config`,
    /// managing its network interfaces, which this construct adds).
    pub statements: Vec<Statement>,
    /// The asset parameters holding the S3 key of its zip and the version deploy
    /// verified; the function's code is pinned to that version.
    pub code_key: AssetCode,
    /// Seconds per invocation.
    pub timeout: u32,
    /// Environment variables (never secret values); empty for none.
    pub environment: BTreeMap<String, Expr>,
    /// Subnets and security groups, for a function that calls into the VPC.
    pub vpc_config: Option<VpcConfig>,
    /// Concurrent executions reserved for the function, which are also its maximum;
    /// `None` shares the account's unreserved pool without a limit of its own.
    pub reserved_concurrency: Option<u32>,
    /// Let the function keep invoking itself: Lambda stops a request chain at its 17th
    /// invocation of the same function unless `RecursiveLoop` is `Allow` (Lambda
    /// developer guide, "Use Lambda recursive loop detection to prevent infinite
    /// loops"). A stream manager hands over to itself around the clock.
    pub allow_recursion: bool,
}

/// Memory of every function: they are small Rust binaries; 256 MB keeps a cold start
/// fast without paying for memory they do not use.
const MEMORY_MB: i64 = 256;

/// The architecture every function declares:
/// [`LAMBDA_ARCHITECTURE`](super::assets::LAMBDA_ARCHITECTURE), the one `deploy` builds
/// the zips for (it reads each function's `Architectures` from the template) and the
/// emulator runs them on (under qemu-user on an x86_64 host).
fn declared_architecture() -> ArchitecturesItem {
    architecture(super::assets::LAMBDA_ARCHITECTURE)
}

/// Lambda's name for an instruction set (`arm64`, `x86_64`) as the template's value.
///
/// Panics on a name Lambda does not have: the names are constants of this crate, so
/// that is a programming error, caught by the tests below.
fn architecture(name: &str) -> ArchitecturesItem {
    [ArchitecturesItem::X86_64, ArchitecturesItem::Arm64]
        .into_iter()
        .find(|a| a.as_str() == name)
        .unwrap_or_else(|| panic!("Lambda has no architecture {name:?}"))
}

/// Adds the log group, the role and the function; returns the function.
pub fn add(s: &mut Scope, f: RustFunctionSpec) -> Handle<Function> {
    let log_group = s.t.add(
        &format!("{}FunctionLogGroup", f.id),
        LogGroup {
            log_group_name: Some(s.log_group_name(&f.log_name)),
            retention_in_days: Some(s.spec.logs.retention_days.into()),
            kms_key_id: s.kms_key_arn(),
            tags: s.tags.all(),
            ..LogGroup::default()
        },
    );
    let mut statements = f.statements;
    // `Fn::GetAtt Arn` of a log group is `arn:...:log-group:<name>:*`, which covers its
    // log streams (the resource of both actions).
    statements.push(Statement::allow(
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        vec![log_group.arn()],
    ));
    if f.vpc_config.is_some() {
        statements.extend(network_interface_statements());
    }
    // With a customer-managed key: the key use its secret reads and writes imply.
    statements.extend(s.key_use(&statements));
    let role = service_role::role(
        ServiceRole {
            service: "lambda.amazonaws.com",
            description: f.role_description.into(),
            policy_name: f.policy_name,
            statements,
        },
        s.tags.all(),
    );
    let role = s.t.add(&format!("{}FunctionRole", f.id), role);
    let function = Function {
        function_name: f.function_name.map(Expr::lit),
        description: Some(f.description.clone().into()),
        runtime: Some(Runtime::ProvidedAl2023),
        handler: Some("bootstrap".into()),
        architectures: vec![declared_architecture()],
        code: Some(Code {
            s3_bucket: Some(s.assets.bucket.clone()),
            s3_key: Some(f.code_key.key),
            // The object deploy checked, not whatever the key holds when CloudFormation
            // reads it (see stack/assets.rs).
            s3_object_version: Some(f.code_key.version),
            ..Code::default()
        }),
        role: Some(role.arn()),
        timeout: Some(f.timeout.into()),
        memory_size: Some(MEMORY_MB),
        logging_config: Some(LoggingConfig {
            log_group: Some(log_group.r#ref()),
            log_format: Some(LogFormat::Json),
            ..LoggingConfig::default()
        }),
        environment: (!f.environment.is_empty()).then_some(Environment {
            variables: f.environment,
        }),
        vpc_config: f.vpc_config,
        reserved_concurrent_executions: f.reserved_concurrency.map(i64::from),
        recursive_loop: f
            .allow_recursion
            .then_some(crate::cfn::l1::lambda::function::RecursiveLoop::Allow),
        tags: s.tags.all(),
        ..Function::default()
    };
    s.t.add(&format!("{}Function", f.id), function)
}

/// What Lambda does with the function's role for a function in a VPC: create, describe
/// and delete its Hyperplane network interfaces and their private addresses. The
/// actions are those of the Lambda developer guide's "Required IAM permissions" for VPC
/// access (the EC2 half of `AWSLambdaVPCAccessExecutionRole`, policy version v3);
/// they are needed only while Lambda creates or reclaims the interfaces, not to invoke
/// the function.
///
/// Scope, as the guide allows it: `ec2:DescribeNetworkInterfaces` only works when
/// allowed on `"*"`, and `ec2:DescribeSubnets` (a Describe action) has no resource-level
/// permissions either. `ec2:DeleteNetworkInterface` needs either the interface's own id,
/// unknown until Lambda creates it, or every resource id of the account; the guide's
/// example is `arn:aws:ec2:<region>:<account>:*/*`, which the other three actions get
/// too. Narrowing them further (to the function's subnets or security group) is not
/// documented to keep Lambda working, so it is not done.
fn network_interface_statements() -> Vec<Statement> {
    vec![
        Statement::allow(
            &["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
            vec![Expr::lit("*")],
        ),
        Statement::allow(
            &[
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            vec![Expr::arn("ec2", Expr::lit("*/*"))],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::LAMBDA_ARCHITECTURE;

    #[test]
    fn every_architecture_name_of_the_crate_is_one_lambda_has() {
        assert_eq!(
            architecture(LAMBDA_ARCHITECTURE).as_str(),
            LAMBDA_ARCHITECTURE
        );
        assert_eq!(architecture("x86_64"), ArchitecturesItem::X86_64);
        assert_eq!(architecture("arm64"), ArchitecturesItem::Arm64);
    }

    #[test]
    #[should_panic(expected = "Lambda has no architecture")]
    fn an_unknown_architecture_is_a_bug() {
        architecture("aarch64");
    }
}
