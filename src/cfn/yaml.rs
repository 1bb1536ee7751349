//! YAML output of a template.
//!
//! Written here rather than with serde_yaml_ng's serializer: that emits YAML 1.2 plain
//! scalars, and CloudFormation and cfn-lint read YAML 1.1, where a plain `OFF`, `yes` or
//! `no` is a boolean (an EventBridge Scheduler `Mode: OFF` became `false`). Here every
//! string is double-quoted with JSON escaping, which YAML parses back as the same string
//! in either version; mappings and sequences are block style, so the output reads like a
//! hand-written template.

use serde_json::Value;

/// Renders a JSON value as block YAML ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => emit_block(value, 0, &mut out),
        Value::Array(items) if !items.is_empty() => emit_block(value, 0, &mut out),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

/// A scalar, or an empty collection, on one line.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

fn is_block(value: &Value) -> bool {
    matches!(value, Value::Object(m) if !m.is_empty())
        || matches!(value, Value::Array(a) if !a.is_empty())
}

/// A mapping key: plain when it is an identifier-like word YAML 1.1 cannot read as
/// anything else, double-quoted otherwise.
fn key_text(key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_:.-".contains(c))
        && !key.ends_with(':')
        && !["y", "n", "yes", "no", "on", "off", "true", "false", "null"]
            .contains(&key.to_ascii_lowercase().as_str());
    if plain {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}

/// Writes a non-empty mapping or sequence at `indent` spaces.
fn emit_block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push_str(&format!("{pad}{}:", key_text(k)));
                emit_child(v, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                if is_block(item) {
                    // Render the item one level deeper and put the dash in front of
                    // its first line: `- Key: v` / `- - a`.
                    let mut child = String::new();
                    emit_block(item, indent + 2, &mut child);
                    out.push_str(&format!("{pad}- {}", &child[indent + 2..]));
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar_text(item)));
                }
            }
        }
        _ => unreachable!("emit_block takes collections"),
    }
}

/// The value of a mapping entry: inline scalar, or a block on the next lines.
fn emit_child(value: &Value, indent: usize, out: &mut String) {
    if is_block(value) {
        out.push('\n');
        emit_block(value, indent + 2, out);
    } else {
        out.push(' ');
        out.push_str(&scalar_text(value));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_1_1_booleans_and_numbers_stay_strings() {
        let v = json!({"Mode": "OFF", "Flags": ["yes", "no", "on", "1e3", "", "null", "~"], "Count": 3, "On": true, "Empty": {}, "None": []});
        let text = to_yaml(&v);
        assert!(text.contains("Mode: \"OFF\"\n"), "{text}");
        assert!(
            text.contains("\"On\": true\n"),
            "a YAML 1.1 boolean word as a key is quoted: {text}"
        );
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn nested_sequences_and_mappings_round_trip() {
        let v = json!({"Resources": {"A": {"Type": "T", "Properties": {"L": [{"K": "v", "M": [1, [2, 3]]}, [[]], "s\n\"q\""]}}}});
        let text = to_yaml(&v);
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, v, "{text}");
        assert!(
            text.starts_with("Resources:\n  A:\n    Type: \"T\"\n"),
            "{text}"
        );
    }
}
