//! Handler behaviour for each request type, against the in-memory store, with a local
//! TCP listener as ResponseURL.

mod common;

use common::*;
use serde_json::json;

const SECRETS: &str = "Custom::AirflowSecrets";
const URLS: &str = "Custom::AirflowConnectionUrls";

fn is_alphanumeric(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric())
}

fn values(h: &Harness) -> Vec<String> {
    SECRET_ROLES
        .iter()
        .map(|r| h.store.value(&arn(r)).unwrap_or_default())
        .collect()
}

async fn created(h: &Harness) {
    let response = h
        .answer(event("Create", SECRETS, &h.url(), secrets_props()))
        .await;
    assert_eq!(response.json()["Status"], "SUCCESS", "{}", response.text());
}

#[tokio::test]
async fn create_generates_every_secret_in_its_format() {
    let h = Harness::new(empty_store());
    let response = h
        .answer(event("Create", SECRETS, &h.url(), secrets_props()))
        .await;
    let body = response.json();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["NoEcho"], true);
    assert_eq!(
        body["PhysicalResourceId"],
        cfn_custom_resource::stable_physical_id(STACK, "AirflowSecrets")
    );
    assert_eq!(body["RequestId"], "req-Create-1");
    assert_eq!(body["LogicalResourceId"], "AirflowSecrets");
    assert_eq!(response.header("content-type"), Some(""));

    let fernet = h.store.value(&arn("FernetKeySecretArn")).unwrap();
    assert_eq!(fernet.len(), 44);
    assert!(fernet::Fernet::new(&fernet).is_some());
    for role in ["ApiSecretKeySecretArn", "JwtSecretSecretArn"] {
        let value = h.store.value(&arn(role)).unwrap();
        assert_eq!(value.len(), 86);
        assert!(is_alphanumeric(&value));
    }
    for role in [
        "DbPasswordSecretArn",
        "RedisPasswordSecretArn",
        "AdminPasswordSecretArn",
    ] {
        let value = h.store.value(&arn(role)).unwrap();
        assert_eq!(value.len(), 32);
        assert!(is_alphanumeric(&value));
    }
    h.assert_no_secret_leaked(&[]);
}

#[tokio::test]
async fn password_length_is_honoured() {
    let h = Harness::new(empty_store());
    let mut props = secrets_props();
    props["PasswordLength"] = json!("64");
    h.answer(event("Create", SECRETS, &h.url(), props)).await;
    assert_eq!(
        h.store.value(&arn("DbPasswordSecretArn")).unwrap().len(),
        64
    );
}

#[tokio::test]
async fn duplicate_create_keeps_the_first_values() {
    let h = Harness::new(empty_store());
    created(&h).await;
    let first = values(&h);
    created(&h).await;
    assert_eq!(values(&h), first);
    assert_eq!(h.store.put_count(), 6);
    let ids: Vec<_> = h
        .server
        .requests()
        .iter()
        .map(|r| r.json()["PhysicalResourceId"].clone())
        .collect();
    assert_eq!(ids[0], ids[1]);
    h.assert_no_secret_leaked(&[]);
}

#[tokio::test]
async fn create_keeps_a_value_someone_else_wrote() {
    let h = Harness::new(empty_store());
    h.store.set_value(
        &arn("FernetKeySecretArn"),
        "foreign-version",
        "EXISTING-fernet-key-value",
    );
    created(&h).await;
    assert_eq!(
        h.store.value(&arn("FernetKeySecretArn")).unwrap(),
        "EXISTING-fernet-key-value"
    );
    assert_eq!(h.store.put_count(), 5);
}

#[tokio::test]
async fn update_without_changes_regenerates_nothing() {
    let h = Harness::new(empty_store());
    created(&h).await;
    let before = values(&h);
    let mut props = secrets_props();
    props["PasswordLength"] = json!("40");
    let response = h
        .answer(update_event(&h.url(), SECRETS, props, secrets_props()))
        .await;
    assert_eq!(response.json()["Status"], "SUCCESS");
    assert_eq!(
        response.json()["PhysicalResourceId"],
        cfn_custom_resource::stable_physical_id(STACK, "AirflowSecrets")
    );
    assert_eq!(values(&h), before);
    assert_eq!(h.store.put_count(), 6);
}

#[tokio::test]
async fn update_with_a_new_rotation_token_writes_new_comma_old() {
    let h = Harness::new(empty_store());
    created(&h).await;
    let old_key = h.store.value(&arn("FernetKeySecretArn")).unwrap();
    let others: Vec<_> = values(&h)[1..].to_vec();
    let mut props = secrets_props();
    props["FernetRotation"] = json!("2026-05");
    let response = h
        .answer(update_event(
            &h.url(),
            SECRETS,
            props.clone(),
            secrets_props(),
        ))
        .await;
    assert_eq!(response.json()["Status"], "SUCCESS");
    let rotated = h.store.value(&arn("FernetKeySecretArn")).unwrap();
    let (new_key, old) = rotated.split_once(',').unwrap();
    assert_eq!(old, old_key);
    assert_ne!(new_key, old_key);
    assert!(fernet::Fernet::new(new_key).is_some());
    assert_eq!(values(&h)[1..].to_vec(), others);

    // The same Update delivered again does not rotate twice.
    h.answer(update_event(
        &h.url(),
        SECRETS,
        props.clone(),
        secrets_props(),
    ))
    .await;
    assert_eq!(h.store.value(&arn("FernetKeySecretArn")).unwrap(), rotated);

    // A later rotation keeps only the newest previous key (the current first one).
    let mut next = secrets_props();
    next["FernetRotation"] = json!("2026-06");
    h.answer(update_event(&h.url(), SECRETS, next, props)).await;
    let again = h.store.value(&arn("FernetKeySecretArn")).unwrap();
    assert_eq!(again.split(',').nth(1), Some(new_key));
    assert_eq!(again.split(',').count(), 2);
    h.assert_no_secret_leaked(&[]);
}

#[tokio::test]
async fn clearing_or_keeping_the_rotation_token_does_not_rotate() {
    let h = Harness::new(empty_store());
    created(&h).await;
    let before = values(&h);
    let mut with_token = secrets_props();
    with_token["FernetRotation"] = json!("r1");
    h.answer(update_event(
        &h.url(),
        SECRETS,
        secrets_props(),
        with_token.clone(),
    ))
    .await;
    h.answer(update_event(
        &h.url(),
        SECRETS,
        with_token.clone(),
        with_token,
    ))
    .await;
    assert_eq!(values(&h), before);
}

#[tokio::test]
async fn update_fills_a_secret_that_is_still_empty() {
    // The template replaced the admin password secret by a new, empty one.
    let mut arns: Vec<String> = SECRET_ROLES.iter().map(|r| arn(r)).collect();
    arns.push(arn("NewAdmin"));
    let refs: Vec<&str> = arns.iter().map(String::as_str).collect();
    let h = Harness::new(std::sync::Arc::new(
        airflow_secrets::MemoryStore::with_empty_secrets(&refs),
    ));
    created(&h).await;
    let before = values(&h);
    let mut props = secrets_props();
    props["AdminPasswordSecretArn"] = json!(arn("NewAdmin"));
    let response = h
        .answer(update_event(&h.url(), SECRETS, props, secrets_props()))
        .await;
    assert_eq!(response.json()["Status"], "SUCCESS");
    assert_eq!(values(&h), before, "existing values are untouched");
    let filled = h.store.value(&arn("NewAdmin")).unwrap();
    assert!(is_alphanumeric(&filled) && filled.len() == 32);
    assert_eq!(h.store.put_count(), 7);
}

#[tokio::test]
async fn delete_touches_nothing_and_echoes_any_physical_id() {
    let h = Harness::new(empty_store());
    created(&h).await;
    let before = values(&h);
    for id in [
        "airflow-dev-AirflowSecrets-INVENTED123",
        "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED",
    ] {
        let mut delete = event("Delete", SECRETS, &h.url(), json!({"Whatever": 1}));
        delete["PhysicalResourceId"] = json!(id);
        let body = h.answer(delete).await.json();
        assert_eq!(body["Status"], "SUCCESS");
        assert_eq!(body["PhysicalResourceId"], id);
    }
    let mut delete = event("Delete", "Custom::SomethingElse", &h.url(), json!({}));
    delete["PhysicalResourceId"] = json!("x");
    assert_eq!(h.answer(delete).await.json()["Status"], "SUCCESS");
    assert_eq!(values(&h), before);
    assert_eq!(h.store.put_count(), 6);
}

fn url_store() -> std::sync::Arc<airflow_secrets::MemoryStore> {
    let store = empty_store();
    store.set_value(&arn("DbPasswordSecretArn"), "v1", "p@ss:w/rd#1");
    store.set_value(&arn("RedisPasswordSecretArn"), "v1", "r@d:is/pw#1%");
    store
}

#[tokio::test]
async fn connection_urls_are_written_with_encoded_passwords() {
    let h = Harness::new(url_store());
    let body = h
        .answer(event("Create", URLS, &h.url(), url_props()))
        .await
        .json();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(
        h.store.value(&arn("SqlAlchemyConnSecretArn")).unwrap(),
        "postgresql+psycopg2://airflow:p%40ss%3Aw%2Frd%231@db.cluster-abc.us-east-1.rds.amazonaws.com:5432/airflow?sslmode=require"
    );
    assert_eq!(
        h.store.value(&arn("ResultBackendSecretArn")).unwrap(),
        "db+postgresql://airflow:p%40ss%3Aw%2Frd%231@db.cluster-abc.us-east-1.rds.amazonaws.com:5432/airflow?sslmode=require"
    );
    assert_eq!(
        h.store.value(&arn("BrokerUrlSecretArn")).unwrap(),
        "rediss://:r%40d%3Ais%2Fpw%231%25@redis.abc.cache.amazonaws.com:6379/0?ssl_cert_reqs=required"
    );
    h.assert_no_secret_leaked(&[
        "p@ss:w/rd#1",
        "p%40ss%3Aw%2Frd%231",
        "r%40d%3Ais%2Fpw%231%25",
    ]);
}

#[tokio::test]
async fn plain_redis_without_sslmode() {
    let h = Harness::new(url_store());
    let mut props = url_props();
    props["RedisTls"] = json!("false");
    props["RedisDb"] = json!("3");
    props.as_object_mut().unwrap().remove("DbSslMode");
    h.answer(event("Create", URLS, &h.url(), props)).await;
    assert_eq!(
        h.store.value(&arn("BrokerUrlSecretArn")).unwrap(),
        "redis://:r%40d%3Ais%2Fpw%231%25@redis.abc.cache.amazonaws.com:6379/3"
    );
    assert!(h
        .store
        .value(&arn("SqlAlchemyConnSecretArn"))
        .unwrap()
        .ends_with(":5432/airflow"));
}

#[tokio::test]
async fn url_update_rewrites_only_on_change_and_can_go_back() {
    let h = Harness::new(url_store());
    h.answer(event("Create", URLS, &h.url(), url_props())).await;
    assert_eq!(h.store.put_count(), 3);

    // No change: nothing written.
    h.answer(update_event(&h.url(), URLS, url_props(), url_props()))
        .await;
    assert_eq!(h.store.put_count(), 3);

    // Endpoint change: the two database URLs change, the broker does not.
    let mut moved = url_props();
    moved["DbHost"] = json!("db2.example.internal");
    let mut update = update_event(&h.url(), URLS, moved.clone(), url_props());
    update["RequestId"] = json!("req-move");
    h.answer(update).await;
    assert_eq!(h.store.put_count(), 5);
    assert!(h
        .store
        .value(&arn("SqlAlchemyConnSecretArn"))
        .unwrap()
        .contains("@db2.example.internal:5432/"));

    // Going back (the rollback Update swaps the properties) restores the old URL.
    let mut rollback = update_event(&h.url(), URLS, url_props(), moved);
    rollback["RequestId"] = json!("req-rollback");
    h.answer(rollback).await;
    assert!(h
        .store
        .value(&arn("SqlAlchemyConnSecretArn"))
        .unwrap()
        .contains("@db.cluster-abc"));
    assert_eq!(h.store.put_count(), 7);
}

#[tokio::test]
async fn url_delete_touches_nothing() {
    let h = Harness::new(url_store());
    h.answer(event("Create", URLS, &h.url(), url_props())).await;
    let body = h
        .answer(event("Delete", URLS, &h.url(), url_props()))
        .await
        .json();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(h.store.put_count(), 3);
}

/// Every error path of the handlers: FAILED, a Reason naming the problem and the log
/// stream, nothing written.
#[tokio::test]
async fn error_paths_answer_failed_with_a_helpful_reason() {
    use airflow_secrets::StoreError;
    type Case = (&'static str, &'static str, serde_json::Value, &'static str);
    let mut cases: Vec<Case> = Vec::new();
    for role in SECRET_ROLES {
        let mut props = secrets_props();
        props.as_object_mut().unwrap().remove(role);
        cases.push(("missing secret ARN", SECRETS, props, "is required"));
    }
    let with = |key: &str, value: serde_json::Value, base: serde_json::Value| {
        let mut props = base;
        props[key] = value;
        props
    };
    cases.push((
        "bad ARN",
        SECRETS,
        with("JwtSecretSecretArn", json!("not-an-arn"), secrets_props()),
        "JwtSecretSecretArn is invalid",
    ));
    cases.push((
        "short passwords",
        SECRETS,
        with("PasswordLength", json!("15"), secrets_props()),
        "PasswordLength is invalid",
    ));
    cases.push((
        "long passwords",
        SECRETS,
        with("PasswordLength", json!("129"), secrets_props()),
        "PasswordLength is invalid",
    ));
    cases.push((
        "word length",
        SECRETS,
        with("PasswordLength", json!("lots"), secrets_props()),
        "PasswordLength is invalid",
    ));
    cases.push((
        "number length",
        SECRETS,
        with("PasswordLength", json!(32), secrets_props()),
        "must be a string",
    ));
    cases.push((
        "unknown type",
        "Custom::Nope",
        secrets_props(),
        "unsupported ResourceType",
    ));
    for key in [
        "DbUser",
        "DbHost",
        "DbPort",
        "DbName",
        "RedisHost",
        "RedisPort",
        "RedisTls",
    ] {
        let mut props = url_props();
        props.as_object_mut().unwrap().remove(key);
        cases.push(("missing url prop", URLS, props, "is required"));
    }
    cases.push((
        "bad port",
        URLS,
        with("DbPort", json!("54x"), url_props()),
        "DbPort is invalid",
    ));
    cases.push((
        "port zero",
        URLS,
        with("RedisPort", json!("0"), url_props()),
        "RedisPort is invalid",
    ));
    cases.push((
        "host injection",
        URLS,
        with("DbHost", json!("evil.com/x?y=@z"), url_props()),
        "DbHost is invalid",
    ));
    cases.push((
        "bad tls",
        URLS,
        with("RedisTls", json!("yes"), url_props()),
        "RedisTls is invalid",
    ));
    cases.push((
        "bad redis db",
        URLS,
        with("RedisDb", json!("999"), url_props()),
        "RedisDb is invalid",
    ));
    cases.push((
        "bad sslmode",
        URLS,
        with("DbSslMode", json!("require&x=1"), url_props()),
        "DbSslMode is invalid",
    ));

    for (name, resource_type, props, expected) in cases {
        let h = Harness::new(url_store());
        let body = h
            .answer(event("Create", resource_type, &h.url(), props))
            .await
            .json();
        assert_eq!(body["Status"], "FAILED", "{name}");
        let reason = body["Reason"].as_str().unwrap();
        assert!(reason.contains(expected), "{name}: {reason}");
        assert!(reason.contains(LOG_STREAM), "{name}: {reason}");
        assert_eq!(h.store.put_count(), 0, "{name}");
        h.assert_no_secret_leaked(&["p%40ss%3Aw%2Frd%231"]);
    }

    // Store failures.
    let h = Harness::new(empty_store());
    h.store.fail_with(StoreError::NotFound);
    let reason = h
        .answer(event("Create", SECRETS, &h.url(), secrets_props()))
        .await
        .json()["Reason"]
        .clone();
    assert!(
        reason.as_str().unwrap().starts_with(
            "Secrets Manager DescribeSecret failed for FernetKeySecretArn: secret not found"
        ),
        "{reason}"
    );

    let h = Harness::new(url_store());
    h.store.fail_with(StoreError::Service(
        "AccessDeniedException: not allowed".into(),
    ));
    let reason = h
        .answer(event("Create", URLS, &h.url(), url_props()))
        .await
        .json()["Reason"]
        .clone();
    assert!(
        reason.as_str().unwrap().contains("AccessDeniedException"),
        "{reason}"
    );

    // Connection URLs before the passwords exist.
    let h = Harness::new(empty_store());
    let body = h
        .answer(event("Create", URLS, &h.url(), url_props()))
        .await
        .json();
    assert_eq!(body["Status"], "FAILED");
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .contains("DbPasswordSecretArn has no value yet"),
        "{body}"
    );

    // A secret that does not exist at all.
    let h = Harness::new(std::sync::Arc::new(airflow_secrets::MemoryStore::default()));
    let body = h
        .answer(event("Create", SECRETS, &h.url(), secrets_props()))
        .await
        .json();
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .contains("secret not found"),
        "{body}"
    );
}
