//! The runtime of the failover state machine: heartbeats over UDP to the peer frontend (every
//! 100 ms, on the frontend's own address), silence noticed after 400 ms, the backends asked as
//! witnesses, the frontend's own health (it can serve only while it reaches some backend), and
//! the address taken and released as the machine decides. One worker, one tick every 25 ms.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::worker::{BoxFuture, Worker, WorkerState};
use serde::Deserialize;

use crate::address::Address;
use crate::failover::{Action, Beat, Input, Machine, Verdict};
use crate::table::Table;

pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// No heartbeat for this long: the peer is silent (four heartbeats lost).
pub const SILENCE: Duration = Duration::from_millis(400);
/// While the peer is silent and this frontend holds nothing, the witnesses are asked again
/// this often.
pub const ASK_AGAIN: Duration = Duration::from_millis(500);
/// A witness that has not answered by then does not count.
pub const WITNESS_DEADLINE: Duration = Duration::from_millis(400);
const TICK: Duration = Duration::from_millis(25);
/// How often a failed take of the address is tried again.
const RETAKE: Duration = Duration::from_millis(100);

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
}

pub type Shared = Arc<State>;

pub struct Holder {
    machine: Shared,
    address: Address,
    socket: tokio::net::UdpSocket,
    peer: Option<(String, SocketAddr)>,
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
}

impl Holder {
    /// `peer` is the other frontend (name, own address), `backends` the origins of every
    /// backend (the witnesses). The UDP socket is bound on this frontend's own address.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        me: u8,
        socket: tokio::net::UdpSocket,
        peer: Option<(String, SocketAddr)>,
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
        });
        let holder = Holder {
            machine: shared.clone(),
            address,
            socket,
            peer,
            backends,
            client,
            table,
            last_heard: Instant::now(),
            last_sent: Instant::now() - HEARTBEAT,
            last_asked: None,
            last_take_try: None,
            take_failing: false,
            log: Vec::new(),
            name: name.to_string(),
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
        if let Some((_, peer)) = &self.peer {
            let bytes = serde_json::to_vec(&beat).expect("plain data");
            // A lost heartbeat is what heartbeats are for: the next one follows.
            let _ = self.socket.send_to(&bytes, peer).await;
        }
        self.last_sent = Instant::now();
    }

    /// The backends' majority view of the peer.
    async fn witnesses(&self) -> Verdict {
        let Some((peer, _)) = &self.peer else {
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

    async fn tick(&mut self) {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = self.socket.try_recv_from(&mut buf) {
            let from_peer = self.peer.as_ref().is_some_and(|(_, p)| p.ip() == from.ip());
            if let (true, Ok(beat)) = (from_peer, serde_json::from_slice::<Beat>(&buf[..n])) {
                self.last_heard = Instant::now();
                let acts = self.feed(Input::Heard(beat));
                self.perform(acts).await;
            }
        }
        let healthy = self.table.backends().iter().any(|b| b.up);
        if healthy != self.machine().healthy {
            let acts = self.feed(Input::Health(healthy));
            self.perform(acts).await;
        }
        let (holding, asking, silent_view) = {
            let m = self.machine();
            (
                m.holding,
                m.asking,
                m.peer == crate::failover::PeerView::Silent,
            )
        };
        let quiet_for = self.last_heard.elapsed();
        let due_again = self.last_asked.is_none_or(|t| t.elapsed() >= ASK_AGAIN);
        if quiet_for >= SILENCE && (!silent_view || (!holding && !asking && due_again)) {
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
        if self.last_sent.elapsed() >= HEARTBEAT {
            let beat = self.machine().beat();
            self.send(beat).await;
        }
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
