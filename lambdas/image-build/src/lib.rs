//! The `Custom::ImageBuild` Lambda: makes sure ECR holds the stack's Airflow image,
//! tagged by the hash of everything that goes into it, and answers CloudFormation with
//! its reference (`ImageUri`).
//!
//! When ECR already holds the tag, nothing is built: an unchanged input never rebuilds.
//! Otherwise the stack's CodeBuild project builds the uploaded build context and pushes
//! the tag. A build can outlast Lambda's 15 minutes, so an invocation whose time runs
//! low re-invokes the function asynchronously with a [`continuation::Continuation`]
//! (the original event, the build id, the start time and a hop counter) and returns
//! without answering; only the invocation that sees the build end (or the overall limit
//! pass) answers. A failed build is answered FAILED with its status, the phase that
//! failed and the end of its CloudWatch log.
//!
//! - [`handler`]: the flow of one invocation;
//! - [`ports`]: ECR, CodeBuild, Lambda and CloudWatch Logs behind small traits; [`aws`]
//!   implements them with the AWS SDK;
//! - [`settings`], [`continuation`], [`token`]: the pieces it is built from.
//!
//! The property names and limits are the contract's
//! (`airflow_stack_contract::image_build`), shared with the CLI.

// Not in [workspace.lints] yet: the CLI crate still has undocumented fields (the old
// hand-written src/cfn/aws), and a member cannot add lints to the workspace set.
#![warn(missing_docs)]

pub mod aws;
pub mod continuation;
pub mod handler;
pub mod ports;
pub mod settings;
pub mod token;

pub use handler::{invoke, Invocation, InvokeError, Ports};
pub use settings::Settings;
