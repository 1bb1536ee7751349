//! Live progress of a stack operation: one line per resource event, deduplicated,
//! with the elapsed time of each resource; a spinner on a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use owo_colors::{OwoColorize, Stream};

use crate::aws::stack::{format_duration, Event};

/// Turns events into lines and remembers when each resource started.
#[derive(Default)]
pub struct EventLog {
    started: HashMap<String, f64>,
    done: usize,
}

impl EventLog {
    /// The line for an event; `None` for events not worth a line (the stack's own
    /// in-progress events).
    pub fn line(&mut self, e: &Event) -> Option<String> {
        let is_stack = e.resource_type == "AWS::CloudFormation::Stack";
        if e.status.ends_with("_IN_PROGRESS") {
            // Each operation on a resource (a create, then a rollback's delete) is
            // timed from its own start.
            self.started.insert(e.logical_id.clone(), e.timestamp);
            if is_stack {
                return None;
            }
        }
        let took = match self.started.get(&e.logical_id) {
            Some(start) if !e.status.ends_with("_IN_PROGRESS") && !is_stack => {
                format!(" ({})", format_duration(e.timestamp - start))
            }
            _ => String::new(),
        };
        if e.status.ends_with("_COMPLETE") && !is_stack {
            self.done += 1;
        }
        let reason = if e.reason.is_empty() || e.status.ends_with("_COMPLETE") {
            String::new()
        } else {
            format!(": {}", e.reason)
        };
        Some(format!(
            "{} | {:<28} | {:<40} | {}{took}{reason}",
            clock(e.timestamp),
            e.status,
            e.resource_type,
            e.logical_id
        ))
    }

    /// Resources that reached a `*_COMPLETE` state.
    pub fn done(&self) -> usize {
        self.done
    }
}

/// `HH:MM:SS` (UTC) of an epoch timestamp.
fn clock(ts: f64) -> String {
    let s = ts.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Prints progress lines: above a spinner on a terminal, plainly otherwise (CI logs).
pub struct Progress {
    bar: Option<ProgressBar>,
    log: EventLog,
    total: usize,
}

impl Progress {
    /// Progress over `total` resources.
    pub fn new(what: &str, total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar.set_message(what.to_string());
            bar
        });
        Progress {
            bar,
            log: EventLog::default(),
            total,
        }
    }

    /// Shows one event.
    pub fn event(&mut self, e: &Event) {
        let Some(line) = self.log.line(e) else { return };
        let line = if e.status.ends_with("_FAILED") {
            line.if_supports_color(Stream::Stderr, |l| l.red())
                .to_string()
        } else {
            line
        };
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.set_message(format!(
                    "{}/{} resources done, last: {}",
                    self.log.done(),
                    self.total,
                    e.logical_id
                ));
            }
            None => eprintln!("{line}"),
        }
    }

    /// Removes the spinner.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The first resource failure of an operation: the cause, not the cancellations it
/// triggered.
pub fn first_failure(events: &[Event]) -> Option<&Event> {
    let failures: Vec<&Event> = events.iter().filter(|e| e.is_failure()).collect();
    failures
        .iter()
        .find(|e| !e.reason.contains("cancelled"))
        .or(failures.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use airflow_stack_contract::migration::RESOURCE_TYPE as MIGRATION;

    fn event(id: &str, ts: f64, logical: &str, kind: &str, status: &str, reason: &str) -> Event {
        Event {
            id: id.into(),
            timestamp: ts,
            logical_id: logical.into(),
            resource_type: kind.into(),
            status: status.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn completion_lines_carry_the_resource_elapsed_time() {
        let mut log = EventLog::default();
        let start = event(
            "1",
            3600.0,
            "Migration",
            MIGRATION,
            "CREATE_IN_PROGRESS",
            "",
        );
        let done = event("2", 3725.0, "Migration", MIGRATION, "CREATE_COMPLETE", "");
        assert_eq!(
            log.line(&start).unwrap(),
            format!(
                "01:00:00 | {:<28} | {:<40} | Migration",
                "CREATE_IN_PROGRESS", MIGRATION
            )
        );
        assert!(log.line(&done).unwrap().ends_with("| Migration (2m05s)"));
        assert_eq!(log.done(), 1);
    }

    #[test]
    fn failures_show_the_reason_and_stack_progress_is_quiet() {
        let mut log = EventLog::default();
        assert!(log
            .line(&event(
                "1",
                0.0,
                "s",
                "AWS::CloudFormation::Stack",
                "CREATE_IN_PROGRESS",
                "User Initiated"
            ))
            .is_none());
        let line = log
            .line(&event(
                "2",
                1.0,
                "Db",
                "AWS::RDS::DBInstance",
                "CREATE_FAILED",
                "quota exceeded",
            ))
            .unwrap();
        assert!(line.ends_with("| Db: quota exceeded"), "{line}");
    }

    #[test]
    fn the_first_real_failure_is_reported_not_the_cancellations() {
        let events = vec![
            event(
                "1",
                1.0,
                "A",
                "T",
                "CREATE_FAILED",
                "Resource creation cancelled",
            ),
            event(
                "2",
                2.0,
                "B",
                "AWS::RDS::DBInstance",
                "CREATE_FAILED",
                "Invalid DB instance class",
            ),
            event(
                "3",
                3.0,
                "s",
                "AWS::CloudFormation::Stack",
                "ROLLBACK_IN_PROGRESS",
                "The following resource(s) failed",
            ),
        ];
        assert_eq!(first_failure(&events).unwrap().logical_id, "B");
        assert!(first_failure(&events[2..]).is_none());
    }
}
