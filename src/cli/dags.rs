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
    /// Key prefix (default: the stack's DAG prefix, `storage.dags_prefix`). Another
    /// prefix needs --force-prefix; the task-log prefix is always refused.
    #[arg(long)]
    prefix: Option<String>,
    /// Push to a --prefix other than the stack's DAG prefix.
    #[arg(long)]
    force_prefix: bool,
    /// Delete files under the prefix that are not in DIR (never outside the prefix).
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
    // Checked before any AWS call: a wrong prefix with --delete is the one way this
    // command could destroy data (the task logs share the bucket).
    let storage = &spec.storage;
    let prefix = aws::dags::check_prefix(
        args.prefix.as_deref().unwrap_or(&storage.dags_prefix),
        &storage.dags_prefix,
        &storage.logs_prefix,
        args.force_prefix,
    )
    .map_err(|e| Failure::BadInput(format!("{}: {e}", args.stack.file.display())))?;
    aws::runtime().block_on(async {
        let aws = Aws::connect(&args.aws, &spec.region).await;
        let bucket = match args.bucket {
            Some(b) => b,
            None => {
                let outputs = aws::stack::outputs(&aws.cloudformation(), &spec.name).await?;
                let from_stack = |key: &str| {
                    outputs.get(key).cloned().ok_or_else(|| {
                        anyhow::anyhow!(
                            "stack {} has no {key} output; pass --bucket and --prefix",
                            spec.name
                        )
                    })
                };
                let deployed_prefix = from_stack("DagPrefix")?;
                if args.prefix.is_none() && deployed_prefix.trim_matches('/') != prefix {
                    // The stack file and the deployed stack disagree: the file may be
                    // ahead of a deploy. Pushing where the running DAG processor does
                    // not read would look like a lost push.
                    return Err(Failure::BadInput(format!(
                        "{}: storage.dags_prefix is `{prefix}` but stack {} reads DAGs from `{deployed_prefix}`; deploy first, or pass --prefix {deployed_prefix} --force-prefix",
                        args.stack.file.display(),
                        spec.name
                    )));
                }
                from_stack("DagBucket")?
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
