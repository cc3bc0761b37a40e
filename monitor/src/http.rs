//! The monitor's own HTTP: `/health` (every detector's status, last run and last finding, and
//! whether the event log can be written), `/events`, `/ping` for peers, `/workers`, and the
//! node's repair `/tickets` (read by anyone; marked only with a request signed with the
//! cluster's secret).

use std::convert::Infallible;
use std::sync::Arc;

use serde::Deserialize;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::node_monitor::Monitor;
use crate::tickets;
use cluster::auth::{NonceBook, Secret, AUTH_HEADER};

/// A mark's body: a few words from the operator.
const MAX_MARK: u64 = 16 * 1024;

fn text(status: StatusCode, body: String) -> warp::reply::Response {
    no_store(warp::reply::with_status(format!("{body}\n"), status).into_response())
}

#[derive(Deserialize)]
struct EventsQuery {
    since: Option<u64>,
    /// Only events last seen at or after this time (seconds since the Unix epoch).
    from: Option<u64>,
    limit: Option<usize>,
}

pub fn routes(
    monitor: Arc<Monitor>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let m_config = monitor.cluster.clone();
    let m = warp::any().map(move || monitor.clone());
    let ping = warp::path!("ping")
        .and(warp::get())
        .and(m.clone())
        .map(|m: Arc<Monitor>| format!("monitor of {} is here\n", m.node.name));
    let health =
        warp::path!("health")
            .and(warp::get())
            .and(m.clone())
            .then(|m: Arc<Monitor>| async move {
                // The write check touches the disk: off the async threads.
                let log = m.clone();
                let writable = tokio::task::spawn_blocking(move || log.recorder.log().writable())
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                let detectors = m.statuses.all();
                let failing = detectors.iter().filter(|d| d.state == "error").count();
                let ok = failing == 0 && writable.is_ok();
                let body = serde_json::json!({
                    "node": m.node.name,
                    "pid": std::process::id(),
                    "status": if ok { "ok" } else { "degraded" },
                    "event_log": match &writable {
                        Ok(()) => serde_json::json!({ "writable": true }),
                        Err(e) => serde_json::json!({ "writable": false, "error": e }),
                    },
                    "detectors": detectors,
                });
                no_store(warp::reply::json(&body).into_response())
            });
    let events = warp::path!("events")
        .and(warp::get())
        .and(warp::query::<EventsQuery>())
        .and(m.clone())
        .map(|q: EventsQuery, m: Arc<Monitor>| {
            let limit = q.limit.unwrap_or(1000).min(10_000);
            let log = m.recorder.log();
            let page = match (q.since, q.from) {
                (None, None) => log.recent(limit),
                (since, from) => log.since_time(since.unwrap_or(0), from.unwrap_or(0), limit),
            };
            no_store(warp::reply::json(&page).into_response())
        });
    let workers = warp::path!("workers")
        .and(warp::get())
        .and(m.clone())
        .map(|m: Arc<Monitor>| no_store(warp::reply::json(&m.runner.statuses()).into_response()));
    let tickets =
        warp::path!("tickets")
            .and(warp::get())
            .and(m.clone())
            .then(|m: Arc<Monitor>| async move {
                no_store(warp::reply::json(&tickets::page(&m).await).into_response())
            });
    let secret = Secret::load(&m_config.secret_path()).ok().map(Arc::new);
    let nonces = Arc::new(NonceBook::default());
    let mark = warp::path!("tickets" / String)
        .and(warp::post())
        .and(warp::path::full())
        .and(warp::header::optional::<String>(AUTH_HEADER))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::content_length_limit(MAX_MARK))
        .and(warp::body::bytes())
        .and(m)
        .then(
            move |id: String,
                  path: warp::path::FullPath,
                  auth: Option<String>,
                  content_type: Option<String>,
                  body: bytes::Bytes,
                  m: Arc<Monitor>| {
                let (secret, nonces) = (secret.clone(), nonces.clone());
                async move {
                    if !cluster::ticket::valid_ticket_id(&id) {
                        return text(StatusCode::BAD_REQUEST, "malformed ticket id".into());
                    }
                    let call = tickets::MarkCall {
                        id: &id,
                        path_and_query: path.as_str(),
                        auth: auth.as_deref(),
                        content_type: content_type.as_deref().unwrap_or(""),
                        body: &body,
                    };
                    match tickets::mark(&m, secret.as_deref(), &nonces, call).await {
                        Ok(t) => no_store(warp::reply::json(&t).into_response()),
                        Err(e) => {
                            let status = match e {
                                tickets::MarkError::Unsigned(_) => StatusCode::UNAUTHORIZED,
                                tickets::MarkError::Malformed(_) => StatusCode::BAD_REQUEST,
                                tickets::MarkError::Unknown { .. } => StatusCode::NOT_FOUND,
                                tickets::MarkError::Ended { .. } => StatusCode::CONFLICT,
                            };
                            text(status, e.to_string())
                        }
                    }
                }
            },
        );
    ping.or(health)
        .or(events)
        .or(workers)
        .or(tickets)
        .or(mark)
        .recover(|_| async {
            Ok::<_, Infallible>(warp::reply::with_status(
                "not found: the monitor answers /health, /events?since=&from=&limit=, /ping, /workers and /tickets\n",
                StatusCode::NOT_FOUND,
            ))
        })
}

fn no_store(mut r: warp::reply::Response) -> warp::reply::Response {
    r.headers_mut().insert(
        "cache-control",
        warp::http::HeaderValue::from_static("no-store"),
    );
    r
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    monitor: Arc<Monitor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    floor::serve::serve(
        listener,
        routes(monitor),
        floor::serve::Limits::default(),
        shutdown,
    )
    .await;
}
