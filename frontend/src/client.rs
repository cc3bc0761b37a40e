//! Asking the backends: a GET with a deadline, its JSON answer parsed, every failure turned into
//! one line that says which backend and what went wrong.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

/// A pooled HTTP/1.1 client: one kept-alive connection per backend, reused every second.
#[derive(Clone)]
pub struct Backends {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    /// Sent with every request, so a backend can tell the frontends apart.
    me: String,
}

/// Answers larger than this are parsed on a blocking thread.
const PARSE_INLINE: usize = 64 << 10;
/// Larger answers are refused: a catalog page of 100 000 entries is about 60 MB.
const MAX_BODY: usize = 256 << 20;

impl Backends {
    pub fn new(me: &str) -> Backends {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        Backends {
            client,
            me: me.to_string(),
        }
    }

    /// The frontend this client asks for.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// GETs `url` and parses its JSON, within `deadline` for the whole exchange.
    pub async fn get_json<T: DeserializeOwned + Send + 'static>(
        &self,
        url: &str,
        deadline: Duration,
    ) -> Result<T, String> {
        let request = hyper::Request::get(url)
            .header("x-td-frontend", &self.me)
            .body(Empty::new())
            .map_err(|e| format!("{url}: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading the answer: {e}"))?
                .to_bytes();
            let body_len = body.len();
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                return Err(format!("{url}: {status}: {}", text.trim()));
            }
            let parse = move || {
                serde_json::from_slice(&body).map_err(|e| format!("not the expected JSON: {e}"))
            };
            // A whole catalog (megabytes) is parsed off the threads that answer visitors.
            let parsed = if body_len > PARSE_INLINE {
                tokio::task::spawn_blocking(parse)
                    .await
                    .map_err(|e| format!("parsing failed: {e}"))?
            } else {
                parse()
            };
            parsed.map_err(|e| format!("{url}: {e}"))
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| format!("{url}: no answer within {deadline:?}"))?
    }
}

/// "connection refused" rather than "client error (Connect)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}
