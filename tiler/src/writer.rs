//! Writing a pyramid file: tiles are appended in whatever order they are produced after a
//! reserved header, and the header and index are written last, then the file is committed
//! atomically.

use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::atomic::AtomicFile;
use crate::format::{self, Header, TileEntry, MAX_TILE_BYTES};
use crate::geometry::Geometry;

/// Why a pyramid file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "tile (level {level}, col {col}, row {row}) does not exist in a {width}×{height} pyramid"
    )]
    NoSuchTile {
        level: usize,
        col: u32,
        row: u32,
        width: u32,
        height: u32,
    },
    #[error("tile (level {level}, col {col}, row {row}) was written twice")]
    Duplicate { level: usize, col: u32, row: u32 },
    #[error("tile (level {level}, col {col}, row {row}) is {len} bytes, over the {MAX_TILE_BYTES}-byte limit")]
    TileTooLarge {
        level: usize,
        col: u32,
        row: u32,
        len: usize,
    },
    #[error("{missing} tiles were never written (first: level {level}, col {col}, row {row})")]
    Incomplete {
        missing: u64,
        level: usize,
        col: u32,
        row: u32,
    },
}

/// An open pyramid file being filled; dropped without [`PyramidWriter::finish`] it leaves nothing.
pub struct PyramidWriter {
    geometry: Geometry,
    channels: u8,
    quality: u8,
    out: BufWriter<AtomicFile>,
    position: u64,
    index: Vec<Option<TileEntry>>,
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

/// Large writes: tiles arrive in bursts of a band and the disk likes big sequential writes.
const WRITE_BUFFER: usize = 1 << 20;

impl PyramidWriter {
    pub fn create(
        path: &Path,
        geometry: Geometry,
        channels: u8,
        quality: u8,
    ) -> Result<Self, WriteError> {
        let io_err = |source| WriteError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = AtomicFile::create(path).map_err(io_err)?;
        let position = format::header_len(&geometry);
        file.file()
            .seek(SeekFrom::Start(position))
            .map_err(io_err)?;
        let tiles = geometry.tile_count() as usize;
        Ok(PyramidWriter {
            geometry,
            channels,
            quality,
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            position,
            index: vec![None; tiles],
        })
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    fn io_err(&self, source: io::Error) -> WriteError {
        WriteError::Io {
            path: self.out.get_ref().target().to_path_buf(),
            source,
        }
    }

    pub fn add_tile(
        &mut self,
        level: usize,
        col: u32,
        row: u32,
        jpeg: &[u8],
    ) -> Result<(), WriteError> {
        let Some(i) = self.geometry.tile_index(level, col, row) else {
            return Err(WriteError::NoSuchTile {
                level,
                col,
                row,
                width: self.geometry.width,
                height: self.geometry.height,
            });
        };
        if self.index[i as usize].is_some() {
            return Err(WriteError::Duplicate { level, col, row });
        }
        let length = u32::try_from(jpeg.len())
            .ok()
            .filter(|l| (1..=MAX_TILE_BYTES).contains(l))
            .ok_or(WriteError::TileTooLarge {
                level,
                col,
                row,
                len: jpeg.len(),
            })?;
        self.out.write_all(jpeg).map_err(|e| self.io_err(e))?;
        self.index[i as usize] = Some(TileEntry {
            offset: self.position,
            length,
            crc32c: crc32c::crc32c(jpeg),
        });
        self.position += u64::from(length);
        Ok(())
    }

    /// Bytes written so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.position
    }

    /// Writes the header, flushes everything to the disk, and returns the file, still under its
    /// temporary name, for the caller to commit (possibly together with other files).
    pub fn finish(mut self) -> Result<AtomicFile, WriteError> {
        if let Some(first) = self.index.iter().position(Option::is_none) {
            let (level, col, row) = self.geometry.tile_at(first as u64).unwrap_or_default();
            return Err(WriteError::Incomplete {
                missing: self.index.iter().filter(|e| e.is_none()).count() as u64,
                level,
                col,
                row,
            });
        }
        self.out.flush().map_err(|e| self.io_err(e))?;
        let header = Header {
            geometry: self.geometry.clone(),
            channels: self.channels,
            quality: self.quality,
            file_len: self.position,
            index: self.index.iter().map(|e| e.unwrap_or_default()).collect(),
        };
        let bytes = header.encode();
        let path = self.out.get_ref().target().to_path_buf();
        let io_err = |source| WriteError::Io {
            path: path.clone(),
            source,
        };
        let mut file = self.out.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.file().write_all_at(&bytes, 0).map_err(io_err)?;
        file.sync().map_err(io_err)?;
        Ok(file)
    }
}
