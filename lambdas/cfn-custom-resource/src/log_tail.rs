//! FAILED reasons that carry the end of a log and still fit the response.
//!
//! CloudFormation rejects responses over 4,096 bytes, and [`crate::response`] cuts a
//! `Reason` to its first 1,024 characters, which would keep the oldest log lines and
//! drop the error at the end. So the reason is assembled here from the newest lines
//! backwards, measured against the real serialised response. Every line is cleaned
//! (control characters, length) and anything shaped like a secret is redacted: stack
//! events keep the reason for 90 days, readable by anyone who may describe the stack.
//!
//! Shared by the Lambdas that wait for something with a log (the migration's ECS task,
//! the image build's CodeBuild build).

/// Longest `Reason`, in characters, that [`crate::ResponseDocument::failed`] sends uncut.
pub const MAX_REASON_CHARS: usize = 1024;

/// Longest single log line kept; a stack trace line longer than this is cut.
const MAX_LINE_CHARS: usize = 300;

/// Joins `headline` and as many of the newest `lines` as `fits` accepts (oldest of the
/// kept lines first). `fits` is asked about whole candidate reasons, so it can measure
/// the exact serialised response.
pub fn with_log_tail(headline: &str, lines: &[String], fits: impl Fn(&str) -> bool) -> String {
    let cleaned: Vec<String> = lines.iter().map(|l| clean_line(l)).collect();
    let mut best = headline.to_owned();
    for start in (0..cleaned.len()).rev() {
        let candidate = format!("{headline}\n{}", cleaned[start..].join("\n"));
        if candidate.chars().count() > MAX_REASON_CHARS || !fits(&candidate) {
            break;
        }
        best = candidate;
    }
    best
}

/// One log line made safe and short for a stack event: control characters (ANSI
/// colours, tabs) become spaces, anything shaped like a secret is redacted, trailing
/// whitespace goes, long lines are cut.
fn clean_line(line: &str) -> String {
    let visible: String = line
        .trim_end()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let visible = redact_secret_shapes(&visible);
    if visible.chars().count() <= MAX_LINE_CHARS {
        return visible;
    }
    let cut: String = visible.chars().take(MAX_LINE_CHARS - 3).collect();
    format!("{cut}...")
}

/// What replaces a redacted value.
const REDACTED: &str = "[redacted]";

/// Shortest run of characters taken for a generated secret: the stack's passwords are
/// at least 16 alphanumerics (`PASSWORD_LENGTHS`), the API and JWT secrets 86, a Fernet
/// key 44 characters of URL-safe base64; access keys and tokens are longer still.
const SECRET_MIN_CHARS: usize = 16;

/// Redacts what could be a secret. CloudFormation keeps stack events (and so this
/// reason) for 90 days, visible to anyone who may describe the stack, and a failing
/// migration may print its database URL, a failing build a registry credential. The
/// Lambdas may not read the secrets, on purpose, so they cannot compare with their
/// values; this redacts by shape instead:
/// - the password in a URL's user info (`scheme://user:password@host`);
/// - the value assigned to a name that says it is secret (`password=...`,
///   `DB_PASSWORD: ...`, `token=...`), however short or plain;
/// - every run of at least [`SECRET_MIN_CHARS`] letters, digits and `-_+/=` that mixes
///   upper case, lower case and digits (a generated password, a Fernet key). Task ids,
///   hashes and words are lower case or single-case, so they stay readable.
fn redact_secret_shapes(line: &str) -> String {
    let line = redact_assignments(&redact_url_passwords(line));
    let is_secret_char = |c: char| c.is_ascii_alphanumeric() || "-_+/=".contains(c);
    let mut out = String::with_capacity(line.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let mixed = run.chars().any(|c| c.is_ascii_uppercase())
            && run.chars().any(|c| c.is_ascii_lowercase())
            && run.chars().any(|c| c.is_ascii_digit());
        if run.chars().count() >= SECRET_MIN_CHARS && mixed {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in line.chars() {
        if is_secret_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Names whose value is a secret whatever it looks like, matched case-insensitively as a
/// whole word or after `_`/`-` (`DB_PASSWORD`, `docker-password`), followed by `=` or `:`.
/// A name running on (`secretsmanager:GetSecretValue`, `tokenizer:`) is not one, so IAM
/// messages stay readable. The first is the key under which our own secrets hold a
/// password (the contract's spelling, so a renamed key stays redacted).
const SECRET_NAMES: [&str; 6] = [
    airflow_stack_contract::secrets::key::PASSWORD,
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
];

/// `password=hunter2` becomes `password=[redacted]` (also with `:`, spaces and quotes).
fn redact_assignments(line: &str) -> String {
    // ASCII lower-casing keeps every byte offset, so offsets in `lower` index `line`.
    let lower = line.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some((start, name)) = next_secret_name(&lower, from) {
        from = start + name.len();
        let before_ok = start == 0 || {
            let b = bytes[start - 1];
            !b.is_ascii_alphanumeric() || b == b'_'
        };
        let mut i = start + name.len();
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if !before_ok || i >= bytes.len() || !matches!(bytes[i], b'=' | b':') {
            continue;
        }
        i += 1;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'"' | b'\'') {
            i += 1;
        }
        let end = lower[i..]
            .find(|c: char| c.is_whitespace() || "\"',;&".contains(c))
            .map_or(lower.len(), |n| i + n);
        if end > i && &line[i..end] != REDACTED {
            out.push_str(&line[copied..i]);
            out.push_str(REDACTED);
            copied = end;
            from = end;
        }
    }
    out.push_str(&line[copied..]);
    out
}

/// The first of [`SECRET_NAMES`] at or after `from` in `lower`: (offset, name).
fn next_secret_name(lower: &str, from: usize) -> Option<(usize, &'static str)> {
    SECRET_NAMES
        .iter()
        .filter_map(|name| lower[from..].find(name).map(|at| (from + at, *name)))
        .min_by_key(|(at, name)| (*at, std::cmp::Reverse(name.len())))
}

/// `scheme://user:password@` becomes `scheme://user:[redacted]@`, whatever the password.
fn redact_url_passwords(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', ' ', '?', '#']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_lines_that_fit() {
        let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        let reason = with_log_tail("failed", &lines, |r| r.len() <= 37);
        assert_eq!(reason, "failed\nline 97\nline 98\nline 99");
    }

    #[test]
    fn strips_control_characters_and_cuts_long_lines() {
        let lines = vec!["\u{1b}[31mred\tx\r".to_string(), "y".repeat(1000)];
        let reason = with_log_tail("h", &lines, |_| true);
        assert!(reason.starts_with("h\n"));
        assert!(reason.contains(" [31mred x"));
        assert!(reason.chars().count() <= MAX_REASON_CHARS);
        assert!(reason.ends_with("..."));
    }

    #[test]
    fn secret_shaped_values_never_reach_the_reason() {
        let password = "q7XkP2mZr9TbW4nLs8VyC3dF";
        let fernet = "Zq3x-9_Ab4CdEf5GhIj6KlMn7OpQr8StUv9WxYz0ab1=";
        let lines = vec![
            format!("sqlalchemy.exc.OperationalError: postgresql+psycopg2://airflow:{password}@db.internal:5432/airflow"),
            format!("redis://:{password}@redis.airflow:6379/0 refused"),
            format!("InvalidToken with key {fernet}"),
            "task 0123456789abcdef0123456789abcdef exited 1: ERROR relation \"dag\" does not exist".to_string(),
        ];
        let reason = with_log_tail("migration failed", &lines, |_| true);
        assert!(
            !reason.contains(password) && !reason.contains(fernet),
            "{reason}"
        );
        assert!(
            reason.contains("postgresql+psycopg2://airflow:[redacted]@db.internal:5432/airflow")
        );
        assert!(reason.contains("redis://:[redacted]@redis.airflow:6379/0 refused"));
        assert!(reason.contains("InvalidToken with key [redacted]"));
        // What explains the failure stays readable.
        assert!(reason.contains(
            "task 0123456789abcdef0123456789abcdef exited 1: ERROR relation \"dag\" does not exist"
        ));
        assert!(reason.contains("sqlalchemy.exc.OperationalError"));
    }

    #[test]
    fn values_of_secret_names_are_redacted_and_iam_messages_are_not() {
        let lines = vec![
            "export DB_PASSWORD=hunter2 && run".to_string(),
            "login with password: 'hunter2', token=abc123; next".to_string(),
            "docker-password = s3cr3t".to_string(),
            "User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: \
             secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:r:1:secret:x"
                .to_string(),
            "the tokenizer: fine; NextToken: abc".to_string(),
        ];
        let reason = with_log_tail("h", &lines, |_| true);
        assert!(
            !reason.contains("hunter2") && !reason.contains("s3cr3t"),
            "{reason}"
        );
        assert!(
            reason.contains("export DB_PASSWORD=[redacted] && run"),
            "{reason}"
        );
        assert!(
            reason.contains("password: '[redacted]', token=[redacted]; next"),
            "{reason}"
        );
        assert!(reason.contains("docker-password = [redacted]"), "{reason}");
        assert!(
            reason.contains("secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager"),
            "{reason}"
        );
        assert!(
            reason.contains("the tokenizer: fine; NextToken: abc"),
            "{reason}"
        );
    }

    #[test]
    fn nothing_fits_gives_the_headline() {
        let lines = vec!["a".to_string()];
        assert_eq!(with_log_tail("h", &lines, |_| false), "h");
    }
}
