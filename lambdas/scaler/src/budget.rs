//! The invocation's time budget. Lambda stops an invocation at its deadline without
//! warning, in the middle of whatever it was doing; a tick therefore starts no new
//! unit of work (another page of task instances, another alert) once less than
//! [`RESERVE`] remains, and says so in its report instead of being cut off.

use std::time::{Duration, Instant, SystemTime};

/// What a tick keeps in hand: enough for the unit of work already started (an HTTP
/// call has a 15 s timeout, but its connect timeout is 5 s and the calls made once
/// the budget is short are small writes) plus the final state and metric writes.
pub const RESERVE: Duration = Duration::from_secs(10);

/// When the invocation ends, if it ends at all (tests and local runs have no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// No limit.
    pub fn unlimited() -> Deadline {
        Deadline { at: None }
    }

    /// `remaining` from now.
    pub fn after(remaining: Duration) -> Deadline {
        Deadline {
            at: Some(Instant::now() + remaining),
        }
    }

    /// The wall-clock deadline Lambda gives in the invocation context
    /// (`lambda_runtime::Context::deadline`), turned into the monotonic clock so a
    /// clock adjustment during the tick does not move it. A deadline already past
    /// leaves nothing.
    pub fn from_system_time(deadline: SystemTime) -> Deadline {
        let remaining = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Deadline::after(remaining)
    }

    /// Time left, `None` when unlimited.
    pub fn remaining(&self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether a new unit of work may start: more than [`RESERVE`] is left.
    pub fn has_room(&self) -> bool {
        self.remaining().is_none_or(|left| left > RESERVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_runs_out_at_the_reserve() {
        assert!(Deadline::unlimited().has_room());
        assert!(Deadline::after(Duration::from_secs(60)).has_room());
        assert!(!Deadline::after(Duration::from_secs(9)).has_room());
        assert!(!Deadline::after(Duration::ZERO).has_room());
        let past = SystemTime::now() - Duration::from_secs(1);
        assert!(!Deadline::from_system_time(past).has_room());
        let later = SystemTime::now() + Duration::from_secs(900);
        let left = Deadline::from_system_time(later).remaining().unwrap();
        assert!(left > Duration::from_secs(890) && left <= Duration::from_secs(900));
    }
}
