//! The runtime of the failover state machine: heartbeats over UDP to the peer frontend (on the
//! frontend's own address), the peer's silence noticed, the backends asked as witnesses, the
//! frontend's own health (it can serve only while it reaches some backend), and the address
//! taken and released as the machine decides. One worker, one tick every 25 ms.
//!
//! The holder beats every 100 ms and is silent after 350 ms (three beats and a half lost):
//! its silence is what moves the address. A frontend standing by beats once a second and is
//! silent after 3.5 s: its silence moves nothing (the holder keeps the address whatever the
//! standby does), so it costs the network a tenth. Every change of state is sent at once, so
//! a hand-back or a takeover is never held up by the slower beat. Which limit applies is read
//! from the peer's last beat: it says whether the peer holds.
//!
//! Heartbeats are authenticated with the cluster secret (`heartbeat.rs`); what does not
//! authenticate never reaches the machine, is counted by reason in `/failover`, and is logged
//! at most once every [`DROP_LOG_EVERY`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::worker::{BoxFuture, Worker, WorkerState};
use serde::Deserialize;

use crate::address::Address;
use crate::failover::{Action, Beat, Input, Machine, PeerView, Verdict};
use crate::heartbeat::{self, Dropped, Drops, Link};
use crate::table::Table;

/// How often the holder beats.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// How often a frontend that holds nothing beats.
pub const STANDBY_HEARTBEAT: Duration = Duration::from_secs(1);
/// No heartbeat from a holding peer for this long: the peer is silent.
pub const SILENCE: Duration = Duration::from_millis(350);
/// No heartbeat from a peer that said it holds nothing (or said nothing yet) for this long.
pub const STANDBY_SILENCE: Duration = Duration::from_millis(3_500);
/// While the peer is silent and this frontend holds nothing, the witnesses are asked again
/// this often.
pub const ASK_AGAIN: Duration = Duration::from_millis(500);
/// A witness that has not answered by then does not count.
pub const WITNESS_DEADLINE: Duration = Duration::from_millis(400);
const TICK: Duration = Duration::from_millis(25);
/// How often a failed take of the address is tried again.
const RETAKE: Duration = Duration::from_millis(100);
/// At most one log line about dropped heartbeats this often: a forger sending thousands a
/// second must not fill the log (they are all counted in `/failover`).
pub const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// What a backend says about a frontend it was asked to look at.
#[derive(Debug, Deserialize)]
pub struct WitnessAnswer {
    pub reachable: bool,
    #[serde(default)]
    pub holding: bool,
    #[serde(default)]
    pub healthy: bool,
}

/// What `/failover` shows: the machine, and how the witnesses were last asked.
#[derive(Debug)]
pub struct State {
    pub machine: Mutex<Machine>,
    pub witness_rounds: std::sync::atomic::AtomicU64,
    pub last_verdict: Mutex<Option<Verdict>>,
    /// Datagrams on the heartbeat port that never reached the machine, by reason.
    pub dropped: Drops,
}

pub type Shared = Arc<State>;

pub struct Holder {
    machine: Shared,
    address: Address,
    socket: tokio::net::UdpSocket,
    /// The peer and the heartbeats with it; none when the cluster has one frontend.
    link: Option<Link>,
    backends: Vec<String>,
    client: floor::Client,
    table: Arc<Table>,
    last_heard: Instant,
    last_sent: Instant,
    last_asked: Option<Instant>,
    last_take_try: Option<Instant>,
    take_failing: bool,
    log: Vec<String>,
    name: String,
    /// When dropped heartbeats were last logged, and how many were dropped since.
    last_drop_line: Option<Instant>,
    drops_unsaid: u64,
    last_drop: Option<(Dropped, SocketAddr)>,
}

impl Holder {
    /// `link` holds the other frontend (name, own address) and the cluster secret,
    /// `backends` the origins of every backend (the witnesses). The UDP socket is bound on
    /// this frontend's own address.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        me: u8,
        socket: tokio::net::UdpSocket,
        link: Option<Link>,
        backends: Vec<String>,
        address: Address,
        client: floor::Client,
        table: Arc<Table>,
    ) -> (Holder, Shared) {
        let (machine, _) = Machine::start(me, false);
        let shared = Arc::new(State {
            machine: Mutex::new(machine),
            witness_rounds: Default::default(),
            last_verdict: Mutex::new(None),
            dropped: Drops::default(),
        });
        let holder = Holder {
            machine: shared.clone(),
            address,
            socket,
            link,
            backends,
            client,
            table,
            last_heard: Instant::now(),
            last_sent: Instant::now() - STANDBY_HEARTBEAT,
            last_asked: None,
            last_take_try: None,
            take_failing: false,
            log: Vec::new(),
            name: name.to_string(),
            last_drop_line: None,
            drops_unsaid: 0,
            last_drop: None,
        };
        (holder, shared)
    }

    /// Removes an alias left by an earlier run of this frontend (killed while holding).
    pub async fn release_leftover(&mut self) {
        if let Err(e) = self.address.release().await {
            self.say(format!("could not remove a leftover alias: {e}"));
        }
    }

    fn machine(&self) -> std::sync::MutexGuard<'_, Machine> {
        self.machine
            .machine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn feed(&self, input: Input) -> Vec<Action> {
        self.machine().on(input)
    }

    async fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Take { epoch } => {
                    let what = self.address.describe();
                    match self.address.take().await {
                        Ok(()) => self.say(format!(
                            "took the canonical address ({what}), epoch {epoch}"
                        )),
                        Err(e) => self.say(format!("could not take the canonical address: {e}")),
                    }
                }
                Action::Release => {
                    if let Err(e) = self.address.release().await {
                        self.say(format!("could not release the canonical address: {e}"));
                    }
                }
                Action::Send(beat) => self.send(beat).await,
                Action::AskWitnesses => {} // the machine's `asking` flag; see `tick`
            }
        }
    }

    fn say(&mut self, line: String) {
        println!("frontend {}: {line}", self.name);
        self.log.push(line);
        if self.log.len() > 20 {
            self.log.remove(0);
        }
    }

    async fn send(&mut self, beat: Beat) {
        if let Some(link) = &mut self.link {
            let bytes = link.seal(&beat, heartbeat::now_ns());
            // A lost heartbeat is what heartbeats are for: the next one follows.
            let _ = self.socket.send_to(&bytes, link.peer_addr()).await;
        }
        self.last_sent = Instant::now();
    }

    /// The backends' majority view of the peer.
    async fn witnesses(&self) -> Verdict {
        let Some(peer) = self.link.as_ref().map(Link::peer) else {
            return Verdict::Silent; // no peer configured: nobody to defer to
        };
        let asks = self.backends.iter().map(|origin| {
            let url = format!("{origin}/witness/{peer}");
            let client = self.client.clone();
            async move {
                client
                    .get_json::<WitnessAnswer>(&url, WITNESS_DEADLINE, floor::client::MAX_ANSWER)
                    .await
            }
        });
        let answers: Vec<WitnessAnswer> =
            futures_join_all(asks).await.into_iter().flatten().collect();
        let majority = self.backends.len() / 2 + 1;
        let silent = answers.iter().filter(|a| !a.reachable).count();
        let alive: Vec<_> = answers.iter().filter(|a| a.reachable).collect();
        if silent >= majority {
            Verdict::Silent
        } else if alive.len() >= majority {
            Verdict::Alive {
                holding: alive.iter().any(|a| a.holding),
                healthy: alive.iter().filter(|a| a.healthy).count() >= majority,
            }
        } else {
            Verdict::NoQuorum
        }
    }

    /// Counts a dropped datagram, and says so when the last line is old enough.
    fn dropped(&mut self, why: Dropped, from: SocketAddr) {
        self.machine.dropped.count(why);
        self.drops_unsaid += 1;
        self.last_drop = Some((why, from));
        self.say_drops();
    }

    fn say_drops(&mut self) {
        let due = self
            .last_drop_line
            .is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY);
        let Some((why, from)) = self.last_drop else {
            return;
        };
        if due && self.drops_unsaid > 0 {
            tracing::warn!(
                frontend = %self.name,
                from = %from,
                reason = why.key(),
                dropped = self.drops_unsaid,
                "heartbeats dropped: {why} (the last of them; counts by reason in /failover)"
            );
            self.last_drop_line = Some(Instant::now());
            self.drops_unsaid = 0;
        }
    }

    async fn tick(&mut self) {
        // One byte more than a heartbeat may have: a datagram that fills it was larger.
        let mut buf = [0u8; heartbeat::MAX_PACKET + 1];
        while let Ok((n, from)) = self.socket.try_recv_from(&mut buf) {
            let Some(link) = self.link.as_mut() else {
                continue; // no peer: nothing on this port is for us
            };
            match link.open(&buf[..n], from, heartbeat::now_ns()) {
                Ok(beat) => {
                    self.last_heard = Instant::now();
                    let acts = self.feed(Input::Heard(beat));
                    self.perform(acts).await;
                }
                Err(why) => self.dropped(why, from),
            }
        }
        self.say_drops();
        let healthy = self.table.backends().iter().any(|b| b.up);
        if healthy != self.machine().healthy {
            let acts = self.feed(Input::Health(healthy));
            self.perform(acts).await;
        }
        let (holding, asking, silent_view) = {
            let m = self.machine();
            (m.holding, m.asking, m.peer == PeerView::Silent)
        };
        let due_again = self.last_asked.is_none_or(|t| t.elapsed() >= ASK_AGAIN);
        // A peer already silent stays so until it is heard; while it is, and nobody holds,
        // the witnesses are asked again.
        let newly_silent =
            !silent_view && self.last_heard.elapsed() >= silence_limit(&self.machine().peer);
        if newly_silent || (silent_view && !holding && !asking && due_again) {
            let acts = self.feed(Input::PeerSilent);
            self.perform(acts).await;
        }
        if self.machine().asking {
            self.last_asked = Some(Instant::now());
            let verdict = self.witnesses().await;
            self.machine
                .witness_rounds
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *self
                .machine
                .last_verdict
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(verdict);
            let acts = self.feed(Input::Witnesses(verdict));
            self.perform(acts).await;
        }
        // A take that failed (the address still bound by the peer, `ip` refused) is tried
        // again: the machine already answers for the address, so it must be served.
        let retry_due = self.last_take_try.is_none_or(|t| t.elapsed() >= RETAKE);
        if self.machine().holding && !self.address.is_held() && retry_due {
            self.last_take_try = Some(Instant::now());
            match self.address.take().await {
                Ok(()) => {
                    self.take_failing = false;
                    let what = self.address.describe();
                    self.say(format!("took the canonical address ({what}) on a retry"));
                }
                // Said once, not every retry.
                Err(e) if !self.take_failing => {
                    self.take_failing = true;
                    self.say(format!(
                        "cannot take the canonical address yet, trying again: {e}"
                    ));
                }
                Err(_) => {}
            }
        }
        let beat = self.machine().beat();
        if self.last_sent.elapsed() >= beat_every(&beat) {
            self.send(beat).await;
        }
    }
}

/// How often a frontend saying `beat` beats.
fn beat_every(beat: &Beat) -> Duration {
    if beat.holding {
        HEARTBEAT
    } else {
        STANDBY_HEARTBEAT
    }
}

/// How long the peer may say nothing before it is silent: three beats and a half at the pace
/// its last beat promised. A peer never heard is held to the standby's pace (a frontend that
/// starts asks the witnesses at once anyway, as soon as it can serve).
fn silence_limit(peer: &PeerView) -> Duration {
    match peer {
        PeerView::Heard(b) if b.holding => SILENCE,
        _ => STANDBY_SILENCE,
    }
}

/// Runs every future at once and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

impl Worker for Holder {
    fn name(&self) -> String {
        "canonical address".into()
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            self.tick().await;
            Ok(WorkerState::Throttled(TICK))
        })
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(TICK))
    }

    fn progress(&self) -> String {
        let m = self.machine();
        let state = if m.holding {
            format!("holding {} (epoch {})", self.address.describe(), m.epoch)
        } else {
            "standing by".into()
        };
        match self.log.last() {
            Some(last) => format!("{state}; last: {last}"),
            None => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(holding: bool) -> Beat {
        Beat {
            from: 0,
            holding,
            epoch: 1,
            healthy: true,
        }
    }

    #[test]
    fn the_holder_beats_often_and_is_missed_soon_the_standby_neither() {
        assert_eq!(beat_every(&beat(true)), HEARTBEAT);
        assert_eq!(beat_every(&beat(false)), STANDBY_HEARTBEAT);
        assert_eq!(silence_limit(&PeerView::Heard(beat(true))), SILENCE);
        assert_eq!(
            silence_limit(&PeerView::Heard(beat(false))),
            STANDBY_SILENCE
        );
        assert_eq!(silence_limit(&PeerView::Unknown), STANDBY_SILENCE);
        // Each limit outlasts three beats at the pace it watches, so no single lost beat (nor
        // two) makes a peer silent; and the standby's pace is never mistaken for silence.
        assert!(SILENCE > HEARTBEAT * 3);
        assert!(STANDBY_SILENCE > STANDBY_HEARTBEAT * 3);
    }
}
