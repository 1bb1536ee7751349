//! `airflow-streams`: event streams that trigger DAGs, one binary in four roles (`ROLE`,
//! [`airflow_stack_contract::streams::Role`]):
//!
//! - the connection manager ([`manager`]): holds the stream ([`source`], [`decode`]),
//!   writes each event once by a conditional put keyed by its identity ([`identity`]),
//!   keeps a lease so one chain reads, and as a Lambda starts its successor before its
//!   deadline, with an overlap; or runs as an always-on Fargate task (`service`);
//! - the event processor ([`processor`]): the table's DynamoDB stream to DAG runs (a
//!   run ID derived from the identity, so a redelivery starts nothing new) or asset
//!   events, with per-record failures;
//! - the watchdog ([`watchdog`]): restarts a chain whose heartbeat went stale and
//!   alerts once ([`notify`]).
//!
//! [`ports`] holds the outside world behind traits ([`aws`], [`airflow`] and
//! [`notify`] implement them; [`memory`] is the table in memory for tests).

// Not in [workspace.lints] yet: the CLI crate still has undocumented fields (the old
// hand-written src/cfn/aws), and a member cannot add lints to the workspace set.
#![warn(missing_docs)]

pub mod airflow;
pub mod aws;
pub mod decode;
pub mod identity;
pub mod manager;
pub mod memory;
pub mod notify;
pub mod ports;
pub mod processor;
pub mod source;
pub mod watchdog;
