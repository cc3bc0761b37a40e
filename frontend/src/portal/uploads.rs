//! The portal's upload API, as the page script calls it: start an upload on a backend that is
//! up, and pass its chunks on (tus 1.0 core) to the node that holds it.

use std::sync::Arc;
use std::time::Duration;

use cluster::{NewUpload, UploadStatus};
use serde::Serialize;
use warp::http::{Method, Response, StatusCode};
use warp::hyper::body::Bytes;

use super::*;

/// A started upload as the page gets it: its status, and where to send its bytes.
#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    status: UploadStatus,
    url: String,
}

pub(super) async fn create(
    c: Option<String>,
    token: Option<String>,
    body: Bytes,
    p: Arc<Portal>,
) -> Response<Body> {
    let s = match p.api_session(c.as_deref(), token.as_deref()) {
        Ok(s) => s,
        Err((status, why)) => return plain(status, why),
    };
    let new: NewUpload = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("not the expected JSON: {e}"),
            )
        }
    };
    let body = Bytes::from(serde_json::to_vec(&new).expect("plain data"));
    let nodes = p.pick_node();
    if nodes.is_empty() {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no storage node answers now; try again in a minute",
        );
    }
    let mut last = String::new();
    // The first node that takes it; one that is full or down passes to the next.
    for node in nodes {
        let answer = p
            .call(
                &node,
                Method::POST,
                "/internal/uploads",
                &s.user,
                &[("content-type", "application/json".into())],
                Gathered::of(body.clone()),
                Duration::from_secs(10),
            )
            .await;
        match answer {
            Ok(a) if a.status == StatusCode::CREATED => {
                let status: UploadStatus = match serde_json::from_slice(&a.body) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(node = %node, error = %e, "portal: a node's answer to a new upload does not read");
                        return plain(
                            StatusCode::BAD_GATEWAY,
                            &format!("node {node} took the upload but its answer cannot be read; try again"),
                        );
                    }
                };
                let url = format!("/portal/api/uploads/{node}/{}", status.id);
                return Response::builder()
                    .status(StatusCode::CREATED)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::LOCATION, &url)
                    .body(Bytes::from(
                        serde_json::to_vec(&Created { status, url }).expect("plain data"),
                    ))
                    .expect("valid response");
            }
            // The request itself is wrong (metadata, size): the same everywhere.
            Ok(a) if a.status.is_client_error() => {
                return plain(a.status, String::from_utf8_lossy(&a.body).trim());
            }
            Ok(a) => last = format!("node {node}: {}", String::from_utf8_lossy(&a.body).trim()),
            Err(e) => last = e,
        }
    }
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("no node can take the upload now ({last})"),
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn chunk(
    m: Method,
    node: String,
    id: String,
    c: Option<String>,
    token: Option<String>,
    offset: Option<String>,
    body: Gathered,
    p: Arc<Portal>,
) -> Response<Body> {
    let s = match p.api_session(c.as_deref(), token.as_deref()) {
        Ok(s) => s,
        Err((status, why)) => return plain(status, why),
    };
    if !p.client.nodes().any(|n| n == node) || !cluster::valid_upload_id(&id) {
        return plain(StatusCode::NOT_FOUND, "no such upload");
    }
    if m != Method::HEAD && m != Method::PATCH {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "HEAD or PATCH");
    }
    let mut headers = vec![(
        "content-type",
        "application/offset+octet-stream".to_string(),
    )];
    if let Some(o) = offset {
        headers.push(("upload-offset", o));
    }
    let path = format!("/internal/uploads/{id}");
    // The last chunk waits for the second copy: minutes for a large original.
    let deadline = Duration::from_secs(if m == Method::PATCH { 1800 } else { 10 });
    match p
        .call(&node, m, &path, &s.user, &headers, body, deadline)
        .await
    {
        Ok(a) => {
            let mut r = Response::builder()
                .status(a.status)
                .header(header::CACHE_CONTROL, "no-store");
            for k in [
                "upload-offset",
                "upload-length",
                "tus-resumable",
                "td-stage",
                "content-type",
            ] {
                if let Some(v) = a.headers.get(k) {
                    r = r.header(k, v);
                }
            }
            r.body(a.body).expect("valid response")
        }
        Err(e) => plain(
            StatusCode::BAD_GATEWAY,
            &format!("{e}; the upload is kept there and resumes when it answers"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the page script reads: the status's fields as the backend sent them, plus `url`.
    #[test]
    fn a_started_upload_reaches_the_page_as_the_backend_said_it_with_its_url() {
        let from_backend = serde_json::json!({
            "id": "0123456789abcdef", "image": "noise-012345", "owner": "ada", "title": "Noise",
            "filename": "noise.png", "length": 20, "received": 0, "stage": "receiving",
            "waiting": null, "error": null, "home": "node-a", "created": 1, "updated": 1,
        });
        let status: UploadStatus = serde_json::from_value(from_backend.clone()).unwrap();
        let url = "/portal/api/uploads/node-a/0123456789abcdef".to_string();
        let sent = serde_json::to_value(Created { status, url }).unwrap();
        let mut expected = from_backend;
        expected["url"] = "/portal/api/uploads/node-a/0123456789abcdef".into();
        assert_eq!(sent, expected);
    }
}
