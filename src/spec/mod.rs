//! The stack file: parsing with field paths and lines, semantic validation, JSON Schema.
//!
//! YAML is read with `serde_yaml_ng`, the maintained fork of serde_yaml 0.9: same API,
//! and its errors carry the line and column, which `serde_path_to_error` completes with
//! the field path. (serde_norway would do as well; serde_yaml_ng's errors and release
//! cadence decided it.)

mod types;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use types::*;

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

/// Reads, parses and validates a stack file.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::single(path, "", format!("cannot read the stack file: {e}")))?;
    parse(&text, path)
}

/// Parses and validates stack-file text; `path` is used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Spec, SpecError> {
    let spec = deserialize(text, path)?;
    let mut problems = validate::check(&spec);
    problems.extend(validate::dynamic_references(text));
    if problems.is_empty() {
        return Ok(spec);
    }
    let problems = problems
        .into_iter()
        .map(|(field, message)| {
            let line = locate(text, &field);
            Problem {
                field,
                line,
                column: None,
                message,
            }
        })
        .collect();
    Err(SpecError {
        file: path.to_path_buf(),
        problems,
    })
}

fn deserialize(text: &str, path: &Path) -> Result<Spec, SpecError> {
    if text.trim().is_empty() {
        return Err(SpecError::single(
            path,
            "",
            "the stack file is empty; it needs at least `name` and `region`".into(),
        ));
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => String::new(),
            p => p,
        };
        let inner = e.into_inner();
        let (line, column) = inner
            .location()
            .map(|l| (Some(l.line()), Some(l.column())))
            .unwrap_or((None, None));
        let problem = Problem {
            field,
            line,
            column,
            message: strip_location(&inner.to_string()),
        };
        SpecError {
            file: path.to_path_buf(),
            problems: vec![problem],
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

/// Finds the line of a dotted field path in block-style YAML (best effort: the
/// semantic checks run on parsed values, which carry no positions).
fn locate(text: &str, field: &str) -> Option<usize> {
    let wanted: Vec<&str> = field
        .split('.')
        .filter(|s| !s.is_empty() && !s.starts_with('['))
        .collect();
    let mut stack: Vec<(usize, &str)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let content = raw.trim_start();
        if content.starts_with('#') || content.starts_with('-') || content.is_empty() {
            continue;
        }
        let Some((key, _)) = content.split_once(':') else {
            continue;
        };
        let indent = raw.len() - content.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.trim()));
        if stack.len() == wanted.len() && stack.iter().zip(&wanted).all(|((_, k), w)| k == w) {
            return Some(n + 1);
        }
    }
    None
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

    /// Whether the stack runs the scaler Lambda (autoscaling, failed-run alerts or
    /// both); only then does it have the scaler's Airflow user and its secret.
    pub fn runs_scaler(&self) -> bool {
        self.autoscaling.enabled || self.alerts.enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_nested_keys() {
        let text = "name: x\nservices:\n  # c\n  worker:\n    cpu: 3\n  scheduler:\n    cpu: 1\n";
        assert_eq!(locate(text, "services.worker.cpu"), Some(5));
        assert_eq!(locate(text, "services.scheduler.cpu"), Some(7));
        assert_eq!(locate(text, "name"), Some(1));
        assert_eq!(locate(text, "services.flower"), None);
    }

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
