//! The stack's database as `pause` and `resume` see it: an RDS instance, or an Aurora
//! cluster, found among the stack's resources, stopped, started and waited for through
//! the RDS API.
//!
//! AWS facts relied on (RDS User Guide, "Stopping an Amazon RDS DB instance
//! temporarily", USER_StopInstance.html; Aurora User Guide, "Stopping and starting an
//! Amazon Aurora DB cluster", aurora-cluster-stop-start.html; RDS API Reference,
//! StopDBInstance): a stop goes `stopping` -> `stopped` and a start `starting` ->
//! `available`, each taking minutes; a stopped instance or cluster is billed for storage
//! only; AWS starts it again by itself after seven days; an instance that has a read
//! replica, or is one, cannot be stopped.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use aws_sdk_rds::error::ProvideErrorMetadata;

use super::describe;
use super::services::StackResource;

/// The stack's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An RDS instance (`database.engine: rds-postgres`), by identifier.
    Instance(String),
    /// An Aurora cluster (`aurora-serverless-v2`), by identifier.
    Cluster(String),
}

impl Database {
    /// The database of a stack: its Aurora cluster if it has one (the cluster's member
    /// instance is stopped and started with the cluster, never on its own), else its RDS
    /// instance.
    pub fn of(resources: &[StackResource]) -> Option<Database> {
        let find = |t: &str| {
            resources
                .iter()
                .find(|r| r.resource_type == t && !r.physical_id.is_empty())
                .map(|r| r.physical_id.clone())
        };
        find("AWS::RDS::DBCluster")
            .map(Database::Cluster)
            .or_else(|| find("AWS::RDS::DBInstance").map(Database::Instance))
    }

    /// Its identifier.
    pub fn id(&self) -> &str {
        match self {
            Database::Instance(id) | Database::Cluster(id) => id,
        }
    }

    /// "database instance x" or "Aurora cluster x", for messages.
    pub fn name(&self) -> String {
        match self {
            Database::Instance(id) => format!("database instance {id}"),
            Database::Cluster(id) => format!("Aurora cluster {id}"),
        }
    }
}

/// What RDS says about the database now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `available`, `stopping`, `stopped`, `starting`, `backing-up`, ...
    pub status: String,
    /// Why RDS would refuse to stop it, when it would (read replicas).
    pub unstoppable: Option<String>,
}

/// The statuses in which the database answers connections: `available`, and the
/// maintenance statuses during which the instance keeps serving (RDS User Guide,
/// "Viewing Amazon RDS DB instance status", accessing-monitoring.html).
pub fn answers(status: &str) -> bool {
    matches!(
        status,
        "available" | "backing-up" | "modifying" | "storage-optimization" | "maintenance"
    ) || status.starts_with("configuring-")
}

/// The statuses from which the database does not come back by itself (RDS User Guide,
/// accessing-monitoring.html): waiting for them would only wait out the timeout.
pub fn stuck(status: &str) -> bool {
    matches!(
        status,
        "failed" | "restore-error" | "storage-full" | "insufficient-capacity"
    ) || status.starts_with("incompatible-")
        || status.starts_with("inaccessible-encryption-credentials")
}

/// The database's status, and whether it could be stopped.
pub async fn state(rds: &aws_sdk_rds::Client, db: &Database) -> anyhow::Result<State> {
    match db {
        Database::Instance(id) => instance_state(rds, id).await,
        Database::Cluster(id) => cluster_state(rds, id).await,
    }
}

async fn instance_state(rds: &aws_sdk_rds::Client, id: &str) -> anyhow::Result<State> {
    let out = rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .map_err(|e| anyhow!("cannot describe database instance {id}: {}", describe(&e)))?;
    let instance = out
        .db_instances()
        .first()
        .ok_or_else(|| anyhow!("database instance {id} does not exist"))?;
    let unstoppable = if !instance.read_replica_db_instance_identifiers().is_empty() {
        Some("it has read replicas, and RDS cannot stop an instance that has one".to_owned())
    } else if instance
        .read_replica_source_db_instance_identifier()
        .is_some()
    {
        Some("it is a read replica, and RDS cannot stop one".to_owned())
    } else {
        None
    };
    Ok(State {
        status: instance
            .db_instance_status()
            .unwrap_or("unknown")
            .to_owned(),
        unstoppable,
    })
}

async fn cluster_state(rds: &aws_sdk_rds::Client, id: &str) -> anyhow::Result<State> {
    let out = rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .map_err(|e| anyhow!("cannot describe Aurora cluster {id}: {}", describe(&e)))?;
    let cluster = out
        .db_clusters()
        .first()
        .ok_or_else(|| anyhow!("Aurora cluster {id} does not exist"))?;
    Ok(State {
        status: cluster.status().unwrap_or("unknown").to_owned(),
        unstoppable: None,
    })
}

/// Sends StopDBInstance or StopDBCluster. An error names the call, the database and
/// RDS's reason, and for a missing permission the action to allow.
pub async fn stop(rds: &aws_sdk_rds::Client, db: &Database) -> anyhow::Result<()> {
    match db {
        Database::Instance(id) => rds
            .stop_db_instance()
            .db_instance_identifier(id)
            .send()
            .await
            .map(drop)
            .map_err(|e| anyhow!(refusal("rds:StopDBInstance", db, &e))),
        Database::Cluster(id) => rds
            .stop_db_cluster()
            .db_cluster_identifier(id)
            .send()
            .await
            .map(drop)
            .map_err(|e| anyhow!(refusal("rds:StopDBCluster", db, &e))),
    }
}

/// Sends StartDBInstance or StartDBCluster.
pub async fn start(rds: &aws_sdk_rds::Client, db: &Database) -> anyhow::Result<()> {
    match db {
        Database::Instance(id) => rds
            .start_db_instance()
            .db_instance_identifier(id)
            .send()
            .await
            .map(drop)
            .map_err(|e| anyhow!(refusal("rds:StartDBInstance", db, &e))),
        Database::Cluster(id) => rds
            .start_db_cluster()
            .db_cluster_identifier(id)
            .send()
            .await
            .map(drop)
            .map_err(|e| anyhow!(refusal("rds:StartDBCluster", db, &e))),
    }
}

/// A refused stop or start, for a person: a missing permission names the action.
fn refusal<E>(action: &str, db: &Database, error: &E) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let denied = matches!(
        error.code(),
        Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation")
    );
    if denied {
        format!(
            "no permission to {action} {}: allow {action} on it for your identity ({})",
            db.name(),
            describe(error)
        )
    } else {
        format!("{action} of {} refused: {}", db.name(), describe(error))
    }
}

/// Polls the status until `done` holds for it, printing each new status through
/// `report`. Waits 1 s first, then doubling up to 15 s: an emulator answers in a second,
/// RDS in minutes. Fails after `timeout`, saying the status it is still in.
pub async fn wait_until(
    rds: &aws_sdk_rds::Client,
    db: &Database,
    goal: &str,
    done: impl Fn(&str) -> bool,
    timeout: Duration,
    mut report: impl FnMut(&str),
) -> anyhow::Result<String> {
    let started = Instant::now();
    let mut delay = Duration::from_secs(1);
    let mut last = String::new();
    loop {
        let status = state(rds, db).await?.status;
        if status != last {
            report(&status);
            last.clone_from(&status);
        }
        if done(&status) {
            return Ok(status);
        }
        if stuck(&status) {
            return Err(anyhow!(
                "{} is {status}, which RDS does not leave by itself; see the RDS console",
                db.name()
            ));
        }
        if started.elapsed() >= timeout {
            return Err(anyhow!(
                "{} is still {status} after {} s, not {goal}; check it with aws rds describe-db-{}s",
                db.name(),
                timeout.as_secs(),
                if matches!(db, Database::Instance(_)) { "instance" } else { "cluster" }
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(logical: &str, kind: &str, physical: &str) -> StackResource {
        StackResource {
            logical_id: logical.into(),
            resource_type: kind.into(),
            physical_id: physical.into(),
        }
    }

    #[test]
    fn an_aurora_cluster_is_the_database_not_its_member_instance() {
        let aurora = [
            resource("DatabaseInstance", "AWS::RDS::DBInstance", "member-1"),
            resource("DatabaseCluster", "AWS::RDS::DBCluster", "aurora-1"),
        ];
        assert_eq!(
            Database::of(&aurora),
            Some(Database::Cluster("aurora-1".into()))
        );
        let rds = [resource("DatabaseInstance", "AWS::RDS::DBInstance", "db-1")];
        assert_eq!(Database::of(&rds), Some(Database::Instance("db-1".into())));
        let none = [resource("DatabaseInstance", "AWS::RDS::DBInstance", "")];
        assert_eq!(Database::of(&none), None);
    }

    #[test]
    fn a_refusal_names_the_action_and_a_missing_permission_says_what_to_allow() {
        use aws_sdk_rds::error::ErrorMetadata;
        use aws_sdk_rds::operation::stop_db_instance::StopDBInstanceError;
        let error = |code: &str, message: &str| {
            StopDBInstanceError::generic(
                ErrorMetadata::builder().code(code).message(message).build(),
            )
        };
        let db = Database::Instance("db-1".into());
        let denied = refusal(
            "rds:StopDBInstance",
            &db,
            &error("AccessDenied", "User: u is not authorized"),
        );
        assert!(
            denied.starts_with("no permission to rds:StopDBInstance database instance db-1: allow rds:StopDBInstance on it"),
            "{denied}"
        );
        let state = refusal(
            "rds:StopDBInstance",
            &db,
            &error(
                "InvalidDBInstanceState",
                "Instance db-1 is not in available state.",
            ),
        );
        assert_eq!(
            state,
            "rds:StopDBInstance of database instance db-1 refused: InvalidDBInstanceState: Instance db-1 is not in available state."
        );
    }

    #[test]
    fn a_failed_database_is_not_waited_for() {
        for status in ["failed", "incompatible-parameters", "storage-full"] {
            assert!(stuck(status), "{status}");
        }
        for status in ["starting", "stopping", "backing-up", "available"] {
            assert!(!stuck(status), "{status}");
        }
    }

    #[test]
    fn only_serving_statuses_answer() {
        for status in ["available", "backing-up", "configuring-log-exports"] {
            assert!(answers(status), "{status}");
        }
        for status in ["starting", "stopped", "stopping", "rebooting", "failed"] {
            assert!(!answers(status), "{status}");
        }
    }
}
