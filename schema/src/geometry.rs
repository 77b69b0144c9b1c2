//! World geometry: positions, regions, cells and areas of interest.
//!
//! The ground plane (x, z; y is up) is tiled by square **regions** of
//! [`REGION_SIZE`] metres. Region `(rx, rz)` covers
//! `[rx * REGION_SIZE, (rx + 1) * REGION_SIZE) × [rz * REGION_SIZE, (rz + 1) * REGION_SIZE)`:
//! lower edges inclusive, upper edges exclusive, so every point belongs to
//! exactly one region. Each region is the shard one region processor owns.
//!
//! Each region is tiled by [`CELLS_PER_SIDE`]² **cells** of [`CELL_SIZE`]
//! metres, with the same half-open convention. A [`CellId`] is local to its
//! region (`0 ≤ x, z < CELLS_PER_SIDE`); the spatial index is keyed by
//! `(region, cell, entity)`.
//!
//! Invariants:
//! - `region_of(p)` and `cell_of(p)` agree: the cell returned by `cell_of` is
//!   always inside the region returned by `region_of`, and contains `p`
//!   (up to float rounding at the very edges, where it is clamped).
//! - No function here panics or allocates without bound: non-finite inputs
//!   are mapped with saturating casts, and circle queries clamp their radius
//!   to [`MAX_QUERY_RADIUS`].

use crate::world_capnp;

/// Side of one square region, in metres.
pub const REGION_SIZE: f32 = 256.0;

/// Side of one square cell of the spatial index, in metres.
pub const CELL_SIZE: f32 = 16.0;

/// Number of cells along one side of a region (`REGION_SIZE / CELL_SIZE`).
pub const CELLS_PER_SIDE: u16 = 16;

/// Largest radius that circle queries ([`cells_overlapping_circle`],
/// [`regions_overlapping_circle`]) honour; larger radii are clamped to it so a
/// hostile area of interest cannot make a query allocate without bound.
pub const MAX_QUERY_RADIUS: f32 = 1024.0;

const _: () = assert!(REGION_SIZE == CELL_SIZE * CELLS_PER_SIDE as f32);

/// A position in metres: x and z span the ground plane, y is up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Vec3 {
    /// East–west coordinate.
    pub x: f32,
    /// Height.
    pub y: f32,
    /// North–south coordinate.
    pub z: f32,
}

impl Vec3 {
    /// Makes a position from its three coordinates.
    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        Self { x, y, z }
    }

    /// True when all three coordinates are finite (game rules should reject
    /// any other position).
    pub fn is_finite(&self) -> bool {
        self.x.is_finite() && self.y.is_finite() && self.z.is_finite()
    }

    /// Squared distance between two positions on the ground plane (y ignored).
    pub fn ground_distance_squared(&self, other: &Vec3) -> f32 {
        let dx = self.x - other.x;
        let dz = self.z - other.z;
        dx * dx + dz * dz
    }

    /// Reads a position from its Cap'n Proto form.
    pub fn read_capnp(r: world_capnp::vec3::Reader<'_>) -> Self {
        Self::new(r.get_x(), r.get_y(), r.get_z())
    }

    /// Writes this position into a Cap'n Proto builder.
    pub fn write_capnp(&self, mut b: world_capnp::vec3::Builder<'_>) {
        b.set_x(self.x);
        b.set_y(self.y);
        b.set_z(self.z);
    }
}

/// One region: a [`REGION_SIZE`]-metre square tile of the ground plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RegionId {
    /// Tile index along x.
    pub x: i32,
    /// Tile index along z.
    pub z: i32,
}

impl RegionId {
    /// Makes a region id from its tile indices.
    pub const fn new(x: i32, z: i32) -> Self {
        Self { x, z }
    }

    /// The region containing ground point `(x, z)`.
    pub fn containing(x: f32, z: f32) -> Self {
        Self {
            x: tile_index(x, REGION_SIZE),
            z: tile_index(z, REGION_SIZE),
        }
    }

    /// Minimum corner `(x, z)` of this region, in metres (inclusive).
    pub fn min_corner(&self) -> (f64, f64) {
        (
            f64::from(self.x) * f64::from(REGION_SIZE),
            f64::from(self.z) * f64::from(REGION_SIZE),
        )
    }

    /// Centre `(x, z)` of this region, in metres.
    pub fn center(&self) -> (f64, f64) {
        let (x, z) = self.min_corner();
        let half = f64::from(REGION_SIZE) / 2.0;
        (x + half, z + half)
    }

    /// Reads a region id from its Cap'n Proto form.
    pub fn read_capnp(r: world_capnp::region_id::Reader<'_>) -> Self {
        Self::new(r.get_x(), r.get_z())
    }

    /// Writes this region id into a Cap'n Proto builder.
    pub fn write_capnp(&self, mut b: world_capnp::region_id::Builder<'_>) {
        b.set_x(self.x);
        b.set_z(self.z);
    }
}

impl std::fmt::Display for RegionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "region({}, {})", self.x, self.z)
    }
}

/// One cell of the spatial index, local to its region:
/// `0 ≤ x, z < CELLS_PER_SIDE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CellId {
    /// Cell index along x inside the region.
    pub x: u16,
    /// Cell index along z inside the region.
    pub z: u16,
}

impl CellId {
    /// Makes a cell id; `None` unless both indices are `< CELLS_PER_SIDE`.
    pub const fn new(x: u16, z: u16) -> Option<Self> {
        if x < CELLS_PER_SIDE && z < CELLS_PER_SIDE {
            Some(Self { x, z })
        } else {
            None
        }
    }

    /// True when both indices are `< CELLS_PER_SIDE`.
    pub const fn is_valid(&self) -> bool {
        self.x < CELLS_PER_SIDE && self.z < CELLS_PER_SIDE
    }

    /// Minimum corner `(x, z)` of this cell of `region`, in metres (inclusive).
    pub fn min_corner(&self, region: RegionId) -> (f64, f64) {
        let (rx, rz) = region.min_corner();
        let c = f64::from(CELL_SIZE);
        (rx + f64::from(self.x) * c, rz + f64::from(self.z) * c)
    }
}

/// The region containing `p` (its y is ignored).
pub fn region_of(p: &Vec3) -> RegionId {
    RegionId::containing(p.x, p.z)
}

/// The region and the cell inside it containing `p` (its y is ignored).
pub fn cell_of(p: &Vec3) -> (RegionId, CellId) {
    global_cell_to_local(
        global_cell_index(p.x, CELL_SIZE),
        global_cell_index(p.z, CELL_SIZE),
    )
}

/// `floor(v / size)` as an `i32`, saturating (NaN maps to 0).
fn tile_index(v: f32, size: f32) -> i32 {
    (f64::from(v) / f64::from(size)).floor() as i32
}

/// Global cell index along one axis, as i64 so that region * cells never
/// overflows. Saturates like [`tile_index`] at the region level.
fn global_cell_index(v: f32, size: f32) -> i64 {
    let (min, max) = GLOBAL_CELL_BOUNDS;
    ((f64::from(v) / f64::from(size)).floor() as i64).clamp(min, max)
}

/// Smallest and largest global cell index along one axis.
const GLOBAL_CELL_BOUNDS: (i64, i64) = (
    i32::MIN as i64 * CELLS_PER_SIDE as i64,
    i32::MAX as i64 * CELLS_PER_SIDE as i64 + CELLS_PER_SIDE as i64 - 1,
);

/// Smallest and largest region index along one axis.
const REGION_BOUNDS: (i64, i64) = (i32::MIN as i64, i32::MAX as i64);

/// Splits a global cell index pair into (region, local cell).
fn global_cell_to_local(gx: i64, gz: i64) -> (RegionId, CellId) {
    let cells = i64::from(CELLS_PER_SIDE);
    let region = RegionId::new(gx.div_euclid(cells) as i32, gz.div_euclid(cells) as i32);
    let cell = CellId {
        x: gx.rem_euclid(cells) as u16,
        z: gz.rem_euclid(cells) as u16,
    };
    (region, cell)
}

/// An area of interest: a circle on the ground plane (y ignored).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Area {
    /// Centre of the circle (its y is ignored).
    pub center: Vec3,
    /// Radius in metres.
    pub radius: f32,
}

impl Area {
    /// Makes an area from its centre and radius.
    pub const fn new(center: Vec3, radius: f32) -> Self {
        Self { center, radius }
    }

    /// True when the centre and radius are finite and `0 ≤ radius ≤ MAX_QUERY_RADIUS`.
    pub fn is_valid(&self) -> bool {
        self.center.is_finite()
            && self.radius.is_finite()
            && (0.0..=MAX_QUERY_RADIUS).contains(&self.radius)
    }

    /// True when ground point `p` lies in the closed disc.
    pub fn contains(&self, p: &Vec3) -> bool {
        self.center.ground_distance_squared(p) <= self.radius * self.radius
    }

    /// The cells overlapping this area; see [`cells_overlapping_circle`].
    pub fn cells(&self) -> Vec<(RegionId, CellId)> {
        cells_overlapping_circle(&self.center, self.radius)
    }

    /// The regions overlapping this area; see [`regions_overlapping_circle`].
    pub fn regions(&self) -> Vec<RegionId> {
        regions_overlapping_circle(&self.center, self.radius)
    }

    /// Reads an area from the edge protocol's Cap'n Proto form.
    pub fn read_capnp(r: crate::edge_capnp::area::Reader<'_>) -> capnp::Result<Self> {
        Ok(Self::new(Vec3::read_capnp(r.get_center()?), r.get_radius()))
    }

    /// Writes this area into an edge protocol Cap'n Proto builder.
    pub fn write_capnp(&self, mut b: crate::edge_capnp::area::Builder<'_>) {
        self.center.write_capnp(b.reborrow().init_center());
        b.set_radius(self.radius);
    }
}

/// Squared distance from `(px, pz)` to the closed rectangle `[x0, x1] × [z0, z1]`.
fn rect_distance_squared(px: f64, pz: f64, x0: f64, x1: f64, z0: f64, z1: f64) -> f64 {
    let dx = (x0 - px).max(0.0).max(px - x1);
    let dz = (z0 - pz).max(0.0).max(pz - z1);
    dx * dx + dz * dz
}

/// Tiles of side `size` (global indices, clamped to `[min, max]`) that can
/// hold a point of the closed disc, or nothing for an invalid centre or
/// radius.
fn tiles_overlapping(
    center: &Vec3,
    radius: f32,
    size: f32,
    (min, max): (i64, i64),
) -> Vec<(i64, i64)> {
    if !center.is_finite() || radius.is_nan() || radius < 0.0 {
        return Vec::new();
    }
    let r = f64::from(radius.min(MAX_QUERY_RADIUS));
    let (cx, cz) = (f64::from(center.x), f64::from(center.z));
    let s = f64::from(size);
    let index = |v: f64| ((v / s).floor() as i64).clamp(min, max);
    let (x_lo, x_hi) = (index(cx - r), index(cx + r));
    let (z_lo, z_hi) = (index(cz - r), index(cz + r));
    let mut out = Vec::new();
    for gx in x_lo..=x_hi {
        for gz in z_lo..=z_hi {
            let (x0, z0) = (gx as f64 * s, gz as f64 * s);
            if rect_distance_squared(cx, cz, x0, x0 + s, z0, z0 + s) <= r * r {
                out.push((gx, gz));
            }
        }
    }
    out
}

/// Every cell (with its region) that can hold a point of the closed disc of
/// `radius` around `center` on the ground plane, sorted by (region, cell).
///
/// Cells are half-open, so a disc that only reaches a cell's lower edge from
/// outside does not include that cell; a cell whose closed square merely
/// touches the disc at its upper edge may be included (a harmless extra).
/// The disc always yields at least the cell containing its centre (for a
/// finite centre and `radius ≥ 0`). An invalid centre or radius (non-finite
/// or negative) yields nothing; a radius above [`MAX_QUERY_RADIUS`] is clamped.
pub fn cells_overlapping_circle(center: &Vec3, radius: f32) -> Vec<(RegionId, CellId)> {
    let mut out: Vec<_> = tiles_overlapping(center, radius, CELL_SIZE, GLOBAL_CELL_BOUNDS)
        .into_iter()
        .map(|(gx, gz)| global_cell_to_local(gx, gz))
        .collect();
    out.sort();
    out
}

/// Every region that can hold a point of the closed disc of `radius` around
/// `center`, sorted. Same validation and clamping as
/// [`cells_overlapping_circle`].
pub fn regions_overlapping_circle(center: &Vec3, radius: f32) -> Vec<RegionId> {
    let mut out: Vec<_> = tiles_overlapping(center, radius, REGION_SIZE, REGION_BOUNDS)
        .into_iter()
        .map(|(gx, gz)| RegionId::new(gx as i32, gz as i32))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: f32, z: f32) -> Vec3 {
        Vec3::new(x, 0.0, z)
    }

    #[test]
    fn regions_are_half_open_tiles() {
        assert_eq!(region_of(&v(0.0, 0.0)), RegionId::new(0, 0));
        assert_eq!(region_of(&v(255.9, 255.9)), RegionId::new(0, 0));
        assert_eq!(region_of(&v(256.0, 0.0)), RegionId::new(1, 0));
        assert_eq!(region_of(&v(-0.001, 0.0)), RegionId::new(-1, 0));
        assert_eq!(region_of(&v(-256.0, -256.0)), RegionId::new(-1, -1));
        assert_eq!(region_of(&v(-256.5, 512.0)), RegionId::new(-2, 2));
    }

    #[test]
    fn cells_agree_with_regions() {
        let samples = [
            0.0f32, 0.5, 15.99, 16.0, 255.99, 256.0, -0.001, -16.0, -16.001, -255.99, -256.0,
            -256.001, 1000.25, -1000.25, 123456.0, -123456.0,
        ];
        for &x in &samples {
            for &z in &samples {
                let p = v(x, z);
                let (region, cell) = cell_of(&p);
                assert_eq!(region, region_of(&p), "at {x},{z}");
                assert!(cell.is_valid());
                let (x0, z0) = cell.min_corner(region);
                let c = f64::from(CELL_SIZE);
                assert!(
                    x0 <= f64::from(x) && f64::from(x) < x0 + c,
                    "x {x} cell {cell:?}"
                );
                assert!(
                    z0 <= f64::from(z) && f64::from(z) < z0 + c,
                    "z {z} cell {cell:?}"
                );
            }
        }
        assert_eq!(
            cell_of(&v(17.0, -1.0)),
            (RegionId::new(0, -1), CellId { x: 1, z: 15 })
        );
    }

    #[test]
    fn non_finite_positions_do_not_panic() {
        for x in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
        ] {
            let p = v(x, x);
            let (region, cell) = cell_of(&p);
            assert!(cell.is_valid());
            assert_eq!(region, region_of(&p));
            for (r, c) in cells_overlapping_circle(&p, 10.0) {
                assert!(c.is_valid());
                assert!(regions_overlapping_circle(&p, 10.0).contains(&r));
            }
        }
        assert_eq!(
            region_of(&v(f32::MAX, f32::MIN)),
            RegionId::new(i32::MAX, i32::MIN)
        );
        assert_eq!(
            cell_of(&v(f32::MAX, f32::MIN)),
            (RegionId::new(i32::MAX, i32::MIN), CellId { x: 15, z: 0 })
        );
    }

    #[test]
    fn cell_ids_are_validated() {
        assert!(CellId::new(15, 15).is_some());
        assert!(CellId::new(16, 0).is_none());
        assert!(CellId::new(0, 16).is_none());
    }

    #[test]
    fn circle_includes_centre_cell_and_only_touching_cells() {
        let center = v(8.0, 8.0);
        assert_eq!(
            cells_overlapping_circle(&center, 0.0),
            vec![(RegionId::new(0, 0), CellId { x: 0, z: 0 })]
        );
        // Radius 8 from the middle of cell (0,0) reaches x = 16 and z = 16,
        // which lie in cells (1,0) and (0,1), but not x = -0 - ε: cells are
        // half-open, so the point x = 0 belongs to cell 0.
        let cells = cells_overlapping_circle(&center, 8.0);
        assert_eq!(
            cells,
            vec![
                (RegionId::new(0, 0), CellId { x: 0, z: 0 }),
                (RegionId::new(0, 0), CellId { x: 0, z: 1 }),
                (RegionId::new(0, 0), CellId { x: 1, z: 0 }),
            ]
        );
        // A little more reaches the neighbours across the region edges too,
        // but not the diagonal cells (distance 8√2).
        let cells = cells_overlapping_circle(&center, 8.01);
        assert_eq!(cells.len(), 5, "{cells:?}");
        assert!(cells.contains(&(RegionId::new(-1, 0), CellId { x: 15, z: 0 })));
        assert!(cells.contains(&(RegionId::new(0, -1), CellId { x: 0, z: 15 })));
        let mut sorted = cells.clone();
        sorted.sort();
        assert_eq!(sorted, cells);
    }

    #[test]
    fn circle_cells_cover_every_point_in_the_disc() {
        let center = v(250.0, -3.0);
        let radius = 40.0;
        let cells = cells_overlapping_circle(&center, radius);
        let mut i = 0;
        for dx in -40..=40 {
            for dz in -40..=40 {
                let p = v(center.x + dx as f32, center.z + dz as f32);
                if Area::new(center, radius).contains(&p) {
                    i += 1;
                    assert!(cells.contains(&cell_of(&p)), "point {p:?} not covered");
                }
            }
        }
        assert!(i > 1000);
        // No cell is further than the radius from the centre.
        for (region, cell) in &cells {
            let (x0, z0) = cell.min_corner(*region);
            let c = f64::from(CELL_SIZE);
            let d2 = rect_distance_squared(
                f64::from(center.x),
                f64::from(center.z),
                x0,
                x0 + c,
                z0,
                z0 + c,
            );
            assert!(d2 <= f64::from(radius * radius));
        }
        let regions = regions_overlapping_circle(&center, radius);
        assert_eq!(
            regions,
            vec![
                RegionId::new(0, -1),
                RegionId::new(0, 0),
                RegionId::new(1, -1),
                RegionId::new(1, 0)
            ]
        );
        for (region, _) in &cells {
            assert!(regions.contains(region));
        }
    }

    #[test]
    fn circle_queries_reject_bad_input_and_clamp() {
        assert!(cells_overlapping_circle(&v(0.0, 0.0), -1.0).is_empty());
        assert!(cells_overlapping_circle(&v(0.0, 0.0), f32::NAN).is_empty());
        assert!(cells_overlapping_circle(&v(f32::NAN, 0.0), 1.0).is_empty());
        assert!(regions_overlapping_circle(&v(f32::INFINITY, 0.0), 1.0).is_empty());
        let huge = cells_overlapping_circle(&v(0.0, 0.0), f32::INFINITY);
        let max = cells_overlapping_circle(&v(0.0, 0.0), MAX_QUERY_RADIUS);
        assert_eq!(huge, max);
        // Bounded: at most (2 * 1024 / 16 + 2)^2 cells.
        assert!(max.len() <= 130 * 130);
    }

    #[test]
    fn area_validity() {
        assert!(Area::new(v(1.0, 2.0), 10.0).is_valid());
        assert!(!Area::new(v(1.0, 2.0), -1.0).is_valid());
        assert!(!Area::new(v(f32::NAN, 2.0), 1.0).is_valid());
        assert!(!Area::new(v(1.0, 2.0), MAX_QUERY_RADIUS * 2.0).is_valid());
        assert!(Area::new(v(0.0, 0.0), 5.0).contains(&Vec3::new(3.0, 100.0, 4.0)));
        assert!(!Area::new(v(0.0, 0.0), 5.0).contains(&v(3.0, 4.1)));
    }
}
