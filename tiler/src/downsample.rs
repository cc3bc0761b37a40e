//! Halving a band of rows: each output pixel is the mean of a 2×2 block (the "mean" shrink of
//! libvips' dzsave). With an exact factor of two there is no phase drift between levels, and a
//! band of even height halves without needing rows of the next band, which is what lets the
//! pyramid be built while the original streams in. A last odd column or row is averaged with
//! itself (edge replication), so level sizes round up as the IIIF tile model expects.

/// Halves `src` (`width × height` pixels of `channels` bytes) into `dst`, which is resized to
/// `ceil(width/2) × ceil(height/2)` pixels.
pub fn halve(src: &[u8], width: usize, height: usize, channels: usize, dst: &mut Vec<u8>) {
    let (ow, oh) = (width.div_ceil(2), height.div_ceil(2));
    let row = width * channels;
    dst.resize(ow * oh * channels, 0);
    for (oy, out) in dst.chunks_exact_mut(ow * channels).enumerate() {
        let r0 = &src[2 * oy * row..][..row];
        let r1 = if 2 * oy + 1 < height {
            &src[(2 * oy + 1) * row..][..row]
        } else {
            r0
        };
        match channels {
            1 => halve_row::<1>(r0, r1, out),
            3 => halve_row::<3>(r0, r1, out),
            _ => unreachable!("pyramids are grey or RGB"),
        }
    }
}

fn halve_row<const C: usize>(r0: &[u8], r1: &[u8], out: &mut [u8]) {
    let pairs = r0.len() / (2 * C);
    for ((a, b), o) in r0
        .chunks_exact(2 * C)
        .zip(r1.chunks_exact(2 * C))
        .zip(out.chunks_exact_mut(C))
    {
        for k in 0..C {
            let sum = u16::from(a[k]) + u16::from(a[k + C]) + u16::from(b[k]) + u16::from(b[k + C]);
            o[k] = ((sum + 2) >> 2) as u8;
        }
    }
    if !r0.len().is_multiple_of(2 * C) {
        let (a, b) = (&r0[pairs * 2 * C..], &r1[pairs * 2 * C..]);
        let o = &mut out[pairs * C..];
        for k in 0..C {
            o[k] = ((u16::from(a[k]) + u16::from(b[k]) + 1) >> 1) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_blocks_and_replicates_odd_edges() {
        // 3×3 grey: the last column and row pair with themselves.
        let src = [0, 4, 9, 8, 12, 1, 100, 200, 50];
        let mut dst = Vec::new();
        halve(&src, 3, 3, 1, &mut dst);
        assert_eq!(dst, vec![6, 5, 150, 50]);
    }

    #[test]
    fn rgb_channels_stay_apart() {
        let src = [255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255];
        let mut dst = Vec::new();
        halve(&src, 2, 2, 3, &mut dst);
        assert_eq!(dst, vec![128, 0, 128]);
    }
}
