//! The image server of one backend node: the viewer page, tiles, IIIF, thumbnails and uploads,
//! the node's catalog (an index over what its disks hold), its disk set, replication and
//! scrubbing.
//!
//! Today it holds the [`library`] (the images of one directory), the [`iiif`] Image API, and
//! the [`http`] routes that serve them: gallery, plain-HTML viewer, tiles, IIIF and thumbnails.
//!
//! It must never encode or decode a JPEG to answer a tile request (a tile is one positional read
//! of a pyramid file), never trust its catalog over the disks, and never let a failing disk slow
//! down requests for images on the other disks.

pub mod disk;
pub mod disk_probe;
pub mod http;
pub mod iiif;
pub mod library;
pub mod metrics;
pub mod tile_cache;
pub mod worker;

pub use library::{ImageMeta, Library};
