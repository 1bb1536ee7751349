//! The one contract between the `airflow-stack` CLI and its Lambdas.
//!
//! The CLI (src/stack) writes custom-resource properties and Lambda environment
//! variables into the CloudFormation template; the Lambdas (lambdas/*) read them back.
//! Both sides use the types and constants here, so every name crossing that boundary is
//! spelled once, in this crate, and a drift is a compile error rather than a failed
//! deploy. `tests/one_spelling.rs` checks that neither side spells them again.
//!
//! - [`secrets`]: `Custom::AirflowSecrets` and `Custom::AirflowConnectionUrls`
//!   ([`secrets::SecretsProperties`], [`secrets::ConnectionUrlsProperties`]), the five
//!   secrets ([`secrets::Secret`]), the JSON keys inside them ([`secrets::key`]) and the
//!   password length range;
//! - [`migration`]: `Custom::AirflowMigration` ([`migration::MigrationProperties`]) and
//!   its time limits;
//! - [`image_build`]: `Custom::ImageBuild` ([`image_build::ImageBuildProperties`]),
//!   the build's tag variable, the `ImageUri` attribute and the time limits;
//! - [`version`]: how Airflow versions are ordered (the migration Lambda skips a
//!   downgrade, `deploy` warns about one);
//! - [`scaler`]: the scaler's environment ([`scaler::ScalerSettings`]), its metrics and
//!   state table key;
//! - [`streams`]: event streams that trigger DAGs: the connection manager's,
//!   processor's and watchdog's environment ([`streams::ManagerSettings`],
//!   [`streams::ProcessorSettings`], [`streams::WatchdogSettings`]), the table's keys
//!   and item shapes, the manager's invocation payload and the DAG run IDs;
//! - [`worker`]: the worker container's command and environment with autoscaling on,
//!   and the drain tag the scaler sets on worker tasks;
//! - [`wire`]: how a property travels (every scalar a string) and the errors that
//!   name a property, never its value.
//!
//! The property structs are generic over the value type `V`: the CLI fills them with
//! its template expression type (a `Ref` or `Fn::GetAtt` resolves only at deploy time)
//! and serialises them with `to_properties` (or `serde::Serialize`, the same map); a
//! Lambda reads them as `V = String` with `read` (or `serde::Deserialize`). Values
//! known when the template is rendered and checked on both sides (numbers, flags) are
//! typed, and written as the strings CloudFormation would pass anyway.
//!
//! Only serde and serde_json: every Lambda links this crate, so it stays small.

// Not in [workspace.lints] yet: the CLI crate still has undocumented fields (the old
// hand-written src/cfn/aws), and a member cannot add lints to the workspace set.
#![warn(missing_docs)]

pub mod image_build;
pub mod migration;
pub mod scaler;
pub mod secrets;
pub mod streams;
pub mod version;
pub mod wire;
pub mod worker;

pub use wire::{PropertyError, PropertyMap, PropertyValue};
