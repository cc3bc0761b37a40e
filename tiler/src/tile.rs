//! The tiler: original → pyramid file + thumbnail, both committed atomically.
//!
//! One thread decodes the original band by band while the calling thread builds the pyramid
//! and rayon encodes the tiles of each band on all cores, so decoding overlaps encoding.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use crate::atomic::AtomicFile;
use crate::geometry::{Geometry, DEFAULT_TILE_SIZE};
use crate::pyramid::{Progress, PyramidBuilder};
use crate::source::{self, Limits, SourceError};
use crate::thumbnail::{self, DEFAULT_THUMBNAIL_SIZE};
use crate::writer::PyramidWriter;
use crate::{encode, TileError};

/// The JPEG quality of tiles unless told otherwise: visually lossless for paintings at 256 px
/// tiles, and what the IIIF servers we compare with default to.
pub const DEFAULT_QUALITY: u8 = 85;

#[derive(Debug, Clone, Copy)]
pub struct TileOptions {
    pub tile_size: u32,
    pub quality: u8,
    pub thumbnail_size: u32,
    pub limits: Limits,
}

impl Default for TileOptions {
    fn default() -> Self {
        TileOptions {
            tile_size: DEFAULT_TILE_SIZE,
            quality: DEFAULT_QUALITY,
            thumbnail_size: DEFAULT_THUMBNAIL_SIZE,
            limits: Limits::default(),
        }
    }
}

/// What a tiling run produced.
#[derive(Debug, Clone)]
pub struct TileReport {
    pub geometry: Geometry,
    pub channels: usize,
    /// How the original was read ("tiled TIFF streamed in 256×256 chunks", …).
    pub source: String,
    /// What was done about its colour profile.
    pub colour: source::ProfileUse,
    pub pyramid_bytes: u64,
    pub thumbnail: (u32, u32),
    pub thumbnail_bytes: u64,
    pub seconds: f64,
}

impl TileReport {
    pub fn megapixels_per_second(&self) -> f64 {
        let mp = f64::from(self.geometry.width) * f64::from(self.geometry.height) / 1e6;
        mp / self.seconds.max(1e-9)
    }
}

/// The thumbnail path that goes with a pyramid path: `art.tdp` → `art.thumb.jpg`.
pub fn default_thumbnail_path(pyramid: &Path) -> PathBuf {
    pyramid.with_extension("thumb.jpg")
}

/// Tiles `input` into the pyramid file `pyramid` and the thumbnail `thumbnail`. On any error
/// neither output exists (an older file under the same name is left as it was).
pub fn tile(
    input: &Path,
    pyramid: &Path,
    thumbnail_path: &Path,
    options: &TileOptions,
    progress: Progress,
) -> Result<TileReport, TileError> {
    let started = Instant::now();
    if !(1..=100).contains(&options.quality) {
        return Err(TileError::Quality(options.quality));
    }
    if options.thumbnail_size == 0 {
        return Err(TileError::ThumbnailSize);
    }
    // Check the tile size before the original costs anything to open.
    Geometry::new(1, 1, options.tile_size).map_err(TileError::TileSize)?;
    let (mut src, colour) = source::open(input, options.limits)?;
    let (width, height, channels) = (src.width(), src.height(), src.channels());
    let geometry = Geometry::new(width, height, options.tile_size).map_err(TileError::TileSize)?;
    let sizes: Vec<_> = geometry
        .levels
        .iter()
        .map(|l| (l.width, l.height))
        .collect();
    let thumb_level = thumbnail::source_level(&sizes, options.thumbnail_size);
    let writer = PyramidWriter::create(pyramid, geometry.clone(), channels as u8, options.quality)?;
    let mut builder = PyramidBuilder::new(writer, channels, options.quality, thumb_level, progress);
    let band_rows = options.tile_size;
    let row_bytes = width as usize * channels;
    let source_name = src.describe();

    let (rows_tx, rows_rx) = mpsc::sync_channel::<Result<(Vec<u8>, u32), SourceError>>(1);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut y = 0;
            while y < height {
                let n = band_rows.min(height - y);
                let mut buf = spare_rx.try_recv().unwrap_or_default();
                buf.resize(n as usize * row_bytes, 0);
                let read = src.read_rows(&mut buf, n).map(|()| (buf, n));
                let failed = read.is_err();
                if rows_tx.send(read).is_err() || failed {
                    return; // the builder stopped, or we did
                }
                y += n;
            }
        });
        for band in rows_rx {
            let (buf, n) = band?;
            builder.push(0, &buf, n)?;
            let _ = spare_tx.send(buf);
        }
        Ok::<(), TileError>(())
    })?;

    let (writer, thumb_pixels) = builder.finish();
    let pyramid_bytes = writer.bytes_written();
    let (lw, lh) = sizes[thumb_level];
    let (thumb, tw, th) = thumbnail::resize(thumb_pixels, lw, lh, channels, options.thumbnail_size);
    let jpeg = encode::jpeg(&thumb, tw, th, channels, options.quality).map_err(|source| {
        TileError::Encode {
            level: thumb_level,
            row: 0,
            source,
        }
    })?;
    let thumb_err = |source| TileError::Output {
        path: thumbnail_path.to_path_buf(),
        source,
    };
    let mut thumb_file = AtomicFile::create(thumbnail_path).map_err(thumb_err)?;
    thumb_file.file().write_all(&jpeg).map_err(thumb_err)?;
    thumb_file.sync().map_err(thumb_err)?;
    let pyramid_file = writer.finish()?;
    // Both are durable under temporary names; now make them visible.
    thumb_file.commit().map_err(thumb_err)?;
    pyramid_file.commit().map_err(|source| TileError::Output {
        path: pyramid.to_path_buf(),
        source,
    })?;
    Ok(TileReport {
        geometry,
        channels,
        source: source_name,
        colour,
        pyramid_bytes,
        thumbnail: (tw, th),
        thumbnail_bytes: jpeg.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}
