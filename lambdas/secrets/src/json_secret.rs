//! JSON-object secrets: one secret holding several values as a flat object of strings,
//! which ECS reads key by key (`valueFrom: <arn>:<key>::`) and CloudFormation through
//! `{{resolve:secretsmanager:<arn>:SecretString:<key>}}`.
//!
//! Both resource types read-modify-write these documents: they add or change only the
//! keys they own and keep every other key as it is. Errors name the secret's property
//! and the key, never a value: a parse error reports its category and position only
//! (never serde's message, which can quote the input).

use serde_json::{Map, Value};

use crate::error::HandlerError;

/// A parsed JSON-object secret.
pub type Document = Map<String, Value>;

/// Parses the current value of the secret named by `property`. A secret without a
/// value (or an empty string) is an empty document.
pub fn parse(property: &'static str, raw: Option<&str>) -> Result<Document, HandlerError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(Document::new());
    };
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(document)) => Ok(document),
        Ok(other) => Err(HandlerError::NotAJsonObject {
            property,
            found: kind(&other),
        }),
        Err(error) => Err(HandlerError::MalformedJson {
            property,
            detail: describe(&error),
        }),
    }
}

/// The string value of `key`: `None` when the key is absent or an empty string, an
/// error when it holds anything but a string.
pub fn string_key<'d>(
    document: &'d Document,
    property: &'static str,
    key: &'static str,
) -> Result<Option<&'d str>, HandlerError> {
    match document.get(key) {
        None => Ok(None),
        Some(Value::String(value)) if value.is_empty() => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(other) => Err(HandlerError::KeyNotAString {
            property,
            key,
            found: kind(other),
        }),
    }
}

/// The compact JSON text stored in Secrets Manager.
pub fn to_text(document: &Document) -> String {
    Value::Object(document.clone()).to_string()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Category and position only: serde_json's own message may quote part of the input.
fn describe(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "invalid data",
        serde_json::error::Category::Io => "read error",
    };
    format!("{what} at line {} column {}", error.line(), error.column())
}

#[cfg(test)]
mod tests {
    use super::*;
    use airflow_stack_contract::secrets::property::DATABASE_SECRET_ARN;

    const SECRET: &str = "Zq9SecretValueThatMustNotAppear";

    #[test]
    fn empty_values_are_empty_documents() {
        assert!(parse("P", None).unwrap().is_empty());
        assert!(parse("P", Some("")).unwrap().is_empty());
        assert!(parse("P", Some("  \n")).unwrap().is_empty());
    }

    #[test]
    fn objects_keep_every_key() {
        let doc = parse("P", Some(r#"{"k":"x","other":"y","n":1}"#)).unwrap();
        assert_eq!(string_key(&doc, "P", "k").unwrap(), Some("x"));
        assert_eq!(doc.len(), 3);
        let back = parse("P", Some(&to_text(&doc))).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn errors_name_the_property_and_never_the_value() {
        for raw in [
            format!(r#"{{"k":"{SECRET}"#),
            format!(r#"{{"k":{SECRET}}}"#),
            SECRET.to_string(),
            format!(r#""{SECRET}""#),
            format!(r#"["{SECRET}"]"#),
            format!(r#"{{"k":"{SECRET}",}}"#),
            format!("{{\"k\":\"{SECRET}\u{1}\"}}"),
        ] {
            let error = parse(DATABASE_SECRET_ARN, Some(&raw))
                .unwrap_err()
                .to_string();
            assert!(error.contains(DATABASE_SECRET_ARN), "{error}");
            assert!(!error.contains("Zq9"), "{error}");
        }
        let doc = parse("P", Some(r#"{"k":["Zq9"]}"#)).unwrap();
        let error = string_key(&doc, "P", "k").unwrap_err().to_string();
        assert!(error.contains("\"k\"") && !error.contains("Zq9"), "{error}");
    }

    #[test]
    fn empty_strings_count_as_absent() {
        let doc = parse("P", Some(r#"{"k":""}"#)).unwrap();
        assert_eq!(string_key(&doc, "P", "k").unwrap(), None);
    }
}
