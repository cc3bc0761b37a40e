//! The internal API under `/internal/`: what frontends (for the portal) and other nodes (for
//! ingest) ask of this node. Every request must carry a signature made with the cluster's
//! shared secret ([`cluster::auth`]); anything else is refused with 401 before it is read.
//!
//! ```text
//! POST   /internal/uploads                      start an upload (JSON: filename, length, meta)
//! HEAD   /internal/uploads/UPLOAD               Upload-Offset, Upload-Length (resume from here)
//! PATCH  /internal/uploads/UPLOAD               a chunk at Upload-Offset (tus 1.0 core)
//! GET    /internal/uploads                      the signed-in account's uploads and their stages
//! GET    /internal/facts/UPLOAD/IMAGE           what this node holds of an upload (coordinator)
//! PUT    /internal/staging/UPLOAD               hold a staging copy (JSON upload.json) → offset
//! PATCH  /internal/staging/UPLOAD?offset=N      a chunk of it
//! POST   /internal/staging/UPLOAD/seal?sha256=  it is whole: check and record "staged"
//! DELETE /internal/staging/UPLOAD               clear it (after publication)
//! POST   /internal/replicas/IMAGE/begin?size=N  receive a replica, hidden
//! PATCH  /internal/replicas/IMAGE/files/NAME?offset=N
//! POST   /internal/replicas/IMAGE/seal          (JSON manifest) → "placed"
//! POST   /internal/replicas/IMAGE/verify        (JSON manifest) read back → "verified"
//! POST   /internal/replicas/IMAGE/publish       visible: catalog, served
//! POST   /internal/replicas/IMAGE/meta          the owner changes the metadata
//! ```

use std::convert::Infallible;
use std::sync::Arc;

use cluster::auth::{Refused, Secret, AUTH_HEADER, USER_HEADER};
use serde::Deserialize;
use warp::http::{Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::{Filter, Rejection, Reply};

use crate::ingest::coordinator::{NewUpload, OffsetAnswer};
use crate::ingest::staging::{Staging, Upload};
use crate::ingest::{blocking_call, placement, IngestError, MAX_CHUNK};
use crate::node::Node;
use crate::replica::Manifest;

type Body = Bytes;

#[derive(Debug)]
struct Unsigned(String);
impl warp::reject::Reject for Unsigned {}

#[derive(Debug)]
struct Failed(IngestError);
impl warp::reject::Reject for Failed {}

#[derive(Deserialize)]
struct OffsetQuery {
    offset: u64,
}

#[derive(Deserialize)]
struct SizeQuery {
    size: u64,
}

#[derive(Deserialize)]
struct ShaQuery {
    sha256: String,
}

/// Checks the request's signature; extracts the account it acts for ("" for the cluster).
fn signed(secret: Option<Secret>) -> impl Filter<Extract = (String,), Error = Rejection> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::optional::<String>(AUTH_HEADER))
        .and(warp::header::optional::<String>(USER_HEADER))
        .and_then(
            move |method: warp::http::Method,
                  path: warp::path::FullPath,
                  query: String,
                  auth: Option<String>,
                  user: Option<String>| {
                let secret = secret.clone();
                async move {
                    let Some(secret) = secret else {
                        return Err(warp::reject::custom(Unsigned(
                            "this node has no cluster secret; its internal API is off".into(),
                        )));
                    };
                    let target = if query.is_empty() {
                        path.as_str().to_string()
                    } else {
                        format!("{}?{query}", path.as_str())
                    };
                    let user = user.unwrap_or_default();
                    secret
                        .verify(
                            auth.as_deref(),
                            method.as_str(),
                            &target,
                            &user,
                            cluster::unix_now(),
                        )
                        .map_err(|r: Refused| warp::reject::custom(Unsigned(r.to_string())))?;
                    Ok::<_, Rejection>(user)
                }
            },
        )
}

fn fail(e: IngestError) -> Rejection {
    warp::reject::custom(Failed(e))
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Bytes::from(serde_json::to_vec(value).expect("plain data")))
        .expect("valid response")
}

/// Every internal route, behind the signature check.
pub fn routes(
    node: Arc<Node>,
    secret: Option<Secret>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let n = warp::any().map(move || node.clone());
    let auth = signed(secret);
    let chunk = warp::body::content_length_limit(MAX_CHUNK).and(warp::body::bytes());

    let create = warp::post()
        .and(warp::path!("uploads"))
        .and(auth.clone())
        .and(warp::body::content_length_limit(64 << 10))
        .and(warp::body::json::<NewUpload>())
        .and(n.clone())
        .and_then(|user: String, new: NewUpload, node: Arc<Node>| async move {
            let s = node.ingest.create(&user, new).await.map_err(fail)?;
            Ok::<_, Rejection>(json(StatusCode::CREATED, &s))
        });
    let head = warp::head()
        .and(warp::path!("uploads" / String))
        .and(auth.clone())
        .and(n.clone())
        .and_then(|id: String, user: String, node: Arc<Node>| async move {
            let (at, length) = node.ingest.offset(&user, &id).await.map_err(fail)?;
            Ok::<_, Rejection>(
                Response::builder()
                    .header("upload-offset", at)
                    .header("upload-length", length)
                    .header("tus-resumable", "1.0.0")
                    .header("cache-control", "no-store")
                    .body(Bytes::new())
                    .expect("valid response"),
            )
        });
    let patch = warp::patch()
        .and(warp::path!("uploads" / String))
        .and(auth.clone())
        .and(warp::header::<u64>("upload-offset"))
        .and(chunk)
        .and(n.clone())
        .and_then(
            |id: String, user: String, offset: u64, bytes: Bytes, node: Arc<Node>| async move {
                let (at, status) = node
                    .ingest
                    .append(&user, &id, offset, bytes)
                    .await
                    .map_err(fail)?;
                Ok::<_, Rejection>(
                    Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .header("upload-offset", at)
                        .header("tus-resumable", "1.0.0")
                        .header(
                            "td-stage",
                            serde_json::to_value(status.stage)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default(),
                        )
                        .body(Bytes::new())
                        .expect("valid response"),
                )
            },
        );
    let list = warp::get()
        .and(warp::path!("uploads"))
        .and(auth.clone())
        .and(n.clone())
        .map(|user: String, node: Arc<Node>| json(StatusCode::OK, &node.ingest.list(&user)));
    let facts = warp::get()
        .and(warp::path!("facts" / String / String))
        .and(auth.clone())
        .and(n.clone())
        .and_then(
            |upload: String, image: String, _: String, node: Arc<Node>| async move {
                let ingest = node.ingest.clone();
                let f = blocking_call(move || Ok(ingest.local_facts(&upload, &image)))
                    .await
                    .map_err(fail)?;
                Ok::<_, Rejection>(json(StatusCode::OK, &f))
            },
        );

    // A staging copy held for another node.
    let stage_create = warp::put()
        .and(warp::path!("staging" / String))
        .and(auth.clone())
        .and(warp::body::content_length_limit(64 << 10))
        .and(warp::body::json::<Upload>())
        .and(n.clone())
        .and_then(
            |id: String, _: String, upload: Upload, node: Arc<Node>| async move {
                if upload.id != id {
                    return Err(fail(IngestError::Invalid("the upload id differs".into())));
                }
                let ingest = node.ingest.clone();
                let offset = blocking_call(move || {
                    let s = Staging::create(ingest.disks(), &ingest.me, &upload)?;
                    s.offset()
                })
                .await
                .map_err(fail)?;
                Ok::<_, Rejection>(json(StatusCode::OK, &OffsetAnswer { offset }))
            },
        );
    let stage_chunk = warp::patch()
        .and(warp::path!("staging" / String))
        .and(auth.clone())
        .and(warp::query::<OffsetQuery>())
        .and(chunk)
        .and(n.clone())
        .and_then(
            |id: String, _: String, q: OffsetQuery, bytes: Bytes, node: Arc<Node>| async move {
                let ingest = node.ingest.clone();
                let offset = blocking_call(move || {
                    let s = find_staging(ingest.disks(), &id)?;
                    let length = s.upload()?.length;
                    s.append(length, q.offset, &bytes, &ingest.sums)
                })
                .await
                .map_err(fail)?;
                Ok::<_, Rejection>(json(StatusCode::OK, &OffsetAnswer { offset }))
            },
        );
    let stage_seal = warp::post()
        .and(warp::path!("staging" / String / "seal"))
        .and(auth.clone())
        .and(warp::query::<ShaQuery>())
        .and(n.clone())
        .and_then(
            |id: String, _: String, q: ShaQuery, node: Arc<Node>| async move {
                let ingest = node.ingest.clone();
                let sum = blocking_call(move || {
                    let s = find_staging(ingest.disks(), &id)?;
                    let length = s.upload()?.length;
                    s.seal(length, Some(&q.sha256), &ingest.sums)
                })
                .await
                .map_err(fail)?;
                node.ingest.crash_point("copy-sealed");
                Ok::<_, Rejection>(json(StatusCode::OK, &sum))
            },
        );
    let stage_clear = warp::delete()
        .and(warp::path!("staging" / String))
        .and(auth.clone())
        .and(n.clone())
        .and_then(|id: String, _: String, node: Arc<Node>| async move {
            let ingest = node.ingest.clone();
            blocking_call(move || match Staging::find(ingest.disks(), &id) {
                Some(s) => s.clear(),
                None => Ok(()),
            })
            .await
            .map_err(fail)?;
            Ok::<_, Rejection>(json(StatusCode::OK, &"cleared"))
        });

    // A replica arriving here, hidden until published.
    let begin = warp::post()
        .and(warp::path!("replicas" / String / "begin"))
        .and(auth.clone())
        .and(warp::query::<SizeQuery>())
        .and(n.clone())
        .and_then(
            |image: String, _: String, q: SizeQuery, node: Arc<Node>| async move {
                let ingest = node.ingest.clone();
                blocking_call(move || placement::begin(ingest.disks(), &ingest.me, &image, q.size))
                    .await
                    .map_err(fail)?;
                Ok::<_, Rejection>(json(StatusCode::OK, &"begun"))
            },
        );
    let file = warp::patch()
        .and(warp::path!("replicas" / String / "files" / String))
        .and(auth.clone())
        .and(warp::query::<OffsetQuery>())
        .and(chunk)
        .and(n.clone())
        .and_then(
            |image: String,
             name: String,
             _: String,
             q: OffsetQuery,
             bytes: Bytes,
             node: Arc<Node>| async move {
                let ingest = node.ingest.clone();
                let offset = blocking_call(move || {
                    placement::write(ingest.disks(), &image, &name, q.offset, &bytes)
                })
                .await
                .map_err(fail)?;
                Ok::<_, Rejection>(json(StatusCode::OK, &OffsetAnswer { offset }))
            },
        );
    let manifest = warp::body::content_length_limit(1 << 20).and(warp::body::json::<Manifest>());
    // Seal and verify: both take the sender's manifest and move the hidden replica one step.
    let manifest_step = warp::post()
        .and(warp::path!("replicas" / String / String))
        .and(auth.clone())
        .and(manifest)
        .and(n.clone())
        .and_then(
            |image: String, step: String, _: String, m: Manifest, node: Arc<Node>| async move {
                type Op = fn(&[Arc<crate::disk::Disk>], &str, &Manifest) -> Result<(), IngestError>;
                let (op, point, done): (Op, &str, &str) = match step.as_str() {
                    "seal" => (placement::seal, "target-sealed", "placed"),
                    "verify" => (placement::verify, "target-verified", "verified"),
                    _ => return Err(warp::reject::not_found()),
                };
                let ingest = node.ingest.clone();
                blocking_call(move || op(ingest.disks(), &image, &m))
                    .await
                    .map_err(fail)?;
                node.ingest.crash_point(point);
                Ok::<_, Rejection>(json(StatusCode::OK, &done))
            },
        );
    let publish = warp::post()
        .and(warp::path!("replicas" / String / "publish"))
        .and(auth.clone())
        .and(n.clone())
        .and_then(|image: String, _: String, node: Arc<Node>| async move {
            node.ingest.publish_here(&image).await.map_err(fail)?;
            Ok::<_, Rejection>(json(StatusCode::OK, &"published"))
        });
    let meta = warp::post()
        .and(warp::path!("replicas" / String / "meta"))
        .and(auth)
        .and(warp::body::content_length_limit(64 << 10))
        .and(warp::body::json::<cluster::ImageMeta>())
        .and(n)
        .and_then(
            |image: String, user: String, meta: cluster::ImageMeta, node: Arc<Node>| async move {
                node.ingest
                    .edit_meta(&user, &image, meta)
                    .await
                    .map_err(fail)?;
                Ok::<_, Rejection>(json(StatusCode::OK, &"changed"))
            },
        );

    warp::path("internal").and(
        create
            .or(head)
            .or(patch)
            .or(list)
            .or(facts)
            .or(stage_create)
            .or(stage_chunk)
            .or(stage_seal)
            .or(stage_clear)
            .or(begin)
            .or(file)
            .or(publish)
            .or(meta)
            .or(manifest_step)
            .recover(answer_refusal),
    )
}

fn find_staging(disks: &[Arc<crate::disk::Disk>], id: &str) -> Result<Staging, IngestError> {
    Staging::find(disks, id).ok_or_else(|| IngestError::NotFound(format!("no staging for {id}")))
}

/// Refusals as short plain-text answers that say what to do.
async fn answer_refusal(r: Rejection) -> Result<Response<Body>, Infallible> {
    let (status, text) = if let Some(Unsigned(why)) = r.find() {
        (StatusCode::UNAUTHORIZED, why.clone())
    } else if let Some(Failed(e)) = r.find() {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut text = e.to_string();
        if status == StatusCode::INSUFFICIENT_STORAGE {
            text = format!("the disk is full: {text}");
        }
        (status, text)
    } else if r.is_not_found() {
        (StatusCode::NOT_FOUND, "no such internal route".into())
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a chunk may be at most {} MiB", MAX_CHUNK >> 20),
        )
    } else if let Some(e) = r.find::<warp::filters::body::BodyDeserializeError>() {
        (
            StatusCode::BAD_REQUEST,
            format!("not the expected JSON: {e}"),
        )
    } else if r.find::<warp::reject::MissingHeader>().is_some()
        || r.find::<warp::reject::InvalidHeader>().is_some()
        || r.find::<warp::reject::InvalidQuery>().is_some()
    {
        (StatusCode::BAD_REQUEST, format!("{r:?}"))
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed here".into(),
        )
    } else {
        (StatusCode::BAD_REQUEST, format!("{r:?}"))
    };
    let tus_offset = if let Some(Failed(IngestError::Conflict { at, .. })) = r.find() {
        Some(*at)
    } else {
        None
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("cache-control", "no-store");
    if let Some(at) = tus_offset {
        response = response.header("upload-offset", at);
    }
    Ok(response
        .body(Bytes::from(format!("{text}\n")))
        .expect("valid response"))
}
