//! The Airflow components: what each one is called, how big it runs, which port it
//! serves, which secrets it gets and what it does with the bucket. One enum instead of
//! names spelled as strings across the constructs, so a new component is a compile error
//! everywhere it needs a decision.

use crate::spec::{AuthManager, Packing, Spec};

/// Logical id prefix of the shared task that `services.packing: core` runs the four
/// core components in.
pub const CORE_ID: &str = "Core";

/// An Airflow container of the stack: the five services, Flower, and the one-off
/// migration and Fernet re-encryption tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// `airflow api-server`: UI, REST API and the Execution API.
    ApiServer,
    /// `airflow scheduler`.
    Scheduler,
    /// `airflow dag-processor`.
    DagProcessor,
    /// `airflow triggerer`.
    Triggerer,
    /// `airflow celery worker`.
    Worker,
    /// `airflow celery flower` (optional).
    Flower,
    /// The migration task (`airflow db migrate`), run once per deploy.
    Migrate,
    /// The one-off re-encryption task (`airflow rotate-fernet-key`) that
    /// `airflow-stack rotate-fernet` runs after a Fernet key rotation.
    RotateFernet,
}

/// CPU units, MiB, task count and capacity of a component's task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// CPU units (1024 = 1 vCPU).
    pub cpu: u32,
    /// Memory in MiB.
    pub memory: u32,
    /// Tasks the service runs.
    pub count: u32,
    /// On Fargate Spot.
    pub spot: bool,
}

/// A secret an Airflow container can be given, each one key of one generated secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AirflowSecret {
    /// `[core] fernet_key`.
    FernetKey,
    /// `[api] secret_key`.
    ApiSecretKey,
    /// `[api_auth] jwt_secret`.
    JwtSecret,
    /// `[database] sql_alchemy_conn`: the Airflow database user's URL.
    SqlAlchemyConn,
    /// `[database] sql_alchemy_conn` as the master user, for the migration alone: the
    /// image's entrypoint checks the database with it, and the migration creates the
    /// Airflow user with it.
    MasterSqlAlchemyConn,
    /// The Airflow user's URL, for the migration, which migrates as that user (so the
    /// user owns every table).
    AirflowDatabaseUrl,
    /// The Airflow user's password, for the migration, which gives it to the user.
    AirflowDatabasePassword,
    /// `[celery] broker_url`.
    BrokerUrl,
    /// `[celery] result_backend` (the broker's Redis).
    ResultBackend,
    /// The admin user's password, for the containers that create or check it.
    AdminPassword,
    /// The scaler's read-only user's password, likewise (stacks that run the scaler).
    ScalerPassword,
    /// The stream processor's user's password, likewise (stacks with event streams).
    StreamsPassword,
}

/// An Airflow user the stack creates (with FAB, the migration task; with the simple
/// auth manager, the api-server's passwords file), its password from a generated secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AirflowUser {
    /// The user name.
    pub name: &'static str,
    /// Its FAB role (`airflow users create --role`).
    pub fab_role: &'static str,
    /// Its simple auth manager role (`[core] simple_auth_manager_users`).
    pub simple_role: &'static str,
    /// The secret holding its password.
    pub secret: AirflowSecret,
    /// The variable carrying the password in the containers that set it.
    pub password_env: &'static str,
    /// Whether the password is the stack's rather than a person's: set again on every
    /// migration when the user already exists (a person may change the admin's).
    pub reset_password: bool,
}

/// Name of the environment variable carrying the admin password where it is needed.
pub const ADMIN_PASSWORD_ENV: &str = "AIRFLOW_STACK_ADMIN_PASSWORD";
/// Name of the environment variable carrying the scaler user's password where it is
/// needed (the migration task with FAB, the api-server with the simple auth manager).
pub const SCALER_PASSWORD_ENV: &str = "AIRFLOW_STACK_SCALER_PASSWORD";
/// Likewise for the stream processor's user.
pub const STREAMS_PASSWORD_ENV: &str = "AIRFLOW_STACK_STREAMS_PASSWORD";

/// The Airflow users of this stack: the admin; the scaler's read-only user when the
/// stack runs the scaler; the stream processor's user when it has event streams, which
/// may trigger DAG runs and record Asset events (FAB `User`: `can_create` on DAG runs
/// and Assets, `USER_PERMISSIONS` in the FAB provider's security manager override).
/// The simple auth manager's roles are coarser: `user` may change DAGs and DAG runs,
/// but creating an Asset event takes `op` (`is_authorized_asset` in its
/// simple_auth_manager.py allows non-GET methods from `OP` up), so the processor's
/// user is `op` only when a stream records Asset events.
pub fn airflow_users(spec: &Spec) -> Vec<AirflowUser> {
    use airflow_stack_contract::scaler::{DEFAULT_ADMIN_USERNAME, SCALER_USERNAME};
    use airflow_stack_contract::streams::STREAMS_USERNAME;
    let mut users = vec![AirflowUser {
        name: DEFAULT_ADMIN_USERNAME,
        fab_role: "Admin",
        simple_role: "admin",
        secret: AirflowSecret::AdminPassword,
        password_env: ADMIN_PASSWORD_ENV,
        reset_password: false,
    }];
    if spec.runs_scaler() {
        users.push(AirflowUser {
            name: SCALER_USERNAME,
            fab_role: "Viewer",
            simple_role: "viewer",
            secret: AirflowSecret::ScalerPassword,
            password_env: SCALER_PASSWORD_ENV,
            reset_password: true,
        });
    }
    if spec.has_streams() {
        users.push(AirflowUser {
            name: STREAMS_USERNAME,
            fab_role: "User",
            simple_role: if records_asset_events(spec) {
                "op"
            } else {
                "user"
            },
            secret: AirflowSecret::StreamsPassword,
            password_env: STREAMS_PASSWORD_ENV,
            reset_password: true,
        });
    }
    users
}

/// Whether a stream of the stack records Asset events (rather than triggering runs).
fn records_asset_events(spec: &Spec) -> bool {
    spec.streams
        .iter()
        .any(|s| matches!(s.target, crate::spec::StreamTarget::Asset(_)))
}

/// What a component does with the bucket: every component with a task role reads the
/// DAG bundle; some also read or write task logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct S3Access {
    /// Reads task logs (to show them).
    pub read_logs: bool,
    /// Writes task logs.
    pub write_logs: bool,
}

impl S3Access {
    /// What two components sharing one task role need together.
    pub fn union(self, other: S3Access) -> S3Access {
        S3Access {
            read_logs: self.read_logs || other.read_logs,
            write_logs: self.write_logs || other.write_logs,
        }
    }

    /// Whether the task logs' prefix is touched at all.
    pub fn touches_logs(self) -> bool {
        self.read_logs || self.write_logs
    }
}

impl Component {
    /// The long-running components, in the order the template lists them.
    pub const SERVICES: [Component; 6] = [
        Component::ApiServer,
        Component::Scheduler,
        Component::DagProcessor,
        Component::Triggerer,
        Component::Worker,
        Component::Flower,
    ];

    /// The services this stack file runs (Flower only when enabled).
    pub fn services(spec: &Spec) -> impl Iterator<Item = Component> + '_ {
        Component::SERVICES
            .into_iter()
            .filter(move |c| *c != Component::Flower || spec.services.flower.enabled)
    }

    /// Logical id prefix, e.g. `ApiServer`.
    pub fn id(self) -> &'static str {
        match self {
            Component::ApiServer => "ApiServer",
            Component::Scheduler => "Scheduler",
            Component::DagProcessor => "DagProcessor",
            Component::Triggerer => "Triggerer",
            Component::Worker => "Worker",
            Component::Flower => "Flower",
            Component::Migrate => "Migrate",
            Component::RotateFernet => "RotateFernet",
        }
    }

    /// Container, log stream, task family and Cloud Map name, e.g. `api-server`.
    pub fn name(self) -> &'static str {
        match self {
            Component::ApiServer => "api-server",
            Component::Scheduler => "scheduler",
            Component::DagProcessor => "dag-processor",
            Component::Triggerer => "triggerer",
            Component::Worker => "worker",
            Component::Flower => "flower",
            Component::Migrate => "migrate",
            Component::RotateFernet => "rotate-fernet",
        }
    }

    /// What a person calls it, in security group and role descriptions.
    pub fn description(self) -> &'static str {
        match self {
            Component::Worker => "celery worker",
            Component::Migrate => "database migration",
            Component::RotateFernet => "Fernet key re-encryption",
            other => other.name(),
        }
    }

    /// The port it serves to other tasks: the api-server's UI/APIs, the triggerer's and
    /// the worker's log servers, Flower's UI.
    pub fn port(self) -> Option<u16> {
        match self {
            Component::ApiServer => Some(8080),
            Component::Triggerer => Some(8794),
            Component::Worker => Some(8793),
            Component::Flower => Some(5555),
            Component::Scheduler
            | Component::DagProcessor
            | Component::Migrate
            | Component::RotateFernet => None,
        }
    }

    /// Registered in Cloud Map as `<name>.<namespace>`, for the components others call.
    pub fn discoverable(self) -> bool {
        matches!(self, Component::ApiServer | Component::Flower)
    }

    /// Size, count and capacity from the stack file. Flower runs one on-demand task; the
    /// migration task is fixed at 1 vCPU and 2 GiB, enough for `airflow db migrate`.
    pub fn size(self, spec: &Spec) -> Size {
        let s = &spec.services;
        let of = |c: &crate::spec::Service| Size {
            cpu: c.cpu,
            memory: c.memory,
            count: c.count,
            spot: c.spot,
        };
        match self {
            Component::ApiServer => of(&s.api_server),
            Component::Scheduler => of(&s.scheduler),
            Component::DagProcessor => of(&s.dag_processor),
            Component::Triggerer => of(&s.triggerer),
            Component::Worker => Size {
                cpu: s.worker.cpu,
                memory: s.worker.memory,
                count: s.worker.count,
                spot: s.worker.spot,
            },
            Component::Flower => Size {
                cpu: s.flower.cpu,
                memory: s.flower.memory,
                count: 1,
                spot: false,
            },
            // `airflow rotate-fernet-key` loads Airflow like `db migrate` does.
            Component::Migrate | Component::RotateFernet => Size {
                cpu: 1024,
                memory: 2048,
                count: 1,
                spot: false,
            },
        }
    }

    /// The secrets its container gets.
    ///
    /// Airflow 3 isolates task code: a Celery worker runs DAG code and talks only to the
    /// Execution API, with a short-lived token the scheduler minted and connections the
    /// api-server decrypted (the end-to-end run shows it). So workers, and Flower, get the
    /// broker and nothing else: holding the JWT secret would let DAG code mint Execution
    /// API tokens, `[api] secret_key` forge UI sessions and log tokens, the Fernet key
    /// decrypt every connection, and the database URL bypass the API altogether. The
    /// scheduler, dag-processor, triggerer and api-server keep them: they use the
    /// metadata database directly, as the Airflow database user, never as the master.
    /// The migration task needs the master (to create that user) and the user, and with
    /// FAB the users' passwords to create the admin and the scaler's user; the api-server
    /// needs those passwords instead with the simple auth manager, which seeds its
    /// passwords file from them.
    pub fn secrets(self, spec: &Spec) -> Vec<AirflowSecret> {
        use AirflowSecret::*;
        let core = [FernetKey, ApiSecretKey, JwtSecret, SqlAlchemyConn];
        let celery = [BrokerUrl, ResultBackend];
        let users = Self::user_passwords(spec);
        match self {
            Component::Scheduler => core.into_iter().chain(celery).collect(),
            Component::ApiServer if spec.airflow.auth_manager == AuthManager::Simple => {
                core.into_iter().chain(users).collect()
            }
            Component::ApiServer | Component::DagProcessor | Component::Triggerer => core.to_vec(),
            Component::Worker | Component::Flower => celery.to_vec(),
            Component::Migrate if spec.airflow.auth_manager == AuthManager::Fab => [
                MasterSqlAlchemyConn,
                AirflowDatabaseUrl,
                AirflowDatabasePassword,
            ]
            .into_iter()
            .chain(users)
            .collect(),
            Component::Migrate => vec![
                MasterSqlAlchemyConn,
                AirflowDatabaseUrl,
                AirflowDatabasePassword,
            ],
            // Reads every encrypted value with any key and writes it back with the first.
            Component::RotateFernet => vec![FernetKey, SqlAlchemyConn],
        }
    }

    /// The passwords of the Airflow users the stack creates.
    fn user_passwords(spec: &Spec) -> Vec<AirflowSecret> {
        airflow_users(spec).into_iter().map(|u| u.secret).collect()
    }

    /// What it does with the bucket; `None` for the containers without a task role
    /// (Flower and the migration make no AWS calls).
    pub fn s3_access(self) -> Option<S3Access> {
        let access = |read_logs, write_logs| {
            Some(S3Access {
                read_logs,
                write_logs,
            })
        };
        match self {
            // Shows task logs.
            Component::ApiServer => access(true, false),
            // The DAG bundle only.
            Component::Scheduler => access(false, false),
            // Writes the DAG processing logs.
            Component::DagProcessor => access(false, true),
            // Writes its trigger logs and reads them back for the UI.
            Component::Triggerer | Component::Worker => access(true, true),
            Component::Flower | Component::Migrate | Component::RotateFernet => None,
        }
    }

    /// Runs as a container of the shared `core` task (`services.packing: core`).
    pub fn is_packed(self, spec: &Spec) -> bool {
        spec.services.packing == Packing::Core && self.packable()
    }

    /// One of the four core components the `core` packing puts into one task.
    pub fn packable(self) -> bool {
        matches!(
            self,
            Component::ApiServer
                | Component::Scheduler
                | Component::DagProcessor
                | Component::Triggerer
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_are_distinct() {
        let all = [Component::Migrate, Component::RotateFernet]
            .into_iter()
            .chain(Component::SERVICES)
            .collect::<Vec<_>>();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.id(), b.id());
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn the_core_task_role_covers_the_four_core_components() {
        let core = Component::SERVICES
            .into_iter()
            .filter(|c| c.packable())
            .filter_map(Component::s3_access)
            .fold(S3Access::default(), S3Access::union);
        assert_eq!(core, Component::Triggerer.s3_access().unwrap());
    }

    #[test]
    fn workers_and_flower_get_the_broker_only() {
        let spec = crate::spec::parse(
            "name: a\nregion: us-east-1\n",
            std::path::Path::new("s.yaml"),
        )
        .unwrap();
        for c in [Component::Worker, Component::Flower] {
            assert_eq!(
                c.secrets(&spec),
                vec![AirflowSecret::BrokerUrl, AirflowSecret::ResultBackend]
            );
        }
    }
}
