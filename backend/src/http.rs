//! The HTTP face of a node: gallery, viewer page, tiles, IIIF and thumbnails for visitors;
//! the catalog for frontends; health, metrics, events and workers for operators.
//!
//! A tile is one positional read of a pyramid file on a blocking thread, sent with long-lived
//! cache headers and an ETag taken from the tile index, so a revalidation costs no read at all.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use warp::http::{header, HeaderMap, Method, Response, StatusCode, Uri};
use warp::hyper::body::Bytes;
use warp::{Filter, Rejection, Reply};

use crate::iiif::{self, render, ImageRequest, OutputLimits};
use crate::library::Image;
use crate::metrics::{DiskGauge, Metrics};
use crate::node::Node;
use crate::tile_cache::{TileCache, DEFAULT_TILE_CACHE_BYTES};

/// The largest image the IIIF service renders: 16 megapixels, sides up to 8192 px. A rendered
/// request decodes at most four times that from the pyramid, so one request stays within about
/// 200 MB however large the original.
pub const IIIF_LIMITS: OutputLimits = OutputLimits {
    max_width: 8192,
    max_height: 8192,
    max_area: 16_000_000,
};

/// Tiles the plain-HTML viewer shows at once: fits a laptop screen at 256 px tiles and
/// shrinks to the phone's width through CSS.
const WINDOW_COLS: u32 = 4;
const WINDOW_ROWS: u32 = 3;

type Body = warp::hyper::body::Bytes;

/// What the routes and the quick answers share: the node, its tile cache and the counters of
/// what it answered.
#[derive(Clone)]
pub struct Serving {
    pub node: Arc<Node>,
    cache: Arc<TileCache>,
    metrics: Arc<Metrics>,
}

impl Serving {
    pub fn new(node: Arc<Node>) -> Serving {
        Serving {
            node,
            cache: Arc::new(TileCache::new(DEFAULT_TILE_CACHE_BYTES)),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Counts an answer by route: its status and time, and the bytes of its body (none sent
    /// for HEAD).
    fn count(
        &self,
        path: &str,
        method: &Method,
        status: StatusCode,
        body: Option<u64>,
        took: Duration,
    ) {
        self.metrics.record(path, status.as_u16(), took);
        if let Some(n) = body.filter(|_| method != Method::HEAD) {
            self.metrics.add_bytes(path, n);
        }
    }
}

/// Every route of a node, with errors turned into short plain-text answers.
pub fn routes(
    serving: &Serving,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let node = serving.node.clone();
    let runner = node.runner.clone();
    // Boxed: the route tree is deep enough already for the compiler.
    let internal = crate::http_internal::routes(node.clone(), node.secret.clone())
        .map(Reply::into_response)
        .boxed();
    let join = crate::http_join::route(node.secret.clone(), node.config.name.clone());
    let workers =
        warp::path!("workers").map(move || json_reply(&serde_json::json!(runner.statuses())));
    let lib = warp::any().map(move || node.clone());
    let metrics = serving.metrics.clone();
    let cache = serving.cache.clone();
    let metrics = warp::any().map(move || metrics.clone());
    let cache = warp::any().map(move || cache.clone());
    let health = warp::path!("health").and(lib.clone()).map(health);
    let meta = warp::path!("meta" / String).and(lib.clone()).map(meta);
    let metrics_page = warp::path!("metrics")
        .and(metrics)
        .and(lib.clone())
        .and(cache.clone())
        .map(|m: Arc<Metrics>, node: Arc<Node>, cache: Arc<TileCache>| {
            let disks: Vec<_> = node.library.disks().iter().map(disk_gauge).collect();
            warp::reply::with_header(
                m.render(node.library.len(), cache.counts(), &disks),
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )
        });
    let catalog = warp::path!("catalog")
        .and(query::<SinceQuery>(
            "since must be a whole number (a catalog version), files and meta true or false",
        ))
        .and(lib.clone())
        .then(|q: SinceQuery, node: Arc<Node>| async move {
            // Reading a page of 10,000 entries from the store takes a while: off the async
            // threads, so visitors' tiles are not held up behind it. A page without what the
            // content providers said is what the other nodes' re-mirror workers read (a
            // frontend always asks for it): background work, built at background priority,
            // so that a new frontend's pages come first while the nodes of a large cluster
            // start and read each other's catalogs whole.
            let page = if q.meta == Some(false) {
                floor::background::run("catalog-page", move || catalog_page(&q, &node))
                    .await
                    .ok()
            } else {
                tokio::task::spawn_blocking(move || catalog_page(&q, &node))
                    .await
                    .ok()
            };
            page.unwrap_or_else(|| text(StatusCode::INTERNAL_SERVER_ERROR, "catalog read failed"))
        });
    let witness = warp::path!("witness" / String).and(lib.clone()).then(
        |name: String, node: Arc<Node>| async move {
            match node.frontends.iter().find(|f| f.name == name) {
                Some(f) => no_store(json_reply(
                    &serde_json::to_value(crate::witness::look_at(&node.client, f.address).await)
                        .expect("plain data"),
                )),
                None => text(StatusCode::NOT_FOUND, "no frontend with this name"),
            }
        },
    );
    let events = warp::path!("events")
        .and(query::<SinceQuery>("since and limit must be whole numbers"))
        .and(lib.clone())
        .map(|q: SinceQuery, node: Arc<Node>| {
            let limit = q.limit.unwrap_or(100).clamp(1, 1000);
            let page = match q.since {
                Some(since) => node.events.since(since, limit),
                None => node.events.recent(limit),
            };
            no_store(json_reply(&page))
        });
    let redundancy = warp::path!("redundancy")
        .and(lib.clone())
        .map(|node: Arc<Node>| {
            no_store(json_reply(
                &serde_json::to_value(node.redundancy.status()).expect("plain data"),
            ))
        });
    let gallery = warp::path::end()
        .and(warp::query::<GalleryQuery>())
        .and(lib.clone())
        .map(gallery);
    let style = warp::path!("site" / "style.css").map(|| {
        warp::reply::with_header(
            site::STYLE_CSS,
            header::CONTENT_TYPE,
            "text/css; charset=utf-8",
        )
    });
    let script = warp::path!("site" / "viewer.js").map(|| {
        warp::reply::with_header(
            site::VIEWER_JS,
            header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )
    });
    let view = warp::path!("view" / String)
        .and(query::<ViewQuery>(
            "level, col and row must be whole numbers",
        ))
        .and(lib.clone())
        .map(view);
    let tiles = warp::path!("tiles" / String / usize / u32 / String)
        .and(warp::header::optional::<String>("if-none-match"))
        .and(lib.clone())
        .and(cache.clone())
        .then(tile);
    let thumbs = warp::path!("thumbs" / String)
        .and(lib.clone())
        .then(thumbnail);
    let iiif_base = warp::path!("iiif" / "3" / String).map(|id: String| {
        let Some(id) = cluster::image_id_in_path(&id) else {
            return text(StatusCode::NOT_FOUND, "no image with this id");
        };
        Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, format!("/iiif/3/{id}/info.json"))
            .body(Bytes::new())
            .expect("valid response")
    });
    let accept = || warp::header::optional::<String>("accept");
    let iiif_info = warp::path!("iiif" / "3" / String / "info.json")
        .and(accept())
        .and(lib.clone())
        .map(iiif_info);
    let iiif_manifest = warp::path!("iiif" / "3" / String / "manifest.json")
        .and(accept())
        .and(lib.clone())
        .map(iiif_manifest);
    let iiif_image = warp::path!("iiif" / "3" / String / String / String / String / String)
        .and(warp::header::optional::<String>("if-none-match"))
        .and(lib)
        .and(cache)
        .then(iiif_image);
    let counted = serving.clone();
    let preflight = warp::options()
        .and(warp::header::optional::<String>(
            "access-control-request-headers",
        ))
        .map(|asked: Option<String>| {
            floor::cors::preflight::<Body>(asked.as_deref()).into_response()
        });
    // HEAD is answered like GET; hyper leaves the body out. The routes are tried in order, and
    // each one tried and refused costs a little (the IIIF routes before the image route each
    // parsed and copied the id): tiles, by either URL, are most of what a node serves, so they
    // come first.
    let all = internal
        .or(join)
        .or(warp::get().or(warp::head()).unify().and(
            tiles
                .or(iiif_image)
                .unify()
                .boxed()
                .or(gallery)
                .or(style)
                .or(script)
                .or(view)
                .or(thumbs)
                .or(iiif_base)
                .or(iiif_info)
                .or(iiif_manifest)
                .or(meta)
                .or(health)
                .or(catalog)
                .or(witness)
                .or(events)
                .or(workers)
                .or(redundancy)
                .or(metrics_page),
        ))
        // One box for the whole tree: warp copies the filter for every request, and a copy of
        // the unboxed tree took a reference to every shared part of every route (5% of a
        // node's CPU under tile load).
        .boxed()
        .recover(rejection)
        .map(Reply::into_response);
    // A preflight is answered before any route, whatever the path: a route's own refusal of
    // OPTIONS would otherwise outrank its "not found".
    let all = preflight.or(all).unify();
    // Every answer counted by route: status, time and bytes (every body here has a known size).
    warp::path::full()
        .and(warp::method())
        .and(warp::any().map(Instant::now))
        .and(all)
        .map(
            move |path: warp::path::FullPath, method: Method, start: Instant, reply| {
                let mut response = warp::Reply::into_response(reply);
                // Every answer, errors and redirects too, is readable by a viewer on another
                // website; what a signature guards is not readable without one anyway.
                floor::cors::allow(&mut response);
                let body = http_body::Body::size_hint(response.body()).exact();
                let took = start.elapsed();
                counted.count(path.as_str(), &method, response.status(), body, took);
                response
            },
        )
}

/// Stored tiles in the cache, by either URL, nearly all of a node's traffic: answered before the
/// routes are tried, with the routes' own functions. A tile not in the cache, a render, and
/// anything else is left to the routes.
pub struct QuickTiles(pub Serving);

impl floor::serve::Quick for QuickTiles {
    fn answer(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let start = Instant::now();
        let node = &self.0.node;
        let path = uri.path();
        let if_none_match = match headers.get(header::IF_NONE_MATCH) {
            Some(v) => Some(v.to_str().ok()?),
            None => None,
        };
        let asked = if let Some(rest) = path.strip_prefix("/tiles/") {
            let [id, level, col, row_jpg] = segments(rest)?;
            let (level, col) = (level.parse().ok()?, col.parse().ok()?);
            tile_asked(node, id, level, col, row_jpg, if_none_match)
        } else if let Some(rest) = path.strip_prefix("/iiif/3/") {
            let [id, region, size, rotation, quality] = segments(rest)?;
            match iiif_asked(node, id, [region, size, rotation, quality], if_none_match) {
                Ok(IiifAsked::Tile(tile)) => Ok(tile),
                Ok(IiifAsked::Render { .. }) => return None,
                Err(answer) => Err(answer),
            }
        } else {
            return None;
        };
        let answer = match asked {
            Ok(tile) => tile.cached(&self.0.cache)?,
            Err(answer) => answer,
        };
        let body = Some(answer.body().len() as u64);
        self.0
            .count(path, method, answer.status(), body, start.elapsed());
        Some(answer)
    }
}

/// The `N` segments of a path, none empty, or `None`.
fn segments<const N: usize>(path: &str) -> Option<[&str; N]> {
    let mut parts = path.split('/');
    let found = std::array::from_fn(|_| parts.next().unwrap_or(""));
    (parts.next().is_none() && found.iter().all(|p| !p.is_empty())).then_some(found)
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Bytes::from(format!("{message}\n")))
        .expect("valid response")
}

/// The most entries one catalog answer holds when a limit is asked for.
const MAX_CATALOG_PAGE: usize = 10_000;

#[derive(Debug, Deserialize)]
struct SinceQuery {
    since: Option<u64>,
    limit: Option<usize>,
    /// `/catalog`: false leaves out the replicas' file sums.
    files: Option<bool>,
    /// `/catalog`: false leaves out what the content providers said (title, artist, …): the
    /// other nodes' re-mirror rules use none of it, and its owner's HMAC is a page's dearest
    /// part after the reading.
    meta: Option<bool>,
}

/// A query string that did not parse as its route's, and what the route takes.
#[derive(Debug)]
struct BadQuery(&'static str);
impl warp::reject::Reject for BadQuery {}

/// The query string of a route, refused saying what `takes` says (each route its own words).
fn query<T: serde::de::DeserializeOwned + Send + 'static>(
    takes: &'static str,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::query::<T>()
        .or_else(move |_| async move { Err::<(T,), _>(warp::reject::custom(BadQuery(takes))) })
}

fn no_store(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("valid header"),
    );
    r
}

fn disk_gauge(d: &Arc<crate::disk::Disk>) -> DiskGauge {
    let failed = d.is_failed();
    // A failed disk is not asked: statvfs on a hung filesystem could hang too.
    let space = (!failed).then(|| {
        (
            fs2::available_space(&d.config.path).ok(),
            fs2::total_space(&d.config.path).ok(),
        )
    });
    let (free, total) = space.unwrap_or((None, None));
    DiskGauge {
        id: d.config.id.clone(),
        failed,
        free,
        total,
    }
}

/// 503 with `Retry-After`: this replica cannot serve `what`, the other one may (the viewer and
/// the frontends move on to it).
fn replica_unavailable(what: &str) -> Response<Body> {
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("this copy of the {what} is unreadable; try the other replica"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, "1".parse().expect("valid header"));
    r
}

fn html(page: String) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Bytes::from(page))
        .expect("valid response")
}

async fn rejection(r: Rejection) -> Result<Response<Body>, Infallible> {
    Ok(if r.is_not_found() {
        text(StatusCode::NOT_FOUND, "not found")
    } else if let Some(BadQuery(takes)) = r.find() {
        text(StatusCode::BAD_REQUEST, &format!("bad query: {takes}"))
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        text(StatusCode::BAD_REQUEST, "bad query string")
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "this request's body is too large",
        )
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        text(
            StatusCode::LENGTH_REQUIRED,
            "this request needs a Content-Length",
        )
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served here",
        )
    } else {
        text(StatusCode::BAD_REQUEST, "bad request")
    })
}

/// `GET /catalog?since=V&limit=N&files=false&meta=false`: the entries changed after version V.
fn catalog_page(q: &SinceQuery, node: &Node) -> Response<Body> {
    // A limit keeps each answer bounded.
    let limit = q.limit.map_or(usize::MAX, |l| l.clamp(1, MAX_CATALOG_PAGE));
    let mut page = node.catalog.page_after(q.since.unwrap_or(0), limit);
    // Account names stay on the node: they are what a password guesser needs.
    for e in &mut page.entries {
        e.meta = if q.meta == Some(false) {
            cluster::ImageMeta::default()
        } else {
            e.meta.published(node.secret.as_ref())
        };
        if q.files == Some(false) {
            e.files = Vec::new();
        }
    }
    // Written out straight, not through a serde_json::Value (a tree of maps for 10,000
    // entries).
    no_store(json_reply(&page))
}

/// `GET /meta/{id}.json`: what the content provider said about the image, and its size.
fn meta(id_json: String, node: Arc<Node>) -> Response<Body> {
    let Some(image) = id_json.strip_suffix(".json").and_then(|id| find(&node, id)) else {
        return text(StatusCode::NOT_FOUND, "no image with this id");
    };
    let g = image.geometry();
    let mut value =
        serde_json::to_value(image.meta.published(node.secret.as_ref())).expect("plain data");
    value["id"] = image.id.clone().into();
    value["width"] = g.width.into();
    value["height"] = g.height.into();
    json_reply(&value)
}

/// The node's own view of its health. (Disks and their states come with the disk set.)
fn health(node: Arc<Node>) -> Response<Body> {
    let disks: Vec<_> = node
        .library
        .disks()
        .iter()
        .map(|d| {
            let gauge = disk_gauge(d);
            let mut v = serde_json::to_value(d.state()).expect("plain data");
            v["id"] = d.config.id.clone().into();
            v["path"] = d.config.path.display().to_string().into();
            v["serial"] = d.config.serial.clone().into();
            v["slot"] = d.config.location.slot.into();
            v["free_bytes"] = gauge.free.into();
            v["total_bytes"] = gauge.total.into();
            v
        })
        .collect();
    let failed = node.library.disks().iter().any(|d| d.is_failed());
    let suspect: Vec<_> = node
        .faults
        .suspects()
        .into_iter()
        .map(|(id, reason)| serde_json::json!({ "id": id, "reason": reason }))
        .collect();
    let ok = node.warnings.is_empty() && !failed && suspect.is_empty();
    let body = serde_json::json!({
        "node": node.config.name,
        "status": if ok { "ok" } else { "degraded" },
        "suspect_replicas": suspect,
        "images": node.library.len(),
        "catalog": { "name": node.catalog.generation(), "version": node.catalog.version() },
        "disks": disks,
        "warnings": node.warnings,
        "renders": {
            "memory_in_use_bytes": node.renders.in_use(),
            "waiting": node.renders.waiting(),
        },
        "pid": std::process::id(),
    });
    no_store(json_reply(&body))
}

/// A node's own gallery shows this many images a page: a node of half a million replicas
/// built a page of all of them, tens of megabytes, for anyone who asked.
const NODE_GALLERY_PAGE: usize = 200;

#[derive(Debug, Deserialize)]
struct GalleryQuery {
    /// The id the page starts after.
    after: Option<String>,
}

/// `/`: the images this node holds, by id, a page at a time (`?after=ID`).
fn gallery(q: GalleryQuery, node: Arc<Node>) -> Response<Body> {
    let (images, more) = node
        .library
        .page_after(q.after.as_deref().unwrap_or(""), NODE_GALLERY_PAGE);
    let items: Vec<_> = images
        .iter()
        .map(|i| site::GalleryItem {
            id: &i.id,
            title: &i.meta.title,
            artist: &i.meta.artist,
            date: &i.meta.date,
        })
        .collect();
    let next = more
        .then(|| images.last())
        .flatten()
        .map(|last| format!("/?after={}", last.id)); // ids are URL-safe
    html(site::gallery("Collection", &items, next.as_deref()))
}

#[derive(Debug, Deserialize)]
struct ViewQuery {
    level: Option<usize>,
    col: Option<u32>,
    row: Option<u32>,
}

fn view(id: String, q: ViewQuery, node: Arc<Node>) -> Response<Body> {
    let Some(image) = find(&node, &id) else {
        return text(StatusCode::NOT_FOUND, "no image with this id");
    };
    html(site::viewer(&window(&image, &q, &node.viewer_links)))
}

/// The window of tiles the viewer shows for a query, clamped to the image.
fn window<'a>(image: &'a Image, q: &ViewQuery, nav: &'a str) -> site::ViewerWindow<'a> {
    let g = image.geometry();
    let fits = g
        .levels
        .iter()
        .position(|l| l.cols <= WINDOW_COLS && l.rows <= WINDOW_ROWS)
        .unwrap_or(g.levels.len() - 1);
    let level = q.level.unwrap_or(fits).min(g.levels.len() - 1);
    let l = g.levels[level];
    let (wc, wr) = (WINDOW_COLS.min(l.cols), WINDOW_ROWS.min(l.rows));
    let col = q.col.unwrap_or(0).min(l.cols - wc);
    let row = q.row.unwrap_or(0).min(l.rows - wr);
    let link = |level: usize, c: i64, r: i64| {
        Some(format!("level={level}&col={}&row={}", c.max(0), r.max(0)))
    };
    let (cc, cr) = (i64::from(col + wc / 2), i64::from(row + wr / 2));
    let (half_c, half_r) = (i64::from(WINDOW_COLS / 2), i64::from(WINDOW_ROWS / 2));
    let zoom_in = (level > 0)
        .then(|| link(level - 1, cc * 2 - half_c, cr * 2 - half_r))
        .flatten();
    let zoom_out = (level + 1 < g.levels.len())
        .then(|| link(level + 1, cc / 2 - half_c, cr / 2 - half_r))
        .flatten();
    let (c, r) = (i64::from(col), i64::from(row));
    let step = |n: u32| i64::from((n / 2).max(1));
    let controls = vec![
        ("Zoom in", zoom_in),
        ("Zoom out", zoom_out),
        (
            "← Left",
            (col > 0).then(|| link(level, c - step(wc), r)).flatten(),
        ),
        (
            "Right →",
            (col + wc < l.cols)
                .then(|| link(level, c + step(wc), r))
                .flatten(),
        ),
        (
            "↑ Up",
            (row > 0).then(|| link(level, c, r - step(wr))).flatten(),
        ),
        (
            "Down ↓",
            (row + wr < l.rows)
                .then(|| link(level, c, r + step(wr)))
                .flatten(),
        ),
    ];
    let tiles = (row..row + wr)
        .map(|tr| {
            (col..col + wc)
                .map(|tc| {
                    let (w, h) = g.tile_dimensions(level, tc, tr).expect("inside the level");
                    (tc, tr, w, h)
                })
                .collect()
        })
        .collect();
    let m = &image.meta;
    let mut metadata = vec![("Artist", m.artist.as_str()), ("Date", m.date.as_str())];
    metadata.push(("Description", m.description.as_str()));
    metadata.push(("Rights", m.rights.as_str()));
    metadata.retain(|(_, v)| !v.is_empty());
    site::ViewerWindow {
        id: &image.id,
        title: &m.title,
        metadata,
        level,
        levels: g.levels.len(),
        width: g.width,
        height: g.height,
        tile_size: g.tile_size,
        replicas: &image.replicas,
        nav,
        tiles,
        controls,
    }
}

async fn tile(
    id: String,
    level: usize,
    col: u32,
    row_jpg: String,
    if_none_match: Option<String>,
    node: Arc<Node>,
    cache: Arc<TileCache>,
) -> Response<Body> {
    match tile_asked(&node, &id, level, col, &row_jpg, if_none_match.as_deref()) {
        Ok(tile) => tile.read(&node, &cache).await,
        Err(answer) => answer,
    }
}

/// A stored tile a visitor asked for, by either URL: all of its answer but the bytes.
struct TileAsked {
    image: Arc<Image>,
    level: usize,
    col: u32,
    row: u32,
    etag: String,
    /// The IIIF URL's format (its media type); `None` for the native URL.
    iiif: Option<&'static str>,
}

impl TileAsked {
    fn answer(self, jpeg: Bytes) -> Response<Body> {
        match self.iiif {
            Some(media_type) => iiif_answer(media_type, jpeg, Some(self.etag)),
            None => Response::builder()
                .header(header::CONTENT_TYPE, "image/jpeg")
                .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
                .header(header::ETAG, self.etag)
                .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
                .body(jpeg)
                .expect("valid response"),
        }
    }

    /// The answer if the tile is in the cache.
    fn cached(self, cache: &TileCache) -> Option<Response<Body>> {
        let index = self
            .image
            .geometry()
            .tile_index(self.level, self.col, self.row)?;
        let jpeg = cache.hit(self.image.serial, index)?;
        Some(self.answer(jpeg))
    }

    /// The answer, the tile read from the cache or the disk.
    async fn read(self, node: &Node, cache: &TileCache) -> Response<Body> {
        let (level, col, row) = (self.level, self.col, self.row);
        match stored_tile(&self.image, level, col, row, cache).await {
            Ok(jpeg) => self.answer(jpeg),
            Err(e) => tile_failed(node, &self.image, level, col, row, e),
        }
    }
}

/// The native tile URL's answer as far as it goes without the tile's bytes: refused, not
/// modified, unavailable, or the tile to send.
// The error is an answer, sent as it is; boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
fn tile_asked(
    node: &Node,
    raw_id: &str,
    level: usize,
    col: u32,
    row_jpg: &str,
    if_none_match: Option<&str>,
) -> Result<TileAsked, Response<Body>> {
    let Some(row) = row_jpg
        .strip_suffix(".jpg")
        .and_then(|r| r.parse::<u32>().ok())
    else {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "tile URL must end in /{row}.jpg",
        ));
    };
    let Some(id) = cluster::image_id_in_path(raw_id) else {
        return Err(text(StatusCode::BAD_REQUEST, "malformed image id"));
    };
    let Some(image) = node.library.get(&id) else {
        return Err(text(StatusCode::NOT_FOUND, "no image with this id"));
    };
    let tile = stored_asked(image, (level, col, row), if_none_match, None)?;
    // A replica found damaged, or on a disk out of service, answers 503 at once, even for tiles
    // still cached: the visitor's viewer goes to the other replica, as every other path does.
    // (An IIIF request checks it before anything else.)
    if !tile.image.readable() {
        return Err(replica_unavailable("tile"));
    }
    Ok(tile)
}

/// A stored tile of `image`, by either URL: found in its index, its ETag checked.
// The error is an answer, sent as it is; boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
fn stored_asked(
    image: Arc<Image>,
    (level, col, row): (usize, u32, u32),
    if_none_match: Option<&str>,
    iiif: Option<&'static str>,
) -> Result<TileAsked, Response<Body>> {
    let Some(entry) = image.entry(level, col, row) else {
        return Err(text(StatusCode::NOT_FOUND, "no such tile in this image"));
    };
    let etag = tile_etag(&entry);
    if if_none_match.is_some_and(|v| etag_matches(v, &etag)) {
        return Err(not_modified(etag));
    }
    Ok(TileAsked {
        image,
        level,
        col,
        row,
        etag,
        iiif,
    })
}

/// A stored tile's ETag: its checksum and length, as the pyramid's index has them.
fn tile_etag(entry: &tiler::format::TileEntry) -> String {
    format!("\"{:08x}-{:x}\"", entry.crc32c, entry.length)
}

fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').any(|t| t.trim() == etag)
}

fn not_modified(etag: String) -> Response<Body> {
    Response::builder()
        .status(StatusCode::NOT_MODIFIED)
        .header(header::ETAG, etag)
        .body(Bytes::new())
        .expect("valid response")
}

/// A stored tile's bytes: from the cache, or read on the blocking pool and then cached. Both
/// URL forms of a tile (native and IIIF) come here, so they cost the same. `Err(None)`: the
/// read task itself died.
async fn stored_tile(
    image: &Arc<crate::library::Image>,
    level: usize,
    col: u32,
    row: u32,
    cache: &TileCache,
) -> Result<Bytes, Option<tiler::reader::ReadError>> {
    let index = image.geometry().tile_index(level, col, row).ok_or(None)?;
    if let Some(bytes) = cache.get(image.serial, index) {
        return Ok(bytes);
    }
    let reader = image.clone();
    let read = move || reader.pyramid()?.read_tile(level, col, row);
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(jpeg)) => {
            let jpeg = Bytes::from(jpeg);
            cache.insert(image.serial, index, jpeg.clone());
            Ok(jpeg)
        }
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

/// Whether `image` is still this node's replica of its id (not taken off, nor replaced).
fn still_served(node: &Node, image: &Image) -> bool {
    node.library
        .get(&image.id)
        .is_some_and(|now| now.serial == image.serial)
}

/// A stored tile that could not be read: the fault is recorded and the visitor sent on.
fn tile_failed(
    node: &Node,
    image: &crate::library::Image,
    level: usize,
    col: u32,
    row: u32,
    e: Option<tiler::reader::ReadError>,
) -> Response<Body> {
    match e {
        // Its replica was taken off this node while the tile was read (its file reopened
        // after being closed, and gone): nothing is wrong with the disk.
        Some(_) if !still_served(node, image) => replica_unavailable("tile"),
        Some(e) => {
            tracing::error!(image = %image.id, level, col, row, error = %e, "tile unreadable");
            node.faults.read_failed(image, &e);
            replica_unavailable("tile")
        }
        None => text(StatusCode::INTERNAL_SERVER_ERROR, "tile read failed"),
    }
}

fn iiif_info(id: String, accept: Option<String>, node: Arc<Node>) -> Response<Body> {
    let Some(image) = find(&node, &id) else {
        return text(StatusCode::NOT_FOUND, "no image with this id");
    };
    let base = format!("{}/iiif/3/{}", node.public_url, image.id);
    let info = iiif::info::info_json(
        &base,
        image.geometry(),
        image.header().channels,
        IIIF_LIMITS,
    );
    let mut r = linked_data(&info, accept, iiif::info::CONTEXT);
    r.headers_mut().insert(
        header::LINK,
        "<http://iiif.io/api/image/3/level2.json>;rel=\"profile\""
            .parse()
            .expect("valid header"),
    );
    r
}

/// The image a URL path segment names (`%2D` decoded as `-`), if this node holds it.
fn find(node: &Node, raw_id: &str) -> Option<Arc<Image>> {
    cluster::image_id_in_path(raw_id).and_then(|id| node.library.get(&id))
}

/// A IIIF document as JSON-LD when the client asks for it (the specifications' recommended
/// `Accept`), plain JSON otherwise; the answer says it varies by `Accept`.
fn linked_data(value: &serde_json::Value, accept: Option<String>, context: &str) -> Response<Body> {
    let mut r = json_reply(value);
    if accept.is_some_and(|a| a.contains("application/ld+json")) {
        let media = format!("application/ld+json;profile=\"{context}\"");
        r.headers_mut()
            .insert(header::CONTENT_TYPE, media.parse().expect("valid header"));
    }
    r.headers_mut()
        .insert(header::VARY, "Accept".parse().expect("valid header"));
    r
}

fn json_reply(value: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .body(Bytes::from(serde_json::to_vec(value).expect("plain data")))
        .expect("valid response")
}

fn iiif_manifest(id: String, accept: Option<String>, node: Arc<Node>) -> Response<Body> {
    let Some(image) = find(&node, &id) else {
        return text(StatusCode::NOT_FOUND, "no image with this id");
    };
    let (origin, id) = (&node.public_url, &image.id);
    let g = image.geometry();
    let m = iiif::manifest::manifest(
        &format!("{origin}/iiif/3/{id}"),
        &format!("{origin}/thumbs/{id}.jpg"),
        &image.meta,
        g.width,
        g.height,
    );
    linked_data(&m, accept, iiif::manifest::CONTEXT)
}

// One argument per part of the URL, as warp hands them over.
#[allow(clippy::too_many_arguments)]
async fn iiif_image(
    id: String,
    region: String,
    size: String,
    rotation: String,
    quality_format: String,
    if_none_match: Option<String>,
    node: Arc<Node>,
    cache: Arc<TileCache>,
) -> Response<Body> {
    let parts = [&*region, &*size, &*rotation, &*quality_format];
    let (image, req, plan) = match iiif_asked(&node, &id, parts, if_none_match.as_deref()) {
        Ok(IiifAsked::Tile(tile)) => return tile.read(&node, &cache).await,
        Ok(IiifAsked::Render { image, req, plan }) => (image, req, plan),
        Err(answer) => return answer,
    };
    let id = image.id.clone();
    let g = image.geometry();
    let channels = image.header().channels;
    // A render waits for its memory.
    let admitted = match node
        .renders
        .admit(render::memory_needed(g, channels, &plan))
        .await
    {
        Ok(admitted) => admitted,
        Err(busy) => {
            tracing::warn!(image = %id, region = %region, size = %size, %busy, "render refused: the node's render memory is taken");
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "this server is busy rendering other images; try again in a few seconds",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, "5".parse().expect("valid header"));
            return r;
        }
    };
    let reader = image.clone();
    let work = tokio::task::spawn_blocking(move || {
        let _admitted = admitted;
        let pyramid = reader.pyramid().map_err(render::RenderError::Read)?;
        render::render(&pyramid, &req, &plan)
    });
    match work.await {
        Ok(Ok(bytes)) => iiif_answer(req.format.media_type(), Bytes::from(bytes), None),
        Ok(Err(e)) => {
            tracing::error!(image = %id, region = %region, size = %size, rotation = %rotation, quality = %quality_format, error = %e, "iiif image request failed");
            if let render::RenderError::Read(e) = &e {
                if still_served(&node, &image) {
                    node.faults.read_failed(&image, e);
                }
            }
            replica_unavailable("image")
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "rendering failed"),
    }
}

/// What an IIIF image request asks for, once parsed and checked against the image.
enum IiifAsked {
    /// A stored tile by another name: the native URL's cache, ETag and bytes.
    Tile(TileAsked),
    /// Anything else: rendered from the pyramid.
    Render {
        image: Arc<Image>,
        req: ImageRequest,
        plan: iiif::request::Plan,
    },
}

/// An IIIF image URL's answer as far as it goes without pixels: refused, not modified,
/// unavailable, a stored tile, or a render to make. `parts`: region, size, rotation, and
/// quality with format, as they came in the path.
// The error is an answer, sent as it is; boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
fn iiif_asked(
    node: &Node,
    raw_id: &str,
    parts: [&str; 4],
    if_none_match: Option<&str>,
) -> Result<IiifAsked, Response<Body>> {
    let Some(image) = find(node, raw_id) else {
        return Err(text(StatusCode::NOT_FOUND, "no image with this id"));
    };
    // Clients may encode what the syntax allows (`%5E` for `^`, `%2C` for `,`).
    let [region, size, rotation, quality_format] =
        parts.map(|p| match cluster::decode_path_segment(p) {
            Some(Cow::Owned(decoded)) => Cow::Owned(decoded),
            _ => Cow::Borrowed(p),
        });
    let refused = |status: u16, e: &dyn std::fmt::Display| {
        text(
            StatusCode::from_u16(status).expect("400 or 501"),
            &e.to_string(),
        )
    };
    let req = ImageRequest::parse(&region, &size, &rotation, &quality_format)
        .map_err(|e| refused(e.status(), &e))?;
    let g = image.geometry();
    let plan = iiif::request::resolve(&req, g.width, g.height, IIIF_LIMITS)
        .map_err(|e| refused(e.status(), &e))?;
    let stored = render::stored_tile(&req, &plan, g, image.header().channels);
    if !image.readable() {
        return Err(replica_unavailable("image"));
    }
    match stored {
        Some(at) => {
            let media_type = req.format.media_type();
            stored_asked(image, at, if_none_match, Some(media_type)).map(IiifAsked::Tile)
        }
        None => Ok(IiifAsked::Render { image, req, plan }),
    }
}

/// An IIIF image answer: immutable (an image's pixels never change under its id).
fn iiif_answer(media_type: &str, bytes: Bytes, etag: Option<String>) -> Response<Body> {
    let mut r = Response::builder()
        .header(header::CONTENT_TYPE, media_type)
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header(
            header::LINK,
            "<http://iiif.io/api/image/3/level2.json>;rel=\"profile\"",
        );
    if let Some(etag) = etag {
        r = r.header(header::ETAG, etag);
    }
    r.body(bytes).expect("valid response")
}

async fn thumbnail(id_jpg: String, node: Arc<Node>) -> Response<Body> {
    let Some(image) = id_jpg.strip_suffix(".jpg").and_then(|id| find(&node, id)) else {
        return text(StatusCode::NOT_FOUND, "no image with this id");
    };
    match tokio::fs::read(&image.thumbnail).await {
        Ok(bytes) => Response::builder()
            .header(header::CONTENT_TYPE, "image/jpeg")
            .header(header::CACHE_CONTROL, "public, max-age=86400")
            .body(Bytes::from(bytes))
            .expect("valid response"),
        Err(e) => {
            tracing::error!(image = %image.id, file = %image.thumbnail.display(), error = %e, "thumbnail unreadable");
            text(StatusCode::SERVICE_UNAVAILABLE, "thumbnail unreadable")
        }
    }
}

/// Serves the node on an already bound listener until `shutdown` completes, then lets the
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: Arc<Node>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let tls = node.tls.clone();
    let serving = Serving::new(node);
    floor::serve::serve_quick(
        listener,
        Arc::new(QuickTiles(serving.clone())),
        routes(&serving),
        floor::serve::Limits::default(),
        tls,
        shutdown,
    )
    .await;
}
