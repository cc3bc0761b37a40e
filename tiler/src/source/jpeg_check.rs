//! Is a JPEG file complete? The decoder fills a truncated scan with grey without complaint, so
//! we walk the marker structure ourselves: every segment must be whole and the stream must reach
//! its end-of-image marker.

use std::io::{self, BufRead, ErrorKind, Read};

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

/// Reads the stream up to its EOI marker; fails if the file ends before it.
pub fn check_complete(mut r: impl BufRead) -> Result<(), Incomplete> {
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
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {
                let len = u16::from_be_bytes([byte(&mut r)?, byte(&mut r)?]);
                if len < 2 {
                    return Err(Incomplete::Damaged(
                        "a JPEG segment has an impossible length",
                    ));
                }
                let skip = u64::from(len - 2);
                if io::copy(&mut (&mut r).take(skip), &mut io::sink())? != skip {
                    return Err(Incomplete::Truncated("the file ends inside a JPEG segment"));
                }
                if m == 0xDA {
                    pending = Some(skip_entropy_data(&mut r)?);
                }
            }
        }
    }
}

/// Skips entropy-coded data up to the next marker that is neither byte stuffing nor a restart
/// marker, and returns that marker's code.
fn skip_entropy_data(r: &mut impl BufRead) -> Result<u8, Incomplete> {
    let mut after_ff = false;
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
                        return Ok(marker);
                    }
                }
            } else if b == 0xFF {
                after_ff = true;
            }
        }
        let n = buf.len();
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

    #[test]
    fn trailing_bytes_after_the_end_marker_are_allowed() {
        let mut jpeg = minimal_jpeg();
        jpeg.extend_from_slice(b"camera trailer");
        assert!(check_complete(&jpeg[..]).is_ok());
    }
}
