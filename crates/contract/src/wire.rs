//! How a custom resource's properties travel: the CLI writes them into the template,
//! CloudFormation hands them to the Lambda as `ResourceProperties`.
//!
//! CloudFormation passes every scalar property value as a string, whatever the template
//! wrote (`42` arrives as `"42"`: CloudFormation User Guide, `crpg-ref-requests.html`,
//! `ResourceProperties`), and lists as lists of strings. So the CLI side
//! writes strings (or template expressions that resolve to strings) and the Lambda side
//! reads strings only: a non-string scalar means a broken caller and is an error.
//!
//! Errors name the property, never its value: they become the `Reason` CloudFormation
//! shows in the stack events.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Largest accepted property value, in bytes. ARNs and host names are far shorter; the
/// limit stops a hostile or broken template from making a Lambda echo or process
/// megabytes. Read by the Lambdas (through [`optional`] and [`required`]).
pub const MAX_PROPERTY_BYTES: usize = 2048;

/// One property value as the template holds it: `V` is the CLI's template expression
/// type when it writes, `String` when a Lambda reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue<V> {
    /// A string (or an expression resolving to one).
    One(V),
    /// A list of strings.
    List(Vec<V>),
}

impl<V: Serialize> Serialize for PropertyValue<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PropertyValue::One(value) => value.serialize(serializer),
            PropertyValue::List(values) => values.serialize(serializer),
        }
    }
}

/// A resource's properties by name, in name order (the order the template prints them).
pub type PropertyMap<V> = BTreeMap<&'static str, PropertyValue<V>>;

/// Why a property is unusable. Names the property, never its value (it may be secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyError {
    /// A required property is absent or empty.
    Missing(String),
    /// CloudFormation sends every scalar as a string; anything else means a broken caller.
    NotAString(String),
    /// The value is longer than [`MAX_PROPERTY_BYTES`].
    TooLong(String),
    /// The value is a string but not an acceptable one.
    Invalid {
        /// The property's name.
        name: String,
        /// What would be valid.
        expected: String,
    },
}

impl PropertyError {
    /// An [`PropertyError::Invalid`] for `name`.
    pub fn invalid(name: &str, expected: impl Into<String>) -> Self {
        PropertyError::Invalid {
            name: name.to_owned(),
            expected: expected.into(),
        }
    }
}

impl std::fmt::Display for PropertyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropertyError::Missing(name) => write!(f, "property {name} is required"),
            PropertyError::NotAString(name) => write!(f, "property {name} must be a string"),
            PropertyError::TooLong(name) => {
                write!(
                    f,
                    "property {name} is longer than {MAX_PROPERTY_BYTES} bytes"
                )
            }
            PropertyError::Invalid { name, expected } => {
                write!(f, "property {name} is invalid: {expected}")
            }
        }
    }
}

impl std::error::Error for PropertyError {}

/// An optional string property; absent, null and empty are all `None`.
pub fn optional<'a>(
    properties: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, PropertyError> {
    match properties.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > MAX_PROPERTY_BYTES => {
            Err(PropertyError::TooLong(name.to_owned()))
        }
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(PropertyError::NotAString(name.to_owned())),
    }
}

/// A required, non-empty string property.
pub fn required<'a>(
    properties: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, PropertyError> {
    optional(properties, name)?.ok_or_else(|| PropertyError::Missing(name.to_owned()))
}

/// A list of non-empty strings; absent or null is an empty list, which is an error
/// when `at_least_one`.
pub fn list(
    properties: &Map<String, Value>,
    name: &str,
    at_least_one: bool,
) -> Result<Vec<String>, PropertyError> {
    let items = match properties.get(name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.is_empty() && s.len() <= MAX_PROPERTY_BYTES => Ok(s.clone()),
                _ => Err(PropertyError::invalid(name, "a list of non-empty strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(PropertyError::invalid(name, "a list of strings")),
    };
    if at_least_one && items.is_empty() {
        return Err(PropertyError::Missing(name.to_owned()));
    }
    Ok(items)
}

/// An optional whole number in `range`, `default` when absent or empty. `expected`
/// says what would be valid.
pub fn number_in<T>(
    properties: &Map<String, Value>,
    name: &str,
    range: std::ops::RangeInclusive<T>,
    default: T,
    expected: &str,
) -> Result<T, PropertyError>
where
    T: std::str::FromStr + PartialOrd,
{
    match optional(properties, name)? {
        None => Ok(default),
        Some(raw) => raw
            .parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| PropertyError::invalid(name, expected)),
    }
}

/// A required flag, `true` or `false` in any case.
pub fn flag(properties: &Map<String, Value>, name: &str) -> Result<bool, PropertyError> {
    match required(properties, name)?.to_ascii_lowercase().as_str() {
        TRUE => Ok(true),
        FALSE => Ok(false),
        _ => Err(PropertyError::invalid(
            name,
            format!("\"{TRUE}\" or \"{FALSE}\""),
        )),
    }
}

/// Reads a property struct from a JSON map for serde: used by the `Deserialize`
/// implementations of the `...Properties<String>` types.
pub(crate) fn deserialize_with<'de, D, T>(
    deserializer: D,
    read: fn(&Map<String, Value>) -> Result<T, PropertyError>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let map = <Map<String, Value> as serde::Deserialize>::deserialize(deserializer)?;
    read(&map).map_err(serde::de::Error::custom)
}

/// `true` as the template writes it: CloudFormation would turn a JSON boolean into this
/// string anyway, and writing the string keeps the rendered template as it is sent.
pub(crate) const TRUE: &str = "true";
/// `false`, as above.
pub(crate) const FALSE: &str = "false";

/// Writes a flag as [`TRUE`] or [`FALSE`].
pub(crate) fn flag_text(value: bool) -> &'static str {
    if value {
        TRUE
    } else {
        FALSE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn strings_only_and_empty_is_absent() {
        let props = map(json!({"A": "1", "N": 3, "E": "", "Z": null}));
        assert_eq!(required(&props, "A"), Ok("1"));
        assert_eq!(
            required(&props, "N"),
            Err(PropertyError::NotAString("N".into()))
        );
        assert_eq!(
            required(&props, "E"),
            Err(PropertyError::Missing("E".into()))
        );
        assert_eq!(optional(&props, "Z"), Ok(None));
        assert_eq!(optional(&props, "Q"), Ok(None));
    }

    #[test]
    fn oversized_values_are_refused_without_echoing_them() {
        let props = map(json!({"Big": "x".repeat(MAX_PROPERTY_BYTES + 1)}));
        let error = required(&props, "Big").unwrap_err();
        assert_eq!(error, PropertyError::TooLong("Big".into()));
        assert!(!error.to_string().contains("xxx"));
    }

    #[test]
    fn lists_hold_non_empty_strings() {
        let props = map(json!({"L": ["a", "b"], "S": "a", "E": [], "B": ["a", ""]}));
        assert_eq!(list(&props, "L", true).unwrap(), vec!["a", "b"]);
        assert!(list(&props, "S", false).is_err());
        assert_eq!(
            list(&props, "E", true),
            Err(PropertyError::Missing("E".into()))
        );
        assert!(list(&props, "E", false).unwrap().is_empty());
        assert!(list(&props, "B", false).is_err());
        assert!(list(&props, "Absent", false).unwrap().is_empty());
    }

    #[test]
    fn numbers_are_strings_in_a_range() {
        let props = map(json!({"N": "40", "Big": "400", "Word": "ten", "Num": 40}));
        assert_eq!(number_in(&props, "N", 16..=128, 32, "x"), Ok(40));
        assert_eq!(number_in(&props, "Absent", 16..=128, 32, "x"), Ok(32));
        for name in ["Big", "Word"] {
            assert_eq!(
                number_in(&props, name, 16..=128, 32, "16 to 128"),
                Err(PropertyError::invalid(name, "16 to 128"))
            );
        }
        assert_eq!(
            number_in(&props, "Num", 16..=128, 32, "x"),
            Err(PropertyError::NotAString("Num".into()))
        );
    }
}
