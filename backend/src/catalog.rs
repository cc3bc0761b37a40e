//! The node's catalog: for every replica on its disks, which disk, which files with which
//! checksums, what the provider said, the image size and whether it can be served. It is an
//! index in sled over the replica folders, which are the truth: `rebuild` recreates it from the
//! disks alone, and `sync` brings it up to date with what the disks hold.
//!
//! Every change gets the next catalog version, so a frontend asks for what changed since the
//! version it last saw (`GET /catalog?since=V`). A rebuilt catalog has a new name, which tells
//! frontends to start again from 0.

use std::path::Path;
use std::sync::{Arc, Mutex};

use cluster::{CatalogEntry, CatalogPage, ReplicaState};
use floor::store::{self, Opened, StoreError};

use crate::disk::Disk;
use crate::replica;

const GENERATION: &[u8] = b"generation";
const VERSION: &[u8] = b"version";
/// How often a long sync or rebuild says how far it has come.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Catalog {
    db: sled::Db,
    /// id → entry (JSON).
    entries: sled::Tree,
    /// version → id of the entry that has it now.
    changes: sled::Tree,
    node: String,
    /// Held while writing, so versions are given out in order.
    write: Mutex<()>,
    path: std::path::PathBuf,
}

/// What a sync or rebuild did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    pub removed: usize,
    /// Replicas found unreadable: (image id, disk id, why).
    pub unreadable: Vec<(String, String, String)>,
    pub kept: usize,
    /// One line for each replica or disk that could not be read.
    pub problems: Vec<String>,
}

impl Catalog {
    /// Opens the catalog at `path`. Returns, besides it, why it must be rebuilt: it is new,
    /// or was damaged and moved aside.
    pub fn open(path: &Path, node: &str) -> Result<(Catalog, Option<String>), CatalogError> {
        let (db, opened) = store::open(path)?;
        let sled = StoreError::sled(path);
        let catalog = Catalog {
            entries: db.open_tree("entries").map_err(&sled)?,
            changes: db.open_tree("changes").map_err(&sled)?,
            db,
            node: node.to_string(),
            write: Mutex::new(()),
            path: path.to_path_buf(),
        };
        let why = match opened {
            Opened::New => Some("there was no catalog".to_string()),
            Opened::MovedAside { to, why } => Some(format!(
                "the catalog was damaged ({why}) and was moved aside to {}",
                to.display()
            )),
            Opened::Existing if catalog.db.get(GENERATION).ok().flatten().is_none() => {
                Some("the catalog was never completed".to_string())
            }
            Opened::Existing => None,
        };
        Ok((catalog, why))
    }

    fn sled_err(&self) -> impl Fn(sled::Error) -> CatalogError + '_ {
        move |e| CatalogError::Store(StoreError::sled(&self.path)(e))
    }

    /// This catalog's name: new at every rebuild.
    pub fn generation(&self) -> String {
        self.db
            .get(GENERATION)
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }

    pub fn version(&self) -> u64 {
        self.db
            .get(VERSION)
            .ok()
            .flatten()
            .and_then(|v| v.as_ref().try_into().ok())
            .map_or(0, u64::from_be_bytes)
    }

    pub fn get(&self, id: &str) -> Option<CatalogEntry> {
        let bytes = self.entries.get(id).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every entry, by id.
    pub fn entries(&self) -> Vec<CatalogEntry> {
        self.entries
            .iter()
            .values()
            .filter_map(|v| v.ok().and_then(|v| serde_json::from_slice(&v).ok()))
            .collect()
    }

    /// The entries after id `after`, by id: a walk from there, so a worker going through the
    /// catalog in order pays for the entries it passes, not for all.
    pub fn after(&self, after: &str) -> impl Iterator<Item = CatalogEntry> + '_ {
        use std::ops::Bound::{Excluded, Unbounded};
        self.entries
            .range::<&[u8], _>((Excluded(after.as_bytes()), Unbounded))
            .values()
            .filter_map(|v| v.ok().and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Every entry changed after version `since`, oldest change first.
    pub fn page_since(&self, since: u64) -> CatalogPage {
        self.page_after(since, usize::MAX)
    }

    /// At most `limit` of the entries changed after version `since`, oldest change first.
    /// When more changed, the page says so and its version is that of its last entry: each id
    /// is in the change index once, at its latest change, so every change up to that version
    /// is in this page or an earlier one, and the next page starts after it. Writers never
    /// wait for a page.
    pub fn page_after(&self, since: u64, limit: usize) -> CatalogPage {
        // No lock: writers go on while a page is read (a page of 10,000 takes a while). The
        // page covers the versions up to the one read first; an entry changed meanwhile gets a
        // later version, which the next page brings. The cursor handed back is a version read
        // from the changes, never an entry's own (which a writer may have raised meanwhile).
        let upto = self.version();
        let mut entries = Vec::new();
        let mut more = false;
        let mut last = since;
        if since < upto {
            let range = since.saturating_add(1).to_be_bytes()..=upto.to_be_bytes();
            for change in self.changes.range(range) {
                if entries.len() >= limit {
                    more = true;
                    break;
                }
                let Ok((key, id)) = change else { continue };
                last = key.as_ref().try_into().map_or(last, u64::from_be_bytes);
                if let Some(entry) = self.get(&String::from_utf8_lossy(&id)) {
                    entries.push(entry);
                }
            }
        }
        CatalogPage {
            node: self.node.clone(),
            catalog: self.generation(),
            version: if more { last } else { upto },
            entries,
            more,
        }
    }

    /// Stores `entry` under the next version.
    fn put(&self, mut entry: CatalogEntry) -> Result<CatalogEntry, CatalogError> {
        let _held = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let e = self.sled_err();
        let version = self.version() + 1;
        if let Some(old) = self.get(&entry.id) {
            self.changes.remove(old.version.to_be_bytes()).map_err(&e)?;
        }
        entry.version = version;
        self.entries
            .insert(&entry.id, serde_json::to_vec(&entry).expect("plain data"))
            .map_err(&e)?;
        self.changes
            .insert(version.to_be_bytes(), entry.id.as_bytes())
            .map_err(&e)?;
        self.db
            .insert(VERSION, &version.to_be_bytes())
            .map_err(&e)?;
        Ok(entry)
    }

    /// Adds a newly published replica (or replaces what was known of it) under the next
    /// version.
    pub fn add(&self, entry: CatalogEntry) -> Result<CatalogEntry, CatalogError> {
        self.put(entry)
    }

    /// Changes an entry's state (a new version) unless it is already in it.
    pub fn set_state(&self, id: &str, state: ReplicaState) -> Result<bool, CatalogError> {
        match self.get(id) {
            Some(entry) if entry.state != state => {
                self.put(CatalogEntry { state, ..entry })?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Marks every servable entry on `disk` unreadable, for `reason`. Returns how many.
    pub fn disk_failed(&self, disk: &str, reason: &str) -> Result<usize, CatalogError> {
        let mut n = 0;
        for entry in self.entries() {
            if entry.disk == disk && entry.state.servable() {
                self.put(CatalogEntry {
                    state: ReplicaState::unreadable(reason),
                    ..entry
                })?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Throws everything away and reads the disks again, under a new name.
    pub fn rebuild(&self, disks: &[Arc<Disk>]) -> Result<SyncReport, CatalogError> {
        let started = std::time::Instant::now();
        tracing::info!(node = %self.node, disks = disks.len(), "rebuilding the catalog from the disks");
        {
            let _held = self.write.lock().unwrap_or_else(|p| p.into_inner());
            let e = self.sled_err();
            self.entries.clear().map_err(&e)?;
            self.changes.clear().map_err(&e)?;
            self.db.remove(VERSION).map_err(&e)?;
            self.db.remove(GENERATION).map_err(&e)?;
        }
        let report = self.sync(disks)?;
        // Named last: a rebuild cut short is found unfinished at the next open.
        let generation = format!(
            "{}-{:x}",
            self.node,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        self.db
            .insert(GENERATION, generation.as_bytes())
            .map_err(self.sled_err())?;
        self.db.flush().map_err(self.sled_err())?;
        tracing::info!(
            node = %self.node,
            replicas = report.added,
            unreadable = report.unreadable.len(),
            seconds = started.elapsed().as_secs_f64(),
            "catalog rebuilt"
        );
        Ok(report)
    }

    /// Brings the catalog up to date with the disks: replica folders it does not know are read
    /// and added (or re-read when their entry was not servable), entries whose folder is gone
    /// become `Removed`, and entries of a disk that is not in `disks` (not in service) become
    /// unreadable. Disks are read in the order given and folders in id order, so the same
    /// disks always give the same catalog.
    pub fn sync(&self, disks: &[Arc<Disk>]) -> Result<SyncReport, CatalogError> {
        let mut report = SyncReport::default();
        let mut seen = std::collections::HashSet::new();
        let mut read_disks = std::collections::HashSet::new();
        for disk in disks.iter().filter(|d| !d.is_failed()) {
            let ids = match replica::list(&disk.images_dir()) {
                Ok(ids) => ids,
                Err(e) => {
                    report.problems.push(format!(
                        "disk {}: cannot list {}: {e}",
                        disk.config.id,
                        disk.images_dir().display()
                    ));
                    continue;
                }
            };
            read_disks.insert(disk.config.id.clone());
            // Half a million folders take minutes: say how far it has come, every few seconds.
            let (total, started) = (ids.len(), std::time::Instant::now());
            let mut told = started;
            for (read, id) in ids.into_iter().enumerate() {
                if told.elapsed() >= PROGRESS_EVERY {
                    told = std::time::Instant::now();
                    tracing::info!(
                        node = %self.node,
                        disk = %disk.config.id,
                        read,
                        of = total,
                        per_second = (read as f64 / started.elapsed().as_secs_f64()) as u64,
                        "reading the disk's replica folders into the catalog"
                    );
                }
                if !seen.insert(id.clone()) {
                    report.problems.push(format!(
                        "disk {}: a second replica of {id} on this node; only the first is used",
                        disk.config.id
                    ));
                    continue;
                }
                // A known entry is kept only if its manifest still says what the entry does:
                // the catalog is a cache whose last writes a power cut can take back (its flush
                // is not an fsync), while the manifest on the disk is the truth (a set adopted,
                // metadata edited just before the cut).
                let known = self.get(&id);
                if known.as_ref().is_some_and(|k| {
                    k.disk == disk.config.id && k.state.servable() && manifest_agrees(disk, k)
                }) {
                    report.kept += 1;
                    continue;
                }
                let entry = read_entry(disk, &id);
                if let ReplicaState::Unreadable { reason, .. } = &entry.state {
                    report.problems.push(reason.clone());
                    report
                        .unreadable
                        .push((id.clone(), disk.config.id.clone(), reason.clone()));
                } else {
                    report.added += 1;
                }
                self.put(entry)?;
            }
        }
        for entry in self.entries() {
            if seen.contains(&entry.id) || entry.state.gone() {
                continue;
            }
            if read_disks.contains(&entry.disk) {
                self.put(CatalogEntry {
                    state: ReplicaState::Removed,
                    ..entry
                })?;
                report.removed += 1;
            } else if entry.state.servable() {
                let reason = format!("disk {} is not in service", entry.disk);
                report
                    .unreadable
                    .push((entry.id.clone(), entry.disk.clone(), reason.clone()));
                self.put(CatalogEntry {
                    state: ReplicaState::unreadable(reason),
                    ..entry
                })?;
            }
        }
        Ok(report)
    }

    pub fn flush(&self) {
        let _ = self.db.flush();
    }
}

/// Whether the manifest of `entry`'s replica on `disk` names the set and the files the entry
/// does.
fn manifest_agrees(disk: &Disk, entry: &CatalogEntry) -> bool {
    replica::read_manifest(&disk.images_dir().join(&entry.id), &entry.id).is_ok_and(|m| {
        m.nodes == entry.nodes && m.placed_at == entry.epoch && m.files == entry.files
    })
}

/// Reads a replica folder into an entry; what cannot be read makes it `Unreadable`, saying why.
pub fn read_entry(disk: &Disk, id: &str) -> CatalogEntry {
    let dir = disk.images_dir().join(id);
    let mut entry = CatalogEntry {
        id: id.to_string(),
        version: 0,
        state: ReplicaState::Ok,
        disk: disk.config.id.clone(),
        nodes: Vec::new(),
        epoch: 0,
        width: 0,
        height: 0,
        meta: cluster::ImageMeta::default(),
        files: Vec::new(),
    };
    let mut read = || -> Result<(), String> {
        let manifest = replica::read_manifest(&dir, id).map_err(|e| e.to_string())?;
        entry.nodes = manifest.nodes;
        entry.epoch = manifest.placed_at;
        entry.files = manifest.files;
        entry.meta = replica::read_meta(&dir).map_err(|e| e.to_string())?;
        let pyramid =
            tiler::PyramidReader::open(&dir.join(replica::PYRAMID)).map_err(|e| e.to_string())?;
        (entry.width, entry.height) = (pyramid.geometry().width, pyramid.geometry().height);
        Ok(())
    };
    if let Err(reason) = read() {
        entry.state = ReplicaState::unreadable(reason);
    }
    entry
}
