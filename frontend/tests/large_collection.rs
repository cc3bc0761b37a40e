//! A frontend holding a large collection, served as `td frontend` serves it.
//!
//! The IIIF collection too large for one answer: 2,500 images make a top collection of three
//! nested collections, each page at most 1,000 manifests, together every image once and in
//! title order; pages that do not exist are 404; every answer may be cached and read from
//! another website.
//!
//! Searches that must read every row (the index names the rows with "harbour", and each is
//! read to see that it is in the artist) at 200,000 images: while a crowd of them is under way, visitors'
//! redirects are still answered, and every search answers (a page or 503).

use std::collections::BTreeSet;

use cluster::{CatalogEntry, CatalogPage, ImageMeta, ReplicaState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IMAGES: usize = 2500;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

struct Site {
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// A frontend whose table holds `images` images of node-a (which nothing answers for), titles
/// in another order than ids.
async fn site(images: usize) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        "name = \"collection test\"\npublic_url = \"https://images.example\"\n\
         [[frontend]]\nname = \"fe-1\"\naddress = \"127.0.0.1:7\"\n\
         [[node]]\nname = \"node-a\"\naddress = \"127.0.0.1:9\"\npower_domain = \"A\"\n",
    )
    .unwrap();
    let config = cluster::ClusterConfig::load(&config).unwrap();
    let front = frontend::open(&config, "fe-1").unwrap();
    let entries = (0..images)
        .map(|i| CatalogEntry {
            id: format!("img-{i:06}"),
            version: i as u64 + 1,
            state: ReplicaState::Ok,
            disk: "a1".into(),
            nodes: vec!["node-a".into()],
            epoch: 0,
            width: 100,
            height: 100,
            meta: ImageMeta {
                title: format!("Title {:06}", (i * 7) % images),
                description: format!("A view of the harbour, number {i}."),
                artist: "Painter of the harbour".into(),
                ..ImageMeta::default()
            },
            files: vec![],
        })
        .collect();
    front.table.apply(CatalogPage {
        more: false,
        node: "node-a".into(),
        catalog: "a-1".into(),
        version: images as u64,
        entries,
    });
    front.table.set_health("node-a", Ok(Default::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(frontend::http::serve(listener, front, async move {
        let _ = stopped.await;
    }));
    Site {
        addr,
        _stop: stop,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_large_collection_is_served_in_pages_of_at_most_a_thousand() {
    let site = site(IMAGES).await;
    let addr = site.addr;
    let (status, head, body) = get(addr, "/iiif/collection.json").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("cache-control: public, max-age="), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    let top: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(top["id"], "https://images.example/iiif/collection.json");
    let parts = top["items"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "{top}");
    let mut seen = BTreeSet::new();
    let mut titles = Vec::new();
    for (n, part) in parts.iter().enumerate() {
        assert_eq!(part["type"], "Collection");
        let id = part["id"].as_str().unwrap();
        assert_eq!(
            id,
            format!("https://images.example/iiif/collection/{}.json", n + 1)
        );
        let path = id.strip_prefix("https://images.example").unwrap();
        let (status, head, body) = get(addr, path).await;
        assert_eq!(status, 200, "{path}: {head}");
        assert!(head.contains("access-control-allow-origin: *"), "{head}");
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(page["id"], id);
        assert_eq!(page["partOf"][0]["id"], top["id"]);
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), if n < 2 { 1000 } else { 500 }, "{path}");
        for item in items {
            assert_eq!(item["type"], "Manifest");
            assert!(
                seen.insert(item["id"].as_str().unwrap().to_string()),
                "{item} twice"
            );
            titles.push(item["label"]["none"][0].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen.len(), IMAGES);
    assert!(
        titles.windows(2).all(|w| w[0] <= w[1]),
        "pages follow the titles"
    );
    for missing in [
        "/iiif/collection/0.json",
        "/iiif/collection/4.json",
        "/iiif/collection/x.json",
        "/iiif/collection/1",
    ] {
        assert_eq!(get(addr, missing).await.0, 404, "{missing}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_answered_while_a_crowd_of_searches_reads_every_row() {
    let site = site(200_000).await;
    let addr = site.addr;
    // Sixteen searches for an artist every row has: the index names the rows holding the
    // word, and each of the 200,000 is read to see that the word is in its artist.
    let searches: Vec<_> = (0..16)
        .map(|i| {
            tokio::spawn(
                async move { get(addr, &format!("/search?artist=harbour&page={i}")).await },
            )
        })
        .collect();
    // Meanwhile a visitor is sent on, again and again, before the crowd is through.
    let mut redirects = 0;
    while !searches.iter().all(|s| s.is_finished()) && redirects < 20 {
        // Node-a is not running: its watcher marks it down at its first check, so the table
        // answers 302 before and 503 after; either way the visitor is answered.
        let (status, head, _) = get(addr, "/images/img-000042").await;
        assert!(status == 302 || status == 503, "{head}");
        redirects += 1;
    }
    let unfinished = searches.iter().filter(|s| !s.is_finished()).count();
    assert!(
        unfinished > 0,
        "the searches ended before 20 redirects were answered"
    );
    for s in searches {
        let (status, head, body) = s.await.unwrap();
        assert!(status == 200 || status == 503, "{head}");
        if status == 200 {
            assert!(
                String::from_utf8_lossy(&body).contains("200000"),
                "the count of matches"
            );
        } else {
            assert!(head.contains("retry-after"), "{head}");
        }
    }
}
