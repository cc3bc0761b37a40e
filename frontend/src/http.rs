//! The canonical address: redirects to a healthy replica, the gallery and search, the IIIF
//! collection, the upload portal and the operator's dashboard (`/ops/`), and the frontend's
//! own health. It never serves image bytes itself.

use std::convert::Infallible;
use std::sync::Arc;

use serde::Deserialize;
use warp::http::{header, Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::{Filter, Rejection, Reply};

use crate::table::{Choice, Order, Query, Table};

type Body = Bytes;

/// Images on one gallery or search page.
pub const PER_PAGE: usize = 24;

/// What the routes need.
pub struct Front {
    pub name: String,
    /// The root of the collection's public URLs (the IIIF collection's ids): the cluster's
    /// `public_url`, else its canonical address.
    pub public_url: String,
    pub table: Arc<Table>,
    pub runner: cluster::worker::Runner,
    /// The failover state machine, once started.
    pub failover: std::sync::OnceLock<crate::holder::Shared>,
    /// The upload portal under `/portal/`.
    pub portal: Arc<crate::portal::Portal>,
    /// Its certificate, when its addresses (its own and the canonical one) speak https.
    pub tls: Option<floor::tls::ServerTls>,
}

/// Every route of a frontend.
pub fn routes(
    front: Arc<Front>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let portal = crate::portal::routes(front.portal.clone());
    let ops = crate::portal::dashboard::routes(
        front.portal.clone(),
        crate::portal::dashboard::Local {
            name: front.name.clone(),
            runner: front.runner.clone(),
        },
    );
    let f = warp::any().map(move || front.clone());
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let images = warp::path!("images" / String)
        .and(raw_query)
        .and(f.clone())
        .map(|id: String, query: String, f: Arc<Front>| image_redirect(&f, &id, &query));
    // Everything a backend serves per image, under the same path.
    let passthrough = warp::path::full().and(f.clone()).and_then(
        |path: warp::path::FullPath, f: Arc<Front>| async move {
            let p = path.as_str();
            let id = image_of(p).ok_or_else(warp::reject::not_found)?;
            Ok::<_, Rejection>(redirect(&f, &id, p))
        },
    );
    let searches = Arc::new(tokio::sync::Semaphore::new(SEARCHES_AT_ONCE));
    let searches = warp::any().map(move || searches.clone());
    let gallery = warp::path::end()
        .and(warp::query::<SearchQuery>())
        .and(f.clone())
        .and(searches.clone())
        .then(|q, f, s| search_bounded(q, f, "Collection", s));
    let search_page = warp::path!("search")
        .and(warp::query::<SearchQuery>())
        .and(f.clone())
        .and(searches)
        .then(|q, f, s| search_bounded(q, f, "Search", s));
    let collection = warp::path!("iiif" / "collection.json")
        .and(f.clone())
        .map(collection);
    let collection_page = warp::path!("iiif" / "collection" / String)
        .and(f.clone())
        .map(collection_page);
    let health = warp::path!("health").and(f.clone()).map(|f: Arc<Front>| {
        let backends = f.table.backends();
        let up = backends.iter().filter(|b| b.up).count();
        // `status` is about the backends this frontend sends visitors to; how redundant the
        // images are is `redundancy` (the same counts as `td status`).
        let r = f.table.redundancy();
        json(&serde_json::json!({
            "frontend": f.name,
            "status": if up == backends.len() { "ok" } else { "degraded" },
            "images": f.table.len(),
            "redundancy": r,
            "backends": backends,
        }))
    });
    let metrics = warp::path!("metrics").and(f.clone()).map(|f: Arc<Front>| {
        let r = f.table.redundancy();
        let up = f.table.backends().iter().filter(|b| b.up).count();
        let mut text = String::new();
        for (name, help, value) in [
            ("td_images", "Images the frontend knows of.", r.images),
            (
                "td_images_healthy",
                "Images with two readable replicas in two power domains.",
                r.healthy,
            ),
            (
                "td_images_under_replicated",
                "Images readable, but not twice in two power domains.",
                r.under_replicated,
            ),
            ("td_images_lost", "Images with no readable replica.", r.lost),
            ("td_backends_up", "Backends answering this frontend.", up),
        ] {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            ));
        }
        warp::reply::with_header(text, header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .into_response()
    });
    let failover = warp::path!("failover").and(f.clone()).map(|f: Arc<Front>| {
        let (state, rounds, verdict, dropped) = match f.failover.get() {
            Some(s) => {
                let m = s.machine.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let v = *s.last_verdict.lock().unwrap_or_else(|p| p.into_inner());
                let rounds = s.witness_rounds.load(std::sync::atomic::Ordering::Relaxed);
                (Some(m), rounds, v, Some(s.dropped.snapshot()))
            }
            None => (None, 0, None, None),
        };
        json(&serde_json::json!({
            "frontend": f.name,
            "failover": state,
            "witness_rounds": rounds,
            "last_verdict": verdict,
            "dropped_heartbeats": dropped,
        }))
    });
    let workers = warp::path!("workers")
        .and(f)
        .map(|f: Arc<Front>| json(&serde_json::json!(f.runner.statuses())));
    let style = warp::path!("site" / "style.css").map(|| {
        warp::reply::with_header(
            site::STYLE_CSS,
            header::CONTENT_TYPE,
            "text/css; charset=utf-8",
        )
        .into_response()
    });
    let get = warp::get().or(warp::head()).unify().and(
        // The redirect first: it is nearly all the traffic.
        images
            .or(gallery)
            .or(search_page)
            .or(collection)
            .or(collection_page)
            .or(health)
            .or(metrics)
            .or(failover)
            .or(workers)
            .or(style)
            .or(passthrough),
    );
    let preflight = warp::options()
        .and(warp::path::full())
        .and(warp::header::optional::<String>(
            "access-control-request-headers",
        ))
        .and_then(
            |path: warp::path::FullPath, asked: Option<String>| async move {
                if private(path.as_str()) {
                    return Err(warp::reject::not_found());
                }
                Ok(floor::cors::preflight::<Body>(asked.as_deref()).into_response())
            },
        );
    let all = get
        .or(portal)
        .or(ops)
        .recover(rejection)
        .map(Reply::into_response);
    // Before any route: a route's refusal of OPTIONS would outrank the others' "not found".
    warp::path::full().and(preflight.or(all).unify()).map(
        |path: warp::path::FullPath, mut response: warp::reply::Response| {
            // What a visitor sees is readable by a viewer on another website, redirects and
            // errors included; the portal and the dashboard, behind a sign-in, are not.
            if !private(path.as_str()) {
                floor::cors::allow(&mut response);
            }
            response
        },
    )
}

/// `/images/{segment}?{query}`: a redirect to the image's viewer on a replica, with the query
/// passed on if it is plain.
fn image_redirect(f: &Front, segment: &str, query: &str) -> Response<Body> {
    let query = safe_query(query)
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    match cluster::image_id_in_path(segment) {
        Some(id) => redirect(f, &id, &format!("/view/{id}{query}")),
        None => not_an_image(),
    }
}

/// The redirects of `/images/{id}`, nearly all of a frontend's traffic, answered before the
/// routes are tried (the same answer as the `images` route, from the same function).
pub struct QuickRedirects(pub Arc<Front>);

impl floor::serve::Quick for QuickRedirects {
    fn answer(
        &self,
        method: &warp::http::Method,
        uri: &warp::http::Uri,
        _: &warp::http::HeaderMap,
    ) -> Option<Response<Body>> {
        if method != warp::http::Method::GET && method != warp::http::Method::HEAD {
            return None;
        }
        let segment = uri.path().strip_prefix("/images/")?;
        // An empty segment or a longer path is the routes' to refuse.
        if segment.is_empty() || segment.contains('/') {
            return None;
        }
        Some(image_redirect(&self.0, segment, uri.query().unwrap_or("")))
    }
}

/// The pages behind a sign-in: never shared with other websites.
fn private(path: &str) -> bool {
    ["/portal", "/ops"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The image id in a backend path the frontend forwards, if it is one (decoded: `%2D` is `-`).
fn image_of(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    let id = match (parts.next()?, parts.next()?) {
        ("tiles", id) => id,
        ("thumbs", file) => file.strip_suffix(".jpg")?,
        ("meta", file) => file.strip_suffix(".json")?,
        ("view", id) => id,
        ("iiif", "3") => parts.next()?,
        _ => return None,
    };
    cluster::image_id_in_path(id).map(|id| id.into_owned())
}

/// A query string passed on to the viewer only if it is made of plain characters.
fn safe_query(q: &str) -> Option<&str> {
    (!q.is_empty()
        && q.len() <= 200
        && q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=&_-.,".contains(&b)))
    .then_some(q)
}

fn not_an_image() -> Response<Body> {
    page(
        StatusCode::BAD_REQUEST,
        "Not an image address",
        "Image names are letters, digits, '-' and '_'.",
    )
}

/// `id` is a valid image id, decoded; `path` the path to send the visitor to on its replica.
fn redirect(f: &Front, id: &str, path: &str) -> Response<Body> {
    match f.table.choose(id) {
        Choice::Origin(origin) => Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, format!("{origin}{path}"))
            .header(header::CACHE_CONTROL, "no-store")
            .body(Bytes::new())
            .expect("valid response"),
        Choice::Unknown => page(
            StatusCode::NOT_FOUND,
            "No such image",
            "There is no image with this name in the collection. It may have been renamed; try the search.",
        ),
        Choice::Unavailable => {
            let mut r = page(
                StatusCode::SERVICE_UNAVAILABLE,
                "This image is briefly unavailable",
                "Both copies of this image are out of reach at the moment (a machine is restarting or being repaired). Please try again in a minute.",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, "30".parse().expect("valid header"));
            r
        }
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::from(site::message(title, text)))
        .expect("valid response")
}

fn json(value: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .body(Bytes::from(value.to_string()))
        .expect("valid response")
}

#[derive(Debug, Default, Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    artist: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    page: Option<usize>,
    /// "title": by title only; anything else: best matches first.
    #[serde(default)]
    sort: String,
}

/// Searches that read rows at once; more wait, at most [`SEARCH_WAIT`].
const SEARCHES_AT_ONCE: usize = 2;
const SEARCH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A gallery or search page. Without a query it is a slice of the table's order, answered at
/// once; a search asks the index and may read many of the rows it names (an artist, a word
/// with signs), so it runs on the blocking pool (never holding up the redirects on the async
/// threads), a few at a time, and a crowd of them gets 503.
async fn search_bounded(
    sq: SearchQuery,
    f: Arc<Front>,
    heading: &'static str,
    searches: Arc<tokio::sync::Semaphore>,
) -> Response<Body> {
    if Query::parse(&sq.q, &sq.artist, &sq.from, &sq.to).is_empty() {
        return search(sq, f, heading);
    }
    let Ok(Ok(permit)) = tokio::time::timeout(SEARCH_WAIT, searches.acquire_owned()).await else {
        let mut r = page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Many searches are under way; please try again in a few seconds.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, "5".parse().expect("valid header"));
        return r;
    };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        search(sq, f, heading)
    })
    .await
    .unwrap_or_else(|_| {
        page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Search failed",
            "The search stopped; please try again.",
        )
    })
}

fn search(sq: SearchQuery, f: Arc<Front>, heading: &str) -> Response<Body> {
    let mut query = Query::parse(&sq.q, &sq.artist, &sq.from, &sq.to);
    let by_title = sq.sort == "title";
    if by_title {
        query.order = Order::Title;
    }
    let page_no = sq.page.unwrap_or(1).max(1);
    let (rows, total) = f.table.search(&query, page_no - 1, PER_PAGE);
    let pages = total.div_ceil(PER_PAGE);
    // The link to page `n` of this search, by title or best first.
    let link = |n: usize, by_title: bool| {
        let mut parts = Vec::new();
        for (k, v) in [
            ("q", &sq.q),
            ("artist", &sq.artist),
            ("from", &sq.from),
            ("to", &sq.to),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", url_encode(v)));
            }
        }
        if by_title {
            parts.push("sort=title".into());
        }
        parts.push(format!("page={n}"));
        let base = if query.is_empty() { "/" } else { "/search" };
        format!("{base}?{}", parts.join("&"))
    };
    // Words asked: the order can be chosen (without words, it is the title's anyway).
    let order = (!query.words.is_empty()).then(|| site::SearchOrder {
        best_first: !by_title,
        other: link(1, !by_title),
    });
    let items = rows
        .iter()
        .map(|r| site::GalleryItem {
            id: &r.id,
            title: &r.meta.title,
            artist: &r.meta.artist,
            date: &r.meta.date,
        })
        .collect();
    let body = site::search(&site::SearchPage {
        heading,
        q: &sq.q,
        artist: &sq.artist,
        from: &sq.from,
        to: &sq.to,
        items,
        total,
        page: page_no,
        pages,
        prev: (page_no > 1).then(|| link(page_no - 1, by_title)),
        next: (page_no < pages).then(|| link(page_no + 1, by_title)),
        order,
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Bytes::from(body))
        .expect("valid response")
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/iiif/collection.json`: the top of the IIIF collection (`crate::collection`), each image by
/// its manifest under the public URL (which redirects to a replica).
fn collection(f: Arc<Front>) -> Response<Body> {
    let (first, total) = f.table.titles(0, crate::collection::PER_PAGE);
    collection_answer(crate::collection::top(&f.public_url, total, &first))
}

/// `/iiif/collection/N.json`: one page of a large collection.
fn collection_page(n_json: String, f: Arc<Front>) -> Response<Body> {
    use crate::collection::{first_of, pages, PER_PAGE};
    let n = n_json
        .strip_suffix(".json")
        .and_then(|n| n.parse::<usize>().ok());
    let (items, total) = match n {
        Some(n) if n >= 1 => f.table.titles(first_of(n), PER_PAGE),
        _ => (Vec::new(), 0),
    };
    match n {
        Some(n) if n >= 1 && n <= pages(total) => {
            collection_answer(crate::collection::page(&f.public_url, n, total, &items))
        }
        _ => page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such page of the collection; /iiif/collection.json lists them.",
        ),
    }
}

fn collection_answer(value: serde_json::Value) -> Response<Body> {
    let mut r = json(&value);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        format!("public, max-age={}", crate::collection::MAX_AGE_SECS)
            .parse()
            .expect("valid header"),
    );
    r
}

async fn rejection(r: Rejection) -> Result<Response<Body>, Infallible> {
    Ok(if r.is_not_found() {
        page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing at this address.",
        )
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        page(
            StatusCode::BAD_REQUEST,
            "Bad search",
            "The page number must be a whole number.",
        )
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Not allowed",
            "Only GET and HEAD are served here.",
        )
    } else {
        page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "This address is not one the collection understands.",
        )
    })
}

/// Serves the frontend on a bound listener until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    front: Arc<Front>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let tls = front.tls.clone();
    floor::serve::serve_quick(
        listener,
        Arc::new(QuickRedirects(front.clone())),
        routes(front),
        floor::serve::Limits::default(),
        tls,
        shutdown,
    )
    .await;
}
