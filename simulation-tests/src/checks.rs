//! The invariants of DESIGN.md ("Truth and checks"), checked against the database after a run.
//! Generic over the KV contract: the same checks run on the embedded engine and in the
//! FoundationDB workload.
//!
//! - **exactly once, in order**: every acknowledged (player, seq) appears in exactly one frame,
//!   each player's seqs increase in commit order across all regions, nothing unsent is applied,
//!   and no inbox still holds an input;
//! - **frames**: each region's frame records are numbered 1..n, and its change log holds one
//!   frame delta per record, in the same order, with the same inputs;
//! - **conservation**: `rules::resource_totals` over every stored entity equals the world's;
//! - **index**: every entity has exactly one spatial entry, at its position's cell, and a reverse
//!   entry naming that cell; a spatial entry with a value (a covering index) holds the entity
//!   exactly; no index entry names a missing entity;
//! - **durability**: after a crash, every acknowledged input is still in an inbox or a frame, and
//!   every frame a processor saw commit is still there, unchanged.
//!
//! All reads are snapshot reads in one transaction per check, paged by [`scan`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sekai_layer::kv::{get_range_all, Database, KeyValue, Transaction};
use sekai_layer::world::codec::{decode_delta, decode_entity, decode_frame_record, decode_input};
use sekai_layer::world::error::WorldError;
use sekai_layer::world::model::{Entity, FrameRecord};
use sekai_layer::world::query::entities_in_area;
use sekai_layer::world::rules::{resource_totals, ResourceTotals};
use sekai_schema::{Area, EntityId, KeyKind, KeyRange, PlayerId, RegionId, WorldKeys};

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which check failed.
    pub check: &'static str,
    /// What it found.
    pub detail: String,
}

impl Violation {
    /// A violation of `check`.
    pub fn new(check: &'static str, detail: impl Into<String>) -> Self {
        Self {
            check,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.detail)
    }
}

impl From<WorldError> for Violation {
    fn from(error: WorldError) -> Self {
        Violation::new("database read", error.to_string())
    }
}

/// What the harness knows independently of the database.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Every acknowledged (player, seq).
    pub acked: BTreeSet<(PlayerId, u64)>,
    /// The highest seq each player handed out.
    pub sent: BTreeMap<PlayerId, u64>,
    /// Frames processors saw commit: (region, frame) → inputs.
    pub frames: BTreeMap<(RegionId, u64), Vec<(PlayerId, u64)>>,
}

/// Figures of a checked world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorldSummary {
    /// Frames committed, all regions.
    pub frames: u64,
    /// Inputs applied (accepted or rejected by the rules).
    pub inputs: u64,
    /// Inputs the rules rejected.
    pub rejected: u64,
    /// Entities stored.
    pub entities: u64,
}

/// Every pair in `range`, paged.
pub async fn scan<T: Transaction>(trx: &T, range: KeyRange) -> Result<Vec<KeyValue>, WorldError> {
    Ok(get_range_all(trx, range.0, range.1, true).await?)
}

/// Runs every check on a quiet world; `totals` is what the world started with.
pub async fn check_world<D: Database>(
    db: &D,
    keys: &WorldKeys,
    regions: &[RegionId],
    ledger: &Ledger,
    totals: ResourceTotals,
) -> Result<WorldSummary, Violation> {
    let trx = db.create_trx().map_err(WorldError::from)?;
    let mut summary = check_frames_and_inputs(&trx, keys, regions, ledger).await?;
    let entities = check_index(&trx, keys).await?;
    summary.entities = entities.len() as u64;
    let found = resource_totals(entities.values());
    if found != totals {
        return Err(Violation::new(
            "resources conserved",
            format!("world started with {totals:?}, holds {found:?}"),
        ));
    }
    Ok(summary)
}

/// Frame records, change-log frame deltas, exactly-once and per-player order, empty inboxes.
async fn check_frames_and_inputs<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    regions: &[RegionId],
    ledger: &Ledger,
) -> Result<WorldSummary, Violation> {
    let mut summary = WorldSummary::default();
    let mut applied: Vec<([u8; 10], PlayerId, u64)> = Vec::new();
    for region in regions {
        let records = frame_records(trx, keys, *region).await?;
        for (i, record) in records.iter().enumerate() {
            if record.frame != i as u64 + 1 {
                return Err(Violation::new(
                    "frames contiguous",
                    format!(
                        "region {region}: frame #{} is numbered {}",
                        i + 1,
                        record.frame
                    ),
                ));
            }
            summary.rejected += u64::from(record.rejected);
        }
        summary.frames += records.len() as u64;
        check_reported_frames(*region, &records, ledger)?;
        let mut frame_deltas = 0;
        for kv in scan(trx, keys.changelog_range(*region)).await? {
            let (_, stamp) = keys.decode_changelog(&kv.key).map_err(WorldError::from)?;
            let delta = decode_delta(&kv.value).map_err(WorldError::from)?;
            if delta.frame == 0 {
                continue;
            }
            frame_deltas += 1;
            let record = records.get(delta.frame as usize - 1);
            let inputs: Vec<(PlayerId, u64)> =
                delta.outcomes.iter().map(|o| (o.player, o.seq)).collect();
            if delta.frame != frame_deltas || record.map(|r| &r.inputs) != Some(&inputs) {
                return Err(Violation::new(
                    "change log matches frames",
                    format!(
                        "region {region}: log entry #{frame_deltas} is frame {} with {inputs:?}",
                        delta.frame
                    ),
                ));
            }
            let mut commit = [0u8; 10];
            commit.copy_from_slice(&stamp.as_bytes()[..10]);
            applied.extend(inputs.into_iter().map(|(p, s)| (commit, p, s)));
        }
        if frame_deltas != records.len() as u64 {
            return Err(Violation::new(
                "change log matches frames",
                format!(
                    "region {region}: {} frame records, {frame_deltas} frame deltas",
                    records.len()
                ),
            ));
        }
        let pending = scan(trx, keys.inbox_range(*region)).await?;
        if let Some(kv) = pending.first() {
            let input = decode_input(&kv.value).map_err(WorldError::from)?;
            return Err(Violation::new(
                "inboxes drained",
                format!(
                    "region {region} still holds {} inputs, first {}#{}",
                    pending.len(),
                    input.player,
                    input.seq
                ),
            ));
        }
    }
    applied.sort_by_key(|a| a.0);
    summary.inputs = applied.len() as u64;
    check_exactly_once(&applied, ledger)?;
    Ok(summary)
}

/// Every frame a processor saw commit is stored with the same inputs.
fn check_reported_frames(
    region: RegionId,
    records: &[FrameRecord],
    ledger: &Ledger,
) -> Result<(), Violation> {
    for ((r, frame), inputs) in ledger.frames.range((region, 0)..=(region, u64::MAX)) {
        let stored = records.get((*frame as usize).wrapping_sub(1));
        if stored.map(|s| &s.inputs) != Some(inputs) {
            return Err(Violation::new(
                "committed frames kept",
                format!("region {r}: frame {frame} committed with {inputs:?}, stored {stored:?}"),
            ));
        }
    }
    Ok(())
}

/// `applied` is in commit order: each player's seqs increase, each acked seq appears once, and
/// nothing beyond what was sent appears.
fn check_exactly_once(
    applied: &[([u8; 10], PlayerId, u64)],
    ledger: &Ledger,
) -> Result<(), Violation> {
    let mut last: BTreeMap<PlayerId, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (_, player, seq) in applied {
        if let Some(prev) = last.insert(*player, *seq) {
            if *seq <= prev {
                return Err(Violation::new(
                    "inputs in each player's order",
                    format!("player {player}: seq {seq} applied after seq {prev}"),
                ));
            }
        }
        if *seq > ledger.sent.get(player).copied().unwrap_or(0) {
            return Err(Violation::new(
                "only sent inputs applied",
                format!("player {player}: seq {seq} was never sent"),
            ));
        }
        seen.insert((*player, *seq));
    }
    if let Some((player, seq)) = ledger.acked.iter().find(|a| !seen.contains(a)) {
        return Err(Violation::new(
            "acknowledged inputs applied exactly once",
            format!("player {player}: acknowledged seq {seq} was never applied"),
        ));
    }
    Ok(())
}

/// The frame records of `region`, in frame order.
async fn frame_records<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<Vec<FrameRecord>, WorldError> {
    let mut records = Vec::new();
    for kv in scan(trx, keys.frame_range(region)).await? {
        records.push(decode_frame_record(&kv.value)?);
    }
    Ok(records)
}

/// Checks the spatial index against the entities; returns the entities.
async fn check_index<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
) -> Result<BTreeMap<EntityId, Entity>, Violation> {
    let mut entities = BTreeMap::new();
    for kv in scan(trx, keys.kind_range(KeyKind::Entity)).await? {
        let entity = decode_entity(&kv.value).map_err(WorldError::from)?;
        entities.insert(entity.id, entity);
    }
    let mut spatial: BTreeMap<EntityId, Vec<_>> = BTreeMap::new();
    for kv in scan(trx, keys.kind_range(KeyKind::Spatial)).await? {
        let (region, cell, id) = keys.decode_spatial(&kv.key).map_err(WorldError::from)?;
        spatial.entry(id).or_default().push((region, cell));
        if !kv.value.is_empty() {
            let covered = decode_entity(&kv.value).map_err(WorldError::from)?;
            if entities.get(&id) != Some(&covered) {
                return Err(Violation::new(
                    "spatial index agrees",
                    format!(
                        "covering entry of {id} holds {covered:?}, entity is {:?}",
                        entities.get(&id)
                    ),
                ));
            }
        }
    }
    let mut reverse = BTreeMap::new();
    for kv in scan(trx, keys.kind_range(KeyKind::SpatialRev)).await? {
        let id = keys.decode_spatial_rev(&kv.key).map_err(WorldError::from)?;
        let at = WorldKeys::decode_spatial_rev_value(&kv.value).map_err(WorldError::from)?;
        reverse.insert(id, at);
    }
    for (id, entity) in &entities {
        let cell = entity.cell();
        if spatial.get(id).map(Vec::as_slice) != Some(&[cell][..]) {
            return Err(Violation::new(
                "spatial index agrees",
                format!(
                    "entity {id} at {cell:?} is indexed at {:?}",
                    spatial.get(id)
                ),
            ));
        }
        if reverse.get(id) != Some(&cell) {
            return Err(Violation::new(
                "spatial index agrees",
                format!(
                    "entity {id} at {cell:?} has reverse entry {:?}",
                    reverse.get(id)
                ),
            ));
        }
    }
    let dangling = spatial
        .keys()
        .chain(reverse.keys())
        .find(|id| !entities.contains_key(id));
    if let Some(id) = dangling {
        return Err(Violation::new(
            "spatial index agrees",
            format!("index entry for missing entity {id}"),
        ));
    }
    Ok(entities)
}

/// The client's `mirror` equals the database's view of `area`.
pub async fn check_mirror<D: Database>(
    db: &D,
    keys: &WorldKeys,
    client: usize,
    area: &Area,
    mirror: &BTreeMap<EntityId, Entity>,
) -> Result<(), Violation> {
    let trx = db.create_trx().map_err(WorldError::from)?;
    let truth: BTreeMap<EntityId, Entity> = entities_in_area(&trx, keys, area, true)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    if &truth == mirror {
        return Ok(());
    }
    let differ = truth
        .keys()
        .chain(mirror.keys())
        .find(|id| truth.get(id) != mirror.get(id))
        .copied();
    Err(Violation::new(
        "client mirror equals the database",
        format!(
            "client {client}: {} entities in the mirror, {} in the area; first difference {differ:?}: \
             database {:?}, mirror {:?}",
            mirror.len(),
            truth.len(),
            differ.and_then(|id| truth.get(&id)),
            differ.and_then(|id| mirror.get(&id)),
        ),
    ))
}

/// After a crash: every acknowledged input is in an inbox or a frame, and every frame seen
/// committed is stored unchanged.
pub async fn check_durable<D: Database>(
    db: &D,
    keys: &WorldKeys,
    regions: &[RegionId],
    ledger: &Ledger,
) -> Result<(), Violation> {
    let trx = db.create_trx().map_err(WorldError::from)?;
    let mut kept = BTreeSet::new();
    for region in regions {
        let records = frame_records(&trx, keys, *region).await?;
        check_reported_frames(*region, &records, ledger)?;
        kept.extend(records.into_iter().flat_map(|r| r.inputs));
        for kv in scan(&trx, keys.inbox_range(*region)).await? {
            let input = decode_input(&kv.value).map_err(WorldError::from)?;
            kept.insert((input.player, input.seq));
        }
    }
    match ledger.acked.iter().find(|a| !kept.contains(a)) {
        Some((player, seq)) => Err(Violation::new(
            "nothing acknowledged lost",
            format!("player {player}: acknowledged seq {seq} is in no inbox and no frame"),
        )),
        None => Ok(()),
    }
}
