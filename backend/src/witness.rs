//! The backend as a witness for the frontends' failover: asked by one frontend about the
//! other, it tries to reach that one itself. A frontend takes over the canonical address only
//! when a majority of backends agree its peer is gone, so a partition between the frontends
//! alone moves nothing.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

/// How long the frontend asked about may take to answer.
pub const DEADLINE: Duration = Duration::from_millis(250);

#[derive(Debug, Serialize)]
pub struct Answer {
    pub reachable: bool,
    pub holding: bool,
    pub healthy: bool,
    /// Why it is not reachable, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Asks the frontend at `addr` for its `/failover` state, within [`DEADLINE`].
pub async fn look_at(client: &floor::Client, addr: SocketAddr) -> Answer {
    let answer = match client.get_at(addr, "/failover", DEADLINE).await {
        Ok(a) => a,
        Err(e) => return unreachable(e.to_string()),
    };
    let state: serde_json::Value = match serde_json::from_slice(&answer.body) {
        Ok(v) => v,
        Err(e) => return unreachable(format!("not the expected JSON: {e}")),
    };
    let m = &state["failover"];
    Answer {
        reachable: true,
        holding: m["holding"].as_bool().unwrap_or(false),
        healthy: m["healthy"].as_bool().unwrap_or(false),
        error: None,
    }
}

fn unreachable(error: String) -> Answer {
    Answer {
        reachable: false,
        holding: false,
        healthy: false,
        error: Some(error),
    }
}
