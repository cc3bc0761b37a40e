//! The receiving side: what the portal calls, through a frontend, on the node it chose. An
//! upload is started (its request checked, its staging folder made), resumed (how many bytes
//! are here), and appended chunk by chunk; each chunk is also sent, once written here, to a
//! mirror in another power domain, so the second copy is done with the first. The last chunk
//! seals the original and drives the upload up to the acknowledgement before it is answered.

use floor::client::Call;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cluster::{ImageMeta, NewUpload, OffsetAnswer};
use hyper::body::Bytes;
use tokio::sync::MutexGuard;

use super::coordinator::{blocking, Driven, Ingest, ASK, CHUNK_DEADLINE};
use super::meta_edit::check_meta;
use super::protocol::Step;
use super::staging::{check_upload_id, Staging, Upload};
use super::status::{expired, Stage, UploadStatus, EXPIRED};
use super::{IngestError, MAX_UPLOAD};

/// Uploads one account may have under way (not yet durable) on one node.
pub const MAX_OPEN_UPLOADS: usize = 16;
/// The quotas' day, in seconds.
pub const DAY: u64 = 24 * 60 * 60;

/// How many chunks the mirror may be behind this node: as many may be on their way to it at
/// once, so that the copy to the mirror (its way there and its write) overlaps the next
/// chunks' writes here.
pub const MIRROR_BEHIND: usize = 2;

/// How long a chunk that came ahead of the one before it waits for it: the page sends the
/// next chunk while one is on its way, and the two may pass each other between the frontend and
/// here. Past this the chunk is refused as at the wrong offset, and the page asks where to go
/// on from.
pub const AHEAD_WAIT: Duration = Duration::from_secs(30);

/// One upload's chunks as they arrive here.
pub(super) struct Receiving {
    /// Held while a chunk is written here, or the upload expires.
    pub lock: tokio::sync::Mutex<()>,
    /// Told each time a chunk was written here, or failed to be.
    arrived: tokio::sync::Notify,
    /// Where the last chunk that failed to be written here started (`u64::MAX`: none did).
    failed_at: AtomicU64,
    /// A chunk is waiting for the one before it: at most one does per upload, so a client
    /// cannot park its chunks' bytes here by sending them ahead.
    ahead: AtomicBool,
}

impl Default for Receiving {
    fn default() -> Self {
        Receiving {
            lock: Default::default(),
            arrived: Default::default(),
            failed_at: AtomicU64::new(u64::MAX),
            ahead: Default::default(),
        }
    }
}

impl Receiving {
    /// The chunk at `offset` was written here (`ok`) or failed to be: a chunk waiting for it
    /// looks again.
    pub(super) fn tried(&self, offset: u64, ok: bool) {
        self.failed_at
            .store(if ok { u64::MAX } else { offset }, SeqCst);
        self.arrived.notify_waiters();
    }

    /// The lock, with this node's bytes up to `offset` when the chunk at `offset` follows one
    /// that may still be on its way: `follows(gap)` says whether a gap of that many bytes may
    /// be such a chunk. It then waits, without the lock, until the bytes before it were
    /// written (or a chunk failed, or [`AHEAD_WAIT`] passed). Anything else is left to the
    /// write's own check of the offset. Returns the lock and the bytes here.
    pub(super) async fn turn<'a>(
        &'a self,
        mut held: MutexGuard<'a, ()>,
        staging: &Staging,
        offset: u64,
        follows: impl Fn(u64) -> bool,
    ) -> Result<(MutexGuard<'a, ()>, u64), IngestError> {
        let mut here = staging.offset()?;
        // Not when the chunk it follows failed already: the page asks where to go on from.
        let failed = |here| self.failed_at.load(SeqCst) == here;
        if offset <= here
            || !follows(offset - here)
            || failed(here)
            || self.ahead.swap(true, SeqCst)
        {
            return Ok((held, here));
        }
        tracing::info!(
            upload = %staging.id(),
            offset,
            here,
            "a chunk came before the one it follows: it waits for it"
        );
        // Given back however this ends, also when the request is dropped.
        let _slot = AheadSlot(&self.ahead);
        let until = tokio::time::Instant::now() + AHEAD_WAIT;
        while here < offset {
            // Made before the lock is given back, so no write after it goes unnoticed.
            let arrived = self.arrived.notified();
            drop(held);
            let woke = tokio::time::timeout_at(until, arrived).await;
            held = self.lock.lock().await;
            here = staging.offset()?;
            if woke.is_err() || failed(here) {
                break;
            }
        }
        Ok((held, here))
    }
}

/// Gives an upload's one place for a chunk ahead back when dropped.
struct AheadSlot<'a>(&'a AtomicBool);

impl Drop for AheadSlot<'_> {
    fn drop(&mut self) {
        self.0.store(false, SeqCst);
    }
}

impl Ingest {
    /// Starts an upload for `owner`: checks what was sent and makes its staging folder.
    pub async fn create(&self, owner: &str, new: NewUpload) -> Result<UploadStatus, IngestError> {
        self.peers()?;
        check_new(owner, &new)?;
        // Uploads still receiving or being copied count against the account: each holds a
        // staging folder and its room until it is durable, finished or expired.
        let open = self
            .status
            .list(owner)
            .iter()
            .filter(|s| matches!(s.stage, Stage::Receiving | Stage::Received) && !expired(s))
            .count();
        let day_ago = cluster::unix_now().saturating_sub(DAY);
        let today: u64 = self
            .status
            .list(owner)
            .iter()
            .filter(|s| s.created >= day_ago)
            .map(|s| s.length)
            .sum();
        let quota = self.cluster.quota.bytes_per_day();
        if today.saturating_add(new.length) > quota {
            return Err(IngestError::TooMany(format!(
                "this account has sent {:.1} GB to this node in the last 24 hours; with this \
                 file it would pass its daily {} GB",
                today as f64 / 1e9,
                self.cluster.quota.gigabytes_per_day
            )));
        }
        if open >= MAX_OPEN_UPLOADS {
            return Err(IngestError::TooMany(format!(
                "this account already has {open} uploads under way on this node, the most it \
                 may have; finish or wait for them before starting another"
            )));
        }
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
        // The worker watches it from now on (it expires if no chunk comes).
        self.wake.notify_one();
        Ok(status)
    }

    /// The staging folder of one of `owner`'s uploads.
    fn owned(&self, owner: &str, id: &str) -> Result<(Staging, Upload), IngestError> {
        check_upload_id(id)?;
        let status = self.status.get(id);
        // Expired (its staging cleared, or being cleared): the provider starts again.
        if let Some(s) = status.as_ref().filter(|s| expired(s)) {
            return Err(if s.owner != owner {
                IngestError::Forbidden(format!("upload {id} belongs to another account"))
            } else {
                IngestError::Gone(EXPIRED.into())
            });
        }
        let Some(staging) = Staging::find(&self.disks, id) else {
            // Finished (published or failed) and its staging cleared: all its bytes were
            // taken, which is what a provider resuming it must hear.
            return Err(match status {
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
    ///
    /// A chunk that passed the one before it on the way (the page sends two at once) waits for
    /// it ([`Receiving::turn`]). The chunk is sent on to the mirror once it is written here, and
    /// answered without waiting for the mirror: a chunk is answered once the mirror took the
    /// one [`MIRROR_BEHIND`] before it. So the copy to the mirror overlaps the next chunks' ways
    /// from the provider and their writes here, the mirror is never ahead of this node and
    /// never more than two chunks behind, and the last chunk is answered only once the mirror
    /// has everything. A mirror that falls behind for good (it fails, or this node restarts) is
    /// dropped, as one that fails: the coordinator's Stage step then copies what it lacks,
    /// before the acknowledgement. `body_sum`: the chunk's hash as its signature
    /// covered it, signed again for the mirror rather than hashed again.
    pub async fn append(
        self: &Arc<Self>,
        owner: &str,
        id: &str,
        offset: u64,
        bytes: Bytes,
        body_sum: String,
    ) -> Result<(u64, UploadStatus), IngestError> {
        check_upload_id(id)?;
        // Held until the chunk is written here (and the one before it on the mirror): the
        // upload does not expire under it, nor does a second request for the same upload write
        // beside it.
        let receiving = self.receiving_lock(id);
        let held = receiving.lock.lock().await;
        let (staging, upload) = self.owned(owner, id)?;
        let length = upload.length;
        // A chunk that passed the one before it on the way: the page sends chunks of one size.
        let len = bytes.len() as u64;
        let (held, here) = receiving
            .turn(held, &staging, offset, |gap| gap == len)
            .await?;
        let mirror = self.mirror(&upload, offset, here).await;
        let (s, me, b) = (staging.clone(), self.clone(), bytes.clone());
        let local = blocking(move || s.append(length, offset, &b, &me.sums));
        let (local, mirrored) = tokio::join!(local, self.forwarded(id, MIRROR_BEHIND - 1));
        receiving.tried(offset, local.is_ok());
        let at = local?;
        if let (Some(node), true) = (mirror, mirrored) {
            let path = format!("/internal/staging/{}?offset={offset}", upload.id);
            let peers = self.peers()?.clone();
            let send = tokio::spawn(async move {
                peers
                    .call(
                        &node,
                        Call::new("PATCH", &path).body_summed(bytes, body_sum),
                        CHUNK_DEADLINE,
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
            self.forwarding
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(upload.id.clone())
                .or_default()
                .push_back(send);
        }
        let mut status = self
            .status
            .get(id)
            .unwrap_or_else(|| initial_status(&upload));
        status.received = at;
        self.status.put(&status);
        drop(held);
        if at == length {
            // The mirror has every byte before the original is sealed and acknowledged.
            self.forwarded(id, 0).await;
            let (s, me) = (staging.clone(), self.clone());
            blocking(move || s.seal(length, None, &me.sums)).await?;
            self.mirrors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&upload.id);
            self.done_receiving(id);
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

    /// Waits, oldest first, until at most `keep` of upload `id`'s chunks are on their way to the
    /// mirror. When one did not arrive, the mirror is dropped and the chunks after it are called
    /// off (they cannot land after a gap). Whether every chunk waited for arrived (true when
    /// none was on its way).
    async fn forwarded(&self, id: &str, keep: usize) -> bool {
        loop {
            let oldest = {
                let mut forwarding = self.forwarding.lock().unwrap_or_else(|p| p.into_inner());
                match forwarding.get_mut(id) {
                    Some(sending) if sending.len() > keep => sending.pop_front(),
                    _ => None,
                }
            };
            let Some(send) = oldest else {
                return true;
            };
            let why = match send.await {
                Ok(Ok(())) => continue,
                Ok(Err(why)) => why,
                Err(e) => e.to_string(),
            };
            let after = self
                .forwarding
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
            after.into_iter().flatten().for_each(|send| send.abort());
            self.drop_mirror(id, Some(why));
            return false;
        }
    }

    /// The node that receives a copy of each chunk as it arrives, chosen at the first chunk: the
    /// first node in another power domain that takes the upload. `None` when there is none (or
    /// after a restart, or once it failed). Chosen once: a chunk sent again at offset 0, or
    /// one at 0 when bytes are already here (refused as the wrong offset), keeps the choice,
    /// so a confused or hostile client cannot open staging folders on node after node.
    async fn mirror(&self, upload: &Upload, offset: u64, here: u64) -> Option<String> {
        let chosen_before = self
            .mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&upload.id);
        if offset > 0 || here > 0 || chosen_before {
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
            let answer: Result<OffsetAnswer, _> = peers
                .call_json(&n.name, Call::new("PUT", &path).body(body.clone()), ASK)
                .await;
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
            tracing::warn!(
                node = %self.me,
                upload = id,
                peer = %node,
                error = why.as_deref().unwrap_or("this node's write failed"),
                "the mirror no longer takes the chunks as they come; the copy is completed \
                 after the upload"
            );
        }
    }

    /// The uploads this node received for `owner` ("" for all), newest first.
    pub fn list(&self, owner: &str) -> Vec<UploadStatus> {
        self.status.list(owner)
    }
}

pub(super) fn initial_status(u: &Upload) -> UploadStatus {
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
        pixels: None,
        created: u.created,
        updated: u.created,
    }
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

/// The provider's file name: some text, at most 255 characters.
pub(super) fn check_filename(filename: &str) -> Result<(), IngestError> {
    let n = filename.chars().count();
    if n == 0 || n > 255 || filename.chars().any(char::is_control) {
        return Err(IngestError::Invalid(
            "the file name is empty, too long or not text".into(),
        ));
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
    check_filename(&new.filename)?;
    check_meta(&new.meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_out_safe() {
        assert_eq!(slug("The Starry Night (1889)"), "the-starry-night-1889");
        assert_eq!(slug("<script>"), "script");
        assert_eq!(slug("???"), "image");
        assert!(cluster::valid_image_id(&format!(
            "{}-abcdef",
            slug(&"x".repeat(500))
        )));
    }
}
