//! The re-mirror protocol's decisions, as pure functions of what a node knows, model checked
//! in `backend/tests/remirror_model.rs`.
//!
//! Every replica's manifest carries its *set*: the nodes meant to hold the image and the time
//! that set was made (its epoch). Ingest makes the first set; a re-mirror makes a newer one,
//! with the survivor and the new target. The rules, for the node `me` holding a readable
//! replica:
//!
//! - a tombstone on any node → remove mine (the image was withdrawn);
//! - a newer set that leaves me out, whose every member holds a readable replica of exactly
//!   that set, in two power domains → mine is superseded: remove it (this is the only way a
//!   replica is trimmed, so trimming never lowers the count below two); a set served whole
//!   also supersedes mine, whatever its epoch, when mine is not served whole;
//! - a member of my set that holds no readable replica for longer than its grace period (disk:
//!   short; silent node: long) → copy mine to a new target and make a new set of the two;
//! - otherwise nothing.
//!
//! A copy goes through the same hidden steps as ingest on the target (placed, verified,
//! published); the survivor then adopts the new set in its own manifest. The job's target is
//! recorded before anything is sent, so a restart goes on with the same target.

use std::time::Duration;

/// A set: who should hold the image, and when that was decided.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Set {
    /// Unix seconds; a newer set wins.
    pub epoch: u64,
    /// Sorted.
    pub nodes: Vec<String>,
}

impl Set {
    pub fn new(epoch: u64, mut nodes: Vec<String>) -> Set {
        nodes.sort();
        nodes.dedup();
        Set { epoch, nodes }
    }

    pub fn has(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n == node)
    }
}

/// What another node holds of the image, as this node last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// A readable replica of this set.
    Readable(Set),
    /// Its replica cannot be read (disk failed, damaged, refused) or it has none, for this
    /// long as far as this node knows.
    Unreadable(Duration),
    /// The node does not answer, for this long.
    Silent(Duration),
    /// A tombstone: the image was withdrawn.
    Deleted,
}

/// Another node, for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    pub domain: String,
    pub holding: Holding,
}

/// Grace periods before a replica counts as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    pub disk: Duration,
    pub node: Duration,
}

/// What to do about one image held readable here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Survey {
    Fine,
    /// Withdrawn elsewhere: remove the replica here and keep a tombstone.
    Delete,
    /// Superseded by this newer set: remove the replica here.
    Trim(Set),
    /// `lost`'s replica is lost: copy this one elsewhere.
    Remirror {
        lost: String,
    },
    /// `lost`'s replica is missing, but its grace period has this long to run.
    Wait {
        lost: String,
        left: Duration,
    },
}

/// The decision for the image held readable here with set `mine`, `others` being every other
/// node that holds it or is in `mine`.
pub fn survey(
    me: &str,
    mine: &Set,
    others: &[Peer],
    domain_of: &dyn Fn(&str) -> Option<String>,
    grace: Grace,
) -> Survey {
    if others.iter().any(|p| p.holding == Holding::Deleted) {
        return Survey::Delete;
    }
    let readable = |node: &str, set: &Set| {
        node == me && mine == set
            || others
                .iter()
                .any(|p| p.node == node && p.holding == Holding::Readable(set.clone()))
    };
    let complete = |set: &Set| {
        let mut domains: Vec<Option<String>> = set.nodes.iter().map(|n| domain_of(n)).collect();
        domains.sort();
        domains.dedup();
        set.nodes.len() >= 2
            && domains.len() >= 2
            && !domains.contains(&None)
            && set.nodes.iter().all(|n| readable(n, set))
    };
    // A set that is not served whole while another one is can only be the loser of two
    // coordinators (a home back from a silence beside the node that took its upload over):
    // the whole one supersedes it, whatever their epochs.
    let mine_complete = complete(mine);
    let newer = others
        .iter()
        .filter_map(|p| match &p.holding {
            Holding::Readable(s) if s != mine && (s > mine || !mine_complete) && !s.has(me) => {
                Some(s)
            }
            _ => None,
        })
        .filter(|s| complete(s))
        .max();
    if let Some(set) = newer {
        return Survey::Trim(set.clone());
    }
    // The partners in my set, and how long each has been without a readable replica of it.
    let mut worst: Option<(String, Duration, Duration)> = None;
    for partner in mine.nodes.iter().filter(|n| *n != me) {
        let (missing_for, grace_for) = match others.iter().find(|p| &p.node == partner) {
            Some(Peer {
                holding: Holding::Readable(_),
                ..
            }) => continue,
            Some(Peer {
                holding: Holding::Silent(d),
                ..
            }) => (*d, grace.node),
            Some(Peer {
                holding: Holding::Unreadable(d),
                ..
            }) => (*d, grace.disk),
            Some(Peer {
                holding: Holding::Deleted,
                ..
            }) => unreachable!("handled above"),
            // A node not in the configuration any more: lost now.
            None => (grace.disk, grace.disk),
        };
        let left = grace_for.saturating_sub(missing_for);
        if worst.as_ref().is_none_or(|(_, l, _)| left < *l) {
            worst = Some((partner.clone(), left, grace_for));
        }
    }
    // A set of one (a survivor that adopted a set whose partner then vanished, or an image
    // placed by hand) also needs its second replica.
    if mine.nodes.len() < 2 || mine.nodes.iter().all(|n| n == me) {
        return Survey::Remirror {
            lost: "its second replica".into(),
        };
    }
    match worst {
        None => Survey::Fine,
        Some((lost, left, _)) if left.is_zero() => Survey::Remirror { lost },
        Some((lost, left, _)) => Survey::Wait { lost, left },
    }
}

/// How far the new replica has come on the target, as the target says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetStage {
    Nothing,
    Incoming,
    Placed,
    Verified,
    Published,
}

/// What the source of a re-mirror knows at a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFacts {
    /// The target recorded for the job, if one was chosen.
    pub target: Option<String>,
    /// Whether the target answers.
    pub target_up: bool,
    pub target_stage: TargetStage,
    /// Whether this node's manifest already names the new set.
    pub adopted: bool,
    /// Whether the lost partner holds a readable replica of the old set again.
    pub partner_back: bool,
}

/// The next step of a re-mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Pick a target (another node, another power domain than this one, the most room) and
    /// record it before sending anything.
    Choose,
    /// Send every file to the target, hidden, and seal it with the new manifest.
    Place,
    /// Have the target read every file back against the manifest.
    Verify,
    /// Have the target make its replica visible and served.
    Publish,
    /// Write the new set into this node's manifest and catalog.
    Adopt,
    /// Forget the target (it does not answer, or it failed): choose again.
    Rechoose,
    /// Nothing was sent yet and the partner is back: the job is not needed.
    Cancel,
    /// The new set is in place on both sides.
    Done,
}

pub fn next_step(f: &JobFacts) -> Step {
    let Some(_) = &f.target else {
        return if f.partner_back {
            Step::Cancel
        } else {
            Step::Choose
        };
    };
    if f.adopted {
        return Step::Done;
    }
    if !f.target_up {
        // Nothing adopted yet: the old set still stands here, so another target is safe.
        return Step::Rechoose;
    }
    match f.target_stage {
        TargetStage::Nothing if f.partner_back => Step::Cancel,
        TargetStage::Nothing | TargetStage::Incoming => Step::Place,
        TargetStage::Placed => Step::Verify,
        TargetStage::Verified => Step::Publish,
        TargetStage::Published => Step::Adopt,
    }
}

/// Whether a hidden copy here (placed or verified, never published) can be swept: some set that
/// leaves this node out is served whole in two power domains (every member holds a readable
/// replica of exactly it). Such a copy can never be published usefully: it is what a re-mirror
/// target given up, or an ingest coordinator that lost to another, left behind. Hidden copies
/// are never served, so sweeping one never lowers the replicas visitors see.
pub fn hidden_superseded(
    me: &str,
    others: &[Peer],
    domain_of: &dyn Fn(&str) -> Option<String>,
) -> bool {
    others.iter().any(|p| match &p.holding {
        Holding::Readable(set) if !set.has(me) && set.nodes.len() >= 2 => {
            let mut domains: Vec<Option<String>> = set.nodes.iter().map(|n| domain_of(n)).collect();
            domains.sort();
            domains.dedup();
            domains.len() >= 2
                && !domains.contains(&None)
                && set.nodes.iter().all(|n| {
                    others
                        .iter()
                        .any(|q| &q.node == n && q.holding == Holding::Readable(set.clone()))
                })
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(n: &str) -> Option<String> {
        Some(n.to_uppercase())
    }

    const G: Grace = Grace {
        disk: Duration::from_secs(60),
        node: Duration::from_secs(900),
    };

    fn set(epoch: u64, nodes: &[&str]) -> Set {
        Set::new(epoch, nodes.iter().map(|s| s.to_string()).collect())
    }

    fn peer(node: &str, holding: Holding) -> Peer {
        Peer {
            node: node.into(),
            domain: node.to_uppercase(),
            holding,
        }
    }

    #[test]
    fn a_lost_partner_is_copied_after_its_grace_and_a_newer_set_trims() {
        let mine = set(1, &["a", "b"]);
        let ok = [peer("b", Holding::Readable(mine.clone()))];
        assert_eq!(survey("a", &mine, &ok, &domain, G), Survey::Fine);
        let failed = [peer("b", Holding::Unreadable(Duration::from_secs(10)))];
        assert_eq!(
            survey("a", &mine, &failed, &domain, G),
            Survey::Wait {
                lost: "b".into(),
                left: Duration::from_secs(50)
            }
        );
        let long = [peer("b", Holding::Unreadable(Duration::from_secs(61)))];
        assert_eq!(
            survey("a", &mine, &long, &domain, G),
            Survey::Remirror { lost: "b".into() }
        );
        // A silent node has the longer grace.
        let silent = [peer("b", Holding::Silent(Duration::from_secs(61)))];
        assert!(matches!(
            survey("a", &mine, &silent, &domain, G),
            Survey::Wait { .. }
        ));
        // b came back with the old set, but a and c hold a newer one: b is superseded.
        let new = set(2, &["a", "c"]);
        let others = [
            peer("a", Holding::Readable(new.clone())),
            peer("c", Holding::Readable(new.clone())),
        ];
        assert_eq!(
            survey("b", &mine, &others, &domain, G),
            Survey::Trim(new.clone())
        );
        // Not while a has not adopted it yet.
        let half = [
            peer("a", Holding::Readable(mine.clone())),
            peer("c", Holding::Readable(new)),
        ];
        assert_eq!(survey("b", &mine, &half, &domain, G), Survey::Fine);
        let gone = [peer("b", Holding::Deleted)];
        assert_eq!(survey("a", &mine, &gone, &domain, G), Survey::Delete);
    }

    #[test]
    fn the_job_goes_on_from_what_the_target_holds() {
        let mut f = JobFacts {
            target: None,
            target_up: false,
            target_stage: TargetStage::Nothing,
            adopted: false,
            partner_back: false,
        };
        assert_eq!(next_step(&f), Step::Choose);
        f.target = Some("c".into());
        f.target_up = true;
        assert_eq!(next_step(&f), Step::Place);
        f.target_stage = TargetStage::Placed;
        assert_eq!(next_step(&f), Step::Verify);
        f.partner_back = true; // too late to cancel: finish, then the partner is trimmed
        f.target_stage = TargetStage::Published;
        assert_eq!(next_step(&f), Step::Adopt);
        f.adopted = true;
        assert_eq!(next_step(&f), Step::Done);
    }

    #[test]
    fn a_set_served_whole_supersedes_one_that_is_not_whatever_the_epochs() {
        // Two coordinators published the same image: {a,b} is served whole, c's {c,d} is not
        // (d holds nothing). c trims, even though {a,b} sorts before {c,d}.
        let whole = set(5, &["a", "b"]);
        let half = set(5, &["c", "d"]);
        let others = [
            peer("a", Holding::Readable(whole.clone())),
            peer("b", Holding::Readable(whole.clone())),
            peer("d", Holding::Unreadable(Duration::ZERO)),
        ];
        assert_eq!(
            survey("c", &half, &others, &domain, G),
            Survey::Trim(whole.clone())
        );
        // A whole set of mine is never trimmed by an older one.
        let mine = set(6, &["c", "d"]);
        let others = [
            peer("a", Holding::Readable(whole.clone())),
            peer("b", Holding::Readable(whole)),
            peer("d", Holding::Readable(mine.clone())),
        ];
        assert_eq!(survey("c", &mine, &others, &domain, G), Survey::Fine);
    }

    #[test]
    fn a_hidden_copy_is_swept_only_beside_a_set_served_whole_without_it() {
        let whole = set(5, &["a", "b"]);
        let served = [
            peer("a", Holding::Readable(whole.clone())),
            peer("b", Holding::Readable(whole.clone())),
        ];
        assert!(hidden_superseded("c", &served, &domain));
        // A set naming this node: the copy may be on its way to being published.
        assert!(!hidden_superseded("a", &served, &domain));
        // One member not readable: nothing is whole, the copy may still be needed.
        let half = [
            peer("a", Holding::Readable(whole.clone())),
            peer("b", Holding::Unreadable(Duration::from_secs(5))),
        ];
        assert!(!hidden_superseded("c", &half, &domain));
        // Whole, but in one power domain.
        let one_domain = |_: &str| Some("X".to_string());
        assert!(!hidden_superseded("c", &served, &one_domain));
        // Members holding different sets.
        let mixed = [
            peer("a", Holding::Readable(whole)),
            peer("b", Holding::Readable(set(6, &["a", "b"]))),
        ];
        assert!(!hidden_superseded("c", &mixed, &domain));
    }
}
