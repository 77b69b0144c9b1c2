//! Node membership: every live node announces itself in `node/(holder)` (a heartbeat), so the
//! processor nodes sharing one database know how many they are.
//!
//! The entry's value is `expires (i64 BE, a read version) | roles (1 byte)`. Invariants:
//! - an entry is live while its expiry is above the reader's read version (the database's clock,
//!   so every process agrees); expired and undecodable entries are ignored by readers;
//! - announcing is a blind write (no read), so heartbeats of different nodes never conflict;
//! - an expired entry is cleared only in a transaction that read that very key serializably
//!   ([`clear_expired`]), so a node that renewed meanwhile makes the clear conflict and retry:
//!   a live node's entry is never removed by another node;
//! - a node leaving gracefully clears its own entry ([`leave`]); a crashed node's entry expires
//!   after [`NODE_VERSIONS`] (the lease time), like its leases.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sekai_schema::{KeyKind, WorldKeys};

use super::error::WorldError;
use super::lease::LEASE_VERSIONS;
use crate::kv::{get_range_all, run, ConflictRangeType, Database, Transaction};

/// How long an announcement lasts, in versions: the lease time, so a crashed node drops out of
/// the membership when its leases become free.
pub const NODE_VERSIONS: i64 = LEASE_VERSIONS;

/// How often a node renews its announcement (a quarter of its lifetime, at most).
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);

/// What a node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// It serves clients (an edge).
    pub edge: bool,
    /// It processes regions (takes leases).
    pub processor: bool,
}

impl Roles {
    /// Both roles: the default of `sekai serve`.
    pub const BOTH: Roles = Roles {
        edge: true,
        processor: true,
    };

    fn to_byte(self) -> u8 {
        u8::from(self.edge) | (u8::from(self.processor) << 1)
    }

    fn from_byte(byte: u8) -> Self {
        Self {
            edge: byte & 1 != 0,
            processor: byte & 2 != 0,
        }
    }
}

impl Default for Roles {
    fn default() -> Self {
        Self::BOTH
    }
}

impl FromStr for Roles {
    type Err = String;

    /// Parses a comma-separated list of `edge` and `processor` (at least one).
    fn from_str(text: &str) -> Result<Self, String> {
        let mut roles = Roles {
            edge: false,
            processor: false,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "edge" => roles.edge = true,
                "processor" => roles.processor = true,
                other => return Err(format!("unknown role {other:?} (edge, processor)")),
            }
        }
        if !roles.edge && !roles.processor {
            return Err("no role given (edge, processor or both)".into());
        }
        Ok(roles)
    }
}

/// One node's announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    /// The node's lease-holder id.
    pub holder: u128,
    /// The read version after which the entry is stale.
    pub expires: i64,
    /// What the node does.
    pub roles: Roles,
}

impl NodeEntry {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.expires.to_be_bytes().to_vec();
        out.push(self.roles.to_byte());
        out
    }

    fn decode(holder: u128, bytes: &[u8]) -> Option<Self> {
        let expires = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let roles = Roles::from_byte(*bytes.get(8)?);
        Some(Self {
            holder,
            expires,
            roles,
        })
    }
}

/// Writes `holder`'s announcement in `trx`, live until `now + NODE_VERSIONS` (a blind write).
pub fn announce<T: Transaction>(trx: &T, keys: &WorldKeys, holder: u128, roles: Roles, now: i64) {
    let entry = NodeEntry {
        holder,
        expires: now + NODE_VERSIONS,
        roles,
    };
    trx.set(&keys.node(holder), &entry.encode());
}

/// Every decodable entry (live or not), read at snapshot.
pub async fn read_all<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
) -> Result<Vec<NodeEntry>, WorldError> {
    let (begin, end) = keys.kind_range(KeyKind::Node);
    let mut entries = Vec::new();
    for kv in get_range_all(trx, begin, end, true).await? {
        if let Ok(holder) = keys.decode_node(&kv.key) {
            if let Some(entry) = NodeEntry::decode(holder, &kv.value) {
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

/// Clears, in `trx`, every entry of `entries` expired at `now`, each read-conflicted first, so
/// the transaction fails if its node renewed meanwhile.
pub fn clear_expired<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    entries: &[NodeEntry],
    now: i64,
) -> Result<(), WorldError> {
    for entry in entries.iter().filter(|e| e.expires <= now) {
        let key = keys.node(entry.holder);
        let mut end = key.clone();
        end.push(0);
        trx.add_conflict_range(&key, &end, ConflictRangeType::Read)?;
        trx.clear(&key);
    }
    Ok(())
}

/// Announces `holder` in its own transaction.
pub async fn heartbeat<D: Database>(
    db: &D,
    keys: &WorldKeys,
    holder: u128,
    roles: Roles,
) -> Result<(), WorldError> {
    run(db, |trx, _| async move {
        let now = trx.get_read_version().await?;
        announce(&trx, keys, holder, roles, now);
        Ok(())
    })
    .await
}

/// Removes `holder`'s announcement (a graceful leave).
pub async fn leave<D: Database>(db: &D, keys: &WorldKeys, holder: u128) -> Result<(), WorldError> {
    run(db, |trx, _| async move {
        trx.clear(&keys.node(holder));
        Ok(())
    })
    .await
}

/// Announces `holder` every [`HEARTBEAT_EVERY`] until `stop` is set, then leaves (for nodes
/// without the processor role; a processor node announces in its assignment loop).
pub async fn run_heartbeat<D: Database>(
    db: D,
    keys: WorldKeys,
    holder: u128,
    roles: Roles,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        if let Err(error) = heartbeat(&db, &keys, holder, roles).await {
            tracing::warn!(%error, "node heartbeat failed");
        }
        tokio::time::sleep(HEARTBEAT_EVERY).await;
    }
    if let Err(error) = leave(&db, &keys, holder).await {
        tracing::warn!(%error, "leaving the node list failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse() {
        assert_eq!("edge,processor".parse::<Roles>(), Ok(Roles::BOTH));
        let edge: Roles = "edge".parse().unwrap();
        assert!(edge.edge && !edge.processor);
        let processor: Roles = " processor ".parse().unwrap();
        assert!(!processor.edge && processor.processor);
        assert!("".parse::<Roles>().is_err());
        assert!("edge,cook".parse::<Roles>().is_err());
    }

    #[test]
    fn entries_round_trip_and_refuse_garbage() {
        for roles in [
            Roles::BOTH,
            "edge".parse().unwrap(),
            "processor".parse().unwrap(),
        ] {
            let entry = NodeEntry {
                holder: 7,
                expires: -3,
                roles,
            };
            assert_eq!(NodeEntry::decode(7, &entry.encode()), Some(entry));
        }
        assert_eq!(NodeEntry::decode(7, &[1, 2, 3]), None);
    }
}
