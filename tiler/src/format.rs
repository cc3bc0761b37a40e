//! The byte layout of a pyramid file, version 1 (all integers little-endian).
//!
//! ```text
//! 0    magic            8  \x89 T D P \r \n \x1a \n  (catches text-mode and 7-bit mangling)
//! 8    version          2  1
//! 10   tile format      1  1 = baseline JPEG
//! 11   channels         1  1 (grey) or 3 (sRGB)
//! 12   header length    4  bytes from 0 to the end of the header checksum = start of tile data
//! 16   width, height    4+4
//! 24   tile size        4
//! 28   level count      4
//! 32   tile count       8
//! 40   file length      8  the whole file: a shorter or longer file is damaged
//! 48   quality          1  JPEG quality the tiles were encoded with
//! 49   reserved         7  zero
//! 56   level table      24 per level: width 4, height 4, cols 4, rows 4, first tile 8
//! ..   tile index       16 per tile: offset 8, length 4, CRC-32C 4 (level 0 row-major, then level 1, …)
//! ..   header checksum  4  CRC-32C of every byte before it
//! ..   tile data        JPEG streams at the offsets the index gives, in any order
//! ```
//!
//! The header and index sit at the front so that one read opens the file; their size is known
//! from the geometry, so the writer reserves them before it writes any tile.

use crate::geometry::{Geometry, GeometryError, Level, MAX_LEVELS};

pub const MAGIC: [u8; 8] = *b"\x89TDP\r\n\x1a\n";
pub const VERSION: u16 = 1;
pub const TILE_FORMAT_JPEG: u8 = 1;
pub const FIXED_LEN: usize = 56;
pub const LEVEL_ENTRY_LEN: usize = 24;
pub const INDEX_ENTRY_LEN: usize = 16;
pub const CHECKSUM_LEN: usize = 4;
/// A tile larger than this is damage, not a JPEG of at most 4096² pixels at any sane quality.
pub const MAX_TILE_BYTES: u32 = 64 << 20;

/// Where one tile's bytes are and what they must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TileEntry {
    pub offset: u64,
    pub length: u32,
    pub crc32c: u32,
}

/// Everything the header and index say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub geometry: Geometry,
    pub channels: u8,
    pub quality: u8,
    pub file_len: u64,
    pub index: Vec<TileEntry>,
}

/// What is wrong with a header, field by field. The reader adds the file's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("not a pyramid file (bad magic bytes)")]
    BadMagic,
    #[error("pyramid format version {0} is not supported (this build reads version {VERSION})")]
    UnsupportedVersion(u16),
    #[error("tile format {0} is unknown (1 = JPEG)")]
    UnknownTileFormat(u8),
    #[error("channel count {0} is invalid (1 or 3)")]
    Channels(u8),
    #[error("impossible geometry: {0}")]
    Geometry(#[from] GeometryError),
    #[error("header says {stored} bytes but its geometry needs {expected}")]
    HeaderLength { stored: u64, expected: u64 },
    #[error("header checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("field {field} is {stored} but the geometry gives {expected}")]
    Field {
        field: &'static str,
        stored: u64,
        expected: u64,
    },
    #[error(
        "index entry of tile {tile} (level {level}, col {col}, row {row}) is invalid: {problem}"
    )]
    IndexEntry {
        tile: u64,
        level: usize,
        col: u32,
        row: u32,
        problem: IndexProblem,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IndexProblem {
    #[error("length is zero")]
    Empty,
    #[error("length {0} exceeds the {MAX_TILE_BYTES}-byte limit")]
    TooLong(u32),
    #[error("bytes {start}..{end} lie outside the tile data area {data_start}..{file_len}")]
    OutOfBounds {
        start: u64,
        end: u64,
        data_start: u64,
        file_len: u64,
    },
}

/// Size of the fixed part, level table, index and checksum for a geometry.
pub fn header_len(geometry: &Geometry) -> u64 {
    (FIXED_LEN + LEVEL_ENTRY_LEN * geometry.levels.len()) as u64
        + INDEX_ENTRY_LEN as u64 * geometry.tile_count()
        + CHECKSUM_LEN as u64
}

impl Header {
    pub fn data_start(&self) -> u64 {
        header_len(&self.geometry)
    }

    /// Serialises the header, index and checksum.
    pub fn encode(&self) -> Vec<u8> {
        let g = &self.geometry;
        let len = header_len(g) as usize;
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.push(TILE_FORMAT_JPEG);
        b.push(self.channels);
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(&g.width.to_le_bytes());
        b.extend_from_slice(&g.height.to_le_bytes());
        b.extend_from_slice(&g.tile_size.to_le_bytes());
        b.extend_from_slice(&(g.levels.len() as u32).to_le_bytes());
        b.extend_from_slice(&g.tile_count().to_le_bytes());
        b.extend_from_slice(&self.file_len.to_le_bytes());
        b.push(self.quality);
        b.extend_from_slice(&[0u8; 7]);
        for l in &g.levels {
            for v in [l.width, l.height, l.cols, l.rows] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&l.first_tile.to_le_bytes());
        }
        for e in &self.index {
            b.extend_from_slice(&e.offset.to_le_bytes());
            b.extend_from_slice(&e.length.to_le_bytes());
            b.extend_from_slice(&e.crc32c.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(b.len(), len);
        b
    }

    /// Reads the fixed part and returns the total header length it announces, after checking
    /// that it is exactly what its own geometry needs. `fixed` must hold [`FIXED_LEN`] bytes.
    pub fn announced_len(fixed: &[u8]) -> Result<u64, HeaderError> {
        let f = Fixed::parse(fixed)?;
        let geometry = Geometry::new(f.width, f.height, f.tile_size)?;
        let expected = header_len(&geometry);
        if u64::from(f.header_len) != expected {
            return Err(HeaderError::HeaderLength {
                stored: u64::from(f.header_len),
                expected,
            });
        }
        Ok(expected)
    }

    /// Parses and validates a whole header (as long as [`Header::announced_len`] said).
    pub fn decode(bytes: &[u8]) -> Result<Header, HeaderError> {
        let f = Fixed::parse(bytes)?;
        let geometry = Geometry::new(f.width, f.height, f.tile_size)?;
        let expected = header_len(&geometry);
        if bytes.len() as u64 != expected {
            return Err(HeaderError::HeaderLength {
                stored: bytes.len() as u64,
                expected,
            });
        }
        let body = &bytes[..bytes.len() - CHECKSUM_LEN];
        let stored = u32_at(bytes, bytes.len() - CHECKSUM_LEN);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(HeaderError::Checksum { stored, computed });
        }
        check_field(
            "level count",
            f.level_count.into(),
            geometry.levels.len() as u64,
        )?;
        check_field("tile count", f.tile_count, geometry.tile_count())?;
        let mut at = FIXED_LEN;
        for level in &geometry.levels {
            let stored = Level {
                width: u32_at(bytes, at),
                height: u32_at(bytes, at + 4),
                cols: u32_at(bytes, at + 8),
                rows: u32_at(bytes, at + 12),
                first_tile: u64_at(bytes, at + 16),
            };
            check_field("level width", stored.width.into(), level.width.into())?;
            check_field("level height", stored.height.into(), level.height.into())?;
            check_field("level columns", stored.cols.into(), level.cols.into())?;
            check_field("level rows", stored.rows.into(), level.rows.into())?;
            check_field("level first tile", stored.first_tile, level.first_tile)?;
            at += LEVEL_ENTRY_LEN;
        }
        let data_start = expected;
        let mut index = Vec::with_capacity(geometry.tile_count() as usize);
        for tile in 0..geometry.tile_count() {
            let e = TileEntry {
                offset: u64_at(bytes, at),
                length: u32_at(bytes, at + 8),
                crc32c: u32_at(bytes, at + 12),
            };
            at += INDEX_ENTRY_LEN;
            let problem = if e.length == 0 {
                Some(IndexProblem::Empty)
            } else if e.length > MAX_TILE_BYTES {
                Some(IndexProblem::TooLong(e.length))
            } else {
                let end = e.offset.saturating_add(u64::from(e.length));
                (e.offset < data_start || end > f.file_len).then_some(IndexProblem::OutOfBounds {
                    start: e.offset,
                    end,
                    data_start,
                    file_len: f.file_len,
                })
            };
            if let Some(problem) = problem {
                let (level, col, row) = geometry.tile_at(tile).unwrap_or_default();
                return Err(HeaderError::IndexEntry {
                    tile,
                    level,
                    col,
                    row,
                    problem,
                });
            }
            index.push(e);
        }
        Ok(Header {
            geometry,
            channels: f.channels,
            quality: f.quality,
            file_len: f.file_len,
            index,
        })
    }
}

/// The fixed-size front of the header.
struct Fixed {
    channels: u8,
    header_len: u32,
    width: u32,
    height: u32,
    tile_size: u32,
    level_count: u32,
    tile_count: u64,
    file_len: u64,
    quality: u8,
}

impl Fixed {
    fn parse(b: &[u8]) -> Result<Fixed, HeaderError> {
        assert!(b.len() >= FIXED_LEN, "caller reads the fixed part first");
        if b[..8] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        if b[10] != TILE_FORMAT_JPEG {
            return Err(HeaderError::UnknownTileFormat(b[10]));
        }
        if b[11] != 1 && b[11] != 3 {
            return Err(HeaderError::Channels(b[11]));
        }
        let f = Fixed {
            channels: b[11],
            header_len: u32_at(b, 12),
            width: u32_at(b, 16),
            height: u32_at(b, 20),
            tile_size: u32_at(b, 24),
            level_count: u32_at(b, 28),
            tile_count: u64_at(b, 32),
            file_len: u64_at(b, 40),
            quality: b[48],
        };
        if f.level_count as usize > MAX_LEVELS {
            return Err(HeaderError::Field {
                field: "level count",
                stored: f.level_count.into(),
                expected: MAX_LEVELS as u64,
            });
        }
        Ok(f)
    }
}

fn check_field(field: &'static str, stored: u64, expected: u64) -> Result<(), HeaderError> {
    if stored == expected {
        Ok(())
    } else {
        Err(HeaderError::Field {
            field,
            stored,
            expected,
        })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        let geometry = Geometry::new(600, 300, 256).unwrap();
        let data_start = header_len(&geometry);
        let index: Vec<_> = (0..geometry.tile_count())
            .map(|i| TileEntry {
                offset: data_start + i * 10,
                length: 10,
                crc32c: i as u32,
            })
            .collect();
        Header {
            file_len: data_start + 10 * geometry.tile_count(),
            geometry,
            channels: 3,
            quality: 85,
            index,
        }
    }

    #[test]
    fn round_trips() {
        let h = sample();
        let bytes = h.encode();
        assert_eq!(
            Header::announced_len(&bytes[..FIXED_LEN]),
            Ok(bytes.len() as u64)
        );
        assert_eq!(Header::decode(&bytes), Ok(h));
    }

    #[test]
    fn every_single_byte_flip_is_caught() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(
                Header::decode(&bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn index_entry_outside_data_area_is_named() {
        let mut h = sample();
        h.index[6].offset = 3; // inside the header
        let err = Header::decode(&h.encode()).unwrap_err();
        assert!(
            matches!(
                err,
                HeaderError::IndexEntry {
                    tile: 6,
                    level: 1,
                    col: 0,
                    row: 0,
                    problem: IndexProblem::OutOfBounds { .. }
                }
            ),
            "{err}"
        );
    }
}
