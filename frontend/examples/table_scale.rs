//! The lookup table at a museum's size, in one process (no HTTP): how long it takes to fill,
//! its memory, to serve a gallery page, to apply the empty catalog page each backend
//! sends every second (redirects wait while it holds the lock), to answer the IIIF
//! collection's top and a page of it, to search it, and to choose a replica.
//!
//! `cargo run --release -p frontend --example table_scale [ROWS]` (default 1,000,000, two
//! backends, each image on both).

use cluster::{CatalogEntry, CatalogPage, ImageMeta, ReplicaState};
use frontend::table::{Query, Table};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().unwrap());
    let t = Table::new(&[
        ("a".into(), "http://a".into()),
        ("b".into(), "http://b".into()),
    ]);
    let start = Instant::now();
    for node in ["a", "b"] {
        for chunk in 0..(n / 100_000).max(1) {
            let entries = (chunk * 100_000..((chunk + 1) * 100_000).min(n))
                .map(|i| CatalogEntry {
                    id: format!("img-{i:08}"),
                    version: i as u64,
                    state: ReplicaState::Ok,
                    disk: "d1".into(),
                    nodes: vec!["a".into(), "b".into()],
                    epoch: 0,
                    width: 6000,
                    height: 4000,
                    meta: ImageMeta {
                        title: format!("Harbour view number {}", (i * 7919) % n),
                        artist: format!("Artist {}", i % 5000),
                        date: format!("{}", 1500 + i % 500),
                        description: "A sentence of description about the work.".into(),
                        keywords: vec!["harbour".into(), "sea".into()],
                        ..ImageMeta::default()
                    },
                    files: vec![],
                })
                .collect();
            t.apply(CatalogPage {
                more: false,
                node: node.into(),
                catalog: format!("{node}-1"),
                version: (chunk + 1) as u64,
                entries,
            });
        }
    }
    println!(
        "{n} rows built in {:?}; memory {} MiB (peak {} MiB)",
        start.elapsed(),
        memory_kib("VmRSS:") / 1024,
        memory_kib("VmHWM:") / 1024
    );
    let q = Query::default();
    let s = Instant::now();
    t.search(&q, 0, 48);
    println!("first gallery page: {:?}", s.elapsed());
    let s = Instant::now();
    let mut slowest = std::time::Duration::ZERO;
    for _ in 0..10 {
        let one = Instant::now();
        t.search(&q, 0, 48);
        slowest = slowest.max(one.elapsed());
    }
    println!(
        "gallery page, order kept: {:?} each, the slowest {slowest:?}",
        s.elapsed() / 10
    );
    let s = Instant::now();
    for v in 0..20u64 {
        t.apply(CatalogPage {
            more: false,
            node: "a".into(),
            catalog: "a-1".into(),
            version: 100 + v,
            entries: vec![],
        });
    }
    println!("empty catalog page applied: {:?} each", s.elapsed() / 20);
    let s = Instant::now();
    t.search(&q, 0, 48);
    println!("gallery page after those empty pages: {:?}", s.elapsed());
    // A new image, then the gallery at once: its order is kept, not sorted again.
    t.apply(CatalogPage {
        more: false,
        node: "a".into(),
        catalog: "a-1".into(),
        version: 200,
        entries: vec![CatalogEntry {
            id: "img-new".into(),
            version: 200,
            state: ReplicaState::Ok,
            disk: "d1".into(),
            nodes: vec!["a".into()],
            epoch: 0,
            width: 10,
            height: 10,
            meta: ImageMeta {
                title: "Harbour at dawn".into(),
                ..ImageMeta::default()
            },
            files: vec![],
        }],
    });
    let s = Instant::now();
    t.search(&q, 0, 48);
    println!("gallery page just after a new image: {:?}", s.elapsed());
    let s = Instant::now();
    t.search(&q, 20_000, 48);
    println!("gallery page 20,000 (the deepest): {:?}", s.elapsed());
    let s = Instant::now();
    let (first, total) = t.titles(0, frontend::collection::PER_PAGE);
    let top = frontend::collection::top("https://images.example", total, &first).to_string();
    let mid = frontend::collection::first_of(500);
    let (items, _) = t.titles(mid, frontend::collection::PER_PAGE);
    let page = frontend::collection::page("https://images.example", 500, total, &items).to_string();
    println!(
        "IIIF collection: top {} bytes, page 500 {} bytes, both in {:?}",
        top.len(),
        page.len(),
        s.elapsed()
    );
    let s = Instant::now();
    let r = t.redundancy();
    println!(
        "redundancy counts ({} healthy): {:?}",
        r.healthy,
        s.elapsed()
    );
    let s = Instant::now();
    t.redundancy();
    println!(
        "redundancy counts again, nothing changed: {:?}",
        s.elapsed()
    );
    for (what, query, page) in [
        (
            "a word in every row",
            Query::parse("harbour", "", "", ""),
            0,
        ),
        (
            "the same, page 2,000",
            Query::parse("harbour", "", "", ""),
            2000,
        ),
        (
            "a word with years",
            Query::parse("harbour", "", "1600", "1700"),
            0,
        ),
        (
            "the same, page 100",
            Query::parse("harbour", "", "1600", "1700"),
            100,
        ),
        (
            "two words, one rare",
            Query::parse("harbour 4242", "", "", ""),
            0,
        ),
        ("a word's start", Query::parse("numb", "", "", ""), 1000),
        ("an artist", Query::parse("", "artist 42", "", ""), 0),
        (
            "signs only (every row read)",
            Query::parse("-", "", "", ""),
            0,
        ),
    ] {
        let mut times: Vec<_> = (0..20)
            .map(|_| {
                let s = Instant::now();
                let found = t.search(&query, page, 48).1;
                (s.elapsed(), found)
            })
            .collect();
        times.sort();
        println!(
            "search, {what} ({} found): median {:?}, slowest {:?}",
            times[0].1, times[10].0, times[19].0
        );
    }
    let s = Instant::now();
    for i in 0..100_000 {
        t.choose(&format!("img-{:08}", i * 7 % n));
    }
    println!("choose: {:?} each", s.elapsed() / 100_000);
    println!(
        "memory at the end {} MiB (peak {} MiB)",
        memory_kib("VmRSS:") / 1024,
        memory_kib("VmHWM:") / 1024
    );
}

/// A line of /proc/self/status, in KiB.
fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
