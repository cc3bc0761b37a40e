//! What the portal shows of each upload ([`UploadStatus`], a wire type of the `cluster` crate),
//! kept by the node that received it (sled, in its state folder). Only a view: the coordinator
//! writes it from the facts at every step, so a lost status book is written again from the
//! staging folders of uploads still under way. An upload that expired ([`super::expiry`]) is
//! recorded here before its staging is cleared: then this is all that is left of it.

use std::path::Path;

pub use cluster::upload::{Stage, UploadStatus};

use floor::store::{self, StoreError};

/// What an expired upload's status says (its stage is `failed`, this its error), and what a
/// resume of it is answered (410).
pub const EXPIRED: &str = site::portal::EXPIRED;

/// Whether `status` is that of an upload that expired: it received no chunk for
/// `[repair] upload_expiry_hours` and its staging was cleared.
pub fn expired(status: &UploadStatus) -> bool {
    site::portal::is_expired(status.stage.as_str(), status.error.as_deref())
}

pub struct StatusBook {
    db: sled::Db,
}

impl StatusBook {
    pub fn open(path: &Path) -> Result<StatusBook, StoreError> {
        let (db, _) = store::open(path)?;
        Ok(StatusBook { db })
    }

    pub fn put(&self, status: &UploadStatus) {
        let mut status = status.clone();
        status.updated = cluster::unix_now();
        let _ = self.db.insert(
            status.id.as_bytes(),
            serde_json::to_vec(&status).expect("plain data"),
        );
    }

    /// Records that an upload expired (see [`expired`]), on the disk before this returns: once
    /// its staging is cleared this is the only record of it, and a resume must hear that it
    /// expired, not that every byte was taken.
    pub fn put_expired(&self, status: &UploadStatus) -> Result<(), String> {
        let mut status = status.clone();
        status.stage = Stage::Failed;
        status.error = Some(EXPIRED.to_string());
        status.waiting = None;
        status.updated = cluster::unix_now();
        self.db
            .insert(
                status.id.as_bytes(),
                serde_json::to_vec(&status).expect("plain data"),
            )
            .and_then(|_| self.db.flush())
            .map(|_| ())
            .map_err(|e| format!("the status book cannot be written: {e}"))
    }

    pub fn get(&self, id: &str) -> Option<UploadStatus> {
        let bytes = self.db.get(id.as_bytes()).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// The uploads of `owner` (all when empty), newest first.
    pub fn list(&self, owner: &str) -> Vec<UploadStatus> {
        let mut all: Vec<UploadStatus> = self
            .db
            .iter()
            .values()
            .filter_map(|v| serde_json::from_slice(&v.ok()?).ok())
            .filter(|s: &UploadStatus| owner.is_empty() || s.owner == owner)
            .collect();
        all.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        all
    }

    pub fn flush(&self) {
        let _ = self.db.flush();
    }
}
