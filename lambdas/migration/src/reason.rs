//! FAILED reasons that carry the end of the task's log and still fit the response.
//!
//! CloudFormation rejects responses over 4,096 bytes, and cfn-custom-resource cuts a
//! `Reason` to its first 1,024 characters, which would keep the oldest log lines and
//! drop the error at the end. So the reason is assembled here from the newest lines
//! backwards, measured against the real serialised response.

/// Longest `Reason`, in characters, that cfn-custom-resource sends uncut.
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
/// colours, tabs) become spaces, trailing whitespace goes, long lines are cut.
fn clean_line(line: &str) -> String {
    let visible: String = line
        .trim_end()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if visible.chars().count() <= MAX_LINE_CHARS {
        return visible;
    }
    let cut: String = visible.chars().take(MAX_LINE_CHARS - 3).collect();
    format!("{cut}...")
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
    fn nothing_fits_gives_the_headline() {
        let lines = vec!["a".to_string()];
        assert_eq!(with_log_tail("h", &lines, |_| false), "h");
    }
}
