//! PNG originals decoded row by row: memory is a row or two whatever the image's size.
//!
//! Interlaced (Adam7) PNGs hand out their rows in seven passes, and those an EXIF orientation
//! turns need the whole image: both are left to the whole-image decoder.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use image::metadata::Orientation;
use png::{BitDepth, ColorType, Decoder, Reader, Transformations};

use super::convert::{convert, Layout};
use super::{check_size, Limits, RowSource, SourceError};

pub struct PngStream {
    reader: Reader<BufReader<File>>,
    path: PathBuf,
    width: u32,
    height: u32,
    layout: Layout,
    sixteen_bit: bool,
    /// One row's samples, when they are 16 bits and must be put in host order first.
    wide: Vec<u16>,
    icc: Option<Vec<u8>>,
}

impl PngStream {
    /// Opens a PNG; `None` when it must be decoded whole instead (interlaced, or turned by its
    /// orientation).
    pub fn open(path: &Path, limits: Limits) -> Result<Option<Self>, SourceError> {
        let fail = |e: png::DecodingError| SourceError::Png {
            path: path.to_path_buf(),
            what: e.to_string(),
        };
        let file = File::open(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut decoder = Decoder::new(BufReader::with_capacity(1 << 16, file));
        // Palettes to colours, transparency chunks to alpha, 1-4 bit samples to 8.
        decoder.set_transformations(Transformations::EXPAND);
        let reader = decoder.read_info().map_err(fail)?;
        let info = reader.info();
        let (width, height) = (info.width, info.height);
        check_size(path, width, height, limits)?;
        let turned = info
            .exif_metadata
            .as_deref()
            .and_then(Orientation::from_exif_chunk)
            .is_some_and(|o| o != Orientation::NoTransforms);
        if info.interlaced || turned {
            return Ok(None);
        }
        let icc = info.icc_profile.as_ref().map(|p| p.to_vec());
        let (colour, depth) = reader.output_color_type();
        let layout = match colour {
            ColorType::Grayscale => Layout::Gray,
            ColorType::GrayscaleAlpha => Layout::GrayAlpha,
            ColorType::Rgb => Layout::Rgb,
            ColorType::Rgba => Layout::Rgba,
            ColorType::Indexed => return Ok(None), // expanded above; never seen here
        };
        Ok(Some(PngStream {
            reader,
            path: path.to_path_buf(),
            width,
            height,
            layout,
            sixteen_bit: depth == BitDepth::Sixteen,
            wide: Vec::new(),
            icc,
        }))
    }
}

impl RowSource for PngStream {
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
        let out_row = self.width as usize * self.layout.out_channels();
        for dst in out.chunks_exact_mut(out_row).take(rows as usize) {
            let row = match self.reader.next_row() {
                Ok(Some(row)) => row.data(),
                Ok(None) => {
                    return Err(SourceError::Truncated {
                        path: self.path.clone(),
                        what: "the PNG image data ends before its last row",
                    })
                }
                Err(e) => {
                    return Err(SourceError::Png {
                        path: self.path.clone(),
                        what: e.to_string(),
                    })
                }
            };
            if self.sixteen_bit {
                self.wide.clear();
                self.wide.extend(
                    row.chunks_exact(2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]])),
                );
                convert(self.layout, &self.wide, dst);
            } else {
                convert(self.layout, row, dst);
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "PNG streamed row by row".into()
    }

    fn take_icc_profile(&mut self) -> Option<Vec<u8>> {
        self.icc.take()
    }
}
