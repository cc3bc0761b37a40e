//! The home node lost after acknowledging: the node holding the second staged copy takes the
//! upload over once the home has been silent past `[repair] node_grace_seconds`, so an
//! acknowledged upload is published even if the node that received it never comes back.
//!
//! The rule is [`protocol::coordination`] (pure, model checked in
//! `backend/tests/ingest_model.rs`); this module feeds it what the node knows:
//! - when each other node last answered this node (every call that reaches it counts);
//! - the takeover recorded on this node's copy (`coordinator.json`), written durably before the
//!   new coordinator does anything, and reported in this node's facts to every node that asks,
//!   so a home that comes back follows instead of driving beside it.
//!
//! The new coordinator drives from its own copy: it records the acknowledgement (the original
//! was staged on the home and here: the home sealed its copy before it sent this one), tiles,
//! chooses targets preferring nodes that already hold a copy the home placed, and publishes.
//! A replica's set epoch is the upload's creation time on both, so what the home placed before
//! it fell silent is the same replica set and is taken as it is.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::coordinator::{blocking, Ingest};
use super::facts::Gathered;
use super::protocol::{self, Coordination, Handover};
use super::staging::{self, Acknowledged, Staging, Upload};
use super::IngestError;

/// `coordinator.json`: the node that coordinates the upload when it is not its home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coordinator {
    pub node: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// Why, in words (for the log and the portal).
    pub why: String,
}

/// When each other node last answered this one, since the process started.
pub struct Heard {
    started: Instant,
    last: Mutex<HashMap<String, Instant>>,
}

impl Default for Heard {
    fn default() -> Heard {
        Heard {
            started: Instant::now(),
            last: Mutex::new(HashMap::new()),
        }
    }
}

impl Heard {
    pub fn heard(&self, node: &str) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.insert(node.to_string(), Instant::now());
    }

    /// How long ago `node` last answered; `None` when it never has since the start.
    pub fn since(&self, node: &str) -> Option<Duration> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.get(node).map(|t| t.elapsed())
    }

    pub fn watching(&self) -> Duration {
        self.started.elapsed()
    }

    /// The home's lease on `upload`: renewed only when one gathering of its facts reached every
    /// node that could take it over, so that it also saw any takeover they recorded.
    fn renew(&self, upload: &str) {
        self.heard(&format!("lease of {upload}"));
    }

    fn lease(&self, upload: &str) -> Option<Duration> {
        self.since(&format!("lease of {upload}"))
    }
}

impl Ingest {
    fn grace(&self) -> Duration {
        Duration::from_secs(self.cluster.repair.node_grace_seconds)
    }

    /// The coordinator recorded on this node's copy of an upload, if it is not the home.
    pub(super) fn recorded_coordinator(&self, staging: &Staging) -> Option<String> {
        staging
            .marker::<Coordinator>(staging::COORDINATOR)
            .ok()
            .flatten()
            .map(|c| c.node)
    }

    /// The node that coordinates `upload` as far as this node's copy says.
    pub(super) fn coordinator_of(&self, staging: &Staging, upload: &Upload) -> String {
        self.recorded_coordinator(staging)
            .unwrap_or_else(|| upload.home.clone())
    }

    /// The rule, on the node coordinating by its copy, once the facts are gathered.
    pub(super) fn coordination(
        &self,
        staging: &Staging,
        upload: &Upload,
        g: &Gathered,
    ) -> Result<Coordination, IngestError> {
        let id = |name: &str| self.node_id(name).unwrap_or(usize::MAX);
        let me = id(&self.me);
        let reported = g
            .nodes
            .iter()
            .filter_map(|n| n.coordinator.as_deref())
            .map(id)
            .find(|&c| c != me);
        let holders = self.copy_holders(staging)?;
        let home = id(&upload.home);
        if me == home
            && !holders.is_empty()
            && holders
                .iter()
                .all(|h| self.node_id(h).is_some_and(|n| g.view.up.contains(&n)))
        {
            self.heard.renew(&upload.id);
        }
        let since_heard = if me == home {
            self.heard.lease(&upload.id)
        } else {
            self.heard.since(&upload.home)
        };
        Ok(protocol::coordination(&Handover {
            me,
            home,
            recorded: self.recorded_coordinator(staging).map(|c| id(&c)),
            reported,
            staged_here: true,
            second_copy: !holders.is_empty(),
            since_heard,
            watching: self.heard.watching(),
            grace: self.grace(),
        }))
    }

    /// The nodes other than this one that hold, or may hold, a whole copy: by the
    /// acknowledgement, or by the note written before each copy was sealed.
    fn copy_holders(&self, staging: &Staging) -> Result<Vec<String>, IngestError> {
        let mut nodes: Vec<String> = staging
            .marker::<Vec<String>>(staging::HOLDERS)?
            .unwrap_or_default();
        if let Some(a) = staging.marker::<Acknowledged>(staging::ACKNOWLEDGED)? {
            nodes.extend(a.staged_on);
        }
        nodes.retain(|n| *n != self.me);
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    /// Notes, before a copy is sealed on `node`, that it may hold one.
    pub(super) fn note_copy_holder(
        &self,
        staging: &Staging,
        node: &str,
    ) -> Result<(), IngestError> {
        let mut nodes: Vec<String> = staging
            .marker::<Vec<String>>(staging::HOLDERS)?
            .unwrap_or_default();
        if !nodes.iter().any(|n| n == node) {
            nodes.push(node.to_string());
            staging.set_marker(staging::HOLDERS, &nodes)?;
        }
        Ok(())
    }

    /// Writes down that `node` coordinates the upload from now on.
    pub(super) fn record_coordinator(
        &self,
        staging: &Staging,
        node: &str,
        why: &str,
    ) -> Result<(), IngestError> {
        staging.set_marker(
            staging::COORDINATOR,
            &Coordinator {
                node: node.to_string(),
                at: cluster::unix_now(),
                why: why.to_string(),
            },
        )
    }

    /// Looks at every whole copy this node holds for another node: asks its home whether it is
    /// there, and takes over the uploads whose home has been silent past the grace period.
    /// Returns the uploads taken over.
    pub(super) async fn watch_homes(&self) -> Vec<String> {
        let disks = self.disks.clone();
        let me = self.me.clone();
        let held = blocking(move || {
            Ok(Staging::all(&disks)
                .into_iter()
                .filter(|s| matches!(s.staged(), Ok(Some(_))))
                .filter(|s| !s.path(staging::COORDINATOR).exists())
                .filter(|s| !s.path(staging::FAILED).exists())
                .filter_map(|s| Some((s.upload().ok()?, s)))
                .filter(|(u, _)| u.home != me)
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_default();
        // One question per home, not per upload: they all ask the same thing (is it there?).
        let mut homes: Vec<&Upload> = Vec::new();
        for (u, _) in &held {
            if !homes.iter().any(|h| h.home == u.home) {
                homes.push(u);
            }
        }
        let answers =
            futures_util::future::join_all(homes.iter().map(|u| self.facts_of(&u.home, u))).await;
        let answering: Vec<String> = homes
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_ok())
            .map(|(u, _)| u.home.clone())
            .collect();
        let mut taken = Vec::new();
        for (upload, staging) in held {
            // Its home is there: nothing to take over; but it may have finished the upload
            // while this node was away, leaving this copy to nobody.
            if answering.contains(&upload.home) {
                self.clear_left(&staging, &upload).await;
                continue;
            }
            let (Some(me), Some(home)) = (self.node_id(&self.me), self.node_id(&upload.home))
            else {
                continue;
            };
            let decision = protocol::coordination(&Handover {
                me,
                home,
                recorded: None,
                reported: None,
                staged_here: true,
                second_copy: true,
                since_heard: self.heard.since(&upload.home),
                watching: self.heard.watching(),
                grace: self.grace(),
            });
            if decision != Coordination::TakeOver {
                continue;
            }
            // Every other node is asked first: one may have taken it over already (follow it),
            // or hold a whole copy too and come first by the order of the configuration (let
            // it take over; two must never both do).
            let answers = futures_util::future::join_all(
                self.cluster
                    .nodes
                    .iter()
                    .filter(|n| n.name != self.me && n.name != upload.home)
                    .map(|n| async { (n.name.clone(), self.facts_of(&n.name, &upload).await) }),
            )
            .await;
            let claimed = answers
                .iter()
                .find_map(|(_, a)| a.as_ref().ok()?.coordinator.clone());
            if let Some(c) = claimed {
                let why = "it took the upload over from its silent home";
                if let Err(e) = self.record_coordinator(&staging, &c, why) {
                    self.log_once(&upload.id, Some(&upload.image), &e);
                }
                continue;
            }
            let before_me = answers.iter().any(|(n, a)| {
                a.as_ref().is_ok_and(|f| f.staged.is_some())
                    && self.node_id(n).is_some_and(|i| i < me)
            });
            if before_me {
                continue;
            }
            match self.take_over(&staging, &upload).await {
                Ok(()) => taken.push(upload.id.clone()),
                Err(e) => self.log_once(&upload.id, Some(&upload.image), &e),
            }
        }
        taken
    }

    /// Clears a whole copy held for a home that no longer has the upload, once two nodes
    /// serve the image (the home published it and cleared its staging while this node was
    /// away, so nothing would ever clear this copy). One that is not published stays.
    async fn clear_left(&self, staging: &Staging, upload: &Upload) {
        let Ok(home) = self.facts_of(&upload.home, upload).await else {
            return;
        };
        if home.staging {
            return;
        }
        let answers = futures_util::future::join_all(
            self.cluster
                .nodes
                .iter()
                .filter(|n| n.name != self.me)
                .map(|n| self.facts_of(&n.name, upload)),
        )
        .await;
        let serving = answers
            .iter()
            .filter(|a| {
                a.as_ref()
                    .is_ok_and(|f| f.replica == Some(super::placement::Placement::Published))
            })
            .count();
        if serving < 2 {
            return;
        }
        let s = staging.clone();
        match blocking(move || s.clear()).await {
            Ok(()) => {
                tracing::info!(node = %self.me, upload = %upload.id, image = %upload.image, home = %upload.home, "cleared a staging copy its home no longer needs: the image is published")
            }
            Err(e) => self.log_once(&upload.id, Some(&upload.image), &e),
        }
    }

    /// Records the takeover, then the acknowledgement as this node's own fact.
    async fn take_over(&self, staging: &Staging, upload: &Upload) -> Result<(), IngestError> {
        let silent = self
            .heard
            .since(&upload.home)
            .unwrap_or(self.heard.watching());
        let why = format!(
            "{} received it and has not answered for {} s",
            upload.home,
            silent.as_secs()
        );
        let (s, me, home, created) = (
            staging.clone(),
            self.me.clone(),
            upload.home.clone(),
            upload.created,
        );
        let w = why.clone();
        blocking(move || {
            let coordinator = Coordinator {
                node: me.clone(),
                at: cluster::unix_now(),
                why: w,
            };
            s.set_marker(staging::COORDINATOR, &coordinator)?;
            if s.marker::<Acknowledged>(staging::ACKNOWLEDGED)?.is_none() {
                // The home sealed its own copy before it sent this one.
                s.set_marker(
                    staging::ACKNOWLEDGED,
                    &Acknowledged {
                        staged_on: vec![home, me],
                        at: created,
                    },
                )?;
            }
            Ok(())
        })
        .await?;
        tracing::warn!(node = %self.me, upload = %upload.id, image = %upload.image, home = %upload.home, "took the upload over: {why}");
        self.crash_point("taken-over");
        Ok(())
    }
}
