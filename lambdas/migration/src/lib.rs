//! The `Custom::AirflowMigration` Lambda: runs `airflow db migrate` as a one-off ECS
//! task and answers CloudFormation when it has stopped, so no Airflow service starts
//! on an unmigrated database.
//!
//! A migration can outlast Lambda's 15 minutes, so an invocation whose time runs low
//! re-invokes the function asynchronously with a [`continuation::Continuation`] (the
//! original event, the task ARN, the start time and a hop counter) and returns without
//! answering; only the invocation that sees the task stop (or the overall limit pass)
//! answers.
//!
//! - [`handler`]: the flow of one invocation;
//! - [`ports`]: ECS, Lambda and CloudWatch Logs behind small traits; [`aws`] implements
//!   them with the AWS SDK;
//! - [`version`]: an Update that lowers the Airflow version (the rollback of a failed
//!   upgrade) runs no migration;
//! - [`props`], [`continuation`], [`token`], [`reason`]: the pieces it is built from.

// Not in [workspace.lints] yet: the CLI crate still has undocumented fields (the old
// hand-written src/cfn/aws), and a member cannot add lints to the workspace set.
#![warn(missing_docs)]

pub mod aws;
pub mod continuation;
pub mod handler;
pub mod ports;
pub mod props;
pub mod reason;
pub mod token;
pub mod version;

pub use handler::{invoke, Invocation, InvokeError, Ports, Settings};
