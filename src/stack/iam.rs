//! IAM for the Airflow tasks: one execution role (pull secrets, write container logs)
//! and one task role per component with only the S3 access that component needs.

use std::collections::BTreeMap;

use super::cluster::Cluster;
use super::component::{Component, S3Access, CORE_ID};
use super::keys::Keys;
use super::scope::Scope;
use super::service_role::{self, ServiceRole};
use super::storage::Bucket;
use crate::cfn::l1::iam::Role;
use crate::cfn::l1::Statement;
use crate::cfn::{Expr, Handle};
use crate::spec::{GrantArn, Packing, Spec};

/// The roles, by use.
pub struct Roles {
    /// Starts every Airflow task: reads its secrets, writes its logs.
    pub execution: Handle<Role>,
    /// Task roles of the components that run as their own tasks and make AWS calls.
    tasks: BTreeMap<Component, Handle<Role>>,
    /// With `packing: core`, the role of the shared task, which replaces the four core
    /// components' own roles.
    pub core: Option<Handle<Role>>,
}

impl Roles {
    /// The task role of a component running as its own task (`None`: it makes no AWS
    /// calls, or it runs in the shared core task).
    pub fn task_role(&self, component: Component) -> Option<&Handle<Role>> {
        self.tasks.get(&component)
    }
}

/// Adds the execution role and one task role per component that needs one.
/// `api_server` are extra statements for the api-server's task role (or the packed
/// core's): ECS Exec's, with the tunnel (stack/access.rs).
pub fn add(
    s: &mut Scope,
    keys: &Keys,
    bucket: &Bucket,
    cluster: &Cluster,
    api_server: &[Statement],
    image_pull: &[Statement],
) -> Roles {
    let spec = s.spec;
    let execution = add_execution_role(s, keys, image_pull);
    let own_task = |c: &Component| !c.is_packed(spec);
    let tasks = Component::services(spec)
        .filter(own_task)
        .filter_map(|c| c.s3_access().map(|access| (c, access)))
        .map(|(c, access)| {
            let mut statements = bucket_statements(spec, bucket, access);
            if c == Component::Worker && spec.autoscaling.enabled {
                statements.extend(worker_protection_statements(cluster));
            }
            if c == Component::ApiServer {
                statements.extend(api_server.iter().cloned());
            }
            let own_keys = secrets_backend_statement(spec, &[c])
                .into_iter()
                .chain(lambda_statements(spec, &[c]))
                .collect();
            let role = task_role(s, c.id(), c.description(), statements, own_keys);
            (c, role)
        })
        .collect();
    // One task runs api-server, scheduler, dag-processor and triggerer: its role needs
    // what the four need together, and their own roles would be unused.
    let core = (spec.services.packing == Packing::Core).then(|| {
        let access = Component::SERVICES
            .into_iter()
            .filter(|c| c.packable())
            .filter_map(Component::s3_access)
            .fold(S3Access::default(), S3Access::union);
        let mut statements = bucket_statements(spec, bucket, access);
        statements.extend(api_server.iter().cloned());
        let packed: Vec<Component> = Component::SERVICES
            .into_iter()
            .filter(|c| c.packable())
            .collect();
        let own_keys = secrets_backend_statement(spec, &packed)
            .into_iter()
            .chain(lambda_statements(spec, &packed))
            .collect();
        task_role(
            s,
            CORE_ID,
            "core (api-server, scheduler, dag-processor, triggerer)",
            statements,
            own_keys,
        )
    });
    Roles {
        execution,
        tasks,
        core,
    }
}

/// A task role `<id>TaskRole` with these statements (the bucket access, and for
/// workers with autoscaling their own task protection) and the key use they imply, plus
/// `own_keys`, statements on the user's resources that imply none: the secrets
/// backend's (the user's secrets are under the user's keys, as for
/// `airflow.secret_env`) and `airflow.lambda_functions`' (the functions and their log
/// groups are the user's).
fn task_role(
    s: &mut Scope,
    id: &str,
    what: &str,
    statements: Vec<Statement>,
    own_keys: Vec<Statement>,
) -> Handle<Role> {
    let statements = with_key_use(s, statements)
        .into_iter()
        .chain(own_keys)
        .collect();
    let role = service_role::role(
        ServiceRole {
            service: "ecs-tasks.amazonaws.com",
            description: format!("Airflow {what}: S3 DAG bundle and task logs"),
            policy_name: "airflow-bucket",
            statements,
        },
        s.tags.all(),
    );
    s.t.add(&format!("{id}TaskRole"), role)
}

/// Reading `airflow.secrets_backend`'s connections and variables, for a task that runs
/// one of `components` that the stack file names: `secretsmanager:GetSecretValue` (the
/// backend's only call, `get_secret_value` in the amazon provider's
/// `SecretsManagerBackend`) on exactly the two prefixes. A component not named gets
/// nothing, and neither does a task none of whose components is named.
fn secrets_backend_statement(spec: &Spec, components: &[Component]) -> Option<Statement> {
    let reads = components
        .iter()
        .any(|c| super::airflow_config::reads_secrets_backend(spec, *c));
    let arns = super::airflow_config::secrets_backend_arns(spec);
    (reads && !arns.is_empty()).then(|| Statement::allow(&["secretsmanager:GetSecretValue"], arns))
}

/// What the tracked Lambda operator (providers/airflow-stack-lambda) calls for the
/// functions of `airflow.lambda_functions`, for a task that runs one of `components`:
///
/// - a worker runs the operator: `lambda:InvokeFunction` (Invoke, with or without a
///   `Qualifier`) and `lambda:GetFunctionConfiguration` on the functions, and
///   `logs:FilterLogEvents` on their log groups (a task with `deferrable=False` follows
///   the function's log lines on the worker). GetFunctionConfiguration is the one grant
///   beyond invoking and following, and a read: the operator needs the function's
///   `Timeout` (when to give up on an invocation that never ends) and
///   `LoggingConfig.LogGroup` (where its lines are). It calls it unless a DAG passes
///   both (`function_timeout`, `log_group`), which the stack cannot know. It changes
///   nothing and gives no code (that is `lambda:GetFunction`), but it does show the
///   function's settings, its environment variables among them: secrets belong in
///   Secrets Manager, not in a function's environment.
/// - the triggerer runs the operator's trigger, which only follows the log lines:
///   `logs:FilterLogEvents` on the log groups.
///
/// Any other component, and a task running neither, gets nothing. With `packing: core`
/// the triggerer runs in the shared core task, whose role therefore gets the
/// triggerer's statement.
fn lambda_statements(spec: &Spec, components: &[Component]) -> Vec<Statement> {
    let a = &spec.airflow;
    if a.lambda_functions.is_empty() {
        return Vec::new();
    }
    let mut statements = Vec::new();
    if components.contains(&Component::Worker) {
        statements.push(Statement::allow(
            &["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
            a.lambda_function_arns().iter().map(grant_arn).collect(),
        ));
    }
    if components.contains(&Component::Worker) || components.contains(&Component::Triggerer) {
        statements.push(Statement::allow(
            &["logs:FilterLogEvents"],
            a.lambda_log_group_arns().iter().map(grant_arn).collect(),
        ));
    }
    statements
}

/// An ARN of a grant: the stack's own partition, region and account as pseudo
/// parameters, or the ARN as the stack file gives it.
fn grant_arn(arn: &GrantArn) -> Expr {
    match arn {
        GrantArn::Own { service, resource } => Expr::arn(service, Expr::lit(resource.clone())),
        GrantArn::Full(arn) => Expr::lit(arn.clone()),
    }
}

/// What a worker needs to protect itself and read its drain tag (with autoscaling):
///
/// - `ecs:GetTaskProtection`/`ecs:UpdateTaskProtection`: the ECS agent's task
///   scale-in protection endpoint (`$ECS_AGENT_URI/task-protection/v1/state`) calls
///   these APIs with the task role's credentials. The ECS Developer Guide, "Task
///   scale-in protection endpoint", says the agent uses GetTaskProtection and
///   UpdateTaskProtection, and its error example is an `AccessDeniedException` for
///   `assumed-role/<task role>/... is not authorized to perform:
///   ecs:GetTaskProtection`.
/// - `ecs:ListTagsForResource`: the worker module reads its own task's tags (the
///   drain tag) by calling ListTagsForResource itself, on its task ARN, with the task
///   role's credentials. The task metadata endpoint's `/taskWithTags` is documented
///   for tasks on EC2 only ("Amazon ECS task metadata endpoint version 4"); the
///   Fargate page ("Amazon ECS task metadata endpoint version 4 for tasks on Fargate")
///   does not list it.
///
/// All three on the cluster's task ARNs, `task/<cluster>/*`: a task does not know its
/// own ARN before it starts, and a task ARN does not name its service. So DAG code on a
/// worker could protect (up to 48 hours) or read the tags of any task of the cluster;
/// it cannot stop, start or change one.
fn worker_protection_statements(cluster: &Cluster) -> Vec<Statement> {
    vec![Statement::allow(
        &[
            "ecs:GetTaskProtection",
            "ecs:UpdateTaskProtection",
            "ecs:ListTagsForResource",
        ],
        vec![cluster.tasks_arn()],
    )]
}

/// The statements and, with a customer-managed key, the key use they imply (reading
/// secrets, reading and writing the bucket's objects).
fn with_key_use(s: &Scope, mut statements: Vec<Statement>) -> Vec<Statement> {
    statements.extend(s.key_use(&statements));
    statements
}

fn add_execution_role(s: &mut Scope, keys: &Keys, image_pull: &[Statement]) -> Handle<Role> {
    let secrets = keys.airflow_secret_arns();
    let log_groups = Expr::arn(
        "logs",
        Expr::lit(format!("log-group:/airflow-stack/{}/*", s.spec.name)),
    );
    let role = service_role::role(
        ServiceRole {
            service: "ecs-tasks.amazonaws.com",
            description: "Starts Airflow tasks: reads their secrets, writes their logs".into(),
            policy_name: "start-airflow-tasks",
            statements: with_key_use(
                s,
                vec![
                    Statement::allow(&["secretsmanager:GetSecretValue"], secrets),
                    Statement::allow(
                        &["logs:CreateLogStream", "logs:PutLogEvents"],
                        vec![log_groups],
                    ),
                ],
            )
            .into_iter()
            .chain(user_secrets_statement(s.spec))
            // Pulling the image built in the account (none for a public image).
            .chain(image_pull.iter().cloned())
            .collect(),
        },
        s.tags.all(),
    );
    s.t.add("AirflowExecutionRole", role)
}

/// Reading the `airflow.secret_env` secrets: exactly their ARNs, in a statement of its
/// own (the customer-managed key grants of [`with_key_use`] are for the stack's own
/// secrets; a user secret's key policy is the user's).
fn user_secrets_statement(spec: &Spec) -> Option<Statement> {
    let arns = super::airflow_config::user_secret_arns(spec);
    (!arns.is_empty()).then(|| Statement::allow(&["secretsmanager:GetSecretValue"], arns))
}

fn bucket_statements(spec: &Spec, bucket: &Bucket, access: S3Access) -> Vec<Statement> {
    let dags = &spec.storage.dags_prefix;
    let logs = &spec.storage.logs_prefix;
    // S3DagBundle checks that its prefix exists by listing the level above it
    // (`check_for_prefix` with delimiter "/"), so each parent level is listable too: ""
    // for a top-level prefix (an empty `prefix=` parameter is an `s3:prefix` of "").
    let mut listable = parent_levels(dags);
    listable.extend([dags.clone(), format!("{dags}/*")]);
    if access.touches_logs() {
        listable.extend([logs.clone(), format!("{logs}/*")]);
    }
    // `IfExists`: requests without a prefix are allowed too, and Airflow makes two of
    // them. S3DagBundle first checks the bucket (HeadBucket, authorized as
    // s3:ListBucket with no s3:prefix in the request), and S3 answers a HeadObject on a
    // missing key (remote logging asks "is there an earlier log?") with 404 only to a
    // caller allowed s3:ListBucket, 403 to anyone else (amazon provider 9.39.0:
    // bundles/s3.py, hooks/s3.py `check_for_bucket`/`head_object`; AWS: "HeadObject" and
    // "HeadBucket" in the S3 API reference). A plain `StringLike` denies both. Listings
    // that do name a prefix stay limited to this component's prefixes.
    let mut list = Statement::allow(&["s3:ListBucket"], vec![bucket.handle.arn()]);
    list.condition = Some(serde_json::json!({"StringLikeIfExists": {"s3:prefix": listable}}));
    let mut readable = vec![bucket.objects_under(dags)];
    if access.touches_logs() {
        readable.push(bucket.objects_under(logs));
    }
    let mut statements = vec![list, Statement::allow(&["s3:GetObject"], readable)];
    if access.write_logs {
        statements.push(Statement::allow(
            &["s3:PutObject"],
            vec![bucket.objects_under(logs)],
        ));
    }
    statements
}

/// The levels above a key prefix as S3 listings name them: `"a/b/dags"` gives
/// `["", "a/", "a/b/"]`.
fn parent_levels(prefix: &str) -> Vec<String> {
    let mut levels = vec![String::new()];
    let parts: Vec<&str> = prefix.trim_end_matches('/').split('/').collect();
    for depth in 1..parts.len() {
        levels.push(format!("{}/", parts[..depth].join("/")));
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::parent_levels;

    #[test]
    fn parent_levels_of_top_level_and_nested_prefixes() {
        assert_eq!(parent_levels("dags"), vec![""]);
        assert_eq!(parent_levels("dags/"), vec![""]);
        assert_eq!(parent_levels("a/b/dags"), vec!["", "a/", "a/b/"]);
    }
}
