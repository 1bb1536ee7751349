//! IAM for the Airflow tasks: one execution role (pull secrets, write container logs)
//! and one task role per component with only the S3 access that component needs.

use std::collections::BTreeMap;

use super::secrets::Keys;
use super::storage::Bucket;
use super::Tags;
use crate::cfn::aws::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::cfn::{Expr, Handle, Template};
use crate::spec::{Packing, Spec};

/// The roles, by use.
pub struct Roles {
    pub execution: Handle<Role>,
    /// Task roles by component id (`ApiServer`, …, `Worker`; `Core` when the core
    /// components are packed into one task, whose role then replaces their four).
    pub tasks: BTreeMap<&'static str, Handle<Role>>,
}

impl Roles {
    /// The task role of a component.
    pub fn task(&self, component: &str) -> &Handle<Role> {
        self.tasks
            .get(component)
            .unwrap_or_else(|| panic!("no task role for {component}"))
    }
}

/// What a component does with the bucket.
#[derive(Clone, Copy)]
struct S3Access {
    read_logs: bool,
    write_logs: bool,
}

pub fn add(t: &mut Template, spec: &Spec, keys: &Keys, bucket: &Bucket, tags: &Tags) -> Roles {
    let execution = add_execution_role(t, spec, keys, tags);
    let mut role = |id: &str, what: &str, access: S3Access| {
        let policy = InlinePolicy {
            policy_name: "airflow-bucket".into(),
            policy_document: bucket_policy(spec, bucket, access),
        };
        t.add(
            &format!("{id}TaskRole"),
            Role::for_service(
                "ecs-tasks.amazonaws.com",
                format!("Airflow {what}: S3 DAG bundle and task logs"),
                vec![policy],
                tags.all(),
            ),
        )
    };
    let read = S3Access {
        read_logs: true,
        write_logs: false,
    };
    let none = S3Access {
        read_logs: false,
        write_logs: false,
    };
    let write = S3Access {
        read_logs: true,
        write_logs: true,
    };
    let needs: Vec<(&'static str, &str, S3Access)> = match spec.services.packing {
        Packing::Separate => vec![
            ("ApiServer", "api-server", read),
            ("Scheduler", "scheduler", none),
            (
                "DagProcessor",
                "dag-processor",
                S3Access {
                    read_logs: false,
                    write_logs: true,
                },
            ),
            ("Triggerer", "triggerer", write),
            ("Worker", "celery worker", write),
        ],
        // One task runs api-server, scheduler, dag-processor and triggerer: its role
        // needs what the four need together, and their own roles would be unused.
        Packing::Core => vec![
            (
                "Core",
                "core (api-server, scheduler, dag-processor, triggerer)",
                write,
            ),
            ("Worker", "celery worker", write),
        ],
    };
    let tasks = needs
        .into_iter()
        .map(|(id, what, access)| (id, role(id, what, access)))
        .collect();
    Roles { execution, tasks }
}

fn add_execution_role(t: &mut Template, spec: &Spec, keys: &Keys, tags: &Tags) -> Handle<Role> {
    let secrets = keys.airflow_secret_arns();
    let log_groups = Expr::arn(
        "logs",
        Expr::lit(format!("log-group:/airflow-stack/{}/*", spec.name)),
    );
    let policy = PolicyDocument::new(vec![
        Statement::allow(&["secretsmanager:GetSecretValue"], secrets),
        Statement::allow(
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            vec![log_groups],
        ),
    ]);
    t.add(
        "AirflowExecutionRole",
        Role::for_service(
            "ecs-tasks.amazonaws.com",
            "Starts Airflow tasks: reads their secrets, writes their logs".into(),
            vec![InlinePolicy {
                policy_name: "start-airflow-tasks".into(),
                policy_document: policy,
            }],
            tags.all(),
        ),
    )
}

fn bucket_policy(spec: &Spec, bucket: &Bucket, access: S3Access) -> PolicyDocument {
    let dags = &spec.storage.dags_prefix;
    let logs = &spec.storage.logs_prefix;
    // S3DagBundle checks that its prefix exists by listing the level above it
    // (`check_for_prefix` with delimiter "/"), so each parent level is listable too: ""
    // for a top-level prefix (an empty `prefix=` parameter is an `s3:prefix` of "").
    let mut listable = parent_levels(dags);
    listable.extend([dags.clone(), format!("{dags}/*")]);
    if access.read_logs || access.write_logs {
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
    if access.read_logs || access.write_logs {
        readable.push(bucket.objects_under(logs));
    }
    let mut statements = vec![list, Statement::allow(&["s3:GetObject"], readable)];
    if access.write_logs {
        statements.push(Statement::allow(
            &["s3:PutObject"],
            vec![bucket.objects_under(logs)],
        ));
    }
    PolicyDocument::new(statements)
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
