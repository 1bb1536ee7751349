//! The DynamoDB adapter against the project's moto-based emulator
//! (tests/aws_emulator/server.py): the conditional writes the manager, watchdog and
//! processor rely on, with the same expectations as the in-memory table.

// The scaler's emulator launcher, shared rather than copied.
#[path = "../../scaler/tests/common/emulator.rs"]
mod emulator;

use airflow_stack_contract::streams::{event_key, lease_key};
use airflow_streams::aws::DynamoTable;
use airflow_streams::ports::{
    Claim, Claimed, EventItem, EventStore, LeaseStore, ProcessedMarks, Put, Renewal,
};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

async fn table(emulator: &emulator::Emulator) -> DynamoTable {
    let client = aws_sdk_dynamodb::Client::new(&emulator.sdk_config().await);
    client
        .create_table()
        .table_name("streams")
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    DynamoTable {
        client,
        table: "streams".into(),
    }
}

fn item(identity: &str) -> EventItem {
    EventItem {
        key: event_key("orders", identity),
        stream: "orders".into(),
        identity: identity.into(),
        data: "{\"n\":1}".into(),
        event_id: Some("1".into()),
        target_kind: "asset".into(),
        target: "s3://b/o".into(),
        received_at_ms: 1_700_000_000_123,
        expires_at: 1_700_600_000,
    }
}

fn claim(chain: &str, generation: u64, now: i64) -> Claim {
    Claim {
        stream: "orders".into(),
        chain_id: chain.into(),
        generation,
        now,
        lease_seconds: 90,
        last_event_id: Some(format!("{chain}-{generation}")),
    }
}

#[tokio::test]
async fn conditional_writes_behave_as_the_logic_expects() {
    let emulator = emulator::Emulator::start();
    let t = table(&emulator).await;

    // Events: the first writer wins.
    assert_eq!(t.put_event(&item("a")).await.unwrap(), Put::Stored);
    assert_eq!(t.put_event(&item("a")).await.unwrap(), Put::Duplicate);
    let stored = t
        .client
        .get_item()
        .table_name("streams")
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(event_key("orders", "a")),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(stored["kind"].as_s().unwrap(), "event");
    assert_eq!(stored["received_at"].as_n().unwrap(), "1700000000123");
    assert_eq!(stored["expires_at"].as_n().unwrap(), "1700600000");

    // Leases.
    assert!(t.acquire(&claim("A", 0, 1000)).await.unwrap());
    assert!(
        !t.acquire(&claim("B", 0, 1010)).await.unwrap(),
        "a live holder"
    );
    assert!(
        !t.acquire(&claim("A", 0, 1010)).await.unwrap(),
        "the same generation again"
    );
    assert_eq!(
        t.renew(&claim("A", 0, 1020)).await.unwrap(),
        Renewal::Renewed
    );
    assert!(
        t.acquire(&claim("A", 1, 1030)).await.unwrap(),
        "the successor"
    );
    assert_eq!(
        t.renew(&claim("A", 0, 1040)).await.unwrap(),
        Renewal::Superseded
    );
    assert_eq!(t.renew(&claim("B", 0, 1040)).await.unwrap(), Renewal::Lost);
    let lease = t.lease("orders").await.unwrap().unwrap();
    assert_eq!(
        (
            lease.holder.as_str(),
            lease.generation,
            lease.heartbeat_at,
            lease.expires_at
        ),
        ("A", 1, 1030, 1120)
    );
    assert_eq!(lease.last_event_id.as_deref(), Some("A-1"));
    assert!(t.acquire(&claim("B", 0, 1121)).await.unwrap(), "lapsed");
    assert_eq!(t.renew(&claim("A", 1, 1122)).await.unwrap(), Renewal::Lost);

    // Alerts: once per outage, only on the stale heartbeat, never creating an item.
    assert!(
        !t.mark_alerted("orders", 999, 1500).await.unwrap(),
        "not the heartbeat seen"
    );
    assert!(t.mark_alerted("orders", 1121, 1500).await.unwrap());
    assert!(!t.mark_alerted("orders", 1121, 1560).await.unwrap(), "once");
    assert_eq!(
        t.lease("orders").await.unwrap().unwrap().alerted_at,
        Some(1500)
    );
    assert!(!t.mark_alerted("other", 0, 1500).await.unwrap());
    assert_eq!(t.lease("other").await.unwrap(), None, "no item made");
    assert!(t.clear_alerted("orders").await.unwrap());
    assert!(!t.clear_alerted("orders").await.unwrap());
    assert!(t.acquire(&claim("B", 0, 1600)).await.is_ok());

    // Release: only by the holder.
    t.release(&claim("A", 1, 1610)).await.unwrap();
    assert!(t.lease("orders").await.unwrap().unwrap().expires_at > 1610);
    t.release(&claim("B", 0, 1610)).await.unwrap();
    assert_eq!(t.lease("orders").await.unwrap().unwrap().expires_at, 1609);
    assert_eq!(lease_key("orders"), "lease#orders");

    // The processor's marks.
    let key = event_key("orders", "a");
    assert_eq!(t.claim(&key, 5000, 4000).await.unwrap(), Claimed::Claimed);
    assert_eq!(t.claim(&key, 5001, 4001).await.unwrap(), Claimed::InFlight);
    assert_eq!(
        t.claim(&key, 9000, 8000).await.unwrap(),
        Claimed::Claimed,
        "a stale claim"
    );
    t.unclaim(&key, 5000).await.unwrap(); // not ours any more: kept
    assert_eq!(t.claim(&key, 9001, 8001).await.unwrap(), Claimed::InFlight);
    t.unclaim(&key, 9000).await.unwrap();
    assert_eq!(t.claim(&key, 9002, 8002).await.unwrap(), Claimed::Claimed);
    t.finish(&key, 9003).await.unwrap();
    assert_eq!(
        t.claim(&key, 9004, 8004).await.unwrap(),
        Claimed::AlreadyProcessed
    );
    assert!(t
        .claim(&event_key("orders", "missing"), 1, 0)
        .await
        .is_err());
}
