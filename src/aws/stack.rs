//! CloudFormation stacks: describe, outputs, change sets, executing them with live
//! events, and deleting.

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
    pub status: String,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub termination_protection: bool,
}

/// Describes a stack; `None` when it does not exist (or was deleted).
pub async fn describe_stack(cfn: &Client, name: &str) -> anyhow::Result<Option<StackInfo>> {
    let result = cfn.describe_stacks().stack_name(name).send().await;
    let stacks = match result {
        Ok(out) => out.stacks.unwrap_or_default(),
        Err(e) => {
            let text = describe(&e);
            if text.contains("does not exist") {
                return Ok(None);
            }
            return Err(anyhow!("cannot describe stack {name}: {text}"));
        }
    };
    let Some(stack) = stacks.into_iter().next() else {
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
        status,
        outputs,
        parameters,
        tags,
        termination_protection: stack.enable_termination_protection().unwrap_or(false),
    }))
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
    pub id: String,
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
    wait_for_change_set(cfn, &id).await
}

async fn wait_for_change_set(cfn: &Client, id: &str) -> anyhow::Result<ChangeSet> {
    let mut poll = Poll::new();
    loop {
        let out = cfn
            .describe_change_set()
            .change_set_name(id)
            .send()
            .await
            .map_err(|e| anyhow!("cannot describe change set: {}", describe(&e)))?;
        let status = out
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
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

/// Events of a stack newer than `since` (epoch seconds) not seen before, oldest first.
async fn new_events(
    cfn: &Client,
    stack: &str,
    since: f64,
    seen: &mut HashSet<String>,
) -> anyhow::Result<Vec<Event>> {
    let mut fresh = Vec::new();
    let mut pages = cfn
        .describe_stack_events()
        .stack_name(stack)
        .into_paginator()
        .send();
    'pages: while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow!("cannot read events of {stack}: {}", describe(&e)))?;
        for e in page.stack_events() {
            let event = Event::from_sdk(e);
            if event.timestamp < since {
                break 'pages;
            }
            if seen.insert(event.id.clone()) {
                fresh.push(event);
            }
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

/// Follows a stack operation until its status is terminal, handing every new event
/// to `on_event`. Returns the final status and all events of the operation.
pub async fn follow(
    cfn: &Client,
    stack: &str,
    since: f64,
    mut on_event: impl FnMut(&Event),
) -> anyhow::Result<(String, Vec<Event>)> {
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    let mut poll = Poll::new();
    loop {
        let status = match describe_stack(cfn, stack).await? {
            Some(info) => info.status,
            None => "DELETE_COMPLETE".to_string(),
        };
        let events = if status == "DELETE_COMPLETE" {
            Vec::new()
        } else {
            new_events(cfn, stack, since, &mut seen).await?
        };
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

/// Deletes a stack (the caller follows it).
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

/// Seconds since the epoch, for event filtering; a little in the past so clock skew
/// between this machine and CloudFormation does not hide the first events.
pub fn now_minus_skew() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
        - 5.0
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

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(0.85), "850ms");
        assert_eq!(format_duration(12.34), "12.3s");
        assert_eq!(format_duration(125.0), "2m05s");
    }
}
