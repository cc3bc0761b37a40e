//! What the portal shows of each upload ([`UploadStatus`], a wire type of the `cluster` crate),
//! kept by the node that received it (sled, in its state folder). Only a view: the coordinator
//! writes it from the facts at every step, so a lost status book is written again from the
//! staging folders of uploads still under way.

use std::path::Path;

pub use cluster::upload::{Stage, UploadStatus};

use floor::store::{self, StoreError};

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
