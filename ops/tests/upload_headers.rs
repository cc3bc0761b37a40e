//! The headers of an upload's chunks as a stranger with an account could send them, at random
//! (a property test, run in every CI build), against a real node: any `Upload-Offset` text,
//! with a chunk of any length. Every answer is a refusal (4xx) or the chunk taken, never a 5xx
//! or a dropped connection; the node's offset moves only by a chunk sent at exactly that
//! offset; and afterwards the upload completes from where the node says it is.

mod common;

use common::ingest::{header, noise_png, Cluster};
use common::monitor::wait_until;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::time::Duration;

/// What an `Upload-Offset` header may say: anything printable, numbers in every spelling a
/// parser might be lenient with, and the offset the node is at (so chunks are also taken).
fn offsets() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,24}",
        any::<u64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "-1",
            "+0",
            "0x0",
            "1e3",
            "18446744073709551616",
            "99999999999999999999999",
            "0 0",
            ",0",
            "0,1",
            "٣",
        ])
        .prop_map(str::to_string),
        Just("AT".to_string()),
        Just("AT".to_string()),
    ]
}

#[test]
fn any_upload_offset_is_taken_exactly_or_refused_never_a_5xx() {
    let mut c = Cluster::new(&["A", "B"]);
    c.start(0, None);
    c.start(1, None);
    const TOTAL: usize = 200_000;
    let id = c.start_upload(0, "mallory", "fuzz.bin", TOTAL);
    let path = format!("/internal/uploads/{id}");
    let bytes: Vec<u8> = (0..TOTAL).map(|i| (i * 31 % 251) as u8).collect();
    let at = std::cell::Cell::new(0usize);
    let offset_now = |c: &Cluster| -> usize {
        let (status, head, _) = c.call(0, "HEAD", &path, "mallory", &[], b"");
        assert_eq!(status, 200, "{head}");
        header(&head, "upload-offset").unwrap().parse().unwrap()
    };
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(offsets(), 0usize..1500), |(said, len)| {
            let before = at.get();
            let said = if said == "AT" {
                before.to_string()
            } else {
                said
            };
            // Never past the end: the last chunk is the test's own, below.
            let len = len.min(TOTAL - 1 - before);
            let (status, head, body) = c.call(
                0,
                "PATCH",
                &path,
                "mallory",
                &[("upload-offset", said.clone())],
                &bytes[before..before + len],
            );
            let why = format!(
                "{said:?} with {len} bytes: {status} {head} {}",
                String::from_utf8_lossy(&body)
            );
            prop_assert!((200..500).contains(&status), "{}", why);
            let now = offset_now(&c);
            if (200..300).contains(&status) {
                prop_assert_eq!(
                    said.trim().parse::<u64>().ok(),
                    Some(before as u64),
                    "{}",
                    why
                );
                prop_assert_eq!(now, before + len, "{}", why);
            } else {
                prop_assert_eq!(now, before, "a refused chunk moved the offset: {}", why);
                if len > 0 && said == before.to_string() {
                    prop_assert!(false, "the right offset was refused: {}", why);
                }
            }
            at.set(now);
            Ok(())
        })
        .unwrap();
    assert!(at.get() > 0, "no chunk was ever taken");
    eprintln!("{} bytes taken in chunks at random offsets", at.get());

    // The rest from where the node says: the upload is whole and kept on two nodes.
    let from = offset_now(&c);
    assert_eq!(from, at.get());
    let (status, head, _) = c.send_chunk(0, "mallory", &id, from, &bytes[from..]);
    assert!((200..300).contains(&status), "{head}");
    assert_eq!(offset_now(&c), TOTAL);
    assert!(!c.stderr(0).contains("panicked"), "{}", c.stderr(0));
}

/// The page sends two chunks at once, and they may pass each other on the way. A chunk that
/// comes before the one it follows (the gap is its own length: the page's chunks are of one
/// size) waits for it, and both are taken in order. A chunk with any other gap, or a second one
/// ahead while one waits (a client parking its bytes on the node), is refused at once.
#[test]
fn a_chunk_that_passed_the_one_before_it_waits_for_it_and_no_other_chunk_waits() {
    let mut c = Cluster::new(&["A", "B"]);
    c.start(0, None);
    c.start(1, None);
    let png = noise_png(c.dir.path(), "300x300");
    let bytes = std::fs::read(&png).unwrap();
    let chunk = bytes.len() / 3;
    let (id, image) = c.create_upload(0, "ada", "noise.png", bytes.len(), "Ahead");
    let offset_of = |answer: &(u16, String, Vec<u8>)| header(&answer.1, "upload-offset");

    // Not a chunk that follows one on its way: refused at once, as ever.
    let short = c.send_chunk(0, "ada", &id, chunk, &bytes[chunk..chunk + 10]);
    assert_eq!(short.0, 409, "{}", short.1);
    assert_eq!(offset_of(&short).as_deref(), Some("0"));

    std::thread::scope(|s| {
        let second = s.spawn(|| c.send_chunk(0, "ada", &id, chunk, &bytes[chunk..2 * chunk]));
        wait_until(
            "the node to say the second chunk waits for the first",
            Duration::from_secs(30),
            || {
                c.stderr(0)
                    .contains("a chunk came before the one it follows")
                    .then_some(())
            },
        );
        // The same chunk again while it waits: the one place is taken.
        let again = c.send_chunk(0, "ada", &id, chunk, &bytes[chunk..2 * chunk]);
        assert_eq!(again.0, 409, "{}", again.1);
        assert_eq!(offset_of(&again).as_deref(), Some("0"));
        assert!(!second.is_finished(), "the chunk ahead did not wait");

        let first = c.send_chunk(0, "ada", &id, 0, &bytes[..chunk]);
        assert_eq!(first.0, 204, "{}", first.1);
        let second = second.join().unwrap();
        assert_eq!(second.0, 204, "{}", second.1);
        assert_eq!(offset_of(&second), Some((2 * chunk).to_string()));
    });
    let last = c.send_chunk(0, "ada", &id, 2 * chunk, &bytes[2 * chunk..]);
    assert_eq!(last.0, 204, "{}", last.1);
    assert_eq!(header(&last.1, "td-stage").as_deref(), Some("durable"));

    // Published, its two replicas' originals the file's bytes in their order.
    wait_until(
        "the upload to be published",
        Duration::from_secs(120),
        || {
            let s = c.status_of(0, "ada", &id)?;
            assert_ne!(s["stage"], "failed", "{s}");
            (s["stage"] == "published").then_some(())
        },
    );
    let originals: Vec<_> = (0..2)
        .flat_map(|i| walk(&c.disk(i)))
        .filter(|p| p.ends_with(format!("{image}/original.png")))
        .collect();
    assert_eq!(originals.len(), 2, "{originals:?}");
    for o in &originals {
        assert!(
            std::fs::read(o).unwrap() == bytes,
            "{o:?} differs from the upload"
        );
    }
    assert!(!c.stderr(0).contains("panicked"), "{}", c.stderr(0));
}

/// Every path under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            all.extend(walk(&p));
        }
        all.push(p);
    }
    all
}
