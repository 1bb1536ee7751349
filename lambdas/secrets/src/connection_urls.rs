//! `Custom::AirflowConnectionUrls`: once the database and Redis endpoints are known,
//! writes Airflow's full connection URLs (with the URL-encoded passwords) next to the
//! passwords they contain. Into the database JSON secret: `"sql_alchemy_conn"`, the
//! master user's URL (the migration task's alone), and `"airflow_sql_alchemy_conn"`, the
//! Airflow database user's ([`AIRFLOW_DATABASE_USER`]), which every component uses; into
//! the Redis one, `"broker_url"`. ECS reads each key with `valueFrom: <arn>:<key>::`.
//! There is no result-backend value: the stack points `[celery] result_backend` at the
//! broker's Redis.
//!
//! Each document is read, the URL keys alone are set, and it is written back only when
//! a URL changed; the passwords and every other key stay as they are.
//!
//! The hosts are limited to what the stack can create ([`HostRules`]): a URL carries the
//! real password, so it must never point anywhere else.

use airflow_stack_contract::secrets::{
    key, property, ConnectionUrlsProperties, AIRFLOW_DATABASE_USER, NAMESPACE_ENV,
};
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

/// Suffixes of RDS endpoints (`<name>.cluster-<id>.<region>.rds.amazonaws.com`, and
/// `.amazonaws.com.cn` in the China regions).
const RDS_SUFFIXES: [&str; 2] = [".rds.amazonaws.com", ".rds.amazonaws.com.cn"];
/// Suffixes of ElastiCache endpoints (`master.<id>.<hash>.<region>.cache.amazonaws.com`).
const ELASTICACHE_SUFFIXES: [&str; 2] = [".cache.amazonaws.com", ".cache.amazonaws.com.cn"];
/// The Cloud Map service name of the Fargate Redis (src/stack/broker.rs registers it).
const REDIS_SERVICE: &str = "redis";

/// Which hosts a connection URL may name: those the stack can create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRules {
    /// The stack's Cloud Map namespace, where the Fargate Redis is `redis.<namespace>`.
    pub cloud_map_namespace: Option<String>,
}

impl HostRules {
    /// From the function's environment ([`NAMESPACE_ENV`], set by the template).
    pub fn from_env() -> Self {
        Self {
            cloud_map_namespace: std::env::var(NAMESPACE_ENV)
                .ok()
                .filter(|ns| !ns.is_empty()),
        }
    }

    /// `DbHost`: an RDS endpoint.
    fn database(&self, host: &str) -> Result<(), PropertyError> {
        let valid = is_host(host) && has_suffix(host, &RDS_SUFFIXES);
        checked_host(
            property::DB_HOST,
            valid,
            "an RDS endpoint (*.rds.amazonaws.com)".into(),
        )
    }

    /// `RedisHost`: an ElastiCache endpoint, or `redis.<namespace>` of this stack.
    fn redis(&self, host: &str) -> Result<(), PropertyError> {
        let cloud_map = self
            .cloud_map_namespace
            .as_ref()
            .map(|ns| format!("{REDIS_SERVICE}.{ns}"));
        let valid = is_host(host)
            && (has_suffix(host, &ELASTICACHE_SUFFIXES)
                || cloud_map
                    .as_deref()
                    .is_some_and(|own| host.eq_ignore_ascii_case(own)));
        let expected = match cloud_map {
            Some(own) => format!("an ElastiCache endpoint (*.cache.amazonaws.com) or {own}"),
            None => "an ElastiCache endpoint (*.cache.amazonaws.com)".into(),
        };
        checked_host(property::REDIS_HOST, valid, expected)
    }
}

/// `host` ends with one of `suffixes` after at least one label of its own.
fn has_suffix(host: &str, suffixes: &[&str]) -> bool {
    let host = host.to_ascii_lowercase();
    suffixes.iter().any(|suffix| {
        host.strip_suffix(suffix)
            .is_some_and(|name| !name.is_empty() && !name.ends_with('.'))
    })
}

/// The property error for a host outside the stack: names the property and what is
/// valid, never the value.
fn checked_host(name: &str, valid: bool, expected: String) -> Result<(), PropertyError> {
    if valid {
        Ok(())
    } else {
        Err(PropertyError::invalid(name, expected))
    }
}

/// Reads the properties (the contract checks presence, `RedisTls` and `RedisDb`) and
/// checks that every value is safe to put into a URL and names a host of the stack.
fn parse(props: &Properties, hosts: &HostRules) -> Result<UrlProps, PropertyError> {
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
    hosts.database(&p.db_host)?;
    checked(property::DB_PORT, &p.db_port, is_port, port)?;
    checked(property::DB_NAME, &p.db_name, is_identifier, name)?;
    hosts.redis(&p.redis_host)?;
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
fn sql_alchemy_conn(props: &UrlProps, user: &str, db_password: &str) -> String {
    let ssl = props
        .db_ssl_mode
        .as_ref()
        .map(|m| format!("?sslmode={m}"))
        .unwrap_or_default();
    format!(
        "postgresql+psycopg2://{}:{}@{}:{}/{}{}",
        encode(user),
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
/// Nothing is read or written unless every property, the hosts included, is valid.
pub async fn write_urls(
    request: &CustomResourceRequest,
    store: &dyn SecretStore,
    hosts: &HostRules,
) -> Result<HandlerOutput, HandlerError> {
    let props = parse(&request.resource_properties, hosts)?;
    // Both documents are read (and checked) before anything is written.
    let database = read_document(store, &props.database_secret_arn, DATABASE).await?;
    let redis = read_document(store, &props.redis_secret_arn, REDIS).await?;
    // The master's URL for the migration; the Airflow user's for everything else.
    let master_url = sql_alchemy_conn(&props, &props.db_user, password(&database, DATABASE)?);
    let airflow_url = sql_alchemy_conn(
        &props,
        AIRFLOW_DATABASE_USER,
        key_of(&database, DATABASE, key::AIRFLOW_PASSWORD)?,
    );
    let redis_url = broker_url(&props, password(&redis, REDIS)?);
    let wanted = [
        (
            DATABASE,
            props.database_secret_arn.as_str(),
            database,
            vec![
                (key::SQL_ALCHEMY_CONN, master_url),
                (key::AIRFLOW_SQL_ALCHEMY_CONN, airflow_url),
            ],
        ),
        (
            REDIS,
            props.redis_secret_arn.as_str(),
            redis,
            vec![(key::BROKER_URL, redis_url)],
        ),
    ];
    for (property, arn, document, urls) in wanted {
        let keys: Vec<&str> = urls.iter().map(|(k, _)| *k).collect();
        let keys = keys.join(",");
        let written = write_if_changed(request, store, property, arn, document, urls).await?;
        tracing::info!(secret = property, keys, written, "connection URLs ensured");
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
    key_of(document, property, key::PASSWORD)
}

/// A key `Custom::AirflowSecrets` wrote.
fn key_of<'d>(
    document: &'d Document,
    property: &'static str,
    key: &'static str,
) -> Result<&'d str, HandlerError> {
    json_secret::string_key(document, property, key)?
        .ok_or(HandlerError::MissingKey { property, key })
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
    urls: Vec<(&'static str, String)>,
) -> Result<bool, HandlerError> {
    let unchanged = urls
        .iter()
        .all(|(key, url)| document.get(*key).and_then(|v| v.as_str()) == Some(url.as_str()));
    if unchanged {
        return Ok(false);
    }
    let keys: Vec<&str> = urls.iter().map(|(k, _)| *k).collect();
    for (key, url) in urls {
        document.insert(key.to_owned(), url.into());
    }
    let text = json_secret::to_text(&document);
    let version = version_id(&[
        &request.stack_id,
        &request.logical_resource_id,
        property,
        &keys.join(","),
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

    fn rules() -> HostRules {
        HostRules {
            cloud_map_namespace: Some("airflow".into()),
        }
    }

    #[test]
    fn database_hosts_must_be_rds_endpoints() {
        let rules = rules();
        for good in [
            "db.cluster-abc123.us-east-1.rds.amazonaws.com",
            "db.abc123.cn-north-1.rds.amazonaws.com.cn",
            "DB.CLUSTER-ABC.EU-WEST-1.RDS.AMAZONAWS.COM",
        ] {
            assert_eq!(rules.database(good), Ok(()), "{good}");
        }
        for bad in [
            "attacker.example.com",
            "rds.amazonaws.com",
            ".rds.amazonaws.com",
            "x..rds.amazonaws.com",
            "rds.amazonaws.com.attacker.example",
            "db.cache.amazonaws.com",
            "redis.airflow",
            "10.0.0.1",
            "db.rds.amazonaws.com/x",
        ] {
            assert_eq!(
                rules.database(bad),
                Err(PropertyError::invalid(
                    property::DB_HOST,
                    "an RDS endpoint (*.rds.amazonaws.com)"
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn redis_hosts_must_be_elasticache_or_the_stacks_cloud_map_name() {
        let rules = rules();
        for good in [
            "master.airflow-redis.abc123.use1.cache.amazonaws.com",
            "r.abc.cnn1.cache.amazonaws.com.cn",
            "redis.airflow",
        ] {
            assert_eq!(rules.redis(good), Ok(()), "{good}");
        }
        let expected = PropertyError::invalid(
            property::REDIS_HOST,
            "an ElastiCache endpoint (*.cache.amazonaws.com) or redis.airflow",
        );
        for bad in [
            "attacker.example.com",
            "redis.other",
            "redis.airflow.attacker.example",
            "x.redis.airflow",
            "cache.amazonaws.com",
            "db.cluster-abc.us-east-1.rds.amazonaws.com",
        ] {
            assert_eq!(rules.redis(bad), Err(expected.clone()), "{bad}");
        }
        // Without a namespace only ElastiCache is valid.
        assert_eq!(
            HostRules::default().redis("redis.airflow"),
            Err(PropertyError::invalid(
                property::REDIS_HOST,
                "an ElastiCache endpoint (*.cache.amazonaws.com)"
            ))
        );
    }
}
