//! The redirecting frontend: the lookup table image → replicas (a cache built from the backends'
//! catalogs), health checks of every backend, redirects to a healthy replica, the gallery and
//! search pages, and failover of the canonical IP address between the two frontends.
//!
//! [`table`] is the lookup table; [`watch`] the worker per backend that fills it every second
//! through `floor::Client`; [`http`] the routes of the canonical address. [`failover`] decides who
//! holds the canonical address, [`holder`] runs that decision (heartbeats, authenticated by
//! [`heartbeat`]; witnesses) and
//! [`address`] (with [`arp`]) takes and releases it. [`report`] sends the weekly visit report
//! while this frontend holds that address. [`open`] and [`start_failover`] put them together
//! from the cluster configuration.
//!
//! It must never hold data that cannot be rebuilt from the backends, never serve image bytes
//! itself, and never take the canonical address without fencing the previous holder.

pub mod address;
pub mod arp;
pub mod collection;
pub mod failover;
pub mod heartbeat;
pub mod holder;
pub mod http;
pub mod portal;
pub mod report;
pub mod table;
pub mod watch;

use std::sync::Arc;

use cluster::worker::Runner;
use cluster::ClusterConfig;

pub use http::Front;
pub use table::Table;

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("no frontend '{name}' in the configuration (it has: {known})")]
    Unknown { name: String, known: String },
    #[error("cannot listen for heartbeats on UDP {addr}: {source}")]
    Heartbeat {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("failover heartbeats are authenticated with the cluster secret: {0}")]
    Secret(#[from] cluster::auth::SecretError),
    #[error("its certificate: {0}")]
    Tls(#[from] floor::tls::TlsError),
}

/// Builds frontend `name` of `cluster` with an empty table, and starts a watch worker per
/// backend on the current Tokio runtime.
pub fn open(cluster: &ClusterConfig, name: &str) -> Result<Arc<Front>, FrontendError> {
    if cluster.frontend(name).is_none() {
        return Err(FrontendError::Unknown {
            name: name.to_string(),
            known: cluster
                .frontends
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let backends: Vec<(String, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.origin()))
        .collect();
    let table = Arc::new(Table::new(&backends));
    table.set_domains(
        &cluster
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.power_domain.clone()))
            .collect::<Vec<_>>(),
    );
    let runner = Runner::new();
    let client = floor::Client::new().with_identity("x-td-frontend", name);
    for (node, origin) in &backends {
        runner.spawn(watch::BackendWatch::new(
            node,
            origin,
            table.clone(),
            client.clone(),
        ));
    }
    let portal = Arc::new(portal::Portal::new(cluster, table.clone()));
    runner.spawn(portal::accounts::AccountsWatch::new(
        portal.accounts.clone(),
    ));
    let me = cluster.frontend(name).expect("checked above");
    let scheme = if cluster.frontends_tls() {
        "https"
    } else {
        "http"
    };
    let public_url = cluster
        .public_base()
        .unwrap_or_else(|| format!("{scheme}://{}", me.address));
    // A plain-http visitor is sent on to the host they asked for when it is one of these,
    // else to the public one.
    let hosts = [public_url
        .split_once("://")
        .map_or("", |(_, a)| a)
        .to_string()]
    .into_iter()
    .chain(cluster.canonical.map(|c| c.to_string()))
    .chain([me.address.to_string()])
    .collect();
    let tls = me
        .tls()
        .map(|files| floor::tls::ServerTls::load(files, hosts))
        .transpose()?;
    Ok(Arc::new(Front {
        tls,
        portal,
        public_url,
        name: name.to_string(),
        table,
        runner,
        failover: std::sync::OnceLock::new(),
    }))
}

/// Starts the failover of the canonical address for `front` (which must come from
/// [`open`]): heartbeats with the other frontend on its own address, the backends as
/// witnesses. Does nothing when the cluster has no canonical address.
pub async fn start_failover(
    cluster: &ClusterConfig,
    front: &Arc<Front>,
) -> Result<(), FrontendError> {
    let Some(canonical) = cluster.canonical else {
        return Ok(());
    };
    let me = cluster
        .frontends
        .iter()
        .position(|f| f.name == front.name)
        .expect("checked by open");
    let config = &cluster.frontends[me];
    let socket = tokio::net::UdpSocket::bind(config.address)
        .await
        .map_err(|source| FrontendError::Heartbeat {
            addr: config.address,
            source,
        })?;
    // Without the secret there is no failover at all: unauthenticated heartbeats let anyone
    // on the network move the canonical address.
    let link = match cluster
        .frontends
        .iter()
        .enumerate()
        .find(|(_, f)| f.name != front.name)
    {
        Some((index, peer)) => Some(heartbeat::Link::new(
            cluster::auth::Secret::load(&cluster.secret_path())?,
            &front.name,
            &peer.name,
            index as u8,
            peer.address,
        )),
        None => None,
    };
    let address = match &config.interface {
        Some(interface) => address::Address::Alias {
            ip: canonical.ip(),
            prefix: cluster.canonical_prefix.unwrap_or(24),
            interface: interface.clone(),
            held: Default::default(),
        },
        None => address::Address::Socket {
            addr: canonical,
            front: front.clone(),
            serving: None,
        },
    };
    let backends = cluster.nodes.iter().map(|n| n.origin()).collect();
    let (mut holder, shared) = holder::Holder::new(
        &front.name,
        me as u8,
        socket,
        link,
        backends,
        address,
        floor::Client::new().with_identity("x-td-frontend", &front.name),
        front.table.clone(),
    );
    // Whatever this frontend held before it died is given up before it decides anything.
    holder.release_leftover().await;
    let _ = front.failover.set(shared);
    front.runner.spawn(holder);
    Ok(())
}
