//! The disk probe, one per disk: is the configured disk the one mounted there (its identity
//! file, read from the disk, not the cache), and does a small write reach it and read back
//! (write, fsync, read)? An I/O error is a failed disk; a probe that does not return within its
//! deadline is a hung disk; another disk's identity is a refused disk, never written to.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cluster::identity::{Identity, IDENTITY_FILE};
use cluster::worker::BoxFuture;
use cluster::{Component, DiskConfig, EventKind};
use tokio::task::JoinHandle;

use crate::detector::{Detector, Findings, Look};
use floor::event_log::NewEvent;

/// The monitor's probe file (the backend has its own).
pub const PROBE_FILE: &str = ".td-monitor-probe";
/// A probe not back within this is a hung disk.
pub const DEADLINE: Duration = Duration::from_secs(1);
pub const INTERVAL: Duration = Duration::from_millis(500);

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The right disk, and it answers. Its filesystem's device number.
    Ok { dev: u64 },
    /// Nothing there, or an empty folder where a disk was seen before.
    Missing(String),
    /// An empty disk the backend has not adopted yet.
    NotAdopted,
    /// Another disk, or unknown files: never written to.
    Refused(String),
    /// An I/O error.
    Failed(String),
}

/// Every this many rounds the identity file is read from the disk; in between its presence is
/// checked (a stat), which is enough to never write where the disk has vanished.
pub const REREAD_IDENTITY: u64 = 4;

/// Probes the disk at `path`, configured as `disk` of `node`; `reread`: read its identity file
/// from the disk (else only check that it is there, unless another filesystem than `seen_on`
/// is mounted there now: a swapped disk is read at once). Blocking.
pub fn probe(
    path: &Path,
    disk: &str,
    node: &str,
    round: u64,
    reread: bool,
    seen_on: Option<u64>,
) -> Outcome {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Outcome::Missing(format!("{} does not exist", path.display()))
        }
        Err(e) => return Outcome::Failed(format!("{}: {e}", path.display())),
    };
    let id_path = path.join(IDENTITY_FILE);
    let reread = reread || seen_on != Some(meta.dev());
    let read = if reread {
        floor::probe::read_uncached(&id_path)
    } else {
        std::fs::metadata(&id_path).map(|_| Vec::new())
    };
    let identity = match read {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let blank = std::fs::read_dir(path).map(|entries| {
                entries
                    .filter_map(Result::ok)
                    // The backend's probe file on a blank disk waiting to be adopted.
                    .all(|e| {
                        let name = e.file_name();
                        name == "lost+found" || name == ".td-probe" || name == PROBE_FILE
                    })
            });
            return match blank {
                Ok(true) => Outcome::NotAdopted,
                Ok(false) => Outcome::Refused(format!(
                    "{} holds files but no {IDENTITY_FILE}: not a disk of this cluster",
                    path.display()
                )),
                Err(e) => Outcome::Failed(format!("listing {}: {e}", path.display())),
            };
        }
        Err(e) => return Outcome::Failed(format!("reading {}: {e}", id_path.display())),
    };
    match serde_json::from_slice::<Identity>(&identity) {
        _ if !reread => {}
        Ok(i) if i.disk_id == disk && i.node == node => {}
        Ok(i) => {
            return Outcome::Refused(format!(
                "the disk at {} is disk {} of node {}, not disk {disk} of node {node}",
                path.display(),
                i.disk_id,
                i.node
            ))
        }
        Err(e) => {
            return Outcome::Refused(format!("{} is damaged: {e}", id_path.display()));
        }
    }
    match floor::probe::write_fsync_read(&path.join(PROBE_FILE), round) {
        Ok(()) => Outcome::Ok { dev: meta.dev() },
        Err(e) => Outcome::Failed(format!("write, fsync and read back a probe file: {e}")),
    }
}

pub struct DiskProbe {
    config: DiskConfig,
    node: String,
    round: u64,
    pending: Option<(JoinHandle<Outcome>, Instant)>,
    /// The device of the filesystem last seen holding this disk.
    seen_on: Option<u64>,
    /// Whether the last probe found the right disk answering.
    last_ok: bool,
    passed: u64,
}

impl DiskProbe {
    pub fn new(config: DiskConfig, node: &str) -> DiskProbe {
        DiskProbe {
            config,
            node: node.to_string(),
            round: 0,
            pending: None,
            seen_on: None,
            last_ok: false,
            passed: 0,
        }
    }

    fn key(&self, what: &str) -> String {
        format!("probe:{}:{what}", self.config.id)
    }

    fn event(&self, kind: EventKind, summary: String) -> NewEvent {
        NewEvent::new(
            Component::Disk {
                disk: self.config.id.clone(),
            },
            kind,
            summary,
        )
        .at(self.config.location.clone(), self.config.serial.clone())
    }

    fn where_(&self) -> String {
        let slot = self
            .config
            .location
            .slot
            .map_or_else(String::new, |s| format!(", slot {s}"));
        format!(
            "disk {} ({}{slot})",
            self.config.id,
            self.config.path.display()
        )
    }

    /// Ends every fault but `keep` (a disk that answers has none).
    fn clear_all_but(&self, found: &Findings, keep: &str) {
        for what in ["failed", "hung", "missing", "refused"] {
            if what != keep {
                found.clear(&self.key(what), || {
                    self.event(
                        EventKind::Recovered,
                        format!("{} answers its probe again", self.where_()),
                    )
                });
            }
        }
    }

    fn handle(&mut self, outcome: Outcome, took: Duration, found: &Findings) -> Look {
        self.last_ok = matches!(outcome, Outcome::Ok { .. });
        match outcome {
            Outcome::Ok { dev } => {
                self.passed += 1;
                self.seen_on = Some(dev);
                self.clear_all_but(found, "");
                Look::Done(format!(
                    "{} probes passed, last in {} ms",
                    self.passed,
                    took.as_millis()
                ))
            }
            Outcome::NotAdopted if self.seen_on.is_none() => {
                Look::Done("empty, not adopted by the backend yet".into())
            }
            Outcome::NotAdopted | Outcome::Missing(_) => {
                let why = match outcome {
                    Outcome::Missing(why) => why,
                    _ => format!(
                        "{} is empty now: the disk was unmounted or vanished",
                        self.config.path.display()
                    ),
                };
                self.clear_all_but(found, "missing");
                found.report(
                    &self.key("missing"),
                    self.event(
                        EventKind::DiskMissing,
                        format!("{} is missing", self.where_()),
                    )
                    .evidence(why.clone()),
                );
                Look::Done(format!("missing: {why}"))
            }
            Outcome::Refused(why) => {
                found.report(
                    &self.key("refused"),
                    self.event(
                        EventKind::DiskRefused,
                        format!(
                            "{} is not the configured disk; it is not used or written to (was \
                             it swapped or moved?)",
                            self.where_()
                        ),
                    )
                    .evidence(why.clone()),
                );
                Look::Done(format!("refused: {why}"))
            }
            Outcome::Failed(why) => {
                found.report(
                    &self.key("failed"),
                    self.event(
                        EventKind::DiskFailed,
                        format!("{} returns I/O errors to its probe", self.where_()),
                    )
                    .evidence(why.clone()),
                );
                Look::Done(format!("failed: {why}"))
            }
        }
    }
}

impl Detector for DiskProbe {
    fn name(&self) -> String {
        format!("disk probe {}", self.config.id)
    }

    fn interval(&self) -> Duration {
        INTERVAL
    }

    fn budget(&self) -> Duration {
        DEADLINE + Duration::from_secs(1)
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            let (mut job, started) = match self.pending.take() {
                Some(p) => p,
                None => {
                    self.round += 1;
                    let (path, disk, node, round): (PathBuf, String, String, u64) = (
                        self.config.path.clone(),
                        self.config.id.clone(),
                        self.node.clone(),
                        self.round,
                    );
                    // A disk not known good has its identity read every round.
                    let reread = !self.last_ok || round % REREAD_IDENTITY == 1;
                    let seen_on = self.seen_on;
                    let job = tokio::task::spawn_blocking(move || {
                        probe(&path, &disk, &node, round, reread, seen_on)
                    });
                    (job, Instant::now())
                }
            };
            let left = DEADLINE.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, &mut job).await {
                Ok(Ok(outcome)) => Ok(self.handle(outcome, started.elapsed(), found)),
                Ok(Err(e)) => Err(format!("the probe task failed: {e}")),
                Err(_) => {
                    let stuck = started.elapsed();
                    found.report(
                        &self.key("hung"),
                        self.event(
                            EventKind::DiskHung,
                            format!(
                                "{} does not answer: a probe has been waiting for over {} ms",
                                self.where_(),
                                DEADLINE.as_millis()
                            ),
                        )
                        .evidence(format!(
                            "write, fsync and read of {} not back after {} ms",
                            PROBE_FILE,
                            stuck.as_millis()
                        )),
                    );
                    // The same probe is awaited again: a hung disk gets no pile of threads.
                    self.pending = Some((job, started));
                    Ok(Look::Done(format!("hung for {} s", stuck.as_secs())))
                }
            }
        })
    }
}
