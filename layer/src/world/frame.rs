//! T2, `ProcessInputsAndUpdateWorld`: one frame of one region in one transaction.
//!
//! Invariants:
//! - the frame reads the lease serializably (so a takeover fails it with a conflict) and
//!   renews it only when it is due: a lease key rewritten by every frame would pile up versions
//!   that every scan of the leases (`lease::snapshot_all`, each node's survey) walks through; it
//!   reads the pending inputs, the region version and the last frame number serializably, so a
//!   concurrent takeover, external write or second processor fails it with a conflict; an idle
//!   frame that clears nothing, renews nothing and stores no direct input is read-only and costs
//!   no fsync;
//! - each (player, seq) applies at most once: `applied/(player)` holds the player's last applied
//!   seq, and inputs at or below it are dropped as duplicates (a T1 retried after
//!   `commit_unknown_result`, or a client resend); a player's inputs apply strictly in seq
//!   order, and an input behind a gap waits in the inbox (`specs/`: mutations `HighWaterMark`
//!   and `ClearGapped` show both halves are needed); entries behind a gap are kept in the hot
//!   tier's `waiting` set and the scan moves past them, so however many inputs wait, every
//!   other player's inputs are read and applied;
//! - an input whose player's avatar is in another region (the client routed it before the
//!   avatar crossed) is forwarded to that region's inbox, keeping its seq, instead of rejected;
//! - direct inputs (`direct`) are stored by the frame: those the triage does not apply now
//!   (behind a gap, past the frame's most) as T1 would have stored them (appended to the
//!   region's inbox, the player's durable record raised), those it applies through
//!   `applied/(player)`, which carries the seq and its action's digest and which
//!   `inbox::durable_seq` counts as durable, so a committed frame leaves each of them applied or
//!   durable in the inbox, never neither, with no durable write for the common case; a direct
//!   input and an inbox entry of the same (player, seq) apply once;
//! - a frame told the inbox is unchanged (`HotRegion::inbox_unchanged`: the inbox watch an
//!   earlier frame of this hot tier armed has not fired) neither scans the inbox nor arms a new
//!   watch: an input appended since that earlier frame's read fires the caller's watch, so the
//!   next frame scans and it waits one frame at most, never stranded; after a failed attempt
//!   the next frame scans;
//! - the inbox is read at snapshot, so T1 appends never conflict with T2 (a serializable read
//!   would: FDB's versionstamped-key write range covers the log's tail); the lease read and
//!   rewrite serializes the frames of a region, so no two frames consume the same entry;
//! - a frame appends at most one entry to any region's change log (its own delta, and one
//!   arrival delta per destination of entities that crossed a border);
//! - frame numbers of a region go up by exactly one: frame n+1 is written by the transaction that
//!   read n as the last frame record;
//! - the hot state is used only when the region version read inside this transaction equals the
//!   one it was loaded at; any failed attempt discards it (it may hold uncommitted changes);
//! - the hot tier's avatar index always describes its entities: it is rebuilt whenever the
//!   entities are (re)loaded and follows every frame's changes (`AvatarIndex::apply`), so a frame
//!   never scans the region's entities to find avatars (checked by `debug_assert!` after every
//!   frame); a hot tier that is current is never reloaded, however many entities it holds;
//! - the hot tier's `cells` say where the spatial index has each of its entities (each one's
//!   `cell()`: built on load, which reads the index, and moved with every change the frame
//!   writes), so writing a change reads no reverse index entry (`spatial_rev`) for an entity the
//!   hot tier holds (checked by `debug_assert!` after every frame);
//! - the hot tier remembers the number of the last frame this holder committed, so the next
//!   frame reads no frame record: frame records of a region are written only under its lease,
//!   which every frame reads serializably, so while the lease is held the remembered number is
//!   the last one; it is forgotten after any failed attempt (a `commit_unknown_result` may have
//!   committed it) and read again.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;

use sekai_schema::{CellId, EntityId, PlayerId, RegionId, WorldKeys};

use super::codec::{decode_input, encode_delta, encode_frame_record};
use super::error::WorldError;
use super::lease::{self, Lease};
use super::model::{Change, Delta, FrameRecord, Input};
use super::rules::{apply_frame_indexed, departs, AvatarIndex, RegionState};
use super::{inbox, players, store};
use crate::kv::{key_after, FdbResult, MutationType, RangeOption, RangeResult, Transaction};
use crate::telemetry::FrameMetrics;

/// The most inbox entries one frame reads.
pub const MAX_INPUTS_PER_FRAME: usize = 512;
/// The most inputs one frame applies: keeps a frame's delta and record far below FDB's
/// 100,000-byte value limit.
pub const MAX_APPLIED_PER_FRAME: usize = 256;

/// A processor's in-memory copy of its region (the hot tier).
#[derive(Debug)]
pub struct HotRegion {
    /// The region's entities.
    pub state: RegionState,
    /// The avatars of `state`, indexed (rebuilt on load, then kept up to date frame by frame).
    avatars: AvatarIndex,
    /// Where the spatial index has each entity of `state` (rebuilt on load, then moved with
    /// every change written).
    cells: HashMap<EntityId, (RegionId, CellId)>,
    loaded_at: Option<u64>,
    /// The last frame number this holder committed (`None`: read it from the frame records).
    last_frame: Option<u64>,
    /// Where the next inbox scan starts: every entry before it was consumed or is in
    /// `waiting`. Scanning from the inbox's start would walk the deletion markers of every
    /// consumed entry, a cost that grows with the region's history in an LSM store.
    inbox_from: Option<Vec<u8>>,
    /// Inbox entries read but not applied yet (behind a seq gap, or past a frame's
    /// [`MAX_APPLIED_PER_FRAME`]), by key: triaged again by every frame without being read
    /// again, so entries that must wait never hold back the scan (and
    /// never delay other players' inputs).
    waiting: BTreeMap<Vec<u8>, Input>,
    /// Set by [`HotRegion::inbox_unchanged`]: the next frame skips its inbox scan.
    skip_scan: bool,
    /// The region's frame metrics.
    pub(crate) metrics: FrameMetrics,
}

impl HotRegion {
    /// An empty hot tier that loads on first use.
    pub fn new(region: RegionId) -> Self {
        Self {
            state: RegionState {
                region,
                entities: BTreeMap::new(),
            },
            avatars: AvatarIndex::default(),
            cells: HashMap::new(),
            loaded_at: None,
            last_frame: None,
            inbox_from: None,
            waiting: BTreeMap::new(),
            skip_scan: false,
            metrics: FrameMetrics::new(region),
        }
    }

    /// Forgets the copy; the next frame reloads it and scans the inbox from its start.
    pub fn invalidate(&mut self) {
        self.loaded_at = None;
        self.last_frame = None;
        self.inbox_from = None;
        self.waiting.clear();
        self.skip_scan = false;
    }

    /// Tells the next frame that the inbox watch its caller holds (armed by an earlier frame of
    /// this hot tier) has not fired: no input was appended to the inbox since that frame read
    /// it, or one was and the watch is about to fire. The next frame then skips its inbox scan
    /// (it triages what waits and the direct inputs) and, unless it leaves work behind, arms no
    /// watch: the caller keeps waiting on the one it holds, which still fires for any input
    /// the skipped scan did not see. A frame woken only by direct inputs, the common case when
    /// an edge shares the process, reads and watches nothing of the inbox.
    pub fn inbox_unchanged(&mut self) {
        self.skip_scan = true;
    }

    /// Whether `cells` holds exactly the cell of every entity of `state` (checked after frames).
    fn cells_match(&self) -> bool {
        self.cells.len() == self.state.entities.len()
            && self
                .state
                .entities
                .values()
                .all(|e| self.cells.get(&e.id) == Some(&e.cell()))
    }

    /// Records that frame `frame` committed (the next frame is `frame + 1`).
    pub fn committed(&mut self, frame: u64) {
        debug_assert!(
            self.last_frame.is_none_or(|last| frame == last + 1),
            "frame numbers go up by one"
        );
        self.last_frame = Some(frame);
    }

    /// Inbox entries waiting behind a seq gap.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Where the inbox scan stands (take it before an attempt).
    pub fn scan_point(&self) -> ScanPoint {
        ScanPoint {
            inbox_from: self.inbox_from.clone(),
            waiting: self.waiting.clone(),
        }
    }

    /// After a failed attempt: forgets the entities (they may hold the attempt's uncommitted
    /// changes) and puts the inbox scan back at `point`, taken before the attempt. Nothing the
    /// attempt cleared was committed (or, after `commit_unknown_result`, what it cleared is gone
    /// and what it applied is a duplicate the next triage drops), so the retry resumes there
    /// instead of walking the inbox's deletion markers from its start: a cost that grows with the
    /// region's history.
    pub fn rewind(&mut self, point: ScanPoint) {
        self.loaded_at = None;
        self.last_frame = None;
        self.inbox_from = point.inbox_from;
        self.waiting = point.waiting;
        self.skip_scan = false;
    }
}

/// Where a processor's inbox scan stood: the next scan's start and the entries read but not
/// applied yet (see [`HotRegion::scan_point`]).
#[derive(Clone, Debug)]
pub struct ScanPoint {
    inbox_from: Option<Vec<u8>>,
    waiting: BTreeMap<Vec<u8>, Input>,
}

/// A watch that fires when the inbox may have new inputs.
pub type InboxWatch = Pin<Box<dyn Future<Output = FdbResult<()>> + Send>>;

/// What one T2 attempt did.
pub enum FrameStep {
    /// A frame was processed.
    Processed {
        /// Its record.
        record: FrameRecord,
        /// Its delta.
        delta: Delta,
        /// Fires when the inbox may hold inputs this frame did not take: a watch armed in the
        /// frame's own transaction (so an input appended after the frame's read wakes it), or
        /// ready at once when the frame left inputs behind (its scan or apply limit). `None`
        /// after a frame that skipped its scan ([`HotRegion::inbox_unchanged`]): the caller's
        /// watch still covers it.
        next: Option<InboxWatch>,
    },
    /// No input applied (the inbox held none that could apply; direct inputs, if any, were
    /// duplicates or appended to the inbox); the watch fires when it may have more (`None`: as
    /// for [`FrameStep::Processed`]).
    Idle(Option<InboxWatch>),
}

/// Runs one T2 attempt in `trx` (the caller commits). `new_id` makes ids for built entities.
/// `direct` are inputs handed over by an edge of this process (`direct`): the frame applies them
/// with the inbox's and stores those it does not apply now as T1 would (see the module docs).
pub async fn process_frame<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    lease: &Lease,
    hot: &mut HotRegion,
    new_id: &mut impl FnMut() -> EntityId,
    direct: &[Input],
) -> Result<FrameStep, WorldError> {
    let region = hot.state.region;
    let checked = lease::check(trx, keys, region, lease.holder, lease.epoch).await?;
    let (inbox_begin, end) = keys.inbox_range(region);
    let begin = hot.inbox_from.clone().unwrap_or(inbox_begin);
    let skip_scan = std::mem::take(&mut hot.skip_scan) && hot.inbox_from.is_some();
    // A snapshot read, so appenders (T1) never conflict with the frame. Two frames of one
    // region cannot both consume an entry: each reads and rewrites the lease key, so the later
    // commit conflicts. New entries always sort after the ones read (versionstamps increase).
    let read = if skip_scan {
        RangeResult::default()
    } else {
        trx.get_range(
            &RangeOption::new(begin.clone(), end).limit(MAX_INPUTS_PER_FRAME),
            true,
        )
        .await?
    };
    let more_to_read = read.more;
    if let Some(last) = read.kvs.last() {
        hot.inbox_from = Some(key_after(&last.key));
    } else {
        hot.inbox_from = Some(begin);
    }
    for kv in read.kvs {
        match decode_input(&kv.value) {
            Ok(input) => {
                hot.waiting.insert(kv.key, input);
            }
            Err(error) => {
                tracing::warn!(%error, "dropping an undecodable inbox entry");
                trx.clear(&kv.key);
            }
        }
    }
    let triage = triage(trx, keys, &hot.waiting, direct).await?;
    for key in &triage.consumed {
        trx.clear(key);
        hot.waiting.remove(key);
    }
    // User versions: deferred inputs go to this region's inbox only, forwarded strays to other
    // regions' inboxes only, deltas to the change log: no two versionstamped keys can meet.
    debug_assert!(
        triage.deferred.len() < usize::from(u16::MAX),
        "deferred inputs fit the user versions (a frame takes at most one batch past its most)"
    );
    // A deferred direct input is stored as T1 stores it (appended, its durable record raised);
    // one applied now is durable through `applied/(player)` (`inbox::durable_seq`), and one at
    // or below the applied seq already was.
    for (user_version, input) in triage.deferred.iter().enumerate() {
        let user_version = u16::try_from(user_version).unwrap_or(u16::MAX);
        inbox::submit_input(trx, keys, region, input, user_version);
    }
    // More work without a new input: the scan stopped at its limit, the frame took its most, or
    // it appended direct inputs to the inbox (the next frame reads them).
    let more_to_do =
        more_to_read || triage.apply.len() == MAX_APPLIED_PER_FRAME || !triage.deferred.is_empty();
    let mut inputs = triage.apply;
    if !inputs.is_empty() {
        ensure_hot(trx, keys, hot).await?;
        inputs = forward_strays(trx, keys, hot, inputs).await?;
    }
    if checked.is_due() {
        checked.renew(trx, keys, region);
    }
    if inputs.is_empty() {
        return Ok(FrameStep::Idle(inbox_watch(
            trx, keys, region, more_to_do, !skip_scan,
        )));
    }
    let frame = match hot.last_frame {
        Some(last) => last,
        None => last_frame(trx, keys, region).await?,
    } + 1;
    let (outcomes, changes) = apply_frame_indexed(&mut hot.state, &hot.avatars, &inputs, new_id);
    write_changes(trx, keys, hot, &changes).await?;
    hot.avatars.apply(&hot.state, &changes);
    debug_assert_eq!(hot.avatars.to_map(), hot.state.avatars());
    debug_assert!(
        hot.cells_match(),
        "the hot tier's cells follow its entities"
    );
    for input in &inputs {
        trx.set(&keys.applied(input.player), &inbox::encode_applied(input));
    }
    let record = FrameRecord {
        region,
        frame,
        inputs: inputs.iter().map(|i| (i.player, i.seq)).collect(),
        rejected: outcomes.iter().filter(|o| !o.accepted).count() as u32,
    };
    let delta = Delta {
        region,
        frame,
        changes,
        outcomes,
    };
    trx.set(&keys.frame(region, frame), &encode_frame_record(&record));
    append_delta(trx, keys, region, &delta, 0);
    Ok(FrameStep::Processed {
        record,
        delta,
        next: inbox_watch(trx, keys, region, more_to_do, !skip_scan),
    })
}

/// What the processor waits on after this attempt: ready at once when `more_to_do` (the scan
/// has not reached the inbox's end, or more inputs wait to apply), else, when the attempt read
/// the inbox (`scanned`), a watch of the inbox signal armed in `trx`, which fires for any input
/// appended after `trx`'s read version, else nothing new (the caller's watch, armed before the
/// skipped scan, covers it). A frame that writes its own region's signal (appending deferred
/// direct inputs; forwarded inputs go to other regions) always has `more_to_do`, so an armed
/// watch compares against what T1 last wrote.
fn inbox_watch<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    more_to_do: bool,
    scanned: bool,
) -> Option<InboxWatch> {
    if more_to_do {
        Some(Box::pin(std::future::ready(Ok(()))))
    } else if scanned {
        Some(Box::pin(trx.watch(&keys.inbox_signal(region))))
    } else {
        None
    }
}

/// Appends `delta` to `region`'s change log and bumps the region head edges watch.
pub fn append_delta<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    delta: &Delta,
    user_version: u16,
) {
    trx.atomic_op(
        &keys.changelog_versionstamped(region, user_version),
        &encode_delta(delta),
        MutationType::SetVersionstampedKey,
    );
    store::bump_head(trx, keys, region);
}

/// Loads the region into the hot tier unless the copy is provably current.
async fn ensure_hot<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    hot: &mut HotRegion,
) -> Result<(), WorldError> {
    let region = hot.state.region;
    let version = store::region_version(trx, keys, region).await?;
    if hot.loaded_at == Some(version) {
        return Ok(());
    }
    hot.state.entities = load_region(trx, keys, region).await?;
    hot.avatars = AvatarIndex::new(&hot.state);
    hot.cells = hot
        .state
        .entities
        .values()
        .map(|e| (e.id, e.cell()))
        .collect();
    hot.loaded_at = Some(version);
    tracing::debug!(%region, entities = hot.state.entities.len(), "hot region loaded");
    Ok(())
}

/// Every entity of `region`, from the spatial index. Snapshot reads suffice: the region
/// version, read serializably, changes with every write to the region.
pub async fn load_region<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<BTreeMap<EntityId, super::model::Entity>, WorldError> {
    let range = keys.spatial_region_range(region);
    let entities = super::query::indexed_entities(trx, keys, range, true).await?;
    Ok(entities.into_iter().map(|e| (e.id, e)).collect())
}

/// The region's last frame number (0 before the first frame).
pub async fn last_frame<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<u64, WorldError> {
    let (begin, end) = keys.frame_range(region);
    let last = trx
        .get_range(&RangeOption::new(begin, end).limit(1).rev(), false)
        .await?;
    match last.kvs.first() {
        Some(kv) => Ok(keys.decode_frame(&kv.key)?.1),
        None => Ok(0),
    }
}

/// Sends the inputs of players whose avatar is in another region to that region's inbox, in
/// order and with their seqs (its frames apply them in seq order like any other); returns the
/// inputs that stay here. A player with no recorded avatar stays, and the rules reject the input.
async fn forward_strays<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    hot: &HotRegion,
    inputs: Vec<Input>,
) -> Result<Vec<Input>, WorldError> {
    let mut whereabouts: BTreeMap<PlayerId, Option<RegionId>> = BTreeMap::new();
    let mut stay = Vec::with_capacity(inputs.len());
    let mut user_version: u16 = 0;
    for input in inputs {
        if hot.avatars.get(input.player).is_some() {
            stay.push(input);
            continue;
        }
        let region = match whereabouts.get(&input.player) {
            Some(region) => *region,
            None => {
                let region = avatar_region(trx, keys, input.player).await?;
                whereabouts.insert(input.player, region);
                region
            }
        };
        match region {
            Some(region) if region != hot.state.region => {
                // One user version per forwarded input: at most MAX_INPUTS_PER_FRAME of them.
                debug_assert!(
                    user_version < u16::MAX,
                    "forwarded inputs exceed a user version"
                );
                inbox::submit_input(trx, keys, region, &input, user_version);
                user_version += 1;
            }
            _ => stay.push(input),
        }
    }
    Ok(stay)
}

/// The region `player`'s recorded avatar is indexed in (snapshot reads: a stale answer only
/// costs one more forward).
async fn avatar_region<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    player: PlayerId,
) -> Result<Option<RegionId>, WorldError> {
    let Some(avatar) = players::avatar_of(trx, keys, player, true).await? else {
        return Ok(None);
    };
    Ok(store::indexed_cell(trx, keys, avatar, true)
        .await?
        .map(|(region, _)| region))
}

/// What a frame does with the pending inbox entries and direct inputs.
struct Triage {
    /// Inputs to apply now: for each player, the consecutive run after its applied seq.
    apply: Vec<Input>,
    /// Inbox entries to clear: the inputs applied now and duplicates of applied ones.
    consumed: Vec<Vec<u8>>,
    /// Direct inputs not applied now (behind a gap, or past the frame's most): they go to the
    /// inbox, as T1 would have put them.
    deferred: Vec<Input>,
}

/// A pending input: an inbox entry (its key) or a direct input (`None`).
type Pending<'a> = (Option<&'a Vec<u8>>, &'a Input);

/// Sorts the pending inputs: each player's inputs apply strictly in seq order, one seq after
/// another (`applied + 1`, `applied + 2`, …); an input behind a gap stays in the inbox until
/// the missing one arrives (a client resends it), so no acknowledged input is ever skipped.
/// At most [`MAX_APPLIED_PER_FRAME`] inputs apply, taken round-robin over the players (each
/// player's first pending input, then each one's second, …) so no player starves another; the
/// rest wait for the next frame. A direct input and an inbox entry of the same (player, seq)
/// count once (the inbox entry applies).
async fn triage<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    pending: &BTreeMap<Vec<u8>, Input>,
    direct: &[Input],
) -> Result<Triage, WorldError> {
    let mut sorted: Vec<Pending<'_>> = pending
        .iter()
        .map(|(key, input)| (Some(key), input))
        .chain(direct.iter().map(|input| (None, input)))
        .collect();
    // Stable: an inbox entry stays before a direct input of the same (player, seq).
    sorted.sort_by_key(|(_, input)| (input.player, input.seq));
    let mut consumed = Vec::new();
    let mut deferred = Vec::new();
    let mut runs: BTreeMap<PlayerId, Vec<Pending<'_>>> = BTreeMap::new();
    let mut next: BTreeMap<PlayerId, u64> = BTreeMap::new();
    for (key, input) in sorted {
        let expected = match next.get(&input.player) {
            Some(seq) => *seq,
            None => applied_seq(trx, keys, input.player).await? + 1,
        };
        next.insert(input.player, expected);
        if input.seq < expected {
            consumed.extend(key.cloned());
        } else if input.seq == expected {
            next.insert(input.player, expected + 1);
            runs.entry(input.player).or_default().push((key, input));
        } else if key.is_none() {
            deferred.push(input.clone());
        }
    }
    let mut runs: Vec<(Vec<Pending<'_>>, usize)> = runs.into_values().map(|run| (run, 0)).collect();
    let mut apply = Vec::new();
    'rounds: loop {
        let before = apply.len();
        for (run, taken) in &mut runs {
            if apply.len() == MAX_APPLIED_PER_FRAME {
                break 'rounds;
            }
            if let Some((key, input)) = run.get(*taken) {
                consumed.extend(key.cloned());
                apply.push((*input).clone());
                *taken += 1;
            }
        }
        if apply.len() == before {
            break;
        }
    }
    for (run, taken) in &runs {
        let left = run[*taken..].iter().filter(|(key, _)| key.is_none());
        deferred.extend(left.map(|(_, input)| (*input).clone()));
    }
    Ok(Triage {
        apply,
        consumed,
        deferred,
    })
}

/// The last seq applied for `player` (0 if none).
pub async fn applied_seq<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    player: PlayerId,
) -> Result<u64, WorldError> {
    match inbox::applied_record(trx, keys, player, false).await {
        Ok(record) => Ok(record.seq),
        // As an absent record: the player's inputs wait behind a gap, the region goes on.
        Err(WorldError::Codec(error)) => {
            tracing::warn!(%error, player, "an undecodable applied record reads as 0");
            Ok(0)
        }
        Err(other) => Err(other),
    }
}

/// Where the spatial index has `id`: `known` from the hot tier's cells, else read (an entity the
/// hot tier does not hold, e.g. one built in this frame).
async fn indexed_cell<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    id: EntityId,
    known: Option<(RegionId, CellId)>,
) -> Result<Option<(RegionId, CellId)>, WorldError> {
    match known {
        Some(cell) => Ok(Some(cell)),
        None => store::indexed_cell(trx, keys, id, true).await,
    }
}

/// Writes the frame's entity changes with their indexes; entities that left the region leave
/// the hot tier, and each destination learns of them through its version and one arrival
/// delta in its change log.
async fn write_changes<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    hot: &mut HotRegion,
    changes: &[Change],
) -> Result<(), WorldError> {
    let region = hot.state.region;
    let mut arrivals: BTreeMap<RegionId, Vec<Change>> = BTreeMap::new();
    for change in changes {
        match change {
            Change::Upsert(entity) => {
                let known = hot.cells.get(&entity.id).copied();
                let indexed = indexed_cell(trx, keys, entity.id, known).await?;
                store::put_entity(trx, keys, entity, indexed);
                if departs(region, change) {
                    hot.state.entities.remove(&entity.id);
                    hot.cells.remove(&entity.id);
                    arrivals
                        .entry(entity.region())
                        .or_default()
                        .push(change.clone());
                } else {
                    hot.cells.insert(entity.id, entity.cell());
                }
            }
            Change::Remove(id) => {
                let known = hot.cells.remove(id);
                let indexed = indexed_cell(trx, keys, *id, known).await?;
                store::remove_entity(trx, keys, *id, indexed);
            }
        }
    }
    // One change-log entry per destination: a commit appends at most one entry to any region's
    // log, so a cursor of 10-byte commit versionstamps never skips part of a commit.
    for (user_version, (destination, changes)) in arrivals.into_iter().enumerate() {
        store::bump_region_version(trx, keys, destination);
        let arrival = Delta {
            region: destination,
            frame: 0,
            changes,
            outcomes: Vec::new(),
        };
        let user_version = u16::try_from(user_version + 1).unwrap_or(u16::MAX);
        append_delta(trx, keys, destination, &arrival, user_version);
    }
    Ok(())
}
