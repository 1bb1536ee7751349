//! Semantic checks on a parsed stack file. Each check names the field and what would be
//! valid. Patterns are checked by small functions instead of a regex crate: they are few
//! and simple, and this keeps `synth` start-up cheap.

use super::{
    AuthManager, DatabaseEngine, Packing, RedisEngine, SecretEnvComponent, Service, Spec,
    AWS_MANAGED_KEY, CREATE_KEY, MANAGED_ENV, SECRETS_BACKEND_MANAGED_ENV,
    SECRETS_BACKEND_MANAGED_ENV_PREFIXES, SIMPLE_AUTH_MANAGED_ENV,
};
use airflow_stack_contract::secrets::AIRFLOW_DATABASE_USER;

/// `(field path, message)` pairs; empty when the spec is valid.
pub type Problems = Vec<(String, String)>;

/// Runs every check and returns all problems found.
pub fn check(spec: &Spec) -> Problems {
    let mut p = Problems::new();
    check_identity(spec, &mut p);
    check_airflow(spec, &mut p);
    check_network(spec, &mut p);
    check_database(spec, &mut p);
    check_redis(spec, &mut p);
    check_services(spec, &mut p);
    check_storage_logs_secrets(spec, &mut p);
    check_monitoring(spec, &mut p);
    check_schedule(spec, &mut p);
    check_encryption(spec, &mut p);
    p.extend(super::access::check(spec));
    p.extend(super::streams::check(spec));
    p
}

/// Every string of the stack file that holds a dynamic reference. The stack file's
/// strings land in plain template fields (task environments, tags, names), where
/// CloudFormation would resolve the reference and store the secret in plain text (a
/// task definition's environment is shown to anyone who may describe it). Secrets reach
/// containers through ECS `Secrets` only. Every key and scalar of the text is looked at
/// ([`super::source`] collects them), so fields added later are covered too.
pub fn dynamic_references(positions: &super::Positions) -> Problems {
    let refused = "a CloudFormation dynamic reference ({{resolve:...}}) would be resolved into the template in plain text; pass secrets to Airflow through airflow.secret_env, a secrets backend or a connection, not the stack file";
    positions
        .dynamic_references()
        .iter()
        .map(|path| (path.clone(), refused.to_string()))
        .collect()
}

/// `schedule`: a plausible time zone and EventBridge Scheduler expressions.
fn check_schedule(spec: &Spec, p: &mut Problems) {
    let Some(s) = &spec.schedule else {
        return;
    };
    let tz_ok = s.timezone == "UTC"
        || (s.timezone.contains('/')
            && starts_with_letter(&s.timezone)
            && is_alnum_or(&s.timezone, &['/', '_', '-', '+']));
    if !tz_ok {
        problem(
            p,
            "schedule.timezone",
            format!(
                "{:?} is not an IANA time zone such as UTC or Europe/Berlin",
                s.timezone
            ),
        );
    }
    if s.resume == s.pause {
        problem(p, "schedule.pause", "must differ from schedule.resume");
    }
}

fn problem(p: &mut Problems, field: &str, message: impl Into<String>) {
    p.push((field.to_string(), message.into()));
}

fn is_alnum_or(s: &str, extra: &[char]) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

fn starts_with_letter(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

fn check_identity(spec: &Spec, p: &mut Problems) {
    if spec.tags.len() > MAX_USER_TAGS {
        problem(
            p,
            "tags",
            format!(
                "{} tags: AWS allows 50 per resource, and the stack puts {} of its own (`Name` and `airflow-stack:stack`) on each, so at most {MAX_USER_TAGS}",
                spec.tags.len(),
                50 - MAX_USER_TAGS
            ),
        );
    }
    for (k, v) in &spec.tags {
        let field = format!("tags.{k}");
        if k.is_empty() || k.len() > 128 || k.to_ascii_lowercase().starts_with("aws:") {
            problem(
                p,
                &field,
                "tag keys are 1-128 characters and may not start with `aws:`",
            );
        } else if k == "Name" || k.starts_with("airflow-stack:") {
            problem(
                p,
                &field,
                "the stack sets `Name` and the `airflow-stack:` tags itself; a resource cannot carry a key twice",
            );
        }
        if v.len() > 256 {
            problem(p, &field, "tag values are at most 256 characters");
        }
    }
}

/// Most subnets an ECS service's `awsvpcConfiguration` takes (ECS API reference,
/// AwsVpcConfiguration: "You can specify up to 16 subnets").
pub const MAX_SUBNETS: usize = 16;

/// Tags a user may add: AWS's 50 per resource ("Tag naming limits and requirements",
/// Tagging AWS Resources) less the stack's `Name` and `airflow-stack:stack`.
/// CloudFormation's own `aws:` tags do not count.
pub const MAX_USER_TAGS: usize = 48;

/// `xx-name-N` or `xx-gov-name-N`.
pub(super) fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    let ends_in_digit = parts
        .last()
        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
    (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase()))
        && ends_in_digit
}

fn check_airflow(spec: &Spec, p: &mut Problems) {
    let a = &spec.airflow;
    let numbers: Vec<&str> = a.version.split('.').collect();
    let semver = numbers.len() == 3
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    if !semver || numbers[0] != "3" {
        problem(
            p,
            "airflow.version",
            format!("{:?} is not an Airflow 3 version such as 3.3.2", a.version),
        );
    }
    if let Some(image) = &a.image {
        if image.is_empty() || image.chars().any(char::is_whitespace) {
            problem(p, "airflow.image", "the image must be a non-empty reference without spaces, e.g. apache/airflow:3.3.2-python3.12");
        }
    }
    if !(60..=7 * 86_400).contains(&a.celery_visibility_timeout_seconds) {
        problem(
            p,
            "airflow.celery_visibility_timeout_seconds",
            "must be 60 to 604800 seconds (7 days), above your longest task",
        );
    }
    for (key, value) in &a.extra_env {
        let field = format!("airflow.extra_env.{key}");
        if let Some(why) = extra_env_key_problem(key, a) {
            problem(p, &field, why);
        } else if value.len() > MAX_ENV_VALUE {
            problem(
                p,
                &field,
                format!("{} characters: a value is at most {MAX_ENV_VALUE} (the whole task definition is at most 64 KiB)", value.len()),
            );
        }
    }
    check_secret_env(spec, p);
    check_secrets_backend(spec, p);
    check_lambda_functions(spec, p);
    let total: usize = a.extra_env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_ENV_TOTAL {
        problem(
            p,
            "airflow.extra_env",
            format!("{total} characters of names and values: at most {MAX_ENV_TOTAL} fit beside the stack's own settings in a task definition (at most 64 KiB)"),
        );
    }
}

/// IAM's limit on the inline policies of one role, all together: 10,240 characters,
/// not counting white space ("IAM and AWS STS quotas": role policy size).
pub const ROLE_POLICY_CHARACTERS: usize = 10_240;

/// How much of [`ROLE_POLICY_CHARACTERS`] the workers' grants for
/// `airflow.lambda_functions` may take. The rest is for the workers' own statements (the
/// bucket, the secrets backend, task protection, a customer-managed key's use), about
/// 1,500 characters with everything on (`tests/lambda_functions.rs` renders the longest
/// list this accepts with everything on and checks the role against IAM's limit).
pub const MAX_LAMBDA_GRANT_CHARACTERS: usize = 7_000;

/// `airflow.lambda_functions`: each function once, and the workers' grants within what
/// one role's policy may hold.
fn check_lambda_functions(spec: &Spec, p: &mut Problems) {
    let list = &spec.airflow.lambda_functions;
    for (i, entry) in list.iter().enumerate() {
        if let Some(first) = list[..i].iter().position(|e| e.function == entry.function) {
            problem(
                p,
                &format!("airflow.lambda_functions[{i}]"),
                format!(
                    "{:?} is listed twice (also airflow.lambda_functions[{first}]); name each function once",
                    entry.function.as_str()
                ),
            );
        }
    }
    let size = lambda_grant_characters(spec);
    if size > MAX_LAMBDA_GRANT_CHARACTERS {
        problem(
            p,
            "airflow.lambda_functions",
            format!(
                "{} functions would take about {size} characters of the workers' IAM policy; at most {MAX_LAMBDA_GRANT_CHARACTERS} fit beside the stack's own statements (IAM allows {ROLE_POLICY_CHARACTERS} per role): name fewer functions, or shorter log groups",
                list.len()
            ),
        );
    }
}

/// The characters the workers' two statements for `airflow.lambda_functions` take in
/// the deployed policy, as IAM counts them (no white space): each resource with its
/// quotes and comma, plus each statement's effect and actions.
pub fn lambda_grant_characters(spec: &Spec) -> usize {
    let list = &spec.airflow.lambda_functions;
    if list.is_empty() {
        return 0;
    }
    let region = spec.region.as_str();
    let a = &spec.airflow;
    let resources: usize = a
        .lambda_function_arns()
        .into_iter()
        .chain(a.lambda_log_group_arns())
        .map(|arn| arn.deployed_len(region) + 3)
        .sum();
    // {"Effect":"Allow","Action":[...],"Resource":[...]}, twice.
    let invoke = r#"{"Effect":"Allow","Action":["lambda:InvokeFunction","lambda:GetFunctionConfiguration"],"Resource":[]},"#;
    let filter = r#"{"Effect":"Allow","Action":["logs:FilterLogEvents"],"Resource":[]},"#;
    resources + invoke.len() + filter.len()
}

/// `airflow.secret_env`: names the stack leaves free, full secret ARNs, distinct
/// components that run.
fn check_secret_env(spec: &Spec, p: &mut Problems) {
    let a = &spec.airflow;
    for (name, entry) in &a.secret_env {
        let field = format!("airflow.secret_env.{name}");
        if let Some(why) = secret_env_name_problem(name, a) {
            problem(p, &field, why);
        }
        if let Some(key) = &entry.json_key {
            if key.is_empty()
                || key.len() > 128
                || !is_alnum_or(key, &['_', '.', '@', '/', '+', '=', '-'])
            {
                problem(
                    p,
                    &format!("{field}.json_key"),
                    "a JSON key is 1-128 letters, digits or _ . @ / + = -",
                );
            }
        }
        check_secret_env_components(spec, &field, &entry.components, p);
    }
}

fn secret_env_name_problem(name: &str, a: &super::Airflow) -> Option<String> {
    if let Some(why) = secrets_backend_env_problem(&name.to_ascii_uppercase(), a) {
        return Some(why);
    }
    if is_managed_env(&name.to_ascii_uppercase(), a.auth_manager)
        || name.starts_with("AIRFLOW_STACK_")
    {
        return Some("the stack sets this variable itself".into());
    }
    let valid = name.len() <= 255
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Some("a variable name is upper-case letters, digits and underscores, not starting with a digit".into());
    }
    a.extra_env
        .contains_key(name)
        .then(|| "also in airflow.extra_env; give it in one of them".into())
}

fn check_secret_env_components(
    spec: &Spec,
    field: &str,
    components: &[super::SecretEnvComponent],
    p: &mut Problems,
) {
    let field = format!("{field}.components");
    if components.is_empty() {
        problem(
            p,
            &field,
            "name at least one component, or leave the key out for all but Flower",
        );
    }
    for (i, c) in components.iter().enumerate() {
        if components[..i].contains(c) {
            problem(p, &format!("{field}[{i}]"), "listed twice");
        } else if *c == super::SecretEnvComponent::Flower && !spec.services.flower.enabled {
            problem(
                p,
                &format!("{field}[{i}]"),
                "Flower is not enabled (services.flower.enabled)",
            );
        }
    }
}

/// Why a variable name cannot be given while `airflow.secrets_backend` is on, if it
/// cannot: the stack sets the backend ([`SECRETS_BACKEND_MANAGED_ENV`]).
fn secrets_backend_env_problem(upper: &str, a: &super::Airflow) -> Option<String> {
    a.secrets_backend.as_ref()?;
    let managed = SECRETS_BACKEND_MANAGED_ENV.iter().any(|m| {
        upper == *m
            || upper
                .strip_prefix(m)
                .is_some_and(|s| s == "_CMD" || s == "_SECRET")
    }) || SECRETS_BACKEND_MANAGED_ENV_PREFIXES
        .iter()
        .any(|prefix| upper.starts_with(prefix));
    managed.then(|| {
        "with airflow.secrets_backend on, the stack sets Airflow's secrets backend and its \
         arguments; set the prefixes there, or turn airflow.secrets_backend off to configure \
         a backend of your own"
            .into()
    })
}

/// `airflow.secrets_backend`: distinct prefixes outside the stack's own secrets, and
/// distinct components that run DAG code.
fn check_secrets_backend(spec: &Spec, p: &mut Problems) {
    let Some(b) = &spec.airflow.secrets_backend else {
        return;
    };
    let field = "airflow.secrets_backend";
    for (name, prefix) in [
        ("connections_prefix", &b.connections_prefix),
        ("variables_prefix", &b.variables_prefix),
    ] {
        // The stack's own secrets (the Fernet key, the signing keys, the database
        // password) are named `<stack name>/...` (src/stack/keys.rs): a prefix there
        // would let the components' task roles read them.
        if prefix.split('/').next() == Some(spec.name.as_str()) {
            problem(
                p,
                &format!("{field}.{name}"),
                format!(
                    "the stack keeps its own secrets (the Fernet key, the signing keys, the database password) under {}/, which the task roles must not read; choose another prefix, such as airflow/connections",
                    spec.name
                ),
            );
        }
    }
    if b.variables_prefix == b.connections_prefix {
        problem(
            p,
            &format!("{field}.variables_prefix"),
            "must differ from connections_prefix, or a variable and a connection of one name would be one secret",
        );
    }
    check_backend_components(&b.components, p);
}

fn check_backend_components(components: &[SecretEnvComponent], p: &mut Problems) {
    let field = "airflow.secrets_backend.components";
    if components.is_empty() {
        problem(
            p,
            field,
            "name at least one component, or leave the key out for dag_processor, triggerer and worker",
        );
    }
    for (i, c) in components.iter().enumerate() {
        if components[..i].contains(c) {
            problem(p, &format!("{field}[{i}]"), "listed twice");
        } else if *c == SecretEnvComponent::Flower {
            problem(
                p,
                &format!("{field}[{i}]"),
                "Flower runs no DAG code and reads no connection or variable; name api_server, scheduler, dag_processor, triggerer or worker",
            );
        }
    }
}

/// Longest `extra_env` value, and most characters of names and values together: every
/// container definition repeats them, and ECS refuses a task definition over 64 KiB
/// (Amazon ECS service quotas, "Task definition size").
pub const MAX_ENV_VALUE: usize = 4096;
/// See [`MAX_ENV_VALUE`].
pub const MAX_ENV_TOTAL: usize = 16 * 1024;

/// Why `key` cannot be in `airflow.extra_env`, if it cannot.
fn extra_env_key_problem(key: &str, a: &super::Airflow) -> Option<String> {
    // Airflow upper-cases the names it looks up (configuration.py, `_env_var_name`); a
    // key in another case is never read, or on a case-insensitive reader overrides a
    // managed one, so the case is checked after the managed names.
    let upper = key.to_ascii_uppercase();
    if let Some(why) = secrets_backend_env_problem(&upper, a) {
        return Some(why);
    }
    if is_managed_env(&upper, a.auth_manager) {
        return Some("this setting is managed by the stack and cannot be overridden".into());
    }
    if !is_env_key(key) {
        return Some(format!("keys must have the form {ENV_KEY_FORM}"));
    }
    if looks_secret(key) {
        return Some(
            "the name says it holds a secret, and extra_env is written into the template in plain text; \
             put the value in Secrets Manager and name it in airflow.secret_env instead"
                .into(),
        );
    }
    None
}

/// How an `extra_env` key is spelled, in words.
pub const ENV_KEY_FORM: &str = "AIRFLOW__SECTION__KEY: upper-case letters, digits and underscores";

/// `AIRFLOW__<SECTION>__<KEY>` in upper case.
pub fn is_env_key(key: &str) -> bool {
    let upper_or_digit = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    key.strip_prefix("AIRFLOW__")
        .and_then(|rest| rest.split_once("__"))
        .is_some_and(|(section, name)| !section.is_empty() && !name.is_empty())
        && key.chars().all(upper_or_digit)
}

/// Words in a variable name that say it holds a secret.
pub const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "KEY",
    "APIKEY",
    "CREDENTIAL",
    "CREDENTIALS",
];

/// Whether a name has one of [`SECRET_WORDS`] as an underscore-separated word.
pub fn looks_secret(key: &str) -> bool {
    key.split('_').any(|word| SECRET_WORDS.contains(&word))
}

/// A name the stack sets (in any of its `_CMD`/`_SECRET` forms), with the auth manager's
/// own settings when it is `simple`.
fn is_managed_env(upper: &str, auth_manager: AuthManager) -> bool {
    let simple: &[&str] = if auth_manager == AuthManager::Simple {
        SIMPLE_AUTH_MANAGED_ENV
    } else {
        &[]
    };
    MANAGED_ENV.iter().chain(simple).any(|m| {
        upper == *m
            || upper
                .strip_prefix(m)
                .is_some_and(|s| s == "_CMD" || s == "_SECRET")
    })
}

fn check_network(spec: &Spec, p: &mut Problems) {
    let n = &spec.network;
    match &n.vpc_id {
        Some(_) => {
            if n.subnet_ids.len() < 2 {
                problem(
                    p,
                    "network.subnet_ids",
                    "an existing VPC needs at least 2 subnet ids in different AZs",
                );
            }
            if n.subnet_ids.len() > MAX_SUBNETS {
                problem(
                    p,
                    "network.subnet_ids",
                    format!("{} subnets: an ECS service takes at most {MAX_SUBNETS} (awsvpcConfiguration)", n.subnet_ids.len()),
                );
            }
            let mut seen = std::collections::HashMap::new();
            for (i, s) in n.subnet_ids.iter().enumerate() {
                if let Some(first) = seen.insert(s, i) {
                    problem(
                        p,
                        &format!("network.subnet_ids[{i}]"),
                        format!("{s:?} is listed twice (also subnet_ids[{first}]); the subnets must be distinct, in different AZs"),
                    );
                }
            }
            if n.nat_gateways != 0 {
                problem(
                    p,
                    "network.nat_gateways",
                    "NAT gateways are created only with a new VPC; remove it or remove vpc_id",
                );
            }
        }
        None => {
            if !n.subnet_ids.is_empty() {
                problem(
                    p,
                    "network.subnet_ids",
                    "subnet ids need network.vpc_id; leave both empty to create a VPC",
                );
            }
            if n.assign_public_ip {
                problem(
                    p,
                    "network.assign_public_ip",
                    "applies to an existing VPC only; a created VPC decides from nat_gateways",
                );
            }
            if n.nat_gateways > 2 {
                problem(
                    p,
                    "network.nat_gateways",
                    "valid values are 0 (public subnets), 1 or 2 (private subnets)",
                );
            }
        }
    }
    let ns_ok = !n.namespace.is_empty()
        && n.namespace.len() <= 253
        && n.namespace.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    if !ns_ok {
        problem(
            p,
            "network.namespace",
            format!(
                "{:?} is not a DNS name of lower-case labels, e.g. airflow",
                n.namespace
            ),
        );
    }
}

pub(super) fn is_aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|h| {
        (8..=17).contains(&h.len())
            && h.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

/// The intervals RDS Enhanced Monitoring takes (`MonitoringInterval`), in seconds.
const MONITORING_INTERVALS: [u32; 7] = [0, 1, 5, 10, 15, 30, 60];

fn check_database(spec: &Spec, p: &mut Problems) {
    let d = &spec.database;
    if !MONITORING_INTERVALS.contains(&d.monitoring_interval) {
        problem(
            p,
            "database.monitoring_interval",
            format!(
                "{} is not an Enhanced Monitoring interval: use 0 (off), 1, 5, 10, 15, 30 or 60 seconds",
                d.monitoring_interval
            ),
        );
    }
    match d.engine {
        DatabaseEngine::AuroraServerlessV2 => {
            if !(0.0..=256.0).contains(&d.min_capacity) || (d.min_capacity * 2.0).fract() != 0.0 {
                problem(
                    p,
                    "database.min_capacity",
                    "Aurora Serverless v2 capacity is 0 to 256 ACUs in steps of 0.5",
                );
            }
            if !(1.0..=256.0).contains(&d.max_capacity)
                || (d.max_capacity * 2.0).fract() != 0.0
                || d.max_capacity < d.min_capacity
            {
                problem(
                    p,
                    "database.max_capacity",
                    "must be 1 to 256 ACUs in steps of 0.5 and not below min_capacity",
                );
            }
        }
        DatabaseEngine::RdsPostgres => {
            let parts: Vec<&str> = d.instance_class.split('.').collect();
            if parts.len() != 3
                || parts[0] != "db"
                || parts.iter().any(|s| {
                    s.is_empty()
                        || !s
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
            {
                problem(
                    p,
                    "database.instance_class",
                    format!(
                        "{:?} is not an RDS instance class such as db.t4g.micro",
                        d.instance_class
                    ),
                );
            }
            if !(20..=65536).contains(&d.storage_gb) {
                problem(p, "database.storage_gb", "RDS storage is 20 to 65536 GiB");
            }
        }
    }
    if !(1..=35).contains(&d.backup_retention_days) {
        problem(
            p,
            "database.backup_retention_days",
            "automated backups are kept 1 to 35 days",
        );
    }
    for (field, value) in [
        ("database.name", &d.name),
        ("database.username", &d.username),
    ] {
        if value.is_empty()
            || value.len() > 63
            || !starts_with_letter(value)
            || !is_alnum_or(value, &['_'])
        {
            problem(
                p,
                field,
                format!(
                    "{value:?} must be 1-63 letters, digits or underscores, starting with a letter"
                ),
            );
        }
    }
    if ["admin", "rdsadmin", "postgres"].contains(&d.username.as_str()) {
        problem(
            p,
            "database.username",
            format!("{:?} is reserved by RDS; use e.g. airflow", d.username),
        );
    }
    // PostgreSQL folds unquoted names to lower case, so `Airflow_App` is the same role.
    if d.username.eq_ignore_ascii_case(AIRFLOW_DATABASE_USER) {
        problem(
            p,
            "database.username",
            format!(
                "{:?} is the database user Airflow connects as, which the migration creates next to the master; the master needs another name, e.g. airflow",
                d.username
            ),
        );
    }
}

fn check_redis(spec: &Spec, p: &mut Problems) {
    let r = &spec.redis;
    match r.engine {
        RedisEngine::Fargate => {
            if r.image.is_empty() || r.image.chars().any(char::is_whitespace) {
                problem(
                    p,
                    "redis.image",
                    "the image must be a non-empty reference without spaces, e.g. public.ecr.aws/docker/library/redis:7.4-alpine",
                );
            }
            check_fargate_size("redis", r.cpu, r.memory, p);
        }
        RedisEngine::Elasticache => {
            if !r.node_type.starts_with("cache.") || r.node_type.split('.').count() != 3 {
                problem(
                    p,
                    "redis.node_type",
                    format!(
                        "{:?} is not a node type such as cache.t4g.micro",
                        r.node_type
                    ),
                );
            }
        }
    }
}

/// The CPU/memory pairs Fargate accepts.
fn fargate_memory_ok(cpu: u32, memory: u32) -> Option<bool> {
    let (lo, hi, step) = match cpu {
        256 => return Some([512, 1024, 2048].contains(&memory)),
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        _ => return None,
    };
    Some((lo..=hi).contains(&memory) && memory.is_multiple_of(step))
}

fn check_fargate_size(prefix: &str, cpu: u32, memory: u32, p: &mut Problems) {
    match fargate_memory_ok(cpu, memory) {
        None => problem(p, &format!("{prefix}.cpu"), format!("{cpu} is not a Fargate CPU size: use 256, 512, 1024, 2048, 4096, 8192 or 16384")),
        Some(false) => problem(
            p,
            &format!("{prefix}.memory"),
            format!("{memory} MiB does not fit {cpu} CPU units on Fargate (256: 512/1024/2048; 512: 1024-4096; 1024: 2048-8192; 2048: 4096-16384, in 1024 steps)"),
        ),
        Some(true) => {}
    }
}

fn check_services(spec: &Spec, p: &mut Problems) {
    let s = &spec.services;
    let named: [(&str, &Service, u32); 4] = [
        ("services.api_server", &s.api_server, 1),
        ("services.scheduler", &s.scheduler, 1),
        ("services.dag_processor", &s.dag_processor, 1),
        ("services.triggerer", &s.triggerer, 0),
    ];
    for (prefix, svc, min) in named {
        check_fargate_size(prefix, svc.cpu, svc.memory, p);
        if svc.count < min || svc.count > 10 {
            problem(
                p,
                &format!("{prefix}.count"),
                format!("must be {min} to 10"),
            );
        }
    }
    check_fargate_size("services.worker", s.worker.cpu, s.worker.memory, p);
    if s.worker.count > 100 {
        problem(p, "services.worker.count", "must be 0 to 100");
    }
    if !(1..=256).contains(&s.worker.concurrency) {
        problem(
            p,
            "services.worker.concurrency",
            "must be 1 to 256 task slots per worker",
        );
    } else if s.worker.memory < worker_memory_floor(s.worker.concurrency) {
        problem(
            p,
            "services.worker.memory",
            format!(
                "{} MiB is too small for concurrency {}: a Celery worker needs about \
                 {WORKER_IDLE_MIB} MiB plus {WORKER_PER_TASK_MIB} MiB per running task even for \
                 the smallest task (measured in the end-to-end run); give it at least {} MiB \
                 or lower services.worker.concurrency",
                s.worker.memory,
                s.worker.concurrency,
                worker_memory_floor(s.worker.concurrency)
            ),
        );
    }
    if s.flower.enabled {
        check_fargate_size("services.flower", s.flower.cpu, s.flower.memory, p);
    }
    if s.packing == Packing::Core {
        check_fargate_size("services.core", s.core.cpu, s.core.memory, p);
        if !(1..=10).contains(&s.core.count) {
            problem(p, "services.core.count", "must be 1 to 10");
        }
    }
}

/// What an idle Airflow 3.3 Celery worker uses (the prefork pool included), and what one
/// running task adds, in MiB: the end-to-end run measured 647-721 MiB idle and 108-117 MiB
/// per running task (`e2e_load`, tests/e2e). A floor for the smallest task; real tasks
/// need more.
const WORKER_IDLE_MIB: u32 = 600;
const WORKER_PER_TASK_MIB: u32 = 120;

/// The least memory a worker with `concurrency` slots can run its smallest tasks in.
fn worker_memory_floor(concurrency: u32) -> u32 {
    WORKER_IDLE_MIB + WORKER_PER_TASK_MIB * concurrency
}

const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

fn check_storage_logs_secrets(spec: &Spec, p: &mut Problems) {
    let st = &spec.storage;
    for (field, prefix) in [
        ("storage.dags_prefix", &st.dags_prefix),
        ("storage.logs_prefix", &st.logs_prefix),
    ] {
        let ok = !prefix.is_empty()
            && prefix
                .split('/')
                .all(|seg| !seg.is_empty() && seg != ".." && seg != ".")
            && is_alnum_or(prefix, &['/', '-', '_', '.']);
        if !ok {
            problem(p, field, format!("{prefix:?} must be a key prefix like `dags` or `team/dags`: letters, digits, - _ . and / between non-empty parts"));
        }
    }
    let (d, l) = (
        format!("{}/", st.dags_prefix),
        format!("{}/", st.logs_prefix),
    );
    if d.starts_with(&l) || l.starts_with(&d) {
        problem(
            p,
            "storage.logs_prefix",
            "must not overlap storage.dags_prefix, or task logs would be parsed as DAGs",
        );
    }
    if !(10..=86_400).contains(&st.dags_refresh_seconds) {
        problem(
            p,
            "storage.dags_refresh_seconds",
            "must be 10 to 86400 seconds",
        );
    }
    if !LOG_RETENTION_DAYS.contains(&spec.logs.retention_days) {
        problem(
            p,
            "logs.retention_days",
            format!(
                "{} is not a CloudWatch retention; valid: {LOG_RETENTION_DAYS:?}",
                spec.logs.retention_days
            ),
        );
    }
    let lengths = airflow_stack_contract::secrets::PASSWORD_LENGTHS;
    if !lengths.contains(&spec.secrets.password_length) {
        problem(
            p,
            "secrets.password_length",
            format!(
                "must be {} to {} characters",
                lengths.start(),
                lengths.end()
            ),
        );
    }
    let token = &spec.secrets.fernet_rotation;
    if token.len() > 64 || !is_alnum_or(token, &['-', '_', '.']) {
        problem(
            p,
            "secrets.fernet_rotation",
            "must be at most 64 letters, digits, - _ or .",
        );
    }
}

/// Autoscaling and alerts: limits, targets, and a network the scaler Lambda can use.
fn check_monitoring(spec: &Spec, p: &mut Problems) {
    let a = &spec.autoscaling;
    if a.enabled {
        if !(1..=100).contains(&a.max_workers) {
            problem(p, "autoscaling.max_workers", "must be 1 to 100 workers");
        }
        if a.min_workers > a.max_workers {
            problem(
                p,
                "autoscaling.min_workers",
                format!(
                    "must be 0 to max_workers ({}); 0 lets idle workers scale to zero",
                    a.max_workers
                ),
            );
        }
        // 0 is allowed: scale-in starts on the first tick that wants fewer workers. It
        // stays safe (workers drain first), only churn-prone for DAGs with gaps.
        if a.cooldown_minutes > 1440 {
            problem(
                p,
                "autoscaling.cooldown_minutes",
                "must be 0 to 1440 minutes",
            );
        }
        // The scaler lowers the count at the earliest one tick (a minute) after
        // tagging, so a drain needs at least two minutes to finish before it expires.
        if !(2..=1440).contains(&a.drain_minutes) {
            problem(p, "autoscaling.drain_minutes", "must be 2 to 1440 minutes");
        }
        // The worker's Celery configuration is the stack's drain hook (see
        // src/stack/services.rs).
        let celery_config = airflow_stack_contract::worker::variable::CELERY_CONFIG_OPTIONS;
        if spec.airflow.extra_env.contains_key(celery_config) {
            problem(
                p,
                &format!("airflow.extra_env.{celery_config}"),
                "with autoscaling on, the stack sets the workers' Celery configuration \
                 (task protection and drain); it cannot be overridden",
            );
        }
    }
    let al = &spec.alerts;
    if al.enabled {
        check_alert_targets(spec, p);
    }
    // A Lambda in a VPC never gets a public IP: in the public-subnets-only shape it has
    // no route to ECS, CloudWatch, DynamoDB or Secrets Manager and every tick would
    // time out. Say so now rather than after a deploy.
    let no_egress = spec.network.vpc_id.is_none() && spec.network.nat_gateways == 0;
    for (field, on) in [
        ("autoscaling.enabled", a.enabled),
        ("alerts.enabled", al.enabled),
    ] {
        if on && no_egress {
            problem(
                p,
                field,
                "the scaler Lambda runs in the VPC and needs a route to AWS APIs, which a created VPC \
                 with network.nat_gateways: 0 does not give it (Lambdas get no public IP); set \
                 network.nat_gateways: 1 (about 33 USD a month plus data), or use an existing VPC \
                 whose subnets have NAT or VPC endpoints",
            );
        }
    }
}

fn check_alert_targets(spec: &Spec, p: &mut Problems) {
    let al = &spec.alerts;
    if al.slack_webhook_secret.is_none() && al.sns_topic.is_none() {
        problem(
            p,
            "alerts",
            "alerts need a target: set slack_webhook_secret and/or sns_topic (`create` or an ARN)",
        );
    }
    if let Some(v) = &al.slack_webhook_secret {
        if v != "create" && !is_arn(v, "secretsmanager") {
            problem(
                p,
                "alerts.slack_webhook_secret",
                format!("{v:?} is neither `create` nor a secret ARN such as arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbCdEf"),
            );
        }
    }
    if let Some(v) = &al.sns_topic {
        if v != "create" && !is_arn(v, "sns") {
            problem(
                p,
                "alerts.sns_topic",
                format!("{v:?} is neither `create` nor a topic ARN such as arn:aws:sns:us-east-1:123456789012:alerts"),
            );
        }
    }
    if let Some(url) = &al.ui_base_url {
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        if !scheme_ok || url.chars().any(char::is_whitespace) || url.len() > 512 {
            problem(
                p,
                "alerts.ui_base_url",
                format!("{url:?} is not an http(s) URL such as https://airflow.example.com"),
            );
        }
    }
}

/// `encryption.kms_key`: `aws-managed`, `create`, or a KMS key ARN in the stack's
/// region (log groups and secrets can only use a key of their own region). An alias ARN
/// is refused: the grants name the key, and an alias can be moved to another key.
fn check_encryption(spec: &Spec, p: &mut Problems) {
    let value = &spec.encryption.kms_key;
    if value == AWS_MANAGED_KEY || value == CREATE_KEY {
        return;
    }
    let example = format!(
        "arn:aws:kms:{}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        spec.region
    );
    let id = value
        .splitn(6, ':')
        .nth(5)
        .and_then(|r| r.strip_prefix("key/"));
    let id_ok = id.is_some_and(|id| !id.is_empty() && is_alnum_or(id, &['-']));
    let resource = value.splitn(6, ':').nth(5).unwrap_or_default();
    if is_arn(value, "kms") && resource.starts_with("alias/") {
        problem(
            p,
            "encryption.kms_key",
            format!("{value:?} is an alias: name the key itself (the grants and the key policy name it, and an alias can be moved to another key), such as {example}"),
        );
    } else if !is_arn(value, "kms") || !id_ok {
        problem(
            p,
            "encryption.kms_key",
            format!("{value:?} is not `aws-managed`, `create` or a KMS key ARN such as {example}"),
        );
    } else if value.split(':').nth(3) != Some(spec.region.as_str()) {
        problem(
            p,
            "encryption.kms_key",
            format!(
                "the key is in another region than the stack ({}): log groups and secrets need a key of their own region, such as {example}",
                spec.region
            ),
        );
    }
}

/// `arn:<partition>:<service>:<region>:<12-digit account>:<resource>`.
fn is_arn(s: &str, service: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == service
        && is_region(parts[3])
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && !parts[5].is_empty()
        && !s.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_key_choices() {
        let problems = |kms_key: &str| {
            let text = format!("name: a\nregion: eu-west-1\nencryption:\n  kms_key: {kms_key}\n");
            let spec: Spec = serde_yaml_ng::from_str(&text).unwrap();
            let mut p = Problems::new();
            check_encryption(&spec, &mut p);
            p
        };
        for ok in [
            "aws-managed",
            "create",
            "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        ] {
            assert!(problems(ok).is_empty(), "{ok}: {:?}", problems(ok));
        }
        for (bad, says) in [
            ("managed", "is not `aws-managed`, `create` or a KMS key ARN"),
            ("arn:aws:kms:eu-west-1:123456789012:key/", "is not"),
            ("arn:aws:kms:eu-west-1:123456789012:alias/a", "is an alias"),
            ("arn:aws:kms:us-east-1:123456789012:key/k", "another region"),
            ("arn:aws:sns:eu-west-1:123456789012:key/k", "is not"),
        ] {
            let p = problems(bad);
            assert!(
                p.len() == 1 && p[0].0 == "encryption.kms_key" && p[0].1.contains(says),
                "{bad}: {p:?}"
            );
        }
    }

    #[test]
    fn arns() {
        assert!(is_arn("arn:aws:sns:us-east-1:123456789012:alerts", "sns"));
        assert!(is_arn(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-AbCdEf",
            "secretsmanager"
        ));
        assert!(!is_arn("arn:aws:sns:us-east-1:1234:alerts", "sns"));
        assert!(!is_arn("arn:aws:sqs:us-east-1:123456789012:alerts", "sns"));
        assert!(!is_arn("create-it", "sns"));
    }

    #[test]
    fn fargate_sizes_follow_the_published_table() {
        assert_eq!(fargate_memory_ok(256, 512), Some(true));
        assert_eq!(fargate_memory_ok(256, 4096), Some(false));
        assert_eq!(fargate_memory_ok(1024, 3072), Some(true));
        assert_eq!(fargate_memory_ok(1024, 3000), Some(false));
        assert_eq!(fargate_memory_ok(8192, 20480), Some(true));
        assert_eq!(fargate_memory_ok(300, 1024), None);
    }

    #[test]
    fn region_names() {
        for ok in ["us-east-1", "eu-west-1", "us-gov-west-1", "ap-southeast-2"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in ["useast1", "US-EAST-1", "us-east", "u-east-1", "us-east-1a"] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn cidr_and_ids() {
        assert!(is_env_key("AIRFLOW__CORE__PARALLELISM"));
        assert!(!is_env_key("airflow__core__fernet_key") && !is_env_key("AIRFLOW__CORE"));
        assert!(
            looks_secret("AIRFLOW__SMTP__SMTP_PASSWORD") && looks_secret("AIRFLOW__X__API_KEY")
        );
        assert!(!looks_secret("AIRFLOW__CORE__PARALLELISM") && !looks_secret("AIRFLOW__X__MONKEY"));
        assert!(is_aws_id("vpc-0a1b2c3d", "vpc-"));
        assert!(!is_aws_id("vpc-XYZ", "vpc-"));
    }
}
