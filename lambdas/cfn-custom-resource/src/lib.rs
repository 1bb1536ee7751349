//! The CloudFormation custom-resource protocol for Rust Lambdas.
//!
//! A custom-resource Lambda has one hard duty besides its own work: it must PUT exactly
//! one answer to the presigned `ResponseURL`, whatever happens (success, error, panic,
//! or the Lambda deadline approaching). If it does not, CloudFormation waits for the
//! `ServiceTimeout` (an hour by default) and then waits again on rollback.
//!
//! This crate gives:
//! - [`request`]: lenient and strict views of the request event, and string-only
//!   property access (CloudFormation sends every scalar as a string);
//! - [`response`]: the response document, kept under the 4,096-byte limit;
//! - [`sender`]: the PUT with an empty `Content-Type`, bounded retry and back-off;
//! - [`guard`]: [`guard::respond_guarded`], which runs a handler under a deadline guard
//!   and a panic guard and always answers;
//! - [`origin`]: [`origin::OriginCheck`], which confirms with CloudFormation that it is
//!   really running the Create or Update an event claims, before any work is done;
//! - [`log_tail`]: FAILED reasons that end with as much of a log's tail as fits, with
//!   secret-shaped values redacted;
//! - [`physical_id`]: stable physical ids derived from `StackId` + `LogicalResourceId`;
//! - [`testing`]: a std-only HTTP capture server for tests (stands in for the S3
//!   presigned URL).
//!
//! The request types are our own rather than `aws_lambda_events::cloudformation`'s:
//! those reject an unknown `RequestType` or a malformed property map while
//! deserialising, before the `ResponseURL` is known, so such an event could never be
//! answered. Here the envelope (where to answer, and with which ids) is read first and
//! leniently, and everything else is validated afterwards.

// Not in [workspace.lints] yet: the CLI crate still has undocumented fields (the old
// hand-written src/cfn/aws), and a member cannot add lints to the workspace set.
#![warn(missing_docs)]

pub mod guard;
pub mod log_tail;
pub mod logging;
pub mod origin;
pub mod physical_id;
pub mod request;
pub mod response;
pub mod sender;
pub mod testing;

pub use guard::{respond_guarded, GuardConfig, GuardOutcome, HandlerOutput};
pub use origin::{CloudFormationStacks, OriginCheck, Refusal, StackResources};
pub use physical_id::stable_physical_id;
pub use request::{
    CustomResourceRequest, Envelope, Properties, PropertyError, RequestError, RequestType,
};
pub use response::{ResponseDocument, Status, MAX_RESPONSE_BYTES};
pub use sender::{ResponseSender, RetryPolicy, SendError};
