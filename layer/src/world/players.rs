//! Players and their avatars: `player/(id)` holds the 16-byte id of the player's avatar.
//!
//! Invariants: the record is written in the transaction that creates the avatar (the edge's
//! login), so a recorded avatar exists; T2 reads it to forward inputs that reached a region the
//! avatar has left (see `frame`).

use sekai_schema::{EntityId, PlayerId, WorldKeys};

use super::error::WorldError;
use crate::kv::Transaction;

/// The id of `player`'s avatar, if the player has one recorded.
pub async fn avatar_of<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    player: PlayerId,
    snapshot: bool,
) -> Result<Option<EntityId>, WorldError> {
    Ok(trx
        .get(&keys.player(player), snapshot)
        .await?
        .as_deref()
        .and_then(EntityId::from_slice))
}

/// Records `avatar` as `player`'s avatar, in `trx`.
pub fn bind_avatar<T: Transaction>(trx: &T, keys: &WorldKeys, player: PlayerId, avatar: EntityId) {
    trx.set(&keys.player(player), &avatar.to_bytes());
}
