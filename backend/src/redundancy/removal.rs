//! Taking a replica off this node: trimmed (a newer set holds the image twice without it) or
//! withdrawn (deleted by its owner or an operator). It stops being served first, then the
//! catalog says so (frontends learn it at their next poll), then its folder goes: renamed
//! hidden (`images/.ID.removing`, one rename and an fsync, so a crash never leaves half a
//! replica under its id), then removed.
//!
//! A withdrawal leaves a tombstone on every disk of the node in service
//! (`DISK/tombstones/ID.json`): a catalog rebuilt from the disks, a disk that returns with a
//! copy, or a re-mirror asked of this node all find it, and the image stays gone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cluster::ReplicaState;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, CatalogError};
use crate::disk::Disk;
use crate::library::Library;

/// Where a disk keeps its tombstones.
pub const TOMBSTONES_DIR: &str = "tombstones";

#[derive(Debug, thiserror::Error)]
pub enum RemovalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("no disk of this node is in service to keep the tombstone of {0}")]
    NoDisk(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RemovalError + '_ {
    move |source| RemovalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A withdrawn image: when, and who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub image: String,
    pub at: u64,
    /// The account, or "operator".
    pub by: String,
}

/// Removes replica folder `images/ID` of `disk`, whole (hidden first). Gone already is fine.
pub fn remove_folder(disk: &Disk, id: &str) -> Result<bool, RemovalError> {
    let images = disk.images_dir();
    let dir = images.join(id);
    if !dir.exists() {
        return Ok(false);
    }
    let hidden = images.join(format!(".{id}.removing"));
    if hidden.exists() {
        std::fs::remove_dir_all(&hidden).map_err(io(&hidden))?;
    }
    std::fs::rename(&dir, &hidden).map_err(io(&dir))?;
    std::fs::File::open(&images)
        .and_then(|d| d.sync_all())
        .map_err(io(&images))?;
    std::fs::remove_dir_all(&hidden).map_err(io(&hidden))?;
    Ok(true)
}

/// Takes this node's replica of `id` out of service and off its disk; the catalog entry
/// becomes `state` (removed, or a tombstone).
pub fn take_off(
    catalog: &Catalog,
    library: &Library,
    disks: &[Arc<Disk>],
    id: &str,
    state: ReplicaState,
) -> Result<(), RemovalError> {
    // Until its folder is gone, a returning disk's check must not read it back (see
    // `Library::changing`).
    let _changing = library.changing();
    library.remove(id);
    match catalog.get(id) {
        Some(_) => {
            catalog.set_state(id, state)?;
        }
        None if matches!(state, ReplicaState::Deleted { .. }) => {
            catalog.add(tombstone_entry(id, state))?;
        }
        None => {}
    }
    catalog.flush();
    for d in disks.iter().filter(|d| !d.is_failed()) {
        remove_folder(d, id)?;
    }
    Ok(())
}

/// The catalog's record of a tombstone for an image this node held nothing of.
fn tombstone_entry(id: &str, state: ReplicaState) -> cluster::CatalogEntry {
    cluster::CatalogEntry {
        id: id.to_string(),
        version: 0,
        state,
        disk: String::new(),
        nodes: Vec::new(),
        epoch: 0,
        width: 0,
        height: 0,
        meta: cluster::ImageMeta::default(),
        files: Vec::new(),
    }
}

/// Withdraws `id` here: a tombstone on every disk in service, then the replica taken off.
pub fn withdraw(
    catalog: &Catalog,
    library: &Library,
    disks: &[Arc<Disk>],
    id: &str,
    by: &str,
) -> Result<Tombstone, RemovalError> {
    let stone = match tombstone(disks, id) {
        Some(t) => t,
        None => Tombstone {
            image: id.to_string(),
            at: cluster::unix_now(),
            by: by.to_string(),
        },
    };
    let bytes = serde_json::to_vec_pretty(&stone).expect("plain data");
    let mut kept = 0;
    for d in disks.iter().filter(|d| !d.is_failed()) {
        let dir = d.config.path.join(TOMBSTONES_DIR);
        floor::durable::create_dir(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{id}.json"));
        floor::durable::write(&path, &bytes).map_err(|e| io(&path)(e.source))?;
        kept += 1;
    }
    if kept == 0 {
        return Err(RemovalError::NoDisk(id.to_string()));
    }
    take_off(
        catalog,
        library,
        disks,
        id,
        ReplicaState::Deleted { at: stone.at },
    )?;
    Ok(stone)
}

/// The tombstone of `id` on one of `disks`, if there is one.
pub fn tombstone(disks: &[Arc<Disk>], id: &str) -> Option<Tombstone> {
    disks.iter().filter(|d| !d.is_failed()).find_map(|d| {
        let bytes = std::fs::read(
            d.config
                .path
                .join(TOMBSTONES_DIR)
                .join(format!("{id}.json")),
        )
        .ok()?;
        serde_json::from_slice(&bytes).ok()
    })
}

/// Every tombstone on `disks`, by image id.
pub fn tombstones(disks: &[Arc<Disk>]) -> std::collections::BTreeMap<String, Tombstone> {
    let mut all = std::collections::BTreeMap::new();
    for d in disks.iter().filter(|d| !d.is_failed()) {
        let Ok(entries) = std::fs::read_dir(d.config.path.join(TOMBSTONES_DIR)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            if let Ok(t) = serde_json::from_slice::<Tombstone>(&bytes) {
                if cluster::valid_image_id(&t.image) {
                    all.insert(t.image.clone(), t);
                }
            }
        }
    }
    all
}

/// Makes the catalog and the disks agree with the tombstones: any replica folder of a withdrawn
/// image is removed (a disk that was away when it was withdrawn) and its entry is the
/// tombstone. Called when the node opens, after a rebuild or a sync.
pub fn apply_tombstones(
    catalog: &Catalog,
    library: &Library,
    disks: &[Arc<Disk>],
) -> Result<usize, RemovalError> {
    let mut applied = 0;
    for (id, stone) in tombstones(disks) {
        let state = ReplicaState::Deleted { at: stone.at };
        let known = catalog.get(&id);
        let on_disk = disks
            .iter()
            .filter(|d| !d.is_failed())
            .any(|d| d.images_dir().join(&id).exists());
        if on_disk || known.as_ref().is_none_or(|k| k.state != state) {
            take_off(catalog, library, disks, &id, state)?;
            applied += 1;
        }
    }
    Ok(applied)
}

/// `POST /internal/images/ID/delete`: withdraws `id` here for `user`. The cluster itself
/// (`td image rm`, user "") may withdraw any image, held here or not (the tombstone keeps it
/// from coming back); an account only an image it owns that is published here.
pub fn withdraw_for(
    catalog: &Catalog,
    library: &Library,
    disks: &[Arc<Disk>],
    id: &str,
    user: &str,
) -> Result<Tombstone, crate::ingest::IngestError> {
    use crate::ingest::IngestError;
    crate::ingest::placement::check_image_id(id)?;
    if !user.is_empty() {
        let image = library
            .get(id)
            .ok_or_else(|| IngestError::NotFound(format!("no image {id} is published here")))?;
        if image.meta.owner.is_empty() {
            return Err(IngestError::Forbidden(format!(
                "no account owns {id}: it was placed by an operator (td image rm)"
            )));
        }
        if image.meta.owner != user {
            return Err(IngestError::Forbidden(format!(
                "{id} belongs to another account"
            )));
        }
    }
    let by = if user.is_empty() { "operator" } else { user };
    withdraw(catalog, library, disks, id, by).map_err(|e| IngestError::Fault(e.to_string()))
}
