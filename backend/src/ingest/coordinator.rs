//! The node that received an upload coordinates it: it gathers the facts from every node
//! ([`super::facts`]), asks [`super::protocol::next_step`] what to do, does it
//! ([`super::driving`], [`super::transfers`]), and asks again. It keeps no state of its own:
//! after a crash the facts on the disks say where it was.
//!
//! This module holds what those seams share: the node's [`Ingest`] (its disks, catalog,
//! library, peers and status book) and the [`IngestWorker`] that drives every upload this node
//! received. The last chunk of an upload drives it up to the acknowledgement while the provider
//! waits ([`super::receiving`]), so "done" in the portal means two durable copies; the worker
//! drives everything after, and anything a crash interrupted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::ClusterConfig;

use super::error::About;
use super::placement;
use super::protocol::{NodeId, Step};
use super::receiving::Receiving;
use super::staging::{self, Staging};
use super::status::StatusBook;
use super::IngestError;
use crate::catalog::Catalog;
use crate::disk::Disk;
use crate::library::Library;
use crate::worker::{BoxFuture, Worker, WorkerState};

/// How long a node has to answer a question about facts.
pub(super) const ASK: Duration = Duration::from_secs(3);
/// How long a chunk may take to arrive and be fsynced.
pub(super) const CHUNK_DEADLINE: Duration = Duration::from_secs(60);

/// A chunk on its way to an upload's mirror: what the mirror said.
pub(super) type Forward = tokio::task::JoinHandle<Result<(), String>>;

/// What one call of [`Ingest::drive`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driven {
    Did(Step),
    Waiting(String),
    Done,
    /// Another task is driving it now.
    Busy,
}

/// The ingest side of one node.
pub struct Ingest {
    pub me: String,
    pub(super) cluster: ClusterConfig,
    pub(super) disks: Vec<Arc<Disk>>,
    pub(super) catalog: Arc<Catalog>,
    pub(super) library: Arc<Library>,
    /// `None` when the node has no cluster secret: it then takes no uploads.
    pub(super) peers: Option<floor::Client>,
    pub(super) off: Option<String>,
    pub status: StatusBook,
    /// The SHA-256 of each original as it arrives.
    pub sums: staging::RunningSums,
    /// The SHA-256 of each replica file as it is written here (image/file).
    pub(super) written: staging::RunningSums,
    /// Upload id → held while it is driven (see [`Ingest::drive_lock`]).
    pub(super) locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Upload id → its chunks as they arrive here (see [`Ingest::receiving_lock`]).
    pub(super) receiving: Mutex<HashMap<String, Arc<Receiving>>>,
    /// Upload id → the node receiving its chunks as they arrive (see [`Ingest::mirror`]).
    pub(super) mirrors: Mutex<HashMap<String, Option<String>>>,
    /// Upload id → its last chunks on their way to the mirror, oldest first, sent after the
    /// answer to them (see [`Ingest::append`]): what the mirror said.
    pub(super) forwarding: Mutex<HashMap<String, VecDeque<Forward>>>,
    /// Upload id → the last failure of a step the log was told of, so that one that repeats
    /// every second is logged once.
    pub(super) told: Mutex<HashMap<String, String>>,
    pub(super) wake: tokio::sync::Notify,
    /// When each other node last answered (the lease of [`super::handover`]).
    pub(super) heard: super::handover::Heard,
    /// How originals are tiled: in a bounded child once [`Ingest::tile_in`] is called.
    pub(super) tiler: std::sync::OnceLock<super::tiling::Tiler>,
}

impl Ingest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: &str,
        cluster: &ClusterConfig,
        disks: Vec<Arc<Disk>>,
        catalog: Arc<Catalog>,
        library: Arc<Library>,
        secret: Result<cluster::auth::Secret, String>,
        status: StatusBook,
    ) -> Ingest {
        let origins = cluster
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.origin()))
            .collect();
        let (peers, off) = match secret {
            Ok(s) => (Some(floor::Client::signed(Ok(s), origins)), None),
            Err(why) => (None, Some(why)),
        };
        staging::clear_debris(&disks);
        placement::clear_debris(&disks);
        Ingest {
            me: me.to_string(),
            cluster: cluster.clone(),
            disks,
            catalog,
            library,
            peers,
            off,
            status,
            sums: staging::RunningSums::default(),
            written: staging::RunningSums::default(),
            locks: Mutex::new(HashMap::new()),
            receiving: Mutex::new(HashMap::new()),
            mirrors: Mutex::new(HashMap::new()),
            forwarding: Mutex::new(HashMap::new()),
            told: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            heard: Default::default(),
            tiler: std::sync::OnceLock::new(),
        }
    }

    /// Tiles originals with `tiler` from now on (the `td` binary sets a bounded child; until
    /// then, and in library tests, tiling runs in this process).
    pub fn tile_in(&self, tiler: super::tiling::Tiler) {
        let _ = self.tiler.set(tiler);
    }

    /// Why this node takes no uploads, if it does not.
    pub fn off(&self) -> Option<&str> {
        self.off.as_deref()
    }

    pub fn disks(&self) -> &[Arc<Disk>] {
        &self.disks
    }

    /// Tests prove crash safety by killing the process at each step: with `TD_CRASH_AT=point`
    /// it sends itself SIGKILL there, right after the step's fact is on the disk
    /// ([`crate::crash_point`]).
    pub fn crash_point(&self, point: &str) {
        crate::crash_point(&self.me, point);
    }

    pub(super) fn peers(&self) -> Result<&floor::Client, IngestError> {
        self.peers
            .as_ref()
            .ok_or_else(|| IngestError::Off(self.off.clone().unwrap_or_default()))
    }

    pub(super) fn node_id(&self, name: &str) -> Option<NodeId> {
        self.cluster.nodes.iter().position(|n| n.name == name)
    }

    pub(super) fn name(&self, id: NodeId) -> &str {
        &self.cluster.nodes[id].name
    }

    /// Held while upload `id` is driven: one step at a time.
    pub(super) fn drive_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    /// Upload `id`'s chunks as they arrive here: its lock is held while a chunk is written (on
    /// its home node with the copy sent to its mirror, or on the mirror), or while it expires,
    /// so a chunk never lands in a copy being cleared, and an upload that just received one
    /// does not expire.
    pub(super) fn receiving_lock(&self, id: &str) -> Arc<Receiving> {
        let mut locks = self.receiving.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    /// Upload `id`'s copy here is whole: it takes no more chunks and never expires.
    pub(super) fn done_receiving(&self, id: &str) {
        self.receiving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Logs a step's failure unless it is the one last logged for this upload.
    pub(super) fn log_once(&self, upload: &str, image: Option<&str>, e: &IngestError) {
        let detail = e.to_string();
        let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
        if told.get(upload) != Some(&detail) {
            e.log(About {
                upload: Some(upload),
                image,
            });
            told.insert(upload.to_string(), detail);
        }
    }

    /// A step went through: its next failure is news again.
    pub(super) fn log_cleared(&self, upload: &str) {
        self.told
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(upload);
    }

    /// The worker that drives every upload this node received.
    pub fn worker(self: &Arc<Self>) -> IngestWorker {
        IngestWorker {
            ingest: self.clone(),
            line: String::new(),
            next_sweep: Instant::now(),
            watching: 0,
            expired: 0,
            taken_over: 0,
        }
    }
}

/// Drives the uploads this node received, one step of one upload per unit of work, every one
/// at least once a second while any is waiting; and expires abandoned ones
/// ([`super::expiry`]): a sweep at most every [`Ingest::sweep_every`].
pub struct IngestWorker {
    ingest: Arc<Ingest>,
    line: String,
    next_sweep: Instant,
    /// Copies still receiving at the last sweep.
    watching: usize,
    /// Uploads expired (or copies held for others cleared) since the node started.
    expired: u64,
    /// Uploads this node took over from a silent home since it started.
    taken_over: u64,
}

impl Worker for IngestWorker {
    fn name(&self) -> String {
        "ingest".into()
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            if Instant::now() >= self.next_sweep {
                let sweep = self.ingest.sweep_expired().await;
                self.watching = sweep.watching;
                self.expired += sweep.expired as u64;
                // What one sweep left goes at the next round (the pause below is its limit).
                self.next_sweep = Instant::now()
                    + if sweep.more {
                        Duration::ZERO
                    } else {
                        self.ingest.sweep_every()
                    };
            }
            self.taken_over += self.ingest.watch_homes().await.len() as u64;
            let ingest = self.ingest.clone();
            let disks = ingest.disks.clone();
            // Its own uploads, and those it took over from a silent home.
            let ids: Vec<String> = blocking(move || {
                Ok(Staging::all(&disks)
                    .into_iter()
                    .filter_map(|s| Some((s.upload().ok()?, s)))
                    .filter(|(u, s)| ingest.coordinator_of(s, u) == ingest.me)
                    .map(|(u, _)| u.id)
                    .collect())
            })
            .await
            .map_err(|e: IngestError| {
                e.log(About::default());
                e.public()
            })?;
            let mut moved = 0;
            let mut waiting = 0;
            for id in &ids {
                match self.ingest.drive(id).await {
                    Driven::Did(_) => moved += 1,
                    Driven::Waiting(_) | Driven::Busy => waiting += 1,
                    Driven::Done => {}
                }
            }
            self.line = format!(
                "{} uploads under way, {waiting} waiting, {} taken over from a silent home; {}",
                ids.len(),
                self.taken_over,
                match self.ingest.upload_expiry() {
                    Some(e) => format!(
                        "{} copies receiving expire after {} s without a chunk; {} expired",
                        self.watching,
                        e.as_secs(),
                        self.expired
                    ),
                    None => "uploads never expire".into(),
                }
            );
            Ok(if moved > 0 {
                WorkerState::Busy
            } else if !ids.is_empty() {
                WorkerState::Throttled(Duration::from_secs(1))
            } else if self.watching > 0 {
                // Copies held for other nodes: looked at again at the next sweep.
                WorkerState::Throttled(
                    self.next_sweep
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_secs(1)),
                )
            } else {
                WorkerState::Idle
            })
        })
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Woken by a finished upload; a look every 10 s finds work a restart left.
            let _ =
                tokio::time::timeout(Duration::from_secs(10), self.ingest.wake.notified()).await;
        })
    }

    fn progress(&self) -> String {
        self.line.clone()
    }
}

/// Runs blocking disk work off the async threads. A task that dies (a panic) is a fault of
/// this node.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, IngestError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(IngestError::Fault(format!("the work died: {e}"))))
}
