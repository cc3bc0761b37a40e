//! Ingest: how an uploaded original becomes a published image with two verified replicas,
//! without ever losing an acknowledged upload or publishing fewer than two copies.
//!
//! - [`protocol`]: the decisions, one pure function, model checked in
//!   `backend/tests/ingest_model.rs`;
//! - [`staging`]: an upload's folder on a node, appended in fsynced chunks, one marker file per
//!   fact (the truth the protocol resumes from after any crash);
//! - [`direct`]: chunks written to a disk around the page cache, from bodies gathered for it;
//! - [`placement`]: a replica arriving on a target node, hidden until published
//!   (`images/.ID.incoming` → `.ID.placed` → `.ID.verified` → `ID`);
//! - the other nodes' internal API is called through `floor::Client` (signed, one pool);
//! - [`coordinator`]: this node's [`Ingest`] (what every seam below shares) and the worker that
//!   drives the uploads it received;
//! - on the node that received an upload, by seam: [`receiving`] (what the portal calls: start
//!   an upload, resume it, append a chunk and mirror it), [`facts`] (what every node says about
//!   an upload, gathered), [`driving`] (asks the protocol for the next step and does it; tiling
//!   and choosing the targets), [`transfers`] (the staging copy and the replica set sent to
//!   other nodes);
//! - [`handover`]: the node holding the second copy takes an upload over when its home has
//!   been silent past the node grace period (the rule is [`protocol::coordination`]);
//! - [`target`]: what other nodes' coordinators call here (a staging copy held, a replica
//!   received, verified and published), every id and file name checked as it arrives;
//! - [`meta_edit`]: the owner changes an image's metadata, and the rules metadata must follow;
//! - [`expiry`]: an upload that received no chunk for `[repair] upload_expiry_hours` is
//!   cleared on every node holding a copy (never one acknowledged), its status "expired";
//! - [`status`]: what the portal shows of each upload (sled, rebuilt from the facts);
//! - [`error`]: what can go wrong, as a client hears it and as the log does.
//!
//! It must never acknowledge an upload held on fewer than two nodes in two power domains, never
//! make a replica visible before both are verified, and never delete staging before publication.

use std::path::Path;

pub mod coordinator;
pub mod direct;
pub mod driving;
pub mod error;
pub mod expiry;
pub mod facts;
pub mod handover;
pub mod meta_edit;
pub mod placement;
pub mod protocol;
pub mod receiving;
pub mod staging;
pub mod status;
pub mod target;
pub mod tiling;
pub mod transfers;

pub use coordinator::Ingest;
pub use error::{is_full, About, IngestError};

/// Runs blocking disk work off the async threads.
pub async fn blocking_call<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, IngestError> {
    coordinator::blocking(f).await
}

/// Runs disk work of a copy between nodes (a replica placed, read back, re-mirrored) at a
/// lower priority than visitors' requests (see [`floor::background`]).
pub async fn background_call<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, IngestError> {
    floor::background::run(what, f)
        .await
        .unwrap_or_else(|e| Err(IngestError::Fault(e.to_string())))
}

/// Uploaded and transferred bytes arrive in chunks of at most this size.
pub use cluster::MAX_CHUNK;
/// What a transfer between nodes sends per request.
pub const SEND_CHUNK: usize = 8 << 20;
/// The largest original accepted: 64 GiB.
pub const MAX_UPLOAD: u64 = 64 << 30;
/// Room left free on a disk after an upload or a replica is written.
pub const DISK_RESERVE: u64 = 256 << 20;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How [`append_at`] writes a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Around the page cache (`O_DIRECT`) where the chunk allows ([`direct`]: a request's body
    /// at a block-aligned offset), else through it: a re-mirror's copies, gigabytes that nobody
    /// reads again soon, which then neither evict the tiles visitors are looking at nor cost
    /// the kernel a fresh page for every 4 KiB (a fifth of both cores in a re-mirror, perf).
    Direct,
    /// Through the page cache, its writeback started at once, and every 8 MiB the chunks
    /// before waited for and dropped from the cache: an upload's chunks, whose sender waits for
    /// each answer. Written direct, each chunk's answer waited for the disk; through the cache
    /// it waits for the copy into memory, and the writeback overlaps the next chunks on their
    /// way (`bench/ingest 1`, same hour: acknowledged in 6.0 s against 7.9 s direct, cp + sync
    /// 4.9 s). A re-mirror gained nothing from it (2 GiB: 279 MB/s against 269-287 direct).
    Cached,
}

/// Appends `bytes` to `path` if it is exactly `offset` long now, and starts writing them to
/// the disk. Returns the new length. A client that lost track is told where to go on from.
///
/// Not fsynced per chunk: the whole file is, before it counts as staged or placed (and only
/// then is anything acknowledged). After a power loss the file holds a prefix of what was sent
/// (appends reach the disk before the size that covers them), so the length a resumed upload
/// asks for is where to go on from.
///
/// `way` says how the bytes reach the disk ([`Write`]): a copy's chunks around the page
/// cache, an upload's through it.
pub(crate) fn append_at(
    path: &Path,
    offset: u64,
    bytes: &[u8],
    way: Write,
) -> Result<u64, IngestError> {
    const DROP_STEP: u64 = 8 << 20;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .map_err(io(path))?;
    let at = file.metadata().map_err(io(path))?.len();
    if at != offset {
        return Err(IngestError::Conflict { at, got: offset });
    }
    let written = match way == Write::Direct && direct::can_write_direct(at, bytes) {
        true => direct::write_at(&file, at, bytes),
        false => Ok(false),
    }
    .and_then(|direct| match direct {
        true => Ok(true),
        false => file.write_all_at(bytes, at).map(|()| false),
    });
    let direct = match written {
        Ok(direct) => direct,
        Err(e) => {
            // A partial chunk (a full disk) is cut off, so the length stays a chunk boundary
            // the client was told about.
            let _ = file.set_len(at);
            return Err(IngestError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    if direct {
        return Ok(at + bytes.len() as u64);
    }
    // SAFETY: plain calls on a file descriptor we own, over ranges of it written before.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            at as i64,
            bytes.len() as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        );
        let end = at + bytes.len() as u64;
        if at > 0 && at / DROP_STEP != end / DROP_STEP {
            // The chunks before this one: written out (started at their own appends), then
            // dropped. Advice only: a failure costs memory, never data (the fsync at sealing
            // is what makes the file durable, and it reports any write error). Once per
            // DROP_STEP of the file: dropping pages can make the kernel drain every CPU's
            // page lists, and a throttled copy's small chunks did it 400 times a second,
            // which tripled visitors' p50 on that node.
            libc::sync_file_range(
                file.as_raw_fd(),
                0,
                at as i64,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            );
            libc::posix_fadvise(file.as_raw_fd(), 0, at as i64, libc::POSIX_FADV_DONTNEED);
        }
    };
    Ok(at + bytes.len() as u64)
}

/// Writes `bytes` to `dir/name` whole or not at all: a temporary file, fsynced, renamed, and
/// the folder fsynced. This is how every marker (a fact of the protocol) is written.
pub(crate) fn write_durable(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), IngestError> {
    let path = dir.join(name);
    floor::durable::write(&path, bytes).map_err(|e| io(&path)(e.source))
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
            IngestError::Fault(format!(
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
        // Room is what is free less what the uploads staged there will still write: a 60 GiB
        // upload declared is room taken, not room to promise again.
        let owed: u64 = staging::Staging::all(std::slice::from_ref(d))
            .iter()
            .filter_map(|s| Some(s.upload().ok()?.length.saturating_sub(s.offset().ok()?)))
            .sum();
        if let Ok(free) = fs2::available_space(&d.config.path).map(|f| f.saturating_sub(owed)) {
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
