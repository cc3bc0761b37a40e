//! The facts: what each node's disks say about an upload (its staging copy, how far the image's
//! replica has come, its room), asked of every node at once and put together as the
//! [`protocol::Facts`] and [`protocol::View`] the protocol decides from.

use std::collections::BTreeSet;

use cluster::FileSum;
use serde::{Deserialize, Serialize};

use super::coordinator::{Ingest, ASK};
use super::placement::{self, check_image_id, Placement};
use super::protocol::{Facts, NodeId, View};
use super::staging::{self, check_upload_id, Acknowledged, Staging, Upload};
use super::status::Stage;
use super::IngestError;
use floor::client::Call;

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
    /// The node coordinating the upload, when this node's copy records a takeover.
    #[serde(default)]
    pub coordinator: Option<String>,
}

/// Every node's facts about one upload, as the protocol sees them and as they came.
pub(super) struct Gathered {
    pub facts: Facts,
    pub view: View,
    pub nodes: Vec<NodeFacts>,
}

impl Ingest {
    /// What this node's disks say about `upload` and `image`. Both ids are checked as they
    /// came (they name folders).
    pub fn local_facts(&self, upload: &str, image: &str) -> Result<NodeFacts, IngestError> {
        check_upload_id(upload)?;
        check_image_id(image)?;
        let staging = Staging::find(&self.disks, upload);
        Ok(NodeFacts {
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
            coordinator: staging.as_ref().and_then(|s| self.recorded_coordinator(s)),
        })
    }

    /// What `node` holds of `upload`, or why it cannot be known. An answer counts as hearing
    /// from the node (see [`super::handover`]).
    pub(super) async fn facts_of(&self, node: &str, upload: &Upload) -> Result<NodeFacts, String> {
        let failed = |e: IngestError| e.to_string();
        if node == self.me {
            return self.local_facts(&upload.id, &upload.image).map_err(failed);
        }
        let path = format!(
            "/internal/facts/{}/{}?from={}",
            upload.id, upload.image, self.me
        );
        let answer = self
            .peers()
            .map_err(failed)?
            .call_json(node, Call::new("GET", &path), ASK)
            .await
            .map_err(|e| e.to_string());
        if answer.is_ok() {
            self.heard.heard(node);
        }
        answer
    }

    /// The facts about `upload` from every node, and which nodes answered.
    pub(super) async fn gather(
        &self,
        staging: &Staging,
        upload: &Upload,
    ) -> Result<Gathered, IngestError> {
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
        // The view's home is the coordinator: the home, or the node that took it over.
        let home = self
            .node_id(&self.coordinator_of(staging, upload))
            .unwrap_or(0);
        Ok(Gathered {
            facts,
            view: View { home, domains, up },
            nodes,
        })
    }
}

/// Where an upload is, from its facts.
pub(super) fn stage_of(f: &Facts) -> Stage {
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
