//! IAM for the Airflow tasks: one execution role (pull secrets, write container logs)
//! and one task role per component with only the S3 access that component needs.

use super::secrets::Keys;
use super::storage::Bucket;
use super::Tags;
use crate::cfn::aws::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::cfn::{Expr, Handle, Template};
use crate::spec::Spec;

/// The roles, by use.
pub struct Roles {
    pub execution: Handle<Role>,
    pub api_server: Handle<Role>,
    pub scheduler: Handle<Role>,
    pub dag_processor: Handle<Role>,
    pub triggerer: Handle<Role>,
    pub worker: Handle<Role>,
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
    Roles {
        execution,
        api_server: role(
            "ApiServer",
            "api-server",
            S3Access {
                read_logs: true,
                write_logs: false,
            },
        ),
        scheduler: role(
            "Scheduler",
            "scheduler",
            S3Access {
                read_logs: false,
                write_logs: false,
            },
        ),
        dag_processor: role(
            "DagProcessor",
            "dag-processor",
            S3Access {
                read_logs: false,
                write_logs: true,
            },
        ),
        triggerer: role(
            "Triggerer",
            "triggerer",
            S3Access {
                read_logs: true,
                write_logs: true,
            },
        ),
        worker: role(
            "Worker",
            "celery worker",
            S3Access {
                read_logs: true,
                write_logs: true,
            },
        ),
    }
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
    let mut listable = vec![dags.clone(), format!("{dags}/*")];
    if access.read_logs || access.write_logs {
        listable.extend([logs.clone(), format!("{logs}/*")]);
    }
    let mut list = Statement::allow(&["s3:ListBucket"], vec![bucket.handle.arn()]);
    list.condition = Some(serde_json::json!({"StringLike": {"s3:prefix": listable}}));
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
