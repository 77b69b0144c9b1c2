//! The live map's messages as JSON: what `/events` streams and `/state` answers.
//!
//! Messages (one JSON object each, `type` says which):
//! - `snapshot`: the world's regions and geometry, every entity, the latest region stats and the
//!   number of entity updates so far: the browser replaces its state with it;
//! - `delta`: one commit's changes (`upserts`, `removes`) in the map's area;
//! - `stats`: per-region figures, about once a second.
//!
//! Entities are `{i, k, x, z, hp, o}`: id (32 hex digits, as JavaScript numbers cannot hold
//! 128 bits), kind (`player`, `tree`, `rock`, `wood`, `stone`, `wall`), ground position in
//! metres, hit points and owner. Invariant: every number written is finite (non-finite
//! positions are written as 0), so the output is always valid JSON.

use serde::Serialize;

use sekai_layer::world::model::{Change, Delta, Entity, EntityKind};
use sekai_schema::geometry::{CELL_SIZE, REGION_SIZE};
use sekai_schema::{Area, RegionId};

/// One region's figures on the map.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RegionStats {
    /// Region x.
    pub x: i32,
    /// Region z.
    pub z: i32,
    /// The region's newest frame number.
    pub frame: u64,
    /// Frames per second since the previous figures.
    pub frames_per_sec: f64,
    /// Inputs applied per second since the previous figures.
    pub inputs_per_sec: f64,
    /// Player avatars in the region.
    pub players: u64,
    /// Trees and rocks in the region.
    pub resources: u64,
    /// Items lying in the region.
    pub items: u64,
    /// Structures in the region.
    pub structures: u64,
}

#[derive(Serialize)]
struct EntityJson {
    i: String,
    k: &'static str,
    x: f32,
    z: f32,
    hp: u32,
    o: u64,
}

fn finite(v: f32) -> f32 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// The name of a kind on the map.
pub fn kind_name(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::PlayerAvatar => "player",
        EntityKind::Tree => "tree",
        EntityKind::Rock => "rock",
        EntityKind::ItemWood => "wood",
        EntityKind::ItemStone => "stone",
        EntityKind::StructureWall => "wall",
    }
}

fn entity_json(e: &Entity) -> EntityJson {
    EntityJson {
        i: format!("{:032x}", e.id.0),
        k: kind_name(e.kind),
        x: finite(e.position.x),
        z: finite(e.position.z),
        hp: e.hp,
        o: e.owner,
    }
}

#[derive(Serialize)]
struct AreaJson {
    x: f32,
    z: f32,
    r: f32,
}

#[derive(Serialize)]
struct WorldJson {
    regions: Vec<[i32; 2]>,
    region_size: f32,
    cell_size: f32,
    area: AreaJson,
}

#[derive(Serialize)]
struct SnapshotJson<'a> {
    r#type: &'static str,
    world: WorldJson,
    entities: Vec<EntityJson>,
    stats: &'a [RegionStats],
    updates: u64,
}

#[derive(Serialize)]
struct DeltaJson {
    r#type: &'static str,
    region: [i32; 2],
    frame: u64,
    upserts: Vec<EntityJson>,
    removes: Vec<String>,
}

#[derive(Serialize)]
struct StatsJson<'a> {
    r#type: &'static str,
    regions: &'a [RegionStats],
}

fn to_string(value: &impl Serialize) -> String {
    // Only maps with string keys and finite numbers are serialized: this cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}

/// A `snapshot` message.
pub fn snapshot<'a>(
    regions: &[RegionId],
    area: &Area,
    entities: impl IntoIterator<Item = &'a Entity>,
    stats: &[RegionStats],
    updates: u64,
) -> String {
    to_string(&SnapshotJson {
        r#type: "snapshot",
        world: WorldJson {
            regions: regions.iter().map(|r| [r.x, r.z]).collect(),
            region_size: REGION_SIZE,
            cell_size: CELL_SIZE,
            area: AreaJson {
                x: finite(area.center.x),
                z: finite(area.center.z),
                r: finite(area.radius),
            },
        },
        entities: entities.into_iter().map(entity_json).collect(),
        stats,
        updates,
    })
}

/// A `delta` message.
pub fn delta(delta: &Delta) -> String {
    let mut upserts = Vec::new();
    let mut removes = Vec::new();
    for change in &delta.changes {
        match change {
            Change::Upsert(e) => upserts.push(entity_json(e)),
            Change::Remove(id) => removes.push(format!("{:032x}", id.0)),
        }
    }
    to_string(&DeltaJson {
        r#type: "delta",
        region: [delta.region.x, delta.region.z],
        frame: delta.frame,
        upserts,
        removes,
    })
}

/// A `stats` message.
pub fn stats(regions: &[RegionStats]) -> String {
    to_string(&StatsJson {
        r#type: "stats",
        regions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekai_layer::world::model::Inventory;
    use sekai_schema::{EntityId, Vec3};

    fn tree(x: f32) -> Entity {
        Entity {
            id: EntityId(0xab),
            kind: EntityKind::Tree,
            hp: 7,
            position: Vec3::new(x, 0.0, 2.5),
            inventory: Inventory::default(),
            owner: 0,
        }
    }

    #[test]
    fn messages_are_valid_json_with_their_fields() {
        let area = Area::new(Vec3::new(256.0, 0.0, 256.0), 400.0);
        let text = snapshot(&[RegionId::new(0, 1)], &area, [&tree(f32::NAN)], &[], 3);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "snapshot");
        assert_eq!(v["world"]["regions"][0], serde_json::json!([0, 1]));
        assert_eq!(v["entities"][0]["i"], format!("{:032x}", 0xab));
        assert_eq!(v["entities"][0]["k"], "tree");
        assert_eq!(v["entities"][0]["x"], 0.0);
        assert_eq!(v["updates"], 3);

        let d = Delta {
            region: RegionId::new(1, 0),
            frame: 9,
            changes: vec![Change::Upsert(tree(1.0)), Change::Remove(EntityId(5))],
            outcomes: Vec::new(),
        };
        let v: serde_json::Value = serde_json::from_str(&delta(&d)).unwrap();
        assert_eq!(v["type"], "delta");
        assert_eq!(v["frame"], 9);
        assert_eq!(v["upserts"][0]["x"], 1.0);
        assert_eq!(v["removes"][0], format!("{:032x}", 5));

        let s = RegionStats {
            x: 1,
            frame: 4,
            ..RegionStats::default()
        };
        let v: serde_json::Value = serde_json::from_str(&stats(&[s])).unwrap();
        assert_eq!(v["regions"][0]["frame"], 4);
    }
}
