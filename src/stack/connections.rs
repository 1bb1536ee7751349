//! The connection URLs (`Custom::AirflowConnectionUrls`): once the database and the
//! broker have endpoints, the secrets Lambda writes `sql_alchemy_conn` and `broker_url`
//! into their JSON secrets, built from the generated passwords. Separate from the
//! generated secrets because it needs the database and the broker, which need those.

use airflow_stack_contract::secrets::{ConnectionUrlsProperties, CONNECTION_URLS_RESOURCE_TYPE};

use super::broker::Broker;
use super::database::Database;
use super::keys::Keys;
use super::scope::Scope;
use crate::cfn::custom::CustomResource;
use crate::cfn::{Attributes, Expr, LogicalId};

/// The database, the broker and the resource that wrote their URLs: what the migration
/// and the services connect to.
pub struct Backends {
    /// The metadata database.
    pub database: Database,
    /// The Celery broker.
    pub broker: Broker,
    /// The connection-URL resource; consumers of the URLs depend on it.
    pub urls_written: LogicalId,
}

/// Adds the connection-URL resource for `database` and `broker`.
pub fn add(s: &mut Scope, keys: &Keys, database: Database, broker: Broker) -> Backends {
    let spec = s.spec;
    let properties = ConnectionUrlsProperties {
        database_secret_arn: keys.database.clone(),
        redis_secret_arn: keys.redis.clone(),
        db_user: Expr::lit(spec.database.username.clone()),
        db_host: database.host.clone(),
        db_port: database.port.clone(),
        db_name: Expr::lit(spec.database.name.clone()),
        // RDS and Aurora accept TLS; `require` encrypts without a CA bundle in the image.
        db_ssl_mode: Some(Expr::lit("require")),
        redis_host: broker.host.clone(),
        redis_port: broker.port.clone(),
        redis_tls: broker.tls,
        redis_db: 0,
    };
    let urls = CustomResource::new(CONNECTION_URLS_RESOURCE_TYPE, keys.function.clone(), 300)
        .with_properties(properties.to_properties());
    let handle = s.t.add_with(
        "ConnectionUrls",
        urls,
        Attributes::depends_on([keys.generated.clone()]),
    );
    Backends {
        database,
        broker,
        urls_written: handle.id().clone(),
    }
}
