//! The subscriptions an edge serves, shared between the fan-out task and the connections.
//!
//! Invariants: a subscription is either joining (waiting for the fan-out to give it a snapshot or
//! a replay in its next pass) or live (taking commits), never both; a closed slot takes nothing
//! more and is dropped by the next pass (closing one marks the index stale).
//!
//! The live subscriptions are handed to passes as a [`Live`] index by region, built only when
//! the membership changed: a pass reaches just the slots of the regions its commits touched,
//! so its cost follows what changed, not how many clients the edge serves.

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
    /// The registry's mark that some slot closed since its index was built.
    some_closed: Arc<AtomicBool>,
}

impl Slot {
    fn new(subscriber: Subscriber, some_closed: Arc<AtomicBool>) -> Self {
        Self {
            regions: subscriber.regions().clone(),
            state: Mutex::new(subscriber),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            some_closed,
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
        self.some_closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The live subscriptions, and by the regions their areas touch (a slot is listed, by its
/// position in `slots`, under each).
#[derive(Debug, Default)]
pub struct Live {
    slots: Vec<Arc<Slot>>,
    by_region: BTreeMap<RegionId, Vec<usize>>,
}

impl Live {
    fn new<'a>(slots: impl Iterator<Item = &'a Arc<Slot>>) -> Self {
        let mut live = Self::default();
        for slot in slots {
            for region in slot.regions() {
                live.by_region
                    .entry(*region)
                    .or_default()
                    .push(live.slots.len());
            }
            live.slots.push(slot.clone());
        }
        live
    }

    /// How many subscriptions are live.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The regions some live subscription touches.
    pub fn regions(&self) -> impl Iterator<Item = RegionId> + '_ {
        self.by_region.keys().copied()
    }

    /// Every slot touching one of `touched`, each once (one closed since the index was built
    /// too: the caller skips it).
    pub fn touching(&self, touched: &BTreeSet<RegionId>) -> Vec<&Arc<Slot>> {
        // Listed under each region it touches: taken under the first touched one only, marked
        // by position (no walk of each slot's regions, so a pass costs what it touches).
        let mut met = vec![false; self.slots.len()];
        let mut slots = Vec::new();
        for region in touched {
            for &at in self.by_region.get(region).into_iter().flatten() {
                if !std::mem::replace(&mut met[at], true) {
                    slots.push(&self.slots[at]);
                }
            }
        }
        slots
    }
}

/// Joining and live subscriptions.
#[derive(Debug, Default)]
pub struct Registry {
    live: BTreeMap<u64, Arc<Slot>>,
    /// The index of `live` handed to passes (`None`: membership changed since it was built).
    index: Option<Arc<Live>>,
    /// Set by a slot that closes: the index must drop it.
    some_closed: Arc<AtomicBool>,
    joining: Vec<(u64, Arc<Slot>, Start)>,
    next_id: u64,
}

impl Registry {
    /// Adds a joining subscription; returns its id and slot.
    pub fn join(&mut self, subscriber: Subscriber, start: Start) -> (u64, Arc<Slot>) {
        self.next_id += 1;
        let slot = Arc::new(Slot::new(subscriber, self.some_closed.clone()));
        self.joining.push((self.next_id, slot.clone(), start));
        (self.next_id, slot)
    }

    /// Removes a subscription.
    pub fn remove(&mut self, id: u64) {
        if self.live.remove(&id).is_some() {
            self.index = None;
        }
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
            self.index = None;
        }
    }

    /// The live subscriptions by region; rebuilt (dropping closed ones) only after the
    /// membership changed or a slot closed.
    pub fn live(&mut self) -> Arc<Live> {
        if self.some_closed.swap(false, Ordering::AcqRel) {
            self.index = None;
        }
        if let Some(index) = &self.index {
            return index.clone();
        }
        self.live.retain(|_, slot| !slot.is_closed());
        let index = Arc::new(Live::new(self.live.values()));
        self.index = Some(index.clone());
        index
    }

    /// How many subscriptions are live.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use sekai_schema::{Area, Vec3};

    use super::*;

    /// A slot whose area is a 10 m circle around (x, z): inside one region, or across the
    /// border at x = 256 when x is near it.
    fn slot(registry: &mut Registry, x: f32, z: f32) -> (u64, Arc<Slot>) {
        let area = Area::new(Vec3::new(x, 0.0, z), 10.0);
        let (id, slot) = registry.join(Subscriber::new(1, area, 1 << 20), Start::Snapshot);
        registry.take_joining();
        registry.go_live(id, slot.clone());
        (id, slot)
    }

    fn ids(live: &Live, touched: &[RegionId]) -> Vec<usize> {
        let touched: BTreeSet<RegionId> = touched.iter().copied().collect();
        live.touching(&touched)
            .into_iter()
            .map(|s| Arc::as_ptr(s) as usize)
            .collect()
    }

    #[test]
    fn a_pass_meets_each_slot_of_the_touched_regions_once_and_no_other() {
        let a = RegionId { x: 0, z: 0 };
        let b = RegionId { x: 1, z: 0 };
        let c = RegionId { x: 2, z: 0 };
        let mut registry = Registry::default();
        let (_, inside_a) = slot(&mut registry, 100.0, 100.0);
        let (_, across) = slot(&mut registry, 255.0, 100.0);
        let (_, inside_c) = slot(&mut registry, 600.0, 100.0);
        assert_eq!(across.regions().len(), 2, "the border slot touches a and b");
        let ptr = |s: &Arc<Slot>| Arc::as_ptr(s) as usize;
        let live = registry.live();
        assert_eq!(live.len(), 3);
        assert_eq!(live.regions().collect::<Vec<_>>(), vec![a, b, c]);
        let mut both = ids(&live, &[a, b]);
        both.sort();
        let mut expected = vec![ptr(&inside_a), ptr(&across)];
        expected.sort();
        assert_eq!(both, expected, "the border slot is met once");
        assert_eq!(ids(&live, &[b]), vec![ptr(&across)]);
        assert_eq!(ids(&live, &[c]), vec![ptr(&inside_c)]);
        assert!(ids(&live, &[RegionId { x: 9, z: 9 }]).is_empty());
    }

    #[test]
    fn the_index_is_rebuilt_only_when_membership_changes_or_a_slot_closes() {
        let mut registry = Registry::default();
        let (id, first) = slot(&mut registry, 100.0, 100.0);
        let before = registry.live();
        assert!(
            Arc::ptr_eq(&before, &registry.live()),
            "unchanged: the same index"
        );
        first.close();
        assert!(
            registry.live().is_empty(),
            "a closed slot leaves the next index"
        );
        let (second, _) = slot(&mut registry, 100.0, 100.0);
        assert_eq!(registry.live().len(), 1);
        registry.remove(second);
        registry.remove(id);
        assert!(registry.live().is_empty());
    }
}
