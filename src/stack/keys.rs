//! The generated secrets: five Secrets Manager secrets (one more with the scaler, one
//! more with event streams), created empty, and
//! `Custom::AirflowSecrets`, whose Rust Lambda (lambdas/secrets) fills them once with
//! the Fernet key, the API and JWT secrets and the passwords. A leaf of the construct
//! graph: the database, the broker and the connection URLs are built on it.
//!
//! Everything that reads a secret depends on the generator, so no container or
//! database can start with a missing value.

use std::collections::BTreeMap;

use airflow_stack_contract::secrets::{
    ecs_value_from_suffix, key, SecretsProperties, NAMESPACE_ENV, SECRETS_RESOURCE_TYPE,
};

use super::rust_function::{self, RustFunctionSpec};
use super::scope::{unique_name, Scope};
use super::service_role::describe_own_stack_resources;
use crate::cfn::custom::CustomResource;
use crate::cfn::l1::secretsmanager::Secret;
use crate::cfn::l1::{Statement, Tag};
use crate::cfn::{Attributes, Expr, LogicalId, Policy, Pseudo};

/// The stack's secrets, by ARN (a `Ref` to a secret is its ARN, never its value).
///
/// Values that the same readers need are kept together in one JSON secret, because
/// every secret costs $0.40 a month and merging them widens no access: whoever reads
/// the database URL could read the password inside it anyway. ECS reads one key of a
/// JSON secret with `valueFrom: <arn>:<key>::`.
pub struct Keys {
    /// The Fernet key (plain; `new,<older keys>` after a rotation).
    pub fernet_key: Expr,
    /// `{"api_secret_key", "jwt_secret"}`.
    pub signing_keys: Expr,
    /// `{"password", "airflow_password", "sql_alchemy_conn", "airflow_sql_alchemy_conn"}`.
    pub database: Expr,
    /// `{"password", "broker_url"}`.
    pub redis: Expr,
    /// The admin user's password (plain).
    pub admin_password: Expr,
    /// The scaler's read-only Airflow user's password (plain); only when the stack runs
    /// the scaler.
    pub scaler_password: Option<Expr>,
    /// The stream processor's Airflow user's password (plain); only with event streams.
    pub streams_password: Option<Expr>,
    /// The generator; resources reading the passwords depend on it.
    pub generated: LogicalId,
    /// ARN of the secrets Lambda, which also serves `Custom::AirflowConnectionUrls`.
    pub function: Expr,
}

/// `<arn>:<key>::`: one key of a JSON secret, as ECS `valueFrom` takes it.
fn json_key(arn: &Expr, key: &str) -> Expr {
    Expr::concat(vec![arn.clone(), Expr::lit(ecs_value_from_suffix(key))])
}

impl Keys {
    /// `[api] secret_key` for ECS.
    pub fn api_secret_key(&self) -> Expr {
        json_key(&self.signing_keys, key::API_SECRET_KEY)
    }
    /// `[api_auth] jwt_secret` for ECS.
    pub fn jwt_secret(&self) -> Expr {
        json_key(&self.signing_keys, key::JWT_SECRET)
    }
    /// `[database] sql_alchemy_conn` for ECS: the Airflow database user's URL.
    pub fn sql_alchemy_conn(&self) -> Expr {
        json_key(&self.database, key::AIRFLOW_SQL_ALCHEMY_CONN)
    }
    /// The master user's URL for ECS (the migration task alone).
    pub fn master_sql_alchemy_conn(&self) -> Expr {
        json_key(&self.database, key::SQL_ALCHEMY_CONN)
    }
    /// The Airflow database user's password for ECS (the migration task alone).
    pub fn airflow_database_password(&self) -> Expr {
        json_key(&self.database, key::AIRFLOW_PASSWORD)
    }
    /// `[celery] broker_url` for ECS.
    pub fn broker_url(&self) -> Expr {
        json_key(&self.redis, key::BROKER_URL)
    }
    /// The Redis password for ECS (the Redis container).
    pub fn redis_password(&self) -> Expr {
        json_key(&self.redis, key::PASSWORD)
    }
    /// The database master password as a dynamic reference for RDS.
    pub fn db_password_reference(&self) -> Expr {
        Expr::resolve_secret_key(self.database.clone(), key::PASSWORD)
    }
    /// The Redis password as a dynamic reference for ElastiCache.
    pub fn redis_password_reference(&self) -> Expr {
        Expr::resolve_secret_key(self.redis.clone(), key::PASSWORD)
    }
    /// The secrets Airflow containers read (each container only its own keys).
    pub fn airflow_secret_arns(&self) -> Vec<Expr> {
        [
            &self.fernet_key,
            &self.signing_keys,
            &self.database,
            &self.redis,
            &self.admin_password,
        ]
        .into_iter()
        .chain(&self.scaler_password)
        .chain(&self.streams_password)
        .cloned()
        .collect()
    }
}

/// `(logical id prefix, name suffix, description, kept after deletion)`. Every secret a
/// database row depends on is kept: the Fernet key (encrypted connections), the database
/// password, and the passwords of the users the migration creates.
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

/// The scaler's secret, created only when the stack runs the scaler.
const SCALER_SECRET: (&str, &str, &str, bool) = (
    "ScalerPassword",
    "scaler-password",
    "Password of the scaler's read-only Airflow user (airflow-stack-scaler)",
    true,
);

/// The stream processor's secret, created only when the stack has event streams.
const STREAMS_SECRET: (&str, &str, &str, bool) = (
    "StreamsPassword",
    "streams-password",
    "Password of the stream processor's Airflow user (airflow-stack-streams)",
    true,
);

/// A secret created without a value: no `SecretString` and no
/// `GenerateSecretString`, so no secret value ever passes through the template (or the
/// stack's events and drift reports); a custom resource or the user writes the first
/// version. Every secret of the stack is made with it (the generated ones and the Slack
/// webhook's).
pub fn empty_secret(name: Expr, description: &str, tags: Vec<Tag>) -> Secret {
    Secret {
        name: Some(name),
        description: Some(description.into()),
        tags,
        ..Secret::default()
    }
}

/// Adds the secrets, the secrets Lambda and the generator resource.
pub fn add(s: &mut Scope) -> Keys {
    let scaler = s.spec.runs_scaler().then_some(&SCALER_SECRET);
    let streams = s.spec.has_streams().then_some(&STREAMS_SECRET);
    let mut arns: Vec<Expr> = SECRETS
        .iter()
        .chain(scaler)
        .chain(streams)
        .map(|(id, suffix, description, keep)| {
            let secret = Secret {
                kms_key_id: s.kms_key_arn(),
                ..empty_secret(
                    unique_name(Expr::Pseudo(Pseudo::StackName), &format!("/{suffix}-")),
                    description,
                    s.tags.all(),
                )
            };
            let attrs = if *keep {
                Attributes::default().keep_on_delete(Policy::Retain)
            } else {
                Attributes::default()
            };
            s.t.add_with(&format!("{id}Secret"), secret, attrs).r#ref()
        })
        .collect();
    let function = add_function(s, &arns);
    // Popped in the reverse order of the chain above.
    let streams_password = streams.and_then(|_| arns.pop());
    let scaler_password = scaler.and_then(|_| arns.pop());
    let [fernet_key, signing_keys, database, redis, admin_password] =
        <[Expr; 5]>::try_from(arns).expect("five secrets");
    let properties = SecretsProperties {
        fernet_key_secret_arn: fernet_key.clone(),
        signing_keys_secret_arn: signing_keys.clone(),
        database_secret_arn: database.clone(),
        redis_secret_arn: redis.clone(),
        admin_password_secret_arn: admin_password.clone(),
        scaler_password_secret_arn: scaler_password.clone(),
        streams_password_secret_arn: streams_password.clone(),
        password_length: s.spec.secrets.password_length,
        // Written even when empty: a rotation token removed from the stack file is a
        // change the Lambda must see.
        fernet_rotation: Some(Expr::lit(s.spec.secrets.fernet_rotation.clone())),
    };
    let generator = CustomResource::new(SECRETS_RESOURCE_TYPE, function.clone(), 300)
        .with_properties(properties.to_properties());
    let generated = s.t.add("GeneratedSecrets", generator).id().clone();
    Keys {
        fernet_key,
        signing_keys,
        database,
        redis,
        admin_password,
        scaler_password,
        streams_password,
        generated,
        function,
    }
}

/// The secrets Lambda: may read and write exactly the five secrets, and describe its
/// own stack's resources (to confirm each request with CloudFormation).
fn add_function(s: &mut Scope, secret_arns: &[Expr]) -> Expr {
    let code_key = s.assets.secrets_key.clone();
    let namespace = s.spec.network.namespace.clone();
    let f = rust_function::add(
        s,
        RustFunctionSpec {
            id: "Secrets".into(),
            log_name: "secrets-function".into(),
            function_name: None,
            description: "airflow-stack secrets custom resource: Fernet key, API/JWT secrets, passwords, connection URLs".into(),
            role_description: "Writes the generated Airflow secrets",
            policy_name: "write-airflow-secrets",
            statements: vec![
                Statement::allow(
                    &[
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:PutSecretValue",
                    ],
                    secret_arns.to_vec(),
                ),
                describe_own_stack_resources(),
            ],
            code_key,
            timeout: 120,
            // The Cloud Map namespace: `redis.<namespace>` is a RedisHost it accepts.
            environment: BTreeMap::from([(
                NAMESPACE_ENV.to_owned(),
                Expr::lit(namespace),
            )]),
            vpc_config: None,
            reserved_concurrency: None,
            allow_recursion: false,
        },
    );
    f.arn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_created_without_a_value() {
        let secret = empty_secret(Expr::lit("s"), "what it holds", Vec::new());
        assert_eq!(
            serde_json::to_value(secret).unwrap(),
            serde_json::json!({"Description": "what it holds", "Name": "s"})
        );
    }
}
