//! The internal API under `/internal/`: what frontends (for the portal) and other nodes (for
//! ingest) ask of this node. Every request must carry a signature made with the cluster's
//! shared secret ([`cluster::auth`]); anything else is refused with 401 before it is read.
//!
//! ```text
//! POST   /internal/uploads                      start an upload (JSON: filename, length, meta)
//! HEAD   /internal/uploads/UPLOAD               Upload-Offset, Upload-Length (resume from here)
//! PATCH  /internal/uploads/UPLOAD               a chunk at Upload-Offset (tus 1.0 core)
//! GET    /internal/uploads                      the signed-in account's uploads and their stages
//! GET    /internal/facts/UPLOAD/IMAGE?from=NODE what this node holds of an upload (coordinator)
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
//!
//! Each route is one handler below; the work is the ingest's ([`crate::ingest::receiving`] for
//! the uploads, [`crate::ingest::target`] for what other nodes ask, and
//! [`crate::ingest::meta_edit`]). A refusal is a short plain-text answer: what was wrong with
//! the request, or, when this node failed, a plain sentence (the detail is in the log).

use crate::redundancy::throttle::Setting;
use std::convert::Infallible;
use std::sync::Arc;

use cluster::accounts::{AccountsUpdate, Revocation};
use cluster::auth::{NonceBook, Refused, Secret, SignedParts, AUTH_HEADER, USER_HEADER};
use cluster::{ImageMeta, NewUpload};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use warp::filters::method::{delete, get, head, patch, post, put};
use warp::http::{Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::{Filter, Rejection, Reply};

use crate::accounts::{AccountStore, AccountsError};
use crate::ingest::staging::Upload;
use crate::ingest::{About, IngestError, MAX_CHUNK};
use crate::node::Node;
use crate::replica::Manifest;

type Body = Bytes;

#[derive(Debug)]
struct Unsigned(String);
impl warp::reject::Reject for Unsigned {}

#[derive(Debug)]
struct Failed(IngestError);
impl warp::reject::Reject for Failed {}

/// A request whose signature checked out: the account it acts for ("" for the cluster
/// itself) and its body, read once here because the signature covers it.
struct Signed {
    user: String,
    body: Bytes,
    /// The body's hash as the signature covers it ([`cluster::auth::body_sum`]).
    body_sum: String,
}

/// Checks the request's signature (method, path and query, account, this node as the target,
/// time, nonce, the body's SHA-256, `Upload-Offset` and `Content-Type`) and that its nonce is
/// new. Only a route's own method and path come before it, and no two routes share both, so a
/// request is checked, and its body read, once.
fn signed(
    secret: Option<Secret>,
    me: String,
) -> impl Filter<Extract = (Signed,), Error = Rejection> + Clone {
    let nonces = Arc::new(NonceBook::default());
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(bounded_body())
        .and_then(
            move |method: warp::http::Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: warp::http::HeaderMap,
                  body: floor::body::Gathered| {
                let (secret, me, nonces) = (secret.clone(), me.clone(), nonces.clone());
                async move {
                    let refuse = |r: Refused| warp::reject::custom(Unsigned(r.to_string()));
                    let Some(secret) = secret else {
                        return Err(warp::reject::custom(Unsigned(
                            "this node has no cluster secret; its internal API is off".into(),
                        )));
                    };
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                    };
                    let path_and_query = if query.is_empty() {
                        path.as_str().to_string()
                    } else {
                        format!("{}?{query}", path.as_str())
                    };
                    let user = header(USER_HEADER).to_string();
                    let parts = SignedParts {
                        method: method.as_str(),
                        path_and_query: &path_and_query,
                        user: &user,
                        target: &me,
                        body: &[],
                        upload_offset: header("upload-offset"),
                        content_type: header("content-type"),
                    };
                    let floor::body::Gathered {
                        bytes: body,
                        sum: body_sum,
                    } = body;
                    let now = cluster::unix_now();
                    let auth = headers.get(AUTH_HEADER).and_then(|v| v.to_str().ok());
                    let nonce = secret
                        .verify_request_summed(auth, &parts, &body_sum, now)
                        .map_err(refuse)?;
                    nonces.first_use(&nonce, now).map_err(refuse)?;
                    Ok::<_, Rejection>(Signed {
                        user,
                        body,
                        body_sum,
                    })
                }
            },
        )
}

/// The body, at most [`MAX_CHUNK`] and announced by its `Content-Length` (a chunked body of
/// unknown length is refused before it is read), gathered for a disk and hashed as it arrives
/// ([`floor::body`]).
fn bounded_body() -> impl Filter<Extract = (floor::body::Gathered,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::header::optional::<String>("transfer-encoding"))
        .and_then(|length: Option<u64>, chunked: Option<String>| async move {
            if chunked.is_some() {
                return Err(warp::reject::custom(BodyRefused(
                    StatusCode::LENGTH_REQUIRED,
                    "the request needs a Content-Length (chunked bodies are not taken)".into(),
                )));
            }
            if length.unwrap_or(0) > MAX_CHUNK {
                return Err(warp::reject::custom(BodyRefused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a chunk may be at most {} MiB", MAX_CHUNK >> 20),
                )));
            }
            Ok(length.unwrap_or(0))
        })
        .and(warp::body::stream())
        .and_then(|length, body| async move {
            floor::body::gather(length, body).await.map_err(|e| {
                warp::reject::custom(BodyRefused(StatusCode::BAD_REQUEST, e.to_string()))
            })
        })
}

#[derive(Debug)]
struct BodyRefused(StatusCode, String);
impl warp::reject::Reject for BodyRefused {}

/// The account of a signed request.
fn user_of(
    auth: impl Filter<Extract = (Signed,), Error = Rejection> + Clone,
) -> impl Filter<Extract = (String,), Error = Rejection> + Clone {
    auth.map(|s: Signed| s.user)
}

/// The account and the raw body of a signed request.
fn user_and_bytes(
    auth: impl Filter<Extract = (Signed,), Error = Rejection> + Clone,
) -> impl Filter<Extract = (String, Bytes), Error = Rejection> + Clone {
    auth.map(|s: Signed| (s.user, s.body)).untuple_one()
}

/// The account, the raw body and its hash (as checked) of a signed request: for a body passed
/// on to another node, whose signature covers the same hash.
fn user_bytes_and_sum(
    auth: impl Filter<Extract = (Signed,), Error = Rejection> + Clone,
) -> impl Filter<Extract = (String, Bytes, String), Error = Rejection> + Clone {
    auth.map(|s: Signed| (s.user, s.body, s.body_sum))
        .untuple_one()
}

/// The account and the JSON body (at most `limit` bytes) of a signed request.
fn user_and_json<T: DeserializeOwned + Send + 'static>(
    auth: impl Filter<Extract = (Signed,), Error = Rejection> + Clone,
    limit: usize,
) -> impl Filter<Extract = (String, T), Error = Rejection> + Clone {
    auth.and_then(move |s: Signed| async move {
        if s.body.len() > limit {
            return Err(warp::reject::custom(BodyRefused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("this JSON body may be at most {} KiB", limit >> 10),
            )));
        }
        let value = serde_json::from_slice::<T>(&s.body).map_err(|e| {
            warp::reject::custom(BodyRefused(
                StatusCode::BAD_REQUEST,
                format!("not the expected JSON: {e}"),
            ))
        })?;
        Ok::<_, Rejection>((s.user, value))
    })
    .untuple_one()
}

/// Every internal route, behind the signature check.
pub fn routes(
    node: Arc<Node>,
    secret: Option<Secret>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let auth = signed(secret, node.config.name.clone());
    let book = Arc::new(AccountStore::open(&node.config.state_dir()));
    let book = warp::any().map(move || book.clone());
    let n = warp::any().map(move || node.clone());
    let user = user_of(auth.clone());
    let with_bytes = user_and_bytes(auth.clone());

    // The uploads a frontend passes on for a signed-in account.
    let create = post()
        .and(warp::path!("uploads"))
        .and(user_and_json::<NewUpload>(auth.clone(), JSON_LIMIT))
        .and(n.clone())
        .and_then(create_upload);
    let offset = head()
        .and(warp::path!("uploads" / String))
        .and(user.clone())
        .and(n.clone())
        .and_then(upload_offset);
    let append = patch()
        .and(warp::path!("uploads" / String))
        .and(user_bytes_and_sum(auth.clone()))
        .and(upload_offset_header())
        .and(n.clone())
        .and_then(append_chunk);
    let list = get()
        .and(warp::path!("uploads"))
        .and(user.clone())
        .and(n.clone())
        .map(list_uploads);

    // What other nodes' coordinators ask.
    let facts = get()
        .and(warp::path!("facts" / String / String))
        .and(warp::query::<FactsAsker>())
        .and(user.clone())
        .and(n.clone())
        .and_then(facts_here);
    let hold = put()
        .and(warp::path!("staging" / String))
        .and(user_and_json::<Upload>(auth.clone(), JSON_LIMIT))
        .and(n.clone())
        .and_then(hold_staging);
    let copy = patch()
        .and(warp::path!("staging" / String))
        .and(with_bytes.clone())
        .and(query::<OffsetQuery>(OFFSET))
        .and(n.clone())
        .and_then(staging_chunk);
    let seal_copy = post()
        .and(warp::path!("staging" / String / "seal"))
        .and(user.clone())
        .and(query::<ShaQuery>(SHA256))
        .and(n.clone())
        .and_then(seal_staging);
    let clear = delete()
        .and(warp::path!("staging" / String))
        .and(user.clone())
        .and(n.clone())
        .and_then(clear_staging);
    let begin = post()
        .and(warp::path!("replicas" / String / "begin"))
        .and(user.clone())
        .and(query::<SizeQuery>(SIZE))
        .and(n.clone())
        .and_then(begin_replica);
    let file = patch()
        .and(warp::path!("replicas" / String / "files" / String))
        .and(with_bytes.clone())
        .and(query::<OffsetQuery>(OFFSET))
        .and(n.clone())
        .and_then(replica_file);
    let publish = post()
        .and(warp::path!("replicas" / String / "publish"))
        .and(user.clone())
        .and(n.clone())
        .and_then(publish_replica);
    // Seal and verify: both take the sender's manifest and move the hidden replica one step.
    // (Each step has its own path, so that no two routes share a method and path: the one
    // that matches is the only one that reads and checks the signed body.)
    let step = post()
        .and(
            warp::path!("replicas" / String / "seal")
                .map(|image| (image, "seal".to_string()))
                .or(warp::path!("replicas" / String / "verify")
                    .map(|image| (image, "verify".to_string())))
                .unify()
                .untuple_one(),
        )
        .and(user_and_json::<Manifest>(auth.clone(), MANIFEST_LIMIT))
        .and(n.clone())
        .and_then(replica_step);

    // A re-mirror's source asks how far its copy came here.
    let stage = get()
        .and(warp::path!("replicas" / String / "stage"))
        .and(user.clone())
        .and(n.clone())
        .and_then(replica_stage);
    let discard = post()
        .and(warp::path!("replicas" / String / "discard"))
        .and(user.clone())
        .and(query::<EpochQuery>(
            "epoch=E, the set's epoch (a whole number)",
        ))
        .and(n.clone())
        .and_then(discard_replica);
    // The operator sets the re-mirror throttle (`td remirror --throttle`).
    let throttle = put()
        .and(warp::path!("remirror" / "throttle"))
        .and(user_and_json::<Setting>(auth.clone(), JSON_LIMIT))
        .and(n.clone())
        .and_then(set_throttle);
    // The owner through the portal, or the operator (`td image rm`), withdraws an image.
    let withdraw = post()
        .and(warp::path!("images" / String / "delete"))
        .and(user.clone())
        .and(n.clone())
        .and_then(withdraw_image);

    // The owner, through the portal.
    let meta = post()
        .and(warp::path!("replicas" / String / "meta"))
        .and(user_and_json::<ImageMeta>(auth.clone(), JSON_LIMIT))
        .and(n)
        .and_then(edit_meta);

    // The portal's account book, for both frontends (`td user`, a sign-out).
    let accounts = get()
        .and(warp::path!("accounts"))
        .and(user.clone())
        .and(book.clone())
        .map(|_: String, book: Arc<AccountStore>| {
            json(StatusCode::OK, &book.get(cluster::unix_now()))
        });
    let new_accounts = put()
        .and(warp::path!("accounts"))
        .and(user_and_json::<AccountsUpdate>(
            auth.clone(),
            ACCOUNTS_LIMIT,
        ))
        .and(book.clone())
        .then(
            |_: String, update: AccountsUpdate, book: Arc<AccountStore>| {
                book_change(move || book.put(update))
            },
        );
    let revoke = post()
        .and(warp::path!("sessions" / "revoke"))
        .and(user_and_json::<Revocation>(auth, JSON_LIMIT))
        .and(book)
        .then(|_: String, r: Revocation, book: Arc<AccountStore>| {
            book_change(move || book.revoke(r, cluster::unix_now()))
        });

    // Boxed in three parts: one chain of every route is too deep a type for the compiler.
    let ingest = create
        .or(offset)
        .or(append)
        .or(list)
        .or(facts)
        .or(hold)
        .or(copy)
        .or(seal_copy)
        .or(clear)
        .or(begin)
        .or(file)
        .or(publish)
        .boxed();
    let repair = meta
        .or(step)
        .or(stage)
        .or(discard)
        .or(throttle)
        .or(withdraw)
        .boxed();
    let book = accounts.or(new_accounts).or(revoke).boxed();
    warp::path("internal").and(ingest.or(repair).or(book).recover(answer_refusal))
}

// ---- the handlers, one per route ----

/// A change of the account book, written on a blocking thread.
async fn book_change(
    change: impl FnOnce() -> Result<(), AccountsError> + Send + 'static,
) -> Response<Body> {
    match tokio::task::spawn_blocking(change).await {
        Ok(Ok(())) => json(StatusCode::OK, &serde_json::json!({ "ok": true })),
        Ok(Err(e @ AccountsError::Stale { .. })) => json(
            StatusCode::CONFLICT,
            &serde_json::json!({ "error": e.to_string() }),
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the account book");
            json(
                StatusCode::INSUFFICIENT_STORAGE,
                &serde_json::json!({ "error": e.to_string() }),
            )
        }
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

async fn create_upload(
    user: String,
    new: NewUpload,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let s = node
        .ingest
        .create(&user, new)
        .await
        .map_err(failed(About::default()))?;
    Ok(json(StatusCode::CREATED, &s))
}

async fn upload_offset(
    id: String,
    user: String,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let (at, length) = node
        .ingest
        .offset(&user, &id)
        .await
        .map_err(failed(About::upload(&id)))?;
    Ok(Response::builder()
        .header("upload-offset", at)
        .header("upload-length", length)
        .header("tus-resumable", "1.0.0")
        .header("cache-control", "no-store")
        .body(Bytes::new())
        .expect("valid response"))
}

async fn append_chunk(
    id: String,
    user: String,
    bytes: Bytes,
    body_sum: String,
    offset: u64,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let (at, status) = node
        .ingest
        .append(&user, &id, offset, bytes, body_sum)
        .await
        .map_err(failed(About::upload(&id)))?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("upload-offset", at)
        .header("tus-resumable", "1.0.0")
        .header("td-stage", status.stage.as_str())
        .body(Bytes::new())
        .expect("valid response"))
}

fn list_uploads(user: String, node: Arc<Node>) -> Response<Body> {
    json(StatusCode::OK, &node.ingest.list(&user))
}

/// `?from=NODE`: the node asking (the query is signed with the rest), heard from by asking.
#[derive(serde::Deserialize)]
struct FactsAsker {
    from: Option<String>,
}

async fn facts_here(
    upload: String,
    image: String,
    asker: FactsAsker,
    _: String,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let f = node
        .ingest
        .facts_here(&upload, &image, asker.from.as_deref())
        .await
        .map_err(failed(About {
            upload: Some(&upload),
            image: Some(&image),
        }))?;
    Ok(json(StatusCode::OK, &f))
}

async fn hold_staging(
    id: String,
    _: String,
    upload: Upload,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let offset = node
        .ingest
        .hold_staging(&id, upload)
        .await
        .map_err(failed(About::upload(&id)))?;
    Ok(json(StatusCode::OK, &offset))
}

async fn staging_chunk(
    id: String,
    _: String,
    bytes: Bytes,
    q: OffsetQuery,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let offset = node
        .ingest
        .staging_chunk(&id, q.offset, bytes)
        .await
        .map_err(failed(About::upload(&id)))?;
    Ok(json(StatusCode::OK, &offset))
}

async fn seal_staging(
    id: String,
    _: String,
    q: ShaQuery,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let sum = node
        .ingest
        .seal_staging(&id, &q.sha256)
        .await
        .map_err(failed(About::upload(&id)))?;
    Ok(json(StatusCode::OK, &sum))
}

async fn clear_staging(
    id: String,
    _: String,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    node.ingest
        .clear_staging(&id)
        .await
        .map_err(failed(About::upload(&id)))?;
    Ok(json(StatusCode::OK, &"cleared"))
}

async fn begin_replica(
    image: String,
    _: String,
    q: SizeQuery,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    node.ingest
        .begin_replica(&image, q.size, q.epoch)
        .await
        .map_err(failed(About::image(&image)))?;
    Ok(json(StatusCode::OK, &"begun"))
}

async fn replica_file(
    image: String,
    name: String,
    _: String,
    bytes: Bytes,
    q: OffsetQuery,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let offset = node
        .ingest
        .replica_file(&image, &name, q.offset, bytes)
        .await
        .map_err(failed(About::image(&image)))?;
    let mut answer = json(StatusCode::OK, &offset);
    // The sender's throttle holds while visitors are served here too: a copy that goes as
    // fast as an idle source can would slow this node's visitors down.
    if crate::metrics::since_last_visit().is_some_and(|d| d < crate::redundancy::throttle::IDLE) {
        answer.headers_mut().insert(
            crate::redundancy::throttle::VISITORS_HEADER,
            hyper::header::HeaderValue::from_static("busy"),
        );
    }
    Ok(answer)
}

/// `seal` or `verify`, with the sender's manifest.
async fn replica_step(
    image: String,
    step: String,
    _: String,
    manifest: Manifest,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let (done, result) = match step.as_str() {
        "seal" => ("placed", node.ingest.seal_replica(&image, manifest).await),
        "verify" => (
            "verified",
            node.ingest.verify_replica(&image, manifest).await,
        ),
        _ => return Err(warp::reject::not_found()),
    };
    result.map_err(failed(About::image(&image)))?;
    Ok(json(StatusCode::OK, &done))
}

async fn publish_replica(
    image: String,
    _: String,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    node.ingest
        .publish_here(&image)
        .await
        .map_err(failed(About::image(&image)))?;
    Ok(json(StatusCode::OK, &"published"))
}

async fn edit_meta(
    image: String,
    user: String,
    meta: ImageMeta,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    node.ingest
        .edit_meta(&user, &image, meta)
        .await
        .map_err(failed(About::image(&image)))?;
    Ok(json(StatusCode::OK, &"changed"))
}

async fn replica_stage(
    image: String,
    _: String,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let (stage, epoch) = node
        .ingest
        .replica_stage(&image)
        .await
        .map_err(failed(About::image(&image)))?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "stage": stage, "epoch": epoch }),
    ))
}

async fn discard_replica(
    image: String,
    _: String,
    q: EpochQuery,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let removed = node
        .ingest
        .discard_replica(&image, q.epoch, q.hidden_only)
        .await
        .map_err(failed(About::image(&image)))?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "removed": removed }),
    ))
}

async fn set_throttle(
    _: String,
    setting: Setting,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let r = node.redundancy.clone();
    crate::ingest::blocking_call(move || {
        r.throttle
            .set(setting)
            .map_err(|e| IngestError::Fault(format!("the throttle cannot be kept: {e}")))
    })
    .await
    .map_err(failed(About::image("")))?;
    Ok(json(StatusCode::OK, &node.redundancy.status()))
}

async fn withdraw_image(
    image: String,
    user: String,
    node: Arc<Node>,
) -> Result<Response<Body>, Rejection> {
    let (catalog, library, id) = (node.catalog.clone(), node.library.clone(), image.clone());
    let disks = library.disks().to_vec();
    let stone = crate::ingest::blocking_call(move || {
        crate::redundancy::removal::withdraw_for(&catalog, &library, &disks, &id, &user)
    })
    .await
    .map_err(failed(About::image(&image)))?;
    node.events.record(floor::NewEvent::new(
        cluster::Component::Catalog,
        cluster::EventKind::ImageDeleted,
        format!(
            "image {image} was withdrawn by {}; a tombstone stays",
            stone.by
        ),
    ));
    tracing::info!(image = %image, by = %stone.by, "image withdrawn");
    Ok(json(StatusCode::OK, &stone))
}

// ---- what the routes take, and how they refuse ----

#[derive(Deserialize)]
struct OffsetQuery {
    offset: u64,
}

#[derive(Deserialize)]
struct SizeQuery {
    size: u64,
    /// A re-mirror's set (see `Ingest::begin_replica`).
    epoch: Option<u64>,
}

#[derive(Deserialize)]
struct EpochQuery {
    epoch: u64,
    #[serde(default)]
    hidden_only: bool,
}

#[derive(Deserialize)]
struct ShaQuery {
    sha256: String,
}

const OFFSET: &str = "offset=N, where the chunk starts (a whole number of bytes)";
const SIZE: &str = "size=N, the replica's bytes in all (a whole number)";
const SHA256: &str = "sha256=HEX, the SHA-256 of the whole copy";

/// A query string of type `T`; anything else is refused saying what the route takes.
fn query<T: DeserializeOwned + Send + 'static>(
    takes: &'static str,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::query::<T>().or_else(move |_| async move {
        Err::<(T,), _>(reject(IngestError::Invalid(format!(
            "the query must be {takes}"
        ))))
    })
}

/// The `Upload-Offset` header of a chunk.
fn upload_offset_header() -> impl Filter<Extract = (u64,), Error = Rejection> + Clone {
    warp::header::<u64>("upload-offset").or_else(|_| async {
        Err::<(u64,), _>(reject(IngestError::Invalid(
            "the Upload-Offset header must say where the chunk starts (a whole number of bytes)"
                .into(),
        )))
    })
}

/// A JSON body of a few KiB (an upload's details, its metadata).
const JSON_LIMIT: usize = 64 << 10;
/// An accounts file: a few hundred bytes an account.
const ACCOUNTS_LIMIT: usize = 4 << 20;
/// A replica's manifest: a file list with sums, and the metadata.
const MANIFEST_LIMIT: usize = 1 << 20;

fn reject(e: IngestError) -> Rejection {
    warp::reject::custom(Failed(e))
}

/// A failed handler's refusal; a fault of this node (or a peer's) is logged first, with what
/// it was about.
fn failed(about: About<'_>) -> impl FnOnce(IngestError) -> Rejection + '_ {
    move |e| {
        e.log(about);
        reject(e)
    }
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Bytes::from(serde_json::to_vec(value).expect("plain data")))
        .expect("valid response")
}

/// Refusals as short plain-text answers that say what to do.
async fn answer_refusal(r: Rejection) -> Result<Response<Body>, Infallible> {
    let (status, text) = if let Some(Unsigned(why)) = r.find() {
        (StatusCode::UNAUTHORIZED, why.clone())
    } else if let Some(BodyRefused(status, why)) = r.find() {
        (*status, why.clone())
    } else if let Some(Failed(e)) = r.find() {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, e.public())
    } else if r.is_not_found() {
        (StatusCode::NOT_FOUND, "no such internal route".into())
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a chunk may be at most {} MiB", MAX_CHUNK >> 20),
        )
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "the request needs a Content-Length".into(),
        )
    } else if let Some(e) = r.find::<warp::filters::body::BodyDeserializeError>() {
        (
            StatusCode::BAD_REQUEST,
            format!("not the expected JSON: {e}"),
        )
    } else if r.find::<warp::reject::UnsupportedMediaType>().is_some() {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON (Content-Type: application/json)".into(),
        )
    } else if let Some(h) = r.find::<warp::reject::MissingHeader>() {
        (
            StatusCode::BAD_REQUEST,
            format!("the {} header is missing", h.name()),
        )
    } else if let Some(h) = r.find::<warp::reject::InvalidHeader>() {
        (
            StatusCode::BAD_REQUEST,
            format!("the {} header is not valid", h.name()),
        )
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        (
            StatusCode::BAD_REQUEST,
            "the query string is not valid".into(),
        )
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed here".into(),
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            "the request is not one this route takes".into(),
        )
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
