//! The traits of [`crate::ports`] implemented with the AWS SDK: the table in DynamoDB
//! (conditional writes: DynamoDB Developer Guide, "Condition expressions"), Lambda's
//! asynchronous invoke and an SNS topic.

use std::collections::HashMap;

use airflow_stack_contract::streams::{
    attribute, lease_key, ManagerInvocation, EVENT_KIND, KIND_ATTRIBUTE, LEASE_KIND, TABLE_KEY,
    TTL_ATTRIBUTE,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::notify::Notice;
use crate::ports::{
    Claim, Claimed, EventItem, EventStore, Invoker, Lease, LeaseStore, Notifier, PortError,
    ProcessedMarks, Put, Renewal, ServiceRestarter,
};

fn port_error<E: std::error::Error>(call: &str, error: E) -> PortError {
    PortError(format!("{call}: {}", DisplayErrorContext(error)))
}

/// A string attribute value.
fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The events-and-leases table.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    /// The client.
    pub client: aws_sdk_dynamodb::Client,
    /// Table name.
    pub table: String,
}

/// Whether a write failed only on its condition: the lost race, not an error.
fn condition_failed<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

impl DynamoTable {
    /// An `UpdateItem` of `key` with every attribute name behind a placeholder (`#pk`,
    /// `#kind`, `#holder`, ...) so none can clash with DynamoDB's reserved words.
    fn update(&self, key: &str) -> UpdateItemFluentBuilder {
        let names = [
            TABLE_KEY,
            KIND_ATTRIBUTE,
            TTL_ATTRIBUTE,
            attribute::HOLDER,
            attribute::GENERATION,
            attribute::HEARTBEAT_AT,
            attribute::LAST_EVENT_ID,
            attribute::ALERTED_AT,
            attribute::CLAIMED_AT,
            attribute::PROCESSED_AT,
        ];
        names.iter().fold(
            self.client
                .update_item()
                .table_name(&self.table)
                .key(TABLE_KEY, s(key)),
            |call, name| call.expression_attribute_names(format!("#{name}"), *name),
        )
    }

    /// Runs a conditional update: `Ok(false)` when the condition failed.
    async fn conditional(&self, call: UpdateItemFluentBuilder) -> Result<bool, PortError> {
        match call.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(port_error("UpdateItem", e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(TABLE_KEY, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("GetItem", e))?;
        Ok(out.item)
    }
}

/// Unused placeholders are an error in DynamoDB ("unused in expressions"), so only the
/// names an expression uses are declared: this trims the set [`DynamoTable::update`]
/// declares to those in `expressions`.
fn used_names_only(call: UpdateItemFluentBuilder, expressions: &[&str]) -> UpdateItemFluentBuilder {
    let declared = call
        .get_expression_attribute_names()
        .clone()
        .unwrap_or_default();
    let used = declared
        .into_iter()
        .filter(|(placeholder, _)| expressions.iter().any(|x| mentions(x, placeholder)))
        .collect();
    call.set_expression_attribute_names(Some(used))
}

/// Whether `expression` uses `placeholder` as a whole token (`#e` is not `#expires_at`).
fn mentions(expression: &str, placeholder: &str) -> bool {
    expression.match_indices(placeholder).any(|(i, _)| {
        let next = expression[i + placeholder.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// An update with its expressions, declaring only the placeholders they use.
fn with_expressions(
    call: UpdateItemFluentBuilder,
    update: &str,
    condition: &str,
) -> UpdateItemFluentBuilder {
    used_names_only(
        call.update_expression(update)
            .condition_expression(condition),
        &[update, condition],
    )
}

#[async_trait]
impl EventStore for DynamoTable {
    async fn put_event(&self, item: &EventItem) -> Result<Put, PortError> {
        let mut attrs = HashMap::from([
            (TABLE_KEY.to_owned(), s(&item.key)),
            (KIND_ATTRIBUTE.to_owned(), s(EVENT_KIND)),
            (attribute::STREAM.to_owned(), s(&item.stream)),
            (attribute::IDENTITY.to_owned(), s(&item.identity)),
            (attribute::DATA.to_owned(), s(&item.data)),
            (attribute::TARGET_KIND.to_owned(), s(&item.target_kind)),
            (attribute::TARGET.to_owned(), s(&item.target)),
            (attribute::RECEIVED_AT.to_owned(), n(item.received_at_ms)),
            (TTL_ATTRIBUTE.to_owned(), n(item.expires_at)),
        ]);
        if let Some(id) = &item.event_id {
            attrs.insert(attribute::EVENT_ID.to_owned(), s(id));
        }
        let call = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attrs))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", TABLE_KEY);
        match call.send().await {
            Ok(_) => Ok(Put::Stored),
            Err(e) if condition_failed(&e) => Ok(Put::Duplicate),
            Err(e) => Err(port_error("PutItem", e)),
        }
    }
}

/// The lease's attributes a claim writes, with their values.
fn lease_values(call: UpdateItemFluentBuilder, claim: &Claim) -> UpdateItemFluentBuilder {
    call.expression_attribute_values(":me", s(&claim.chain_id))
        .expression_attribute_values(":gen", n(claim.generation))
        .expression_attribute_values(":now", n(claim.now))
        .expression_attribute_values(":exp", n(claim.now + i64::from(claim.lease_seconds)))
}

/// `SET` of the heartbeat and expiry, and of the last event ID when there is one.
fn heartbeat_set(claim: &Claim) -> String {
    let mut set = "#heartbeat_at = :now, #expires_at = :exp".to_owned();
    if claim.last_event_id.is_some() {
        set.push_str(", #last_event_id = :lei");
    }
    set
}

fn with_last_event_id(call: UpdateItemFluentBuilder, claim: &Claim) -> UpdateItemFluentBuilder {
    match &claim.last_event_id {
        Some(id) => call.expression_attribute_values(":lei", s(id)),
        None => call,
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

#[async_trait]
impl LeaseStore for DynamoTable {
    async fn acquire(&self, claim: &Claim) -> Result<bool, PortError> {
        let update = format!(
            "SET #kind = :lease, #holder = :me, #generation = :gen, {}",
            heartbeat_set(claim)
        );
        let condition = "attribute_not_exists(#pk) OR #expires_at < :now OR (#holder = :me AND #generation < :gen)";
        let call = with_expressions(self.update(&lease_key(&claim.stream)), &update, condition)
            .expression_attribute_values(":lease", s(LEASE_KIND));
        let call = with_last_event_id(lease_values(call, claim), claim);
        self.conditional(call).await
    }

    async fn renew(&self, claim: &Claim) -> Result<Renewal, PortError> {
        let update = format!("SET {}", heartbeat_set(claim));
        let condition = "#holder = :me AND #generation = :gen";
        let call = with_expressions(self.update(&lease_key(&claim.stream)), &update, condition);
        let call = with_last_event_id(lease_values(call, claim), claim);
        // :exp and :now are both used by the SET; nothing unused is declared.
        if self.conditional(call).await? {
            return Ok(Renewal::Renewed);
        }
        Ok(match self.lease(&claim.stream).await? {
            Some(l) if l.holder == claim.chain_id && l.generation > claim.generation => {
                Renewal::Superseded
            }
            _ => Renewal::Lost,
        })
    }

    async fn release(&self, claim: &Claim) -> Result<(), PortError> {
        let call = with_expressions(
            self.update(&lease_key(&claim.stream)),
            "SET #expires_at = :past",
            "#holder = :me AND #generation = :gen",
        )
        .expression_attribute_values(":me", s(&claim.chain_id))
        .expression_attribute_values(":gen", n(claim.generation))
        .expression_attribute_values(":past", n(claim.now - 1));
        self.conditional(call).await.map(|_| ())
    }

    async fn lease(&self, stream: &str) -> Result<Option<Lease>, PortError> {
        Ok(self.get(&lease_key(stream)).await?.map(|item| Lease {
            holder: string(&item, attribute::HOLDER).unwrap_or_default(),
            generation: number(&item, attribute::GENERATION)
                .and_then(|g| u64::try_from(g).ok())
                .unwrap_or(0),
            heartbeat_at: number(&item, attribute::HEARTBEAT_AT).unwrap_or(0),
            expires_at: number(&item, TTL_ATTRIBUTE).unwrap_or(0),
            last_event_id: string(&item, attribute::LAST_EVENT_ID),
            alerted_at: number(&item, attribute::ALERTED_AT),
        }))
    }

    async fn mark_alerted(
        &self,
        stream: &str,
        heartbeat_at: i64,
        now: i64,
    ) -> Result<bool, PortError> {
        let call = with_expressions(
            self.update(&lease_key(stream)),
            "SET #alerted_at = :now",
            "attribute_exists(#pk) AND attribute_not_exists(#alerted_at) AND #heartbeat_at = :hb",
        )
        .expression_attribute_values(":now", n(now))
        .expression_attribute_values(":hb", n(heartbeat_at));
        self.conditional(call).await
    }

    async fn clear_alerted(&self, stream: &str) -> Result<bool, PortError> {
        let call = with_expressions(
            self.update(&lease_key(stream)),
            "REMOVE #alerted_at",
            "attribute_exists(#alerted_at)",
        );
        self.conditional(call).await
    }
}

#[async_trait]
impl ProcessedMarks for DynamoTable {
    async fn claim(
        &self,
        key: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Claimed, PortError> {
        let call = with_expressions(
            self.update(key),
            "SET #claimed_at = :now",
            "attribute_exists(#pk) AND attribute_not_exists(#processed_at) AND (attribute_not_exists(#claimed_at) OR #claimed_at < :stale)",
        )
        .expression_attribute_values(":now", n(now_ms))
        .expression_attribute_values(":stale", n(stale_before_ms));
        if self.conditional(call).await? {
            return Ok(Claimed::Claimed);
        }
        match self.get(key).await? {
            None => Err(PortError(format!("no event item {key}"))),
            Some(item) if item.contains_key(attribute::PROCESSED_AT) => {
                Ok(Claimed::AlreadyProcessed)
            }
            Some(_) => Ok(Claimed::InFlight),
        }
    }

    async fn finish(&self, key: &str, now_ms: i64) -> Result<(), PortError> {
        let call = with_expressions(
            self.update(key),
            "SET #processed_at = :now",
            "attribute_exists(#pk)",
        )
        .expression_attribute_values(":now", n(now_ms));
        self.conditional(call).await.map(|_| ())
    }

    async fn unclaim(&self, key: &str, claimed_at_ms: i64) -> Result<(), PortError> {
        let call = with_expressions(self.update(key), "REMOVE #claimed_at", "#claimed_at = :at")
            .expression_attribute_values(":at", n(claimed_at_ms));
        self.conditional(call).await.map(|_| ())
    }
}

/// Lambda's asynchronous invoke.
#[derive(Debug, Clone)]
pub struct LambdaInvoker {
    /// The client.
    pub client: aws_sdk_lambda::Client,
}

#[async_trait]
impl Invoker for LambdaInvoker {
    async fn invoke_async(
        &self,
        function: &str,
        payload: &ManagerInvocation,
    ) -> Result<(), PortError> {
        let body = serde_json::to_vec(payload).expect("the invocation serialises");
        self.client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(body))
            .send()
            .await
            .map_err(|e| port_error("Invoke", e))?;
        Ok(())
    }
}

/// The ECS services of the Fargate-run streams, in one cluster.
#[derive(Debug, Clone)]
pub struct EcsServices {
    /// The client.
    pub client: aws_sdk_ecs::Client,
    /// The cluster's name or ARN.
    pub cluster: String,
}

#[async_trait]
impl ServiceRestarter for EcsServices {
    async fn restart(&self, service: &str) -> Result<(), PortError> {
        self.client
            .update_service()
            .cluster(&self.cluster)
            .service(service)
            .force_new_deployment(true)
            .send()
            .await
            .map_err(|e| port_error("UpdateService", e))?;
        Ok(())
    }
}

/// An SNS topic as an alert target.
#[derive(Debug, Clone)]
pub struct SnsTopic {
    /// The client.
    pub client: aws_sdk_sns::Client,
    /// Topic ARN.
    pub topic_arn: String,
}

#[async_trait]
impl Notifier for SnsTopic {
    fn name(&self) -> &'static str {
        "sns"
    }

    async fn send(&self, notice: &Notice) -> Result<(), PortError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(notice.sns_subject())
            .message(notice.sns_message())
            .send()
            .await
            .map_err(|e| port_error("Publish", e))?;
        Ok(())
    }
}
