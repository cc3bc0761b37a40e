//! The backend as a witness for the frontends' failover: asked by one frontend about the
//! other, it tries to reach that one itself. A frontend takes over the canonical address only
//! when a majority of backends agree its peer is gone, so a partition between the frontends
//! alone moves nothing.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
pub async fn look_at(addr: SocketAddr) -> Answer {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET /failover HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        stream.take(64 << 10).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(DEADLINE, exchange).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) => return unreachable(e.to_string()),
        Err(_) => return unreachable(format!("no answer within {DEADLINE:?}")),
    };
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return unreachable("not an HTTP answer".into());
    };
    let state: serde_json::Value = match serde_json::from_slice(&raw[split + 4..]) {
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
