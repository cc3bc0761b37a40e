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
    /// Targets whose replica matched every checksum (each file as it was written, or read back).
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

/// Who drives an upload: decided on each node holding a staged copy of it, from what that node
/// knows. The node that received it coordinates it; if that node falls silent after the second
/// copy was staged, the node holding that copy takes over, so an acknowledged upload is never
/// left waiting for a node that may not come back.
///
/// The takeover is recorded on the new coordinator's disk (`coordinator.json`) before it does
/// anything, and every node's facts carry that record, so a home that returns sees it and
/// follows. Two coordinators at once are kept apart by a lease: the home drives only while it
/// has heard from the copy's holder within half the grace period, while the holder takes over
/// only after the grace period of silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub me: NodeId,
    /// The node that received the upload.
    pub home: NodeId,
    /// The takeover recorded on this node's copy, if any (it names the coordinator).
    pub recorded: Option<NodeId>,
    /// A takeover another node's facts report.
    pub reported: Option<NodeId>,
    /// This node's copy is whole and durable.
    pub staged_here: bool,
    /// The second copy was staged (on the home: acknowledged, or a copy sealed elsewhere).
    /// Before that nobody can take over, and the home needs no lease.
    pub second_copy: bool,
    /// On the home: how long ago a holder of the second copy last answered (`None`: never
    /// since this process started). On a holder: how long the home has been silent.
    pub since_heard: Option<std::time::Duration>,
    /// How long this process has been watching (a silence is never longer than that).
    pub watching: std::time::Duration,
    /// The node grace period: a node silent this long counts as lost.
    pub grace: std::time::Duration,
}

/// What a node does about an upload it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coordination {
    /// It coordinates: ask [`next_step`], with this node as the view's home.
    Drive,
    /// `NodeId` coordinates. `record` says the node should write that down first.
    Follow { coordinator: NodeId, record: bool },
    /// The home has been silent past the grace period: record the takeover, then drive.
    TakeOver,
    /// The home waits for its lease (the holder of the second copy has not answered lately).
    Wait(String),
}

/// The coordination rule; see [`Handover`].
pub fn coordination(h: &Handover) -> Coordination {
    if let Some(c) = h.recorded {
        return if c == h.me {
            Coordination::Drive
        } else {
            Coordination::Follow {
                coordinator: c,
                record: false,
            }
        };
    }
    if let Some(c) = h.reported.filter(|&c| c != h.me) {
        return Coordination::Follow {
            coordinator: c,
            record: true,
        };
    }
    let silent = |d: Option<std::time::Duration>| d.unwrap_or(h.watching).min(h.watching);
    if h.me == h.home {
        if !h.second_copy {
            return Coordination::Drive;
        }
        // Heard lately: the holder cannot have waited out its grace period since.
        if h.since_heard.is_some_and(|d| d < h.grace / 2) {
            return Coordination::Drive;
        }
        // Silent so long that it is lost: it cannot take over without as long a silence
        // after it is back, and its facts are asked at every step.
        if silent(h.since_heard) >= h.grace {
            return Coordination::Drive;
        }
        return Coordination::Wait(
            "the node holding the second copy does not answer; going on when it does, or once \
             it counts as lost"
                .into(),
        );
    }
    if h.staged_here && h.second_copy && silent(h.since_heard) >= h.grace {
        return Coordination::TakeOver;
    }
    Coordination::Follow {
        coordinator: h.home,
        record: false,
    }
}
