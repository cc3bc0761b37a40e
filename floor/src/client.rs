//! The one HTTP client between the cluster's processes: frontends asking backends for health and
//! catalogs, the portal and the nodes calling a node's signed internal API, monitors checking a
//! backend or a peer. Connections are pooled (kept alive, reused every second), every exchange
//! has a deadline for the whole of it, answers are bounded, and a failure is a [`CallError`]
//! that names the peer and keeps its HTTP status, so a caller can pass a peer's 507 on as 507.
//!
//! Calls to a named node's internal API are signed with the cluster secret
//! ([`cluster::auth`]): the signature covers the method, path and query, the account, the time,
//! the target node, the body's SHA-256, the headers that carry meaning and a nonce, so a captured
//! request cannot be sent again, changed, or sent to another node.

use std::net::SocketAddr;
use std::time::Duration;

use cluster::auth::{body_sum, Secret, SignedParts, AUTH_HEADER, HASH_APART, USER_HEADER};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client as Pool};
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

/// The largest answer read by default: a line, a small JSON, a list of uploads.
pub const MAX_ANSWER: usize = 16 << 20;
/// Answers larger than this are parsed on a blocking thread, off the threads that answer
/// visitors (a whole catalog is megabytes).
const PARSE_INLINE: usize = 64 << 10;

/// Why a call failed. Each names the peer (a node's name, or the address asked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no node {node} in the configuration")]
    UnknownNode { node: String },
    #[error("cannot sign a call to {peer}: {why}")]
    NoSecret { peer: String, why: String },
    /// Nothing listens there: the process is gone or not started.
    #[error("{peer} does not answer {what}: connection refused")]
    Refused { peer: String, what: String },
    #[error("{peer} does not answer {what}: {detail}")]
    Unreachable {
        peer: String,
        what: String,
        detail: String,
    },
    #[error("{peer} did not answer {what} within {deadline:?}")]
    Timeout {
        peer: String,
        what: String,
        deadline: Duration,
    },
    /// It answered, with a status other than 2xx: the status and the start of its text.
    #[error("{peer} answered {status}: {text}")]
    Status {
        peer: String,
        status: u16,
        text: String,
    },
    #[error("{peer}: reading its answer to {what}: {detail}")]
    Reading {
        peer: String,
        what: String,
        detail: String,
    },
    #[error("{peer}: its answer to {what} is not the expected JSON: {detail}")]
    NotJson {
        peer: String,
        what: String,
        detail: String,
    },
}

impl CallError {
    /// The peer's HTTP status, when it answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Nothing listens at the peer's address.
    pub fn is_refused(&self) -> bool {
        matches!(self, CallError::Refused { .. })
    }
}

/// An answer with any status.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The answer's text, as an error naming `peer`, unless it is a success.
    pub fn ok(self, peer: &str) -> Result<Answer, CallError> {
        if self.is_success() {
            return Ok(self);
        }
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(500)]);
        Err(CallError::Status {
            peer: peer.to_string(),
            status: self.status,
            text: text.trim().to_string(),
        })
    }
}

/// A request to a node's internal API.
#[derive(Debug, Clone, Default)]
pub struct Call<'a> {
    pub method: &'a str,
    /// Path and query, as signed and sent.
    pub path: &'a str,
    /// The portal account the call acts for; "" for the cluster itself.
    pub user: &'a str,
    /// Headers sent (`Upload-Offset` and `Content-Type` are signed).
    pub headers: &'a [(&'a str, String)],
    pub body: Bytes,
    /// The body's [`body_sum`], when the caller has it already (a chunk passed on, as its
    /// signature was checked on the way in): one hash pass less over every byte.
    pub body_sum: Option<String>,
}

impl<'a> Call<'a> {
    pub fn new(method: &'a str, path: &'a str) -> Call<'a> {
        Call {
            method,
            path,
            ..Call::default()
        }
    }

    pub fn user(mut self, user: &'a str) -> Call<'a> {
        self.user = user;
        self
    }

    pub fn body(mut self, body: Bytes) -> Call<'a> {
        self.body = body;
        self
    }

    /// The body, with its [`body_sum`] worked out already. A wrong sum only makes the
    /// receiver refuse the call (it hashes what it got).
    pub fn body_summed(mut self, body: Bytes, sum: String) -> Call<'a> {
        self.body = body;
        self.body_sum = Some(sum);
        self
    }

    pub fn headers(mut self, headers: &'a [(&'a str, String)]) -> Call<'a> {
        self.headers = headers;
        self
    }
}

/// The client. Cheap to clone: clones share one pool of connections.
#[derive(Clone)]
pub struct Client {
    /// http, or https trusting what [`crate::tls::trust_cluster`] said when it was built.
    pool: Pool<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Signs calls to named nodes; `Err(why)` when this process has no cluster secret (its
    /// unsigned checks still work, and a signed call says why it cannot be made).
    secret: Result<Secret, String>,
    /// Node name → its origin (`http://ADDRESS` or `https://ADDRESS`).
    nodes: Vec<(String, String)>,
    /// Sent with every request (e.g. `x-td-frontend: fe-1`), so a peer can tell callers apart.
    identity: Option<(HeaderName, HeaderValue)>,
}

impl Client {
    /// A client for unsigned checks only (health, catalogs, pings).
    pub fn new() -> Client {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client().as_ref().clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let pool = Pool::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Client {
            pool,
            secret: Err("this process has no cluster secret".into()),
            nodes: Vec::new(),
            identity: None,
        }
    }

    /// A client that also signs calls to the cluster's nodes (`name → http://ADDRESS`).
    pub fn signed(secret: Result<Secret, String>, nodes: Vec<(String, String)>) -> Client {
        Client {
            secret,
            nodes,
            ..Client::new()
        }
    }

    /// Sends `name: value` with every request.
    pub fn with_identity(mut self, name: &'static str, value: &str) -> Client {
        self.identity = HeaderValue::from_str(value)
            .ok()
            .map(|v| (HeaderName::from_static(name), v));
        self
    }

    /// The names of the nodes this client can call.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|(n, _)| n.as_str())
    }

    /// The identity value sent with every request, if any.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_ref().and_then(|(_, v)| v.to_str().ok())
    }

    /// Whether signed calls can be made, or why not.
    pub fn secret(&self) -> Result<&Secret, &str> {
        self.secret.as_ref().map_err(String::as_str)
    }

    /// A signed call to `node`'s internal API; an answer with any status.
    pub async fn call_any(
        &self,
        node: &str,
        call: Call<'_>,
        deadline: Duration,
    ) -> Result<Answer, CallError> {
        let origin = self
            .nodes
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, o)| o.as_str())
            .ok_or_else(|| CallError::UnknownNode {
                node: node.to_string(),
            })?;
        let secret = self.secret.as_ref().map_err(|why| CallError::NoSecret {
            peer: node.to_string(),
            why: why.clone(),
        })?;
        let header = |name: &str| {
            call.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map_or("", |(_, v)| v.as_str())
        };
        let body_sum = match &call.body_sum {
            Some(sum) => sum.clone(),
            None => signed_body_sum(&call.body).await,
        };
        let signature = secret.sign_request_summed(
            &SignedParts {
                method: call.method,
                path_and_query: call.path,
                user: call.user,
                target: node,
                body: &[],
                upload_offset: header("upload-offset"),
                content_type: header("content-type"),
            },
            &body_sum,
            cluster::unix_now(),
        );
        let mut request = hyper::Request::builder()
            .method(call.method)
            .uri(format!("{origin}{}", call.path))
            .header(AUTH_HEADER, signature)
            .header(USER_HEADER, call.user);
        for (k, v) in call.headers {
            request = request.header(*k, v);
        }
        let what = format!("{} {}", call.method, call.path);
        self.exchange(node, &what, request, call.body, deadline, MAX_ANSWER)
            .await
    }

    /// A signed call to `node`; its body, which must come with a 2xx status.
    pub async fn call(
        &self,
        node: &str,
        call: Call<'_>,
        deadline: Duration,
    ) -> Result<Bytes, CallError> {
        Ok(self.call_any(node, call, deadline).await?.ok(node)?.body)
    }

    /// A signed call to `node`; its JSON answer, which must come with a 2xx status.
    pub async fn call_json<T: DeserializeOwned + Send + 'static>(
        &self,
        node: &str,
        call: Call<'_>,
        deadline: Duration,
    ) -> Result<T, CallError> {
        let what = format!("{} {}", call.method, call.path);
        let body = self.call(node, call, deadline).await?;
        parse(node, &what, body, Priority::Normal).await
    }

    /// An unsigned `GET url`; an answer with any status, at most `max` bytes of body.
    pub async fn get(
        &self,
        url: &str,
        deadline: Duration,
        max: usize,
    ) -> Result<Answer, CallError> {
        let peer = peer_of(url);
        let request = hyper::Request::get(url);
        self.exchange(&peer, url, request, Bytes::new(), deadline, max)
            .await
    }

    /// An unsigned `POST url` of a JSON body; an answer with any status, at most `max` bytes.
    pub async fn post_json(
        &self,
        url: &str,
        body: Bytes,
        deadline: Duration,
        max: usize,
    ) -> Result<Answer, CallError> {
        let peer = peer_of(url);
        let request = hyper::Request::post(url).header("content-type", "application/json");
        self.exchange(&peer, url, request, body, deadline, max)
            .await
    }

    /// An unsigned `GET path` at `addr` (a check between our own processes), over https when
    /// the cluster says that address speaks it.
    pub async fn get_at(
        &self,
        addr: SocketAddr,
        path: &str,
        deadline: Duration,
    ) -> Result<Answer, CallError> {
        let scheme = if crate::tls::speaks_https(addr) {
            "https"
        } else {
            "http"
        };
        self.get(&format!("{scheme}://{addr}{path}"), deadline, MAX_ANSWER)
            .await
    }

    /// An unsigned `GET url` and its JSON, which must come with a 2xx status; answers up to
    /// `max` bytes.
    pub async fn get_json<T: DeserializeOwned + Send + 'static>(
        &self,
        url: &str,
        deadline: Duration,
        max: usize,
    ) -> Result<T, CallError> {
        self.get_json_for(url, deadline, max, Priority::Normal)
            .await
    }

    /// [`Client::get_json`] for background work (a node reading the others' catalogs): a large
    /// answer is parsed at background priority (`crate::background`), so that it never takes
    /// the CPU from a visitor's request or a frontend's own reading.
    pub async fn get_json_in_background<T: DeserializeOwned + Send + 'static>(
        &self,
        url: &str,
        deadline: Duration,
        max: usize,
    ) -> Result<T, CallError> {
        self.get_json_for(url, deadline, max, Priority::Background)
            .await
    }

    async fn get_json_for<T: DeserializeOwned + Send + 'static>(
        &self,
        url: &str,
        deadline: Duration,
        max: usize,
        priority: Priority,
    ) -> Result<T, CallError> {
        let peer = peer_of(url);
        let answer = self.get(url, deadline, max).await?.ok(&peer)?;
        parse(&peer, url, answer.body, priority).await
    }

    async fn exchange(
        &self,
        peer: &str,
        what: &str,
        mut request: hyper::http::request::Builder,
        body: Bytes,
        deadline: Duration,
        max: usize,
    ) -> Result<Answer, CallError> {
        if let Some((k, v)) = &self.identity {
            request = request.header(k, v);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| CallError::Unreachable {
                peer: peer.to_string(),
                what: what.to_string(),
                detail: format!("the request cannot be made: {e}"),
            })?;
        let exchange = async {
            let response = self
                .pool
                .request(request)
                .await
                .map_err(|e| connect_error(peer, what, &e))?;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, max)
                .collect()
                .await
                .map_err(|e| CallError::Reading {
                    peer: peer.to_string(),
                    what: what.to_string(),
                    detail: chain(e.as_ref()),
                })?
                .to_bytes();
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(CallError::Timeout {
                    peer: peer.to_string(),
                    what: what.to_string(),
                    deadline,
                })
            })
    }
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

/// Who waits for a parse: a request (at once, off the async threads when large) or background
/// work (at background priority when large).
#[derive(Clone, Copy)]
enum Priority {
    Normal,
    Background,
}

async fn parse<T: DeserializeOwned + Send + 'static>(
    peer: &str,
    what: &str,
    body: Bytes,
    priority: Priority,
) -> Result<T, CallError> {
    let not_json = |detail: String| CallError::NotJson {
        peer: peer.to_string(),
        what: what.to_string(),
        detail,
    };
    let len = body.len();
    let parse = move || serde_json::from_slice::<T>(&body).map_err(|e| e.to_string());
    if len > PARSE_INLINE {
        match priority {
            Priority::Normal => tokio::task::spawn_blocking(parse)
                .await
                .map_err(|e| not_json(format!("parsing stopped: {e}")))?,
            Priority::Background => crate::background::run("parse", parse)
                .await
                .map_err(|e| not_json(format!("parsing stopped: {e}")))?,
        }
        .map_err(not_json)
    } else {
        parse().map_err(not_json)
    }
}

/// "connection refused" rather than "client error (Connect)".
fn connect_error(peer: &str, what: &str, e: &hyper_util::client::legacy::Error) -> CallError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return CallError::Refused {
                    peer: peer.to_string(),
                    what: what.to_string(),
                };
            }
        }
        source = s.source();
    }
    CallError::Unreachable {
        peer: peer.to_string(),
        what: what.to_string(),
        detail: chain(e),
    }
}

/// The hash a signature covers of `body` ([`body_sum`]), worked out on a blocking thread when
/// the body is large ([`HASH_APART`]): both ends of a signed call use it, the caller that signs
/// and the node that checks.
pub async fn signed_body_sum(body: &Bytes) -> String {
    if body.len() <= HASH_APART {
        return body_sum(body);
    }
    let owned = body.clone();
    tokio::task::spawn_blocking(move || body_sum(&owned))
        .await
        // Only when the runtime is shutting down: then here, as a small body is.
        .unwrap_or_else(|_| body_sum(body))
}

/// An error and its causes, in one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// `http://HOST:PORT/path` → `HOST:PORT`, to name the peer in errors.
fn peer_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::Filter;

    async fn serve<F>(routes: F) -> SocketAddr
    where
        F: Filter + Clone + Send + Sync + 'static,
        F::Extract: warp::Reply,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        addr
    }

    /// Parses any JSON and says the nice value of the thread that parsed it.
    struct ParsedAt(libc::c_int);

    impl<'de> serde::Deserialize<'de> for ParsedAt {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            serde::de::IgnoredAny::deserialize(d)?;
            Ok(ParsedAt(crate::background::nice_here()))
        }
    }

    /// A large answer read for background work is parsed at background priority; read for a
    /// request, at the priority it had. A small one is parsed where it arrives either way.
    #[tokio::test]
    async fn a_large_answer_for_background_work_is_parsed_at_background_priority() {
        let large = format!("[{}0]", "12345678,".repeat(2 * PARSE_INLINE / 9));
        assert!(large.len() > PARSE_INLINE);
        let addr = serve(
            warp::path("large")
                .map(move || large.clone())
                .or(warp::path("small").map(|| "[1, 2, 3]")),
        )
        .await;
        let client = Client::new();
        let here = crate::background::nice_here();
        assert!(here < crate::background::NICE, "the test runs at {here}");
        let deadline = Duration::from_secs(5);
        let at = |path: &str| format!("http://{addr}/{path}");
        let ParsedAt(nice) = client
            .get_json_in_background(&at("large"), deadline, MAX_ANSWER)
            .await
            .unwrap();
        assert_eq!(nice, crate::background::NICE);
        let ParsedAt(nice) = client
            .get_json(&at("large"), deadline, MAX_ANSWER)
            .await
            .unwrap();
        assert_eq!(nice, here);
        let ParsedAt(nice) = client
            .get_json_in_background(&at("small"), deadline, MAX_ANSWER)
            .await
            .unwrap();
        assert_eq!(nice, here);
    }

    #[tokio::test]
    async fn a_peers_status_and_text_are_kept_and_refusal_is_told_apart() {
        let addr = serve(warp::path("full").map(|| {
            warp::reply::with_status(
                "the disk is full",
                warp::http::StatusCode::INSUFFICIENT_STORAGE,
            )
        }))
        .await;
        let client = Client::new();
        let e = client
            .get_json::<serde_json::Value>(
                &format!("http://{addr}/full"),
                Duration::from_secs(5),
                MAX_ANSWER,
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(507), "{e}");
        assert!(e.to_string().contains("the disk is full"), "{e}");

        // A port nothing listens on: bind one, then let it go.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = client
            .get_at(free, "/health", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.is_refused(), "{e}");
    }

    #[tokio::test]
    async fn a_silent_peer_costs_the_deadline_and_no_more() {
        // Accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            loop {
                let (s, _) = listener.accept().await.unwrap();
                kept.push(s);
            }
        });
        let e = Client::new()
            .get_at(addr, "/health", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::Timeout { .. }), "{e}");
        held.abort();
    }

    #[tokio::test]
    async fn answers_over_the_bound_are_refused_not_read_whole() {
        let addr = serve(warp::path("big").map(|| vec![b'x'; 64 << 10])).await;
        let e = Client::new()
            .get(&format!("http://{addr}/big"), Duration::from_secs(5), 1024)
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::Reading { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_signed_call_needs_a_secret_and_a_known_node() {
        let client = Client::new();
        let e = client
            .call(
                "node-a",
                Call::new("GET", "/internal/uploads"),
                Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::UnknownNode { .. }), "{e}");
        let client = Client::signed(
            Err("no secret file".into()),
            vec![("node-a".into(), "http://127.0.0.1:1".into())],
        );
        let e = client
            .call(
                "node-a",
                Call::new("GET", "/internal/uploads"),
                Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no secret file"), "{e}");
    }
}
