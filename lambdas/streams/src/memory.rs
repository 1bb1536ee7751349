//! The table in memory, with the same conditions as the DynamoDB adapter
//! ([`crate::aws::DynamoTable`]): the fake the manager, watchdog and processor tests
//! run against. `tests/dynamo.rs` holds the adapter to the same rules against the
//! emulator.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{
    Claim, Claimed, EventItem, EventStore, Lease, LeaseStore, PortError, ProcessedMarks, Put,
    Renewal,
};

/// One stored event and the processor's marks on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The item as written.
    pub item: EventItem,
    /// The processor's claim, epoch milliseconds.
    pub claimed_at: Option<i64>,
    /// When the processor finished it, epoch milliseconds.
    pub processed_at: Option<i64>,
}

/// Events and leases by key.
#[derive(Debug, Default)]
pub struct MemoryTable {
    events: Mutex<HashMap<String, StoredEvent>>,
    leases: Mutex<HashMap<String, Lease>>,
}

impl MemoryTable {
    /// The stored events, in key order.
    pub fn events(&self) -> Vec<StoredEvent> {
        let mut all: Vec<StoredEvent> = self.events.lock().unwrap().values().cloned().collect();
        all.sort_by(|a, b| a.item.key.cmp(&b.item.key));
        all
    }

    /// Puts a lease as it is (a test's other holder, a stale heartbeat).
    pub fn set_lease(&self, stream: &str, lease: Lease) {
        self.leases.lock().unwrap().insert(stream.to_owned(), lease);
    }
}

#[async_trait]
impl EventStore for MemoryTable {
    async fn put_event(&self, item: &EventItem) -> Result<Put, PortError> {
        let mut events = self.events.lock().unwrap();
        if events.contains_key(&item.key) {
            return Ok(Put::Duplicate);
        }
        events.insert(
            item.key.clone(),
            StoredEvent {
                item: item.clone(),
                claimed_at: None,
                processed_at: None,
            },
        );
        Ok(Put::Stored)
    }
}

#[async_trait]
impl LeaseStore for MemoryTable {
    async fn acquire(&self, claim: &Claim) -> Result<bool, PortError> {
        let mut leases = self.leases.lock().unwrap();
        let free = match leases.get(&claim.stream) {
            None => true,
            Some(l) => {
                l.expires_at < claim.now
                    || (l.holder == claim.chain_id && l.generation < claim.generation)
            }
        };
        if free {
            let old = leases.remove(&claim.stream).unwrap_or_default();
            leases.insert(
                claim.stream.clone(),
                Lease {
                    holder: claim.chain_id.clone(),
                    generation: claim.generation,
                    heartbeat_at: claim.now,
                    expires_at: claim.now + i64::from(claim.lease_seconds),
                    last_event_id: claim.last_event_id.clone().or(old.last_event_id),
                    alerted_at: old.alerted_at,
                },
            );
        }
        Ok(free)
    }

    async fn renew(&self, claim: &Claim) -> Result<Renewal, PortError> {
        let mut leases = self.leases.lock().unwrap();
        let Some(l) = leases.get_mut(&claim.stream) else {
            return Ok(Renewal::Lost);
        };
        if l.holder != claim.chain_id {
            return Ok(Renewal::Lost);
        }
        if l.generation != claim.generation {
            return Ok(if l.generation > claim.generation {
                Renewal::Superseded
            } else {
                Renewal::Lost
            });
        }
        l.heartbeat_at = claim.now;
        l.expires_at = claim.now + i64::from(claim.lease_seconds);
        if claim.last_event_id.is_some() {
            l.last_event_id = claim.last_event_id.clone();
        }
        Ok(Renewal::Renewed)
    }

    async fn release(&self, claim: &Claim) -> Result<(), PortError> {
        let mut leases = self.leases.lock().unwrap();
        if let Some(l) = leases.get_mut(&claim.stream) {
            if l.holder == claim.chain_id && l.generation == claim.generation {
                l.expires_at = claim.now - 1;
            }
        }
        Ok(())
    }

    async fn lease(&self, stream: &str) -> Result<Option<Lease>, PortError> {
        Ok(self.leases.lock().unwrap().get(stream).cloned())
    }

    async fn mark_alerted(
        &self,
        stream: &str,
        heartbeat_at: i64,
        now: i64,
    ) -> Result<bool, PortError> {
        let mut leases = self.leases.lock().unwrap();
        match leases.get_mut(stream) {
            Some(l) if l.alerted_at.is_none() && l.heartbeat_at == heartbeat_at => {
                l.alerted_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn clear_alerted(&self, stream: &str) -> Result<bool, PortError> {
        let mut leases = self.leases.lock().unwrap();
        Ok(leases
            .get_mut(stream)
            .and_then(|l| l.alerted_at.take())
            .is_some())
    }
}

#[async_trait]
impl ProcessedMarks for MemoryTable {
    async fn claim(
        &self,
        key: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Claimed, PortError> {
        let mut events = self.events.lock().unwrap();
        let Some(e) = events.get_mut(key) else {
            return Err(PortError(format!("no event {key}")));
        };
        if e.processed_at.is_some() {
            return Ok(Claimed::AlreadyProcessed);
        }
        if e.claimed_at.is_some_and(|at| at >= stale_before_ms) {
            return Ok(Claimed::InFlight);
        }
        e.claimed_at = Some(now_ms);
        Ok(Claimed::Claimed)
    }

    async fn finish(&self, key: &str, now_ms: i64) -> Result<(), PortError> {
        if let Some(e) = self.events.lock().unwrap().get_mut(key) {
            e.processed_at = Some(now_ms);
        }
        Ok(())
    }

    async fn unclaim(&self, key: &str, claimed_at_ms: i64) -> Result<(), PortError> {
        if let Some(e) = self.events.lock().unwrap().get_mut(key) {
            if e.claimed_at == Some(claimed_at_ms) {
                e.claimed_at = None;
            }
        }
        Ok(())
    }
}
