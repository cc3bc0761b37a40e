//! Who holds the canonical address: the decision of one frontend, as a plain state machine.
//!
//! The runtime (`holder.rs`) feeds it what happens — a heartbeat from the peer, the peer
//! silent for longer than the limit, the backends' verdict on the peer, its own health —
//! and carries out the actions it returns. The model check (`tests/failover_model.rs`)
//! drives the same type through every interleaving of crashes, stalls, lost messages and
//! partitions, so the code and the model cannot drift apart.
//!
//! The rules:
//! - A frontend starts holding nothing (it removes any alias left from before it died).
//! - Heartbeats carry `(holding, epoch, healthy)`. Two holders that hear each other keep the
//!   higher epoch, then the preferred frontend (`me = 0`): the other releases at once.
//! - The preferred frontend takes the address when the peer holds nothing; the other one only
//!   when the peer cannot serve (unhealthy) — or is gone.
//! - No takeover is decided alone: the frontend asks the backends (witnesses), and takes the
//!   address only when a majority of them cannot reach the peer, or reach it and find it
//!   holding nothing it should defer to. A partition between the two frontends alone
//!   therefore moves nothing, and a stale view of the peer is never acted on.
//! - Every takeover uses an epoch above any it has seen, so a holder that stalled and wakes up
//!   is fenced by the first heartbeat it receives.
//! - A holder that becomes unhealthy releases; a holder whose preferred peer is back and
//!   healthy hands the address back.
//! - Epochs never wrap: a heartbeat claiming an epoch above [`MAX_EPOCH`] is refused, and no
//!   takeover goes above it.
//!
//! Only heartbeats that authenticated reach the machine (`heartbeat.rs` drops the rest), so
//! `Input::Heard` is always the peer's own word, if perhaps an old one.

use serde::{Deserialize, Serialize};

/// The highest epoch a hold can have. Every takeover waits for a witness round, so even one
/// takeover every 100 ms would take about 890 000 years to get here: a beat above it is damage
/// or forgery. Refusing it keeps room above every epoch seen, which fencing needs (a takeover
/// uses an epoch above any seen; at `u64::MAX` there would be none, and `+ 1` would wrap to 0).
/// It is also below 2^53, so `/failover` readers in JavaScript see it exactly.
pub const MAX_EPOCH: u64 = 1 << 48;

/// What a frontend says about itself, several times a second.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// 0 for the preferred frontend, 1 for the other.
    pub from: u8,
    pub holding: bool,
    /// The epoch of its hold (or the highest it has seen, when not holding).
    pub epoch: u64,
    pub healthy: bool,
}

/// What a frontend knows of its peer.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, Serialize)]
#[serde(tag = "peer", rename_all = "snake_case")]
pub enum PeerView {
    Unknown,
    Heard(Beat),
    /// No heartbeat for longer than the limit.
    Silent,
}

/// The backends' answer about the peer, by majority.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A majority could not reach it.
    Silent,
    /// A majority reached it, and it said this.
    Alive { holding: bool, healthy: bool },
    /// Too few backends answered to decide anything.
    NoQuorum,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Input {
    Heard(Beat),
    PeerSilent,
    Witnesses(Verdict),
    Health(bool),
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Action {
    /// Take the address (add the alias, announce it) under this epoch.
    Take { epoch: u64 },
    /// Give it up (remove the alias).
    Release,
    /// Ask the backends about the peer; answer with `Input::Witnesses`.
    AskWitnesses,
    /// Tell the peer at once (beats are also sent periodically).
    Send(Beat),
}

/// One frontend's view and decision.
#[derive(Debug, Clone, Hash, PartialEq, Eq, Serialize)]
pub struct Machine {
    pub me: u8,
    pub healthy: bool,
    pub holding: bool,
    /// The epoch of the current hold, when holding.
    pub epoch: u64,
    /// The highest epoch seen anywhere.
    pub seen: u64,
    pub peer: PeerView,
    /// Waiting for the witnesses' verdict.
    pub asking: bool,
}

impl Machine {
    /// A frontend that has just started: it holds nothing, whatever it held before.
    pub fn start(me: u8, healthy: bool) -> (Machine, Vec<Action>) {
        let m = Machine {
            me,
            healthy,
            holding: false,
            epoch: 0,
            seen: 0,
            peer: PeerView::Unknown,
            asking: false,
        };
        let beat = m.beat();
        (m, vec![Action::Release, Action::Send(beat)])
    }

    pub fn beat(&self) -> Beat {
        Beat {
            from: self.me,
            holding: self.holding,
            epoch: if self.holding { self.epoch } else { self.seen },
            healthy: self.healthy,
        }
    }

    fn preferred(&self) -> bool {
        self.me == 0
    }

    fn take(&mut self) -> Vec<Action> {
        // `seen` never exceeds MAX_EPOCH (beats above it are refused), so this always has a
        // next epoch; checked all the same, so that no path can wrap to 0.
        let Some(next) = self.seen.checked_add(1).filter(|e| *e <= MAX_EPOCH) else {
            return Vec::new();
        };
        self.seen = next;
        self.epoch = next;
        self.holding = true;
        vec![
            Action::Take { epoch: self.epoch },
            Action::Send(self.beat()),
        ]
    }

    fn release(&mut self) -> Vec<Action> {
        self.holding = false;
        vec![Action::Release, Action::Send(self.beat())]
    }

    /// Every takeover is decided on the backends' word, never on a heartbeat alone: a view of
    /// the peer may be stale by the time it is acted on.
    fn ask(&mut self) -> Vec<Action> {
        if self.asking {
            return Vec::new();
        }
        self.asking = true;
        vec![Action::AskWitnesses]
    }

    /// Whether this frontend, not holding, should take the address from a peer that holds
    /// nothing and is in the given health.
    fn should_take_from(&self, peer_healthy: bool) -> bool {
        self.healthy && !self.holding && (self.preferred() || !peer_healthy)
    }

    pub fn on(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Heard(b) if b.from == self.me => Vec::new(),
            // An impossible epoch is not heard at all: adopting it would leave no epoch to
            // fence with.
            Input::Heard(b) if b.epoch > MAX_EPOCH => Vec::new(),
            Input::Heard(b) => {
                self.seen = self.seen.max(b.epoch);
                self.peer = PeerView::Heard(b);
                if self.holding && b.holding {
                    let peer_wins =
                        b.epoch > self.epoch || (b.epoch == self.epoch && b.from < self.me);
                    if peer_wins {
                        return self.release();
                    }
                    // It will hear us and release; say so now.
                    return vec![Action::Send(self.beat())];
                }
                if self.holding && !self.preferred() && !b.holding && b.healthy {
                    // The preferred frontend is back and can serve: hand the address back.
                    return self.release();
                }
                if !b.holding && self.should_take_from(b.healthy) {
                    return self.ask();
                }
                Vec::new()
            }
            Input::PeerSilent => {
                self.peer = PeerView::Silent;
                if !self.holding && self.healthy {
                    return self.ask();
                }
                Vec::new()
            }
            Input::Witnesses(verdict) => {
                self.asking = false;
                if self.holding || !self.healthy {
                    return Vec::new();
                }
                match verdict {
                    Verdict::Silent => self.take(),
                    Verdict::Alive {
                        holding: false,
                        healthy,
                    } if self.should_take_from(healthy) => self.take(),
                    _ => Vec::new(),
                }
            }
            Input::Health(healthy) => {
                let was = self.healthy;
                self.healthy = healthy;
                if self.holding && !healthy {
                    return self.release();
                }
                let mut actions = vec![Action::Send(self.beat())];
                if healthy && !was && !self.holding {
                    let ask = match self.peer {
                        PeerView::Heard(b) => !b.holding && self.should_take_from(b.healthy),
                        PeerView::Silent | PeerView::Unknown => true,
                    };
                    if ask {
                        actions.extend(self.ask());
                    }
                }
                actions
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two frontends after the preferred one, a, took the address.
    fn a_holding() -> (Machine, Machine) {
        let (mut a, _) = Machine::start(0, true);
        let (b, _) = Machine::start(1, true);
        a.on(Input::Heard(b.beat()));
        a.on(Input::Witnesses(Verdict::Alive {
            holding: false,
            healthy: true,
        }));
        assert!(a.holding);
        (a, b)
    }

    #[test]
    fn the_preferred_frontend_takes_the_address_and_the_other_defers() {
        let (mut a, _) = Machine::start(0, true);
        let (mut b, _) = Machine::start(1, true);
        assert!(b.on(Input::Heard(a.beat())).is_empty(), "b waits for a");
        assert_eq!(a.on(Input::Heard(b.beat())), [Action::AskWitnesses]);
        let free = Verdict::Alive {
            holding: false,
            healthy: true,
        };
        assert_eq!(a.on(Input::Witnesses(free))[0], Action::Take { epoch: 1 });
        assert!(b.on(Input::Heard(a.beat())).is_empty());
        assert!(a.holding && !b.holding);
    }

    #[test]
    fn a_silent_peer_is_replaced_only_on_the_witnesses_word() {
        let (mut a, mut b) = a_holding();
        b.on(Input::Heard(a.beat()));
        assert_eq!(b.on(Input::PeerSilent), [Action::AskWitnesses]);
        // A partition between the frontends only: the backends still see a holding.
        let alive = Verdict::Alive {
            holding: true,
            healthy: true,
        };
        assert!(b.on(Input::Witnesses(alive)).is_empty());
        assert_eq!(b.on(Input::PeerSilent), [Action::AskWitnesses]);
        assert!(b.on(Input::Witnesses(Verdict::NoQuorum)).is_empty());
        b.on(Input::PeerSilent);
        assert_eq!(
            b.on(Input::Witnesses(Verdict::Silent))[0],
            Action::Take { epoch: 2 }
        );
        // a was only stalled: the first beat it hears fences it.
        assert_eq!(a.on(Input::Heard(b.beat()))[0], Action::Release);
        assert!(!a.holding && b.holding);
        // a is healthy and preferred: b hands the address back, and a takes it.
        assert_eq!(b.on(Input::Heard(a.beat()))[0], Action::Release);
        assert_eq!(a.on(Input::Heard(b.beat())), [Action::AskWitnesses]);
        let free = Verdict::Alive {
            holding: false,
            healthy: true,
        };
        assert_eq!(a.on(Input::Witnesses(free))[0], Action::Take { epoch: 3 });
    }

    #[test]
    fn an_epoch_from_the_peer_never_wraps_ours() {
        for claimed in [u64::MAX, u64::MAX - 1, MAX_EPOCH + 1] {
            let (mut a, mut b) = a_holding();
            let before = (a.clone(), b.clone());
            let forged = Beat {
                from: 1,
                holding: true,
                epoch: claimed,
                healthy: true,
            };
            assert!(a.on(Input::Heard(forged)).is_empty(), "epoch {claimed}");
            assert_eq!(a, before.0, "the holder ignores epoch {claimed}");
            let mut from_a = forged;
            from_a.from = 0;
            from_a.holding = false;
            assert!(b.on(Input::Heard(from_a)).is_empty(), "epoch {claimed}");
            assert_eq!(b, before.1, "the standby ignores epoch {claimed}");
        }
    }

    #[test]
    fn the_highest_epoch_is_taken_once_and_never_wrapped() {
        let (mut b, _) = Machine::start(1, true);
        let top = Beat {
            from: 0,
            holding: false,
            epoch: MAX_EPOCH - 1,
            healthy: false,
        };
        assert_eq!(b.on(Input::Heard(top)), [Action::AskWitnesses]);
        let sick = Verdict::Alive {
            holding: false,
            healthy: false,
        };
        assert_eq!(
            b.on(Input::Witnesses(sick))[0],
            Action::Take { epoch: MAX_EPOCH }
        );
        // Released and asked again at the ceiling: no epoch is left above it, so it does not
        // take (rather than take epoch 0, which every peer would lose to nothing).
        b.on(Input::Health(false));
        b.on(Input::Health(true));
        assert!(!b.holding);
        assert_eq!(b.seen, MAX_EPOCH);
        assert!(b.asking, "the peer is still sick: it asks the witnesses");
        assert!(b.on(Input::Witnesses(Verdict::Silent)).is_empty());
        assert!(!b.holding && b.seen == MAX_EPOCH && b.epoch == MAX_EPOCH);
    }

    #[test]
    fn an_unhealthy_holder_lets_go() {
        let (mut a, mut b) = a_holding();
        assert_eq!(a.on(Input::Health(false))[0], Action::Release);
        assert_eq!(b.on(Input::Heard(a.beat())), [Action::AskWitnesses]);
        let sick = Verdict::Alive {
            holding: false,
            healthy: false,
        };
        assert_eq!(b.on(Input::Witnesses(sick))[0], Action::Take { epoch: 2 });
    }
}
