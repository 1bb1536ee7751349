//! What the scaler remembers between ticks, as items of the DynamoDB state table (one
//! string key `pk`, string attributes):
//!
//! - `scaler`: `below_since`, when fewer workers than the current count began to be
//!   wanted (the scale-in cool-down), and `drain_started`, when the pending drain's
//!   tags were set ([`ScalerState`]);
//! - `alerts#cursor`: `end_date` of the last DAG run the alerter processed;
//! - `dag#<dag_id>`: per DAG, the last run's state and id, its end date, and when the
//!   last alert or recovery notice went out; versioned ([`VERSION`]) and written only
//!   if unchanged since read ([`save_dag_if`]);
//! - `claim#<dag_id>#<run_id>`: who sends the notice a run causes, until when, and
//!   whether it was sent ([`claim`]); a DAG id cannot contain `#`, so the key is
//!   unambiguous.
//!
//! Claim items are small and one is left per notice; the table has no TTL attribute
//! (that needs a numeric attribute and the template's `TimeToLiveSpecification`).

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::ports::{Item, PortError, StateStore, VERSION};

const SCALER_KEY: &str = "scaler";
const CURSOR_KEY: &str = "alerts#cursor";

/// Per-DAG alert state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DagState {
    /// `success` or `failed`: the state of the last ended run seen.
    pub last_state: String,
    /// That run's id.
    pub last_run_id: String,
    /// That run's end date (RFC 3339, as Airflow returned it).
    pub last_end_date: String,
    /// When the last failure alert or recovery notice was sent (RFC 3339), if ever.
    pub last_alerted: Option<String>,
}

fn dag_key(dag_id: &str) -> String {
    format!("dag#{dag_id}")
}

/// What the scaler keeps between ticks (the `scaler` item).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScalerState {
    /// When fewer workers than the current count began to be wanted (the cool-down).
    pub below_since: Option<DateTime<Utc>>,
    /// When the pending drain began (the drain tags were set), if one is pending. Which
    /// workers drain is not kept: the tags on the tasks say it, read each tick.
    pub drain_started: Option<DateTime<Utc>>,
}

fn time(item: &Item, key: &str) -> Option<DateTime<Utc>> {
    item.get(key)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// Reads the scaler's state (an absent item or attribute is `None`).
pub async fn load_scaler(store: &dyn StateStore) -> Result<ScalerState, PortError> {
    let item = store.get(SCALER_KEY).await?.unwrap_or_default();
    Ok(ScalerState {
        below_since: time(&item, "below_since"),
        drain_started: time(&item, "drain_started"),
    })
}

/// Writes the scaler's state.
pub async fn save_scaler(store: &dyn StateStore, state: ScalerState) -> Result<(), PortError> {
    let mut item = Item::new();
    if let Some(s) = state.below_since {
        item.insert("below_since".into(), s.to_rfc3339());
    }
    if let Some(s) = state.drain_started {
        item.insert("drain_started".into(), s.to_rfc3339());
    }
    store.put(SCALER_KEY, item).await
}

/// Reads the alert cursor.
pub async fn load_cursor(store: &dyn StateStore) -> Result<Option<String>, PortError> {
    Ok(store
        .get(CURSOR_KEY)
        .await?
        .and_then(|i| i.get("end_date").cloned()))
}

/// Writes the alert cursor.
pub async fn save_cursor(store: &dyn StateStore, end_date: &str) -> Result<(), PortError> {
    let item = Item::from([("end_date".to_string(), end_date.to_string())]);
    store.put(CURSOR_KEY, item).await
}

/// The version after `current` (`None`: no versioned item yet).
pub fn next_version(current: Option<&str>) -> String {
    let n: u64 = current.and_then(|v| v.parse().ok()).unwrap_or(0);
    (n + 1).to_string()
}

/// One DAG's alert state as read, with the version a conditional write must match
/// (`None`: no item, or one written before items were versioned).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadDag {
    /// The state, if the DAG has any.
    pub state: Option<DagState>,
    /// Its version.
    pub version: Option<String>,
}

/// Reads one DAG's alert state and version.
pub async fn load_dag(store: &dyn StateStore, dag_id: &str) -> Result<ReadDag, PortError> {
    let Some(item) = store.get(&dag_key(dag_id)).await? else {
        return Ok(ReadDag::default());
    };
    let field = |k: &str| item.get(k).cloned().unwrap_or_default();
    Ok(ReadDag {
        state: Some(DagState {
            last_state: field("last_state"),
            last_run_id: field("last_run_id"),
            last_end_date: field("last_end_date"),
            last_alerted: item.get("last_alerted").cloned(),
        }),
        version: item.get(VERSION).cloned(),
    })
}

/// Writes one DAG's alert state if it is still what `read` saw; false when another
/// tick wrote it in between (re-read and decide again).
pub async fn save_dag_if(
    store: &dyn StateStore,
    dag_id: &str,
    state: &DagState,
    read: &ReadDag,
) -> Result<bool, PortError> {
    let expected = read.version.as_deref();
    let mut item = Item::from([
        ("dag_id".to_string(), dag_id.to_string()),
        ("last_state".to_string(), state.last_state.clone()),
        ("last_run_id".to_string(), state.last_run_id.clone()),
        ("last_end_date".to_string(), state.last_end_date.clone()),
        (VERSION.to_string(), next_version(expected)),
    ]);
    if let Some(a) = &state.last_alerted {
        item.insert("last_alerted".into(), a.clone());
    }
    store.put_if(&dag_key(dag_id), item, expected).await
}

/// How long a claim keeps other ticks from sending the same notice: far longer than
/// one send (HTTP timeouts are 15 s, the invocation at most 15 minutes), short enough
/// that a notice whose sender crashed goes out a few minutes late rather than never.
pub const CLAIM_LEASE: Duration = Duration::minutes(5);

/// The answer to "may this tick send the notice for this run?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Yes: the claim item is this tick's at this version, until the lease ends.
    Won {
        /// The claim's version, for [`mark_sent`] and [`release`].
        version: String,
    },
    /// No: the notice has been sent.
    Sent,
    /// No: another tick holds an unexpired claim and may be sending it right now.
    Held,
}

fn claim_key(dag_id: &str, run_id: &str) -> String {
    format!("claim#{dag_id}#{run_id}")
}

fn claim_item(dag_id: &str, run_id: &str, lease_until: DateTime<Utc>, version: String) -> Item {
    Item::from([
        ("dag_id".to_string(), dag_id.to_string()),
        ("run_id".to_string(), run_id.to_string()),
        (
            "lease_until".to_string(),
            lease_until.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
        (VERSION.to_string(), version),
    ])
}

/// Claims the notice for one run: creates the claim item if there is none, or takes
/// over one whose lease ended without the notice being sent (its sender crashed or
/// released it after a failed delivery).
pub async fn claim(
    store: &dyn StateStore,
    dag_id: &str,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<Claim, PortError> {
    let key = claim_key(dag_id, run_id);
    let first = next_version(None);
    let item = claim_item(dag_id, run_id, now + CLAIM_LEASE, first.clone());
    if store.put_if(&key, item, None).await? {
        return Ok(Claim::Won { version: first });
    }
    let Some(existing) = store.get(&key).await? else {
        // Gone between the two calls: nothing deletes claims, so treat it as taken.
        return Ok(Claim::Held);
    };
    if existing.get("sent").is_some_and(|s| s == "true") {
        return Ok(Claim::Sent);
    }
    let lease_ended = existing
        .get("lease_until")
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .is_none_or(|until| until.with_timezone(&Utc) <= now);
    if !lease_ended {
        return Ok(Claim::Held);
    }
    let current = existing.get(VERSION).map(String::as_str);
    let version = next_version(current);
    let item = claim_item(dag_id, run_id, now + CLAIM_LEASE, version.clone());
    if store.put_if(&key, item, current).await? {
        Ok(Claim::Won { version })
    } else {
        Ok(Claim::Held)
    }
}

/// Records that the claimed notice was sent; false when the claim was taken over in the
/// meantime (the send outlived the lease), in which case the new holder sends again.
pub async fn mark_sent(
    store: &dyn StateStore,
    dag_id: &str,
    run_id: &str,
    version: &str,
    now: DateTime<Utc>,
) -> Result<bool, PortError> {
    rewrite_claim(store, dag_id, run_id, version, now, true).await
}

/// Gives a claim up after a failed delivery, so the next tick may retry at once rather
/// than wait for the lease to end.
pub async fn release(
    store: &dyn StateStore,
    dag_id: &str,
    run_id: &str,
    version: &str,
    now: DateTime<Utc>,
) -> Result<bool, PortError> {
    rewrite_claim(store, dag_id, run_id, version, now, false).await
}

/// Replaces the claim this tick holds (at `version`) with its next version, marked sent
/// or not; false when another tick took the claim over first.
async fn rewrite_claim(
    store: &dyn StateStore,
    dag_id: &str,
    run_id: &str,
    version: &str,
    now: DateTime<Utc>,
    sent: bool,
) -> Result<bool, PortError> {
    let mut item = claim_item(dag_id, run_id, now, next_version(Some(version)));
    if sent {
        item.insert("sent".into(), "true".into());
    }
    store
        .put_if(&claim_key(dag_id, run_id), item, Some(version))
        .await
}
