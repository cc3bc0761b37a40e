//! A minimal HTTP/1.0 GET with a deadline, for checks between our own processes (a backend's
//! `/health`, a peer's monitor, a frontend asked about by a witness): no pool, no redirects, a
//! bounded body. A check must never wait longer than its deadline.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest answer read.
const MAX_BODY: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    /// Nothing listens there (the process is gone or not started).
    #[error("connection refused")]
    Refused,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(String),
    #[error("not an HTTP answer")]
    NotHttp,
}

/// An answer: the status code and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET path` from `addr`, all within `deadline`.
pub async fn get(addr: SocketAddr, path: &str, deadline: Duration) -> Result<Answer, GetError> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        stream.take(MAX_BODY).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(deadline, exchange).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(GetError::Refused)
        }
        Ok(Err(e)) => return Err(GetError::Io(e.to_string())),
        Err(_) => return Err(GetError::Timeout(deadline)),
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(GetError::NotHttp)?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| GetError::NotHttp)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(GetError::NotHttp)?;
    Ok(Answer {
        status,
        body: raw[split + 4..].to_vec(),
    })
}
