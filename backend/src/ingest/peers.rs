//! The other nodes' internal API, as this node's ingest calls it: [`floor::Client`]'s signed
//! calls, with the failure kept as its peer status and one line naming the node.

use std::time::Duration;

use cluster::auth::Secret;
use floor::client::Call;
use hyper::body::Bytes;
use serde::de::DeserializeOwned;

#[derive(Clone)]
pub struct Peers {
    client: floor::Client,
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

impl From<floor::CallError> for CallError {
    fn from(e: floor::CallError) -> CallError {
        CallError {
            status: e.status(),
            message: e.to_string(),
        }
    }
}

impl Peers {
    pub fn new(secret: Secret, origins: Vec<(String, String)>) -> Peers {
        Peers {
            client: floor::Client::signed(Ok(secret), origins),
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
        let call = Call::new(method, path).user(user).body(body);
        Ok(self.client.call(node, call, deadline).await?)
    }

    /// [`Peers::call`] and parse the JSON answer.
    pub async fn json<T: DeserializeOwned + Send + 'static>(
        &self,
        node: &str,
        method: &str,
        path: &str,
        body: Bytes,
        deadline: Duration,
    ) -> Result<T, CallError> {
        let call = Call::new(method, path).body(body);
        Ok(self.client.call_json(node, call, deadline).await?)
    }
}
