//! The node that received an upload coordinates it: it gathers the facts from every node (its
//! own staging folder, each node's answer to `GET /internal/facts/…`), asks
//! [`protocol::next_step`] what to do, does it, and asks again. It keeps no state of its own:
//! after a crash the facts on the disks say where it was.
//!
//! The last chunk of an upload drives it up to the acknowledgement while the provider waits
//! (so "done" in the portal means two durable copies); the [`IngestWorker`] drives everything
//! after, and anything a crash interrupted.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::{ClusterConfig, FileSum, ImageMeta};
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

use super::peers::{CallError, Peers};
use super::placement::{self, Placement};
use super::protocol::{self, Facts, NodeId, Step, View};
use super::staging::{self, Acknowledged, Failed, Staging, Upload};
use super::status::{Stage, StatusBook, UploadStatus};
use super::{IngestError, MAX_UPLOAD, SEND_CHUNK};
use crate::catalog::Catalog;
use crate::disk::Disk;
use crate::library::Library;
use crate::replica::{Manifest, FORMAT, META, PYRAMID, THUMBNAIL};
use crate::worker::{BoxFuture, Worker, WorkerState};

/// How long a node has to answer a question about facts.
const ASK: Duration = Duration::from_secs(3);
/// How long a chunk may take to arrive and be fsynced.
const CHUNK_DEADLINE: Duration = Duration::from_secs(60);

/// What one node says about an upload (`GET /internal/facts/UPLOAD/IMAGE`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// Its staging copy, whole and fsynced, with its sum.
    pub staged: Option<FileSum>,
    /// It still has a staging folder for the upload.
    pub staging: bool,
    /// How far the image's replica has come here.
    pub replica: Option<Placement>,
    /// The most free bytes on one of its disks.
    pub free: u64,
}

/// `tiled.json`: the pyramid and thumbnail made in staging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tiled {
    pub files: Vec<FileSum>,
    pub width: u32,
    pub height: u32,
}

/// What the provider sends before the bytes (`POST /internal/uploads`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    pub filename: String,
    pub length: u64,
    pub meta: ImageMeta,
}

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
    cluster: ClusterConfig,
    disks: Vec<Arc<Disk>>,
    catalog: Arc<Catalog>,
    library: Arc<Library>,
    /// `None` when the node has no cluster secret: it then takes no uploads.
    peers: Option<Peers>,
    off: Option<String>,
    pub status: StatusBook,
    /// The SHA-256 of each original as it arrives.
    pub sums: staging::RunningSums,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Upload id → the node receiving its chunks as they arrive (see [`Ingest::mirror`]).
    mirrors: Mutex<HashMap<String, Option<String>>>,
    wake: tokio::sync::Notify,
    /// Tests only: the point at which this process kills itself (`TD_CRASH_AT`).
    crash_at: Option<String>,
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
            Ok(s) => (Some(Peers::new(s, origins)), None),
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
            locks: Mutex::new(HashMap::new()),
            mirrors: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            crash_at: std::env::var("TD_CRASH_AT").ok().filter(|s| !s.is_empty()),
        }
    }

    /// Why this node takes no uploads, if it does not.
    pub fn off(&self) -> Option<&str> {
        self.off.as_deref()
    }

    pub fn disks(&self) -> &[Arc<Disk>] {
        &self.disks
    }

    /// Tests prove crash safety by killing the process at each step: with `TD_CRASH_AT=point`
    /// it sends itself SIGKILL there, right after the step's fact is on the disk.
    pub fn crash_point(&self, point: &str) {
        if self.crash_at.as_deref() == Some(point) {
            eprintln!(
                "td backend {}: TD_CRASH_AT={point}: killing myself",
                self.me
            );
            // SAFETY: signalling our own process.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }

    fn peers(&self) -> Result<&Peers, IngestError> {
        self.peers
            .as_ref()
            .ok_or_else(|| IngestError::Off(self.off.clone().unwrap_or_default()))
    }

    // ---- the receiving side: what the portal calls, through a frontend ----

    /// Starts an upload for `owner`: checks what was sent and makes its staging folder.
    pub async fn create(&self, owner: &str, new: NewUpload) -> Result<UploadStatus, IngestError> {
        self.peers()?;
        check_new(owner, &new)?;
        let id = cluster::auth::random_hex(16)
            .map_err(super::io(std::path::Path::new("/dev/urandom")))?;
        let suffix = &id[..6];
        let image = format!("{}-{suffix}", slug(&new.meta.title));
        let upload = Upload {
            id,
            image,
            owner: owner.to_string(),
            filename: new.filename,
            length: new.length,
            meta: ImageMeta {
                owner: owner.to_string(),
                ..new.meta
            },
            home: self.me.clone(),
            created: cluster::unix_now(),
        };
        let disks = self.disks.clone();
        let (me, u) = (self.me.clone(), upload.clone());
        blocking(move || Staging::create(&disks, &me, &u)).await?;
        let status = initial_status(&upload);
        self.status.put(&status);
        Ok(status)
    }

    /// The staging folder of one of `owner`'s uploads.
    fn owned(&self, owner: &str, id: &str) -> Result<(Staging, Upload), IngestError> {
        let Some(staging) = Staging::find(&self.disks, id) else {
            // Finished (published or failed) and its staging cleared: all its bytes were
            // taken, which is what a provider resuming it must hear.
            return Err(match self.status.get(id) {
                Some(s) if s.owner != owner => {
                    IngestError::Forbidden(format!("upload {id} belongs to another account"))
                }
                Some(s) => IngestError::Conflict {
                    at: s.length,
                    got: s.length,
                },
                None => IngestError::NotFound(format!("no upload {id} is under way here")),
            });
        };
        let upload = staging.upload()?;
        if upload.owner != owner {
            return Err(IngestError::Forbidden(format!(
                "upload {id} belongs to another account"
            )));
        }
        Ok((staging, upload))
    }

    /// How many bytes of the upload are here, and of how many.
    pub async fn offset(&self, owner: &str, id: &str) -> Result<(u64, u64), IngestError> {
        let (staging, upload) = match self.owned(owner, id) {
            Err(IngestError::Conflict { at, .. }) => return Ok((at, at)),
            other => other?,
        };
        let at = blocking(move || staging.offset()).await?;
        Ok((at, upload.length))
    }

    /// Appends a chunk. When it was the last, the upload is sealed and driven up to the
    /// acknowledgement (two durable copies) before this returns.
    pub async fn append(
        self: &Arc<Self>,
        owner: &str,
        id: &str,
        offset: u64,
        bytes: Bytes,
    ) -> Result<(u64, UploadStatus), IngestError> {
        let (staging, upload) = self.owned(owner, id)?;
        let length = upload.length;
        let mirror = self.mirror(&upload, offset).await;
        let (s, me, b) = (staging.clone(), self.clone(), bytes.clone());
        let local = blocking(move || s.append(length, offset, &b, &me.sums));
        // The second copy is written while the first is: the chunk goes to the mirror at the
        // same time. A mirror that fails is dropped; the coordinator's Stage step then copies
        // whatever it lacks, after the upload.
        let at = match &mirror {
            Some(node) => {
                let path = format!("/internal/staging/{}?offset={offset}", upload.id);
                let remote = self
                    .peers()?
                    .call(node, "PATCH", &path, "", bytes, CHUNK_DEADLINE);
                let (local, remote) = tokio::join!(local, remote);
                if local.is_err() || remote.is_err() {
                    self.drop_mirror(&upload.id, remote.err().map(|e| e.message));
                }
                local?
            }
            None => local.await?,
        };
        let mut status = self
            .status
            .get(id)
            .unwrap_or_else(|| initial_status(&upload));
        status.received = at;
        self.status.put(&status);
        if at == length {
            let (s, me) = (staging.clone(), self.clone());
            blocking(move || s.seal(length, None, &me.sums)).await?;
            self.mirrors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&upload.id);
            self.crash_point("staged-home");
            // Up to the acknowledgement now, while the provider waits.
            for _ in 0..8 {
                match self.drive(id).await {
                    Driven::Did(Step::Acknowledge) | Driven::Waiting(_) | Driven::Done => break,
                    Driven::Did(_) | Driven::Busy => {}
                }
            }
            self.wake.notify_one();
            status = self.status.get(id).unwrap_or(status);
        }
        Ok((at, status))
    }

    /// The node that receives a copy of each chunk as it arrives, chosen at the first chunk: the
    /// first node in another power domain that takes the upload. `None` when there is none (or
    /// after a restart, or once it failed).
    async fn mirror(&self, upload: &Upload, offset: u64) -> Option<String> {
        if offset > 0 {
            return self
                .mirrors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&upload.id)
                .cloned()
                .flatten();
        }
        let peers = self.peers.as_ref()?;
        let home_domain = &self.cluster.node(&self.me)?.power_domain;
        let body = Bytes::from(serde_json::to_vec(upload).expect("plain data"));
        let path = format!("/internal/staging/{}", upload.id);
        let mut chosen = None;
        for n in self
            .cluster
            .nodes
            .iter()
            .filter(|n| &n.power_domain != home_domain)
        {
            let answer: Result<OffsetAnswer, _> =
                peers.json(&n.name, "PUT", &path, body.clone(), ASK).await;
            if matches!(answer, Ok(OffsetAnswer { offset: 0 })) {
                chosen = Some(n.name.clone());
                break;
            }
        }
        self.mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(upload.id.clone(), chosen.clone());
        chosen
    }

    fn drop_mirror(&self, id: &str, why: Option<String>) {
        let mut mirrors = self.mirrors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(Some(node)) = mirrors.insert(id.to_string(), None) {
            eprintln!(
                "td backend {}: upload {id}: {node} no longer takes the chunks as they come ({}); \
                 the copy is completed after the upload",
                self.me,
                why.unwrap_or_else(|| "this node's write failed".into())
            );
        }
    }

    /// The uploads this node received for `owner` ("" for all), newest first.
    pub fn list(&self, owner: &str) -> Vec<UploadStatus> {
        self.status.list(owner)
    }

    // ---- the facts ----

    /// What this node's disks say about `upload` and `image`.
    pub fn local_facts(&self, upload: &str, image: &str) -> NodeFacts {
        let staging = Staging::find(&self.disks, upload);
        NodeFacts {
            staged: staging.as_ref().and_then(|s| s.staged().ok().flatten()),
            staging: staging.is_some(),
            replica: placement::find(&self.disks, image).map(|(_, p)| p),
            free: self
                .disks
                .iter()
                .filter(|d| !d.is_failed())
                .filter_map(|d| fs2::available_space(&d.config.path).ok())
                .max()
                .unwrap_or(0),
        }
    }

    async fn facts_of(&self, node: &str, upload: &Upload) -> Result<NodeFacts, CallError> {
        if node == self.me {
            return Ok(self.local_facts(&upload.id, &upload.image));
        }
        let path = format!("/internal/facts/{}/{}", upload.id, upload.image);
        self.peers()
            .map_err(|e| CallError {
                status: None,
                message: e.to_string(),
            })?
            .json(node, "GET", &path, Bytes::new(), ASK)
            .await
    }

    fn node_id(&self, name: &str) -> Option<NodeId> {
        self.cluster.nodes.iter().position(|n| n.name == name)
    }

    fn name(&self, id: NodeId) -> &str {
        &self.cluster.nodes[id].name
    }

    /// The facts about `upload` from every node, and which nodes answered.
    async fn gather(&self, staging: &Staging, upload: &Upload) -> Result<Gathered, IngestError> {
        let mut domains_seen: Vec<&str> = Vec::new();
        let domains = self
            .cluster
            .nodes
            .iter()
            .map(|n| {
                let d = n.power_domain.as_str();
                let i = domains_seen
                    .iter()
                    .position(|s| *s == d)
                    .unwrap_or_else(|| {
                        domains_seen.push(d);
                        domains_seen.len() - 1
                    });
                i as u8
            })
            .collect();
        let asks = self
            .cluster
            .nodes
            .iter()
            .map(|n| self.facts_of(&n.name, upload));
        // Asked together: a node that does not answer costs its deadline once, not per node.
        let answers = futures_util::future::join_all(asks).await;
        let mut up = BTreeSet::new();
        let mut nodes = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            if let Ok(f) = &a {
                up.insert(i);
                nodes.push(f.clone());
            } else {
                nodes.push(NodeFacts::default());
            }
        }
        let acknowledged: Option<Acknowledged> = staging.marker(staging::ACKNOWLEDGED)?;
        let ids = |names: &[String]| -> BTreeSet<NodeId> {
            names.iter().filter_map(|n| self.node_id(n)).collect()
        };
        let staged = match &acknowledged {
            Some(a) => ids(&a.staged_on),
            None => (0..nodes.len())
                .filter(|&i| nodes[i].staged.is_some())
                .collect(),
        };
        let targets = staging
            .marker::<[String; 2]>(staging::TARGETS)?
            .and_then(|[a, b]| Some([self.node_id(&a)?, self.node_id(&b)?]));
        let at_least = |p: Placement| -> BTreeSet<NodeId> {
            targets
                .iter()
                .flatten()
                .copied()
                .filter(|&t| nodes[t].replica.is_some_and(|r| r >= p))
                .collect()
        };
        let facts = Facts {
            cleared: staged
                .iter()
                .copied()
                .filter(|&n| up.contains(&n) && !nodes[n].staging)
                .collect(),
            staged,
            acknowledged: acknowledged.is_some(),
            tiled: staging.path(staging::TILED).exists(),
            targets,
            placed: at_least(Placement::Placed),
            verified: at_least(Placement::Verified),
            published: at_least(Placement::Published),
        };
        let home = self.node_id(&upload.home).unwrap_or(0);
        Ok(Gathered {
            facts,
            view: View { home, domains, up },
            nodes,
        })
    }

    // ---- driving ----

    /// Does the next step of upload `id`, if it can be done now.
    pub async fn drive(&self, id: &str) -> Driven {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(id.to_string()).or_default().clone()
        };
        let Ok(_held) = lock.try_lock() else {
            return Driven::Busy;
        };
        let Some(staging) = Staging::find(&self.disks, id) else {
            return Driven::Done;
        };
        let upload = match staging.upload() {
            Ok(u) => u,
            Err(e) => return Driven::Waiting(e.to_string()),
        };
        let mut status = self
            .status
            .get(id)
            .unwrap_or_else(|| initial_status(&upload));
        match self.step(&staging, &upload, &mut status).await {
            Ok(driven) => {
                if let Driven::Waiting(why) = &driven {
                    status.waiting = Some(why.clone());
                }
                self.status.put(&status);
                driven
            }
            Err(e) => {
                let why = e.to_string();
                status.waiting = Some(why.clone());
                self.status.put(&status);
                Driven::Waiting(why)
            }
        }
    }

    async fn step(
        &self,
        staging: &Staging,
        upload: &Upload,
        status: &mut UploadStatus,
    ) -> Result<Driven, IngestError> {
        if upload.home != self.me {
            return Ok(Driven::Waiting(format!(
                "coordinated by {}, which received it",
                upload.home
            )));
        }
        if staging.staged()?.is_none() {
            status.stage = Stage::Receiving;
            return Ok(Driven::Waiting("receiving the original".into()));
        }
        let g = self.gather(staging, upload).await?;
        if let Some(failed) = staging.marker::<Failed>(staging::FAILED)? {
            status.stage = Stage::Failed;
            status.error = Some(failed.reason);
            status.waiting = None;
            return self.clear_failed(staging, upload, &g).await;
        }
        let mut step = protocol::next_step(&g.facts, &g.view);
        if let Step::Choose(_) = step {
            step = self.choose(upload, &g)?;
        }
        status.stage = stage_of(&g.facts);
        status.waiting = None;
        status.received = upload.length;
        let done = step.clone();
        match step {
            Step::Wait(why) => return Ok(Driven::Waiting(why)),
            Step::Done => return Ok(Driven::Done),
            Step::Stage(n) => self.stage_copy(staging, upload, self.name(n)).await?,
            Step::Acknowledge => {
                let names = g.facts.staged.iter().map(|&n| self.name(n).to_string());
                staging.set_marker(
                    staging::ACKNOWLEDGED,
                    &Acknowledged {
                        staged_on: names.collect(),
                        at: cluster::unix_now(),
                    },
                )?;
                status.stage = Stage::Durable;
                self.crash_point("acknowledged");
            }
            Step::Tile => {
                status.stage = Stage::Tiling;
                self.status.put(status);
                self.tile(staging, upload).await?;
                self.crash_point("tiled");
            }
            Step::Choose([a, b]) => {
                staging.set_marker(staging::TARGETS, &[self.name(a), self.name(b)])?;
                self.crash_point("chosen");
            }
            Step::Place(t) => {
                status.stage = Stage::Placing;
                self.status.put(status);
                self.place(staging, upload, self.name(t)).await?;
                self.crash_point("placed");
            }
            Step::Verify(t) => {
                status.stage = Stage::Verifying;
                self.status.put(status);
                let manifest = self.manifest(staging, upload)?;
                let body = Bytes::from(serde_json::to_vec(&manifest).expect("plain data"));
                let path = format!("/internal/replicas/{}/verify", upload.image);
                self.peers()?
                    .call(self.name(t), "POST", &path, "", body, slow(upload.length))
                    .await
                    .map_err(|e| IngestError::Peer(e.message))?;
                self.crash_point("verified");
            }
            Step::Publish(t) => {
                let path = format!("/internal/replicas/{}/publish", upload.image);
                self.peers()?
                    .call(self.name(t), "POST", &path, "", Bytes::new(), ASK * 10)
                    .await
                    .map_err(|e| IngestError::Peer(e.message))?;
                self.crash_point("published");
            }
            Step::Clear(n) => {
                let home = self.node_id(&self.me);
                let others_left = g
                    .facts
                    .staged
                    .iter()
                    .any(|&s| Some(s) != home && !g.facts.cleared.contains(&s));
                if Some(n) == home && others_left {
                    return Ok(Driven::Waiting(
                        "published; the other staging copy is cleared first".into(),
                    ));
                }
                // A partial copy a mirror kept (it failed, another node took the copy) goes
                // before the home node's, which is the last record of the upload.
                if Some(n) == home {
                    if let Some(orphan) = (0..g.nodes.len())
                        .find(|&i| Some(i) != home && g.nodes[i].staging && g.view.up.contains(&i))
                    {
                        self.clear(staging, upload, self.name(orphan)).await?;
                        return Ok(Driven::Did(Step::Clear(orphan)));
                    }
                }
                self.clear(staging, upload, self.name(n)).await?;
                if Some(n) == home {
                    status.stage = Stage::Published;
                    status.waiting = None;
                }
                self.crash_point("cleared");
            }
        }
        if g.facts.published.len() == 2 {
            status.stage = Stage::Published;
        }
        Ok(Driven::Did(done))
    }

    /// Two targets in different power domains, the pair with the most room, both able to take
    /// the replica.
    fn choose(&self, upload: &Upload, g: &Gathered) -> Result<Step, IngestError> {
        let tiled: Option<Tiled> = Staging::find(&self.disks, &upload.id)
            .and_then(|s| s.marker(staging::TILED).ok().flatten());
        let need = upload.length
            + tiled.map_or(0, |t| t.files.iter().map(|f| f.size).sum())
            + super::DISK_RESERVE;
        let mut best: Option<(u64, [NodeId; 2])> = None;
        let ups: Vec<NodeId> = g.view.up.iter().copied().collect();
        for (i, &a) in ups.iter().enumerate() {
            for &b in &ups[i + 1..] {
                if g.view.domains[a] == g.view.domains[b] {
                    continue;
                }
                let room = g.nodes[a].free.min(g.nodes[b].free);
                if room >= need && best.is_none_or(|(r, _)| room > r) {
                    best = Some((room, [a, b]));
                }
            }
        }
        Ok(match best {
            Some((_, pair)) => Step::Choose(pair),
            None => Step::Wait(format!(
                "two replicas cannot be placed now: no two nodes in different power domains \
                 that answer have room for {} MB each; the upload stays safely staged until \
                 they do",
                need / 1_000_000
            )),
        })
    }

    /// Sends the original to `node`'s staging, from where its copy stopped.
    async fn stage_copy(
        &self,
        staging: &Staging,
        upload: &Upload,
        node: &str,
    ) -> Result<(), IngestError> {
        let peers = self.peers()?;
        let peer = |e: CallError| IngestError::Peer(e.message);
        let body = Bytes::from(serde_json::to_vec(upload).expect("plain data"));
        let path = format!("/internal/staging/{}", upload.id);
        let at: OffsetAnswer = peers
            .json(node, "PUT", &path, body, ASK)
            .await
            .map_err(peer)?;
        let sum = staging
            .staged()?
            .ok_or_else(|| IngestError::Invalid("not staged here".into()))?;
        if at.offset < upload.length {
            let first = at.offset;
            self.send_file(node, &staging.path(staging::ORIGINAL), first, |off| {
                format!("/internal/staging/{}?offset={off}", upload.id)
            })
            .await?;
        }
        let path = format!("/internal/staging/{}/seal?sha256={}", upload.id, sum.sha256);
        peers
            .call(node, "POST", &path, "", Bytes::new(), slow(upload.length))
            .await
            .map_err(peer)?;
        self.crash_point("staged-copy");
        Ok(())
    }

    /// PATCHes `file` to `node` in chunks from byte `from`, each to the path `at(offset)`.
    async fn send_file(
        &self,
        node: &str,
        file: &std::path::Path,
        from: u64,
        at: impl Fn(u64) -> String,
    ) -> Result<(), IngestError> {
        let peers = self.peers()?;
        let size = std::fs::metadata(file).map_err(super::io(file))?.len();
        let mut offset = from;
        let mut sent_chunks = 0;
        while offset < size {
            let (path, o) = (file.to_path_buf(), offset);
            let chunk = blocking(move || read_chunk(&path, o)).await?;
            let n = chunk.len() as u64;
            peers
                .call(node, "PATCH", &at(offset), "", chunk, CHUNK_DEADLINE)
                .await
                .map_err(|e| IngestError::Peer(e.message))?;
            offset += n;
            sent_chunks += 1;
            if sent_chunks == 1 {
                self.crash_point("mid-transfer");
            }
        }
        Ok(())
    }

    /// Tiles the staged original into the staging folder. An original that is not an image it
    /// can read fails the upload for good; anything else (this node's disk) is tried again.
    async fn tile(&self, staging: &Staging, upload: &Upload) -> Result<(), IngestError> {
        let s = staging.clone();
        let filename = upload.filename.clone();
        let result = blocking(move || {
            let (original, pyramid, thumb) = (
                s.path(staging::ORIGINAL),
                s.path(staging::PYRAMID),
                s.path(staging::THUMBNAIL),
            );
            let report = tiler::tile(
                &original,
                &pyramid,
                &thumb,
                &tiler::TileOptions::default(),
                &|_, _| {},
            );
            let report = match report {
                Ok(r) => r,
                Err(tiler::TileError::Source(e)) if !matches!(e, tiler::SourceError::Io { .. }) => {
                    let reason = e
                        .to_string()
                        .replace(&original.display().to_string(), &filename);
                    s.set_marker(
                        staging::FAILED,
                        &Failed {
                            reason: format!("{reason}; nothing was published"),
                            at: cluster::unix_now(),
                        },
                    )?;
                    return Ok(());
                }
                Err(e) => return Err(IngestError::Invalid(format!("tiling failed: {e}"))),
            };
            let mut files = Vec::new();
            for (path, name) in [(&pyramid, PYRAMID), (&thumb, THUMBNAIL)] {
                let (size, sha256) =
                    crate::replica::hash_file(path, &mut |_| {}).map_err(super::io(path))?;
                files.push(FileSum {
                    name: name.into(),
                    size,
                    sha256,
                });
            }
            s.set_marker(
                staging::TILED,
                &Tiled {
                    files,
                    width: report.geometry.width,
                    height: report.geometry.height,
                },
            )
        });
        result.await
    }

    /// The replica's manifest, the same every time it is asked (a restart places the same).
    fn manifest(&self, staging: &Staging, upload: &Upload) -> Result<Manifest, IngestError> {
        let missing = |what: &str| IngestError::Invalid(format!("{what} is missing in staging"));
        let original = staging.staged()?.ok_or_else(|| missing("staged.json"))?;
        let tiled: Tiled = staging
            .marker(staging::TILED)?
            .ok_or_else(|| missing("tiled.json"))?;
        let ack: Acknowledged = staging
            .marker(staging::ACKNOWLEDGED)?
            .ok_or_else(|| missing("acknowledged.json"))?;
        let targets: [String; 2] = staging
            .marker(staging::TARGETS)?
            .ok_or_else(|| missing("targets.json"))?;
        let meta = meta_bytes(&upload.meta);
        let mut files = vec![FileSum {
            name: original_name(&upload.filename),
            ..original
        }];
        files.extend(tiled.files);
        files.push(FileSum {
            name: META.into(),
            size: meta.len() as u64,
            sha256: crate::replica::sha256(&meta),
        });
        Ok(Manifest {
            format: FORMAT,
            id: upload.image.clone(),
            nodes: targets.to_vec(),
            placed_at: ack.at,
            files,
        })
    }

    /// Sends the whole replica set to `node`, hidden, and has it sealed there.
    async fn place(
        &self,
        staging: &Staging,
        upload: &Upload,
        node: &str,
    ) -> Result<(), IngestError> {
        let peers = self.peers()?;
        let peer = |e: CallError| IngestError::Peer(e.message);
        let manifest = self.manifest(staging, upload)?;
        let total: u64 = manifest.files.iter().map(|f| f.size).sum();
        let image = &upload.image;
        let path = format!("/internal/replicas/{image}/begin?size={total}");
        peers
            .call(node, "POST", &path, "", Bytes::new(), ASK * 10)
            .await
            .map_err(peer)?;
        for f in &manifest.files {
            let name = f.name.clone();
            let at = |off: u64| format!("/internal/replicas/{image}/files/{name}?offset={off}");
            if f.name == META {
                peers
                    .call(
                        node,
                        "PATCH",
                        &at(0),
                        "",
                        Bytes::from(meta_bytes(&upload.meta)),
                        ASK * 10,
                    )
                    .await
                    .map_err(peer)?;
                continue;
            }
            let source = if f.name == PYRAMID || f.name == THUMBNAIL {
                staging.path(&f.name)
            } else {
                staging.path(staging::ORIGINAL)
            };
            self.send_file(node, &source, 0, at).await?;
        }
        let body = Bytes::from(serde_json::to_vec(&manifest).expect("plain data"));
        let path = format!("/internal/replicas/{image}/seal");
        peers
            .call(node, "POST", &path, "", body, ASK * 10)
            .await
            .map_err(peer)?;
        Ok(())
    }

    async fn clear(
        &self,
        staging: &Staging,
        upload: &Upload,
        node: &str,
    ) -> Result<(), IngestError> {
        if node == self.me {
            let s = staging.clone();
            return blocking(move || s.clear()).await;
        }
        let path = format!("/internal/staging/{}", upload.id);
        self.peers()?
            .call(node, "DELETE", &path, "", Bytes::new(), ASK * 10)
            .await
            .map(|_| ())
            .map_err(|e| IngestError::Peer(e.message))
    }

    /// A failed upload: the other nodes' staging copies are cleared, then this one.
    async fn clear_failed(
        &self,
        staging: &Staging,
        upload: &Upload,
        g: &Gathered,
    ) -> Result<Driven, IngestError> {
        let home = self.node_id(&self.me);
        for (i, n) in g.nodes.iter().enumerate() {
            if Some(i) != home && n.staging {
                self.clear(staging, upload, self.name(i)).await?;
                return Ok(Driven::Did(Step::Clear(i)));
            }
        }
        if g.nodes
            .iter()
            .enumerate()
            .any(|(i, _)| Some(i) != home && !g.view.up.contains(&i))
        {
            // A node that does not answer may hold a copy; it is cleared when it is back.
            if g.facts
                .staged
                .iter()
                .any(|s| Some(*s) != home && !g.view.up.contains(s))
            {
                return Ok(Driven::Waiting("a node holding a copy is down".into()));
            }
        }
        let s = staging.clone();
        blocking(move || s.clear()).await?;
        Ok(Driven::Done)
    }

    // ---- the target side: what other nodes' coordinators call here ----

    /// Publishes replica `image` here: visible under its id, in the catalog, served.
    pub async fn publish_here(&self, image: &str) -> Result<(), IngestError> {
        let disks = self.disks.clone();
        let id = image.to_string();
        let disk = blocking(move || placement::publish(&disks, &id)).await?;
        self.crash_point("target-renamed");
        let (catalog, library) = (self.catalog.clone(), self.library.clone());
        let (id, cluster, me) = (image.to_string(), self.cluster.clone(), self.me.clone());
        blocking(move || {
            let known = catalog.get(&id);
            if known
                .as_ref()
                .is_some_and(|k| k.state.servable() && k.disk == disk.config.id)
            {
                return Ok(());
            }
            let entry = crate::catalog::read_entry(&disk, &id);
            if let cluster::ReplicaState::Unreadable { reason } = &entry.state {
                return Err(IngestError::Invalid(format!(
                    "published replica {id}: {reason}"
                )));
            }
            serve_now(&catalog, &library, &cluster, &me, entry, &disk)
        })
        .await
    }

    /// The owner changes the metadata of an image published here. Only the account that
    /// uploaded it may; an image no account owns (placed by hand) cannot be changed here.
    pub async fn edit_meta(
        &self,
        user: &str,
        image: &str,
        meta: ImageMeta,
    ) -> Result<(), IngestError> {
        check_meta(&meta)?;
        let (disks, catalog, library) = (
            self.disks.clone(),
            self.catalog.clone(),
            self.library.clone(),
        );
        let (user, image, cluster, me) = (
            user.to_string(),
            image.to_string(),
            self.cluster.clone(),
            self.me.clone(),
        );
        blocking(move || {
            let Some((disk, Placement::Published)) = placement::find(&disks, &image) else {
                return Err(IngestError::NotFound(format!(
                    "no image {image} is published here"
                )));
            };
            let dir = disk.images_dir().join(&image);
            let bad = |e: crate::replica::ReplicaError| IngestError::Invalid(e.to_string());
            let old = crate::replica::read_meta(&dir).map_err(bad)?;
            if old.owner.is_empty() {
                return Err(IngestError::Forbidden(format!(
                    "no account owns {image}: it was placed by an operator"
                )));
            }
            if old.owner != user {
                return Err(IngestError::Forbidden(format!(
                    "{image} belongs to another account"
                )));
            }
            let new = ImageMeta {
                owner: old.owner,
                ..meta
            };
            let bytes = meta_bytes(&new);
            let mut manifest = crate::replica::read_manifest(&dir, &image).map_err(bad)?;
            for f in manifest.files.iter_mut().filter(|f| f.name == META) {
                f.size = bytes.len() as u64;
                f.sha256 = crate::replica::sha256(&bytes);
            }
            // The metadata first, then the manifest that names its sum: a crash in between
            // leaves a mismatch the audit names, never a wrong picture.
            super::write_durable(&dir, META, &bytes)?;
            super::write_durable(
                &dir,
                crate::replica::MANIFEST,
                &serde_json::to_vec_pretty(&manifest).expect("plain data"),
            )?;
            let entry = crate::catalog::read_entry(&disk, &image);
            serve_now(&catalog, &library, &cluster, &me, entry, &disk)
        })
        .await
    }

    /// The worker that drives every upload this node received.
    pub fn worker(self: &Arc<Self>) -> IngestWorker {
        IngestWorker {
            ingest: self.clone(),
            line: String::new(),
        }
    }
}

/// A replica just published or changed here: into the catalog (frontends learn it) and the
/// library (served at once).
fn serve_now(
    catalog: &Catalog,
    library: &Library,
    cluster: &ClusterConfig,
    me: &str,
    entry: cluster::CatalogEntry,
    disk: &Arc<Disk>,
) -> Result<(), IngestError> {
    let entry = catalog
        .add(entry)
        .map_err(|e| IngestError::Invalid(e.to_string()))?;
    catalog.flush();
    let origin_of = |node: &str| {
        (node != me)
            .then(|| cluster.node(node).map(cluster::NodeConfig::origin))
            .flatten()
    };
    library
        .insert(entry, disk, origin_of)
        .map_err(IngestError::Invalid)
}

struct Gathered {
    facts: Facts,
    view: View,
    nodes: Vec<NodeFacts>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct OffsetAnswer {
    pub offset: u64,
}

/// Drives the uploads this node received, one step of one upload per unit of work, every one
/// at least once a second while any is waiting.
pub struct IngestWorker {
    ingest: Arc<Ingest>,
    line: String,
}

impl Worker for IngestWorker {
    fn name(&self) -> String {
        "ingest".into()
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            let ingest = self.ingest.clone();
            let disks = ingest.disks.clone();
            let ids: Vec<String> = blocking(move || {
                Ok(Staging::all(&disks)
                    .into_iter()
                    .filter_map(|s| s.upload().ok())
                    .filter(|u| u.home == ingest.me)
                    .map(|u| u.id)
                    .collect())
            })
            .await
            .map_err(|e: IngestError| e.to_string())?;
            let mut moved = 0;
            let mut waiting = 0;
            for id in &ids {
                match self.ingest.drive(id).await {
                    Driven::Did(_) => moved += 1,
                    Driven::Waiting(_) | Driven::Busy => waiting += 1,
                    Driven::Done => {}
                }
            }
            self.line = format!("{} uploads under way, {waiting} waiting", ids.len());
            Ok(if moved > 0 {
                WorkerState::Busy
            } else if ids.is_empty() {
                WorkerState::Idle
            } else {
                WorkerState::Throttled(Duration::from_secs(1))
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

/// Where an upload is, from its facts.
fn stage_of(f: &Facts) -> Stage {
    if !f.acknowledged {
        Stage::Received
    } else if !f.tiled {
        Stage::Tiling
    } else if f.placed.len() < 2 {
        Stage::Placing
    } else if f.verified.len() < 2 || f.published.len() < 2 {
        Stage::Verifying
    } else {
        Stage::Published
    }
}

fn initial_status(u: &Upload) -> UploadStatus {
    UploadStatus {
        id: u.id.clone(),
        image: u.image.clone(),
        owner: u.owner.clone(),
        title: u.meta.title.clone(),
        filename: u.filename.clone(),
        length: u.length,
        received: 0,
        stage: Stage::Receiving,
        waiting: None,
        error: None,
        home: u.home.clone(),
        created: u.created,
        updated: u.created,
    }
}

/// A deadline for reading `bytes` back from a disk (at least 20 MB/s) and answering.
fn slow(bytes: u64) -> Duration {
    Duration::from_secs(30 + bytes / 20_000_000)
}

fn read_chunk(path: &std::path::Path, offset: u64) -> Result<Bytes, IngestError> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(super::io(path))?;
    let mut buf = vec![0; SEND_CHUNK];
    let mut filled = 0;
    while filled < buf.len() {
        let n = file
            .read_at(&mut buf[filled..], offset + filled as u64)
            .map_err(super::io(path))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, IngestError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(IngestError::Invalid(format!("the work died: {e}"))))
}

/// The metadata file's bytes, the same for the same metadata.
pub fn meta_bytes(meta: &ImageMeta) -> Vec<u8> {
    serde_json::to_vec_pretty(meta).expect("plain data")
}

/// `original.EXT` from the provider's file name.
fn original_name(filename: &str) -> String {
    let ext = std::path::Path::new(filename)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| (1..=8).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map_or_else(|| "bin".to_string(), str::to_ascii_lowercase);
    format!("original.{ext}")
}

/// A readable id from a title: lower-case letters and digits joined by '-', at most 40.
fn slug(title: &str) -> String {
    let mut s = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
        if s.len() >= 40 {
            break;
        }
    }
    let s = s.trim_end_matches('-');
    if s.is_empty() {
        "image".into()
    } else {
        s.to_string()
    }
}

/// Limits on what a provider may write, in characters.
pub const LIMITS: [(&str, usize); 6] = [
    ("title", 200),
    ("artist", 200),
    ("date", 100),
    ("description", 5000),
    ("rights", 1000),
    ("keywords", 2000),
];

/// Checks metadata before anything is stored: a title, lengths within [`LIMITS`], no control
/// characters. Markup is allowed as text: every page escapes it.
pub fn check_meta(meta: &ImageMeta) -> Result<(), IngestError> {
    let bad = |m: String| Err(IngestError::Invalid(m));
    if meta.title.trim().is_empty() {
        return bad("a title is needed".into());
    }
    let keywords = meta.keywords.join(", ");
    for ((field, limit), value) in LIMITS.iter().zip([
        &meta.title,
        &meta.artist,
        &meta.date,
        &meta.description,
        &meta.rights,
        &keywords,
    ]) {
        let n = value.chars().count();
        if n > *limit {
            return bad(format!(
                "the {field} is {n} characters long; at most {limit}"
            ));
        }
        let newline_ok = *field == "description";
        if value
            .chars()
            .any(|c| c.is_control() && !(newline_ok && (c == '\n' || c == '\r' || c == '\t')))
        {
            return bad(format!("the {field} has control characters"));
        }
    }
    if meta.keywords.len() > 50 {
        return bad(format!("{} keywords; at most 50", meta.keywords.len()));
    }
    Ok(())
}

fn check_new(owner: &str, new: &NewUpload) -> Result<(), IngestError> {
    if owner.is_empty() {
        return Err(IngestError::Forbidden(
            "uploads need a signed-in account".into(),
        ));
    }
    if new.length == 0 {
        return Err(IngestError::Invalid("the file is empty".into()));
    }
    if new.length > MAX_UPLOAD {
        return Err(IngestError::Invalid(format!(
            "the file is {} GB; at most {} GB",
            new.length / 1_000_000_000,
            MAX_UPLOAD >> 30
        )));
    }
    let n = new.filename.chars().count();
    if n == 0 || n > 255 || new.filename.chars().any(char::is_control) {
        return Err(IngestError::Invalid(
            "the file name is empty, too long or not text".into(),
        ));
    }
    check_meta(&new.meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_come_out_safe() {
        assert_eq!(slug("The Starry Night (1889)"), "the-starry-night-1889");
        assert_eq!(slug("<script>"), "script");
        assert_eq!(slug("???"), "image");
        assert!(crate::library::valid_id(&format!(
            "{}-abcdef",
            slug(&"x".repeat(500))
        )));
        assert_eq!(original_name("Scan 01.TIF"), "original.tif");
        assert_eq!(original_name("noext"), "original.bin");
        assert_eq!(original_name("a.../../etc"), "original.bin");
    }

    #[test]
    fn metadata_is_checked_but_markup_is_only_text() {
        let ok = ImageMeta {
            title: "<b>Bold</b> & co".into(),
            description: "two\nlines".into(),
            ..ImageMeta::default()
        };
        assert!(check_meta(&ok).is_ok());
        let long = ImageMeta {
            title: "x".repeat(201),
            ..ImageMeta::default()
        };
        let e = check_meta(&long).unwrap_err().to_string();
        assert!(
            e.contains("201 characters") && e.contains("at most 200"),
            "{e}"
        );
        let ctl = ImageMeta {
            title: "a\u{0}b".into(),
            ..ImageMeta::default()
        };
        assert!(check_meta(&ctl)
            .unwrap_err()
            .to_string()
            .contains("control"));
        assert!(check_meta(&ImageMeta::default()).is_err());
    }
}
