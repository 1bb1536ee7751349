//! The only code that talks to AWS: clients from the standard credential chain,
//! DAG upload, deploy through change sets, stack events and outputs, the services and
//! the database that `pause` and `resume` stop and start.

pub mod assets;
pub mod dags;
pub mod database;
pub mod one_off;
pub mod services;
pub mod stack;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::error::ProvideErrorMetadata;

/// `--profile` and `--region`, shared by every verb that calls AWS.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwsOptions {
    /// AWS profile from ~/.aws/config (default: the usual chain - env, SSO, profile).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS region (default: the stack file's `region`).
    #[arg(long, global = true)]
    pub region: Option<String>,
}

/// A loaded AWS configuration and the clients made from it.
pub struct Aws {
    config: SdkConfig,
    endpoint_overridden: bool,
}

impl Aws {
    /// Loads credentials and settings from the standard chain. The region is
    /// `--region`, else the stack file's. `AWS_ENDPOINT_URL` (a local emulator) is
    /// honoured by the SDK itself.
    pub async fn connect(options: &AwsOptions, stack_region: &str) -> Aws {
        let region = options
            .region
            .clone()
            .unwrap_or_else(|| stack_region.to_string());
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region));
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        let config = loader.load().await;
        let endpoint_overridden =
            config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        Aws {
            config,
            endpoint_overridden,
        }
    }

    /// An S3 client; path-style addressing when an endpoint is overridden, because
    /// `bucket.localhost` does not resolve.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(self.endpoint_overridden)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// A CloudFormation client.
    pub fn cloudformation(&self) -> aws_sdk_cloudformation::Client {
        aws_sdk_cloudformation::Client::new(&self.config)
    }

    /// An ECS client.
    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.config)
    }

    /// A DynamoDB client (the scaler's state table).
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.config)
    }

    /// An RDS client (the database `pause` stops and `resume` starts).
    pub fn rds(&self) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(&self.config)
    }

    /// A Lambda client (the event source mappings `pause` holds and `resume` releases).
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.config)
    }

    /// A Secrets Manager client (the Fernet key of `rotate-fernet`).
    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.config)
    }

    /// A CloudWatch Logs client (the output of one-off tasks).
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.config)
    }

    /// The overridden endpoint (a local emulator), if any.
    pub fn endpoint_url(&self) -> Option<String> {
        self.config.endpoint_url().map(String::from)
    }

    /// The region in use.
    pub fn region(&self) -> String {
        self.config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }
}

/// A runtime for one command: the CLI is synchronous outside AWS calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime starts")
}

/// Renders an SDK error for a person: `Code: message` when the service answered (the
/// `Display` of `SdkError` alone says only "service error", its `Debug` is a dump), the
/// whole source chain for transport failures.
pub fn describe<E: std::error::Error + ProvideErrorMetadata + 'static>(error: &E) -> String {
    if let (Some(code), Some(message)) = (error.code(), error.message()) {
        return format!("{code}: {message}");
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
