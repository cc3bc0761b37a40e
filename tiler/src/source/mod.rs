//! Decoding originals into a stream of 8-bit rows, top to bottom.
//!
//! A stripped or tiled TIFF is streamed chunk row by chunk row, a sequential JPEG or a PNG row by
//! row, so memory does not grow with the image (a progressive JPEG holds its coefficients, as
//! every decoder must). What cannot go row by row (CMYK JPEGs, interlaced PNGs, originals an
//! orientation turns, TIFFs that must be rotated) is decoded whole by `image` and handed out row
//! band by row band, converted as it goes so that no second full-size copy exists.

mod colour;
mod convert;
mod in_memory;
mod jpeg_check;
mod jpeg_stream;
mod png_stream;
mod tiff_stream;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

pub use colour::ProfileUse;
pub use convert::Layout;
pub use in_memory::InMemorySource;
pub use jpeg_stream::JpegStream;
pub use png_stream::PngStream;
pub use tiff_stream::TiffSource;

/// A default cap on input pixels: the largest a JPEG can be (65 535², 4 294.8 megapixels),
/// rounded up to the megapixel so that `--max-megapixels` can say it. It refuses decompression
/// bombs from their header, before any pixel is decoded.
pub const DEFAULT_MAX_PIXELS: u64 = 4_295_000_000;
/// A default cap on the memory a whole-image decode may take (JPEG, PNG): 4 GiB. The `td`
/// binary raises it to half of the machine's memory.
pub const DEFAULT_MAX_DECODE_BYTES: u64 = 4 << 30;

/// Limits on what an original may cost to decode.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_pixels: u64,
    pub max_decode_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pixels: DEFAULT_MAX_PIXELS,
            max_decode_bytes: DEFAULT_MAX_DECODE_BYTES,
        }
    }
}

/// Why an original cannot be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: not a JPEG, PNG or TIFF image (unrecognised format)")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {format} originals are not supported (use JPEG, PNG or TIFF)")]
    UnsupportedFormat { path: PathBuf, format: String },
    #[error("{path}: unsupported image: {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error("{path}: file is truncated: {what}")]
    Truncated { path: PathBuf, what: &'static str },
    #[error("{path}: file is damaged: {what}")]
    Corrupt { path: PathBuf, what: &'static str },
    #[error("{path}: cannot decode: {source}")]
    Decode {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("{path}: cannot decode JPEG: {what}")]
    Jpeg { path: PathBuf, what: String },
    #[error("{path}: cannot decode PNG: {what}")]
    Png { path: PathBuf, what: String },
    #[error("{path}: cannot decode TIFF: {source}")]
    Tiff {
        path: PathBuf,
        source: tiff::TiffError,
    },
    #[error("{path}: image has zero size ({width}×{height})")]
    ZeroSized {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error(
        "{path}: image is {width}×{height} = {} megapixels, over the limit of {} megapixels \
         (raise it with --max-megapixels if this is real)",
        u64::from(*width) * u64::from(*height) / 1_000_000,
        limit / 1_000_000
    )]
    TooManyPixels {
        path: PathBuf,
        width: u32,
        height: u32,
        limit: u64,
    },
    #[error(
        "{path}: decoding this {width}×{height} image whole needs {:.1} MiB, over the limit of \
         {:.1} MiB (save it as an upright baseline RGB JPEG of at most 65,500 pixels a side, a \
         PNG without interlacing or a tiled TIFF to stream it, or raise --max-memory)",
        *need as f64 / 1048576.0,
        *limit as f64 / 1048576.0
    )]
    TooMuchMemory {
        path: PathBuf,
        width: u32,
        height: u32,
        need: u64,
        limit: u64,
    },
}

/// Decoded rows of an original, 8 bits per sample, grey or RGB, top to bottom.
pub trait RowSource: Send {
    fn width(&self) -> u32;
    fn height(&self) -> u32;
    /// 1 (grey) or 3 (RGB).
    fn channels(&self) -> usize;
    /// Fills `out` with the next `rows` rows (`rows × width × channels` bytes).
    fn read_rows(&mut self, out: &mut [u8], rows: u32) -> Result<(), SourceError>;
    /// How the original was read, for the report: "streamed TIFF", "decoded whole JPEG", …
    fn describe(&self) -> String;
    /// The embedded ICC colour profile, if any (handed over once).
    fn take_icc_profile(&mut self) -> Option<Vec<u8>>;
}

/// Opens an original (see [`open_raw`]) and converts its colours to sRGB where its ICC profile
/// says they are in another space.
pub fn open(path: &Path, limits: Limits) -> Result<(Box<dyn RowSource>, ProfileUse), SourceError> {
    let mut source = open_raw(path, limits)?;
    let icc = source.take_icc_profile();
    Ok(colour::manage(source, icc))
}

/// Opens an original, checks it against the limits, and returns its rows as a stream, with
/// the colours as stored.
pub fn open_raw(path: &Path, limits: Limits) -> Result<Box<dyn RowSource>, SourceError> {
    let io_err = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Err(SourceError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut head = Vec::with_capacity(64);
    (&mut file)
        .take(64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    // `image` does not know BigTIFF's magic; the `tiff` decoder reads it.
    let bigtiff = head.starts_with(b"II\x2b\x00") || head.starts_with(b"MM\x00\x2b");
    let format = if bigtiff {
        image::ImageFormat::Tiff
    } else {
        image::guess_format(&head).map_err(|_| SourceError::UnknownFormat {
            path: path.to_path_buf(),
        })?
    };
    match format {
        image::ImageFormat::Tiff => match TiffSource::open(path, limits)? {
            Some(stream) => Ok(Box::new(stream)),
            None => Ok(Box::new(InMemorySource::open(path, format, limits)?)),
        },
        image::ImageFormat::Jpeg => {
            let frame =
                jpeg_check::check_complete(BufReader::new(File::open(path).map_err(io_err)?))
                    .map_err(|e| match e {
                        jpeg_check::Incomplete::Io(source) => io_err(source),
                        jpeg_check::Incomplete::Truncated(what) => SourceError::Truncated {
                            path: path.to_path_buf(),
                            what,
                        },
                        jpeg_check::Incomplete::Damaged(what) => SourceError::Corrupt {
                            path: path.to_path_buf(),
                            what,
                        },
                    })?;
            match JpegStream::open(path, frame, limits)? {
                Some(stream) => Ok(Box::new(stream)),
                None => Ok(Box::new(InMemorySource::open(path, format, limits)?)),
            }
        }
        image::ImageFormat::Png => match PngStream::open(path, limits)? {
            Some(stream) => Ok(Box::new(stream)),
            None => Ok(Box::new(InMemorySource::open(path, format, limits)?)),
        },
        other => Err(SourceError::UnsupportedFormat {
            path: path.to_path_buf(),
            format: format!("{other:?}"),
        }),
    }
}

/// Checks size limits common to every decoder, from the header alone.
fn check_size(path: &Path, width: u32, height: u32, limits: Limits) -> Result<(), SourceError> {
    if width == 0 || height == 0 {
        return Err(SourceError::ZeroSized {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(SourceError::TooManyPixels {
            path: path.to_path_buf(),
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

/// Checks what a decode must hold at once (`need` bytes) against the limit, from the header.
fn check_memory(
    path: &Path,
    width: u32,
    height: u32,
    need: u64,
    limits: Limits,
) -> Result<(), SourceError> {
    if need > limits.max_decode_bytes {
        return Err(SourceError::TooMuchMemory {
            path: path.to_path_buf(),
            width,
            height,
            need,
            limit: limits.max_decode_bytes,
        });
    }
    Ok(())
}
