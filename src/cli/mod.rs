//! The command line: one file per verb.

mod bootstrap;
mod cost;
mod dags;
mod deploy;
mod destroy;
mod image_context;
mod init;
mod output;
mod pause;
mod progress;
mod rotate_fernet;
mod schema;
mod synth;
mod ui;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use output::write_atomically;

/// The default stack file.
pub const DEFAULT_STACK_FILE: &str = "stacks/dev.yaml";

/// Apache Airflow 3 on AWS ECS Fargate, from one YAML stack file.
#[derive(Debug, Parser)]
#[command(name = "airflow-stack", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a new, commented stack file and a starter dags/ folder.
    Init(init::Args),
    /// Render the stack file to a CloudFormation template (no AWS account needed).
    Synth(synth::Args),
    /// Check a stack file and report every problem with its field and line.
    Validate(validate::Args),
    /// Print the JSON Schema of the stack file.
    Schema,
    /// Create the assets bucket (once per account and region).
    Bootstrap(bootstrap::Args),
    /// Show what a deploy would change, as a change set.
    Diff(deploy::DiffArgs),
    /// Create or update the stack through a change set, with live progress.
    Deploy(deploy::DeployArgs),
    /// Delete the stack, keeping the data (database snapshot, bucket, Fernet key).
    Destroy(destroy::Args),
    /// Estimate the monthly cost of the stack, always on and paused, against MWAA.
    Cost(cost::Args),
    /// Scale every ECS service of the stack to 0 tasks; the database and data stay.
    Pause(pause::Args),
    /// Scale every ECS service back to its count in the stack file.
    Resume(pause::Args),
    /// Re-encrypt every stored secret under the newest Fernet key (after a deploy with a
    /// new secrets.fernet_rotation), then optionally drop the old keys.
    RotateFernet(rotate_fernet::Args),
    /// Open the Airflow UI of a stack with access.mode tunnel on a local port (a
    /// Session Manager port forward to a running api-server task).
    Ui(ui::Args),
    /// Write the build context of the image built in the account (airflow.build,
    /// airflow.lambda_functions) to a folder: the Dockerfile, buildspec, install script,
    /// requirements, plugins and the tracked Lambda operator's provider.
    ImageContext(image_context::Args),
    /// Work with the stack's DAG bundle.
    #[command(subcommand)]
    Dags(dags::DagsCommand),
}

/// Why a command did not succeed; decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad input from the user (exit 2): the message names the file, field and fix.
    #[error("{0}")]
    BadInput(String),
    /// Anything else (exit 1).
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl From<crate::spec::SpecError> for Failure {
    fn from(e: crate::spec::SpecError) -> Failure {
        Failure::BadInput(e.to_string())
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init(args) => init::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Schema => schema::run(),
        Command::Bootstrap(args) => bootstrap::run(args),
        Command::Diff(args) => deploy::diff(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Destroy(args) => destroy::run(args),
        Command::Dags(command) => dags::run(command),
        Command::Cost(args) => cost::run(args),
        Command::Pause(args) => pause::run(args, pause::Direction::Pause),
        Command::Resume(args) => pause::run(args, pause::Direction::Resume),
        Command::RotateFernet(args) => rotate_fernet::run(args),
        Command::Ui(args) => ui::run(args),
        Command::ImageContext(args) => image_context::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// The stack file argument shared by the verbs.
#[derive(Debug, clap::Args)]
pub struct StackFile {
    /// The stack file.
    #[arg(default_value = DEFAULT_STACK_FILE)]
    pub file: PathBuf,
}
