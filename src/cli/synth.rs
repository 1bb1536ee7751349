//! `airflow-stack synth`: stack file -> CloudFormation template.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::{write_atomically, Failure, StackFile};
use crate::cfn::{render, Format};
use crate::{spec, stack};

/// Arguments of `synth`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackFile,
    /// Write the template to this file instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: OutputFormat,
}

/// `--format`: the CLI's spelling of [`Format`] (clap stays out of the core).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum OutputFormat {
    /// Pretty-printed JSON.
    Json,
    /// YAML, intrinsics in their long form.
    Yaml,
}

impl From<OutputFormat> for Format {
    fn from(format: OutputFormat) -> Format {
        match format {
            OutputFormat::Json => Format::Json,
            OutputFormat::Yaml => Format::Yaml,
        }
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let spec = spec::load(&args.stack.file)?;
    let template = stack::build(&spec)
        .map_err(|e| Failure::BadInput(format!("{}: {e}", args.stack.file.display())))?;
    let text = render(&template.to_value(), args.format.into());
    match args.out {
        Some(path) => write_atomically(&path, text.as_bytes())?,
        None => match std::io::stdout().lock().write_all(text.as_bytes()) {
            // A closed pipe (`synth | head`) means the reader has what it wanted.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.context("cannot write to standard output")?,
        },
    }
    Ok(())
}
