//! One construct for every Rust Lambda of the stack: its log group, a least-privilege
//! role (the caller's statements plus writing its own logs) and the function on
//! `provided.al2023`, with code from the content-addressed asset the CLI uploads.

use std::collections::BTreeMap;

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
    pub managed_policies: Vec<Expr>,
    /// The asset parameter holding the S3 key of its zip.
    pub code_key: Expr,
    /// Seconds per invocation.
    pub timeout: u32,
    /// Environment variables (never secret values); empty for none.
    pub environment: BTreeMap<String, Expr>,
    /// Subnets and security groups, for a function that calls into the VPC.
    pub vpc_config: Option<VpcConfig>,
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
            log_group_name: Some(s.log_group_name(f.log_name)),
            retention_in_days: Some(s.spec.logs.retention_days.into()),
            tags: s.tags.all(),
            ..LogGroup::default()
        },
    );
    let mut statements = f.statements;
    statements.push(Statement::allow(
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        vec![log_group.arn()],
    ));
    let mut role = service_role::role(
        ServiceRole {
            service: "lambda.amazonaws.com",
            description: f.role_description.into(),
            policy_name: f.policy_name,
            statements,
        },
        s.tags.all(),
    );
    role.managed_policy_arns = f.managed_policies;
    let role = s.t.add(&format!("{}FunctionRole", f.id), role);
    let function = Function {
        function_name: f.function_name.map(Expr::lit),
        description: Some(f.description.into()),
        runtime: Some(Runtime::ProvidedAl2023),
        handler: Some("bootstrap".into()),
        architectures: vec![declared_architecture()],
        code: Some(Code {
            s3_bucket: Some(s.assets.bucket.clone()),
            s3_key: Some(f.code_key),
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
        tags: s.tags.all(),
        ..Function::default()
    };
    s.t.add(&format!("{}Function", f.id), function)
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
