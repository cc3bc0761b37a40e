//! Power-cycling a silent node: a node that stays silent past `power_cycle_after_seconds` is
//! switched off and on through its remote power switch over SSH (its `[node.power_switch]`),
//! by its watcher alone (the next node in the configuration that answers: the rule the
//! diagnosis uses for its ticket), at most once an hour per node, and each attempt is an event
//! with its outcome. If the node stays silent, the diagnosis makes it a ticket.
//!
//! It never cycles a node without a switch configured, never one another node watches, and
//! never more often than [`ONCE_PER`], even across restarts (the last attempt is kept in the
//! event log's state).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use cluster::worker::BoxFuture;
use cluster::{ClusterConfig, Component, EventKind, PowerSwitch};
use floor::event_log::NewEvent;

use crate::detector::{Detector, Findings, Look};

/// At most one power cycle of a node per this long.
pub const ONCE_PER: Duration = Duration::from_secs(3600);
/// A switch must answer and finish within this.
const SSH_DEADLINE: Duration = Duration::from_secs(30);

pub struct PowerCycler {
    cluster: ClusterConfig,
    me: String,
    after: Duration,
    /// Peers silent now, since when (as this monitor saw them go).
    silent_since: BTreeMap<String, Instant>,
}

impl PowerCycler {
    pub fn new(cluster: &ClusterConfig, me: &str) -> PowerCycler {
        PowerCycler {
            cluster: cluster.clone(),
            me: me.to_string(),
            after: Duration::from_secs(cluster.repair.power_cycle_after_seconds),
            silent_since: BTreeMap::new(),
        }
    }

    fn key(peer: &str) -> String {
        format!("power_cycle:{peer}")
    }
}

/// What the switch said: its exit status and output, or why it could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("cannot reach the power switch at {host}: {why}")]
    Connect { host: String, why: String },
    #[error("the power switch at {host} offered host key {fingerprint}, which {known_hosts} does not name")]
    UnknownHostKey {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("the power switch at {host} refused {user}'s key {key}: {why}")]
    Auth {
        host: String,
        user: String,
        key: String,
        why: String,
    },
    #[error("running {command:?} on the power switch at {host}: {why}")]
    Run {
        host: String,
        command: String,
        why: String,
    },
}

/// How a command on the switch ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: i32,
    pub output: String,
    pub fingerprint: String,
}

/// Runs the switch's command over SSH (blocking: call it off the async threads).
pub fn cycle(switch: &PowerSwitch) -> Result<Outcome, SwitchError> {
    let host = switch.host.clone();
    let connect = |why: String| SwitchError::Connect {
        host: host.clone(),
        why,
    };
    let addr = switch
        .host
        .to_socket_addrs()
        .map_err(|e| connect(e.to_string()))?
        .next()
        .ok_or_else(|| connect("the name has no address".into()))?;
    let tcp =
        TcpStream::connect_timeout(&addr, SSH_DEADLINE).map_err(|e| connect(e.to_string()))?;
    let mut session = ssh2::Session::new().map_err(|e| connect(e.to_string()))?;
    session.set_tcp_stream(tcp);
    session.set_timeout(SSH_DEADLINE.as_millis() as u32);
    session.handshake().map_err(|e| connect(e.to_string()))?;
    let fingerprint = session
        .host_key_hash(ssh2::HashType::Sha256)
        .map(|h| format!("SHA256:{}", hex(h)))
        .unwrap_or_else(|| "unknown".into());
    if let Some(path) = &switch.known_hosts {
        let unknown = |why: &str| SwitchError::UnknownHostKey {
            host: host.clone(),
            fingerprint: fingerprint.clone(),
            known_hosts: format!("{} ({why})", path.display()),
        };
        let mut known = session.known_hosts().map_err(|e| connect(e.to_string()))?;
        known
            .read_file(path, ssh2::KnownHostFileKind::OpenSSH)
            .map_err(|e| unknown(&e.to_string()))?;
        let (key, _) = session
            .host_key()
            .ok_or_else(|| unknown("no host key offered"))?;
        match known.check_port(&addr.ip().to_string(), addr.port(), key) {
            ssh2::CheckResult::Match => {}
            ssh2::CheckResult::Mismatch => return Err(unknown("a different key is known")),
            _ => return Err(unknown("not found")),
        }
    }
    session
        .userauth_pubkey_file(&switch.user, None, &switch.key_file, None)
        .map_err(|e| SwitchError::Auth {
            host: host.clone(),
            user: switch.user.clone(),
            key: switch.key_file.display().to_string(),
            why: e.to_string(),
        })?;
    let run = |why: String| SwitchError::Run {
        host: host.clone(),
        command: switch.command.clone(),
        why,
    };
    let mut channel = session.channel_session().map_err(|e| run(e.to_string()))?;
    channel
        .exec(&switch.command)
        .map_err(|e| run(e.to_string()))?;
    let mut output = String::new();
    // At most 64 KiB of what it says: a switch prints a line or two.
    let _ = (&mut channel).take(64 << 10).read_to_string(&mut output);
    let mut errors = String::new();
    let _ = channel.stderr().take(64 << 10).read_to_string(&mut errors);
    output.push_str(&errors);
    channel.wait_close().map_err(|e| run(e.to_string()))?;
    let status = channel.exit_status().map_err(|e| run(e.to_string()))?;
    Ok(Outcome {
        status,
        output,
        fingerprint,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Detector for PowerCycler {
    fn name(&self) -> String {
        "power switch".into()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn budget(&self) -> Duration {
        SSH_DEADLINE + Duration::from_secs(5)
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            let switched: Vec<_> = self
                .cluster
                .nodes
                .iter()
                .filter(|n| n.name != self.me && n.power_switch.is_some())
                .map(|n| n.name.clone())
                .collect();
            if switched.is_empty() {
                return Ok(Look::Unavailable(
                    "no other node has a power_switch configured".into(),
                ));
            }
            let silent: BTreeSet<String> = self
                .cluster
                .nodes
                .iter()
                .filter(|n| found.is_open(&format!("peer:{}", n.name)))
                .map(|n| n.name.clone())
                .collect();
            self.silent_since.retain(|n, _| silent.contains(n));
            for n in &silent {
                self.silent_since
                    .entry(n.clone())
                    .or_insert_with(Instant::now);
            }
            let mut lines = Vec::new();
            for peer in &switched {
                let Some(since) = self.silent_since.get(peer).copied() else {
                    continue;
                };
                if repair::diagnosis::watcher(&self.cluster, peer, &silent) != self.me {
                    lines.push(format!("{peer} silent, watched by another node"));
                    continue;
                }
                if since.elapsed() < self.after {
                    lines.push(format!(
                        "{peer} silent for {} s; cycled after {} s",
                        since.elapsed().as_secs(),
                        self.after.as_secs()
                    ));
                    continue;
                }
                let now = cluster::unix_now();
                let last: Option<u64> = found.log().recall(&Self::key(peer));
                if let Some(last) = last.filter(|l| now.saturating_sub(*l) < ONCE_PER.as_secs()) {
                    lines.push(format!(
                        "{peer} silent; power-cycled {} s ago, at most once an hour",
                        now - last
                    ));
                    continue;
                }
                found.log().remember(&Self::key(peer), &now);
                let switch = self
                    .cluster
                    .node(peer)
                    .and_then(|n| n.power_switch.clone())
                    .expect("a node with a switch");
                tracing::warn!(peer = %peer, switch = %switch.host, "power-cycling a silent node");
                let answer = tokio::task::spawn_blocking({
                    let switch = switch.clone();
                    move || cycle(&switch)
                })
                .await
                .map_err(|e| format!("the power cycle's task died: {e}"))?;
                let component = Component::Peer { peer: peer.clone() };
                let event = match answer {
                    Ok(o) => {
                        let mut event = NewEvent::new(
                            component,
                            EventKind::PowerCycled,
                            format!(
                                "node {peer}, silent for {} s, was power-cycled through its switch {}: {}",
                                since.elapsed().as_secs(),
                                switch.host,
                                if o.status == 0 {
                                    "the switch did it".to_string()
                                } else {
                                    format!("the switch's command failed with status {}", o.status)
                                }
                            ),
                        )
                        .evidence(format!("ssh {}@{} {:?}: exit status {}", switch.user, switch.host, switch.command, o.status))
                        .evidence(format!("host key {}", o.fingerprint));
                        for l in o.output.lines().take(5) {
                            event = event.evidence(format!("switch: {l}"));
                        }
                        event
                    }
                    Err(e) => NewEvent::new(
                        component,
                        EventKind::PowerCycled,
                        format!("node {peer} is silent and could not be power-cycled: {e}"),
                    )
                    .evidence(e.to_string()),
                };
                lines.push(event.summary.clone());
                found.log().record(event);
            }
            Ok(Look::Done(if lines.is_empty() {
                format!("{} switched nodes, none silent", switched.len())
            } else {
                lines.join("; ")
            }))
        })
    }
}
