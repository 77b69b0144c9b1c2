//! Region leases: one live processor per region.
//!
//! The lease value is `holder (16 bytes) | epoch (u64 BE) | expires (u64 BE, a read version)`.
//! Invariants:
//! - a processor acquires a lease that is free, expired (by the database's read version, so
//!   every process agrees on time) or already its own; taking it from another holder bumps the
//!   epoch;
//! - every T2 reads the lease serializably and renews it, so a processor whose lease was taken
//!   over fails its next frame with a conflict or `LeaseLost`: two processors never both commit
//!   a frame of one region under the same lease read.

use sekai_schema::{RegionId, WorldKeys};

use super::error::WorldError;
use crate::kv::{run, Database, Transaction};

/// A lease's lifetime in versions (about 2 s).
pub const LEASE_VERSIONS: i64 = 2_000_000;

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
    let (current, now) = read_lease(trx, keys, region).await?;
    match current {
        Some(lease) if lease.holder == holder && lease.epoch == epoch => {
            let renewed = Lease {
                expires: now + LEASE_VERSIONS,
                ..lease
            };
            trx.set(&keys.lease(region), &renewed.encode());
            Ok(renewed)
        }
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
