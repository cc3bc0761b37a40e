//! The cluster's vocabulary: the configuration every process reads (nodes, their disks and
//! where each disk physically is), what a backend's catalog says on the wire, and the events a
//! node records, as plain serde types with their validation.
//!
//! It must never hold behaviour beyond parsing and checking: the crates that run things own it.

pub mod catalog;
pub mod config;
pub mod event;

pub use catalog::{CatalogEntry, CatalogPage, FileSum, ImageMeta, ReplicaState};
pub use config::{
    ClusterConfig, ConfigError, DiskConfig, Location, NodeConfig, ParseError, Problem,
};
pub use event::{Component, Event, EventKind, EventPage};

/// Seconds since the Unix epoch, the time stamp of every record on a node.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
