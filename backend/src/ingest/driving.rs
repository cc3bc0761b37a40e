//! Driving the protocol: on the node that received an upload, gather the facts, ask
//! [`protocol::next_step`] what to do, do it, record its fact, and say where the upload is in
//! its status. The steps done here are the acknowledgement, tiling and the choice of the two
//! targets; the ones that send bytes to other nodes are in [`super::transfers`].

use cluster::FileSum;
use floor::client::Call;
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

use super::coordinator::{blocking, Driven, Ingest, ASK};
use super::facts::{stage_of, Gathered};
use super::protocol::{self, Coordination, NodeId, Step};
use super::receiving::initial_status;
use super::staging::{self, Acknowledged, Failed, Staging, Upload};
use super::status::{expired, Stage, UploadStatus};
use super::transfers::slow;
use super::IngestError;
use crate::replica::{PYRAMID, THUMBNAIL};

/// `tiled.json`: the pyramid and thumbnail made in staging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tiled {
    pub files: Vec<FileSum>,
    pub width: u32,
    pub height: u32,
}

impl Ingest {
    /// Does the next step of upload `id`, if it can be done now. A step that fails leaves the
    /// upload waiting, with the reason in its status (a plain sentence when this node is at
    /// fault; the detail is logged, once while it repeats).
    pub async fn drive(&self, id: &str) -> Driven {
        let lock = self.drive_lock(id);
        let Ok(_held) = lock.try_lock() else {
            return Driven::Busy;
        };
        let Some(staging) = Staging::find(&self.disks, id) else {
            return Driven::Done;
        };
        let upload = match staging.upload() {
            Ok(u) => u,
            Err(e) => {
                self.log_once(id, None, &e);
                return Driven::Waiting(e.public());
            }
        };
        let mut status = self
            .status
            .get(id)
            .unwrap_or_else(|| initial_status(&upload));
        if expired(&status) {
            // What is left of its staging is the expiry's to clear (see `expiry`).
            return Driven::Done;
        }
        match self.step(&staging, &upload, &mut status).await {
            Ok(driven) => {
                self.log_cleared(id);
                if let Driven::Waiting(why) = &driven {
                    status.waiting = Some(why.clone());
                }
                self.status.put(&status);
                driven
            }
            Err(e) => {
                self.log_once(id, Some(&upload.image), &e);
                let why = e.public();
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
        let coordinator = self.coordinator_of(staging, upload);
        if coordinator != self.me {
            return Ok(Driven::Waiting(if coordinator == upload.home {
                format!("coordinated by {coordinator}, which received it")
            } else {
                format!("coordinated by {coordinator}, which took it over")
            }));
        }
        if staging.staged()?.is_none() {
            status.stage = Stage::Receiving;
            return Ok(Driven::Waiting("receiving the original".into()));
        }
        let g = self.gather(staging, upload).await?;
        match self.coordination(staging, upload, &g)? {
            Coordination::Drive => {}
            Coordination::Follow {
                coordinator,
                record,
            } => {
                let name = self.name(coordinator).to_string();
                if record {
                    // Back after a silence: another node took the upload over meanwhile.
                    self.record_coordinator(
                        staging,
                        &name,
                        "it took the upload over while this node was silent",
                    )?;
                    tracing::warn!(node = %self.me, upload = %upload.id, coordinator = %name, "another node took this upload over while this node was silent; following it");
                }
                return Ok(Driven::Waiting(format!(
                    "coordinated by {name}, which took it over"
                )));
            }
            Coordination::Wait(why) => return Ok(Driven::Waiting(why)),
            Coordination::TakeOver => {
                return Ok(Driven::Waiting("being taken over".into()));
            }
        }
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
                if let Some(pixels) = self.tile(staging, upload).await? {
                    status.pixels = Some(pixels);
                }
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
                let node = self.name(t);
                self.peers()?
                    .call(
                        node,
                        Call::new("POST", &path).body(body),
                        slow(upload.length),
                    )
                    .await
                    .map_err(|e| IngestError::peer(node, e))?;
                self.crash_point("verified");
            }
            Step::Publish(t) => {
                let path = format!("/internal/replicas/{}/publish", upload.image);
                let node = self.name(t);
                self.peers()?
                    .call(node, Call::new("POST", &path), ASK * 10)
                    .await
                    .map_err(|e| IngestError::peer(node, e))?;
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
        // A node already holding a copy of the image (placed by a home that then fell silent,
        // before this node took the upload over) is taken first: its copy is used, not a
        // third made beside it.
        let holds = |n: NodeId| g.nodes[n].replica.is_some();
        let mut best: Option<(usize, u64, [NodeId; 2])> = None;
        let ups: Vec<NodeId> = g.view.up.iter().copied().collect();
        for (i, &a) in ups.iter().enumerate() {
            for &b in &ups[i + 1..] {
                if g.view.domains[a] == g.view.domains[b] {
                    continue;
                }
                let held = usize::from(holds(a)) + usize::from(holds(b));
                let room = g.nodes[a].free.min(g.nodes[b].free);
                let fits = |n: NodeId| holds(n) || g.nodes[n].free >= need;
                if fits(a) && fits(b) && best.is_none_or(|(h, r, _)| (held, room) > (h, r)) {
                    best = Some((held, room, [a, b]));
                }
            }
        }
        let best = best.map(|(_, room, pair)| (room, pair));
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

    /// Tiles the staged original into the staging folder. An original that is not an image it
    /// can read fails the upload for good; anything else (this node's disk, the tiler itself)
    /// is a fault of this node, tried again.
    /// The image's pixels once tiled (for the account's daily megapixels); `None` when the
    /// original was refused.
    async fn tile(&self, staging: &Staging, upload: &Upload) -> Result<Option<u64>, IngestError> {
        let s = staging.clone();
        let (pyramid, thumb) = (s.path(staging::PYRAMID), s.path(staging::THUMBNAIL));
        let tiler = self
            .tiler
            .get()
            .cloned()
            .unwrap_or(super::tiling::Tiler::InProcess);
        // An account past its daily megapixels has nothing more tiled today: the tiling is
        // the cost a stranger with an account could otherwise run up without end.
        let day_ago = cluster::unix_now().saturating_sub(super::receiving::DAY);
        let tiled_today: u64 = self
            .status
            .list(&upload.owner)
            .iter()
            .filter(|s| s.created >= day_ago && s.id != upload.id)
            .filter_map(|s| s.pixels)
            .sum();
        let quota = self
            .cluster
            .quota
            .megapixels_per_day
            .saturating_mul(1_000_000);
        let over_quota = (tiled_today >= quota).then(|| {
            format!(
                "this account's images tiled on this node in the last 24 hours already hold {} \
                 megapixels, its daily {}; send it again tomorrow",
                tiled_today / 1_000_000,
                self.cluster.quota.megapixels_per_day
            )
        });
        let outcome = match over_quota {
            Some(reason) => super::tiling::Outcome::Refused(reason),
            None => {
                super::tiling::tile(
                    &tiler,
                    &s.path(staging::ORIGINAL),
                    &pyramid,
                    &thumb,
                    &upload.filename,
                )
                .await
            }
        };
        let (width, height) = match outcome {
            super::tiling::Outcome::Tiled { width, height } => (width, height),
            super::tiling::Outcome::Refused(reason) => {
                tracing::warn!(upload = %upload.id, file = %upload.filename, %reason, "original refused");
                return blocking(move || {
                    s.set_marker(
                        staging::FAILED,
                        &Failed {
                            reason: format!("{reason}; nothing was published"),
                            at: cluster::unix_now(),
                        },
                    )
                })
                .await
                .map(|()| None);
            }
            super::tiling::Outcome::Fault(why) => return Err(IngestError::Fault(why)),
        };
        let result = blocking(move || {
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
                    width,
                    height,
                },
            )
        });
        result.await?;
        Ok(Some(u64::from(width) * u64::from(height)))
    }
}
