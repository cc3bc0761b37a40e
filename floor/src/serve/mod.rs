//! The one way the cluster's processes serve HTTP (backend, frontend, monitor): warp routes on
//! hyper's HTTP/1.1, with the limits a public address needs and warp's own server lacks.
//!
//! - A request's head must arrive whole within [`Limits::header_read`] of its first byte, however
//!   slowly it trickles in (slow-loris).
//! - A connection with nothing to do is closed after [`Limits::idle`]: between requests (and
//!   before the first one), while a request's body stalls, or while the client stops reading its
//!   answer. A handler still working on a request whose body it has is never cut off.
//! - At most [`Limits::connections`] connections at once; beyond that, new ones wait in the
//!   listen backlog until one closes.
//! - When the `shutdown` future ends: the listener is closed at once (so another process may
//!   bind the address), idle connections are closed, requests in flight finish, and [`serve`]
//!   returns when the last connection has ended (the caller bounds how long that may take).
//!
//! Keep-alive stays on, and nothing is timed per read or write: a busy keep-alive client costs
//! one uncontended lock per read and write, and one timer per connection that wakes at most once
//! per `header_read`.
//!
//! With TLS ([`serve_tls`]), the first byte of a connection tells what it speaks: a TLS
//! handshake (0x16) is completed within [`Limits::header_read`], holding one of the
//! connections allowed, and the same HTTP is then served inside it, every answer carrying
//! `Strict-Transport-Security`; anything else is plain HTTP, answered with a redirect to the
//! same path over https (so a visitor typing `http://` is sent on).
//!
//! warp's `warp::addr::remote()` only works under `warp::serve`; routes read the peer's address
//! with [`remote`], which works under both.
//!
//! A server may also give [`Quick`] answers: the few requests that are nearly all of its traffic
//! (a frontend's redirects, a node's cached tiles), answered from memory before the routes are
//! tried. A connection's requests are read below hyper first ([`quick`]): as long as each is a
//! quick answer, it is parsed, answered and written there, and at the first that is not, hyper
//! serves the rest of the connection, which also tries the quick answers before the routes.
//! Whatever the quick answer declines, the routes answer as before. A server with quick answers
//! and plain HTTP accepts on [`lanes`], one thread per core with a runtime of its own, and moves
//! a connection to the caller's runtime when it needs the routes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{Either, Full};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use warp::{Filter, Reply};

use crate::tls::ServerTls;

mod lanes;
mod quick;

pub use quick::{NoQuick, Quick, MAX_HEAD as MAX_QUICK_HEAD};

/// The first byte of a TLS handshake record; a plain HTTP request starts with a letter.
const TLS_HANDSHAKE: u8 = 0x16;

/// How long a request's head may take to arrive, from its first byte.
pub const HEADER_READ: Duration = Duration::from_secs(10);
/// How long a connection may sit with nothing read or written (see the module's doc).
pub const IDLE: Duration = Duration::from_secs(60);
/// Connections served at once, unless the process may open fewer files (see [`Limits`]).
pub const CONNECTIONS: usize = 4096;
/// How long to wait before accepting again after the listener failed (out of file
/// descriptors, say): at once would spin on the same error.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// What a server allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub connections: usize,
}

impl Default for Limits {
    /// [`HEADER_READ`], [`IDLE`], and [`CONNECTIONS`] or three quarters of the open files this
    /// process may have, whichever is less: the rest is for its own files and stores, and a
    /// connection refused by `accept` for want of a descriptor would only spin.
    fn default() -> Limits {
        Limits {
            header_read: HEADER_READ,
            idle: IDLE,
            connections: CONNECTIONS.min(open_files_allowed() / 4 * 3).max(1),
        }
    }
}

fn open_files_allowed() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// The client's address, put on every request served by [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The client's address (the TCP peer), for routes served by [`serve`], or by warp's own
/// server or `warp::test` (what `warp::addr::remote()` says there).
pub fn remote() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<Peer>()
        .and(warp::addr::remote())
        .map(|p: Option<Peer>, warp: Option<SocketAddr>| p.map(|Peer(addr)| addr).or(warp))
}

/// Serves `routes` on `listener` within `limits` until `shutdown` ends, then lets the requests
/// in flight finish and returns when every connection has closed.
pub async fn serve<F, R>(
    listener: TcpListener,
    routes: F,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    serve_tls(listener, routes, limits, None, shutdown).await
}

/// As [`serve`], over TLS when `tls` is given (see the module's doc).
pub async fn serve_tls<F, R>(
    listener: TcpListener,
    routes: F,
    limits: Limits,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    serve_quick(listener, Arc::new(NoQuick), routes, limits, tls, shutdown).await
}

/// As [`serve_tls`], with `quick` answers tried before the routes.
pub async fn serve_quick<F, R>(
    listener: TcpListener,
    quick: Arc<dyn Quick>,
    routes: F,
    limits: Limits,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let connections = limits.connections.clamp(1, u32::MAX as usize);
    let places = Arc::new(Semaphore::new(connections));
    let (stop, stopping) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's own header timer starts when it waits for a head, idle wait included: set to the
    // two together, it is only a backstop behind the finer watch of each connection.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle + limits.header_read)
        .keep_alive(true);
    let shutdown = pin!(shutdown);
    let serving = Serving {
        quick,
        routes,
        http,
        limits,
        stopping,
    };
    if tls.is_none() && serving.quick.any() {
        match lanes::start(&listener, &places, &serving) {
            Ok(_) => {
                drop((listener, serving));
                shutdown.await;
                stop.send_replace(true);
                let _ = places.acquire_many(connections as u32).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot serve on threads of their own: serving on the runtime's")
            }
        }
    }
    accept_on_runtime(listener, places, serving, tls, (stop, shutdown)).await
}

/// What every connection of a server is served with.
struct Serving<F> {
    quick: Arc<dyn Quick>,
    routes: F,
    http: hyper::server::conn::http1::Builder,
    limits: Limits,
    /// Becomes true when the server shuts down.
    stopping: watch::Receiver<bool>,
}

impl<F: Clone> Clone for Serving<F> {
    fn clone(&self) -> Self {
        Serving {
            quick: self.quick.clone(),
            routes: self.routes.clone(),
            http: self.http.clone(),
            limits: self.limits,
            stopping: self.stopping.clone(),
        }
    }
}

/// Accepts and serves every connection on the caller's runtime until `shutdown` ends.
async fn accept_on_runtime<F, R>(
    listener: TcpListener,
    places: Arc<Semaphore>,
    serving: Serving<F>,
    tls: Option<ServerTls>,
    (stop, shutdown): (watch::Sender<bool>, Pin<&mut impl Future<Output = ()>>),
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let connections = places.available_permits();
    accept(&listener, &places, shutdown, |stream, peer, place| {
        let serving = serving.clone();
        match &tls {
            None => {
                tokio::spawn(quick_first(stream, peer, false, serving, place));
            }
            Some(tls) => {
                let tls = tls.clone();
                tokio::spawn(secure_connection(stream, peer, serving, tls, place));
            }
        }
    })
    .await;
    drop(listener);
    stop.send_replace(true);
    // Every connection holds a place until it ends: all places back, all connections done.
    let _ = places.acquire_many(connections as u32).await;
}

/// Accepts connections until `stop` ends, each once a place is free (beyond the bound,
/// connections wait in the kernel's backlog), and gives each to `serve` with its place.
async fn accept(
    listener: &TcpListener,
    places: &Arc<Semaphore>,
    mut stop: Pin<&mut impl Future<Output = ()>>,
    mut serve: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
) {
    let local = listener.local_addr().ok();
    let mut said_full = false;
    loop {
        if places.available_permits() == 0 && !said_full {
            tracing::warn!(listen = ?local, "as many connections as allowed: new ones wait");
        }
        said_full = places.available_permits() == 0;
        let place = tokio::select! {
            biased;
            () = stop.as_mut() => break,
            place = places.clone().acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = stop.as_mut() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(listen = ?local, error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        // Small answers go out at once rather than after the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        serve(stream, peer, place);
    }
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// A connection to a TLS listener: its handshake, or a redirect to https for plain HTTP. The
/// handshake holds the connection's place, and has [`Limits::header_read`] to be done.
async fn secure_connection<F, R>(
    stream: TcpStream,
    peer: SocketAddr,
    serving: Serving<F>,
    tls: ServerTls,
    place: OwnedSemaphorePermit,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let limits = serving.limits;
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.header_read, stream.peek(&mut first)).await {
        Ok(Ok(1..)) => {}
        Ok(_) | Err(_) => return, // closed, failed, or silent: nothing to serve
    }
    if first[0] != TLS_HANDSHAKE {
        let service = TowerToHyperService::new(warp::service(to_https(tls)));
        let served = Served::new(service, Arc::new(NoQuick), peer, false);
        let Serving { http, stopping, .. } = serving;
        let stream = (stream, Vec::new());
        return connection(stream, served, http, limits, stopping, place).await;
    }
    let acceptor = TlsAcceptor::from(tls.config());
    let stream = match tokio::time::timeout(limits.header_read, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "TLS handshake too slow");
            return;
        }
    };
    quick_first(stream, peer, true, serving, place).await
}

/// A connection's requests: quick answers first (see [`quick`]), and from the first request
/// that is not one, the routes through hyper.
async fn quick_first<S, F, R>(
    stream: S,
    peer: SocketAddr,
    hsts: bool,
    serving: Serving<F>,
    place: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let rest = if serving.quick.any() {
        match quick::serve(stream, serving.answering(hsts)).await {
            quick::Ended::Closed => return,
            quick::Ended::Routes { read, stream } => (stream, read),
        }
    } else {
        (stream, Vec::new())
    };
    by_routes(rest, peer, hsts, serving, place).await
}

/// The rest of a connection, served by hyper (`read` of it first): the quick answers, then the
/// routes.
async fn by_routes<S, F, R>(
    (stream, read): (S, Vec<u8>),
    peer: SocketAddr,
    hsts: bool,
    serving: Serving<F>,
    place: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let Serving {
        quick,
        routes,
        http,
        limits,
        stopping,
    } = serving;
    let service = TowerToHyperService::new(warp::service(routes));
    let served = Served::new(service, quick, peer, hsts);
    connection((stream, read), served, http, limits, stopping, place).await
}

impl<F> Serving<F> {
    fn answering(&self, hsts: bool) -> quick::Answering<'_> {
        quick::Answering {
            quick: &*self.quick,
            limits: self.limits,
            stopping: self.stopping.clone(),
            hsts,
        }
    }
}

/// The answer to plain HTTP on a TLS listener: the same path and query over https, at the
/// host asked for if it is one of ours (never a name a client made up).
fn to_https(
    tls: ServerTls,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::header::headers_cloned()
        .and(warp::path::full())
        .and(query)
        .map(
            move |headers: hyper::HeaderMap, path: warp::path::FullPath, query: String| {
                let host = headers
                    .get(hyper::header::HOST)
                    .and_then(|h| h.to_str().ok());
                let authority = tls.https_authority(host);
                let query = if query.is_empty() {
                    String::new()
                } else {
                    format!("?{query}")
                };
                let location = format!("https://{authority}{}{query}", path.as_str());
                // Made of a valid host and a path and query hyper accepted: a valid URI; the
                // root is the answer should it ever not be.
                let location = location
                    .parse::<hyper::Uri>()
                    .unwrap_or_else(|_| hyper::Uri::from_static("/"));
                let mut answer = warp::redirect::permanent(location).into_response();
                answer.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
                answer
            },
        )
}

/// Serves a connection with hyper, `read` (bytes already taken from it) first.
async fn connection<S, T, B>(
    (stream, read): (S, Vec<u8>),
    service: Served<T>,
    http: hyper::server::conn::http1::Builder,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
    _place: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: hyper::service::Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
        + Send
        + 'static,
    T::Future: Send + 'static,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let peer = service.peer;
    let activity = service.activity.clone();
    let io = TokioIo::new(Watched {
        stream,
        read,
        at: 0,
        activity: activity.clone(),
    });
    let mut conn = pin!(http.serve_connection(io, service));
    let mut draining = false;
    loop {
        let now = Instant::now();
        let (deadline, _) = activity.deadline(&limits);
        // Woken at least every `header_read`: a head that starts between two looks is then
        // seen in time for its own deadline.
        let look = deadline.map_or(now + limits.header_read, |d| {
            d.min(now + limits.header_read.min(limits.idle))
        });
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(peer = %peer, error = %e, "connection ended");
                }
                return;
            }
            _ = stopping.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(look) => {
                if let (Some(deadline), why) = activity.deadline(&limits) {
                    if Instant::now() >= deadline {
                        tracing::debug!(peer = %peer, why, "closing a connection");
                        return;
                    }
                }
            }
        }
    }
}

/// What a connection is doing, as seen from its bytes and its requests.
struct Activity {
    /// A `std::sync::Mutex`: held for a few assignments, never across an await, and nearly
    /// always by the connection's own task.
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// The last time a byte was read or written.
    last_io: Instant,
    phase: Phase,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request being served since `since`; `head` is when the next one's first byte came.
    Waiting {
        since: Instant,
        head: Option<Instant>,
    },
    /// A request is being served: `body_read` once its body is in (or it had none),
    /// `answered` once the handler gave its answer (which may still be being written).
    Serving { body_read: bool, answered: bool },
}

impl Activity {
    fn new(now: Instant) -> Activity {
        Activity {
            state: Mutex::new(State {
                last_io: now,
                phase: Phase::Waiting {
                    since: now,
                    head: None,
                },
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn read(&self) {
        let now = Instant::now();
        self.with(|s| {
            s.last_io = now;
            if let Phase::Waiting {
                head: head @ None, ..
            } = &mut s.phase
            {
                *head = Some(now);
            }
        });
    }

    fn wrote(&self) {
        let now = Instant::now();
        self.with(|s| s.last_io = now);
    }

    fn request(&self, body_read: bool) {
        self.with(|s| {
            s.phase = Phase::Serving {
                body_read,
                answered: false,
            }
        });
    }

    fn body_read(&self) {
        self.with(|s| {
            if let Phase::Serving { body_read, .. } = &mut s.phase {
                *body_read = true;
            }
        });
    }

    fn answered(&self) {
        self.with(|s| {
            if let Phase::Serving { answered, .. } = &mut s.phase {
                *answered = true;
            }
        });
    }

    /// The answer is written (or abandoned): the connection waits for the next request.
    fn done(&self) {
        let now = Instant::now();
        self.with(|s| {
            s.phase = Phase::Waiting {
                since: now,
                head: None,
            }
        });
    }

    /// When this connection is to be closed if nothing changes (`None` while a handler works),
    /// and why.
    fn deadline(&self, limits: &Limits) -> (Option<Instant>, &'static str) {
        let s = self.with(|s| *s);
        match s.phase {
            Phase::Waiting {
                head: Some(head), ..
            } => (Some(head + limits.header_read), "request head too slow"),
            Phase::Waiting { since, head: None } => (Some(since + limits.idle), "idle"),
            Phase::Serving {
                body_read: false, ..
            } => (Some(s.last_io + limits.idle), "request body stalled"),
            Phase::Serving {
                answered: false, ..
            } => (None, "handler working"),
            Phase::Serving { .. } => (Some(s.last_io + limits.idle), "answer not read"),
        }
    }
}

/// The connection's socket (or TLS stream), telling its [`Activity`] of every byte; `read`
/// (from `at`) is what the quick answers read and left to the routes, read again first.
struct Watched<S> {
    stream: S,
    read: Vec<u8>,
    at: usize,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.read.len() {
            let n = buf.remaining().min(self.read.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.read[at..at + n]);
            self.at += n;
            if self.at == self.read.len() {
                self.read = Vec::new();
                self.at = 0;
            }
            self.activity.read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The routes as hyper's service: puts the [`Peer`] on each request and tells the connection's
/// [`Activity`] where the request stands.
struct Served<S> {
    routes: S,
    quick: Arc<dyn Quick>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    /// Over TLS: every answer says to come back over https only.
    hsts: bool,
}

impl<S> Served<S> {
    fn new(routes: S, quick: Arc<dyn Quick>, peer: SocketAddr, hsts: bool) -> Self {
        Served {
            routes,
            quick,
            activity: Arc::new(Activity::new(Instant::now())),
            peer,
            hsts,
        }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Served<S>
where
    S: hyper::service::Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<AnswerBody<Either<Full<Bytes>, B>>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        if request.body().is_end_stream() {
            let quick = self
                .quick
                .answer(request.method(), request.uri(), request.headers());
            if let Some(mut answer) = quick {
                crate::cors::allow(&mut answer);
                self.activity.request(true);
                let answer = self
                    .finisher()
                    .finish(answer.map(|b| Either::Left(Full::new(b))));
                return Box::pin(std::future::ready(Ok(answer)));
            }
        }
        request.extensions_mut().insert(Peer(self.peer));
        self.activity.request(request.body().is_end_stream());
        let request = request.map(|body| RequestBody {
            body,
            activity: self.activity.clone(),
        });
        let answer = self.routes.call(request);
        let finish = self.finisher();
        Box::pin(async move {
            let answer = answer.await?;
            Ok(finish.finish(answer.map(Either::Right)))
        })
    }
}

impl<S> Served<S> {
    fn finisher(&self) -> Finish {
        Finish {
            activity: self.activity.clone(),
            hsts: self.hsts,
        }
    }
}

/// What every answer gets once its handler is done, quick or not.
struct Finish {
    activity: Arc<Activity>,
    /// Over TLS: every answer says to come back over https only.
    hsts: bool,
}

impl Finish {
    fn finish<B>(self, mut answer: Response<B>) -> Response<AnswerBody<B>> {
        if self.hsts {
            answer.headers_mut().insert(
                hyper::header::STRICT_TRANSPORT_SECURITY,
                hyper::header::HeaderValue::from_static(crate::tls::HSTS),
            );
        }
        self.activity.answered();
        let activity = self.activity;
        answer.map(|body| AnswerBody { body, activity })
    }
}

/// A request's body, telling the connection when it is all in (or no longer wanted).
struct RequestBody {
    body: Incoming,
    activity: Arc<Activity>,
}

impl Body for RequestBody {
    type Data = <Incoming as Body>::Data;
    type Error = <Incoming as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.activity.body_read();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for RequestBody {
    /// A handler that drops the body is no longer waiting for the client.
    fn drop(&mut self) {
        self.activity.body_read();
    }
}

/// An answer's body, telling the connection when hyper is done with it.
struct AnswerBody<B> {
    body: B,
    activity: Arc<Activity>,
}

impl<B: Body + Unpin> Body for AnswerBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for AnswerBody<B> {
    fn drop(&mut self) {
        self.activity.done();
    }
}
