//! The Airflow image (`airflow.build`, or `airflow.lambda_functions`, which needs the
//! tracked Lambda operator's provider in it): without a build, the stack file's image
//! (or the official one of its Airflow version) as a literal; with one, an image built
//! in the account. The build context (src/image: Dockerfile, buildspec, requirements, plugins)
//! is a content-hashed asset deploy uploads; a CodeBuild project builds it and pushes
//! it to the stack's ECR repository under the context's SHA-256; `Custom::ImageBuild`
//! (lambdas/image-build) starts that build only when ECR lacks the tag, waits for it
//! across Lambda's 15 minutes and answers with the image URI every Airflow container
//! then runs. An unchanged stack file renders the same tag, so it builds nothing.

use std::collections::BTreeMap;

use airflow_stack_contract::image_build::{
    ImageBuildProperties, BUILD_TIMEOUT_MINUTES, IMAGE_URI_ATTRIBUTE, RESOURCE_TYPE,
    SERVICE_TIMEOUT_SECONDS,
};

use super::assets::AssetCode;
use super::rust_function::{self, RustFunctionSpec};
use super::scope::Scope;
use super::service_role::{self, describe_own_stack_resources, ServiceRole};
use crate::cfn::custom::CustomResource;
use crate::cfn::l1::codebuild::project::{
    Artifacts, CloudWatchLogsConfig, Environment, EnvironmentVariable, LogsConfig, Source,
};
use crate::cfn::l1::codebuild::Project;
use crate::cfn::l1::ecr::repository::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability,
    LifecyclePolicy,
};
use crate::cfn::l1::ecr::Repository;
use crate::cfn::l1::logs::LogGroup;
use crate::cfn::l1::Statement;
use crate::cfn::{Expr, Handle};
use crate::spec::Architecture;

/// Images the repository keeps: the running one, and earlier ones to roll back to.
/// Older ones expire (ECR lifecycle policy); layers shared between them are stored once.
pub const KEPT_IMAGES: u32 = 10;

/// CodeBuild's compute for the build: 2 vCPUs and 3 GB (4 GB on ARM), enough for
/// `pip install` and `docker build` of an Airflow image; ARM builds take SMALL or LARGE
/// only (CDK's `LinuxArmBuildImage.validate`).
pub const COMPUTE_TYPE: &str = "BUILD_GENERAL1_SMALL";

/// The image every Airflow container runs, and what its tasks need to pull it.
pub struct AirflowImage {
    /// The image reference: a literal, or `Fn::GetAtt` of the build's `ImageUri`
    /// (which also makes every task definition wait for the build).
    pub uri: Expr,
    /// What the task execution role needs to pull it (none for a public image).
    pub pull_statements: Vec<Statement>,
}

/// What the build is for, in descriptions: `airflow.build`, or the provider alone.
fn what_for(s: &Scope) -> &'static str {
    if s.spec.airflow.build.is_some() {
        "airflow.build"
    } else {
        "airflow.lambda_functions (the tracked Lambda operator's provider)"
    }
}

/// Adds the image build when `airflow.build` asks for one, or `airflow.lambda_functions`
/// needs the tracked Lambda operator's provider in the image.
pub fn add(s: &mut Scope) -> AirflowImage {
    let Some(context) = crate::image::context(s.spec) else {
        return AirflowImage {
            uri: Expr::lit(s.spec.airflow_image()),
            pull_statements: Vec::new(),
        };
    };
    let context_code = super::assets::add_image_context(&mut s.t);
    let source_location = Expr::concat(vec![
        s.assets.bucket.clone(),
        Expr::lit("/"),
        context_code.key.clone(),
    ]);
    let repository = add_repository(s);
    let log_group = s.t.add(
        "ImageBuildLogGroup",
        LogGroup {
            log_group_name: Some(s.log_group_name("image-build")),
            retention_in_days: Some(s.spec.logs.retention_days.into()),
            kms_key_id: s.kms_key_arn(),
            tags: s.tags.all(),
            ..LogGroup::default()
        },
    );
    let project = add_project(s, &repository, &log_group, &context_code, &source_location);
    let function = add_function(s, &repository, &project, &log_group);
    let properties = ImageBuildProperties {
        project_name: project.r#ref(),
        repository_name: repository.r#ref(),
        image_tag: Expr::lit(context.sha256.clone()),
        source_location,
    };
    let build = s.t.add(
        "AirflowImage",
        CustomResource::new(RESOURCE_TYPE, function, SERVICE_TIMEOUT_SECONDS)
            .with_properties(properties.to_properties()),
    );
    let uri = build.data(IMAGE_URI_ATTRIBUTE);
    let description = format!(
        "The Airflow image built in the account ({}), tagged by the SHA-256 of its build context",
        what_for(s)
    );
    s.t.output("AirflowImageUri", &description, uri.clone());
    AirflowImage {
        uri,
        pull_statements: pull_statements(s, &repository),
    }
}

/// The stack's repository: tags are content hashes, so they are immutable (a tag
/// always names the bytes it was built from); every push is scanned; old images
/// expire. Emptied on delete: its images are built from the stack file, not data.
fn add_repository(s: &mut Scope) -> Handle<Repository> {
    let lifecycle = serde_json::json!({
        "rules": [{
            "rulePriority": 1,
            "description": format!("keep the {KEPT_IMAGES} newest images"),
            "selection": {
                "tagStatus": "any",
                "countType": "imageCountMoreThan",
                "countNumber": KEPT_IMAGES,
            },
            "action": { "type": "expire" },
        }]
    });
    let encryption = match s.kms_key_arn() {
        Some(key) => EncryptionConfiguration {
            encryption_type: Some(EncryptionType::Kms),
            kms_key: Some(key),
        },
        None => EncryptionConfiguration {
            encryption_type: Some(EncryptionType::Aes256),
            kms_key: None,
        },
    };
    s.t.add(
        "ImageRepository",
        Repository {
            empty_on_delete: Some(true),
            encryption_configuration: Some(encryption),
            image_scanning_configuration: Some(ImageScanningConfiguration {
                scan_on_push: Some(true),
            }),
            image_tag_mutability: Some(ImageTagMutability::Immutable),
            lifecycle_policy: Some(LifecyclePolicy {
                lifecycle_policy_text: Some(Expr::lit(lifecycle.to_string())),
                registry_id: None,
            }),
            tags: s.tags.all(),
            ..Repository::default()
        },
    )
}

/// CodeBuild's curated Amazon Linux 2023 images with Docker, for the services'
/// architecture: the image must be built on the instruction set it runs on.
/// <https://docs.aws.amazon.com/codebuild/latest/userguide/ec2-compute-images.html>
fn build_environment(architecture: Architecture) -> (&'static str, &'static str) {
    match architecture {
        Architecture::Arm64 => (
            "ARM_CONTAINER",
            "aws/codebuild/amazonlinux-aarch64-standard:3.0",
        ),
        Architecture::X86_64 => (
            "LINUX_CONTAINER",
            "aws/codebuild/amazonlinux-x86_64-standard:5.0",
        ),
    }
}

fn add_project(
    s: &mut Scope,
    repository: &Handle<Repository>,
    log_group: &Handle<LogGroup>,
    context: &AssetCode,
    source_location: &Expr,
) -> Handle<Project> {
    let role = add_project_role(s, repository, log_group, context);
    let (environment_type, image) = build_environment(s.spec.services.architecture);
    s.t.add(
        "ImageBuildProject",
        Project {
            description: Some(Expr::lit(format!(
                "airflow-stack {}: builds the Airflow image from {}",
                s.spec.name,
                what_for(s)
            ))),
            source: Some(Source {
                r#type: Some(Expr::lit("S3")),
                location: Some(source_location.clone()),
                ..Source::default()
            }),
            // The object version deploy verified (CodeBuild's S3 `sourceVersion`), not
            // whatever the key holds when the build starts.
            source_version: Some(context.version.clone()),
            artifacts: Some(Artifacts {
                r#type: Some(Expr::lit("NO_ARTIFACTS")),
                ..Artifacts::default()
            }),
            environment: Some(Environment {
                r#type: Some(Expr::lit(environment_type)),
                compute_type: Some(Expr::lit(COMPUTE_TYPE)),
                image: Some(Expr::lit(image)),
                // `docker build` needs the Docker daemon of the build container.
                privileged_mode: Some(true),
                environment_variables: vec![EnvironmentVariable {
                    name: Some(Expr::lit("REPOSITORY_URI")),
                    value: Some(repository.repository_uri()),
                    ..EnvironmentVariable::default()
                }],
                ..Environment::default()
            }),
            service_role: Some(role.arn()),
            encryption_key: s.kms_key_arn(),
            logs_config: Some(LogsConfig {
                cloud_watch_logs: Some(CloudWatchLogsConfig {
                    status: Some(Expr::lit("ENABLED")),
                    group_name: Some(log_group.r#ref()),
                    stream_name: None,
                }),
                ..LogsConfig::default()
            }),
            timeout_in_minutes: Some(BUILD_TIMEOUT_MINUTES.into()),
            queued_timeout_in_minutes: Some(60),
            tags: s.tags.all(),
            ..Project::default()
        },
    )
}

/// The build's role: read exactly the build context, push to exactly the stack's
/// repository, write its own log group, and read the Docker Hub secret when one is
/// named. `ecr:GetAuthorizationToken` has no resource-level permissions (ECR's
/// "Actions, resources, and condition keys"), so it takes `*`.
fn add_project_role(
    s: &mut Scope,
    repository: &Handle<Repository>,
    log_group: &Handle<LogGroup>,
    context: &AssetCode,
) -> Handle<crate::cfn::l1::iam::Role> {
    let context_object = Expr::concat(vec![
        Expr::lit("arn:"),
        Expr::Pseudo(crate::cfn::Pseudo::Partition),
        Expr::lit(":s3:::"),
        s.assets.bucket.clone(),
        Expr::lit("/"),
        context.key.clone(),
    ]);
    let mut statements = vec![
        Statement::allow(
            &["s3:GetObject", "s3:GetObjectVersion"],
            vec![context_object],
        ),
        Statement::allow(&["ecr:GetAuthorizationToken"], vec![Expr::lit("*")]),
        Statement::allow(
            &[
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:CompleteLayerUpload",
                "ecr:GetDownloadUrlForLayer",
                "ecr:InitiateLayerUpload",
                "ecr:PutImage",
                "ecr:UploadLayerPart",
            ],
            vec![repository.arn()],
        ),
        Statement::allow(
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            vec![log_group.arn()],
        ),
    ];
    if let Some(secret) = docker_hub_secret(s) {
        statements.push(Statement::allow(
            &["secretsmanager:GetSecretValue"],
            vec![Expr::lit(secret)],
        ));
    }
    statements.extend(s.key_use(&statements));
    if let Some(key) = s.kms_key_arn() {
        // The repository's layers and the build's logs and output are under the key.
        statements.push(Statement::allow(
            &["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            vec![key],
        ));
    }
    let role = service_role::role(
        ServiceRole {
            service: "codebuild.amazonaws.com",
            description: format!(
                "Builds the Airflow image from {} and pushes it to the stack's repository",
                what_for(s)
            ),
            policy_name: "build-airflow-image",
            statements,
        },
        s.tags.all(),
    );
    s.t.add("ImageBuildRole", role)
}

fn docker_hub_secret(s: &Scope) -> Option<String> {
    s.spec
        .airflow
        .build
        .as_ref()
        .and_then(|b| b.docker_hub_secret.as_ref())
        .map(|arn| arn.as_str().to_string())
}

/// The image-build Lambda: start and watch exactly the stack's project, look up tags
/// in exactly its repository, read the build's log group (for a failure's log tail),
/// re-invoke itself, describe its own stack's resources (to confirm each request).
fn add_function(
    s: &mut Scope,
    repository: &Handle<Repository>,
    project: &Handle<Project>,
    log_group: &Handle<LogGroup>,
) -> Expr {
    let function_name = format!("{}-image-build", s.spec.name);
    // Built from the fixed name: `Fn::GetAtt` on the function would make the role
    // depend on the function that depends on the role.
    let self_arn = Expr::arn("lambda", Expr::lit(format!("function:{function_name}")));
    let statements = vec![
        Statement::allow(
            &["codebuild:StartBuild", "codebuild:BatchGetBuilds"],
            vec![project.arn()],
        ),
        Statement::allow(
            &["ecr:DescribeImages", "ecr:DescribeRepositories"],
            vec![repository.arn()],
        ),
        Statement::allow(&["logs:GetLogEvents"], vec![log_group.arn()]),
        Statement::allow(&["lambda:InvokeFunction"], vec![self_arn]),
        describe_own_stack_resources(),
    ];
    let code_key = super::assets::add_image_build_key(&mut s.t);
    let f = rust_function::add(
        s,
        RustFunctionSpec {
            id: "ImageBuild".into(),
            log_name: "image-build-function".into(),
            function_name: Some(function_name),
            description: "airflow-stack image-build custom resource: builds the Airflow image with CodeBuild when ECR lacks its tag".into(),
            role_description: "Starts and watches the Airflow image build",
            policy_name: "run-image-build",
            statements,
            code_key,
            timeout: 900,
            environment: BTreeMap::new(),
            vpc_config: None,
            reserved_concurrency: None,
            allow_recursion: false,
        },
    );
    f.arn()
}

/// Pulling the image from the stack's repository (the task execution role's part).
fn pull_statements(s: &Scope, repository: &Handle<Repository>) -> Vec<Statement> {
    let mut statements = vec![
        Statement::allow(&["ecr:GetAuthorizationToken"], vec![Expr::lit("*")]),
        Statement::allow(
            &[
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            vec![repository.arn()],
        ),
    ];
    if let Some(key) = s.kms_key_arn() {
        statements.push(Statement::allow(&["kms:Decrypt"], vec![key]));
    }
    statements
}
