//! The other nodes' internal API, as this node calls it: every request signed with the
//! cluster secret, with a deadline, its failure one line naming the node.

use std::time::Duration;

use cluster::auth::{Secret, AUTH_HEADER, USER_HEADER};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

/// Most answers are a line or a small JSON; a status list can be longer.
const MAX_ANSWER: usize = 16 << 20;

#[derive(Clone)]
pub struct Peers {
    client: Client<HttpConnector, Full<Bytes>>,
    secret: Secret,
    /// Node name → `http://ADDRESS`.
    origins: Vec<(String, String)>,
}

/// A failed call: the node's HTTP status when it answered, and what went wrong.
#[derive(Debug, Clone)]
pub struct CallError {
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Peers {
    pub fn new(secret: Secret, origins: Vec<(String, String)>) -> Peers {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        Peers {
            client,
            secret,
            origins,
        }
    }

    /// Calls `method path` on `node` with `body`, for `user` ("" for the cluster itself).
    pub async fn call(
        &self,
        node: &str,
        method: &str,
        path: &str,
        user: &str,
        body: Bytes,
        deadline: Duration,
    ) -> Result<Bytes, CallError> {
        let fail = |status, message: String| CallError { status, message };
        let origin = self
            .origins
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, o)| o.clone())
            .ok_or_else(|| fail(None, format!("no node {node} in the configuration")))?;
        let url = format!("{origin}{path}");
        let request = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header(
                AUTH_HEADER,
                self.secret.sign(method, path, user, cluster::unix_now()),
            )
            .header(USER_HEADER, user)
            .body(Full::new(body))
            .map_err(|e| fail(None, format!("{node} {method} {path}: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| fail(None, format!("{node} does not answer: {}", chain(&e))))?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| fail(None, format!("{node}: reading its answer: {e}")))?
                .to_bytes();
            if status.is_success() {
                Ok(body)
            } else {
                let text = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
                Err(fail(
                    Some(status.as_u16()),
                    format!("{node} answered {status}: {}", text.trim()),
                ))
            }
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(fail(
                    None,
                    format!("{node} did not answer {method} {path} within {deadline:?}"),
                ))
            })
    }

    /// [`Peers::call`] and parse the JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        node: &str,
        method: &str,
        path: &str,
        body: Bytes,
        deadline: Duration,
    ) -> Result<T, CallError> {
        let bytes = self.call(node, method, path, "", body, deadline).await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError {
            status: None,
            message: format!("{node} {path}: not the expected JSON: {e}"),
        })
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
