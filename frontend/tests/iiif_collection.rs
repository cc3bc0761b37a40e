//! The IIIF collection of a collection too large for one answer, served as `td frontend`
//! serves it: 2,500 images make a top collection of three nested collections, each page at
//! most 1,000 manifests, together every image once and in title order; pages that do not
//! exist are 404; every answer may be cached and read from another website.

use std::collections::BTreeSet;
use std::sync::Arc;

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

#[tokio::test]
async fn a_large_collection_is_served_in_pages_of_at_most_a_thousand() {
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
    // Titles in another order than ids, so the pages must follow the titles.
    let entries = (0..IMAGES)
        .map(|i| CatalogEntry {
            id: format!("img-{i:05}"),
            version: i as u64 + 1,
            state: ReplicaState::Ok,
            disk: "a1".into(),
            nodes: vec!["node-a".into()],
            epoch: 0,
            width: 100,
            height: 100,
            meta: ImageMeta {
                title: format!("Title {:05}", (i * 7) % IMAGES),
                ..ImageMeta::default()
            },
            files: vec![],
        })
        .collect();
    front.table.apply(CatalogPage {
        node: "node-a".into(),
        catalog: "a-1".into(),
        version: IMAGES as u64,
        entries,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(frontend::http::serve(
        listener,
        Arc::clone(&front),
        async move {
            let _ = stopped.await;
        },
    ));

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
    let _ = stop.send(());
}
