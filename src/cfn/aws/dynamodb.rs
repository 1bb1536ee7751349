//! DynamoDB tables.

use serde::Serialize;

use super::{resource, Tag};
use crate::cfn::{Expr, Handle};

/// `AWS::DynamoDB::Table`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Table {
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub key_schema: Vec<KeySchemaElement>,
    /// `PAY_PER_REQUEST` (on-demand) or `PROVISIONED`.
    pub billing_mode: &'static str,
    pub tags: Vec<Tag>,
}
resource!(Table, "AWS::DynamoDB::Table");

impl Handle<Table> {
    /// `Fn::GetAtt Arn`
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// A key attribute's name and type (`S`, `N`, `B`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    pub attribute_name: &'static str,
    pub attribute_type: &'static str,
}

/// One key of the table (`HASH` or `RANGE`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeySchemaElement {
    pub attribute_name: &'static str,
    pub key_type: &'static str,
}

impl Table {
    /// An on-demand table with one string partition key.
    pub fn on_demand(partition_key: &'static str, tags: Vec<Tag>) -> Table {
        Table {
            attribute_definitions: vec![AttributeDefinition {
                attribute_name: partition_key,
                attribute_type: "S",
            }],
            key_schema: vec![KeySchemaElement {
                attribute_name: partition_key,
                key_type: "HASH",
            }],
            billing_mode: "PAY_PER_REQUEST",
            tags,
        }
    }
}
