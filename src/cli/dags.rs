//! `airflow-stack dags push DIR [FILE]`: upload a DAG folder to the stack's bundle.

use std::path::PathBuf;

use super::{Failure, StackFile};
use crate::aws::{self, Aws, AwsOptions};
use crate::spec;

/// `dags` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DagsCommand {
    /// Upload a local DAG folder to the stack's DAG bucket and prefix.
    Push(PushArgs),
}

/// Arguments of `dags push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The local folder of DAG files (searched recursively).
    pub dir: PathBuf,
    #[command(flatten)]
    stack: StackFile,
    /// Bucket (default: the stack's DagBucket output).
    #[arg(long)]
    bucket: Option<String>,
    /// Key prefix (default: the stack's DagPrefix output).
    #[arg(long)]
    prefix: Option<String>,
    /// Delete files under the prefix that are not in DIR.
    #[arg(long)]
    delete: bool,
    #[command(flatten)]
    aws: AwsOptions,
}

pub fn run(command: DagsCommand) -> Result<(), Failure> {
    match command {
        DagsCommand::Push(args) => push(args),
    }
}

fn push(args: PushArgs) -> Result<(), Failure> {
    let spec = spec::load(&args.stack.file)?;
    if !args.dir.is_dir() {
        return Err(Failure::BadInput(format!(
            "{} is not a directory of DAG files",
            args.dir.display()
        )));
    }
    aws::runtime().block_on(async {
        let aws = Aws::connect(&args.aws, &spec.region).await;
        let (bucket, prefix) = match (args.bucket, args.prefix) {
            (Some(b), Some(p)) => (b, p),
            (bucket, prefix) => {
                let outputs = aws::stack::outputs(&aws.cloudformation(), &spec.name).await?;
                let from_stack = |key: &str| {
                    outputs.get(key).cloned().ok_or_else(|| {
                        anyhow::anyhow!(
                            "stack {} has no {key} output; pass --bucket and --prefix",
                            spec.name
                        )
                    })
                };
                (
                    bucket.map_or_else(|| from_stack("DagBucket"), Ok)?,
                    prefix.map_or_else(|| from_stack("DagPrefix"), Ok)?,
                )
            }
        };
        let report = aws::dags::push(&aws.s3(), &args.dir, &bucket, &prefix, args.delete).await?;
        for key in &report.uploaded {
            println!("uploaded  s3://{bucket}/{prefix}/{key}");
        }
        for key in &report.deleted {
            println!("deleted   s3://{bucket}/{prefix}/{key}");
        }
        println!(
            "{} uploaded, {} unchanged, {} deleted{}",
            report.uploaded.len(),
            report.unchanged,
            report.deleted.len(),
            if report.stale.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} remote files not in {}; --delete removes them)",
                    report.stale.len(),
                    args.dir.display()
                )
            }
        );
        Ok::<(), Failure>(())
    })
}
