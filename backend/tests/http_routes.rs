//! The node's HTTP routes over real HTTP on loopback: tiles with their cache headers, the IIIF
//! Image API (info.json, stored tiles, rendered requests, errors), and a damaged tile.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use backend::CatalogStart;
use common::{flip_byte, picture, TestCluster};
use image::{GenericImageView, ImageFormat, RgbImage};
use tiler::PyramidReader;

/// One HTTP/1.1 exchange, connection closed after it.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn get(addr: SocketAddr, path: &str, extra_headers: &[(&str, &str)]) -> Reply {
    exchange(addr, "GET", path, extra_headers)
}

/// How long a request waits to connect, and then for the whole answer. Loopback connects at
/// once; the slowest route here (a rendered IIIF image) answers in well under a second, so
/// reaching either means the server hangs.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

fn exchange(addr: SocketAddr, method: &str, path: &str, extra_headers: &[(&str, &str)]) -> Reply {
    let url = format!("{method} http://{addr}{path}");
    let timed_out = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_DEADLINE).unwrap_or_else(|e| {
        if timed_out(&e) {
            panic!("{url}: no connection within {CONNECT_DEADLINE:?}")
        }
        panic!("{url}: {e}")
    });
    let until = Instant::now() + ANSWER_DEADLINE;
    let left = || {
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| panic!("{url}: no whole answer within {ANSWER_DEADLINE:?}"))
    };
    let fail = |e: std::io::Error| -> ! {
        if timed_out(&e) {
            panic!("{url}: no whole answer within {ANSWER_DEADLINE:?}")
        }
        panic!("{url}: {e}")
    };
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.set_write_timeout(Some(left())).unwrap();
    if let Err(e) = s.write_all(req.as_bytes()) {
        fail(e)
    }
    let mut raw = Vec::new();
    let mut buf = vec![0; 64 << 10];
    loop {
        s.set_read_timeout(Some(left())).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => fail(e),
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{url}: no end of head in {} bytes", raw.len()));
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let body = raw[split + 4..].to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

struct Node {
    addr: SocketAddr,
    cluster: TestCluster,
    node: Arc<backend::Node>,
    original: RgbImage,
    _runtime: tokio::runtime::Runtime,
}

impl Node {
    /// Node n1 serving on 127.0.0.1:0, with one image `art` of 1500×1100 px on its disk.
    fn start() -> Node {
        let cluster = TestCluster::new(1);
        let original = picture(1500, 1100);
        cluster.place(1, "art", &original, "Art");
        Node::serve(cluster, original)
    }

    fn serve(cluster: TestCluster, original: RgbImage) -> Node {
        let (node, _) = cluster.open(CatalogStart::Sync);
        let node = Arc::new(node);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(backend::http::serve(
            listener,
            node.clone(),
            std::future::pending(),
        ));
        Node {
            addr,
            cluster,
            node,
            original,
            _runtime: runtime,
        }
    }

    fn pyramid(&self) -> std::path::PathBuf {
        self.cluster.replica(1, "art").join("pyramid.tdp")
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let r = get(self.addr, path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }
}

fn decode(bytes: &[u8], format: ImageFormat) -> image::DynamicImage {
    image::load_from_memory_with_format(bytes, format).unwrap()
}

/// Mean absolute difference per sample between two RGB images of the same size.
fn mean_error(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

#[test]
fn tiles_carry_cache_headers_and_revalidate_without_a_read() {
    let node = Node::start();
    let r = get(node.addr, "/tiles/art/0/2/1.jpg", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let reader = PyramidReader::open(&node.pyramid()).unwrap();
    assert_eq!(r.body, reader.read_tile(0, 2, 1).unwrap());
    let etag = r.header("etag").unwrap().to_string();
    let again = get(
        node.addr,
        "/tiles/art/0/2/1.jpg",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other = get(
        node.addr,
        "/tiles/art/0/1/1.jpg",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(other.status, 200, "another tile's ETag does not match");
}

#[test]
fn malformed_and_unknown_tile_urls_get_clear_4xx() {
    let node = Node::start();
    for (path, status) in [
        ("/tiles/art/0/99/0.jpg", 404),
        ("/tiles/art/9/0/0.jpg", 404),
        ("/tiles/nope/0/0/0.jpg", 404),
        ("/tiles/art/0/0/0.png", 400),
        ("/tiles/art/x/0/0.jpg", 404),
        ("/tiles/art/0/0/99999999999999999999.jpg", 400),
        ("/tiles/..%2F..%2Fetc/0/0/0.jpg", 400),
        ("/view/nope", 404),
        ("/view/art?level=abc", 400),
    ] {
        let r = get(node.addr, path, &[]);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(!r.body.is_empty(), "{path}: an explanation is expected");
    }
    // The server still answers after all of that.
    assert_eq!(get(node.addr, "/tiles/art/0/0/0.jpg", &[]).status, 200);
}

#[test]
fn iiif_info_json_describes_the_pyramid() {
    let node = Node::start();
    let r = get(node.addr, "/iiif/3/art", &[]);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/iiif/3/art/info.json"));
    let r = get(
        node.addr,
        "/iiif/3/art/info.json",
        &[("Accept", "application/ld+json")],
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/ld+json"));
    assert_eq!(r.header("vary"), Some("Accept"));
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    // The id is the cluster's public URL, not this node's address nor the Host sent.
    assert_eq!(info["id"], format!("{}/iiif/3/art", node.node.public_url));
    let forged = get(
        node.addr,
        "/iiif/3/art/info.json",
        &[("Host", "evil.example")],
    );
    let forged: serde_json::Value = serde_json::from_slice(&forged.body).unwrap();
    assert_eq!(forged["id"], info["id"]);
    assert_eq!(info["type"], "ImageService3");
    assert_eq!(info["profile"], "level2");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(1500), Some(1100))
    );
    assert_eq!(info["tiles"][0]["width"], 256);
    assert_eq!(
        info["tiles"][0]["scaleFactors"],
        serde_json::json!([1, 2, 4, 8])
    );
    assert_eq!(
        info["sizes"][0],
        serde_json::json!({"width": 188, "height": 138})
    );
    assert_eq!(get(node.addr, "/iiif/3/nope/info.json", &[]).status, 404);
}

#[test]
fn iiif_request_for_a_stored_tile_sends_the_stored_bytes() {
    let node = Node::start();
    let reader = PyramidReader::open(&node.pyramid()).unwrap();
    // Level 1 (scale 2), col 1, row 0: full-resolution region 512,0,512,512 → 256×256.
    for path in [
        "/iiif/3/art/512,0,512,512/256,/0/default.jpg",
        "/iiif/3/art/512,0,512,512/256,256/0/default.jpg",
    ] {
        let r = get(node.addr, path, &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, reader.read_tile(1, 1, 0).unwrap(), "{path}");
    }
    // The cropped edge tile: level 0, col 5 (x 1280..1500), row 4 (y 1024..1100).
    let r = get(
        node.addr,
        "/iiif/3/art/1280,1024,256,256/220,/0/default.jpg",
        &[],
    );
    assert_eq!(r.body, reader.read_tile(0, 5, 4).unwrap());
}

#[test]
fn iiif_renders_other_requests_from_the_pyramid() {
    let node = Node::start();
    let r = get(node.addr, "/iiif/3/art/full/!400,400/0/default.jpg", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = decode(&r.body, ImageFormat::Jpeg).to_rgb8();
    assert_eq!(got.dimensions(), (400, 293));
    let want = image::imageops::resize(
        &node.original,
        400,
        293,
        image::imageops::FilterType::Triangle,
    );
    let err = mean_error(&got, &want);
    assert!(
        err < 6.0,
        "rendered full image differs from the original by {err:.2}"
    );

    // A region, mirrored and turned a quarter, in grey PNG.
    let r = get(
        node.addr,
        "/iiif/3/art/100,200,300,150/max/!90/gray.png",
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/png"));
    let got = decode(&r.body, ImageFormat::Png);
    assert_eq!(
        got.dimensions(),
        (150, 300),
        "a quarter turn swaps the sides"
    );
    assert!(matches!(got, image::DynamicImage::ImageLuma8(_)));
    let crop = node.original.view(100, 200, 300, 150).to_image();
    let want = image::DynamicImage::ImageRgb8(image::imageops::rotate90(
        &image::imageops::flip_horizontal(&crop),
    ))
    .into_luma8();
    let got = got.into_luma8();
    let diff: u64 = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    let err = diff as f64 / got.as_raw().len() as f64;
    assert!(
        err < 6.0,
        "region mirrored, turned and grey differs by {err:.2}"
    );

    let r = get(node.addr, "/iiif/3/art/square/^2000,/0/bitonal.jpg", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        decode(&r.body, ImageFormat::Jpeg).dimensions(),
        (2000, 2000)
    );
}

#[test]
fn iiif_errors_follow_the_specification() {
    let node = Node::start();
    for (path, status, says) in [
        ("/iiif/3/art/1,2,3/max/0/default.jpg", 400, "region"),
        ("/iiif/3/art/full/full/0/default.jpg", 400, "size"),
        ("/iiif/3/art/full/2000,/0/default.jpg", 400, "^"),
        ("/iiif/3/art/full/max/45/default.jpg", 501, "rotation"),
        ("/iiif/3/art/full/max/0/default.webp", 501, "format"),
        ("/iiif/3/art/full/max/0/sepia.jpg", 400, "quality"),
        ("/iiif/3/art/5000,0,10,10/max/0/default.jpg", 400, "outside"),
        ("/iiif/3/art/full/^99999,/0/default.jpg", 400, "maxWidth"),
        ("/iiif/3/nope/full/max/0/default.jpg", 404, "no image"),
    ] {
        let r = get(node.addr, path, &[]);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(
            r.text().contains(says),
            "{path}: '{says}' expected in {}",
            r.text()
        );
    }
}

#[test]
fn a_corrupt_tile_is_never_sent_and_only_its_requests_fail() {
    let node = Node::start();
    let path = node.pyramid();
    let entry = PyramidReader::open(&path).unwrap().entry(0, 1, 1).unwrap();
    flip_byte(&path, entry.offset + 100);
    let r = get(node.addr, "/tiles/art/0/1/1.jpg", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(get(node.addr, "/tiles/art/0/2/1.jpg", &[]).status, 200);
    let r = get(node.addr, "/iiif/3/art/0,0,600,600/max/0/default.jpg", &[]);
    assert_eq!(
        r.status, 503,
        "a rendering that needs the bad tile fails too"
    );
    // Damage, not a disk failure: the disk stays in service, the replica becomes suspect in
    // the catalog (a new version), and one event says so.
    assert!(node.node.library.disks()[0].state() == backend::disk::DiskState::Healthy);
    let entry = &node.json("/catalog?since=1")["entries"][0];
    assert_eq!(
        (entry["id"].as_str(), entry["state"].as_str()),
        (Some("art"), Some("suspect"))
    );
    let events = node.json("/events?since=0");
    let corrupt: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "replica_corrupt")
        .collect();
    assert_eq!(corrupt.len(), 1, "reported once: {events}");
    let h = node.json("/health");
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["suspect_replicas"][0]["id"], "art");
    assert!(corrupt[0]["evidence"][0]
        .as_str()
        .unwrap()
        .contains("checksum"));
}

#[test]
fn iiif_manifest_points_at_the_image_service() {
    let node = Node::start();
    let r = get(node.addr, "/iiif/3/art/manifest.json", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let m: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let base = format!("{}/iiif/3/art", node.node.public_url);
    assert_eq!(m["type"], "Manifest");
    assert_eq!(m["id"], format!("{base}/manifest.json"));
    assert_eq!(m["label"]["none"][0], "Art");
    let canvas = &m["items"][0];
    assert_eq!(
        (canvas["width"].as_u64(), canvas["height"].as_u64()),
        (Some(1500), Some(1100))
    );
    let body = &canvas["items"][0]["items"][0]["body"];
    assert_eq!(body["service"][0]["id"], base);
    assert_eq!(canvas["items"][0]["items"][0]["target"], canvas["id"]);
    assert_eq!(canvas["label"]["none"][0], "Art");
    // The painted image URL itself answers.
    let path = body["id"]
        .as_str()
        .unwrap()
        .trim_start_matches(&node.node.public_url)
        .to_string();
    assert_eq!(get(node.addr, &path, &[]).status, 200);
    // Asked for JSON-LD, as the specification recommends, it says so.
    let profile = "application/ld+json;profile=\"http://iiif.io/api/presentation/3/context.json\"";
    let r = get(
        node.addr,
        "/iiif/3/art/manifest.json",
        &[("Accept", profile)],
    );
    assert_eq!(r.header("content-type"), Some(profile));
    assert_eq!(r.header("vary"), Some("Accept"));
}

/// A viewer on another website reads everything public: every answer (errors and redirects
/// too) carries `Access-Control-Allow-Origin`, and a preflight is answered.
#[test]
fn every_public_answer_is_readable_from_another_origin() {
    let node = Node::start();
    for (path, status) in [
        ("/iiif/3/art", 303),
        ("/iiif/3/art/info.json", 200),
        ("/iiif/3/art/manifest.json", 200),
        ("/iiif/3/art/full/100,/0/default.jpg", 200),
        ("/iiif/3/art/full/9000,/0/default.jpg", 400),
        ("/iiif/3/nope/info.json", 404),
        ("/thumbs/art.jpg", 200),
        ("/tiles/art/0/0/0.jpg", 200),
        ("/meta/art.json", 200),
        ("/no/such/route", 404),
    ] {
        let r = get(node.addr, path, &[("Origin", "https://museum.example")]);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    let r = exchange(
        node.addr,
        "OPTIONS",
        "/iiif/3/art/info.json",
        &[
            ("Origin", "https://museum.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "accept"),
        ],
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-headers"), Some("accept"));
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

/// Ids and parameters as some clients send them: percent-encoded. An encoded slash is never
/// a path.
#[test]
fn percent_encoded_ids_and_parameters_are_decoded() {
    let node = Node::start();
    for path in [
        "/iiif/3/%61rt/info.json",
        "/iiif/3/%61%72%74/manifest.json",
        "/iiif/3/art/full/%5E100%2C/0/default.jpg",
        "/tiles/%61rt/0/0/0.jpg",
        "/thumbs/%61rt.jpg",
        "/meta/%61rt.json",
        "/view/%61rt",
    ] {
        let r = get(node.addr, path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = get(node.addr, "/iiif/3/%61rt", &[]);
    assert_eq!(r.header("location"), Some("/iiif/3/art/info.json"));
    for path in [
        "/iiif/3/a%2Frt/info.json",
        "/iiif/3/..%2Fart/info.json",
        "/iiif/3/%2e%2e%2fart",
    ] {
        assert_eq!(get(node.addr, path, &[]).status, 404, "{path}");
    }
    assert_eq!(get(node.addr, "/tiles/a%2Frt/0/0/0.jpg", &[]).status, 400);
}

/// A refused size is quoted as the client wrote it, not in the server's own words.
#[test]
fn iiif_errors_quote_the_parameter_as_sent() {
    let node = Node::start();
    let r = get(node.addr, "/iiif/3/art/0,0,100,100/150,/0/default.jpg", &[]);
    assert_eq!(r.status, 400);
    let text = r.text();
    assert!(text.contains("'150,'") && text.contains("^"), "{text}");
    assert!(!text.contains("upscale:") && !text.contains('{'), "{text}");
}

/// An IIIF URL naming a stored tile is the native tile by another name: one cache (a copy read
/// through either form is what both keep sending), one ETag, and 304 on revalidation.
#[test]
fn the_iiif_and_native_forms_of_a_tile_share_its_cache_and_etag() {
    let node = Node::start();
    let iiif = "/iiif/3/art/512,0,512,512/256,/0/default.jpg";
    let first = get(node.addr, iiif, &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    let etag = first.header("etag").expect("an ETag").to_string();
    // Damaged on the disk after that first read: memory keeps the checked copy for both forms.
    let entry = PyramidReader::open(&node.pyramid())
        .unwrap()
        .entry(1, 1, 0)
        .unwrap();
    flip_byte(&node.pyramid(), entry.offset + 10);
    let native = get(node.addr, "/tiles/art/1/1/0.jpg", &[]);
    assert_eq!(native.status, 200);
    assert_eq!(native.body, first.body);
    assert_eq!(native.header("etag"), Some(etag.as_str()));
    assert_eq!(get(node.addr, iiif, &[]).body, first.body);
    let again = get(node.addr, iiif, &[("if-none-match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let metrics = get(node.addr, "/metrics", &[]).text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "td_tile_cache_requests_total{result=\"miss\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_tile_once_read_is_served_from_memory() {
    let node = Node::start();
    let first = get(node.addr, "/tiles/art/0/3/2.jpg", &[]);
    assert_eq!(first.status, 200);
    // Damage it on the disk: the checked copy in memory is what visitors keep getting.
    let entry = PyramidReader::open(&node.pyramid())
        .unwrap()
        .entry(0, 3, 2)
        .unwrap();
    flip_byte(&node.pyramid(), entry.offset + 10);
    let again = get(node.addr, "/tiles/art/0/3/2.jpg", &[]);
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
}

#[test]
fn head_answers_like_get_without_a_body() {
    let node = Node::start();
    let got = get(node.addr, "/tiles/art/1/0/0.jpg", &[]);
    let head = exchange(node.addr, "HEAD", "/tiles/art/1/0/0.jpg", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
    assert_eq!(head.header("etag"), got.header("etag"));
    let post = exchange(
        node.addr,
        "POST",
        "/tiles/art/1/0/0.jpg",
        &[("Content-Length", "0")],
    );
    assert_eq!(post.status, 405, "{}", post.text());
}

#[test]
fn metrics_count_requests_by_route_and_status_and_cache_use() {
    let node = Node::start();
    let mut sent = 0;
    for _ in 0..3 {
        let r = get(node.addr, "/tiles/art/0/0/0.jpg", &[]);
        assert_eq!(r.status, 200);
        sent += r.body.len();
    }
    let r = get(node.addr, "/tiles/art/0/99/0.jpg", &[]);
    assert_eq!(r.status, 404);
    sent += r.body.len();
    // A HEAD sends no body and counts none.
    assert_eq!(
        exchange(node.addr, "HEAD", "/tiles/art/0/0/0.jpg", &[]).status,
        200
    );
    let r = get(node.addr, "/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    for line in [
        "td_http_requests_total{route=\"tiles\",status=\"200\"} 4",
        "td_http_requests_total{route=\"tiles\",status=\"404\"} 1",
        "td_http_request_duration_seconds_count{route=\"tiles\"} 5",
        "td_tile_cache_requests_total{result=\"hit\"} 3",
        "td_tile_cache_requests_total{result=\"miss\"} 1",
        "td_images 1",
        &format!("td_http_response_bytes_total{{route=\"tiles\"}} {sent}"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing '{line}' in:\n{text}"
        );
    }
}

#[test]
fn health_reports_disks_and_replicas_not_served() {
    let cluster = TestCluster::new(2);
    cluster.place(1, "art", &picture(600, 400), "Art");
    cluster.place(2, "broken", &picture(300, 300), "Broken");
    // Damage the second replica's pyramid header after placement: the node must open, serve
    // the first, and say why it does not serve the second.
    flip_byte(&cluster.replica(2, "broken").join("pyramid.tdp"), 20);
    let node = Node::serve(cluster, picture(600, 400));
    let h = node.json("/health");
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["images"], 1);
    assert_eq!(h["node"], "n1");
    let warnings = h["warnings"].to_string();
    assert!(warnings.contains("broken"), "{warnings}");
    let disks = h["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 2);
    assert!(disks.iter().all(|d| d["state"] == "healthy"));
    assert!(disks[0]["free_bytes"].as_u64().unwrap() > 0);
    assert_eq!(disks[1]["serial"], "SN-2");
    // The catalog tells frontends the same, and the event log keeps the evidence.
    let catalog = node.json("/catalog");
    let entries = catalog["entries"].as_array().unwrap();
    let broken = entries.iter().find(|e| e["id"] == "broken").unwrap();
    assert_eq!(broken["state"], "unreadable");
    assert!(broken["reason"].as_str().unwrap().contains("pyramid.tdp"));
    let events = node.json("/events");
    let kinds: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.contains(&"replica_unreadable".to_string()),
        "{kinds:?}"
    );
    let metrics = get(node.addr, "/metrics", &[]).text();
    assert!(
        metrics.contains("td_disk_failed{disk=\"d2\"} 0\n"),
        "{metrics}"
    );
}

/// A frontend asks for the catalog without the file sums it never uses, another node without
/// the metadata too; anyone else still gets them, and a bad value is refused saying what the
/// route takes.
#[test]
fn the_catalog_leaves_the_file_sums_out_when_asked() {
    let node = Node::start();
    let with = node.json("/catalog?since=0");
    let without = node.json("/catalog?since=0&files=false");
    let (a, b) = (&with["entries"][0], &without["entries"][0]);
    assert!(!a["files"].as_array().unwrap().is_empty(), "{a}");
    assert!(b.get("files").is_none(), "{b}");
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["meta"], b["meta"]);
    let bytes = |p: &str| get(node.addr, p, &[]).body.len();
    assert!(bytes("/catalog?since=0&files=false") < bytes("/catalog?since=0"));
    let parsed: cluster::CatalogPage =
        serde_json::from_value(without.clone()).expect("a page without sums still parses");
    assert!(parsed.entries[0].files.is_empty());
    let r = get(node.addr, "/catalog?since=0&files=maybe", &[]);
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("files and meta true or false"),
        "{}",
        r.text()
    );

    // The other nodes' re-mirror asks without metadata too: the same ids, states and sets.
    let bare = node.json("/catalog?since=0&files=false&meta=false");
    let c = &bare["entries"][0];
    assert_eq!(c["id"], b["id"]);
    assert_eq!(c["state"], b["state"]);
    assert_eq!(c["nodes"], b["nodes"]);
    assert_eq!(c["epoch"], b["epoch"]);
    assert_ne!(b["meta"]["title"], "", "{b}");
    assert_eq!(c["meta"]["title"], "", "{c}");
    assert!(
        bytes("/catalog?since=0&files=false&meta=false") < bytes("/catalog?since=0&files=false")
    );
    serde_json::from_value::<cluster::CatalogPage>(bare).expect("a bare page still parses");
    assert_eq!(get(node.addr, "/catalog?since=0&meta=no", &[]).status, 400);
}

#[test]
fn a_nodes_gallery_comes_a_page_at_a_time() {
    let cluster = TestCluster::new(1);
    let original = picture(300, 200);
    cluster.place(1, "art", &original, "Art");
    cluster.copies(1, "art", 450);
    let node = Node::serve(cluster, original);
    let (mut path, mut pages) = ("/".to_string(), 0);
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let r = get(node.addr, &path, &[]);
        assert_eq!(r.status, 200, "{path}");
        let text = r.text();
        let ids: Vec<&str> = text
            .split("href=\"/view/")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        assert!(
            !ids.is_empty() && ids.len() <= 200,
            "{path}: {} images",
            ids.len()
        );
        for id in ids {
            assert!(seen.insert(id.to_string()), "{id} shown twice");
        }
        pages += 1;
        match text.split("rel=\"next\" href=\"").nth(1) {
            Some(rest) => path = rest.split('"').next().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 451));
    assert_eq!(get(node.addr, "/?after=zzz", &[]).status, 200);
}

#[test]
fn meta_json_says_what_the_provider_said() {
    let node = Node::start();
    let r = get(node.addr, "/meta/art.json", &[]);
    assert_eq!(r.status, 200);
    let m: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (m["id"].as_str(), m["title"].as_str()),
        (Some("art"), Some("Art"))
    );
    assert_eq!(
        (m["width"].as_u64(), m["height"].as_u64()),
        (Some(1500), Some(1100))
    );
    assert_eq!(get(node.addr, "/meta/nope.json", &[]).status, 404);
    assert_eq!(get(node.addr, "/thumbs/art.jpg", &[]).status, 200);
}
