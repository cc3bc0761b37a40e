//! Is a JPEG file complete? The decoder fills a truncated scan with grey without complaint, so
//! we walk the marker structure ourselves: every segment must be whole and the stream must reach
//! its end-of-image marker. And the image data must be long enough for the size the header
//! declares: a 333-byte file claiming 20000×20000 pixels is well-formed, and was decoded as
//! 449 MB of grey.

use std::io::{self, BufRead, ErrorKind, Read};

/// What the walk learned about the frame, for choosing how to decode it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    /// Progressive (SOF2, SOF6, SOF10, SOF14): every coefficient is kept until the last scan.
    pub progressive: bool,
    /// The 8×8 blocks the frame header declares, over all components.
    pub blocks: Option<u64>,
    /// The frame header's longer side, in pixels.
    pub longest_side: u16,
}

impl Frame {
    /// Bytes a decoder must hold for the whole frame's coefficients (two per sample of every
    /// block) when it cannot go row by row; 0 for a sequential frame.
    pub fn coefficient_bytes(&self) -> u64 {
        if self.progressive {
            self.blocks.unwrap_or(0).saturating_mul(64 * 2)
        } else {
            0
        }
    }
}

pub enum Incomplete {
    Io(io::Error),
    Truncated(&'static str),
    Damaged(&'static str),
}

impl From<io::Error> for Incomplete {
    fn from(e: io::Error) -> Self {
        if e.kind() == ErrorKind::UnexpectedEof {
            Incomplete::Truncated("the file ends inside a JPEG segment")
        } else {
            Incomplete::Io(e)
        }
    }
}

fn byte(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

/// Every 8×8 block of every component costs at least one bit of entropy-coded data in some
/// scan (a DC code; baseline needs two with the end-of-block). Data shorter than one bit per
/// this many blocks is a header lying about its size, not an image; real images, even of one
/// flat colour, stay well above it.
const BLOCKS_PER_DATA_BYTE: u64 = 16;

/// The 8×8 blocks a frame header (SOFn) declares, summed over its components; `None` when the
/// header is malformed or leaves the height to a later marker.
fn declared_blocks(sof: &[u8]) -> Option<u64> {
    let height = u64::from(u16::from_be_bytes([*sof.get(1)?, *sof.get(2)?]));
    let width = u64::from(u16::from_be_bytes([*sof.get(3)?, *sof.get(4)?]));
    let count = usize::from(*sof.get(5)?);
    let comps: Vec<(u64, u64)> = (0..count)
        .map(|i| {
            let f = *sof.get(6 + 3 * i + 1)?;
            Some((u64::from(f >> 4), u64::from(f & 15)))
        })
        .collect::<Option<_>>()?;
    let hmax = comps.iter().map(|c| c.0).max()?;
    let vmax = comps.iter().map(|c| c.1).max()?;
    if height == 0 || hmax == 0 || vmax == 0 {
        return None;
    }
    Some(
        comps
            .iter()
            .map(|&(h, v)| {
                (width * h).div_ceil(hmax).div_ceil(8) * (height * v).div_ceil(vmax).div_ceil(8)
            })
            .sum(),
    )
}

/// Reads the stream up to its EOI marker; fails if the file ends before it, or if its image
/// data is far shorter than its frame header's size needs.
pub fn check_complete(mut r: impl BufRead) -> Result<Frame, Incomplete> {
    let mut frame_seen = Frame::default();
    let mut blocks = None;
    let mut data_bytes = 0u64;
    if byte(&mut r)? != 0xFF || byte(&mut r)? != 0xD8 {
        return Err(Incomplete::Damaged("no JPEG start-of-image marker"));
    }
    // The marker that ended a scan, already read.
    let mut pending = None;
    loop {
        let m = match pending.take() {
            Some(m) => m,
            None => {
                if byte(&mut r)? != 0xFF {
                    return Err(Incomplete::Damaged(
                        "a JPEG segment is damaged (no marker where one must be)",
                    ));
                }
                // Markers may be preceded by any number of 0xFF fill bytes.
                let mut m = byte(&mut r)?;
                while m == 0xFF {
                    m = byte(&mut r)?;
                }
                m
            }
        };
        match m {
            0xD9 => {
                if blocks.is_some_and(|b: u64| data_bytes.saturating_mul(BLOCKS_PER_DATA_BYTE) < b)
                {
                    return Err(Incomplete::Truncated(
                        "its image data is far shorter than the size its header declares",
                    ));
                }
                frame_seen.blocks = blocks;
                return Ok(frame_seen);
            }
            0x01 | 0xD0..=0xD7 => continue,
            _ => {
                let len = u16::from_be_bytes([byte(&mut r)?, byte(&mut r)?]);
                if len < 2 {
                    return Err(Incomplete::Damaged(
                        "a JPEG segment has an impossible length",
                    ));
                }
                let skip = u64::from(len - 2);
                // A frame header (SOF0-15 but DHT, JPG and DAC) is kept to count its blocks.
                let frame = matches!(m, 0xC0..=0xCF) && !matches!(m, 0xC4 | 0xC8 | 0xCC);
                let mut kept = Vec::new();
                let read = if frame {
                    (&mut r).take(skip).read_to_end(&mut kept)? as u64
                } else {
                    io::copy(&mut (&mut r).take(skip), &mut io::sink())?
                };
                if read != skip {
                    return Err(Incomplete::Truncated("the file ends inside a JPEG segment"));
                }
                if frame && blocks.is_none() {
                    blocks = declared_blocks(&kept);
                    frame_seen.progressive = matches!(m, 0xC2 | 0xC6 | 0xCA | 0xCE);
                    if let [_, h1, h2, w1, w2, ..] = kept[..] {
                        frame_seen.longest_side =
                            u16::from_be_bytes([h1, h2]).max(u16::from_be_bytes([w1, w2]));
                    }
                }
                if m == 0xDA {
                    let (marker, bytes) = skip_entropy_data(&mut r)?;
                    data_bytes += bytes;
                    pending = Some(marker);
                }
            }
        }
    }
}

/// Skips entropy-coded data up to the next marker that is neither byte stuffing nor a restart
/// marker, and returns that marker's code and how many bytes were skipped.
fn skip_entropy_data(r: &mut impl BufRead) -> Result<(u8, u64), Incomplete> {
    let mut after_ff = false;
    let mut skipped = 0u64;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Err(Incomplete::Truncated("the file ends inside the image data"));
        }
        for (i, &b) in buf.iter().enumerate() {
            if after_ff {
                match b {
                    0x00 | 0xD0..=0xD7 => after_ff = false,
                    0xFF => {}
                    marker => {
                        r.consume(i + 1);
                        return Ok((marker, skipped + i as u64));
                    }
                }
            } else if b == 0xFF {
                after_ff = true;
            }
        }
        let n = buf.len();
        skipped += n as u64;
        r.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal_jpeg() -> Vec<u8> {
        let mut out = Vec::new();
        let pixels = vec![128u8; 40 * 30 * 3];
        jpeg_encoder::Encoder::new(&mut out, 80)
            .encode(&pixels, 40, 30, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn complete_stream_passes_and_every_truncation_fails() {
        let jpeg = minimal_jpeg();
        assert!(check_complete(&jpeg[..]).is_ok());
        for cut in 0..jpeg.len() {
            assert!(
                check_complete(&jpeg[..cut]).is_err(),
                "cut at {cut} of {} passed",
                jpeg.len()
            );
        }
    }

    /// A header claiming far more pixels than the data holds: its SOF0 size rewritten.
    fn lying_about_its_size(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
        let mut out = jpeg.to_vec();
        let sof = out.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
        out[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
        out[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
        out
    }

    #[test]
    fn a_header_declaring_far_more_than_its_data_is_refused() {
        let jpeg = minimal_jpeg();
        let bomb = lying_about_its_size(&jpeg, 20000, 20000);
        assert!(matches!(
            check_complete(&bomb[..]),
            Err(Incomplete::Truncated(_))
        ));
        // A flat image of one colour, the most compressible there is, still passes at its
        // true size, large or small.
        for (w, h) in [(40u16, 30u16), (2000, 1500), (4000, 4000)] {
            let mut flat = Vec::new();
            jpeg_encoder::Encoder::new(&mut flat, 50)
                .encode(
                    &vec![200u8; usize::from(w) * usize::from(h)],
                    w,
                    h,
                    jpeg_encoder::ColorType::Luma,
                )
                .unwrap();
            assert!(check_complete(&flat[..]).is_ok(), "{w}×{h} flat");
        }
    }

    #[test]
    fn the_frame_says_whether_it_is_progressive_and_how_large() {
        let frame = check_complete(&minimal_jpeg()[..]).ok().unwrap();
        assert!(!frame.progressive);
        assert_eq!(frame.longest_side, 40);
        assert_eq!(frame.coefficient_bytes(), 0);
        let mut progressive = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut progressive, 80);
        encoder.set_progressive(true);
        encoder
            .encode(&[90u8; 48 * 32], 48, 32, jpeg_encoder::ColorType::Luma)
            .unwrap();
        let frame = check_complete(&progressive[..]).ok().unwrap();
        assert!(frame.progressive);
        assert_eq!(frame.longest_side, 48);
        // 6 × 4 blocks of one grey component, 64 coefficients of 2 bytes each.
        assert_eq!(frame.coefficient_bytes(), 6 * 4 * 128);
    }

    #[test]
    fn trailing_bytes_after_the_end_marker_are_allowed() {
        let mut jpeg = minimal_jpeg();
        jpeg.extend_from_slice(b"camera trailer");
        assert!(check_complete(&jpeg[..]).is_ok());
    }
}
