//! TIFFs read chunk row by chunk row (strips, or one row of tiles), so that a 2-gigapixel scan
//! needs memory for one band of it, not for all of it. Plain, BigTIFF, stripped and tiled files
//! stream; a TIFF that must be rotated first (an `Orientation` other than top-left) or keeps its
//! samples in separate planes is handed back to be decoded whole.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::Tag;
use tiff::ColorType;

use super::convert::{convert, Layout};
use super::{check_size, Limits, RowSource, SourceError};

/// Chunks larger than this are not "chunks": a single-strip 1-gigapixel TIFF would need its
/// whole image in memory, and is then better decoded whole under the memory limit.
const MAX_CHUNK_BYTES: u64 = 512 << 20;

pub struct TiffSource {
    path: PathBuf,
    decoder: Decoder<BufReader<File>>,
    width: u32,
    height: u32,
    layout: Layout,
    chunk_w: u32,
    chunk_h: u32,
    chunks_across: u32,
    tiled: bool,
    /// The current chunk row, converted to 8-bit output rows.
    band: Vec<u8>,
    band_first_row: u32,
    band_rows: u32,
    next_row: u32,
    /// The last chunk read, as the decoder gives it.
    chunk: DecodingResult,
    icc: Option<Vec<u8>>,
}

/// TIFF tag 34675: the embedded ICC profile.
const ICC_PROFILE_TAG: u16 = 34675;

impl TiffSource {
    /// Opens a TIFF for streaming, or returns `None` if it must be decoded whole.
    pub fn open(path: &Path, limits: Limits) -> Result<Option<TiffSource>, SourceError> {
        let tiff_err = |source| SourceError::Tiff {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut tiff_limits = tiff::decoder::Limits::default();
        tiff_limits.decoding_buffer_size = MAX_CHUNK_BYTES as usize;
        let mut decoder = Decoder::new(BufReader::new(file))
            .map_err(tiff_err)?
            .with_limits(tiff_limits);
        let (width, height) = decoder.dimensions().map_err(tiff_err)?;
        check_size(path, width, height, limits)?;
        let orientation: u16 = decoder
            .find_tag_unsigned(Tag::Orientation)
            .map_err(tiff_err)?
            .unwrap_or(1);
        let planar: u16 = decoder
            .find_tag_unsigned(Tag::PlanarConfiguration)
            .map_err(tiff_err)?
            .unwrap_or(1);
        if orientation != 1 || planar != 1 {
            return Ok(None);
        }
        let color = decoder.colortype().map_err(tiff_err)?;
        let layout = match color {
            ColorType::Gray(8 | 16) => Layout::Gray,
            ColorType::Multiband {
                bit_depth: 8 | 16,
                num_samples: 2,
            } => Layout::GrayAlpha,
            ColorType::RGB(8 | 16) => Layout::Rgb,
            ColorType::RGBA(8 | 16) => Layout::Rgba,
            ColorType::CMYK(8 | 16) => Layout::Cmyk,
            ColorType::YCbCr(8) => Layout::YCbCr,
            other => {
                return Err(SourceError::Unsupported {
                    path: path.to_path_buf(),
                    what: format!("TIFF colour type {other:?}"),
                })
            }
        };
        let tiled = matches!(decoder.get_chunk_type(), tiff::decoder::ChunkType::Tile);
        let (chunk_w, chunk_h) = decoder.chunk_dimensions();
        let bytes_per_sample = if color.bit_depth() > 8 { 2 } else { 1 };
        let chunk_bytes = u64::from(chunk_w.min(width))
            * u64::from(chunk_h.min(height))
            * layout.samples() as u64
            * bytes_per_sample;
        if chunk_bytes > MAX_CHUNK_BYTES || chunk_w == 0 || chunk_h == 0 {
            return Ok(None);
        }
        let icc = decoder.get_tag_u8_vec(Tag::Unknown(ICC_PROFILE_TAG)).ok();
        let chunks_across = if tiled { width.div_ceil(chunk_w) } else { 1 };
        Ok(Some(TiffSource {
            path: path.to_path_buf(),
            decoder,
            width,
            height,
            layout,
            chunk_w,
            chunk_h,
            chunks_across,
            tiled,
            band: Vec::new(),
            band_first_row: 0,
            band_rows: 0,
            next_row: 0,
            chunk: DecodingResult::U8(Vec::new()),
            icc,
        }))
    }

    /// Decodes the chunk row that holds `self.next_row` into `self.band`.
    fn load_band(&mut self) -> Result<(), SourceError> {
        let chunk_row = self.next_row / self.chunk_h;
        let first_row = chunk_row * self.chunk_h;
        let rows = self.chunk_h.min(self.height - first_row);
        let out_px = self.layout.out_channels();
        let row_bytes = self.width as usize * out_px;
        self.band.resize(rows as usize * row_bytes, 0);
        for across in 0..self.chunks_across {
            let index = chunk_row * self.chunks_across + across;
            self.chunk = self
                .decoder
                .read_chunk(index)
                .map_err(|source| SourceError::Tiff {
                    path: self.path.clone(),
                    source,
                })?;
            let (dw, dh) = self.decoder.chunk_data_dimensions(index);
            let x0 = if self.tiled { across * self.chunk_w } else { 0 } as usize;
            let samples_per_row = dw as usize * self.layout.samples();
            for y in 0..dh.min(rows) as usize {
                let dst = &mut self.band[y * row_bytes + x0 * out_px..][..dw as usize * out_px];
                let range = y * samples_per_row..(y + 1) * samples_per_row;
                let short = || SourceError::Truncated {
                    path: self.path.clone(),
                    what: "a TIFF chunk holds fewer samples than its size says",
                };
                match &self.chunk {
                    DecodingResult::U8(v) => {
                        convert(self.layout, v.get(range).ok_or_else(short)?, dst)
                    }
                    DecodingResult::U16(v) => {
                        convert(self.layout, v.get(range).ok_or_else(short)?, dst)
                    }
                    _ => {
                        return Err(SourceError::Unsupported {
                            path: self.path.clone(),
                            what: "TIFF sample format (only 8- and 16-bit integers)".into(),
                        })
                    }
                }
            }
        }
        self.band_first_row = first_row;
        self.band_rows = rows;
        Ok(())
    }
}

impl RowSource for TiffSource {
    fn width(&self) -> u32 {
        self.width
    }

    fn height(&self) -> u32 {
        self.height
    }

    fn channels(&self) -> usize {
        self.layout.out_channels()
    }

    fn read_rows(&mut self, out: &mut [u8], rows: u32) -> Result<(), SourceError> {
        let row_bytes = self.width as usize * self.layout.out_channels();
        let mut done = 0u32;
        while done < rows {
            if self.next_row >= self.band_first_row + self.band_rows || self.band_rows == 0 {
                self.load_band()?;
            }
            let in_band = self.next_row - self.band_first_row;
            let n = (self.band_rows - in_band).min(rows - done);
            let src = &self.band[in_band as usize * row_bytes..][..n as usize * row_bytes];
            out[done as usize * row_bytes..][..n as usize * row_bytes].copy_from_slice(src);
            done += n;
            self.next_row += n;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let kind = if self.tiled { "tiled" } else { "stripped" };
        format!(
            "{kind} TIFF streamed in {}×{} chunks",
            self.chunk_w.min(self.width),
            self.chunk_h.min(self.height)
        )
    }

    fn take_icc_profile(&mut self) -> Option<Vec<u8>> {
        self.icc.take()
    }
}
