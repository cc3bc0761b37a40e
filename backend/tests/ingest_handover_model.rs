//! The home node lost after acknowledging, model checked: the node holding the second staged
//! copy takes the upload over (`backend::ingest::protocol::coordination`), drives it with the
//! same decisions (`next_step`) from its own markers, and a home that comes back follows it;
//! replicas that two coordinators left are trimmed by the re-mirror's rule
//! (`backend::redundancy::protocol::survey`). All three are the real functions.
//!
//! Four nodes in two power domains: 0 is the home, 1 holds the second copy, 2 and 3 can take
//! replicas. Time is abstract: what each of the two nodes last heard of the other is fresh
//! (within half the grace period), stale, or lost (past the grace period); they talk whenever
//! both are up, unless the link between them is cut (a partition: each still reaches the
//! others). Crashes and restarts at every step; a restart forgets what was heard.
//!
//! Checked exhaustively:
//! - an acknowledged upload always has two durable copies (staged or verified replicas);
//! - nothing is published unless two replicas in two power domains are verified;
//! - without a partition, never two coordinators driving at once;
//! - every run ends with the image published on exactly two nodes in two power domains and
//!   every staging copy cleared, once the nodes are back; with a partition too.
//!
//! And the checks can fail: a takeover that is not recorded first drives beside a home that
//! comes back, and a home that ignores a recorded takeover does too; both are caught.
//!
//! Not modelled: a third node holding a whole copy too (the home staged one elsewhere while the
//! holder was down) competing to take over; the runtime lets the first in the configuration's
//! order take over and the others follow (`handover::watch_homes`).

use std::collections::BTreeSet;
use std::time::Duration;

use backend::ingest::protocol::{
    coordination, next_step, Coordination, Facts, Handover, NodeId, Step, View,
};
use backend::redundancy::protocol::{survey, Grace, Holding, Peer, Set, Survey};
use stateright::{Checker, Model, Property};

const N: usize = 4;
const DOMAINS: [u8; N] = [0, 1, 0, 1];
const HOME: NodeId = 0;
const HOLDER: NodeId = 1;
const GRACE: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Placed,
    Verified,
    Published,
}

/// What one node last heard of the other.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Heard {
    Fresh,
    Stale,
    Lost,
}

impl Heard {
    /// As the runtime measures it: how long ago, over how long a watch.
    fn since(self) -> (Option<Duration>, Duration) {
        match self {
            Heard::Fresh => (Some(Duration::ZERO), GRACE * 2),
            Heard::Stale => (Some(GRACE * 3 / 4), GRACE * 2),
            Heard::Lost => (Some(GRACE * 2), GRACE * 2),
        }
    }
}

/// The markers in a staging copy (home or holder).
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq)]
struct Markers {
    acknowledged: bool,
    tiled: bool,
    targets: Option<[NodeId; 2]>,
    coordinator: Option<NodeId>,
    /// On the home: the nodes a copy was sealed on (noted before each seal).
    holders: BTreeSet<NodeId>,
    /// The copies the acknowledgement names.
    staged_on: BTreeSet<NodeId>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct World {
    up: [bool; N],
    /// Nodes holding a staging copy (both whole at the start: the second copy just sealed).
    staged: BTreeSet<NodeId>,
    /// Markers of the home's copy and of the holder's.
    markers: [Markers; 2],
    /// Each node's copy of the image and the set (targets) its manifest names.
    replica: [Option<(Stage, [NodeId; 2])>; N],
    /// What the home heard of the holder, and the holder of the home.
    home_heard: Heard,
    holder_heard: Heard,
    /// The link between the two is cut.
    cut: bool,
    crashes: u8,
    ticks: u8,
    cuts: u8,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
enum Action {
    /// Node `0` or `1` does what its coordination rule and `next_step` say.
    Step(NodeId, Step),
    TakeOver,
    Follow(NodeId, NodeId),
    /// The survey on a node holding a published replica trims it.
    Trim(NodeId),
    /// A hidden copy is swept: the image is served whole by two other nodes.
    Sweep(NodeId),
    /// The holder's copy is cleared by the holder: its home has none left and the image is
    /// published (the home finished while the holder was away).
    ClearLeft,
    Crash(NodeId),
    Restart(NodeId),
    /// The home gathers the facts: it hears every holder and sees what they recorded.
    Gather,
    /// The holder asks the home.
    Poll,
    Age,
    Lose(NodeId),
    Cut,
    Mend,
}

struct Handovers {
    /// The coordination rule under test.
    rule: fn(&Handover) -> Coordination,
    /// How many times the link between home and holder may be cut.
    cuts: u8,
}

impl World {
    fn reaches(&self, from: NodeId, to: NodeId) -> bool {
        self.up[to] && !(self.cut && from + to == HOME + HOLDER && from != to)
    }

    fn handover(&self, c: NodeId) -> Handover {
        let other = HOME + HOLDER - c;
        let (since_heard, watching) = if c == HOME {
            self.home_heard.since()
        } else {
            self.holder_heard.since()
        };
        Handover {
            me: c,
            home: HOME,
            recorded: self.markers[c].coordinator,
            reported: if self.reaches(c, other) && self.staged.contains(&other) {
                self.markers[other].coordinator
            } else {
                None
            },
            staged_here: true,
            second_copy: c == HOLDER || !self.markers[c].holders.is_empty(),
            since_heard,
            watching,
            grace: GRACE,
        }
    }

    /// The facts as node `c` gathers them from its markers and the nodes it reaches.
    fn facts(&self, c: NodeId) -> (Facts, View) {
        let m = &self.markers[c];
        let up: BTreeSet<NodeId> = (0..N).filter(|&n| self.reaches(c, n)).collect();
        let staged: BTreeSet<NodeId> = if m.acknowledged {
            m.staged_on.clone()
        } else {
            self.staged
                .iter()
                .copied()
                .filter(|n| up.contains(n))
                .collect()
        };
        let at_least = |s: Stage| -> BTreeSet<NodeId> {
            m.targets
                .iter()
                .flatten()
                .copied()
                .filter(|&t| up.contains(&t) && self.replica[t].is_some_and(|(x, _)| x >= s))
                .collect()
        };
        let facts = Facts {
            cleared: staged
                .iter()
                .copied()
                .filter(|n| up.contains(n) && !self.staged.contains(n))
                .collect(),
            staged,
            acknowledged: m.acknowledged,
            tiled: m.tiled,
            targets: m.targets,
            placed: at_least(Stage::Placed),
            verified: at_least(Stage::Verified),
            published: at_least(Stage::Published),
        };
        let view = View {
            home: c,
            domains: DOMAINS.to_vec(),
            up,
        };
        (facts, view)
    }

    /// Who drives now (the rule says `Drive` and its copy is there).
    fn drivers(&self, rule: fn(&Handover) -> Coordination) -> Vec<NodeId> {
        [HOME, HOLDER]
            .into_iter()
            .filter(|&c| self.up[c] && self.staged.contains(&c))
            .filter(|&c| rule(&self.handover(c)) == Coordination::Drive)
            .collect()
    }

    /// The targets the runtime's choice may take: up, two domains, most copies already there.
    fn choices(&self, view: &View) -> Vec<[NodeId; 2]> {
        let holds = |n: NodeId| usize::from(self.replica[n].is_some());
        let mut pairs = Vec::new();
        for a in view.up.iter().copied() {
            for b in view.up.iter().copied().filter(|&b| b > a) {
                if DOMAINS[a] != DOMAINS[b] {
                    pairs.push(([a, b], holds(a) + holds(b)));
                }
            }
        }
        let best = pairs.iter().map(|(_, h)| *h).max().unwrap_or(0);
        pairs
            .into_iter()
            .filter(|(_, h)| *h == best)
            .map(|(p, _)| p)
            .collect()
    }

    fn survey_of(&self, n: NodeId) -> Survey {
        let Some((Stage::Published, mine)) = self.replica[n] else {
            return Survey::Fine;
        };
        let name = |i: NodeId| i.to_string();
        let set = |s: [NodeId; 2]| Set::new(1, s.iter().map(|&i| name(i)).collect());
        let others: Vec<Peer> = (0..N)
            .filter(|&m| m != n)
            .map(|m| Peer {
                node: name(m),
                domain: DOMAINS[m].to_string(),
                holding: match self.replica[m] {
                    _ if !self.up[m] => Holding::Silent(Duration::ZERO),
                    Some((Stage::Published, s)) => Holding::Readable(set(s)),
                    _ => Holding::Unreadable(Duration::ZERO),
                },
            })
            .collect();
        let domain_of = |s: &str| s.parse::<usize>().ok().map(|i| DOMAINS[i].to_string());
        survey(
            &name(n),
            &set(mine),
            &others,
            &domain_of,
            Grace {
                disk: GRACE,
                node: GRACE,
            },
        )
    }

    /// The sweep's rule (`backend::redundancy::hidden`): a hidden copy on `n` while two other
    /// nodes in two domains serve the image, both of one set that leaves `n` out.
    fn sweepable(&self, n: NodeId) -> bool {
        let Some((stage, _)) = self.replica[n] else {
            return false;
        };
        stage < Stage::Published
            && (0..N).any(|a| match self.replica[a] {
                Some((Stage::Published, set)) if self.up[a] && !set.contains(&n) => {
                    set.iter()
                        .all(|&m| self.up[m] && self.replica[m] == Some((Stage::Published, set)))
                        && DOMAINS[set[0]] != DOMAINS[set[1]]
                }
                _ => false,
            })
    }

    fn published(&self) -> Vec<NodeId> {
        (0..N)
            .filter(|&n| matches!(self.replica[n], Some((Stage::Published, _))))
            .collect()
    }

    fn copies(&self) -> usize {
        self.staged.len()
            + self
                .replica
                .iter()
                .filter(|r| r.is_some_and(|(s, _)| s >= Stage::Verified))
                .count()
    }
}

impl Model for Handovers {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        vec![World {
            up: [true; N],
            staged: [HOME, HOLDER].into(),
            markers: [
                Markers {
                    holders: [HOLDER].into(),
                    ..Markers::default()
                },
                Markers::default(),
            ],
            replica: [None; N],
            home_heard: Heard::Fresh,
            holder_heard: Heard::Fresh,
            cut: false,
            crashes: 2,
            ticks: 2,
            cuts: self.cuts,
        }]
    }

    fn actions(&self, w: &World, actions: &mut Vec<Action>) {
        for c in [HOME, HOLDER] {
            if !w.up[c] || !w.staged.contains(&c) {
                continue;
            }
            match (self.rule)(&w.handover(c)) {
                Coordination::Drive => {
                    let (facts, view) = w.facts(c);
                    match next_step(&facts, &view) {
                        Step::Wait(_) | Step::Done => {}
                        Step::Choose(_) => {
                            for pair in w.choices(&view) {
                                actions.push(Action::Step(c, Step::Choose(pair)));
                            }
                        }
                        step => actions.push(Action::Step(c, step)),
                    }
                }
                Coordination::TakeOver => actions.push(Action::TakeOver),
                Coordination::Follow {
                    coordinator,
                    record: true,
                } => actions.push(Action::Follow(c, coordinator)),
                Coordination::Follow { .. } | Coordination::Wait(_) => {}
            }
        }
        for n in 0..N {
            if w.up[n] && matches!(w.survey_of(n), Survey::Trim(_)) {
                actions.push(Action::Trim(n));
            }
            if w.up[n] && w.sweepable(n) {
                actions.push(Action::Sweep(n));
            }
            if w.up[n] && w.crashes > 0 {
                actions.push(Action::Crash(n));
            }
            if !w.up[n] {
                actions.push(Action::Restart(n));
            }
        }
        let home_reaches_holders =
            w.up[HOME] && w.markers[HOME].holders.iter().all(|&h| w.reaches(HOME, h));
        let news = w.home_heard != Heard::Fresh
            || (w.reaches(HOME, HOLDER)
                && w.markers[HOLDER].coordinator.is_some()
                && w.markers[HOME].coordinator.is_none());
        if home_reaches_holders && w.staged.contains(&HOME) && news {
            actions.push(Action::Gather);
        }
        if w.up[HOLDER]
            && w.staged.contains(&HOLDER)
            && w.markers[HOLDER].coordinator.is_none()
            && w.reaches(HOLDER, HOME)
            && !w.staged.contains(&HOME)
            && w.published().len() >= 2
        {
            actions.push(Action::ClearLeft);
        }
        if w.up[HOLDER] && w.reaches(HOLDER, HOME) && w.holder_heard != Heard::Fresh {
            actions.push(Action::Poll);
        }
        if w.ticks > 0 && (w.home_heard == Heard::Fresh || w.holder_heard == Heard::Fresh) {
            actions.push(Action::Age);
        }
        // A silence grows past the grace period only while the other is down or cut off.
        if w.home_heard == Heard::Stale && w.up[HOME] && !home_reaches_holders {
            actions.push(Action::Lose(HOME));
        }
        if w.holder_heard == Heard::Stale && w.up[HOLDER] && !w.reaches(HOLDER, HOME) {
            actions.push(Action::Lose(HOLDER));
        }
        if w.cuts > 0 && !w.cut {
            actions.push(Action::Cut);
        }
        if w.cut {
            actions.push(Action::Mend);
        }
    }

    fn next_state(&self, w: &World, action: Action) -> Option<World> {
        let mut w = w.clone();
        match action {
            Action::Step(c, step) => {
                let targets = w.markers[c].targets;
                let reached: BTreeSet<NodeId> = w
                    .staged
                    .iter()
                    .copied()
                    .filter(|&n| w.reaches(c, n))
                    .collect();
                let m = &mut w.markers[c];
                match step {
                    Step::Stage(n) => {
                        m.holders.insert(n);
                        w.staged.insert(n);
                    }
                    Step::Acknowledge => {
                        m.acknowledged = true;
                        m.staged_on = reached;
                    }
                    Step::Tile => m.tiled = true,
                    Step::Choose(pair) => m.targets = Some(pair),
                    Step::Place(t) => {
                        if w.replica[t].is_none() {
                            w.replica[t] = Some((Stage::Placed, targets?));
                        }
                    }
                    Step::Verify(t) => match w.replica[t] {
                        // Verification compares the manifest: another coordinator's copy is
                        // thrown away, to be placed again.
                        Some((Stage::Placed, set)) if Some(set) != targets => w.replica[t] = None,
                        Some((Stage::Placed, set)) => w.replica[t] = Some((Stage::Verified, set)),
                        _ => {}
                    },
                    Step::Publish(t) => {
                        if let Some((Stage::Verified, set)) = w.replica[t] {
                            w.replica[t] = Some((Stage::Published, set));
                        }
                    }
                    Step::Clear(n) => {
                        // The coordinator's own copy goes last; copies other nodes kept (a
                        // holder the home gave up on) go before it, as in the runtime.
                        if n == c {
                            let others: Vec<NodeId> = w
                                .staged
                                .iter()
                                .copied()
                                .filter(|&o| o != c && w.reaches(c, o))
                                .collect();
                            if let Some(&o) = others.first() {
                                w.staged.remove(&o);
                                if o == HOME || o == HOLDER {
                                    w.markers[o] = Markers::default();
                                }
                                return Some(w);
                            }
                        }
                        w.staged.remove(&n);
                        if n == HOME || n == HOLDER {
                            w.markers[n] = Markers::default();
                        }
                    }
                    Step::Wait(_) | Step::Done => return None,
                }
            }
            Action::TakeOver => {
                let m = &mut w.markers[HOLDER];
                m.coordinator = Some(HOLDER);
                m.acknowledged = true;
                m.staged_on = [HOME, HOLDER].into();
            }
            Action::Follow(c, coordinator) => w.markers[c].coordinator = Some(coordinator),
            Action::Trim(n) | Action::Sweep(n) => w.replica[n] = None,
            Action::Crash(n) => {
                w.up[n] = false;
                w.crashes -= 1;
            }
            Action::Restart(n) => {
                w.up[n] = true;
                // A new process has heard nothing yet.
                if n == HOME {
                    w.home_heard = Heard::Stale;
                }
                if n == HOLDER {
                    w.holder_heard = Heard::Stale;
                }
            }
            Action::Gather => {
                w.home_heard = Heard::Fresh;
                if w.reaches(HOME, HOLDER) {
                    // The holder is asked: it hears the home.
                    w.holder_heard = Heard::Fresh;
                    if let Some(c) = w.markers[HOLDER].coordinator {
                        if w.staged.contains(&HOLDER) {
                            w.markers[HOME].coordinator = Some(c);
                        }
                    }
                }
            }
            Action::Poll => w.holder_heard = Heard::Fresh,
            Action::ClearLeft => {
                w.staged.remove(&HOLDER);
                w.markers[HOLDER] = Markers::default();
            }
            Action::Age => {
                w.ticks -= 1;
                for h in [&mut w.home_heard, &mut w.holder_heard] {
                    if *h == Heard::Fresh {
                        *h = Heard::Stale;
                    }
                }
            }
            Action::Lose(n) => {
                if n == HOME {
                    w.home_heard = Heard::Lost;
                } else {
                    w.holder_heard = Heard::Lost;
                }
            }
            Action::Cut => {
                w.cut = true;
                w.cuts -= 1;
            }
            Action::Mend => w.cut = false,
        }
        Some(w)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("an acknowledged upload has two copies", |_, w: &World| {
                !w.markers.iter().any(|m| m.acknowledged) || w.copies() >= 2
            }),
            Property::always(
                "nothing published without two verified replicas in two domains",
                |_, w: &World| {
                    w.published().is_empty()
                        || (0..N).any(|a| {
                            (0..N).any(|b| {
                                DOMAINS[a] != DOMAINS[b]
                                    && [a, b].iter().all(|&n| {
                                        w.replica[n].is_some_and(|(s, _)| s >= Stage::Verified)
                                    })
                            })
                        })
                },
            ),
            Property::always(
                "without a partition, one coordinator at a time",
                |m: &Handovers, w: &World| w.cuts > 0 || w.cut || w.drivers(m.rule).len() < 2,
            ),
            Property::eventually(
                "published on exactly two nodes in two domains, home and holder staging cleared",
                |_, w: &World| {
                    let p = w.published();
                    p.len() == 2
                        && DOMAINS[p[0]] != DOMAINS[p[1]]
                        && !w.staged.contains(&HOME)
                        && !w.staged.contains(&HOLDER)
                },
            ),
            Property::sometimes("the holder takes over", |_, w: &World| {
                w.markers[HOLDER].coordinator == Some(HOLDER) && !w.published().is_empty()
            }),
            Property::sometimes("a home that comes back follows", |_, w: &World| {
                w.markers[HOME].coordinator == Some(HOLDER)
            }),
        ]
    }
}

fn check(rule: fn(&Handover) -> Coordination, cuts: u8) -> impl Checker<Handovers> {
    Handovers { rule, cuts }.checker().spawn_bfs().join()
}

#[test]
fn a_lost_home_is_taken_over_and_the_upload_published_exactly_twice() {
    let checker = check(coordination, 0);
    eprintln!(
        "handover model: {} states checked, {} unique",
        checker.state_count(),
        checker.unique_state_count()
    );
    checker.assert_properties();
}

#[test]
fn with_the_link_between_home_and_holder_cut_both_may_drive_but_two_replicas_remain() {
    let checker = check(coordination, 1);
    eprintln!(
        "handover model with a partition: {} states checked, {} unique",
        checker.state_count(),
        checker.unique_state_count()
    );
    assert!(
        checker
            .discovery("without a partition, one coordinator at a time")
            .is_none(),
        "the property excuses partitions"
    );
    for p in [
        "an acknowledged upload has two copies",
        "nothing published without two verified replicas in two domains",
        "published on exactly two nodes in two domains, home and holder staging cleared",
    ] {
        assert!(
            checker.discovery(p).is_none(),
            "{p}: {:?}",
            checker.discovery(p).map(|d| d.into_actions())
        );
    }
}

/// Takes over without recording it first.
fn unrecorded_takeover(h: &Handover) -> Coordination {
    match coordination(h) {
        Coordination::TakeOver => Coordination::Drive,
        c => c,
    }
}

/// A home that drives whatever another node recorded.
fn stubborn_home(h: &Handover) -> Coordination {
    if h.me == h.home {
        return coordination(&Handover {
            reported: None,
            recorded: None,
            ..h.clone()
        });
    }
    coordination(h)
}

#[test]
fn the_properties_catch_a_wrong_handover() {
    for (name, rule) in [
        (
            "unrecorded takeover",
            unrecorded_takeover as fn(&Handover) -> Coordination,
        ),
        ("stubborn home", stubborn_home),
    ] {
        let checker = check(rule, 0);
        assert!(
            checker
                .discovery("without a partition, one coordinator at a time")
                .is_some(),
            "{name} is caught"
        );
    }
}
