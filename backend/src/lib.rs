//! The image server of one backend node: the viewer page, tiles, IIIF, thumbnails and uploads,
//! the node's catalog (an index over what its disks hold), its disk set, replication and
//! scrubbing.
//!
//! A [`node`] is opened from the cluster configuration: its [`disk`]s, each holding
//! [`replica`] folders; the [`catalog`] (sled) indexing them; the [`library`] of servable
//! images built from it; the [`faults`] path that fails a disk and records the event; the
//! [`disk_probe`] workers under the [`worker`] runner; and the [`http`] routes with the
//! [`iiif`] Image API.
//!
//! It must never encode or decode a JPEG to answer a tile request (a tile is one positional read
//! of a pyramid file), never trust its catalog over the disks, and never let a failing disk slow
//! down requests for images on the other disks.

pub mod accounts;
pub mod audit;
pub mod catalog;
pub mod disk;
pub mod disk_probe;
pub mod faults;
pub mod http;
pub mod http_internal;
pub mod http_join;
pub mod iiif;
pub mod ingest;
pub mod library;
pub mod metrics;
pub mod node;
pub mod open_pyramids;
pub mod redundancy;
pub mod replica;
pub mod tile_cache;
pub mod witness;
pub use cluster::worker;

pub use cluster::ImageMeta;
pub use library::Library;
pub use node::{CatalogStart, Node};

/// Tests prove crash safety by killing a node at each step of its protocols (ingest,
/// re-mirror): with `TD_CRASH_AT=point` in its environment the process sends itself SIGKILL
/// when it reaches `point`, right after the step's fact is on the disk.
pub fn crash_point(node: &str, point: &str) {
    static CRASH_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = CRASH_AT.get_or_init(|| std::env::var("TD_CRASH_AT").ok().filter(|s| !s.is_empty()));
    if at.as_deref() == Some(point) {
        // The tests look for `TD_CRASH_AT=point` on standard error, where the log goes
        // (written as it happens, so it is there before the kill).
        tracing::warn!(node = %node, point, "TD_CRASH_AT={point}: killing myself");
        // SAFETY: signalling our own process.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
