//! The upload portal under `/portal/` on the canonical address: sign-in ([`users`], Argon2
//! hashes, a few at a time through the [`gate`]; [`session`] cookies signed with the cluster
//! secret; [`limiter`] on failed attempts),
//! the upload and status pages (`site::portal`), and the API the page script uses. Bytes and
//! requests go on to a backend's internal API, signed with the cluster secret and naming the
//! signed-in account; the backends do all the work and keep all the state.
//!
//! ```text
//! GET  /portal/                        sign-in, or the upload page
//! POST /portal/login, /portal/logout   (forms; same-origin only)
//! GET  /portal/uploads                 the account's uploads and their stages
//! GET  /portal/api/uploads             the same, JSON
//! POST /portal/api/uploads             start one (JSON) on a backend that is up → its url
//! HEAD/PATCH /portal/api/uploads/NODE/UPLOAD   resume / send a chunk (tus 1.0 core)
//! GET/POST /portal/images/ID/edit      change an image's details (its owner only)
//! POST /portal/images/ID/delete        withdraw it, once confirmed (its owner only)
//! GET  /ops/                           the operator's dashboard ([`dashboard`]; operators only)
//! POST /ops/tickets/ID                 mark a repair ticket done or acquitted (a form)
//! ```
//!
//! Everything that changes something needs a session and its CSRF token (a header for the
//! API, a form field for forms); sign-in checks that the form came from this origin. An
//! account's role ([`users::Role`]) is read from the accounts file at each dashboard request.

pub mod accounts;
mod address;
pub mod dashboard;
mod edit;
pub mod gate;
pub mod limiter;
pub mod session;
mod uploads;
pub mod users;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::auth::Secret;
use cluster::{Stage, UploadStatus, MAX_CHUNK};
use floor::body::Gathered;
use floor::client::Call;
use serde::Deserialize;
use warp::http::{header, HeaderMap, Method, Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::{Filter, Rejection};

use crate::table::Table;
use session::Session;

type Body = Bytes;

/// The portal of one frontend.
pub struct Portal {
    /// `Err(why)` when this frontend has no cluster secret: the portal then says so.
    secret: Result<Secret, String>,
    /// The accounts and the sessions signed out, as the nodes and this host's file have them.
    pub accounts: Arc<accounts::Accounts>,
    /// Proxies whose forwarded client addresses are believed (`trusted_proxies`).
    trusted_proxies: Vec<std::net::IpAddr>,
    /// What one account may send a node per day (shown on "My uploads").
    quota: cluster::QuotaConfig,
    /// The frontends serve https themselves: cookies are `Secure` whatever a request says.
    tls: bool,
    limiter: limiter::Limiter,
    /// Every password check goes through it: a bound on the hashes and their memory.
    gate: Arc<gate::Gate>,
    table: Arc<Table>,
    /// Signed calls to the nodes' internal API.
    client: floor::Client,
    next: AtomicUsize,
    /// The operator's dashboard: what it asks the nodes and their monitors.
    dashboard: dashboard::Dashboard,
}

/// What the portal wants from a backend call.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Portal {
    pub fn new(cluster: &cluster::ClusterConfig, table: Arc<Table>) -> Portal {
        let secret = Secret::load(&cluster.secret_path()).map_err(|e| e.to_string());
        let nodes = cluster
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.origin()))
            .collect();
        let client = floor::Client::signed(secret.clone(), nodes);
        Portal {
            accounts: Arc::new(accounts::Accounts::new(
                cluster.users_path(),
                client.clone(),
            )),
            trusted_proxies: cluster.trusted_proxies.clone(),
            quota: cluster.quota.clone(),
            tls: cluster.frontends.iter().any(|f| f.tls_cert.is_some()),
            client,
            dashboard: dashboard::Dashboard::new(cluster, secret.clone()),
            secret,
            limiter: limiter::Limiter::default(),
            gate: Arc::default(),
            table,
            next: AtomicUsize::new(0),
        }
    }

    /// This portal with other sign-in limits than [`limiter::Limits::default`] (a test's
    /// short lock).
    pub fn with_signin_limits(mut self, limits: limiter::Limits) -> Portal {
        self.limiter = limiter::Limiter::new(limits);
        self
    }

    /// The password checks done so far, the most at once and the memory they keep.
    pub fn signin_hashes(&self) -> gate::GateCounts {
        self.gate.counts()
    }

    /// Sends a signed request to `node`'s internal API for `user`; its answer, whatever the
    /// status, or why there is none (in words for the page).
    // Every argument is a different part of one HTTP request; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        node: &str,
        method: Method,
        path: &str,
        user: &str,
        headers: &[(&str, String)],
        body: Gathered,
        deadline: Duration,
    ) -> Result<Answer, String> {
        let call = Call::new(method.as_str(), path)
            .user(user)
            .headers(headers)
            .body_summed(body.bytes, body.sum);
        let answer = self
            .client
            .call_any(node, call, deadline)
            .await
            .map_err(|e| {
                tracing::warn!(node, %method, path, error = %e, "portal: a node's internal API");
                e.to_string()
            })?;
        Ok(Answer {
            status: StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY),
            headers: answer.headers,
            body: answer.body,
        })
    }

    /// The session the cookies carry, if it is signed, unexpired, not signed out, and of an
    /// account that exists in the session generation it was started in.
    fn session(&self, cookies: Option<&str>) -> Option<Session> {
        let secret = self.secret.as_ref().ok()?;
        let s = session::from_cookies(secret, cookies, cluster::unix_now())?;
        if self.accounts.revoked(&s.id) {
            return None;
        }
        match self.accounts.users() {
            Ok(users) if users.generation(&s.user) == Some(s.generation) => Some(s),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "portal: the accounts cannot be read; sessions refused");
                None
            }
        }
    }

    /// Whether `published` (an owner as the nodes publish it, [`cluster::catalog::public_owner`])
    /// is the account of session `s`.
    fn owns(&self, published: &str, s: &Session) -> bool {
        let mine = cluster::catalog::public_owner(self.secret.as_ref().ok(), &s.user);
        !mine.is_empty() && published == mine
    }

    fn csrf(&self, s: &Session) -> String {
        self.secret
            .as_ref()
            .map(|secret| session::csrf(secret, s))
            .unwrap_or_default()
    }

    /// The session of an API call that changes something: signed in (else 401) and carrying
    /// the session's CSRF token (else 403).
    fn api_session(
        &self,
        cookies: Option<&str>,
        token: Option<&str>,
    ) -> Result<Session, (StatusCode, &'static str)> {
        let Some(s) = self.session(cookies) else {
            return Err((StatusCode::UNAUTHORIZED, "sign in first"));
        };
        if !self.csrf_ok(&s, token) {
            return Err((
                StatusCode::FORBIDDEN,
                "missing or stale CSRF token; reload the page",
            ));
        }
        Ok(s)
    }

    fn csrf_ok(&self, s: &Session, token: Option<&str>) -> bool {
        self.secret
            .as_ref()
            .is_ok_and(|secret| session::check_csrf(secret, s, token))
    }

    /// Every upload of `user` from every node that answers, newest first; and the nodes that
    /// did not answer, in words.
    async fn uploads_of(&self, user: &str) -> (Vec<UploadStatus>, Vec<String>) {
        let asks = self.client.nodes().map(|node| async move {
            let a = self
                .call(
                    node,
                    Method::GET,
                    "/internal/uploads",
                    user,
                    &[],
                    Gathered::empty(),
                    Duration::from_secs(3),
                )
                .await;
            (node.to_string(), a)
        });
        let mut all = Vec::new();
        let mut problems = Vec::new();
        for (node, answer) in futures_util::future::join_all(asks).await {
            match answer {
                Ok(a) if a.status.is_success() => {
                    match serde_json::from_slice::<Vec<UploadStatus>>(&a.body) {
                        Ok(items) => all.extend(items),
                        Err(e) => {
                            tracing::warn!(node = %node, error = %e, "portal: a node's upload list does not read");
                            problems.push(format!(
                                "uploads received by node {node} are not shown now: its list \
                                 is not one this frontend reads"
                            ));
                        }
                    }
                }
                Ok(a) => problems.push(format!(
                    "node {node} could not list uploads: {}",
                    String::from_utf8_lossy(&a.body).trim()
                )),
                Err(e) => problems.push(format!(
                    "uploads received by node {node} are not shown now: {e}"
                )),
            }
        }
        // One upload can be in two nodes' books: its home's and, when the home fell silent
        // after acknowledging, the book of the node that took it over. The one that came
        // furthest is shown (published first, then the latest news).
        all.sort_by(|a, b| {
            a.id.cmp(&b.id).then(
                (b.stage == Stage::Published, b.updated)
                    .cmp(&(a.stage == Stage::Published, a.updated)),
            )
        });
        all.dedup_by(|later, first| later.id == first.id);
        // "Published" means a visitor can open it here: until this frontend's table has it
        // (it asks the nodes every second), the upload is shown as still being published; once
        // withdrawn (a tombstone in the catalogs), it says so.
        for u in all.iter_mut() {
            if u.stage != Stage::Published {
                continue;
            }
            if self.table.withdrawn(&u.image) {
                u.stage = Stage::Withdrawn;
                u.waiting = None;
            } else if self.table.row(&u.image).is_none() {
                u.stage = Stage::Verifying;
                u.waiting =
                    Some("published on both nodes; the collection lists it in a moment".into());
            }
        }
        all.sort_by_key(|u| std::cmp::Reverse(u.created));
        (all, problems)
    }

    /// The backends that are up, in turn: where the next upload goes.
    fn pick_node(&self) -> Vec<String> {
        let up: Vec<String> = self
            .table
            .backends()
            .into_iter()
            .filter(|b| b.up)
            .map(|b| b.node)
            .collect();
        if up.is_empty() {
            return up;
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed) % up.len();
        up[first..].iter().chain(&up[..first]).cloned().collect()
    }
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::from(body))
        .expect("valid response")
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::from(format!("{text}\n")))
        .expect("valid response")
}

fn see_other(to: &str, cookie: Option<String>) -> Response<Body> {
    let mut r = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(c) = cookie {
        r = r.header(header::SET_COOKIE, c);
    }
    r.body(Bytes::new()).expect("valid response")
}

/// A form posted from another site is refused: the browser says where it came from.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok());
    match (host, from) {
        (Some(host), Some(from)) => {
            let rest = from
                .strip_prefix("http://")
                .or_else(|| from.strip_prefix("https://"))
                .unwrap_or("");
            rest.split('/').next() == Some(host)
        }
        // No Origin or Referer at all: not a browser's cross-site form post.
        (_, None) => true,
        _ => false,
    }
}

/// Whether the visitor's connection is https: this frontend's own TLS, or a TLS proxy's word.
fn over_tls(p: &Portal, headers: &HeaderMap) -> bool {
    p.tls
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    /// Where to go once signed in (a page of this site that sent the visitor here).
    next: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// `next` if it is a page of this site a sign-in may lead to: the portal's or the dashboard's,
/// a plain path (never another site's address).
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| {
        (n.starts_with("/portal/") || n.starts_with("/ops/"))
            && n.len() <= 200
            && !n.contains("//")
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.?=&%".contains(&b))
    })
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

#[derive(Deserialize)]
struct NoticeQuery {
    changed: Option<String>,
    withdrawn: Option<String>,
}

/// What an account has used of its daily quotas, in a sentence: the node it sent most to in
/// the last 24 hours (each node counts its own), against the limits.
fn usage(list: &[UploadStatus], quota: &cluster::QuotaConfig, now: u64) -> String {
    let mut per_node: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for u in list.iter().filter(|u| u.created + 24 * 60 * 60 >= now) {
        let used = per_node.entry(u.home.as_str()).or_default();
        used.0 += u.length;
        used.1 += u.pixels.unwrap_or(0);
    }
    let (bytes, pixels) = per_node
        .values()
        .fold((0, 0), |(b, p), &(nb, np)| (b.max(nb), p.max(np)));
    format!(
        "In the last 24 hours: {:.2} GB sent and {:.1} megapixels tiled (on the node you sent \
         most to); each node takes up to {} GB and {} megapixels a day from an account.",
        bytes as f64 / 1e9,
        pixels as f64 / 1e6,
        quota.gigabytes_per_day,
        quota.megapixels_per_day
    )
}

fn items(list: &[UploadStatus]) -> Vec<site::portal::UploadItem<'_>> {
    list.iter()
        .map(|u| site::portal::UploadItem {
            id: &u.id,
            image: &u.image,
            title: &u.title,
            filename: &u.filename,
            stage: u.stage.as_str(),
            received: u.received,
            length: u.length,
            waiting: u.waiting.as_deref(),
            error: u.error.as_deref(),
        })
        .collect()
}

/// Every route under `/portal/`.
pub fn routes(portal: Arc<Portal>) -> warp::filters::BoxedFilter<(Response<Body>,)> {
    let p = warp::any().map(move || portal.clone());
    let cookies = warp::header::optional::<String>("cookie");
    let headers = warp::header::headers_cloned();

    let script = warp::get().and(warp::path!("portal.js")).map(|| {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/javascript; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Bytes::from_static(site::PORTAL_JS.as_bytes()))
            .expect("valid response")
    });
    let home = warp::get()
        .and(warp::path::end())
        .and(cookies)
        .and(
            warp::query::<NextQuery>()
                .or(warp::any().map(|| NextQuery { next: None }))
                .unify(),
        )
        .and(p.clone())
        .map(|c: Option<String>, q: NextQuery, p: Arc<Portal>| {
            if let Err(why) = &p.secret {
                return html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    site::message(
                        "Uploads are off",
                        &format!("This frontend cannot take uploads: {why}"),
                    ),
                );
            }
            let next = safe_next(q.next.as_deref());
            match (p.session(c.as_deref()), next) {
                (Some(_), Some(next)) => see_other(next, None),
                (Some(s), None) => html(StatusCode::OK, site::portal::upload(&s.user, &p.csrf(&s))),
                (None, next) => html(StatusCode::OK, site::portal::signin_to(None, next)),
            }
        });
    let login = warp::post()
        .and(warp::path!("login"))
        .and(headers)
        .and(floor::serve::remote())
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::form::<LoginForm>())
        .and(p.clone())
        .then(
            |h: HeaderMap, remote: Option<SocketAddr>, form: LoginForm, p: Arc<Portal>| async move {
                login(h, remote, form, p).await
            },
        );
    let logout = warp::post()
        .and(warp::path!("logout"))
        .and(headers)
        .and(cookies)
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::form::<CsrfForm>())
        .and(p.clone())
        .then(
            |h: HeaderMap, c: Option<String>, f: CsrfForm, p: Arc<Portal>| async move {
                match p.session(c.as_deref()) {
                    Some(s) if p.csrf_ok(&s, f.csrf.as_deref()) => {
                        // A copy of the cookie kept elsewhere must not outlive the sign-out,
                        // at either frontend: the session's id goes to the nodes' list.
                        let nodes = p.accounts.revoke(&s.id, s.expiry).await;
                        tracing::info!(account = %s.user, nodes, "portal: signed out");
                        see_other("/portal/", Some(session::set_cookie("", over_tls(&p, &h))))
                    }
                    Some(_) => plain(
                        StatusCode::FORBIDDEN,
                        "the form is stale; reload the page and try again",
                    ),
                    None => see_other("/portal/", None),
                }
            },
        );
    let status_page = warp::get()
        .and(warp::path!("uploads"))
        .and(cookies)
        .and(warp::query::<NoticeQuery>())
        .and(p.clone())
        .then(
            |c: Option<String>, q: NoticeQuery, p: Arc<Portal>| async move {
                let Some(s) = p.session(c.as_deref()) else {
                    return see_other("/portal/", None);
                };
                let (list, problems) = p.uploads_of(&s.user).await;
                let notice = match (q.changed, q.withdrawn) {
                    (Some(id), _) => Some(format!("The details of {id} were saved.")),
                    (_, Some(id)) => Some(format!(
                        "{id} was withdrawn: it is no longer shown, and its copies are removed."
                    )),
                    _ => None,
                };
                html(
                    StatusCode::OK,
                    site::portal::uploads(
                        &s.user,
                        &p.csrf(&s),
                        &items(&list),
                        notice.as_deref(),
                        &problems,
                        &usage(&list, &p.quota, cluster::unix_now()),
                    ),
                )
            },
        );
    let list = warp::get()
        .and(warp::path!("api" / "uploads"))
        .and(cookies)
        .and(p.clone())
        .then(|c: Option<String>, p: Arc<Portal>| async move {
            let Some(s) = p.session(c.as_deref()) else {
                return plain(StatusCode::UNAUTHORIZED, "sign in first");
            };
            let (list, _) = p.uploads_of(&s.user).await;
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "no-store")
                .body(Bytes::from(serde_json::to_vec(&list).expect("plain data")))
                .expect("valid response")
        });
    let create = warp::post()
        .and(warp::path!("api" / "uploads"))
        .and(cookies)
        .and(warp::header::optional::<String>("x-csrf-token"))
        .and(warp::body::content_length_limit(64 << 10))
        .and(warp::body::bytes())
        .and(p.clone())
        .then(uploads::create);
    let chunk = warp::method()
        .and(warp::path!("api" / "uploads" / String / String))
        .and(cookies)
        .and(warp::header::optional::<String>("x-csrf-token"))
        .and(warp::header::optional::<String>("upload-offset"))
        .and(
            warp::body::content_length_limit(MAX_CHUNK)
                .and(floor::body::whole())
                .or(warp::any().map(Gathered::empty))
                .unify(),
        )
        .and(p.clone())
        .then(uploads::chunk);
    let edit_form = warp::get()
        .and(warp::path!("images" / String / "edit"))
        .and(cookies)
        .and(p.clone())
        .map(|id: String, c: Option<String>, p: Arc<Portal>| {
            let Some(s) = p.session(c.as_deref()) else {
                return see_other("/portal/", None);
            };
            edit::edit_page(&p, &s, &id, None)
        });
    let edit = warp::post()
        .and(warp::path!("images" / String / "edit"))
        .and(headers)
        .and(cookies)
        .and(warp::body::content_length_limit(64 << 10))
        .and(warp::body::form::<edit::EditForm>())
        .and(p.clone())
        .then(edit::edit);
    let withdraw = warp::post()
        .and(warp::path!("images" / String / "delete"))
        .and(headers)
        .and(cookies)
        .and(warp::body::content_length_limit(4 << 10))
        .and(warp::body::form::<edit::WithdrawForm>())
        .and(p)
        .then(edit::withdraw);
    let all = home
        .or(script)
        .unify()
        .or(login)
        .unify()
        .or(logout)
        .unify()
        .or(status_page)
        .unify()
        .or(list)
        .unify()
        .or(create)
        .unify()
        .or(chunk)
        .unify()
        .or(edit_form)
        .unify()
        .or(edit)
        .unify()
        .or(withdraw)
        .unify()
        .recover(rejection)
        .unify();
    warp::path("portal").and(all).boxed()
}

async fn login(
    h: HeaderMap,
    remote: Option<SocketAddr>,
    form: LoginForm,
    p: Arc<Portal>,
) -> Response<Body> {
    if !same_origin(&h) {
        return plain(StatusCode::FORBIDDEN, "sign in from this site's own page");
    }
    let Ok(secret) = p.secret.clone() else {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            site::portal::signin(Some("Uploads are off on this frontend.")),
        );
    };
    let address = address::client(remote, &h, &p.trusted_proxies);
    let name = form.name.trim().to_ascii_lowercase();
    let cookies = h.get(header::COOKIE).and_then(|c| c.to_str().ok());
    let known_device = session::known_device(&secret, cookies, &name);
    let next = safe_next(form.next.as_deref()).map(str::to_string);
    let next = next.as_deref();
    // Counted before the hash: guesses sent at once are refused once the limit is reached,
    // not all hashed first.
    let attempt = match p
        .limiter
        .begin(&name, &address, known_device, Instant::now())
    {
        Ok(attempt) => attempt,
        Err(wait) => {
            let mut r = html(
                StatusCode::TOO_MANY_REQUESTS,
                site::portal::signin_to(
                    Some(&format!(
                        "Too many failed sign-ins. Try again in {} seconds.",
                        wait.as_secs().max(1)
                    )),
                    next,
                ),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                wait.as_secs_f64()
                    .ceil()
                    .max(1.0)
                    .to_string()
                    .parse()
                    .expect("a number"),
            );
            return r;
        }
    };
    let accounts = p.accounts.clone();
    let checked = p
        .gate
        .check(move || accounts.users(), name.clone(), form.password)
        .await;
    match checked {
        Ok(Ok(true)) => {
            p.limiter.succeeded(attempt);
            // The generation as of now: read again, the hash took a while.
            let generation = p
                .accounts
                .users()
                .ok()
                .and_then(|u| u.generation(&name))
                .unwrap_or_default();
            let id = match cluster::auth::random_hex(16) {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "portal: no random session id");
                    return plain(StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed");
                }
            };
            let value = session::start(&secret, &name, generation, &id, cluster::unix_now());
            let mut r = see_other(
                next.unwrap_or("/portal/"),
                Some(session::set_cookie(&value, over_tls(&p, &h))),
            );
            r.headers_mut().append(
                header::SET_COOKIE,
                session::set_device_cookie(&secret, &name, over_tls(&p, &h))
                    .parse()
                    .expect("a cookie of plain characters"),
            );
            r
        }
        // The attempt stays counted.
        Ok(Ok(false)) => html(
            StatusCode::UNAUTHORIZED,
            site::portal::signin_to(Some("Sign-in failed: wrong name or password."), next),
        ),
        Ok(Err(e)) => {
            p.limiter.take_back(attempt);
            tracing::error!(error = %e, "portal: the accounts file cannot be read");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                site::portal::signin(Some("Sign-in is unavailable: the accounts file cannot be read. The operator has been told in the log.")),
            )
        }
        Err(gate::GateError::Busy) => {
            p.limiter.take_back(attempt);
            tracing::debug!(account = %name, address = %address, "portal: too many sign-ins at once");
            let mut r = html(
                StatusCode::SERVICE_UNAVAILABLE,
                site::portal::signin_to(
                    Some("Too many sign-ins at once. Try again in a few seconds."),
                    next,
                ),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                gate::BUSY_RETRY_SECS.to_string().parse().expect("a number"),
            );
            r
        }
        Err(e @ gate::GateError::Failed(_)) => {
            p.limiter.take_back(attempt);
            tracing::error!(error = %e, "portal: sign-in");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed")
        }
    }
}

/// Refusals inside `/portal/` as short answers.
pub async fn rejection(r: Rejection) -> Result<Response<Body>, Infallible> {
    Ok(if r.is_not_found() {
        plain(StatusCode::NOT_FOUND, "there is nothing at this address")
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        plain(StatusCode::METHOD_NOT_ALLOWED, "not allowed here")
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        plain(StatusCode::PAYLOAD_TOO_LARGE, "too large for one request")
    } else {
        plain(StatusCode::BAD_REQUEST, "the form was not complete")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(home: &str, created: u64, length: u64, pixels: Option<u64>) -> UploadStatus {
        UploadStatus {
            id: format!("{home}{created}"),
            image: "img".into(),
            owner: "ada".into(),
            title: "T".into(),
            filename: "f.png".into(),
            length,
            received: length,
            stage: cluster::Stage::Published,
            waiting: None,
            error: None,
            home: home.into(),
            created,
            updated: created,
            pixels,
        }
    }

    #[test]
    fn usage_counts_the_last_day_on_the_busiest_node_against_the_quotas() {
        let now = 1_000_000;
        let list = [
            sent("node-a", now - 10, 2_000_000_000, Some(30_000_000)),
            sent("node-a", now - 20, 1_000_000_000, None),
            sent("node-b", now - 30, 500_000_000, Some(90_000_000)),
            // Two days ago: no longer counted.
            sent("node-a", now - 2 * 86_400, 9_000_000_000, Some(900_000_000)),
        ];
        let said = usage(&list, &cluster::QuotaConfig::default(), now);
        assert!(said.contains("3.00 GB sent"), "{said}");
        assert!(said.contains("90.0 megapixels tiled"), "{said}");
        assert!(said.contains("200 GB and 20000 megapixels a day"), "{said}");
    }
}
