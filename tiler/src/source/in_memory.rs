//! Originals decoded whole by `image` (JPEG, PNG, and TIFFs that cannot be streamed), handed out
//! row band by row band and converted on the fly, so the only full-size buffer is the decoded
//! image itself.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::convert::{convert, Layout, Sample};
use super::{check_memory, check_size, Limits, RowSource, SourceError};

pub struct InMemorySource {
    image: DynamicImage,
    layout: Layout,
    next_row: u32,
    format: ImageFormat,
    icc: Option<Vec<u8>>,
}

impl InMemorySource {
    pub fn open(path: &Path, format: ImageFormat, limits: Limits) -> Result<Self, SourceError> {
        let decode_err = |source| SourceError::Decode {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = ImageReader::with_format(BufReader::new(file), format);
        let mut image_limits = image::Limits::default();
        image_limits.max_alloc = Some(limits.max_decode_bytes);
        reader.limits(image_limits);
        let mut decoder = reader.into_decoder().map_err(decode_err)?;
        let (width, height) = decoder.dimensions();
        check_size(path, width, height, limits)?;
        check_memory(path, width, height, decoder.total_bytes(), limits)?;
        let orientation = decoder.orientation().map_err(decode_err)?;
        // A damaged profile is not a reason to refuse the pixels.
        let icc = decoder.icc_profile().ok().flatten();
        let mut image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
        image.apply_orientation(orientation);
        let layout = match &image {
            DynamicImage::ImageLuma8(_) | DynamicImage::ImageLuma16(_) => Layout::Gray,
            DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => Layout::GrayAlpha,
            DynamicImage::ImageRgb8(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgb32F(_) => Layout::Rgb,
            _ => {
                // Any other layout (RGBA and what future versions add) goes through RGBA.
                if !matches!(
                    image,
                    DynamicImage::ImageRgba8(_)
                        | DynamicImage::ImageRgba16(_)
                        | DynamicImage::ImageRgba32F(_)
                ) {
                    image = DynamicImage::ImageRgba8(image.to_rgba8());
                }
                Layout::Rgba
            }
        };
        Ok(InMemorySource {
            image,
            layout,
            next_row: 0,
            format,
            icc,
        })
    }
}

fn rows_of<T: Sample>(all: &[T], width: u32, samples: usize, first: u32, rows: u32) -> &[T] {
    let row_len = width as usize * samples;
    &all[first as usize * row_len..(first + rows) as usize * row_len]
}

impl RowSource for InMemorySource {
    fn width(&self) -> u32 {
        self.image.width()
    }

    fn height(&self) -> u32 {
        self.image.height()
    }

    fn channels(&self) -> usize {
        self.layout.out_channels()
    }

    fn read_rows(&mut self, out: &mut [u8], rows: u32) -> Result<(), SourceError> {
        let (w, n, first) = (self.image.width(), self.layout.samples(), self.next_row);
        assert!(
            first + rows <= self.image.height(),
            "read past the last row"
        );
        match &self.image {
            DynamicImage::ImageLuma8(i) => convert(self.layout, rows_of(i, w, n, first, rows), out),
            DynamicImage::ImageLumaA8(i) => {
                convert(self.layout, rows_of(i, w, n, first, rows), out)
            }
            DynamicImage::ImageRgb8(i) => convert(self.layout, rows_of(i, w, n, first, rows), out),
            DynamicImage::ImageRgba8(i) => convert(self.layout, rows_of(i, w, n, first, rows), out),
            DynamicImage::ImageLuma16(i) => {
                convert(self.layout, rows_of(i, w, n, first, rows), out)
            }
            DynamicImage::ImageLumaA16(i) => {
                convert(self.layout, rows_of(i, w, n, first, rows), out)
            }
            DynamicImage::ImageRgb16(i) => convert(self.layout, rows_of(i, w, n, first, rows), out),
            DynamicImage::ImageRgba16(i) => {
                convert(self.layout, rows_of(i, w, n, first, rows), out)
            }
            DynamicImage::ImageRgb32F(i) => {
                convert(self.layout, rows_of(i, w, n, first, rows), out)
            }
            DynamicImage::ImageRgba32F(i) => {
                convert(self.layout, rows_of(i, w, n, first, rows), out)
            }
            _ => unreachable!("open() normalises every other layout to RGBA8"),
        }
        self.next_row += rows;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{:?} decoded whole", self.format)
    }

    fn take_icc_profile(&mut self) -> Option<Vec<u8>> {
        self.icc.take()
    }
}
