//! The ingest protocol as a decision: given the durable facts about one upload (what the marker
//! files in staging and on the disks say) and which nodes are up, what is the one next step?
//! The runtime does that step, records its fact (fsynced), and asks again; after any crash it
//! simply asks again, so the protocol resumes from the files and holds no state of its own.
//!
//! The steps, in order:
//! 1. stage the original on its home node (the one that received it), then on a node in another
//!    power domain, each copy fsynced and checksummed;
//! 2. acknowledge the upload to the provider (only now: two durable copies exist);
//! 3. tile it (pyramid and thumbnail, in staging);
//! 4. choose two target nodes in different power domains, and record the choice first (a
//!    restart must not place a third copy somewhere else);
//! 5. place the replica set on each target, hidden;
//! 6. verify each placed replica end to end against the checksums;
//! 7. publish on each target (visible in its catalog), only once both are verified;
//! 8. clear staging, only once both are published.
//!
//! When a step cannot be taken (a power domain down, no second node), the answer is to wait,
//! with the reason in plain words for the portal.

use std::collections::BTreeSet;

pub type NodeId = usize;

/// What the marker files say about one upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Facts {
    /// Nodes holding the original in staging, fsynced and checksummed.
    pub staged: BTreeSet<NodeId>,
    /// The provider was told the upload is safe.
    pub acknowledged: bool,
    /// The pyramid and thumbnail are made (in the home node's staging).
    pub tiled: bool,
    /// Where the two replicas go, recorded before the first is placed.
    pub targets: Option<[NodeId; 2]>,
    /// Targets holding the replica set (hidden until published).
    pub placed: BTreeSet<NodeId>,
    /// Targets whose replica was read back and matched every checksum.
    pub verified: BTreeSet<NodeId>,
    /// Targets whose catalog shows the image.
    pub published: BTreeSet<NodeId>,
    /// Nodes whose staging copy is gone.
    pub cleared: BTreeSet<NodeId>,
}

/// The cluster as the deciding node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct View {
    /// The node that received the upload.
    pub home: NodeId,
    /// Each node's power domain, by node id.
    pub domains: Vec<u8>,
    /// Nodes that answer now.
    pub up: BTreeSet<NodeId>,
}

impl View {
    fn different_domains(&self, a: NodeId, b: NodeId) -> bool {
        self.domains[a] != self.domains[b]
    }
}

/// The next thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    Stage(NodeId),
    Acknowledge,
    Tile,
    Choose([NodeId; 2]),
    Place(NodeId),
    Verify(NodeId),
    Publish(NodeId),
    Clear(NodeId),
    /// Nothing can be done now; why, for the provider.
    Wait(String),
    Done,
}

/// The one next step for an upload with `facts`, seen from `view`.
pub fn next_step(facts: &Facts, view: &View) -> Step {
    let up = |n: NodeId| view.up.contains(&n);
    if !facts.acknowledged {
        if !facts.staged.contains(&view.home) {
            return if up(view.home) {
                Step::Stage(view.home)
            } else {
                Step::Wait("the node receiving the upload is down; send it again".into())
            };
        }
        let second = facts
            .staged
            .iter()
            .any(|&n| view.different_domains(n, view.home));
        if !second {
            return match (0..view.domains.len())
                .find(|&n| up(n) && view.different_domains(n, view.home))
            {
                Some(n) => Step::Stage(n),
                None => Step::Wait(
                    "no node in another power domain is up to hold the second copy; the upload \
                     is kept and goes on when one is"
                        .into(),
                ),
            };
        }
        return Step::Acknowledge;
    }
    if !facts.tiled {
        return match facts.staged.iter().find(|&&n| up(n)) {
            Some(_) => Step::Tile,
            None => Step::Wait("the nodes holding the upload are down".into()),
        };
    }
    let Some(targets) = facts.targets else {
        let ups: Vec<NodeId> = view.up.iter().copied().collect();
        for (i, &a) in ups.iter().enumerate() {
            if let Some(&b) = ups[i + 1..].iter().find(|&&b| view.different_domains(a, b)) {
                return Step::Choose([a, b]);
            }
        }
        return Step::Wait(
            "two replicas cannot be placed now (fewer than two power domains have a node up); \
             the upload stays staged until they can"
                .into(),
        );
    };
    for (need, step) in [
        (&facts.placed, Step::Place as fn(NodeId) -> Step),
        (&facts.verified, Step::Verify),
    ] {
        if let Some(&t) = targets.iter().find(|t| !need.contains(t)) {
            return if up(t) {
                step(t)
            } else {
                Step::Wait(format!("node {t}, which takes a replica, is down"))
            };
        }
    }
    if let Some(&t) = targets.iter().find(|t| !facts.published.contains(t)) {
        return if up(t) {
            Step::Publish(t)
        } else {
            Step::Wait(format!(
                "node {t} is down; its catalog shows the image when it is back"
            ))
        };
    }
    // The home node's staging folder holds the facts, so it is cleared last: with it gone
    // nobody would know the others are left.
    let left: Vec<NodeId> = facts
        .staged
        .iter()
        .copied()
        .filter(|n| !facts.cleared.contains(n))
        .collect();
    if let Some(&n) = left.iter().find(|&&n| n != view.home && up(n)) {
        return Step::Clear(n);
    }
    match left.as_slice() {
        [] => Step::Done,
        [only] if *only == view.home && up(view.home) => Step::Clear(view.home),
        _ => Step::Wait("published; staging is cleared when its node is back".into()),
    }
}
