//! What a node says when a request is wrong: each route's refusal names what that route takes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

mod common;

use backend::CatalogStart;
use common::{picture, TestCluster};

/// Status and body of one GET over a fresh connection.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

#[test]
fn a_bad_query_is_refused_in_the_words_of_its_own_route() {
    let cluster = TestCluster::new(1);
    cluster.place(1, "art", &picture(300, 200), "Art");
    let (node, _) = cluster.open(CatalogStart::Sync);
    let node = Arc::new(node);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(backend::http::serve(listener, node, std::future::pending()));

    let (status, body) = get(addr, "/catalog?since=x");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("since must be a whole number"), "{body}");
    assert!(!body.contains("level"), "{body}");
    let (status, body) = get(addr, "/events?since=yesterday");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("since and limit"), "{body}");
    let (status, body) = get(addr, "/view/art?level=top");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("level, col and row"), "{body}");
    // And good queries still go through.
    assert_eq!(get(addr, "/catalog?since=0").0, 200);
    assert_eq!(get(addr, "/view/art?level=0").0, 200);
}
