//! The traits of [`crate::ports`] implemented with the AWS SDK.

use airflow_stack_contract::scaler::{metrics, STATE_TABLE_KEY};
use airflow_stack_contract::worker::{DRAIN_TAG, DRAIN_VALUE};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ecs::error::DisplayErrorContext;
use aws_sdk_ecs::types::{DesiredStatus, Tag, TaskField};

use crate::notify::Notice;
use crate::ports::{
    Item, Metric, Metrics, Notifier, PortError, StateStore, WorkerService, WorkerTask, VERSION,
};

fn port_error<E: std::error::Error>(call: &str, error: E) -> PortError {
    PortError(format!("{call}: {}", DisplayErrorContext(error)))
}

/// The worker service of one cluster, through `aws_sdk_ecs`.
#[derive(Debug, Clone)]
pub struct EcsWorkers {
    /// The client.
    pub client: aws_sdk_ecs::Client,
    /// Cluster name or ARN.
    pub cluster: String,
    /// Service name or ARN.
    pub service: String,
}

/// `UpdateTaskProtection` takes at most 10 tasks per call.
const PROTECTION_BATCH: usize = 10;
/// `DescribeTasks` and `GetTaskProtection` take at most 100 tasks per call.
const DESCRIBE_BATCH: usize = 100;

#[async_trait]
impl WorkerService for EcsWorkers {
    async fn desired_count(&self) -> Result<u32, PortError> {
        let out = self
            .client
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .send()
            .await
            .map_err(|e| port_error("DescribeServices", e))?;
        let service = out
            .services()
            .first()
            .ok_or_else(|| PortError(format!("DescribeServices: {} not found", self.service)))?;
        Ok(u32::try_from(service.desired_count()).unwrap_or(0))
    }

    async fn tasks(&self) -> Result<Vec<WorkerTask>, PortError> {
        let mut arns = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .list_tasks()
                .cluster(&self.cluster)
                .service_name(&self.service)
                .desired_status(DesiredStatus::Running)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| port_error("ListTasks", e))?;
            arns.extend(out.task_arns().iter().cloned());
            match out.next_token() {
                Some(t) => next = Some(t.to_string()),
                None => break,
            }
        }
        let mut tasks = Vec::new();
        for chunk in arns.chunks(DESCRIBE_BATCH) {
            let out = self
                .client
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .include(TaskField::Tags)
                .send()
                .await
                .map_err(|e| port_error("DescribeTasks", e))?;
            let protection = self
                .client
                .get_task_protection()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| port_error("GetTaskProtection", e))?;
            let protected: Vec<&str> = protection
                .protected_tasks()
                .iter()
                .filter(|p| p.protection_enabled())
                .filter_map(|p| p.task_arn())
                .collect();
            tasks.extend(out.tasks().iter().map(|t| {
                let arn = t.task_arn().unwrap_or_default().to_string();
                WorkerTask {
                    protected: protected.contains(&arn.as_str()),
                    draining: t.tags().iter().any(|tag| {
                        tag.key() == Some(DRAIN_TAG) && tag.value() == Some(DRAIN_VALUE)
                    }),
                    started_at: t.started_at().or(t.created_at()).map(|d| d.secs()),
                    private_ip: eni_ip(t),
                    task_arn: arn,
                }
            }));
        }
        Ok(tasks)
    }

    async fn protect(
        &self,
        task_arns: &[String],
        expires_in_minutes: i32,
    ) -> Result<(), PortError> {
        for chunk in task_arns.chunks(PROTECTION_BATCH) {
            let out = self
                .client
                .update_task_protection()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .protection_enabled(true)
                .expires_in_minutes(expires_in_minutes)
                .send()
                .await
                .map_err(|e| port_error("UpdateTaskProtection", e))?;
            // A task that stopped in the meantime is reported as MISSING: harmless.
            let failures: Vec<String> = out
                .failures()
                .iter()
                .filter(|f| f.reason() != Some("MISSING"))
                .map(|f| {
                    format!(
                        "{}: {}",
                        f.arn().unwrap_or("-"),
                        f.reason().unwrap_or("no reason")
                    )
                })
                .collect();
            if !failures.is_empty() {
                return Err(PortError(format!(
                    "UpdateTaskProtection: {}",
                    failures.join("; ")
                )));
            }
        }
        Ok(())
    }

    async fn tag_drain(&self, task_arns: &[String]) -> Result<(), PortError> {
        let tag = Tag::builder().key(DRAIN_TAG).value(DRAIN_VALUE).build();
        for arn in task_arns {
            self.client
                .tag_resource()
                .resource_arn(arn)
                .tags(tag.clone())
                .send()
                .await
                .map_err(|e| port_error("TagResource", e))?;
        }
        Ok(())
    }

    async fn untag_drain(&self, task_arns: &[String]) -> Result<(), PortError> {
        for arn in task_arns {
            self.client
                .untag_resource()
                .resource_arn(arn)
                .tag_keys(DRAIN_TAG)
                .send()
                .await
                .map_err(|e| port_error("UntagResource", e))?;
        }
        Ok(())
    }

    async fn set_desired_count(&self, count: u32) -> Result<(), PortError> {
        self.client
            .update_service()
            .cluster(&self.cluster)
            .service(&self.service)
            .desired_count(i32::try_from(count).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| port_error("UpdateService", e))?;
        Ok(())
    }
}

/// The private IPv4 address of a Fargate task's ENI attachment.
fn eni_ip(task: &aws_sdk_ecs::types::Task) -> Option<String> {
    task.attachments()
        .iter()
        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .map(str::to_string)
}

/// CloudWatch metrics in one namespace with a `Stack` dimension.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    /// The client.
    pub client: aws_sdk_cloudwatch::Client,
    /// Metric namespace (the role may publish to this one only).
    pub namespace: String,
    /// Value of the `Stack` dimension.
    pub stack: String,
}

#[async_trait]
impl Metrics for CloudWatchMetrics {
    async fn put(&self, metrics: &[Metric]) -> Result<(), PortError> {
        let dimension = Dimension::builder()
            .name(metrics::STACK_DIMENSION)
            .value(&self.stack)
            .build();
        let data = metrics
            .iter()
            .map(|m| {
                MetricDatum::builder()
                    .metric_name(m.name)
                    .value(m.value)
                    .unit(StandardUnit::Count)
                    .dimensions(dimension.clone())
                    .build()
            })
            .collect();
        self.client
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .map_err(|e| port_error("PutMetricData", e))?;
        Ok(())
    }
}

/// The DynamoDB state table (string key `pk`).
#[derive(Debug, Clone)]
pub struct DynamoState {
    /// The client.
    pub client: aws_sdk_dynamodb::Client,
    /// Table name.
    pub table: String,
}

#[async_trait]
impl StateStore for DynamoState {
    async fn get(&self, key: &str) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(STATE_TABLE_KEY, AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("GetItem", e))?;
        Ok(out.item().map(|attrs| {
            attrs
                .iter()
                .filter(|(k, _)| k.as_str() != STATE_TABLE_KEY)
                .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
                .collect()
        }))
    }

    async fn put(&self, key: &str, item: Item) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attributes(key, item)))
            .send()
            .await
            .map_err(|e| port_error("PutItem", e))?;
        Ok(())
    }

    /// `PutItem` with a `ConditionExpression`: `attribute_not_exists(#v)` (true for a
    /// missing item, and for one written before versions) or `#v = :v`. A failed
    /// condition is `ConditionalCheckFailedException`, which DynamoDB raises without
    /// writing anything; it is the lost race, reported as `Ok(false)`. See the
    /// DynamoDB Developer Guide, "Condition expressions" / "Conditional writes".
    async fn put_if(
        &self,
        key: &str,
        item: Item,
        expected: Option<&str>,
    ) -> Result<bool, PortError> {
        let call = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attributes(key, item)))
            // A placeholder, so the attribute name can never clash with DynamoDB's
            // reserved words.
            .expression_attribute_names("#v", VERSION);
        let call = match expected {
            None => call.condition_expression("attribute_not_exists(#v)"),
            Some(v) => call
                .condition_expression("#v = :v")
                .expression_attribute_values(":v", AttributeValue::S(v.to_string())),
        };
        match call.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(port_error("PutItem", e)),
        }
    }
}

/// The item's attributes as DynamoDB strings, with the key.
fn attributes(key: &str, item: Item) -> std::collections::HashMap<String, AttributeValue> {
    let mut attrs: std::collections::HashMap<String, AttributeValue> = item
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect();
    attrs.insert(STATE_TABLE_KEY.into(), AttributeValue::S(key.to_string()));
    attrs
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

/// Reads a secret's string value (the scaler's Airflow password, the Slack webhook URL). The value
/// is returned, never logged.
pub async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<String, PortError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| port_error("GetSecretValue", e))?;
    out.secret_string()
        .map(str::to_string)
        .ok_or_else(|| PortError(format!("GetSecretValue: {arn} has no string value")))
}
