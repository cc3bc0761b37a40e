//! Hidden copies nothing will publish: a re-mirror target given up while it was down keeps its
//! placed or verified copy (the discard never reached it), and an ingest coordinator that lost
//! to the node that took its upload over may leave one on a target the winner did not choose.
//! Neither is ever served, but each holds a whole replica's worth of disk for good: the node's
//! start clears only `.incoming` copies, because ingest and re-mirrors resume from the others.
//!
//! The re-mirror worker sweeps them at each round, by [`protocol::hidden_superseded`] (pure,
//! and the rule the handover model checks): a hidden copy goes once some set that leaves this
//! node out is served whole in two power domains, and the copy has not changed for the disk
//! grace period (a copy still arriving or being verified is left alone).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cluster::ReplicaState;

use super::peers::Peers;
use super::protocol::{self, Peer};
use crate::disk::Disk;

/// A hidden copy found on one of this node's disks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hidden {
    pub image: String,
    pub disk: String,
    pub dir: std::path::PathBuf,
}

/// The placed and verified copies on `disks` in service, with how long each has been left.
pub fn hidden_copies(disks: &[Arc<Disk>]) -> Vec<(Hidden, Duration)> {
    let mut found = Vec::new();
    for d in disks.iter().filter(|d| d.serves()) {
        let Ok(entries) = std::fs::read_dir(d.images_dir()) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(image) = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".placed").or(n.strip_suffix(".verified")))
            else {
                continue;
            };
            let left = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            found.push((
                Hidden {
                    image: image.to_string(),
                    disk: d.config.id.clone(),
                    dir: e.path(),
                },
                left,
            ));
        }
    }
    found
}

/// The copies of `found` that a set served whole without `me` supersedes and that were left
/// for `quiet`.
pub fn superseded(
    me: &str,
    found: Vec<(Hidden, Duration)>,
    peers: &Peers,
    domain_of: &dyn Fn(&str) -> Option<String>,
    quiet: Duration,
) -> Vec<Hidden> {
    let now = Instant::now();
    found
        .into_iter()
        .filter(|(_, left)| *left >= quiet)
        .map(|(copy, _)| copy)
        .filter(|copy| {
            let others: Vec<Peer> = peers
                .nodes
                .iter()
                .filter(|p| {
                    p.replicas
                        .get(&copy.image)
                        .is_some_and(|h| h.state != ReplicaState::Removed)
                })
                .map(|p| Peer {
                    node: p.name.clone(),
                    domain: p.domain.clone(),
                    holding: p.holding(&copy.image, now),
                })
                .collect();
            protocol::hidden_superseded(me, &others, domain_of)
        })
        .collect()
}

/// Removes `copies` (blocking disk work); returns how many went.
pub fn remove(me: &str, copies: Vec<Hidden>) -> usize {
    let mut removed = 0;
    for copy in copies {
        match std::fs::remove_dir_all(&copy.dir) {
            Ok(()) => {
                removed += 1;
                tracing::info!(node = me, image = %copy.image, disk = %copy.disk, "swept a hidden copy nothing will publish: the image is served whole by other nodes");
            }
            Err(e) => {
                tracing::warn!(node = me, image = %copy.image, disk = %copy.disk, error = %e, "a hidden copy nothing will publish could not be removed");
            }
        }
    }
    removed
}
