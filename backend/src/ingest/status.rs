//! What the portal shows of each upload, kept by the node that received it (sled, in its state
//! folder). Only a view: the coordinator writes it from the facts at every step, so a lost
//! status book is written again from the staging folders of uploads still under way.

use std::path::Path;

use serde::{Deserialize, Serialize};

use monitor::store::{self, StoreError};

/// Where an upload is, in the words the portal uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Bytes are arriving.
    Receiving,
    /// All bytes are on the receiving node; the second copy is being made.
    Received,
    /// Durable on two nodes in two power domains: acknowledged.
    Durable,
    Tiling,
    Placing,
    Verifying,
    Published,
    /// It can never be published (not an image, damaged); nothing was published.
    Failed,
}

/// One upload as the portal shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    pub id: String,
    /// The image id it is published under.
    pub image: String,
    pub owner: String,
    pub title: String,
    pub filename: String,
    pub length: u64,
    pub received: u64,
    pub stage: Stage,
    /// Why it is not moving on now, in plain words.
    pub waiting: Option<String>,
    /// Why it failed for good.
    pub error: Option<String>,
    pub home: String,
    pub created: u64,
    pub updated: u64,
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
