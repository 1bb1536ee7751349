//! The `airflow-scaler` Lambda, run every minute by an EventBridge schedule inside the
//! stack's VPC. Each tick it logs in to the api-server (through Cloud Map) and
//!
//! - [`scaling`]: sets the Celery worker service's desired count to
//!   ceil((queued + running) / worker_concurrency) within [min, max], scaling in only
//!   after a cool-down and only once every busy worker is protected from scale-in;
//! - [`alerts`]: sends one alert when a DAG turns failed and one notice when it
//!   recovers, to Slack and/or SNS ([`notify`]).
//!
//! [`ports`] holds the outside world behind traits ([`airflow`] and [`aws`] implement
//! them), [`state`] what is kept in DynamoDB between ticks, [`handler`] one tick.

// Not in [workspace.lints] yet: the CLI crate still has undocumented fields (the old
// hand-written src/cfn/aws), and a member cannot add lints to the workspace set.
#![warn(missing_docs)]

pub mod airflow;
pub mod alerts;
pub mod aws;
pub mod handler;
pub mod notify;
pub mod ports;
pub mod scaling;
pub mod settings;
pub mod state;

pub use handler::{run_tick, TickPorts, TickReport};
pub use settings::Settings;
