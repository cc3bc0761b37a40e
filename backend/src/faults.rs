//! What the node does the moment something breaks: a disk that returns an I/O error or hangs
//! is failed (no request touches it again), the fact is recorded as an event with its
//! evidence, and the catalog marks the replicas concerned, so frontends learn of it at their
//! next catalog poll as well as from `/health`.

use std::sync::Arc;

use cluster::{Component, EventKind, ReplicaState};
use floor::{EventLog, NewEvent};
use tiler::ReadError;

use crate::catalog::Catalog;
use crate::disk::Disk;
use crate::library::Image;

pub struct Faults {
    catalog: Arc<Catalog>,
    events: Arc<EventLog>,
    /// Replicas found damaged since the node started, with the first reason: `/health`
    /// shows them without scanning the catalog.
    suspects: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
}

impl Faults {
    pub fn new(catalog: Arc<Catalog>, events: Arc<EventLog>) -> Faults {
        Faults {
            catalog,
            events,
            suspects: Default::default(),
        }
    }

    /// The replicas found damaged since the node started: (image id, why).
    pub fn suspects(&self) -> Vec<(String, String)> {
        let s = self.suspects.lock().unwrap_or_else(|p| p.into_inner());
        s.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Fails `disk` for `why`. Only the first call for a disk records anything; it returns
    /// whether this was it.
    pub fn disk_failed(&self, disk: &Arc<Disk>, kind: EventKind, why: &str) -> bool {
        if !disk.mark_failed(&why) {
            return false;
        }
        let id = &disk.config.id;
        tracing::error!(disk = %id, error = %why, "disk failed; no longer read");
        let slot = disk
            .config
            .location
            .slot
            .map_or_else(String::new, |s| format!(" (slot {s})"));
        self.events.record(
            NewEvent::new(
                Component::Disk { disk: id.clone() },
                kind,
                format!("disk {id}{slot} failed and is no longer read; its images are served from their other replicas"),
            )
            .at(disk.config.location.clone(), disk.config.serial.clone())
            .evidence(why),
        );
        // Marking every entry of the disk is sled work proportional to its images: off the
        // async threads when there are some.
        let (catalog, disk_id, reason) = (
            self.catalog.clone(),
            id.clone(),
            format!("disk {id} failed: {why}"),
        );
        let mark = move || {
            if let Err(e) = catalog.disk_failed(&disk_id, &reason) {
                tracing::error!(disk = %disk_id, error = %e, "catalog: cannot mark the replicas of a failed disk");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(mark)),
            Err(_) => mark(),
        }
        true
    }

    /// Takes note of an error reading `image`: an I/O error fails its disk; damage to the file
    /// (a checksum mismatch) makes this replica suspect.
    pub fn read_failed(&self, image: &Image, error: &ReadError) {
        if error.is_io() {
            self.disk_failed(&image.disk, EventKind::DiskFailed, &error.to_string());
        } else {
            self.replica_suspect(image, &error.to_string());
        }
    }

    /// Records once that part of a replica is damaged.
    pub fn replica_suspect(&self, image: &Image, why: &str) {
        self.suspects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(image.id.clone())
            .or_insert_with(|| why.to_string());
        let state = ReplicaState::Suspect {
            reason: why.to_string(),
        };
        match self.catalog.set_state(&image.id, state) {
            Ok(false) => {}
            Ok(true) => {
                tracing::error!(image = %image.id, error = %why, "replica damaged");
                self.events.record(
                    NewEvent::new(
                        Component::Replica {
                            image: image.id.clone(),
                            disk: image.disk.config.id.clone(),
                        },
                        EventKind::ReplicaCorrupt,
                        format!(
                            "the replica of {} on disk {} is damaged; the damaged parts are \
                             not served",
                            image.id, image.disk.config.id
                        ),
                    )
                    .evidence(why),
                );
            }
            Err(e) => {
                tracing::error!(image = %image.id, error = %e, "catalog: cannot mark a replica suspect")
            }
        }
    }
}
