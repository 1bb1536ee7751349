//! Every name the CLI and the Lambdas exchange is spelled once, in this crate.
//!
//! The names: custom-resource types and property names, the scaler's settings
//! (environment variables), the JSON keys of the secrets, the scaler's metric names and
//! state table key, the worker container's drain variables and the drain tag key. They are taken from the contract's own serialisers (every property
//! and variable set), not from a list that could be forgotten.
//!
//! Three checks:
//! - [`no_contract_name_is_spelled_by_both_the_cli_and_a_lambda`]: issue 14's bar, no
//!   name appears as a string literal both in the CLI's code (`src/**`) and in a
//!   Lambda's (`lambdas/*/src/**`);
//! - [`the_lambdas_spell_no_contract_name`]: stricter on the Lambda side, no name at all;
//! - [`the_cli_spells_no_contract_name_of_ours`]: stricter on the CLI side, no name
//!   that is ours alone. Names that are also AWS's vocabulary (`Cluster`, `Image`,
//!   `Subnets`, `password`: whatever the generated AWS types under `src/cfn/l1/` spell)
//!   cannot be told apart from AWS's own by their spelling (`Cluster` is also an ECS
//!   property and a logical id), so this check leaves them to the other two.
//!
//! What counts:
//! - string literals only (plain, raw, byte), found by a small Rust lexer; comments and
//!   doc comments do not count: a doc that quotes the wire format helps the reader and
//!   cannot break a deploy;
//! - a literal spells a name when it is the name, holds it in double quotes (JSON text
//!   in a raw string, `r#"{"DbUser": ...}"#`), or holds it as one of the two secret
//!   reference forms (`:<key>::` for ECS, `SecretString:<key>` for CloudFormation);
//!   prose that merely contains the word (an error message, a description) does not.
//!
//! A line that spells a contract name with another meaning (a stack output that happens
//! to be called like a property, say) carries a trailing `// one-spelling: <why>`
//! comment; its literals are not counted. The reason is required.
//!
//! What is scanned: the crates' sources, inline unit tests included (`src/**`,
//! `lambdas/*/src/**`). The generated AWS types (`src/cfn/l1/`) are AWS's vocabulary,
//! not a spelling of ours. Integration tests (`tests/` and
//! `lambdas/*/tests/`) build events and templates by hand on purpose: they check the
//! wire format independently of this crate, so that renaming a property here (which
//! would break stacks already deployed, whose old properties keep the old name) fails
//! a test instead of passing silently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use airflow_stack_contract::image_build::{self, ImageBuildProperties};
use airflow_stack_contract::migration::{self, MigrationProperties};
use airflow_stack_contract::scaler::{self, Alerts, Autoscaling, ScalerSettings};
use airflow_stack_contract::secrets::{self, ConnectionUrlsProperties, Secret, SecretsProperties};
use airflow_stack_contract::worker;

/// Every name of the contract, from the serialisers with every optional part present.
fn contract_names() -> BTreeSet<String> {
    let s = || "x".to_owned();
    let mut names = BTreeSet::new();
    let secrets = SecretsProperties {
        fernet_key_secret_arn: s(),
        signing_keys_secret_arn: s(),
        database_secret_arn: s(),
        redis_secret_arn: s(),
        admin_password_secret_arn: s(),
        scaler_password_secret_arn: Some(s()),
        streams_password_secret_arn: Some(s()),
        password_length: 32,
        fernet_rotation: Some(s()),
    };
    names.extend(secrets.to_properties().into_keys().map(str::to_owned));
    let urls = ConnectionUrlsProperties {
        database_secret_arn: s(),
        redis_secret_arn: s(),
        db_user: s(),
        db_host: s(),
        db_port: s(),
        db_name: s(),
        db_ssl_mode: Some(s()),
        redis_host: s(),
        redis_port: s(),
        redis_tls: true,
        redis_db: 0,
    };
    names.extend(urls.to_properties().into_keys().map(str::to_owned));
    let migration = MigrationProperties {
        cluster: s(),
        task_definition: s(),
        container_name: s(),
        subnets: vec![s()],
        security_groups: vec![s()],
        assign_public_ip: true,
        log_group_name: s(),
        log_stream_prefix: s(),
        airflow_version: Some(s()),
        image: Some(s()),
        database_host: Some(s()),
        max_wait_seconds: 1,
    };
    names.extend(migration.to_properties().into_keys().map(str::to_owned));
    let image = ImageBuildProperties {
        project_name: s(),
        repository_name: s(),
        image_tag: s(),
        source_location: s(),
    };
    names.extend(image.to_properties().into_keys().map(str::to_owned));
    let scaler = ScalerSettings {
        airflow_api_url: s(),
        api_username: s(),
        api_password_secret_arn: s(),
        stack_name: s(),
        state_table: s(),
        metric_namespace: s(),
        autoscaling: Some(Autoscaling {
            cluster: s(),
            worker_service: s(),
            worker_concurrency: 1,
            min_workers: 0,
            max_workers: 1,
            cooldown_minutes: 1,
            drain_minutes: 1,
            worker_queues: vec!["q".into()],
        }),
        alerts: Some(Alerts {
            ui_base_url: s(),
            slack_secret_arn: Some(s()),
            sns_topic_arn: Some(s()),
        }),
    };
    names.extend(scaler.to_environment().into_keys().map(str::to_owned));
    names.extend(
        worker::environment("x")
            .into_iter()
            .map(|(name, _)| name.to_owned()),
    );
    for secret in Secret::ALL {
        names.extend(secret.json_keys().iter().map(|k| (*k).to_owned()));
    }
    names.extend(
        [
            secrets::SECRETS_RESOURCE_TYPE,
            secrets::CONNECTION_URLS_RESOURCE_TYPE,
            migration::RESOURCE_TYPE,
            image_build::RESOURCE_TYPE,
            image_build::IMAGE_URI_ATTRIBUTE,
            image_build::IMAGE_TAG_VARIABLE,
            scaler::STATE_TABLE_KEY,
            scaler::metrics::NAMESPACE,
            scaler::metrics::STACK_DIMENSION,
            scaler::metrics::QUEUED_TASKS,
            scaler::metrics::RUNNING_TASKS,
            scaler::metrics::DESIRED_WORKERS,
            worker::DRAIN_TAG,
            worker::MODULE_FILE,
            worker::CELERY_CONFIG,
        ]
        .map(str::to_owned),
    );
    names
}

/// The string literals of Rust source text, each with its 1-based line.
///
/// Skips line, block (nested) and doc comments, char literals (`'"'`) and lifetimes;
/// reads `"…"`, `b"…"`, `c"…"` and raw `r#"…"#` forms. Escapes are kept as written,
/// which is enough to compare names (they have no escapes).
fn string_literals(source: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = source.chars().collect();
    let mut literals = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let after_ident = i > 0 && is_ident(chars[i - 1]);
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '\'' {
            // A char literal ('x', '"', '\'', '\u{..}') or a lifetime/label ('a).
            if next == Some('\\') {
                // Skip the quote, the backslash and the escaped char, then to the end.
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if !after_ident && raw_string_start(&chars, i).is_some() {
            let (hashes, body) = raw_string_start(&chars, i).expect("checked");
            let start_line = line;
            let mut j = body;
            let mut text = String::new();
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (1..=hashes).all(|h| chars.get(j + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                if chars[j] == '\n' {
                    line += 1;
                }
                text.push(chars[j]);
                j += 1;
            }
            literals.push((start_line, text));
            i = j;
        } else if c == '"' || (!after_ident && matches!(c, 'b' | 'c') && next == Some('"')) {
            let start_line = line;
            let mut j = if c == '"' { i + 1 } else { i + 2 };
            let mut text = String::new();
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    text.push(chars[j]);
                    j += 1;
                }
                if chars.get(j) == Some(&'\n') {
                    line += 1;
                }
                if let Some(&ch) = chars.get(j) {
                    text.push(ch);
                }
                j += 1;
            }
            literals.push((start_line, text));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    literals
}

/// At `r"`, `r#"`, `br#"`, `cr"`...: the number of `#` and where the body starts.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if matches!(chars.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some((hashes, j + 1))
}

/// Whether a literal spells `name` (see the module docs).
fn spells(literal: &str, name: &str) -> bool {
    literal == name
        || literal.contains(&format!("\"{name}\""))
        || literal.contains(&format!("\\\"{name}\\\""))
        || literal.contains(&format!(":{name}::"))
        || literal.contains(&format!("SecretString:{name}"))
}

/// The trailing comment that exempts a line (with a reason after it).
const EXEMPTION: &str = "// one-spelling:";

/// `.rs` files under `dir`, recursively, skipping build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// For each contract name spelled in `files`: where (`path:line`).
fn spellings(
    root: &Path,
    files: &[PathBuf],
    names: &BTreeSet<String>,
) -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("readable source");
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let exempt: BTreeSet<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                l.split_once(EXEMPTION)
                    .is_some_and(|(_, why)| !why.trim().is_empty())
            })
            .map(|(i, _)| i + 1)
            .collect();
        for (line, literal) in string_literals(&text) {
            if exempt.contains(&line) {
                continue;
            }
            for name in names {
                if spells(&literal, name) {
                    found
                        .entry(name.clone())
                        .or_default()
                        .push(format!("{shown}:{line}"));
                }
            }
        }
    }
    found
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// The generated AWS types: AWS's vocabulary (see the module docs).
const GENERATED_AWS_TYPES: &str = "src/cfn/l1";

/// The sources of each side, and the generated AWS types.
struct Sources {
    root: PathBuf,
    cli: Vec<PathBuf>,
    lambdas: Vec<PathBuf>,
    aws_types: Vec<PathBuf>,
}

fn sources() -> Sources {
    let root = workspace_root();
    let mut all_cli = Vec::new();
    rust_files(&root.join("src"), &mut all_cli);
    let generated = root.join(GENERATED_AWS_TYPES);
    let (aws_types, cli): (Vec<PathBuf>, Vec<PathBuf>) =
        all_cli.into_iter().partition(|p| p.starts_with(&generated));
    let mut lambdas = Vec::new();
    for entry in std::fs::read_dir(root.join("lambdas"))
        .expect("lambdas/")
        .flatten()
    {
        rust_files(&entry.path().join("src"), &mut lambdas);
    }
    // A scan that found nothing to read would pass for the wrong reason.
    assert!(
        cli.len() >= 10,
        "too few CLI sources under {}",
        root.display()
    );
    assert!(lambdas.len() >= 10, "too few Lambda sources");
    Sources {
        root,
        cli,
        lambdas,
        aws_types,
    }
}

/// `  "Name"\n    <side>: places` for each entry.
fn report(found: &BTreeMap<String, Vec<String>>, side: &str) -> String {
    found
        .iter()
        .map(|(name, places)| format!("  {name:?}\n    {side}: {}", places.join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_contract_name_is_spelled_by_both_the_cli_and_a_lambda() {
    let s = sources();
    let names = contract_names();
    let in_cli = spellings(&s.root, &s.cli, &names);
    let in_lambdas = spellings(&s.root, &s.lambdas, &names);
    let both: Vec<String> = in_cli
        .iter()
        .filter_map(|(name, cli_places)| {
            let lambda_places = in_lambdas.get(name)?;
            Some(format!(
                "  {name:?}\n    CLI:    {}\n    Lambda: {}",
                cli_places.join(", "),
                lambda_places.join(", ")
            ))
        })
        .collect();
    assert!(
        both.is_empty(),
        "{} name(s) of the contract are spelled as string literals by both the CLI and a \
         Lambda; use the airflow-stack-contract item instead on both sides:\n{}",
        both.len(),
        both.join("\n")
    );
}

#[test]
fn the_lambdas_spell_no_contract_name() {
    let s = sources();
    let found = spellings(&s.root, &s.lambdas, &contract_names());
    assert!(
        found.is_empty(),
        "Lambda code spells names of the contract; use the airflow-stack-contract item:\n{}",
        report(&found, "Lambda")
    );
}

#[test]
fn the_cli_spells_no_contract_name_of_ours() {
    let s = sources();
    let names = contract_names();
    let aws_vocabulary: BTreeSet<String> = spellings(&s.root, &s.aws_types, &names)
        .into_keys()
        .collect();
    let ours: BTreeSet<String> = names.difference(&aws_vocabulary).cloned().collect();
    // Most names are ours alone; if the generated types ever spelled nearly all of
    // them, this check would pass for the wrong reason.
    assert!(ours.len() > names.len() / 2, "ours: {ours:?}");
    let found = spellings(&s.root, &s.cli, &ours);
    assert!(
        found.is_empty(),
        "CLI code spells names of the contract; use the airflow-stack-contract item (see \
         crates/contract/src/lib.rs):\n{}",
        report(&found, "CLI")
    );
}

#[test]
fn the_names_come_from_every_part_of_the_contract() {
    let names = contract_names();
    for sample in [
        "FernetKeySecretArn",
        "RedisDb",
        "MaxWaitSeconds",
        "AirflowVersion",
        "COOLDOWN_MINUTES",
        "DRAIN_MINUTES",
        "AIRFLOW_STACK_WORKER_MODULE",
        "airflow-stack:drain",
        "SNS_TOPIC_ARN",
        "sql_alchemy_conn",
        "Custom::AirflowMigration",
        "pk",
    ] {
        assert!(names.contains(sample), "{sample}");
    }
}

#[test]
fn the_scan_finds_the_contract_s_own_spellings() {
    // The contract spells every name once: the scanner must see them there.
    let root = workspace_root();
    let mut contract = Vec::new();
    rust_files(&root.join("crates/contract/src"), &mut contract);
    let names = contract_names();
    let found = spellings(&root, &contract, &names);
    let missing: Vec<&String> = names.iter().filter(|n| !found.contains_key(*n)).collect();
    assert!(missing.is_empty(), "not found in the contract: {missing:?}");
}

#[test]
fn the_lexer_reads_literals_and_skips_comments() {
    let source = r####"
        // "InALineComment"
        /// "InADocComment"
        /* "InABlock" /* "Nested" */ "StillInTheBlock" */
        let a = "Plain";
        let b = '"'; let c = "AfterAQuoteChar"; let q = '\''; let u = '\u{22}';
        fn f<'a>(x: &'a str) -> &'a str { "AfterALifetime" }
        let d = r#"{"InRaw": "x"}"#;
        let e = b"Bytes";
        let g = "escaped \" quote";
        let h = r#type;
        let i = "Last";
    "####;
    let literals: Vec<String> = string_literals(source)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(
        literals,
        [
            "Plain",
            "AfterAQuoteChar",
            "AfterALifetime",
            "{\"InRaw\": \"x\"}",
            "Bytes",
            "escaped \\\" quote",
            "Last",
        ]
    );
    assert_eq!(string_literals("\n\n\"x\"")[0].0, 3, "lines are counted");
}

#[test]
fn an_exempt_line_needs_a_reason() {
    let dir = std::env::temp_dir().join(format!("one-spelling-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("x.rs");
    std::fs::write(
        &file,
        "let a = \"DbHost\"; // one-spelling: a different DbHost\n\
         let b = \"DbPort\"; // one-spelling:\n",
    )
    .unwrap();
    let names: BTreeSet<String> = ["DbHost", "DbPort"].map(str::to_owned).into();
    let found = spellings(&dir, &[file], &names);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), ["DbPort"]);
}

#[test]
fn a_name_counts_when_it_is_the_literal_or_quoted_or_a_secret_reference() {
    assert!(spells("DbUser", "DbUser"));
    assert!(spells("{\"DbUser\": \"x\"}", "DbUser"));
    assert!(spells(":password::", "password"));
    assert!(spells(
        "{{resolve:secretsmanager:arn:SecretString:password}}",
        "password"
    ));
    assert!(!spells("the admin password is wrong", "password"));
    assert!(!spells("DbUserName", "DbUser"));
}
