//! `Custom::AirflowConnectionUrls`: once the database and Redis endpoints are known,
//! writes Airflow's full connection URLs (with the URL-encoded passwords) next to the
//! passwords they contain: `"sql_alchemy_conn"` into the database JSON secret and
//! `"broker_url"` into the Redis one. ECS reads each key with `valueFrom:
//! <arn>:<key>::`. There is no result-backend value: Airflow uses `db+` and
//! `sql_alchemy_conn` when `[celery] result_backend` is unset.
//!
//! Each document is read, the URL key alone is set, and it is written back only when
//! the URL changed; `"password"` and every other key stay as they are.

use airflow_stack_contract::secrets::{key, property, ConnectionUrlsProperties};
use cfn_custom_resource::{CustomResourceRequest, HandlerOutput, Properties, PropertyError};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::error::HandlerError;
use crate::generate::version_id;
use crate::json_secret::{self, Document};
use crate::props::{checked, is_host, is_identifier, is_port, secret_arn};
use crate::store::{SecretStore, StoreError};

/// The validated properties (passwords are read from Secrets Manager, not sent).
type UrlProps = ConnectionUrlsProperties<String>;

const DATABASE: &str = property::DATABASE_SECRET_ARN;
const REDIS: &str = property::REDIS_SECRET_ARN;

/// Reads the properties (the contract checks presence, `RedisTls` and `RedisDb`) and
/// checks that every value is safe to put into a URL.
fn parse(props: &Properties) -> Result<UrlProps, PropertyError> {
    let p = ConnectionUrlsProperties::read(&props.0)?;
    if p.db_ssl_mode.as_deref().is_some_and(|m| !is_identifier(m)) {
        return Err(PropertyError::invalid(
            property::DB_SSL_MODE,
            "an sslmode such as require",
        ));
    }
    secret_arn(DATABASE, &p.database_secret_arn)?;
    secret_arn(REDIS, &p.redis_secret_arn)?;
    let name = "letters, digits, _ or -";
    let port = "a port from 1 to 65535";
    checked(property::DB_USER, &p.db_user, is_identifier, name)?;
    checked(property::DB_HOST, &p.db_host, is_host, "a host name")?;
    checked(property::DB_PORT, &p.db_port, is_port, port)?;
    checked(property::DB_NAME, &p.db_name, is_identifier, name)?;
    checked(property::REDIS_HOST, &p.redis_host, is_host, "a host name")?;
    checked(property::REDIS_PORT, &p.redis_port, is_port, port)?;
    Ok(p)
}

/// Like Python's `quote(value, safe='')`: everything but ASCII letters and digits is
/// percent-encoded (the reference encodes `-._~` too; both forms decode identically).
fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`:
/// `postgresql+psycopg2://USER:PW@HOST:PORT/DB[?sslmode=X]`.
fn sql_alchemy_conn(props: &UrlProps, db_password: &str) -> String {
    let ssl = props
        .db_ssl_mode
        .as_ref()
        .map(|m| format!("?sslmode={m}"))
        .unwrap_or_default();
    format!(
        "postgresql+psycopg2://{}:{}@{}:{}/{}{}",
        encode(&props.db_user),
        encode(db_password),
        props.db_host,
        props.db_port,
        props.db_name,
        ssl
    )
}

/// `AIRFLOW__CELERY__BROKER_URL`; TLS uses `rediss://` and requires a valid certificate.
fn broker_url(props: &UrlProps, redis_password: &str) -> String {
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

/// Create and Update: set each URL key whose stored value differs from the wanted one.
pub async fn write_urls(
    request: &CustomResourceRequest,
    store: &dyn SecretStore,
) -> Result<HandlerOutput, HandlerError> {
    let props = parse(&request.resource_properties)?;
    // Both documents are read (and checked) before anything is written.
    let database = read_document(store, &props.database_secret_arn, DATABASE).await?;
    let redis = read_document(store, &props.redis_secret_arn, REDIS).await?;
    let database_url = sql_alchemy_conn(&props, password(&database, DATABASE)?);
    let redis_url = broker_url(&props, password(&redis, REDIS)?);
    let wanted = [
        (
            DATABASE,
            props.database_secret_arn.as_str(),
            database,
            key::SQL_ALCHEMY_CONN,
            database_url,
        ),
        (
            REDIS,
            props.redis_secret_arn.as_str(),
            redis,
            key::BROKER_URL,
            redis_url,
        ),
    ];
    for (property, arn, document, key, url) in wanted {
        let written = write_if_changed(request, store, property, arn, document, key, url).await?;
        tracing::info!(secret = property, key, written, "connection URL ensured");
    }
    Ok(HandlerOutput::default())
}

async fn read_document(
    store: &dyn SecretStore,
    arn: &str,
    property: &'static str,
) -> Result<Document, HandlerError> {
    let current = store
        .current_value(arn)
        .await
        .map_err(HandlerError::store("GetSecretValue", property))?
        .filter(|value| !value.trim().is_empty())
        .ok_or(HandlerError::EmptySecret(property))?;
    json_secret::parse(property, Some(&current))
}

/// The `"password"` that `Custom::AirflowSecrets` wrote (or that was there before).
fn password<'d>(document: &'d Document, property: &'static str) -> Result<&'d str, HandlerError> {
    json_secret::string_key(document, property, key::PASSWORD)?.ok_or(HandlerError::MissingKey {
        property,
        key: key::PASSWORD,
    })
}

/// The version id includes the RequestId: a redelivered request repeats it (and is
/// ignored by Secrets Manager), while a later Update that goes back to an earlier URL
/// gets a new version and so really becomes AWSCURRENT again. It also includes the
/// whole new document, so a redelivery after someone changed another key gets a new
/// version rather than a conflict.
async fn write_if_changed(
    request: &CustomResourceRequest,
    store: &dyn SecretStore,
    property: &'static str,
    arn: &str,
    mut document: Document,
    key: &'static str,
    url: String,
) -> Result<bool, HandlerError> {
    if document.get(key).and_then(|v| v.as_str()) == Some(url.as_str()) {
        return Ok(false);
    }
    document.insert(key.to_owned(), url.into());
    let text = json_secret::to_text(&document);
    let version = version_id(&[
        &request.stack_id,
        &request.logical_resource_id,
        property,
        key,
        &request.request_id,
        &text,
    ]);
    match store.put_value(arn, &version, &text).await {
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
