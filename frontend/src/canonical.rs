//! Holding the canonical address as a socket address: the frontend that binds it serves
//! visitors on it; the other keeps trying every 250 ms and takes over the moment the holder's
//! process is gone. The kernel is the arbiter, so two frontends can never hold it at once. This
//! is the demo's form (no root: a loopback socket address); the IP-alias failover between
//! hosts, with its heartbeat and tie-breaker, replaces it on real networks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster::worker::{BoxFuture, Worker, WorkerState};

use crate::http::{self, Front};

/// How often a frontend that does not hold the address tries to take it.
pub const RETRY: Duration = Duration::from_millis(250);

pub struct CanonicalSocket {
    addr: SocketAddr,
    front: Arc<Front>,
    holding: bool,
    tries: u64,
    last_error: String,
}

impl CanonicalSocket {
    pub fn new(addr: SocketAddr, front: Arc<Front>) -> CanonicalSocket {
        CanonicalSocket {
            addr,
            front,
            holding: false,
            tries: 0,
            last_error: String::new(),
        }
    }
}

impl Worker for CanonicalSocket {
    fn name(&self) -> String {
        format!("canonical address {}", self.addr)
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            if self.holding {
                return Ok(WorkerState::Idle);
            }
            self.tries += 1;
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => {
                    self.holding = true;
                    println!(
                        "frontend {}: holding the canonical address http://{}/",
                        self.front.name, self.addr
                    );
                    tokio::spawn(http::serve(
                        listener,
                        self.front.clone(),
                        std::future::pending(),
                    ));
                    Ok(WorkerState::Idle)
                }
                Err(e) => {
                    self.last_error = e.to_string();
                    Ok(WorkerState::Throttled(RETRY))
                }
            }
        })
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        // Held until the process ends.
        Box::pin(std::future::pending())
    }

    fn progress(&self) -> String {
        if self.holding {
            "holding it".into()
        } else {
            format!("standing by ({} tries; {})", self.tries, self.last_error)
        }
    }
}
