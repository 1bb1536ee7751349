//! `airflow-stack bootstrap`: the assets bucket, once per account and region.

use super::{Failure, StackFile};
use crate::aws::{Aws, AwsOptions};
use crate::{spec, stack};

/// Arguments of `bootstrap`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A stack file whose region to bootstrap.
    #[command(flatten)]
    stack: StackFile,
    #[command(flatten)]
    aws: AwsOptions,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let spec = spec::load(&args.stack.file)?;
    let template = stack::bootstrap_template()
        .map_err(|e| Failure::Failed(e.into()))?
        .to_value();
    crate::aws::runtime().block_on(async {
        let aws = Aws::connect(&args.aws, &spec.region).await;
        let tags = [(
            "airflow-stack:stack".to_string(),
            stack::BOOTSTRAP_STACK.to_string(),
        )]
        .into();
        let outputs =
            super::deploy::deploy_plain(&aws, stack::BOOTSTRAP_STACK, &template, &tags).await?;
        let bucket = outputs
            .get("AssetsBucket")
            .map_or("(unknown)", String::as_str);
        println!(
            "Bootstrapped {} in {}: assets bucket {bucket}",
            stack::BOOTSTRAP_STACK,
            aws.region()
        );
        Ok(())
    })
}
