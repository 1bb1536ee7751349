//! One invocation: work out the next step, then answer CloudFormation or hand over.
//!
//! The decision runs in its own task, so a panic becomes a FAILED answer, and under a
//! timeout a little before the Lambda deadline, so even a stuck AWS call is answered.
//! Unlike cfn-custom-resource's `respond_guarded` (which always answers), a handler
//! here may also decline to answer and pass the wait on to a new invocation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cfn_custom_resource::guard::{instant_for, physical_id_for};
use cfn_custom_resource::{
    CustomResourceRequest, Envelope, OriginCheck, RequestType, ResponseDocument, ResponseSender,
    SendError, StackResources, MAX_RESPONSE_BYTES,
};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::continuation::{Continuation, Work};
use crate::ports::{LaunchResult, LogTail, SelfInvoker, TaskLaunch, TaskRunner, TaskState};
use crate::props::{self, log_stream_name, needs_migration, MigrationProps};
use crate::reason::with_log_tail;
use crate::token::request_token;
use crate::version::{version_move, VersionMove};

/// Timings and bounds; [`Settings::default`] is what the Lambda uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Pause between two DescribeTasks calls.
    pub poll_interval: Duration,
    /// Hand over to a new invocation once less than this is left before the deadline:
    /// enough for one last DescribeTasks and the Invoke call.
    pub handover_margin: Duration,
    /// Answer FAILED once less than this is left, whatever is still running: enough for
    /// the response PUT and its retries. Must be smaller than `handover_margin`.
    pub answer_margin: Duration,
    /// Give up after this many hand-overs: a guard against a loop if the overall limit
    /// could somehow never be reached. Kept below 16, where Lambda's recursive loop
    /// detection may stop a self-invoking chain, so this message is what people see.
    pub max_hops: u32,
    /// Log lines fetched for a FAILED reason (fewer are kept if they do not fit).
    pub log_tail_lines: i32,
    /// Consecutive DescribeTasks errors (or MISSING answers) tolerated before failing;
    /// a freshly started task can briefly be MISSING (ECS is eventually consistent).
    pub max_describe_errors: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(15),
            handover_margin: Duration::from_secs(60),
            answer_margin: Duration::from_secs(10),
            max_hops: 12,
            log_tail_lines: 50,
            max_describe_errors: 8,
        }
    }
}

/// Facts about the running invocation, from the Lambda context.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// When Lambda kills this invocation.
    pub deadline: SystemTime,
    /// This function's ARN, for the self-invocation.
    pub function_arn: String,
}

/// The AWS capabilities, shared with the decision task.
#[derive(Clone)]
pub struct Ports {
    /// ECS RunTask and DescribeTasks.
    pub ecs: Arc<dyn TaskRunner>,
    /// Lambda Invoke of this function.
    pub lambda: Arc<dyn SelfInvoker>,
    /// CloudWatch Logs GetLogEvents.
    pub logs: Arc<dyn LogTail>,
    /// CloudFormation DescribeStackResource, to confirm a request before acting on it.
    pub stacks: Arc<dyn StackResources>,
}

/// Why an invocation ends as a Lambda error. Lambda then retries the asynchronous
/// invocation, which is safe: the task is started with an idempotency token, and a
/// continuation only watches.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The event has no ResponseURL.
    #[error("the event has no ResponseURL; CloudFormation cannot be answered")]
    NoResponseUrl,
    /// The PUT failed after bounded retries.
    #[error("the response could not be delivered: {0}")]
    NotDelivered(#[from] SendError),
}

/// What the decision came to.
#[derive(Debug)]
enum Step {
    Succeeded,
    Failed(String),
    HandOver(Continuation),
}

/// Handles one Lambda invocation (a CloudFormation event or a continuation) and
/// returns a small summary as the Lambda result. CloudFormation is answered exactly
/// once per wait: by this invocation, unless it handed the wait over.
pub async fn invoke(
    payload: Value,
    invocation: &Invocation,
    ports: &Ports,
    settings: &Settings,
    sender: &ResponseSender,
) -> Result<Value, InvokeError> {
    let work = Work::from_payload(payload);
    let responder = Responder::for_event(work.event());
    let Some(response_url) = responder.envelope.response_url.clone() else {
        tracing::error!("payload has no ResponseURL; CloudFormation cannot be answered");
        return Err(InvokeError::NoResponseUrl);
    };
    let hard_deadline = instant_for(invocation.deadline);
    let answer_by = hard_deadline
        .checked_sub(settings.answer_margin)
        .unwrap_or(hard_deadline);
    let job = Job {
        work,
        origin: OriginCheck::new(&invocation.function_arn, Arc::clone(&ports.stacks)),
        ports: ports.clone(),
        settings: settings.clone(),
        responder: responder.clone(),
        handover_at: hard_deadline
            .checked_sub(settings.handover_margin)
            .unwrap_or(hard_deadline),
    };
    let step = decide_guarded(job, answer_by).await;
    let step = match step {
        Step::HandOver(continuation) => {
            match hand_over(&continuation, invocation, ports, answer_by).await {
                Ok(()) => {
                    return Ok(json!({"HandedOver": true, "Hop": continuation.hop,
                                     "TaskArn": continuation.task_arn}))
                }
                Err(reason) => Step::Failed(reason),
            }
        }
        other => other,
    };
    let document = responder.document(&step);
    sender
        .send(&response_url, &document, hard_deadline)
        .await
        .map_err(|error| {
            tracing::error!(%error, "could not deliver the response to CloudFormation");
            InvokeError::NotDelivered(error)
        })?;
    Ok(json!({"Status": document.status, "PhysicalResourceId": document.physical_resource_id}))
}

/// Runs the decision in its own task until `answer_by`: a panic or a hang becomes a
/// FAILED step instead of a lost answer.
async fn decide_guarded(job: Job, answer_by: Instant) -> Step {
    let mut task = tokio::spawn(job.run());
    match tokio::time::timeout_at(answer_by, &mut task).await {
        Ok(Ok(step)) => step,
        Ok(Err(join_error)) => {
            tracing::error!(panicked = join_error.is_panic(), "decision task died");
            Step::Failed("internal error in the migration custom resource".into())
        }
        Err(_elapsed) => {
            task.abort();
            tracing::error!("decision still running near the Lambda deadline");
            Step::Failed(
                "the migration custom resource ran out of time before the Lambda deadline".into(),
            )
        }
    }
}

/// Starts the next invocation with the wait's state. On error the caller answers
/// FAILED: nobody else would.
async fn hand_over(
    continuation: &Continuation,
    invocation: &Invocation,
    ports: &Ports,
    answer_by: Instant,
) -> Result<(), String> {
    let call = ports
        .lambda
        .invoke_async(&invocation.function_arn, continuation.to_payload());
    let outcome = match tokio::time::timeout_at(answer_by, call).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_elapsed) => Err("the Invoke call timed out".to_owned()),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(hop = continuation.hop, task_arn = %continuation.task_arn,
                           "handed the wait over to a new invocation");
            Ok(())
        }
        Err(error) => {
            tracing::error!(%error, "could not hand the wait over");
            Err(format!(
                "could not hand the wait over to a new invocation ({error}); the migration task {} \
                 may still be running",
                continuation.task_arn
            ))
        }
    }
}

/// Builds the answer for one request: the ids it must carry, and the size check.
#[derive(Debug, Clone)]
struct Responder {
    envelope: Envelope,
    physical_id: String,
}

impl Responder {
    fn for_event(event: &Value) -> Self {
        let envelope = Envelope::from_event(event);
        let physical_id = physical_id_for(&envelope);
        Self {
            envelope,
            physical_id,
        }
    }

    fn document(&self, step: &Step) -> ResponseDocument {
        match step {
            Step::Failed(reason) => {
                ResponseDocument::failed(&self.envelope, self.physical_id.clone(), reason)
            }
            // A hand-over that reaches here has already been turned into Failed.
            Step::Succeeded | Step::HandOver(_) => {
                ResponseDocument::success(&self.envelope, self.physical_id.clone(), BTreeMap::new())
            }
        }
    }

    /// Whether a FAILED answer with this reason serialises within the 4,096 bytes.
    fn fits(&self, reason: &str) -> bool {
        let document = ResponseDocument::failed(&self.envelope, self.physical_id.clone(), reason);
        serde_json::to_vec(&document).is_ok_and(|body| body.len() <= MAX_RESPONSE_BYTES)
    }
}

/// Everything the decision task owns.
struct Job {
    work: Work,
    origin: OriginCheck,
    ports: Ports,
    settings: Settings,
    responder: Responder,
    handover_at: Instant,
}

impl Job {
    async fn run(self) -> Step {
        if let Work::BrokenContinuation { error, .. } = &self.work {
            return Step::Failed(format!("unreadable continuation payload: {error}"));
        }
        let request = match CustomResourceRequest::from_event(self.work.event()) {
            Ok(request) => request,
            Err(error) => return Step::Failed(error.to_string()),
        };
        tracing::info!(request_type = ?request.request_type, request_id = %request.request_id,
                       logical_resource_id = %request.logical_resource_id, "custom-resource request");
        // Every hop is confirmed, not only the first: a continuation payload can be
        // forged like any event, and CloudFormation keeps the resource in progress until
        // the last hop answers. Delete passes unasked.
        if let Err(refusal) = self.origin.confirm(&request).await {
            tracing::error!(%refusal, "request not confirmed by CloudFormation");
            return Step::Failed(refusal.to_string());
        }
        match &self.work {
            Work::Continue(continuation) => self.resume(&request, continuation).await,
            _ => self.start(&request).await,
        }
    }

    /// First invocation: decide whether a migration is due, start it, and wait.
    async fn start(&self, request: &CustomResourceRequest) -> Step {
        match request.request_type {
            RequestType::Delete => {
                // Nothing to undo: a schema migration is not reversed by deleting the stack.
                tracing::info!("delete: nothing to do");
                return Step::Succeeded;
            }
            RequestType::Update => {
                if let Some(step) = skip_update(request) {
                    return step;
                }
            }
            RequestType::Create => {}
        }
        let props = match props::parse(&request.resource_properties) {
            Ok(props) => props,
            Err(error) => return Step::Failed(error.to_string()),
        };
        let launch = TaskLaunch {
            cluster: props.cluster.clone(),
            task_definition: props.task_definition.clone(),
            subnets: props.subnets.clone(),
            security_groups: props.security_groups.clone(),
            assign_public_ip: props.assign_public_ip,
            token: request_token(&request.stack_id, &request.request_id),
        };
        let task_arn = match self.ports.ecs.run_task(&launch).await {
            Ok(LaunchResult::Started { task_arn }) => task_arn,
            Ok(LaunchResult::Refused { reasons }) => {
                return Step::Failed(format!(
                    "ECS refused to start the migration task: {}",
                    reasons.join("; ")
                ))
            }
            Err(error) => {
                return Step::Failed(format!("could not start the migration task: {error}"))
            }
        };
        tracing::info!(%task_arn, started_by = %launch.token, "migration task started");
        self.wait(&props, task_arn, now_epoch_millis(), 0).await
    }

    /// Later invocation: keep waiting for the task the first one started.
    async fn resume(&self, request: &CustomResourceRequest, continuation: &Continuation) -> Step {
        if continuation.hop > self.settings.max_hops {
            return Step::Failed(format!(
                "gave up after {} hand-overs waiting for the migration task {}",
                self.settings.max_hops, continuation.task_arn
            ));
        }
        let props = match props::parse(&request.resource_properties) {
            Ok(props) => props,
            Err(error) => return Step::Failed(error.to_string()),
        };
        tracing::info!(hop = continuation.hop, task_arn = %continuation.task_arn, "resuming the wait");
        self.wait(
            &props,
            continuation.task_arn.clone(),
            continuation.started_at_epoch_millis,
            continuation.hop,
        )
        .await
    }

    /// Polls the task until it stops, the overall limit passes, or this invocation's
    /// time is nearly up (then hands over).
    async fn wait(
        &self,
        props: &MigrationProps,
        task_arn: String,
        started_at_epoch_millis: u64,
        hop: u32,
    ) -> Step {
        let limit_millis = u64::from(props.max_wait_seconds).saturating_mul(1000);
        let mut errors_in_a_row = 0;
        loop {
            match self
                .ports
                .ecs
                .describe_task(&props.cluster, &task_arn)
                .await
            {
                Ok(Some(state)) if state.is_stopped() => return self.judge(props, &state).await,
                Ok(Some(_running)) => errors_in_a_row = 0,
                Ok(None) => {
                    errors_in_a_row += 1;
                    tracing::warn!(%task_arn, "ECS reports the task as MISSING");
                    if errors_in_a_row >= self.settings.max_describe_errors {
                        return Step::Failed(format!(
                            "ECS does not know the migration task {task_arn}"
                        ));
                    }
                }
                Err(error) => {
                    errors_in_a_row += 1;
                    tracing::warn!(%error, "DescribeTasks failed");
                    if errors_in_a_row >= self.settings.max_describe_errors {
                        return Step::Failed(format!(
                            "could not follow the migration task {task_arn}: {error}"
                        ));
                    }
                }
            }
            if now_epoch_millis().saturating_sub(started_at_epoch_millis) >= limit_millis {
                return self.limit_exceeded(props, &task_arn).await;
            }
            if Instant::now() + self.settings.poll_interval >= self.handover_at {
                return Step::HandOver(Continuation {
                    event: self.work.event().clone(),
                    task_arn,
                    started_at_epoch_millis,
                    hop: hop + 1,
                });
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// A stopped task succeeded only if the migration container exited with 0.
    async fn judge(&self, props: &MigrationProps, state: &TaskState) -> Step {
        let container = state
            .containers
            .iter()
            .find(|c| c.name == props.container_name);
        let exit_code = container.and_then(|c| c.exit_code);
        if exit_code == Some(0) {
            tracing::info!(task_arn = %state.task_arn, "migration succeeded");
            return Step::Succeeded;
        }
        tracing::error!(task_arn = %state.task_arn, ?exit_code, "migration failed");
        let mut parts = vec![match exit_code {
            Some(code) => format!(
                "database migration failed: container {} exited with code {code}",
                props.container_name
            ),
            None => format!(
                "database migration failed: container {} has no exit code (it never ran or was killed)",
                props.container_name
            ),
        }];
        if let Some(reason) = &state.stopped_reason {
            parts.push(format!("task stopped: {reason}"));
        }
        if let Some(reason) = container.and_then(|c| c.reason.as_ref()) {
            parts.push(format!("container: {reason}"));
        }
        Step::Failed(
            self.with_log(props, &state.task_arn, parts.join("; "))
                .await,
        )
    }

    /// The overall limit passed: report it and leave the task alone (stopping a
    /// migration half-way is worse than letting it finish).
    async fn limit_exceeded(&self, props: &MigrationProps, task_arn: &str) -> Step {
        tracing::error!(%task_arn, "overall limit exceeded");
        let headline = format!(
            "the migration task {task_arn} did not finish within {}={}; it was left running \
             (nothing was stopped)",
            airflow_stack_contract::migration::property::MAX_WAIT_SECONDS,
            props.max_wait_seconds
        );
        Step::Failed(self.with_log(props, task_arn, headline).await)
    }

    /// Appends where the task's log is and as much of its end as fits the response.
    async fn with_log(&self, props: &MigrationProps, task_arn: &str, headline: String) -> String {
        let stream = log_stream_name(props, task_arn);
        let headline = format!(
            "{headline}; log group {} stream {stream}, last lines:",
            props.log_group_name
        );
        let lines = match self
            .ports
            .logs
            .last_lines(&props.log_group_name, &stream, self.settings.log_tail_lines)
            .await
        {
            Ok(lines) => lines,
            Err(error) => vec![format!("(the log could not be read: {error})")],
        };
        with_log_tail(&headline, &lines, |reason| self.responder.fits(reason))
    }
}

/// An Update that runs no task: the answer for it, or `None` when it must migrate.
fn skip_update(request: &CustomResourceRequest) -> Option<Step> {
    let old = request.old_resource_properties.as_ref();
    let new = &request.resource_properties;
    match version_move(old, new) {
        VersionMove::Invalid(reason) => return Some(Step::Failed(reason)),
        VersionMove::Down(from, to) => {
            // The rollback of a failed upgrade (see crate::version for why not migrate).
            tracing::info!(
                old_version = %from,
                new_version = %to,
                "Airflow version goes down: no migration. An older `airflow db migrate` \
                 fails on a newer schema (Alembic cannot locate its revision), which would \
                 fail a rollback; lowering the schema is `airflow db downgrade`, an operator's \
                 decision"
            );
            return Some(Step::Succeeded);
        }
        VersionMove::OldUnknown(from) => tracing::warn!(
            old_version = %from,
            "the old Airflow version is not a release version and cannot be ordered; migrating"
        ),
        VersionMove::Up | VersionMove::Unchanged => {}
    }
    if needs_migration(old, new) {
        return None;
    }
    tracing::info!("update without image, version, database or task change: no migration");
    Some(Step::Succeeded)
}

fn now_epoch_millis() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}
