//! Following a field path through the stack file's JSON Schema (as schemars writes it:
//! `$ref` into `$defs`, `properties`, `additionalProperties`, `items`, `anyOf`/`oneOf`).
//! Used to decide whether a field takes `null`, so that rule has one source: the types.

use serde_json::Value;

/// Whether the field at `path` (`a.b[0].c`) may be null. A path the schema does not know
/// answers yes: serde then reports the unknown field itself.
pub fn allows_null(schema: &Value, path: &str) -> bool {
    let mut nodes = vec![schema];
    for segment in segments(path) {
        nodes = nodes
            .into_iter()
            .flat_map(|node| alternatives(schema, node))
            .filter_map(|node| child(node, &segment))
            .collect();
        if nodes.is_empty() {
            return true;
        }
    }
    nodes
        .into_iter()
        .flat_map(|node| alternatives(schema, node))
        .any(takes_null)
}

/// A path step: a map key or a list index.
#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Index,
}

fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Segment::Key(key.to_string()));
        }
        out.extend(
            indexes
                .split('[')
                .filter(|i| !i.is_empty())
                .map(|_| Segment::Index),
        );
    }
    out
}

/// `node` itself with `$ref` followed, and each of its `anyOf`/`oneOf`/`allOf` branches.
fn alternatives<'a>(root: &'a Value, node: &'a Value) -> Vec<&'a Value> {
    let node = resolve(root, node);
    let mut out = vec![node];
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = node.get(combinator).and_then(Value::as_array) {
            out.extend(branches.iter().flat_map(|b| alternatives(root, b)));
        }
    }
    out
}

/// Follows `$ref: "#/$defs/Name"` (schemars' only form) to its definition.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(root, |at, step| &at[step]))
            .filter(|target| !target.is_null())
            .map(|target| resolve(root, target))
            .unwrap_or(node),
        None => node,
    }
}

fn child<'a>(node: &'a Value, segment: &Segment) -> Option<&'a Value> {
    match segment {
        Segment::Key(key) => node
            .get("properties")
            .and_then(|p| p.get(key))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
        Segment::Index => node.get("items"),
    }
}

fn takes_null(node: &Value) -> bool {
    match node.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        _ => node.get("const").is_some_and(Value::is_null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_fields_take_null_and_plain_ones_do_not() {
        let schema = super::super::json_schema();
        assert!(allows_null(&schema, "airflow.image"));
        assert!(allows_null(&schema, "schedule"));
        assert!(!allows_null(&schema, "name"));
        assert!(!allows_null(&schema, "services.worker.cpu"));
        assert!(!allows_null(&schema, "tags.team"));
        assert!(!allows_null(&schema, "airflow.extra_env.AIRFLOW__X__Y"));
        assert!(allows_null(&schema, "not_a_field"));
    }

    #[test]
    fn paths_split_into_keys_and_indexes() {
        assert_eq!(
            segments("network.subnet_ids[1]"),
            vec![
                Segment::Key("network".into()),
                Segment::Key("subnet_ids".into()),
                Segment::Index
            ]
        );
    }
}
