//! The ingest protocol's decisions (`backend::ingest::protocol::next_step`), model checked:
//! three nodes in two power domains (the home node alone in its domain), the runtime doing each
//! step the decision names, through every interleaving of node crashes and restarts and of a
//! replica that fails its verification.
//!
//! Checked exhaustively:
//! - nothing is ever published unless two replicas in two power domains are verified;
//! - an acknowledged upload always has at least two durable copies (staged or verified);
//! - acknowledgement only once the original is staged in two power domains;
//! - staging is cleared only after both replicas are published;
//! - every upload ends published on both targets with staging cleared, once the nodes are back.
//!
//! And the properties can fail: a policy that publishes after one verified replica, and one
//! that acknowledges after one staged copy, are each caught.

use backend::ingest::protocol::{next_step, Facts, NodeId, Step, View};
use stateright::{Checker, Model, Property};

/// Node 0 (home) is in power domain 0; nodes 1 and 2 share domain 1.
const DOMAINS: [u8; 3] = [0, 1, 1];

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct World {
    facts: Facts,
    up: [bool; 3],
    /// Faults still allowed, to keep the state space finite.
    crashes: u8,
    bad_replicas: u8,
}

impl World {
    fn view(&self) -> View {
        View {
            home: 0,
            domains: DOMAINS.to_vec(),
            up: (0..3).filter(|&n| self.up[n]).collect(),
        }
    }

    fn copies(&self) -> usize {
        let f = &self.facts;
        f.staged.difference(&f.cleared).count() + f.verified.len()
    }

    fn both_targets(&self, set: &std::collections::BTreeSet<NodeId>) -> bool {
        self.facts
            .targets
            .is_some_and(|[a, b]| set.contains(&a) && set.contains(&b))
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
enum Action {
    /// The runtime does what the decision says.
    Do(Step),
    /// The replica placed on a target fails its verification: it is removed, to be placed again.
    BadReplica(NodeId),
    Crash(NodeId),
    Restart(NodeId),
}

struct Ingest {
    policy: fn(&Facts, &View) -> Step,
}

impl Model for Ingest {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        vec![World {
            facts: Facts::default(),
            up: [true; 3],
            crashes: 2,
            bad_replicas: 1,
        }]
    }

    fn actions(&self, w: &World, actions: &mut Vec<Action>) {
        let step = (self.policy)(&w.facts, &w.view());
        match step {
            Step::Wait(_) | Step::Done => {}
            Step::Verify(t) if w.bad_replicas > 0 => {
                actions.push(Action::BadReplica(t));
                actions.push(Action::Do(step));
            }
            step => actions.push(Action::Do(step)),
        }
        for n in 0..3 {
            if w.up[n] && w.crashes > 0 {
                actions.push(Action::Crash(n));
            }
            if !w.up[n] {
                actions.push(Action::Restart(n));
            }
        }
    }

    fn next_state(&self, w: &World, action: Action) -> Option<World> {
        let mut w = w.clone();
        let f = &mut w.facts;
        match action {
            Action::Do(step) => match step {
                Step::Stage(n) => drop(f.staged.insert(n)),
                Step::Acknowledge => f.acknowledged = true,
                Step::Tile => f.tiled = true,
                Step::Choose(t) => f.targets = Some(t),
                Step::Place(t) => drop(f.placed.insert(t)),
                Step::Verify(t) => drop(f.verified.insert(t)),
                Step::Publish(t) => drop(f.published.insert(t)),
                Step::Clear(n) => drop(f.cleared.insert(n)),
                Step::Wait(_) | Step::Done => return None,
            },
            Action::BadReplica(t) => {
                f.placed.remove(&t);
                w.bad_replicas -= 1;
            }
            Action::Crash(n) => {
                w.up[n] = false;
                w.crashes -= 1;
            }
            Action::Restart(n) => w.up[n] = true,
        }
        Some(w)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(
                "nothing published without two verified replicas",
                |_, w: &World| {
                    w.facts.published.is_empty()
                        || (w.both_targets(&w.facts.verified)
                            && w.facts
                                .targets
                                .is_some_and(|[a, b]| DOMAINS[a] != DOMAINS[b]))
                },
            ),
            Property::always("an acknowledged upload has two copies", |_, w: &World| {
                !w.facts.acknowledged || w.copies() >= 2
            }),
            Property::always(
                "acknowledged only when staged in two power domains",
                |_, w: &World| {
                    let domains: std::collections::BTreeSet<u8> =
                        w.facts.staged.iter().map(|&n| DOMAINS[n]).collect();
                    !w.facts.acknowledged || domains.len() == 2
                },
            ),
            Property::always("staging cleared only after publication", |_, w: &World| {
                w.facts.cleared.is_empty() || w.both_targets(&w.facts.published)
            }),
            Property::eventually(
                "published on both targets, staging cleared",
                |_, w: &World| {
                    w.both_targets(&w.facts.published) && w.facts.cleared == w.facts.staged
                },
            ),
            Property::sometimes("waits while a power domain is down", |_, w: &World| {
                matches!(next_step(&w.facts, &w.view()), Step::Wait(_)) && w.facts.acknowledged
            }),
            Property::sometimes("a bad replica is placed again", |_, w: &World| {
                w.bad_replicas == 0 && w.both_targets(&w.facts.published)
            }),
        ]
    }
}

#[test]
fn the_ingest_protocol_never_loses_or_half_publishes_an_upload() {
    let checker = Ingest { policy: next_step }.checker().spawn_bfs().join();
    eprintln!(
        "ingest model: {} states checked, {} unique",
        checker.state_count(),
        checker.unique_state_count()
    );
    checker.assert_properties();
    assert!(
        checker.unique_state_count() > 100,
        "the model explores something"
    );
}

/// Publishes as soon as one replica is verified.
fn hasty_publish(f: &Facts, v: &View) -> Step {
    match (next_step(f, v), f.targets) {
        (Step::Verify(t), Some(_)) if !f.verified.is_empty() && v.up.contains(&t) => {
            let first = *f.verified.iter().next().unwrap();
            if f.published.contains(&first) {
                Step::Verify(t)
            } else {
                Step::Publish(first)
            }
        }
        (step, _) => step,
    }
}

/// Acknowledges once the home node has the original.
fn hasty_ack(f: &Facts, v: &View) -> Step {
    if !f.acknowledged && f.staged.contains(&v.home) {
        return Step::Acknowledge;
    }
    next_step(f, v)
}

#[test]
fn the_properties_catch_a_wrong_protocol() {
    let checker = Ingest {
        policy: hasty_publish,
    }
    .checker()
    .spawn_bfs()
    .join();
    assert!(checker
        .discovery("nothing published without two verified replicas")
        .is_some());
    let checker = Ingest { policy: hasty_ack }.checker().spawn_bfs().join();
    assert!(checker
        .discovery("an acknowledged upload has two copies")
        .is_some());
}
