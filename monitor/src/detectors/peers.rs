//! The other nodes, as this one sees them: each peer's monitor (`/ping`) or, failing that, its
//! backend (`/health`) must answer. A peer silent for [`SILENT_AFTER`] checks in a row is an
//! event on this node; its return is another.

use std::net::SocketAddr;
use std::time::Duration;

use cluster::worker::BoxFuture;
use cluster::{Component, EventKind, NodeConfig};

use crate::detector::{Detector, Findings, Look};
use floor::event_log::NewEvent;

pub const DEADLINE: Duration = Duration::from_secs(1);
/// Missed checks in a row before a peer is silent (a check a second).
pub const SILENT_AFTER: u32 = 3;

struct Peer {
    name: String,
    monitor: SocketAddr,
    backend: SocketAddr,
    missed: u32,
}

pub struct Peers {
    peers: Vec<Peer>,
    client: floor::Client,
}

impl Peers {
    /// Watches every node of `nodes` but `me`.
    pub fn new(nodes: &[NodeConfig], me: &str) -> Peers {
        Peers {
            peers: nodes
                .iter()
                .filter(|n| n.name != me)
                .map(|n| Peer {
                    name: n.name.clone(),
                    monitor: n.monitor_address(),
                    backend: n.address,
                    missed: 0,
                })
                .collect(),
            client: floor::Client::new(),
        }
    }
}

/// Asks the peer's monitor, then its backend; `Err` with both answers when neither answers.
async fn check(
    client: &floor::Client,
    monitor: SocketAddr,
    backend: SocketAddr,
) -> Result<(), String> {
    let m = match client.get_at(monitor, "/ping", DEADLINE).await {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    match client.get_at(backend, "/health", DEADLINE).await {
        Ok(_) => Ok(()),
        Err(b) => Err(format!(
            "monitor http://{monitor}/ping: {m}; backend http://{backend}/health: {b}"
        )),
    }
}

impl Detector for Peers {
    fn name(&self) -> String {
        "peers".into()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn budget(&self) -> Duration {
        3 * DEADLINE
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            if self.peers.is_empty() {
                return Ok(Look::Unavailable("this node has no peers".into()));
            }
            let mut set = tokio::task::JoinSet::new();
            for (i, p) in self.peers.iter().enumerate() {
                let (m, b) = (p.monitor, p.backend);
                let client = self.client.clone();
                set.spawn(async move { (i, check(&client, m, b).await) });
            }
            while let Some(done) = set.join_next().await {
                let (i, result) = done.map_err(|e| format!("a peer check failed: {e}"))?;
                let p = &mut self.peers[i];
                let key = format!("peer:{}", p.name);
                let component = Component::Peer {
                    peer: p.name.clone(),
                };
                match result {
                    Ok(()) => {
                        p.missed = 0;
                        found.clear(&key, || {
                            NewEvent::new(
                                component,
                                EventKind::Recovered,
                                format!("node {} answers again", p.name),
                            )
                        });
                    }
                    Err(why) => {
                        p.missed += 1;
                        if p.missed >= SILENT_AFTER {
                            found.report(
                                &key,
                                NewEvent::new(
                                    component,
                                    EventKind::PeerSilent,
                                    format!(
                                        "node {} has not answered for {} checks in a row",
                                        p.name, p.missed
                                    ),
                                )
                                .evidence(why),
                            );
                        }
                    }
                }
            }
            let silent: Vec<&str> = self
                .peers
                .iter()
                .filter(|p| p.missed >= SILENT_AFTER)
                .map(|p| p.name.as_str())
                .collect();
            Ok(Look::Done(if silent.is_empty() {
                format!("all {} peers answer", self.peers.len())
            } else {
                format!("silent: {}", silent.join(", "))
            }))
        })
    }
}
