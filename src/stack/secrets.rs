//! Secrets Manager secrets and the custom resources that fill them.
//!
//! The secrets are created empty. `Custom::AirflowSecrets` (the Rust Lambda in
//! lambdas/secrets) generates the Fernet key, the API and JWT secrets and the
//! passwords once; `Custom::AirflowConnectionUrls` writes the full connection URLs when
//! the database and broker endpoints exist. There is no result-backend secret: Airflow
//! uses `db+` and the database URL when `[celery] result_backend` is unset. Everything that reads a secret depends on
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

/// The stack's five secrets, by ARN (a `Ref` to a secret is its ARN, never its value).
///
/// Values that the same readers need are kept together in one JSON secret, because
/// every secret costs $0.40 a month and merging them widens no access: whoever reads
/// the database URL could read the password inside it anyway. ECS reads one key of a
/// JSON secret with `valueFrom: <arn>:<key>::`.
pub struct Keys {
    /// The Fernet key (plain; `new,old` during a rotation).
    pub fernet_key: Expr,
    /// `{"api_secret_key", "jwt_secret"}`.
    pub signing_keys: Expr,
    /// `{"password", "sql_alchemy_conn"}`.
    pub database: Expr,
    /// `{"password", "broker_url"}`.
    pub redis: Expr,
    /// The admin user's password (plain).
    pub admin_password: Expr,
    /// The generator; resources reading the passwords depend on it.
    pub generated: LogicalId,
    function: Expr,
}

/// `<arn>:<key>::`: one key of a JSON secret, as ECS `valueFrom` takes it.
fn json_key(arn: &Expr, key: &str) -> Expr {
    Expr::concat(vec![arn.clone(), Expr::lit(format!(":{key}::"))])
}

impl Keys {
    /// `[api] secret_key` for ECS.
    pub fn api_secret_key(&self) -> Expr {
        json_key(&self.signing_keys, "api_secret_key")
    }
    /// `[api_auth] jwt_secret` for ECS.
    pub fn jwt_secret(&self) -> Expr {
        json_key(&self.signing_keys, "jwt_secret")
    }
    /// `[database] sql_alchemy_conn` for ECS.
    pub fn sql_alchemy_conn(&self) -> Expr {
        json_key(&self.database, "sql_alchemy_conn")
    }
    /// `[celery] broker_url` for ECS.
    pub fn broker_url(&self) -> Expr {
        json_key(&self.redis, "broker_url")
    }
    /// The Redis password for ECS (the Redis container).
    pub fn redis_password(&self) -> Expr {
        json_key(&self.redis, "password")
    }
    /// The database master password as a dynamic reference for RDS.
    pub fn db_password_reference(&self) -> Expr {
        Expr::resolve_secret_key(self.database.clone(), "password")
    }
    /// The Redis password as a dynamic reference for ElastiCache.
    pub fn redis_password_reference(&self) -> Expr {
        Expr::resolve_secret_key(self.redis.clone(), "password")
    }
    /// The secrets every Airflow container reads.
    pub fn airflow_secret_arns(&self) -> Vec<Expr> {
        vec![
            self.fernet_key.clone(),
            self.signing_keys.clone(),
            self.database.clone(),
            self.redis.clone(),
            self.admin_password.clone(),
        ]
    }
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
        "SigningKeys",
        "signing-keys",
        "Airflow [api] secret_key and [api_auth] jwt_secret (JSON)",
        false,
    ),
    (
        "Database",
        "database",
        "Metadata database master password and sql_alchemy_conn (JSON)",
        true,
    ),
    (
        "Redis",
        "redis",
        "Redis password and the Celery broker_url (JSON)",
        false,
    ),
    (
        "AdminPassword",
        "admin-password",
        "Password of the Airflow admin user",
        true,
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
    let [fernet_key, signing_keys, database, redis, admin_password] =
        <[Expr; 5]>::try_from(arns).expect("five secrets");
    let generator = CustomResource::new("Custom::AirflowSecrets", function.clone(), 300)
        .prop("FernetKeySecretArn", fernet_key.clone())
        .prop("SigningKeysSecretArn", signing_keys.clone())
        .prop("DatabaseSecretArn", database.clone())
        .prop("RedisSecretArn", redis.clone())
        .prop("AdminPasswordSecretArn", admin_password.clone())
        .prop("PasswordLength", spec.secrets.password_length.to_string())
        .prop("FernetRotation", spec.secrets.fernet_rotation.clone());
    let generated = t.add("GeneratedSecrets", generator).id().clone();
    Keys {
        fernet_key,
        signing_keys,
        database,
        redis,
        admin_password,
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
        .prop("DatabaseSecretArn", keys.database.clone())
        .prop("RedisSecretArn", keys.redis.clone())
        .prop("DbUser", spec.database.username.clone())
        .prop("DbHost", db.host.clone())
        .prop("DbPort", db.port.clone())
        .prop("DbName", spec.database.name.clone())
        .prop("DbSslMode", "require")
        .prop("RedisHost", broker.host.clone())
        .prop("RedisPort", broker.port.clone())
        .prop("RedisTls", if broker.tls { "true" } else { "false" })
        .prop("RedisDb", "0");
    let handle: Handle<CustomResource> = t.add_with(
        "ConnectionUrls",
        urls,
        Attributes::depends_on([keys.generated.clone()]),
    );
    ConnectionUrls {
        written: handle.id().clone(),
    }
}
