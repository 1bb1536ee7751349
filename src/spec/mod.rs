//! The stack file: parsing with field paths and lines, semantic validation, JSON Schema.
//!
//! The text is first read as YAML events with spans ([`source`], saphyr-parser): that
//! gives every key's and value's line and column by field path, and refuses duplicate
//! keys, deep nesting and nulls the schema has no room for. Then `serde_yaml_ng` (the
//! maintained fork of serde_yaml 0.9) turns it into [`Spec`], with `serde_path_to_error`
//! naming the field of a type error; the checks that need more than one field run on
//! the parsed `Spec` ([`validate`]). Every problem is located by its field path.

mod access;
mod build_inputs;
mod schema_rules;
mod schema_walk;
mod source;
mod streams;
mod types;
mod validate;
mod values;

use std::fmt;
use std::path::{Path, PathBuf};

pub use access::*;
pub use build_inputs::{BuildInputs, PluginFile, MAX_PLUGIN_BYTES, MAX_PLUGIN_FILES};
pub use source::{Pos, Positions, MAX_FILE_BYTES};
pub use streams::{Stream, StreamAuth, StreamFormat, StreamRunner, StreamTarget, MAX_STREAMS};
pub use types::*;
pub use values::{
    LambdaArn, LambdaFunctionRef, LogGroupName, OsPackage, PostgresVersion, Region,
    ScheduleExpression, SecretArn, SecretPrefix, StackName, StreamName, StreamUrl, SubnetId,
    VpcCidr, VpcId,
};

/// Environment variables the stack itself sets: `airflow.extra_env` may not override
/// them, nor their `_CMD`/`_SECRET` forms, or containers would disagree on them.
pub const MANAGED_ENV: &[&str] = &[
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__HOSTNAME_CALLABLE",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY",
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__LOGGING__REMOTE_LOGGING",
    "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER",
    "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID",
    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
];

/// What the stack sets when `airflow.auth_manager` is `simple` (its users and their
/// roles, src/stack/airflow_config.rs); `airflow.extra_env` may not set it then, or
/// containers get the variable twice.
pub const SIMPLE_AUTH_MANAGED_ENV: &[&str] = &["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"];

/// What the stack sets when `airflow.secrets_backend` is on: Airflow's secrets backend
/// and its arguments, also in the `[workers]` form that workers prefer to `[secrets]`
/// (apache-airflow-core 3.3.2, `_get_custom_secret_backend`). `airflow.extra_env` and
/// `airflow.secret_env` may not set them then: a backend of their own would replace the
/// stack's, with permissions the task roles do not have. With the backend off they are
/// free (another backend, such as HashiCorp Vault, is yours to configure).
pub const SECRETS_BACKEND_MANAGED_ENV: &[&str] = &[
    "AIRFLOW__SECRETS__BACKEND",
    "AIRFLOW__SECRETS__BACKEND_KWARGS",
    "AIRFLOW__WORKERS__SECRETS_BACKEND",
    "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS",
];

/// Prefixes of the per-argument overrides of the backend's arguments
/// (`AIRFLOW__SECRETS__BACKEND_KWARG__<KEY>`, apache-airflow-core 3.3.2,
/// `_build_kwarg_env_prefix`), refused like [`SECRETS_BACKEND_MANAGED_ENV`]: one could
/// move a prefix outside what the task roles may read.
pub const SECRETS_BACKEND_MANAGED_ENV_PREFIXES: &[&str] = &[
    "AIRFLOW__SECRETS__BACKEND_KWARG__",
    "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARG__",
];

/// A stack file that cannot be used, with where and why. Displayed as
/// `FILE:LINE:COLUMN: FIELD: MESSAGE`, one line per problem.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    /// The stack file.
    pub file: PathBuf,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

/// One problem in a stack file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted field path, e.g. `services.worker.cpu`; empty for the whole file.
    pub field: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// 1-based column, where known.
    pub column: Option<usize>,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
                if let Some(col) = p.column {
                    write!(f, ":{col}")?;
                }
            }
            let field = if p.field.is_empty() {
                "(file)"
            } else {
                &p.field
            };
            write!(f, ": {field}: {}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

impl SpecError {
    fn single(file: &Path, field: &str, message: String) -> SpecError {
        let problem = Problem {
            field: field.into(),
            line: None,
            column: None,
            message,
        };
        SpecError {
            file: file.to_path_buf(),
            problems: vec![problem],
        }
    }
}

/// Reads, parses and validates a stack file. A file over [`MAX_FILE_BYTES`] is refused
/// before it is read.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let cannot_read =
        |e: std::io::Error| SpecError::single(path, "", format!("cannot read the stack file: {e}"));
    let size = std::fs::metadata(path).map_err(cannot_read)?.len();
    if size > MAX_FILE_BYTES as u64 {
        return Err(too_large(path, size));
    }
    let text = std::fs::read_to_string(path).map_err(cannot_read)?;
    parse(&text, path)
}

fn too_large(path: &Path, size: u64) -> SpecError {
    SpecError::single(
        path,
        "",
        format!(
            "the stack file is {size} bytes; a stack file is at most {MAX_FILE_BYTES} bytes (1 MiB)"
        ),
    )
}

/// Parses and validates stack-file text; `path` is used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Spec, SpecError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(too_large(path, text.len() as u64));
    }
    if text.trim().is_empty() {
        return Err(SpecError::single(
            path,
            "",
            "the stack file is empty; it needs at least `name` and `region`".into(),
        ));
    }
    let located = |problems: Vec<(String, String)>, positions: &Positions| SpecError {
        file: path.to_path_buf(),
        problems: problems
            .into_iter()
            .map(|(field, message)| at(positions.locate(&field), field, message))
            .collect(),
    };
    let positions = source::read(text).map_err(|p| SpecError {
        file: path.to_path_buf(),
        problems: vec![at(p.pos, p.field, p.message)],
    })?;
    let shape = shape_problems(&positions);
    if !shape.is_empty() {
        return Err(located(shape, &positions));
    }
    let mut spec = deserialize(text, path, &positions)?;
    let mut problems = validate::check(&spec);
    problems.extend(validate::dynamic_references(&positions));
    if let Some(build) = &spec.airflow.build {
        match build_inputs::read(build, &build_inputs::base_dir(path)) {
            Ok(inputs) => spec.build_inputs = Some(inputs),
            Err(unreadable) => problems.extend(unreadable),
        }
    }
    if problems.is_empty() {
        return Ok(spec);
    }
    Err(located(problems, &positions))
}

fn at(pos: Pos, field: String, message: String) -> Problem {
    Problem {
        field,
        line: Some(pos.line),
        column: Some(pos.column),
        message,
    }
}

/// What is wrong with the document's shape before serde reads it: not a map, or a plain
/// `null` where the schema takes none (serde_yaml_ng reads `name: null` as the text
/// "null", and `services: ~` as every default, silently).
fn shape_problems(positions: &Positions) -> Vec<(String, String)> {
    if !positions.root_is_map() {
        return vec![(
            String::new(),
            "a stack file is a map of settings with at least `name` and `region`, e.g. `name: airflow-dev` and `region: eu-west-1` on two lines".into(),
        )];
    }
    let schema = json_schema();
    positions
        .nulls()
        .iter()
        .filter(|field| !schema_walk::allows_null(&schema, field))
        .map(|field| {
            (
                field.clone(),
                "has no value (null); give a value or leave the key out to take the default".into(),
            )
        })
        .collect()
}

fn deserialize(text: &str, path: &Path, positions: &Positions) -> Result<Spec, SpecError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => String::new(),
            p => p,
        };
        let inner = e.into_inner();
        let message = strip_location(&inner.to_string());
        // The parser's position of the field, unless the field is not in the file (a
        // missing or unknown key), where serde_yaml_ng's own position is the closer one.
        let pos = positions
            .value(&field)
            .map(|_| positions.locate(&field))
            .or_else(|| {
                inner.location().map(|l| Pos {
                    line: l.line(),
                    column: l.column(),
                })
            })
            .unwrap_or_else(|| positions.locate(&field));
        SpecError {
            file: path.to_path_buf(),
            problems: vec![at(pos, field, message)],
        }
    })
}

/// serde_yaml's messages end in "at line L column C"; the location is printed in front
/// instead, so it is cut from the message.
fn strip_location(message: &str) -> String {
    let trailing_position = |i: usize| {
        let rest = &message[i + " at line ".len()..];
        let mut words = rest.split(' ');
        let digits = |w: Option<&str>| {
            w.is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
        };
        digits(words.next())
            && words.next() == Some("column")
            && digits(words.next())
            && words.next().is_none()
    };
    let cut = match message.rfind(" at line ") {
        Some(i) if trailing_position(i) => &message[..i],
        _ => message,
    };
    // serde_yaml also starts them with the path of the value, which is printed already.
    let is_path = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c))
    };
    let cut = match cut.split_once(": ") {
        Some((path, rest)) if is_path(path) => rest,
        _ => cut,
    };
    cut.trim().to_string()
}

/// The JSON Schema of the stack file, for editors and CI checks.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Spec)).expect("schemas serialise")
}

impl Spec {
    /// The container image of the Airflow components.
    pub fn airflow_image(&self) -> String {
        self.airflow
            .image
            .clone()
            .unwrap_or_else(|| format!("apache/airflow:{}-python3.12", self.airflow.version))
    }

    /// Whether the stack builds its Airflow image in the account: with `airflow.build`,
    /// and with `airflow.lambda_functions`, whose operator's provider must be in the
    /// image.
    pub fn builds_image(&self) -> bool {
        self.airflow.build.is_some() || !self.airflow.lambda_functions.is_empty()
    }

    /// Whether the stack runs the scaler Lambda (autoscaling, failed-run alerts or
    /// both); only then does it have the scaler's Airflow user and its secret.
    pub fn runs_scaler(&self) -> bool {
        self.autoscaling.enabled || self.alerts.enabled
    }

    /// Whether the stack holds event streams; only then does it have the stream
    /// processor's Airflow user and its secret.
    pub fn has_streams(&self) -> bool {
        !self.streams.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_location_removes_the_trailing_position() {
        assert_eq!(
            strip_location("unknown field `x` at line 3 column 5"),
            "unknown field `x`"
        );
        assert_eq!(strip_location("plain"), "plain");
        assert_eq!(
            strip_location("services.worker: unknown field `cpuu` at line 5 column 5"),
            "unknown field `cpuu`"
        );
    }

    #[test]
    fn minimal_file_gets_documented_defaults() {
        let spec = parse("name: a\nregion: us-east-1\n", Path::new("s.yaml")).unwrap();
        assert_eq!(spec.airflow.version, "3.3.2");
        assert_eq!(spec.airflow_image(), "apache/airflow:3.3.2-python3.12");
        assert_eq!(spec.network.namespace, "airflow");
        assert_eq!(spec.services.worker.concurrency, 8);
        assert!(!spec.services.flower.enabled);
    }

    #[test]
    fn a_partial_service_block_keeps_the_components_other_defaults() {
        let spec = parse(
            "name: a\nregion: us-east-1\nservices:\n  scheduler: { count: 2 }\n  dag_processor:\n    spot: true\n",
            Path::new("s.yaml"),
        )
        .unwrap();
        let s = &spec.services;
        assert_eq!(
            (s.scheduler.cpu, s.scheduler.memory, s.scheduler.count),
            (1024, 2048, 2)
        );
        // Each component's own defaults, not one shared default.
        let d = &s.dag_processor;
        assert_eq!((d.cpu, d.memory, d.count, d.spot), (512, 1024, 1, true));
        assert_eq!(s.api_server.cpu, 1024);
    }

    #[test]
    fn a_partial_block_that_breaks_a_cross_field_rule_is_reported_at_the_block() {
        let err = parse(
            "name: a\nregion: us-east-1\nservices:\n  triggerer: { cpu: 2048 }\n",
            Path::new("s.yaml"),
        )
        .unwrap_err();
        // 2048 CPU units with the triggerer's default 1024 MiB: memory is not in the
        // file, so the message points at the triggerer's block.
        let p = &err.problems[0];
        assert_eq!(p.field, "services.triggerer.memory");
        assert_eq!((p.line, p.column), (Some(4), Some(3)));
    }

    #[test]
    fn error_display_names_file_line_and_field() {
        let err = parse(
            "name: a\nregion: us-east-1\nbogus: 1\n",
            Path::new("s.yaml"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("s.yaml:3:1: "), "{text}");
        assert!(text.contains("unknown field `bogus`"), "{text}");
    }
}
