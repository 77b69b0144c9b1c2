//! The outbound queue of one subscription: bounded memory, coalescing when the client is slow.
//!
//! Invariants:
//! - items leave in the order they entered; a snapshot, if queued, is always first;
//! - the queued deltas never take more than `budget` (estimated) bytes: when one more would
//!   exceed it, every queued delta and the new one are folded into a single delta holding the
//!   latest change per entity (and the outcomes, at most [`MAX_COALESCED_OUTCOMES`] latest);
//!   applying that delta gives the same state as applying them one by one;
//! - if even the folded delta exceeds the budget the queue is replaced by one
//!   [`Outbound::Reset`] and takes nothing more: the client drops its state and resubscribes;
//! - a queued snapshot is not counted against the budget (it is bounded by the area's contents).

use std::collections::{BTreeMap, VecDeque};

use sekai_layer::world::model::{Change, Delta, Entity, Outcome};
use sekai_schema::EntityId;

/// The most outcomes a coalesced delta keeps (the newest ones).
pub const MAX_COALESCED_OUTCOMES: usize = 1_024;

/// One message for the client's `DeltaSink`.
#[derive(Clone, Debug, PartialEq)]
pub enum Outbound {
    /// The full state of the area as of commit versionstamp `at`.
    Snapshot {
        /// The entities in the area.
        entities: Vec<Entity>,
        /// The versionstamp the state is current at.
        at: [u8; 10],
    },
    /// The changes of one commit (or of several, coalesced), filtered to the area.
    Delta {
        /// The newest commit versionstamp the delta covers.
        stamp: [u8; 10],
        /// The changes and the client's own outcomes.
        delta: Delta,
    },
    /// The stream cannot continue; the client must resubscribe.
    Reset {
        /// Why.
        reason: String,
    },
}

/// A bounded, coalescing queue of [`Outbound`] messages.
#[derive(Debug)]
pub struct Outbox {
    budget: usize,
    queue: VecDeque<Outbound>,
    delta_bytes: usize,
    coalesced: u64,
    reset: bool,
}

impl Outbox {
    /// An empty queue whose deltas may take `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            queue: VecDeque::new(),
            delta_bytes: 0,
            coalesced: 0,
            reset: false,
        }
    }

    /// Queues a snapshot; it replaces everything queued before.
    pub fn push_snapshot(&mut self, entities: Vec<Entity>, at: [u8; 10]) {
        if self.reset {
            return;
        }
        self.queue.clear();
        self.delta_bytes = 0;
        self.queue.push_back(Outbound::Snapshot { entities, at });
    }

    /// Queues a delta, coalescing or resetting when over budget.
    pub fn push_delta(&mut self, stamp: [u8; 10], delta: Delta) {
        if self.reset {
            return;
        }
        let size = delta_size(&delta);
        if self.delta_bytes + size <= self.budget {
            self.delta_bytes += size;
            self.queue.push_back(Outbound::Delta { stamp, delta });
            return;
        }
        let snapshot = match self.queue.front() {
            Some(Outbound::Snapshot { .. }) => self.queue.pop_front(),
            _ => None,
        };
        let queued = std::mem::take(&mut self.queue);
        let folded = fold(
            queued
                .into_iter()
                .filter_map(|item| match item {
                    Outbound::Delta { delta, .. } => Some(delta),
                    _ => None,
                })
                .chain(std::iter::once(delta)),
        );
        self.coalesced += 1;
        let size = delta_size(&folded);
        if size > self.budget {
            self.reset = true;
            self.delta_bytes = 0;
            self.queue.push_back(Outbound::Reset {
                reason: format!(
                    "client too slow: {size} bytes of pending changes exceed the {} byte budget",
                    self.budget
                ),
            });
            return;
        }
        self.queue.extend(snapshot);
        self.delta_bytes = size;
        self.queue.push_back(Outbound::Delta {
            stamp,
            delta: folded,
        });
    }

    /// Takes the next message to send.
    pub fn pop(&mut self) -> Option<Outbound> {
        let item = self.queue.pop_front()?;
        if let Outbound::Delta { delta, .. } = &item {
            let size = delta_size(delta);
            debug_assert!(
                self.delta_bytes >= size,
                "queued bytes count every queued delta"
            );
            self.delta_bytes -= size.min(self.delta_bytes);
        }
        Some(item)
    }

    /// Takes the deltas at the front of the queue, at most `max`, oldest first (none when the
    /// front is a snapshot or a reset): what one batched `DeltaSink.deltas` call carries.
    pub fn pop_deltas(&mut self, max: usize) -> Vec<([u8; 10], Delta)> {
        let mut deltas = Vec::new();
        while deltas.len() < max && matches!(self.queue.front(), Some(Outbound::Delta { .. })) {
            if let Some(Outbound::Delta { stamp, delta }) = self.pop() {
                deltas.push((stamp, delta));
            }
        }
        deltas
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Estimated bytes of the queued deltas.
    pub fn delta_bytes(&self) -> usize {
        self.delta_bytes
    }

    /// How many times the queue was coalesced.
    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }

    /// True once the queue gave up (a reset is or was queued).
    pub fn is_reset(&self) -> bool {
        self.reset
    }
}

/// Folds deltas (oldest first) into one with the latest change per entity; region and frame
/// are the newest delta's.
fn fold(deltas: impl Iterator<Item = Delta>) -> Delta {
    let mut latest: BTreeMap<EntityId, Change> = BTreeMap::new();
    let mut outcomes: VecDeque<Outcome> = VecDeque::new();
    let mut folded = Delta::default();
    for delta in deltas {
        folded.region = delta.region;
        folded.frame = delta.frame;
        for change in delta.changes {
            let id = match &change {
                Change::Upsert(entity) => entity.id,
                Change::Remove(id) => *id,
            };
            latest.insert(id, change);
        }
        for outcome in delta.outcomes {
            if outcomes.len() == MAX_COALESCED_OUTCOMES {
                outcomes.pop_front();
            }
            outcomes.push_back(outcome);
        }
    }
    folded.changes = latest.into_values().collect();
    folded.outcomes = outcomes.into();
    folded
}

/// An estimate of a delta's encoded size, in bytes.
pub fn delta_size(delta: &Delta) -> usize {
    let changes: usize = delta
        .changes
        .iter()
        .map(|c| match c {
            Change::Upsert(entity) => entity_size(entity),
            Change::Remove(_) => 24,
        })
        .sum();
    let outcomes: usize = delta.outcomes.iter().map(|o| 40 + o.reason.len()).sum();
    48 + changes + outcomes
}

/// An estimate of an entity's encoded size, in bytes.
pub fn entity_size(entity: &Entity) -> usize {
    112 + 16 * entity.inventory.0.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekai_layer::world::model::{EntityKind, Inventory};
    use sekai_schema::{RegionId, Vec3};

    fn entity(id: u128, x: f32) -> Entity {
        Entity {
            id: EntityId(id),
            kind: EntityKind::Tree,
            hp: 5,
            position: Vec3::new(x, 0.0, 1.0),
            inventory: Inventory::default(),
            owner: 0,
        }
    }

    fn delta(frame: u64, changes: Vec<Change>) -> Delta {
        Delta {
            region: RegionId::new(0, 0),
            frame,
            changes,
            outcomes: vec![Outcome {
                player: 1,
                seq: frame,
                accepted: true,
                reason: String::new(),
            }],
        }
    }

    fn stamp(n: u8) -> [u8; 10] {
        [0, 0, 0, 0, 0, 0, 0, n, 0, 0]
    }

    #[test]
    fn within_budget_items_leave_in_order() {
        let mut outbox = Outbox::new(10_000);
        outbox.push_snapshot(vec![entity(1, 1.0)], stamp(1));
        outbox.push_delta(stamp(2), delta(2, vec![Change::Upsert(entity(1, 2.0))]));
        outbox.push_delta(stamp(3), delta(3, vec![Change::Remove(EntityId(1))]));
        assert!(matches!(outbox.pop(), Some(Outbound::Snapshot { .. })));
        assert!(matches!(outbox.pop(), Some(Outbound::Delta { stamp: s, .. }) if s == stamp(2)));
        assert!(matches!(outbox.pop(), Some(Outbound::Delta { stamp: s, .. }) if s == stamp(3)));
        assert_eq!(outbox.pop(), None);
        assert_eq!(outbox.delta_bytes(), 0);
        assert_eq!(outbox.coalesced(), 0);
    }

    #[test]
    fn a_slow_client_gets_the_latest_state_per_entity_within_the_budget() {
        let one = delta_size(&delta(1, vec![Change::Upsert(entity(1, 0.0))]));
        let budget = one * 6;
        let mut outbox = Outbox::new(budget);
        outbox.push_snapshot(vec![entity(1, 0.0), entity(2, 0.0)], stamp(1));
        // Many moves of two entities and a removal: never more than the budget queued.
        for i in 0..100u8 {
            let changes = if i == 99 {
                vec![Change::Remove(EntityId(2))]
            } else {
                vec![Change::Upsert(entity(u128::from(i % 2) + 1, f32::from(i)))]
            };
            // Only every tenth delta carries an outcome: outcomes are kept, not coalesced.
            let mut next = delta(u64::from(i) + 2, changes);
            if i % 10 != 0 {
                next.outcomes.clear();
            }
            outbox.push_delta(stamp(i + 2), next);
            assert!(outbox.delta_bytes() <= budget, "step {i}");
        }
        assert!(outbox.coalesced() > 0);
        assert!(!outbox.is_reset());
        assert!(matches!(outbox.pop(), Some(Outbound::Snapshot { .. })));
        // Replaying what is left gives the final state: entity 1 at x = 98, entity 2 gone.
        let mut state: BTreeMap<EntityId, Entity> = BTreeMap::new();
        let mut last_stamp = [0; 10];
        let mut outcomes = 0;
        while let Some(item) = outbox.pop() {
            let Outbound::Delta { stamp, delta } = item else {
                panic!("expected deltas after the snapshot");
            };
            last_stamp = stamp;
            outcomes += delta.outcomes.len();
            for change in delta.changes {
                match change {
                    Change::Upsert(e) => {
                        state.insert(e.id, e);
                    }
                    Change::Remove(id) => {
                        state.remove(&id);
                    }
                }
            }
        }
        assert_eq!(last_stamp, stamp(101));
        assert_eq!(state.get(&EntityId(1)).map(|e| e.position.x), Some(98.0));
        assert_eq!(state.get(&EntityId(2)), None);
        // Every outcome is kept.
        assert_eq!(outcomes, 10);
    }

    #[test]
    fn a_fold_over_budget_becomes_a_reset() {
        let budget = delta_size(&delta(1, vec![Change::Upsert(entity(1, 0.0))])) * 2;
        let mut outbox = Outbox::new(budget);
        for i in 0..10u8 {
            // Distinct entities cannot be coalesced away.
            outbox.push_delta(
                stamp(i),
                delta(
                    u64::from(i),
                    vec![Change::Upsert(entity(u128::from(i), 0.0))],
                ),
            );
        }
        assert!(outbox.is_reset());
        assert!(matches!(outbox.pop(), Some(Outbound::Reset { .. })));
        assert_eq!(outbox.pop(), None);
        outbox.push_delta(stamp(50), delta(50, vec![]));
        assert!(outbox.is_empty());
    }

    #[test]
    fn fold_caps_outcomes() {
        let many = (0..MAX_COALESCED_OUTCOMES as u64 + 10).map(|i| delta(i, vec![]));
        let folded = fold(many);
        assert_eq!(folded.outcomes.len(), MAX_COALESCED_OUTCOMES);
        assert_eq!(
            folded.outcomes.last().map(|o| o.seq),
            Some(MAX_COALESCED_OUTCOMES as u64 + 9)
        );
    }
}
