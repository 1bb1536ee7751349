//! `airflow-stack validate`: check a stack file and its template without writing.

use super::{Failure, StackFile};
use crate::{spec, stack};

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackFile,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let spec = spec::load(&args.stack.file)?;
    let template = stack::build(&spec)
        .map_err(|e| Failure::BadInput(format!("{}: {e}", args.stack.file.display())))?;
    println!(
        "{}: valid ({} resources)",
        args.stack.file.display(),
        template.resource_count()
    );
    Ok(())
}
