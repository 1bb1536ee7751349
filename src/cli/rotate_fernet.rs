//! `airflow-stack rotate-fernet`: the second half of a Fernet key rotation.
//!
//! The first half is a deploy with a new `secrets.fernet_rotation` token: the secrets
//! Lambda puts a new key in front of every current one (`new,<old keys>`) and the
//! services that read the key roll, so every task decrypts with any key and encrypts
//! with the new one. This command then runs `airflow rotate-fernet-key` as a one-off
//! task (the stack's `RotateFernetTaskDefinition`), which re-encrypts every stored
//! connection, variable and trigger value under the new key, and only once it exited 0
//! offers to drop the old keys and restart those services. Dropping before the
//! re-encryption would make every value still under an old key unreadable.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::anyhow;
use serde_json::Value;

use super::{Failure, StackFile};
use crate::aws::one_off::{self, Launch, Stopped};
use crate::aws::services::{self, StackResource};
use crate::aws::{describe, Aws, AwsOptions};
use crate::stack::Component;
use crate::{spec, stack};

/// The environment variable Airflow reads the Fernet key(s) from.
const FERNET_ENV: &str = "AIRFLOW__CORE__FERNET_KEY";
/// Logical id of the Fernet key's secret (stack/keys.rs).
const FERNET_SECRET: &str = "FernetKeySecret";
/// Log lines shown when the task fails.
const TAIL_LINES: i32 = 30;

/// Arguments of `rotate-fernet`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackFile,
    #[command(flatten)]
    aws: AwsOptions,
    /// Once the re-encryption succeeded, keep only the newest key and restart the
    /// services that read it, without asking.
    #[arg(long)]
    drop_old_keys: bool,
    /// Minutes to wait for the re-encryption task.
    #[arg(long, default_value_t = 30)]
    timeout_minutes: u64,
}

/// The keys of a Fernet secret value, newest first (Airflow's MultiFernet order).
pub fn keys(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect()
}

/// Logical ids of the services whose containers get the Fernet key, from the template
/// the stack file renders to.
pub fn services_reading_the_key(template: &Value) -> BTreeSet<String> {
    let resources = &template["Resources"];
    let reads = |definition: &Value| {
        definition["Properties"]["ContainerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["Secrets"].as_array().into_iter().flatten())
            .any(|s| s["Name"] == FERNET_ENV)
    };
    resources
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == "AWS::ECS::Service")
        .filter(|(_, r)| {
            let id = r["Properties"]["TaskDefinition"]["Ref"].as_str();
            id.is_some_and(|id| reads(&resources[id]))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// `line` without the Fernet keys and without the password of any `scheme://user:pw@`
/// URL. A hand-written scan rather than the regex crate: two fixed patterns, and the
/// CLI has no regex dependency otherwise.
pub fn redact(line: &str, secrets: &[&str]) -> String {
    let mut out = line.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        out = out.replace(secret, "***");
    }
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        result.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                result.push_str(&authority[..=colon]);
                result.push_str("***");
                result.push_str(&authority[at..]);
            }
            _ => result.push_str(authority),
        }
        rest = &tail[end..];
    }
    result.push_str(rest);
    result
}

/// Physical id of a logical resource, or why the stack cannot be rotated.
fn physical<'a>(
    resources: &'a [StackResource],
    logical: &str,
    stack: &str,
) -> anyhow::Result<&'a str> {
    resources
        .iter()
        .find(|r| r.logical_id == logical && !r.physical_id.is_empty())
        .map(|r| r.physical_id.as_str())
        .ok_or_else(|| {
            anyhow!("stack {stack} has no {logical}: deploy it with this version of airflow-stack first")
        })
}

/// What the command found in the deployed stack.
struct Deployed {
    cluster: String,
    secret: String,
    task_definition: String,
    log_group: String,
    security_group: String,
    /// Physical ids of the services that read the key, with their logical ids.
    readers: Vec<(String, String)>,
}

fn deployed(resources: &[StackResource], template: &Value, name: &str) -> anyhow::Result<Deployed> {
    let me = Component::RotateFernet;
    let wanted = services_reading_the_key(template);
    let readers = resources
        .iter()
        .filter(|r| wanted.contains(&r.logical_id) && !r.physical_id.is_empty())
        .map(|r| (r.logical_id.clone(), r.physical_id.clone()))
        .collect::<Vec<_>>();
    if readers.is_empty() {
        return Err(anyhow!(
            "stack {name} runs no service that reads the Fernet key"
        ));
    }
    let cluster = resources
        .iter()
        .find(|r| r.resource_type == "AWS::ECS::Cluster")
        .ok_or_else(|| anyhow!("stack {name} has no ECS cluster"))?;
    Ok(Deployed {
        cluster: cluster.physical_id.clone(),
        secret: physical(resources, FERNET_SECRET, name)?.to_owned(),
        task_definition: physical(resources, stack::FERNET_ROTATION_TASK_DEFINITION, name)?
            .to_owned(),
        log_group: physical(resources, &format!("{}LogGroup", me.id()), name)?.to_owned(),
        // The migration's group: the one-off database tasks share its one path, to
        // PostgreSQL (stack/security.rs).
        security_group: physical(
            resources,
            &format!("{}SecurityGroup", Component::Migrate.id()),
            name,
        )?
        .to_owned(),
        readers,
    })
}

pub fn run(args: Args) -> Result<(), Failure> {
    let spec = spec::load(&args.stack.file)?;
    let template = stack::build(&spec)
        .map_err(|e| Failure::BadInput(format!("{}: {e}", args.stack.file.display())))?
        .to_value();
    crate::aws::runtime().block_on(async {
        let aws = Aws::connect(&args.aws, &spec.region).await;
        let resources = services::stack_resources(&aws.cloudformation(), &spec.name).await?;
        let d = deployed(&resources, &template, &spec.name)?;
        let (value, keys_since) = read_secret(&aws, &d.secret).await?;
        let current = keys(&value);
        if current.len() < 2 {
            return Err(Failure::Failed(anyhow!(
                "the Fernet secret of {} holds one key: there is nothing to re-encrypt. Set secrets.fernet_rotation in {} to a new value and deploy; then run this command",
                spec.name,
                args.stack.file.display()
            )));
        }
        println!(
            "rotate-fernet {} in {}: {} keys, the newest first",
            spec.name,
            aws.region(),
            current.len()
        );
        let network = steady_network(&aws, &d, keys_since).await?;
        let stopped = reencrypt(&aws, &d, network, &args).await?;
        if stopped.exit_code != Some(0) {
            return Err(Failure::Failed(failure(&aws, &d, &stopped, &current).await));
        }
        println!(
            "re-encrypted: every stored connection, variable and trigger value is now under the newest key (task {})",
            stopped.task_id()
        );
        if args.drop_old_keys || ask_to_drop(current.len() - 1) {
            drop_old_keys(&aws, &d, current[0], current.len() - 1).await?;
        } else {
            println!(
                "  the {} old keys stay; drop them later with: airflow-stack rotate-fernet {} --drop-old-keys",
                current.len() - 1,
                args.stack.file.display()
            );
        }
        Ok(())
    })
}

/// The secret's value and when its current version was written.
async fn read_secret(aws: &Aws, arn: &str) -> anyhow::Result<(String, std::time::SystemTime)> {
    let out = aws
        .secrets_manager()
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| anyhow!("cannot read the Fernet secret {arn}: {}", describe(&e)))?;
    let value = out
        .secret_string()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the Fernet secret {arn} has no value; deploy the stack first"))?;
    let written = out
        .created_date()
        .and_then(|d| std::time::SystemTime::try_from(*d).ok())
        .ok_or_else(|| anyhow!("the Fernet secret {arn} has no creation date"))?;
    Ok((value, written))
}

/// The subnets the services run in, once every task of the services that read the key
/// started after the secret got its current keys: a task still holding only an old key
/// would write values that only the dropped keys could read.
async fn steady_network(
    aws: &Aws,
    d: &Deployed,
    keys_since: std::time::SystemTime,
) -> anyhow::Result<(Vec<String>, bool)> {
    let ecs = aws.ecs();
    let ids: Vec<String> = d.readers.iter().map(|(_, p)| p.clone()).collect();
    let states = services::states(&ecs, &d.cluster, &ids).await?;
    let mut busy = Vec::new();
    for ((logical, physical), state) in d.readers.iter().zip(&states) {
        if !state.is_steady() {
            busy.push(format!(
                "{logical} is rolling out ({} deployments)",
                state.deployments
            ));
            continue;
        }
        let old = services::tasks_created_before(&ecs, &d.cluster, physical, keys_since).await?;
        if !old.is_empty() {
            busy.push(format!(
                "{logical} runs {} task(s) started before the keys changed",
                old.len()
            ));
        }
    }
    if !busy.is_empty() {
        return Err(anyhow!(
            "not every task reads the current keys yet: {}. Wait until the deploy has finished (or restart those services) and run this again",
            busy.join("; ")
        ));
    }
    println!(
        "  every task of {} started with the current keys",
        d.readers
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok((states[0].subnets.clone(), states[0].assign_public_ip))
}

async fn reencrypt(
    aws: &Aws,
    d: &Deployed,
    (subnets, assign_public_ip): (Vec<String>, bool),
    args: &Args,
) -> anyhow::Result<Stopped> {
    let ecs = aws.ecs();
    let launch = Launch {
        cluster: d.cluster.clone(),
        task_definition: d.task_definition.clone(),
        subnets,
        security_groups: vec![d.security_group.clone()],
        assign_public_ip,
        started_by: "airflow-stack rotate-fernet".into(),
    };
    let arn = one_off::run(&ecs, &launch).await?;
    let container = Component::RotateFernet.name();
    println!(
        "  started {container} task {}",
        arn.rsplit('/').next().unwrap_or(&arn)
    );
    let timeout = Duration::from_secs(args.timeout_minutes * 60);
    one_off::wait_stopped(&ecs, &d.cluster, &arn, container, timeout, |status| {
        println!("  {container}: {status}");
    })
    .await
}

/// The failure, with the end of the task's log (keys and URL passwords removed).
async fn failure(aws: &Aws, d: &Deployed, stopped: &Stopped, keys: &[&str]) -> anyhow::Error {
    let name = Component::RotateFernet.name();
    let stream = format!("{name}/{name}/{}", stopped.task_id());
    let exit = stopped
        .exit_code
        .map_or("the container did not run".to_owned(), |c| {
            format!("exit code {c}")
        });
    let tail = match one_off::log_tail(&aws.logs(), &d.log_group, &stream, TAIL_LINES).await {
        Ok(lines) if lines.is_empty() => "  (no log lines)".to_owned(),
        Ok(lines) => lines
            .iter()
            .map(|l| format!("  | {}", redact(l, keys)))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("  (log not readable: {e})"),
    };
    anyhow!(
        "the re-encryption task {} failed ({exit}; {}); every key is kept. Its log {}/{stream}:\n{tail}",
        stopped.task_id(),
        stopped.reason,
        d.log_group
    )
}

fn ask_to_drop(old: usize) -> bool {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return false;
    }
    eprint!("Drop the {old} old key(s) and restart the services that read the key? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

/// Writes the newest key alone (Secrets Manager keeps the previous value as the
/// AWSPREVIOUS version) and restarts the services that read it.
async fn drop_old_keys(aws: &Aws, d: &Deployed, newest: &str, old: usize) -> anyhow::Result<()> {
    aws.secrets_manager()
        .put_secret_value()
        .secret_id(&d.secret)
        .secret_string(newest)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot write the Fernet secret {}: {}",
                d.secret,
                describe(&e)
            )
        })?;
    let ecs = aws.ecs();
    for (_, service) in &d.readers {
        services::restart(&ecs, &d.cluster, service).await?;
    }
    println!(
        "  dropped {old} old key(s) (the previous value stays readable as the secret's AWSPREVIOUS version); restarted {}",
        d.readers.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_split_newest_first_and_blanks_ignored() {
        assert_eq!(keys("new, old1,,old2"), vec!["new", "old1", "old2"]);
        assert_eq!(keys("only"), vec!["only"]);
    }

    #[test]
    fn redaction_removes_keys_and_url_passwords_only() {
        let keys = ["Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy"];
        let line = "bad key Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy for postgresql+psycopg2://airflow:s3cr3t%21@db.example:5432/airflow and http://host/x";
        let out = redact(line, &keys);
        assert!(!out.contains("Zm9vYmFy"), "{out}");
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(
            out.contains("postgresql+psycopg2://airflow:***@db.example:5432/airflow"),
            "{out}"
        );
        assert!(out.contains("http://host/x"), "{out}");
    }

    #[test]
    fn every_service_that_reads_the_key_is_restarted_and_no_other() {
        let spec = spec::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/stacks/prod.yaml"
        )))
        .unwrap();
        let t = stack::build(&spec).unwrap().to_value();
        let readers = services_reading_the_key(&t);
        assert!(readers.contains("SchedulerService"), "{readers:?}");
        assert!(readers.contains("ApiServerService"), "{readers:?}");
        assert!(
            !readers.contains("WorkerService"),
            "workers hold no Fernet key: {readers:?}"
        );
        assert!(!readers.iter().any(|r| r.contains("Redis")), "{readers:?}");
    }
}
