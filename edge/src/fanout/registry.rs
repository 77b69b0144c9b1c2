//! The subscriptions an edge serves, shared between the fan-out task and the connections.
//!
//! Invariants: a subscription is either joining (waiting for the fan-out to give it a snapshot or
//! a replay in its next pass) or live (taking commits), never both; a closed slot takes nothing
//! more and is dropped by the next pass (closing one marks the index stale).
//!
//! The live subscriptions are handed to passes as a [`Live`] index by cell, region, player and
//! avatar, built only when the membership changed: a pass reaches just the slots its commits
//! concern ([`Reach`]), so its cost follows what changed, not how many clients the edge serves.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;
use sekai_schema::{EntityId, PlayerId, RegionId};
use tokio::sync::Notify;

use super::core::Start;
use super::route::{Cell, Reach};
use crate::session::Subscriber;

/// One subscription: its state machine and the signal that it has something to send.
#[derive(Debug)]
pub struct Slot {
    state: Mutex<Subscriber>,
    /// The regions the subscriber's area touches (fixed for its life: an area never changes), so
    /// the fan-out can tell which slots a pass concerns without locking them.
    regions: BTreeSet<RegionId>,
    /// Likewise its cells (`None`: too many to index, reached by region).
    cells: Option<Vec<Cell>>,
    player: PlayerId,
    avatar: Option<EntityId>,
    ready: Notify,
    closed: AtomicBool,
    /// The registry's mark that some slot closed since its index was built.
    some_closed: Arc<AtomicBool>,
}

impl Slot {
    fn new(subscriber: Subscriber, some_closed: Arc<AtomicBool>) -> Self {
        Self {
            regions: subscriber.regions().clone(),
            cells: subscriber
                .cells()
                .map(|cells| cells.iter().copied().collect()),
            player: subscriber.player(),
            avatar: subscriber.avatar_id(),
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

/// The live subscriptions, and by what a commit may concern them through (a slot is listed, by
/// its position in `slots`, under each of its regions, each of its cells or, when its area has
/// too many, under `by_region_unindexed`, and under its player and avatar).
#[derive(Debug, Default)]
pub struct Live {
    slots: Vec<Arc<Slot>>,
    by_region: BTreeMap<RegionId, Vec<usize>>,
    by_region_unindexed: FxHashMap<RegionId, Vec<usize>>,
    by_cell: FxHashMap<Cell, Vec<usize>>,
    by_player: FxHashMap<PlayerId, Vec<usize>>,
    by_avatar: FxHashMap<EntityId, Vec<usize>>,
}

impl Live {
    fn new<'a>(slots: impl Iterator<Item = &'a Arc<Slot>>) -> Self {
        let mut live = Self::default();
        for slot in slots {
            let at = live.slots.len();
            for region in slot.regions() {
                live.by_region.entry(*region).or_default().push(at);
            }
            match &slot.cells {
                Some(cells) => {
                    for cell in cells {
                        live.by_cell.entry(*cell).or_default().push(at);
                    }
                }
                None => {
                    for region in slot.regions() {
                        live.by_region_unindexed
                            .entry(*region)
                            .or_default()
                            .push(at);
                    }
                }
            }
            live.by_player.entry(slot.player).or_default().push(at);
            if let Some(avatar) = slot.avatar {
                live.by_avatar.entry(avatar).or_default().push(at);
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

    /// Every slot some of `reaches` (one per commit of a pass) concern, each once, with the
    /// positions of those commits, ascending: exactly [`Reach::concerning`] for each slot, found
    /// through the index instead of by asking every slot (closed slots too: the caller skips
    /// them).
    pub fn reached(&self, reaches: &[Reach]) -> Vec<(&Arc<Slot>, Vec<usize>)> {
        let mut met = Met::new(self);
        for (commit, reach) in reaches.iter().enumerate() {
            for region in &reach.regions {
                met.take(commit, self.by_region.get(region));
            }
            for cell in &reach.cells {
                met.take(commit, self.by_cell.get(cell));
                met.take(commit, self.by_region_unindexed.get(&cell.0));
            }
            for player in &reach.players {
                met.take(commit, self.by_player.get(player));
            }
            for id in &reach.upserted {
                met.take(commit, self.by_avatar.get(id));
            }
        }
        met.slots
    }
}

/// Slots gathered from the index's lists, each once, with the commits that reached them: found
/// by the slot's position (no walk of each slot's own keys, so a pass costs what it touches).
struct Met<'a> {
    live: &'a Live,
    /// Where each slot is in `slots`, once met.
    found: Vec<Option<usize>>,
    slots: Vec<(&'a Arc<Slot>, Vec<usize>)>,
}

impl<'a> Met<'a> {
    fn new(live: &'a Live) -> Self {
        Self {
            live,
            found: vec![None; live.slots.len()],
            slots: Vec::new(),
        }
    }

    /// Commit `commit` (met in ascending order) reaches every slot of `list`.
    fn take(&mut self, commit: usize, list: Option<&Vec<usize>>) {
        for &at in list.into_iter().flatten() {
            match self.found[at] {
                Some(index) => {
                    let commits = &mut self.slots[index].1;
                    if commits.last() != Some(&commit) {
                        commits.push(commit);
                    }
                }
                None => {
                    self.found[at] = Some(self.slots.len());
                    self.slots.push((&self.live.slots[at], vec![commit]));
                }
            }
        }
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

    /// The slots reached by one commit concerning every subscription of `touched`.
    fn ids(live: &Live, touched: &[RegionId]) -> Vec<usize> {
        let reach = Reach {
            regions: touched.to_vec(),
            ..Reach::default()
        };
        reached(live, reach)
    }

    fn reached(live: &Live, reach: Reach) -> Vec<usize> {
        live.reached(&[reach])
            .into_iter()
            .map(|(s, _)| Arc::as_ptr(s) as usize)
            .collect()
    }

    #[test]
    fn a_change_reaches_the_slots_over_its_cell_and_the_player_and_avatar_reach_theirs() {
        let mut registry = Registry::default();
        let (_, near) = slot(&mut registry, 100.0, 100.0);
        let (_, far) = slot(&mut registry, 200.0, 200.0);
        let ptr = |s: &Arc<Slot>| Arc::as_ptr(s) as usize;
        let live = registry.live();
        let cell_near = sekai_schema::geometry::cell_of(&Vec3::new(100.0, 0.0, 100.0));
        let by_cell = Reach {
            cells: vec![cell_near],
            ..Reach::default()
        };
        assert_eq!(reached(&live, by_cell), vec![ptr(&near)]);
        let by_player = Reach {
            players: vec![1],
            ..Reach::default()
        };
        let mut both = reached(&live, by_player);
        both.sort();
        let mut expected = vec![ptr(&near), ptr(&far)];
        expected.sort();
        assert_eq!(both, expected, "both slots are player 1's");
        let elsewhere = Reach {
            cells: vec![sekai_schema::geometry::cell_of(&Vec3::new(
                500.0, 0.0, 500.0,
            ))],
            players: vec![2],
            ..Reach::default()
        };
        assert!(reached(&live, elsewhere).is_empty());
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
