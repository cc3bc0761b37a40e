//! The monitor's own HTTP: `/health` (every detector's status, last run and last finding, and
//! whether the event log can be written), `/events`, `/ping` for peers and `/workers`.

use std::convert::Infallible;
use std::sync::Arc;

use serde::Deserialize;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::node_monitor::Monitor;

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
        .and(m)
        .map(|m: Arc<Monitor>| no_store(warp::reply::json(&m.runner.statuses()).into_response()));
    ping.or(health)
        .or(events)
        .or(workers)
        .recover(|_| async {
            Ok::<_, Infallible>(warp::reply::with_status(
                "not found: the monitor answers /health, /events?since=&from=&limit=, /ping and /workers\n",
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
    warp::serve(routes(monitor))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
