//! The CDK-like core: a CloudFormation template as a typed value.
//!
//! Resources are typed structs (see [`l1`], generated from the resource provider
//! schemas, and [`custom`] for custom resources) whose fields serialise to the
//! CloudFormation property names. [`Template::add`] returns a typed [`Handle`]; `Ref`
//! and `Fn::GetAtt` are made from handles, and conditions from [`Template::condition`],
//! so a reference to a resource or condition that is not in the template cannot be
//! written by the constructs. [`Template::check`] verifies it again on the whole value,
//! together with required properties and CloudFormation's size limits.

pub mod custom;
mod expr;
pub mod l1;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde_json::Value;

pub use expr::{Condition, ConditionExpr, Expr, ListExpr, Pseudo};

/// CloudFormation's limit on the size of a template passed by S3 URL.
pub const MAX_TEMPLATE_BYTES: usize = 1_000_000;
/// CloudFormation's limit on the number of resources in one template.
pub const MAX_RESOURCES: usize = 500;
/// The largest template CloudFormation accepts inline as `TemplateBody`.
pub const MAX_INLINE_TEMPLATE_BYTES: usize = 51_200;

/// A logical id: non-empty, ASCII letters and digits only (CloudFormation's rule).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LogicalId(String);

impl LogicalId {
    /// Validates and wraps a logical id.
    pub fn new(id: impl Into<String>) -> Result<LogicalId, TemplateError> {
        let id = id.into();
        let valid =
            !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if valid {
            Ok(LogicalId(id))
        } else {
            Err(TemplateError::InvalidLogicalId(id))
        }
    }

    /// The id as written in the template.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogicalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Errors building or checking a template. They indicate a bug in a construct or a
/// stack too large for CloudFormation, never bad user input (the spec catches that).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    /// A logical id with characters CloudFormation rejects.
    #[error("invalid logical id {0:?}: only ASCII letters and digits are allowed")]
    InvalidLogicalId(String),
    /// Two resources, parameters or outputs with the same logical id.
    #[error("logical id {0} is used twice")]
    Duplicate(LogicalId),
    /// A `Ref`, `GetAtt` or `DependsOn` naming something not in the template.
    #[error("{from} refers to {to}, which is not in the template")]
    Dangling {
        /// The resource or output holding the reference.
        from: String,
        /// The missing logical id.
        to: LogicalId,
    },
    /// More resources than CloudFormation allows.
    #[error("the template has {0} resources; CloudFormation allows at most {MAX_RESOURCES}")]
    TooManyResources(usize),
    /// A condition that CloudFormation would reject: one that uses a resource (conditions
    /// are evaluated before anything is created), or an `Fn::And`/`Fn::Or` with fewer
    /// than 2 or more than 10 operands.
    #[error("condition {condition}: {reason}")]
    InvalidCondition {
        /// The condition's name.
        condition: LogicalId,
        /// What is wrong with it.
        reason: String,
    },
    /// A resource of a generated type without a property its schema requires.
    #[error("{resource} ({type_name}) has no {property}, which CloudFormation requires")]
    MissingProperty {
        /// The resource's logical id.
        resource: LogicalId,
        /// Its type.
        type_name: String,
        /// The missing property.
        property: &'static str,
    },
    /// A template larger than CloudFormation accepts even from S3.
    #[error(
        "the template is {0} bytes minified; CloudFormation accepts at most {MAX_TEMPLATE_BYTES}"
    )]
    TooLarge(usize),
}

/// A CloudFormation resource type: a struct whose serialised form is its `Properties`.
pub trait Resource: Serialize {
    /// The resource type name, e.g. `AWS::S3::Bucket`.
    fn type_name(&self) -> &str;
}

/// A reference to a resource of type `R` that is in the template.
///
/// Attribute accessors for `Fn::GetAtt` are implemented per resource type in [`l1`],
/// so only attributes the type has can be asked for.
#[derive(Debug)]
pub struct Handle<R> {
    id: LogicalId,
    _type: PhantomData<fn() -> R>,
}

impl<R> Clone for Handle<R> {
    fn clone(&self) -> Self {
        Handle {
            id: self.id.clone(),
            _type: PhantomData,
        }
    }
}

impl<R> Handle<R> {
    /// `Ref` to the resource.
    pub fn r#ref(&self) -> Expr {
        Expr::Ref(self.id.clone())
    }

    /// `Fn::GetAtt` of an attribute; used by the typed accessors in [`l1`] and [`custom`].
    pub(crate) fn get_att(&self, attribute: &'static str) -> Expr {
        Expr::GetAtt(self.id.clone(), attribute)
    }

    /// `Fn::GetAtt` of a list-valued attribute; used by the typed accessors in [`l1`].
    pub(crate) fn get_att_list(&self, attribute: &'static str) -> ListExpr {
        ListExpr::GetAtt(self.id.clone(), attribute)
    }

    /// The resource's logical id.
    pub fn id(&self) -> &LogicalId {
        &self.id
    }
}

/// What happens to a resource's physical object when it is deleted or replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Policy {
    /// Keep the object (S3 buckets, secrets that encrypted data depends on).
    Retain,
    /// Take a final snapshot (databases).
    Snapshot,
    /// Delete it (CloudFormation's default).
    Delete,
}

/// Resource attributes besides `Properties`.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    depends_on: BTreeSet<LogicalId>,
    deletion_policy: Option<Policy>,
    update_replace_policy: Option<Policy>,
    condition: Option<Condition>,
}

#[derive(Debug)]
struct Entry {
    type_name: String,
    properties: Value,
    attributes: Attributes,
}

/// A template parameter.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    /// Always `String` in this tool: asset keys and bucket names.
    #[serde(rename = "Type")]
    pub type_name: &'static str,
    /// Shown in the console and by `aws cloudformation describe-stacks`.
    pub description: String,
    /// A pattern the value must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    /// A default value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A template output.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    /// What the output is.
    pub description: String,
    /// Its value; never a secret (principle 4).
    pub value: Expr,
    /// The condition under which the output exists (needed when its value refers to a
    /// resource that exists only under that condition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

/// A CloudFormation template under construction. Maps are ordered, so the same calls
/// render the same bytes.
#[derive(Debug, Default)]
pub struct Template {
    description: String,
    parameters: BTreeMap<LogicalId, Parameter>,
    conditions: BTreeMap<LogicalId, ConditionExpr>,
    resources: BTreeMap<LogicalId, Entry>,
    outputs: BTreeMap<LogicalId, Output>,
}

impl Template {
    /// An empty template with a description.
    pub fn new(description: impl Into<String>) -> Template {
        Template {
            description: description.into(),
            ..Template::default()
        }
    }

    /// Adds a resource and returns its handle.
    ///
    /// Panics on an invalid or duplicate logical id: both are programming errors in a
    /// construct, caught by the snapshot and lint tests, never by user input.
    pub fn add<R: Resource>(&mut self, id: &str, resource: R) -> Handle<R> {
        self.add_with(id, resource, Attributes::default())
    }

    /// Adds a resource with attributes (`DependsOn`, policies) and returns its handle.
    pub fn add_with<R: Resource>(
        &mut self,
        id: &str,
        resource: R,
        attributes: Attributes,
    ) -> Handle<R> {
        let id = LogicalId::new(id).expect("constructs use valid logical ids");
        assert!(
            !self.resources.contains_key(&id),
            "logical id {id} used twice"
        );
        let properties = serde_json::to_value(&resource).expect("typed resources always serialise");
        let entry = Entry {
            type_name: resource.type_name().to_string(),
            properties,
            attributes,
        };
        self.resources.insert(id.clone(), entry);
        Handle {
            id,
            _type: PhantomData,
        }
    }

    /// Adds a `String` parameter and returns a `Ref` to it.
    pub fn parameter(&mut self, id: &str, parameter: Parameter) -> Expr {
        let id = LogicalId::new(id).expect("constructs use valid logical ids");
        self.parameters.insert(id.clone(), parameter);
        Expr::Ref(id)
    }

    /// Adds a condition to the `Conditions` section and returns its handle, which
    /// [`Attributes::with_condition`], [`Expr::if_else`] and other conditions take.
    ///
    /// Panics on an invalid logical id or a name used twice: programming errors in a
    /// construct, like those of [`Template::add`].
    pub fn condition(&mut self, id: &str, condition: ConditionExpr) -> Condition {
        let id = LogicalId::new(id).expect("constructs use valid logical ids");
        assert!(
            !self.conditions.contains_key(&id),
            "condition {id} defined twice"
        );
        self.conditions.insert(id.clone(), condition);
        Condition(id)
    }

    /// Adds an output.
    pub fn output(&mut self, id: &str, description: impl Into<String>, value: Expr) {
        self.insert_output(id, description.into(), value, None);
    }

    /// Adds an output that exists only when `condition` holds.
    pub fn output_if(
        &mut self,
        id: &str,
        description: impl Into<String>,
        value: Expr,
        condition: &Condition,
    ) {
        self.insert_output(id, description.into(), value, Some(condition.clone()));
    }

    fn insert_output(
        &mut self,
        id: &str,
        description: String,
        value: Expr,
        condition: Option<Condition>,
    ) {
        let id = LogicalId::new(id).expect("constructs use valid logical ids");
        self.outputs.insert(
            id,
            Output {
                description,
                value,
                condition,
            },
        );
    }

    /// Number of resources.
    pub fn resource_count(&self) -> usize {
        self.resources.len()
    }

    /// The template as a JSON value, in CloudFormation's layout.
    pub fn to_value(&self) -> Value {
        let mut root = serde_json::Map::new();
        root.insert("AWSTemplateFormatVersion".into(), "2010-09-09".into());
        root.insert("Description".into(), self.description.clone().into());
        if !self.parameters.is_empty() {
            root.insert("Parameters".into(), to_object(&self.parameters));
        }
        // After Parameters, before Resources: the section order of CloudFormation's
        // template anatomy.
        if !self.conditions.is_empty() {
            root.insert("Conditions".into(), to_object(&self.conditions));
        }
        let resources = self
            .resources
            .iter()
            .map(|(id, e)| (id.0.clone(), e.to_value()))
            .collect();
        root.insert("Resources".into(), Value::Object(resources));
        if !self.outputs.is_empty() {
            root.insert("Outputs".into(), to_object(&self.outputs));
        }
        Value::Object(root)
    }

    /// Checks references (to resources, parameters and conditions), conditions,
    /// required properties of generated types and CloudFormation's limits on the
    /// rendered value.
    pub fn check(&self) -> Result<(), TemplateError> {
        if self.resources.len() > MAX_RESOURCES {
            return Err(TemplateError::TooManyResources(self.resources.len()));
        }
        self.check_references()?;
        self.check_conditions()?;
        self.check_required()?;
        let size = serde_json::to_vec(&self.to_value())
            .expect("JSON values serialise")
            .len();
        if size > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooLarge(size));
        }
        Ok(())
    }

    fn check_references(&self) -> Result<(), TemplateError> {
        let known =
            |id: &LogicalId| self.resources.contains_key(id) || self.parameters.contains_key(id);
        let known_condition = |id: &LogicalId| self.conditions.contains_key(id);
        for (id, entry) in &self.resources {
            let mut refs = Vec::new();
            collect_references(&entry.properties, &mut refs);
            refs.extend(entry.attributes.depends_on.iter().cloned());
            let mut conditions = Vec::new();
            collect_if_conditions(&entry.properties, &mut conditions);
            conditions.extend(entry.attributes.condition.iter().map(|c| c.0.clone()));
            let dangling = refs.into_iter().find(|r| !known(r));
            let dangling =
                dangling.or_else(|| conditions.into_iter().find(|c| !known_condition(c)));
            if let Some(to) = dangling {
                return Err(TemplateError::Dangling {
                    from: id.to_string(),
                    to,
                });
            }
        }
        for (id, output) in &self.outputs {
            let mut refs = Vec::new();
            output.value.references(&mut refs);
            let value = serde_json::to_value(&output.value).expect("expressions serialise");
            let mut conditions = Vec::new();
            collect_if_conditions(&value, &mut conditions);
            conditions.extend(output.condition.iter().map(|c| c.0.clone()));
            let dangling = refs.into_iter().find(|r| !known(r));
            let dangling =
                dangling.or_else(|| conditions.into_iter().find(|c| !known_condition(c)));
            if let Some(to) = dangling {
                return Err(TemplateError::Dangling {
                    from: format!("output {id}"),
                    to,
                });
            }
        }
        Ok(())
    }

    /// Conditions may compare parameters and pseudo parameters only (no resource, no
    /// `Fn::GetAtt`, no `Fn::If`), name only conditions of this template, and give
    /// `Fn::And`/`Fn::Or` 2 to 10 operands.
    /// <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/conditions-section-structure.html>
    fn check_conditions(&self) -> Result<(), TemplateError> {
        for (id, condition) in &self.conditions {
            let invalid = |reason: String| TemplateError::InvalidCondition {
                condition: id.clone(),
                reason,
            };
            let (mut values, mut named) = (Vec::new(), Vec::new());
            condition.visit(&mut values, &mut named);
            if let Some(c) = named.iter().find(|c| !self.conditions.contains_key(&c.0)) {
                return Err(TemplateError::Dangling {
                    from: format!("condition {id}"),
                    to: c.0.clone(),
                });
            }
            for value in values {
                let json = serde_json::to_value(value).expect("expressions serialise");
                let mut ifs = Vec::new();
                collect_if_conditions(&json, &mut ifs);
                if !ifs.is_empty() || contains_key(&json, "Fn::GetAtt") {
                    return Err(invalid("only parameters and pseudo parameters can be compared, not Fn::If or Fn::GetAtt".into()));
                }
                let mut refs = Vec::new();
                value.references(&mut refs);
                if let Some(r) = refs.iter().find(|r| !self.parameters.contains_key(*r)) {
                    let what = if self.resources.contains_key(r) {
                        "a resource"
                    } else {
                        "not a parameter of the template"
                    };
                    return Err(invalid(format!("it refers to {r}, {what}")));
                }
            }
            let mut arities = Vec::new();
            condition.arities(&mut arities);
            if let Some(n) = arities.into_iter().find(|n| !(2..=10).contains(n)) {
                return Err(invalid(format!(
                    "Fn::And and Fn::Or take 2 to 10 conditions, not {n}"
                )));
            }
        }
        Ok(())
    }

    /// Every resource of a generated type has the properties its schema requires (the
    /// generated structs make every property an `Option`, so the compiler cannot).
    fn check_required(&self) -> Result<(), TemplateError> {
        for (id, entry) in &self.resources {
            let Some(required) = l1::required_properties(&entry.type_name) else {
                continue;
            };
            let properties = entry.properties.as_object();
            let missing = required
                .iter()
                .find(|p| !properties.is_some_and(|o| o.contains_key(**p)));
            if let Some(property) = missing {
                return Err(TemplateError::MissingProperty {
                    resource: id.clone(),
                    type_name: entry.type_name.clone(),
                    property,
                });
            }
        }
        Ok(())
    }
}

impl Attributes {
    /// Attributes with `DependsOn` set to these handles' ids.
    pub fn depends_on(ids: impl IntoIterator<Item = LogicalId>) -> Attributes {
        Attributes {
            depends_on: ids.into_iter().collect(),
            ..Attributes::default()
        }
    }

    /// Adds one more `DependsOn` entry.
    pub fn and_depends_on(mut self, id: &LogicalId) -> Attributes {
        self.depends_on.insert(id.clone());
        self
    }

    /// Sets both `DeletionPolicy` and `UpdateReplacePolicy`, so replacement keeps the
    /// data exactly as deletion does.
    pub fn keep_on_delete(mut self, policy: Policy) -> Attributes {
        self.deletion_policy = Some(policy);
        self.update_replace_policy = Some(policy);
        self
    }

    /// Creates the resource only when the condition holds.
    pub fn with_condition(mut self, condition: &Condition) -> Attributes {
        self.condition = Some(condition.clone());
        self
    }
}

impl Entry {
    fn to_value(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("Type".into(), self.type_name.clone().into());
        if let Some(c) = &self.attributes.condition {
            obj.insert("Condition".into(), c.id().as_str().into());
        }
        if !self.attributes.depends_on.is_empty() {
            let ids = self
                .attributes
                .depends_on
                .iter()
                .map(|i| Value::from(i.0.clone()))
                .collect();
            obj.insert("DependsOn".into(), Value::Array(ids));
        }
        if let Some(p) = self.attributes.deletion_policy {
            obj.insert(
                "DeletionPolicy".into(),
                serde_json::to_value(p).expect("enum"),
            );
        }
        if let Some(p) = self.attributes.update_replace_policy {
            obj.insert(
                "UpdateReplacePolicy".into(),
                serde_json::to_value(p).expect("enum"),
            );
        }
        if self.properties.as_object().is_some_and(|o| !o.is_empty()) {
            obj.insert("Properties".into(), sorted_keys(self.properties.clone()));
        }
        Value::Object(obj)
    }
}

/// `value` with the keys of every object in alphabetical order. Properties render in
/// one canonical order whatever struct or map they come from (generated types, custom
/// resources, policy documents), so a template is byte-identical however a construct
/// builds its resources; CloudFormation does not depend on key order.
fn sorted_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

fn to_object<V: Serialize>(map: &BTreeMap<LogicalId, V>) -> Value {
    let obj = map
        .iter()
        .map(|(id, v)| {
            (
                id.0.clone(),
                serde_json::to_value(v).expect("typed values serialise"),
            )
        })
        .collect();
    Value::Object(obj)
}

/// Finds `Ref` and `Fn::GetAtt` targets inside rendered properties. Pseudo parameters
/// (`AWS::…`) are not logical ids and are skipped.
fn collect_references(value: &Value, out: &mut Vec<LogicalId>) {
    match value {
        Value::Object(obj) => {
            if let (1, Some(Value::String(target))) = (obj.len(), obj.get("Ref")) {
                if !target.starts_with("AWS::") {
                    out.push(LogicalId(target.clone()));
                }
                return;
            }
            if let (1, Some(Value::Array(args))) = (obj.len(), obj.get("Fn::GetAtt")) {
                if let Some(Value::String(target)) = args.first() {
                    out.push(LogicalId(target.clone()));
                }
                return;
            }
            obj.values().for_each(|v| collect_references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// Finds the condition names of `Fn::If` inside rendered properties.
fn collect_if_conditions(value: &Value, out: &mut Vec<LogicalId>) {
    match value {
        Value::Object(obj) => {
            if let (1, Some(Value::Array(args))) = (obj.len(), obj.get("Fn::If")) {
                if let Some(Value::String(name)) = args.first() {
                    out.push(LogicalId(name.clone()));
                }
            }
            obj.values().for_each(|v| collect_if_conditions(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_if_conditions(v, out)),
        _ => {}
    }
}

/// Whether an object anywhere inside has `key`.
fn contains_key(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(obj) => obj.contains_key(key) || obj.values().any(|v| contains_key(v, key)),
        Value::Array(items) => items.iter().any(|v| contains_key(v, key)),
        _ => false,
    }
}

/// Output format of a rendered template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Pretty-printed JSON (the default; what CloudFormation and moto parse most safely).
    Json,
    /// YAML, with intrinsics in their long form (`Fn::GetAtt: [A, B]`).
    Yaml,
}

/// Renders a template value as text. The output ends with a newline.
pub fn render(value: &Value, format: Format) -> String {
    match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(value).expect("JSON values serialise");
            s.push('\n');
            s
        }
        Format::Yaml => yaml::to_yaml(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize)]
    struct Thing {
        #[serde(rename = "Other", skip_serializing_if = "Option::is_none")]
        other: Option<Expr>,
    }

    impl Resource for Thing {
        fn type_name(&self) -> &str {
            "Test::Thing"
        }
    }

    #[test]
    fn logical_ids_reject_punctuation() {
        assert!(LogicalId::new("Good1").is_ok());
        for bad in ["", "a-b", "a_b", "a.b", "ä"] {
            assert_eq!(
                LogicalId::new(bad),
                Err(TemplateError::InvalidLogicalId(bad.into()))
            );
        }
    }

    #[test]
    fn handles_render_references_and_attributes() {
        let mut t = Template::new("t");
        let a = t.add("A", Thing { other: None });
        t.add_with(
            "B",
            Thing {
                other: Some(a.r#ref()),
            },
            Attributes::depends_on([a.id().clone()]),
        );
        t.output("Out", "a", a.get_att("Arn"));
        t.check().unwrap();
        let v = t.to_value();
        assert_eq!(
            v["Resources"]["B"]["Properties"]["Other"],
            json!({"Ref": "A"})
        );
        assert_eq!(v["Resources"]["B"]["DependsOn"], json!(["A"]));
        assert_eq!(
            v["Outputs"]["Out"]["Value"],
            json!({"Fn::GetAtt": ["A", "Arn"]})
        );
        assert!(v["Resources"]["A"].get("Properties").is_none());
    }

    #[test]
    fn dangling_references_are_caught() {
        let mut t = Template::new("t");
        let mut other = Template::new("other");
        let foreign = other.add("Foreign", Thing { other: None });
        t.add(
            "B",
            Thing {
                other: Some(foreign.r#ref()),
            },
        );
        assert_eq!(
            t.check(),
            Err(TemplateError::Dangling {
                from: "B".into(),
                to: LogicalId("Foreign".into())
            })
        );
    }

    #[test]
    fn too_many_resources_is_an_error() {
        let mut t = Template::new("t");
        for i in 0..=MAX_RESOURCES {
            t.add(&format!("R{i}"), Thing { other: None });
        }
        assert_eq!(
            t.check(),
            Err(TemplateError::TooManyResources(MAX_RESOURCES + 1))
        );
    }

    #[test]
    fn oversized_template_is_an_error() {
        let mut t = Template::new("x".repeat(MAX_TEMPLATE_BYTES));
        t.add("A", Thing { other: None });
        assert!(matches!(t.check(), Err(TemplateError::TooLarge(n)) if n > MAX_TEMPLATE_BYTES));
    }

    fn shape_parameter(t: &mut Template) -> Expr {
        t.parameter(
            "Shape",
            Parameter {
                type_name: "String",
                description: "dev or prod".into(),
                allowed_pattern: None,
                default: None,
            },
        )
    }

    #[test]
    fn conditions_render_after_parameters_and_are_referenced_by_name() {
        let mut t = Template::new("t");
        let shape = shape_parameter(&mut t);
        let prod = t.condition("IsProd", ConditionExpr::equals(shape, "prod"));
        let dev = t.condition("IsDev", !ConditionExpr::holds(&prod));
        let a = t.add_with(
            "A",
            Thing {
                other: Some(Expr::if_else(
                    &dev,
                    "x".into(),
                    Expr::Pseudo(Pseudo::NoValue),
                )),
            },
            Attributes::default().with_condition(&prod),
        );
        t.output_if("Out", "a", a.r#ref(), &prod);
        t.check().unwrap();
        let v = t.to_value();
        assert_eq!(
            v["Conditions"],
            json!({
                "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]},
                "IsProd": {"Fn::Equals": [{"Ref": "Shape"}, "prod"]}
            })
        );
        assert_eq!(v["Resources"]["A"]["Condition"], json!("IsProd"));
        assert_eq!(
            v["Resources"]["A"]["Properties"]["Other"],
            json!({"Fn::If": ["IsDev", "x", {"Ref": "AWS::NoValue"}]})
        );
        assert_eq!(v["Outputs"]["Out"]["Condition"], json!("IsProd"));
        let sections: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            sections,
            [
                "AWSTemplateFormatVersion",
                "Description",
                "Parameters",
                "Conditions",
                "Resources",
                "Outputs"
            ]
        );
    }

    #[test]
    fn templates_without_conditions_render_as_before() {
        let mut t = Template::new("t");
        let a = t.add("A", Thing { other: None });
        t.output("Out", "a", a.r#ref());
        assert_eq!(
            serde_json::to_string(&t.to_value()).unwrap(),
            r#"{"AWSTemplateFormatVersion":"2010-09-09","Description":"t","Resources":{"A":{"Type":"Test::Thing"}},"Outputs":{"Out":{"Description":"a","Value":{"Ref":"A"}}}}"#
        );
    }

    #[test]
    fn conditions_of_another_template_are_dangling() {
        let mut other = Template::new("other");
        let foreign = other.condition("Foreign", ConditionExpr::equals("a", "b"));
        let dangling = |from: &str| {
            Err(TemplateError::Dangling {
                from: from.into(),
                to: LogicalId("Foreign".into()),
            })
        };

        let mut t = Template::new("t");
        t.add_with(
            "A",
            Thing { other: None },
            Attributes::default().with_condition(&foreign),
        );
        assert_eq!(t.check(), dangling("A"));

        let mut t = Template::new("t");
        let if_foreign = Expr::if_else(&foreign, "x".into(), "y".into());
        t.add(
            "B",
            Thing {
                other: Some(if_foreign.clone()),
            },
        );
        assert_eq!(t.check(), dangling("B"));

        let mut t = Template::new("t");
        t.output("Out", "o", if_foreign);
        assert_eq!(t.check(), dangling("output Out"));

        let mut t = Template::new("t");
        t.condition("Mine", ConditionExpr::holds(&foreign));
        assert_eq!(t.check(), dangling("condition Mine"));
    }

    #[test]
    fn conditions_compare_parameters_only_and_combine_two_to_ten() {
        let mut t = Template::new("t");
        let a = t.add("A", Thing { other: None });
        t.condition("UsesResource", ConditionExpr::equals(a.r#ref(), "x"));
        assert!(
            matches!(t.check(), Err(TemplateError::InvalidCondition { reason, .. }) if reason.contains("a resource"))
        );

        let mut t = Template::new("t");
        let a = t.add("A", Thing { other: None });
        t.condition(
            "UsesAttribute",
            ConditionExpr::equals(a.get_att("Arn"), "x"),
        );
        assert!(matches!(
            t.check(),
            Err(TemplateError::InvalidCondition { .. })
        ));

        let mut t = Template::new("t");
        let shape = shape_parameter(&mut t);
        let one = ConditionExpr::equals(shape, "prod");
        t.condition("Lonely", ConditionExpr::And(vec![one.clone()]));
        assert!(
            matches!(t.check(), Err(TemplateError::InvalidCondition { reason, .. }) if reason.contains("2 to 10"))
        );

        let mut t = Template::new("t");
        let shape = shape_parameter(&mut t);
        let one = ConditionExpr::equals(shape, "prod");
        t.condition("Pair", ConditionExpr::Or(vec![one.clone(), !one]));
        t.check().unwrap();
    }

    #[test]
    fn required_properties_of_generated_types_are_checked() {
        let mut t = Template::new("t");
        t.add("Role", l1::iam::Role::default());
        assert_eq!(
            t.check(),
            Err(TemplateError::MissingProperty {
                resource: LogicalId("Role".into()),
                type_name: "AWS::IAM::Role".into(),
                property: "AssumeRolePolicyDocument",
            })
        );
        let mut t = Template::new("t");
        t.add(
            "Role",
            l1::iam::Role {
                assume_role_policy_document: Some(l1::PolicyDocument::new(vec![
                    l1::Statement::assume_role("lambda.amazonaws.com"),
                ])),
                ..Default::default()
            },
        );
        t.check().unwrap();
    }
}
