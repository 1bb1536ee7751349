//! JSON Schema of the stack-file fields whose rules a derive attribute cannot say: the
//! same rules [`super::validate`] applies, written as schema keywords so an editor using
//! `airflow-stack schema` flags the mistake while typing. `tests/malformed.rs` checks
//! that a JSON Schema validator refuses every single-field mistake the CLI refuses.

use schemars::{json_schema, Schema, SchemaGenerator};

use super::validate::{MAX_ENV_TOTAL, MAX_ENV_VALUE, MAX_SUBNETS, MAX_USER_TAGS, SECRET_WORDS};
use super::values::{LAMBDA_NAME_PATTERN, LAMBDA_QUALIFIER_PATTERN};
use super::{MANAGED_ENV, SIMPLE_AUTH_MANAGED_ENV};

/// `tags`: at most [`MAX_USER_TAGS`], keys of 1-128 characters that are neither `aws:`
/// nor the stack's own, values of at most 256.
pub fn tags(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": MAX_USER_TAGS,
        "propertyNames": {
            "minLength": 1,
            "maxLength": 128,
            "not": {"pattern": "^([aA][wW][sS]:|airflow-stack:|Name$)"}
        },
        "additionalProperties": {"type": "string", "maxLength": 256}
    })
}

/// Every name the stack sets, in every form Airflow reads (`_CMD`, `_SECRET`).
fn managed_names() -> Vec<String> {
    MANAGED_ENV
        .iter()
        .chain(SIMPLE_AUTH_MANAGED_ENV)
        .flat_map(|m| [m.to_string(), format!("{m}_CMD"), format!("{m}_SECRET")])
        .collect()
}

/// `airflow.extra_env`: `AIRFLOW__SECTION__KEY` names in upper case that the stack does
/// not manage and that do not say they hold a secret; values of bounded length.
pub fn extra_env(_: &mut SchemaGenerator) -> Schema {
    let managed = managed_names();
    let secret = format!("(^|_)({})(_|$)", SECRET_WORDS.join("|"));
    json_schema!({
        "type": "object",
        "propertyNames": {
            "pattern": "^AIRFLOW__[A-Z0-9_]+__[A-Z0-9_]+$",
            "not": {"anyOf": [{"enum": managed}, {"pattern": secret}]}
        },
        "additionalProperties": {"type": "string", "maxLength": MAX_ENV_VALUE},
        "description": format!(
            "Names and values together at most {MAX_ENV_TOTAL} characters."
        )
    })
}

/// `airflow.secret_env`: environment-variable names the stack does not set, each given
/// a secret (see [`super::SecretEnv`]).
pub fn secret_env(generator: &mut SchemaGenerator) -> Schema {
    let managed = managed_names();
    json_schema!({
        "type": "object",
        "propertyNames": {
            "pattern": SECRET_ENV_NAME_PATTERN,
            "not": {"anyOf": [{"enum": managed}, {"pattern": "^AIRFLOW_STACK_"}]}
        },
        "additionalProperties": generator.subschema_for::<super::SecretEnv>()
    })
}

/// `airflow.secrets_backend.components`: distinct Airflow components that run DAG code
/// or serve it; not Flower (see [`super::SecretsBackend::components`]).
pub fn secrets_backend_components(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "minItems": 1,
        "uniqueItems": true,
        "items": {"enum": ["api_server", "scheduler", "dag_processor", "triggerer", "worker"]}
    })
}

/// `airflow.lambda_functions[]` given as a string: a function name or a function ARN,
/// optionally with a qualifier (see [`super::LambdaFunctionRef`]).
pub fn lambda_function_ref(_: &mut SchemaGenerator) -> Schema {
    let name = LAMBDA_NAME_PATTERN;
    let qualifier = LAMBDA_QUALIFIER_PATTERN;
    let arn = format!(
        "arn:aws(-[a-z]+)*:lambda:[a-z]{{2}}(-[a-z]+){{1,2}}-[0-9]+:[0-9]{{12}}:function:{name}(:{qualifier})?"
    );
    json_schema!({
        "type": "string",
        "pattern": format!("^({name}|{arn})$"),
    })
}

/// `airflow.lambda_functions`: each entry a function (name or ARN), or a map of the
/// function and its log group; distinct entries.
pub fn lambda_functions(generator: &mut SchemaGenerator) -> Schema {
    let function = generator.subschema_for::<super::LambdaFunctionRef>();
    let log_group = generator.subschema_for::<super::LogGroupName>();
    json_schema!({
        "type": "array",
        "uniqueItems": true,
        "items": {
            "anyOf": [
                function.clone(),
                {
                    "type": "object",
                    "properties": {
                        "function": function,
                        "log_group": log_group,
                    },
                    "required": ["function"],
                    "additionalProperties": false,
                    "description": "A function whose logs go to a log group of its own (LoggingConfig.LogGroup); without log_group, /aws/lambda/<name>."
                }
            ]
        }
    })
}

/// An environment-variable name as `airflow.secret_env` takes it.
pub const SECRET_ENV_NAME_PATTERN: &str = "^[A-Z_][A-Z0-9_]{0,254}$";

/// `network.subnet_ids`: distinct subnet ids.
pub fn subnet_ids(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "uniqueItems": true,
        "maxItems": MAX_SUBNETS,
        "items": {"type": "string", "pattern": "^subnet-[0-9a-f]{8,17}$"}
    })
}

/// `network.cidr`: an IPv4 block of /16 to /24 without host bits. A regex cannot
/// compute a mask, so the pattern lists, for each prefix length, the third octets a
/// block of that size can start at (the fourth is always 0 at /24 and shorter).
pub fn vpc_cidr(_: &mut SchemaGenerator) -> Schema {
    let octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    let blocks: Vec<String> = (16..=24u32)
        .map(|bits| {
            let step = 1u32 << (24 - bits);
            let starts: Vec<String> = (0..256)
                .step_by(step as usize)
                .map(|o| o.to_string())
                .collect();
            format!("({})\\.0/{bits}", starts.join("|"))
        })
        .collect();
    let pattern = format!("^{octet}\\.{octet}\\.({})$", blocks.join("|"));
    json_schema!({"type": "string", "pattern": pattern})
}

/// `database.username`: a PostgreSQL name that RDS does not reserve and that is not the
/// Airflow user the migration creates.
pub fn master_username(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": "^[A-Za-z][A-Za-z0-9_]{0,62}$",
        "not": {"anyOf": [
            {"enum": ["admin", "rdsadmin", "postgres"]},
            {"pattern": "^[aA][iI][rR][fF][lL][oO][wW]_[aA][pP][pP]$"}
        ]}
    })
}

/// `storage.*_prefix`: a key prefix of non-empty parts, none of them `.` or `..`.
pub fn key_prefix(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": "^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        "not": {"pattern": "(^|/)\\.\\.?(/|$)"}
    })
}

/// `schedule.pause`/`resume`: EventBridge Scheduler's `cron(...)` with six fields and
/// exactly one of the day fields `?`, or `rate(N minutes|hours|days)`.
pub fn schedule_expression(_: &mut SchemaGenerator) -> Schema {
    let field = "[^\\s?()]+";
    let cron =
        format!("cron\\({field} {field} (\\? {field} {field}|{field} {field} \\?) {field}\\)");
    let rate = "rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)";
    json_schema!({"type": "string", "pattern": format!("^({cron}|{rate})$")})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn value(schema: Schema) -> Value {
        serde_json::to_value(schema).unwrap()
    }

    fn pattern(schema: Schema) -> regex_lite::Regex {
        regex_lite::Regex::new(value(schema)["pattern"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn the_cidr_pattern_refuses_host_bits_and_takes_block_starts() {
        let re = pattern(vpc_cidr(&mut SchemaGenerator::default()));
        for ok in [
            "10.40.0.0/16",
            "10.40.128.0/17",
            "10.40.7.0/24",
            "192.168.252.0/22",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in [
            "10.40.7.0/16",
            "10.40.64.0/17",
            "10.40.0.1/24",
            "10.0.0.0/8",
            "10.40.0.0/25",
            "300.1.0.0/16",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn the_schedule_pattern_wants_one_question_mark_day() {
        let re = pattern(schedule_expression(&mut SchemaGenerator::default()));
        for ok in [
            "cron(0 7 ? * MON-FRI *)",
            "cron(0 7 1 * ? *)",
            "rate(12 hours)",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in [
            "cron(0 7 * * MON-FRI *)",
            "cron(0 7 ? * ? *)",
            "cron(0 7 * *)",
            "rate(0 hours)",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn managed_and_secret_looking_names_are_listed_as_refused() {
        let v = value(extra_env(&mut SchemaGenerator::default()));
        let refused = v["propertyNames"]["not"]["anyOf"].to_string();
        assert!(
            refused.contains("AIRFLOW__CORE__FERNET_KEY_CMD"),
            "{refused}"
        );
        assert!(refused.contains("PASSWORD"), "{refused}");
    }
}
