//! JPEG encoding of tiles and thumbnails with `jpeg-encoder` (baseline, 4:2:0 below quality 90,
//! the same defaults as libjpeg's `cjpeg`).

use jpeg_encoder::{ColorType, Encoder, EncodingError};

/// Encodes `pixels` (`width × height`, 1 or 3 channels) as a baseline JPEG.
pub fn jpeg(
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: usize,
    quality: u8,
) -> Result<Vec<u8>, EncodingError> {
    let color = if channels == 1 {
        ColorType::Luma
    } else {
        ColorType::Rgb
    };
    // Tiles compress roughly 8:1 at the qualities we use; start near that to avoid regrowing.
    let mut out = Vec::with_capacity(pixels.len() / 6 + 1024);
    // Tile sides are at most MAX_TILE_SIZE and thumbnails smaller still, well inside u16.
    Encoder::new(&mut out, quality).encode(pixels, width as u16, height as u16, color)?;
    Ok(out)
}
