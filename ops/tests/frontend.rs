//! The frontends as an operator runs them, over the demo's nodes as real processes: a dead
//! backend's images are redirected to their other replica within about a second, every URL
//! kind keeps its path, a backend that lies or hangs is only a logged problem, and bad URLs get
//! clear answers.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{get, Backend, DemoPlan};

const IDS: [&str; 3] = ["seahorse-valley", "dendrite-julia", "zone-plate"];

/// The `Location` of a 302 answer.
fn location(addr: &str, path: &str) -> String {
    let (status, head, _) = get(addr, path);
    assert_eq!(status, 302, "{path}: {head}");
    head.lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("no location in {head}"))
        .to_string()
}

fn health(addr: &str) -> serde_json::Value {
    serde_json::from_slice(&get(addr, "/health").2).unwrap()
}

/// Waits until the frontend has asked every backend and holds `images` images, each with both
/// its replicas (the count of images alone is reached once one replica of each is known).
fn ready(fe: &Backend, images: u64) {
    let asked = Instant::now();
    loop {
        let h = health(&fe.addr);
        if h["status"] == "ok" && h["images"] == images && h["redundancy"]["healthy"] == images {
            return;
        }
        assert!(asked.elapsed() < Duration::from_secs(20), "not ready: {h}");
        std::thread::yield_now();
    }
}

fn backend_state(fe: &Backend, node: &str) -> serde_json::Value {
    let h = health(&fe.addr);
    h["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["node"] == node)
        .cloned()
        .unwrap()
}

#[test]
fn a_dead_backend_s_images_go_to_their_other_replica_within_about_a_second() {
    let plan = DemoPlan::prepare();
    let fe = plan.start("fe-1");
    let mut nodes: Vec<(String, Option<Backend>)> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| (n.to_string(), Some(plan.start(n))))
        .collect();
    ready(&fe, 3);

    // Seahorse Valley is on node-a and node-b; visitors are spread over both.
    let first = location(&fe.addr, "/images/seahorse-valley");
    let second = location(&fe.addr, "/images/seahorse-valley");
    assert_ne!(first, second, "two visitors, two replicas");
    let holders = [plan.addr("node-a"), plan.addr("node-b")];
    for l in [&first, &second] {
        assert!(
            holders
                .iter()
                .any(|h| l == &format!("http://{h}/view/seahorse-valley")),
            "{l}"
        );
    }
    // Every kind of URL keeps its path and query; the replica really serves it.
    for path in [
        "/images/seahorse-valley?level=2&col=1&row=0",
        "/tiles/seahorse-valley/0/3/2.jpg",
        "/thumbs/seahorse-valley.jpg",
        "/meta/seahorse-valley.json",
        "/iiif/3/seahorse-valley/info.json",
        "/iiif/3/seahorse-valley/full/200,/0/default.jpg",
    ] {
        let to = location(&fe.addr, path);
        let rest = to.strip_prefix("http://").unwrap();
        let (host, target) = rest.split_at(rest.find('/').unwrap());
        let expect = path.replace("/images/", "/view/");
        assert_eq!(target, expect, "{path} → {to}");
        assert_eq!(get(host, target).0, 200, "{to}");
    }

    // node-a dies (SIGKILL): within about a second every visitor goes to node-b.
    nodes[0].1 = None;
    let killed = Instant::now();
    let to_b = format!("http://{}/view/seahorse-valley", plan.addr("node-b"));
    while backend_state(&fe, "node-a")["up"] != false {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "still sent to the dead node"
        );
        std::thread::yield_now();
    }
    eprintln!(
        "visitors sent only to node-b {:?} after node-a was killed",
        killed.elapsed()
    );
    // Each on a connection of its own, so whichever of the frontend's threads answers them.
    for _ in 0..8 {
        assert_eq!(location(&fe.addr, "/images/seahorse-valley"), to_b);
    }
    let a = backend_state(&fe, "node-a");
    assert!(a["last_error"].as_str().unwrap().contains("health"), "{a}");
    // Every image is still reachable.
    for id in IDS {
        let l = location(&fe.addr, &format!("/images/{id}"));
        assert!(!l.contains(plan.addr("node-a")), "{id} → {l}");
    }
    // node-a comes back: it is used again.
    nodes[0].1 = Some(plan.start("node-a"));
    let back = Instant::now();
    while backend_state(&fe, "node-a")["up"] != true {
        assert!(back.elapsed() < Duration::from_secs(10));
        std::thread::yield_now();
    }
    let picks: Vec<_> = (0..4)
        .map(|_| location(&fe.addr, "/images/seahorse-valley"))
        .collect();
    assert!(
        picks.iter().any(|l| l.contains(plan.addr("node-a"))),
        "{picks:?}"
    );
}

/// A stand-in for node-c on its address: answers `/health`, and `/catalog` with `catalog`,
/// or never answers at all when `hang`.
fn fake_backend(addr: &str, catalog: &'static str, hang: bool) {
    let listener = TcpListener::bind(addr).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            if hang {
                held.push(stream); // read, never answered, never closed
                continue;
            }
            let body = if line.contains("/health") {
                "{\"disks\":[]}"
            } else {
                catalog
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[test]
fn a_backend_that_lies_or_hangs_is_reported_once_and_breaks_nothing() {
    let plan = DemoPlan::prepare();
    let fe = plan.start("fe-1");
    let _a = plan.start("node-a");
    let _b = plan.start("node-b");
    // node-c's address answers with a catalog that is not JSON.
    fake_backend(plan.addr("node-c"), "{\"node\": \"node-c\", \"entr", false);
    let asked = Instant::now();
    // Up is not enough: the images are known once each good node's catalog was read.
    let read = |node: &str| {
        let b = backend_state(&fe, node);
        b["up"] == true && b["version"].as_u64().unwrap_or(0) > 0
    };
    while backend_state(&fe, "node-c")["last_error"].is_null() || !read("node-a") || !read("node-b")
    {
        assert!(asked.elapsed() < Duration::from_secs(20));
        std::thread::yield_now();
    }
    let c = backend_state(&fe, "node-c");
    assert!(
        c["last_error"]
            .as_str()
            .unwrap()
            .contains("not the expected JSON"),
        "{c}"
    );
    // Images whose other replica is on node-a or node-b are served from there.
    assert!(location(&fe.addr, "/images/zone-plate").contains(plan.addr("node-a")));
    assert!(location(&fe.addr, "/images/dendrite-julia").contains(plan.addr("node-b")));
    // A few more checks pass; the problem is logged once, not every second.
    let workers =
        |fe: &Backend| -> String { String::from_utf8(get(&fe.addr, "/workers").2).unwrap() };
    let seen = Instant::now();
    while !workers(&fe).contains("\"progress\":\"4 checks; catalog") {
        assert!(seen.elapsed() < Duration::from_secs(20), "{}", workers(&fe));
        std::thread::yield_now();
    }
    let said = fe.stderr().matches("backend node-c: catalog").count();
    assert_eq!(said, 1, "{}", fe.stderr());
}

#[test]
fn a_hung_backend_is_down_after_its_deadline_and_the_frontend_keeps_answering() {
    let plan = DemoPlan::prepare();
    let fe = plan.start("fe-2");
    let _a = plan.start("node-a");
    let _b = plan.start("node-b");
    fake_backend(plan.addr("node-c"), "", true);
    let hung = |fe: &Backend| {
        let c = backend_state(fe, "node-c");
        c["up"] == false && c["last_error"].as_str().unwrap().contains("within 500ms")
    };
    let asked = Instant::now();
    while backend_state(&fe, "node-a")["up"] != true
        || backend_state(&fe, "node-b")["up"] != true
        || !hung(&fe)
    {
        assert!(
            asked.elapsed() < Duration::from_secs(20),
            "{}",
            health(&fe.addr)
        );
        std::thread::yield_now();
    }
    for id in IDS {
        assert_eq!(get(&fe.addr, &format!("/images/{id}")).0, 302, "{id}");
    }
}

#[test]
fn bad_urls_get_clear_answers() {
    let plan = DemoPlan::prepare();
    let fe = plan.start("fe-1");
    for (path, status, says) in [
        ("/images/nope", 404, "No such image"),
        (
            "/images/..%2F..%2Fetc%2Fpasswd",
            400,
            "Not an image address",
        ),
        ("/tiles/../../etc/passwd", 404, "Not found"),
        ("/images/%3Cscript%3E", 400, "Not an image address"),
        ("/search?page=x", 400, "whole number"),
        ("/nowhere", 404, "Not found"),
    ] {
        let (s, _, body) = get(&fe.addr, path);
        let text = String::from_utf8_lossy(&body);
        assert_eq!(s, status, "{path}: {text}");
        assert!(text.contains(says), "{path}: {text}");
    }
    let long = format!("/images/{}", "x".repeat(5000));
    assert_eq!(get(&fe.addr, &long).0, 400);
    // With no backend up, a known image would be 503; here nothing is known yet: 404, fast.
    assert_eq!(get(&fe.addr, "/images/zone-plate").0, 404);
}
