//! Secrets Manager secrets and the custom resources that fill them.
//!
//! The secrets are created empty. `Custom::AirflowSecrets` (the Rust Lambda in
//! lambdas/secrets) generates the Fernet key, the API and JWT secrets and the
//! passwords once; `Custom::AirflowConnectionUrls` writes the full connection URLs when
//! the database and broker endpoints exist. Everything that reads a secret depends on
//! these resources, so no container or database can start with a missing value.

use super::assets::AssetParameters;
use super::broker::Broker;
use super::database::Database;
use super::{unique_name, Tags};
use crate::cfn::aws::custom::CustomResource;
use crate::cfn::aws::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::cfn::aws::lambda::{Code, Function, LoggingConfig};
use crate::cfn::aws::logs::LogGroup;
use crate::cfn::aws::secretsmanager::Secret;
use crate::cfn::{Attributes, Expr, Handle, LogicalId, Policy, Pseudo, Template};
use crate::spec::Spec;

/// ARNs of every secret (a `Ref` to a secret is its ARN; never its value).
pub struct Keys {
    pub fernet_key: Expr,
    pub api_secret_key: Expr,
    pub jwt_secret: Expr,
    pub db_password: Expr,
    pub redis_password: Expr,
    pub admin_password: Expr,
    pub sql_alchemy_conn: Expr,
    pub broker_url: Expr,
    pub result_backend: Expr,
    /// The generator; resources reading the passwords depend on it.
    pub generated: LogicalId,
    function: Expr,
}

/// The connection-URL resource; consumers of the URLs depend on it.
pub struct ConnectionUrls {
    pub written: LogicalId,
}

/// `(logical id prefix, name suffix, description, kept after deletion)`.
const SECRETS: &[(&str, &str, &str, bool)] = &[
    (
        "FernetKey",
        "fernet-key",
        "Airflow Fernet key; encrypts connections and variables in the database",
        true,
    ),
    (
        "ApiSecretKey",
        "api-secret-key",
        "Airflow [api] secret_key; signs log-fetch tokens",
        false,
    ),
    (
        "JwtSecret",
        "jwt-secret",
        "Airflow [api_auth] jwt_secret; signs Execution API tokens",
        false,
    ),
    (
        "DbPassword",
        "db-password",
        "Metadata database master password",
        true,
    ),
    ("RedisPassword", "redis-password", "Redis password", false),
    (
        "AdminPassword",
        "admin-password",
        "Password of the Airflow admin user",
        true,
    ),
    (
        "SqlAlchemyConn",
        "sql-alchemy-conn",
        "Airflow [database] sql_alchemy_conn",
        false,
    ),
    (
        "BrokerUrl",
        "broker-url",
        "Airflow [celery] broker_url",
        false,
    ),
    (
        "ResultBackend",
        "result-backend",
        "Airflow [celery] result_backend",
        false,
    ),
];

pub fn add_keys(t: &mut Template, spec: &Spec, assets: &AssetParameters, tags: &Tags) -> Keys {
    let arns: Vec<Expr> = SECRETS
        .iter()
        .map(|(id, suffix, description, keep)| {
            let secret = Secret {
                name: unique_name(Expr::Pseudo(Pseudo::StackName), &format!("/{suffix}-")),
                description: description.to_string(),
                tags: tags.all(),
            };
            let attrs = if *keep {
                Attributes::default().keep_on_delete(Policy::Retain)
            } else {
                Attributes::default()
            };
            t.add_with(&format!("{id}Secret"), secret, attrs).r#ref()
        })
        .collect();
    let function = add_function(t, spec, assets, &arns, tags);
    let [fernet_key, api_secret_key, jwt_secret, db_password, redis_password, admin_password, sql_alchemy_conn, broker_url, result_backend] =
        <[Expr; 9]>::try_from(arns).expect("nine secrets");
    let generator = CustomResource::new("Custom::AirflowSecrets", function.clone(), 300)
        .prop("FernetKeySecretArn", fernet_key.clone())
        .prop("ApiSecretKeySecretArn", api_secret_key.clone())
        .prop("JwtSecretSecretArn", jwt_secret.clone())
        .prop("DbPasswordSecretArn", db_password.clone())
        .prop("RedisPasswordSecretArn", redis_password.clone())
        .prop("AdminPasswordSecretArn", admin_password.clone())
        .prop("PasswordLength", spec.secrets.password_length.to_string())
        .prop("FernetRotation", spec.secrets.fernet_rotation.clone());
    let generated = t.add("GeneratedSecrets", generator).id().clone();
    Keys {
        fernet_key,
        api_secret_key,
        jwt_secret,
        db_password,
        redis_password,
        admin_password,
        sql_alchemy_conn,
        broker_url,
        result_backend,
        generated,
        function,
    }
}

fn add_function(
    t: &mut Template,
    spec: &Spec,
    assets: &AssetParameters,
    secret_arns: &[Expr],
    tags: &Tags,
) -> Expr {
    let log_group = t.add(
        "SecretsFunctionLogGroup",
        LogGroup {
            log_group_name: Expr::lit(format!("/airflow-stack/{}/secrets-function", spec.name)),
            retention_in_days: spec.logs.retention_days,
            tags: tags.all(),
        },
    );
    let policy = PolicyDocument::new(vec![
        Statement::allow(
            &[
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
            ],
            secret_arns.to_vec(),
        ),
        Statement::allow(
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            vec![log_group.arn()],
        ),
    ]);
    let role = t.add(
        "SecretsFunctionRole",
        Role::for_service(
            "lambda.amazonaws.com",
            "Writes the generated Airflow secrets".into(),
            vec![InlinePolicy {
                policy_name: "write-airflow-secrets".into(),
                policy_document: policy,
            }],
            tags.all(),
        ),
    );
    let function = t.add(
        "SecretsFunction",
        Function {
            function_name: None,
            description: "airflow-stack secrets custom resource: Fernet key, API/JWT secrets, passwords, connection URLs".into(),
            runtime: "provided.al2023",
            handler: "bootstrap",
            architectures: vec!["x86_64"],
            code: Code { s3_bucket: assets.bucket.clone(), s3_key: assets.secrets_key.clone() },
            role: role.arn(),
            timeout: 120,
            memory_size: 256,
            logging_config: Some(LoggingConfig { log_group: log_group.r#ref(), log_format: "JSON" }),
            environment: None,
            vpc_config: None,
            tags: tags.all(),
        },
    );
    function.arn()
}

pub fn add_connection_urls(
    t: &mut Template,
    spec: &Spec,
    keys: &Keys,
    db: &Database,
    broker: &Broker,
) -> ConnectionUrls {
    let urls = CustomResource::new("Custom::AirflowConnectionUrls", keys.function.clone(), 300)
        .prop("DbPasswordSecretArn", keys.db_password.clone())
        .prop("RedisPasswordSecretArn", keys.redis_password.clone())
        .prop("DbUser", spec.database.username.clone())
        .prop("DbHost", db.host.clone())
        .prop("DbPort", db.port.clone())
        .prop("DbName", spec.database.name.clone())
        .prop("DbSslMode", "require")
        .prop("RedisHost", broker.host.clone())
        .prop("RedisPort", broker.port.clone())
        .prop("RedisTls", if broker.tls { "true" } else { "false" })
        .prop("RedisDb", "0")
        .prop("SqlAlchemyConnSecretArn", keys.sql_alchemy_conn.clone())
        .prop("BrokerUrlSecretArn", keys.broker_url.clone())
        .prop("ResultBackendSecretArn", keys.result_backend.clone());
    let handle: Handle<CustomResource> = t.add_with(
        "ConnectionUrls",
        urls,
        Attributes::depends_on([keys.generated.clone()]),
    );
    ConnectionUrls {
        written: handle.id().clone(),
    }
}
