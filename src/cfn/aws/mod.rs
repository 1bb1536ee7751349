//! Typed CloudFormation resources, one module per AWS service (the L1 layer).
//!
//! Field names serialise to the CloudFormation property names; optional properties are
//! `Option` and are left out when `None`. Only the properties this tool sets are typed:
//! adding one is adding a field. Attribute accessors on [`Handle`](super::Handle) give
//! `Fn::GetAtt` only for attributes the type has.

pub mod custom;
pub mod dynamodb;
pub mod ec2;
pub mod ecs;
pub mod elasticache;
pub mod events;
pub mod iam;
pub mod lambda;
pub mod logs;
pub mod rds;
pub mod s3;
pub mod scheduler;
pub mod secretsmanager;
pub mod servicediscovery;
pub mod sns;

/// Implements [`Resource`](super::Resource) for a struct with a fixed type name.
macro_rules! resource {
    ($ty:ty, $name:literal) => {
        impl $crate::cfn::Resource for $ty {
            fn type_name(&self) -> &str {
                $name
            }
        }
    };
}
pub(crate) use resource;

/// A `Key`/`Value` tag.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: super::Expr,
}

impl Tag {
    /// A tag with a literal key and a value expression.
    pub fn new(key: &str, value: impl Into<super::Expr>) -> Tag {
        Tag {
            key: key.to_string(),
            value: value.into(),
        }
    }
}
