//! What a backend's catalog says about the replicas on its disks, as it travels to frontends
//! (`GET /catalog?since=VERSION`).

use serde::{Deserialize, Serialize};

/// What a content provider says about an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub title: String,
    #[serde(default)]
    pub artist: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub rights: String,
    /// The portal account that uploaded it: only it may change the metadata. Empty for images
    /// placed by hand (`td tile`, the demo), which no account owns. Kept on the node's disks;
    /// what the node publishes is [`public_owner`] instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

/// What the public `/meta` and `/catalog` say in place of the account that uploaded an image:
/// an HMAC of its name with the cluster secret, so the portal (which has the secret) can tell
/// an account's own images while visitors cannot learn account names to guess passwords for.
/// Empty for an image no account owns, or when the node has no secret.
pub fn public_owner(secret: Option<&crate::auth::Secret>, owner: &str) -> String {
    match secret {
        Some(secret) if !owner.is_empty() => format!("h-{}", secret.mac(&["owner", owner])),
        _ => String::new(),
    }
}

impl ImageMeta {
    /// This metadata as published, its owner replaced by [`public_owner`].
    pub fn published(&self, secret: Option<&crate::auth::Secret>) -> ImageMeta {
        ImageMeta {
            owner: public_owner(secret, &self.owner),
            ..self.clone()
        }
    }
}

/// One file of a replica and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// The name inside the replica's folder (`pyramid.tdp`, `original.jpg`, …).
    pub name: String,
    pub size: u64,
    /// SHA-256, lower-case hex (what `sha256sum` prints).
    pub sha256: String,
}

/// Whether a replica may be served. Two states are the same whatever their time stamps: a
/// replica marked unreadable again for the same reason has not changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReplicaState {
    /// Complete and readable as far as this node knows.
    Ok,
    /// A check failed on part of it (a tile's checksum): still served where it reads right,
    /// but it should be verified and replaced.
    Suspect { reason: String },
    /// It cannot be served: its disk failed, or its files are missing or damaged. `since_ms`:
    /// when its node found it so (Unix milliseconds; 0 if not known), so that the other nodes
    /// count a re-mirror's grace period from the failure, not from when they heard of it.
    Unreadable {
        reason: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        since_ms: u64,
    },
    /// It was on this node and is no longer (kept so that a frontend learns it is gone).
    Removed,
    /// Its image was withdrawn (by its owner or an operator) at `at` (Unix seconds): a
    /// tombstone, so that a returning disk, a re-mirror or a rebuilt catalog never brings it
    /// back.
    Deleted { at: u64 },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl PartialEq for ReplicaState {
    fn eq(&self, other: &ReplicaState) -> bool {
        use ReplicaState::*;
        match (self, other) {
            (Ok, Ok) | (Removed, Removed) => true,
            (Suspect { reason: a }, Suspect { reason: b }) => a == b,
            (Unreadable { reason: a, .. }, Unreadable { reason: b, .. }) => a == b,
            (Deleted { at: a }, Deleted { at: b }) => a == b,
            _ => false,
        }
    }
}

impl Eq for ReplicaState {}

impl ReplicaState {
    /// Unreadable for `reason`, from now.
    pub fn unreadable(reason: impl Into<String>) -> ReplicaState {
        ReplicaState::Unreadable {
            reason: reason.into(),
            since_ms: crate::unix_now_ms(),
        }
    }

    /// Whether the replica is gone from this node for good (removed or withdrawn).
    pub fn gone(&self) -> bool {
        matches!(self, ReplicaState::Removed | ReplicaState::Deleted { .. })
    }

    /// Whether a frontend may send visitors to it.
    pub fn servable(&self) -> bool {
        matches!(self, ReplicaState::Ok | ReplicaState::Suspect { .. })
    }
}

/// The catalog's record of one replica on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub id: String,
    /// The catalog version at which this entry last changed.
    pub version: u64,
    #[serde(flatten)]
    pub state: ReplicaState,
    /// The disk holding it.
    pub disk: String,
    /// The nodes holding the image's replicas, this one included.
    pub nodes: Vec<String>,
    /// When that set of nodes was made (Unix seconds; the manifest's `placed_at`): a
    /// re-mirror makes a newer set, which supersedes the older one.
    #[serde(default)]
    pub epoch: u64,
    pub width: u32,
    pub height: u32,
    pub meta: ImageMeta,
    /// The replica's files and their sums. Left out when asked without them
    /// (`/catalog?files=false`: a frontend uses none, and they are most of a page).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSum>,
}

/// A page of catalog changes: every entry changed after the version the frontend asked from.
/// `catalog` names this catalog's life: when it differs from the one a frontend knew (the
/// catalog was rebuilt), the frontend starts again from version 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPage {
    pub node: String,
    pub catalog: String,
    /// Ask with `since=version` next time.
    pub version: u64,
    pub entries: Vec<CatalogEntry>,
    /// Asked with a `limit`, there were more changes than it: ask again at once from
    /// `version` (the last change this page holds).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: ReplicaState) -> CatalogEntry {
        CatalogEntry {
            id: "img-1".into(),
            version: 7,
            state,
            disk: "d1".into(),
            nodes: vec!["node-a".into(), "node-b".into()],
            epoch: 3,
            width: 640,
            height: 480,
            meta: ImageMeta {
                title: "Wave".into(),
                keywords: vec!["sea".into()],
                ..ImageMeta::default()
            },
            files: vec![FileSum {
                name: "pyramid.tdp".into(),
                size: 12,
                sha256: "ab".repeat(32),
            }],
        }
    }

    #[test]
    fn every_state_reads_back_as_written_with_its_fields_beside_the_others() {
        for state in [
            ReplicaState::Ok,
            ReplicaState::Suspect {
                reason: "tile 3 of level 2".into(),
            },
            ReplicaState::Unreadable {
                reason: "disk d1 failed".into(),
                since_ms: 1_765_000_000_123,
            },
            ReplicaState::Removed,
            ReplicaState::Deleted { at: 1_765_000_000 },
        ] {
            let e = entry(state.clone());
            let json = serde_json::to_value(&e).unwrap();
            assert!(json["state"].is_string(), "{json}");
            if let ReplicaState::Unreadable { since_ms, .. } = state {
                assert_eq!(json["reason"], "disk d1 failed");
                assert_eq!(json["since_ms"], since_ms);
            }
            let back: CatalogEntry = serde_json::from_value(json).unwrap();
            assert_eq!(back, e);
            // The stamp is read back too, though equality does not look at it.
            assert_eq!(format!("{:?}", back.state), format!("{state:?}"));
        }
    }

    #[test]
    fn a_state_missing_its_fields_or_unknown_is_an_error() {
        let mut json = serde_json::to_value(entry(ReplicaState::Ok)).unwrap();
        json["state"] = "unreadable".into();
        let err = serde_json::from_value::<CatalogEntry>(json.clone()).unwrap_err();
        assert!(err.to_string().contains("missing field `reason`"), "{err}");
        json["state"] = "deleted".into();
        assert!(serde_json::from_value::<CatalogEntry>(json.clone()).is_err());
        json["state"] = "lost".into();
        assert!(serde_json::from_value::<CatalogEntry>(json).is_err());
        // An unreadable replica from before its time stamp: 0, not known.
        let mut old = serde_json::to_value(entry(ReplicaState::Ok)).unwrap();
        old["state"] = "unreadable".into();
        old["reason"] = "disk d1 failed".into();
        let back: CatalogEntry = serde_json::from_value(old).unwrap();
        assert!(matches!(
            back.state,
            ReplicaState::Unreadable { since_ms: 0, .. }
        ));
    }
}
