//! A museum's whole collection, at the size a test can hold: four real `td backend` processes
//! (power domains A and B, two disks each) whose disks hold 50,000 images as tiny real
//! replicas, and a `td frontend` that learns them from the nodes' catalogs. Nothing is timed:
//! every answer is checked against what the test placed.
//!
//! - Each node rebuilds its catalog from its disks (`--rebuild-catalog`) and lists exactly the
//!   replicas placed on it, on the disk they are on.
//! - The frontend knows every image with both its replicas.
//! - Every image's redirect sends the visitor to one of the two nodes holding it.
//! - The gallery's pages, one after the other, hold every image once, in title order.
//! - Searches (words, beginnings of words, a word and its sign, years, an artist, both orders)
//!   list exactly the images that match, in the order the page says, page after page, and the
//!   same when asked again (the frontend then answers from what it kept of the first time).
//! - The IIIF collection's nested pages hold every image once, in title order.
//!
//! The replicas are as `backend::replica::place` leaves them (original, pyramid, thumbnail,
//! `meta.json`, and `replica.json` with the size and SHA-256 of each), their image files hard
//! links to one small tiled picture, on an ext4 of 1 KiB blocks keeping small files in their
//! inodes (a loop device: root). `TD_COLLECTION_IMAGES` sets another size.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backend::replica::{hash_file, Manifest, FORMAT, MANIFEST, META, PYRAMID, THUMBNAIL};
use cluster::{FileSum, ImageMeta};
use common::loop_disks::{sh, LoopDisks};
use common::monitor::{free_addr, wait_until};
use common::{get, start_td, Backend};

const NODES: [(&str, &str); 4] = [
    ("node-a", "A"),
    ("node-b", "B"),
    ("node-c", "A"),
    ("node-d", "B"),
];
/// A gallery or search page's images, as the frontend shows them.
const PER_PAGE: usize = 24;
/// The images of one nested page of the IIIF collection.
const IIIF_PER_PAGE: usize = 1000;
/// Links to one file that ext4 allows are 65,000: a copy of the picture per this many replicas.
const LINKS: usize = 30_000;
/// Long enough for a debug build on two busy cores; a hang is a failure, not a wait.
const LIMIT: Duration = Duration::from_secs(600);

/// One image as the test made it.
struct Image {
    id: String,
    meta: ImageMeta,
    /// Its two replicas: (node, disk).
    replicas: [(String, String); 2],
}

#[test]
fn a_collection_of_fifty_thousand_images_is_served_whole_and_in_order() {
    if !common::root_or_skip(
        "a_collection_of_fifty_thousand_images_is_served_whole_and_in_order",
        "its replicas live on an ext4 loop device with small files inline",
    ) {
        return;
    }
    let n: usize = std::env::var("TD_COLLECTION_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().unwrap();
    let mut disks = LoopDisks::default();
    // 1 KiB blocks and 512-byte inodes holding small files and folders inline: a replica's
    // own two files and its folder take about 3 KiB instead of 12. Sparse: only what is
    // written takes room.
    let inodes = ((n * 2 + 4096) * 4).to_string();
    let bytes = n as u64 * 6 * 1024 + (1 << 30);
    let fs = disks.add_formatted(
        dir.path(),
        "disks",
        bytes,
        &[
            "-m",
            "0",
            "-b",
            "1024",
            "-I",
            "512",
            "-O",
            "inline_data",
            "-N",
            &inodes,
        ],
    );
    let (config, addrs, frontend) = write_config(dir.path(), &fs);

    // Each node adopts its blank disks at its first start (their identity files).
    let nodes: Vec<Backend> = NODES
        .iter()
        .map(|(name, _)| start_node(&config, name, false))
        .collect();
    drop(nodes);

    let images = make_images(n);
    place_all(dir.path(), &fs, &images);
    sh("sync", &[]);

    // Every node rebuilds its catalog from its disks: exactly what was placed on it.
    let nodes: Vec<Backend> = NODES
        .iter()
        .map(|(name, _)| start_node(&config, name, true))
        .collect();
    for (i, (name, _)) in NODES.iter().enumerate() {
        let placed: HashMap<&str, &str> = images
            .iter()
            .flat_map(|im| {
                im.replicas
                    .iter()
                    .filter(|(node, _)| node == name)
                    .map(|(_, disk)| (im.id.as_str(), disk.as_str()))
            })
            .collect();
        assert!(
            nodes[i]
                .banner
                .contains(&format!(": {} images on 2 disks", placed.len())),
            "{name} should hold {} images: {}",
            placed.len(),
            nodes[i].banner
        );
        let catalog = catalog_of(&nodes[i].addr);
        assert_eq!(
            catalog.len(),
            placed.len(),
            "{name}'s catalog after its rebuild"
        );
        for (id, disk) in &placed {
            let (state, on) = catalog
                .get(*id)
                .unwrap_or_else(|| panic!("{name}'s rebuilt catalog has no {id}"));
            assert_eq!((state.as_str(), on.as_str()), ("Ok", *disk), "{name}: {id}");
        }
    }

    // The frontend: every image known, both replicas of each.
    let fe = start_td(
        &[
            "frontend",
            "--config",
            config.to_str().unwrap(),
            "--name",
            "fe-1",
        ],
        &dir.path().join("fe-1.stderr"),
    );
    assert!(fe.banner.contains(&frontend), "{}", fe.banner);
    let health = wait_until("the frontend counts every image healthy", LIMIT, || {
        let (status, _, body) = get(&frontend, "/health");
        let h: serde_json::Value = serde_json::from_slice(&body).ok()?;
        (status == 200 && h["redundancy"]["healthy"] == n).then_some(h)
    });
    assert_eq!(health["images"], n, "{health:#}");
    assert_eq!(health["redundancy"]["under_replicated"], 0, "{health:#}");

    every_redirect_goes_to_a_replica(&frontend, &images, &addrs);

    let mut by_title: Vec<&Image> = images.iter().collect();
    by_title.sort_by_cached_key(|im| title_order(im));
    same_images(
        "the gallery's pages",
        &pages_of(&frontend, "/?", n),
        &by_title,
    );

    for search in searches() {
        let expected = search.expect(&images);
        eprintln!("/search?{}: {} images", search.query(), expected.len());
        assert!(
            !expected.is_empty() || search.q == NOWHERE,
            "{search:?} matches nothing"
        );
        for asked in ["first", "again"] {
            let path = format!("/search?{}&", search.query());
            let shown = pages_of(&frontend, &path, expected.len());
            same_images(&format!("{path} asked {asked}"), &shown, &expected);
        }
    }

    same_images(
        "the IIIF collection's pages",
        &iiif_collection(&frontend, n),
        &by_title,
    );
    drop(fe);
    drop(nodes);
}

/// Checks that `what` lists the images `expected`, each once, in that order; else names the
/// first place where they differ.
fn same_images(what: &str, shown: &[String], expected: &[&Image]) {
    let first_difference = shown
        .iter()
        .zip(expected)
        .position(|(s, e)| *s != e.id)
        .or((shown.len() != expected.len()).then(|| shown.len().min(expected.len())));
    if let Some(at) = first_difference {
        panic!(
            "{what}: {} images shown, {} expected; at {at}, {:?} shown where {:?} was expected",
            shown.len(),
            expected.len(),
            shown.get(at),
            expected.get(at).map(|e| &e.id)
        );
    }
}

/// `cluster.toml` for the four nodes, their disks folders of `fs`, and one frontend; the
/// node addresses by name and the frontend's address.
fn write_config(dir: &Path, fs: &Path) -> (PathBuf, HashMap<String, String>, String) {
    let frontend = free_addr();
    let mut toml = format!(
        "name = \"collection test\"\n\n[[frontend]]\nname = \"fe-1\"\naddress = \"{frontend}\"\n"
    );
    let mut addrs = HashMap::new();
    for (name, domain) in NODES {
        let addr = free_addr();
        toml.push_str(&format!(
            "\n[[node]]\nname = \"{name}\"\naddress = \"{addr}\"\npower_domain = \"{domain}\"\n\
             state_dir = \"{name}/state\"\n"
        ));
        for d in 1..=2 {
            let path = fs.join(format!("{name}-d{d}"));
            std::fs::create_dir(&path).unwrap();
            toml.push_str(&format!(
                "\n[[node.disk]]\nid = \"{name}-d{d}\"\npath = \"{}\"\n",
                path.display()
            ));
        }
        addrs.insert(name.to_string(), addr);
    }
    let config = dir.join("cluster.toml");
    std::fs::write(&config, toml).unwrap();
    floor::secret_file::create(&dir.join("cluster.secret")).unwrap();
    (config, addrs, frontend)
}

fn start_node(config: &Path, name: &str, rebuild: bool) -> Backend {
    let c = config.to_str().unwrap();
    let mut args = vec!["backend", "--config", c, "--node", name];
    if rebuild {
        args.push("--rebuild-catalog");
    }
    start_td(&args, &config.with_extension(format!("{name}.stderr")))
}

/// A small deterministic generator (xorshift), so a failure names images that can be made
/// again.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// A word in no image's metadata.
const NOWHERE: &str = "zzyzx";
/// Words the searches ask for; none begins another, nor any made-up word below.
const COMMON: [&str; 10] = [
    "harbour",
    "portrait",
    "landscape",
    "river",
    "garden",
    "night",
    "bridge",
    "étude",
    "Ωmega",
    "still",
];
const SYLLABLES: [&str; 12] = [
    "ar", "ben", "cor", "da", "el", "fa", "gor", "ju", "ka", "lu", "mo", "vi",
];

/// `n` images with realistic metadata: a title of a common word and made-up ones (some with
/// "no. N", some the same as another's), an artist, a date (some "c. YEAR", some none), a
/// sentence of description and keywords; each on two nodes of two power domains, spread over
/// every node and disk.
fn make_images(n: usize) -> Vec<Image> {
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let words: Vec<String> = (0..400)
        .map(|_| {
            (0..2 + dice.below(3))
                .map(|_| SYLLABLES[dice.below(SYLLABLES.len())])
                .collect()
        })
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let artists: Vec<String> = (0..300)
        .map(|_| {
            let mut a = format!(
                "{} {}",
                capital(dice.pick(&words)),
                capital(dice.pick(&words))
            );
            if dice.below(10) == 0 {
                a.push_str(" & Söhne");
            }
            a
        })
        .collect();
    let domains = [["node-a", "node-c"], ["node-b", "node-d"]];
    (0..n)
        .map(|i| {
            let mut title = capital(dice.pick(&COMMON));
            for _ in 0..1 + dice.below(3) {
                title.push(' ');
                title.push_str(dice.pick(&words));
            }
            if dice.below(3) == 0 {
                title.push_str(&format!(" no. {}", 1 + dice.below(500)));
            }
            if dice.below(50) == 0 {
                title = "Untitled".into(); // the same title as many others: ordered by id
            }
            let date = match dice.below(10) {
                0 => String::new(),
                1 | 2 => format!("c. {}", 1400 + dice.below(601)),
                _ => (1400 + dice.below(601)).to_string(),
            };
            let description: Vec<&str> = (0..8)
                .map(|_| match dice.below(4) {
                    0 => dice.pick(&COMMON),
                    _ => dice.pick(&words),
                })
                .collect();
            let meta = ImageMeta {
                title,
                artist: artists[dice.below(artists.len())].clone(),
                date,
                description: capital(&description.join(" ")) + ".",
                keywords: vec![dice.pick(&COMMON).to_lowercase(), dice.pick(&words).into()],
                rights: "Public domain".into(),
                owner: String::new(),
            };
            let first = i % 2;
            let pair = [
                (domains[first][(i / 2) % 2], 1 + (i / 8) % 2),
                (domains[1 - first][(i / 4) % 2], 1 + (i / 8 + 1) % 2),
            ];
            Image {
                id: format!("img-{i:06}"),
                meta,
                replicas: pair.map(|(node, d)| (node.to_string(), format!("{node}-d{d}"))),
            }
        })
        .collect()
}

fn capital(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Places every image's two replicas: a small picture tiled once by `td tile`, its files hard
/// links in every replica, beside the replica's own metadata and manifest.
fn place_all(dir: &Path, fs: &Path, images: &[Image]) {
    let png = dir.join("picture.png");
    let mut dice = Dice(7);
    let picture = image::RgbImage::from_fn(300, 200, |_, _| {
        image::Rgb([
            dice.below(256) as u8,
            dice.below(256) as u8,
            dice.below(256) as u8,
        ])
    });
    picture.save(&png).unwrap();
    let tiled = std::process::Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["tile", "-q", png.to_str().unwrap(), "-o"])
        .arg(dir.join("picture.tdp"))
        .output()
        .unwrap();
    assert!(
        tiled.status.success(),
        "{}",
        String::from_utf8_lossy(&tiled.stderr)
    );
    let sources = [
        (png.clone(), "original.png"),
        (dir.join("picture.tdp"), PYRAMID),
        (dir.join("picture.thumb.jpg"), THUMBNAIL),
    ];
    let sums: Vec<FileSum> = sources
        .iter()
        .map(|(path, name)| {
            let (size, sha256) = hash_file(path, &mut |_| {}).unwrap();
            FileSum {
                name: name.to_string(),
                size,
                sha256,
            }
        })
        .collect();
    let copies = fs.join("template");
    let mut replica = 0;
    for im in images {
        let meta = serde_json::to_vec_pretty(&im.meta).unwrap();
        let mut files = sums.clone();
        files.push(FileSum {
            name: META.into(),
            size: meta.len() as u64,
            sha256: backend::replica::sha256(&meta),
        });
        let mut nodes: Vec<String> = im.replicas.iter().map(|(node, _)| node.clone()).collect();
        nodes.sort();
        let manifest = Manifest {
            format: FORMAT,
            id: im.id.clone(),
            nodes,
            placed_at: cluster::unix_now(),
            files,
        };
        let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
        for (_, disk) in &im.replicas {
            let copy = copies.join((replica / LINKS).to_string());
            if replica % LINKS == 0 {
                std::fs::create_dir_all(&copy).unwrap();
                for (path, name) in &sources {
                    std::fs::copy(path, copy.join(name)).unwrap();
                }
            }
            replica += 1;
            let folder = fs.join(disk).join("images").join(&im.id);
            std::fs::create_dir_all(&folder).unwrap();
            for (_, name) in &sources {
                std::fs::hard_link(copy.join(name), folder.join(name)).unwrap();
            }
            std::fs::write(folder.join(META), &meta).unwrap();
            std::fs::write(folder.join(MANIFEST), &manifest).unwrap();
        }
    }
}

/// A node's catalog, read as a frontend reads it (pages of changes from version 0): each
/// image's state and disk.
fn catalog_of(addr: &str) -> HashMap<String, (String, String)> {
    let mut entries = HashMap::new();
    let mut since = 0;
    loop {
        let path = format!("/catalog?since={since}&limit=10000&files=false");
        let (status, _, body) = get(addr, &path);
        assert_eq!(status, 200, "{addr}{path}");
        let page: cluster::CatalogPage = serde_json::from_slice(&body).unwrap();
        for e in page.entries {
            entries.insert(e.id, (format!("{:?}", e.state), e.disk));
        }
        since = page.version;
        if !page.more {
            return entries;
        }
    }
}

/// Every image's redirect, asked of the frontend from two threads at once: a 302 to its viewer
/// on one of the two nodes holding it.
fn every_redirect_goes_to_a_replica(
    frontend: &str,
    images: &[Image],
    addrs: &HashMap<String, String>,
) {
    std::thread::scope(|s| {
        for half in images.chunks(images.len().div_ceil(2)) {
            s.spawn(move || {
                for im in half {
                    let (status, head, _) = get(frontend, &format!("/images/{}", im.id));
                    assert_eq!(status, 302, "/images/{}: {head}", im.id);
                    let location = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("location: ")
                                .or(l.strip_prefix("Location: "))
                        })
                        .unwrap_or_else(|| panic!("/images/{}: no location in {head}", im.id));
                    assert!(
                        im.replicas.iter().any(|(node, _)| {
                            location == format!("http://{}/view/{}", addrs[node], im.id)
                        }),
                        "/images/{} sent to {location}, not to {:?}",
                        im.id,
                        im.replicas
                    );
                }
            });
        }
    });
}

/// The ids a gallery or search lists, page after page (`base` then `page=N`), checking that
/// each page says `total` images and holds a full page but the last.
fn pages_of(frontend: &str, base: &str, total: usize) -> Vec<String> {
    let pages = total.div_ceil(PER_PAGE);
    let mut ids = Vec::with_capacity(total);
    for page in 1..=pages.max(1) {
        let path = format!("{base}page={page}");
        let (status, _, body) = get(frontend, &path);
        let body = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        let count = format!(
            "result-count\">{total} {} · page {page} of {}<",
            if total == 1 { "image" } else { "images" },
            pages.max(1)
        );
        assert!(body.contains(&count), "{path} should say '{count}'");
        let list = body
            .split_once("<ul class=\"gallery\">")
            .and_then(|(_, rest)| rest.split_once("</ul>"))
            .unwrap_or_else(|| panic!("{path}: no gallery list"))
            .0;
        let shown: Vec<String> = list
            .split("<a href=\"/images/")
            .skip(1)
            .map(|a| a.split('"').next().unwrap().to_string())
            .collect();
        let want = PER_PAGE.min(total - ids.len().min(total));
        assert_eq!(shown.len(), want, "{path}: images on the page");
        ids.extend(shown);
    }
    ids
}

/// The IIIF collection's image ids, from its top through each nested page.
fn iiif_collection(frontend: &str, total: usize) -> Vec<String> {
    let (status, _, body) = get(frontend, "/iiif/collection.json");
    assert_eq!(status, 200);
    let top: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let nested = top["items"].as_array().unwrap();
    assert_eq!(nested.len(), total.div_ceil(IIIF_PER_PAGE), "nested pages");
    let mut ids = Vec::with_capacity(total);
    for (n, page) in nested.iter().enumerate() {
        assert_eq!(page["type"], "Collection");
        let url = page["id"].as_str().unwrap();
        let path = &url[url.find("/iiif/collection/").expect("a page's path")..];
        assert_eq!(path, format!("/iiif/collection/{}.json", n + 1));
        let (status, _, body) = get(frontend, path);
        assert_eq!(status, 200, "{path}");
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(
            items.len() <= IIIF_PER_PAGE,
            "{path}: {} items",
            items.len()
        );
        for item in items {
            assert_eq!(item["type"], "Manifest", "{path}");
            let id = item["id"].as_str().unwrap();
            let image = id
                .split_once("/iiif/3/")
                .and_then(|(_, rest)| rest.strip_suffix("/manifest.json"))
                .unwrap_or_else(|| panic!("{path}: a manifest id {id}"));
            ids.push(image.to_string());
        }
    }
    ids
}

/// The gallery's order: the title in lower case, then the id.
fn title_order(im: &Image) -> (String, String) {
    (im.meta.title.to_lowercase(), im.id.clone())
}

/// A search as a visitor asks it, with what it must find worked out here from the metadata
/// placed: every word of `q` begins a word of the title, artist, date, description or keywords
/// (ignoring case); the artist's words begin words of the artist; the date's year is within
/// the years. Best first: titles holding a word beginning with each word's letters first.
#[derive(Debug)]
struct Search {
    q: &'static str,
    artist: &'static str,
    years: Option<(i32, i32)>,
    by_title: bool,
}

fn searches() -> Vec<Search> {
    let s = |q, artist, years, by_title| Search {
        q,
        artist,
        years,
        by_title,
    };
    vec![
        s("harbour", "", None, false),
        s("harbour", "", None, true),
        s("harb", "", None, false),
        s("RIVER gar", "", None, false),
        s("portrait no.", "", None, false),
        s("night", "", Some((1600, 1700)), false),
        s("", "", Some((1990, 2000)), false),
        s("", "", Some((1403, 1418)), false),
        s("étude", "", None, false),
        s("ωMEGA", "", None, false),
        s("", "söhne", None, false),
        s(NOWHERE, "", None, false),
    ]
}

impl Search {
    fn query(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [("q", self.q), ("artist", self.artist)] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", encode(v)));
            }
        }
        if let Some((from, to)) = self.years {
            parts.push(format!("from={from}&to={to}"));
        }
        if self.by_title {
            parts.push("sort=title".into());
        }
        parts.join("&")
    }

    fn expect<'a>(&self, images: &'a [Image]) -> Vec<&'a Image> {
        let words: Vec<String> = self.q.split_whitespace().map(str::to_lowercase).collect();
        let artist = self.artist.to_lowercase();
        let mut found: Vec<&Image> = images
            .iter()
            .filter(|im| {
                let m = &im.meta;
                let fields = [&m.title, &m.artist, &m.date, &m.description]
                    .into_iter()
                    .chain(&m.keywords);
                let searched: Vec<String> = fields.map(|f| f.to_lowercase()).collect();
                words
                    .iter()
                    .all(|w| searched.iter().any(|f| begins_a_word(f, w)))
                    && (artist.is_empty() || begins_a_word(&m.artist.to_lowercase(), &artist))
                    && self.years.is_none_or(|(from, to)| {
                        year_of(&m.date).is_some_and(|y| (from..=to).contains(&y))
                    })
            })
            .collect();
        let titled = |im: &Image| {
            let title = im.meta.title.to_lowercase();
            !self.by_title
                && !words.is_empty()
                && words.iter().all(|w| {
                    w.split(|c: char| !c.is_alphanumeric())
                        .filter(|part| !part.is_empty())
                        .all(|part| begins_a_word(&title, part))
                })
        };
        found.sort_by_cached_key(|im| (!titled(im), title_order(im)));
        found
    }
}

/// Whether `word` is found in `text` (both in lower case) where a word of it begins.
fn begins_a_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric())
    })
}

/// The year a date names: its first run of digits, when it has 3 or 4 of them.
fn year_of(date: &str) -> Option<i32> {
    let digits: String = date
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    (3..=4)
        .contains(&digits.len())
        .then(|| digits.parse().unwrap())
}

/// `text` as a URL's query value.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
