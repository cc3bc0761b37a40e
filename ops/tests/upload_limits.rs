//! What one account can make a node hold before sending a byte, tried against real `td
//! backend` processes: uploads declared larger than the room left (counting what the uploads
//! already under way will still write) are refused with 507, and an account with 16 uploads
//! under way is told to finish them (429) while another account is served.

mod common;

use common::ingest::Cluster;

fn declare(c: &Cluster, user: &str, name: &str, length: u64) -> (u16, String) {
    let new = serde_json::json!({
        "filename": name,
        "length": length,
        "meta": { "title": name, "artist": "Test", "keywords": [] },
    });
    let (status, _, body) = c.call(
        0,
        "POST",
        "/internal/uploads",
        user,
        &[("content-type", "application/json".into())],
        new.to_string().as_bytes(),
    );
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn declared_lengths_reserve_room_and_an_account_has_at_most_16_uploads_under_way() {
    let mut c = Cluster::new(&["A", "B"]);
    c.start(0, None);
    c.start(1, None);

    // Room: each accepted upload takes its declared length from what the next may have.
    let free = fs2::available_space(c.disk(0)).unwrap();
    let length = (free * 6 / 10).min(backend::ingest::MAX_UPLOAD);
    let mut promised = 0u64;
    let refusal = loop {
        let (status, body) = declare(&c, "mallory", "huge.tif", length);
        match status {
            201 => promised += length,
            507 => break body,
            other => panic!("{other}: {body}"),
        }
        assert!(
            promised <= free,
            "{promised} bytes promised on a disk with {free} free"
        );
    };
    eprintln!(
        "{} uploads of {length} bytes accepted with {free} bytes free; then: {refusal}",
        promised / length
    );
    assert!(promised > 0 && promised <= free);
    assert!(refusal.contains("room"), "{refusal}");

    // Under way: 16 small ones at most per account (the huge ones above count too).
    let mut accepted = promised / length;
    while accepted < 16 {
        let (status, body) = declare(&c, "mallory", "small.png", 1000);
        assert_eq!(status, 201, "{body}");
        accepted += 1;
    }
    let (status, body) = declare(&c, "mallory", "one-more.png", 1000);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("16 uploads under way"), "{body}");
    // Another account is not held up by this one.
    let (status, body) = declare(&c, "ada", "mine.png", 1000);
    assert_eq!(status, 201, "{body}");
}

/// A first chunk sent again (or sent when bytes are already there) is refused at the home node
/// and does not open a staging folder on yet another node: the mirror is chosen once.
#[test]
fn a_repeated_first_chunk_keeps_the_mirror_and_opens_no_third_staging() {
    let mut c = Cluster::new(&["A", "B", "B"]);
    for i in 0..3 {
        c.start(i, None);
    }
    let bytes = vec![7u8; 3000];
    let (status, body) = declare(&c, "ada", "three.png", bytes.len() as u64);
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, head, _) = c.send_chunk(0, "ada", &id, 0, &bytes[..1000]);
    assert!(status < 300, "{head}");
    let holding = |c: &Cluster| -> Vec<usize> {
        (0..3)
            .filter(|&i| c.staging(i).iter().any(|s| s == &id))
            .collect()
    };
    let first = holding(&c);
    assert_eq!(first.len(), 2, "home and its mirror: {first:?}");
    for _ in 0..3 {
        let (status, head, _) = c.send_chunk(0, "ada", &id, 0, &bytes[..1000]);
        assert_eq!(status, 409, "{head}");
    }
    assert_eq!(
        holding(&c),
        first,
        "no third node was given a staging folder"
    );
    // The upload goes on from where it is.
    let (status, head, _) = c.send_chunk(0, "ada", &id, 1000, &bytes[1000..]);
    assert!(status < 300, "{head}");
}

/// Polls upload `id`'s status on node 0 until it is published or failed; that stage and its
/// error.
fn finished(c: &Cluster, user: &str, id: &str) -> (String, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(s) = c.status_of(0, user, id) {
            let stage = s["stage"].as_str().unwrap_or_default().to_string();
            if stage == "published" || stage == "failed" {
                return (stage, s["error"].as_str().unwrap_or_default().to_string());
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} not finished\n{}",
            c.stderr(0)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// An account's day: the bytes it declares and the megapixels tiled for it, per node.
#[test]
fn an_account_s_daily_bytes_and_megapixels_are_bounded() {
    let mut c = Cluster::new(&["A", "B"]);
    // Small enough that the test needs no more room than any machine has to spare.
    c.configure("[quota]\ngigabytes_per_day = 0.01\nmegapixels_per_day = 1\n");
    c.start(0, None);
    c.start(1, None);

    // Bytes: what is declared counts at once.
    let (status, body) = declare(&c, "mallory", "big.tif", 6_000_000);
    assert_eq!(status, 201, "{body}");
    let (status, body) = declare(&c, "mallory", "big2.tif", 6_000_000);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("daily 0.01 GB"), "{body}");

    // Megapixels: a 1.2 MP image is tiled and published; the account is then past its day,
    // and its next image is not tiled.
    let work = tempfile::tempdir().unwrap();
    let png = common::ingest::noise_png(work.path(), "1200x1000");
    let bytes = std::fs::read(&png).unwrap();
    let mut outcomes = Vec::new();
    for name in ["first.png", "second.png"] {
        let (id, _) = c.create_upload(0, "ada", name, bytes.len(), name);
        let (status, head, _) = c.send_chunk(0, "ada", &id, 0, &bytes);
        assert!(status < 300, "{head}");
        outcomes.push(finished(&c, "ada", &id));
    }
    assert_eq!(outcomes[0].0, "published", "{:?}", outcomes[0]);
    assert_eq!(outcomes[1].0, "failed", "{:?}", outcomes[1]);
    assert!(outcomes[1].1.contains("megapixels"), "{:?}", outcomes[1]);
    // Another account's day is its own.
    let (id, _) = c.create_upload(0, "bob", "bob.png", bytes.len(), "Bob's");
    let (status, head, _) = c.send_chunk(0, "bob", &id, 0, &bytes);
    assert!(status < 300, "{head}");
    assert_eq!(finished(&c, "bob", &id).0, "published");
}
