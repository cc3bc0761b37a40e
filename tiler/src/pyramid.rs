//! Building the pyramid while rows stream in: each level keeps one band of `tile_size` rows;
//! a full band is cut into tiles (encoded in parallel on all cores) and halved into the next
//! level's band. Memory is a band per level, whatever the height of the image.

use rayon::prelude::*;

use crate::downsample::halve;
use crate::encode;
use crate::geometry::Geometry;
use crate::writer::PyramidWriter;
use crate::TileError;

/// The band of rows one level is filling.
#[derive(Default)]
struct Band {
    pixels: Vec<u8>,
    rows: u32,
    /// Rows of this level received so far, all bands included.
    received: u32,
    /// Tile row the band will become.
    tile_row: u32,
}

/// Called with (tiles written, tiles in all) after each band.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

pub struct PyramidBuilder<'a> {
    geometry: Geometry,
    channels: usize,
    quality: u8,
    bands: Vec<Band>,
    writer: PyramidWriter,
    /// Level whose whole image is kept for the thumbnail (small by construction).
    thumb_level: usize,
    thumb: Vec<u8>,
    tiles_done: u64,
    progress: Progress<'a>,
}

impl<'a> PyramidBuilder<'a> {
    pub fn new(
        writer: PyramidWriter,
        channels: usize,
        quality: u8,
        thumb_level: usize,
        progress: Progress<'a>,
    ) -> Self {
        let geometry = writer.geometry().clone();
        let bands = geometry.levels.iter().map(|_| Band::default()).collect();
        PyramidBuilder {
            geometry,
            channels,
            quality,
            bands,
            writer,
            thumb_level,
            thumb: Vec::new(),
            tiles_done: 0,
            progress,
        }
    }

    /// Takes the next `n` rows of `level` (level 0: rows of the original).
    pub fn push(&mut self, level: usize, rows: &[u8], n: u32) -> Result<(), TileError> {
        let l = self.geometry.levels[level];
        let row_bytes = l.width as usize * self.channels;
        if level == self.thumb_level {
            self.thumb
                .extend_from_slice(&rows[..n as usize * row_bytes]);
        }
        let mut done = 0;
        while done < n {
            let band = &mut self.bands[level];
            let take = (self.geometry.tile_size - band.rows).min(n - done);
            band.pixels
                .extend_from_slice(&rows[done as usize * row_bytes..][..take as usize * row_bytes]);
            band.rows += take;
            band.received += take;
            done += take;
            if band.rows == self.geometry.tile_size || band.received == l.height {
                self.flush(level)?;
            }
        }
        Ok(())
    }

    /// Cuts the band of `level` into tiles, writes them, and feeds its half to the next level.
    fn flush(&mut self, level: usize) -> Result<(), TileError> {
        let l = self.geometry.levels[level];
        let t = self.geometry.tile_size;
        let (channels, quality) = (self.channels, self.quality);
        let band = &mut self.bands[level];
        let (pixels, rows, tile_row) = (std::mem::take(&mut band.pixels), band.rows, band.tile_row);
        let row_bytes = l.width as usize * channels;
        let tiles: Vec<_> = (0..l.cols)
            .into_par_iter()
            .map(|col| {
                let x0 = (col * t) as usize * channels;
                let tw = t.min(l.width - col * t);
                let tile_row_bytes = tw as usize * channels;
                let mut tile = Vec::with_capacity(tile_row_bytes * rows as usize);
                for y in 0..rows as usize {
                    tile.extend_from_slice(&pixels[y * row_bytes + x0..][..tile_row_bytes]);
                }
                encode::jpeg(&tile, tw, rows, channels, quality)
            })
            .collect::<Result<_, _>>()
            .map_err(|source| TileError::Encode {
                level,
                row: tile_row,
                source,
            })?;
        for (col, jpeg) in tiles.iter().enumerate() {
            self.writer.add_tile(level, col as u32, tile_row, jpeg)?;
        }
        self.tiles_done += u64::from(l.cols);
        (self.progress)(self.tiles_done, self.geometry.tile_count());
        if level + 1 < self.geometry.levels.len() {
            let mut half = Vec::new();
            halve(
                &pixels,
                l.width as usize,
                rows as usize,
                channels,
                &mut half,
            );
            self.push(level + 1, &half, rows.div_ceil(2))?;
        }
        let band = &mut self.bands[level];
        band.pixels = pixels;
        band.pixels.clear();
        band.rows = 0;
        band.tile_row += 1;
        Ok(())
    }

    /// Returns the writer (every tile written) and the thumbnail level's pixels.
    pub fn finish(self) -> (PyramidWriter, Vec<u8>) {
        (self.writer, self.thumb)
    }
}
