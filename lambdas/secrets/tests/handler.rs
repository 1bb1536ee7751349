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

    let signing = h.doc("SigningKeysSecretArn");
    assert_eq!(
        signing.keys().collect::<Vec<_>>(),
        ["api_secret_key", "jwt_secret"]
    );
    for key in ["api_secret_key", "jwt_secret"] {
        let value = signing[key].as_str().unwrap();
        assert_eq!(value.len(), 86);
        assert!(is_alphanumeric(value));
    }
    assert_ne!(signing["api_secret_key"], signing["jwt_secret"]);

    for (role, keys) in [
        ("DatabaseSecretArn", &["airflow_password", "password"][..]),
        ("RedisSecretArn", &["password"][..]),
    ] {
        let doc = h.doc(role);
        // Sorted: serde_json keeps insertion order when a crate of the build enables
        // its `preserve_order` feature, and sorts keys otherwise.
        let mut found: Vec<_> = doc.keys().collect();
        found.sort();
        assert_eq!(found, keys, "{role}");
        for key in keys {
            let value = doc[*key].as_str().unwrap();
            assert_eq!(value.len(), 32);
            assert!(is_alphanumeric(value));
        }
    }
    let database = h.doc("DatabaseSecretArn");
    assert_ne!(database["password"], h.doc("RedisSecretArn")["password"]);
    assert_ne!(database["password"], database["airflow_password"]);
    let admin = h.store.value(&arn("AdminPasswordSecretArn")).unwrap();
    assert_eq!(admin.len(), 32);
    assert!(is_alphanumeric(&admin));
    assert_eq!(h.store.put_count(), 5);
    h.assert_no_secret_leaked(&[]);
}

#[tokio::test]
async fn password_length_is_honoured() {
    let h = Harness::new(empty_store());
    let mut props = secrets_props();
    props["PasswordLength"] = json!("64");
    h.answer(event("Create", SECRETS, &h.url(), props)).await;
    for role in ["DatabaseSecretArn", "RedisSecretArn"] {
        assert_eq!(h.doc(role)["password"].as_str().unwrap().len(), 64);
    }
    assert_eq!(
        h.store.value(&arn("AdminPasswordSecretArn")).unwrap().len(),
        64
    );
    // Signing keys do not follow PasswordLength.
    assert_eq!(
        h.doc("SigningKeysSecretArn")["jwt_secret"]
            .as_str()
            .unwrap()
            .len(),
        86
    );
}

#[tokio::test]
async fn duplicate_create_keeps_the_first_values() {
    let h = Harness::new(empty_store());
    created(&h).await;
    let first = values(&h);
    created(&h).await;
    assert_eq!(values(&h), first);
    assert_eq!(h.store.put_count(), 5);
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
    assert_eq!(h.store.put_count(), 4);
}

#[tokio::test]
async fn a_json_secret_that_already_has_its_keys_is_kept() {
    let h = Harness::new(empty_store());
    let database = r#"{"airflow_password":"PrefilledAppPassw0rd","password":"PrefilledDbPassw0rd","username":"airflow"}"#;
    let signing = r#"{"api_secret_key":"PrefilledApiKey1","jwt_secret":"PrefilledJwtKey1"}"#;
    h.store
        .set_value(&arn("DatabaseSecretArn"), "foreign-db", database);
    h.store
        .set_value(&arn("SigningKeysSecretArn"), "foreign-signing", signing);
    created(&h).await;
    assert_eq!(h.store.value(&arn("DatabaseSecretArn")).unwrap(), database);
    assert_eq!(
        h.store.value(&arn("SigningKeysSecretArn")).unwrap(),
        signing
    );
    assert_eq!(h.store.put_count(), 3, "only the other three are written");
    // And again on Update.
    h.answer(update_event(
        &h.url(),
        SECRETS,
        secrets_props(),
        secrets_props(),
    ))
    .await;
    assert_eq!(h.store.value(&arn("DatabaseSecretArn")).unwrap(), database);
    assert_eq!(h.store.put_count(), 3);
    h.assert_no_secret_leaked(&[]);
}

#[tokio::test]
async fn missing_json_keys_are_added_and_every_other_key_is_kept() {
    let h = Harness::new(empty_store());
    // A database secret with unrelated keys (and a non-string one), a signing secret
    // holding only one of its two keys, a Redis secret with an empty password.
    h.store.set_value(
        &arn("DatabaseSecretArn"),
        "foreign-db",
        r#"{"username":"airflow","engine":"postgres","port":5432,"nested":{"a":"b"}}"#,
    );
    h.store.set_value(
        &arn("SigningKeysSecretArn"),
        "foreign-signing",
        r#"{"jwt_secret":"KeptJwtSecretValue","note":"hand-written"}"#,
    );
    h.store.set_value(
        &arn("RedisSecretArn"),
        "foreign-redis",
        r#"{"password":""}"#,
    );
    created(&h).await;

    let database: serde_json::Value =
        serde_json::from_str(&h.store.value(&arn("DatabaseSecretArn")).unwrap()).unwrap();
    assert_eq!(database["username"], "airflow");
    assert_eq!(database["engine"], "postgres");
    assert_eq!(database["port"], 5432);
    assert_eq!(database["nested"], json!({"a": "b"}));
    let password = database["password"].as_str().unwrap();
    assert!(password.len() == 32 && is_alphanumeric(password));
    let airflow_password = database["airflow_password"].as_str().unwrap();
    assert!(airflow_password.len() == 32 && is_alphanumeric(airflow_password));
    assert_eq!(database.as_object().unwrap().len(), 6);

    let signing = h.doc("SigningKeysSecretArn");
    assert_eq!(signing["jwt_secret"], "KeptJwtSecretValue");
    assert_eq!(signing["note"], "hand-written");
    let api = signing["api_secret_key"].as_str().unwrap();
    assert!(api.len() == 86 && is_alphanumeric(api));

    let redis = h.doc("RedisSecretArn")["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(redis.len() == 32 && is_alphanumeric(&redis));

    // A duplicate Create adds nothing more.
    let before = values(&h);
    let puts = h.store.put_count();
    created(&h).await;
    assert_eq!(values(&h), before);
    assert_eq!(h.store.put_count(), puts);
    h.assert_no_secret_leaked(&[]);
}

#[tokio::test]
async fn racing_duplicate_creates_store_one_value_per_secret() {
    // Two deliveries of the same Create run at once and both find every secret empty;
    // each generates its own values, but both write under the same version ids, so
    // the second write of each secret conflicts and the first one's values stand.
    let store = empty_store();
    store.delay_calls(std::time::Duration::from_millis(30));
    let a = Harness::new(store.clone());
    let b = Harness::new(store.clone());
    let (ra, rb) = tokio::join!(
        a.invoke(event("Create", SECRETS, &a.url(), secrets_props())),
        b.invoke(event("Create", SECRETS, &b.url(), secrets_props())),
    );
    assert!(ra.is_ok() && rb.is_ok());
    for h in [&a, &b] {
        let body = h.server.wait_for(1, std::time::Duration::from_secs(5))[0].json();
        assert_eq!(body["Status"], "SUCCESS", "{body}");
    }
    assert_eq!(store.put_count(), 5);
    assert_eq!(store.all_values().len(), 5, "one version per secret");
    for role in JSON_ROLES {
        parse_flat(&store.value(&arn(role)).unwrap());
    }
}

#[tokio::test]
async fn a_database_secret_from_before_the_airflow_user_gets_its_password_on_update() {
    // A stack deployed before the Airflow database user existed: its generator wrote
    // the master password alone, under the resource's initial version. (Simulated by
    // taking the key out of a current Create's value: the initial version exists, and
    // the current value lacks the key.)
    let h = Harness::new(empty_store());
    created(&h).await;
    let mut older = h.doc("DatabaseSecretArn");
    older.remove("airflow_password");
    let older = serde_json::to_string(&older).unwrap();
    h.store
        .set_value(&arn("DatabaseSecretArn"), "older-release", &older);
    let writes = h.store.put_count();
    let update = || update_event(&h.url(), SECRETS, secrets_props(), secrets_props());
    let body = h.answer(update()).await.json();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    let database = h.doc("DatabaseSecretArn");
    let master: serde_json::Value = serde_json::from_str(&older).unwrap();
    assert_eq!(
        database["password"], master["password"],
        "the master password is kept"
    );
    let airflow = database["airflow_password"].as_str().unwrap();
    assert!(airflow.len() == 32 && is_alphanumeric(airflow));
    assert_eq!(h.store.put_count(), writes + 1);
    // A redelivered Update writes nothing more.
    h.answer(update()).await;
    assert_eq!(h.store.put_count(), writes + 1);
    assert_eq!(h.doc("DatabaseSecretArn")["airflow_password"], airflow);
    h.assert_no_secret_leaked(&[]);
}

#[tokio::test]
async fn a_written_key_removed_by_hand_is_not_regenerated() {
    let h = Harness::new(empty_store());
    created(&h).await;
    let original = h.store.value(&arn("DatabaseSecretArn")).unwrap();
    h.store.set_value(
        &arn("DatabaseSecretArn"),
        "edited-by-hand",
        r#"{"username":"airflow"}"#,
    );
    let body = h
        .answer(update_event(
            &h.url(),
            SECRETS,
            secrets_props(),
            secrets_props(),
        ))
        .await
        .json();
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("DatabaseSecretArn lost the \"password\" this resource wrote"),
        "{reason}"
    );
    assert_eq!(
        h.store.value(&arn("DatabaseSecretArn")).unwrap(),
        r#"{"username":"airflow"}"#,
        "no second, different password is written"
    );
    assert_eq!(h.store.put_count(), 5);
    h.assert_no_secret_leaked(&[&original]);
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
    assert_eq!(h.store.put_count(), 5);
}

#[tokio::test]
async fn update_with_a_new_rotation_token_writes_new_comma_every_current_key() {
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

    // A second rotation before the re-encryption keeps every key data may still need:
    // new, then the previous new, then the original.
    let mut next = secrets_props();
    next["FernetRotation"] = json!("2026-06");
    h.answer(update_event(&h.url(), SECRETS, next, props)).await;
    let again = h.store.value(&arn("FernetKeySecretArn")).unwrap();
    let keys: Vec<&str> = again.split(',').collect();
    assert_eq!(keys.len(), 3, "{} keys", keys.len());
    assert_eq!(&keys[1..], [new_key, old_key.as_str()]);
    assert!(fernet::Fernet::new(keys[0]).is_some());
    assert!(!keys[1..].contains(&keys[0]));
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
    assert_eq!(h.store.put_count(), 6);
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
    assert_eq!(h.store.put_count(), 5);
}

const DB_DOC: &str =
    r#"{"airflow_password":"App1Pass2Word3","password":"p@ss:w/rd#1","username":"airflow"}"#;
/// The Airflow database user's URL in [`DB_DOC`]'s secret.
const AIRFLOW_DB_URL: &str = "postgresql+psycopg2://airflow%5Fapp:App1Pass2Word3@db.cluster-abc.us-east-1.rds.amazonaws.com:5432/airflow?sslmode=require";
const REDIS_DOC: &str = r#"{"password":"r@d:is/pw#1%","broker_url":"redis://stale"}"#;
const DB_URL: &str = "postgresql+psycopg2://airflow:p%40ss%3Aw%2Frd%231@db.cluster-abc.us-east-1.rds.amazonaws.com:5432/airflow?sslmode=require";
const BROKER: &str =
    "rediss://:r%40d%3Ais%2Fpw%231%25@redis.abc.cache.amazonaws.com:6379/0?ssl_cert_reqs=required";

/// JSON secrets as `Custom::AirflowSecrets` leaves them, plus an unrelated key in the
/// database one and a stale URL in the Redis one.
fn url_store() -> std::sync::Arc<airflow_secrets::MemoryStore> {
    let store = empty_store();
    store.set_value(&arn("DatabaseSecretArn"), "v1", DB_DOC);
    store.set_value(&arn("RedisSecretArn"), "v1", REDIS_DOC);
    store
}

#[tokio::test]
async fn connection_urls_are_written_into_the_json_secrets() {
    let h = Harness::new(url_store());
    let body = h
        .answer(event("Create", URLS, &h.url(), url_props()))
        .await
        .json();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    let database = h.doc("DatabaseSecretArn");
    assert_eq!(database["sql_alchemy_conn"], DB_URL);
    assert_eq!(database["airflow_sql_alchemy_conn"], AIRFLOW_DB_URL);
    assert_eq!(database["password"], "p@ss:w/rd#1", "password untouched");
    assert_eq!(database["airflow_password"], "App1Pass2Word3");
    assert_eq!(database["username"], "airflow", "other keys kept");
    assert_eq!(database.len(), 5);
    assert!(!database.contains_key("result_backend"));
    let redis = h.doc("RedisSecretArn");
    assert_eq!(redis["broker_url"], BROKER);
    assert_eq!(redis["password"], "r@d:is/pw#1%");
    assert_eq!(redis.len(), 2);
    assert_eq!(h.store.put_count(), 2);
    // Nothing else was touched.
    for role in [
        "FernetKeySecretArn",
        "SigningKeysSecretArn",
        "AdminPasswordSecretArn",
    ] {
        assert_eq!(h.store.value(&arn(role)), None, "{role}");
    }
    h.assert_no_secret_leaked(&[
        "p@ss:w/rd#1",
        "p%40ss%3Aw%2Frd%231",
        "r%40d%3Ais%2Fpw%231%25",
    ]);
}

#[tokio::test]
async fn connection_urls_after_the_generator() {
    // The real order: Custom::AirflowSecrets fills the secrets, then the URLs follow.
    let h = Harness::new(empty_store());
    created(&h).await;
    let before = (h.doc("DatabaseSecretArn"), h.doc("RedisSecretArn"));
    let mut urls = event("Create", URLS, &h.url(), url_props());
    urls["LogicalResourceId"] = json!("ConnectionUrls");
    assert_eq!(h.answer(urls).await.json()["Status"], "SUCCESS");
    let (database, redis) = (h.doc("DatabaseSecretArn"), h.doc("RedisSecretArn"));
    let db_password = before.0["password"].as_str().unwrap();
    let redis_password = before.1["password"].as_str().unwrap();
    assert_eq!(database["password"], db_password);
    assert_eq!(
        database["sql_alchemy_conn"],
        format!("postgresql+psycopg2://airflow:{db_password}@db.cluster-abc.us-east-1.rds.amazonaws.com:5432/airflow?sslmode=require")
    );
    assert_eq!(redis["password"], redis_password);
    assert_eq!(
        redis["broker_url"],
        format!("rediss://:{redis_password}@redis.abc.cache.amazonaws.com:6379/0?ssl_cert_reqs=required")
    );
    // A generator Update afterwards keeps the URLs and the passwords.
    let after_urls = values(&h);
    h.answer(update_event(
        &h.url(),
        SECRETS,
        secrets_props(),
        secrets_props(),
    ))
    .await;
    assert_eq!(values(&h), after_urls);
    assert_eq!(h.store.put_count(), 7);
    h.assert_no_secret_leaked(&[]);
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
        h.doc("RedisSecretArn")["broker_url"],
        "redis://:r%40d%3Ais%2Fpw%231%25@redis.abc.cache.amazonaws.com:6379/3"
    );
    assert_eq!(
        h.doc("DatabaseSecretArn")["sql_alchemy_conn"],
        "postgresql+psycopg2://airflow:p%40ss%3Aw%2Frd%231@db.cluster-abc.us-east-1.rds.amazonaws.com:5432/airflow"
    );
}

#[tokio::test]
async fn url_update_rewrites_only_on_change_and_can_go_back() {
    let h = Harness::new(url_store());
    h.answer(event("Create", URLS, &h.url(), url_props())).await;
    assert_eq!(h.store.put_count(), 2);

    // No change: nothing written.
    h.answer(update_event(&h.url(), URLS, url_props(), url_props()))
        .await;
    assert_eq!(h.store.put_count(), 2);

    // Endpoint change: the database URL changes, the broker does not; the password
    // and the other keys stay.
    let redis_before = h.store.value(&arn("RedisSecretArn")).unwrap();
    let mut moved = url_props();
    moved["DbHost"] = json!("db2.cluster-abc.us-east-1.rds.amazonaws.com");
    let mut update = update_event(&h.url(), URLS, moved.clone(), url_props());
    update["RequestId"] = json!("req-move");
    h.answer(update).await;
    assert_eq!(h.store.put_count(), 3);
    let database = h.doc("DatabaseSecretArn");
    assert_eq!(
        database["sql_alchemy_conn"],
        DB_URL.replace(
            "@db.cluster-abc.us-east-1.rds.amazonaws.com:",
            "@db2.cluster-abc.us-east-1.rds.amazonaws.com:"
        )
    );
    assert_eq!(database["password"], "p@ss:w/rd#1");
    assert_eq!(database["username"], "airflow");
    assert_eq!(h.store.value(&arn("RedisSecretArn")).unwrap(), redis_before);

    // Going back (the rollback Update swaps the properties) restores the old URL.
    let mut rollback = update_event(&h.url(), URLS, url_props(), moved);
    rollback["RequestId"] = json!("req-rollback");
    h.answer(rollback).await;
    assert_eq!(h.doc("DatabaseSecretArn")["sql_alchemy_conn"], DB_URL);
    assert_eq!(h.store.put_count(), 4);

    // A redelivered Update (same RequestId) after the write changes nothing.
    let mut again = update_event(&h.url(), URLS, url_props(), url_props());
    again["RequestId"] = json!("req-rollback");
    h.answer(again).await;
    assert_eq!(h.store.put_count(), 4);

    // A Redis endpoint change rewrites only the broker URL.
    let mut redis_moved = url_props();
    redis_moved["RedisPort"] = json!("6380");
    let mut update = update_event(&h.url(), URLS, redis_moved, url_props());
    update["RequestId"] = json!("req-redis");
    h.answer(update).await;
    assert_eq!(h.store.put_count(), 5);
    assert_eq!(
        h.doc("RedisSecretArn")["broker_url"],
        BROKER.replace(":6379/", ":6380/")
    );
    assert_eq!(h.doc("RedisSecretArn")["password"], "r@d:is/pw#1%");
    h.assert_no_secret_leaked(&["p%40ss%3Aw%2Frd%231", "r%40d%3Ais%2Fpw%231%25"]);
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
    assert_eq!(h.store.put_count(), 2);
}

/// Malformed or unexpected JSON in a secret: FAILED with a reason naming the secret
/// (never its value), nothing written, for both resource types.
#[tokio::test]
async fn malformed_json_secrets_fail_without_revealing_the_value() {
    const HIDDEN: &str = "HiddenPassw0rdValue";
    type Case = (&'static str, String, &'static str);
    let cases: Vec<Case> = vec![
        (
            "DatabaseSecretArn",
            format!(r#"{{"password":"{HIDDEN}"#),
            "DatabaseSecretArn does not hold valid JSON (unexpected end of input at line 1 column",
        ),
        (
            "RedisSecretArn",
            format!(r#"{{"password":{HIDDEN}}}"#),
            "RedisSecretArn does not hold valid JSON (syntax error at line 1 column",
        ),
        (
            "DatabaseSecretArn",
            HIDDEN.to_owned(),
            "DatabaseSecretArn does not hold valid JSON",
        ),
        (
            "SigningKeysSecretArn",
            format!(r#"["{HIDDEN}"]"#),
            "SigningKeysSecretArn holds an array, not a JSON object of strings",
        ),
        (
            "RedisSecretArn",
            format!(r#""{HIDDEN}""#),
            "RedisSecretArn holds a string, not a JSON object of strings",
        ),
        (
            "DatabaseSecretArn",
            format!(r#"{{"password":["{HIDDEN}"]}}"#),
            "DatabaseSecretArn holds an array under \"password\", not a string",
        ),
        (
            "SigningKeysSecretArn",
            format!(r#"{{"api_secret_key":"{HIDDEN}","jwt_secret":7}}"#),
            "SigningKeysSecretArn holds a number under \"jwt_secret\", not a string",
        ),
    ];
    for (role, value, expected) in cases {
        for resource_type in [SECRETS, URLS] {
            if role == "SigningKeysSecretArn" && resource_type == URLS {
                continue;
            }
            let store = url_store();
            store.set_value(&arn(role), "hand-edited", &value);
            let h = Harness::new(store);
            let body = h
                .answer(event("Create", resource_type, &h.url(), {
                    if resource_type == SECRETS {
                        secrets_props()
                    } else {
                        url_props()
                    }
                }))
                .await
                .json();
            assert_eq!(body["Status"], "FAILED", "{role} {resource_type} {value}");
            let reason = body["Reason"].as_str().unwrap();
            assert!(reason.contains(expected), "{resource_type}: {reason}");
            assert!(reason.contains(LOG_STREAM), "{reason}");
            assert!(!reason.contains("Hidden"), "{reason}");
            assert_eq!(h.store.value(&arn(role)).unwrap(), value, "left as it is");
            if resource_type == URLS {
                assert_eq!(h.store.put_count(), 0, "nothing written: {role}");
            }
            h.assert_no_secret_leaked(&[HIDDEN, "p%40ss%3Aw%2Frd%231"]);
        }
    }

    // URLs before the passwords exist: an empty secret, or a document without one.
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
            .contains("the secret named by DatabaseSecretArn has no value yet"),
        "{body}"
    );
    let store = url_store();
    store.set_value(&arn("RedisSecretArn"), "v2", r#"{"broker_url":"x"}"#);
    let h = Harness::new(store);
    let body = h
        .answer(event("Create", URLS, &h.url(), url_props()))
        .await
        .json();
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .contains("the secret named by RedisSecretArn has no \"password\" yet"),
        "{body}"
    );
    assert_eq!(
        h.store.put_count(),
        0,
        "the database URL is not written either"
    );
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
        with("SigningKeysSecretArn", json!("not-an-arn"), secrets_props()),
        "SigningKeysSecretArn is invalid",
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
        "DatabaseSecretArn",
        "RedisSecretArn",
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
        "old URL properties only",
        URLS,
        json!({
            "DbPasswordSecretArn": arn("DatabaseSecretArn"),
            "SqlAlchemyConnSecretArn": arn("DatabaseSecretArn"),
        }),
        "DatabaseSecretArn is required",
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
            .contains("DatabaseSecretArn has no value yet"),
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

/// A stack that runs the scaler passes a sixth secret: it gets its own password, once.
#[tokio::test]
async fn the_scaler_password_is_generated_once_when_the_stack_has_one() {
    const SCALER: &str = "ScalerPasswordSecretArn";
    let mut arns: Vec<String> = SECRET_ROLES.iter().map(|r| arn(r)).collect();
    arns.push(arn(SCALER));
    let refs: Vec<&str> = arns.iter().map(String::as_str).collect();
    let h = Harness::new(std::sync::Arc::new(
        airflow_secrets::store::MemoryStore::with_empty_secrets(&refs),
    ));
    let mut props = secrets_props();
    props[SCALER] = json!(arn(SCALER));
    h.answer(event("Create", SECRETS, &h.url(), props.clone()))
        .await;
    let scaler = h.store.value(&arn(SCALER)).unwrap();
    assert_eq!(scaler.len(), 32);
    assert!(is_alphanumeric(&scaler));
    assert_ne!(
        scaler,
        h.store.value(&arn("AdminPasswordSecretArn")).unwrap(),
        "not the admin's"
    );
    assert_eq!(h.store.put_count(), 6);
    // A repeated Create and an Update keep it.
    h.answer(event("Create", SECRETS, &h.url(), props.clone()))
        .await;
    let mut update = event("Update", SECRETS, &h.url(), props.clone());
    update["OldResourceProperties"] = props;
    h.answer(update).await;
    assert_eq!(h.store.value(&arn(SCALER)).unwrap(), scaler);
    assert_eq!(h.store.put_count(), 6);
    h.assert_no_secret_leaked(&[]);
}
