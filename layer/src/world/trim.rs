//! Trimming: a region keeps the change-log entries and frame records of its newest frames only.
//!
//! Invariants:
//! - a trim clears every entry committed at or before a versionstamp and raises the region's
//!   floor (`changelog_floor/(region)`) to it with BYTE_MAX, in one transaction, so the floor
//!   never goes down and never lags the cleared entries;
//! - a cursor at or below the floor may have missed trimmed entries: it resumes from a fresh
//!   snapshot, never by replay (`query::changelog_floor` tells which);
//! - the processor's trim ([`FrameTrimmer`]) costs what it clears, not what the region keeps: it
//!   reads the log forward from the floor, one page at a time, and clears frame records by
//!   number from where its last trim stopped, so a trim never stalls a region's frames for a time
//!   that grows with the region's history ([`trim_keeping`], which counts the newest entries,
//!   reads all of them);
//! - it clears only the entries of frames at or before `newest - keep` (and the arrivals and
//!   service writes committed before such an entry), and frame records numbered at or before it:
//!   the entries and records of the newest `keep` frames always remain, so `query::frames` and
//!   `audit::frames::check_frames` see a contiguous run of frames ending at the last one.

use sekai_schema::{RegionId, WorldKeys};

use super::error::WorldError;
use super::query::changelog_floor;
use crate::kv::{run, Database, MutationType, RangeOption, Transaction};

/// Clears `region`'s change-log entries committed at or before `up_to`, in `trx`.
pub fn trim_through<T: Transaction>(trx: &T, keys: &WorldKeys, region: RegionId, up_to: &[u8; 10]) {
    let (begin, _) = keys.changelog_range(region);
    let (after, _) = keys.changelog_range_after(region, up_to);
    trx.clear_range(&begin, &after);
    trx.atomic_op(&keys.changelog_floor(region), up_to, MutationType::ByteMax);
}

/// Trims `region`'s change log to its newest `keep` entries; returns the new floor, if it
/// moved.
pub async fn trim_keeping<D: Database>(
    db: &D,
    keys: &WorldKeys,
    region: RegionId,
    keep: usize,
) -> Result<Option<[u8; 10]>, WorldError> {
    run(db, |trx, _| async move {
        let (begin, end) = keys.changelog_range(region);
        let newest = trx
            .get_range(&RangeOption::new(begin, end).limit(keep + 1).rev(), true)
            .await?;
        if newest.kvs.len() <= keep {
            return Ok(None);
        }
        let Some(oldest_kept) = newest.kvs.get(keep) else {
            return Ok(None);
        };
        let (_, stamp) = keys.decode_changelog(&oldest_kept.key)?;
        let mut up_to = [0u8; 10];
        up_to.copy_from_slice(&stamp.as_bytes()[..10]);
        let floor = changelog_floor(&trx, keys, region).await?;
        if floor.is_some_and(|f| f >= up_to) {
            return Ok(None);
        }
        trim_through(&trx, keys, region, &up_to);
        Ok(Some(up_to))
    })
    .await
}

/// What one trim transaction ([`trim_frames_through`]) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrimStep {
    /// Change-log entries cleared.
    pub entries: usize,
    /// The new change-log floor, if it moved.
    pub floor: Option<[u8; 10]>,
    /// Every frame record numbered below this is cleared (where the next step starts).
    pub frames_from: u64,
    /// True when the step stopped at a page limit with more to trim.
    pub more: bool,
}

/// One bounded trim transaction of `region`: clears the change-log entries before the first
/// entry of a frame after `cutoff` (at most `page` entries, read forward from the floor), and
/// the frame records numbered from `frames_from` up to `cutoff` (at most `page` of them;
/// `None`: from the oldest stored record).
///
/// The cleared entries are the frames' own deltas and the arrivals and service writes (frame 0)
/// committed between them; an entry that does not decode counts as one outside a frame.
pub async fn trim_frames_through<D: Database>(
    db: &D,
    keys: &WorldKeys,
    region: RegionId,
    cutoff: u64,
    frames_from: Option<u64>,
    page: usize,
) -> Result<TrimStep, WorldError> {
    run(db, |trx, _| async move {
        let floor = changelog_floor(&trx, keys, region).await?;
        let oldest = oldest_entries(&trx, keys, region, floor, cutoff, page).await?;
        let mut step = TrimStep {
            more: oldest.more,
            ..TrimStep::default()
        };
        if let Some(up_to) = oldest.through {
            debug_assert!(floor.is_none_or(|f| f < up_to), "a trim raises the floor");
            let begin = match floor {
                Some(f) => keys.changelog_range_after(region, &f).0,
                None => keys.changelog_range(region).0,
            };
            let (after, _) = keys.changelog_range_after(region, &up_to);
            trx.clear_range(&begin, &after);
            trx.atomic_op(&keys.changelog_floor(region), &up_to, MutationType::ByteMax);
            step.entries = oldest.count;
            step.floor = Some(up_to);
        }
        let from = match frames_from {
            Some(from) => from,
            None => oldest_frame(&trx, keys, region).await?.unwrap_or(cutoff),
        };
        let end = cutoff
            .saturating_add(1)
            .min(from.saturating_add(page as u64));
        if from < end {
            trx.clear_range(&keys.frame(region, from), &keys.frame(region, end));
        }
        step.frames_from = end.max(from);
        step.more |= step.frames_from <= cutoff;
        Ok(step)
    })
    .await
}

/// The oldest change-log entries that a trim for `cutoff` clears (see [`trim_frames_through`]).
struct Oldest {
    /// The commit versionstamp of the newest entry to clear.
    through: Option<[u8; 10]>,
    /// How many entries that clears.
    count: usize,
    /// True when the page ended before the first entry of a frame after `cutoff`.
    more: bool,
}

/// Reads at most `page` change-log entries after `floor`, stopping at the first entry of a frame
/// after `cutoff`.
async fn oldest_entries<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    floor: Option<[u8; 10]>,
    cutoff: u64,
    page: usize,
) -> Result<Oldest, WorldError> {
    let (begin, end) = match floor {
        Some(f) => keys.changelog_range_after(region, &f),
        None => keys.changelog_range(region),
    };
    let read = trx
        .get_range(&RangeOption::new(begin, end).limit(page), true)
        .await?;
    let mut oldest = Oldest {
        through: None,
        count: 0,
        more: read.more,
    };
    for kv in &read.kvs {
        let frame = super::codec::decode_delta(&kv.value).map_or(0, |d| d.frame);
        if frame > cutoff {
            oldest.more = false;
            break;
        }
        let (_, stamp) = keys.decode_changelog(&kv.key)?;
        let mut commit = [0u8; 10];
        commit.copy_from_slice(&stamp.as_bytes()[..10]);
        oldest.through = Some(commit);
        oldest.count += 1;
    }
    Ok(oldest)
}

/// The number of `region`'s oldest stored frame record (snapshot read).
async fn oldest_frame<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<Option<u64>, WorldError> {
    let (begin, end) = keys.frame_range(region);
    let first = trx
        .get_range(&RangeOption::new(begin, end).limit(1), true)
        .await?;
    match first.kvs.first() {
        Some(kv) => Ok(Some(keys.decode_frame(&kv.key)?.1)),
        None => Ok(None),
    }
}

/// A processor's trimmer: keeps its region to the change-log entries and frame records of the
/// newest `keep` frames, a few bounded transactions at a time (see the module docs).
///
/// It remembers where its frame-record trim stopped; a new trimmer (a new lease) starts from the
/// oldest stored record.
#[derive(Clone, Debug)]
pub struct FrameTrimmer {
    keep: u64,
    page: usize,
    steps: usize,
    frames_from: Option<u64>,
}

impl FrameTrimmer {
    /// A trimmer keeping `keep` frames, clearing at most `page` entries and `page` records per
    /// transaction and at most `steps` transactions per [`FrameTrimmer::trim`].
    pub fn new(keep: u64, page: usize, steps: usize) -> Self {
        Self {
            keep,
            page: page.max(1),
            steps,
            frames_from: None,
        }
    }

    /// Trims after frame `newest` was committed; returns the change-log entries cleared. A
    /// backlog (a store written before this trim existed, a long gap between trims) drains over
    /// several calls, `steps` transactions each, so no call stalls the region for long.
    pub async fn trim<D: Database>(
        &mut self,
        db: &D,
        keys: &WorldKeys,
        region: RegionId,
        newest: u64,
    ) -> Result<usize, WorldError> {
        let Some(cutoff) = newest.checked_sub(self.keep) else {
            return Ok(0);
        };
        let mut cleared = 0;
        for _ in 0..self.steps {
            let step =
                trim_frames_through(db, keys, region, cutoff, self.frames_from, self.page).await?;
            self.frames_from = Some(step.frames_from);
            cleared += step.entries;
            if !step.more {
                break;
            }
        }
        Ok(cleared)
    }
}
