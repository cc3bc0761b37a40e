//! An upload's staging folder on a node, `DISK/staging/UPLOAD/`, on the disk with the most room.
//! The original is appended in fsynced chunks to `original.part`; once whole and hashed it is
//! renamed `original` and `staged.json` records its size and SHA-256 (the "staged" fact). The
//! node that received the upload keeps the protocol's other facts here too, one marker file
//! each: `acknowledged.json`, `tiled.json` (with the pyramid and thumbnail), `targets.json`,
//! or `failed.json` when the original can never become an image. A node that took an upload
//! over from its silent home records that in `coordinator.json` and keeps those facts itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use cluster::{valid_upload_id, FileSum, ImageMeta};
use serde::{Deserialize, Serialize};

use super::{append_at, io, read_json, roomiest, sync_dir, write_durable, IngestError, Write};
use crate::disk::Disk;

pub const STAGING_DIR: &str = "staging";
pub const UPLOAD: &str = "upload.json";
pub const PART: &str = "original.part";
pub const ORIGINAL: &str = "original";
pub const STAGED: &str = "staged.json";
pub const ACKNOWLEDGED: &str = "acknowledged.json";
pub const PYRAMID: &str = "pyramid.tdp";
pub const THUMBNAIL: &str = "thumb.jpg";
pub const TILED: &str = "tiled.json";
pub const TARGETS: &str = "targets.json";
pub const FAILED: &str = "failed.json";
/// On a node that took an upload over from its silent home (see `handover`).
pub const COORDINATOR: &str = "coordinator.json";
/// On the home: the nodes a copy was sealed on (or was being sealed on), each of which could
/// take the upload over.
pub const HOLDERS: &str = "holders.json";

/// `upload.json`: what the provider sent before the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// The upload's id (random; also the staging folder's name).
    pub id: String,
    /// The image id it will be published under.
    pub image: String,
    pub owner: String,
    /// The file name as the provider had it (for the original's extension and the status).
    pub filename: String,
    pub length: u64,
    pub meta: ImageMeta,
    /// The node that received it and coordinates it.
    pub home: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

/// `acknowledged.json`: the nodes holding the original when the provider was told it is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    pub staged_on: Vec<String>,
    pub at: u64,
}

/// `failed.json`: why the original can never be published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub reason: String,
    pub at: u64,
}

/// The SHA-256 of each file being received (an original into staging, a replica's files into
/// placement), computed as its chunks are written so that checking it needs no second read of
/// gigabytes. Only in memory: after a restart, or chunks out of order, there is no sum and the
/// file is read to hash it.
#[derive(Default)]
pub struct RunningSums(Mutex<HashMap<String, (u64, Sha256)>>);

/// Files hashed at once, at most: past it a new file starts afresh (the others are read back).
const RUNNING_SUMS: usize = 4096;
/// A chunk at least this large is hashed on a second thread while it is written.
const HASH_BESIDE: usize = 1 << 20;

impl RunningSums {
    /// Writes `bytes` at `offset` of file `id` (`write`, which says the new length) and hashes
    /// them into the file's sum, both at once for a large chunk: the chunk is answered when
    /// the slower of the two is done, not after both. A failed write leaves the file no sum.
    pub(crate) fn write_hashed(
        &self,
        id: &str,
        offset: u64,
        bytes: &[u8],
        write: impl FnOnce() -> Result<u64, IngestError>,
    ) -> Result<u64, IngestError> {
        let running = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            match map.remove(id) {
                _ if offset == 0 => Some(Sha256::new()),
                Some((at, hasher)) if at == offset => Some(hasher),
                _ => None,
            }
        };
        let Some(mut hasher) = running else {
            return write();
        };
        let written = if bytes.len() >= HASH_BESIDE {
            std::thread::scope(|s| {
                let hashing = s.spawn(|| hasher.update(bytes));
                let written = write();
                let _ = hashing.join();
                written
            })
        } else {
            hasher.update(bytes);
            write()
        }?;
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= RUNNING_SUMS {
            map.clear();
        }
        map.insert(id.to_string(), (written, hasher));
        Ok(written)
    }

    /// The upload is gone (expired): its running sum too.
    pub fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// The SHA-256 of file `id`, if every one of its `length` bytes was hashed as written.
    pub(crate) fn take(&self, id: &str, length: u64) -> Option<String> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.remove(id) {
            Some((at, hasher)) if at == length => Some(hex::encode(hasher.finalize())),
            _ => None,
        }
    }
}

/// One upload's staging folder.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
}

/// An upload id as it arrives (it names a folder): refused (400) unless it is one.
pub fn check_upload_id(id: &str) -> Result<(), IngestError> {
    if valid_upload_id(id) {
        Ok(())
    } else {
        Err(IngestError::Invalid(format!("'{id}' is not an upload id")))
    }
}

impl Staging {
    /// The staging folder of upload `id` on one of `disks`, if there is one.
    pub fn find(disks: &[Arc<Disk>], id: &str) -> Option<Staging> {
        if !valid_upload_id(id) {
            return None;
        }
        disks
            .iter()
            .filter(|d| !d.is_failed())
            .map(|d| d.config.path.join(STAGING_DIR).join(id))
            .find(|p| p.join(UPLOAD).is_file())
            .map(|dir| Staging { dir })
    }

    /// Every upload staged on `disks`.
    pub fn all(disks: &[Arc<Disk>]) -> Vec<Staging> {
        let mut found = Vec::new();
        for d in disks.iter().filter(|d| !d.is_failed()) {
            let Ok(entries) = std::fs::read_dir(d.config.path.join(STAGING_DIR)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                if name.to_str().is_some_and(valid_upload_id) && e.path().join(UPLOAD).is_file() {
                    found.push(Staging { dir: e.path() });
                }
            }
        }
        found
    }

    /// Makes the staging folder for `upload` on the disk with the most room, or finds the one
    /// already there (a retried request).
    pub fn create(
        disks: &[Arc<Disk>],
        node: &str,
        upload: &Upload,
    ) -> Result<Staging, IngestError> {
        check_upload_id(&upload.id)?;
        if let Some(s) = Staging::find(disks, &upload.id) {
            return Ok(s);
        }
        let disk = roomiest(disks, node, upload.length)?;
        let parent = disk.config.path.join(STAGING_DIR);
        floor::durable::create_dir(&parent).map_err(io(&parent))?;
        // Written in a hidden folder and renamed, so a folder with a name always has its
        // upload.json.
        let temp = parent.join(format!(".{}.new", upload.id));
        let _ = std::fs::remove_dir_all(&temp);
        std::fs::create_dir(&temp).map_err(io(&temp))?;
        write_durable(
            &temp,
            UPLOAD,
            &serde_json::to_vec_pretty(upload).expect("plain data"),
        )?;
        let dir = parent.join(&upload.id);
        std::fs::rename(&temp, &dir).map_err(io(&dir))?;
        sync_dir(&parent)?;
        Ok(Staging { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn upload(&self) -> Result<Upload, IngestError> {
        // A staging folder always has its upload.json (it is made before the folder is named):
        // one without is damage here.
        read_json(&self.path(UPLOAD))?
            .ok_or_else(|| IngestError::Fault(format!("{} has no upload.json", self.dir.display())))
    }

    /// How many bytes of the original are here.
    pub fn offset(&self) -> Result<u64, IngestError> {
        if let Some(s) = self.staged()? {
            return Ok(s.size);
        }
        match std::fs::metadata(self.path(PART)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&self.path(PART))(e)),
        }
    }

    /// When a byte of the original last arrived here: `original.part`'s modification time, or
    /// `upload.json`'s while no chunk has come. How an abandoned upload is told.
    pub fn last_written(&self) -> Result<std::time::SystemTime, IngestError> {
        let modified = |name: &str| {
            let path = self.path(name);
            std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(io(&path))
        };
        match modified(PART) {
            Err(IngestError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                modified(UPLOAD)
            }
            other => other,
        }
    }

    /// Whether this copy is past receiving, or may have counted for an acknowledgement: the
    /// original is whole here (`original`, renamed before `staged.json` is written, or
    /// `staged.json`), or the upload was acknowledged (`acknowledged.json`, home node only) or
    /// failed (`failed.json`). Such a copy never expires: the protocol drives it. A file that
    /// cannot be looked at (a disk error) counts as there.
    pub fn settled(&self) -> bool {
        [STAGED, ACKNOWLEDGED, FAILED, ORIGINAL]
            .iter()
            .any(|name| !matches!(self.path(name).try_exists(), Ok(false)))
    }

    pub(super) fn id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Appends a chunk of the original at `offset`; returns the new length.
    pub fn append(
        &self,
        length: u64,
        offset: u64,
        bytes: &[u8],
        sums: &RunningSums,
    ) -> Result<u64, IngestError> {
        if self.staged()?.is_some() {
            return Err(IngestError::Conflict {
                at: length,
                got: offset,
            });
        }
        if offset + bytes.len() as u64 > length {
            return Err(IngestError::Invalid(format!(
                "the chunk ends at byte {}, past the announced length {length}",
                offset + bytes.len() as u64
            )));
        }
        sums.write_hashed(&self.id(), offset, bytes, || {
            append_at(&self.path(PART), offset, bytes, Write::Cached)
        })
    }

    /// The whole original is here: checks its size and SHA-256 (hashed as it arrived, or read
    /// back after a restart) against what the sender said it must be, fsyncs it and records the
    /// "staged" fact. Done already is fine. (Reading it back from the disk is the replicas'
    /// verification step, after placement.)
    pub fn seal(
        &self,
        length: u64,
        expected: Option<&str>,
        sums: &RunningSums,
    ) -> Result<FileSum, IngestError> {
        if let Some(s) = self.staged()? {
            return Ok(s);
        }
        let part = self.path(PART);
        let (size, sha256) = match sums.take(&self.id(), length) {
            Some(sha) => (std::fs::metadata(&part).map_err(io(&part))?.len(), sha),
            None => crate::replica::hash_file(&part, &mut |_| {}).map_err(io(&part))?,
        };
        if size != length {
            return Err(IngestError::Invalid(format!(
                "the original has {size} of its {length} bytes"
            )));
        }
        if let Some(expected) = expected.filter(|e| *e != sha256) {
            // A copy that does not match is useless; the sender starts it again.
            let _ = std::fs::remove_file(&part);
            return Err(IngestError::Checksum {
                what: "the staged copy".into(),
                expected: expected.to_string(),
                found: sha256,
            });
        }
        std::fs::File::open(&part)
            .and_then(|f| f.sync_all())
            .map_err(io(&part))?;
        let original = self.path(ORIGINAL);
        std::fs::rename(&part, &original).map_err(io(&original))?;
        let sum = FileSum {
            name: ORIGINAL.into(),
            size,
            sha256,
        };
        write_durable(
            &self.dir,
            STAGED,
            &serde_json::to_vec(&sum).expect("plain data"),
        )?;
        Ok(sum)
    }

    /// The "staged" fact: the original is whole and durable here, with its sum.
    pub fn staged(&self) -> Result<Option<FileSum>, IngestError> {
        read_json(&self.path(STAGED))
    }

    pub fn marker<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, IngestError> {
        read_json(&self.path(name))
    }

    pub fn set_marker<T: Serialize>(&self, name: &str, value: &T) -> Result<(), IngestError> {
        write_durable(
            &self.dir,
            name,
            &serde_json::to_vec_pretty(value).expect("plain data"),
        )
    }

    /// Deletes the staging folder: renamed aside first (one atomic step), then removed.
    pub fn clear(&self) -> Result<(), IngestError> {
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        let name = self.dir.file_name().and_then(|n| n.to_str()).unwrap_or("x");
        let aside = parent.join(format!(".{name}.clearing"));
        std::fs::rename(&self.dir, &aside).map_err(io(&self.dir))?;
        sync_dir(parent)?;
        std::fs::remove_dir_all(&aside).map_err(io(&aside))
    }
}

/// Removes what dead runs left in `disks`' staging folders (half-made folders, half-cleared
/// ones). Called when the node starts.
pub fn clear_debris(disks: &[Arc<Disk>]) {
    for d in disks.iter().filter(|d| !d.is_failed()) {
        let Ok(entries) = std::fs::read_dir(d.config.path.join(STAGING_DIR)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && (name.ends_with(".new") || name.ends_with(".clearing")) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn a_file_written_in_order_has_its_sum_and_one_written_otherwise_has_none() {
        let sums = RunningSums::default();
        // One chunk hashed beside its write (large), one inline (small).
        let whole: Vec<u8> = (0..(HASH_BESIDE + 1000)).map(|i| (i % 251) as u8).collect();
        let (big, small) = whole.split_at(HASH_BESIDE);
        let len = |b: &[u8]| b.len() as u64;
        assert_eq!(
            sums.write_hashed("a", 0, big, || Ok(len(big))).unwrap(),
            len(big)
        );
        let end = len(big) + len(small);
        assert_eq!(
            sums.write_hashed("a", len(big), small, || Ok(end)).unwrap(),
            end
        );
        assert_eq!(sums.take("a", end), Some(sha256(&whole)));
        // Taken: asked again (a restart's reseal), it is read back instead.
        assert_eq!(sums.take("a", end), None);

        // A write that fails leaves the file without a sum, even once later chunks succeed.
        let refused = || Err(IngestError::Conflict { at: 0, got: 3 });
        sums.write_hashed("b", 0, b"abc", || Ok(3)).unwrap();
        assert!(sums.write_hashed("b", 3, b"def", refused).is_err());
        sums.write_hashed("b", 3, b"def", || Ok(6)).unwrap();
        assert_eq!(sums.take("b", 6), None);

        // A chunk at another offset than the sum's end (a restart, a client that lost track).
        sums.write_hashed("c", 0, b"abc", || Ok(3)).unwrap();
        sums.write_hashed("c", 6, b"ghi", || Ok(9)).unwrap();
        assert_eq!(sums.take("c", 9), None);

        // Starting again from the beginning starts the sum again.
        sums.write_hashed("d", 0, b"old", || Ok(3)).unwrap();
        sums.write_hashed("d", 0, b"new", || Ok(3)).unwrap();
        assert_eq!(sums.take("d", 3), Some(sha256(b"new")));
    }
}
