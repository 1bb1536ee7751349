//! The `airflow-scaler` Lambda, run every minute by an EventBridge schedule inside the
//! stack's VPC. Each tick it logs in to the api-server (through Cloud Map) and
//!
//! - [`scaling`]: sets the Celery worker service's desired count to
//!   ceil((queued + running) / worker_concurrency) within [min, max], never below the
//!   busy workers, scaling in only after a cool-down and a drain: the workers it
//!   chose are tagged, stop consuming, and only once they are idle and unprotected is
//!   the count lowered, with the other workers briefly protected (busy workers protect
//!   themselves);
//! - [`alerts`]: sends one alert when a DAG turns failed and one notice when it
//!   recovers, to Slack and/or SNS ([`notify`]), exactly once even when ticks overlap
//!   (up to one documented window).
//!
//! [`ports`] holds the outside world behind traits ([`airflow`] and [`aws`] implement
//! them), [`state`] what is kept in DynamoDB between ticks, [`handler`] one tick,
//! [`budget`] the invocation's deadline and [`http`] the HTTP client both Airflow and
//! Slack calls use.

// Not in [workspace.lints] yet: the CLI crate still has undocumented fields (the old
// hand-written src/cfn/aws), and a member cannot add lints to the workspace set.
#![warn(missing_docs)]

pub mod airflow;
pub mod alerts;
pub mod aws;
pub mod budget;
pub mod handler;
pub mod http;
pub mod notify;
pub mod ports;
pub mod scaling;
pub mod settings;
pub mod state;

pub use handler::{run_tick, TickPorts, TickReport};
pub use settings::Settings;
