//! The tiled pyramid file and the tiler.
//!
//! A pyramid file (`.tdp`) holds every resolution level of one image as pre-encoded JPEG tiles
//! laid out for the IIIF Image API 3.0 tile model, behind a checksummed header and tile index
//! ([`format`]). [`PyramidReader`] opens and validates one and returns any tile with a single
//! positional read, checked against its CRC-32C; [`PyramidWriter`] writes one atomically. The
//! tiler ([`tile()`]) turns an original (JPEG, PNG, TIFF) into a pyramid file and a thumbnail,
//! streaming TIFFs so that memory does not grow with the image.
//!
//! The major parts are:
//! - [`geometry`]: levels and tiles of an image of a given size;
//! - [`format`], [`writer`], [`reader`]: the file;
//! - [`source`]: decoding originals into 8-bit rows;
//! - `pyramid`, `downsample`, `encode`, [`thumbnail`]: building levels and tiles;
//! - [`tile()`]: the whole run, with its options and report.
//!
//! This crate must never hand out tile bytes that failed their checksum, never panic on a
//! damaged file or a hostile original, and never leave a partial output file behind.

mod atomic;
mod downsample;
mod encode;
pub mod format;
pub mod geometry;
mod pyramid;
pub mod reader;
pub mod resample;
pub mod source;
pub mod thumbnail;
mod tile;
pub mod writer;

use std::io;
use std::path::PathBuf;

pub use geometry::{Geometry, GeometryError, Level};
pub use pyramid::Progress;
pub use reader::{PyramidReader, ReadError, TileProblem};
pub use source::{Limits, SourceError};
pub use tile::{default_thumbnail_path, tile, TileOptions, TileReport, DEFAULT_QUALITY};
pub use writer::{PyramidWriter, WriteError};

/// Why a tiling run failed.
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("JPEG quality {0} is out of range (1 to 100)")]
    Quality(u8),
    #[error("thumbnail size must be at least 1 pixel")]
    ThumbnailSize,
    #[error("{0}")]
    TileSize(GeometryError),
    #[error("cannot encode tile row {row} of level {level}: {source}")]
    Encode {
        level: usize,
        row: u32,
        source: jpeg_encoder::EncodingError,
    },
    #[error("cannot write {path}: {source}")]
    Output { path: PathBuf, source: io::Error },
}
