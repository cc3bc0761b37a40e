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

pub mod audit;
pub mod catalog;
pub mod disk;
pub mod disk_probe;
pub mod faults;
pub mod http;
pub mod http_internal;
pub mod iiif;
pub mod ingest;
pub mod library;
pub mod metrics;
pub mod node;
pub mod redundancy;
pub mod replica;
pub mod tile_cache;
pub mod witness;
pub use cluster::worker;

pub use cluster::ImageMeta;
pub use library::Library;
pub use node::{CatalogStart, Node};
