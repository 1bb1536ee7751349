//! `airflow-stack deploy` and `diff`: assets, change set, plan, approval, execution
//! with live progress, an honest failure report, outputs.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;
use serde_json::Value;

use super::progress::{first_failure, Progress};
use super::{write_atomically, Failure, StackFile};
use crate::aws::stack::{self as cfn_stack, elapsed, ChangeSetRequest, StackInfo, TemplateSource};
use crate::aws::{assets, Aws, AwsOptions};
use crate::cfn::MAX_INLINE_TEMPLATE_BYTES;
use crate::plan::{self, Approval, FailOn, Plan};
use crate::{spec, stack};

/// Options shared by `deploy` and `diff`.
#[derive(Debug, clap::Args)]
pub struct Common {
    #[command(flatten)]
    stack: StackFile,
    /// Folder holding `<lambda crate>/bootstrap.zip`, built for the functions'
    /// architecture (default: the zips bundled in this binary, else
    /// `<cargo target dir>/lambda/<architecture>`, where lambdas/build.sh writes them).
    /// Missing zips are built there when this binary runs from a checkout.
    #[arg(long, env = "AIRFLOW_STACK_ASSETS_DIR")]
    assets_dir: Option<PathBuf>,
    /// Assets bucket (default: the AssetsBucket output of the airflow-stack-bootstrap stack).
    #[arg(long)]
    assets_bucket: Option<String>,
    #[command(flatten)]
    aws: AwsOptions,
}

/// Arguments of `deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    common: Common,
    /// Approve broadening and data-destructive changes without asking.
    #[arg(long)]
    yes: bool,
    /// Also write the stack outputs as JSON to this file.
    #[arg(long)]
    outputs_file: Option<PathBuf>,
}

/// Arguments of `diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    common: Common,
    /// Exit 1 when the plan has changes of this kind (for CI).
    #[arg(long, value_enum)]
    fail_on: Option<FailOnArg>,
}

/// `--fail-on`: the CLI's spelling of [`FailOn`] (clap stays out of the core).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FailOnArg {
    /// Any change.
    Any,
    /// New IAM statements or ingress rules.
    Broadening,
    /// Deletion or replacement of any resource.
    Destructive,
}

impl From<FailOnArg> for FailOn {
    fn from(arg: FailOnArg) -> FailOn {
        match arg {
            FailOnArg::Any => FailOn::Any,
            FailOnArg::Broadening => FailOn::Broadening,
            FailOnArg::Destructive => FailOn::Destructive,
        }
    }
}

/// Everything known before touching the stack.
struct Prepared {
    name: String,
    template: Value,
    body: String,
    parameters: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    assets: Vec<assets::Asset>,
    /// Version ids of the assets already in the bucket, verified by `prepare`.
    verified: assets::Versions,
    assets_bucket: String,
    existing: Option<StackInfo>,
    termination_protection: bool,
}

fn stack_tags(spec: &spec::Spec) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    tags.insert("airflow-stack:stack".into(), spec.name.to_string());
    tags
}

async fn assets_bucket(aws: &Aws, flag: Option<String>) -> Result<String, Failure> {
    if let Some(b) = flag {
        return Ok(b);
    }
    let bootstrap =
        cfn_stack::describe_stack(&aws.cloudformation(), stack::BOOTSTRAP_STACK).await?;
    bootstrap.and_then(|b| b.outputs.get("AssetsBucket").cloned()).ok_or_else(|| {
        Failure::Failed(anyhow!(
            "no assets bucket in {}: run `airflow-stack bootstrap` once per account and region (or pass --assets-bucket)",
            aws.region()
        ))
    })
}

async fn prepare(aws: &Aws, spec: &spec::Spec, common: &Common) -> Result<Prepared, Failure> {
    let template = stack::build(spec)
        .map_err(|e| Failure::BadInput(format!("{}: {e}", common.stack.file.display())))?
        .to_value();
    // The bucket first: without `bootstrap` there is nothing to deploy to, and saying so
    // should not wait for a Lambda build.
    let assets_bucket = assets_bucket(aws, common.assets_bucket.clone()).await?;
    // Only the Lambdas this template uses (the scaler only with autoscaling or alerts
    // on), each built for its function's architecture; missing zips are built here
    // from a checkout.
    let mut assets = assets::resolve(&template, common.assets_dir.as_deref())?;
    // The image's build context, read from the stack file's folder when it was loaded.
    if let Some(context) = crate::image::context(spec) {
        assets.push(assets::Asset::image_context(&context, &common.stack.file));
    }
    // Read-only: the version id of every asset already in the bucket (a replaced one is
    // an error here, before anything is written). The parameters carry those versions,
    // so an unchanged deploy compares equal to the stack; a missing asset leaves its
    // version out until `change_set` uploads it.
    let versions = assets::verify(&aws.s3(), &assets_bucket, &assets).await?;
    let existing = cfn_stack::describe_stack(&aws.cloudformation(), &spec.name).await?;
    Ok(Prepared {
        name: spec.name.to_string(),
        body: serde_json::to_string(&template).expect("JSON values serialise"),
        template,
        parameters: assets::parameters(&assets_bucket, &assets, &versions),
        tags: stack_tags(spec),
        assets,
        verified: versions,
        assets_bucket,
        existing,
        termination_protection: spec.termination_protection,
    })
}

/// The deployed template when the stack is live and usable for a diff.
async fn deployed(aws: &Aws, p: &Prepared) -> anyhow::Result<Option<Value>> {
    if is_live(p) {
        Ok(Some(
            cfn_stack::deployed_template(&aws.cloudformation(), &p.name).await?,
        ))
    } else {
        Ok(None)
    }
}

/// Uploads assets (and a large template) and asks CloudFormation for a change set, with
/// each function's code pinned to the object version just uploaded or checked.
async fn change_set(aws: &Aws, p: &Prepared) -> anyhow::Result<cfn_stack::ChangeSet> {
    let s3 = aws.s3();
    let versions = assets::upload_missing(&s3, &p.assets_bucket, &p.assets, &p.verified).await?;
    let parameters = assets::parameters(&p.assets_bucket, &p.assets, &versions);
    let template = if p.body.len() > MAX_INLINE_TEMPLATE_BYTES {
        let key = assets::upload_template(&s3, &p.assets_bucket, &p.body).await?;
        eprintln!(
            "Template: {} bytes, over the {MAX_INLINE_TEMPLATE_BYTES}-byte inline limit; passed as s3://{}/{key}",
            p.body.len(),
            p.assets_bucket
        );
        TemplateSource::Url(assets::template_url(
            aws.endpoint_url().as_deref(),
            &p.assets_bucket,
            &aws.region(),
            &key,
        ))
    } else {
        TemplateSource::Body(p.body.clone())
    };
    let exists = is_live(p);
    let request = ChangeSetRequest {
        stack: &p.name,
        template,
        parameters: &parameters,
        tags: &p.tags,
        exists,
    };
    cfn_stack::create_change_set(&aws.cloudformation(), request).await
}

/// `diff`: print what a deploy would change.
pub fn diff(args: DiffArgs) -> Result<(), Failure> {
    let spec = spec::load(&args.common.stack.file)?;
    crate::aws::runtime().block_on(async {
        let aws = Aws::connect(&args.common.aws, &spec.region).await;
        let p = prepare(&aws, &spec, &args.common).await?;
        let old = deployed(&aws, &p).await?;
        let mut plan = plan::diff(old.as_ref(), &p.template);
        if !plan.is_empty() || parameters_changed(&p) {
            let cs = change_set(&aws, &p).await?;
            let _ = aws
                .cloudformation()
                .delete_change_set()
                .change_set_name(&cs.id)
                .send()
                .await;
            if let Some(flags) = &cs.replacements {
                plan = plan.with_replacements(flags);
            }
        }
        println!(
            "Stack {} ({})",
            p.name,
            p.existing.as_ref().map_or("new", |e| e.status.as_str())
        );
        print!("{}", plan::render(&plan));
        match args.fail_on.map(FailOn::from) {
            Some(condition) if plan.matches(condition) => Err(Failure::Failed(anyhow!(
                "the plan has {} changes (--fail-on)",
                format!("{condition:?}").to_lowercase()
            ))),
            _ => Ok(()),
        }
    })
}

fn parameters_changed(p: &Prepared) -> bool {
    p.existing
        .as_ref()
        .is_none_or(|e| e.parameters != p.parameters || e.tags != p.tags)
}

/// `deploy`: create or update the stack.
pub fn deploy(args: DeployArgs) -> Result<(), Failure> {
    let spec = spec::load(&args.common.stack.file)?;
    let started = Instant::now();
    crate::aws::runtime().block_on(async {
        let aws = Aws::connect(&args.common.aws, &spec.region).await;
        let mut p = prepare(&aws, &spec, &args.common).await?;
        refuse_busy(&p)?;
        if let Some(failed) = p.existing.as_ref().filter(|e| e.status == "ROLLBACK_COMPLETE") {
            eprintln!("Stack {} is in ROLLBACK_COMPLETE after a failed first deploy; deleting it before creating it again.", p.name);
            remove_failed_stack(&aws, &p.name, &failed.stack_id).await?;
            p.existing = None;
        }
        let old = deployed(&aws, &p).await?;
        let plan = plan::diff(old.as_ref(), &p.template);
        // Refuse before writing anything when approval is already known to be needed.
        if !args.yes && !is_terminal() && !plan.approval_reasons().is_empty() {
            print!("{}", plan::render(&plan));
            confirm(&plan, false)?;
        }
        // Without a stack, parameters_changed is true: an unchanged stack exists.
        if let Some(current) = p.existing.as_ref().filter(|_| plan.is_empty() && !parameters_changed(&p)) {
            // Even with nothing to change, the code under the assets' keys was checked
            // (`prepare`): a replaced asset is reported now, not at the next update that
            // makes CloudFormation read it. A missing zip has no version, so the
            // parameters differ and the deploy goes on to upload it.
            println!("No changes: stack {} is up to date ({}, checked in {}).", p.name, current.status, elapsed(started));
            sync_termination_protection(&aws, &p, &current.stack_id).await?;
            return finish(&aws, &p.name, &current.stack_id, args.outputs_file.as_ref()).await;
        }
        let version = VersionChange::between(old.as_ref(), &p.template);
        apply(&aws, &p, plan, version.as_ref(), &args, started).await
    })
}

/// Creates the change set, asks for approval, executes it and follows it by stack ID.
async fn apply(
    aws: &Aws,
    p: &Prepared,
    plan: Plan,
    version: Option<&VersionChange>,
    args: &DeployArgs,
    started: Instant,
) -> Result<(), Failure> {
    let cs = change_set(aws, p).await?;
    let Some(flags) = &cs.replacements else {
        println!(
            "No changes: CloudFormation found nothing to update in {} (checked in {}).",
            p.name,
            elapsed(started)
        );
        return finish(aws, &p.name, &cs.stack_id, args.outputs_file.as_ref()).await;
    };
    let plan = plan.with_replacements(flags);
    print!("{}", plan::render(&plan));
    if let Some(warning) = version.and_then(VersionChange::downgrade_warning) {
        eprintln!("{warning}");
    }
    let approved = confirm(&plan, args.yes);
    if !matches!(approved, Ok(true)) {
        abandon(aws, p, &cs).await;
        return Err(approved
            .err()
            .unwrap_or_else(|| Failure::Failed(anyhow!("deploy cancelled; nothing was changed"))));
    }
    let target = Target {
        name: &p.name,
        stack_id: &cs.stack_id,
    };
    let total = p.template["Resources"].as_object().map_or(0, |r| r.len());
    execute_and_follow(aws, &target, &cs.id, total, version).await?;
    sync_termination_protection(aws, p, &cs.stack_id).await?;
    println!("Deployed {} in {}.", p.name, elapsed(started));
    finish(aws, &p.name, &cs.stack_id, args.outputs_file.as_ref()).await
}

/// The stack an operation works on: its name for people, its ID for CloudFormation.
pub struct Target<'a> {
    /// The stack name from the stack file.
    pub name: &'a str,
    /// `arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>`.
    pub stack_id: &'a str,
}

/// Removes a change set that will not run, and the empty stack a first change set
/// creates (REVIEW_IN_PROGRESS), so a declined deploy leaves nothing behind.
async fn abandon(aws: &Aws, p: &Prepared, cs: &cfn_stack::ChangeSet) {
    let cfn = aws.cloudformation();
    let _ = cfn.delete_change_set().change_set_name(&cs.id).send().await;
    if !is_live(p) {
        let _ = cfn_stack::delete(&cfn, &cs.stack_id).await;
    }
}

fn is_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The stack exists with resources: not a failed first create, not the empty stack an
/// abandoned first change set leaves.
fn is_live(p: &Prepared) -> bool {
    p.existing
        .as_ref()
        .is_some_and(|e| e.status != "ROLLBACK_COMPLETE" && e.status != "REVIEW_IN_PROGRESS")
}

fn refuse_busy(p: &Prepared) -> Result<(), Failure> {
    match &p.existing {
        Some(e) if e.status.ends_with("_IN_PROGRESS") && e.status != "REVIEW_IN_PROGRESS" => {
            Err(Failure::Failed(anyhow!(
                "stack {} is busy ({}); wait for it to finish and deploy again",
                p.name,
                e.status
            )))
        }
        _ => Ok(()),
    }
}

/// Deletes a stack left in ROLLBACK_COMPLETE, following the deletion by its ID (by name
/// it vanishes the moment it is deleted).
async fn remove_failed_stack(aws: &Aws, name: &str, stack_id: &str) -> Result<(), Failure> {
    let cfn = aws.cloudformation();
    let mark = cfn_stack::mark(&cfn, stack_id).await?;
    cfn_stack::delete(&cfn, stack_id).await?;
    let (status, _) = cfn_stack::follow(&cfn, stack_id, &mark, |_| {}).await?;
    if status != "DELETE_COMPLETE" {
        return Err(Failure::Failed(anyhow!(
            "could not delete the failed stack {name}: {status}"
        )));
    }
    Ok(())
}

fn confirm(plan: &Plan, yes: bool) -> Result<bool, Failure> {
    match plan::approve(plan, yes, is_terminal(), ask) {
        Approval::Proceed => Ok(true),
        Approval::Declined => Ok(false),
        Approval::Refused(message) => Err(Failure::Failed(anyhow!(message))),
    }
}

/// Asks on the terminal; anything but `y`/`yes` is a no.
fn ask(reasons: &[String]) -> bool {
    eprintln!("\nThese changes need your approval:");
    for r in reasons {
        eprintln!("  - {r}");
    }
    eprint!("Deploy them? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Executes the change set and follows the stack by ID until the operation ends.
async fn execute_and_follow(
    aws: &Aws,
    target: &Target<'_>,
    change_set_id: &str,
    total: usize,
    version: Option<&VersionChange>,
) -> Result<(), Failure> {
    let cfn = aws.cloudformation();
    let mark = cfn_stack::mark(&cfn, target.stack_id).await?;
    cfn_stack::execute(&cfn, change_set_id).await?;
    let mut progress = Progress::new(&format!("deploying {}", target.name), total);
    let (status, events) =
        cfn_stack::follow(&cfn, target.stack_id, &mark, |e| progress.event(e)).await?;
    progress.finish();
    if status == "CREATE_COMPLETE" || status == "UPDATE_COMPLETE" {
        return Ok(());
    }
    let mut report = failure_report(target, &status, &events);
    if let Some(note) = version.and_then(|v| v.rollback_note(&status, &events)) {
        report.push_str(&note);
    }
    Err(Failure::Failed(anyhow!(report)))
}

/// Names the first failed resource, its type and CloudFormation's reason (a multi-line
/// reason, such as a migration's last log lines, indented under it), the rollback
/// outcome, and where the events stay readable (by stack ID, even once deleted).
pub fn failure_report(target: &Target<'_>, status: &str, events: &[cfn_stack::Event]) -> String {
    let cause = match first_failure(events) {
        Some(e) => format!(
            "{} ({}) {}: {}",
            e.logical_id,
            e.resource_type,
            e.status,
            if e.reason.is_empty() {
                "no reason given".to_string()
            } else {
                e.reason.trim_end().replace('\n', "\n      ")
            }
        ),
        None => "CloudFormation reported no failed resource; see the stack events in the console"
            .to_string(),
    };
    format!(
        "deploy of {} failed\n  first failure: {cause}\n  stack status: {status}\n  events: aws cloudformation describe-stack-events --stack-name {}",
        target.name, target.stack_id
    )
}

async fn sync_termination_protection(
    aws: &Aws,
    p: &Prepared,
    stack_id: &str,
) -> Result<(), Failure> {
    let current = cfn_stack::describe_stack(&aws.cloudformation(), stack_id)
        .await?
        .is_some_and(|s| s.termination_protection);
    if current != p.termination_protection {
        cfn_stack::set_termination_protection(
            &aws.cloudformation(),
            stack_id,
            p.termination_protection,
        )
        .await?;
        println!(
            "Termination protection {}.",
            if p.termination_protection {
                "on"
            } else {
                "off"
            }
        );
    }
    Ok(())
}

/// Prints the outputs (read by stack ID) and writes `--outputs-file` as
/// `{"<stack name>": {...}}`.
async fn finish(
    aws: &Aws,
    name: &str,
    stack_id: &str,
    outputs_file: Option<&PathBuf>,
) -> Result<(), Failure> {
    let outputs = cfn_stack::outputs(&aws.cloudformation(), stack_id).await?;
    if !outputs.is_empty() {
        println!("\nOutputs");
        let width = outputs.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in &outputs {
            println!("  {k:<width$}  {v}");
        }
    }
    if let Some(path) = outputs_file {
        let json = serde_json::json!({ name: outputs });
        write_atomically(
            path,
            format!("{}\n", serde_json::to_string_pretty(&json).expect("JSON")).as_bytes(),
        )?;
    }
    Ok(())
}

/// Deploys a template that needs no assets (the bootstrap stack).
pub async fn deploy_plain(
    aws: &Aws,
    name: &str,
    template: &Value,
    tags: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Failure> {
    let cfn = aws.cloudformation();
    let existing = cfn_stack::describe_stack(&cfn, name).await?;
    if let Some(failed) = existing
        .as_ref()
        .filter(|e| e.status == "ROLLBACK_COMPLETE")
    {
        remove_failed_stack(aws, name, &failed.stack_id).await?;
    }
    let existing = cfn_stack::describe_stack(&cfn, name).await?;
    let body = serde_json::to_string(template).expect("JSON");
    let params = BTreeMap::new();
    let request = ChangeSetRequest {
        stack: name,
        template: TemplateSource::Body(body),
        parameters: &params,
        tags,
        exists: existing.is_some(),
    };
    let cs = cfn_stack::create_change_set(&cfn, request).await?;
    if cs.replacements.is_some() {
        let target = Target {
            name,
            stack_id: &cs.stack_id,
        };
        let total = template["Resources"].as_object().map_or(0, |r| r.len());
        execute_and_follow(aws, &target, &cs.id, total, None).await?;
    }
    Ok(cfn_stack::outputs(&cfn, &cs.stack_id).await?)
}

/// The migration custom resource's type; its Airflow version property is compared
/// before and after a deploy, as the migration Lambda does (both from the contract).
const MIGRATION_TYPE: &str = airflow_stack_contract::migration::RESOURCE_TYPE;

/// The Airflow version of the migration resource before and after a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionChange {
    /// The deployed version.
    pub from: String,
    /// The version this deploy brings.
    pub to: String,
}

impl VersionChange {
    /// The change between the deployed template and the new one; `None` for a first
    /// deploy or an unchanged version.
    pub fn between(old: Option<&Value>, new: &Value) -> Option<VersionChange> {
        let from = migration_version(old?)?;
        let to = migration_version(new)?;
        (from != to).then(|| VersionChange {
            from: from.to_string(),
            to: to.to_string(),
        })
    }

    /// How the new version compares with the deployed one, number by number (3.10.0 >
    /// 3.9.9) as the migration Lambda compares them; `None` if either is not numbers
    /// and dots (the stack file allows only those).
    fn direction(&self) -> Option<Ordering> {
        airflow_stack_contract::version::Version::compare(&self.from, &self.to)
    }

    fn goes_down(&self) -> bool {
        self.direction() == Some(Ordering::Less)
    }

    /// Said before a deploy that lowers the version on purpose: the migration then runs
    /// nothing (so that a failed upgrade can roll back), and nothing else lowers the schema.
    pub fn downgrade_warning(&self) -> Option<String> {
        self.goes_down().then(|| {
            format!(
                "Warning: airflow.version goes down from {from} to {to}. The database migration runs nothing when the version goes down (that is what lets a failed upgrade roll back), so the {to} services would meet the {from} schema. Lower the schema first, deliberately: `airflow db downgrade --to-version {to}`, run with the {from} image.",
                from = self.from,
                to = self.to
            )
        })
    }

    /// After a failed upgrade rolled back: what happened to the database. The rollback
    /// sends the migration resource an Update back to the old version, which the Lambda
    /// answers without a task (an older `airflow db migrate` fails on a newer schema).
    pub fn rollback_note(&self, status: &str, events: &[cfn_stack::Event]) -> Option<String> {
        if status != "UPDATE_ROLLBACK_COMPLETE" || self.direction() != Some(Ordering::Greater) {
            return None;
        }
        let (from, to) = (&self.from, &self.to);
        Some(if migrated_before_rollback(events) {
            format!(
                "\n  database: the migration to Airflow {to} had completed before the failure; the rollback returned the stack to {from} and ran no migration (an older `airflow db migrate` cannot run on a newer schema). The schema stays at {to}: deploy {to} again once the cause above is fixed, or lower the schema deliberately with `airflow db downgrade --to-version {from}`, run with the {to} image."
            )
        } else {
            format!(
                "\n  database: the rollback to Airflow {from} ran no migration; the migration to {to} did not complete (its reason, if it failed, is above)."
            )
        })
    }
}

/// The `AirflowVersion` of the template's migration resource.
fn migration_version(template: &Value) -> Option<&str> {
    airflow_stack_contract::migration::airflow_version_in_template(template)
}

/// Whether the migration resource completed its Update before the stack's rollback began.
fn migrated_before_rollback(events: &[cfn_stack::Event]) -> bool {
    events
        .iter()
        .take_while(|e| {
            !(e.resource_type == "AWS::CloudFormation::Stack"
                && e.status == "UPDATE_ROLLBACK_IN_PROGRESS")
        })
        .any(|e| e.resource_type == MIGRATION_TYPE && e.status == "UPDATE_COMPLETE")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::stack::Event;
    use serde_json::json;

    const ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/airflow-dev/1b2c";

    fn target() -> Target<'static> {
        Target {
            name: "airflow-dev",
            stack_id: ID,
        }
    }

    fn event(logical: &str, kind: &str, status: &str, reason: &str) -> Event {
        Event {
            id: format!("{logical}-{status}"),
            timestamp: 1.0,
            logical_id: logical.into(),
            resource_type: kind.into(),
            status: status.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn the_failure_report_names_resource_type_reason_rollback_and_stack_id() {
        let events = vec![event(
            "GeneratedSecrets",
            airflow_stack_contract::secrets::SECRETS_RESOURCE_TYPE,
            "CREATE_FAILED",
            "secret not found",
        )];
        let report = failure_report(&target(), "ROLLBACK_COMPLETE", &events);
        assert_eq!(
            report,
            format!("deploy of airflow-dev failed\n  first failure: GeneratedSecrets (Custom::AirflowSecrets) CREATE_FAILED: secret not found\n  stack status: ROLLBACK_COMPLETE\n  events: aws cloudformation describe-stack-events --stack-name {ID}")
        );
    }

    #[test]
    fn a_multi_line_reason_keeps_its_lines_indented() {
        let events = vec![event(
            "Migration",
            MIGRATION_TYPE,
            "UPDATE_FAILED",
            "exited with code 3; last lines:\nalembic: Running upgrade\nboom\n",
        )];
        let report = failure_report(&target(), "UPDATE_ROLLBACK_COMPLETE", &events);
        assert!(
            report.contains(
                "last lines:\n      alembic: Running upgrade\n      boom\n  stack status"
            ),
            "{report}"
        );
    }

    fn template(version: &str) -> Value {
        json!({"Resources": {
            "Db": {"Type": "AWS::RDS::DBInstance", "Properties": {}},
            "Migration": {"Type": MIGRATION_TYPE, "Properties": {
                airflow_stack_contract::migration::property::AIRFLOW_VERSION: version
            }}
        }})
    }

    #[test]
    fn versions_compare_number_by_number() {
        let change = |from: &str, to: &str| {
            VersionChange::between(Some(&template(from)), &template(to)).unwrap()
        };
        assert_eq!(
            change("3.9.9", "3.10.0").direction(),
            Some(Ordering::Greater)
        );
        assert!(change("3.10.0", "3.9.9").goes_down());
        assert_eq!(change("3.3", "3.3.0").direction(), Some(Ordering::Equal));
        assert_eq!(change("3.3.2", "3.3.2rc1").direction(), None);
        assert_eq!(change("3.3.2", "+3.3.2").direction(), None);
        assert!(VersionChange::between(Some(&template("3.3.2")), &template("3.3.2")).is_none());
        assert!(VersionChange::between(None, &template("3.3.2")).is_none());
    }

    #[test]
    fn only_a_lower_version_is_warned_about() {
        let down = VersionChange::between(Some(&template("3.3.3")), &template("3.3.2")).unwrap();
        let warning = down.downgrade_warning().unwrap();
        assert!(warning.contains("from 3.3.3 to 3.3.2"), "{warning}");
        assert!(
            warning.contains("airflow db downgrade --to-version 3.3.2"),
            "{warning}"
        );
        let up = VersionChange::between(Some(&template("3.3.2")), &template("3.3.3")).unwrap();
        assert!(up.downgrade_warning().is_none());
    }

    #[test]
    fn a_rolled_back_upgrade_says_what_became_of_the_database() {
        let up = VersionChange::between(Some(&template("3.3.2")), &template("3.3.3")).unwrap();
        let stack = "AWS::CloudFormation::Stack";
        let migrated = vec![
            event("Migration", MIGRATION_TYPE, "UPDATE_COMPLETE", ""),
            event(
                "WorkerService",
                "AWS::ECS::Service",
                "UPDATE_FAILED",
                "boom",
            ),
            event("airflow-dev", stack, "UPDATE_ROLLBACK_IN_PROGRESS", ""),
            event("Migration", MIGRATION_TYPE, "UPDATE_COMPLETE", ""),
        ];
        let note = up
            .rollback_note("UPDATE_ROLLBACK_COMPLETE", &migrated)
            .unwrap();
        assert!(
            note.contains("the migration to Airflow 3.3.3 had completed before the failure")
                && note.contains("returned the stack to 3.3.2 and ran no migration"),
            "{note}"
        );
        let failed = vec![
            event("Migration", MIGRATION_TYPE, "UPDATE_FAILED", "exit 1"),
            event("airflow-dev", stack, "UPDATE_ROLLBACK_IN_PROGRESS", ""),
            event("Migration", MIGRATION_TYPE, "UPDATE_COMPLETE", ""),
        ];
        let note = up
            .rollback_note("UPDATE_ROLLBACK_COMPLETE", &failed)
            .unwrap();
        assert!(note.contains("did not complete"), "{note}");
        assert!(up
            .rollback_note("UPDATE_ROLLBACK_FAILED", &migrated)
            .is_none());
        let down = VersionChange::between(Some(&template("3.3.3")), &template("3.3.2")).unwrap();
        assert!(down
            .rollback_note("UPDATE_ROLLBACK_COMPLETE", &migrated)
            .is_none());
    }
}
