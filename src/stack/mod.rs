//! Constructs: `Spec` -> CloudFormation resources, one file per concern.
//!
//! [`build`] is a pure function: the same spec always gives the same template. Each
//! construct adds the resources of its concern and returns what the others need
//! (endpoints, security groups, secret ARNs), so a reader finds every resource of a
//! concern in one file and the wiring in this one.

mod access;
mod airflow_config;
mod assets;
mod bootstrap;
mod broker;
mod cluster;
mod component;
mod connections;
mod database;
mod encryption;
mod fargate;
mod fernet_rotation;
mod iam;
mod image;
mod keys;
mod migration;
mod monitoring;
mod network;
mod packing;
mod rust_function;
mod schedule;
mod scope;
mod security;
mod service_role;
mod services;
mod storage;
mod streams;

use crate::cfn::{Expr, Template, TemplateError};
use crate::spec::Spec;

pub use assets::{
    AssetLambda, AssetParameters, ASSET_LAMBDAS, IMAGE_CONTEXT_KEY, IMAGE_CONTEXT_VERSION,
    LAMBDA_ARCHITECTURE,
};
pub use bootstrap::{bootstrap_template, BOOTSTRAP_STACK};
pub use component::Component;
pub use fernet_rotation::TASK_DEFINITION as FERNET_ROTATION_TASK_DEFINITION;
pub use monitoring::STATE_TABLE as SCALER_STATE_TABLE;
pub use scope::unique_name;

/// Builds the template of a stack and checks it against CloudFormation's limits.
///
/// The order is the dependency order of the constructs: each takes what the earlier
/// ones returned, and no construct module imports one built after it (the module graph
/// of `src/stack` has no cycle; `tests/module_graph.rs` checks it).
pub fn build(spec: &Spec) -> Result<Template, TemplateError> {
    let s = &mut scope::Scope::new(spec);
    let net = network::add(s);
    let sg = security::add(s, &net);
    let exposure = access::add(s, &net, &sg);
    let bucket = storage::add(s);
    let keys = keys::add(s);
    let cluster = cluster::add(s, &net, exposure.cluster_configuration.clone());
    let infra = fargate::Infra {
        net: &net,
        sg: &sg,
        cluster: &cluster,
    };
    let database = database::add(s, &net, &sg, &keys);
    let stoppable_database = database.stoppable.clone();
    let broker = broker::add(s, &infra, &keys);
    let backends = connections::add(s, &keys, database, broker);
    let image = image::add(s);
    let roles = iam::add(
        s,
        &keys,
        &bucket,
        &cluster,
        &exposure.task_role_statements,
        &image.pull_statements,
    );
    let shared = airflow_config::SharedConfig::new(spec, &keys, &bucket, image.uri);
    let migrate = migration::add(s, &infra, &roles, &shared, &backends);
    fernet_rotation::add(s, &roles, &shared);
    let worker = services::add(s, &infra, &roles, &shared, &migrate.ready, &exposure);
    let scaled = monitoring::Inputs {
        infra: &infra,
        keys: &keys,
        worker: &worker,
    };
    let monitored = monitoring::add(s, &scaled);
    let stream_mapping = streams::add(
        s,
        &streams::Inputs {
            infra: &infra,
            keys: &keys,
            alerts: &monitored.alerts,
        },
    );
    schedule::add(
        s,
        &cluster,
        monitored.table.as_ref(),
        &stoppable_database,
        stream_mapping.as_ref(),
    );
    add_outputs(&mut s.t, spec, &bucket, &keys, &cluster);
    s.t.check()?;
    Ok(std::mem::take(&mut s.t))
}

fn add_outputs(
    t: &mut Template,
    spec: &Spec,
    bucket: &storage::Bucket,
    keys: &keys::Keys,
    cluster: &cluster::Cluster,
) {
    let ns = &spec.network.namespace;
    t.output(
        "ApiServerUrl",
        "Airflow UI and REST API, reachable inside the VPC through Cloud Map",
        Expr::lit(format!("http://api-server.{ns}:8080")),
    );
    t.output(
        "DagBucket",
        "S3 bucket of the DAG bundle (airflow-stack dags push)",
        bucket.handle.r#ref(),
    );
    t.output(
        "DagPrefix",
        "Key prefix of the DAG bundle",
        Expr::lit(spec.storage.dags_prefix.clone()),
    );
    t.output("LogBucket", "S3 bucket of task logs", bucket.handle.r#ref());
    t.output(
        "LogPrefix",
        "Key prefix of task logs",
        Expr::lit(spec.storage.logs_prefix.clone()),
    );
    t.output(
        "AdminSecretArn",
        "Secret holding the admin user's password (user name: admin)",
        keys.admin_password.clone(),
    );
    t.output(
        "FernetKeySecretArn", // one-spelling: stack output name, read by users and tests
        "Secret holding the Fernet key; retained on delete, keep it with the database snapshot",
        keys.fernet_key.clone(),
    );
    t.output("ClusterName", "ECS cluster", cluster.handle.r#ref());
}
