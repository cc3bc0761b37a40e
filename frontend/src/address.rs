//! Holding the canonical address, in the two forms it takes.
//!
//! - `Alias`: on a real network, an IP alias on the frontend's interface (`ip addr add`),
//!   announced with a gratuitous ARP; the frontend already listens on its port on every
//!   address, so the moment the alias exists, it serves.
//! - `Socket`: in the demo, without root, a loopback socket address that only the holder
//!   binds and serves on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::http::{self, Front};

pub enum Address {
    Alias {
        ip: IpAddr,
        prefix: u8,
        interface: String,
        /// Cleared on release, so that late repeats of the announcement never claim an
        /// address this frontend no longer holds.
        held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    },
    Socket {
        addr: SocketAddr,
        front: Arc<Front>,
        /// Dropping it stops the server on the address.
        serving: Option<tokio::sync::oneshot::Sender<()>>,
    },
}

impl Address {
    pub fn describe(&self) -> String {
        match self {
            Address::Alias { ip, interface, .. } => format!("{ip} on {interface}"),
            Address::Socket { addr, .. } => format!("socket {addr}"),
        }
    }

    /// Whether this frontend holds the address now (a take may have failed).
    pub fn is_held(&self) -> bool {
        match self {
            Address::Alias { held, .. } => held.load(std::sync::atomic::Ordering::SeqCst),
            Address::Socket { serving, .. } => serving.is_some(),
        }
    }

    pub async fn take(&mut self) -> Result<(), String> {
        match self {
            Address::Alias {
                ip,
                prefix,
                interface,
                held,
            } => {
                let out = ip_command(&["addr", "add", &format!("{ip}/{prefix}"), "dev", interface])
                    .await?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr);
                    if !err.contains("File exists") {
                        return Err(format!(
                            "ip addr add {ip}/{prefix} dev {interface}: {}",
                            err.trim()
                        ));
                    }
                }
                held.store(true, std::sync::atomic::Ordering::SeqCst);
                if let IpAddr::V4(v4) = ip {
                    let (iface, v4, held) = (interface.clone(), *v4, held.clone());
                    let announce = move || crate::arp::announce(&iface, v4);
                    tokio::task::spawn_blocking(announce.clone())
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("gratuitous ARP on {interface}: {e}"))?;
                    // Twice more, for neighbours that were busy or that ignore an update
                    // within a second of the last one (Linux's arp locktime).
                    tokio::spawn(async move {
                        for pause in [300, 1100] {
                            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                            if !held.load(std::sync::atomic::Ordering::SeqCst) {
                                return;
                            }
                            let _ = tokio::task::spawn_blocking(announce.clone()).await;
                        }
                    });
                }
                Ok(())
            }
            Address::Socket {
                addr,
                front,
                serving,
            } => {
                if serving.is_some() {
                    return Ok(());
                }
                // SO_REUSEPORT: a frontend taking over binds beside a peer that has not let
                // go yet, so the address never goes unserved between the two (both serve the
                // same answers for that moment). SO_REUSEADDR: the connections this socket
                // closed linger in TIME_WAIT for a minute and must not block the next bind of
                // the address (a takeover back, or the demo started again at once).
                let bind = || -> std::io::Result<tokio::net::TcpListener> {
                    let socket = match addr {
                        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                    };
                    socket.set_reuseaddr(true)?;
                    socket.set_reuseport(true)?;
                    socket.bind(*addr)?;
                    socket.listen(1024)
                };
                let listener = bind().map_err(|e| format!("cannot bind {addr}: {e}"))?;
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                tokio::spawn(http::serve(listener, front.clone(), async move {
                    let _ = stopped.await;
                }));
                *serving = Some(stop);
                Ok(())
            }
        }
    }

    pub async fn release(&mut self) -> Result<(), String> {
        match self {
            Address::Alias {
                ip,
                prefix,
                interface,
                held,
            } => {
                held.store(false, std::sync::atomic::Ordering::SeqCst);
                let out = ip_command(&["addr", "del", &format!("{ip}/{prefix}"), "dev", interface])
                    .await?;
                let err = String::from_utf8_lossy(&out.stderr);
                if out.status.success() || err.contains("Cannot assign") {
                    Ok(())
                } else {
                    Err(format!(
                        "ip addr del {ip}/{prefix} dev {interface}: {}",
                        err.trim()
                    ))
                }
            }
            Address::Socket { serving, .. } => {
                serving.take();
                Ok(())
            }
        }
    }
}

async fn ip_command(args: &[&str]) -> Result<std::process::Output, String> {
    tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run ip (iproute2): {e}"))
}
