//! The one HTTP server on a real loopback socket, with short limits so a test waits seconds:
//! slow-loris heads are closed after the header timeout while a keep-alive client is served
//! throughout, an idle connection rests past the header timeout and is closed when idle, a
//! stalled body is closed, a slow handler is not, connections beyond the bound wait, a
//! shutdown lets the request in flight finish, and quick answers and the routes' share a
//! connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use floor::serve::{serve_quick, Limits, Quick};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{timeout, Instant};
use warp::http::{HeaderMap, Method, Response, Uri};
use warp::hyper::body::Bytes;
use warp::Filter;

/// How long a test waits for something that must happen before it calls it a failure.
const PATIENCE: Duration = Duration::from_secs(30);

/// A server of `/hello`, `/peer` (the client's address), `/echo` (a POST's body), `/slow`
/// (answers after `pause`) and `/held` (answers when the test says), torn down with the test's
/// runtime; `/echo` without a body is a quick answer, "quick".
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

fn start(limits: Limits, held: Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let addr = listener.local_addr().unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(held));
    let hello = warp::path!("hello").map(|| "hello".to_string());
    let peer = warp::path!("peer")
        .and(floor::serve::remote())
        .map(|p: Option<SocketAddr>| format!("{p:?}"));
    let echo = warp::path!("echo")
        .and(warp::body::bytes())
        .map(|b: warp::hyper::body::Bytes| format!("{} bytes", b.len()));
    let slow = warp::path!("slow" / u64).then(|ms| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        "slow".to_string()
    });
    let held = warp::path!("held").then(move || {
        let held = held.lock().unwrap().take();
        async move {
            if let Some((started, release)) = held {
                let _ = started.send(());
                let _ = release.await;
            }
            "held".to_string()
        }
    });
    let routes = hello
        .or(peer)
        .unify()
        .or(echo)
        .unify()
        .or(slow)
        .unify()
        .or(held)
        .unify()
        .recover(|_| async { Ok::<_, Infallible>("not found".to_string()) })
        .unify();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(serve_quick(
        listener,
        std::sync::Arc::new(QuickEcho),
        routes,
        limits,
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        stop: Some(stop),
        done,
    }
}

struct QuickEcho;

impl Quick for QuickEcho {
    fn answer(&self, _: &Method, uri: &Uri, _: &HeaderMap) -> Option<Response<Bytes>> {
        (uri.path() == "/echo").then(|| Response::new(Bytes::from_static(b"quick")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.done.abort();
    }
}

fn limits(header_read_ms: u64, idle_ms: u64, connections: usize) -> Limits {
    Limits {
        header_read: Duration::from_millis(header_read_ms),
        idle: Duration::from_millis(idle_ms),
        connections,
    }
}

/// Sends one GET on `stream` and reads its answer: the status and the body.
async fn get(stream: &mut TcpStream, path: &str) -> std::io::Result<(u16, String)> {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes())
        .await?;
    answer(stream).await
}

/// Reads one answer with a `content-length`.
async fn answer(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((status, body, _)) = parse_answer(&bytes) {
            return Ok((status, body));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// The first whole answer (with a `content-length`) in `bytes`: its status, body and length.
fn parse_answer(bytes: &[u8]) -> Option<(u16, String, usize)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let whole = end + 4 + length;
    (bytes.len() >= whole).then(|| {
        let status = head[9..12].parse().unwrap();
        let body = String::from_utf8_lossy(&bytes[end + 4..whole]).into();
        (status, body, whole)
    })
}

/// Waits until the server closes `stream`; when, or `None` if it was still open after
/// [`PATIENCE`]. Fails if the server sent anything.
async fn closed(stream: &mut TcpStream) -> Option<Instant> {
    let mut chunk = [0u8; 64];
    match timeout(PATIENCE, stream.read(&mut chunk)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(Instant::now()),
        Ok(Ok(n)) => panic!(
            "the server answered a connection it should close: {:?}",
            String::from_utf8_lossy(&chunk[..n])
        ),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_heads_are_closed_after_the_header_timeout_while_a_keep_alive_client_is_served()
{
    let limits = limits(1000, 30_000, 1000);
    let server = start(limits, None);
    const SLOW: usize = 300;
    let mut crowd = tokio::task::JoinSet::new();
    for i in 0..SLOW {
        let addr = server.addr;
        crowd.spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // Stamped before the write: the server cannot see the first byte earlier, however
            // long this thread is kept from running after the write.
            let sent = Instant::now();
            s.write_all(b"GET /hello HTTP/1.1\r\nhost: test\r\nx-slow: ")
                .await
                .unwrap();
            let trickles = i % 2 == 0;
            let mut chunk = [0u8; 64];
            let give_up = sent + PATIENCE;
            // Half of them send one more byte of the head every 100 ms, the others stall.
            loop {
                tokio::select! {
                    read = s.read(&mut chunk) => {
                        return match read {
                            Ok(0) | Err(_) => (trickles, Some(Instant::now() - sent)),
                            Ok(n) => panic!("answered: {:?}", String::from_utf8_lossy(&chunk[..n])),
                        };
                    }
                    () = tokio::time::sleep(Duration::from_millis(100)), if trickles => {
                        if s.write_all(b"a").await.is_err() {
                            return (trickles, Some(Instant::now() - sent));
                        }
                    }
                    () = tokio::time::sleep_until(give_up) => return (trickles, None),
                }
            }
        });
    }
    // One keep-alive client, served on one connection for as long as the crowd is there.
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let mut served = 0;
    let mut outcomes = Vec::new();
    while outcomes.len() < SLOW {
        let (status, body) = get(&mut client, "/hello")
            .await
            .unwrap_or_else(|e| panic!("request {served} of the keep-alive client: {e}"));
        assert_eq!((status, body.as_str()), (200, "hello"), "request {served}");
        served += 1;
        while let Some(outcome) = crowd.try_join_next() {
            outcomes.push(outcome.unwrap());
        }
        tokio::task::yield_now().await;
    }
    assert!(served > 0);
    for (trickles, closed_after) in outcomes {
        let after = closed_after.unwrap_or_else(|| {
            panic!("a slow head (trickling: {trickles}) still open after {PATIENCE:?}")
        });
        assert!(
            after >= limits.header_read,
            "closed {after:?} after its first byte, before the header timeout"
        );
    }
    // Still the same connection, still served.
    assert_eq!(get(&mut client, "/hello").await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_rests_past_the_header_timeout_and_is_closed_when_idle() {
    let limits = limits(300, 2000, 10);
    let server = start(limits, None);
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(get(&mut client, "/hello").await.unwrap().0, 200);
    // Twice the header timeout between two requests on one connection.
    tokio::time::sleep(limits.header_read * 2).await;
    // Every time here is stamped before the bytes it stands for are sent: the server's clock
    // starts after ours, however long this thread waits to run.
    let asked = Instant::now();
    assert_eq!(get(&mut client, "/hello").await.unwrap().0, 200);
    let closed_at = closed(&mut client)
        .await
        .expect("an idle connection is closed");
    assert!(closed_at - asked >= limits.idle, "{:?}", closed_at - asked);
    // A connection that never sends a byte is idle too.
    let opened = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let closed_at = closed(&mut silent)
        .await
        .expect("a silent connection is closed");
    assert!(closed_at - opened >= limits.idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_closed_and_a_slow_handler_is_not() {
    let limits = limits(300, 1000, 10);
    let server = start(limits, None);
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    let sent = Instant::now(); // before the bytes go: the server's clock starts after ours
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let closed_at = closed(&mut stalled)
        .await
        .expect("a stalled body is closed");
    assert!(closed_at - sent >= limits.idle);
    // A whole body is answered.
    let mut whole = TcpStream::connect(server.addr).await.unwrap();
    whole
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\n0123456789")
        .await
        .unwrap();
    assert_eq!(
        answer(&mut whole).await.unwrap(),
        (200, "10 bytes".to_string())
    );
    // A handler that works for longer than the idle timeout, with nothing on the wire.
    let mut patient = TcpStream::connect(server.addr).await.unwrap();
    let slow = format!("/slow/{}", (limits.idle * 3).as_millis());
    assert_eq!(
        get(&mut patient, &slow).await.unwrap(),
        (200, "slow".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_bound_a_connection_waits_for_a_place() {
    let limits = limits(30_000, 30_000, 1);
    let server = start(limits, None);
    let mut holder = TcpStream::connect(server.addr).await.unwrap();
    holder
        .write_all(b"GET /hello HTTP/1.1\r\nhost: test\r\n")
        .await
        .unwrap();
    // The kernel completes the second connection; the server does not take it yet.
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second
        .write_all(b"GET /hello HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(500), second.read(&mut byte))
            .await
            .is_err(),
        "answered while the only place was taken"
    );
    // The holder finishes and leaves: its place goes to the second.
    holder
        .write_all(b"connection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(answer(&mut holder).await.unwrap().0, 200);
    let (status, body) = timeout(PATIENCE, answer(&mut second))
        .await
        .expect("served once a place is free")
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_s_address_is_on_each_request() {
    let server = start(Limits::default(), None);
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let (status, body) = get(&mut client, "/peer").await.unwrap();
    assert_eq!(
        (status, body),
        (200, format!("{:?}", Some(client.local_addr().unwrap())))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_closes_the_listener_and_idle_connections_and_lets_a_request_finish() {
    let (started, handler_started) = oneshot::channel();
    let (release, released) = oneshot::channel();
    let mut server = start(Limits::default(), Some((started, released)));
    let addr = server.addr;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get(&mut idle, "/hello").await.unwrap().0, 200);
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /held HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    handler_started.await.unwrap();

    server.stop.take().unwrap().send(()).unwrap();
    let asked = Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => assert!(
                asked.elapsed() < PATIENCE,
                "still accepting after a shutdown"
            ),
        }
        tokio::task::yield_now().await;
    }
    closed(&mut idle)
        .await
        .expect("an idle connection is closed at a shutdown");
    assert!(
        !server.done.is_finished(),
        "the server ended with a request in flight"
    );
    release.send(()).unwrap();
    let (status, body) = answer(&mut busy).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "held"));
    timeout(PATIENCE, &mut server.done)
        .await
        .expect("the server ends once its last request is answered")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_answers_and_the_routes_share_a_keep_alive_connection_that_then_rests_and_closes() {
    let server = start(limits(200, 500, 8), None);
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    // A quick answer, readable from other websites as every public answer is.
    client
        .write_all(b"GET /echo HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\nquick") {
        let mut byte = [0u8; 1];
        assert_eq!(client.read(&mut byte).await.unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    // A request with a body is the routes' even where a quick answer would be given.
    client
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 3\r\n\r\nabc")
        .await
        .unwrap();
    assert_eq!(answer(&mut client).await.unwrap(), (200, "3 bytes".into()));
    assert_eq!(
        get(&mut client, "/echo").await.unwrap(),
        (200, "quick".into())
    );
    assert_eq!(
        get(&mut client, "/hello").await.unwrap(),
        (200, "hello".into())
    );
    // Answered, the connection waits for the next request and is closed when idle.
    let answered = Instant::now();
    let closed_at = closed(&mut client).await.expect("closed when idle");
    assert!(closed_at - answered >= Duration::from_millis(400));
}

/// Reads `count` answers with a `content-length` sent back to back: their statuses and bodies.
async fn several(stream: &mut TcpStream, count: usize) -> Vec<(u16, String)> {
    let mut bytes = Vec::new();
    let mut found = Vec::new();
    let mut chunk = [0u8; 4096];
    while found.len() < count {
        if let Some((status, body, whole)) = parse_answer(&bytes) {
            found.push((status, body));
            bytes.drain(..whole);
            continue;
        }
        let n = timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after {} answers", found.len());
        bytes.extend_from_slice(&chunk[..n]);
    }
    assert!(bytes.is_empty(), "more than {count} answers");
    found
}

/// Reads until the end of an answer's head (no body is read), and gives the head.
async fn head_only(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sent_back_to_back_are_answered_in_order_whoever_answers_them() {
    let server = start(limits(2000, 5000, 8), None);
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    // Five requests in one write: quick ones, one for the routes among them, and one whose head
    // is longer than a quick answer reads (hyper takes it, with what came before it).
    let long = "x".repeat(floor::serve::MAX_QUICK_HEAD + 1);
    let sent = format!(
        "GET /echo HTTP/1.1\r\nhost: test\r\n\r\n\
         GET /echo HTTP/1.1\r\nhost: test\r\nconnection: keep-alive\r\n\r\n\
         GET /hello HTTP/1.1\r\nhost: test\r\n\r\n\
         GET /echo HTTP/1.1\r\nhost: test\r\n\r\n\
         GET /echo HTTP/1.1\r\nhost: test\r\nx-long: {long}\r\n\r\n"
    );
    client.write_all(sent.as_bytes()).await.unwrap();
    let bodies: Vec<String> = several(&mut client, 5)
        .await
        .into_iter()
        .map(|(status, body)| {
            assert_eq!(status, 200, "{body}");
            body
        })
        .collect();
    assert_eq!(bodies, ["quick", "quick", "hello", "quick", "quick"]);
    // A fresh connection, answered below hyper throughout.
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    // HEAD: the length of what GET would send, and no body (the next answer follows at once).
    client
        .write_all(
            b"HEAD /echo HTTP/1.1\r\nhost: test\r\n\r\nGET /echo HTTP/1.1\r\nhost: test\r\n\r\n",
        )
        .await
        .unwrap();
    let head = head_only(&mut client).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("\r\ncontent-length: 5\r\n"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    assert_eq!(answer(&mut client).await.unwrap(), (200, "quick".into()));
    // A head split over several writes is read whole.
    for part in ["GET /ec", "ho HTTP/1.1\r\nho", "st: test\r\n", "\r\n"] {
        client.write_all(part.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer(&mut client).await.unwrap(), (200, "quick".into()));
    // A malformed head is refused as hyper refuses it, and the connection closed.
    client
        .write_all(b"GET /echo HTTP/1.1\r\nhost test\r\n\r\n")
        .await
        .unwrap();
    let (status, _) = answer(&mut client).await.unwrap();
    assert_eq!(status, 400);
    assert!(closed(&mut client).await.is_some());
    // A client that asks to close gets its answer, then the connection is closed.
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"GET /echo HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(answer(&mut client).await.unwrap(), (200, "quick".into()));
    assert!(closed(&mut client).await.is_some());
    // HTTP/1.0 is hyper's too, and answered.
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"GET /echo HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(answer(&mut client).await.unwrap(), (200, "quick".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_requests_and_never_reads_the_answers_is_closed_when_idle() {
    let server = start(limits(500, 1000, 8), None);
    let client = TcpStream::connect(server.addr).await.unwrap();
    let (_reader, mut writer) = client.into_split();
    // Quick requests back to back, as fast as the server takes them; no answer is ever read, so
    // the server's writes stall once the socket's buffers are full, then its reads.
    let started = Instant::now();
    let batch = "GET /echo HTTP/1.1\r\nhost: test\r\n\r\n".repeat(100);
    let mut sent = 0usize;
    let refused = timeout(PATIENCE, async {
        loop {
            if let Err(e) = writer.write_all(batch.as_bytes()).await {
                return e;
            }
            sent += 100;
        }
    })
    .await
    .expect("the connection is closed, not kept for ever");
    // Closed for idleness (nothing taken for a second), not at once.
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{refused}"
    );
    assert!(sent > 100, "the server read requests before it stalled");
    // The server still serves everyone else.
    let mut other = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(
        get(&mut other, "/echo").await.unwrap(),
        (200, "quick".into())
    );
}
