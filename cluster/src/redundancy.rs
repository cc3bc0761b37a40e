//! Redundancy, as every part of the cluster counts it: an image is healthy when two readable
//! replicas sit on two nodes that answer, in two power domains; under-replicated when fewer
//! do but one is left; lost when none is readable. The rule is one pure function
//! ([`classify`]) so that `td status`, the frontends' `/health` and `/metrics` and the nodes'
//! re-mirroring all count the same way; and the wire types of what a node says about its
//! re-mirroring (`GET /redundancy`).

use serde::{Deserialize, Serialize};

use crate::ReplicaState;

/// One replica of an image as the cluster sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen<'a> {
    pub node: &'a str,
    pub disk: &'a str,
    pub state: &'a ReplicaState,
    /// Whether its node answers.
    pub node_up: bool,
}

impl Seen<'_> {
    fn readable(&self) -> bool {
        self.node_up && self.state.servable()
    }
}

/// How an image stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ImageHealth {
    /// Two readable replicas in two power domains (a third, being trimmed, does no harm).
    Healthy,
    /// Readable, but not twice in two domains: `lost` names what is missing.
    UnderReplicated { lost: Vec<String> },
    /// Withdrawn by its owner or an operator.
    Deleted,
    /// No replica can be read.
    Lost { lost: Vec<String> },
}

/// Counts an image's replicas. `domain_of` gives a node's power domain.
pub fn classify<'d>(
    replicas: &[Seen<'_>],
    domain_of: impl Fn(&str) -> Option<&'d str>,
) -> ImageHealth {
    if replicas
        .iter()
        .any(|r| matches!(r.state, ReplicaState::Deleted { .. }))
    {
        return ImageHealth::Deleted;
    }
    let readable: Vec<&Seen> = replicas.iter().filter(|r| r.readable()).collect();
    let mut domains: Vec<&str> = readable.iter().filter_map(|r| domain_of(r.node)).collect();
    domains.sort_unstable();
    domains.dedup();
    let lost: Vec<String> = replicas
        .iter()
        .filter(|r| !r.readable() && !r.state.gone())
        .map(describe)
        .collect();
    if readable.is_empty() {
        ImageHealth::Lost { lost }
    } else if domains.len() >= 2 {
        ImageHealth::Healthy
    } else {
        let mut lost = lost;
        if lost.is_empty() {
            lost.push(if readable.len() >= 2 {
                "a second power domain".to_string()
            } else {
                "its second replica".to_string()
            });
        }
        ImageHealth::UnderReplicated { lost }
    }
}

/// "node-b disk b1: the disk failed …", what a replica that cannot be read is.
fn describe(r: &Seen) -> String {
    let why = match r.state {
        _ if !r.node_up => "the node does not answer".to_string(),
        ReplicaState::Unreadable { reason, .. } => reason.clone(),
        ReplicaState::Suspect { reason } => format!("damaged: {reason}"),
        other => format!("{other:?}"),
    };
    format!("{} disk {}: {why}", r.node, r.disk)
}

/// What a node says about its re-mirroring: `GET /redundancy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemirrorStatus {
    pub node: String,
    /// The operator's limit on what re-mirroring reads, in bytes per second (`None`: as fast
    /// as the disks go while visitors are idle).
    pub throttle_bytes_per_second: Option<u64>,
    /// Copies under way, this node being their source.
    pub jobs: Vec<RemirrorJob>,
    /// Images whose other replica is lost but whose grace period has not ended yet, or that
    /// wait for a free slot.
    pub waiting: Vec<Waiting>,
    /// Replicas copied since the node started, and their bytes.
    pub copied: u64,
    pub copied_bytes: u64,
    /// Superseded replicas removed here since the node started.
    pub trimmed: u64,
}

/// One re-mirror under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemirrorJob {
    pub image: String,
    /// What was lost ("node-b disk b1: …").
    pub lost: String,
    /// Where the new replica goes, once chosen.
    pub target: Option<String>,
    /// The step it is at (choose, place, verify, publish, adopt).
    pub step: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes per second over the copy so far.
    pub rate: u64,
    /// Unix seconds when it started.
    pub started_at: u64,
}

impl RemirrorJob {
    /// Seconds left at the rate so far, if there is one.
    pub fn eta_seconds(&self) -> Option<u64> {
        (self.rate > 0).then(|| self.bytes_total.saturating_sub(self.bytes_done) / self.rate)
    }
}

/// An image whose other replica is lost, not copied yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub image: String,
    pub lost: String,
    /// Seconds until it is copied (its grace period), 0 when it only waits for its turn.
    pub in_seconds: u64,
    /// Why it cannot be copied now, if something stops it (no room, no other power domain).
    pub blocked: Option<String>,
}

/// `td status --json`: the cluster at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub images: usize,
    pub healthy: usize,
    pub under_replicated: usize,
    /// Under-replicated images being copied now (counted in `under_replicated` too).
    pub repairing: usize,
    pub lost: usize,
    pub deleted: usize,
    pub nodes: Vec<NodeStatus>,
    /// Every image that is not healthy, with what was lost.
    pub problems: Vec<ImageProblem>,
    pub repairs: Vec<RemirrorJob>,
    pub waiting: Vec<Waiting>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub power_domain: String,
    pub up: bool,
    /// Why it is not, when it is not.
    pub error: Option<String>,
    pub images: usize,
    pub disks: Vec<DiskStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStatus {
    pub id: String,
    pub state: String,
    pub error: Option<String>,
    pub free_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageProblem {
    pub image: String,
    #[serde(flatten)]
    pub health: ImageHealth,
    /// The nodes with a readable replica.
    pub readable_on: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(n: &str) -> Option<&'static str> {
        Some(match n {
            "a" | "a2" => "A",
            "b" => "B",
            _ => "C",
        })
    }

    fn seen<'a>(node: &'a str, state: &'a ReplicaState, up: bool) -> Seen<'a> {
        Seen {
            node,
            disk: "d",
            state,
            node_up: up,
        }
    }

    #[test]
    fn two_readable_replicas_in_two_domains_and_nothing_less_is_healthy() {
        let ok = ReplicaState::Ok;
        let bad = ReplicaState::unreadable("disk d failed");
        assert_eq!(
            classify(&[seen("a", &ok, true), seen("b", &ok, true)], domain),
            ImageHealth::Healthy
        );
        // Same domain twice is not enough.
        let same = classify(&[seen("a", &ok, true), seen("a2", &ok, true)], domain);
        assert!(
            matches!(&same, ImageHealth::UnderReplicated { lost } if lost[0].contains("power domain")),
            "{same:?}"
        );
        // A failed disk, then a silent node: named.
        let under = classify(&[seen("a", &ok, true), seen("b", &bad, true)], domain);
        assert!(
            matches!(&under, ImageHealth::UnderReplicated { lost } if lost == &["b disk d: disk d failed"]),
            "{under:?}"
        );
        let silent = classify(&[seen("a", &ok, true), seen("b", &ok, false)], domain);
        assert!(
            matches!(&silent, ImageHealth::UnderReplicated { lost } if lost[0].contains("does not answer")),
            "{silent:?}"
        );
        // A removed replica is not counted as lost, but one alone is under-replicated.
        let removed = ReplicaState::Removed;
        let one = classify(&[seen("a", &ok, true), seen("b", &removed, true)], domain);
        assert!(
            matches!(&one, ImageHealth::UnderReplicated { lost } if lost == &["its second replica"]),
            "{one:?}"
        );
        assert!(matches!(
            classify(&[seen("a", &bad, true), seen("b", &ok, false)], domain),
            ImageHealth::Lost { .. }
        ));
        // A third replica, about to be trimmed, keeps it healthy.
        assert_eq!(
            classify(
                &[
                    seen("a", &ok, true),
                    seen("b", &ok, true),
                    seen("c", &ok, true)
                ],
                domain
            ),
            ImageHealth::Healthy
        );
        let deleted = ReplicaState::Deleted { at: 1 };
        assert_eq!(
            classify(&[seen("a", &deleted, true), seen("b", &ok, true)], domain),
            ImageHealth::Deleted
        );
    }
}
