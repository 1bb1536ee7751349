//! `diff` on real rendered templates: the example stacks, rendered before and after a
//! change to the stack file, predict replacement from the resource schemas alone (no
//! AWS account, no change set), as issue 14 asks: the database, the bucket and a task
//! definition.

use std::path::Path;

use airflow_stack::plan::{self, Action, Replacement, ResourceChange};
use airflow_stack::spec::{self, Spec};
use serde_json::Value;

fn load(file: &str) -> Spec {
    spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).expect("example stack loads")
}

fn render(spec: &Spec) -> Value {
    airflow_stack::stack::build(spec)
        .expect("example stack renders")
        .to_value()
}

/// The modifications between two renders, as `(logical id, replacement)`.
fn modified(plan: &plan::Plan) -> Vec<(&str, Replacement)> {
    plan.changes
        .iter()
        .map(|c| {
            assert_eq!(c.action, Action::Modify, "{c:?}");
            (c.logical_id.as_str(), c.replacement)
        })
        .collect()
}

fn get<'a>(plan: &'a plan::Plan, id: &str) -> &'a ResourceChange {
    plan.changes
        .iter()
        .find(|c| c.logical_id == id)
        .unwrap_or_else(|| panic!("no change to {id} in {:#?}", plan.changes))
}

#[test]
fn an_unchanged_stack_plans_nothing() {
    let t = render(&load("stacks/dev.yaml"));
    assert!(plan::diff(Some(&t), &t).is_empty());
}

#[test]
fn a_new_database_name_replaces_the_rds_instance_and_needs_approval() {
    let spec = load("stacks/dev.yaml");
    let old = render(&spec);
    let mut changed = spec.clone();
    changed.database.name = "metadata".into();
    let plan = plan::diff(Some(&old), &render(&changed));
    let db = get(&plan, "DatabaseInstance");
    assert_eq!(db.resource_type, "AWS::RDS::DBInstance");
    assert_eq!(db.replacement, Replacement::Yes);
    assert_eq!(db.causes, vec!["DBName changes".to_string()]);
    assert!(plan.approval_reasons().contains(
        &"replaces DatabaseInstance (AWS::RDS::DBInstance), which holds data: DBName changes"
            .to_string()
    ));
    // The custom resources that read the database name are modified; their Lambda
    // decides what that means.
    assert_eq!(
        get(&plan, "ConnectionUrls").replacement,
        Replacement::Unknown
    );
    let text = plan::render(&plan);
    assert!(
        text.contains("REPLACES the resource (predicted: DBName changes)  !! holds data"),
        "{text}"
    );
}

#[test]
fn a_new_master_username_replaces_the_aurora_cluster_conditionally() {
    // MasterUsername is create-only on DBInstance but only conditionally create-only on
    // DBCluster (the schemas' conditionalCreateOnlyProperties): "may replace".
    let spec = load("stacks/prod.yaml");
    let old = render(&spec);
    let mut changed = spec.clone();
    changed.database.username = "admin".into();
    let plan = plan::diff(Some(&old), &render(&changed));
    let cluster = get(&plan, "DatabaseCluster");
    assert_eq!(cluster.replacement, Replacement::Conditional);
    assert_eq!(
        cluster.causes,
        vec!["MasterUsername changes (replaces the resource for some changes)".to_string()]
    );
    assert!(plan
        .approval_reasons()
        .iter()
        .any(|r| r
            .starts_with("may replace DatabaseCluster (AWS::RDS::DBCluster), which holds data")));
    // And a new database name replaces it outright.
    let mut renamed = spec.clone();
    renamed.database.name = "metadata".into();
    let plan = plan::diff(Some(&old), &render(&renamed));
    assert_eq!(get(&plan, "DatabaseCluster").replacement, Replacement::Yes);
}

#[test]
fn a_bucket_name_replaces_the_bucket() {
    // The stack file has no bucket name (CloudFormation generates one), so the new
    // template is the rendered one with a name set, as a construct change would do.
    let old = render(&load("stacks/dev.yaml"));
    let mut new = old.clone();
    new["Resources"]["DataBucket"]["Properties"]["BucketName"] = "airflow-dev-data".into();
    let plan = plan::diff(Some(&old), &new);
    let bucket = get(&plan, "DataBucket");
    assert_eq!(bucket.replacement, Replacement::Yes);
    assert_eq!(bucket.causes, vec!["BucketName changes".to_string()]);
    // What refers to the bucket changes with it, although its text does not: the
    // policy's Bucket is create-only (a new policy for the new bucket), the task
    // definitions name the bucket in their containers (create-only), the roles grant
    // on its ARN (updatable).
    let found = modified(&plan);
    for expected in [
        ("DataBucketPolicy", Replacement::Conditional),
        ("WorkerTaskDefinition", Replacement::Conditional),
        ("WorkerTaskRole", Replacement::No),
    ] {
        assert!(found.contains(&expected), "{expected:?} in {found:?}");
    }
    assert_eq!(
        get(&plan, "DataBucketPolicy").causes,
        vec!["Bucket refers to DataBucket, which may be replaced".to_string()]
    );
    assert_eq!(
        plan.approval_reasons(),
        vec![
            "replaces DataBucket (AWS::S3::Bucket), which holds data: BucketName changes"
                .to_string()
        ]
    );
}

#[test]
fn a_worker_size_replaces_its_task_definition_and_updates_the_service_in_place() {
    let spec = load("stacks/dev.yaml");
    let old = render(&spec);
    let mut changed = spec.clone();
    changed.services.worker.cpu = 1024;
    let plan = plan::diff(Some(&old), &render(&changed));
    let task = get(&plan, "WorkerTaskDefinition");
    assert_eq!(task.replacement, Replacement::Yes);
    assert!(
        task.causes.contains(&"Cpu changes".to_string()),
        "{:?}",
        task.causes
    );
    // The service's text is the same, but its TaskDefinition (a Ref) changes with the
    // replaced task definition; TaskDefinition is not create-only on a service.
    let service = get(&plan, "WorkerService");
    assert_eq!(service.replacement, Replacement::No);
    // A task definition holds no data: no approval.
    assert!(
        plan.approval_reasons().is_empty(),
        "{:?}",
        plan.approval_reasons()
    );
}

#[test]
fn the_change_set_has_the_last_word_and_a_disagreement_shows() {
    let spec = load("stacks/dev.yaml");
    let old = render(&spec);
    let mut changed = spec.clone();
    changed.database.name = "metadata".into();
    let predicted = plan::diff(Some(&old), &render(&changed));
    // Suppose CloudFormation answered "in place" for the database.
    let flags = [("DatabaseInstance".to_string(), Replacement::No)].into();
    let confirmed = predicted.with_replacements(&flags);
    let db = get(&confirmed, "DatabaseInstance");
    assert_eq!(
        (db.replacement, db.predicted),
        (Replacement::No, Replacement::Yes)
    );
    assert!(confirmed
        .approval_reasons()
        .iter()
        .all(|r| !r.contains("DatabaseInstance")));
    let text = plan::render(&confirmed);
    assert!(
        text.contains(
            "in place [the change set overrides the prediction: replacement (DBName changes)]"
        ),
        "{text}"
    );
}

#[test]
fn a_lower_airflow_version_needs_approval() {
    let spec = load("stacks/dev.yaml");
    let mut older = spec.clone();
    older.airflow.version = "3.1.0".into();
    let plan = plan::diff(Some(&render(&spec)), &render(&older));
    let downgrade = plan.downgrade.as_ref().expect("a downgrade");
    assert_eq!(
        (downgrade.from.as_str(), downgrade.to.as_str()),
        (spec.airflow.version.as_str(), "3.1.0")
    );
    assert!(plan
        .approval_reasons()
        .iter()
        .any(|r| r.starts_with("lowers the Airflow version")));
    // Going up needs no approval for the version.
    let plan = plan::diff(Some(&render(&older)), &render(&spec));
    assert_eq!(plan.downgrade, None);
}
