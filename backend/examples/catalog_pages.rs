//! How long a node takes to read and write out its catalog in pages, as a new frontend or
//! peer asks for it: `cargo run --release -p backend --example catalog_pages -- STATE/catalog NODE`
//! (a node's catalog; the node stopped). Prints each page's time to read and to encode.

use std::time::Instant;

/// The allocator `td` runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(node)) = (args.next(), args.next()) else {
        eprintln!("usage: catalog_pages CATALOG_PATH NODE");
        std::process::exit(2);
    };
    let (catalog, why) = backend::catalog::Catalog::open(path.as_ref(), &node).expect("a catalog");
    if let Some(why) = why {
        eprintln!("not a complete catalog: {why}");
        std::process::exit(1);
    }
    let (mut since, mut pages, started) = (0, 0, Instant::now());
    let (mut reading, mut encoding, mut bytes) = (0.0, 0.0, 0);
    loop {
        let t = Instant::now();
        let mut page = catalog.page_after(since, 10_000);
        reading += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for e in &mut page.entries {
            e.files = Vec::new();
        }
        bytes += serde_json::to_vec(&page).expect("plain data").len();
        encoding += t.elapsed().as_secs_f64();
        pages += 1;
        since = page.version;
        if !page.more {
            break;
        }
    }
    println!(
        "{pages} pages, {bytes} bytes in {:.1} s: reading {reading:.1} s, encoding {encoding:.1} s",
        started.elapsed().as_secs_f64()
    );
}
