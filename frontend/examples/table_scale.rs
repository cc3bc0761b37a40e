//! The lookup table at a museum's size, in one process: how long it takes to fill,
//! its memory, to serve a gallery page, to apply the empty catalog page each backend
//! sends every second (redirects wait while it holds the lock), to answer the IIIF
//! collection's top and a page of it, to search it, and to choose a replica.
//!
//! `cargo run --release -p frontend --example table_scale [ROWS]` (default 1,000,000, two
//! backends, each image on both).
//!
//! `... table_scale ROWS searches`: the rows described as `bench/collection` describes its
//! images (a title beginning with one of 18 common words, an artist of 20,000, a date, a
//! sentence, keywords), then that bench's 2,000 searches, one at a time, timed each: the
//! table's share of a search page's time, without HTTP or the page's rendering.
//!
//! `... table_scale ROWS serve ADDRESS`: the same rows served over HTTP by the frontend's routes
//! at ADDRESS until stopped, to time pages with their rendering (wrk) against a table of 3 rows
//! served beside it.

use cluster::{CatalogEntry, CatalogPage, ImageMeta, ReplicaState};
use frontend::table::{Query, Table};
use std::time::Instant;

/// The allocator `td` runs with (glibc's took a sixth of a search page's time in `malloc`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().unwrap());
    match std::env::args().nth(2).as_deref() {
        Some("searches") => return searches(n),
        Some("serve") => return serve(n, &std::env::args().nth(3).expect("serve ADDRESS")),
        _ => {}
    }
    let t = Table::new(&[
        ("a".into(), "http://a".into()),
        ("b".into(), "http://b".into()),
    ]);
    let start = Instant::now();
    for node in ["a", "b"] {
        for chunk in 0..(n / 100_000).max(1) {
            let entries = (chunk * 100_000..((chunk + 1) * 100_000).min(n))
                .map(|i| {
                    let meta = ImageMeta {
                        title: format!("Harbour view number {}", (i * 7919) % n),
                        artist: format!("Artist {}", i % 5000),
                        date: format!("{}", 1500 + i % 500),
                        description: "A sentence of description about the work.".into(),
                        keywords: vec!["harbour".into(), "sea".into()],
                        ..ImageMeta::default()
                    };
                    entry(format!("img-{i:08}"), i as u64, meta)
                })
                .collect();
            t.apply(page(node, (chunk + 1) as u64, entries));
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
        t.apply(page("a", 100 + v, vec![]));
    }
    println!("empty catalog page applied: {:?} each", s.elapsed() / 20);
    let s = Instant::now();
    t.search(&q, 0, 48);
    println!("gallery page after those empty pages: {:?}", s.elapsed());
    // A new image, then the gallery at once: its order is kept, not sorted again.
    t.apply(page(
        "a",
        200,
        vec![CatalogEntry {
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
    ));
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
    // A redirect's lookup, for ids spread over the whole table as visitors' are, against the
    // same lookups in a table of 3 rows: what the table's size adds to each redirect.
    let spread: Vec<String> = (0..200_000u64)
        .map(|i| format!("img-{:08}", i.wrapping_mul(2_654_435_761) % n as u64))
        .collect();
    let small = Table::new(&[
        ("a".into(), "http://a".into()),
        ("b".into(), "http://b".into()),
    ]);
    let three = (0..3)
        .map(|i| entry(format!("img-{i:08}"), 1, ImageMeta::default()))
        .collect::<Vec<_>>();
    for node in ["a", "b"] {
        small.apply(self::page(node, 1, three.clone()));
    }
    for node in ["a", "b"] {
        t.set_health(node, Ok(Default::default()));
        small.set_health(node, Ok(Default::default()));
    }
    let few: Vec<String> = (0..200_000).map(|i| format!("img-{:08}", i % 3)).collect();
    assert_eq!((t.len(), small.len()), (n + 1, 3), "the tables timed");
    // Each lookup must send the visitor to one of the image's two backends, and the two
    // share the visitors: an unknown or unavailable answer would time something else.
    let time = |t: &Table, ids: &[String]| {
        let mut to_a = 0;
        let s = Instant::now();
        for id in ids {
            match t.choose(id) {
                frontend::table::Choice::Origin(o) if o == "http://a" => to_a += 1,
                frontend::table::Choice::Origin(o) if o == "http://b" => {}
                other => panic!("{id}: {other:?}"),
            }
        }
        let each = s.elapsed() / ids.len() as u32;
        assert!(to_a > 0 && to_a < ids.len(), "{to_a} of {} to a", ids.len());
        each
    };
    let (big, tiny) = (time(&t, &spread), time(&small, &few));
    println!(
        "choose: {big:?} each over {n} rows, {tiny:?} over 3 rows ({:.2}x)",
        big.as_secs_f64() / tiny.as_secs_f64()
    );
    println!(
        "memory at the end {} MiB (peak {} MiB)",
        memory_kib("VmRSS:") / 1024,
        memory_kib("VmHWM:") / 1024
    );
}

/// An image's entry as both backends list it: healthy, on disk d1 of each.
fn entry(id: String, version: u64, meta: ImageMeta) -> CatalogEntry {
    CatalogEntry {
        id,
        version,
        state: ReplicaState::Ok,
        disk: "d1".into(),
        nodes: vec!["a".into(), "b".into()],
        epoch: 0,
        width: 6000,
        height: 4000,
        meta,
        files: vec![],
    }
}

/// A page of backend `node`'s catalog.
fn page(node: &str, version: u64, entries: Vec<CatalogEntry>) -> CatalogPage {
    CatalogPage {
        more: false,
        node: node.into(),
        catalog: format!("{node}-1"),
        version,
        entries,
    }
}

/// A small random number generator (xorshift), so that runs describe the same rows.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &'a [String]) -> &'a str {
        &from[self.below(from.len())]
    }
}

const COMMON: [&str; 18] = [
    "harbour",
    "portrait",
    "landscape",
    "view",
    "study",
    "still",
    "life",
    "river",
    "sea",
    "garden",
    "city",
    "night",
    "morning",
    "figure",
    "woman",
    "man",
    "child",
    "bridge",
];

/// Rows described as bench/collection describes its images (the same rows every run): a
/// title beginning with one of the common words, an artist of 20,000, a date, a sentence,
/// keywords; filled into `t` as backends "a" and "b" list them.
fn described(t: &Table, n: usize, rng: &mut Rng) {
    let syllables = [
        "ar", "ben", "cor", "da", "el", "fa", "gor", "ha", "in", "jo", "ka", "lu", "mar", "no",
        "or", "pa", "qui", "ro", "sa", "ta", "um", "ve", "wi", "xa", "yo", "ze",
    ];
    let mut words: Vec<String> = (0..6000)
        .map(|_| {
            (0..2 + rng.below(3))
                .map(|_| syllables[rng.below(syllables.len())])
                .collect()
        })
        .collect();
    words.sort();
    words.dedup();
    let capital = |w: &str| w[..1].to_uppercase() + &w[1..];
    let artists: Vec<String> = (0..20_000)
        .map(|_| {
            format!(
                "{} {}",
                capital(rng.pick(&words)),
                capital(rng.pick(&words))
            )
        })
        .collect();
    let common: Vec<String> = COMMON.iter().map(|w| w.to_string()).collect();
    let mixed: Vec<String> = words.iter().chain(&common).cloned().collect();
    let describe = |i: usize, rng: &mut Rng| {
        let mut title = capital(rng.pick(&common));
        for _ in 0..1 + rng.below(3) {
            title = format!("{title} {}", rng.pick(&words));
        }
        if rng.below(10) < 3 {
            title = format!("{title} no. {}", 1 + rng.below(500));
        }
        let year = 1400 + rng.below(601);
        let description: Vec<&str> = (0..12).map(|_| rng.pick(&mixed)).collect();
        let meta = ImageMeta {
            title,
            artist: rng.pick(&artists).to_string(),
            date: if rng.below(5) == 0 {
                format!("c. {year}")
            } else {
                year.to_string()
            },
            description: capital(&description.join(" ")) + ".",
            keywords: vec![
                rng.pick(&common).to_string(),
                rng.pick(&words).to_string(),
                rng.pick(&words).to_string(),
            ],
            ..ImageMeta::default()
        };
        (format!("img-{i:07}"), meta)
    };
    let metas: Vec<(String, ImageMeta)> = (0..n).map(|i| describe(i, rng)).collect();
    for node in ["a", "b"] {
        for (chunk, rows) in metas.chunks(10_000).enumerate() {
            let entries = rows
                .iter()
                .map(|(id, meta)| entry(id.clone(), 1, meta.clone()))
                .collect();
            t.apply(page(node, (chunk + 1) as u64, entries));
        }
    }
}

/// Rows described as bench/collection describes them, served over HTTP at `address` by the
/// frontend's own routes, as `td frontend` serves them (its backends "a" and "b" answer
/// nowhere), until the process is stopped.
fn serve(n: usize, address: &str) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        "name = \"table scale\"\n\
         [[frontend]]\nname = \"fe-1\"\naddress = \"127.0.0.1:7\"\n\
         [[node]]\nname = \"a\"\naddress = \"127.0.0.1:9\"\npower_domain = \"A\"\n\
         [[node]]\nname = \"b\"\naddress = \"127.0.0.1:11\"\npower_domain = \"B\"\n",
    )
    .expect("the configuration written");
    let config = cluster::ClusterConfig::load(&config).expect("the configuration read");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        // Its watch workers find nothing at the backends' addresses: the rows stay as filled.
        let front = frontend::open(&config, "fe-1").expect("a frontend");
        let start = Instant::now();
        described(&front.table, n, &mut Rng(0x9e37_79b9_7f4a_7c15));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("the address bound");
        println!(
            "{n} rows built in {:?}, memory {} MiB; serving at http://{}",
            start.elapsed(),
            memory_kib("VmRSS:") / 1024,
            listener.local_addr().expect("an address")
        );
        // Each backend says every second that nothing changed, as a quiet cluster's do.
        let table = front.table.clone();
        let version = n.div_ceil(10_000) as u64;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                every.tick().await;
                for node in ["a", "b"] {
                    table.apply(page(node, version, Vec::new()));
                }
            }
        });
        frontend::http::serve(listener, front, std::future::pending()).await;
    });
}

/// Rows described as bench/collection describes its images, then its searches, each timed.
fn searches(n: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = Table::new(&[
        ("a".into(), "http://a".into()),
        ("b".into(), "http://b".into()),
    ]);
    let start = Instant::now();
    described(&t, n, &mut rng);
    println!(
        "{n} rows built in {:?}; memory {} MiB (peak {} MiB)",
        start.elapsed(),
        memory_kib("VmRSS:") / 1024,
        memory_kib("VmHWM:") / 1024
    );
    // The rows placed since the last count are ranked at the first empty page (each backend
    // sends one every second) once the table was quiet for a while, as after a table's build.
    std::thread::sleep(std::time::Duration::from_secs(11));
    let s = Instant::now();
    t.apply(page("a", n.div_ceil(10_000) as u64, Vec::new()));
    println!(
        "empty page after a quiet while (the ranks counted again): {:?}",
        s.elapsed()
    );
    // bench/collection's searches: a common word, with years, with a sign, with its own
    // beginning, a deep page; years alone.
    let deepest = (n / 48 / 20).max(1);
    let asked: Vec<(Query, usize, &str)> = (0..2000)
        .map(|_| {
            let w = COMMON[[0, 1, 2, 3, 7, 9, 11, 17][rng.below(8)]];
            match rng.below(6) {
                0 => (Query::parse(w, "", "", ""), 0, "a word"),
                1 => (Query::parse(w, "", "1600", "1700"), 0, "a word, years"),
                2 => (
                    Query::parse(&format!("{w} no."), "", "", ""),
                    0,
                    "a word, a sign",
                ),
                3 => (
                    Query::parse(&format!("{w} {}", &w[..3]), "", "", ""),
                    0,
                    "two words",
                ),
                4 => (
                    Query::parse(w, "", "", ""),
                    1 + rng.below(deepest),
                    "a deep page",
                ),
                _ => {
                    let from = (1400 + rng.below(501)).to_string();
                    (Query::parse("", "", &from, "2000"), 0, "years alone")
                }
            }
        })
        .collect();
    let mut all = Vec::new();
    let mut by_kind: std::collections::BTreeMap<&str, Vec<std::time::Duration>> =
        Default::default();
    // A search asked before (any page of it) may be cut from what the table kept of it.
    let mut seen = std::collections::HashSet::new();
    let (mut first_asked, mut asked_again) = (Vec::new(), Vec::new());
    for (query, page, kind) in &asked {
        let s = Instant::now();
        let (shown, found) = t.search(query, *page, 48);
        let took = s.elapsed();
        // What was timed is a page of results: the rows the count says are there.
        assert!(found > 0, "{kind}: nothing found for {query:?}");
        assert_eq!(
            shown.len(),
            found.saturating_sub(page * 48).min(48),
            "{kind}: page {page} of {found} matches for {query:?}"
        );
        all.push(took);
        by_kind.entry(kind).or_default().push(took);
        if seen.insert(format!("{query:?}")) {
            first_asked.push(took);
        } else {
            asked_again.push(took);
        }
    }
    // Rows retitled a page at a time: the ranks are counted again once a thirty-second of
    // the rows moved, at the end of the page that crosses it.
    let mut pages = Vec::new();
    for (p, rows) in (0..n)
        .collect::<Vec<_>>()
        .chunks(10_000)
        .take(5)
        .enumerate()
    {
        let entries = rows
            .iter()
            .map(|&i| {
                let title = format!("Retitled {i}");
                let meta = ImageMeta {
                    title,
                    ..ImageMeta::default()
                };
                entry(format!("img-{i:07}"), 2, meta)
            })
            .collect();
        let s = Instant::now();
        t.apply(page("a", 1000 + p as u64, entries));
        pages.push(format!("{:.1?}", s.elapsed()));
    }
    println!(
        "pages of 10,000 rows retitled, each applied in: {}",
        pages.join(", ")
    );
    let quantiles = |times: &mut Vec<std::time::Duration>| {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        format!("p50 {:?}, p99 {:?}, max {:?}", at(0.5), at(0.99), at(1.0))
    };
    println!("2,000 searches: {}", quantiles(&mut all));
    println!(
        "  asked the first time ({}): {}",
        first_asked.len(),
        quantiles(&mut first_asked)
    );
    println!(
        "  asked again ({}): {}",
        asked_again.len(),
        quantiles(&mut asked_again)
    );
    for (kind, mut times) in by_kind {
        println!("  {kind} ({}): {}", times.len(), quantiles(&mut times));
    }
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
