//! What the scaler remembers between ticks, as items of the DynamoDB state table (one
//! string key `pk`, string attributes):
//!
//! - `scaler`: `below_since`, when fewer workers than the current count began to be
//!   wanted (the scale-in cool-down);
//! - `alerts#cursor`: `end_date` of the last DAG run the alerter processed;
//! - `dag#<dag_id>`: per DAG, the last run's state and id, its end date, and when the
//!   last alert or recovery notice went out.

use chrono::{DateTime, Utc};

use crate::ports::{Item, PortError, StateStore};

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

/// Reads the scale-in cool-down start.
pub async fn load_below_since(store: &dyn StateStore) -> Result<Option<DateTime<Utc>>, PortError> {
    let item = store.get(SCALER_KEY).await?;
    Ok(item
        .and_then(|i| i.get("below_since").cloned())
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|d| d.with_timezone(&Utc)))
}

/// Writes the scale-in cool-down start (`None` clears it).
pub async fn save_below_since(
    store: &dyn StateStore,
    since: Option<DateTime<Utc>>,
) -> Result<(), PortError> {
    let mut item = Item::new();
    if let Some(s) = since {
        item.insert("below_since".into(), s.to_rfc3339());
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

/// Reads one DAG's alert state.
pub async fn load_dag(store: &dyn StateStore, dag_id: &str) -> Result<Option<DagState>, PortError> {
    let Some(item) = store.get(&dag_key(dag_id)).await? else {
        return Ok(None);
    };
    let field = |k: &str| item.get(k).cloned().unwrap_or_default();
    Ok(Some(DagState {
        last_state: field("last_state"),
        last_run_id: field("last_run_id"),
        last_end_date: field("last_end_date"),
        last_alerted: item.get("last_alerted").cloned(),
    }))
}

/// Writes one DAG's alert state.
pub async fn save_dag(
    store: &dyn StateStore,
    dag_id: &str,
    state: &DagState,
) -> Result<(), PortError> {
    let mut item = Item::from([
        ("dag_id".to_string(), dag_id.to_string()),
        ("last_state".to_string(), state.last_state.clone()),
        ("last_run_id".to_string(), state.last_run_id.clone()),
        ("last_end_date".to_string(), state.last_end_date.clone()),
    ]);
    if let Some(a) = &state.last_alerted {
        item.insert("last_alerted".into(), a.clone());
    }
    store.put(&dag_key(dag_id), item).await
}
