//! Hand-written support for the generated modules (this file is not generated): the
//! types several services share (tags, IAM policy documents) and the serialisation
//! helpers every generated struct uses.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::cfn::Expr;

/// A `Key`/`Value` tag. The generator uses this type for every schema tag definition
/// that is exactly a pair of `Key` and `Value` strings, so one tag list fits every
/// resource type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tag {
    /// Tag key.
    #[serde(rename = "Key")]
    pub key: Expr,
    /// Tag value.
    #[serde(rename = "Value")]
    pub value: Expr,
}

impl Tag {
    /// A tag with a literal key and a value expression.
    pub fn new(key: &str, value: impl Into<Expr>) -> Tag {
        Tag {
            key: Expr::lit(key),
            value: value.into(),
        }
    }
}

/// A JSON number property (the schemas' `number`, as opposed to `integer`): rendered
/// exactly as given, so `10` stays `10` (a DNS TTL) and `4.0` stays `4.0` (Aurora
/// capacity units). Build one with `.into()` from an integer or an `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integral value, rendered without a fraction.
    Int(i64),
    /// A floating-point value, rendered as serde_json renders an `f64` (`4.0`, `0.5`).
    Float(f64),
}

macro_rules! number_from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Number {
            fn from(n: $t) -> Number {
                Number::Int(i64::from(n))
            }
        }
    )*};
}
number_from_integer!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Number {
    fn from(n: f64) -> Number {
        Number::Float(n)
    }
}

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Number::Int(n) => s.serialize_i64(n),
            Number::Float(n) => s.serialize_f64(n),
        }
    }
}

/// An IAM policy document (trust policies, inline policies, resource policies). The
/// schemas type these as free-form JSON; codegen/src/overrides.rs lists the properties
/// that use this type instead.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    /// The policy language version.
    pub version: &'static str,
    /// The statements.
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
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// `Allow` or `Deny`.
    pub effect: &'static str,
    /// Who the statement applies to (resource and trust policies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    /// The actions, e.g. `s3:GetObject`.
    pub action: Vec<String>,
    /// The resources (identity and resource policies; trust policies have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Vec<Expr>>,
    /// Condition block, as IAM writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
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

    /// A trust statement: `service` (e.g. `ecs-tasks.amazonaws.com`) may assume the role.
    pub fn assume_role(service: &str) -> Statement {
        Statement {
            effect: "Allow",
            principal: Some(Principal::Service(service.to_string())),
            action: vec!["sts:AssumeRole".to_string()],
            resource: None,
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
#[derive(Clone, Debug, PartialEq)]
pub enum Principal {
    /// An AWS service, e.g. `lambda.amazonaws.com`.
    Service(String),
    /// Everyone (`"*"`), for deny statements in resource policies.
    Any,
    /// An AWS account or IAM principal by ARN, e.g. the account
    /// (`arn:<partition>:iam::<account>:root`) in a KMS key policy.
    Aws(Expr),
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Principal::Any => s.serialize_str("*"),
            Principal::Service(name) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("Service", name)?;
                map.end()
            }
            Principal::Aws(arn) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("AWS", arn)?;
                map.end()
            }
        }
    }
}

/// A property value as the generated structs hold it, knowing when it is absent: `None`,
/// or an empty `Vec` or map. An absent property is left out of the template, so an
/// empty list is never rendered by accident (`"PortMappings": []`). The few lists where
/// an explicit `[]` removes a setting are `Option<Vec<T>>` instead, where only `None`
/// is absent (codegen/src/overrides.rs).
pub(crate) trait Property: Serialize {
    /// Whether the property is left out.
    fn is_absent(&self) -> bool;
}

impl<T: Serialize> Property for Option<T> {
    fn is_absent(&self) -> bool {
        self.is_none()
    }
}

impl<T: Serialize> Property for Vec<T> {
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
}

impl<V: Serialize> Property for BTreeMap<String, V> {
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
}

/// Writes one property into a struct's map unless it is absent.
pub(crate) fn prop<M: SerializeMap, P: Property>(
    map: &mut M,
    name: &'static str,
    value: &P,
) -> Result<(), M::Error> {
    if value.is_absent() {
        Ok(())
    } else {
        map.serialize_entry(name, value)
    }
}

/// `Debug` as the JSON the value renders to, which is what a reader of a failing test
/// wants to see.
pub(crate) fn debug_json<T: Serialize>(value: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match serde_json::to_string(value) {
        Ok(json) => f.write_str(&json),
        Err(e) => write!(f, "<not serialisable: {e}>"),
    }
}

/// Implements `Debug` through [`debug_json`] for generated structs. The impls are
/// `#[inline]`, so they are compiled only where used: hundreds of derived `Debug` impls
/// would be compiled into every build.
macro_rules! debug_as_json {
    ($($ty:ty),* $(,)?) => {$(
        impl ::std::fmt::Debug for $ty {
            #[inline]
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                $crate::cfn::l1::common::debug_json(self, f)
            }
        }
    )*};
}
pub(crate) use debug_as_json;

/// Implements `Debug` for generated enums as the value CloudFormation sees (`awsvpc`),
/// `#[inline]` for the same reason as [`debug_as_json`].
macro_rules! debug_as_str {
    ($($ty:ty),* $(,)?) => {$(
        impl ::std::fmt::Debug for $ty {
            #[inline]
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
pub(crate) use debug_as_str;
