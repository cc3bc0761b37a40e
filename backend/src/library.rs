//! The images this node serves, in memory: built from the catalog's servable entries, each
//! with its pyramid's header (read and checked once), its disk and the origins of its
//! replicas. Pyramid files are opened when read, a bounded number kept open
//! ([`OpenPyramids`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use cluster::{CatalogEntry, ImageMeta};
use tiler::format::{Header, TileEntry};
use tiler::reader::ReadError;
use tiler::{Geometry, PyramidReader};

use crate::disk::Disk;
use crate::open_pyramids::OpenPyramids;
use crate::replica;

/// One servable image.
#[derive(Debug)]
pub struct Image {
    pub id: String,
    /// A number unique to this image in this process: a cheap key for caches.
    pub serial: u64,
    pub meta: ImageMeta,
    /// Its pyramid's header: the geometry and where each tile is, without the file.
    header: Arc<Header>,
    pyramid: PathBuf,
    open: Arc<OpenPyramids>,
    pub thumbnail: PathBuf,
    /// The disk it is on.
    pub disk: Arc<Disk>,
    /// Where its replicas are served, this node first as "" (the same origin), for the
    /// viewer to try in turn.
    pub replicas: Vec<String>,
    /// Found not to match its manifest (by the scrub): never served again from here.
    damaged: std::sync::atomic::AtomicBool,
}

impl Image {
    pub fn geometry(&self) -> &Geometry {
        &self.header.geometry
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Where a stored tile is, without reading it; None if the image has no such tile.
    pub fn entry(&self, level: usize, col: u32, row: u32) -> Option<TileEntry> {
        let i = self.header.geometry.tile_index(level, col, row)?;
        self.header.index.get(i as usize).copied()
    }

    /// The pyramid file's path.
    pub fn pyramid_path(&self) -> &Path {
        &self.pyramid
    }

    /// The pyramid, open: one of the files kept open, or opened again now (blocking: call it
    /// off the async threads).
    pub fn pyramid(&self) -> Result<Arc<PyramidReader>, ReadError> {
        self.open.get(self.serial, &self.pyramid, &self.header)
    }

    /// False while its disk is out of service or slow, and once it was found damaged: its
    /// requests are answered 503 without touching it.
    pub fn readable(&self) -> bool {
        self.disk.serves() && !self.damaged.load(Ordering::Relaxed)
    }

    /// It does not match its manifest: its requests answer 503 from now on.
    pub fn mark_damaged(&self) {
        self.damaged.store(true, Ordering::Relaxed);
    }
}

/// Image ids are what URLs carry: short, and safe in a path and in HTML (the one rule, in the
/// `cluster` crate).
pub use cluster::valid_image_id as valid_id;

/// Every servable image of the node, by id. Published uploads are added while it serves.
#[derive(Debug, Default)]
pub struct Library {
    /// A `std::sync::RwLock`: held only to look up or insert, never across an await.
    images: RwLock<BTreeMap<String, Arc<Image>>>,
    disks: Vec<Arc<Disk>>,
    serials: AtomicU64,
    open: Arc<OpenPyramids>,
    /// Held while whether a replica is served and its catalog state change together (see
    /// [`Library::changing`]).
    changing: std::sync::Mutex<()>,
}

/// Reads and checks the pyramid's header of `entry`'s replica on `disk`; the file is closed
/// again at once.
fn open_image(
    entry: CatalogEntry,
    disk: &Arc<Disk>,
    serial: u64,
    open: &Arc<OpenPyramids>,
    origin_of: &impl Fn(&str) -> Option<String>,
) -> Result<Image, String> {
    let dir = disk.images_dir().join(&entry.id);
    let pyramid = dir.join(replica::PYRAMID);
    let header = PyramidReader::open(&pyramid)
        .map_err(|e| e.to_string())?
        .shared_header();
    let replicas = std::iter::once(String::new())
        .chain(entry.nodes.iter().filter_map(|n| origin_of(n)))
        .collect();
    Ok(Image {
        serial,
        id: entry.id,
        meta: entry.meta,
        header,
        pyramid,
        open: open.clone(),
        thumbnail: dir.join(replica::THUMBNAIL),
        disk: disk.clone(),
        replicas,
        damaged: Default::default(),
    })
}

impl Library {
    /// Opens the pyramid file of every servable entry. Returns the entries that could not be
    /// opened, with the reason, for the caller to record.
    pub fn from_catalog(
        entries: Vec<CatalogEntry>,
        disks: Vec<Arc<Disk>>,
        origin_of: impl Fn(&str) -> Option<String>,
    ) -> (Library, Vec<(String, String)>) {
        let mut images = BTreeMap::new();
        let mut failed = Vec::new();
        let open = Arc::new(OpenPyramids::within_limit());
        for entry in entries.into_iter().filter(|e| e.state.servable()) {
            let Some(disk) = disks.iter().find(|d| d.config.id == entry.disk) else {
                failed.push((entry.id, format!("disk {} is not in service", entry.disk)));
                continue;
            };
            let id = entry.id.clone();
            match open_image(entry, disk, images.len() as u64, &open, &origin_of) {
                Ok(image) => {
                    images.insert(id, Arc::new(image));
                }
                Err(e) => failed.push((id, e)),
            }
        }
        let serials = AtomicU64::new(images.len() as u64);
        (
            Library {
                images: RwLock::new(images),
                disks,
                serials,
                open,
                changing: std::sync::Mutex::new(()),
            },
            failed,
        )
    }

    pub fn disks(&self) -> &[Arc<Disk>] {
        &self.disks
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Image>>> {
        self.images.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Image>> {
        self.read().get(id).cloned()
    }

    /// Every image, by id.
    pub fn images(&self) -> Vec<Arc<Image>> {
        self.read().values().cloned().collect()
    }

    /// Up to `count` images after id `after`, by id, and whether more follow.
    pub fn page_after(&self, after: &str, count: usize) -> (Vec<Arc<Image>>, bool) {
        use std::ops::Bound::{Excluded, Unbounded};
        let images = self.read();
        let mut them = images
            .range::<str, _>((Excluded(after), Unbounded))
            .map(|(_, i)| i.clone());
        let page: Vec<_> = them.by_ref().take(count).collect();
        (page, them.next().is_some())
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Held by whoever changes both whether a replica is served and its catalog entry, so the
    /// two never interleave: without it a returning disk, reading an entry just before a trim
    /// took the replica off, served it again from files already unlinked.
    pub fn changing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops serving `id` (its replica is being taken off this node).
    pub fn remove(&self, id: &str) -> Option<Arc<Image>> {
        let image = self
            .images
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)?;
        self.open.forget(image.serial);
        Some(image)
    }

    /// The pyramid files kept open.
    pub fn open_pyramids(&self) -> &OpenPyramids {
        &self.open
    }

    /// Starts serving a replica just published on `disk`.
    pub fn insert(
        &self,
        entry: CatalogEntry,
        disk: &Arc<Disk>,
        origin_of: impl Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        let serial = self.serials.fetch_add(1, Ordering::Relaxed);
        let image = open_image(entry, disk, serial, &self.open, &origin_of)?;
        self.images
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(image.id.clone(), Arc::new(image));
        Ok(())
    }
}
