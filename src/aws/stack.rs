//! CloudFormation stacks: describe, outputs, change sets, executing them with live
//! events, and deleting.
//!
//! An operation is followed by the stack's ID (`arn:aws:cloudformation:…:stack/<name>/<uuid>`),
//! never by its name: once a stack is deleted, DescribeStacks and DescribeStackEvents
//! answer only by ID ("Stack with id <name> does not exist" by name), so following a
//! deletion by name loses it between two polls. The ID comes from DescribeStacks (an
//! existing stack) or CreateChangeSet (a new one).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter, StackEvent, Tag};
use aws_sdk_cloudformation::Client;
use serde_json::Value;

use super::describe;
use crate::plan::Replacement;

/// What `describe_stacks` says of an existing stack.
#[derive(Debug, Clone)]
pub struct StackInfo {
    /// The stack ID, by which every later call about this stack is made.
    pub stack_id: String,
    /// `CREATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, ...
    pub status: String,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub termination_protection: bool,
}

/// Describes a stack by name or ID; `None` when it does not exist (or was deleted).
pub async fn describe_stack(cfn: &Client, name: &str) -> anyhow::Result<Option<StackInfo>> {
    let Some(stack) = describe_one(cfn, name).await? else {
        return Ok(None);
    };
    let status = stack
        .stack_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    if status == "DELETE_COMPLETE" {
        return Ok(None);
    }
    let outputs = stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect();
    let parameters = stack
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_string(),
                p.parameter_value()?.to_string(),
            ))
        })
        .collect();
    let tags = stack
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect();
    Ok(Some(StackInfo {
        stack_id: stack
            .stack_id()
            .ok_or_else(|| anyhow!("DescribeStacks answered for {name} without its StackId"))?
            .to_string(),
        status,
        outputs,
        parameters,
        tags,
        termination_protection: stack.enable_termination_protection().unwrap_or(false),
    }))
}

/// DescribeStacks for one stack; `None` when CloudFormation does not know it.
async fn describe_one(
    cfn: &Client,
    name_or_id: &str,
) -> anyhow::Result<Option<aws_sdk_cloudformation::types::Stack>> {
    match cfn.describe_stacks().stack_name(name_or_id).send().await {
        Ok(out) => Ok(out.stacks.unwrap_or_default().into_iter().next()),
        Err(e) => {
            let text = describe(&e);
            if text.contains("does not exist") {
                return Ok(None);
            }
            Err(anyhow!("cannot describe stack {name_or_id}: {text}"))
        }
    }
}

/// The status of the stack with this ID, `DELETE_COMPLETE` included (CloudFormation
/// keeps deleted stacks, by ID only). An unknown ID is an error: the ID came from
/// CloudFormation, so it cannot be a stack that never existed.
pub async fn stack_status(cfn: &Client, stack_id: &str) -> anyhow::Result<String> {
    let stack = describe_one(cfn, stack_id)
        .await?
        .ok_or_else(|| anyhow!("CloudFormation no longer knows stack {stack_id}"))?;
    Ok(stack
        .stack_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default())
}

/// The outputs of a stack, which must exist.
pub async fn outputs(cfn: &Client, name: &str) -> anyhow::Result<BTreeMap<String, String>> {
    describe_stack(cfn, name)
        .await?
        .map(|s| s.outputs)
        .ok_or_else(|| anyhow!("stack {name} does not exist; deploy it first"))
}

/// The template CloudFormation holds for a stack, as JSON.
pub async fn deployed_template(cfn: &Client, name: &str) -> anyhow::Result<Value> {
    let out = cfn
        .get_template()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| anyhow!("cannot read the template of {name}: {}", describe(&e)))?;
    let body = out.template_body().unwrap_or("{}");
    serde_json::from_str(body)
        .or_else(|_| serde_yaml_ng::from_str(body))
        .context("the deployed template is neither JSON nor YAML")
}

/// Where the template goes: inline, or an S3 URL for large ones.
#[derive(Debug, Clone)]
pub enum TemplateSource {
    Body(String),
    Url(String),
}

/// A change set to create.
pub struct ChangeSetRequest<'a> {
    pub stack: &'a str,
    pub template: TemplateSource,
    pub parameters: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
    pub exists: bool,
}

/// A created change set.
#[derive(Debug)]
pub struct ChangeSet {
    /// Its ARN.
    pub id: String,
    /// The ID of the stack it belongs to (for a new stack, the one it just created in
    /// REVIEW_IN_PROGRESS).
    pub stack_id: String,
    /// `None` when CloudFormation found nothing to change.
    pub replacements: Option<BTreeMap<String, Replacement>>,
}

/// A change-set name unique per stack and attempt (moto even confuses change sets of
/// different stacks with the same name).
pub fn change_set_name(stack: &str, now_millis: u128) -> String {
    format!("airflow-stack-{stack}-{now_millis}")
}

/// Creates a change set and waits until CloudFormation has computed it.
pub async fn create_change_set(
    cfn: &Client,
    req: ChangeSetRequest<'_>,
) -> anyhow::Result<ChangeSet> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut call = cfn
        .create_change_set()
        .stack_name(req.stack)
        .change_set_name(change_set_name(req.stack, millis))
        .change_set_type(if req.exists {
            ChangeSetType::Update
        } else {
            ChangeSetType::Create
        })
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .set_parameters(Some(
            req.parameters
                .iter()
                .map(|(k, v)| {
                    Parameter::builder()
                        .parameter_key(k)
                        .parameter_value(v)
                        .build()
                })
                .collect(),
        ))
        .set_tags(Some(
            req.tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ));
    call = match req.template {
        TemplateSource::Body(body) => call.template_body(body),
        TemplateSource::Url(url) => call.template_url(url),
    };
    let created = call.send().await.map_err(|e| {
        anyhow!(
            "cannot create a change set for {}: {}",
            req.stack,
            describe(&e)
        )
    })?;
    let id = created.id().unwrap_or_default().to_string();
    let stack_id = created.stack_id().unwrap_or_default().to_string();
    wait_for_change_set(cfn, &id, stack_id).await
}

async fn wait_for_change_set(
    cfn: &Client,
    id: &str,
    mut stack_id: String,
) -> anyhow::Result<ChangeSet> {
    let mut poll = Poll::new();
    loop {
        let out = cfn
            .describe_change_set()
            .change_set_name(id)
            .send()
            .await
            .map_err(|e| anyhow!("cannot describe change set: {}", describe(&e)))?;
        if stack_id.is_empty() {
            stack_id = out.stack_id().unwrap_or_default().to_string();
        }
        let status = out
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if stack_id.is_empty() && (status == "CREATE_COMPLETE" || status == "FAILED") {
            return Err(anyhow!(
                "CloudFormation did not say which stack change set {id} belongs to"
            ));
        }
        match status.as_str() {
            "CREATE_COMPLETE" => {
                let replacements = out
                    .changes()
                    .iter()
                    .filter_map(|c| c.resource_change())
                    .filter_map(|rc| {
                        let flag = match rc.replacement().map(|r| r.as_str()) {
                            Some("True") => Replacement::Yes,
                            Some("Conditional") => Replacement::Conditional,
                            Some("False") => Replacement::No,
                            _ => Replacement::Unknown,
                        };
                        Some((rc.logical_resource_id()?.to_string(), flag))
                    })
                    .collect();
                return Ok(ChangeSet {
                    id: id.to_string(),
                    stack_id,
                    replacements: Some(replacements),
                });
            }
            "FAILED" => {
                let reason = out.status_reason().unwrap_or("no reason given").to_string();
                if reason.contains("didn't contain changes")
                    || reason.contains("No updates are to be performed")
                {
                    let _ = cfn.delete_change_set().change_set_name(id).send().await;
                    return Ok(ChangeSet {
                        id: id.to_string(),
                        stack_id,
                        replacements: None,
                    });
                }
                return Err(anyhow!("CloudFormation rejected the change set: {reason}"));
            }
            _ => poll.wait().await,
        }
    }
}

/// Polling with a short first interval (emulators answer at once) growing to 2 s.
struct Poll {
    delay: Duration,
}

impl Poll {
    fn new() -> Poll {
        Poll {
            delay: Duration::from_millis(100),
        }
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(2));
    }
}

/// One stack event, as the progress display needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub timestamp: f64,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

impl Event {
    fn from_sdk(e: &StackEvent) -> Event {
        Event {
            id: e.event_id().unwrap_or_default().to_string(),
            timestamp: e.timestamp().map(|t| t.as_secs_f64()).unwrap_or(0.0),
            logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
            resource_type: e.resource_type().unwrap_or_default().to_string(),
            status: e
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: e.resource_status_reason().unwrap_or_default().to_string(),
        }
    }

    /// A failure of a resource (not of the stack itself).
    pub fn is_failure(&self) -> bool {
        self.status.ends_with("_FAILED") && self.resource_type != "AWS::CloudFormation::Stack"
    }
}

/// Where an operation's events begin: the stack's newest event just before it started
/// (`None`: the stack had no event). A clock cannot tell this reliably: two operations a
/// few seconds apart would mix, and the older one's failure would be reported as the
/// newer one's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark(Option<String>);

/// Reads the [`Mark`] of a stack (by ID); call it right before starting an operation.
pub async fn mark(cfn: &Client, stack_id: &str) -> anyhow::Result<Mark> {
    let page = cfn
        .describe_stack_events()
        .stack_name(stack_id)
        .send()
        .await
        .map_err(|e| anyhow!("cannot read events of {stack_id}: {}", describe(&e)))?;
    // Newest first (DescribeStackEvents' order).
    Ok(Mark(
        page.stack_events()
            .first()
            .and_then(|e| e.event_id())
            .map(String::from),
    ))
}

/// Events of a stack (by ID) after `mark` not seen before, oldest first. Events come
/// newest first, so paging stops at the mark or at the first event already seen.
async fn new_events(
    cfn: &Client,
    stack_id: &str,
    mark: &Mark,
    seen: &mut HashSet<String>,
) -> anyhow::Result<Vec<Event>> {
    let mut fresh = Vec::new();
    let mut pages = cfn
        .describe_stack_events()
        .stack_name(stack_id)
        .into_paginator()
        .send();
    'pages: while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| anyhow!("cannot read events of {stack_id}: {}", describe(&e)))?;
        for e in page.stack_events() {
            let event = Event::from_sdk(e);
            if mark.0.as_ref() == Some(&event.id) || !seen.insert(event.id.clone()) {
                break 'pages;
            }
            fresh.push(event);
        }
    }
    fresh.reverse();
    Ok(fresh)
}

/// Terminal stack statuses: the operation has ended.
pub fn is_terminal(status: &str) -> bool {
    (status.ends_with("_COMPLETE") || status.ends_with("_FAILED"))
        && !status.ends_with("_IN_PROGRESS")
}

/// Follows a stack operation, by stack ID, until its status is terminal, handing every
/// event after `mark` to `on_event`. Returns the final status and all events of the
/// operation. The status is read before the events, so the last round has every event
/// up to the terminal status (a deleted stack's last events included: they stay
/// readable by ID).
pub async fn follow(
    cfn: &Client,
    stack_id: &str,
    mark: &Mark,
    mut on_event: impl FnMut(&Event),
) -> anyhow::Result<(String, Vec<Event>)> {
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    let mut poll = Poll::new();
    loop {
        let status = stack_status(cfn, stack_id).await?;
        let events = new_events(cfn, stack_id, mark, &mut seen).await?;
        for e in &events {
            on_event(e);
        }
        all.extend(events);
        if is_terminal(&status) {
            return Ok((status, all));
        }
        poll.wait().await;
    }
}

/// Executes a change set.
pub async fn execute(cfn: &Client, change_set_id: &str) -> anyhow::Result<()> {
    cfn.execute_change_set()
        .change_set_name(change_set_id)
        .send()
        .await
        .map_err(|e| anyhow!("cannot execute the change set: {}", describe(&e)))?;
    Ok(())
}

/// Deletes a stack, given by ID so no other stack of the same name is hit (the caller
/// follows it by that ID).
pub async fn delete(cfn: &Client, stack: &str) -> anyhow::Result<()> {
    cfn.delete_stack()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| anyhow!("cannot delete stack {stack}: {}", describe(&e)))?;
    Ok(())
}

/// Turns termination protection on or off.
pub async fn set_termination_protection(cfn: &Client, stack: &str, on: bool) -> anyhow::Result<()> {
    cfn.update_termination_protection()
        .stack_name(stack)
        .enable_termination_protection(on)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot set termination protection on {stack}: {}",
                describe(&e)
            )
        })?;
    Ok(())
}

/// Physical ids of the stack's resources, by logical id.
pub async fn physical_ids(cfn: &Client, stack: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let out = cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| anyhow!("cannot list resources of {stack}: {}", describe(&e)))?;
    Ok(out
        .stack_resources()
        .iter()
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_string(),
                r.physical_resource_id().unwrap_or_default().to_string(),
            ))
        })
        .collect())
}

/// Makes the elapsed time since an instant readable: `850ms`, `12.3s`, `2m05s`.
pub fn elapsed(since: Instant) -> String {
    format_duration(since.elapsed().as_secs_f64())
}

/// `850ms`, `12.3s`, `2m05s`.
pub fn format_duration(secs: f64) -> String {
    if secs < 1.0 {
        format!("{}ms", (secs * 1000.0).round() as u64)
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let s = secs.round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses() {
        for s in [
            "CREATE_COMPLETE",
            "ROLLBACK_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "CREATE_FAILED",
            "DELETE_FAILED",
            "UPDATE_COMPLETE",
        ] {
            assert!(is_terminal(s), "{s}");
        }
        for s in [
            "CREATE_IN_PROGRESS",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "ROLLBACK_IN_PROGRESS",
            "REVIEW_IN_PROGRESS",
        ] {
            assert!(!is_terminal(s), "{s}");
        }
    }

    #[test]
    fn change_set_names_are_unique_per_stack_and_attempt() {
        assert_ne!(change_set_name("a", 1), change_set_name("b", 1));
        assert_ne!(change_set_name("a", 1), change_set_name("a", 2));
        assert!(change_set_name("airflow-dev", 1_700_000_000_000).len() <= 128);
    }

    /// A CloudFormation endpoint that answers about a stack being deleted the way AWS
    /// does: by name only until it is deleted, by ID always (DELETE_COMPLETE). Records the
    /// `StackName` of every call.
    mod fake_cfn {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::{Arc, Mutex};

        pub const NAME: &str = "airflow-dev";
        pub const ID: &str =
            "arn:aws:cloudformation:us-east-1:123456789012:stack/airflow-dev/0f1e2d3c";
        const XMLNS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

        /// `(Action, StackName or ChangeSetName)` of each request, in order.
        pub type Calls = Arc<Mutex<Vec<(String, String)>>>;

        /// Starts the endpoint; the stack is deleted once DescribeStacks has answered
        /// DELETE_IN_PROGRESS `polls_before_gone` times.
        pub fn start(polls_before_gone: usize) -> (String, Calls) {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let calls: Calls = Arc::default();
            let seen = calls.clone();
            std::thread::spawn(move || {
                let mut describes = 0;
                for stream in listener.incoming().flatten() {
                    serve(stream, &seen, &mut describes, polls_before_gone);
                }
            });
            (url, calls)
        }

        fn serve(stream: TcpStream, calls: &Calls, describes: &mut usize, before_gone: usize) {
            let form = read_form(&stream);
            let field = |key: &str| {
                form.iter()
                    .find(|(k, _)| k == key)
                    .map_or(String::new(), |(_, v)| v.clone())
            };
            let action = field("Action");
            let target = match field("StackName") {
                s if s.is_empty() => field("ChangeSetName"),
                s => s,
            };
            calls.lock().unwrap().push((action.clone(), target.clone()));
            let gone = *describes >= before_gone;
            let (code, body) = match action.as_str() {
                "DescribeStacks" if gone && target != ID => not_found(&target),
                "DescribeStackEvents" if gone && target != ID => not_found(&target),
                "DescribeStacks" => {
                    *describes += 1;
                    let status = if gone { "DELETE_COMPLETE" } else { "DELETE_IN_PROGRESS" };
                    (200, stacks(status))
                }
                "DescribeStackEvents" => (200, events(gone)),
                "CreateChangeSet" => (200, format!(
                    "<CreateChangeSetResponse xmlns=\"{XMLNS}\"><CreateChangeSetResult><Id>arn:cs</Id><StackId>{ID}</StackId></CreateChangeSetResult></CreateChangeSetResponse>"
                )),
                "DescribeChangeSet" => (200, format!(
                    "<DescribeChangeSetResponse xmlns=\"{XMLNS}\"><DescribeChangeSetResult><ChangeSetId>arn:cs</ChangeSetId><StackId>{ID}</StackId><StackName>{NAME}</StackName><Status>CREATE_COMPLETE</Status><ExecutionStatus>AVAILABLE</ExecutionStatus><Changes/></DescribeChangeSetResult></DescribeChangeSetResponse>"
                )),
                _ => (400, error("InvalidAction", "not faked")),
            };
            respond(stream, code, &body);
        }

        fn read_form(stream: &TcpStream) -> Vec<(String, String)> {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            String::from_utf8(body)
                .unwrap()
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (decode(k), decode(v)))
                .collect()
        }

        fn decode(text: &str) -> String {
            let bytes = text.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'%' => {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap());
                        i += 3;
                    }
                    b'+' => {
                        out.push(b' ');
                        i += 1;
                    }
                    b => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            String::from_utf8(out).unwrap()
        }

        fn respond(mut stream: TcpStream, code: u16, body: &str) {
            let reason = if code == 200 { "OK" } else { "Bad Request" };
            let _ = write!(
                stream,
                "HTTP/1.1 {code} {reason}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }

        fn error(code: &str, message: &str) -> String {
            format!("<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>")
        }

        /// AWS's answer by name once the stack is deleted.
        fn not_found(name: &str) -> (u16, String) {
            (
                400,
                error(
                    "ValidationError",
                    &format!("Stack with id {name} does not exist"),
                ),
            )
        }

        fn stacks(status: &str) -> String {
            format!("<DescribeStacksResponse xmlns=\"{XMLNS}\"><DescribeStacksResult><Stacks><member><StackName>{NAME}</StackName><StackId>{ID}</StackId><CreationTime>2026-01-01T00:00:00Z</CreationTime><StackStatus>{status}</StackStatus></member></Stacks></DescribeStacksResult></DescribeStacksResponse>")
        }

        /// Newest first, as DescribeStackEvents answers; the last two only once deleted.
        /// Event "0" ends the operation before the deletion.
        fn events(gone: bool) -> String {
            let mut list = vec![
                // The end of the previous operation, a moment before this one.
                (
                    "0",
                    NAME,
                    "AWS::CloudFormation::Stack",
                    "UPDATE_ROLLBACK_COMPLETE",
                    0,
                ),
                (
                    "1",
                    NAME,
                    "AWS::CloudFormation::Stack",
                    "DELETE_IN_PROGRESS",
                    1,
                ),
                ("2", "DataBucket", "AWS::S3::Bucket", "DELETE_SKIPPED", 2),
            ];
            if gone {
                list.push(("3", "Cluster", "AWS::ECS::Cluster", "DELETE_COMPLETE", 3));
                list.push((
                    "4",
                    NAME,
                    "AWS::CloudFormation::Stack",
                    "DELETE_COMPLETE",
                    4,
                ));
            }
            let members: String = list
                .iter()
                .rev()
                .map(|(id, logical, kind, status, second)| {
                    format!("<member><EventId>{id}</EventId><StackId>{ID}</StackId><StackName>{NAME}</StackName><LogicalResourceId>{logical}</LogicalResourceId><ResourceType>{kind}</ResourceType><Timestamp>2026-01-01T00:00:0{second}Z</Timestamp><ResourceStatus>{status}</ResourceStatus></member>")
                })
                .collect();
            format!("<DescribeStackEventsResponse xmlns=\"{XMLNS}\"><DescribeStackEventsResult><StackEvents>{members}</StackEvents></DescribeStackEventsResult></DescribeStackEventsResponse>")
        }
    }

    fn client(url: &str) -> Client {
        use aws_sdk_cloudformation::config::{BehaviorVersion, Credentials, Region};
        let conf = aws_sdk_cloudformation::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(Credentials::new("AKIDFAKE", "fake", None, None, "test"))
            .build();
        Client::from_conf(conf)
    }

    #[tokio::test]
    async fn a_deletion_is_followed_by_id_to_its_last_event() {
        let (url, calls) = fake_cfn::start(2);
        let before = Mark(Some("0".into()));
        let mut shown = Vec::new();
        let (status, events) = follow(&client(&url), fake_cfn::ID, &before, |e| {
            shown.push(format!("{} {}", e.logical_id, e.status))
        })
        .await
        .unwrap();
        assert_eq!(status, "DELETE_COMPLETE");
        assert_eq!(
            shown,
            [
                "airflow-dev DELETE_IN_PROGRESS",
                "DataBucket DELETE_SKIPPED",
                "Cluster DELETE_COMPLETE",
                "airflow-dev DELETE_COMPLETE"
            ],
            "every event after the mark once, oldest first, the deleted stack's last ones included"
        );
        assert_eq!(events.len(), 4);
        let calls = calls.lock().unwrap();
        assert!(calls.len() >= 4, "{calls:?}");
        assert!(
            calls.iter().all(|(_, stack)| stack == fake_cfn::ID),
            "every call names the stack by ID: {calls:?}"
        );
    }

    #[tokio::test]
    async fn following_by_name_loses_a_deleted_stack() {
        // Why the ID: the same deletion followed by name fails the moment it is done,
        // with the error of issue 11 (the stack went between DescribeStacks and the
        // events call).
        let (url, _) = fake_cfn::start(1);
        let error = follow(&client(&url), fake_cfn::NAME, &Mark::default(), |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "cannot read events of airflow-dev: ValidationError: Stack with id airflow-dev does not exist"
        );
        // A stack deleted by name is simply absent for describe_stack, as before.
        let (url, _) = fake_cfn::start(0);
        assert!(describe_stack(&client(&url), fake_cfn::NAME)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn the_mark_is_the_newest_event_before_the_operation() {
        let (url, _) = fake_cfn::start(usize::MAX);
        let mark = mark(&client(&url), fake_cfn::ID).await.unwrap();
        assert_eq!(mark, Mark(Some("2".into())));
    }

    #[tokio::test]
    async fn a_change_set_carries_its_stack_id() {
        let (url, calls) = fake_cfn::start(usize::MAX);
        let none = BTreeMap::new();
        let request = ChangeSetRequest {
            stack: fake_cfn::NAME,
            template: TemplateSource::Body("{}".into()),
            parameters: &none,
            tags: &none,
            exists: false,
        };
        let cs = create_change_set(&client(&url), request).await.unwrap();
        assert_eq!(cs.stack_id, fake_cfn::ID);
        assert_eq!(cs.id, "arn:cs");
        assert_eq!(calls.lock().unwrap()[0].0, "CreateChangeSet");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(0.85), "850ms");
        assert_eq!(format_duration(12.34), "12.3s");
        assert_eq!(format_duration(125.0), "2m05s");
    }
}
