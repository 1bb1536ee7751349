//! Forged requests: an event that CloudFormation did not send (its resource is not in
//! the stack, has another type, is not being created or updated, or the stack is in
//! another account) is answered FAILED before any secret is read or written; a
//! genuine one proceeds; hosts outside the stack are refused.

mod common;

use std::sync::Arc;

use cfn_custom_resource::origin::fake::FakeStacks;
use cfn_custom_resource::origin::LookupError;
use common::*;
use serde_json::{json, Value};

const URLS: &str = "Custom::AirflowConnectionUrls";
const SECRETS: &str = "Custom::AirflowSecrets";

fn url_store() -> Arc<airflow_secrets::MemoryStore> {
    let store = empty_store();
    store.set_value(
        &arn("DatabaseSecretArn"),
        "v1",
        r#"{"airflow_password":"App1Pass2Word3","password":"p@ss:w/rd#1"}"#,
    );
    store.set_value(
        &arn("RedisSecretArn"),
        "v1",
        r#"{"password":"r3dis-pw-123"}"#,
    );
    store
}

/// A ConnectionUrls Create naming the real secrets and a database host that passes the
/// host rules (any RDS endpoint, an attacker's own included): only the origin check
/// stands between it and a URL with the real password.
fn forged(h: &Harness) -> Value {
    let mut props = url_props();
    props["DbHost"] = json!("db.cluster-abc.us-east-1.rds.amazonaws.com");
    event("Create", URLS, &h.url(), props)
}

/// Answers `event` with CloudFormation answering from `stacks`; returns the response
/// body, after checking that no secret was read into a response or log.
async fn refused(stacks: FakeStacks, event: impl Fn(&Harness) -> Value) -> (Value, Harness) {
    let mut h = Harness::new(url_store());
    let stacks = Arc::new(stacks);
    h.stacks = Some(stacks.clone());
    let body = h.answer(event(&h)).await.json();
    assert_eq!(body["Status"], "FAILED", "{body}");
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .starts_with("request refused: "),
        "{body}"
    );
    assert_eq!(h.store.put_count(), 0, "nothing written");
    h.assert_no_secret_leaked(&["p@ss:w/rd#1", "r3dis-pw-123"]);
    (body, h)
}

#[tokio::test]
async fn a_resource_missing_from_the_stack_is_refused() {
    // The stack exists but has no such logical id.
    let stacks = FakeStacks::with(STACK, "Other", URLS, "CREATE_IN_PROGRESS");
    let (body, _) = refused(stacks, forged).await;
    assert_eq!(
        body["Reason"].as_str().unwrap(),
        format!(
            "request refused: CloudFormation has no resource AirflowSecrets in stack {STACK}, \
             so it did not send this request (see CloudWatch log stream {LOG_STREAM})"
        )
    );
}

#[tokio::test]
async fn a_resource_of_another_type_is_refused() {
    let stacks = FakeStacks::with(STACK, "AirflowSecrets", SECRETS, "CREATE_IN_PROGRESS");
    let (body, _) = refused(stacks, forged).await;
    assert!(body["Reason"]
        .as_str()
        .unwrap()
        .contains("is a Custom::AirflowSecrets, not the Custom::AirflowConnectionUrls"));
}

#[tokio::test]
async fn a_resource_that_is_not_in_progress_is_refused() {
    for status in ["CREATE_COMPLETE", "UPDATE_COMPLETE", "CREATE_FAILED"] {
        let stacks = FakeStacks::with(STACK, "AirflowSecrets", URLS, status);
        let (body, _) = refused(stacks, forged).await;
        assert!(
            body["Reason"]
                .as_str()
                .unwrap()
                .contains(&format!("AirflowSecrets is {status}, not being created")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_stack_of_another_account_is_refused_without_asking() {
    let other = "arn:aws:cloudformation:us-east-1:999999999999:stack/airflow-dev/1b2c";
    let stacks = FakeStacks::with(other, "AirflowSecrets", URLS, "CREATE_IN_PROGRESS");
    let (body, h) = refused(stacks, |h| {
        let mut e = forged(h);
        e["StackId"] = json!(other);
        e
    })
    .await;
    assert!(body["Reason"]
        .as_str()
        .unwrap()
        .contains("is not in this function's account 123456789012 and region us-east-1"));
    assert_eq!(h.stacks.unwrap().call_count(), 0);
}

#[tokio::test]
async fn an_unconfirmable_request_is_refused() {
    let stacks = FakeStacks {
        error: Some(LookupError("AccessDenied: not authorized".into())),
        ..FakeStacks::default()
    };
    let (body, _) = refused(stacks, forged).await;
    assert!(body["Reason"].as_str().unwrap().contains("AccessDenied"));
}

#[tokio::test]
async fn the_generator_is_refused_too() {
    let stacks = FakeStacks::with(STACK, "AirflowSecrets", SECRETS, "CREATE_COMPLETE");
    refused(stacks, |h| {
        event("Create", SECRETS, &h.url(), secrets_props())
    })
    .await;
}

#[tokio::test]
async fn a_genuine_request_proceeds() {
    let mut h = Harness::new(url_store());
    let stacks = Arc::new(FakeStacks::with(
        STACK,
        "AirflowSecrets",
        URLS,
        "UPDATE_IN_PROGRESS",
    ));
    h.stacks = Some(stacks.clone());
    let body = h
        .answer(update_event(&h.url(), URLS, url_props(), url_props()))
        .await
        .json();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(h.store.put_count(), 2);
    assert_eq!(
        *stacks.calls.lock().unwrap(),
        vec![(STACK.to_owned(), "AirflowSecrets".to_owned())]
    );
}

#[tokio::test]
async fn delete_is_not_checked_and_succeeds() {
    // CloudFormation would refuse every lookup: Delete must still succeed.
    let mut h = Harness::new(url_store());
    let stacks = Arc::new(FakeStacks {
        error: Some(LookupError("AccessDenied".into())),
        ..FakeStacks::default()
    });
    h.stacks = Some(stacks.clone());
    let body = h
        .answer(event("Delete", URLS, &h.url(), url_props()))
        .await
        .json();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(stacks.call_count(), 0);
}

#[tokio::test]
async fn hosts_outside_the_stack_are_refused_even_in_a_genuine_request() {
    for (property, host, expected) in [
        (
            "DbHost",
            "attacker.example.com",
            "an RDS endpoint (*.rds.amazonaws.com)",
        ),
        (
            "RedisHost",
            "attacker.example.com",
            "an ElastiCache endpoint (*.cache.amazonaws.com)",
        ),
    ] {
        let h = Harness::new(url_store());
        let mut props = url_props();
        props[property] = json!(host);
        let body = h
            .answer(event("Create", URLS, &h.url(), props))
            .await
            .json();
        assert_eq!(body["Status"], "FAILED", "{body}");
        let reason = body["Reason"].as_str().unwrap();
        assert!(
            reason.contains(property) && reason.contains(expected),
            "{reason}"
        );
        assert!(!reason.contains(host), "the value is not echoed: {reason}");
        assert_eq!(h.store.put_count(), 0);
    }
}
