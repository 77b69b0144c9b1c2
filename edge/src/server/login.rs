//! What login reads and writes: the player's avatar (created on first login) and durable seq.
//!
//! Invariants:
//! - `player/(id)` holds the 16-byte id of the player's avatar entity; it is written in the same
//!   transaction that creates the avatar, so a player has at most one avatar however many
//!   logins race (the record is read serializably);
//! - a created avatar is written through the layer's `write_entities`: with its indexes, its
//!   region's version bumped (so the processor reloads) and a frame-0 delta in the region's
//!   change log (so subscribers see it appear).

use sekai_layer::kv::{run, Database};
use sekai_layer::world::error::WorldError;
use sekai_layer::world::inbox::{durable_seq, DurableSeq};
use sekai_layer::world::model::{Change, Entity, EntityKind, Inventory};
use sekai_layer::world::players::{avatar_of, bind_avatar};
use sekai_layer::world::store::get_entity;
use sekai_layer::world::write::write_entities;
use sekai_schema::{EntityId, PlayerId, RegionId, Vec3, WorldKeys};

use crate::session::AvatarLocation;

/// Hit points of a new avatar.
pub const AVATAR_HP: u32 = 100;

/// A logged-in player's avatar and the highest seq already durable for the player.
#[derive(Clone, Debug)]
pub struct LoginState {
    /// The avatar's current state.
    pub avatar: Entity,
    /// The player's durable record (`Session.info.lastSeq` is its seq): every seq at or
    /// below it is durable, applied or in an inbox.
    pub durable: DurableSeq,
}

/// Reads `player`'s avatar, creating it at `spawn` with id `new_id` if the player has none.
pub async fn ensure_avatar<D: Database>(
    db: &D,
    keys: &WorldKeys,
    player: PlayerId,
    spawn: Vec3,
    new_id: EntityId,
) -> Result<LoginState, WorldError> {
    run(db, |trx, _| async move {
        // The higher of the durable and applied records (see `durable_seq`).
        let durable = durable_seq(&trx, keys, player, false).await?;
        if let Some(id) = avatar_of(&trx, keys, player, false).await? {
            if let Some(avatar) = get_entity(&trx, keys, id, false).await? {
                return Ok(LoginState { avatar, durable });
            }
        }
        let avatar = Entity {
            id: new_id,
            kind: EntityKind::PlayerAvatar,
            hp: AVATAR_HP,
            position: spawn,
            inventory: Inventory::default(),
            owner: player,
        };
        write_entities(&trx, keys, &[Change::Upsert(avatar.clone())]).await?;
        bind_avatar(&trx, keys, player, new_id);
        Ok(LoginState { avatar, durable })
    })
    .await
}

/// The avatar's current state, if it exists.
pub async fn read_avatar<D: Database>(
    db: &D,
    keys: &WorldKeys,
    id: EntityId,
) -> Result<Option<Entity>, WorldError> {
    run(db, |trx, _| async move {
        get_entity(&trx, keys, id, true).await
    })
    .await
}

/// The region an input of the avatar at `location` goes to (T1's routing): the last known one,
/// re-read from the database when the rules proved it wrong. A wrong guess costs a forward (the
/// frame of the region the input reached sends it on, `frame::forward_strays`), never an
/// input: the frame that applies it waits for its player's earlier seqs.
pub async fn t1_region<D: Database>(
    db: &D,
    keys: &WorldKeys,
    location: &AvatarLocation,
) -> RegionId {
    if location.is_stale() {
        match read_avatar(db, keys, location.id()).await {
            Ok(Some(avatar)) => location.set_region(avatar.region()),
            Ok(None) => tracing::warn!(avatar = ?location.id(), "avatar no longer exists"),
            Err(error) => tracing::warn!(avatar = ?location.id(), %error, "avatar lookup failed"),
        }
    }
    location.region()
}
