//! `POST /join`: a new host asks for the cluster secret with a join code
//! ([`cluster::join`]). The request is not signed, since the host has no secret yet; it carries
//! a proof made with the code's key instead, and the answer is the secret sealed for that key.
//! A wrong, expired or malformed code gets 403 or 400 with the reason and is logged; nothing
//! else happens.

use std::net::SocketAddr;

use cluster::auth::Secret;
use cluster::join::{self, JoinError, JoinRequest, MAX_REQUEST_BYTES};
use warp::filters::BoxedFilter;
use warp::http::{header, Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::{Filter, Reply};

/// The route, answering with this node's `secret` (none: 503, this node cannot help); boxed,
/// to be `or`-ed with the node's other routes.
pub fn route(secret: Option<Secret>, me: String) -> BoxedFilter<(warp::reply::Response,)> {
    // The path first: a request elsewhere is "not found", never "method not allowed" by this
    // route.
    warp::path!("join")
        .and(warp::post())
        .and(warp::addr::remote())
        .and(warp::body::content_length_limit(MAX_REQUEST_BYTES as u64))
        .and(warp::body::bytes())
        .map(move |from: Option<SocketAddr>, body: Bytes| {
            answer(secret.as_ref(), &me, from, &body).into_response()
        })
        .boxed()
}

fn answer(
    secret: Option<&Secret>,
    me: &str,
    from: Option<SocketAddr>,
    body: &[u8],
) -> Response<Bytes> {
    let Some(secret) = secret else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node has no cluster secret either; ask another node",
        );
    };
    let request: JoinRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("not a join request: {e}")),
    };
    let from = from.map(|a| a.ip().to_string()).unwrap_or_default();
    match join::answer(secret, &request, cluster::unix_now()) {
        Ok(reply) => {
            tracing::warn!(
                host = %request.name, %from, node = me,
                "handed the cluster secret, sealed, to a host with a join code"
            );
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "no-store")
                .body(Bytes::from(serde_json::to_vec(&reply).expect("plain data")))
                .expect("valid response")
        }
        Err(e) => {
            tracing::warn!(host = %request.name, %from, error = %e, "refused a join request");
            let status = match e {
                JoinError::Malformed(_) => StatusCode::BAD_REQUEST,
                JoinError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::FORBIDDEN,
            };
            text(status, &e.to_string())
        }
    }
}

fn text(status: StatusCode, message: &str) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Bytes::from(format!("{message}\n")))
        .expect("valid response")
}
