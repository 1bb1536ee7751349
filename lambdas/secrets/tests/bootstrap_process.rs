//! The built Lambda binary (`bootstrap` in the zip) as a real process: a local Lambda
//! Runtime API, the AWS emulator as Secrets Manager and CloudFormation, a local HTTP
//! server as ResponseURL.
//!
//! Needs the emulator (see `common::moto`); fails, never skips, without it.
//! `cargo test -p airflow-secrets --test bootstrap_process -- --nocapture` prints the
//! cold-start and Create timings; set AIRFLOW_SECRETS_BOOTSTRAP to time another build
//! (e.g. the size-optimised one from lambdas/build.sh).

mod common;

use std::time::{Duration, Instant};

use cfn_custom_resource::testing::{CaptureServer, CapturedRequest};
use common::moto::{self, Moto};
use common::runtime_api::{Function, RuntimeApi};
use common::{event, update_event, STACK};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

struct Secrets {
    arns: Value,
}

/// The five secrets, empty as the template creates them, except those in `prefilled`.
async fn create_secrets(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    prefilled: &[(&str, &str)],
) -> Secrets {
    let mut arns = json!({});
    for role in common::SECRET_ROLES {
        let name = format!("{prefix}/{role}");
        arns[role] = match prefilled.iter().find(|(r, _)| *r == role) {
            Some((_, value)) => json!(moto::secret_with_value(client, &name, value).await),
            None => json!(moto::empty_secret(client, &name).await),
        };
    }
    Secrets { arns }
}

impl Secrets {
    fn props(&self, keys: &[&str]) -> Value {
        let mut props = json!({"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:airflow-secrets"});
        for key in keys {
            props[key] = self.arns[key].clone();
        }
        props
    }

    fn secrets_props(&self) -> Value {
        self.props(&common::SECRET_ROLES)
    }

    fn url_props(&self) -> Value {
        let mut props = common::url_props();
        for key in ["DatabaseSecretArn", "RedisSecretArn"] {
            props[key] = self.arns[key].clone();
        }
        props
    }

    fn arn(&self, role: &str) -> String {
        self.arns[role].as_str().unwrap().to_string()
    }

    /// The AWSCURRENT value of a JSON-object secret, as a flat object of strings.
    async fn doc(
        &self,
        client: &aws_sdk_secretsmanager::Client,
        role: &str,
    ) -> serde_json::Map<String, Value> {
        common::parse_flat(&moto::value(client, &self.arn(role)).await)
    }
}

/// Sends one event through the runtime API, as CloudFormation does (the resource it
/// names is in progress meanwhile), and returns the ResponseURL PUT.
fn round_trip(
    moto: &Moto,
    api: &RuntimeApi,
    responses: &CaptureServer,
    event: &Value,
) -> CapturedRequest {
    moto.cloudformation_status(event, false);
    let before = responses.requests().len();
    let id = api.queue(event);
    let posted = api
        .wait_result(&id, WAIT)
        .expect("the function reports a result to the runtime API");
    assert_eq!(posted.kind, "response", "{}", posted.body);
    let seen = responses.wait_for(before + 1, WAIT);
    assert!(seen.len() > before, "no ResponseURL PUT");
    let put = seen[before].clone();
    assert_eq!(put.method, "PUT");
    assert_eq!(
        put.header("content-type"),
        Some(""),
        "empty Content-Type is required by S3 presigned URLs"
    );
    assert_eq!(
        put.header("content-length"),
        Some(put.body.len().to_string().as_str())
    );
    moto.cloudformation_status(event, true);
    put
}

fn alphanumeric(value: &str, length: usize) -> bool {
    value.len() == length && value.chars().all(|c| c.is_ascii_alphanumeric())
}

fn assert_not_in(haystack: &str, secrets: &[String], what: &str) {
    for secret in secrets {
        for part in secret.split(',') {
            assert!(
                !haystack.contains(part),
                "a secret value leaked into {what}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_against_moto() {
    let moto = Moto::start();
    let client = moto::client(&moto.endpoint).await;
    // The database secret starts with an unrelated key, which every write keeps.
    let secrets = create_secrets(
        &client,
        "lifecycle",
        &[("DatabaseSecretArn", r#"{"username":"airflow"}"#)],
    )
    .await;
    let api = RuntimeApi::start();
    let responses = CaptureServer::start(vec![]);
    let url = responses.url("/cloudformation/cfnresponse?X-Amz-Signature=f00");
    let function = Function::spawn(&api, &moto.endpoint);

    // Create.
    let started = Instant::now();
    let put = round_trip(
        &moto,
        &api,
        &responses,
        &event(
            "Create",
            "Custom::AirflowSecrets",
            &url,
            secrets.secrets_props(),
        ),
    );
    let create_took = started.elapsed();
    let body = put.json();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(body["NoEcho"], true);
    assert_eq!(body["StackId"], STACK);
    let physical_id = body["PhysicalResourceId"].as_str().unwrap().to_string();

    let fernet_key = moto::value(&client, &secrets.arn("FernetKeySecretArn")).await;
    assert_eq!(
        fernet::Fernet::new(&fernet_key).map(|_| ()),
        Some(()),
        "Fernet key decodes to 32 bytes"
    );
    assert_eq!(fernet_key.len(), 44);
    let signing = secrets.doc(&client, "SigningKeysSecretArn").await;
    assert_eq!(signing.len(), 2);
    let mut generated = vec![fernet_key.clone()];
    for key in ["api_secret_key", "jwt_secret"] {
        let value = signing[key].as_str().unwrap();
        assert!(alphanumeric(value, 86), "{key}");
        generated.push(value.to_owned());
    }
    let database = secrets.doc(&client, "DatabaseSecretArn").await;
    assert_eq!(database["username"], "airflow", "the unrelated key is kept");
    assert_eq!(database.len(), 3, "username, password, airflow_password");
    let redis = secrets.doc(&client, "RedisSecretArn").await;
    assert_eq!(redis.len(), 1);
    let db_password = database["password"].as_str().unwrap().to_owned();
    let redis_password = redis["password"].as_str().unwrap().to_owned();
    let admin_password = moto::value(&client, &secrets.arn("AdminPasswordSecretArn")).await;
    let airflow_db_password = database["airflow_password"].as_str().unwrap().to_owned();
    for (what, value) in [
        ("db", &db_password),
        ("airflow db", &airflow_db_password),
        ("redis", &redis_password),
        ("admin", &admin_password),
    ] {
        assert!(alphanumeric(value, 32), "{what} matches ^[A-Za-z0-9]+$");
        generated.push(value.clone());
    }

    // Duplicate Create (Lambda's async retry): same values, same physical id.
    let again = round_trip(
        &moto,
        &api,
        &responses,
        &event(
            "Create",
            "Custom::AirflowSecrets",
            &url,
            secrets.secrets_props(),
        ),
    );
    assert_eq!(again.json()["PhysicalResourceId"], physical_id.as_str());
    assert_eq!(
        moto::value(&client, &secrets.arn("FernetKeySecretArn")).await,
        fernet_key
    );
    assert_eq!(secrets.doc(&client, "DatabaseSecretArn").await, database);
    assert_eq!(secrets.doc(&client, "RedisSecretArn").await, redis);
    assert_eq!(secrets.doc(&client, "SigningKeysSecretArn").await, signing);

    // Connection URLs.
    let mut urls_event = event(
        "Create",
        "Custom::AirflowConnectionUrls",
        &url,
        secrets.url_props(),
    );
    urls_event["LogicalResourceId"] = json!("ConnectionUrls");
    let started = Instant::now();
    assert_eq!(
        round_trip(&moto, &api, &responses, &urls_event).json()["Status"],
        "SUCCESS"
    );
    let urls_took = started.elapsed();
    let database = secrets.doc(&client, "DatabaseSecretArn").await;
    let conn = database["sql_alchemy_conn"].as_str().unwrap().to_owned();

    // The same resource again, now CREATE_COMPLETE, aimed at another RDS endpoint: not
    // sent by CloudFormation, so refused, and the URL stays.
    let mut forged = urls_event.clone();
    forged["RequestId"] = json!("forged-1");
    forged["ResourceProperties"]["DbHost"] = json!("db.cluster-evil.us-east-1.rds.amazonaws.com");
    let before = responses.requests().len();
    let id = api.queue(&forged);
    assert_eq!(api.wait_result(&id, WAIT).unwrap().kind, "response");
    let refused = responses.wait_for(before + 1, WAIT)[before].json();
    assert_eq!(refused["Status"], "FAILED");
    assert!(
        refused["Reason"]
            .as_str()
            .unwrap()
            .starts_with("request refused: resource ConnectionUrls is CREATE_COMPLETE"),
        "{refused}"
    );
    assert_eq!(secrets.doc(&client, "DatabaseSecretArn").await, database);
    assert_eq!(
        conn,
        format!("postgresql+psycopg2://airflow:{db_password}@db.cluster-abc.us-east-1.rds.amazonaws.com:5432/airflow?sslmode=require")
    );
    let airflow_conn = database["airflow_sql_alchemy_conn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        airflow_conn,
        format!("postgresql+psycopg2://airflow%5Fapp:{airflow_db_password}@db.cluster-abc.us-east-1.rds.amazonaws.com:5432/airflow?sslmode=require")
    );
    assert_eq!(database["password"], db_password.as_str());
    assert_eq!(database["airflow_password"], airflow_db_password.as_str());
    assert_eq!(database["username"], "airflow");
    assert_eq!(database.len(), 5);
    let redis = secrets.doc(&client, "RedisSecretArn").await;
    let broker = redis["broker_url"].as_str().unwrap().to_owned();
    assert_eq!(
        broker,
        format!("rediss://:{redis_password}@redis.abc.cache.amazonaws.com:6379/0?ssl_cert_reqs=required")
    );
    assert_eq!(redis["password"], redis_password.as_str());
    assert_eq!(redis.len(), 2);
    generated.extend([conn.clone(), airflow_conn.clone(), broker.clone()]);

    // Update with a rotation token: new,old.
    let mut rotated_props = secrets.secrets_props();
    rotated_props["FernetRotation"] = json!("2026-05");
    let put = round_trip(
        &moto,
        &api,
        &responses,
        &update_event(
            &url,
            "Custom::AirflowSecrets",
            rotated_props,
            secrets.secrets_props(),
        ),
    );
    assert_eq!(put.json()["PhysicalResourceId"], physical_id.as_str());
    let rotated = moto::value(&client, &secrets.arn("FernetKeySecretArn")).await;
    let (new_key, old_key) = rotated.split_once(',').expect("new,old");
    assert_eq!(old_key, fernet_key);
    assert!(fernet::Fernet::new(new_key).is_some());
    generated.push(rotated.clone());
    assert_eq!(
        secrets.doc(&client, "DatabaseSecretArn").await,
        database,
        "update regenerates nothing and keeps the URL"
    );
    assert_eq!(secrets.doc(&client, "RedisSecretArn").await, redis);

    // Endpoint change rewrites the URLs.
    let mut moved = secrets.url_props();
    moved["DbHost"] = json!("db2.cluster-abc.us-east-1.rds.amazonaws.com");
    let mut update = update_event(
        &url,
        "Custom::AirflowConnectionUrls",
        moved,
        secrets.url_props(),
    );
    update["LogicalResourceId"] = json!("ConnectionUrls");
    assert_eq!(
        round_trip(&moto, &api, &responses, &update).json()["Status"],
        "SUCCESS"
    );
    let moved_database = secrets.doc(&client, "DatabaseSecretArn").await;
    assert_eq!(
        moved_database["sql_alchemy_conn"],
        conn.replace(
            "@db.cluster-abc.us-east-1.rds.amazonaws.com:",
            "@db2.cluster-abc.us-east-1.rds.amazonaws.com:"
        )
    );
    assert_eq!(
        moved_database["password"],
        db_password.as_str(),
        "password kept"
    );
    assert_eq!(moved_database["username"], "airflow");
    assert_eq!(secrets.doc(&client, "RedisSecretArn").await, redis);

    // Delete leaves the secrets in place.
    let delete = event(
        "Delete",
        "Custom::AirflowSecrets",
        &url,
        secrets.secrets_props(),
    );
    assert_eq!(
        round_trip(&moto, &api, &responses, &delete).json()["Status"],
        "SUCCESS"
    );
    assert_eq!(
        moto::value(&client, &secrets.arn("FernetKeySecretArn")).await,
        rotated
    );

    // Nothing secret in any response or in the function's logs.
    let bodies: String = responses
        .requests()
        .iter()
        .map(CapturedRequest::text)
        .collect();
    assert_not_in(&bodies, &generated, "a response body");
    let logs = function.logs();
    assert!(
        logs.contains("\"level\":\"INFO\""),
        "JSON logs are written: {logs}"
    );
    assert_not_in(&logs, &generated, "the logs");
    let posted: String = api.posted().iter().map(|p| p.body.clone()).collect();
    assert_not_in(&posted, &generated, "the Lambda results");

    println!(
        "MEASURE create_airflow_secrets_against_moto_ms={}",
        create_took.as_millis()
    );
    println!(
        "MEASURE create_connection_urls_against_moto_ms={}",
        urls_took.as_millis()
    );
    api.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_level_faults_are_answered_and_the_process_survives() {
    let moto = Moto::start();
    let api = RuntimeApi::start();
    let responses = CaptureServer::start(vec![]);
    let url = responses.url("/r");
    let mut function = Function::spawn(&api, &moto.endpoint);

    // Malformed JSON: the runtime reports an invocation error; nothing can be answered.
    let id = api.queue_raw(b"{not json".to_vec(), Duration::from_secs(60));
    let posted = api
        .wait_result(&id, WAIT)
        .expect("result for malformed JSON");
    assert_eq!(posted.kind, "error", "{}", posted.body);

    // Secrets that do not exist in moto: FAILED with Secrets Manager's reason.
    let missing = common::secrets_props();
    let body = round_trip(
        &moto,
        &api,
        &responses,
        &event("Create", "Custom::AirflowSecrets", &url, missing),
    )
    .json();
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("secret not found") && reason.contains("2026/05/01/[$LATEST]local"),
        "{reason}"
    );

    // A pre-filled password is kept; malformed JSON fails without showing the value.
    let client = moto::client(&moto.endpoint).await;
    let hidden = "HiddenMalformedPassw0rd";
    let malformed = format!(r#"{{"password":"{hidden}""#);
    let prefilled = r#"{"airflow_password":"PrefilledAppPassw0rd","password":"PrefilledDbPassw0rd","note":"kept"}"#;
    let secrets = create_secrets(
        &client,
        "faults",
        &[
            ("DatabaseSecretArn", prefilled),
            ("RedisSecretArn", &malformed),
        ],
    )
    .await;
    let body = round_trip(
        &moto,
        &api,
        &responses,
        &event(
            "Create",
            "Custom::AirflowSecrets",
            &url,
            secrets.secrets_props(),
        ),
    )
    .json();
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("RedisSecretArn does not hold valid JSON") && !reason.contains(hidden),
        "{reason}"
    );
    assert_eq!(
        moto::value(&client, &secrets.arn("DatabaseSecretArn")).await,
        prefilled,
        "the password already there is kept, unwritten"
    );
    assert_eq!(
        moto::value(&client, &secrets.arn("RedisSecretArn")).await,
        malformed
    );
    let posted: String = api.posted().iter().map(|p| p.body.clone()).collect();
    assert!(!posted.contains(hidden) && !function.logs().contains(hidden));

    // Deadline nearly reached (the guard keeps 5 s for the answer).
    let id = api.queue_raw(
        serde_json::to_vec(&event(
            "Create",
            "Custom::AirflowSecrets",
            &url,
            common::secrets_props(),
        ))
        .unwrap(),
        Duration::from_secs(3),
    );
    assert!(api.wait_result(&id, WAIT).is_some());
    let last = responses.wait_for(3, WAIT).last().unwrap().json();
    assert_eq!(last["Status"], "FAILED");
    assert!(
        last["Reason"]
            .as_str()
            .unwrap()
            .contains("not enough time left"),
        "{last}"
    );

    // Missing ResponseURL: an invocation error, bounded.
    let mut no_url = event("Delete", "Custom::AirflowSecrets", &url, json!({}));
    no_url.as_object_mut().unwrap().remove("ResponseURL");
    let id = api.queue(&no_url);
    assert_eq!(api.wait_result(&id, WAIT).unwrap().kind, "error");

    // And it still serves a normal request afterwards.
    let delete = event("Delete", "Custom::AirflowSecrets", &url, json!({}));
    assert_eq!(
        round_trip(&moto, &api, &responses, &delete).json()["Status"],
        "SUCCESS"
    );
    assert!(function.is_running());
    api.close();
}

/// Spawn to the first result POST, for an event that needs no AWS call (Delete), so it
/// measures the runtime's own start: SDK config, TLS roots, the first poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_to_first_response() {
    let responses = CaptureServer::start(vec![]);
    let url = responses.url("/r");
    let mut samples = Vec::new();
    for _ in 0..5 {
        let api = RuntimeApi::start();
        let id = api.queue(&event("Delete", "Custom::AirflowSecrets", &url, json!({})));
        let function = Function::spawn(&api, "http://127.0.0.1:9");
        let posted = api.wait_result(&id, WAIT).expect("first response");
        assert_eq!(posted.kind, "response");
        samples.push(posted.at.duration_since(function.spawned_at));
        api.close();
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    println!(
        "MEASURE cold_start_to_first_response_ms median={:.1} min={:.1} max={:.1} (n={})",
        median.as_secs_f64() * 1000.0,
        samples[0].as_secs_f64() * 1000.0,
        samples[samples.len() - 1].as_secs_f64() * 1000.0,
        samples.len()
    );
    assert!(
        median < Duration::from_secs(2),
        "cold start took {median:?}"
    );
}
