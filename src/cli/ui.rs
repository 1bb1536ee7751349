//! `airflow-stack ui`: the Airflow UI of a stack with `access.mode: tunnel`, on a local
//! port, through a Session Manager port forward to a running api-server task.
//!
//! It finds a RUNNING task of the service that runs the api-server container (the
//! api-server's own, or the packed core's), checks that the task was started with ECS
//! Exec and that its `ExecuteCommandAgent` runs, and then runs
//!
//! ```text
//! aws ssm start-session --target ecs:<cluster>_<task id>_<runtime id> \
//!     --document-name AWS-StartPortForwardingSession \
//!     --parameters {"portNumber":["8080"],"localPortNumber":["8080"]}
//! ```
//!
//! The target form is the one the AWS CLI builds for `aws ecs execute-command`
//! (aws-cli `awscli/customizations/ecs/executecommand.py`,
//! `build_ssm_request_paramaters`: `ecs:{cluster}_{task_id}_{container_runtime_id}`),
//! the document and its JSON parameters are Session Manager's ("Start a session",
//! port forwarding, in the Systems Manager User Guide). The AWS CLI hands the session
//! to Session Manager's plugin, which must be installed. The admin password is never
//! printed: the command says which secret holds it.
//!
//! `--flower` does the same for Flower's 5555, in every access mode: Flower is never
//! behind the balancer, and its service runs with ECS Exec whenever it runs, so the
//! session (an IAM-authorized, logged `ssm:StartSession`) is its login.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::anyhow;
use serde_json::Value;

use super::{Failure, StackFile};
use crate::aws::services::{self, StackResource};
use crate::aws::{describe, Aws, AwsOptions};
use crate::spec::{AccessMode, TUNNEL_LOCAL_PORT};
use crate::stack::Component;
use crate::{spec, stack};

/// The managed agent that ECS Exec and Session Manager sessions go through.
const EXEC_AGENT: &str = "ExecuteCommandAgent";
/// The port the api-server listens on in its task.
const API_PORT: u16 = 8080;
/// The port Flower listens on in its task.
const FLOWER_PORT: u16 = 5555;
/// Logical id of the admin password's secret (stack/keys.rs).
const ADMIN_SECRET: &str = "AdminPasswordSecret";
/// Where Session Manager's plugin comes from.
const PLUGIN_INSTALL: &str = "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html";
/// Where the AWS CLI comes from.
const CLI_INSTALL: &str =
    "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html";

/// Arguments of `ui`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackFile,
    #[command(flatten)]
    aws: AwsOptions,
    /// The local port to forward. Default: 8080 (Airflow's own links, in alerts and log
    /// URLs, name http://localhost:8080/, the tunnel's base URL), 5555 with --flower.
    #[arg(long)]
    local_port: Option<u16>,
    /// Forward to Flower (its port 5555) instead of the api-server. Works in every
    /// access mode: Flower is never behind the balancer, and its service always runs
    /// with ECS Exec.
    #[arg(long)]
    flower: bool,
    /// Print the session command instead of running it (no Session Manager plugin
    /// needed).
    #[arg(long)]
    print_command: bool,
}

/// Where the session goes: the api-server's 8080 or Flower's 5555.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The Airflow UI and REST API.
    ApiServer,
    /// Flower.
    Flower,
}

impl Destination {
    /// The container the session forwards to.
    pub fn component(self) -> Component {
        match self {
            Destination::ApiServer => Component::ApiServer,
            Destination::Flower => Component::Flower,
        }
    }

    /// The port it listens on in its task.
    pub fn port(self) -> u16 {
        match self {
            Destination::ApiServer => API_PORT,
            Destination::Flower => FLOWER_PORT,
        }
    }

    /// The local port when none is given: the one the UI's own links name.
    pub fn default_local_port(self) -> u16 {
        match self {
            Destination::ApiServer => TUNNEL_LOCAL_PORT,
            Destination::Flower => FLOWER_PORT,
        }
    }

    /// Its name in messages.
    pub fn what(self) -> &'static str {
        self.component().name()
    }
}

/// What `ui` needs to know of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// The task's ARN.
    pub arn: String,
    /// ECS's `lastStatus`.
    pub last_status: String,
    /// Started with ECS Exec.
    pub exec_enabled: bool,
    /// The api-server container's runtime id, once it runs.
    pub runtime_id: Option<String>,
    /// The `lastStatus` of the api-server container's ECS Exec agent, if it has one.
    pub agent_status: Option<String>,
}

impl TaskView {
    /// The task id: the last part of its ARN.
    pub fn id(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or(&self.arn)
    }
}

/// The first task a session can go to, or why none can: no task running, ECS Exec
/// off, its agent not running yet.
pub fn pick_task<'a>(
    tasks: &'a [TaskView],
    to: Destination,
    service: &str,
    file: &Path,
) -> Result<&'a TaskView, String> {
    let what = to.what();
    let running: Vec<&TaskView> = tasks
        .iter()
        .filter(|t| t.last_status == "RUNNING")
        .collect();
    let Some(first) = running.first() else {
        return Err(format!(
            "no {what} task is running in service {service}: the stack may be paused (airflow-stack resume {}) or still starting (aws ecs describe-services shows its events)",
            file.display()
        ));
    };
    if let Some(ready) = running.iter().find(|t| {
        t.exec_enabled && t.runtime_id.is_some() && t.agent_status.as_deref() == Some("RUNNING")
    }) {
        return Ok(ready);
    }
    if !first.exec_enabled {
        return Err(format!(
            "{what} task {} was started without ECS Exec: deploy {} with this version of airflow-stack (the api-server gets ECS Exec with access.mode tunnel, Flower always); the service's new tasks then have it",
            first.id(),
            file.display()
        ));
    }
    Err(format!(
        "the ECS Exec agent of {what} task {} is {}, not RUNNING: wait a minute and try again; if it stays so, the task role lacks the ssmmessages permissions or the task cannot reach Session Manager's endpoints",
        first.id(),
        first.agent_status.as_deref().unwrap_or("missing")
    ))
}

/// Session Manager's target for a container of a task: `ecs:<cluster>_<task id>_<runtime id>`.
pub fn target(cluster: &str, task: &TaskView) -> String {
    let cluster = cluster.rsplit('/').next().unwrap_or(cluster);
    format!(
        "ecs:{cluster}_{}_{}",
        task.id(),
        task.runtime_id.as_deref().unwrap_or_default()
    )
}

/// The AWS CLI command that forwards `local_port` to `remote_port` of the task.
pub fn session_command(
    target: &str,
    remote_port: u16,
    local_port: u16,
    region: &str,
    profile: Option<&str>,
) -> Vec<String> {
    let parameters = serde_json::json!({
        "portNumber": [remote_port.to_string()],
        "localPortNumber": [local_port.to_string()],
    });
    let mut command: Vec<String> = [
        "aws",
        "ssm",
        "start-session",
        "--target",
        target,
        "--document-name",
        "AWS-StartPortForwardingSession",
        "--parameters",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    command.push(parameters.to_string());
    command.extend(["--region".to_string(), region.to_string()]);
    if let Some(profile) = profile {
        command.extend(["--profile".to_string(), profile.to_string()]);
    }
    command
}

/// A command as one line a shell reads back the same way.
pub fn shell_line(command: &[String]) -> String {
    command
        .iter()
        .map(|word| {
            let plain = word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,".contains(c));
            if plain && !word.is_empty() {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An executable on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The AWS CLI and Session Manager's plugin, or how to install the missing one.
fn require_tools() -> Result<(), Failure> {
    if on_path("aws").is_none() {
        return Err(Failure::Failed(anyhow!(
            "the AWS CLI (aws) is not on PATH; `ui` runs `aws ssm start-session`. Install AWS CLI v2: {CLI_INSTALL}"
        )));
    }
    if on_path("session-manager-plugin").is_none() {
        return Err(Failure::Failed(anyhow!(
            "Session Manager's plugin for the AWS CLI (session-manager-plugin) is not on PATH; the port forward needs it. Install it: {PLUGIN_INSTALL} (macOS: brew install --cask session-manager-plugin; Debian/Ubuntu: the session-manager-plugin.deb from that page, then sudo dpkg -i session-manager-plugin.deb), then run this command again"
        )));
    }
    Ok(())
}

/// Logical id of the service whose task runs `container`, from the template the stack
/// file renders to (`ApiServerService`, or `CoreService` when packed; `FlowerService`).
fn service_running(template: &Value, container: Component) -> Option<String> {
    let resources = template["Resources"].as_object()?;
    let runs_api = |definition: &Value| {
        definition["Properties"]["ContainerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["Name"] == container.name())
    };
    resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::ECS::Service")
        .find(|(_, r)| {
            r["Properties"]["TaskDefinition"]["Ref"]
                .as_str()
                .is_some_and(|id| runs_api(&resources[id]))
        })
        .map(|(id, _)| id.clone())
}

fn physical<'a>(
    resources: &'a [StackResource],
    logical: &str,
    stack: &str,
) -> anyhow::Result<&'a str> {
    resources
        .iter()
        .find(|r| r.logical_id == logical && !r.physical_id.is_empty())
        .map(|r| r.physical_id.as_str())
        .ok_or_else(|| anyhow!("stack {stack} has no {logical}; deploy it with this version of airflow-stack first"))
}

/// The service's tasks as [`TaskView`]s (ListTasks, DescribeTasks).
async fn tasks_of(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    container: Component,
) -> anyhow::Result<Vec<TaskView>> {
    let listed = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
        .send()
        .await
        .map_err(|e| anyhow!("ListTasks of {service}: {}", describe(&e)))?;
    let arns = listed.task_arns();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let described = ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns.to_vec()))
        .send()
        .await
        .map_err(|e| anyhow!("DescribeTasks of {service}: {}", describe(&e)))?;
    let mut tasks: Vec<TaskView> = described
        .tasks()
        .iter()
        .map(|t| {
            let api = t
                .containers()
                .iter()
                .find(|c| c.name() == Some(container.name()));
            let agent = api.and_then(|c| {
                c.managed_agents()
                    .iter()
                    .find(|a| a.name().map(|n| n.as_str()) == Some(EXEC_AGENT))
            });
            TaskView {
                arn: t.task_arn().unwrap_or_default().to_owned(),
                last_status: t.last_status().unwrap_or_default().to_owned(),
                exec_enabled: t.enable_execute_command(),
                runtime_id: api.and_then(|c| c.runtime_id()).map(str::to_owned),
                agent_status: agent.and_then(|a| a.last_status()).map(str::to_owned),
            }
        })
        .collect();
    // The same task each time, whatever order ECS lists them in.
    tasks.sort_by(|a, b| a.arn.cmp(&b.arn));
    Ok(tasks)
}

/// Runs `ui`: checks the stack file's mode and the tools, finds the task, then starts
/// (or prints) the session.
pub fn run(args: Args) -> Result<(), Failure> {
    let file = args.stack.file.clone();
    let spec = spec::load(&file)?;
    let to = if args.flower {
        Destination::Flower
    } else {
        Destination::ApiServer
    };
    if to == Destination::Flower && !spec.services.flower.enabled {
        return Err(Failure::BadInput(format!(
            "{}: services.flower.enabled: this stack runs no Flower",
            file.display()
        )));
    }
    if to == Destination::ApiServer && spec.access.mode != AccessMode::Tunnel {
        return Err(Failure::BadInput(format!(
            "{}: access.mode: `ui` opens the tunnel of access.mode tunnel; this stack is {} and served at {}",
            file.display(),
            spec.access.mode.as_str(),
            spec.access.base_url(&spec.network.namespace)
        )));
    }
    if !args.print_command {
        require_tools()?;
    }
    let template = stack::build(&spec)
        .map_err(|e| Failure::BadInput(format!("{}: {e}", file.display())))?
        .to_value();
    let service_id = service_running(&template, to.component()).ok_or_else(|| {
        Failure::Failed(anyhow!(
            "the template of {} runs no {}",
            file.display(),
            to.what()
        ))
    })?;
    let local_port = args.local_port.unwrap_or(to.default_local_port());
    let command = crate::aws::runtime().block_on(async {
        let aws = Aws::connect(&args.aws, &spec.region).await;
        let resources = services::stack_resources(&aws.cloudformation(), &spec.name).await?;
        let cluster = resources
            .iter()
            .find(|r| r.resource_type == "AWS::ECS::Cluster")
            .map(|r| r.physical_id.clone())
            .ok_or_else(|| anyhow!("stack {} has no ECS cluster", spec.name))?;
        // ListTasks filters by the service's name; the physical id is its ARN
        // (`arn:…:service/<cluster>/<name>`).
        let service = physical(&resources, &service_id, &spec.name)?;
        let service = service.rsplit('/').next().unwrap_or(service).to_owned();
        let secret = physical(&resources, ADMIN_SECRET, &spec.name)?.to_owned();
        let tasks = tasks_of(&aws.ecs(), &cluster, &service, to.component()).await?;
        let task = pick_task(&tasks, to, &service, &file)
            .map_err(|e| anyhow!(e))?
            .clone();
        let command = session_command(
            &target(&cluster, &task),
            to.port(),
            local_port,
            &aws.region(),
            args.aws.profile.as_deref(),
        );
        if !args.print_command {
            match to {
                Destination::ApiServer => explain(&task, &secret, &aws.region(), local_port),
                Destination::Flower => explain_flower(&task, local_port),
            }
        }
        Ok::<_, anyhow::Error>(command)
    })?;
    if args.print_command {
        println!("{}", shell_line(&command));
        return Ok(());
    }
    start_session(&command)
}

/// What the person gets: the URL and where the admin password is (never the password).
fn explain(task: &TaskView, secret: &str, region: &str, local_port: u16) {
    println!(
        "Forwarding http://localhost:{local_port}/ to the api-server of task {} (Ctrl-C ends the session).",
        task.id()
    );
    println!("Log in as admin. The password is in Secrets Manager; to read it:");
    println!(
        "  aws secretsmanager get-secret-value --region {region} --secret-id {secret} --query SecretString --output text"
    );
    if local_port != TUNNEL_LOCAL_PORT {
        println!(
            "Airflow's own links (alerts, log URLs) name http://localhost:{TUNNEL_LOCAL_PORT}/, its base URL with the tunnel."
        );
    }
}

/// What the person gets with --flower: the URL, and that the session is the login.
fn explain_flower(task: &TaskView, local_port: u16) {
    println!(
        "Forwarding http://localhost:{local_port}/ to Flower of task {} (Ctrl-C ends the session).",
        task.id()
    );
    println!("Flower has no login of its own: the Session Manager session is the authentication (ssm:StartSession on the task), and it is logged.");
}

/// Runs the session in the foreground; its exit status is the command's.
fn start_session(command: &[String]) -> Result<(), Failure> {
    let status = Command::new(&command[0])
        .args(&command[1..])
        .status()
        .map_err(|e| Failure::Failed(anyhow!("cannot run {}: {e}", command[0])))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Failed(anyhow!(
            "aws ssm start-session ended with {status}; `aws` printed why above"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, status: &str, exec: bool, agent: Option<&str>) -> TaskView {
        TaskView {
            arn: format!("arn:aws:ecs:us-east-1:123456789012:task/c/{id}"),
            last_status: status.into(),
            exec_enabled: exec,
            runtime_id: agent.map(|_| format!("{id}-1234567890")),
            agent_status: agent.map(str::to_owned),
        }
    }

    #[test]
    fn the_target_names_cluster_task_and_container_runtime() {
        let t = task("abc", "RUNNING", true, Some("RUNNING"));
        assert_eq!(
            target("airflow-dev-Cluster-X", &t),
            "ecs:airflow-dev-Cluster-X_abc_abc-1234567890"
        );
        assert_eq!(
            target("arn:aws:ecs:us-east-1:123456789012:cluster/c1", &t),
            "ecs:c1_abc_abc-1234567890"
        );
    }

    #[test]
    fn the_session_command_forwards_the_api_port() {
        let c = session_command("ecs:c_t_r", 8080, 9000, "eu-west-1", Some("dev"));
        assert_eq!(
            shell_line(&c),
            r#"aws ssm start-session --target ecs:c_t_r --document-name AWS-StartPortForwardingSession --parameters '{"portNumber":["8080"],"localPortNumber":["9000"]}' --region eu-west-1 --profile dev"#
        );
    }

    #[test]
    fn flower_is_forwarded_to_its_own_port() {
        let to = Destination::Flower;
        let c = session_command(
            "ecs:c_t_r",
            to.port(),
            to.default_local_port(),
            "eu-west-1",
            None,
        );
        assert!(shell_line(&c).contains(r#"'{"portNumber":["5555"],"localPortNumber":["5555"]}'"#));
        let err = pick_task(&[], to, "svc", Path::new("s.yaml")).unwrap_err();
        assert!(err.starts_with("no flower task is running"), "{err}");
    }

    #[test]
    fn a_task_is_picked_only_when_its_exec_agent_runs() {
        let api = Destination::ApiServer;
        let file = Path::new("stacks/dev.yaml");
        let err = pick_task(&[], api, "svc", file).unwrap_err();
        assert!(
            err.starts_with("no api-server task is running in service svc"),
            "{err}"
        );
        let err = pick_task(&[task("a", "PENDING", true, None)], api, "svc", file).unwrap_err();
        assert!(err.starts_with("no api-server task is running"), "{err}");
        let err = pick_task(&[task("a", "RUNNING", false, None)], api, "svc", file).unwrap_err();
        assert!(err.contains("was started without ECS Exec"), "{err}");
        let err = pick_task(
            &[task("a", "RUNNING", true, Some("PENDING"))],
            api,
            "svc",
            file,
        )
        .unwrap_err();
        assert!(err.contains("is PENDING, not RUNNING"), "{err}");
        let tasks = [
            task("a", "RUNNING", false, None),
            task("b", "RUNNING", true, Some("RUNNING")),
        ];
        assert_eq!(pick_task(&tasks, api, "svc", file).unwrap().id(), "b");
    }
}
