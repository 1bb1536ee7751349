//! From a resource provider schema to the Rust items the emitter writes: the resource
//! struct, its property types (structs and enums), its `Fn::GetAtt` attributes and its
//! replacement data.
//!
//! Schema format: <https://github.com/aws-cloudformation/cloudformation-cli/blob/master/src/rpdk/core/data/schema/provider.definition.schema.v1.json>.
//! Only the definitions reachable from a writable property are generated.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::names::{pascal, snake, variant};
use crate::overrides::Overrides;

/// The Rust type of a property value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ty {
    /// A string, or an intrinsic function that yields one (`crate::cfn::Expr`).
    Expr,
    /// `i64`.
    Int,
    /// A JSON number (`crate::cfn::l1::Number`), integral or not, rendered as given.
    Float,
    /// `bool`.
    Bool,
    /// Free-form JSON (`serde_json::Value`): objects without declared properties.
    Json,
    /// A struct or enum of the resource's property-type module.
    Named(String),
    /// A hand-written type of `crate::cfn::l1` (`Tag`, `PolicyDocument`).
    Shared(&'static str),
    /// `Vec<T>`; an empty list is left out of the template.
    List(Box<Ty>),
    /// `BTreeMap<String, T>`; an empty map is left out of the template.
    Map(Box<Ty>),
    /// `Option<Vec<T>>` for the few lists where an explicit `[]` means something
    /// (removing a setting); `Some(vec![])` is rendered.
    ListKeepEmpty(Box<Ty>),
}

/// A property of a resource or of a property type.
#[derive(Clone, Debug)]
pub struct Field {
    /// The CloudFormation property name.
    pub cfn_name: String,
    /// The Rust field name.
    pub rust_name: String,
    /// The value type (the field is `Option<ty>`, or `ty` itself for lists and maps).
    pub ty: Ty,
    /// Doc paragraphs.
    pub doc: Vec<String>,
}

/// One value of an enumerated string property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// The value as CloudFormation spells it.
    pub value: String,
    /// The Rust variant name.
    pub rust_name: String,
}

/// What a property type is.
#[derive(Clone, Debug)]
pub enum ItemKind {
    /// An object with named properties.
    Struct(Vec<Field>),
    /// An enumerated string.
    Enum(Vec<Variant>),
}

/// A property type: a struct or an enum in the resource's module.
#[derive(Clone, Debug)]
pub struct Item {
    /// The Rust type name.
    pub rust_name: String,
    /// Doc text.
    pub doc: String,
    /// Struct or enum.
    pub kind: ItemKind,
}

/// A typed `Fn::GetAtt` accessor.
#[derive(Clone, Debug)]
pub struct Attribute {
    /// The attribute as `Fn::GetAtt` names it (`Endpoint.Address`).
    pub name: String,
    /// The accessor method (`endpoint_address`).
    pub method: String,
    /// Whether the attribute is a list (the accessor returns a `ListExpr`).
    pub list: bool,
    /// Doc text.
    pub doc: String,
}

/// A resource type and everything generated for it.
#[derive(Clone, Debug)]
pub struct Resource {
    /// `AWS::ECS::TaskDefinition`.
    pub type_name: String,
    /// `ECS`.
    pub service: String,
    /// The resource struct (`TaskDefinition`).
    pub rust_name: String,
    /// The module of its property types (`task_definition`).
    pub module: String,
    /// Doc text.
    pub doc: String,
    /// Reference page in the CloudFormation template reference.
    pub url: String,
    /// Writable properties, by CloudFormation name.
    pub fields: Vec<Field>,
    /// Property types, by Rust name.
    pub items: Vec<Item>,
    /// `Fn::GetAtt` accessors, by attribute name.
    pub attributes: Vec<Attribute>,
    /// `createOnlyProperties`, sorted.
    pub create_only: Vec<String>,
    /// `conditionalCreateOnlyProperties`, sorted.
    pub conditional_create_only: Vec<String>,
    /// `required` (top-level property names), sorted.
    pub required: Vec<String>,
}

/// Methods `Handle<R>` already has; an attribute accessor with one of these names gets
/// a `get_att_` prefix.
const HANDLE_METHODS: &[&str] = &["id", "r#ref", "get_att", "get_att_list", "clone", "fmt"];

/// The first paragraph of a schema description, on one line, with the characters
/// rustdoc would misread escaped.
pub fn doc_text(description: &str) -> String {
    let first = description.trim().split('\n').next().unwrap_or("");
    let text = first.split_whitespace().collect::<Vec<_>>().join(" ");
    markdown_safe(&text)
}

/// Escapes `[`/`]` that are not a Markdown link (rustdoc would read them as intra-doc
/// links) and `<`/`>` outside code spans (HTML tags to rustdoc).
fn markdown_safe(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' {
            in_code = !in_code;
            out.push(c);
        } else if in_code {
            out.push(c);
        } else if c == '[' {
            // Keep `[text](url)` as a link.
            let close = chars[i..].iter().position(|&x| x == ']').map(|p| p + i);
            match close {
                Some(j)
                    if chars.get(j + 1) == Some(&'(')
                        && chars[i + 1..j].iter().all(|&x| x != '[') =>
                {
                    let end = chars[j..].iter().position(|&x| x == ')').map(|p| p + j);
                    let end = end.unwrap_or(chars.len() - 1);
                    out.extend(&chars[i..=end]);
                    i = end;
                }
                _ => out.push_str("\\["),
            }
        } else if c == ']' {
            out.push_str("\\]");
        } else if c == '<' || c == '>' {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// Naming context of an inline property type: its own name and the name of the struct
/// that holds it (used as a prefix when the plain name is taken).
#[derive(Clone)]
struct Hint {
    name: String,
    owner: String,
}

impl Hint {
    fn item(&self) -> Hint {
        Hint {
            name: format!("{}Item", self.name),
            owner: self.owner.clone(),
        }
    }
}

struct Builder<'a> {
    type_name: &'a str,
    definitions: Map<String, Value>,
    overrides: &'a Overrides,
    items: BTreeMap<String, Item>,
    /// Definitions already resolved, by definition name.
    resolved: BTreeMap<String, Ty>,
    /// Definitions being resolved (a cycle would need `Box`; none exists today).
    active: BTreeSet<String>,
    /// Rust names of definitions that become items, reserved before inline types are
    /// named so an inline type never takes a definition's name.
    reserved: BTreeSet<String>,
}

/// Builds the model of one resource type from its schema.
pub fn resource(
    schema: &Value,
    extra_attributes: &[String],
    overrides: &Overrides,
) -> Result<Resource, String> {
    let type_name = schema["typeName"]
        .as_str()
        .ok_or("schema without typeName")?
        .to_string();
    let parts: Vec<&str> = type_name.split("::").collect();
    let [_, service, name] = parts[..] else {
        return Err(format!("unexpected type name {type_name}"));
    };
    let properties = schema["properties"]
        .as_object()
        .ok_or_else(|| format!("{type_name}: no properties"))?;
    let pointers = |key: &str| -> Vec<String> {
        let mut list: Vec<String> = schema[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        list.sort();
        list.dedup();
        list
    };
    let read_only = pointers("readOnlyProperties");
    let create_only = pointers("createOnlyProperties");
    let conditional_create_only = pointers("conditionalCreateOnlyProperties");
    let mut required = pointers("required");
    required.retain(|p| !read_only.contains(&format!("/properties/{p}")));
    let deprecated = pointers("deprecatedProperties");

    let rust_name = pascal(name);
    let mut builder = Builder {
        type_name: &type_name,
        definitions: schema["definitions"]
            .as_object()
            .cloned()
            .unwrap_or_default(),
        overrides,
        items: BTreeMap::new(),
        resolved: BTreeMap::new(),
        active: BTreeSet::new(),
        reserved: BTreeSet::new(),
    };
    builder.reserve_definition_names()?;

    let mut fields = Vec::new();
    for (prop, node) in sorted(properties) {
        let pointer = format!("/properties/{prop}");
        if read_only.contains(&pointer) {
            continue;
        }
        let mut field = builder.field(prop, node, &rust_name, &pointer, &required)?;
        if create_only.contains(&pointer) {
            field
                .doc
                .push("Changing it replaces the resource (create-only).".into());
        } else if conditional_create_only.contains(&pointer) {
            field
                .doc
                .push("Changing it may replace the resource (conditionally create-only).".into());
        }
        if deprecated.contains(&pointer) {
            field
                .doc
                .push("Deprecated by the resource provider.".into());
        }
        fields.push(field);
    }
    check_unique(&fields, &type_name)?;

    let mut attributes = Vec::new();
    let extras = extra_attributes
        .iter()
        .map(|a| format!("/properties/{}", a.replace('.', "/")));
    for pointer in read_only.iter().cloned().chain(extras) {
        if let Some(attribute) = builder.attribute(properties, &pointer)? {
            attributes.push(attribute);
        }
    }
    attributes.sort_by(|a, b| a.name.cmp(&b.name));
    attributes.dedup_by(|a, b| a.name == b.name);
    let mut methods = BTreeSet::new();
    for a in &attributes {
        if !methods.insert(a.method.clone()) {
            return Err(format!("{type_name}: two attributes map to {}", a.method));
        }
    }

    let doc = schema["description"]
        .as_str()
        .map(doc_text)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("`{type_name}`."));
    Ok(Resource {
        url: format!(
            "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-{}-{}.html",
            service.to_ascii_lowercase(),
            name.to_ascii_lowercase()
        ),
        service: service.to_string(),
        module: snake(name),
        rust_name,
        doc,
        fields,
        items: builder.items.into_values().collect(),
        attributes,
        create_only,
        conditional_create_only,
        required,
        type_name,
    })
}

fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn check_unique(fields: &[Field], owner: &str) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for f in fields {
        if !seen.insert(&f.rust_name) {
            return Err(format!(
                "{owner}: two properties map to field {}",
                f.rust_name
            ));
        }
    }
    Ok(())
}

/// The `type` keyword as a list (`"string"` or `["object", "string"]`).
fn types(node: &Value) -> Vec<&str> {
    match &node["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// The string values of `enum` or `const`, if the node is an enumerated string.
fn string_values(node: &Value) -> Option<Vec<String>> {
    let values: Vec<Value> = match (&node["enum"], &node["const"]) {
        (Value::Array(v), _) => v.clone(),
        (_, Value::String(s)) => vec![Value::String(s.clone())],
        _ => return None,
    };
    values
        .iter()
        .map(|v| v.as_str().map(String::from))
        .collect::<Option<Vec<_>>>()
        .filter(|v| !v.is_empty())
}

impl Builder<'_> {
    fn reserve_definition_names(&mut self) -> Result<(), String> {
        let mut by_rust = BTreeMap::new();
        for name in self.definitions.keys() {
            if let Some(other) = by_rust.insert(pascal(name), name.clone()) {
                return Err(format!(
                    "{}: definitions {other} and {name} have the same Rust name",
                    self.type_name
                ));
            }
        }
        // A definition that is a list or a map names its element type after itself
        // (`KeySchema` -> `KeySchemaItem`): reserve those names too.
        let mut reserved: BTreeSet<String> = BTreeSet::new();
        for (rust, name) in by_rust {
            let def = &self.definitions[&name];
            if types(def).contains(&"array") {
                reserved.insert(format!("{rust}Item"));
            }
            if def["patternProperties"].is_object() || def["additionalProperties"].is_object() {
                reserved.insert(format!("{rust}Value"));
            }
            reserved.insert(rust);
        }
        self.reserved = reserved;
        Ok(())
    }

    fn description(&self, node: &Value) -> Option<String> {
        if let Some(d) = node["description"].as_str() {
            let d = doc_text(d);
            if !d.is_empty() {
                return Some(d);
            }
        }
        let target = node["$ref"].as_str()?.strip_prefix("#/definitions/")?;
        self.description(self.definitions.get(target)?)
    }

    fn field(
        &mut self,
        prop: &str,
        node: &Value,
        owner: &str,
        location: &str,
        required: &[String],
    ) -> Result<Field, String> {
        let hint = Hint {
            name: pascal(prop),
            owner: owner.to_string(),
        };
        let ty = self.resolve(node, &hint, location)?;
        let mut doc = vec![self
            .description(node)
            .unwrap_or_else(|| format!("The `{prop}` property."))];
        if required.iter().any(|r| r == prop) {
            doc.push("Required.".into());
        }
        if matches!(ty, Ty::ListKeepEmpty(_)) {
            doc.push(
                "`Some(vec![])` is rendered as `[]`, which removes the setting from an \
                 existing resource; `None` leaves the property out."
                    .into(),
            );
        }
        Ok(Field {
            cfn_name: prop.to_string(),
            rust_name: snake(prop),
            ty,
            doc,
        })
    }

    fn resolve(&mut self, node: &Value, hint: &Hint, location: &str) -> Result<Ty, String> {
        let ty = self.resolve_plain(node, hint, location)?;
        if !self.overrides.keeps_empty(self.type_name, location) {
            return Ok(ty);
        }
        match ty {
            Ty::List(inner) => Ok(Ty::ListKeepEmpty(inner)),
            other => Err(format!(
                "{}{location}: listed as a list that keeps `[]`, but it is {other:?}",
                self.type_name
            )),
        }
    }

    fn resolve_plain(&mut self, node: &Value, hint: &Hint, location: &str) -> Result<Ty, String> {
        if let Some(ty) = self.overrides.get(self.type_name, location) {
            return Ok(ty);
        }
        if let Some(target) = node["$ref"].as_str() {
            return self.definition(target);
        }
        let types = types(node);
        if types.len() > 1 {
            // `["object", "string"]` with declared properties is an object that may also
            // be given as JSON text; without them it is free-form JSON.
            return if types.contains(&"object") && node["properties"].is_object() {
                self.object(node, hint, location)
            } else {
                Ok(Ty::Json)
            };
        }
        match types.first().copied() {
            Some("string") => match string_values(node) {
                Some(values) => self.enumeration(values, node, hint),
                None => Ok(Ty::Expr),
            },
            Some("integer") => Ok(Ty::Int),
            Some("number") => Ok(Ty::Float),
            Some("boolean") => Ok(Ty::Bool),
            Some("array") => match node.get("items") {
                Some(items) => {
                    let item = self.resolve(items, &hint.item(), &format!("{location}/items"))?;
                    Ok(Ty::List(Box::new(item)))
                }
                None => Ok(Ty::List(Box::new(Ty::Json))),
            },
            Some("object") => self.object(node, hint, location),
            Some(other) => Err(format!(
                "{}{location}: unknown type {other}",
                self.type_name
            )),
            None => self.untyped(node, hint, location),
        }
    }

    /// A node without `type` or `$ref`: an alternative list, an enum, an object by its
    /// properties, a string by its string constraints, or free-form JSON.
    fn untyped(&mut self, node: &Value, hint: &Hint, location: &str) -> Result<Ty, String> {
        for key in ["oneOf", "anyOf"] {
            let Some(alternatives) = node[key].as_array() else {
                continue;
            };
            let all_objects = alternatives.iter().all(|a| a["properties"].is_object());
            if all_objects {
                return self.object(node, hint, location);
            }
            // Take the first alternative that says what it is (e.g. DynamoDB's
            // `KeySchema`: a list of key elements, or the same as JSON text).
            if let Some((i, alternative)) = alternatives
                .iter()
                .enumerate()
                .find(|(_, a)| a.get("$ref").is_some() || a.get("type").is_some())
            {
                return self.resolve(alternative, hint, &format!("{location}/{key}/{i}"));
            }
        }
        if let Some(values) = string_values(node) {
            return self.enumeration(values, node, hint);
        }
        if node["properties"].is_object() {
            return self.object(node, hint, location);
        }
        if ["minLength", "maxLength", "pattern", "format"]
            .iter()
            .any(|k| node.get(*k).is_some())
        {
            return Ok(Ty::Expr);
        }
        Ok(Ty::Json)
    }

    fn definition(&mut self, target: &str) -> Result<Ty, String> {
        let name = target
            .strip_prefix("#/definitions/")
            .ok_or_else(|| format!("{}: unsupported $ref {target}", self.type_name))?
            .to_string();
        if let Some(ty) = self.resolved.get(&name) {
            return Ok(ty.clone());
        }
        if !self.active.insert(name.clone()) {
            return Err(format!("{}: recursive definition {name}", self.type_name));
        }
        let node = self
            .definitions
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("{}: missing definition {name}", self.type_name))?;
        let hint = Hint {
            name: pascal(&name),
            owner: String::new(),
        };
        let ty = self.resolve(&node, &hint, &format!("/definitions/{name}"))?;
        self.active.remove(&name);
        self.resolved.insert(name, ty.clone());
        Ok(ty)
    }

    /// An object: a struct when it declares properties (or its alternatives do), the
    /// shared `Tag` when it is exactly a `Key`/`Value` pair of strings, a map when it
    /// only constrains its keys, free-form JSON otherwise.
    fn object(&mut self, node: &Value, hint: &Hint, location: &str) -> Result<Ty, String> {
        let mut properties: Vec<(String, Value, String)> = Vec::new();
        let mut required: Vec<String> = Vec::new();
        let mut add = |props: &Value, req: &Value, prefix: &str| {
            if let Some(props) = props.as_object() {
                for (k, v) in sorted(props) {
                    if !properties.iter().any(|(name, _, _)| name == k) {
                        properties.push((k.clone(), v.clone(), format!("{prefix}/properties/{k}")));
                    }
                }
            }
            if let Some(req) = req.as_array() {
                required.extend(req.iter().filter_map(|r| r.as_str().map(String::from)));
            }
        };
        add(&node["properties"], &node["required"], location);
        for key in ["oneOf", "anyOf"] {
            for (i, alternative) in node[key].as_array().into_iter().flatten().enumerate() {
                // Properties of alternatives are all optional: only one applies.
                add(
                    &alternative["properties"],
                    &Value::Null,
                    &format!("{location}/{key}/{i}"),
                );
            }
        }
        if properties.is_empty() {
            let value = node["patternProperties"]
                .as_object()
                .and_then(|p| sorted(p).first().map(|(k, v)| ((*k).clone(), (*v).clone())))
                .map(|(k, v)| (v, format!("{location}/patternProperties/{k}")))
                .or_else(|| {
                    node["additionalProperties"].is_object().then(|| {
                        (
                            node["additionalProperties"].clone(),
                            format!("{location}/additionalProperties"),
                        )
                    })
                });
            return match value {
                Some((value, loc)) => {
                    let value_hint = Hint {
                        name: format!("{}Value", hint.name),
                        owner: hint.owner.clone(),
                    };
                    Ok(Ty::Map(Box::new(self.resolve(
                        &value,
                        &value_hint,
                        &loc,
                    )?)))
                }
                None => Ok(Ty::Json),
            };
        }
        let names: BTreeSet<&str> = properties.iter().map(|(k, _, _)| k.as_str()).collect();
        let is_string = |v: &Value| types(v) == ["string"] && string_values(v).is_none();
        if names == BTreeSet::from(["Key", "Value"])
            && properties.iter().all(|(_, v, _)| is_string(v))
        {
            return Ok(Ty::Shared("Tag"));
        }
        let rust_name = self.claim_struct_name(hint)?;
        let mut fields = Vec::new();
        for (prop, value, loc) in &properties {
            fields.push(self.field(prop, value, &rust_name, loc, &required)?);
        }
        check_unique(&fields, &format!("{}{location}", self.type_name))?;
        let doc = self
            .description(node)
            .unwrap_or_else(|| format!("The `{}` property type.", hint.name));
        let item = self.items.get_mut(&rust_name).expect("claimed above");
        item.doc = doc;
        item.kind = ItemKind::Struct(fields);
        Ok(Ty::Named(rust_name))
    }

    fn enumeration(
        &mut self,
        values: Vec<String>,
        node: &Value,
        hint: &Hint,
    ) -> Result<Ty, String> {
        let mut variants: Vec<Variant> = Vec::new();
        for value in values {
            let base = variant(&value);
            let mut rust_name = base.clone();
            let mut n = 2;
            // Values that differ only in case (S3's `GLACIER` and `Glacier`) get a
            // numbered name; the variant's doc shows the exact value.
            while variants.iter().any(|v| v.rust_name == rust_name) {
                rust_name = format!("{base}{n}");
                n += 1;
            }
            variants.push(Variant { value, rust_name });
        }
        let doc = self
            .description(node)
            .unwrap_or_else(|| format!("Values of `{}`.", hint.name));
        let kind = ItemKind::Enum(variants);
        for name in self.candidates(hint) {
            match self.items.get(&name) {
                // The same values under the same name (e.g. `Status`) share one enum.
                Some(existing) if same_shape(&existing.kind, &kind) => return Ok(Ty::Named(name)),
                Some(_) => continue,
                None => {
                    self.items.insert(
                        name.clone(),
                        Item {
                            rust_name: name.clone(),
                            doc,
                            kind,
                        },
                    );
                    return Ok(Ty::Named(name));
                }
            }
        }
        Err(format!(
            "{}: no free name for enum {}",
            self.type_name, hint.name
        ))
    }

    /// Names an item may take, best first: a definition takes its own (reserved) name;
    /// an inline type takes the property's name unless a definition has it, else the
    /// name prefixed with its owner struct's name.
    fn candidates(&self, hint: &Hint) -> Vec<String> {
        if hint.owner.is_empty() {
            return vec![hint.name.clone()];
        }
        [hint.name.clone(), format!("{}{}", hint.owner, hint.name)]
            .into_iter()
            .filter(|n| !self.reserved.contains(n))
            .collect()
    }

    /// Claims a free name for a struct before its fields are built (their inline types
    /// are named after it), with a placeholder that the caller fills in.
    fn claim_struct_name(&mut self, hint: &Hint) -> Result<String, String> {
        let name = self
            .candidates(hint)
            .into_iter()
            .find(|n| !self.items.contains_key(n))
            .ok_or_else(|| format!("{}: no free name for struct {}", self.type_name, hint.name))?;
        self.items.insert(
            name.clone(),
            Item {
                rust_name: name.clone(),
                doc: String::new(),
                kind: ItemKind::Struct(Vec::new()),
            },
        );
        Ok(name)
    }

    /// The accessor for a read-only (or documented extra) attribute, if `Fn::GetAtt`
    /// can return it: a scalar or a list of scalars, never an object or an element of a
    /// list of objects (cfn-lint's rule, cfnlint/schema/_getatts.py).
    fn attribute(
        &mut self,
        properties: &Map<String, Value>,
        pointer: &str,
    ) -> Result<Option<Attribute>, String> {
        let path = pointer
            .strip_prefix("/properties/")
            .ok_or_else(|| format!("{}: unexpected pointer {pointer}", self.type_name))?;
        let segments: Vec<&str> = path.split('/').collect();
        if segments.contains(&"*") {
            return Ok(None);
        }
        let mut node = properties
            .get(segments[0])
            .cloned()
            .ok_or_else(|| format!("{}: no property for {pointer}", self.type_name))?;
        for segment in &segments[1..] {
            node = self.deref(&node);
            node = match node["properties"].get(*segment) {
                Some(next) => next.clone(),
                None => return Ok(None),
            };
        }
        let node = self.deref(&node);
        let t = types(&node);
        let list = if t.contains(&"array") {
            let items = self.deref(&node["items"]);
            let item_types = types(&items);
            if item_types.contains(&"object") || item_types.contains(&"array") {
                return Ok(None);
            }
            true
        } else if t.contains(&"object") || node["properties"].is_object() {
            return Ok(None);
        } else {
            false
        };
        let name = segments.join(".");
        let mut method = snake(&segments.join("_"));
        if HANDLE_METHODS.contains(&method.as_str()) {
            method = format!("get_att_{}", method.trim_start_matches("r#"));
        }
        let described = self.description(&node).unwrap_or_default();
        let doc = if described.is_empty() {
            format!("`Fn::GetAtt` `{name}`.")
        } else {
            format!("`Fn::GetAtt` `{name}`: {described}")
        };
        Ok(Some(Attribute {
            name,
            method,
            list,
            doc,
        }))
    }

    fn deref(&self, node: &Value) -> Value {
        match node["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/definitions/"))
        {
            Some(name) => match self.definitions.get(name) {
                Some(def) => {
                    let mut merged = def.clone();
                    if let (Some(m), Some(d)) =
                        (merged.as_object_mut(), node["description"].as_str())
                    {
                        m.insert("description".into(), d.into());
                    }
                    merged
                }
                None => node.clone(),
            },
            None => node.clone(),
        }
    }
}

fn same_shape(a: &ItemKind, b: &ItemKind) -> bool {
    match (a, b) {
        (ItemKind::Enum(x), ItemKind::Enum(y)) => x == y,
        (ItemKind::Struct(x), ItemKind::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(f, g)| f.cfn_name == g.cfn_name && f.ty == g.ty)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn build(schema: Value) -> Resource {
        resource(&schema, &[], &Overrides::default()).unwrap()
    }

    fn item<'a>(r: &'a Resource, name: &str) -> &'a Item {
        r.items
            .iter()
            .find(|i| i.rust_name == name)
            .unwrap_or_else(|| panic!("no item {name} in {:?}", r.items))
    }

    fn field<'a>(fields: &'a [Field], cfn: &str) -> &'a Field {
        fields.iter().find(|f| f.cfn_name == cfn).unwrap()
    }

    #[test]
    fn enumerated_strings_become_enums_with_the_exact_values() {
        let r = build(json!({
            "typeName": "AWS::Test::Thing",
            "properties": {
                "Mode": {"type": "string", "enum": ["OFF", "FLEXIBLE"]},
                "Archs": {"type": "array", "items": {"type": "string", "enum": ["x86_64", "arm64"]}},
                "Days": {"type": "integer", "enum": [1, 3]},
                "Owner": {"type": "string", "const": "Destination"}
            }
        }));
        assert_eq!(field(&r.fields, "Mode").ty, Ty::Named("Mode".into()));
        let ItemKind::Enum(variants) = &item(&r, "Mode").kind else {
            panic!("Mode is not an enum");
        };
        let pairs: Vec<(&str, &str)> = variants
            .iter()
            .map(|v| (v.rust_name.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(pairs, [("Off", "OFF"), ("Flexible", "FLEXIBLE")]);
        assert_eq!(
            field(&r.fields, "Archs").ty,
            Ty::List(Box::new(Ty::Named("ArchsItem".into())))
        );
        // Integer enums stay integers (LogGroup retention days): the values are
        // validated by cfn-lint, and an enum of numbers reads worse than the number.
        assert_eq!(field(&r.fields, "Days").ty, Ty::Int);
        assert_eq!(field(&r.fields, "Owner").ty, Ty::Named("Owner".into()));
    }

    #[test]
    fn values_differing_only_in_case_get_distinct_variants() {
        let r = build(json!({
            "typeName": "AWS::Test::Thing",
            "properties": {"Class": {"type": "string", "enum": ["GLACIER", "Glacier"]}}
        }));
        let ItemKind::Enum(variants) = &item(&r, "Class").kind else {
            panic!("Class is not an enum");
        };
        let names: Vec<&str> = variants.iter().map(|v| v.rust_name.as_str()).collect();
        assert_eq!(names, ["Glacier", "Glacier2"]);
    }

    #[test]
    fn inline_types_yield_a_definitions_name_to_it() {
        let r = build(json!({
            "typeName": "AWS::Test::Thing",
            "properties": {
                "Config": {"$ref": "#/definitions/Config"},
                "Holder": {"type": "object", "properties": {
                    "Config": {"type": "object", "properties": {"Other": {"type": "string"}}}
                }}
            },
            "definitions": {
                "Config": {"type": "object", "properties": {"Size": {"type": "integer"}}}
            }
        }));
        assert_eq!(field(&r.fields, "Config").ty, Ty::Named("Config".into()));
        let ItemKind::Struct(holder) = &item(&r, "Holder").kind else {
            panic!("Holder is not a struct");
        };
        assert_eq!(field(holder, "Config").ty, Ty::Named("HolderConfig".into()));
    }

    #[test]
    fn key_value_string_pairs_are_the_shared_tag() {
        let r = build(json!({
            "typeName": "AWS::Test::Thing",
            "properties": {"Tags": {"type": "array", "items": {"$ref": "#/definitions/Tag"}}},
            "definitions": {"Tag": {"type": "object", "properties": {
                "Key": {"type": "string"}, "Value": {"type": "string"}
            }}}
        }));
        assert_eq!(
            field(&r.fields, "Tags").ty,
            Ty::List(Box::new(Ty::Shared("Tag")))
        );
        assert!(r.items.is_empty());
    }

    #[test]
    fn objects_without_properties_are_maps_or_json() {
        let r = build(json!({
            "typeName": "AWS::Test::Thing",
            "properties": {
                "Labels": {"type": "object", "patternProperties": {".{1,}": {"type": "string"}}},
                "Pattern": {"type": ["object", "string"]},
                "Free": {"type": "object"},
                "Either": {"oneOf": [
                    {"properties": {"A": {"type": "string"}}},
                    {"properties": {"B": {"type": "boolean"}}}
                ]}
            }
        }));
        assert_eq!(field(&r.fields, "Labels").ty, Ty::Map(Box::new(Ty::Expr)));
        assert_eq!(field(&r.fields, "Pattern").ty, Ty::Json);
        assert_eq!(field(&r.fields, "Free").ty, Ty::Json);
        let ItemKind::Struct(either) = &item(&r, "Either").kind else {
            panic!("Either is not a struct");
        };
        let names: Vec<&str> = either.iter().map(|f| f.cfn_name.as_str()).collect();
        assert_eq!(names, ["A", "B"]);
    }

    #[test]
    fn read_only_properties_are_get_att_accessors_not_fields() {
        let r = build(json!({
            "typeName": "AWS::Test::Thing",
            "properties": {
                "Name": {"type": "string"},
                "Arn": {"type": "string"},
                "Id": {"type": "string"},
                "Ips": {"type": "array", "items": {"type": "string"}},
                "Endpoint": {"$ref": "#/definitions/Endpoint"},
                "Volumes": {"type": "array", "items": {"$ref": "#/definitions/Volume"}}
            },
            "definitions": {
                "Endpoint": {"type": "object", "properties": {
                    "Address": {"type": "string"}, "Port": {"type": "string"}
                }},
                "Volume": {"type": "object", "properties": {"Status": {"type": "string"}}}
            },
            "readOnlyProperties": [
                "/properties/Arn", "/properties/Id", "/properties/Ips",
                "/properties/Endpoint", "/properties/Endpoint/Address",
                "/properties/Volumes/*/Status"
            ]
        }));
        let fields: Vec<&str> = r.fields.iter().map(|f| f.cfn_name.as_str()).collect();
        assert_eq!(fields, ["Name", "Volumes"]);
        let attributes: Vec<(&str, &str, bool)> = r
            .attributes
            .iter()
            .map(|a| (a.name.as_str(), a.method.as_str(), a.list))
            .collect();
        // `Endpoint` is an object and `Volumes/*/Status` an element of a list: neither
        // can be asked of `Fn::GetAtt`. `Id` would clash with `Handle::id`.
        assert_eq!(
            attributes,
            [
                ("Arn", "arn", false),
                ("Endpoint.Address", "endpoint_address", false),
                ("Id", "get_att_id", false),
                ("Ips", "ips", true),
            ]
        );
    }

    #[test]
    fn replacement_data_is_copied_sorted() {
        let r = build(json!({
            "typeName": "AWS::Test::Thing",
            "properties": {"B": {"type": "string"}, "A": {"type": "string"}, "C": {"type": "string"}},
            "createOnlyProperties": ["/properties/B", "/properties/A"],
            "conditionalCreateOnlyProperties": ["/properties/C"],
            "required": ["B"]
        }));
        assert_eq!(r.create_only, ["/properties/A", "/properties/B"]);
        assert_eq!(r.conditional_create_only, ["/properties/C"]);
        assert_eq!(r.required, ["B"]);
        assert!(field(&r.fields, "A")
            .doc
            .iter()
            .any(|d| d.contains("replaces the resource")));
        assert!(field(&r.fields, "B").doc.iter().any(|d| d == "Required."));
    }

    #[test]
    fn docs_keep_the_first_paragraph_and_escape_what_rustdoc_misreads() {
        assert_eq!(doc_text("The  name.\n More detail."), "The name.");
        assert_eq!(
            doc_text("See [Task size](https://example.com/a) and [x] or <value> but `a<b>`."),
            "See [Task size](https://example.com/a) and \\[x\\] or \\<value\\> but `a<b>`."
        );
    }
}
