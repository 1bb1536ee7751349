//! Timings and bounds of one invocation.

use std::time::Duration;

use airflow_stack_contract::image_build::MAX_WAIT_SECONDS;

/// Environment variable: seconds between two BatchGetBuilds calls.
pub const POLL_SECONDS_VARIABLE: &str = "IMAGE_BUILD_POLL_SECONDS";
/// Environment variable: hand over once fewer seconds than this are left.
pub const HANDOVER_MARGIN_SECONDS_VARIABLE: &str = "IMAGE_BUILD_HANDOVER_MARGIN_SECONDS";
/// Environment variable: answer FAILED once fewer seconds than this are left.
pub const ANSWER_MARGIN_SECONDS_VARIABLE: &str = "IMAGE_BUILD_ANSWER_MARGIN_SECONDS";

/// Timings and bounds; [`Settings::default`] is what the stack's Lambda uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Pause between two BatchGetBuilds calls.
    pub poll_interval: Duration,
    /// Hand over to a new invocation once less than this is left before the deadline:
    /// enough for one last BatchGetBuilds and the Invoke call.
    pub handover_margin: Duration,
    /// Answer FAILED once less than this is left, whatever is still running: enough for
    /// the response PUT and its retries. Smaller than `handover_margin`.
    pub answer_margin: Duration,
    /// The overall limit across all hops, from the first invocation's StartBuild.
    pub max_wait: Duration,
    /// Give up after this many hand-overs: a guard against a loop. Kept below 16, where
    /// Lambda's recursive loop detection may stop a self-invoking chain, so this message
    /// is what people see. With the default timings the overall limit comes first
    /// (about 4 hops of 14 minutes).
    pub max_hops: u32,
    /// Log lines fetched for a FAILED reason (fewer are kept if they do not fit).
    pub log_tail_lines: i32,
    /// Consecutive BatchGetBuilds errors (or not-found answers) tolerated before
    /// failing.
    pub max_describe_errors: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(15),
            handover_margin: Duration::from_secs(60),
            answer_margin: Duration::from_secs(10),
            max_wait: Duration::from_secs(MAX_WAIT_SECONDS.into()),
            max_hops: 12,
            log_tail_lines: 50,
            max_describe_errors: 8,
        }
    }
}

/// A timing variable that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(String);

impl Settings {
    /// The defaults with the three timings overridden by the function's environment,
    /// when set. The stack sets none of them; a test that runs the Lambda with a short
    /// timeout (to prove the hand-over) shortens them so several hops fit in seconds.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut settings = Self::default();
        let seconds = |name: &str, current: Duration| -> Result<Duration, SettingsError> {
            match lookup(name) {
                None => Ok(current),
                Some(raw) => raw
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=900).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        SettingsError(format!("{name} must be whole seconds from 1 to 900"))
                    }),
            }
        };
        settings.poll_interval = seconds(POLL_SECONDS_VARIABLE, settings.poll_interval)?;
        settings.handover_margin =
            seconds(HANDOVER_MARGIN_SECONDS_VARIABLE, settings.handover_margin)?;
        settings.answer_margin = seconds(ANSWER_MARGIN_SECONDS_VARIABLE, settings.answer_margin)?;
        if settings.answer_margin >= settings.handover_margin {
            return Err(SettingsError(format!(
                "{ANSWER_MARGIN_SECONDS_VARIABLE} must be smaller than \
                 {HANDOVER_MARGIN_SECONDS_VARIABLE}: the hand-over must happen before the \
                 last-moment answer"
            )));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_the_timings() {
        let env = |name: &str| match name {
            POLL_SECONDS_VARIABLE => Some("1".to_owned()),
            HANDOVER_MARGIN_SECONDS_VARIABLE => Some("4".to_owned()),
            ANSWER_MARGIN_SECONDS_VARIABLE => Some("2".to_owned()),
            _ => None,
        };
        let settings = Settings::from_env(env).unwrap();
        assert_eq!(settings.poll_interval, Duration::from_secs(1));
        assert_eq!(settings.handover_margin, Duration::from_secs(4));
        assert_eq!(settings.answer_margin, Duration::from_secs(2));
        let defaults = Settings::from_env(|_| None).unwrap();
        assert_eq!(defaults.poll_interval, Duration::from_secs(15));
    }

    #[test]
    fn unusable_timings_are_refused() {
        let bad = |value: &'static str| {
            move |name: &str| (name == POLL_SECONDS_VARIABLE).then(|| value.to_owned())
        };
        for value in ["0", "x", "-1", "901"] {
            assert!(Settings::from_env(bad(value)).is_err(), "{value}");
        }
        let inverted = |name: &str| (name == ANSWER_MARGIN_SECONDS_VARIABLE).then(|| "60".into());
        assert!(Settings::from_env(inverted).is_err());
    }
}
