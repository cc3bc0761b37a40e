//! The takeover/release protocol of the canonical address, model checked: the real
//! `failover::Machine` of each of two frontends, driven through every interleaving of lost and
//! delayed heartbeats, a crash and restart, a stall (SIGSTOP), a partition between the
//! frontends, and a change of health, with the backends as witnesses.
//!
//! Checked exhaustively:
//! - fenced: two running frontends never both hold once each has heard the other's current
//!   heartbeat (so two holders last at most until a heartbeat gets through);
//! - settles: whenever nothing is left in flight or pending, exactly one running frontend
//!   holds the address if any running frontend is healthy, and none if none is;
//! - an unhealthy frontend never holds;
//! - and, as examples that the model is not vacuous, the other frontend does take over, and a
//!   partition settles with one holder.

use frontend::failover::{Action, Beat, Input, Machine, PeerView, Verdict};
use stateright::{Checker, Model, Property};

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Life {
    Running,
    /// SIGSTOPped: holds what it held, does nothing, answers no one.
    Stalled,
    /// Killed; its alias may still sit on its host, but it serves nobody.
    Crashed,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct World {
    m: [Machine; 2],
    life: [Life; 2],
    /// The latest heartbeat on its way to each frontend (heartbeats repeat, so only the
    /// latest matters).
    inbox: [Option<Beat>; 2],
    partitioned: bool,
    /// Faults still allowed, to keep the state space finite.
    crashes: u8,
    stalls: u8,
    partitions: u8,
    sickness: u8,
    /// Set if a frontend ever took the address while cut off from a peer that was running,
    /// healthy and holding it: the tie-breaker failed.
    stolen: bool,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Step {
    Deliver(usize),
    Lose(usize),
    /// Heartbeats are periodic: the current one is sent again.
    Repeat(usize),
    PeerSilent(usize),
    Witnesses(usize, Verdict),
    Crash(usize),
    Restart(usize),
    Stall(usize),
    Resume(usize),
    Partition,
    Heal,
    Health(usize, bool),
}

struct Failover;

fn other(i: usize) -> usize {
    1 - i
}

impl World {
    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        let j = other(i);
        let peer = &self.m[j];
        if self.partitioned
            && self.running(j)
            && peer.holding
            && peer.healthy
            && actions.iter().any(|a| matches!(a, Action::Take { .. }))
        {
            self.stolen = true;
        }
        for a in actions {
            if let Action::Send(b) = a {
                if !self.partitioned {
                    self.inbox[other(i)] = Some(b);
                }
            }
        }
    }

    fn running(&self, i: usize) -> bool {
        self.life[i] == Life::Running
    }

    fn running_holders(&self) -> usize {
        (0..2)
            .filter(|&i| self.running(i) && self.m[i].holding)
            .count()
    }

    /// What the witnesses truthfully say about `i`'s peer (a stalled one is not settled).
    fn truth(&self, i: usize) -> Verdict {
        let j = other(i);
        match self.life[j] {
            Life::Running => Verdict::Alive {
                holding: self.m[j].holding,
                healthy: self.m[j].healthy,
            },
            _ => Verdict::Silent,
        }
    }

    /// Nothing in flight, nothing pending, every running frontend's view of its peer settled
    /// (the peer's current heartbeat heard, or silence noticed when it cannot be heard), and
    /// the next heartbeat or silence, with the witnesses asked again, would change nothing.
    fn settled(&self) -> bool {
        if self.life.contains(&Life::Stalled) {
            return false;
        }
        (0..2).all(|i| {
            if !self.running(i) {
                return true;
            }
            let j = other(i);
            let m = &self.m[i];
            let reachable = self.running(j) && !self.partitioned;
            // The next periodic stimulus (the peer's heartbeat again, or its silence again),
            // answered truthfully by the witnesses, must change nothing.
            let stimulus = if reachable {
                Input::Heard(self.m[j].beat())
            } else {
                Input::PeerSilent
            };
            let mut again = m.clone();
            let mut acts = again.on(stimulus);
            if again.asking {
                acts.extend(again.on(Input::Witnesses(self.truth(i))));
            }
            let quiet = !acts
                .iter()
                .any(|a| matches!(a, Action::Take { .. } | Action::Release));
            self.inbox[i].is_none()
                && !m.asking
                && quiet
                && if reachable {
                    m.peer == PeerView::Heard(self.m[j].beat())
                } else {
                    m.peer == PeerView::Silent
                }
        })
    }
}

impl Model for Failover {
    type State = World;
    type Action = Step;

    fn init_states(&self) -> Vec<World> {
        let (a, sa) = Machine::start(0, true);
        let (b, sb) = Machine::start(1, true);
        let mut w = World {
            m: [a, b],
            life: [Life::Running; 2],
            inbox: [None, None],
            partitioned: false,
            crashes: 1,
            stalls: 1,
            partitions: 1,
            sickness: 1,
            stolen: false,
        };
        w.apply(0, sa);
        w.apply(1, sb);
        vec![w]
    }

    fn actions(&self, w: &World, steps: &mut Vec<Step>) {
        for i in 0..2 {
            let j = other(i);
            if w.inbox[i].is_some() {
                steps.push(Step::Lose(i));
                if w.running(i) {
                    steps.push(Step::Deliver(i));
                }
            }
            if w.running(i) && !w.partitioned && w.inbox[j] != Some(w.m[i].beat()) {
                steps.push(Step::Repeat(i));
            }
            // Silence is noticed, and while it lasts a frontend that holds nothing asks the
            // witnesses again every second.
            let m = &w.m[i];
            if w.running(i) && (m.peer != PeerView::Silent || (!m.holding && !m.asking)) {
                steps.push(Step::PeerSilent(i));
            }
            if w.running(i) && w.m[i].asking {
                // The backends see the peer as it is; a stalled peer may look either way
                // (it answers nothing, but its last answer may still be in flight).
                let alive = Verdict::Alive {
                    holding: w.m[j].holding,
                    healthy: w.m[j].healthy,
                };
                match w.life[j] {
                    Life::Running => steps.push(Step::Witnesses(i, alive)),
                    Life::Crashed => steps.push(Step::Witnesses(i, Verdict::Silent)),
                    Life::Stalled => {
                        steps.push(Step::Witnesses(i, Verdict::Silent));
                        steps.push(Step::Witnesses(i, alive));
                    }
                }
                steps.push(Step::Witnesses(i, Verdict::NoQuorum));
            }
            match w.life[i] {
                Life::Running if w.crashes > 0 => steps.push(Step::Crash(i)),
                Life::Crashed => steps.push(Step::Restart(i)),
                Life::Stalled => steps.push(Step::Resume(i)),
                _ => {}
            }
            if w.running(i) && w.stalls > 0 {
                steps.push(Step::Stall(i));
            }
            if w.running(i) && w.m[i].healthy && w.sickness > 0 {
                steps.push(Step::Health(i, false));
            }
            if w.running(i) && !w.m[i].healthy {
                steps.push(Step::Health(i, true)); // it recovers
            }
        }
        if w.partitioned {
            steps.push(Step::Heal);
        } else if w.partitions > 0 {
            steps.push(Step::Partition);
        }
    }

    fn next_state(&self, w: &World, step: Step) -> Option<World> {
        let mut w = w.clone();
        match step {
            Step::Deliver(i) => {
                let beat = w.inbox[i].take()?;
                let acts = w.m[i].on(Input::Heard(beat));
                w.apply(i, acts);
            }
            Step::Lose(i) => w.inbox[i] = None,
            Step::Repeat(i) => w.inbox[other(i)] = Some(w.m[i].beat()),
            Step::PeerSilent(i) => {
                let acts = w.m[i].on(Input::PeerSilent);
                w.apply(i, acts);
            }
            Step::Witnesses(i, v) => {
                let acts = w.m[i].on(Input::Witnesses(v));
                w.apply(i, acts);
            }
            Step::Crash(i) => {
                w.life[i] = Life::Crashed;
                w.crashes -= 1;
            }
            Step::Restart(i) => {
                let healthy = w.m[i].healthy;
                let (m, acts) = Machine::start(i as u8, healthy);
                w.m[i] = m;
                w.life[i] = Life::Running;
                w.apply(i, acts);
            }
            Step::Stall(i) => {
                w.life[i] = Life::Stalled;
                w.stalls -= 1;
            }
            Step::Resume(i) => w.life[i] = Life::Running,
            Step::Partition => {
                w.partitioned = true;
                w.partitions -= 1;
                w.inbox = [None, None];
            }
            Step::Heal => w.partitioned = false,
            Step::Health(i, h) => {
                if !h {
                    w.sickness -= 1;
                }
                let acts = w.m[i].on(Input::Health(h));
                w.apply(i, acts);
            }
        }
        Some(w)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("fenced", |_, w: &World| {
                !(w.running(0)
                    && w.running(1)
                    && w.m[0].holding
                    && w.m[1].holding
                    && w.m[0].peer == PeerView::Heard(w.m[1].beat())
                    && w.m[1].peer == PeerView::Heard(w.m[0].beat()))
            }),
            Property::always("settles on one holder", |_, w: &World| {
                if !w.settled() {
                    return true;
                }
                let healthy_running = (0..2).any(|i| w.running(i) && w.m[i].healthy);
                let holders = w.running_holders();
                match (healthy_running, w.partitioned) {
                    (false, _) => holders == 0,
                    (true, false) => holders == 1,
                    // Cut off from each other, each may still be holding what it took in the
                    // same instant before the cut: fenced when messages flow again.
                    (true, true) => holders >= 1,
                }
            }),
            Property::always("a partition alone moves nothing", |_, w: &World| !w.stolen),
            Property::always("an unhealthy frontend never holds", |_, w: &World| {
                (0..2).all(|i| !w.running(i) || !w.m[i].holding || w.m[i].healthy)
            }),
            Property::sometimes("the other frontend takes over", |_, w: &World| {
                w.running(1) && w.m[1].holding && w.life[0] == Life::Crashed
            }),
            Property::sometimes("a partition settles with one holder", |_, w: &World| {
                w.partitioned && w.settled() && w.running_holders() == 1
            }),
        ]
    }
}

#[test]
fn the_failover_protocol_is_safe_and_settles_in_every_interleaving() {
    let checker = Failover.checker().spawn_bfs().join();
    eprintln!(
        "failover model: {} states checked, {} unique",
        checker.state_count(),
        checker.unique_state_count()
    );
    checker.assert_properties();
    assert!(
        checker.unique_state_count() > 1000,
        "the model explores something"
    );
}
