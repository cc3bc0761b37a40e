//! The redirecting frontend: the lookup table image → replicas (a cache built from the backends'
//! catalogs), health checks of every backend, redirects to a healthy replica, the gallery and
//! search pages, and (next) failover of the canonical IP address between the two frontends.
//!
//! [`table`] is the lookup table; [`watch`] the worker per backend that fills it every second
//! through [`client`]; [`http`] the routes of the canonical address; [`Frontend::open`] puts
//! them together from the cluster configuration.
//!
//! It must never hold data that cannot be rebuilt from the backends, never serve image bytes
//! itself, and never take the canonical address without fencing the previous holder.

pub mod canonical;
pub mod client;
pub mod failover;
pub mod http;
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
    let runner = Runner::new();
    let client = client::Backends::new(name);
    for (node, origin) in &backends {
        runner.spawn(watch::BackendWatch::new(
            node,
            origin,
            table.clone(),
            client.clone(),
        ));
    }
    Ok(Arc::new(Front {
        name: name.to_string(),
        table,
        runner,
    }))
}
