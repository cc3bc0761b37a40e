//! Resampling 8-bit grey or RGB pixels to another size, for thumbnails and rendered IIIF
//! requests (the pyramid's own levels use the exact 2×2 mean of `downsample`).

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// Resamples `pixels` (`width × height`, 1 or 3 channels of 8 bits) to `out_w × out_h` with a
/// Lanczos-3 filter; returns them unchanged if the size is the same.
pub fn lanczos(
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    out_w: u32,
    out_h: u32,
    channels: usize,
) -> Vec<u8> {
    if (out_w, out_h) == (width, height) {
        return pixels;
    }
    let pixel_type = if channels == 1 {
        PixelType::U8
    } else {
        PixelType::U8x3
    };
    let src =
        Image::from_vec_u8(width, height, pixels, pixel_type).expect("buffer matches its size");
    let mut dst = Image::new(out_w, out_h, pixel_type);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .expect("same pixel type on both sides");
    dst.into_vec()
}
