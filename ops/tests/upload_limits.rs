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
