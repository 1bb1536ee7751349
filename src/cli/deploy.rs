//! `airflow-stack deploy` and `diff`: assets, change set, plan, approval, execution
//! with live progress, an honest failure report, outputs.

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
    /// Folder holding `<lambda crate>/bootstrap.zip` (default: the cargo target dir's
    /// `lambda/`, where lambdas/build.sh writes them).
    #[arg(long)]
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
    fail_on: Option<FailOn>,
}

/// Everything known before touching the stack.
struct Prepared {
    name: String,
    template: Value,
    body: String,
    parameters: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    assets: Vec<assets::Asset>,
    assets_bucket: String,
    existing: Option<StackInfo>,
    termination_protection: bool,
}

fn stack_tags(spec: &spec::Spec) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    tags.insert("airflow-stack:stack".into(), spec.name.clone());
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
    let mut assets = assets::locate(&assets::assets_dir(common.assets_dir.as_deref()))
        .map_err(|e| Failure::Failed(anyhow!(e)))?;
    // Only the Lambdas this template uses (the scaler only with autoscaling or alerts
    // on): CloudFormation rejects a parameter the template does not declare.
    assets.retain(|a| template["Parameters"].get(a.parameter).is_some());
    let assets_bucket = assets_bucket(aws, common.assets_bucket.clone()).await?;
    let existing = cfn_stack::describe_stack(&aws.cloudformation(), &spec.name).await?;
    Ok(Prepared {
        name: spec.name.clone(),
        body: serde_json::to_string(&template).expect("JSON values serialise"),
        template,
        parameters: assets::parameters(&assets_bucket, &assets),
        tags: stack_tags(spec),
        assets,
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

/// Uploads assets (and a large template) and asks CloudFormation for a change set.
async fn change_set(aws: &Aws, p: &Prepared) -> anyhow::Result<cfn_stack::ChangeSet> {
    let s3 = aws.s3();
    assets::upload(&s3, &p.assets_bucket, &p.assets).await?;
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
        parameters: &p.parameters,
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
        match args.fail_on {
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
        if p.existing.as_ref().is_some_and(|e| e.status == "ROLLBACK_COMPLETE") {
            eprintln!("Stack {} is in ROLLBACK_COMPLETE after a failed first deploy; deleting it before creating it again.", p.name);
            remove_failed_stack(&aws, &p.name).await?;
            p.existing = None;
        }
        let old = deployed(&aws, &p).await?;
        let plan = plan::diff(old.as_ref(), &p.template);
        // Refuse before writing anything when approval is already known to be needed.
        if !args.yes && !is_terminal() && !plan.approval_reasons().is_empty() {
            print!("{}", plan::render(&plan));
            confirm(&plan, false)?;
        }
        if plan.is_empty() && !parameters_changed(&p) {
            println!("No changes: stack {} is up to date ({}, checked in {}).", p.name, p.existing.as_ref().map_or("", |e| e.status.as_str()), elapsed(started));
            sync_termination_protection(&aws, &p).await?;
            return finish(&aws, &p.name, args.outputs_file.as_ref()).await;
        }
        let cs = change_set(&aws, &p).await?;
        let Some(flags) = &cs.replacements else {
            println!("No changes: CloudFormation found nothing to update in {} (checked in {}).", p.name, elapsed(started));
            return finish(&aws, &p.name, args.outputs_file.as_ref()).await;
        };
        let plan = plan.with_replacements(flags);
        print!("{}", plan::render(&plan));
        let approved = confirm(&plan, args.yes);
        if !matches!(approved, Ok(true)) {
            abandon(&aws, &p, &cs.id).await;
            return Err(approved.err().unwrap_or_else(|| Failure::Failed(anyhow!("deploy cancelled; nothing was changed"))));
        }
        execute_and_follow(&aws, &p.name, &cs.id, p.template["Resources"].as_object().map_or(0, |r| r.len())).await?;
        sync_termination_protection(&aws, &p).await?;
        println!("Deployed {} in {}.", p.name, elapsed(started));
        finish(&aws, &p.name, args.outputs_file.as_ref()).await
    })
}

/// Removes a change set that will not run, and the empty stack a first change set
/// creates (REVIEW_IN_PROGRESS), so a declined deploy leaves nothing behind.
async fn abandon(aws: &Aws, p: &Prepared, change_set_id: &str) {
    let cfn = aws.cloudformation();
    let _ = cfn
        .delete_change_set()
        .change_set_name(change_set_id)
        .send()
        .await;
    if !is_live(p) {
        let _ = cfn_stack::delete(&cfn, &p.name).await;
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

async fn remove_failed_stack(aws: &Aws, name: &str) -> Result<(), Failure> {
    let cfn = aws.cloudformation();
    let since = cfn_stack::now_minus_skew();
    cfn_stack::delete(&cfn, name).await?;
    let (status, _) = cfn_stack::follow(&cfn, name, since, |_| {}).await?;
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

async fn execute_and_follow(
    aws: &Aws,
    name: &str,
    change_set_id: &str,
    total: usize,
) -> Result<(), Failure> {
    let cfn = aws.cloudformation();
    let since = cfn_stack::now_minus_skew();
    cfn_stack::execute(&cfn, change_set_id).await?;
    let mut progress = Progress::new(&format!("deploying {name}"), total);
    let (status, events) = cfn_stack::follow(&cfn, name, since, |e| progress.event(e)).await?;
    progress.finish();
    if status == "CREATE_COMPLETE" || status == "UPDATE_COMPLETE" {
        return Ok(());
    }
    Err(Failure::Failed(anyhow!(failure_report(
        name, &status, &events
    ))))
}

/// Names the first failed resource, its type and CloudFormation's reason, then the
/// rollback outcome.
pub fn failure_report(name: &str, status: &str, events: &[cfn_stack::Event]) -> String {
    let cause = match first_failure(events) {
        Some(e) => format!(
            "{} ({}) {}: {}",
            e.logical_id,
            e.resource_type,
            e.status,
            if e.reason.is_empty() {
                "no reason given"
            } else {
                &e.reason
            }
        ),
        None => "CloudFormation reported no failed resource; see the stack events in the console"
            .to_string(),
    };
    format!("deploy of {name} failed\n  first failure: {cause}\n  stack status: {status}")
}

async fn sync_termination_protection(aws: &Aws, p: &Prepared) -> Result<(), Failure> {
    let current = cfn_stack::describe_stack(&aws.cloudformation(), &p.name)
        .await?
        .is_some_and(|s| s.termination_protection);
    if current != p.termination_protection {
        cfn_stack::set_termination_protection(
            &aws.cloudformation(),
            &p.name,
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

/// Prints the outputs and writes `--outputs-file` as `{"<stack>": {...}}`.
async fn finish(aws: &Aws, name: &str, outputs_file: Option<&PathBuf>) -> Result<(), Failure> {
    let outputs = cfn_stack::outputs(&aws.cloudformation(), name).await?;
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
    if existing
        .as_ref()
        .is_some_and(|e| e.status == "ROLLBACK_COMPLETE")
    {
        remove_failed_stack(aws, name).await?;
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
        execute_and_follow(
            aws,
            name,
            &cs.id,
            template["Resources"].as_object().map_or(0, |r| r.len()),
        )
        .await?;
    }
    Ok(cfn_stack::outputs(&cfn, name).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::stack::Event;

    #[test]
    fn the_failure_report_names_resource_type_reason_and_rollback() {
        let events = vec![Event {
            id: "1".into(),
            timestamp: 1.0,
            logical_id: "GeneratedSecrets".into(),
            resource_type: "Custom::AirflowSecrets".into(),
            status: "CREATE_FAILED".into(),
            reason: "secret not found".into(),
        }];
        let report = failure_report("airflow-dev", "ROLLBACK_COMPLETE", &events);
        assert_eq!(
            report,
            "deploy of airflow-dev failed\n  first failure: GeneratedSecrets (Custom::AirflowSecrets) CREATE_FAILED: secret not found\n  stack status: ROLLBACK_COMPLETE"
        );
    }
}
