//! Region leases: one live processor per region.
//!
//! The lease value is `holder (16 bytes) | epoch (u64 BE) | expires (u64 BE, a read version)`.
//! Invariants:
//! - a processor acquires a lease that is free, expired (by the database's read version, so
//!   every process agrees on time) or already its own; taking it from another holder bumps the
//!   epoch;
//! - every T2 reads the lease serializably, so a processor whose lease was taken over fails its
//!   next frame with a conflict or `LeaseLost`: two processors never both commit a frame of one
//!   region under the same lease read (and two frames of one region also conflict on the last
//!   frame number each reads serializably). A T2 renews the lease only when it is due
//!   ([`Checked::is_due`]), busy or idle: a lease key rewritten by every frame would pile up
//!   versions that every scan of the leases walks through;
//! - a holder hands a lease over with [`release`]: the record keeps its epoch, names no holder
//!   (holder 0, which no node uses) and is already expired, so the next [`acquire`], by anyone,
//!   takes it at once with the epoch bumped, and the old holder's next frame fails `LeaseLost`.

use std::collections::BTreeMap;

use sekai_schema::{KeyKind, RegionId, WorldKeys};

use super::error::WorldError;
use crate::kv::{get_range_all, run, Database, Transaction};

/// A lease's lifetime in versions (about 2 s).
pub const LEASE_VERSIONS: i64 = 2_000_000;

/// The holder id of a released lease: no node uses it (node ids are odd).
pub const NO_HOLDER: u128 = 0;

/// A held lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The holder's id.
    pub holder: u128,
    /// Bumped on every takeover.
    pub epoch: u64,
    /// The read version after which the lease is free.
    pub expires: i64,
}

impl Lease {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.holder.to_be_bytes().to_vec();
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.expires.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let holder = u128::from_be_bytes(bytes.get(..16)?.try_into().ok()?);
        let epoch = u64::from_be_bytes(bytes.get(16..24)?.try_into().ok()?);
        let expires = i64::from_be_bytes(bytes.get(24..32)?.try_into().ok()?);
        Some(Self {
            holder,
            epoch,
            expires,
        })
    }
}

/// The stored lease of `region` (serializable read) and the transaction's read version.
async fn read_lease<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<(Option<Lease>, i64), WorldError> {
    let current = trx
        .get(&keys.lease(region), false)
        .await?
        .as_deref()
        .and_then(Lease::decode);
    Ok((current, trx.get_read_version().await?))
}

/// Checks that `holder` still holds `region` at `epoch` and renews the lease, in `trx`.
pub async fn renew<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    holder: u128,
    epoch: u64,
) -> Result<Lease, WorldError> {
    let held = check(trx, keys, region, holder, epoch).await?;
    Ok(held.renew(trx, keys, region))
}

/// A lease checked in a transaction: still `holder`'s at `epoch`, as of the read version `now`.
#[derive(Clone, Copy, Debug)]
pub struct Checked {
    lease: Lease,
    now: i64,
}

impl Checked {
    /// Rewrites the lease with a fresh expiry in `trx` (a write: a concurrent takeover or second
    /// frame of the region then conflicts with this transaction).
    pub fn renew<T: Transaction>(&self, trx: &T, keys: &WorldKeys, region: RegionId) -> Lease {
        let renewed = Lease {
            expires: self.now + LEASE_VERSIONS,
            ..self.lease
        };
        trx.set(&keys.lease(region), &renewed.encode());
        renewed
    }

    /// True when a quarter of the lease's lifetime has passed since it was last renewed: an idle
    /// processor renews only then, so an idle frame is usually read-only (no fsync).
    pub fn is_due(&self) -> bool {
        self.lease.expires - self.now < LEASE_VERSIONS * 3 / 4
    }
}

/// Checks, with a serializable read, that `holder` still holds `region` at `epoch`.
pub async fn check<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    holder: u128,
    epoch: u64,
) -> Result<Checked, WorldError> {
    let (current, now) = read_lease(trx, keys, region).await?;
    match current {
        Some(lease) if lease.holder == holder && lease.epoch == epoch => Ok(Checked { lease, now }),
        _ => Err(WorldError::LeaseLost(region)),
    }
}

/// Tries to take `region`'s lease for `holder`; `None` while another live holder has it.
pub async fn acquire<D: Database>(
    db: &D,
    keys: &WorldKeys,
    region: RegionId,
    holder: u128,
) -> Result<Option<Lease>, WorldError> {
    run(db, |trx, _| async move {
        let (current, now) = read_lease(&trx, keys, region).await?;
        let epoch = match current {
            Some(lease) if lease.holder == holder => lease.epoch,
            Some(lease) if lease.expires > now => return Ok(None),
            Some(lease) => lease.epoch + 1,
            None => 1,
        };
        let lease = Lease {
            holder,
            epoch,
            expires: now + LEASE_VERSIONS,
        };
        trx.set(&keys.lease(region), &lease.encode());
        Ok(Some(lease))
    })
    .await
}

/// Hands `region` over if `holder` still holds it at `epoch`: rewrites it with no holder, the
/// same epoch and an expiry of the read version, so any node may take it at once. True when it
/// was released; false when the holder had already lost it (nothing is written then).
pub async fn release<D: Database>(
    db: &D,
    keys: &WorldKeys,
    region: RegionId,
    holder: u128,
    epoch: u64,
) -> Result<bool, WorldError> {
    run(db, |trx, _| async move {
        let (current, now) = read_lease(&trx, keys, region).await?;
        match current {
            Some(lease) if lease.holder == holder && lease.epoch == epoch => {
                let released = Lease {
                    holder: NO_HOLDER,
                    epoch,
                    expires: now,
                };
                trx.set(&keys.lease(region), &released.encode());
                Ok(true)
            }
            _ => Ok(false),
        }
    })
    .await
}

/// Every stored lease of the world by region, read at snapshot (no conflicts: advisory, for
/// deciding which regions to try); records that do not decode are skipped.
pub async fn snapshot_all<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
) -> Result<BTreeMap<RegionId, Lease>, WorldError> {
    let (begin, end) = keys.kind_range(KeyKind::Lease);
    let mut leases = BTreeMap::new();
    for kv in get_range_all(trx, begin, end, true).await? {
        if let (Ok(region), Some(lease)) = (keys.decode_lease(&kv.key), Lease::decode(&kv.value)) {
            leases.insert(region, lease);
        }
    }
    Ok(leases)
}
