//! The thumbnail: the smallest pyramid level that is still at least as large as the thumbnail,
//! resized with a Lanczos filter so that its longest side is exactly the thumbnail size.

use crate::resample;

/// Longest side of a thumbnail, in pixels.
pub const DEFAULT_THUMBNAIL_SIZE: u32 = 256;

/// Which level feeds the thumbnail: the last one whose longest side is still ≥ `size`.
pub fn source_level(level_sizes: &[(u32, u32)], size: u32) -> usize {
    level_sizes
        .iter()
        .rposition(|&(w, h)| w.max(h) >= size)
        .unwrap_or(0)
}

/// Size of the thumbnail of a `width × height` image: longest side `size`, never enlarged.
pub fn dimensions(width: u32, height: u32, size: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= size {
        return (width, height);
    }
    let scale = |v: u32| {
        ((u64::from(v) * u64::from(size) + u64::from(longest) / 2) / u64::from(longest)).max(1)
            as u32
    };
    (scale(width), scale(height))
}

/// Resizes `pixels` (`width × height`, 1 or 3 channels) to the thumbnail size.
pub fn resize(
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    channels: usize,
    size: u32,
) -> (Vec<u8>, u32, u32) {
    let (tw, th) = dimensions(width, height, size);
    (
        resample::lanczos(pixels, width, height, tw, th, channels),
        tw,
        th,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_side_becomes_the_size_and_small_images_stay() {
        assert_eq!(dimensions(10_000, 5_000, 256), (256, 128));
        assert_eq!(dimensions(300, 7_000, 256), (11, 256));
        assert_eq!(dimensions(100, 50, 256), (100, 50));
        assert_eq!(dimensions(100_000, 1, 256), (256, 1));
    }

    #[test]
    fn source_level_is_the_smallest_level_still_large_enough() {
        let sizes = [(2000, 1000), (1000, 500), (500, 250), (250, 125)];
        assert_eq!(source_level(&sizes, 256), 2);
        assert_eq!(source_level(&[(100, 80)], 256), 0);
    }
}
