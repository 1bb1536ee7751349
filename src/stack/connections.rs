//! The connection URLs (`Custom::AirflowConnectionUrls`): once the database and the
//! broker have endpoints, the secrets Lambda writes `sql_alchemy_conn` and `broker_url`
//! into their JSON secrets, built from the generated passwords. Separate from the
//! generated secrets because it needs the database and the broker, which need those.

use super::broker::Broker;
use super::database::Database;
use super::keys::Keys;
use super::scope::Scope;
use crate::cfn::aws::custom::CustomResource;
use crate::cfn::{Attributes, LogicalId};

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
    let urls = CustomResource::new("Custom::AirflowConnectionUrls", keys.function.clone(), 300)
        .prop("DatabaseSecretArn", keys.database.clone())
        .prop("RedisSecretArn", keys.redis.clone())
        .prop("DbUser", spec.database.username.clone())
        .prop("DbHost", database.host.clone())
        .prop("DbPort", database.port.clone())
        .prop("DbName", spec.database.name.clone())
        .prop("DbSslMode", "require")
        .prop("RedisHost", broker.host.clone())
        .prop("RedisPort", broker.port.clone())
        .prop("RedisTls", if broker.tls { "true" } else { "false" })
        .prop("RedisDb", "0");
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
