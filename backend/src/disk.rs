//! A node's disks: each carries an identity file written when the disk is adopted, so that a
//! disk moved to another slot or node, or swapped for a blank one, is recognised by what it is,
//! not by where it is mounted.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use cluster::identity::{Identity, IDENTITY_FILE};
use cluster::DiskConfig;
use serde::Serialize;

/// Where a disk keeps its images.
pub const IMAGES_DIR: &str = "images";

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("disk {disk} at {path}: {source}")]
    Io {
        disk: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "disk {disk} at {path} holds files but no {IDENTITY_FILE}: not adopted, so that nothing on it \
         is overwritten (empty it, or mount the right disk there)"
    )]
    NotEmpty { disk: String, path: PathBuf },
    #[error("disk {disk} at {path} has no {IDENTITY_FILE}: the node has not adopted it yet")]
    NotAdopted { disk: String, path: PathBuf },
    #[error("disk {disk} at {path}: {IDENTITY_FILE} is damaged: {source}")]
    BadIdentity {
        disk: String,
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "disk at {path} is disk {found_disk} of node {found_node}, not disk {disk} of node {node}: \
         not used (was it moved? correct the configuration or swap it back)"
    )]
    Mismatch {
        disk: String,
        node: String,
        path: PathBuf,
        found_disk: String,
        found_node: String,
    },
}

/// Checks that the disk mounted at `config.path` is the configured one, adopting it (writing
/// its identity file) if it is blank. Returns its identity.
pub fn adopt_or_check(config: &DiskConfig, node: &str) -> Result<Identity, DiskError> {
    check_or(config, node, true)
}

/// Checks that the disk mounted at `config.path` is the configured one; never writes.
pub fn check(config: &DiskConfig, node: &str) -> Result<Identity, DiskError> {
    check_or(config, node, false)
}

fn check_or(config: &DiskConfig, node: &str, may_adopt: bool) -> Result<Identity, DiskError> {
    let root = &config.path;
    let io = |path: &Path| {
        let (disk, path) = (config.id.clone(), path.to_path_buf());
        move |source| DiskError::Io { disk, path, source }
    };
    let id_path = root.join(IDENTITY_FILE);
    let identity = match std::fs::read(&id_path) {
        Ok(bytes) => {
            serde_json::from_slice::<Identity>(&bytes).map_err(|source| DiskError::BadIdentity {
                disk: config.id.clone(),
                path: id_path.clone(),
                source,
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_adopt => adopt(config, node)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DiskError::NotAdopted {
                disk: config.id.clone(),
                path: root.clone(),
            })
        }
        Err(e) => return Err(io(&id_path)(e)),
    };
    if identity.disk_id != config.id || identity.node != node {
        return Err(DiskError::Mismatch {
            disk: config.id.clone(),
            node: node.to_string(),
            path: root.clone(),
            found_disk: identity.disk_id,
            found_node: identity.node,
        });
    }
    if may_adopt {
        let images = root.join(IMAGES_DIR);
        floor::durable::create_dir(&images).map_err(io(&images))?;
    }
    Ok(identity)
}

fn adopt(config: &DiskConfig, node: &str) -> Result<Identity, DiskError> {
    let root = &config.path;
    let io = |source| DiskError::Io {
        disk: config.id.clone(),
        path: root.clone(),
        source,
    };
    let blank = std::fs::read_dir(root)
        .map_err(io)?
        .filter_map(Result::ok)
        // The health probe's own file does not make a disk non-blank (a blank disk put in a
        // failed one's slot is probed before it is adopted).
        .all(|e| e.file_name() == "lost+found" || e.file_name() == crate::disk_probe::PROBE_FILE);
    if !blank {
        return Err(DiskError::NotEmpty {
            disk: config.id.clone(),
            path: root.clone(),
        });
    }
    let identity = Identity {
        disk_id: config.id.clone(),
        node: node.to_string(),
        serial: config.serial.clone(),
        slot: config.location.slot,
        adopted_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    floor::durable::write(
        &root.join(IDENTITY_FILE),
        &serde_json::to_vec_pretty(&identity).expect("plain data"),
    )
    .map_err(|e| io(e.source))?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> DiskConfig {
        DiskConfig {
            id: "a1".into(),
            path: dir.to_path_buf(),
            serial: Some("WD-1".into()),
            location: cluster::Location {
                slot: Some(4),
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_blank_disk_is_adopted_once_and_then_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let first = adopt_or_check(&config(dir.path()), "node-a").unwrap();
        assert_eq!((first.disk_id.as_str(), first.slot), ("a1", Some(4)));
        assert!(dir.path().join(IMAGES_DIR).is_dir());
        let again = adopt_or_check(&config(dir.path()), "node-a").unwrap();
        assert_eq!(again, first, "the identity is read back, not rewritten");
    }

    #[test]
    fn a_disk_of_another_node_or_with_unknown_files_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        adopt_or_check(&config(dir.path()), "node-a").unwrap();
        let err = adopt_or_check(&config(dir.path()), "node-b").unwrap_err();
        assert!(
            matches!(err, DiskError::Mismatch { ref found_node, .. } if found_node == "node-a"),
            "{err}"
        );
        let full = tempfile::tempdir().unwrap();
        std::fs::write(full.path().join("somebody's.txt"), b"data").unwrap();
        assert!(matches!(
            adopt_or_check(&config(full.path()), "node-a"),
            Err(DiskError::NotEmpty { .. })
        ));
        assert!(!full.path().join(IDENTITY_FILE).exists());
    }
}

/// Whether a disk may be read.
///
/// A disk is failed on evidence only: an I/O error, or a probe that hangs far longer than any
/// healthy disk under load. A probe that is merely slow masks the disk from visitors while it is
/// slow (`Slow`), and a failed disk that answers again is checked (`Returning`: its replicas read
/// back against their manifests) before it serves again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DiskState {
    Healthy,
    /// Answering, but its last probe took longer than the masking budget: visitors are sent to
    /// the other replicas until it is quick again. Still written to and counted in service.
    Slow {
        probe_ms: u64,
        since: u64,
    },
    Failed {
        error: String,
        since: u64,
    },
    /// Failed, then answered its probes again: being checked before it serves again.
    Returning {
        since: u64,
    },
}

/// A disk in use by this node, with its live state.
#[derive(Debug)]
pub struct Disk {
    pub config: DiskConfig,
    /// A `std::sync::Mutex`, not a Tokio one: held only to copy or swap a small value, never
    /// across an await.
    state: std::sync::Mutex<DiskState>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Disk {
    pub fn new(config: DiskConfig) -> Disk {
        Disk {
            config,
            state: std::sync::Mutex::new(DiskState::Healthy),
        }
    }

    pub fn images_dir(&self) -> PathBuf {
        self.config.path.join(IMAGES_DIR)
    }

    pub fn state(&self) -> DiskState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, new: DiskState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = new;
    }

    /// Out of service: failed, or being checked after it came back. Nothing reads or writes it.
    pub fn is_failed(&self) -> bool {
        matches!(
            self.state(),
            DiskState::Failed { .. } | DiskState::Returning { .. }
        )
    }

    /// Whether visitors' requests may read it now (healthy: not failed, checked or slow).
    pub fn serves(&self) -> bool {
        self.state() == DiskState::Healthy
    }

    /// Marks the disk failed; returns true if it was in service until now (report it once).
    pub fn mark_failed(&self, error: &dyn std::fmt::Display) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, DiskState::Failed { .. }) {
            return false;
        }
        *state = DiskState::Failed {
            error: error.to_string(),
            since: now(),
        };
        true
    }

    /// A probe took `probe_ms`: masks a healthy disk from visitors. Returns true if it was
    /// healthy until now.
    pub fn mark_slow(&self, probe_ms: u64) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *state {
            DiskState::Healthy => {
                *state = DiskState::Slow {
                    probe_ms,
                    since: now(),
                };
                true
            }
            DiskState::Slow { since, .. } => {
                *state = DiskState::Slow { probe_ms, since };
                false
            }
            _ => false,
        }
    }

    /// A probe was quick again: a slow disk serves again. Returns true if it was slow.
    pub fn mark_quick(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, DiskState::Slow { .. }) {
            *state = DiskState::Healthy;
            return true;
        }
        false
    }

    /// A failed disk answered its probes again: it is checked before it serves. Returns true
    /// if it was failed.
    pub fn mark_returning(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, DiskState::Failed { .. }) {
            *state = DiskState::Returning { since: now() };
            return true;
        }
        false
    }

    /// The check of a returning disk passed: it is healthy and serves again.
    pub fn mark_returned(&self) {
        self.set(DiskState::Healthy);
    }
}
