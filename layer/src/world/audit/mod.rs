//! The world's invariants as one checker, used by the layer's tests, the simulation (after a
//! run, and online as each frame and acknowledgement happens), the FoundationDB workload and
//! `sekai inspect audit`. Generic over the KV contract.
//!
//! - **frames** ([`frames`]): each region's frame records are numbered consecutively (from 1,
//!   or from where trimming left them), and its change log holds one frame delta per record, in
//!   the same order, with the same inputs;
//! - **exactly once, in order** (with a [`Ledger`]): every acknowledged (player, seq) appears in
//!   exactly one frame, each player's seqs increase in commit order across all regions, nothing
//!   unsent is applied; on a quiet world no inbox still holds an input;
//! - **conservation** (with the world's starting totals): `rules::resource_totals` over every
//!   stored entity equals them;
//! - **index** ([`index`]): every entity has exactly one spatial entry, at its position's cell,
//!   and a reverse entry naming that cell; index entries hold no value; no index entry names a
//!   missing entity;
//! - **durability** ([`frames::check_durable`]): after a crash, every acknowledged input is
//!   still in an inbox or a frame, and every frame seen committed is still there, unchanged;
//! - **views** ([`mirror`]): a client's mirror equals the database's view of its area;
//! - **online** ([`online`]): frames of a region commit with increasing numbers, each player's
//!   seqs increase within a region, and only sent seqs are acknowledged.
//!
//! All reads of one check are snapshot reads in one transaction (so they see one version),
//! paged by [`scan`]; on FoundationDB a check must finish within the 5 s transaction limit.

pub mod frames;
pub mod index;
pub mod mirror;
pub mod online;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sekai_schema::{KeyKind, KeyRange, PlayerId, RegionId, WorldKeys};

use super::codec::decode_entity;
use super::error::WorldError;
use super::rules::{resource_totals, ResourceTotals};
use crate::kv::{get_range_all, Database, KeyValue, Transaction};

pub use frames::{check_durable, frame_records};
pub use index::check_index;
pub use mirror::check_mirror;
pub use online::OnlineAudit;

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

/// What a harness knows independently of the database.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Every acknowledged (player, seq).
    pub acked: BTreeSet<(PlayerId, u64)>,
    /// The highest seq each player handed out.
    pub sent: BTreeMap<PlayerId, u64>,
    /// Frames processors saw commit: (region, frame) → inputs.
    pub frames: BTreeMap<(RegionId, u64), Vec<(PlayerId, u64)>>,
}

/// What a whole-world check may assume besides the database.
#[derive(Clone, Copy, Debug, Default)]
pub struct Expect<'a> {
    /// What the harness saw sent, acknowledged and committed (`None`: not known, as for an
    /// operator's audit).
    pub ledger: Option<&'a Ledger>,
    /// The resources the world started with (`None`: not known).
    pub totals: Option<ResourceTotals>,
    /// The world is quiet: every inbox must be drained.
    pub quiet: bool,
}

/// Figures of a checked world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorldSummary {
    /// Frames committed, all regions (stored records).
    pub frames: u64,
    /// Inputs applied (accepted or rejected by the rules).
    pub inputs: u64,
    /// Inputs the rules rejected.
    pub rejected: u64,
    /// Entities stored.
    pub entities: u64,
    /// Inputs waiting in inboxes.
    pub pending: u64,
}

/// Every pair in `range`, paged.
pub async fn scan<T: Transaction>(trx: &T, range: KeyRange) -> Result<Vec<KeyValue>, WorldError> {
    Ok(get_range_all(trx, range.0, range.1, true).await?)
}

/// Every region with a head (every region whose change log was ever written: loads and frames
/// bump it).
pub async fn regions_in_use<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
) -> Result<Vec<RegionId>, WorldError> {
    let mut regions = BTreeSet::new();
    for kv in scan(trx, keys.kind_range(KeyKind::Head)).await? {
        regions.insert(keys.decode_head(&kv.key)?);
    }
    Ok(regions.into_iter().collect())
}

/// Wood and stone held in any form across the whole world.
pub async fn resources<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
) -> Result<ResourceTotals, WorldError> {
    let mut entities = Vec::new();
    for kv in scan(trx, keys.kind_range(KeyKind::Entity)).await? {
        entities.push(decode_entity(&kv.value)?);
    }
    Ok(resource_totals(entities.iter()))
}

/// Runs every check of the world at one version (see the module docs).
pub async fn check_world<D: Database>(
    db: &D,
    keys: &WorldKeys,
    regions: &[RegionId],
    expect: Expect<'_>,
) -> Result<WorldSummary, Violation> {
    let trx = db.create_trx().map_err(WorldError::from)?;
    let mut summary = frames::check_frames_and_inputs(&trx, keys, regions, expect).await?;
    let entities = check_index(&trx, keys).await?;
    summary.entities = entities.len() as u64;
    if let Some(totals) = expect.totals {
        let found = resource_totals(entities.values());
        if found != totals {
            return Err(Violation::new(
                "resources conserved",
                format!("world started with {totals:?}, holds {found:?}"),
            ));
        }
    }
    Ok(summary)
}
