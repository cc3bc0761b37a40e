//! Answering an image request: straight from a stored tile when the request is exactly one,
//! otherwise rendered from the nearest pyramid level at or above the output resolution —
//! decode only the tiles the region touches, crop, resize, mirror, turn, recolour, encode.

use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};
use tiler::{Geometry, PyramidReader, ReadError};

use super::request::{Format, ImageRequest, Plan, Quality};

/// JPEG quality of rendered images: the same as the stored tiles.
const RENDER_QUALITY: u8 = tiler::DEFAULT_QUALITY;

/// The fewest pixels a render may decode, whatever its output: enough for any ordinary
/// request to read the level its output needs.
const MIN_DECODE_PIXELS: u64 = 4 << 20;
/// A render decodes at most this many times its output's pixels (or [`MIN_DECODE_PIXELS`]).
const DECODE_PER_OUTPUT_PIXEL: u64 = 4;

/// The pyramid level a render reads, and the part of it: the coarsest level still at least
/// as detailed as the output in both directions, unless that would decode more than
/// [`DECODE_PER_OUTPUT_PIXEL`] times the output. A distorted size (`full/6000,1`: full
/// detail across, 4000 times less down) then reads a coarser level rather than a
/// full-resolution strip of 24 MP for a 6000-pixel answer.
pub fn source(g: &Geometry, plan: &Plan) -> Source {
    let (x, y, w, h) = plan.region;
    let at = |level: usize| {
        let s = 1u32 << level;
        let l = g.levels[level];
        let (x0, y0) = (x / s, y / s);
        let x1 = (x + w).div_ceil(s).min(l.width);
        let y1 = (y + h).div_ceil(s).min(l.height);
        Source {
            level,
            x: x0,
            y: y0,
            width: (x1 - x0).max(1),
            height: (y1 - y0).max(1),
        }
    };
    let shrink = (f64::from(w) / f64::from(plan.width)).min(f64::from(h) / f64::from(plan.height));
    let mut level = (0..g.levels.len())
        .rev()
        .find(|&n| f64::from(1u32 << n) <= shrink)
        .unwrap_or(0);
    let output = u64::from(plan.width) * u64::from(plan.height);
    let allowed = (output * DECODE_PER_OUTPUT_PIXEL).max(MIN_DECODE_PIXELS);
    while level + 1 < g.levels.len() && at(level).pixels() > allowed {
        level += 1;
    }
    at(level)
}

/// What a render decodes: a rectangle of one pyramid level, in that level's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub level: usize,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Source {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// The most memory a render of `plan` holds at once, in bytes: the decoded source and one
/// tile being decoded, the resampler's pass in one direction (at most the source's size),
/// then the output about three times over (resampled, turned or recoloured, encoded).
pub fn memory_needed(g: &Geometry, channels: u8, plan: &Plan) -> u64 {
    let c = u64::from(channels.max(1));
    let tile = u64::from(g.tile_size) * u64::from(g.tile_size) * 3;
    let output = u64::from(plan.width) * u64::from(plan.height) * c;
    2 * source(g, plan).pixels() * c + tile + 3 * output
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("stored tile (level {level}, col {col}, row {row}) does not decode: {why}")]
    Decode {
        level: usize,
        col: u32,
        row: u32,
        why: String,
    },
    #[error("cannot encode the rendered image: {0}")]
    Encode(String),
}

/// The stored tile that is exactly what `plan` asks for, if there is one.
pub fn stored_tile(
    req: &ImageRequest,
    plan: &Plan,
    g: &Geometry,
    channels: u8,
) -> Option<(usize, u32, u32)> {
    let plain_quality = match req.quality {
        Quality::Default => true,
        Quality::Color => channels == 3,
        Quality::Gray => channels == 1,
        Quality::Bitonal => false,
    };
    if req.quarter_turns != 0 || req.mirror || !plain_quality || req.format != Format::Jpg {
        return None;
    }
    let (x, y, w, h) = plan.region;
    let t = g.tile_size;
    (0..g.levels.len()).find_map(|n| {
        let s = 1u32.checked_shl(n as u32)?;
        let span = t.checked_mul(s)?;
        if x % span != 0 || y % span != 0 {
            return None;
        }
        let (col, row) = (x / span, y / span);
        let (tw, th) = g.tile_dimensions(n, col, row)?;
        let full_w = span.min(g.width - x);
        let full_h = span.min(g.height - y);
        (w == full_w && h == full_h && plan.width == tw && plan.height == th)
            .then_some((n, col, row))
    })
}

/// Renders `plan` from the pyramid and encodes it in the requested format.
pub fn render(
    reader: &PyramidReader,
    req: &ImageRequest,
    plan: &Plan,
) -> Result<Vec<u8>, RenderError> {
    let g = reader.geometry();
    let channels = usize::from(reader.header().channels);
    let src = source(g, plan);
    let level = src.level;
    let (lx0, ly0, rw, rh) = (src.x, src.y, src.width, src.height);
    let (lx1, ly1) = (lx0 + rw, ly0 + rh);
    let t = g.tile_size;
    let mut region = vec![0u8; rw as usize * rh as usize * channels];
    for row in ly0 / t..=(ly1 - 1) / t {
        for col in lx0 / t..=(lx1 - 1) / t {
            let jpeg = reader.read_tile(level, col, row)?;
            let tile =
                image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg).map_err(|e| {
                    RenderError::Decode {
                        level,
                        col,
                        row,
                        why: e.to_string(),
                    }
                })?;
            let (tw, bytes) = if channels == 1 {
                (tile.width(), tile.into_luma8().into_raw())
            } else {
                (tile.width(), tile.into_rgb8().into_raw())
            };
            let th = (bytes.len() / channels) as u32 / tw.max(1);
            // Intersect the tile with the region, in level coordinates.
            let (tx0, ty0) = (col * t, row * t);
            let (ix0, iy0) = (tx0.max(lx0), ty0.max(ly0));
            let (ix1, iy1) = ((tx0 + tw).min(lx1), (ty0 + th).min(ly1));
            for yy in iy0..iy1 {
                let src = ((yy - ty0) * tw + (ix0 - tx0)) as usize * channels;
                let dst = ((yy - ly0) * rw + (ix0 - lx0)) as usize * channels;
                let n = (ix1 - ix0) as usize * channels;
                region[dst..dst + n].copy_from_slice(&bytes[src..src + n]);
            }
        }
    }
    let pixels = tiler::resample::lanczos(region, rw, rh, plan.width, plan.height, channels);
    let mut img = if channels == 1 {
        DynamicImage::ImageLuma8(
            GrayImage::from_raw(plan.width, plan.height, pixels).expect("sized by resize"),
        )
    } else {
        DynamicImage::ImageRgb8(
            RgbImage::from_raw(plan.width, plan.height, pixels).expect("sized by resize"),
        )
    };
    // The specification mirrors first, then rotates clockwise.
    if req.mirror {
        img = img.fliph();
    }
    img = match req.quarter_turns {
        1 => img.rotate90(),
        2 => img.rotate180(),
        3 => img.rotate270(),
        _ => img,
    };
    img = match req.quality {
        Quality::Default | Quality::Color => img,
        Quality::Gray => DynamicImage::ImageLuma8(img.into_luma8()),
        Quality::Bitonal => {
            let mut grey = img.into_luma8();
            grey.pixels_mut()
                .for_each(|p| p.0[0] = if p.0[0] >= 128 { 255 } else { 0 });
            DynamicImage::ImageLuma8(grey)
        }
    };
    encode(&img, req.format)
}

fn encode(img: &DynamicImage, format: Format) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::new();
    match format {
        Format::Jpg => {
            let (color, bytes) = match img {
                DynamicImage::ImageLuma8(g) => (jpeg_encoder::ColorType::Luma, g.as_raw()),
                DynamicImage::ImageRgb8(c) => (jpeg_encoder::ColorType::Rgb, c.as_raw()),
                _ => unreachable!("render makes only grey or RGB images"),
            };
            let (w, h) = (u16::try_from(img.width()), u16::try_from(img.height()));
            let (Ok(w), Ok(h)) = (w, h) else {
                return Err(RenderError::Encode(
                    "JPEG sides are limited to 65535 pixels".into(),
                ));
            };
            jpeg_encoder::Encoder::new(&mut out, RENDER_QUALITY)
                .encode(bytes, w, h, color)
                .map_err(|e| RenderError::Encode(e.to_string()))?;
        }
        Format::Png => img
            .write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
            .map_err(|e| RenderError::Encode(e.to_string()))?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iiif::request::{resolve, OutputLimits};

    const LIMITS: OutputLimits = OutputLimits {
        max_width: 8192,
        max_height: 8192,
        max_area: 16_000_000,
    };

    fn source_of(w: u32, h: u32, region: &str, size: &str) -> (Source, Plan) {
        let g = Geometry::new(w, h, 256).unwrap();
        let req = ImageRequest::parse(region, size, "0", "default.jpg").unwrap();
        let plan = resolve(&req, w, h, LIMITS).unwrap();
        (source(&g, &plan), plan)
    }

    #[test]
    fn ordinary_requests_read_the_level_their_output_needs() {
        // max of 6000×4000 under 16 MP: full resolution, the whole image.
        let (s, _) = source_of(6000, 4000, "full", "max");
        assert_eq!((s.level, s.width, s.height), (0, 6000, 4000));
        // A quarter-size view reads level 2 (scale 4), exactly.
        let (s, _) = source_of(6000, 4000, "full", "1500,");
        assert_eq!((s.level, s.width, s.height), (2, 1500, 1000));
        // A small region at full size reads only that region.
        let (s, _) = source_of(6000, 4000, "1000,1000,300,200", "max");
        assert_eq!(
            (s.level, s.x, s.y, s.width, s.height),
            (0, 1000, 1000, 300, 200)
        );
    }

    /// The distorted sizes that decoded a full-resolution strip for a few kilobytes.
    #[test]
    fn distorted_sizes_decode_a_bounded_number_of_pixels() {
        for (w, h, region, size) in [
            (6000, 4000, "full", "6000,1"),
            (6000, 4000, "full", "1,4000"),
            (8192, 20000, "0,0,8192,20000", "8192,1"),
        ] {
            let (s, plan) = source_of(w, h, region, size);
            let output = u64::from(plan.width) * u64::from(plan.height);
            assert!(
                s.pixels() <= (output * DECODE_PER_OUTPUT_PIXEL).max(MIN_DECODE_PIXELS),
                "{region}/{size} of {w}×{h} decodes {} pixels at level {}",
                s.pixels(),
                s.level
            );
        }
    }

    #[test]
    fn the_memory_a_render_needs_counts_its_source_and_output() {
        let g = Geometry::new(6000, 4000, 256).unwrap();
        let req = ImageRequest::parse("full", "max", "90", "default.png").unwrap();
        let plan = resolve(&req, 6000, 4000, LIMITS).unwrap();
        let need = memory_needed(&g, 3, &plan);
        let output = u64::from(plan.width) * u64::from(plan.height) * 3;
        assert!(need >= 6000 * 4000 * 3 + 3 * output, "{need}");
        assert!(need < super::super::budget::DEFAULT_RENDER_MEMORY, "{need}");
    }
}
