//! The fan-out's decisions without I/O: which regions' logs a pass reads, where each region's
//! cursor moves, how the commits read are cut and ordered, how a joining subscription starts,
//! and what each subscriber is handed. The tokio driver (`super::Fanout`) does the reads, the
//! watches and the waking; the simulator drives the same core with modelled time.
//!
//! A pass: [`FanoutCore::begin`] → for each wanted region, [`Pass::step`] says what to read given
//! its head, and the driver reports it ([`Pass::unchanged`], [`Pass::started_at`],
//! [`Pass::read`]) → [`Pass::finish`] cuts and merges → if the pass's transaction committed,
//! [`FanoutCore::commit`] keeps its cursors (a failed pass keeps the old ones).
//!
//! Invariants:
//! - **commit order across regions**: every commit visible at the pass's read version has a
//!   versionstamp at most that version and every later one a greater one, so handing over all
//!   commits read, sorted, pass after pass, is the global commit order. When a region's log was
//!   cut short (too long for one pass), every region is cut at the same versionstamp (the
//!   smallest last stamp of the cut regions), so the order still holds;
//! - **no gaps**: a region's cursor only moves past commits handed over in this pass; a region
//!   cut short is marked unread (`head = None`) so the next pass reads it again without waiting;
//! - **whole commits**: a commit's entries are handed over together (one `on_commit` per stamp,
//!   with every region's deltas of that commit);
//! - **joiners**: a snapshot at `at` followed by the commits after `at` is the area's history
//!   with no gap or duplicate; a resume point at or below a region's trim floor, newer than
//!   anything in the area's logs, or further behind than `max_replay` entries gets a snapshot.

use std::collections::{BTreeMap, BTreeSet};

use sekai_layer::world::model::{Delta, Entity};
use sekai_schema::{EntityId, RegionId};

use super::log::{merge, Stamp};
use super::route::{Reach, Router};
use crate::session::Subscriber;

/// Change-log entries of one region: (commit versionstamp, delta), in commit order.
pub type Entries = Vec<(Stamp, Delta)>;

/// Commits by versionstamp, each with its deltas (of one or more regions), in commit order.
pub type Commits = BTreeMap<Stamp, Vec<Delta>>;

/// A planted bug, for the simulator to prove it catches mistakes in this core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedFanoutBug {
    /// A region read in full moves its cursor to the end of what it read even when another
    /// region cut the pass short: the commits past the cut are never handed over (a gap).
    CursorPastCut,
    /// The router forgets where entities were: a commit reaches only the subscriptions of the
    /// cells its changes land in, so one whose entity walked out of its area keeps a ghost.
    RouteByNewCellOnly,
}

/// What the fan-out knows of one region between passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionCursor {
    /// Whether `stamp` was read (a region new to the fan-out starts at its newest commit).
    pub known: bool,
    /// The newest commit handed over (`None`: the log was empty).
    pub stamp: Option<Stamp>,
    /// The head read by the pass that last read this region's log in full; `None` forces a read.
    pub head: Option<u64>,
}

/// What a pass reads for one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionStep {
    /// New to the fan-out: read the newest commit's stamp ([`Pass::started_at`]).
    FindStart,
    /// The head moved: read the log after this stamp (from the start when `None`), then
    /// [`Pass::read`].
    ReadLog {
        /// The region's cursor.
        after: Option<Stamp>,
        /// How far the head rose since the read that left the cursor there (`None`: unknown):
        /// the log has at most this many entries after the cursor, exactly this many when
        /// every rise came with an entry, as every frame's does.
        head_rise: Option<u64>,
    },
    /// Nothing new as of this pass ([`Pass::unchanged`]).
    Unchanged,
}

/// A cached region to bring up to date with what a pass read: its deltas are those of
/// [`PassOutput::commits`] for `region` ([`PassOutput::deltas_of`]).
#[derive(Debug)]
pub struct CacheAdvance {
    /// The region.
    pub region: RegionId,
    /// Its head in this pass.
    pub head: u64,
    /// Whether the pass's deltas of the region are everything up to `head` (else the cached
    /// region must be dropped).
    pub whole: bool,
}

/// What a finished pass hands over.
#[derive(Debug, Default)]
pub struct PassOutput {
    /// The commits to hand to the live subscriptions, in commit order.
    pub commits: Commits,
    /// The regions whose cached copy can take the deltas read.
    pub cache: Vec<CacheAdvance>,
}

impl PassOutput {
    /// The deltas of `region` in this pass, in commit order.
    pub fn deltas_of(&self, region: RegionId) -> impl Iterator<Item = &Delta> {
        self.commits
            .values()
            .flatten()
            .filter(move |d| d.region == region)
    }
}

/// The fan-out's state between passes.
#[derive(Clone, Debug, Default)]
pub struct FanoutCore {
    regions: BTreeMap<RegionId, RegionCursor>,
    router: Router,
    /// A region stopped being followed since the router last forgot the entities of the regions
    /// not followed: only then can it hold such entries (it records only followed regions').
    unfollowed: bool,
    bug: Option<PlantedFanoutBug>,
}

impl FanoutCore {
    /// A fan-out that knows no region yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fan-out that has handed over everything up to `stamp` in every one of `regions` (a
    /// subscriber's snapshot or resume point); each region is read at the next pass.
    pub fn starting_after(regions: impl IntoIterator<Item = RegionId>, stamp: Stamp) -> Self {
        let cursor = RegionCursor {
            known: true,
            stamp: Some(stamp),
            head: None,
        };
        Self {
            regions: regions.into_iter().map(|r| (r, cursor)).collect(),
            router: Router::new(),
            unfollowed: false,
            bug: None,
        }
    }

    /// Plants a bug (the simulator's self-test of its checks; never in production).
    pub fn plant(&mut self, bug: Option<PlantedFanoutBug>) {
        self.bug = bug;
        self.router.plant(bug);
    }

    /// The cursor of `region`, if the fan-out knows it.
    pub fn cursor(&self, region: RegionId) -> Option<&RegionCursor> {
        self.regions.get(&region)
    }

    /// Whether some region was cut short and must be read again without waiting for a watch.
    pub fn behind(&self) -> bool {
        self.regions.values().any(|c| c.head.is_none())
    }

    /// Starts a pass.
    pub fn begin(&self) -> Pass<'_> {
        Pass {
            old: &self.regions,
            next: BTreeMap::new(),
            read: Vec::new(),
            bug: self.bug,
        }
    }

    /// The pass's transaction committed: keep the cursors it moved (regions no subscription
    /// wanted any more are forgotten).
    pub fn commit(&mut self, cursors: BTreeMap<RegionId, RegionCursor>) {
        self.unfollowed |= self.regions.keys().any(|r| !cursors.contains_key(r));
        self.regions = cursors;
    }

    /// The reach of each of a committed pass's commits (see [`super::route`]), for
    /// [`hand_over`]; call it once per committed pass, after [`FanoutCore::commit`], with every
    /// commit the pass hands over.
    pub fn route(&mut self, commits: &Commits) -> Vec<Reach> {
        let regions = &self.regions;
        let followed = |region: RegionId| regions.contains_key(&region);
        // Walking every entry each pass cost 1.7 % of the server's CPU at 800 bots; with no
        // region dropped since the last walk, it would drop nothing.
        if std::mem::take(&mut self.unfollowed) {
            self.router.follow_only(followed);
        }
        debug_assert!(self.router.follows_only(followed));
        self.router.route(commits, followed)
    }
}

/// One pass in progress (it reads the core's cursors; the new ones are kept apart until
/// [`FanoutCore::commit`]).
#[derive(Debug)]
pub struct Pass<'a> {
    old: &'a BTreeMap<RegionId, RegionCursor>,
    next: BTreeMap<RegionId, RegionCursor>,
    read: Vec<(RegionId, u64, Entries, bool)>,
    bug: Option<PlantedFanoutBug>,
}

impl Pass<'_> {
    /// What to read for `region`, whose head this pass read as `head`.
    pub fn step(&self, region: RegionId, head: u64) -> RegionStep {
        match self.old.get(&region) {
            None => RegionStep::FindStart,
            Some(cursor) if !cursor.known => RegionStep::FindStart,
            Some(cursor) if cursor.head != Some(head) => RegionStep::ReadLog {
                after: cursor.stamp,
                head_rise: cursor.head.and_then(|before| head.checked_sub(before)),
            },
            Some(_) => RegionStep::Unchanged,
        }
    }

    /// Whether `region`'s head watch must be (re)armed: its head moved, or no watch is armed.
    pub fn needs_watch(&self, region: RegionId, head: u64, armed: bool) -> bool {
        !armed || self.old.get(&region).and_then(|c| c.head) != Some(head)
    }

    /// `region` has nothing new ([`RegionStep::Unchanged`]).
    pub fn unchanged(&mut self, region: RegionId, head: u64) {
        let cursor = self.old.get(&region).copied().unwrap_or_default();
        debug_assert_eq!(
            cursor.head,
            Some(head),
            "an unchanged region keeps its head"
        );
        self.next.insert(region, cursor);
    }

    /// `region` is new: it starts after its newest commit `stamp` (none when its log is empty).
    pub fn started_at(&mut self, region: RegionId, head: u64, stamp: Option<Stamp>) {
        self.next.insert(
            region,
            RegionCursor {
                known: true,
                stamp,
                head: Some(head),
            },
        );
    }

    /// `region`'s log after its cursor: `entries` in commit order, `complete` when they reach
    /// the log's end as of this pass.
    pub fn read(&mut self, region: RegionId, head: u64, entries: Entries, complete: bool) {
        let cursor = self.old.get(&region).copied().unwrap_or_default();
        debug_assert!(
            entries.windows(2).all(|w| w[0].0 <= w[1].0),
            "a region's log is read in commit order"
        );
        debug_assert!(
            entries
                .first()
                .is_none_or(|(stamp, _)| cursor.stamp.is_none_or(|after| *stamp > after)),
            "a log read starts after the cursor"
        );
        self.next.insert(
            region,
            RegionCursor {
                head: Some(head),
                ..cursor
            },
        );
        self.read.push((region, head, entries, complete));
    }

    /// Cuts every region at the same versionstamp when one was cut short, moves the cursors,
    /// and merges the commits. Returns what to hand over and the cursors to keep if the pass's
    /// transaction commits ([`FanoutCore::commit`]).
    pub fn finish(self) -> (PassOutput, BTreeMap<RegionId, RegionCursor>) {
        let Pass {
            mut next,
            read,
            bug,
            ..
        } = self;
        let cut = read
            .iter()
            .filter(|(_, _, entries, complete)| !complete && !entries.is_empty())
            .filter_map(|(_, _, entries, _)| entries.last().map(|(stamp, _)| *stamp))
            .min();
        let mut output = PassOutput::default();
        let mut entries = Vec::new();
        for (region, head, region_entries, complete) in read {
            let read_count = region_entries.len();
            let last_read = region_entries.last().map(|(stamp, _)| *stamp);
            let kept: Entries = region_entries
                .into_iter()
                .filter(|(stamp, _)| cut.is_none_or(|cut| *stamp <= cut))
                .collect();
            output.cache.push(CacheAdvance {
                region,
                head,
                whole: complete && kept.len() == read_count,
            });
            if let Some(cursor) = next.get_mut(&region) {
                let moved_to = match bug {
                    Some(PlantedFanoutBug::CursorPastCut) if complete => last_read,
                    _ => kept.last().map(|(stamp, _)| *stamp),
                };
                if let Some(stamp) = moved_to {
                    cursor.stamp = Some(stamp);
                }
                if !complete || cut.is_some() {
                    cursor.head = None; // cut short: read again in the next pass
                }
            }
            entries.extend(kept);
        }
        output.commits = merge(entries);
        (output, next)
    }
}

/// How a joining subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// With a snapshot of its area.
    Snapshot,
    /// Replaying the log after this commit versionstamp.
    Resume(Stamp),
}

/// What a resuming subscription's reads found, for [`resume_or_snapshot`].
#[derive(Clone, Copy, Debug)]
pub struct ResumeCheck {
    /// The resume point.
    pub from: Stamp,
    /// The newest commit in the area's regions.
    pub newest: Stamp,
    /// Whether a region's trim floor is at or above the resume point.
    pub trimmed_past: bool,
}

/// Whether a resume can replay the log (`true`) or needs a snapshot; the replay must then also
/// fit `max_replay` entries (see [`Beginning`]).
pub fn resume_or_snapshot(check: &ResumeCheck) -> bool {
    if check.trimmed_past {
        tracing::info!("resume point older than a trimmed log; sending a snapshot");
        false
    } else if check.from > check.newest {
        tracing::info!("resume point newer than the area's logs; sending a snapshot");
        false
    } else {
        true
    }
}

/// What a joining subscription starts with.
#[derive(Debug)]
pub enum Beginning {
    /// The area's entities as of commit `at`.
    Snapshot {
        /// The entities.
        entities: Vec<Entity>,
        /// The newest commit they include.
        at: Stamp,
    },
    /// The log after `from`, then the ids visible now.
    Replay {
        /// The resume point.
        from: Stamp,
        /// The commits after it.
        commits: Commits,
        /// The ids of the area's entities as of the pass.
        visible: Vec<EntityId>,
    },
}

impl Beginning {
    /// Starts `subscriber` with it.
    pub fn apply(self, subscriber: &mut Subscriber) {
        match self {
            Beginning::Snapshot { entities, at } => subscriber.start_snapshot(entities, at),
            Beginning::Replay {
                from,
                commits,
                visible,
            } => {
                subscriber.start_resume(from);
                for (stamp, deltas) in &commits {
                    subscriber.on_commit(*stamp, deltas);
                }
                subscriber.settle(visible);
            }
        }
    }
}

/// What handing a pass's commits to one subscriber did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandOver {
    /// Whether something was queued (wake its connection).
    pub queued: bool,
    /// Times its outbox coalesced.
    pub coalesced: u64,
    /// Bytes it holds queued after.
    pub queued_bytes: usize,
    /// Commits handed to it.
    pub handed: u64,
}

/// Which of a pass's commits a subscriber is handed.
#[derive(Clone, Copy, Debug)]
pub enum Handed<'a> {
    /// Every commit touching these regions (a replay: which entities it holds is unknown).
    Touching(&'a BTreeSet<RegionId>),
    /// These commits, by position in the pass, ascending: those whose reach concerns it
    /// ([`Reach::concerning`], or the fan-out's index of them).
    Only(&'a [usize]),
}

/// Hands the `handed` ones of a pass's commits to `subscriber`, in commit order, each whole.
pub fn hand_over(subscriber: &mut Subscriber, commits: &Commits, handed: Handed<'_>) -> HandOver {
    let coalesced_before = subscriber.coalesced();
    let mut queued = false;
    let mut count = 0;
    let mut take = |(stamp, deltas): (&Stamp, &Vec<Delta>)| {
        queued |= subscriber.on_commit(*stamp, deltas);
        count += 1;
    };
    match handed {
        Handed::Touching(regions) => commits
            .iter()
            .filter(|(_, deltas)| deltas.iter().any(|d| regions.contains(&d.region)))
            .for_each(&mut take),
        Handed::Only(positions) => {
            debug_assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "commits are handed in order, each once"
            );
            let mut next = positions.iter().copied().peekable();
            for (at, commit) in commits.iter().enumerate() {
                if next.next_if_eq(&at).is_some() {
                    take(commit);
                }
            }
        }
    }
    HandOver {
        queued,
        coalesced: subscriber.coalesced() - coalesced_before,
        queued_bytes: subscriber.queued_bytes(),
        handed: count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: u8) -> Stamp {
        [0, 0, 0, 0, 0, 0, 0, n, 0, 0]
    }

    fn entry(region: RegionId, n: u8) -> (Stamp, Delta) {
        (
            stamp(n),
            Delta {
                region,
                frame: u64::from(n),
                changes: Vec::new(),
                outcomes: Vec::new(),
            },
        )
    }

    const A: RegionId = RegionId { x: 0, z: 0 };
    const B: RegionId = RegionId { x: 1, z: 0 };

    fn known(core: &mut FanoutCore) {
        let mut pass = core.begin();
        pass.started_at(A, 1, None);
        pass.started_at(B, 1, None);
        let (_, cursors) = pass.finish();
        core.commit(cursors);
    }

    #[test]
    fn a_new_region_starts_at_its_newest_commit_and_an_unchanged_head_reads_nothing() {
        let mut core = FanoutCore::new();
        assert_eq!(core.begin().step(A, 1), RegionStep::FindStart);
        known(&mut core);
        let pass = core.begin();
        assert_eq!(pass.step(A, 1), RegionStep::Unchanged);
        assert_eq!(
            pass.step(A, 3),
            RegionStep::ReadLog {
                after: None,
                head_rise: Some(2)
            }
        );
        assert!(pass.needs_watch(A, 2, true));
        assert!(!pass.needs_watch(A, 1, true));
        assert!(pass.needs_watch(A, 1, false));
    }

    #[test]
    fn a_region_cut_short_cuts_every_region_at_the_same_stamp() {
        let mut core = FanoutCore::new();
        known(&mut core);
        let mut pass = core.begin();
        pass.read(A, 2, vec![entry(A, 1), entry(A, 3)], false);
        pass.read(B, 2, vec![entry(B, 2), entry(B, 4)], true);
        let (output, cursors) = pass.finish();
        assert_eq!(
            output.commits.keys().copied().collect::<Vec<_>>(),
            vec![stamp(1), stamp(2), stamp(3)]
        );
        assert_eq!(cursors[&B].stamp, Some(stamp(2)));
        assert_eq!(cursors[&B].head, None);
        assert_eq!(cursors[&A].stamp, Some(stamp(3)));
        assert!(output.cache.iter().all(|c| !c.whole));
        core.commit(cursors);
        assert!(core.behind());
        assert_eq!(
            core.begin().step(B, 2),
            RegionStep::ReadLog {
                after: Some(stamp(2)),
                head_rise: None
            }
        );
    }

    #[test]
    fn the_planted_bug_moves_a_cursor_past_the_cut() {
        let mut core = FanoutCore::starting_after([A, B], stamp(0));
        core.plant(Some(PlantedFanoutBug::CursorPastCut));
        let mut pass = core.begin();
        pass.read(A, 2, vec![entry(A, 1), entry(A, 3)], false);
        pass.read(B, 2, vec![entry(B, 2), entry(B, 4)], true);
        let (_, cursors) = pass.finish();
        assert_eq!(cursors[&B].stamp, Some(stamp(4)));
    }

    #[test]
    fn resumes_replay_only_within_the_log() {
        let check = |from, newest, trimmed_past| {
            resume_or_snapshot(&ResumeCheck {
                from: stamp(from),
                newest: stamp(newest),
                trimmed_past,
            })
        };
        assert!(check(2, 5, false));
        assert!(!check(6, 5, false));
        assert!(!check(2, 5, true));
    }
}
