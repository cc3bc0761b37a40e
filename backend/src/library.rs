//! The images this node serves, in memory: built from the catalog's servable entries, each
//! with its pyramid file open, its disk and the origins of its replicas.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use cluster::{CatalogEntry, ImageMeta};

use crate::disk::Disk;
use crate::replica;
use tiler::PyramidReader;

/// One servable image.
#[derive(Debug)]
pub struct Image {
    pub id: String,
    /// A number unique to this image in this process: a cheap key for caches.
    pub serial: u64,
    pub meta: ImageMeta,
    pub pyramid: PyramidReader,
    pub thumbnail: PathBuf,
    /// The disk it is on.
    pub disk: Arc<Disk>,
    /// Where its replicas are served, this node first as "" (the same origin), for the
    /// viewer to try in turn.
    pub replicas: Vec<String>,
}

impl Image {
    /// False once its disk has failed: its requests are answered 503 without touching it.
    pub fn readable(&self) -> bool {
        !self.disk.is_failed()
    }
}

/// Image ids are what URLs carry: short, and safe in a path and in HTML.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Every servable image of the node, by id.
#[derive(Debug, Default)]
pub struct Library {
    images: BTreeMap<String, Arc<Image>>,
    disks: Vec<Arc<Disk>>,
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
        for entry in entries.into_iter().filter(|e| e.state.servable()) {
            let Some(disk) = disks.iter().find(|d| d.config.id == entry.disk) else {
                failed.push((entry.id, format!("disk {} is not in service", entry.disk)));
                continue;
            };
            let dir = disk.images_dir().join(&entry.id);
            match PyramidReader::open(&dir.join(replica::PYRAMID)) {
                Ok(pyramid) => {
                    let replicas = std::iter::once(String::new())
                        .chain(entry.nodes.iter().filter_map(|n| origin_of(n)))
                        .collect();
                    let image = Image {
                        serial: images.len() as u64,
                        id: entry.id.clone(),
                        meta: entry.meta,
                        pyramid,
                        thumbnail: dir.join(replica::THUMBNAIL),
                        disk: disk.clone(),
                        replicas,
                    };
                    images.insert(entry.id, Arc::new(image));
                }
                Err(e) => failed.push((entry.id, e.to_string())),
            }
        }
        (Library { images, disks }, failed)
    }

    pub fn disks(&self) -> &[Arc<Disk>] {
        &self.disks
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Image>> {
        self.images.get(id)
    }

    pub fn images(&self) -> impl Iterator<Item = &Arc<Image>> {
        self.images.values()
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}
