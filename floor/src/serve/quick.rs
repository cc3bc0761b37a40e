//! Quick answers, given below hyper: a connection's requests are read here first, and as long as
//! each one is a [`Quick`] answer, it is parsed, answered and written here, several at once when
//! a client sends them back to back. At the first request that is not, the connection and every
//! byte read from it so far are handed to hyper, which serves the rest of the
//! connection as before.
//!
//! Why: a redirect through hyper cost about 1.4× nginx's CPU per answer for the same two system
//! calls (a read and a write). Here an answer is a parse of the head, the server's own function
//! and one buffer written, with no dispatcher, boxed future or task wake per request. Alone this
//! gained little (0.68 to 0.73 of nginx's redirects): most of the rest was the runtime's threads
//! waking each other, which [`super::lanes`] removes; this module is what a lane runs.
//!
//! Only the plainest requests are answered here: HTTP/1.1, `GET` or `HEAD`, no body, no
//! `Connection` other than `keep-alive`, no `Upgrade` or `Expect`, a head of at most
//! [`MAX_HEAD`] bytes with at most [`MAX_HEADERS`] headers, each a valid name and value.
//! Anything else, a malformed head included, goes to hyper, which answers or refuses it as it
//! always has. The limits of the module above hold here too: a head must arrive whole within
//! [`Limits::header_read`] of its first byte, a connection idle (nothing to read, or an answer
//! the client does not take) for [`Limits::idle`] is closed, and a shutdown closes it between
//! requests. Timers are not set per request: one per connection, moved only when it fires early.

use std::io::IoSlice;
use std::pin::{pin, Pin};
use std::time::SystemTime;

use hyper::body::Bytes;
use hyper::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::{Method, Response, StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Limits;

/// The longest request head answered here; a longer one is hyper's to take or refuse.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most headers a request answered here may have (browsers send about a dozen).
pub const MAX_HEADERS: usize = 48;
/// A body at least this long is written from where it is, not copied after its head.
const COPIED_BODY: usize = 4 * 1024;

/// Answers given before the routes are tried, from what the request's head says alone.
///
/// `None` leaves the request to the routes, so an answer here must be the one the routes would
/// give (each server tests that it is). Only requests without a body are offered, and every
/// quick answer is made readable from other websites, as the routes' public answers are.
pub trait Quick: Send + Sync + 'static {
    fn answer(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response<Bytes>>;

    /// Whether this server has quick answers at all: without, connections go to hyper at once.
    fn any(&self) -> bool {
        true
    }
}

/// No quick answers: every request goes to the routes.
pub struct NoQuick;

impl Quick for NoQuick {
    fn answer(&self, _: &Method, _: &Uri, _: &HeaderMap) -> Option<Response<Bytes>> {
        None
    }

    fn any(&self) -> bool {
        false
    }
}

/// How a connection left the quick answers.
pub enum Ended<S> {
    /// Closed: by the client, for idleness or a slow head, on shutdown, or after an error.
    Closed,
    /// A request the quick answers do not give: hyper serves the connection from here, `read`
    /// (what was read of it and after it) first.
    Routes { read: Vec<u8>, stream: S },
}

/// What the quick answers need of the server that serves the connection.
pub struct Answering<'a> {
    pub quick: &'a dyn Quick,
    pub limits: Limits,
    /// Becomes true when the server shuts down.
    pub stopping: watch::Receiver<bool>,
    /// Over TLS: every answer says to come back over https only.
    pub hsts: bool,
}

/// Serves quick answers on `stream` until it closes or a request needs the routes.
pub async fn serve<S>(mut stream: S, with: Answering<'_>) -> Ended<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Answering {
        quick,
        limits,
        mut stopping,
        hsts,
    } = with;
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut answers = Answers::default();
    let mut clock = Clock::new(limits);
    let mut timer = pin!(tokio::time::sleep_until(clock.next_look(false)));
    // Made once per connection: a wait made afresh at every read costs a registration with the
    // channel each time (2 % of a tile server's time, perf).
    let mut stopped = pin!(async move {
        // A server gone without a word (its sender dropped) stops as well.
        let _ = stopping.wait_for(|stop| *stop).await;
    });
    loop {
        // Every whole head read so far: answered here, or the rest is hyper's.
        let mut used = 0;
        let mut close = false;
        let routes = loop {
            match next_request(&input[used..], quick, hsts) {
                Next::Answer { length, answer } => {
                    used += length;
                    close = answers.push(answer);
                    if close {
                        break false;
                    }
                }
                Next::Partial => break input.len() - used > MAX_HEAD,
                Next::Routes => break true,
            }
        };
        if used > 0 {
            clock.answered(input.len() > used);
        }
        if !answers.is_empty() {
            if let Err(e) = answers.write(&mut stream, &mut clock, timer.as_mut()).await {
                tracing::debug!(error = %e, "quick answers not written");
                return Ended::Closed;
            }
        }
        if close {
            return Ended::Closed;
        }
        input.drain(..used);
        if routes {
            return Ended::Routes {
                read: input,
                stream,
            };
        }
        if input.capacity() - input.len() < 1024 {
            input.reserve(4096);
        }
        let read = loop {
            tokio::select! {
                biased;
                // Between two requests, a shutdown closes the connection even if the client
                // has sent the next one.
                () = stopped.as_mut(), if input.is_empty() => return Ended::Closed,
                read = stream.read_buf(&mut input) => break read,
                () = timer.as_mut() => {
                    let (deadline, why) = clock.deadline(false);
                    if Instant::now() >= deadline {
                        tracing::debug!(why, "closing a connection");
                        return Ended::Closed;
                    }
                    timer.as_mut().reset(clock.next_look(false));
                }
            }
        };
        match read {
            Ok(0) | Err(_) => return Ended::Closed,
            Ok(_) => clock.read(),
        }
    }
}

/// When this connection last did something, and what it is waiting for.
struct Clock {
    limits: Limits,
    /// The last byte read or written.
    last: Instant,
    /// The last read.
    last_read: Instant,
    /// When the first byte of the head being read arrived, if one is being read.
    head: Option<Instant>,
}

impl Clock {
    fn new(limits: Limits) -> Clock {
        let now = Instant::now();
        Clock {
            limits,
            last: now,
            last_read: now,
            head: None,
        }
    }

    fn read(&mut self) {
        let now = Instant::now();
        self.last = now;
        self.last_read = now;
        self.head.get_or_insert(now);
    }

    fn wrote(&mut self) {
        self.last = Instant::now();
    }

    /// Whole heads were taken from the input; `rest` if a part of the next one is left, which
    /// came with the last read at the earliest.
    fn answered(&mut self, rest: bool) {
        self.head = rest.then_some(self.last_read);
    }

    /// When to close the connection if nothing happens, and why: idle while `writing` or with
    /// nothing read, or a head too slow.
    fn deadline(&self, writing: bool) -> (Instant, &'static str) {
        match self.head {
            Some(head) if !writing => (head + self.limits.header_read, "request head too slow"),
            _ => (self.last + self.limits.idle, "idle"),
        }
    }

    /// When to look again: at the deadline, and at least every `header_read`, so a head that
    /// begins between two looks is seen by its own deadline.
    fn next_look(&self, writing: bool) -> Instant {
        let (deadline, _) = self.deadline(writing);
        deadline.min(Instant::now() + self.limits.header_read)
    }
}

/// What the bytes at the front of a connection's input are.
enum Next {
    /// A request answered here, `length` bytes long.
    Answer { length: usize, answer: Encoded },
    /// Not a whole head yet.
    Partial,
    /// A request for hyper and the routes (or something hyper is to refuse).
    Routes,
}

fn next_request(input: &[u8], quick: &dyn Quick, hsts: bool) -> Next {
    if input.is_empty() {
        return Next::Partial;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(input) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Next::Partial,
        Err(_) => return Next::Routes,
    };
    match answer(&request, quick, hsts) {
        Some(answer) => Next::Answer { length, answer },
        None => Next::Routes,
    }
}

/// The quick answer to a whole request head, encoded, if it has one.
fn answer(request: &httparse::Request, quick: &dyn Quick, hsts: bool) -> Option<Encoded> {
    if request.version != Some(1) {
        return None;
    }
    let method = match request.method? {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        _ => return None,
    };
    let uri = Uri::try_from(request.path?).ok()?;
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for h in request.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let plain = if name == header::CONTENT_LENGTH {
            h.value == b"0"
        } else if name == header::CONNECTION {
            h.value.trim_ascii().eq_ignore_ascii_case(b"keep-alive")
        } else {
            name != header::TRANSFER_ENCODING && name != header::UPGRADE && name != header::EXPECT
        };
        if !plain {
            return None;
        }
        headers.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let mut response = quick.answer(&method, &uri, &headers)?;
    crate::cors::allow(&mut response);
    if hsts {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(crate::tls::HSTS),
        );
    }
    Some(encode(response, method == Method::HEAD))
}

/// An answer as HTTP/1.1 puts it.
struct Encoded {
    head: Vec<u8>,
    /// None for `HEAD`, and for the statuses that have none.
    body: Bytes,
    /// The answer says `connection: close`: nothing more is read.
    close: bool,
}

fn encode(response: Response<Bytes>, head_only: bool) -> Encoded {
    let (parts, body) = response.into_parts();
    let close = parts
        .headers
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let status = parts.status;
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    // A 1xx, 204 or 304 answer has no body, and says nothing of its length.
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if !bodiless && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(body.len().to_string().as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        head.extend_from_slice(b"date: ");
        DATE.with(|date| head.extend_from_slice(date.borrow_mut().now()));
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let body = if head_only || bodiless {
        Bytes::new()
    } else {
        body
    };
    Encoded { head, body, close }
}

thread_local! {
    static DATE: std::cell::RefCell<Date> = const { std::cell::RefCell::new(Date { second: u64::MAX, text: Vec::new() }) };
}

/// The `Date` header's value, made once per second per thread.
struct Date {
    second: u64,
    text: Vec<u8>,
}

impl Date {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if second != self.second {
            self.second = second;
            self.text = httpdate::fmt_http_date(now).into_bytes();
        }
        &self.text
    }
}

/// Answers encoded and not yet written, in order.
#[derive(Default)]
struct Answers {
    /// Heads and short bodies, copied together.
    copied: Vec<u8>,
    /// What is ready to go out, in order: copied runs and long bodies.
    pieces: Vec<Bytes>,
}

impl Answers {
    /// Adds an answer; true if the connection is to close after it.
    fn push(&mut self, answer: Encoded) -> bool {
        let Encoded { head, body, close } = answer;
        if self.copied.is_empty() && self.pieces.is_empty() {
            self.copied = head;
        } else {
            self.copied.extend_from_slice(&head);
        }
        if body.len() < COPIED_BODY {
            self.copied.extend_from_slice(&body);
        } else {
            self.pieces
                .push(Bytes::from(std::mem::take(&mut self.copied)));
            self.pieces.push(body);
        }
        close
    }

    fn is_empty(&self) -> bool {
        self.copied.is_empty() && self.pieces.is_empty()
    }

    /// Writes every answer, giving up when the client takes nothing for the idle limit.
    async fn write<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        clock: &mut Clock,
        mut timer: Pin<&mut tokio::time::Sleep>,
    ) -> std::io::Result<()> {
        if !self.copied.is_empty() {
            self.pieces
                .push(Bytes::from(std::mem::take(&mut self.copied)));
        }
        let mut first = 0;
        while first < self.pieces.len() {
            let slices: Vec<IoSlice> = self.pieces[first..]
                .iter()
                .take(64)
                .map(|p| IoSlice::new(p))
                .collect();
            let written = loop {
                tokio::select! {
                    biased;
                    written = stream.write_vectored(&slices) => break written?,
                    () = timer.as_mut() => {
                        if Instant::now() >= clock.deadline(true).0 {
                            return Err(std::io::ErrorKind::TimedOut.into());
                        }
                        timer.as_mut().reset(clock.next_look(true));
                    }
                }
            };
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            clock.wrote();
            let mut left = written;
            while left > 0 {
                let piece = &mut self.pieces[first];
                if left >= piece.len() {
                    left -= piece.len();
                    first += 1;
                } else {
                    *piece = piece.slice(left..);
                    left = 0;
                }
            }
        }
        self.pieces.clear();
        stream.flush().await
    }
}
