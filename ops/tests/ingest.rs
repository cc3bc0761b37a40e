//! Ingest through real `td backend` processes: an upload sent in chunks to one node is staged
//! on a second node in another power domain, acknowledged, tiled, placed, verified and
//! published on two nodes, and staging is cleared. Each node is killed (SIGKILL, by itself at
//! `TD_CRASH_AT`) at every step of the protocol and restarted; the upload always ends
//! published with two verified replicas, never shows fewer, and leaves no staging behind.
//!
//! (Longer than our ~700-line guide: every test here drives uploads through the helpers at the
//! top — upload, resume, wait for publication, read replica states — and they stay beside the
//! tests until a second ingest test file needs them in `common/ingest.rs`.)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::ingest::{header, noise_png, Cluster};

/// Every point where a node kills itself: on the node that received the upload, after each
/// fact it records (and in the middle of a transfer); on the others, after each step they do.
const CRASH_POINTS: [&str; 14] = [
    "staged-home",
    "mid-transfer",
    "copy-sealed",
    "staged-copy",
    "acknowledged",
    "tiled",
    "chosen",
    "target-sealed",
    "placed",
    "target-verified",
    "verified",
    "target-renamed",
    "published",
    "cleared",
];

const CHUNK: usize = 5 << 20;

/// Starts an upload on node `i` and sends `file` in chunks; a chunk that finds the node dead
/// is left (the caller restarts it and calls [`resume`]). Returns (upload id, image id).
fn upload(c: &Cluster, i: usize, user: &str, file: &Path, title: &str) -> (String, String, u16) {
    let bytes = std::fs::read(file).unwrap();
    let filename = file.file_name().unwrap().to_str().unwrap();
    let (id, image) = c.create_upload(i, user, filename, bytes.len(), title);
    let last = send_from(c, i, user, &id, &bytes, 0);
    (id, image, last)
}

/// Sends `bytes` from `offset` in chunks; returns the last status (0: the node died).
fn send_from(c: &Cluster, i: usize, user: &str, id: &str, bytes: &[u8], mut offset: usize) -> u16 {
    let path = format!("/internal/uploads/{id}");
    let mut status = 0;
    while offset < bytes.len() {
        let end = (offset + CHUNK).min(bytes.len());
        let (s, head, body) = c.call(
            i,
            "PATCH",
            &path,
            user,
            &[("upload-offset", offset.to_string())],
            &bytes[offset..end],
        );
        status = s;
        if s != 204 {
            assert!(
                s == 0,
                "chunk at {offset}: {s} {}\nhead: {head}\nnode's stderr: {}",
                String::from_utf8_lossy(&body),
                c.stderr(i)
            );
            return 0;
        }
        offset = header(&head, "upload-offset").unwrap().parse().unwrap();
    }
    status
}

/// Asks where the upload is (HEAD) and sends the rest.
fn resume(c: &Cluster, i: usize, user: &str, id: &str, bytes: &[u8]) {
    let (s, head, _) = c.call(
        i,
        "HEAD",
        &format!("/internal/uploads/{id}"),
        user,
        &[],
        b"",
    );
    assert_eq!(s, 200, "HEAD after a restart");
    let at: usize = header(&head, "upload-offset").unwrap().parse().unwrap();
    assert_eq!(
        header(&head, "upload-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        bytes.len()
    );
    if at < bytes.len() {
        assert_eq!(send_from(c, i, user, id, bytes, at), 204);
    }
}

fn status_of(c: &Cluster, i: usize, user: &str, id: &str) -> Option<serde_json::Value> {
    let (s, _, body) = c.call(i, "GET", "/internal/uploads", user, &[], b"");
    if s != 200 {
        return None;
    }
    let list: Vec<serde_json::Value> = serde_json::from_slice(&body).ok()?;
    list.into_iter().find(|u| u["id"] == id)
}

fn staging_left(c: &Cluster) -> Vec<String> {
    (0..c.nodes.len())
        .flat_map(|i| {
            std::fs::read_dir(c.disk(i).join("staging"))
                .into_iter()
                .flatten()
                .flatten()
                .map(move |e| format!("{}: {}", c.nodes[i].0, e.file_name().to_string_lossy()))
        })
        .collect()
}

/// Checks, at one moment, that nothing is visible without two verified replicas.
fn never_half_published(c: &Cluster, image: &str, when: &str) {
    // Who has published first, then how far everyone is: states only move forward, so a
    // replica published before the second look had its partner verified by then.
    let published = (0..c.nodes.len())
        .filter(|&i| c.replica_state(i, image) == Some("published"))
        .count();
    let states: Vec<_> = (0..c.nodes.len())
        .map(|i| c.replica_state(i, image))
        .collect();
    let verified_or_more = states
        .iter()
        .filter(|s| matches!(s, Some("published" | "verified")))
        .count();
    assert!(
        published <= 2,
        "{when}: published on {published} nodes: {states:?}"
    );
    if published > 0 {
        assert_eq!(
            verified_or_more, 2,
            "{when}: published while the other replica was not verified: {states:?}"
        );
    }
}

/// Restarts, without a crash point, every node that killed itself at `point` (another node
/// may reach the same point later, after the first one is back). Returns them.
fn revive(c: &mut Cluster, point: &str) -> Vec<usize> {
    let dead: Vec<usize> = (0..c.nodes.len()).filter(|&i| c.died(i)).collect();
    for &i in &dead {
        assert!(
            c.stderr(i).contains(&format!("TD_CRASH_AT={point}")),
            "node {i} died otherwise: {}",
            c.stderr(i)
        );
        c.start(i, None);
    }
    dead
}

/// Waits until the upload is published with staging cleared, checking the invariant all along
/// and restarting any node that kills itself at `when`; then checks the two replicas end to
/// end.
fn wait_published(c: &mut Cluster, home: usize, user: &str, id: &str, image: &str, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        revive(c, when);
        never_half_published(c, image, when);
        let status = status_of(c, home, user, id);
        let stage = status.as_ref().map(|s| s["stage"].clone());
        let left: Vec<String> = staging_left(c)
            .into_iter()
            .filter(|s| s.ends_with(id))
            .collect();
        if stage == Some("published".into()) && left.is_empty() {
            break;
        }
        assert!(
            stage != Some("failed".into()),
            "{when}: the upload failed: {status:?}"
        );
        assert!(
            Instant::now() < deadline,
            "{when}: not published in 120 s: {status:?}; staging {:?}; replicas {:?}\n{}",
            staging_left(c),
            (0..c.nodes.len())
                .map(|i| c.replica_state(i, image))
                .collect::<Vec<_>>(),
            (0..c.nodes.len())
                .map(|i| c.stderr(i))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let holders: Vec<usize> = (0..c.nodes.len())
        .filter(|&i| c.replica_state(i, image) == Some("published"))
        .collect();
    assert_eq!(holders.len(), 2, "{when}: two replicas");
    assert_ne!(
        c.nodes[holders[0]].2, c.nodes[holders[1]].2,
        "{when}: the replicas are in two power domains"
    );
    for &h in &holders {
        let dir = c.disk(h).join("images").join(image);
        let manifest = backend::replica::read_manifest(&dir, image).unwrap();
        assert_eq!(
            manifest.files.len(),
            4,
            "original, pyramid, thumbnail, metadata"
        );
        let wrong = backend::replica::verify(&dir, &manifest, &mut |_| {});
        assert!(wrong.is_empty(), "{when}: {wrong:?}");
        let hidden: Vec<_> = std::fs::read_dir(c.disk(h).join("images"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(hidden.is_empty(), "{when}: debris left: {hidden:?}");
        // The node serves it: in its catalog for the frontends, and its tiles.
        let (s, _, body) = c.call(h, "GET", "/catalog", "", &[], b"");
        assert_eq!(s, 200);
        let page: cluster::CatalogPage = serde_json::from_slice(&body).unwrap();
        let entry = page.entries.iter().find(|e| e.id == image).unwrap();
        assert_eq!(entry.state, cluster::ReplicaState::Ok, "{when}");
        // The account's name stays on the node: the catalog names an opaque owner.
        assert_eq!(
            entry.meta.owner,
            cluster::catalog::public_owner(Some(&c.secret), user)
        );
        let (s, _, _) = c.call(h, "GET", &format!("/tiles/{image}/0/0/0.jpg"), "", &[], b"");
        assert_eq!(s, 200, "{when}: a tile of the published image");
    }
}

#[test]
fn a_node_killed_at_every_step_of_the_protocol_never_loses_or_half_publishes_the_upload() {
    let work = tempfile::tempdir().unwrap();
    // ~15 MB of noise: three chunks up, two 8 MiB pieces between nodes.
    let png = noise_png(work.path(), "2600x2000");
    let bytes = std::fs::read(&png).unwrap();
    // TD_CRASH_POINTS=a,b runs only those (when chasing one).
    let only = std::env::var("TD_CRASH_POINTS").unwrap_or_default();
    for point in CRASH_POINTS
        .into_iter()
        .filter(|p| only.is_empty() || only.split(',').any(|o| o == *p))
    {
        // Two nodes share a power domain, so the second copy and the second replica must go
        // to the third.
        let mut c = Cluster::new(&["left", "left", "right"]);
        for i in 0..3 {
            c.start(i, Some(point));
        }
        let (id, image, _) = upload(&c, 0, "ada", &png, &format!("Noise {point}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let dead = loop {
            let dead = revive(&mut c, point);
            if !dead.is_empty() {
                break dead;
            }
            never_half_published(&c, &image, point);
            assert!(
                Instant::now() < deadline,
                "TD_CRASH_AT={point} was never reached: {:?}",
                status_of(&c, 0, "ada", &id)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // A provider whose last chunk went unanswered asks where it is and goes on.
        resume(&c, 0, "ada", &id, &bytes);
        wait_published(&mut c, 0, "ada", &id, &image, point);
        eprintln!("TD_CRASH_AT={point}: node {dead:?} killed and restarted; published");
    }
}

#[test]
fn with_a_power_domain_down_the_upload_waits_staged_and_says_why_then_its_owner_alone_edits_it() {
    let work = tempfile::tempdir().unwrap();
    let png = noise_png(work.path(), "800x600");
    let mut c = Cluster::new(&["left", "left", "right"]);
    c.start(0, None);
    c.start(1, None);
    let (id, image, last) = upload(&c, 0, "ada", &png, "Waiting <b>noise</b>");
    assert_eq!(last, 204);
    let s = status_of(&c, 0, "ada", &id).unwrap();
    assert_eq!(s["stage"], "received", "{s}");
    let why = s["waiting"].as_str().unwrap_or_default();
    assert!(why.contains("another power domain"), "{why}");
    // Not acknowledged, and nothing placed: one copy, kept in staging.
    assert_eq!(staging_left(&c).len(), 1, "{:?}", staging_left(&c));
    assert!((0..3).all(|i| c.replica_state(i, &image).is_none()));
    // The same account sees it; another account does not, and cannot touch it.
    let (st, _, _) = c.call(
        0,
        "HEAD",
        &format!("/internal/uploads/{id}"),
        "bob",
        &[],
        b"",
    );
    assert_eq!(st, 403);
    let (_, _, body) = c.call(0, "GET", "/internal/uploads", "bob", &[], b"");
    assert_eq!(body, b"[]");
    c.start(2, None);
    wait_published(&mut c, 0, "ada", &id, &image, "domain back");

    // Resuming a finished upload hears that every byte was taken (its staging is gone).
    let upath = format!("/internal/uploads/{id}");
    let (s, head, _) = c.call(0, "HEAD", &upath, "ada", &[], b"");
    assert_eq!(s, 200);
    let length = std::fs::metadata(&png).unwrap().len().to_string();
    assert_eq!(header(&head, "upload-offset"), Some(length.clone()));
    let (s, head, _) = c.call(
        0,
        "PATCH",
        &upath,
        "ada",
        &[("upload-offset", "0".into())],
        b"x",
    );
    assert_eq!(s, 409);
    assert_eq!(header(&head, "upload-offset"), Some(length));
    let (s, _, _) = c.call(0, "HEAD", &upath, "bob", &[], b"");
    assert_eq!(s, 403);

    // Its owner changes the details on each replica's node; another account cannot.
    let holders: Vec<usize> = (0..3)
        .filter(|&i| c.replica_state(i, &image) == Some("published"))
        .collect();
    let path = format!("/internal/replicas/{image}/meta");
    let changed = serde_json::json!({ "title": "Renamed <i>noise</i>", "artist": "Ada" });
    for &h in &holders {
        let (s, _, body) = c.call(h, "POST", &path, "bob", &[], changed.to_string().as_bytes());
        assert_eq!(s, 403, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("another account"));
        let (s, _, body) = c.call(h, "POST", &path, "ada", &[], changed.to_string().as_bytes());
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
        let (_, _, body) = c.call(h, "GET", "/catalog", "", &[], b"");
        let page: cluster::CatalogPage = serde_json::from_slice(&body).unwrap();
        let entry = page.entries.iter().find(|e| e.id == image).unwrap();
        assert_eq!(entry.meta.title, "Renamed <i>noise</i>");
        assert_eq!(
            entry.meta.owner,
            cluster::catalog::public_owner(Some(&c.secret), "ada"),
            "the owner stays"
        );
        // Nor does the public /meta name the account: only the opaque owner.
        let (s, _, body) = c.call(h, "GET", &format!("/meta/{image}.json"), "", &[], b"");
        assert_eq!(s, 200);
        let meta: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(meta["owner"], entry.meta.owner.as_str());
        assert!(
            meta.as_object()
                .unwrap()
                .values()
                .all(|v| v.as_str() != Some("ada")),
            "{meta}"
        );
        // The replica still checks out against its manifest, the new metadata included.
        let dir = c.disk(h).join("images").join(&image);
        let manifest = backend::replica::read_manifest(&dir, &image).unwrap();
        assert!(backend::replica::verify(&dir, &manifest, &mut |_| {}).is_empty());
    }
    let (s, _, _) = c.call(
        0,
        "POST",
        "/internal/replicas/nothing-here/meta",
        "ada",
        &[],
        changed.to_string().as_bytes(),
    );
    assert_eq!(s, 404);
}

#[test]
fn bad_requests_get_plain_answers_and_unsigned_ones_none() {
    let work = tempfile::tempdir().unwrap();
    let png = noise_png(work.path(), "300x200");
    let mut c = Cluster::new(&["left", "right"]);
    c.start(0, None);
    c.start(1, None);
    let addr = c.nodes[0].1.clone();
    // No signature, a wrong one, another cluster's.
    let (s, _, body) = common::ingest::request(&addr, "POST", "/internal/uploads", &[], b"{}");
    assert_eq!(s, 401, "{}", String::from_utf8_lossy(&body));
    let mut forged = c.signed_headers(0, "POST", "/internal/uploads", "ada", &[], b"{}");
    forged[1].1 = "mallory".into();
    let (s, _, _) = common::ingest::request(&addr, "POST", "/internal/uploads", &forged, b"{}");
    assert_eq!(s, 401, "a signature for another account");
    let other = cluster::auth::Secret::from_bytes(b"not this cluster's secret at all!!");
    let parts = cluster::auth::SignedParts {
        method: "GET",
        path_and_query: "/internal/uploads",
        user: "",
        target: "node-a",
        body: b"",
        upload_offset: "",
        content_type: "",
    };
    let sig = other.sign_request(&parts, cluster::unix_now());
    let (s, _, _) = common::ingest::request(
        &addr,
        "GET",
        "/internal/uploads",
        &[("x-td-auth", sig)],
        b"",
    );
    assert_eq!(s, 401);
    let create = |meta: serde_json::Value, length: u64| {
        let body = serde_json::json!({"filename": "a.png", "length": length, "meta": meta});
        let (s, _, b) = c.call(
            0,
            "POST",
            "/internal/uploads",
            "ada",
            &[("content-type", "application/json".into())],
            body.to_string().as_bytes(),
        );
        (s, String::from_utf8_lossy(&b).into_owned())
    };
    let (s, text) = create(serde_json::json!({"title": "x".repeat(300)}), 10);
    assert_eq!(s, 400);
    assert!(text.contains("300 characters"), "{text}");
    let (s, text) = create(serde_json::json!({"title": "ok"}), 0);
    assert_eq!((s, text.trim()), (400, "the file is empty"));
    let (s, text) = create(serde_json::json!({"title": ""}), 10);
    assert_eq!(s, 400, "{text}");
    // A chunk at the wrong offset is refused with where to go on from.
    let (id, _, _) = {
        let (s, text) = create(serde_json::json!({"title": "Offsets"}), 20);
        assert_eq!(s, 201, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        (v["id"].as_str().unwrap().to_string(), (), ())
    };
    let path = format!("/internal/uploads/{id}");
    let (s, head, _) = c.call(
        0,
        "PATCH",
        &path,
        "ada",
        &[("upload-offset", "5".into())],
        b"abc",
    );
    assert_eq!(s, 409);
    assert_eq!(header(&head, "upload-offset").as_deref(), Some("0"));
    let (s, _, body) = c.call(
        0,
        "PATCH",
        &path,
        "ada",
        &[("upload-offset", "0".into())],
        &[0; 30],
    );
    assert_eq!(
        s,
        400,
        "past the announced length: {}",
        String::from_utf8_lossy(&body)
    );
    // After all that, a good upload goes through.
    let (id, image, last) = upload(&c, 0, "ada", &png, "Still fine");
    assert_eq!(last, 204);
    wait_published(&mut c, 0, "ada", &id, &image, "after bad requests");
}

#[test]
fn a_disk_that_fills_during_an_upload_refuses_the_chunk_and_the_upload_resumes_when_there_is_room()
{
    if !common::root_or_skip(
        "a_disk_that_fills_during_an_upload_refuses_the_chunk_and_the_upload_resumes_when_there_is_room",
        "mounting a small filesystem",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let png = noise_png(work.path(), "2600x2000");
    let bytes = std::fs::read(&png).unwrap();
    let mut c = Cluster::new(&["left", "right"]);
    // node-a's disk: a real 300 MiB filesystem (tmpfs) that can really fill.
    let disk = c.disk(0);
    let _mounted = common::loop_disks::Tmpfs::mount(&disk, "300m");
    c.start(0, None);
    c.start(1, None);
    let new = serde_json::json!({
        "filename": "noise.png", "length": bytes.len(), "meta": { "title": "Filling" },
    });
    let (s, _, body) = c.call(
        0,
        "POST",
        "/internal/uploads",
        "ada",
        &[],
        new.to_string().as_bytes(),
    );
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&body));
    let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let image = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["image"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/internal/uploads/{id}");
    let (s, _, _) = c.call(
        0,
        "PATCH",
        &path,
        "ada",
        &[("upload-offset", "0".into())],
        &bytes[..CHUNK],
    );
    assert_eq!(s, 204);
    // Something else fills the disk, leaving less than the next chunk.
    let free = fs2::available_space(&disk).unwrap();
    let filler = disk.join("filler");
    let out = std::process::Command::new("fallocate")
        .args(["-l", &(free - (1 << 20)).to_string()])
        .arg(&filler)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, head, body) = c.call(
        0,
        "PATCH",
        &path,
        "ada",
        &[("upload-offset", CHUNK.to_string())],
        &bytes[CHUNK..(2 * CHUNK).min(bytes.len())],
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(s, 507, "{text}");
    assert!(text.contains("disk is full"), "{text}");
    assert!(header(&head, "upload-offset").is_none());
    // The node still answers, and the upload is where it was: the partial chunk was cut off.
    let (s, head, _) = c.call(0, "HEAD", &path, "ada", &[], b"");
    assert_eq!(s, 200);
    assert_eq!(header(&head, "upload-offset").unwrap(), CHUNK.to_string());
    std::fs::remove_file(&filler).unwrap();
    resume(&c, 0, "ada", &id, &bytes);
    wait_published(&mut c, 0, "ada", &id, &image, "disk full, then room");
    c.stop(0);
    c.stop(1);
}

/// A signed request is trusted to come from the cluster, not to be right: every id and file
/// name in its path, query and body is checked as a visitor's would be, before anything is
/// written, and refused with 400 saying what was wrong.
#[test]
fn ids_and_file_names_in_signed_requests_are_checked_before_anything_is_written() {
    let mut c = Cluster::new(&["left", "right"]);
    c.start(0, None);
    c.start(1, None);
    let ask = |method: &str, path: &str, user: &str, body: &[u8]| {
        let (s, _, b) = c.call(0, method, path, user, &[], body);
        (s, String::from_utf8_lossy(&b).into_owned())
    };
    let upload_id = "0123456789abcdef0123456789abcdef";

    // Ids in the path: the facts a coordinator asks for, and a metadata edit.
    for (path, says) in [
        (
            format!("/internal/facts/{upload_id}/a.b"),
            "'a.b' is not an image id",
        ),
        (
            format!("/internal/facts/{upload_id}/.."),
            "'..' is not an image id",
        ),
        (
            "/internal/facts/not-hex/art".to_string(),
            "'not-hex' is not an upload id",
        ),
    ] {
        let (s, text) = ask("GET", &path, "", b"");
        assert_eq!((s, text.trim()), (400, says), "{path}");
    }
    let meta = serde_json::json!({ "title": "Mine now" }).to_string();
    let (s, text) = ask(
        "POST",
        "/internal/replicas/a.b/meta",
        "ada",
        meta.as_bytes(),
    );
    assert_eq!((s, text.trim()), (400, "'a.b' is not an image id"));

    // A staging copy whose upload.json names a folder outside, or a node that is not one.
    let upload = |id: &str, image: &str, home: &str| {
        serde_json::json!({
            "id": id, "image": image, "owner": "ada", "filename": "a.png", "length": 10,
            "meta": { "title": "t" }, "home": home, "created": 0,
        })
        .to_string()
    };
    let staging_path = format!("/internal/staging/{upload_id}");
    for (body, says) in [
        (
            upload(upload_id, "../x", "node-a"),
            "'../x' is not an image id",
        ),
        (
            upload(upload_id, "a/b", "node-a"),
            "'a/b' is not an image id",
        ),
        (
            upload(upload_id, "art", "node-z"),
            "'node-z' is not a node of this cluster",
        ),
        (
            upload("feedface00", "art", "node-a"),
            "the upload id differs",
        ),
    ] {
        let (s, text) = ask("PUT", &staging_path, "", body.as_bytes());
        assert_eq!(s, 400, "{body}: {text}");
        assert!(text.contains(says), "{body}: {text}");
    }
    assert!(staging_left(&c).is_empty(), "{:?}", staging_left(&c));
    let (s, text) = ask(
        "PUT",
        "/internal/staging/..",
        "",
        upload("..", "art", "node-a").as_bytes(),
    );
    assert_eq!((s, text.trim()), (400, "'..' is not an upload id"));
    // Queries say what they take.
    let (s, text) = ask("PATCH", &format!("{staging_path}?offset=x"), "", b"abc");
    assert_eq!(s, 400);
    assert!(text.contains("offset=N"), "{text}");
    let (s, text) = ask("POST", &format!("{staging_path}/seal?sha256=zz"), "", b"");
    assert_eq!(s, 400);
    assert!(text.contains("not a SHA-256"), "{text}");

    // A replica's files: the manifest may name only files a replica holds, each a plain name.
    let (s, text) = ask("POST", "/internal/replicas/art-1/begin", "", b"");
    assert_eq!(s, 400);
    assert!(text.contains("size=N"), "{text}");
    let (s, text) = ask("POST", "/internal/replicas/art-1/begin?size=100", "", b"");
    assert_eq!(s, 200, "{text}");
    let incoming = c.disk(0).join("images").join(".art-1.incoming");
    assert!(incoming.is_dir());
    let (s, text) = ask(
        "PATCH",
        "/internal/replicas/art-1/files/..?offset=0",
        "",
        b"x",
    );
    assert_eq!(s, 400, "{text}");
    let manifest = |name: &str| {
        let m = backend::replica::Manifest {
            format: backend::replica::FORMAT,
            id: "art-1".into(),
            nodes: vec!["node-a".into(), "node-b".into()],
            placed_at: 0,
            files: vec![cluster::FileSum {
                name: name.into(),
                size: 1,
                sha256: "0".repeat(64),
            }],
        };
        serde_json::to_vec(&m).unwrap()
    };
    let outside = c.dir.path().join("outside");
    std::fs::write(&outside, b"x").unwrap();
    for name in [
        "../x",
        "a/b",
        outside.to_str().unwrap(),
        "../../../outside",
        "replica.json",
    ] {
        for step in ["seal", "verify"] {
            let path = format!("/internal/replicas/art-1/{step}");
            let (s, text) = ask("POST", &path, "", &manifest(name));
            assert_eq!(s, 400, "{step} {name}: {text}");
            assert!(
                text.contains(&format!("the manifest names '{name}'")),
                "{step} {name}: {text}"
            );
        }
    }
    // Nothing was written: the replica is still arriving, with no manifest of its own.
    assert_eq!(c.replica_state(0, "art-1"), Some("incoming"));
    assert!(!incoming.join("replica.json").exists());
    assert_eq!(std::fs::read(&outside).unwrap(), b"x");
}

/// A fault of the node (a file it wrote that no longer reads) is a 5xx that says so in plain
/// words, without this node's paths; the log has the detail and what it was about.
#[test]
fn a_fault_of_the_node_answers_5xx_in_plain_words_and_the_log_has_the_detail() {
    let mut c = Cluster::new(&["left", "right"]);
    c.start(0, None);
    c.start(1, None);
    let new =
        serde_json::json!({ "filename": "a.png", "length": 20, "meta": { "title": "Fault" } });
    let (s, _, body) = c.call(
        0,
        "POST",
        "/internal/uploads",
        "ada",
        &[],
        new.to_string().as_bytes(),
    );
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&body));
    let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let upload_json = c.disk(0).join("staging").join(&id).join("upload.json");
    std::fs::write(&upload_json, b"not what td wrote").unwrap();
    let path = format!("/internal/uploads/{id}");
    let (s, _, body) = c.call(
        0,
        "PATCH",
        &path,
        "ada",
        &[("upload-offset", "0".into())],
        b"abc",
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(s, 500, "{text}");
    assert!(text.contains("operator has been told"), "{text}");
    let disk = c.disk(0);
    for secret in [disk.to_str().unwrap(), "upload.json", "expected"] {
        assert!(
            !text.contains(secret),
            "{secret} told to the client: {text}"
        );
    }
    // The log names the upload and the file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(c.stderr(0).contains(&id) && c.stderr(0).contains("upload.json")) {
        assert!(Instant::now() < deadline, "not logged: {}", c.stderr(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    // A wrong request on the same route is still the client's, named as sent.
    let (s, _, body) = c.call(
        0,
        "PATCH",
        "/internal/uploads/zz",
        "ada",
        &[("upload-offset", "0".into())],
        b"abc",
    );
    assert_eq!(
        (s, String::from_utf8_lossy(&body).trim()),
        (400, "'zz' is not an upload id")
    );
    let (s, _, body) = c.call(
        0,
        "PATCH",
        &path,
        "ada",
        &[("upload-offset", "one".into())],
        b"abc",
    );
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&body).contains("Upload-Offset"));
}

#[test]
fn a_captured_signed_request_is_refused_when_replayed_changed_or_sent_to_another_node() {
    let work = tempfile::tempdir().unwrap();
    let png = noise_png(work.path(), "200x100");
    let bytes = std::fs::read(&png).unwrap();
    let mut c = Cluster::new(&["left", "right"]);
    c.start(0, None);
    c.start(1, None);
    let (a, b) = (c.nodes[0].1.clone(), c.nodes[1].1.clone());
    let send = |addr: &str, method: &str, path: &str, h: &[(&str, String)], body: &[u8]| {
        let (s, _, text) = common::ingest::request(addr, method, path, h, body);
        (s, String::from_utf8_lossy(&text).into_owned())
    };
    let uploads_of_ada = || {
        let (s, _, body) = c.call(0, "GET", "/internal/uploads", "ada", &[], b"");
        assert_eq!(s, 200);
        serde_json::from_slice::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .len()
    };

    // A request that would do something again if it were taken again: start an upload.
    let new =
        serde_json::json!({"filename": "a.png", "length": bytes.len(), "meta": {"title": "once"}});
    let new = new.to_string();
    let json = [("content-type", "application/json".to_string())];
    let captured = c.signed_headers(0, "POST", "/internal/uploads", "ada", &json, new.as_bytes());
    let (s, text) = send(&b, "POST", "/internal/uploads", &captured, new.as_bytes());
    assert_eq!(s, 401, "sent to another node: {text}");
    let (s, text) = send(&a, "POST", "/internal/uploads", &captured, new.as_bytes());
    assert_eq!(s, 201, "{text}");
    let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, text) = send(&a, "POST", "/internal/uploads", &captured, new.as_bytes());
    assert_eq!(s, 401, "a replay: {text}");
    assert!(text.contains("already received"), "{text}");
    assert_eq!(uploads_of_ada(), 1, "the replay started nothing");

    // A captured chunk, sent with another body, another offset or to another node.
    let path = format!("/internal/uploads/{id}");
    let half = bytes.len() / 2;
    let offset = [("upload-offset", "0".to_string())];
    let chunk = c.signed_headers(0, "PATCH", &path, "ada", &offset, &bytes[..half]);
    let mut other_body = bytes[..half].to_vec();
    other_body[0] ^= 0xff;
    let (s, text) = send(&a, "PATCH", &path, &chunk, &other_body);
    assert_eq!(s, 401, "another body: {text}");
    let mut moved = chunk.clone();
    moved
        .iter_mut()
        .find(|(k, _)| *k == "upload-offset")
        .unwrap()
        .1 = "7".into();
    let (s, text) = send(&a, "PATCH", &path, &moved, &bytes[7..half + 7]);
    assert_eq!(s, 401, "another offset: {text}");
    let (s, text) = send(&b, "PATCH", &path, &chunk, &bytes[..half]);
    assert_eq!(s, 401, "another node: {text}");
    let where_now = || {
        let (s, head, _) = c.call(0, "HEAD", &path, "ada", &[], b"");
        assert_eq!(s, 200);
        header(&head, "upload-offset").unwrap()
    };
    assert_eq!(
        where_now(),
        "0",
        "nothing was written by the refused chunks"
    );
    let (s, text) = send(&a, "PATCH", &path, &chunk, &bytes[..half]);
    assert_eq!(s, 204, "the chunk as signed: {text}");
    assert_eq!(where_now(), half.to_string());
    let (s, _) = send(&a, "PATCH", &path, &chunk, &bytes[..half]);
    assert_eq!(s, 401, "the same chunk again");
    assert_eq!(where_now(), half.to_string());
}
