//! Abandoned uploads expire. An upload that received no chunk for `[repair]
//! upload_expiry_hours` (or `upload_expiry_seconds`, which wins; 0 means never) while its
//! bytes were still arriving is cleared on every node that holds a staging copy of it; its
//! status then says [`EXPIRED`], and a resume of it (HEAD, PATCH) is answered 410 with that
//! sentence.
//!
//! Only a copy still receiving expires: never one that is whole, acknowledged or failed
//! ([`Staging::settled`]). An acknowledged upload is durable on two nodes and the protocol
//! drives it to publication; one whose bytes all arrived waits, kept, for its second copy.
//!
//! The home node (the one that received the upload) decides, by the age of its own copy
//! (`original.part`'s modification time: the last chunk; `upload.json`'s before the first):
//! it records the expiry in the status book, on the disk first (that is then the only record),
//! has every other node clear its copy (the signed `DELETE /internal/staging/UPLOAD`), and
//! clears its own. A node holding a copy for another node clears it itself a quarter of the
//! expiry later (at least three sweeps), by the same rule: so a home that never comes back
//! leaves nothing behind, and a home that is up does it first (and says so in its log).
//!
//! A chunk and an expiry never cross: both hold the upload's receiving lock
//! ([`Ingest::receiving_lock`]), and the expiry looks at the copy's age again under it.
//!
//! The sweep is part of the `ingest` worker ([`super::coordinator::IngestWorker`]), its rate
//! limited: at most every tenth of the expiry (1 s to 1 min), at most [`PER_SWEEP`] uploads
//! per sweep; the worker's line on `/workers` counts the copies watched and the uploads expired.

use std::sync::Arc;
use std::time::Duration;

use floor::client::Call;

use super::coordinator::{blocking, Ingest, ASK};
use super::receiving::initial_status;
use super::staging::{Staging, Upload};
use super::IngestError;

pub use super::status::EXPIRED;

/// At most this many uploads expire per sweep; the rest at the next (a second later).
pub const PER_SWEEP: usize = 8;

/// What one sweep saw and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Staging copies here still receiving, which expire if no chunk comes.
    pub watching: usize,
    /// Uploads this node expired (its own) or copies it cleared (held for another node).
    pub expired: usize,
    /// More were due than one sweep takes.
    pub more: bool,
}

impl Ingest {
    /// How long an upload may receive no chunk before it expires; `None`: never.
    pub fn upload_expiry(&self) -> Option<Duration> {
        Some(self.cluster.repair.upload_expiry()).filter(|d| !d.is_zero())
    }

    /// How long a copy held for another node waits: its home node goes first, with a quarter
    /// of the expiry (at least three of its sweeps) to spare.
    fn held_expiry(&self) -> Option<Duration> {
        let spare = |e: Duration| (e / 4).max(self.sweep_every() * 3);
        self.upload_expiry().map(|e| e + spare(e))
    }

    /// How often the worker sweeps: a tenth of the expiry, 1 s to 1 min.
    pub fn sweep_every(&self) -> Duration {
        self.upload_expiry().map_or(Duration::from_secs(60), |e| {
            (e / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
        })
    }

    /// Expires the uploads on this node's disks that received no chunk for too long: the ones
    /// it received (everywhere), and copies it holds for another node (here).
    pub async fn sweep_expired(self: &Arc<Self>) -> Sweep {
        let (Some(home_limit), Some(held_limit)) = (self.upload_expiry(), self.held_expiry())
        else {
            return Sweep::default();
        };
        let (disks, me) = (self.disks.clone(), self.me.clone());
        let looked = blocking(move || {
            let mut watching = 0;
            let mut due = Vec::new();
            for s in Staging::all(&disks) {
                if s.settled() {
                    continue;
                }
                // One that does not read is the coordinator's to report; it never expires.
                let Ok(upload) = s.upload() else { continue };
                watching += 1;
                let limit = if upload.home == me {
                    home_limit
                } else {
                    held_limit
                };
                if idle_for(&s).is_some_and(|idle| idle >= limit) {
                    due.push((s, upload));
                }
            }
            Ok((watching, due))
        })
        .await;
        let (watching, due) = match looked {
            Ok(found) => found,
            Err(e) => {
                self.log_once("expiry", None, &e);
                return Sweep::default();
            }
        };
        let more = due.len() > PER_SWEEP;
        let mut expired = 0;
        for (staging, upload) in due.into_iter().take(PER_SWEEP) {
            let done = if upload.home == self.me {
                self.expire(&staging, &upload, home_limit).await
            } else {
                self.clear_held(&staging, &upload, held_limit).await
            };
            match done {
                Ok(true) => expired += 1,
                Ok(false) => {}
                Err(e) => self.log_once(&upload.id, Some(&upload.image), &e),
            }
        }
        Sweep {
            watching: watching - expired,
            expired,
            more,
        }
    }

    /// Expires an upload this node received: recorded, every other copy cleared, then this
    /// one. `false` when it is not due after all (a chunk is arriving, or just came).
    async fn expire(
        self: &Arc<Self>,
        staging: &Staging,
        upload: &Upload,
        limit: Duration,
    ) -> Result<bool, IngestError> {
        let id = upload.id.as_str();
        let driving = self.drive_lock(id);
        let Ok(_driving) = driving.try_lock() else {
            return Ok(false);
        };
        let receiving = self.receiving_lock(id);
        let Ok(_receiving) = receiving.lock.try_lock() else {
            return Ok(false);
        };
        let Some((idle, received)) = self.still_due(staging, limit).await? else {
            return Ok(false);
        };
        let mut status = self
            .status
            .get(id)
            .unwrap_or_else(|| initial_status(upload));
        status.received = received;
        let me = self.clone();
        blocking(move || me.status.put_expired(&status).map_err(IngestError::Fault)).await?;

        // Every other node, at once: a node that does not answer may hold a copy, and clears
        // it itself when it has been idle a while longer.
        let path = format!("/internal/staging/{id}");
        let mut answered = Vec::new();
        if let Ok(peers) = self.peers() {
            let others = self.cluster.nodes.iter().filter(|n| n.name != self.me);
            let asks = others.map(|n| {
                let path = path.clone();
                async move {
                    let r = peers
                        .call(&n.name, Call::new("DELETE", &path), ASK * 10)
                        .await;
                    (n.name.as_str(), r)
                }
            });
            for (node, r) in futures_util::future::join_all(asks).await {
                match r {
                    Ok(_) => answered.push(node.to_string()),
                    Err(e) => tracing::warn!(
                        upload = id,
                        node = %self.me,
                        peer = node,
                        error = %e,
                        "an expired upload's copy on another node is not cleared now; that \
                         node clears it itself"
                    ),
                }
            }
        }
        let s = staging.clone();
        blocking(move || s.clear()).await?;
        self.forget(id);
        tracing::info!(
            upload = id,
            node = %self.me,
            image = %upload.image,
            owner = %upload.owner,
            idle_s = idle.as_secs(),
            received,
            length = upload.length,
            cleared_on = ?answered,
            "an abandoned upload expired: no chunk came for {}; its staging is cleared here \
             and on every node that answered",
            words(idle)
        );
        Ok(true)
    }

    /// Clears a copy this node holds for another node that has not cleared it: its home
    /// node is down, or lost track of it.
    async fn clear_held(
        &self,
        staging: &Staging,
        upload: &Upload,
        limit: Duration,
    ) -> Result<bool, IngestError> {
        let id = upload.id.as_str();
        let receiving = self.receiving_lock(id);
        let Ok(_receiving) = receiving.lock.try_lock() else {
            return Ok(false);
        };
        let Some((idle, received)) = self.still_due(staging, limit).await? else {
            return Ok(false);
        };
        let s = staging.clone();
        blocking(move || s.clear()).await?;
        self.forget(id);
        tracing::info!(
            upload = id,
            node = %self.me,
            home = %upload.home,
            idle_s = idle.as_secs(),
            received,
            "a staging copy held for another node expired: no chunk came for {}; its home \
             node did not clear it, so this node did",
            words(idle)
        );
        Ok(true)
    }

    /// Looked at again, with the upload's receiving lock held: still receiving and idle for
    /// `limit`? Then for how long, and how many bytes are here.
    async fn still_due(
        &self,
        staging: &Staging,
        limit: Duration,
    ) -> Result<Option<(Duration, u64)>, IngestError> {
        let s = staging.clone();
        blocking(move || {
            if s.settled() || !s.dir().is_dir() {
                return Ok(None);
            }
            match idle_for(&s) {
                Some(idle) if idle >= limit => Ok(Some((idle, s.offset()?))),
                _ => Ok(None),
            }
        })
        .await
    }

    /// What this node kept in memory about an upload that is gone.
    fn forget(&self, id: &str) {
        self.sums.forget(id);
        self.mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.forwarding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.told
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.done_receiving(id);
    }
}

/// How long since a byte of the copy last arrived; `None` when that cannot be known (a clock
/// set back, a file that does not read): such a copy is not expired.
fn idle_for(s: &Staging) -> Option<Duration> {
    s.last_written().ok()?.elapsed().ok()
}

/// "3 s", "25 min", "24 h".
fn words(d: Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_times_read_plainly() {
        assert_eq!(words(Duration::from_secs(3)), "3 s");
        assert_eq!(words(Duration::from_secs(1500)), "25 min");
        assert_eq!(words(Duration::from_secs(24 * 3600 + 5)), "24 h");
    }
}
