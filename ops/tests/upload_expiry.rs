//! Abandoned uploads expire, through real `td backend` processes with `[repair]
//! upload_expiry_seconds = 3`: an upload that stops after one chunk is cleared on its home
//! node and on the mirror that held a copy of its chunks, its status says "expired — choose
//! the file again", and a resume of it hears 410 Gone with that sentence. A copy held for a
//! home node that never comes back is cleared by the node holding it; an acknowledged upload
//! is never cleared by the expiry, however long it waits: it is published.

mod common;

use std::time::{Duration, Instant};

use common::ingest::{header, noise_png, Cluster};

const EXPIRED: &str = "expired — choose the file again";
const REPAIR: &str = "[repair]\nupload_expiry_seconds = 3\n";
const EXPIRY: Duration = Duration::from_secs(3);

/// Polls `done` every 100 ms until it holds; past `limit`, fails with `what` and the logs.
fn wait_until(c: &Cluster, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}\n{}",
            (0..c.nodes.len())
                .map(|i| format!("{}:\n{}", c.nodes[i].0, c.stderr(i)))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn holds(c: &Cluster, i: usize, id: &str) -> bool {
    c.staging(i).iter().any(|name| name.contains(id))
}

/// The lines of node `i`'s log that mention upload `id` and an expiry.
fn expiry_lines(c: &Cluster, i: usize, id: &str) -> Vec<String> {
    c.stderr(i)
        .lines()
        .filter(|l| l.contains(id) && l.contains("expired"))
        .map(str::to_string)
        .collect()
}

#[test]
fn an_upload_that_stops_after_one_chunk_expires_on_both_nodes_and_a_resume_hears_410_gone() {
    let mut c = Cluster::new(&["left", "right"]);
    c.configure(REPAIR);
    c.start(0, None);
    c.start(1, None);
    let length = 1 << 20;
    let chunk = vec![7u8; 256 << 10];
    let id = c.start_upload(0, "ada", "abandoned.png", length);
    let sent = Instant::now();
    let (s, head, body) = c.send_chunk(0, "ada", &id, 0, &chunk);
    assert_eq!(s, 204, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        header(&head, "upload-offset"),
        Some(chunk.len().to_string())
    );
    // Held on both: the home node, and the mirror in the other power domain, which takes
    // each chunk as it comes.
    assert!(
        holds(&c, 0, &id) && holds(&c, 1, &id),
        "{:?} {:?}",
        c.staging(0),
        c.staging(1)
    );
    let status = c.status_of(0, "ada", &id).unwrap();
    assert_eq!(status["stage"], "receiving", "{status}");

    // No more chunks: cleared everywhere, and the status says so.
    wait_until(&c, Duration::from_secs(60), "expired and cleared", || {
        let s = c.status_of(0, "ada", &id);
        !holds(&c, 0, &id)
            && !holds(&c, 1, &id)
            && s.is_some_and(|s| s["stage"] == "failed" && s["error"] == EXPIRED)
    });
    // Not before its time (file times are a clock tick coarse).
    assert!(
        sent.elapsed() >= EXPIRY - Duration::from_millis(100),
        "expired {:?} after its only chunk",
        sent.elapsed()
    );
    let status = c.status_of(0, "ada", &id).unwrap();
    assert_eq!(status["received"], chunk.len(), "{status}");
    assert_eq!(status["waiting"], serde_json::Value::Null, "{status}");

    // A resume at the old offset, or asking where it is, hears that it is gone.
    let (s, _, body) = c.send_chunk(0, "ada", &id, chunk.len(), &chunk);
    assert_eq!(s, 410, "{}", String::from_utf8_lossy(&body));
    assert_eq!(String::from_utf8_lossy(&body).trim(), EXPIRED);
    let (s, _, _) = c.call(
        0,
        "HEAD",
        &format!("/internal/uploads/{id}"),
        "ada",
        &[],
        b"",
    );
    assert_eq!(s, 410);
    // Another account learns nothing of it.
    let (s, _, _) = c.call(
        0,
        "HEAD",
        &format!("/internal/uploads/{id}"),
        "bob",
        &[],
        b"",
    );
    assert_eq!(s, 403);
    // Nothing came back to life.
    assert!(!holds(&c, 0, &id) && !holds(&c, 1, &id));

    // The home node decided, and had the mirror's copy cleared (the mirror, which would clear
    // it itself only later, did not); in the home's log with the upload's id, and counted on
    // /workers.
    let lines = expiry_lines(&c, 0, &id);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("an abandoned upload expired") && l.contains("[\"node-b\"]")),
        "{lines:?}\n{}",
        c.stderr(0)
    );
    assert!(expiry_lines(&c, 1, &id).is_empty(), "{}", c.stderr(1));
    let (s, _, body) = c.call(0, "GET", "/workers", "", &[], b"");
    assert_eq!(s, 200);
    let workers: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    let ingest = workers.iter().find(|w| w["name"] == "ingest").unwrap();
    let line = ingest["progress"].as_str().unwrap();
    assert!(
        line.contains("after 3 s without a chunk; 1 expired"),
        "{line}"
    );
}

#[test]
fn a_copy_whose_home_never_returns_is_cleared_by_its_holder_and_an_acknowledged_upload_never_expires(
) {
    let work = tempfile::tempdir().unwrap();
    let png = noise_png(work.path(), "800x600");
    let bytes = std::fs::read(&png).unwrap();
    // node-a and node-c on the left, node-b on the right: every second copy goes to node-b.
    let mut c = Cluster::new(&["left", "right", "left"]);
    c.configure(REPAIR);
    c.start(0, Some("acknowledged"));
    c.start(1, None);
    c.start(2, None);

    // A whole upload on node-a, which kills itself as soon as it is acknowledged: durable on
    // node-a and node-b, and stuck there while node-a is down.
    let kept = c.start_upload(0, "ada", "kept.png", bytes.len());
    let image = c.status_of(0, "ada", &kept).unwrap()["image"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, _) = c.send_chunk(0, "ada", &kept, 0, &bytes);
    assert_eq!(s, 0, "node-a dies before it answers the last chunk");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.died(0) {
        assert!(
            Instant::now() < deadline,
            "node-a lives on: {}",
            c.stderr(0)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        c.stderr(0).contains("TD_CRASH_AT=acknowledged"),
        "{}",
        c.stderr(0)
    );
    let on = |c: &Cluster, i: usize, file: &str| {
        c.disk(i).join("staging").join(&kept).join(file).is_file()
    };
    assert!(on(&c, 0, "acknowledged.json"), "{:?}", c.staging(0));
    assert!(
        on(&c, 1, "staged.json"),
        "node-b's copy is whole: {:?}",
        c.staging(1)
    );

    // Then an upload on node-c that stops after one chunk, its copy on node-b; node-c goes
    // away for good (as far as node-b can tell).
    let gone = c.start_upload(2, "ada", "abandoned.png", 1 << 20);
    let (s, _, body) = c.send_chunk(2, "ada", &gone, 0, &[1u8; 64 << 10]);
    assert_eq!(s, 204, "{}", String::from_utf8_lossy(&body));
    assert!(holds(&c, 1, &gone), "{:?}", c.staging(1));
    c.stop(2);

    // node-b clears the abandoned copy itself. The acknowledged one's copy on node-b got its
    // last byte before that one did, so had it been taken for abandoned, it would be gone by
    // now too: it is kept, whole.
    wait_until(
        &c,
        Duration::from_secs(60),
        "node-b cleared the abandoned copy",
        || !holds(&c, 1, &gone),
    );
    let lines = expiry_lines(&c, 1, &gone);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("held for another node expired") && l.contains("node-c")),
        "{lines:?}\n{}",
        c.stderr(1)
    );
    assert!(on(&c, 1, "staged.json"), "{:?}", c.staging(1));
    assert!(on(&c, 1, "original"), "{:?}", c.staging(1));
    assert!(expiry_lines(&c, 1, &kept).is_empty(), "{}", c.stderr(1));

    // node-a comes back, its copy long idle: the upload goes on to publication on node-a and
    // node-b (node-c is down), and only then is its staging cleared.
    c.start(0, None);
    wait_until(
        &c,
        Duration::from_secs(120),
        "the acknowledged upload is published",
        || {
            let s = c.status_of(0, "ada", &kept);
            s.is_some_and(|s| s["stage"] == "published")
                && !holds(&c, 0, &kept)
                && !holds(&c, 1, &kept)
        },
    );
    for i in [0, 1] {
        let dir = c.disk(i).join("images").join(&image);
        let manifest = backend::replica::read_manifest(&dir, &image).unwrap();
        let wrong = backend::replica::verify(&dir, &manifest, &mut |_| {});
        assert!(wrong.is_empty(), "{}: {wrong:?}", c.nodes[i].0);
        assert!(expiry_lines(&c, i, &kept).is_empty(), "{}", c.stderr(i));
    }

    // node-c comes back and expires its own upload: status, staging, and a resume's answer.
    c.start(2, None);
    wait_until(
        &c,
        Duration::from_secs(60),
        "node-c expired its upload",
        || {
            let s = c.status_of(2, "ada", &gone);
            !holds(&c, 2, &gone)
                && s.is_some_and(|s| s["stage"] == "failed" && s["error"] == EXPIRED)
        },
    );
    let (s, _, body) = c.send_chunk(2, "ada", &gone, 64 << 10, b"more");
    assert_eq!(s, 410, "{}", String::from_utf8_lossy(&body));
    assert_eq!(String::from_utf8_lossy(&body).trim(), EXPIRED);
}
