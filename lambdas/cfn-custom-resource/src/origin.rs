//! Is this request really from CloudFormation?
//!
//! A custom-resource Lambda is invoked with `lambda:InvokeFunction`, and anyone allowed
//! that call can send an event of their own making. Before a Create or Update does any
//! work, [`OriginCheck::confirm`] asks CloudFormation (`DescribeStackResource` with the
//! event's `StackId` and `LogicalResourceId`) whether the named resource exists in that
//! stack, has the event's `ResourceType`, and is being created or updated right now.
//! CloudFormation marks a custom resource `CREATE_IN_PROGRESS` / `UPDATE_IN_PROGRESS`
//! before it invokes the function, and the status stays so until the answer arrives,
//! so a genuine request always passes and a forged one only while that very resource
//! is being deployed.
//!
//! Delete is never checked: a Delete does no work in these Lambdas, and a failing
//! Delete would block the stack.
//!
//! The stack must also be in this function's own account and region, and the
//! function's role may describe only its own stack (the template scopes
//! `cloudformation:DescribeStackResource` to it), so another stack's resource that
//! happens to be in progress does not pass either.

use std::sync::Arc;

use async_trait::async_trait;

use crate::request::{CustomResourceRequest, RequestType};

/// Resource statuses (`StackResourceDetail.ResourceStatus`, CloudFormation API
/// reference) in which a Create or Update of the resource is under way. The rollback of
/// a failed update sends the custom resource an Update; the API lists
/// `UPDATE_ROLLBACK_IN_PROGRESS` among resource statuses, so a resource in it is
/// accepted too rather than risk failing a rollback.
pub const IN_PROGRESS: [&str; 3] = [
    "CREATE_IN_PROGRESS",
    "UPDATE_IN_PROGRESS",
    "UPDATE_ROLLBACK_IN_PROGRESS",
];

/// What `DescribeStackResource` says about one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResource {
    /// `ResourceType`, e.g. `Custom::AirflowSecrets`.
    pub resource_type: String,
    /// `ResourceStatus`, e.g. `CREATE_IN_PROGRESS`.
    pub status: String,
}

/// A `DescribeStackResource` call that got no answer about the resource (access
/// denied, throttled, network). SDK messages carry no secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LookupError(pub String);

/// CloudFormation's view of a stack's resources: the one AWS call of the check, behind
/// a trait so tests use a fake.
#[async_trait]
pub trait StackResources: Send + Sync {
    /// `DescribeStackResource`; `Ok(None)` when the stack or the resource does not
    /// exist.
    async fn describe_stack_resource(
        &self,
        stack_id: &str,
        logical_resource_id: &str,
    ) -> Result<Option<StackResource>, LookupError>;
}

/// Where this function runs: the partition, region and account of its own ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// `aws`, `aws-cn`, ...
    pub partition: String,
    /// e.g. `us-east-1`.
    pub region: String,
    /// The 12-digit account id.
    pub account: String,
}

impl Home {
    /// From the invoked function's ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`,
    /// with or without a qualifier); `None` if it is not one.
    pub fn from_function_arn(arn: &str) -> Option<Self> {
        let parts = arn_parts(arn)?;
        (parts.service == "lambda" && parts.resource.starts_with("function:")).then(|| Home {
            partition: parts.partition.to_owned(),
            region: parts.region.to_owned(),
            account: parts.account.to_owned(),
        })
    }
}

/// The fields of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`).
struct ArnParts<'a> {
    partition: &'a str,
    service: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn arn_parts(arn: &str) -> Option<ArnParts<'_>> {
    let mut fields = arn.splitn(6, ':');
    if fields.next()? != "arn" {
        return None;
    }
    let parts = ArnParts {
        partition: fields.next()?,
        service: fields.next()?,
        region: fields.next()?,
        account: fields.next()?,
        resource: fields.next()?,
    };
    let filled = [parts.partition, parts.region, parts.account, parts.resource];
    (!filled.iter().any(|f| f.is_empty())).then_some(parts)
}

/// Why a request was refused. Messages name ids and statuses, never property values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The function's own ARN is unknown, so the stack's account cannot be compared.
    #[error("request refused: this function's own ARN is not known, so the request's stack cannot be checked")]
    UnknownHome,
    /// `StackId` is not a CloudFormation stack ARN.
    #[error("request refused: StackId is not a CloudFormation stack ARN")]
    NotAStackArn,
    /// The stack is in another partition, account or region than this function.
    #[error("request refused: the stack {stack_id} is not in this function's account {account} and region {region}")]
    ForeignStack {
        /// The event's `StackId`.
        stack_id: String,
        /// This function's account.
        account: String,
        /// This function's region.
        region: String,
    },
    /// CloudFormation knows no such resource in the stack.
    #[error("request refused: CloudFormation has no resource {logical_id} in stack {stack_id}, so it did not send this request")]
    NoSuchResource {
        /// The event's `LogicalResourceId`.
        logical_id: String,
        /// The event's `StackId`.
        stack_id: String,
    },
    /// The resource exists with another type than the event says.
    #[error("request refused: resource {logical_id} of the stack is a {actual}, not the {claimed} the request names")]
    WrongType {
        /// The event's `LogicalResourceId`.
        logical_id: String,
        /// The type CloudFormation has.
        actual: String,
        /// The event's `ResourceType`.
        claimed: String,
    },
    /// The resource is not being created or updated, so CloudFormation waits for no
    /// answer about it.
    #[error("request refused: resource {logical_id} is {status}, not being created or updated, so CloudFormation did not send this request")]
    NotInProgress {
        /// The event's `LogicalResourceId`.
        logical_id: String,
        /// Its `ResourceStatus`.
        status: String,
    },
    /// CloudFormation could not be asked.
    #[error("request refused: it could not be confirmed with CloudFormation (DescribeStackResource: {0})")]
    Lookup(#[from] LookupError),
}

/// Confirms requests with CloudFormation before the work starts.
#[derive(Clone)]
pub struct OriginCheck {
    home: Option<Home>,
    stacks: Arc<dyn StackResources>,
}

impl OriginCheck {
    /// A check for the function whose ARN is `function_arn` (the invocation context's
    /// `invoked_function_arn`).
    pub fn new(function_arn: &str, stacks: Arc<dyn StackResources>) -> Self {
        Self {
            home: Home::from_function_arn(function_arn),
            stacks,
        }
    }

    /// `Ok` when CloudFormation is running this Create or Update (and always for
    /// Delete); otherwise why the request must be answered FAILED without doing
    /// anything.
    pub async fn confirm(&self, request: &CustomResourceRequest) -> Result<(), Refusal> {
        if request.request_type == RequestType::Delete {
            return Ok(());
        }
        self.check_home(&request.stack_id)?;
        let found = self
            .stacks
            .describe_stack_resource(&request.stack_id, &request.logical_resource_id)
            .await?;
        let logical_id = request.logical_resource_id.clone();
        let Some(resource) = found else {
            return Err(Refusal::NoSuchResource {
                logical_id,
                stack_id: request.stack_id.clone(),
            });
        };
        if resource.resource_type != request.resource_type {
            return Err(Refusal::WrongType {
                logical_id,
                actual: resource.resource_type,
                claimed: request.resource_type.clone(),
            });
        }
        if !IN_PROGRESS.contains(&resource.status.as_str()) {
            return Err(Refusal::NotInProgress {
                logical_id,
                status: resource.status,
            });
        }
        Ok(())
    }

    /// The stack must be a CloudFormation stack of this function's partition, account
    /// and region: the ServiceToken of a stack elsewhere cannot name this function.
    fn check_home(&self, stack_id: &str) -> Result<(), Refusal> {
        let home = self.home.as_ref().ok_or(Refusal::UnknownHome)?;
        let stack = arn_parts(stack_id)
            .filter(|p| p.service == "cloudformation" && p.resource.starts_with("stack/"))
            .ok_or(Refusal::NotAStackArn)?;
        let same = stack.partition == home.partition
            && stack.region == home.region
            && stack.account == home.account;
        if same {
            Ok(())
        } else {
            Err(Refusal::ForeignStack {
                stack_id: stack_id.to_owned(),
                account: home.account.clone(),
                region: home.region.clone(),
            })
        }
    }
}

/// [`StackResources`] through `aws_sdk_cloudformation`.
#[derive(Debug, Clone)]
pub struct CloudFormationStacks(pub aws_sdk_cloudformation::Client);

#[async_trait]
impl StackResources for CloudFormationStacks {
    async fn describe_stack_resource(
        &self,
        stack_id: &str,
        logical_resource_id: &str,
    ) -> Result<Option<StackResource>, LookupError> {
        use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};
        let answer = self
            .0
            .describe_stack_resource()
            .stack_name(stack_id)
            .logical_resource_id(logical_resource_id)
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            // "Stack 'x' does not exist" / "Resource x does not exist for stack y".
            Err(error)
                if error.code() == Some("ValidationError")
                    && error
                        .message()
                        .is_some_and(|m| m.contains("does not exist")) =>
            {
                return Ok(None)
            }
            Err(error) => {
                return Err(LookupError(match (error.code(), error.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    _ => DisplayErrorContext(error).to_string(),
                }))
            }
        };
        Ok(output.stack_resource_detail().map(|detail| StackResource {
            // Both are required in the API; an absent one matches nothing and refuses.
            resource_type: detail.resource_type().unwrap_or_default().to_owned(),
            status: detail
                .resource_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        }))
    }
}

/// Test support: a [`StackResources`] that answers from a fixed table and records the
/// calls it gets.
pub mod fake {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// Resources by (stack id, logical id); a call for anything else answers `None`,
    /// and `error` (when set) answers every call with that error.
    #[derive(Default)]
    pub struct FakeStacks {
        /// What each known resource is.
        pub resources: BTreeMap<(String, String), StackResource>,
        /// Answer every call with this error instead.
        pub error: Option<LookupError>,
        /// (stack id, logical id) of each call, in order.
        pub calls: Mutex<Vec<(String, String)>>,
    }

    impl FakeStacks {
        /// One resource of one stack.
        pub fn with(stack_id: &str, logical_id: &str, resource_type: &str, status: &str) -> Self {
            let mut fake = Self::default();
            fake.resources.insert(
                (stack_id.to_owned(), logical_id.to_owned()),
                StackResource {
                    resource_type: resource_type.to_owned(),
                    status: status.to_owned(),
                },
            );
            fake
        }

        /// How many calls were made.
        pub fn call_count(&self) -> usize {
            self.calls.lock().expect("not poisoned").len()
        }
    }

    #[async_trait]
    impl StackResources for FakeStacks {
        async fn describe_stack_resource(
            &self,
            stack_id: &str,
            logical_resource_id: &str,
        ) -> Result<Option<StackResource>, LookupError> {
            let key = (stack_id.to_owned(), logical_resource_id.to_owned());
            self.calls.lock().expect("not poisoned").push(key.clone());
            match &self.error {
                Some(error) => Err(error.clone()),
                None => Ok(self.resources.get(&key).cloned()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeStacks;
    use super::*;
    use serde_json::json;

    const FUNCTION: &str = "arn:aws:lambda:eu-west-1:111122223333:function:f";
    const STACK: &str = "arn:aws:cloudformation:eu-west-1:111122223333:stack/s/uuid-1";

    fn request(request_type: &str, stack_id: &str) -> CustomResourceRequest {
        CustomResourceRequest::from_event(&json!({
            "RequestType": request_type, "ResponseURL": "http://127.0.0.1:1/r",
            "StackId": stack_id, "RequestId": "r", "ResourceType": "Custom::Thing",
            "LogicalResourceId": "Thing", "PhysicalResourceId": "p",
            "ResourceProperties": {}
        }))
        .unwrap()
    }

    async fn confirm(
        stacks: FakeStacks,
        request_type: &str,
        stack_id: &str,
    ) -> (Result<(), Refusal>, usize) {
        let stacks = Arc::new(stacks);
        let check = OriginCheck::new(FUNCTION, stacks.clone());
        let outcome = check.confirm(&request(request_type, stack_id)).await;
        (outcome, stacks.call_count())
    }

    #[tokio::test]
    async fn a_resource_being_created_or_updated_passes() {
        for status in ["CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"] {
            let stacks = FakeStacks::with(STACK, "Thing", "Custom::Thing", status);
            assert_eq!(confirm(stacks, "Create", STACK).await, (Ok(()), 1));
        }
    }

    #[tokio::test]
    async fn a_missing_resource_is_refused() {
        let stacks = FakeStacks::with(STACK, "Other", "Custom::Thing", "CREATE_IN_PROGRESS");
        let (outcome, _) = confirm(stacks, "Create", STACK).await;
        let refusal = outcome.unwrap_err();
        assert!(matches!(refusal, Refusal::NoSuchResource { .. }));
        assert!(refusal.to_string().contains("no resource Thing in stack"));
    }

    #[tokio::test]
    async fn another_type_is_refused() {
        let stacks = FakeStacks::with(STACK, "Thing", "Custom::Other", "CREATE_IN_PROGRESS");
        let (outcome, _) = confirm(stacks, "Update", STACK).await;
        assert_eq!(
            outcome.unwrap_err().to_string(),
            "request refused: resource Thing of the stack is a Custom::Other, not the \
             Custom::Thing the request names"
        );
    }

    #[tokio::test]
    async fn a_settled_resource_is_refused() {
        for status in ["CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_IN_PROGRESS"] {
            let stacks = FakeStacks::with(STACK, "Thing", "Custom::Thing", status);
            let (outcome, _) = confirm(stacks, "Create", STACK).await;
            assert_eq!(
                outcome,
                Err(Refusal::NotInProgress {
                    logical_id: "Thing".into(),
                    status: status.into()
                })
            );
        }
    }

    #[tokio::test]
    async fn stacks_of_other_accounts_regions_or_services_are_refused_unasked() {
        let other_account = "arn:aws:cloudformation:eu-west-1:999999999999:stack/s/uuid-1";
        let other_region = "arn:aws:cloudformation:us-east-1:111122223333:stack/s/uuid-1";
        let other_partition = "arn:aws-cn:cloudformation:eu-west-1:111122223333:stack/s/u";
        for stack in [other_account, other_region, other_partition] {
            // The resource "exists" there: the home check alone must refuse.
            let stacks = FakeStacks::with(stack, "Thing", "Custom::Thing", "CREATE_IN_PROGRESS");
            let (outcome, calls) = confirm(stacks, "Create", stack).await;
            assert!(
                matches!(outcome, Err(Refusal::ForeignStack { .. })),
                "{stack}"
            );
            assert_eq!(calls, 0, "CloudFormation is not asked about {stack}");
        }
        for not_a_stack in [
            "s",
            "arn:aws:s3:::bucket",
            "arn:aws:sqs:eu-west-1:111122223333:q",
        ] {
            let (outcome, _) = confirm(FakeStacks::default(), "Create", not_a_stack).await;
            assert_eq!(outcome, Err(Refusal::NotAStackArn), "{not_a_stack}");
        }
    }

    #[tokio::test]
    async fn without_its_own_arn_the_function_refuses() {
        let check = OriginCheck::new("", Arc::new(FakeStacks::default()));
        assert_eq!(
            check.confirm(&request("Create", STACK)).await,
            Err(Refusal::UnknownHome)
        );
    }

    #[tokio::test]
    async fn a_failed_lookup_is_a_refusal() {
        let stacks = FakeStacks {
            error: Some(LookupError("AccessDenied: not authorized".into())),
            ..FakeStacks::default()
        };
        let (outcome, _) = confirm(stacks, "Create", STACK).await;
        assert_eq!(
            outcome.unwrap_err().to_string(),
            "request refused: it could not be confirmed with CloudFormation \
             (DescribeStackResource: AccessDenied: not authorized)"
        );
    }

    #[tokio::test]
    async fn delete_is_never_checked() {
        let foreign = "arn:aws:cloudformation:eu-west-1:999999999999:stack/s/uuid-1";
        assert_eq!(
            confirm(FakeStacks::default(), "Delete", foreign).await,
            (Ok(()), 0)
        );
    }

    #[test]
    fn home_comes_from_the_function_arn() {
        assert_eq!(
            Home::from_function_arn("arn:aws-cn:lambda:cn-north-1:111122223333:function:f:prod"),
            Some(Home {
                partition: "aws-cn".into(),
                region: "cn-north-1".into(),
                account: "111122223333".into()
            })
        );
        assert_eq!(Home::from_function_arn("arn:aws:s3:::b"), None);
        assert_eq!(Home::from_function_arn("f"), None);
    }
}
