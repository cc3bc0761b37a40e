//! Answering an image request: straight from a stored tile when the request is exactly one,
//! otherwise rendered from the nearest pyramid level at or above the output resolution —
//! decode only the tiles the region touches, crop, resize, mirror, turn, recolour, encode.

use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};
use tiler::{Geometry, PyramidReader, ReadError};

use super::request::{Format, ImageRequest, Plan, Quality};

/// JPEG quality of rendered images: the same as the stored tiles.
const RENDER_QUALITY: u8 = tiler::DEFAULT_QUALITY;

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
    let (x, y, w, h) = plan.region;
    // The smallest level still at least as detailed as the output.
    let shrink = (f64::from(w) / f64::from(plan.width)).min(f64::from(h) / f64::from(plan.height));
    let level = (0..g.levels.len())
        .rev()
        .find(|&n| f64::from(1u32 << n) <= shrink)
        .unwrap_or(0);
    let s = 1u32 << level;
    let l = g.levels[level];
    let (lx0, ly0) = (x / s, y / s);
    let lx1 = (x + w).div_ceil(s).min(l.width);
    let ly1 = (y + h).div_ceil(s).min(l.height);
    let (rw, rh) = ((lx1 - lx0).max(1), (ly1 - ly0).max(1));
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
