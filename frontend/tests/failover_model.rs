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
//! - epochs come only from takeovers (no frontend has seen an epoch nobody took) and never
//!   wrap (none above `MAX_EPOCH`, no hold under epoch 0);
//! - and, as examples that the model is not vacuous, the other frontend does take over, and a
//!   partition settles with one holder.
//!
//! With a forger on the network: it sends heartbeats of its own (any holding, healthy, an
//! epoch above any seen, `u64::MAX`, just above `MAX_EPOCH`), and replays genuine ones it
//! recorded. The machine sees what the runtime's authentication (`heartbeat.rs`) lets
//! through: forged beats never; a replay only while its counter is above the last one its
//! receiver accepted, which after a restart (the receiver forgot its last counter) is the last
//! beat it heard before it died (the runtime drops that too once it is five minutes old; the
//! model lets it through at any time). A replay to a frontend that did not restart passes only
//! as the newest beat sent, which `Deliver` already is. The same properties hold. A second
//! check turns authentication off and finds the forger breaking the epochs, so they are not
//! vacuous; and the machine's own refusal of impossible epochs still keeps them from wrapping.

use frontend::failover::{Action, Beat, Input, Machine, PeerView, Verdict, MAX_EPOCH};
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
    /// The highest epoch any takeover used.
    max_taken: u64,
    /// A genuine heartbeat the forger recorded for each frontend, kept only while its counter
    /// is above the last one that frontend accepted (while a replay of it would pass).
    captured: [Option<Beat>; 2],
    /// Forged heartbeats that may still get through when authentication is off.
    forgeries: u8,
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
    /// The forger sends frontend i a genuine heartbeat it recorded.
    Replay(usize),
    /// The forger sends frontend i a heartbeat of its own, claiming to be the peer.
    Forge(usize, Forged),
}

/// What the forger claims, relative to what its target has seen.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Forged {
    /// "I hold it under a higher epoch": the holder would release.
    TookIt,
    /// "I hold nothing and cannot serve": the standby would ask the witnesses.
    GaveUp,
    /// "I hold nothing and can serve": a holder that is not preferred would hand it back.
    Free,
    /// An epoch that wrapped ours to 0, and one just above the ceiling.
    Epoch(u64),
}

struct Failover {
    /// Whether the runtime authenticates heartbeats (off only to show what a forger could do).
    authenticated: bool,
    /// Crashes, stalls, partitions and sickness allowed (each).
    faults: u8,
    /// Forged heartbeats that may get through when authentication is off.
    forgeries: u8,
}

fn other(i: usize) -> usize {
    1 - i
}

impl World {
    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        for a in &actions {
            if let Action::Take { epoch } = a {
                self.max_taken = self.max_taken.max(*epoch);
            }
        }
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

    /// Frontend i hears `beat`, as the authentication layer passed it.
    fn hear(&mut self, i: usize, beat: Beat) {
        let acts = self.m[i].on(Input::Heard(beat));
        self.apply(i, acts);
    }

    /// The forger's heartbeat to frontend i, claiming to be its peer.
    fn forged(&self, i: usize, what: Forged) -> Beat {
        let seen = self.m[i].seen;
        let (holding, epoch, healthy) = match what {
            Forged::TookIt => (true, seen + 1, true),
            Forged::GaveUp => (false, seen, false),
            Forged::Free => (false, seen, true),
            Forged::Epoch(e) => (true, e, true),
        };
        Beat {
            from: other(i) as u8,
            holding,
            epoch,
            healthy,
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
            crashes: self.faults,
            stalls: self.faults,
            partitions: self.faults,
            sickness: self.faults,
            stolen: false,
            max_taken: 0,
            captured: [None, None],
            forgeries: self.forgeries,
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
        // The forger: on the frontends' network, so on either side of a partition between
        // them.
        for i in 0..2 {
            if !w.running(i) {
                continue;
            }
            if w.captured[i].is_some() {
                steps.push(Step::Replay(i));
            }
            if !self.authenticated && w.forgeries == 0 {
                continue; // nothing more would get through
            }
            for what in [
                Forged::TookIt,
                Forged::GaveUp,
                Forged::Free,
                Forged::Epoch(u64::MAX),
                Forged::Epoch(MAX_EPOCH + 1),
            ] {
                steps.push(Step::Forge(i, what));
            }
        }
    }

    fn next_state(&self, w: &World, step: Step) -> Option<World> {
        let mut w = w.clone();
        match step {
            Step::Deliver(i) => {
                let beat = w.inbox[i].take()?;
                // Accepted, so its counter is now the last: anything captured before is older
                // and a replay of it would be dropped.
                w.captured[i] = None;
                w.hear(i, beat);
            }
            Step::Replay(i) => {
                let beat = w.captured[i].take()?;
                w.hear(i, beat);
            }
            Step::Forge(i, what) => {
                if self.authenticated {
                    return Some(w); // dropped: its tag is not the cluster secret's
                }
                w.forgeries -= 1;
                let beat = w.forged(i, what);
                w.hear(i, beat);
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
                // The forger recorded the last beat i heard; once i restarts and forgets the
                // counter it accepted, a replay of it passes (within the runtime's five
                // minutes).
                if let (None, PeerView::Heard(b)) = (w.captured[i], w.m[i].peer) {
                    w.captured[i] = Some(b);
                }
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
            Property::always("epochs come only from takeovers", |_, w: &World| {
                (0..2).all(|i| w.m[i].seen <= w.max_taken)
            }),
            Property::always("no epoch wraps", |_, w: &World| {
                (0..2).all(|i| {
                    let m = &w.m[i];
                    m.seen <= MAX_EPOCH && m.epoch <= m.seen && (!m.holding || m.epoch >= 1)
                })
            }),
            Property::sometimes(
                "a replay to a restarted frontend would pass",
                |_, w: &World| {
                    (0..2).any(|i| {
                        w.crashes == 0
                            && w.running(i)
                            && w.m[i].peer == PeerView::Unknown
                            && w.captured[i].is_some()
                    })
                },
            ),
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
    let checker = Failover {
        authenticated: true,
        faults: 1,
        forgeries: 0, // unused: none gets through
    }
    .checker()
    .spawn_bfs()
    .join();
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

/// The model is not vacuous against forgery: with authentication off, one forged heartbeat
/// gives a frontend an epoch nobody took (and with it the power to make a holder release).
/// Even then, the machine's own refusal of impossible epochs keeps every epoch from wrapping.
/// The forger alone, two of its beats getting through, no other fault: enough to show both,
/// in seconds.
#[test]
fn without_authentication_one_forged_heartbeat_breaks_the_epochs_but_none_wraps() {
    let checker = Failover {
        authenticated: false,
        faults: 0,
        forgeries: 2,
    }
    .checker()
    .spawn_bfs()
    .join();
    eprintln!(
        "failover model without authentication: {} unique states",
        checker.unique_state_count()
    );
    let path = checker
        .discovery("epochs come only from takeovers")
        .expect("a forged epoch is adopted when nothing authenticates heartbeats");
    assert!(
        path.into_actions()
            .iter()
            .any(|s| matches!(s, Step::Forge(_, Forged::TookIt))),
        "the forger's higher epoch did it"
    );
    checker.assert_no_discovery("no epoch wraps");
    checker.assert_no_discovery("an unhealthy frontend never holds");
}
