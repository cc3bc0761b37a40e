//! JPEG originals decoded row by row with libjpeg-turbo (through the `mozjpeg` crate), so that
//! a sequential JPEG costs a few rows of memory whatever its size, and a progressive one its
//! coefficients (two bytes a sample, what every decoder must keep until the last scan) instead
//! of its pixels plus a decoder's own copy.
//!
//! CMYK JPEGs and those an EXIF orientation turns are left to the whole-image decoder: the
//! first need Adobe's inverted ink and the second the whole image to turn, and both are rare
//! at the sizes where memory matters. So are JPEGs with a side over 65,500 pixels, which
//! libjpeg refuses although the format allows 65,535.

use std::fs::File;
use std::io::BufReader;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use image::metadata::Orientation;
use mozjpeg::decompress::DecompressStarted;
use mozjpeg::{ColorSpace, Decompress, Marker};

use super::jpeg_check::Frame;
use super::{check_memory, check_size, Limits, RowSource, SourceError};

/// The longest side libjpeg decodes (`JPEG_MAX_DIMENSION`).
const LIBJPEG_MAX_SIDE: u16 = 65_500;

type Started = DecompressStarted<BufReader<File>>;

/// The segments read for what they say: EXIF (orientation) and ICC profiles.
const MARKERS: &[Marker] = &[Marker::APP(1), Marker::APP(2)];

/// The decoder, handed to the reading thread whole.
struct Decoder(Started);

// SAFETY: libjpeg keeps no thread-local state; the decoder is moved to the reading thread and
// used only there, never shared.
unsafe impl Send for Decoder {}

pub struct JpegStream {
    decoder: Option<Decoder>,
    path: PathBuf,
    width: u32,
    height: u32,
    channels: usize,
    progressive: bool,
    icc: Option<Vec<u8>>,
}

/// Runs a libjpeg call, turning the unwinding its fatal errors use into a message.
fn guarded<T>(call: impl FnOnce() -> std::io::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "libjpeg failed".into())
            .trim_start_matches("libjpeg fatal error: ")
            .to_string()),
    }
}

/// The ICC profile carried in APP2 segments, chunks put back in their order.
fn icc_profile(decompress: &Decompress<BufReader<File>>) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let mut chunks: Vec<(u8, &[u8])> = decompress
        .markers()
        .filter(|m| m.marker == Marker::APP(2) && m.data.starts_with(TAG))
        .filter_map(|m| {
            let rest = &m.data[TAG.len()..];
            Some((*rest.first()?, rest.get(2..)?))
        })
        .collect();
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    Some(
        chunks
            .into_iter()
            .flat_map(|c| c.1.iter().copied())
            .collect(),
    )
}

/// The EXIF orientation, if an APP1 segment carries one.
fn orientation(decompress: &Decompress<BufReader<File>>) -> Option<Orientation> {
    decompress
        .markers()
        .filter(|m| m.marker == Marker::APP(1))
        .find_map(|m| Orientation::from_exif_chunk(m.data.strip_prefix(b"Exif\0\0")?))
}

impl JpegStream {
    /// Opens a JPEG whose structure `frame` was checked; `None` when it must be decoded whole
    /// instead (CMYK, turned by its orientation, or wider than libjpeg goes).
    pub fn open(path: &Path, frame: Frame, limits: Limits) -> Result<Option<Self>, SourceError> {
        if frame.longest_side > LIBJPEG_MAX_SIDE {
            return Ok(None);
        }
        let fail = |what: String| SourceError::Jpeg {
            path: path.to_path_buf(),
            what,
        };
        let file = File::open(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let decompress = guarded(|| {
            Decompress::builder()
                .with_markers(MARKERS)
                .from_reader(BufReader::with_capacity(1 << 16, file))
        })
        .map_err(fail)?;
        let channels = match decompress.color_space() {
            ColorSpace::JCS_GRAYSCALE => 1,
            ColorSpace::JCS_YCbCr | ColorSpace::JCS_RGB => 3,
            _ => return Ok(None),
        };
        if orientation(&decompress).is_some_and(|o| o != Orientation::NoTransforms) {
            return Ok(None);
        }
        let (width, height) = (decompress.width() as u32, decompress.height() as u32);
        check_size(path, width, height, limits)?;
        check_memory(path, width, height, frame.coefficient_bytes(), limits)?;
        let icc = icc_profile(&decompress);
        let started = guarded(move || {
            if channels == 1 {
                decompress.grayscale()
            } else {
                decompress.rgb()
            }
        })
        .map_err(fail)?;
        Ok(Some(JpegStream {
            decoder: Some(Decoder(started)),
            path: path.to_path_buf(),
            width,
            height,
            channels,
            progressive: frame.progressive,
            icc,
        }))
    }
}

impl RowSource for JpegStream {
    fn width(&self) -> u32 {
        self.width
    }

    fn height(&self) -> u32 {
        self.height
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn read_rows(&mut self, out: &mut [u8], rows: u32) -> Result<(), SourceError> {
        let len = rows as usize * self.width as usize * self.channels;
        let Some(Decoder(started)) = self.decoder.as_mut() else {
            return Err(SourceError::Jpeg {
                path: self.path.clone(),
                what: "decoding stopped at an earlier error".into(),
            });
        };
        let read = guarded(|| {
            started
                .read_scanlines_into::<u8>(&mut out[..len])
                .map(|_| ())
        });
        if let Err(what) = read {
            // After a fatal error libjpeg's state is undefined: only destroying it is safe.
            self.decoder = None;
            return Err(SourceError::Jpeg {
                path: self.path.clone(),
                what,
            });
        }
        Ok(())
    }

    fn describe(&self) -> String {
        if self.progressive {
            "progressive JPEG decoded row by row (its coefficients held)".into()
        } else {
            "JPEG streamed row by row".into()
        }
    }

    fn take_icc_profile(&mut self) -> Option<Vec<u8>> {
        self.icc.take()
    }
}
