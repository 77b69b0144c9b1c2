//! The subscriptions an edge serves, shared between the fan-out task and the connections.
//!
//! Invariants: a subscription is either joining (waiting for the fan-out to give it a snapshot or
//! a replay in its next pass) or live (taking commits), never both; a closed slot takes nothing
//! more and is dropped by the next pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sekai_schema::RegionId;
use tokio::sync::Notify;

use super::core::Start;
use crate::session::Subscriber;

/// One subscription: its state machine and the signal that it has something to send.
#[derive(Debug)]
pub struct Slot {
    state: Mutex<Subscriber>,
    /// The regions the subscriber's area touches (fixed for its life: an area never changes), so
    /// the fan-out can tell which slots a pass concerns without locking them.
    regions: BTreeSet<RegionId>,
    ready: Notify,
    closed: AtomicBool,
}

impl Slot {
    fn new(subscriber: Subscriber) -> Self {
        Self {
            regions: subscriber.regions().clone(),
            state: Mutex::new(subscriber),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// The regions the subscription's area touches.
    pub fn regions(&self) -> &BTreeSet<RegionId> {
        &self.regions
    }

    /// The subscriber (a poisoned lock is recovered: the state machine has no invariants that a
    /// panic elsewhere could break half-way).
    pub fn lock(&self) -> MutexGuard<'_, Subscriber> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves when messages may be waiting (a permit is kept if nobody waits yet).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Signals that messages are waiting.
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// Ends the subscription.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Joining and live subscriptions.
#[derive(Debug, Default)]
pub struct Registry {
    live: BTreeMap<u64, Arc<Slot>>,
    joining: Vec<(u64, Arc<Slot>, Start)>,
    next_id: u64,
}

impl Registry {
    /// Adds a joining subscription; returns its id and slot.
    pub fn join(&mut self, subscriber: Subscriber, start: Start) -> (u64, Arc<Slot>) {
        self.next_id += 1;
        let slot = Arc::new(Slot::new(subscriber));
        self.joining.push((self.next_id, slot.clone(), start));
        (self.next_id, slot)
    }

    /// Removes a subscription.
    pub fn remove(&mut self, id: u64) {
        self.live.remove(&id);
        self.joining.retain(|(j, _, _)| *j != id);
    }

    /// Takes the joining subscriptions (the fan-out puts them back if its pass fails).
    pub fn take_joining(&mut self) -> Vec<(u64, Arc<Slot>, Start)> {
        std::mem::take(&mut self.joining)
    }

    /// Puts joining subscriptions back after a failed pass (closed ones are dropped).
    pub fn requeue(&mut self, joining: Vec<(u64, Arc<Slot>, Start)>) {
        let mut joining: Vec<_> = joining
            .into_iter()
            .filter(|(_, s, _)| !s.is_closed())
            .collect();
        joining.append(&mut self.joining);
        self.joining = joining;
    }

    /// Makes a subscription live.
    pub fn go_live(&mut self, id: u64, slot: Arc<Slot>) {
        if !slot.is_closed() {
            self.live.insert(id, slot);
        }
    }

    /// The live subscriptions, dropping closed ones.
    pub fn live(&mut self) -> Vec<Arc<Slot>> {
        self.live.retain(|_, slot| !slot.is_closed());
        self.live.values().cloned().collect()
    }

    /// How many subscriptions are live.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }
}
