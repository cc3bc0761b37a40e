//! The re-mirror worker of one node. Each round it reads the other nodes' catalogs, surveys
//! every image it holds readable ([`protocol::survey`]), takes off what is superseded or
//! withdrawn, and drives one copy at a time ([`protocol::next_step`]) from here to a new
//! target: placed hidden, verified by the target, published, then adopted here. A job's
//! target and new set are recorded in `STATE/remirror/ID.json` before anything is sent, so a
//! restart goes on where it stopped. Every node runs one, so the copies of a lost disk are
//! spread over every node that holds the other replicas (declustered), one copy per source node
//! at a time.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::redundancy::{RemirrorJob, RemirrorStatus, Waiting};
use cluster::{ClusterConfig, ReplicaState};
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

use super::hidden;
use super::peers::Peers;
use super::protocol::{self, Grace, Holding, JobFacts, Peer, Set, Step, Survey, TargetStage};
use super::removal;
use super::throttle::Throttle;
use crate::catalog::Catalog;
use crate::disk::Disk;
use crate::ingest::placement::Placement;
use crate::ingest::{IngestError, DISK_RESERVE, SEND_CHUNK};
use crate::library::Library;
use crate::replica::{self, Manifest};
use crate::worker::{BoxFuture, Worker, WorkerState};
use floor::client::Call;

/// How often the other nodes' catalogs are read when there is nothing to do.
pub const ROUND: Duration = Duration::from_secs(2);
/// Copies of one source disk under way at once (see [`Redundancy::lane`]).
const LANES_PER_DISK: usize = 2;
/// How long a round's lanes go on taking jobs before the peers are read again.
const LANE_SPAN: Duration = Duration::from_secs(30);
/// A chunk sent while the throttle paces the copy for visitors (see `chunk_size`).
const PACED_CHUNK: usize = 256 << 10;

/// What the peers said of an image at a round: each node's name, whether it is up, the most
/// free bytes on one of its disks, and what it holds of the image.
type View = Vec<(String, bool, Option<u64>, Holding)>;
/// A job waiting in its disk's lane, with its catalog entry and its view.
type Queued = (Job, cluster::CatalogEntry, View);
const ASK: Duration = Duration::from_secs(10);
/// A target that failed this many times in a row is given up for another.
const TRIES: u32 = 3;
/// Entries the slow sweep surveys at a round (every entry is surveyed again at least once a
/// pass: a million-replica node's pass takes some 17 minutes), and how many while a change
/// of the peers (one silent or back, a catalog rebuilt) calls for everything to be seen again.
const SWEEP_SLICE: usize = 2_000;
const SWEEP_SLICE_FAST: usize = 50_000;

/// A peer as the survey sees it: its catalog's name, whether it was read whole, whether it
/// answers. (The last mark is whether all were read.)
type PeerMark = (String, bool, bool);

/// Where the surveys stand, so that a round surveys what changed since the last, not every
/// entry: a node of half a million replicas read them all every 2 s, a core's work.
#[derive(Debug, Clone, Default)]
struct Surveyed {
    /// This node's catalog, its name and the version surveyed up to (none: not yet).
    catalog: Option<(String, u64)>,
    /// The peers at the last round.
    peers: Vec<PeerMark>,
    /// The sweep's last id, and whether it goes fast until it wraps around.
    sweep_after: String,
    sweep_fast: bool,
}

/// The entries of `catalog` a round surveys, besides every id in `named`: those changed since
/// the last round, and the sweep's next slice. A new catalog or a change of the peers starts
/// the sweep again, fast: those entries may now decide otherwise. Until every peer was read
/// (`sweep` false) there is no sweep: an entry decides nothing while a partner of its is
/// unread, and the last peer read starts the sweep again anyway (at half a million replicas,
/// the sweeps started over as each peer was read were a quarter of a starting node's work).
fn to_survey(
    catalog: &Catalog,
    mut at: Surveyed,
    peers: Vec<PeerMark>,
    named: BTreeSet<String>,
    sweep: bool,
) -> (Vec<cluster::CatalogEntry>, Surveyed) {
    let generation = catalog.generation();
    let mut entries = Vec::new();
    match &at.catalog {
        Some((g, since)) if *g == generation => {
            let page = catalog.page_after(*since, usize::MAX);
            entries = page.entries;
            at.catalog = Some((generation, page.version));
        }
        _ => {
            // First round, or a rebuilt catalog: the sweep sees every entry.
            at.catalog = Some((generation, catalog.version()));
            (at.sweep_after, at.sweep_fast) = (String::new(), true);
        }
    }
    if at.peers != peers {
        (at.sweep_after, at.sweep_fast) = (String::new(), true);
        at.peers = peers;
    }
    let slice = if at.sweep_fast {
        SWEEP_SLICE_FAST
    } else {
        SWEEP_SLICE
    };
    // Without a sweep the cursor stays: it starts over once every peer was read (the marks
    // change then).
    let swept: Vec<_> = match sweep {
        true => catalog.after(&at.sweep_after).take(slice).collect(),
        false => Vec::new(),
    };
    if sweep && swept.len() < slice {
        (at.sweep_after, at.sweep_fast) = (String::new(), false);
    } else if let Some(last) = swept.last() {
        at.sweep_after = last.id.clone();
    }
    let mut seen: HashSet<String> = entries.iter().map(|e| e.id.clone()).collect();
    entries.extend(swept.into_iter().filter(|e| seen.insert(e.id.clone())));
    for id in named {
        if !seen.contains(&id) {
            if let Some(e) = catalog.get(&id) {
                seen.insert(id);
                entries.push(e);
            }
        }
    }
    (entries, at)
}

/// The folder of the jobs in the node's state folder.
pub const JOBS_DIR: &str = "remirror";

/// One copy in progress, as recorded before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub image: String,
    pub lost: String,
    pub target: Option<String>,
    /// The new set's epoch, fixed when the target is chosen.
    pub epoch: u64,
    pub started_at: u64,
    #[serde(default)]
    pub failures: u32,
    /// Targets given up (node, epoch) that may hold a copy of a set never adopted: told to
    /// discard it before the job ends, so no third replica is left behind.
    #[serde(default)]
    pub abandoned: Vec<(String, u64)>,
}

/// The redundancy side of one node.
pub struct Redundancy {
    pub me: String,
    domain: String,
    cluster: ClusterConfig,
    grace: Grace,
    catalog: Arc<Catalog>,
    library: Arc<Library>,
    disks: Vec<Arc<Disk>>,
    client: floor::Client,
    events: Arc<floor::EventLog>,
    pub peers: tokio::sync::Mutex<Peers>,
    jobs_dir: PathBuf,
    pub throttle: Throttle,
    status: Mutex<RemirrorStatus>,
    /// When hidden copies nothing will publish are looked for next ([`super::hidden`]).
    next_hidden_sweep: Mutex<Instant>,
    /// The soonest end of a grace period seen at the last round: the next round starts then
    /// rather than up to a [`ROUND`] later.
    next_grace_end: Mutex<Option<Instant>>,
    surveyed: Mutex<Surveyed>,
    /// The images waiting for a grace period to end, with when it ends and what was lost:
    /// each is surveyed again when it ends (or when something about it changes), not at
    /// every round, as a node gone silent makes half a million of them wait.
    grace_ends: Mutex<BTreeMap<String, (Instant, String)>>,
}

impl Redundancy {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: &str,
        cluster: &ClusterConfig,
        state_dir: &std::path::Path,
        catalog: Arc<Catalog>,
        library: Arc<Library>,
        client: floor::Client,
        events: Arc<floor::EventLog>,
    ) -> Redundancy {
        let domain = cluster
            .node(me)
            .map(|n| n.power_domain.clone())
            .unwrap_or_default();
        let grace = Grace {
            disk: Duration::from_secs(cluster.repair.disk_grace_seconds),
            node: Duration::from_secs(cluster.repair.node_grace_seconds),
        };
        Redundancy {
            me: me.to_string(),
            domain,
            grace,
            disks: library.disks().to_vec(),
            cluster: cluster.clone(),
            catalog,
            library,
            client,
            events,
            peers: tokio::sync::Mutex::new(Peers::new(cluster, me)),
            jobs_dir: state_dir.join(JOBS_DIR),
            throttle: Throttle::open(state_dir.join("remirror-throttle.json")),
            status: Mutex::new(RemirrorStatus {
                node: me.to_string(),
                ..RemirrorStatus::default()
            }),
            next_hidden_sweep: Mutex::new(Instant::now()),
            next_grace_end: Mutex::new(None),
            surveyed: Mutex::new(Surveyed::default()),
            grace_ends: Mutex::new(BTreeMap::new()),
        }
    }

    /// What `GET /redundancy` shows.
    pub fn status(&self) -> RemirrorStatus {
        let mut s = self.lock_status().clone();
        s.throttle_bytes_per_second = self.throttle.get().bytes_per_second;
        s
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, RemirrorStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_grace_ends(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Instant, String)>> {
        self.grace_ends.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_surveyed(&self) -> std::sync::MutexGuard<'_, Surveyed> {
        self.surveyed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where another node's replicas are served, for the viewer (`None` for this node).
    pub fn origin_of(&self, node: &str) -> Option<String> {
        (node != self.me)
            .then(|| self.cluster.node(node).map(cluster::NodeConfig::origin))
            .flatten()
    }

    /// Sweeps hidden copies nothing will publish ([`super::hidden`]): a look at most every
    /// disk grace period (at least 1 s), the disk work off the async threads.
    async fn sweep_hidden(&self, peers: &Peers) {
        let quiet = self.grace.disk;
        {
            let mut next = self
                .next_hidden_sweep
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if Instant::now() < *next {
                return;
            }
            *next = Instant::now() + quiet.max(Duration::from_secs(1));
        }
        let disks = self.disks.clone();
        let found = tokio::task::spawn_blocking(move || hidden::hidden_copies(&disks))
            .await
            .unwrap_or_default();
        let doomed = hidden::superseded(&self.me, found, peers, &|n| self.domain_of(n), quiet);
        if doomed.is_empty() {
            return;
        }
        let me = self.me.clone();
        let removed = tokio::task::spawn_blocking(move || hidden::remove(&me, doomed))
            .await
            .unwrap_or(0);
        self.lock_status().trimmed += removed as u64;
    }

    fn domain_of(&self, node: &str) -> Option<String> {
        self.cluster.node(node).map(|n| n.power_domain.clone())
    }

    pub fn worker(self: &Arc<Self>) -> RemirrorWorker {
        RemirrorWorker {
            r: self.clone(),
            last: String::new(),
        }
    }

    fn jobs(&self) -> BTreeMap<String, Job> {
        let mut jobs = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&self.jobs_dir) {
            for e in entries.flatten() {
                if let Some(job) = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Job>(&b).ok())
                {
                    jobs.insert(job.image.clone(), job);
                }
            }
        }
        jobs
    }

    fn record(&self, job: &Job) -> Result<(), IngestError> {
        floor::durable::create_dir(&self.jobs_dir).map_err(crate::ingest::io(&self.jobs_dir))?;
        let path = self.jobs_dir.join(format!("{}.json", job.image));
        floor::durable::write(&path, &serde_json::to_vec_pretty(job).expect("plain data"))
            .map_err(|e| crate::ingest::io(&path)(e.source))
    }

    fn forget(&self, image: &str) {
        let _ = std::fs::remove_file(self.jobs_dir.join(format!("{image}.json")));
    }

    /// How long until the next round: a [`ROUND`], or less if a grace period ends sooner (a
    /// little after it, so that it has ended when the round looks).
    fn until_next_round(&self) -> Duration {
        let grace_end = *self
            .next_grace_end
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        grace_end.map_or(ROUND, |at| {
            (at + Duration::from_millis(50))
                .saturating_duration_since(Instant::now())
                .min(ROUND)
        })
    }

    /// One round: read the peers, survey, take off, start and drive copies. Returns whether
    /// there is more to do at once.
    async fn round(&self) -> Result<bool, String> {
        let mut peers = self.peers.lock().await;
        let changed_there = peers.refresh(&self.client).await;
        // Until every other node's catalog was read once, nothing counts as lost.
        let all_known = peers
            .nodes
            .iter()
            .all(|n| n.known || n.silent_since.is_some());
        let now = Instant::now();
        let mut jobs = self.jobs();
        // What to survey: what changed here or there since the last round, what waits for a
        // grace period, the copies under way, and a slice of the slow sweep through all.
        let marks: Vec<PeerMark> = peers
            .nodes
            .iter()
            .map(|n| (n.catalog.clone(), n.known, n.up()))
            .chain([(String::new(), all_known, true)])
            .collect();
        // Those whose grace ends by now are taken out, and put back if they still wait.
        let mut ended = Vec::new();
        self.lock_grace_ends().retain(|id, (end, _)| {
            let over = *end <= now;
            if over {
                ended.push(id.clone());
            }
            !over
        });
        // The peers' changes while they are still being read are every entry they hold:
        // surveyed by the sweep that starts once all were read, not each on its own.
        let named: BTreeSet<String> = changed_there
            .into_iter()
            .filter(|_| all_known)
            .chain(ended)
            .chain(jobs.keys().cloned())
            .collect();
        let surveyed_before = self.lock_surveyed().clone();
        let catalog = self.catalog.clone();
        let (entries, surveyed_now) = tokio::task::spawn_blocking(move || {
            to_survey(&catalog, surveyed_before, marks, named, all_known)
        })
        .await
        .map_err(|e| e.to_string())?;
        *self.lock_surveyed() = surveyed_now;
        let mine: BTreeMap<String, cluster::CatalogEntry> = entries
            .iter()
            .filter(|e| e.state.servable())
            .filter(|e| self.library.get(&e.id).is_some_and(|i| i.readable()))
            .map(|e| (e.id.clone(), e.clone()))
            .collect();
        // Replicas found damaged on a disk in service: taken off once superseded (or withdrawn).
        let damaged = entries.iter().filter(|e| {
            matches!(e.state, ReplicaState::Unreadable { .. })
                && self.disks.iter().any(|d| {
                    d.config.id == e.disk && d.serves() && d.images_dir().join(&e.id).is_dir()
                })
        });
        // What is surveyed now is decided again now (the guard dropped before any await).
        {
            let mut ends = self.lock_grace_ends();
            entries.iter().for_each(|e| {
                ends.remove(&e.id);
            });
        }
        let surveyed: Vec<(&cluster::CatalogEntry, bool)> = mine
            .values()
            .map(|e| (e, true))
            .chain(damaged.map(|e| (e, false)))
            .collect();
        for (entry, readable) in surveyed {
            let set = Set::new(entry.epoch, entry.nodes.clone());
            let mut others: Vec<Peer> = Vec::new();
            for p in &peers.nodes {
                // The partners of my set, and any node with a record of the image (a replica
                // of another set, or a tombstone).
                let relevant = set.has(&p.name)
                    || p.replicas
                        .get(&entry.id)
                        .is_some_and(|h| h.state != ReplicaState::Removed);
                if relevant {
                    others.push(Peer {
                        node: p.name.clone(),
                        domain: p.domain.clone(),
                        holding: p.holding(&entry.id, now),
                    });
                }
            }
            // A partner whose catalog is still being read says nothing yet: nothing is decided
            // (nor waited for) until it has been read whole; its first whole reading surveys
            // everything again.
            if peers.nodes.iter().any(|p| {
                !p.known && p.silent_since.is_none() && others.iter().any(|o| o.node == p.name)
            }) {
                continue;
            }
            let decision =
                protocol::survey(&self.me, &set, &others, &|n| self.domain_of(n), self.grace);
            if !readable && !matches!(decision, Survey::Delete | Survey::Trim(_)) {
                continue; // a damaged copy is never a source
            }
            match decision {
                Survey::Fine => {
                    if jobs
                        .get(&entry.id)
                        .is_some_and(|j| j.target.is_none() && j.abandoned.is_empty())
                    {
                        self.forget(&entry.id);
                        jobs.remove(&entry.id);
                    }
                }
                Survey::Delete | Survey::Trim(_) => {
                    let state = if decision == Survey::Delete {
                        let at = peers
                            .nodes
                            .iter()
                            .find_map(|p| match p.replicas.get(&entry.id).map(|h| &h.state) {
                                Some(ReplicaState::Deleted { at }) => Some(*at),
                                _ => None,
                            })
                            .unwrap_or_else(cluster::unix_now);
                        ReplicaState::Deleted { at }
                    } else {
                        ReplicaState::Removed
                    };
                    if !all_known {
                        continue;
                    }
                    let deleted = matches!(state, ReplicaState::Deleted { .. });
                    let (c, l, d, id) = (
                        self.catalog.clone(),
                        self.library.clone(),
                        self.disks.clone(),
                        entry.id.clone(),
                    );
                    let done = tokio::task::spawn_blocking(move || {
                        if deleted {
                            removal::withdraw(&c, &l, &d, &id, "a peer's tombstone").map(|_| ())
                        } else {
                            removal::take_off(&c, &l, &d, &id, state)
                        }
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                    match done {
                        Ok(()) => {
                            tracing::info!(image = %entry.id, why = ?decision, "replica taken off this node");
                            self.forget(&entry.id);
                            jobs.remove(&entry.id);
                            if !deleted {
                                self.lock_status().trimmed += 1;
                                crate::crash_point(&self.me, "remirror-trimmed");
                            }
                        }
                        Err(e) => {
                            tracing::error!(image = %entry.id, error = %e, "cannot take a replica off")
                        }
                    }
                }
                Survey::Wait { lost, left } => {
                    self.lock_grace_ends()
                        .insert(entry.id.clone(), (now + left, lost));
                }
                Survey::Remirror { lost } => {
                    if all_known && !jobs.contains_key(&entry.id) {
                        let job = Job {
                            image: entry.id.clone(),
                            lost: lost.clone(),
                            target: None,
                            epoch: 0,
                            started_at: cluster::unix_now(),
                            failures: 0,
                            abandoned: Vec::new(),
                        };
                        self.record(&job).map_err(|e| e.to_string())?;
                        tracing::warn!(image = %entry.id, lost = %lost, "replica lost; copying it again");
                        jobs.insert(entry.id.clone(), job);
                    }
                }
            }
        }
        let (waiting, soonest) = {
            let ends = self.lock_grace_ends();
            let waiting: Vec<Waiting> = ends
                .iter()
                .map(|(id, (end, lost))| Waiting {
                    image: id.clone(),
                    lost: lost.clone(),
                    in_seconds: end.saturating_duration_since(now).as_secs(),
                    blocked: None,
                })
                .collect();
            (waiting, ends.values().map(|(end, _)| *end).min())
        };
        *self
            .next_grace_end
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = soonest;
        // Jobs for images no longer readable here cannot go on from here.
        for id in jobs.keys().cloned().collect::<Vec<_>>() {
            if !mine.contains_key(&id) {
                self.forget(&id);
                jobs.remove(&id);
            }
        }
        if all_known {
            self.sweep_hidden(&peers).await;
        }
        // The jobs that found no target at the last round (no room, no other domain up).
        let blocked: Vec<String> = self
            .lock_status()
            .waiting
            .iter()
            .filter(|w| w.blocked.is_some())
            .map(|w| w.image.clone())
            .collect();
        {
            let mut s = self.lock_status();
            s.waiting = waiting;
            s.jobs.retain(|j| jobs.contains_key(&j.image));
            for job in jobs.values() {
                if !s.jobs.iter().any(|j| j.image == job.image) {
                    s.jobs.push(RemirrorJob {
                        image: job.image.clone(),
                        lost: job.lost.clone(),
                        target: job.target.clone(),
                        step: "waiting for its turn".into(),
                        bytes_done: 0,
                        bytes_total: mine
                            .get(&job.image)
                            .map_or(0, |e| e.files.iter().map(|f| f.size).sum()),
                        rate: 0,
                        started_at: job.started_at,
                    });
                }
            }
        }
        // Each source disk has [`LANES_PER_DISK`] lanes that copy its jobs one after the other:
        // a disk streams a replica or two well, more seek against each other; this node's disks
        // copy at the same time, so the work is bounded per disk and grows with the disks, as
        // it does with the nodes. Two lanes: one's exchanges with its target (begin, seal,
        // verify, publish, adopt) and each chunk's wait for its answer overlap the other's
        // stream of bytes. (One lane at a time placing, tried while targets read every copy
        // back, copied 2 GiB at 280 MB/s here against 315 with both.)
        // Jobs that found a target and failed least go first, so one that cannot go on (no
        // room for it anywhere, a target that keeps failing) does not hold up the others of
        // its disk.
        let mut queue: Vec<Job> = jobs.into_values().collect();
        queue.sort_by_key(|j| (blocked.contains(&j.image), j.failures));
        let mut per_disk: BTreeMap<String, VecDeque<Queued>> = BTreeMap::new();
        for job in queue {
            let Some(entry) = mine.get(&job.image) else {
                continue;
            };
            // What the peers said at this round, for this job's choices.
            let view: View = peers
                .nodes
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        p.up(),
                        p.most_free,
                        p.holding(&job.image, now),
                    )
                })
                .collect();
            per_disk
                .entry(entry.disk.clone())
                .or_default()
                .push_back((job, entry.clone(), view));
        }
        if per_disk.is_empty() {
            return Ok(false);
        }
        // The copies run without the peers' lock held (they can take long); the peers are read
        // again at the next round, at most [`LANE_SPAN`] from now.
        drop(peers);
        let until = Instant::now() + LANE_SPAN;
        let lanes: Vec<_> = per_disk
            .into_values()
            .flat_map(|jobs| {
                let lanes = jobs.len().min(LANES_PER_DISK);
                let jobs = Arc::new(Mutex::new(jobs));
                (0..lanes).map(move |_| self.lane(jobs.clone(), until))
            })
            .collect();
        let ended = futures_util::future::join_all(lanes).await;
        Ok(ended.into_iter().any(|e| e))
    }

    /// Drives the jobs of one disk one after the other, until one stops short (a failure, no
    /// target yet: it is taken up again at a later round), none is left, or `until`. Returns
    /// whether a job ended.
    async fn lane(&self, jobs: Arc<Mutex<VecDeque<Queued>>>, until: Instant) -> bool {
        let mut any = false;
        while Instant::now() < until {
            let next = jobs.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some((job, entry, view)) = next else {
                break;
            };
            if !self.drive(job, entry, view).await {
                break;
            }
            any = true;
        }
        any
    }

    /// Takes one job as far as it goes now. Returns whether it ended (another round may start
    /// at once); a job that stopped on a failure, or waits for a target, is taken up again at
    /// the next round, not in a busy loop.
    async fn drive(&self, mut job: Job, entry: cluster::CatalogEntry, view: View) -> bool {
        let size: u64 = entry.files.iter().map(|f| f.size).sum();
        let old = Set::new(entry.epoch, entry.nodes.clone());
        let silent: Vec<String> = view
            .iter()
            .filter(|(_, up, _, _)| !*up)
            .map(|(n, _, _, _)| n.clone())
            .collect();
        loop {
            let target_up = job
                .target
                .as_ref()
                .is_some_and(|t| view.iter().any(|(n, up, _, _)| n == t && *up));
            let target_stage = match (job.target.clone(), target_up) {
                (Some(t), true) => match self.target_stage(&t, &job.image, job.epoch).await {
                    Ok(s) => s,
                    Err(e) => {
                        self.failed(&mut job, &format!("asking {t}: {e}"));
                        return false;
                    }
                },
                _ => TargetStage::Nothing,
            };
            let new_set = job
                .target
                .as_ref()
                .map(|t| Set::new(job.epoch, vec![self.me.clone(), t.clone()]));
            let facts = JobFacts {
                target: job.target.clone(),
                target_up,
                target_stage,
                adopted: new_set.as_ref().is_some_and(|s| *s == old) || self.adopted(&job),
                partner_back: view.iter().any(|(n, up, _, h)| {
                    *n == job.lost && *up && matches!(h, Holding::Readable(s) if s.has(&self.me))
                }),
            };
            let step = protocol::next_step(&facts);
            self.show(&job, step_name(&step), None);
            let result = match step {
                Step::Choose => match self.given_up_but_published(&job, &view) {
                    Some(at) => {
                        // A target given up (it did not answer) that had published its copy:
                        // that copy is the job's again, to be adopted as it is. Otherwise it
                        // would wait beside it for another node without a replica, of which
                        // a small cluster may have none.
                        let (target, epoch) = job.abandoned.remove(at);
                        tracing::info!(image = %job.image, target = %target, epoch, "a target given up published its copy; taken back");
                        job.target = Some(target);
                        job.epoch = epoch;
                        job.failures = 0;
                        self.record(&job)
                    }
                    None => match self.choose(&job, size, &view) {
                        Ok(target) => {
                            job.target = Some(target);
                            // Every attempt a newer set than the last (two in one second, or a
                            // clock stepped back, must not share an epoch), a target taken back
                            // included.
                            job.epoch = cluster::unix_now()
                                .max(entry.epoch + 1)
                                .max(job.epoch + 1)
                                .max(job.abandoned.iter().map(|(_, e)| e + 1).max().unwrap_or(0));
                            job.failures = 0;
                            self.record(&job)
                        }
                        Err(why) => {
                            self.lock_status().waiting.push(Waiting {
                                image: job.image.clone(),
                                lost: job.lost.clone(),
                                in_seconds: 0,
                                blocked: Some(why),
                            });
                            return false;
                        }
                    },
                },
                Step::Place => self.place(&job, &entry, size).await,
                Step::Verify => self.target_call(&job, "verify", true).await,
                Step::Publish => self.target_call(&job, "publish", false).await,
                Step::Adopt => self.adopt(&job).await,
                Step::Rechoose => {
                    if let Some(t) = job.target.take() {
                        job.abandoned.push((t, job.epoch));
                    }
                    self.record(&job)
                }
                Step::Cancel => {
                    if !self.discard_abandoned(&mut job, false, &silent).await {
                        return false;
                    }
                    self.forget(&job.image);
                    tracing::info!(image = %job.image, "the lost replica is back; no copy needed");
                    return true;
                }
                Step::Done => {
                    if !self.discard_abandoned(&mut job, true, &silent).await {
                        return false;
                    }
                    self.forget(&job.image);
                    let mut s = self.lock_status();
                    s.copied += 1;
                    s.copied_bytes += size;
                    s.jobs.retain(|j| j.image != job.image);
                    drop(s);
                    let target = job.target.clone().unwrap_or_default();
                    tracing::info!(image = %job.image, target = %target, "re-mirrored: two replicas again");
                    let disk = self
                        .folder(&job.image)
                        .map(|(d, _)| d.config.id.clone())
                        .unwrap_or_default();
                    self.events.record(floor::NewEvent::new(
                        cluster::Component::Replica {
                            image: job.image.clone(),
                            disk,
                        },
                        cluster::EventKind::ReplicaRemirrored,
                        format!(
                            "{} was copied again from {} to {target} ({} MB, lost: {})",
                            job.image,
                            self.me,
                            size / 1_000_000,
                            job.lost
                        ),
                    ));
                    crate::crash_point(&self.me, "remirror-done");
                    return true;
                }
            };
            if result.is_ok() {
                if let Some(point) = crash_point_after(&step) {
                    crate::crash_point(&self.me, point);
                }
            }
            if let Err(e) = result {
                // The target read its copy back wrong (and threw it away): another target.
                let verify_failed = matches!(
                    e,
                    IngestError::Peer {
                        status: Some(422),
                        ..
                    }
                );
                self.failed(&mut job, &e.to_string());
                if verify_failed || job.failures >= TRIES {
                    if let Some(t) = job.target.take() {
                        job.abandoned.push((t, job.epoch));
                    }
                    let _ = self.record(&job);
                }
                return false;
            }
        }
    }

    /// The target given up by `job` that answers and serves its copy of exactly the set it was
    /// given up with (published, so verified, but never adopted), if any: its place in
    /// `job.abandoned`.
    fn given_up_but_published(
        &self,
        job: &Job,
        view: &[(String, bool, Option<u64>, Holding)],
    ) -> Option<usize> {
        job.abandoned.iter().position(|(target, epoch)| {
            let set = Set::new(*epoch, vec![self.me.clone(), target.clone()]);
            view.iter()
                .any(|(n, up, _, h)| n == target && *up && *h == Holding::Readable(set.clone()))
        })
    }

    fn failed(&self, job: &mut Job, why: &str) {
        job.failures += 1;
        let _ = self.record(job);
        tracing::warn!(image = %job.image, target = ?job.target, error = %why, "a re-mirror step failed; tried again");
        self.show(job, "failed; tried again", None);
    }

    fn show(&self, job: &Job, step: &str, bytes: Option<(u64, u64, u64)>) {
        let mut s = self.lock_status();
        if let Some(j) = s.jobs.iter_mut().find(|j| j.image == job.image) {
            j.step = step.to_string();
            j.target = job.target.clone();
            if let Some((done, total, rate)) = bytes {
                (j.bytes_done, j.bytes_total, j.rate) = (done, total, rate);
            }
        }
    }

    /// The node with the most room in another power domain than this one, that answers and
    /// holds no readable replica of the image.
    fn choose(
        &self,
        job: &Job,
        size: u64,
        view: &[(String, bool, Option<u64>, Holding)],
    ) -> Result<String, String> {
        let mut best: Option<(u64, &str)> = None;
        for (node, up, free, holding) in view {
            if !*up || self.domain_of(node).is_none_or(|d| d == self.domain) {
                continue;
            }
            if matches!(holding, Holding::Readable(_) | Holding::Deleted) {
                continue;
            }
            let free = free.unwrap_or(0);
            if free >= size.saturating_add(DISK_RESERVE) && best.is_none_or(|(b, _)| free > b) {
                best = Some((free, node));
            }
        }
        best.map(|(_, n)| n.to_string())
            .ok_or_else(|| {
                format!(
                    "no node in another power domain than {} answers with room for {} MB",
                    self.domain,
                    size / 1_000_000 + 1
                )
            })
            .inspect_err(
                |why| tracing::warn!(image = %job.image, why = %why, "re-mirror cannot start"),
            )
    }

    fn new_manifest(&self, job: &Job) -> Result<Manifest, IngestError> {
        let (disk, dir) = self.folder(&job.image)?;
        let mut m = replica::read_manifest(&dir, &job.image)
            .map_err(|e| IngestError::Fault(format!("disk {}: {e}", disk.config.id)))?;
        let target = job.target.clone().unwrap_or_default();
        m.nodes = Set::new(job.epoch, vec![self.me.clone(), target]).nodes;
        m.placed_at = job.epoch;
        Ok(m)
    }

    fn folder(&self, image: &str) -> Result<(Arc<Disk>, PathBuf), IngestError> {
        let img = self
            .library
            .get(image)
            .ok_or_else(|| IngestError::NotFound(format!("{image} is not served here")))?;
        Ok((img.disk.clone(), img.disk.images_dir().join(image)))
    }

    fn adopted(&self, job: &Job) -> bool {
        let Ok((_, dir)) = self.folder(&job.image) else {
            return false;
        };
        let Some(t) = &job.target else { return false };
        replica::read_manifest(&dir, &job.image).is_ok_and(|m| {
            m.placed_at == job.epoch
                && Set::new(m.placed_at, m.nodes)
                    == Set::new(job.epoch, vec![self.me.clone(), t.clone()])
        })
    }

    /// How far the job's copy came on `target`. A copy of another set (an earlier attempt's)
    /// counts as nothing: it is replaced whole when the copy begins.
    async fn target_stage(
        &self,
        target: &str,
        image: &str,
        epoch: u64,
    ) -> Result<TargetStage, String> {
        #[derive(Deserialize)]
        struct Answer {
            stage: Option<Placement>,
            #[serde(default)]
            epoch: Option<u64>,
        }
        let a: Answer = self
            .client
            .call_json(
                target,
                Call::new("GET", &format!("/internal/replicas/{image}/stage")),
                ASK,
            )
            .await
            .map_err(|e| e.to_string())?;
        let ours = a.epoch.is_none_or(|e| e == epoch);
        Ok(match a.stage {
            None => TargetStage::Nothing,
            Some(Placement::Incoming) => TargetStage::Incoming,
            Some(_) if !ours => TargetStage::Nothing,
            Some(Placement::Placed) => TargetStage::Placed,
            Some(Placement::Verified) => TargetStage::Verified,
            Some(Placement::Published) => TargetStage::Published,
        })
    }

    /// Tells every abandoned target to discard its copy of the set never adopted. Returns
    /// whether all did (the job may end); the others are asked again at the next round.
    ///
    /// `hidden_only` after an adoption (`Done`): a published copy of an older set is then
    /// superseded and trimmed by its own node's survey once the new set is whole, while
    /// removing it here could leave one replica if the new partner failed meanwhile. A target
    /// that does not answer is given up too (its hidden copy stays as debris, cleared when it
    /// is placed again), so that a dead node cannot hold the job for ever.
    async fn discard_abandoned(&self, job: &mut Job, hidden_only: bool, silent: &[String]) -> bool {
        let mut left = Vec::new();
        for (node, epoch) in std::mem::take(&mut job.abandoned) {
            let path = format!(
                "/internal/replicas/{}/discard?epoch={epoch}{}",
                job.image,
                if hidden_only { "&hidden_only=true" } else { "" }
            );
            match self.client.call(&node, Call::new("POST", &path), ASK).await {
                Ok(_) => {
                    tracing::info!(image = %job.image, target = %node, epoch, "an abandoned copy was discarded")
                }
                Err(e) if silent.contains(&node) => {
                    tracing::warn!(image = %job.image, target = %node, error = %e, "an abandoned target is silent; its copy, if any, is left to it")
                }
                Err(e) => {
                    tracing::warn!(image = %job.image, target = %node, error = %e, "an abandoned copy cannot be discarded yet");
                    left.push((node, epoch));
                }
            }
        }
        job.abandoned = left;
        if job.abandoned.is_empty() {
            true
        } else {
            let _ = self.record(job);
            false
        }
    }

    /// Sends every file of this node's replica to the target, hidden, paced by the throttle,
    /// and seals it there with the new manifest.
    async fn place(
        &self,
        job: &Job,
        entry: &cluster::CatalogEntry,
        total: u64,
    ) -> Result<(), IngestError> {
        let target = job.target.as_deref().unwrap_or_default();
        let peer = |e: floor::CallError| IngestError::peer(target, e);
        let manifest = self.new_manifest(job)?;
        let (_, dir) = self.folder(&job.image)?;
        let image = &job.image;
        let files = &entry.files;
        let read = |piece: Piece| {
            let path = dir.join(&files[piece.file].name);
            crate::ingest::background_call("copy-read", move || {
                crate::ingest::transfers::read_chunk(&path, piece.offset, piece.ask)
            })
        };
        let mut pieces = Pieces::new(files);
        let mut visitors_there = false;
        let first = pieces.next(self.chunk_size(visitors_there));
        // The first chunk is read from the disk while the target makes room for the copy.
        let begin_at = format!(
            "/internal/replicas/{image}/begin?size={total}&epoch={}",
            job.epoch
        );
        let begin = self.client.call(target, Call::new("POST", &begin_at), ASK);
        let mut chunk = match first {
            Some(piece) => {
                let (begun, bytes) = tokio::join!(begin, read(piece));
                begun.map_err(peer)?;
                Some((piece, bytes?))
            }
            None => {
                begin.await.map_err(peer)?;
                None
            }
        };
        let start = Instant::now();
        let mut sent = 0u64;
        let _sending = self.throttle.sending();
        while let Some((piece, bytes)) = chunk {
            let n = bytes.bytes.len() as u64;
            let at = format!(
                "/internal/replicas/{image}/files/{}?offset={}",
                files[piece.file].name, piece.offset
            );
            let turn = self.throttle.turn(since_visit(visitors_there)).await;
            let began = Instant::now();
            let send = async {
                self.client
                    .call_any(
                        target,
                        Call::new("PATCH", &at).body_summed(bytes.bytes, bytes.sum),
                        ASK * 6,
                    )
                    .await?
                    .ok(target)
            };
            // The next chunk, of this file or the next one, is read from the disk while this
            // one is on its way: a disk read between two files would leave the target idle.
            pieces.read(piece, n);
            let (answer, next) = match pieces.next(self.chunk_size(visitors_there)) {
                None => (send.await, None),
                Some(next) => {
                    let (answer, bytes) = tokio::join!(send, read(next));
                    (answer, Some((next, bytes)))
                }
            };
            drop(turn);
            let answer = answer.map_err(peer)?;
            sent += n;
            let rate = (sent as f64 / start.elapsed().as_secs_f64().max(0.001)) as u64;
            self.show(job, "place", Some((sent, total, rate)));
            // Visitors here, or on the target (it says so in its answer).
            visitors_there = answer
                .headers
                .contains_key(super::throttle::VISITORS_HEADER);
            let pause = self
                .throttle
                .pause(n, began.elapsed(), since_visit(visitors_there));
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            chunk = match next {
                Some((next, bytes)) => Some((next, bytes?)),
                None => None,
            };
        }
        let body = Bytes::from(serde_json::to_vec(&manifest).expect("plain data"));
        self.client
            .call(
                target,
                Call::new("POST", &format!("/internal/replicas/{image}/seal")).body(body),
                ASK * 6,
            )
            .await
            .map_err(peer)?;
        Ok(())
    }

    /// How much to read and send at once: [`SEND_CHUNK`] while nobody visits, less while the
    /// throttle paces the copy for visitors (here, or on the target: `visitors_there`), so
    /// that each burst of copying between two pauses is short on the CPUs they share.
    fn chunk_size(&self, visitors_there: bool) -> usize {
        if self.throttle.pacing(since_visit(visitors_there)) {
            PACED_CHUNK
        } else {
            SEND_CHUNK
        }
    }

    async fn target_call(
        &self,
        job: &Job,
        what: &str,
        with_manifest: bool,
    ) -> Result<(), IngestError> {
        let target = job.target.as_deref().unwrap_or_default();
        let body = if with_manifest {
            Bytes::from(serde_json::to_vec(&self.new_manifest(job)?).expect("plain data"))
        } else {
            Bytes::new()
        };
        let path = format!("/internal/replicas/{}/{what}", job.image);
        self.client
            .call(
                target,
                Call::new("POST", &path).body(body),
                read_back(job_size(&self.catalog, &job.image)),
            )
            .await
            .map(|_| ())
            .map_err(|e| IngestError::peer(target, e))
    }

    /// Writes the new set into this node's manifest and catalog: frontends and the other nodes
    /// learn it at their next catalog read.
    async fn adopt(&self, job: &Job) -> Result<(), IngestError> {
        let manifest = self.new_manifest(job)?;
        let (disk, dir) = self.folder(&job.image)?;
        let (catalog, library, cluster, me, image) = (
            self.catalog.clone(),
            self.library.clone(),
            self.cluster.clone(),
            self.me.clone(),
            job.image.clone(),
        );
        crate::ingest::blocking_call(move || {
            crate::ingest::write_durable(
                &dir,
                replica::MANIFEST,
                &serde_json::to_vec_pretty(&manifest).expect("plain data"),
            )?;
            let entry = crate::catalog::read_entry(&disk, &image);
            crate::ingest::target::serve_now(&catalog, &library, &cluster, &me, entry, &disk)
        })
        .await
    }
}

/// How long ago a visitor was served: here, or just now if the copy's target says it serves
/// visitors (`visitors_there`).
fn since_visit(visitors_there: bool) -> Option<Duration> {
    if visitors_there {
        Some(Duration::ZERO)
    } else {
        crate::metrics::since_last_visit()
    }
}

/// A deadline for the target to read `bytes` back from its disk (at least 20 MB/s) and answer.
fn read_back(bytes: u64) -> Duration {
    Duration::from_secs(30 + bytes / 20_000_000)
}

fn job_size(catalog: &Catalog, image: &str) -> u64 {
    catalog
        .get(image)
        .map_or(0, |e| e.files.iter().map(|f| f.size).sum())
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Choose => "choose a target",
        Step::Place => "place",
        Step::Verify => "verify",
        Step::Publish => "publish",
        Step::Adopt => "adopt the new set",
        Step::Rechoose => "choose another target",
        Step::Cancel => "cancel",
        Step::Done => "done",
    }
}

/// The `TD_CRASH_AT` point right after `step`'s fact is durable: the job's target and epoch
/// in its marker, the copy sealed on the target, verified there, published there, the new
/// set in this node's manifest.
fn crash_point_after(step: &Step) -> Option<&'static str> {
    match step {
        Step::Choose => Some("remirror-recorded"),
        Step::Place => Some("remirror-sent"),
        Step::Verify => Some("remirror-verified"),
        Step::Publish => Some("remirror-published"),
        Step::Adopt => Some("remirror-adopted"),
        Step::Rechoose | Step::Cancel | Step::Done => None,
    }
}

/// The worker: a round every [`ROUND`], at once again after a copy ended.
pub struct RemirrorWorker {
    r: Arc<Redundancy>,
    last: String,
}

impl Worker for RemirrorWorker {
    fn name(&self) -> String {
        "remirror".into()
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            let more = self.r.round().await?;
            let s = self.r.status();
            self.last = format!(
                "{} copies under way, {} waiting; {} copied, {} trimmed since start",
                s.jobs.len(),
                s.waiting.len(),
                s.copied,
                s.trimmed
            );
            Ok(if more {
                WorkerState::Busy
            } else {
                WorkerState::Throttled(self.r.until_next_round())
            })
        })
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(ROUND))
    }

    fn progress(&self) -> String {
        self.last.clone()
    }
}

/// Where a copy reads its next chunk: each file of the replica from its start to its size
/// (the catalog's), one after the other, an empty file once (so that it exists on the target).
struct Pieces<'a> {
    files: &'a [cluster::FileSum],
    file: usize,
    offset: u64,
    /// Whether the current file was asked for once (an empty one is then done).
    asked: bool,
}

/// A chunk to read: `ask` bytes of `files[file]` from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    file: usize,
    offset: u64,
    ask: usize,
}

impl<'a> Pieces<'a> {
    fn new(files: &'a [cluster::FileSum]) -> Self {
        Pieces {
            files,
            file: 0,
            offset: 0,
            asked: false,
        }
    }

    /// The next chunk, at most `size` bytes, rounded up to a whole block so that it can be
    /// read around the page cache (the file's end cuts it short).
    fn next(&mut self, size: usize) -> Option<Piece> {
        loop {
            let f = self.files.get(self.file)?;
            if self.offset < f.size || !self.asked {
                self.asked = true;
                let left = (f.size - self.offset).min(size as u64) as usize;
                return Some(Piece {
                    file: self.file,
                    offset: self.offset,
                    ask: left.next_multiple_of(crate::ingest::direct::ALIGN),
                });
            }
            (self.file, self.offset, self.asked) = (self.file + 1, 0, false);
        }
    }

    /// `piece` gave `n` bytes: the next begins after them, or with the next file when this
    /// one ended (short of what was asked: the disk's file is shorter than the catalog says,
    /// and the target's check of the sums will say so).
    fn read(&mut self, piece: Piece, n: u64) {
        self.offset = piece.offset + n;
        if n < piece.ask as u64 {
            self.offset = self.offset.max(self.files[piece.file].size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> cluster::FileSum {
        cluster::FileSum {
            name: name.into(),
            size,
            sha256: String::new(),
        }
    }

    /// Every piece a copy reads, each answered with what a disk holding files of `on_disk`
    /// bytes gives.
    fn pieces_read(files: &[cluster::FileSum], on_disk: &[u64], size: usize) -> Vec<Piece> {
        let mut pieces = Pieces::new(files);
        let mut all = Vec::new();
        while let Some(p) = pieces.next(size) {
            assert!(all.len() < 100, "never ends: {all:?}");
            let n = (p.ask as u64).min(on_disk[p.file].saturating_sub(p.offset));
            pieces.read(p, n);
            all.push(p);
        }
        all
    }

    #[test]
    fn a_copy_reads_each_file_whole_in_block_multiples_an_empty_one_once() {
        let files = [
            file("a", 10_000),
            file("empty", 0),
            file("b", 8192),
            file("c", 1),
        ];
        let got = pieces_read(&files, &[10_000, 0, 8192, 1], 4096);
        let at: Vec<_> = got.iter().map(|p| (p.file, p.offset, p.ask)).collect();
        assert_eq!(
            at,
            [
                (0, 0, 4096),
                (0, 4096, 4096),
                (0, 8192, 4096),
                (1, 0, 0),
                (2, 0, 4096),
                (2, 4096, 4096),
                (3, 0, 4096),
            ]
        );
    }

    #[test]
    fn a_file_shorter_on_the_disk_than_in_the_catalog_ends_where_the_disk_does() {
        let files = [file("a", 20_000), file("b", 5)];
        let got = pieces_read(&files, &[5000, 5], 8192);
        let at: Vec<_> = got.iter().map(|p| (p.file, p.offset)).collect();
        assert_eq!(at, [(0, 0), (1, 0)]);
    }

    fn entry(n: usize) -> cluster::CatalogEntry {
        cluster::CatalogEntry {
            id: format!("img-{n:05}"),
            version: 0,
            state: ReplicaState::Ok,
            disk: "d1".into(),
            nodes: vec!["node-a".into(), "node-b".into()],
            epoch: 1,
            width: 1,
            height: 1,
            meta: cluster::ImageMeta::default(),
            files: Vec::new(),
        }
    }

    fn ids(entries: &[cluster::CatalogEntry]) -> BTreeSet<String> {
        entries.iter().map(|e| e.id.clone()).collect()
    }

    fn range(from: usize, to: usize) -> BTreeSet<String> {
        (from..to).map(|n| entry(n).id).collect()
    }

    #[test]
    fn a_round_surveys_what_changed_what_is_named_and_a_slice_of_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, _) = Catalog::open(&dir.path().join("catalog"), "node-a").unwrap();
        let all = 2 * SWEEP_SLICE + 500;
        for n in 0..all {
            catalog.add(entry(n)).unwrap();
        }
        let peers = vec![("b1".to_string(), true, true)];
        let none = BTreeSet::new();

        // The first round sees everything (the fast sweep wraps around at once).
        let (seen, at) = to_survey(
            &catalog,
            Surveyed::default(),
            peers.clone(),
            none.clone(),
            true,
        );
        assert_eq!(ids(&seen), range(0, all));
        assert!(!at.sweep_fast);

        // Nothing changed: one slice of the sweep.
        let (seen, at) = to_survey(&catalog, at, peers.clone(), none.clone(), true);
        assert_eq!(ids(&seen), range(0, SWEEP_SLICE));

        // A change here and an id named (a peer's change, a wait, a job) beyond the slice.
        let changed = entry(all - 1).id;
        let named = entry(all - 2).id;
        catalog
            .set_state(
                &changed,
                ReplicaState::Suspect {
                    reason: "test".into(),
                },
            )
            .unwrap();
        let (seen, at) = to_survey(&catalog, at, peers.clone(), [named.clone()].into(), true);
        let mut want = range(SWEEP_SLICE, 2 * SWEEP_SLICE);
        want.extend([changed.clone(), named]);
        assert_eq!(ids(&seen), want);
        let changed_entry = seen.iter().find(|e| e.id == changed).unwrap();
        assert!(matches!(changed_entry.state, ReplicaState::Suspect { .. }));

        // The end of the sweep, then around again; the change is not seen twice.
        let (seen, at) = to_survey(&catalog, at, peers.clone(), none.clone(), true);
        assert_eq!(ids(&seen), range(2 * SWEEP_SLICE, all));
        assert!(at.sweep_after.is_empty());

        // A peer falls silent: everything again at once.
        let silent = vec![("b1".to_string(), true, false)];
        let (seen, at) = to_survey(&catalog, at, silent, none.clone(), true);
        assert_eq!(ids(&seen), range(0, all));

        // A rebuilt catalog (a new name): everything again.
        let mut renamed = at.clone();
        renamed.catalog = Some(("an older catalog".into(), 0));
        let (seen, at) = to_survey(&catalog, renamed, peers.clone(), none.clone(), true);
        assert_eq!(ids(&seen), range(0, all));

        // A peer still being read: no sweep, only what changed here and what is named; once
        // it was read whole, everything again.
        let reading = vec![
            ("b1".to_string(), false, true),
            (String::new(), false, true),
        ];
        let (seen, at) = to_survey(&catalog, at, reading.clone(), none.clone(), false);
        assert!(seen.is_empty());
        let suspect = ReplicaState::Suspect {
            reason: "test".into(),
        };
        catalog.set_state(&entry(3).id, suspect).unwrap();
        let named = entry(7).id;
        let (seen, at) = to_survey(&catalog, at, reading, [named.clone()].into(), false);
        assert_eq!(ids(&seen), [entry(3).id, named].into());
        let read = vec![("b1".to_string(), true, true), (String::new(), true, true)];
        let (seen, at) = to_survey(&catalog, at, read.clone(), none.clone(), true);
        assert_eq!(ids(&seen), range(0, all));
        let (seen, _) = to_survey(&catalog, at, read, none, true);
        assert_eq!(ids(&seen), range(0, SWEEP_SLICE));
    }
}
