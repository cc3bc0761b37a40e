//! The node's self-check: does the catalog say what the disks hold? Every entry's folder is read
//! and every file hashed against its manifest, and every replica folder on the disks must be
//! in the catalog. It reads, and never changes, the disks or the catalog. A running node's
//! catalog is read over its `/catalog` (sled lets one process hold it).

use std::collections::BTreeSet;
use std::sync::Arc;

use cluster::ReplicaState;

use crate::catalog::{read_entry, Catalog};
use crate::disk::Disk;
use crate::replica;

/// What an audit found.
#[derive(Debug, Default)]
pub struct AuditReport {
    pub replicas: usize,
    pub bytes: u64,
    /// One line per disagreement, naming the image, the disk and what is wrong.
    pub problems: Vec<String>,
}

/// Audits `catalog` against `disks` (the node's disks that are in service), calling `progress`
/// with (bytes read, bytes to read).
pub fn audit(
    catalog: &Catalog,
    disks: &[Arc<Disk>],
    progress: &mut dyn FnMut(u64, u64),
) -> AuditReport {
    audit_entries(catalog.entries(), disks, progress)
}

/// Audits the catalog `entries` (read from the catalog, or from a running node's `/catalog`)
/// against `disks`.
pub fn audit_entries(
    entries: Vec<cluster::CatalogEntry>,
    disks: &[Arc<Disk>],
    progress: &mut dyn FnMut(u64, u64),
) -> AuditReport {
    let mut report = AuditReport::default();
    let entries: Vec<_> = entries.into_iter().filter(|e| !e.state.gone()).collect();
    let total: u64 = entries.iter().flat_map(|e| &e.files).map(|f| f.size).sum();
    let mut known = BTreeSet::new();
    for entry in &entries {
        known.insert((entry.disk.clone(), entry.id.clone()));
        let what = format!("{} on disk {}", entry.id, entry.disk);
        if let ReplicaState::Unreadable { reason, .. } = &entry.state {
            report.problems.push(format!(
                "{what}: the catalog knows it is unreadable: {reason}"
            ));
            report.bytes += entry.files.iter().map(|f| f.size).sum::<u64>();
            continue;
        }
        let Some(disk) = disks.iter().find(|d| d.config.id == entry.disk) else {
            report
                .problems
                .push(format!("{what}: the disk is not in service"));
            continue;
        };
        let on_disk = read_entry(disk, &entry.id);
        if let ReplicaState::Unreadable { reason, .. } = &on_disk.state {
            report.problems.push(format!("{what}: {reason}"));
            continue;
        }
        if (&on_disk.files, &on_disk.meta, &on_disk.nodes, on_disk.width)
            != (&entry.files, &entry.meta, &entry.nodes, entry.width)
        {
            report.problems.push(format!(
                "{what}: the catalog's record differs from the replica's manifest and metadata \
                 (rebuild the catalog)"
            ));
        }
        let dir = disk.images_dir().join(&entry.id);
        let manifest = match replica::read_manifest(&dir, &entry.id) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(format!("{what}: {e}"));
                continue;
            }
        };
        let before = report.bytes;
        for wrong in replica::verify(&dir, &manifest, &mut |n| progress(before + n, total)) {
            report.problems.push(format!("{what}: {wrong}"));
        }
        report.bytes = before + manifest.files.iter().map(|f| f.size).sum::<u64>();
        report.replicas += 1;
        progress(report.bytes, total);
    }
    for disk in disks {
        match replica::list(&disk.images_dir()) {
            Ok(ids) => {
                for id in ids {
                    if !known.contains(&(disk.config.id.clone(), id.clone())) {
                        report.problems.push(format!(
                            "{id} on disk {}: on the disk but not in the catalog (rebuild the \
                             catalog)",
                            disk.config.id
                        ));
                    }
                }
            }
            Err(e) => report.problems.push(format!(
                "disk {}: cannot list {}: {e}",
                disk.config.id,
                disk.images_dir().display()
            )),
        }
    }
    report
}
