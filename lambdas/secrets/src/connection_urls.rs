//! `Custom::AirflowConnectionUrls`: once the database and Redis endpoints are known,
//! writes Airflow's full connection URLs (with the URL-encoded passwords) into their
//! own secrets, because ECS `Secrets.valueFrom` injects a whole secret string and
//! Airflow needs whole URLs.

use cfn_custom_resource::{CustomResourceRequest, HandlerOutput, Properties, PropertyError};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::error::HandlerError;
use crate::generate::version_id;
use crate::props::{checked, is_host, is_identifier, is_port, secret_arn};
use crate::store::{SecretStore, StoreError};

/// The validated properties (passwords are read from Secrets Manager, not sent).
#[derive(Debug)]
struct UrlProps<'a> {
    db_password_arn: &'a str,
    redis_password_arn: &'a str,
    db_user: &'a str,
    db_host: &'a str,
    db_port: &'a str,
    db_name: &'a str,
    db_ssl_mode: Option<&'a str>,
    redis_host: &'a str,
    redis_port: &'a str,
    redis_tls: bool,
    redis_db: &'a str,
    targets: [(&'static str, &'a str); 3],
}

const SQL_ALCHEMY_CONN: &str = "SqlAlchemyConnSecretArn";
const BROKER_URL: &str = "BrokerUrlSecretArn";
const RESULT_BACKEND: &str = "ResultBackendSecretArn";

impl<'a> UrlProps<'a> {
    fn parse(props: &'a Properties) -> Result<Self, PropertyError> {
        let ssl_mode = props.optional("DbSslMode")?;
        if ssl_mode.is_some_and(|m| !is_identifier(m)) {
            return Err(PropertyError::Invalid {
                name: "DbSslMode".into(),
                expected: "an sslmode such as require".into(),
            });
        }
        Ok(Self {
            db_password_arn: secret_arn(props, "DbPasswordSecretArn")?,
            redis_password_arn: secret_arn(props, "RedisPasswordSecretArn")?,
            db_user: checked(props, "DbUser", is_identifier, "letters, digits, _ or -")?,
            db_host: checked(props, "DbHost", is_host, "a host name")?,
            db_port: checked(props, "DbPort", is_port, "a port from 1 to 65535")?,
            db_name: checked(props, "DbName", is_identifier, "letters, digits, _ or -")?,
            db_ssl_mode: ssl_mode,
            redis_host: checked(props, "RedisHost", is_host, "a host name")?,
            redis_port: checked(props, "RedisPort", is_port, "a port from 1 to 65535")?,
            redis_tls: redis_tls(props)?,
            redis_db: redis_db(props)?,
            targets: [
                (SQL_ALCHEMY_CONN, secret_arn(props, SQL_ALCHEMY_CONN)?),
                (BROKER_URL, secret_arn(props, BROKER_URL)?),
                (RESULT_BACKEND, secret_arn(props, RESULT_BACKEND)?),
            ],
        })
    }
}

fn redis_tls(props: &Properties) -> Result<bool, PropertyError> {
    match props.required("RedisTls")?.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(PropertyError::Invalid {
            name: "RedisTls".into(),
            expected: "\"true\" or \"false\"".into(),
        }),
    }
}

fn redis_db(props: &Properties) -> Result<&str, PropertyError> {
    let db = props.or_default("RedisDb", "0")?;
    if db.parse::<u8>().is_ok() {
        Ok(db)
    } else {
        Err(PropertyError::Invalid {
            name: "RedisDb".into(),
            expected: "a database number from 0 to 255".into(),
        })
    }
}

/// Like Python's `quote(value, safe='')`: everything but ASCII letters and digits is
/// percent-encoded (the reference encodes `-._~` too; both forms decode identically).
fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// `USER:PW@HOST:PORT/DB[?sslmode=X]`, shared by both PostgreSQL URLs.
fn postgres_tail(props: &UrlProps<'_>, db_password: &str) -> String {
    let ssl = props
        .db_ssl_mode
        .map(|m| format!("?sslmode={m}"))
        .unwrap_or_default();
    format!(
        "{}:{}@{}:{}/{}{}",
        encode(props.db_user),
        encode(db_password),
        props.db_host,
        props.db_port,
        props.db_name,
        ssl
    )
}

/// `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`.
fn sql_alchemy_conn(props: &UrlProps<'_>, db_password: &str) -> String {
    format!(
        "postgresql+psycopg2://{}",
        postgres_tail(props, db_password)
    )
}

/// `AIRFLOW__CELERY__RESULT_BACKEND`.
fn result_backend(props: &UrlProps<'_>, db_password: &str) -> String {
    format!("db+postgresql://{}", postgres_tail(props, db_password))
}

/// `AIRFLOW__CELERY__BROKER_URL`; TLS uses `rediss://` and requires a valid certificate.
fn broker_url(props: &UrlProps<'_>, redis_password: &str) -> String {
    let (scheme, query) = if props.redis_tls {
        ("rediss", "?ssl_cert_reqs=required")
    } else {
        ("redis", "")
    };
    format!(
        "{scheme}://:{}@{}:{}/{}{query}",
        encode(redis_password),
        props.redis_host,
        props.redis_port,
        props.redis_db
    )
}

/// Create and Update: (re)write each URL whose stored value differs from the wanted one.
pub async fn write_urls(
    request: &CustomResourceRequest,
    store: &dyn SecretStore,
) -> Result<HandlerOutput, HandlerError> {
    let props = UrlProps::parse(&request.resource_properties)?;
    let db_password = read_password(store, props.db_password_arn, "DbPasswordSecretArn").await?;
    let redis_password =
        read_password(store, props.redis_password_arn, "RedisPasswordSecretArn").await?;
    for (property, arn) in props.targets {
        let url = match property {
            SQL_ALCHEMY_CONN => sql_alchemy_conn(&props, &db_password),
            BROKER_URL => broker_url(&props, &redis_password),
            _ => result_backend(&props, &db_password),
        };
        let written = write_if_changed(request, store, property, arn, &url).await?;
        tracing::info!(secret = property, written, "connection URL ensured");
    }
    Ok(HandlerOutput::default())
}

async fn read_password(
    store: &dyn SecretStore,
    arn: &str,
    property: &'static str,
) -> Result<String, HandlerError> {
    store
        .current_value(arn)
        .await
        .map_err(HandlerError::store("GetSecretValue", property))?
        .filter(|value| !value.is_empty())
        .ok_or(HandlerError::EmptySecret(property))
}

/// The version id includes the RequestId: a redelivered request repeats it (and is
/// ignored by Secrets Manager), while a later Update that goes back to an earlier URL
/// gets a new version and so really becomes AWSCURRENT again.
async fn write_if_changed(
    request: &CustomResourceRequest,
    store: &dyn SecretStore,
    property: &'static str,
    arn: &str,
    url: &str,
) -> Result<bool, HandlerError> {
    let current = store
        .current_value(arn)
        .await
        .map_err(HandlerError::store("GetSecretValue", property))?;
    if current.as_deref() == Some(url) {
        return Ok(false);
    }
    let version = version_id(&[
        &request.stack_id,
        &request.logical_resource_id,
        property,
        &request.request_id,
        url,
    ]);
    match store.put_value(arn, &version, url).await {
        Ok(()) | Err(StoreError::TokenConflict) => Ok(true),
        Err(source) => Err(HandlerError::Store {
            operation: "PutSecretValue",
            property,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_python_quote_for_the_reference_examples() {
        assert_eq!(encode("p@ss:w/rd#1"), "p%40ss%3Aw%2Frd%231");
        assert_eq!(encode("r@d:is/pw#1%"), "r%40d%3Ais%2Fpw%231%25");
        assert_eq!(encode("Abc123"), "Abc123");
    }
}
