//! `airflow-stack destroy`: confirmation, deletion with progress, and what was kept.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::anyhow;
use serde_json::Value;

use super::progress::{first_failure, Progress};
use super::{Failure, StackFile};
use crate::aws::stack as cfn_stack;
use crate::aws::{Aws, AwsOptions};
use crate::spec;

/// Arguments of `destroy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackFile,
    /// Delete without asking.
    #[arg(long)]
    yes: bool,
    /// Turn termination protection off first (it is on in prod.yaml).
    #[arg(long)]
    disable_termination_protection: bool,
    #[command(flatten)]
    aws: AwsOptions,
}

/// A resource CloudFormation keeps when the stack is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
    pub policy: String,
}

/// Resources with `DeletionPolicy` Retain or Snapshot, with their physical ids.
pub fn kept_resources(template: &Value, physical: &BTreeMap<String, String>) -> Vec<Kept> {
    let Some(resources) = template["Resources"].as_object() else {
        return Vec::new();
    };
    resources
        .iter()
        .filter_map(|(id, r)| {
            let policy = r["DeletionPolicy"].as_str()?;
            (policy == "Retain" || policy == "Snapshot").then(|| Kept {
                logical_id: id.clone(),
                resource_type: r["Type"].as_str().unwrap_or("?").to_string(),
                physical_id: physical.get(id).cloned().unwrap_or_default(),
                policy: policy.to_string(),
            })
        })
        .collect()
}

/// How to remove or reuse a kept resource.
pub fn advice(k: &Kept) -> String {
    let id = &k.physical_id;
    match (k.resource_type.as_str(), k.policy.as_str()) {
        ("AWS::S3::Bucket", _) => format!(
            "bucket {id} (DAGs and task logs) is kept.\n    reuse: copy it into the new stack's bucket: aws s3 sync s3://{id} s3://<new DagBucket>\n    remove: delete every object version, then aws s3api delete-bucket --bucket {id}"
        ),
        ("AWS::SecretsManager::Secret", _) => format!(
            "secret {id} is kept ({}).\n    reuse: aws secretsmanager put-secret-value --secret-id <new secret> --secret-string \"$(aws secretsmanager get-secret-value --secret-id {id} --query SecretString --output text)\" before the services start\n    remove: aws secretsmanager delete-secret --secret-id {id}",
            k.logical_id
        ),
        ("AWS::RDS::DBCluster", "Snapshot") => format!(
            "a final snapshot of database cluster {id} is taken.\n    find it: aws rds describe-db-cluster-snapshots --db-cluster-identifier {id} --snapshot-type manual\n    restore it together with the kept FernetKeySecret (see the README, \"Restoring a deleted stack\")"
        ),
        ("AWS::RDS::DBInstance", "Snapshot") => format!(
            "a final snapshot of database {id} is taken.\n    find it: aws rds describe-db-snapshots --db-instance-identifier {id} --snapshot-type manual\n    restore it together with the kept FernetKeySecret (see the README, \"Restoring a deleted stack\")"
        ),
        _ => format!("{} ({}) {id} is kept ({}).", k.logical_id, k.resource_type, k.policy),
    }
}

/// `destroy`: confirms, deletes the stack and follows the deletion by stack ID (by name,
/// a deleted stack vanishes between two polls), then lists what was kept.
pub fn run(args: Args) -> Result<(), Failure> {
    let spec = spec::load(&args.stack.file)?;
    crate::aws::runtime().block_on(async {
        let aws = Aws::connect(&args.aws, &spec.region).await;
        let cfn = aws.cloudformation();
        let Some(info) = cfn_stack::describe_stack(&cfn, &spec.name).await? else {
            println!("Stack {} does not exist in {}; nothing to delete.", spec.name, aws.region());
            return Ok(());
        };
        if info.termination_protection && !args.disable_termination_protection {
            return Err(Failure::Failed(anyhow!(
                "stack {} has termination protection on; re-run with --disable-termination-protection to turn it off and delete",
                spec.name
            )));
        }
        if !confirmed(&spec.name, args.yes)? {
            return Err(Failure::Failed(anyhow!("destroy cancelled; nothing was deleted")));
        }
        let id = info.stack_id.as_str();
        if info.termination_protection {
            cfn_stack::set_termination_protection(&cfn, id, false).await?;
        }
        let template = cfn_stack::deployed_template(&cfn, id).await?;
        let kept = kept_resources(&template, &cfn_stack::physical_ids(&cfn, id).await?);
        delete_and_follow(&cfn, &spec.name, id, &template).await?;
        println!("Deleted stack {} ({id}).", spec.name);
        if !kept.is_empty() {
            println!("\nKept, so no data is lost:");
            for k in &kept {
                println!("  - {}", advice(k));
            }
        }
        Ok(())
    })
}

/// Deletes the stack with this ID and shows its events until the deletion ends.
async fn delete_and_follow(
    cfn: &aws_sdk_cloudformation::Client,
    name: &str,
    stack_id: &str,
    template: &Value,
) -> Result<(), Failure> {
    let mark = cfn_stack::mark(cfn, stack_id).await?;
    cfn_stack::delete(cfn, stack_id).await?;
    let total = template["Resources"].as_object().map_or(0, |r| r.len());
    let mut progress = Progress::new(&format!("deleting {name}"), total);
    let (status, events) = cfn_stack::follow(cfn, stack_id, &mark, |e| progress.event(e)).await?;
    progress.finish();
    if status == "DELETE_COMPLETE" {
        return Ok(());
    }
    let cause = first_failure(&events).map_or_else(
        || "no resource reported a failure".to_string(),
        |e| format!("{} ({}): {}", e.logical_id, e.resource_type, e.reason),
    );
    Err(Failure::Failed(anyhow!(
        "deleting {name} ended in {status}\n  first failure: {cause}\n  events: aws cloudformation describe-stack-events --stack-name {stack_id}"
    )))
}

/// Asks for the stack name on a terminal; refuses without one unless `--yes`.
fn confirmed(name: &str, yes: bool) -> Result<bool, Failure> {
    if yes {
        return Ok(true);
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Failure::Failed(anyhow!(
            "destroy needs confirmation and there is no terminal to ask on; re-run with --yes"
        )));
    }
    eprint!("Delete stack {name}? Type its name to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Failed(e.into()))?;
    Ok(answer.trim() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kept_resources_are_those_with_retain_or_snapshot() {
        let t = json!({"Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"},
            "Db": {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Snapshot"},
            "Role": {"Type": "AWS::IAM::Role"}
        }});
        let physical = BTreeMap::from([
            ("Bucket".to_string(), "b-123".to_string()),
            ("Db".to_string(), "db-1".to_string()),
        ]);
        let kept = kept_resources(&t, &physical);
        assert_eq!(kept.len(), 2);
        assert!(advice(&kept[0]).starts_with("bucket b-123"));
        assert!(advice(&kept[1]).contains("describe-db-snapshots --db-instance-identifier db-1"));
    }
}
