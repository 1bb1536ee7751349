//! One invocation: work out the next step, then answer CloudFormation or hand over.
//!
//! The decision runs in its own task, so a panic becomes a FAILED answer, and under a
//! timeout a little before the Lambda deadline, so even a stuck AWS call is answered.
//! Unlike cfn-custom-resource's `respond_guarded` (which always answers), a handler
//! here may also decline to answer and pass the wait on to a new invocation. The shape
//! is the migration Lambda's (lambdas/migration), with a CodeBuild build in place of an
//! ECS task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airflow_stack_contract::image_build::{ImageBuildProperties, IMAGE_URI_ATTRIBUTE};
use cfn_custom_resource::guard::{instant_for, physical_id_for};
use cfn_custom_resource::log_tail::with_log_tail;
use cfn_custom_resource::{
    CustomResourceRequest, Envelope, OriginCheck, RequestType, ResponseDocument, ResponseSender,
    SendError, StackResources, MAX_RESPONSE_BYTES,
};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::continuation::{Continuation, Work};
use crate::ports::{
    BuildLaunch, BuildState, BuildStatus, Builds, ImageLookup, LogTail, Registry, SelfInvoker,
};
use crate::settings::Settings;
use crate::token::request_token;

/// The properties as the Lambda reads them.
pub type ImageBuildProps = ImageBuildProperties<String>;

/// Facts about the running invocation, from the Lambda context.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// When Lambda kills this invocation.
    pub deadline: SystemTime,
    /// This function's ARN, for the self-invocation and the origin check.
    pub function_arn: String,
}

/// The AWS capabilities, shared with the decision task.
#[derive(Clone)]
pub struct Ports {
    /// ECR DescribeImages and DescribeRepositories.
    pub registry: Arc<dyn Registry>,
    /// CodeBuild StartBuild and BatchGetBuilds.
    pub builds: Arc<dyn Builds>,
    /// Lambda Invoke of this function.
    pub lambda: Arc<dyn SelfInvoker>,
    /// CloudWatch Logs GetLogEvents.
    pub logs: Arc<dyn LogTail>,
    /// CloudFormation DescribeStackResource, to confirm a request before acting on it.
    pub stacks: Arc<dyn StackResources>,
}

/// Why an invocation ends as a Lambda error. Lambda then retries the asynchronous
/// invocation, which is safe: StartBuild carries an idempotency token, an image that
/// exists is not built again, and a continuation only watches.
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
    /// SUCCESS; with the image reference on Create and Update, without on Delete.
    Succeeded(Option<String>),
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
    let step = match decide_guarded(job, answer_by).await {
        Step::HandOver(continuation) => {
            match hand_over(&continuation, invocation, ports, answer_by).await {
                Ok(()) => {
                    return Ok(json!({"HandedOver": true, "Hop": continuation.hop,
                                     "BuildId": continuation.build_id}))
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
    tracing::info!(status = ?document.status, physical_resource_id = %document.physical_resource_id,
                   "answered CloudFormation");
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
            Step::Failed("internal error in the image-build custom resource".into())
        }
        Err(_elapsed) => {
            task.abort();
            tracing::error!("decision still running near the Lambda deadline");
            Step::Failed(
                "the image-build custom resource ran out of time before the Lambda deadline".into(),
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
            tracing::info!(hop = continuation.hop, build_id = %continuation.build_id,
                           "handed the wait over to a new invocation");
            Ok(())
        }
        Err(error) => {
            tracing::error!(%error, "could not hand the wait over");
            Err(format!(
                "could not hand the wait over to a new invocation ({error}); the image build {} \
                 may still be running",
                continuation.build_id
            ))
        }
    }
}

/// Builds the answer for one request: the ids it must carry, and the size check.
#[derive(Debug, Clone)]
struct Responder {
    envelope: Envelope,
    /// The id of a FAILED answer and of a Delete's: the stable id on Create, the
    /// request's own on Update and Delete.
    fallback_id: String,
}

impl Responder {
    fn for_event(event: &Value) -> Self {
        let envelope = Envelope::from_event(event);
        let fallback_id = physical_id_for(&envelope);
        Self {
            envelope,
            fallback_id,
        }
    }

    fn document(&self, step: &Step) -> ResponseDocument {
        match step {
            Step::Failed(reason) => {
                ResponseDocument::failed(&self.envelope, self.fallback_id.clone(), reason)
            }
            // The image reference is the physical id: a new tag is a new image, so an
            // Update that builds one "replaces" the resource, and the Delete of the old
            // reference that follows does nothing (images are derived; the repository
            // belongs to CloudFormation).
            Step::Succeeded(Some(image_uri)) => ResponseDocument::success(
                &self.envelope,
                image_uri.clone(),
                BTreeMap::from([(IMAGE_URI_ATTRIBUTE.to_owned(), image_uri.clone())]),
            ),
            // A hand-over that reaches here has already been turned into Failed.
            Step::Succeeded(None) | Step::HandOver(_) => {
                ResponseDocument::success(&self.envelope, self.fallback_id.clone(), BTreeMap::new())
            }
        }
    }

    /// Whether a FAILED answer with this reason serialises within the 4,096 bytes.
    fn fits(&self, reason: &str) -> bool {
        let document = ResponseDocument::failed(&self.envelope, self.fallback_id.clone(), reason);
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
        // forged like any event. Delete passes unasked.
        if let Err(refusal) = self.origin.confirm(&request).await {
            tracing::error!(%refusal, "request not confirmed by CloudFormation");
            return Step::Failed(refusal.to_string());
        }
        if request.request_type == RequestType::Delete {
            // Images are derived from the stack's inputs and the repository is a
            // resource of the stack: nothing of this resource's own to delete.
            tracing::info!("delete: nothing to do");
            return Step::Succeeded(None);
        }
        let props = match ImageBuildProps::read(&request.resource_properties.0) {
            Ok(props) => props,
            Err(error) => return Step::Failed(error.to_string()),
        };
        match &self.work {
            Work::Continue(continuation) => self.resume(&props, continuation).await,
            _ => self.start(&request, &props).await,
        }
    }

    /// First invocation: answer at once if ECR has the tag, else start the build and wait.
    async fn start(&self, request: &CustomResourceRequest, props: &ImageBuildProps) -> Step {
        let image = format!("{}:{}", props.repository_name, props.image_tag);
        match self
            .ports
            .registry
            .find_image(&props.repository_name, &props.image_tag)
            .await
        {
            Ok(ImageLookup::Present) => {
                tracing::info!(%image, "ECR already holds the image: no build");
                return self.image_uri(props).await;
            }
            Ok(ImageLookup::Absent) => {}
            Err(error) => {
                return Step::Failed(format!(
                    "could not look up the image {image} in ECR: {error}"
                ))
            }
        }
        let launch = BuildLaunch {
            project_name: props.project_name.clone(),
            source_location: props.source_location.clone(),
            image_tag: props.image_tag.clone(),
            idempotency_token: request_token(&request.stack_id, &request.request_id),
        };
        let build_id = match self.ports.builds.start_build(&launch).await {
            Ok(build_id) => build_id,
            Err(error) => {
                return Step::Failed(format!(
                    "could not start the image build (CodeBuild project {}): {error}",
                    props.project_name
                ))
            }
        };
        tracing::info!(%build_id, %image, "image build started");
        self.wait(props, build_id, now_epoch_millis(), 0).await
    }

    /// Later invocation: keep waiting for the build the first one started.
    async fn resume(&self, props: &ImageBuildProps, continuation: &Continuation) -> Step {
        if continuation.hop > self.settings.max_hops {
            return Step::Failed(format!(
                "gave up after {} hand-overs waiting for the image build {}",
                self.settings.max_hops, continuation.build_id
            ));
        }
        tracing::info!(hop = continuation.hop, build_id = %continuation.build_id, "resuming the wait");
        self.wait(
            props,
            continuation.build_id.clone(),
            continuation.started_at_epoch_millis,
            continuation.hop,
        )
        .await
    }

    /// Polls the build until it ends, the overall limit passes, or this invocation's
    /// time is nearly up (then hands over).
    async fn wait(
        &self,
        props: &ImageBuildProps,
        build_id: String,
        started_at_epoch_millis: u64,
        hop: u32,
    ) -> Step {
        let limit_millis = u64::try_from(self.settings.max_wait.as_millis()).unwrap_or(u64::MAX);
        let mut errors_in_a_row = 0;
        let mut last_seen: Option<BuildState> = None;
        loop {
            match self.ports.builds.get_build(&build_id).await {
                Ok(Some(build)) => {
                    errors_in_a_row = 0;
                    match &build.status {
                        BuildStatus::InProgress => last_seen = Some(build),
                        BuildStatus::Succeeded => return self.succeeded(props, &build).await,
                        BuildStatus::Ended(_) => return self.failed(&build).await,
                    }
                }
                Ok(None) => {
                    errors_in_a_row += 1;
                    tracing::warn!(%build_id, "CodeBuild reports the build as not found");
                    if errors_in_a_row >= self.settings.max_describe_errors {
                        return Step::Failed(format!(
                            "CodeBuild does not know the build {build_id}"
                        ));
                    }
                }
                Err(error) => {
                    errors_in_a_row += 1;
                    tracing::warn!(%error, "BatchGetBuilds failed");
                    if errors_in_a_row >= self.settings.max_describe_errors {
                        return Step::Failed(format!(
                            "could not follow the image build {build_id}: {error}"
                        ));
                    }
                }
            }
            if now_epoch_millis().saturating_sub(started_at_epoch_millis) >= limit_millis {
                return self.limit_exceeded(&build_id, last_seen.as_ref()).await;
            }
            if Instant::now() + self.settings.poll_interval >= self.handover_at {
                return Step::HandOver(Continuation {
                    event: self.work.event().clone(),
                    build_id,
                    started_at_epoch_millis,
                    hop: hop + 1,
                });
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// A build that SUCCEEDED must have pushed the tag; the answer is its reference.
    async fn succeeded(&self, props: &ImageBuildProps, build: &BuildState) -> Step {
        let image = format!("{}:{}", props.repository_name, props.image_tag);
        match self
            .ports
            .registry
            .find_image(&props.repository_name, &props.image_tag)
            .await
        {
            Ok(ImageLookup::Present) => {
                tracing::info!(build_id = %build.id, %image, "image build succeeded");
                self.image_uri(props).await
            }
            Ok(ImageLookup::Absent) => {
                tracing::error!(build_id = %build.id, %image, "build succeeded, image missing");
                let headline = format!(
                    "image build {} SUCCEEDED but ECR holds no image {image}: the buildspec must \
                     push the tag in ${}",
                    build.id,
                    airflow_stack_contract::image_build::IMAGE_TAG_VARIABLE
                );
                Step::Failed(self.with_log(build, headline).await)
            }
            Err(error) => Step::Failed(format!(
                "image build {} SUCCEEDED but the image {image} could not be looked up in ECR: \
                 {error}",
                build.id
            )),
        }
    }

    /// `<repositoryUri>:<tag>`, the answer of a Create or Update that has its image.
    async fn image_uri(&self, props: &ImageBuildProps) -> Step {
        match self
            .ports
            .registry
            .repository_uri(&props.repository_name)
            .await
        {
            Ok(uri) => Step::Succeeded(Some(format!("{uri}:{}", props.image_tag))),
            Err(error) => Step::Failed(format!(
                "could not read the URI of the ECR repository {}: {error}",
                props.repository_name
            )),
        }
    }

    /// A build that ended without success: its status, the phase that failed and why,
    /// and the end of its log.
    async fn failed(&self, build: &BuildState) -> Step {
        let status = match &build.status {
            BuildStatus::Ended(status) => status.as_str(),
            BuildStatus::InProgress => "IN_PROGRESS",
            BuildStatus::Succeeded => "SUCCEEDED",
        };
        tracing::error!(build_id = %build.id, status, "image build failed");
        let mut headline = format!("image build {} ended {status}", build.id);
        if let Some(phase) = build.failed_phase() {
            headline.push_str(&format!(
                " in phase {} ({})",
                phase.phase_type,
                phase.status.as_deref().unwrap_or("-")
            ));
            if !phase.contexts.is_empty() {
                headline.push_str(&format!(": {}", phase.contexts.join("; ")));
            }
        }
        Step::Failed(self.with_log(build, headline).await)
    }

    /// The overall limit passed: report it and leave the build alone (CodeBuild's own
    /// timeout, `BUILD_TIMEOUT_MINUTES` in the contract, ends it).
    async fn limit_exceeded(&self, build_id: &str, last_seen: Option<&BuildState>) -> Step {
        tracing::error!(%build_id, "overall limit exceeded");
        let headline = format!(
            "the image build {build_id} did not finish within {} seconds; it was left running \
             (CodeBuild's own timeout ends it)",
            self.settings.max_wait.as_secs()
        );
        match last_seen {
            Some(build) => Step::Failed(self.with_log(build, headline).await),
            None => Step::Failed(headline),
        }
    }

    /// Appends where the build's log is and as much of its end as fits the response.
    async fn with_log(&self, build: &BuildState, headline: String) -> String {
        let (Some(group), Some(stream)) = (&build.log_group, &build.log_stream) else {
            return format!(
                "{headline}; the build has no CloudWatch log (it ended before writing one)"
            );
        };
        let headline = format!("{headline}; log group {group} stream {stream}, last lines:");
        let lines = match self
            .ports
            .logs
            .last_lines(group, stream, self.settings.log_tail_lines)
            .await
        {
            Ok(lines) => lines,
            Err(error) => vec![format!("(the log could not be read: {error})")],
        };
        with_log_tail(&headline, &lines, |reason| self.responder.fits(reason))
    }
}

fn now_epoch_millis() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}
