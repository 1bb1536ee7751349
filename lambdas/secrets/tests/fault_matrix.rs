//! Bad and hostile events: each one is answered (or, without a usable ResponseURL,
//! ends in a bounded, logged failure), none hangs, none leaks a secret.

mod common;

use std::time::{Duration, Instant};

use airflow_secrets::{InvokeError, StoreError};
use cfn_custom_resource::testing::{unreachable_url, CaptureServer};
use cfn_custom_resource::MAX_RESPONSE_BYTES;
use common::*;
use serde_json::{json, Value};

const SECRETS: &str = "Custom::AirflowSecrets";
/// A password already in the store; it must never show up anywhere.
const SENTINEL: &str = "SentinelPassw0rdThatMustNeverLeak";

enum Expect {
    /// A FAILED response whose Reason contains this text.
    Failed(&'static str),
    /// No response can be sent; the invocation returns this error kind.
    NoAnswer(fn(&InvokeError) -> bool),
}

struct Case {
    name: &'static str,
    event: fn(&str) -> Value,
    setup: fn(&Harness),
    deadline: Duration,
    server_statuses: Vec<u16>,
    expect: Expect,
}

fn base(url: &str) -> Value {
    event("Create", SECRETS, url, secrets_props())
}

fn without(url: &str, key: &str) -> Value {
    let mut e = base(url);
    e.as_object_mut().unwrap().remove(key);
    e
}

fn urls(url: &str) -> Value {
    event("Create", "Custom::AirflowConnectionUrls", url, url_props())
}

fn nothing(_: &Harness) {}

fn cases() -> Vec<Case> {
    let case = |name, event: fn(&str) -> Value, expect| Case {
        name,
        event,
        setup: nothing,
        deadline: Duration::from_secs(30),
        server_statuses: vec![],
        expect,
    };
    vec![
        case(
            "missing RequestType",
            |u| without(u, "RequestType"),
            Expect::Failed("RequestType"),
        ),
        case(
            "unknown RequestType",
            |u| {
                let mut e = base(u);
                e["RequestType"] = json!("Destroy");
                e
            },
            Expect::Failed("unknown RequestType"),
        ),
        case(
            "RequestType not a string",
            |u| {
                let mut e = base(u);
                e["RequestType"] = json!(1);
                e
            },
            Expect::Failed("RequestType"),
        ),
        case(
            "missing StackId",
            |u| without(u, "StackId"),
            Expect::Failed("StackId"),
        ),
        case(
            "missing LogicalResourceId",
            |u| without(u, "LogicalResourceId"),
            Expect::Failed("LogicalResourceId"),
        ),
        case(
            "missing ResourceType",
            |u| without(u, "ResourceType"),
            Expect::Failed("ResourceType"),
        ),
        case(
            "missing RequestId",
            |u| without(u, "RequestId"),
            Expect::Failed("RequestId"),
        ),
        case(
            "properties not an object",
            |u| {
                let mut e = base(u);
                e["ResourceProperties"] = json!("all");
                e
            },
            Expect::Failed("ResourceProperties is not a JSON object"),
        ),
        case(
            "property is a number",
            |u| {
                let mut e = base(u);
                e["ResourceProperties"]["PasswordLength"] = json!(32);
                e
            },
            Expect::Failed("PasswordLength must be a string"),
        ),
        case(
            "property is an array",
            |u| {
                let mut e = base(u);
                e["ResourceProperties"]["FernetKeySecretArn"] = json!(["a"]);
                e
            },
            Expect::Failed("FernetKeySecretArn must be a string"),
        ),
        case(
            "property is an object",
            |u| {
                let mut e = base(u);
                e["ResourceProperties"]["DatabaseSecretArn"] = json!({"Ref": "X"});
                e
            },
            Expect::Failed("DatabaseSecretArn must be a string"),
        ),
        case(
            "oversized property",
            |u| {
                let mut e = base(u);
                e["ResourceProperties"]["SigningKeysSecretArn"] = json!("a".repeat(200_000));
                e
            },
            Expect::Failed("longer than 2048 bytes"),
        ),
        case(
            "oversized ResourceType",
            |u| {
                let mut e = base(u);
                e["ResourceType"] = json!(format!("Custom::{}", "X".repeat(50_000)));
                e
            },
            Expect::Failed("ResourceType is longer"),
        ),
        case(
            "PasswordLength too small",
            |u| {
                let mut e = base(u);
                e["ResourceProperties"]["PasswordLength"] = json!("8");
                e
            },
            Expect::Failed("PasswordLength is invalid"),
        ),
        case(
            "PasswordLength too large",
            |u| {
                let mut e = base(u);
                e["ResourceProperties"]["PasswordLength"] = json!("100000000000000000000");
                e
            },
            Expect::Failed("PasswordLength is invalid"),
        ),
        case(
            "Update without PhysicalResourceId",
            |u| {
                let mut e = base(u);
                e["RequestType"] = json!("Update");
                e
            },
            Expect::Failed("no PhysicalResourceId"),
        ),
        case(
            "unknown resource type",
            |u| {
                let mut e = base(u);
                e["ResourceType"] = json!("Custom::Other");
                e
            },
            Expect::Failed("unsupported ResourceType"),
        ),
        case(
            "URLs with hostile host",
            |u| {
                let mut p = url_props();
                p["RedisHost"] = json!("h:1@evil/");
                event("Create", "Custom::AirflowConnectionUrls", u, p)
            },
            Expect::Failed("RedisHost is invalid"),
        ),
        case(
            "old property names only",
            |u| {
                let mut e = base(u);
                let props = e["ResourceProperties"].as_object_mut().unwrap();
                let arn = props.remove("DatabaseSecretArn").unwrap();
                props.insert("DbPasswordSecretArn".into(), arn);
                e
            },
            Expect::Failed("DatabaseSecretArn is required"),
        ),
        Case {
            setup: |h| {
                h.store.set_value(
                    &arn("DatabaseSecretArn"),
                    "hand",
                    &format!(r#"{{"password":"{SENTINEL}"#),
                )
            },
            ..case(
                "truncated JSON in the database secret",
                base,
                Expect::Failed("DatabaseSecretArn does not hold valid JSON"),
            )
        },
        Case {
            setup: |h| {
                h.store.set_value(
                    &arn("RedisSecretArn"),
                    "hand",
                    &format!(r#"{{"password":{SENTINEL}}}"#),
                )
            },
            ..case(
                "unquoted password in the Redis secret, for the URLs",
                urls,
                Expect::Failed("RedisSecretArn does not hold valid JSON"),
            )
        },
        Case {
            setup: |h| {
                h.store
                    .set_value(&arn("SigningKeysSecretArn"), "hand", SENTINEL)
            },
            ..case(
                "plain value in the signing-keys secret",
                base,
                Expect::Failed("SigningKeysSecretArn does not hold valid JSON"),
            )
        },
        Case {
            setup: |h| {
                h.store.set_value(
                    &arn("DatabaseSecretArn"),
                    "hand",
                    &format!(r#"[{{"password":"{SENTINEL}"}}]"#),
                )
            },
            ..case(
                "array in the database secret, for the URLs",
                urls,
                Expect::Failed("DatabaseSecretArn holds an array"),
            )
        },
        Case {
            setup: |h| {
                h.store.set_value(
                    &arn("DatabaseSecretArn"),
                    "hand",
                    &format!(r#"{{"password":{{"value":"{SENTINEL}"}}}}"#),
                )
            },
            ..case(
                "nested password",
                base,
                Expect::Failed("holds an object under \"password\""),
            )
        },
        Case {
            setup: |h| h.store.set_value(&arn("RedisSecretArn"), "hand", "{}"),
            ..case(
                "URLs before the Redis password exists",
                urls,
                Expect::Failed("RedisSecretArn has no \"password\" yet"),
            )
        },
        Case {
            setup: |h| h.store.fail_with(StoreError::NotFound),
            ..case(
                "secret does not exist",
                base,
                Expect::Failed("secret not found"),
            )
        },
        Case {
            setup: |h| {
                h.store.fail_with(StoreError::Service(
                    "ThrottlingException: Rate exceeded".into(),
                ))
            },
            ..case(
                "Secrets Manager throttles",
                base,
                Expect::Failed("ThrottlingException"),
            )
        },
        Case {
            setup: |h| h.store.panic_on_put(),
            ..case("store panics", base, Expect::Failed("internal error"))
        },
        Case {
            setup: |h| h.store.delay_calls(Duration::from_secs(60)),
            deadline: Duration::from_secs(2),
            ..case(
                "Secrets Manager hangs past the deadline",
                base,
                Expect::Failed("timed out before the Lambda deadline"),
            )
        },
        Case {
            deadline: Duration::from_millis(300),
            ..case(
                "deadline nearly reached",
                base,
                Expect::Failed("not enough time left"),
            )
        },
        Case {
            server_statuses: vec![500, 503],
            ..case(
                "ResponseURL fails twice then accepts",
                base,
                Expect::Failed(""),
            )
        },
        case(
            "event is an array",
            |_| json!([1, 2, 3]),
            Expect::NoAnswer(|e| matches!(e, InvokeError::NoResponseUrl)),
        ),
        case(
            "event is null",
            |_| Value::Null,
            Expect::NoAnswer(|e| matches!(e, InvokeError::NoResponseUrl)),
        ),
        case(
            "missing ResponseURL",
            |u| without(u, "ResponseURL"),
            Expect::NoAnswer(|e| matches!(e, InvokeError::NoResponseUrl)),
        ),
        case(
            "ResponseURL not http",
            |_| base("file:///etc/passwd"),
            Expect::NoAnswer(|e| matches!(e, InvokeError::NotDelivered(_))),
        ),
        case(
            "ResponseURL unreachable",
            |_| base(&unreachable_url()),
            Expect::NoAnswer(|e| matches!(e, InvokeError::NotDelivered(_))),
        ),
        Case {
            server_statuses: vec![503; 10],
            ..case(
                "ResponseURL always 503",
                base,
                Expect::NoAnswer(|e| matches!(e, InvokeError::NotDelivered(_))),
            )
        },
        Case {
            server_statuses: vec![403],
            ..case(
                "ResponseURL signature rejected",
                base,
                Expect::NoAnswer(|e| matches!(e, InvokeError::NotDelivered(_))),
            )
        },
    ]
}

#[tokio::test]
async fn every_hostile_event_is_answered_quickly_and_leaks_nothing() {
    let cases = cases();
    assert!(cases.len() >= 15);
    for case in cases {
        let store = empty_store();
        store.set_value(
            &arn("DatabaseSecretArn"),
            "v",
            &format!(
                r#"{{"airflow_password":"{SENTINEL}3","password":"{SENTINEL}","username":"airflow"}}"#
            ),
        );
        store.set_value(
            &arn("RedisSecretArn"),
            "v",
            &format!(r#"{{"password":"{SENTINEL}2"}}"#),
        );
        let h = Harness::with_server(store, CaptureServer::start(case.server_statuses.clone()));
        (case.setup)(&h);
        let event = (case.event)(&h.url());
        let started = Instant::now();
        let result = h.invoke_with_deadline(event, case.deadline).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "{}: took {took:?}",
            case.name
        );
        match case.expect {
            Expect::Failed(text) => {
                assert!(result.is_ok(), "{}: {result:?}", case.name);
                let requests = h.server.wait_for(1, Duration::from_secs(5));
                let last = requests
                    .last()
                    .unwrap_or_else(|| panic!("{}: no response", case.name));
                assert!(
                    last.body.len() <= MAX_RESPONSE_BYTES,
                    "{}: body {} bytes",
                    case.name,
                    last.body.len()
                );
                assert_eq!(last.header("content-type"), Some(""), "{}", case.name);
                let body = last.json();
                if text.is_empty() {
                    assert_eq!(body["Status"], "SUCCESS", "{}", case.name);
                } else {
                    assert_eq!(body["Status"], "FAILED", "{}: {body}", case.name);
                    let reason = body["Reason"].as_str().unwrap();
                    assert!(reason.contains(text), "{}: {reason}", case.name);
                    assert!(
                        !body["PhysicalResourceId"].as_str().unwrap().is_empty(),
                        "{}",
                        case.name
                    );
                }
            }
            Expect::NoAnswer(is_expected) => {
                let error = result.expect_err(case.name);
                assert!(is_expected(&error), "{}: {error}", case.name);
                assert!(
                    h.logs.text().contains("ERROR"),
                    "{}: the failure is logged",
                    case.name
                );
            }
        }
        h.assert_no_secret_leaked(&[SENTINEL]);
    }
}

#[tokio::test]
async fn unreachable_response_url_is_retried_a_bounded_number_of_times() {
    let h = Harness::new(empty_store());
    let result = h.invoke(base(&unreachable_url())).await;
    assert!(matches!(result, Err(InvokeError::NotDelivered(_))));
    let logs = h.logs.text();
    assert_eq!(
        logs.matches("will retry if time allows").count(),
        3,
        "{logs}"
    );
    assert!(logs.contains("gave up after 3 attempt(s)"));
}
