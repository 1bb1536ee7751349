//! Property helpers shared by both resource types.

use cfn_custom_resource::{Properties, PropertyError};

/// A required property holding a Secrets Manager secret ARN.
pub fn secret_arn<'a>(props: &'a Properties, name: &str) -> Result<&'a str, PropertyError> {
    let arn = props.required(name)?;
    if arn.starts_with("arn:") && arn.contains(":secretsmanager:") {
        Ok(arn)
    } else {
        Err(PropertyError::Invalid {
            name: name.into(),
            expected: "a Secrets Manager secret ARN".into(),
        })
    }
}

/// A required property that must match `valid`, described by `expected` in errors.
pub fn checked<'a>(
    props: &'a Properties,
    name: &str,
    valid: impl Fn(&str) -> bool,
    expected: &str,
) -> Result<&'a str, PropertyError> {
    let value = props.required(name)?;
    if valid(value) {
        Ok(value)
    } else {
        Err(PropertyError::Invalid {
            name: name.into(),
            expected: expected.into(),
        })
    }
}

/// DNS names and IPv4 addresses (what RDS and ElastiCache endpoints are): letters,
/// digits, dots and dashes, so nothing can smuggle `@`, `/`, `:` or `?` into a URL.
pub fn is_host(value: &str) -> bool {
    value.len() <= 253
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
}

/// A TCP port 1..=65535.
pub fn is_port(value: &str) -> bool {
    value.parse::<u16>().is_ok_and(|p| p > 0)
}

/// Database, user and sslmode names: letters, digits, `_` and `-`.
pub fn is_identifier(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}
