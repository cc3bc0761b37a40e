//! The redirects a frontend answers before its routes are tried (`QuickRedirects`) are the
//! answers its routes give: for every path and query a visitor or a stranger may send, the same
//! status, headers and body, or no quick answer at all.

use std::sync::Arc;

use cluster::{CatalogEntry, CatalogPage, ImageMeta, ReplicaState};
use floor::serve::Quick;
use frontend::http::{Front, QuickRedirects};
use proptest::prelude::*;
use warp::http::{HeaderMap, Method, Response, Uri};
use warp::hyper::body::Bytes;

/// A frontend whose table holds `img-1` and `img-2` on node-a (answering) and `far` on node-b
/// (down), and the temporary folder its config lives in.
fn front() -> (Arc<Front>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        "name = \"quick test\"\n\
         [[frontend]]\nname = \"fe-1\"\naddress = \"127.0.0.1:7\"\n\
         [[node]]\nname = \"node-a\"\naddress = \"127.0.0.1:9\"\npower_domain = \"A\"\n\
         [[node]]\nname = \"node-b\"\naddress = \"127.0.0.1:11\"\npower_domain = \"B\"\n",
    )
    .unwrap();
    let config = cluster::ClusterConfig::load(&config).unwrap();
    let front = frontend::open(&config, "fe-1").unwrap();
    for (node, ids) in [
        ("node-a", &["img-1", "img-2"][..]),
        ("node-b", &["far"][..]),
    ] {
        let entries = ids
            .iter()
            .enumerate()
            .map(|(i, id)| CatalogEntry {
                id: id.to_string(),
                version: i as u64 + 1,
                state: ReplicaState::Ok,
                disk: "d1".into(),
                nodes: vec![node.into()],
                epoch: 0,
                width: 100,
                height: 100,
                meta: ImageMeta {
                    title: format!("Title of {id}"),
                    ..ImageMeta::default()
                },
                files: vec![],
            })
            .collect();
        front.table.apply(CatalogPage {
            more: false,
            node: node.into(),
            catalog: format!("{node}-1"),
            version: ids.len() as u64,
            entries,
        });
    }
    front.table.set_health("node-a", Ok(Default::default()));
    front
        .table
        .set_health("node-b", Err("connection refused".into()));
    (front, dir)
}

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

/// The quick answer to `method path` as a connection sends it (made readable from other
/// websites, as the server does), and the routes' answer.
async fn both(
    front: &Arc<Front>,
    method: &str,
    path: &str,
) -> (Option<Response<Bytes>>, Response<Bytes>) {
    let uri: Uri = path.parse().unwrap();
    let method: Method = method.parse().unwrap();
    let quick = QuickRedirects(front.clone())
        .answer(&method, &uri, &HeaderMap::new())
        .map(|mut r| {
            floor::cors::allow(&mut r);
            r
        });
    let routes = warp::test::request()
        .method(method.as_str())
        .path(path)
        .reply(&frontend::http::routes(front.clone()))
        .await;
    (quick, routes)
}

#[tokio::test]
async fn every_redirect_a_visitor_or_a_stranger_asks_is_answered_as_the_routes_answer_it() {
    let (front, _dir) = front();
    let long = format!("/images/{}", "x".repeat(5000));
    let cases: &[(&str, &str, u16)] = &[
        ("GET", "/images/img-1", 302),
        ("HEAD", "/images/img-2", 302),
        ("GET", "/images/img-1?level=2&col=1&row=0", 302),
        ("GET", "/images/img-1?q=%3Cscript%3E", 302),
        ("GET", "/images/img%2D1", 302),
        ("GET", "/images/far", 503),
        ("GET", "/images/nope", 404),
        ("GET", "/images/%3Cscript%3E", 400),
        ("GET", "/images/..%2F..%2Fetc%2Fpasswd", 400),
        ("GET", &long, 400),
    ];
    for &(method, path, status) in cases {
        let (quick, routes) = both(&front, method, path).await;
        let quick = quick.unwrap_or_else(|| panic!("no quick answer to {method} {path}"));
        assert_eq!(quick.status().as_u16(), status, "{method} {path}");
        assert_eq!(parts(quick), parts(routes), "{method} {path}");
    }
    let location = |r: &Response<Bytes>| r.headers()["location"].to_str().unwrap().to_string();
    let (quick, _) = both(&front, "GET", "/images/img-1?level=2&col=1&row=0").await;
    assert_eq!(
        location(&quick.unwrap()),
        "http://127.0.0.1:9/view/img-1?level=2&col=1&row=0"
    );
    // Anything else is left to the routes.
    for (method, path) in [
        ("POST", "/images/img-1"),
        ("OPTIONS", "/images/img-1"),
        ("GET", "/images/"),
        ("GET", "/images/img-1/"),
        ("GET", "/images/img-1/more"),
        ("GET", "/images"),
        ("GET", "/view/img-1"),
        ("GET", "/"),
    ] {
        let (quick, _) = both(&front, method, path).await;
        assert!(quick.is_none(), "{method} {path} answered quickly");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_image_path_gets_the_routes_answer_or_none(
        segment in "[a-zA-Z0-9_%./~-]{0,40}",
        query in proptest::option::of("[a-zA-Z0-9=&_.,%-]{0,40}"),
    ) {
        let path = match &query {
            Some(q) => format!("/images/{segment}?{q}"),
            None => format!("/images/{segment}"),
        };
        // Only what a request line can carry.
        prop_assume!(path.parse::<Uri>().is_ok());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (quick, routes) = runtime.block_on(async {
            let (front, _dir) = front();
            both(&front, "GET", &path).await
        });
        if let Some(quick) = quick {
            prop_assert_eq!(parts(quick), parts(routes), "{}", path);
        } else {
            prop_assert!(segment.is_empty() || segment.contains('/'), "{}", path);
        }
    }
}
