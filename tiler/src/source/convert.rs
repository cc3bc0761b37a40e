//! Turning decoded samples of any supported layout and depth into the 8-bit grey or sRGB rows
//! the tiler encodes. Alpha is composited over white, because a JPEG tile has no alpha and
//! museum scans with transparency are cut-outs meant to sit on a light page.

/// The sample layout of decoded pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Gray,
    GrayAlpha,
    Rgb,
    Rgba,
    /// Ink coverage, 0 = no ink; converted without a colour profile.
    Cmyk,
    /// JFIF YCbCr (JPEG-compressed TIFFs hand it out unconverted).
    YCbCr,
}

impl Layout {
    pub fn samples(self) -> usize {
        match self {
            Layout::Gray => 1,
            Layout::GrayAlpha => 2,
            Layout::Rgb | Layout::YCbCr => 3,
            Layout::Rgba | Layout::Cmyk => 4,
        }
    }

    /// Channels of the output: 1 (grey) or 3 (RGB).
    pub fn out_channels(self) -> usize {
        match self {
            Layout::Gray | Layout::GrayAlpha => 1,
            Layout::Rgb | Layout::Rgba | Layout::Cmyk | Layout::YCbCr => 3,
        }
    }
}

/// A sample type that can be reduced to 8 bits.
pub trait Sample: Copy {
    fn to_u8(self) -> u8;
}

impl Sample for u8 {
    fn to_u8(self) -> u8 {
        self
    }
}

impl Sample for u16 {
    fn to_u8(self) -> u8 {
        // Rounds to nearest: 65535 → 255, 128 → 0, 129 → 1 (the same as (v + 128) / 257).
        ((u32::from(self) * 255 + 32_767) / 65_535) as u8
    }
}

impl Sample for f32 {
    fn to_u8(self) -> u8 {
        (self.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
    }
}

fn over_white(v: u8, alpha: u8) -> u8 {
    let (v, a) = (u32::from(v), u32::from(alpha));
    ((v * a + 255 * (255 - a) + 127) / 255) as u8
}

/// Converts `pixels` whole pixels from `src` (in `layout`) into `dst` (8-bit, out channels).
pub fn convert<T: Sample>(layout: Layout, src: &[T], dst: &mut [u8]) {
    let n = layout.samples();
    let pixels = src.chunks_exact(n);
    match layout {
        Layout::Gray => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s.to_u8();
            }
        }
        Layout::GrayAlpha => {
            for (d, p) in dst.iter_mut().zip(pixels) {
                *d = over_white(p[0].to_u8(), p[1].to_u8());
            }
        }
        Layout::Rgb => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s.to_u8();
            }
        }
        Layout::Rgba => {
            for (d, p) in dst.chunks_exact_mut(3).zip(pixels) {
                let a = p[3].to_u8();
                for k in 0..3 {
                    d[k] = over_white(p[k].to_u8(), a);
                }
            }
        }
        Layout::Cmyk => {
            for (d, p) in dst.chunks_exact_mut(3).zip(pixels) {
                let k = 255 - u32::from(p[3].to_u8());
                for c in 0..3 {
                    d[c] = (((255 - u32::from(p[c].to_u8())) * k + 127) / 255) as u8;
                }
            }
        }
        Layout::YCbCr => {
            for (d, p) in dst.chunks_exact_mut(3).zip(pixels) {
                let y = f32::from(p[0].to_u8());
                let cb = f32::from(p[1].to_u8()) - 128.0;
                let cr = f32::from(p[2].to_u8()) - 128.0;
                let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
                d[0] = clamp(y + 1.402 * cr);
                d[1] = clamp(y - 0.344_136 * cb - 0.714_136 * cr);
                d[2] = clamp(y + 1.772 * cb);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_rounds_to_nearest() {
        assert_eq!(
            [0u16, 128, 129, 32_896, 65_535].map(Sample::to_u8),
            [0, 0, 1, 128, 255]
        );
    }

    #[test]
    fn alpha_composites_over_white() {
        let mut out = [0u8; 6];
        convert(Layout::Rgba, &[10u8, 20, 30, 255, 0, 0, 0, 0], &mut out);
        assert_eq!(out, [10, 20, 30, 255, 255, 255]);
        let mut grey = [0u8; 1];
        convert(Layout::GrayAlpha, &[0u8, 128], &mut grey);
        assert_eq!(grey, [127]);
    }

    #[test]
    fn cmyk_without_ink_is_white_and_full_black_is_black() {
        let mut out = [0u8; 6];
        convert(Layout::Cmyk, &[0u8, 0, 0, 0, 0, 0, 0, 255], &mut out);
        assert_eq!(out, [255, 255, 255, 0, 0, 0]);
    }
}
