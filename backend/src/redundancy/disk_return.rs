//! A failed disk that answers its probes again (remounted, cable reseated, or a new disk in
//! its slot) is checked before it serves: it must be the same disk (its identity file), or a
//! blank one, adopted in its place; every replica on it is read back against its manifest;
//! replicas superseded meanwhile (copied to another disk of this node, or withdrawn) are
//! removed. Only then is it healthy, and its replicas are served again. A disk holding another
//! disk's or node's identity stays out.

use std::sync::Arc;

use cluster::{Component, EventKind, ReplicaState};
use floor::{EventLog, NewEvent};

use super::removal;
use crate::catalog::Catalog;
use crate::disk::{self, Disk, DiskError};
use crate::library::Library;
use crate::replica;

/// What the check of a returning disk found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Returned {
    /// A blank disk was adopted in the failed one's place.
    pub replaced: bool,
    pub verified: usize,
    /// Replicas removed: superseded here or withdrawn.
    pub removed: usize,
    /// Replicas that do not match their manifest (left unreadable; their partners copy them
    /// again), with what was wrong.
    pub damaged: Vec<String>,
}

/// Checks returning `disk` of node `node`; on success it serves again.
pub fn check(
    node: &str,
    disk: &Arc<Disk>,
    catalog: &Catalog,
    library: &Library,
    events: &EventLog,
    origin_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Returned, DiskError> {
    let mut found = Returned::default();
    let blank_before = !disk.config.path.join(disk::IDENTITY_FILE).exists();
    let identity = match disk::adopt_or_check(&disk.config, node) {
        Ok(i) => i,
        Err(e) => {
            disk.mark_failed(&format!("came back, but {e}"));
            events.record(
                NewEvent::new(
                    Component::Disk {
                        disk: disk.config.id.clone(),
                    },
                    EventKind::DiskRefused,
                    format!("disk {} answers again but is not used", disk.config.id),
                )
                .at(disk.config.location.clone(), disk.config.serial.clone())
                .evidence(e.to_string()),
            );
            return Err(e);
        }
    };
    found.replaced = blank_before;
    let others: Vec<Arc<Disk>> = library
        .disks()
        .iter()
        .filter(|d| d.config.id != disk.config.id && !d.is_failed())
        .cloned()
        .collect();
    let stones = removal::tombstones(&others);
    let ids = replica::list(&disk.images_dir()).unwrap_or_default();
    for id in ids {
        let elsewhere = catalog
            .get(&id)
            .is_some_and(|e| e.disk != disk.config.id && e.state.servable());
        if elsewhere || stones.contains_key(&id) {
            if removal::remove_folder(disk, &id).is_ok() {
                found.removed += 1;
            }
            continue;
        }
        let dir = disk.images_dir().join(&id);
        let wrong = match replica::read_manifest(&dir, &id) {
            Ok(m) => {
                for f in &m.files {
                    replica::drop_cache(&dir.join(&f.name));
                }
                replica::verify(&dir, &m, &mut |_| {})
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            }
            Err(e) => vec![e.to_string()],
        };
        if wrong.is_empty() {
            found.verified += 1;
        } else {
            found.damaged.push(format!("{id}: {}", wrong.join("; ")));
        }
    }
    // In service again: the catalog reads its folders back, the library serves them, while no
    // replica is being taken off (a trim between the two would be served again from files it
    // had already unlinked).
    let changing = library.changing();
    disk.mark_returned();
    let all: Vec<Arc<Disk>> = library.disks().to_vec();
    if let Err(e) = catalog.sync(&all) {
        tracing::error!(disk = %disk.config.id, error = %e, "catalog: cannot read a returning disk back");
    }
    for entry in catalog.entries() {
        if entry.disk != disk.config.id {
            continue;
        }
        let bad = found
            .damaged
            .iter()
            .find(|d| d.starts_with(&format!("{}: ", entry.id)));
        if let Some(why) = bad {
            let _ = catalog.set_state(
                &entry.id,
                ReplicaState::unreadable(format!("damaged after its disk returned: {why}")),
            );
            continue;
        }
        if entry.state.servable() && library.get(&entry.id).is_none() {
            if let Err(e) = library.insert(entry.clone(), disk, origin_of) {
                tracing::error!(image = %entry.id, error = %e, "a returning replica cannot be served");
            }
        }
    }
    catalog.flush();
    drop(changing);
    let mut event = NewEvent::new(
            Component::Disk {
                disk: disk.config.id.clone(),
            },
            if found.replaced {
                EventKind::DiskReplaced
            } else {
                EventKind::DiskReturned
            },
            if found.replaced {
                format!(
                    "a blank disk in the slot of disk {} was adopted (serial as configured: {}); it is refilled by re-mirroring",
                    disk.config.id,
                    identity.serial.as_deref().unwrap_or("unknown")
                )
            } else {
                format!(
                    "disk {} answers again: {} replicas verified, {} superseded removed, {} damaged",
                    disk.config.id,
                    found.verified,
                    found.removed,
                    found.damaged.len()
                )
            },
        )
        .at(disk.config.location.clone(), disk.config.serial.clone());
    for d in &found.damaged {
        event = event.evidence(d.clone());
    }
    events.record(event);
    Ok(found)
}
