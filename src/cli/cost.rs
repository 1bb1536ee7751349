//! `airflow-stack cost`: the monthly estimate of a stack as synthesized, always on and
//! paused, against MWAA.

use std::io::Write;

use anyhow::Context;

use super::{Failure, StackFile};
use crate::{cost, spec, stack};

/// How `cost` prints the estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table with the assumptions and the MWAA comparison.
    Table,
    /// The estimate as JSON (lines, totals, assumptions, MWAA classes).
    Json,
}

/// Arguments of `cost`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackFile,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let file = args.stack.file.display().to_string();
    let spec = spec::load(&args.stack.file)?;
    let template = stack::build(&spec)
        .map_err(|e| Failure::BadInput(format!("{file}: {e}")))?
        .to_value();
    // An unpriced region or type is bad input: the message names the field and the
    // values the price table knows. A template the estimate cannot read is a bug in a
    // construct, not the user's: exit 1.
    let estimate = cost::estimate(&template, &spec).map_err(|e| {
        if e.is_bad_input() {
            Failure::BadInput(format!("{file}: {e}"))
        } else {
            Failure::Failed(anyhow::anyhow!("{file}: {e}"))
        }
    })?;
    let text = match args.output {
        Output::Table => estimate.table(),
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&estimate).expect("estimates serialise");
            s.push('\n');
            s
        }
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("cannot write to standard output")?;
    Ok(())
}
