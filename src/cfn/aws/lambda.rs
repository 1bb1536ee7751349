//! Lambda functions whose code is an asset in S3.

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::{resource, Tag};
use crate::cfn::{Expr, Handle};

/// `AWS::Lambda::Function`
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Function {
    pub function_name: Option<Expr>,
    pub description: String,
    pub runtime: &'static str,
    pub handler: &'static str,
    pub architectures: Vec<&'static str>,
    pub code: Code,
    pub role: Expr,
    pub timeout: u32,
    pub memory_size: u32,
    pub logging_config: Option<LoggingConfig>,
    pub environment: Option<Environment>,
    pub vpc_config: Option<VpcConfig>,
    pub tags: Vec<Tag>,
}
resource!(Function, "AWS::Lambda::Function");

impl Handle<Function> {
    /// `Fn::GetAtt Arn`
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// Function code from S3, keyed by content hash.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Code {
    pub s3_bucket: Expr,
    pub s3_key: Expr,
}

/// Where the function logs and in what format.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingConfig {
    pub log_group: Expr,
    pub log_format: &'static str,
}

/// Environment variables of a function (never secrets).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Environment {
    pub variables: std::collections::BTreeMap<String, Expr>,
}

/// Subnets and security groups of a function in a VPC.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcConfig {
    pub subnet_ids: Vec<Expr>,
    pub security_group_ids: Vec<Expr>,
}

/// `AWS::Lambda::Permission`: lets a service principal invoke a function.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Permission {
    pub action: &'static str,
    pub function_name: Expr,
    pub principal: &'static str,
    pub source_arn: Expr,
}
resource!(Permission, "AWS::Lambda::Permission");
