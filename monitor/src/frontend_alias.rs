//! A dead frontend's leftover canonical address, removed by the monitor on its host. A
//! frontend killed while it held the canonical IP as an alias leaves the alias on its
//! interface: the host keeps answering ARP for an address the other frontend now serves, and
//! some visitors land on a dead port. The frontend clears it when it starts again; this worker
//! clears it at once, as soon as the frontend is seen dead twice in a row.
//!
//! It never touches the alias of a frontend that answers on its own address (alive, even if
//! slow), never an address other than the canonical one, and only on the frontend's own
//! configured interface.

use std::net::SocketAddr;
use std::time::Duration;

use cluster::worker::BoxFuture;
use cluster::{Component, EventKind, FrontendConfig};
use floor::event_log::NewEvent;

use crate::detector::{Detector, Findings, Look};

/// A frontend must accept a connection within this to count as alive.
const CONNECT: Duration = Duration::from_millis(500);
/// Dead this many checks in a row (a second apart) before its alias is removed.
const DEAD_AFTER: u32 = 2;

pub struct FrontendAlias {
    frontend: FrontendConfig,
    /// The canonical address as an alias: `IP/PREFIX`.
    alias: Option<String>,
    dead: u32,
    removed: u64,
}

impl FrontendAlias {
    pub fn new(cluster: &cluster::ClusterConfig, frontend: &FrontendConfig) -> FrontendAlias {
        let alias = cluster.canonical.map(|c| {
            let prefix = cluster
                .canonical_prefix
                .unwrap_or(if c.is_ipv4() { 24 } else { 64 });
            format!("{}/{prefix}", c.ip())
        });
        FrontendAlias {
            frontend: frontend.clone(),
            alias,
            dead: 0,
            removed: 0,
        }
    }
}

/// Whether something accepts connections at `addr` (refused or timed out: no).
async fn answers(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(CONNECT, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

async fn ip(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Detector for FrontendAlias {
    fn name(&self) -> String {
        format!("frontend alias {}", self.frontend.name)
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn budget(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            let (Some(alias), Some(interface)) = (&self.alias, &self.frontend.interface) else {
                return Ok(Look::Unavailable(format!(
                    "frontend {} holds no alias (no canonical address or no interface configured)",
                    self.frontend.name
                )));
            };
            if answers(self.frontend.address).await {
                self.dead = 0;
                return Ok(Look::Done(format!(
                    "frontend {} answers at {}",
                    self.frontend.name, self.frontend.address
                )));
            }
            self.dead += 1;
            let shown = ip(&["-o", "addr", "show", "dev", interface]).await?;
            let held = shown.split_whitespace().any(|w| w == alias);
            if !held {
                return Ok(Look::Done(format!(
                    "frontend {} does not answer; no alias {alias} left on {interface}",
                    self.frontend.name
                )));
            }
            if self.dead < DEAD_AFTER {
                return Ok(Look::Done(format!(
                    "frontend {} does not answer ({} check), holding {alias}",
                    self.frontend.name, self.dead
                )));
            }
            ip(&["addr", "del", alias, "dev", interface]).await?;
            self.removed += 1;
            tracing::warn!(frontend = %self.frontend.name, alias = %alias, interface = %interface, "removed a dead frontend's leftover alias");
            found.log().record(
                NewEvent::new(
                    Component::Process {
                        name: format!("frontend {}", self.frontend.name),
                    },
                    EventKind::AliasRemoved,
                    format!(
                        "frontend {} is dead but its canonical address {alias} was left on {interface}: removed, so only the live frontend answers for it",
                        self.frontend.name
                    ),
                )
                .evidence(format!(
                    "{} refused or did not accept a connection {} times in a row",
                    self.frontend.address, self.dead
                )),
            );
            Ok(Look::Done(format!(
                "removed frontend {}'s leftover alias {alias} from {interface} ({} times so far)",
                self.frontend.name, self.removed
            )))
        })
    }
}
