//! Custom resources (`Custom::*`) backed by a Lambda function. They have no resource
//! provider schema, so they are typed here by hand rather than generated in [`l1`](super::l1):
//! the handler's properties come from the contract crate.

use std::collections::BTreeMap;

use airflow_stack_contract::wire::{PropertyMap, PropertyValue};
use serde::{Serialize, Serializer};

use crate::cfn::{Expr, Handle, Resource};

/// A property value of a custom resource: CloudFormation passes every scalar as a string,
/// so the only shapes are a string expression and a list of them.
#[derive(Clone, Debug)]
pub enum Property {
    /// A string (or an intrinsic that resolves to one).
    Str(Expr),
    /// A list of strings.
    List(Vec<Expr>),
}

impl Serialize for Property {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Property::Str(e) => e.serialize(s),
            Property::List(l) => l.serialize(s),
        }
    }
}

/// A custom resource. `type_name` must be `Custom::` plus at most 60 characters of
/// `[A-Za-z0-9_@-]`.
#[derive(Clone, Debug, Serialize)]
pub struct CustomResource {
    /// The resource type, e.g. `Custom::AirflowSecrets`.
    #[serde(skip)]
    pub type_name: String,
    /// The Lambda function ARN that handles the resource.
    #[serde(rename = "ServiceToken")]
    pub service_token: Expr,
    /// Seconds CloudFormation waits for a response (1-3600); emitted as a string, as CDK does.
    #[serde(rename = "ServiceTimeout")]
    pub service_timeout: String,
    /// The handler's own properties, in key order.
    #[serde(flatten)]
    pub properties: BTreeMap<String, Property>,
}

impl CustomResource {
    /// A custom resource of `type_name` served by `service_token`, answering within
    /// `timeout_seconds`.
    pub fn new(type_name: &str, service_token: Expr, timeout_seconds: u32) -> CustomResource {
        assert!(
            (1..=3600).contains(&timeout_seconds),
            "ServiceTimeout is 1-3600 s"
        );
        CustomResource {
            type_name: type_name.to_string(),
            service_token,
            service_timeout: timeout_seconds.to_string(),
            properties: BTreeMap::new(),
        }
    }

    /// Sets the handler's properties from the contract's typed value
    /// (`airflow_stack_contract`), so the property names are spelled in one place for
    /// the CLI and the Lambda.
    pub fn with_properties(mut self, properties: PropertyMap<Expr>) -> CustomResource {
        self.properties = properties
            .into_iter()
            .map(|(key, value)| {
                let value = match value {
                    PropertyValue::One(v) => Property::Str(v),
                    PropertyValue::List(l) => Property::List(l),
                };
                (key.to_string(), value)
            })
            .collect();
        self
    }
}

impl Resource for CustomResource {
    fn type_name(&self) -> &str {
        &self.type_name
    }
}

impl Handle<CustomResource> {
    /// A key of the response `Data` (`Fn::GetAtt`). Custom attribute names are not
    /// known statically, so the caller names them.
    pub fn data(&self, key: &'static str) -> Expr {
        self.get_att(key)
    }
}
