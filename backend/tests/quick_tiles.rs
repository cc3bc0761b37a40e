//! The stored tiles a node answers before its routes are tried (`QuickTiles`) get the answers
//! its routes give: for either URL form, encoded or not, revalidated or not, refused or not,
//! the same status, headers and body; a tile not yet in memory, a render and anything else is
//! left to the routes.

use std::sync::Arc;

mod common;

use backend::http::{QuickTiles, Serving};
use backend::CatalogStart;
use common::{picture, TestCluster};
use floor::serve::Quick;
use warp::http::{HeaderMap, HeaderValue, Method, Response, Uri};
use warp::hyper::body::Bytes;

/// Status, headers and body, to compare two answers whole.
fn parts(r: Response<Bytes>) -> (u16, Vec<(String, String)>, Bytes) {
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
        .collect();
    headers.sort();
    (r.status().as_u16(), headers, r.into_body())
}

struct Node {
    serving: Serving,
    _cluster: TestCluster,
}

impl Node {
    /// Node n1 with one image `art` of 1500×1100 px.
    fn start() -> Node {
        let cluster = TestCluster::new(1);
        cluster.place(1, "art", &picture(1500, 1100), "Art");
        let (node, _) = cluster.open(CatalogStart::Sync);
        Node {
            serving: Serving::new(Arc::new(node)),
            _cluster: cluster,
        }
    }

    /// The quick answer, as a connection sends it (readable from other websites).
    fn quick(&self, method: &str, path: &str, etag: Option<&str>) -> Option<Response<Bytes>> {
        let mut headers = HeaderMap::new();
        if let Some(etag) = etag {
            headers.insert("if-none-match", HeaderValue::from_str(etag).unwrap());
        }
        let uri: Uri = path.parse().unwrap();
        QuickTiles(self.serving.clone())
            .answer(&method.parse::<Method>().unwrap(), &uri, &headers)
            .map(|mut r| {
                floor::cors::allow(&mut r);
                r
            })
    }

    async fn routes(&self, method: &str, path: &str, etag: Option<&str>) -> Response<Bytes> {
        let mut request = warp::test::request().method(method).path(path);
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        request.reply(&backend::http::routes(&self.serving)).await
    }
}

#[tokio::test]
async fn a_tile_in_memory_and_every_refusal_are_answered_as_the_routes_answer_them() {
    let node = Node::start();
    // A tile not in memory yet is the routes' to read, by either URL.
    assert!(node.quick("GET", "/tiles/art/0/5/4.jpg", None).is_none());
    let iiif = "/iiif/3/art/1280,1024,256,256/220,/0/default.jpg";
    assert!(node.quick("GET", iiif, None).is_none());
    // (path, status): each asked of the quick answers before and after the routes answered it.
    let cases = [
        ("/tiles/art/0/0/0.jpg", 200),
        ("/tiles/art/1/1/0.jpg", 200),
        ("/tiles/ar%74/0/2/1.jpg", 200),
        ("/tiles/art/+0/0/1.jpg", 200),
        ("/iiif/3/art/512,0,512,512/256,/0/default.jpg", 200),
        ("/iiif/3/art/512,0,512,512/256,256/0/default.jpg", 200),
        ("/iiif/3/art/1280,1024,256,256/220,/0/default.jpg", 200),
        ("/iiif/3/art/0,0,256,256/256%2C/0/default.jpg", 200),
        ("/tiles/art/0/99/0.jpg", 404),
        ("/tiles/nope/0/0/0.jpg", 404),
        ("/tiles/art/0/0/0.png", 400),
        ("/tiles/%3Cx%3E/0/0/0.jpg", 400),
        ("/iiif/3/nope/full/max/0/default.jpg", 404),
        ("/iiif/3/art/1,2,3/max/0/default.jpg", 400),
        ("/iiif/3/art/full/max/45/default.jpg", 501),
        ("/iiif/3/art/5000,0,10,10/max/0/default.jpg", 400),
    ];
    for (path, status) in cases {
        let before = node.quick("GET", path, None);
        let routes = node.routes("GET", path, None).await;
        assert_eq!(routes.status().as_u16(), status, "{path}");
        let etag = routes
            .headers()
            .get("etag")
            .map(|e| e.to_str().unwrap().to_string());
        let after = node.quick("GET", path, None);
        let after = after.unwrap_or_else(|| panic!("no quick answer to {path} once in memory"));
        // Before: refusals at once; a tile only if another URL of it was read already.
        match before {
            Some(before) => assert_eq!(parts(before), parts(node.routes("GET", path, None).await)),
            None => assert_eq!(status, 200, "{path}: no quick refusal"),
        }
        assert_eq!(etag.is_some(), status == 200, "{path}: ETag");
        assert_eq!(parts(after), parts(routes), "{path}");
        let head = node.quick("HEAD", path, None).unwrap();
        assert_eq!(
            parts(head),
            parts(node.routes("HEAD", path, None).await),
            "HEAD {path}"
        );
        // Revalidation: 304 with the same ETag, or the whole answer for another.
        if let Some(etag) = etag {
            for asked in [etag.as_str(), "\"other\"", "W/\"x\", \"y\""] {
                let quick = node.quick("GET", path, Some(asked)).unwrap();
                let routes = node.routes("GET", path, Some(asked)).await;
                assert_eq!(parts(quick), parts(routes), "{path} if-none-match {asked}");
            }
        }
    }
    // Left to the routes: other methods, renders, other paths, extra or empty segments.
    for (method, path) in [
        ("POST", "/tiles/art/0/0/0.jpg"),
        ("OPTIONS", "/tiles/art/0/0/0.jpg"),
        ("GET", "/iiif/3/art/full/max/0/default.jpg"),
        ("GET", "/iiif/3/art/full/200,/0/default.jpg"),
        ("GET", "/iiif/3/art/0,0,256,256/256,/0/default.png"),
        ("GET", "/tiles/art/0/0/0.jpg/"),
        ("GET", "/tiles/art//0/0.jpg"),
        ("GET", "/tiles/art/x/0/0.jpg"),
        ("GET", "/iiif/3/art/info.json"),
        ("GET", "/view/art"),
        ("GET", "/metrics"),
    ] {
        assert!(
            node.quick(method, path, None).is_none(),
            "{method} {path} answered quickly"
        );
    }
}

#[tokio::test]
async fn quick_answers_are_counted_as_the_routes_count_theirs() {
    let node = Node::start();
    let tile = "/tiles/art/0/0/0.jpg";
    let first = node.routes("GET", tile, None).await;
    let length = first.body().len();
    for _ in 0..2 {
        assert_eq!(node.quick("GET", tile, None).unwrap().status(), 200);
    }
    assert_eq!(node.quick("HEAD", tile, None).unwrap().status(), 200);
    let missing = node.quick("GET", "/tiles/art/0/99/0.jpg", None).unwrap();
    let sent = 3 * length + missing.body().len();
    let metrics = node.routes("GET", "/metrics", None).await;
    let text = String::from_utf8_lossy(metrics.body()).into_owned();
    for line in [
        "td_http_requests_total{route=\"tiles\",status=\"200\"} 4",
        "td_http_requests_total{route=\"tiles\",status=\"404\"} 1",
        "td_tile_cache_requests_total{result=\"hit\"} 3",
        "td_tile_cache_requests_total{result=\"miss\"} 1",
        &format!("td_http_response_bytes_total{{route=\"tiles\"}} {sent}"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing '{line}' in:\n{text}"
        );
    }
}
