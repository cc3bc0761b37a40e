//! Reading a pyramid file: open validates the header and index once; each tile is then one
//! positional read, checked against its CRC-32C before it is handed out.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::{Header, HeaderError, TileEntry, FIXED_LEN};
use crate::geometry::Geometry;

/// What is wrong with a pyramid file, or with reading it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: file is truncated ({actual} bytes, {what} needs {expected})")]
    Truncated {
        path: PathBuf,
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: file has {extra} unexpected bytes after the last tile")]
    TrailingBytes { path: PathBuf, extra: u64 },
    #[error("{path}: {source}")]
    Header { path: PathBuf, source: HeaderError },
    #[error("{path}: no tile at level {level}, col {col}, row {row}")]
    NoSuchTile {
        path: PathBuf,
        level: usize,
        col: u32,
        row: u32,
    },
    #[error("{path}: tile (level {level}, col {col}, row {row}) is corrupt: {problem}")]
    CorruptTile {
        path: PathBuf,
        level: usize,
        col: u32,
        row: u32,
        problem: TileProblem,
    },
}

impl ReadError {
    /// True when the disk failed to read (the operating system returned an error).
    pub fn is_io(&self) -> bool {
        matches!(self, ReadError::Io { .. })
    }

    /// True when the bytes on the disk are wrong (as opposed to the disk failing to read them):
    /// the replica is suspect, the disk is not necessarily failing.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            ReadError::Truncated { .. }
                | ReadError::TrailingBytes { .. }
                | ReadError::Header { .. }
                | ReadError::CorruptTile { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileProblem {
    #[error("checksum mismatch (index says {stored:08x}, bytes give {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("not a complete JPEG stream (no start or end marker)")]
    NotJpeg,
    #[error("JPEG does not decode: {0}")]
    Undecodable(String),
    #[error("decodes to {got_w}×{got_h} pixels, the geometry says {want_w}×{want_h}")]
    WrongSize {
        got_w: u32,
        got_h: u32,
        want_w: u32,
        want_h: u32,
    },
}

/// An open, validated pyramid file.
#[derive(Debug)]
pub struct PyramidReader {
    path: PathBuf,
    file: File,
    /// Shared with whoever keeps it while the file is closed (see [`PyramidReader::reopen`]).
    header: Arc<Header>,
}

impl PyramidReader {
    pub fn open(path: &Path) -> Result<PyramidReader, ReadError> {
        let io_err = |source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let actual = file.metadata().map_err(io_err)?.len();
        let truncated = |what, expected| ReadError::Truncated {
            path: path.to_path_buf(),
            what,
            expected,
            actual,
        };
        if actual < FIXED_LEN as u64 {
            return Err(truncated("the fixed header", FIXED_LEN as u64));
        }
        let header_err = |source| ReadError::Header {
            path: path.to_path_buf(),
            source,
        };
        let mut fixed = [0u8; FIXED_LEN];
        file.read_exact_at(&mut fixed, 0).map_err(io_err)?;
        let len = Header::announced_len(&fixed).map_err(header_err)?;
        if actual < len {
            return Err(truncated("the header and tile index", len));
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0).map_err(io_err)?;
        let header = Header::decode(&bytes).map_err(header_err)?;
        if actual < header.file_len {
            return Err(truncated("the tile data", header.file_len));
        }
        if actual > header.file_len {
            return Err(ReadError::TrailingBytes {
                path: path.to_path_buf(),
                extra: actual - header.file_len,
            });
        }
        Ok(PyramidReader {
            path: path.to_path_buf(),
            file,
            header: Arc::new(header),
        })
    }

    /// Opens again a pyramid whose header [`PyramidReader::open`] read and checked, for a
    /// caller that keeps headers but not files (a node may hold more pyramids than a process
    /// may keep open): only that the file still has the length its header says is checked.
    pub fn reopen(path: &Path, header: Arc<Header>) -> Result<PyramidReader, ReadError> {
        let io_err = |source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let actual = file.metadata().map_err(io_err)?.len();
        if actual < header.file_len {
            return Err(ReadError::Truncated {
                path: path.to_path_buf(),
                what: "the tile data",
                expected: header.file_len,
                actual,
            });
        }
        if actual > header.file_len {
            return Err(ReadError::TrailingBytes {
                path: path.to_path_buf(),
                extra: actual - header.file_len,
            });
        }
        Ok(PyramidReader {
            path: path.to_path_buf(),
            file,
            header,
        })
    }

    /// The header, to keep while the file is closed.
    pub fn shared_header(&self) -> Arc<Header> {
        self.header.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn geometry(&self) -> &Geometry {
        &self.header.geometry
    }

    /// Where a tile is stored, without reading it.
    pub fn entry(&self, level: usize, col: u32, row: u32) -> Result<TileEntry, ReadError> {
        self.header
            .geometry
            .tile_index(level, col, row)
            .map(|i| self.header.index[i as usize])
            .ok_or_else(|| ReadError::NoSuchTile {
                path: self.path.clone(),
                level,
                col,
                row,
            })
    }

    /// The JPEG bytes of one tile: one positional read, checked against the index checksum.
    pub fn read_tile(&self, level: usize, col: u32, row: u32) -> Result<Vec<u8>, ReadError> {
        let e = self.entry(level, col, row)?;
        let mut buf = vec![0u8; e.length as usize];
        self.file
            .read_exact_at(&mut buf, e.offset)
            .map_err(|source| match source.kind() {
                // The file shrank under us after open.
                io::ErrorKind::UnexpectedEof => ReadError::Truncated {
                    path: self.path.clone(),
                    what: "this tile",
                    expected: e.offset + u64::from(e.length),
                    actual: self.file.metadata().map(|m| m.len()).unwrap_or(0),
                },
                _ => ReadError::Io {
                    path: self.path.clone(),
                    source,
                },
            })?;
        let computed = crc32c::crc32c(&buf);
        if computed != e.crc32c {
            return Err(self.corrupt(
                level,
                col,
                row,
                TileProblem::Checksum {
                    stored: e.crc32c,
                    computed,
                },
            ));
        }
        Ok(buf)
    }

    fn corrupt(&self, level: usize, col: u32, row: u32, problem: TileProblem) -> ReadError {
        ReadError::CorruptTile {
            path: self.path.clone(),
            level,
            col,
            row,
            problem,
        }
    }

    /// Reads every tile, checks its checksum, that it is a whole JPEG stream, and that it decodes
    /// to the size the geometry gives. Calls `progress(done, total)` as it goes and returns the
    /// first problem found.
    pub fn verify(&self, mut progress: impl FnMut(u64, u64)) -> Result<(), ReadError> {
        let g = &self.header.geometry;
        let total = g.tile_count();
        let mut done = 0;
        for (level, l) in g.levels.iter().enumerate() {
            for row in 0..l.rows {
                for col in 0..l.cols {
                    let jpeg = self.read_tile(level, col, row)?;
                    let (want_w, want_h) = g.tile_dimensions(level, col, row).expect("in range");
                    check_jpeg(&jpeg, want_w, want_h)
                        .map_err(|p| self.corrupt(level, col, row, p))?;
                    done += 1;
                    progress(done, total);
                }
            }
        }
        Ok(())
    }
}

fn check_jpeg(jpeg: &[u8], want_w: u32, want_h: u32) -> Result<(), TileProblem> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) || !jpeg.ends_with(&[0xFF, 0xD9]) {
        return Err(TileProblem::NotJpeg);
    }
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .map_err(|e| TileProblem::Undecodable(e.to_string()))?;
    if (img.width(), img.height()) != (want_w, want_h) {
        return Err(TileProblem::WrongSize {
            got_w: img.width(),
            got_h: img.height(),
            want_w,
            want_h,
        });
    }
    Ok(())
}
