//! Ingest: how an uploaded original becomes a published image with two verified replicas,
//! without ever losing an acknowledged upload or publishing fewer than two copies.
//!
//! - [`protocol`]: the decisions, one pure function, model checked in
//!   `backend/tests/ingest_model.rs`;
//! - [`staging`]: an upload's folder on a node, appended in fsynced chunks, one marker file per
//!   fact (the truth the protocol resumes from after any crash);
//! - [`placement`]: a replica arriving on a target node, hidden until published
//!   (`images/.ID.incoming` → `.ID.placed` → `.ID.verified` → `ID`);
//! - [`peers`]: the signed HTTP client for the other nodes' internal API;
//! - [`coordinator`]: on the node that received the upload, gathers the facts from every node,
//!   asks the protocol for the next step and does it; a worker, and the acknowledgement path;
//! - [`status`]: what the portal shows of each upload (sled, rebuilt from the facts).
//!
//! It must never acknowledge an upload held on fewer than two nodes in two power domains, never
//! make a replica visible before both are verified, and never delete staging before publication.

use std::path::{Path, PathBuf};

pub mod coordinator;
pub mod peers;
pub mod placement;
pub mod protocol;
pub mod staging;
pub mod status;

pub use coordinator::Ingest;

/// Runs blocking disk work off the async threads.
pub async fn blocking_call<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, IngestError> {
    coordinator::blocking(f).await
}

/// Uploaded and transferred bytes arrive in chunks of at most this size.
pub const MAX_CHUNK: u64 = 16 << 20;
/// What a transfer between nodes sends per request.
pub const SEND_CHUNK: usize = 8 << 20;
/// The largest original accepted: 64 GiB.
pub const MAX_UPLOAD: u64 = 64 << 30;
/// Room left free on a disk after an upload or a replica is written.
pub const DISK_RESERVE: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the upload is at byte {at}, not {got}: send from byte {at}")]
    Conflict { at: u64, got: u64 },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("no disk of node {node} has room for {need} bytes (the most free is {best} bytes)")]
    NoRoom { node: String, need: u64, best: u64 },
    #[error("{what}: SHA-256 {found}, expected {expected}")]
    Checksum {
        what: String,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Peer(String),
    #[error("uploads are off on this node: {0}")]
    Off(String),
}

impl IngestError {
    /// The HTTP status it answers with.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::Io { source, .. } if is_full(source) => 507,
            IngestError::Io { .. } => 500,
            IngestError::Conflict { .. } => 409,
            IngestError::Invalid(_) => 400,
            IngestError::NotFound(_) => 404,
            IngestError::Forbidden(_) => 403,
            IngestError::NoRoom { .. } => 507,
            IngestError::Checksum { .. } => 422,
            IngestError::Peer(_) => 502,
            IngestError::Off(_) => 503,
        }
    }
}

/// A disk that filled up, in the error's words.
pub fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Appends `bytes` to `path` if it is exactly `offset` long now, and starts writing them to
/// the disk. Returns the new length. A client that lost track is told where to go on from.
///
/// Not fsynced per chunk: the whole file is, before it counts as staged or placed (and only
/// then is anything acknowledged). After a power loss the file holds a prefix of what was sent
/// (appends reach the disk before the size that covers them), so the length a resumed upload
/// asks for is where to go on from. Starting the writeback at once keeps that final fsync short.
pub(crate) fn append_at(path: &Path, offset: u64, bytes: &[u8]) -> Result<u64, IngestError> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    let at = file.metadata().map_err(io(path))?.len();
    if at != offset {
        return Err(IngestError::Conflict { at, got: offset });
    }
    if let Err(e) = file.write_all(bytes) {
        // A partial chunk (a full disk) is cut off, so the length stays a chunk boundary the
        // client was told about.
        let _ = file.set_len(at);
        return Err(IngestError::Io {
            path: path.to_path_buf(),
            source: e,
        });
    }
    // SAFETY: a plain call on a file descriptor we own, over the range just written.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            at as i64,
            bytes.len() as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    Ok(at + bytes.len() as u64)
}

/// Writes `bytes` to `dir/name` whole or not at all: a temporary file, fsynced, renamed, and
/// the folder fsynced. This is how every marker (a fact of the protocol) is written.
pub(crate) fn write_durable(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), IngestError> {
    let temp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    std::fs::write(&temp, bytes)
        .and_then(|()| std::fs::File::open(&temp)?.sync_all())
        .map_err(io(&temp))?;
    std::fs::rename(&temp, &path).map_err(io(&path))?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), IngestError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Reads a JSON marker; `None` when it is not there.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, IngestError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            IngestError::Invalid(format!(
                "{} is not what this program wrote: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IngestError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// The disk with the most room that can take `need` bytes and keep [`DISK_RESERVE`] free.
pub(crate) fn roomiest(
    disks: &[std::sync::Arc<crate::disk::Disk>],
    node: &str,
    need: u64,
) -> Result<std::sync::Arc<crate::disk::Disk>, IngestError> {
    let mut best: Option<(u64, &std::sync::Arc<crate::disk::Disk>)> = None;
    for d in disks.iter().filter(|d| !d.is_failed()) {
        if let Ok(free) = fs2::available_space(&d.config.path) {
            if best.is_none_or(|(b, _)| free > b) {
                best = Some((free, d));
            }
        }
    }
    match best {
        Some((free, d)) if free >= need.saturating_add(DISK_RESERVE) => Ok(d.clone()),
        other => Err(IngestError::NoRoom {
            node: node.to_string(),
            need,
            best: other.map_or(0, |(f, _)| f),
        }),
    }
}
