//! The secrets: `Custom::AirflowSecrets` (generates the values), `Custom::AirflowConnectionUrls`
//! (writes the connection URLs), and the JSON keys inside the secrets.
//!
//! The template (src/stack) creates five Secrets Manager secrets empty and passes their
//! ARNs to the secrets Lambda (lambdas/secrets) through these two resources. Three of the
//! secrets are flat JSON objects of strings; ECS reads one key into a container with
//! `valueFrom: <arn>:<key>::` and CloudFormation with
//! `{{resolve:secretsmanager:<arn>:SecretString:<key>}}`, so the key names in
//! [`key`] are read by the template and written by the Lambda.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::wire::{self, PropertyError, PropertyMap, PropertyValue};

/// Resource type of the generator. Written by the CLI; the secrets Lambda dispatches on it.
pub const SECRETS_RESOURCE_TYPE: &str = "Custom::AirflowSecrets";
/// Resource type of the connection-URL writer, served by the same Lambda.
pub const CONNECTION_URLS_RESOURCE_TYPE: &str = "Custom::AirflowConnectionUrls";

/// Environment variable of the secrets Lambda: the stack's Cloud Map namespace. The
/// Fargate Redis is registered there as `redis`, and `redis.<namespace>` is the one
/// `RedisHost` besides an ElastiCache endpoint that the Lambda accepts.
pub const NAMESPACE_ENV: &str = "AIRFLOW_STACK_NAMESPACE";

/// The database user Airflow connects as: it owns the Airflow database and nothing
/// else, and is not the master user, whose password only the migration task gets.
/// Created (or given its password again) by the migration on every deploy.
pub const AIRFLOW_DATABASE_USER: &str = "airflow_app";

/// Length of the generated alphanumeric passwords when `PasswordLength` is absent; the
/// stack file's `secrets.password_length` defaults to it too.
pub const DEFAULT_PASSWORD_LENGTH: u32 = 32;
/// Allowed password lengths: the stack file is validated against this range (CLI) and
/// the Lambda refuses anything outside it. 16 alphanumerics carry ~95 bits; 128 stays far
/// below every consumer's limit (PostgreSQL, Redis AUTH, the Airflow admin form).
pub const PASSWORD_LENGTHS: std::ops::RangeInclusive<u32> = 16..=128;

/// The property names of both resources. Only this crate spells them: the CLI writes
/// them through [`SecretsProperties::to_properties`] and
/// [`ConnectionUrlsProperties::to_properties`], the Lambda reads them through `read`
/// and names them in its errors and version ids with these constants.
pub mod property {
    /// ARN of the Fernet key secret (a plain string).
    pub const FERNET_KEY_SECRET_ARN: &str = "FernetKeySecretArn";
    /// ARN of the signing keys secret (JSON: [`super::key::API_SECRET_KEY`],
    /// [`super::key::JWT_SECRET`]).
    pub const SIGNING_KEYS_SECRET_ARN: &str = "SigningKeysSecretArn";
    /// ARN of the database secret (JSON: [`super::key::PASSWORD`],
    /// [`super::key::SQL_ALCHEMY_CONN`]); used by both resources.
    pub const DATABASE_SECRET_ARN: &str = "DatabaseSecretArn";
    /// ARN of the Redis secret (JSON: [`super::key::PASSWORD`],
    /// [`super::key::BROKER_URL`]); used by both resources.
    pub const REDIS_SECRET_ARN: &str = "RedisSecretArn";
    /// ARN of the admin password secret (a plain string).
    pub const ADMIN_PASSWORD_SECRET_ARN: &str = "AdminPasswordSecretArn";
    /// ARN of the scaler's Airflow password secret (a plain string); only in stacks that
    /// run the scaler.
    pub const SCALER_PASSWORD_SECRET_ARN: &str = "ScalerPasswordSecretArn";
    /// ARN of the stream processor's Airflow password secret (a plain string); only in
    /// stacks with event streams.
    pub const STREAMS_PASSWORD_SECRET_ARN: &str = "StreamsPasswordSecretArn";
    /// Length of generated passwords, in [`super::PASSWORD_LENGTHS`].
    pub const PASSWORD_LENGTH: &str = "PasswordLength";
    /// Fernet rotation token: a new non-empty value rotates the key on Update.
    pub const FERNET_ROTATION: &str = "FernetRotation";
    /// Database user name.
    pub const DB_USER: &str = "DbUser";
    /// Database endpoint host.
    pub const DB_HOST: &str = "DbHost";
    /// Database port.
    pub const DB_PORT: &str = "DbPort";
    /// Database name.
    pub const DB_NAME: &str = "DbName";
    /// libpq `sslmode`, appended as `?sslmode=` when present.
    pub const DB_SSL_MODE: &str = "DbSslMode";
    /// Redis endpoint host.
    pub const REDIS_HOST: &str = "RedisHost";
    /// Redis port.
    pub const REDIS_PORT: &str = "RedisPort";
    /// `true` for in-transit encryption (`rediss://`), `false` otherwise.
    pub const REDIS_TLS: &str = "RedisTls";
    /// Redis database number (0-255) of the Celery broker.
    pub const REDIS_DB: &str = "RedisDb";
}

/// The JSON keys inside the JSON-object secrets. Written by the secrets Lambda, read by
/// ECS (`valueFrom: <arn>:<key>::`) and CloudFormation dynamic references.
pub mod key {
    /// `[api] secret_key`, in the signing keys secret; written by `Custom::AirflowSecrets`.
    pub const API_SECRET_KEY: &str = "api_secret_key";
    /// `[api_auth] jwt_secret`, in the signing keys secret; written by
    /// `Custom::AirflowSecrets`.
    pub const JWT_SECRET: &str = "jwt_secret";
    /// The database master password (database secret) or the Redis AUTH token (Redis
    /// secret); written by `Custom::AirflowSecrets`, read by RDS and ElastiCache through
    /// dynamic references and by `Custom::AirflowConnectionUrls`.
    pub const PASSWORD: &str = "password";
    /// The master user's URL, in the database secret; written by
    /// `Custom::AirflowConnectionUrls`. Only the migration task gets it: it creates the
    /// Airflow user ([`super::AIRFLOW_DATABASE_USER`]) with it. (The key kept its name
    /// from the versions in which every component connected as the master.)
    pub const SQL_ALCHEMY_CONN: &str = "sql_alchemy_conn";
    /// The password of the Airflow database user, in the database secret; written by
    /// `Custom::AirflowSecrets`, set on the user by the migration task.
    pub const AIRFLOW_PASSWORD: &str = "airflow_password";
    /// `[database] sql_alchemy_conn` of every Airflow component: the Airflow user's URL,
    /// in the database secret; written by `Custom::AirflowConnectionUrls`.
    pub const AIRFLOW_SQL_ALCHEMY_CONN: &str = "airflow_sql_alchemy_conn";
    /// `[celery] broker_url`, in the Redis secret; written by
    /// `Custom::AirflowConnectionUrls`.
    pub const BROKER_URL: &str = "broker_url";
}

/// `<arn>:<key>::` is how ECS names one key of a JSON secret in `valueFrom`: the ARN,
/// then `:json-key:version-stage:version-id` with the last two empty for the current
/// version (Amazon ECS Developer Guide, "Pass Secrets Manager secrets through Amazon ECS
/// environment variables"). This is the part after the ARN.
pub fn ecs_value_from_suffix(json_key: &str) -> String {
    format!(":{json_key}::")
}

/// The secrets the template creates and `Custom::AirflowSecrets` fills: five always,
/// [`Secret::ScalerPassword`] when the stack runs the scaler, [`Secret::StreamsPassword`]
/// when it has event streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Secret {
    /// The Fernet key (plain; `new,<older keys>` after a rotation).
    FernetKey,
    /// `{"api_secret_key", "jwt_secret"}`.
    SigningKeys,
    /// `{"password", "airflow_password", "sql_alchemy_conn", "airflow_sql_alchemy_conn"}`.
    Database,
    /// `{"password", "broker_url"}`.
    Redis,
    /// The Airflow admin user's password (plain).
    AdminPassword,
    /// The password of the scaler's read-only Airflow user (plain;
    /// [`crate::scaler::SCALER_USERNAME`]).
    ScalerPassword,
    /// The password of the stream processor's Airflow user (plain;
    /// [`crate::streams::STREAMS_USERNAME`]), which may trigger DAG runs and record
    /// Asset events.
    StreamsPassword,
}

impl Secret {
    /// Every secret, in the order the template creates them.
    pub const ALL: [Secret; 7] = [
        Secret::FernetKey,
        Secret::SigningKeys,
        Secret::Database,
        Secret::Redis,
        Secret::AdminPassword,
        Secret::ScalerPassword,
        Secret::StreamsPassword,
    ];

    /// Whether every stack has it (the others exist only with the feature that reads
    /// them).
    pub const fn always(self) -> bool {
        !matches!(self, Secret::ScalerPassword | Secret::StreamsPassword)
    }

    /// The property that carries this secret's ARN (also its name in the Lambda's
    /// errors and version ids).
    pub const fn property(self) -> &'static str {
        match self {
            Secret::FernetKey => property::FERNET_KEY_SECRET_ARN,
            Secret::SigningKeys => property::SIGNING_KEYS_SECRET_ARN,
            Secret::Database => property::DATABASE_SECRET_ARN,
            Secret::Redis => property::REDIS_SECRET_ARN,
            Secret::AdminPassword => property::ADMIN_PASSWORD_SECRET_ARN,
            Secret::ScalerPassword => property::SCALER_PASSWORD_SECRET_ARN,
            Secret::StreamsPassword => property::STREAMS_PASSWORD_SECRET_ARN,
        }
    }

    /// The keys of a JSON-object secret (both resources' keys); empty for a plain one.
    pub const fn json_keys(self) -> &'static [&'static str] {
        match self {
            Secret::FernetKey
            | Secret::AdminPassword
            | Secret::ScalerPassword
            | Secret::StreamsPassword => &[],
            Secret::SigningKeys => &[key::API_SECRET_KEY, key::JWT_SECRET],
            Secret::Database => &[
                key::PASSWORD,
                key::AIRFLOW_PASSWORD,
                key::SQL_ALCHEMY_CONN,
                key::AIRFLOW_SQL_ALCHEMY_CONN,
            ],
            Secret::Redis => &[key::PASSWORD, key::BROKER_URL],
        }
    }
}

/// Properties of `Custom::AirflowSecrets` (besides `ServiceToken` and `ServiceTimeout`).
///
/// Written by the CLI (src/stack) with `V` its template expression type; read by the
/// secrets Lambda with `V = String` through [`SecretsProperties::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsProperties<V> {
    /// `FernetKeySecretArn`.
    pub fernet_key_secret_arn: V,
    /// `SigningKeysSecretArn`.
    pub signing_keys_secret_arn: V,
    /// `DatabaseSecretArn`.
    pub database_secret_arn: V,
    /// `RedisSecretArn`.
    pub redis_secret_arn: V,
    /// `AdminPasswordSecretArn`.
    pub admin_password_secret_arn: V,
    /// `ScalerPasswordSecretArn`: present when the stack runs the scaler.
    pub scaler_password_secret_arn: Option<V>,
    /// `StreamsPasswordSecretArn`: present when the stack has event streams.
    pub streams_password_secret_arn: Option<V>,
    /// `PasswordLength`: [`DEFAULT_PASSWORD_LENGTH`] when absent; must be in
    /// [`PASSWORD_LENGTHS`].
    pub password_length: u32,
    /// `FernetRotation`: a rotation token; absent or empty means none (the CLI writes
    /// the stack file's value, empty included).
    pub fernet_rotation: Option<V>,
}

impl<V> SecretsProperties<V> {
    /// The ARN of `secret`; `None` for an optional secret the stack does not have.
    pub fn arn(&self, secret: Secret) -> Option<&V> {
        match secret {
            Secret::FernetKey => Some(&self.fernet_key_secret_arn),
            Secret::SigningKeys => Some(&self.signing_keys_secret_arn),
            Secret::Database => Some(&self.database_secret_arn),
            Secret::Redis => Some(&self.redis_secret_arn),
            Secret::AdminPassword => Some(&self.admin_password_secret_arn),
            Secret::ScalerPassword => self.scaler_password_secret_arn.as_ref(),
            Secret::StreamsPassword => self.streams_password_secret_arn.as_ref(),
        }
    }

    /// The secrets this stack has, with their ARNs, in [`Secret::ALL`]'s order.
    pub fn present(&self) -> impl Iterator<Item = (Secret, &V)> {
        Secret::ALL
            .into_iter()
            .filter_map(|secret| self.arn(secret).map(|arn| (secret, arn)))
    }

    /// The properties as the template holds them, by name.
    pub fn to_properties(&self) -> PropertyMap<V>
    where
        V: Clone + From<String>,
    {
        let mut map: PropertyMap<V> = self
            .present()
            .map(|(s, arn)| (s.property(), PropertyValue::One(arn.clone())))
            .collect();
        map.insert(
            property::PASSWORD_LENGTH,
            PropertyValue::One(V::from(self.password_length.to_string())),
        );
        if let Some(token) = &self.fernet_rotation {
            map.insert(property::FERNET_ROTATION, PropertyValue::One(token.clone()));
        }
        map
    }
}

impl SecretsProperties<String> {
    /// Reads the properties CloudFormation sent (every value a string). Checks
    /// presence and the password length; what an ARN must look like is the Lambda's
    /// business.
    pub fn read(properties: &Map<String, Value>) -> Result<Self, PropertyError> {
        let arn = |name| wire::required(properties, name).map(str::to_owned);
        Ok(Self {
            fernet_key_secret_arn: arn(property::FERNET_KEY_SECRET_ARN)?,
            signing_keys_secret_arn: arn(property::SIGNING_KEYS_SECRET_ARN)?,
            database_secret_arn: arn(property::DATABASE_SECRET_ARN)?,
            redis_secret_arn: arn(property::REDIS_SECRET_ARN)?,
            admin_password_secret_arn: arn(property::ADMIN_PASSWORD_SECRET_ARN)?,
            scaler_password_secret_arn: wire::optional(
                properties,
                property::SCALER_PASSWORD_SECRET_ARN,
            )?
            .map(str::to_owned),
            streams_password_secret_arn: wire::optional(
                properties,
                property::STREAMS_PASSWORD_SECRET_ARN,
            )?
            .map(str::to_owned),
            password_length: wire::number_in(
                properties,
                property::PASSWORD_LENGTH,
                PASSWORD_LENGTHS,
                DEFAULT_PASSWORD_LENGTH,
                &format!(
                    "an integer from {} to {}",
                    PASSWORD_LENGTHS.start(),
                    PASSWORD_LENGTHS.end()
                ),
            )?,
            fernet_rotation: wire::optional(properties, property::FERNET_ROTATION)?
                .map(str::to_owned),
        })
    }
}

/// Properties of `Custom::AirflowConnectionUrls` (besides `ServiceToken` and
/// `ServiceTimeout`). The passwords are not among them: the Lambda reads them from the
/// secrets.
///
/// Written by the CLI with `V` its template expression type; read by the secrets Lambda
/// with `V = String` through [`ConnectionUrlsProperties::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionUrlsProperties<V> {
    /// `DatabaseSecretArn`: gets `sql_alchemy_conn`.
    pub database_secret_arn: V,
    /// `RedisSecretArn`: gets `broker_url`.
    pub redis_secret_arn: V,
    /// `DbUser`.
    pub db_user: V,
    /// `DbHost`.
    pub db_host: V,
    /// `DbPort`.
    pub db_port: V,
    /// `DbName`.
    pub db_name: V,
    /// `DbSslMode`: `?sslmode=<mode>` when present.
    pub db_ssl_mode: Option<V>,
    /// `RedisHost`.
    pub redis_host: V,
    /// `RedisPort`.
    pub redis_port: V,
    /// `RedisTls`: `rediss://` (certificate required) when true.
    pub redis_tls: bool,
    /// `RedisDb`: 0 when absent.
    pub redis_db: u8,
}

impl<V> ConnectionUrlsProperties<V> {
    /// The properties as the template holds them, by name.
    pub fn to_properties(&self) -> PropertyMap<V>
    where
        V: Clone + From<String>,
    {
        let one = |v: &V| PropertyValue::One(v.clone());
        let text = |s: String| PropertyValue::One(V::from(s));
        let mut map = PropertyMap::from([
            (
                property::DATABASE_SECRET_ARN,
                one(&self.database_secret_arn),
            ),
            (property::REDIS_SECRET_ARN, one(&self.redis_secret_arn)),
            (property::DB_USER, one(&self.db_user)),
            (property::DB_HOST, one(&self.db_host)),
            (property::DB_PORT, one(&self.db_port)),
            (property::DB_NAME, one(&self.db_name)),
            (property::REDIS_HOST, one(&self.redis_host)),
            (property::REDIS_PORT, one(&self.redis_port)),
            (
                property::REDIS_TLS,
                text(wire::flag_text(self.redis_tls).to_owned()),
            ),
            (property::REDIS_DB, text(self.redis_db.to_string())),
        ]);
        if let Some(mode) = &self.db_ssl_mode {
            map.insert(property::DB_SSL_MODE, one(mode));
        }
        map
    }
}

impl ConnectionUrlsProperties<String> {
    /// Reads the properties CloudFormation sent. Checks presence, `RedisTls` and
    /// `RedisDb`; what a host, port or name must look like is the Lambda's business.
    pub fn read(properties: &Map<String, Value>) -> Result<Self, PropertyError> {
        let required = |name| wire::required(properties, name).map(str::to_owned);
        // Fields are read in order, so the first problem reported is the first property.
        Ok(Self {
            database_secret_arn: required(property::DATABASE_SECRET_ARN)?,
            redis_secret_arn: required(property::REDIS_SECRET_ARN)?,
            db_user: required(property::DB_USER)?,
            db_host: required(property::DB_HOST)?,
            db_port: required(property::DB_PORT)?,
            db_name: required(property::DB_NAME)?,
            db_ssl_mode: wire::optional(properties, property::DB_SSL_MODE)?.map(str::to_owned),
            redis_host: required(property::REDIS_HOST)?,
            redis_port: required(property::REDIS_PORT)?,
            redis_tls: wire::flag(properties, property::REDIS_TLS)?,
            redis_db: wire::number_in(
                properties,
                property::REDIS_DB,
                0..=u8::MAX,
                0,
                "a database number from 0 to 255",
            )?,
        })
    }
}

impl<V: Serialize + Clone + From<String>> Serialize for SecretsProperties<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_properties().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SecretsProperties<String> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::deserialize_with(deserializer, Self::read)
    }
}

impl<V: Serialize + Clone + From<String>> Serialize for ConnectionUrlsProperties<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_properties().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ConnectionUrlsProperties<String> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::deserialize_with(deserializer, Self::read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A stand-in for the CLI's expression type: not `String`, built from strings.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    #[serde(untagged)]
    enum Expr {
        Lit(String),
        Ref {
            #[serde(rename = "Ref")]
            target: String,
        },
    }

    impl From<String> for Expr {
        fn from(s: String) -> Self {
            Expr::Lit(s)
        }
    }

    fn reference(id: &str) -> Expr {
        Expr::Ref { target: id.into() }
    }

    fn resolved(expr: &Expr) -> String {
        match expr {
            Expr::Lit(s) => s.clone(),
            Expr::Ref { target } => format!("arn:aws:secretsmanager:us-east-1:1:secret:{target}"),
        }
    }

    /// What CloudFormation does between the template and the Lambda: resolve the
    /// expressions, pass every scalar as a string.
    fn cloudformation(template: Value) -> Value {
        match template {
            Value::Object(map) if map.contains_key("Ref") => {
                json!(format!(
                    "arn:aws:secretsmanager:us-east-1:1:secret:{}",
                    map["Ref"].as_str().unwrap()
                ))
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, cloudformation(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(cloudformation).collect()),
            other => other,
        }
    }

    fn cli_secrets(rotation: &str) -> SecretsProperties<Expr> {
        SecretsProperties {
            fernet_key_secret_arn: reference("FernetKeySecret"),
            signing_keys_secret_arn: reference("SigningKeysSecret"),
            database_secret_arn: reference("DatabaseSecret"),
            redis_secret_arn: reference("RedisSecret"),
            admin_password_secret_arn: reference("AdminPasswordSecret"),
            scaler_password_secret_arn: Some(reference("ScalerPasswordSecret")),
            streams_password_secret_arn: Some(reference("StreamsPasswordSecret")),
            password_length: 40,
            fernet_rotation: Some(Expr::Lit(rotation.into())),
        }
    }

    #[test]
    fn secrets_round_trip_from_the_cli_shape_to_the_lambda_shape() {
        let cli = cli_secrets("r1");
        let template = serde_json::to_value(&cli).unwrap();
        assert_eq!(
            template["DatabaseSecretArn"],
            json!({"Ref": "DatabaseSecret"})
        );
        assert_eq!(template["PasswordLength"], "40");
        let lambda: SecretsProperties<String> =
            serde_json::from_value(cloudformation(template)).unwrap();
        assert_eq!(
            lambda,
            SecretsProperties {
                fernet_key_secret_arn: resolved(&cli.fernet_key_secret_arn),
                signing_keys_secret_arn: resolved(&cli.signing_keys_secret_arn),
                database_secret_arn: resolved(&cli.database_secret_arn),
                redis_secret_arn: resolved(&cli.redis_secret_arn),
                admin_password_secret_arn: resolved(&cli.admin_password_secret_arn),
                scaler_password_secret_arn: cli.scaler_password_secret_arn.as_ref().map(resolved),
                streams_password_secret_arn: cli.streams_password_secret_arn.as_ref().map(resolved),
                password_length: 40,
                fernet_rotation: Some("r1".into()),
            }
        );
        for secret in Secret::ALL {
            assert_eq!(lambda.arn(secret), cli.arn(secret).map(resolved).as_ref());
        }
    }

    #[test]
    fn the_scaler_and_streams_passwords_are_optional_and_the_others_are_not() {
        let mut cli = cli_secrets("");
        cli.scaler_password_secret_arn = None;
        cli.streams_password_secret_arn = None;
        let template = serde_json::to_value(&cli).unwrap();
        assert!(template.get("ScalerPasswordSecretArn").is_none());
        assert!(template.get("StreamsPasswordSecretArn").is_none());
        let lambda =
            SecretsProperties::read(cloudformation(template.clone()).as_object().unwrap()).unwrap();
        assert_eq!(lambda.scaler_password_secret_arn, None);
        assert_eq!(lambda.streams_password_secret_arn, None);
        assert_eq!(
            lambda.present().map(|(s, _)| s).collect::<Vec<_>>(),
            Secret::ALL
                .into_iter()
                .filter(|s| s.always())
                .collect::<Vec<_>>()
        );
        let mut without_admin = cloudformation(template);
        without_admin
            .as_object_mut()
            .unwrap()
            .remove("AdminPasswordSecretArn");
        assert!(SecretsProperties::read(without_admin.as_object().unwrap()).is_err());
    }

    #[test]
    fn an_empty_rotation_token_is_written_and_read_as_none() {
        let template = serde_json::to_value(cli_secrets("")).unwrap();
        assert_eq!(
            template["FernetRotation"], "",
            "the template keeps the stack file's value"
        );
        let lambda =
            SecretsProperties::read(cloudformation(template).as_object().unwrap()).unwrap();
        assert_eq!(lambda.fernet_rotation, None);
    }

    #[test]
    fn the_template_prints_properties_in_name_order() {
        let text = serde_json::to_string(&cli_secrets("r")).unwrap();
        let keys: Vec<&str> = cli_secrets("r").to_properties().into_keys().collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| text.find(&format!("\"{k}\"")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn password_length_outside_the_range_is_refused_by_name() {
        for bad in ["15", "129", "ten", "-1"] {
            let mut props = cloudformation(serde_json::to_value(cli_secrets("")).unwrap());
            props["PasswordLength"] = json!(bad);
            let error = SecretsProperties::read(props.as_object().unwrap()).unwrap_err();
            assert_eq!(
                error.to_string(),
                "property PasswordLength is invalid: an integer from 16 to 128"
            );
        }
        let mut props = cloudformation(serde_json::to_value(cli_secrets("")).unwrap());
        props.as_object_mut().unwrap().remove("PasswordLength");
        let read = SecretsProperties::read(props.as_object().unwrap()).unwrap();
        assert_eq!(read.password_length, DEFAULT_PASSWORD_LENGTH);
    }

    fn cli_urls(tls: bool) -> ConnectionUrlsProperties<Expr> {
        ConnectionUrlsProperties {
            database_secret_arn: reference("DatabaseSecret"),
            redis_secret_arn: reference("RedisSecret"),
            db_user: Expr::Lit("airflow".into()),
            db_host: Expr::Lit("db.example".into()),
            db_port: Expr::Lit("5432".into()),
            db_name: Expr::Lit("airflow".into()),
            db_ssl_mode: Some(Expr::Lit("require".into())),
            redis_host: Expr::Lit("redis.example".into()),
            redis_port: Expr::Lit("6379".into()),
            redis_tls: tls,
            redis_db: 0,
        }
    }

    #[test]
    fn connection_urls_round_trip_from_the_cli_shape_to_the_lambda_shape() {
        for tls in [true, false] {
            let template = serde_json::to_value(cli_urls(tls)).unwrap();
            assert_eq!(template["RedisTls"], if tls { "true" } else { "false" });
            assert_eq!(template["RedisDb"], "0");
            let lambda: ConnectionUrlsProperties<String> =
                serde_json::from_value(cloudformation(template)).unwrap();
            let cli = cli_urls(tls);
            assert_eq!(
                lambda,
                ConnectionUrlsProperties {
                    database_secret_arn: resolved(&cli.database_secret_arn),
                    redis_secret_arn: resolved(&cli.redis_secret_arn),
                    db_user: "airflow".into(),
                    db_host: "db.example".into(),
                    db_port: "5432".into(),
                    db_name: "airflow".into(),
                    db_ssl_mode: Some("require".into()),
                    redis_host: "redis.example".into(),
                    redis_port: "6379".into(),
                    redis_tls: tls,
                    redis_db: 0,
                }
            );
        }
    }

    #[test]
    fn connection_url_flags_and_numbers_are_checked_by_name() {
        let base = || cloudformation(serde_json::to_value(cli_urls(true)).unwrap());
        for (name, value, message) in [
            (
                "RedisTls",
                json!("yes"),
                "property RedisTls is invalid: \"true\" or \"false\"",
            ),
            (
                "RedisDb",
                json!("256"),
                "property RedisDb is invalid: a database number from 0 to 255",
            ),
            ("DbHost", json!(5432), "property DbHost must be a string"),
            ("DbUser", json!(""), "property DbUser is required"),
        ] {
            let mut props = base();
            props[name] = value;
            let error = ConnectionUrlsProperties::read(props.as_object().unwrap()).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
        let mut props = base();
        props["RedisTls"] = json!("TRUE");
        props.as_object_mut().unwrap().remove("RedisDb");
        let read = ConnectionUrlsProperties::read(props.as_object().unwrap()).unwrap();
        assert!(read.redis_tls);
        assert_eq!(read.redis_db, 0);
    }

    #[test]
    fn every_secret_names_its_own_property_and_keys() {
        let properties: Vec<&str> = Secret::ALL.iter().map(|s| s.property()).collect();
        let mut unique = properties.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), Secret::ALL.len());
        assert_eq!(
            Secret::Database.json_keys(),
            [
                "password",
                "airflow_password",
                "sql_alchemy_conn",
                "airflow_sql_alchemy_conn"
            ]
        );
        assert!(Secret::FernetKey.json_keys().is_empty());
        assert_eq!(ecs_value_from_suffix(key::BROKER_URL), ":broker_url::");
    }
}
