//! The tile layout of a pyramid, as the IIIF Image API 3.0 tile model sees it.
//!
//! Level `n` has scale factor `2^n`: level 0 is the full image, each next level halves both
//! sides (rounding up), and the last level is the first that fits in one tile. Tiles are square,
//! cropped (never padded) at the right and bottom edges, so an IIIF request for region
//! `(col·t·s, row·t·s, t·s, t·s)` at scale factor `s` is exactly one stored tile.

/// Smallest tile side we accept: below it the index outweighs the pixels.
pub const MIN_TILE_SIZE: u32 = 64;
/// Largest tile side we accept: a tile must stay a small, single read.
pub const MAX_TILE_SIZE: u32 = 4096;
/// The default tile side, the common IIIF choice.
pub const DEFAULT_TILE_SIZE: u32 = 256;
/// Levels are indexed by `u8` on the wire; 2^32 pixels of width needs at most 33.
pub const MAX_LEVELS: usize = 40;

/// One resolution level of the pyramid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub width: u32,
    pub height: u32,
    pub cols: u32,
    pub rows: u32,
    /// Index of this level's tile (0, 0) in the file's tile index.
    pub first_tile: u64,
}

impl Level {
    pub fn tile_count(&self) -> u64 {
        u64::from(self.cols) * u64::from(self.rows)
    }

    /// IIIF scale factor of level `index`.
    pub fn scale_factor(index: usize) -> u64 {
        1u64 << index
    }
}

/// Why a geometry cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    #[error("image is {width}×{height} pixels: both sides must be at least 1")]
    ZeroSized { width: u32, height: u32 },
    #[error(
        "tile size {0} is not supported: it must be even and between {MIN_TILE_SIZE} and {MAX_TILE_SIZE}"
    )]
    TileSize(u32),
}

/// The complete tile layout for an image of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub tile_size: u32,
    pub levels: Vec<Level>,
}

impl Geometry {
    pub fn new(width: u32, height: u32, tile_size: u32) -> Result<Self, GeometryError> {
        if width == 0 || height == 0 {
            return Err(GeometryError::ZeroSized { width, height });
        }
        if !(MIN_TILE_SIZE..=MAX_TILE_SIZE).contains(&tile_size) || !tile_size.is_multiple_of(2) {
            return Err(GeometryError::TileSize(tile_size));
        }
        let mut levels = Vec::new();
        let (mut w, mut h) = (width, height);
        let mut first_tile = 0u64;
        loop {
            let level = Level {
                width: w,
                height: h,
                cols: w.div_ceil(tile_size),
                rows: h.div_ceil(tile_size),
                first_tile,
            };
            first_tile += level.tile_count();
            levels.push(level);
            if w <= tile_size && h <= tile_size {
                break;
            }
            w = w.div_ceil(2);
            h = h.div_ceil(2);
        }
        Ok(Geometry {
            width,
            height,
            tile_size,
            levels,
        })
    }

    pub fn tile_count(&self) -> u64 {
        self.levels.iter().map(Level::tile_count).sum()
    }

    /// Total pixels over all levels: the work of encoding the pyramid.
    pub fn total_pixels(&self) -> u64 {
        self.levels
            .iter()
            .map(|l| u64::from(l.width) * u64::from(l.height))
            .sum()
    }

    /// Position of tile (level, col, row) in the tile index, or `None` if there is no such tile.
    pub fn tile_index(&self, level: usize, col: u32, row: u32) -> Option<u64> {
        let l = self.levels.get(level)?;
        if col >= l.cols || row >= l.rows {
            return None;
        }
        Some(l.first_tile + u64::from(row) * u64::from(l.cols) + u64::from(col))
    }

    /// Pixel size of tile (col, row) of a level (edge tiles are cropped).
    pub fn tile_dimensions(&self, level: usize, col: u32, row: u32) -> Option<(u32, u32)> {
        let l = self.levels.get(level)?;
        if col >= l.cols || row >= l.rows {
            return None;
        }
        let w = (l.width - col * self.tile_size).min(self.tile_size);
        let h = (l.height - row * self.tile_size).min(self.tile_size);
        Some((w, h))
    }

    /// (level, col, row) of the tile at a position of the tile index.
    pub fn tile_at(&self, index: u64) -> Option<(usize, u32, u32)> {
        let (n, l) = self
            .levels
            .iter()
            .enumerate()
            .find(|(_, l)| index >= l.first_tile && index < l.first_tile + l.tile_count())?;
        let within = index - l.first_tile;
        let cols = u64::from(l.cols);
        Some((n, (within % cols) as u32, (within / cols) as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_halve_rounding_up_until_one_tile() {
        let g = Geometry::new(1000, 300, 256).unwrap();
        let sizes: Vec<_> = g.levels.iter().map(|l| (l.width, l.height)).collect();
        assert_eq!(sizes, vec![(1000, 300), (500, 150), (250, 75)]);
        assert_eq!(
            (g.levels[0].cols, g.levels[0].rows, g.levels[1].cols),
            (4, 2, 2)
        );
        assert_eq!(g.tile_count(), 8 + 2 + 1);
    }

    #[test]
    fn edge_tiles_are_cropped_like_iiif_regions() {
        // IIIF: region width at scale s is min(t·s, W − x); output is ceil(region / s).
        let (w, h, t) = (10_007u32, 3_001u32, 256u32);
        let g = Geometry::new(w, h, t).unwrap();
        for (n, l) in g.levels.iter().enumerate() {
            let s = Level::scale_factor(n) as u32;
            for col in 0..l.cols {
                let x = col * t * s;
                let region_w = (t * s).min(w - x);
                let (tw, _) = g.tile_dimensions(n, col, 0).unwrap();
                assert_eq!(tw, region_w.div_ceil(s), "level {n} col {col}");
            }
            for row in 0..l.rows {
                let y = row * t * s;
                let region_h = (t * s).min(h - y);
                let (_, th) = g.tile_dimensions(n, 0, row).unwrap();
                assert_eq!(th, region_h.div_ceil(s), "level {n} row {row}");
            }
        }
    }

    #[test]
    fn tile_index_and_tile_at_are_inverse() {
        let g = Geometry::new(3000, 2000, 256).unwrap();
        for i in 0..g.tile_count() {
            let (n, c, r) = g.tile_at(i).unwrap();
            assert_eq!(g.tile_index(n, c, r), Some(i));
        }
        assert_eq!(g.tile_at(g.tile_count()), None);
        assert_eq!(g.tile_index(0, 12, 0), None);
        assert_eq!(g.tile_index(99, 0, 0), None);
    }

    #[test]
    fn single_pixel_image_has_one_level_and_one_tile() {
        let g = Geometry::new(1, 1, 256).unwrap();
        assert_eq!(g.levels.len(), 1);
        assert_eq!(g.tile_dimensions(0, 0, 0), Some((1, 1)));
    }

    #[test]
    fn rejects_zero_sides_and_odd_or_extreme_tiles() {
        assert!(matches!(
            Geometry::new(0, 5, 256),
            Err(GeometryError::ZeroSized { .. })
        ));
        for t in [0, 2, 63, 255, 8192] {
            assert_eq!(Geometry::new(5, 5, t), Err(GeometryError::TileSize(t)));
        }
    }
}
