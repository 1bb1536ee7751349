//! Checks of property values shared by both resource types. Which properties exist and
//! how they are read is the contract's (`airflow_stack_contract::secrets`); what a
//! value must look like to be safe inside a URL or a Secrets Manager call is checked
//! here.

use cfn_custom_resource::PropertyError;

/// `arn` (the value of property `name`) must be a Secrets Manager secret ARN.
pub fn secret_arn(name: &str, arn: &str) -> Result<(), PropertyError> {
    if arn.starts_with("arn:") && arn.contains(":secretsmanager:") {
        Ok(())
    } else {
        Err(PropertyError::invalid(name, "a Secrets Manager secret ARN"))
    }
}

/// `value` (of property `name`) must pass `valid`, described by `expected` in errors.
pub fn checked(
    name: &str,
    value: &str,
    valid: impl Fn(&str) -> bool,
    expected: &str,
) -> Result<(), PropertyError> {
    if valid(value) {
        Ok(())
    } else {
        Err(PropertyError::invalid(name, expected))
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
