//! A node may hold far more replicas than a process may keep files open: it keeps each
//! replica's pyramid header, and a bounded number of pyramid files open, the most recently
//! read. Here a node whose open-file limit is 600 serves 800 replicas, every one of them read,
//! and never holds more pyramids open than its bound (before, it kept every pyramid open and
//! failed to start past its limit, and every pyramid past the limit was found "unreadable").
//!
//! Alone in its own test binary: it lowers the process's open-file limit for good.

mod common;

use backend::{CatalogStart, Node};
use common::{picture, TestCluster};

const REPLICAS: usize = 800;
const LIMIT: u64 = 600;

fn open_files_now() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_node_serves_more_replicas_than_it_may_keep_files_open() {
    let c = TestCluster::new(1);
    c.place(1, "img-000", &picture(300, 200), "Many");
    // The others: the same files (hard links), each with its own manifest, as placed.
    c.copies(1, "img-000", REPLICAS - 1);
    let limit = libc::rlimit {
        rlim_cur: LIMIT,
        rlim_max: LIMIT,
    };
    // SAFETY: setrlimit reads the struct given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let (node, opening) = Node::open(&c.config, "n1", CatalogStart::Rebuild).unwrap();
    assert!(
        !opening.warnings.iter().any(|w| w.contains("not served")),
        "{:?}",
        opening.warnings
    );
    assert_eq!(node.library.len(), REPLICAS);
    let open = node.library.open_pyramids();
    assert!(open.most() < REPLICAS && open.most() >= 16, "{open:?}");
    // Every replica read, twice over, in turn: never more open than the bound.
    for _ in 0..2 {
        for image in node.library.images() {
            let tile = image.pyramid().unwrap().read_tile(0, 0, 0).unwrap();
            assert_eq!(&tile[..2], [0xff, 0xd8], "{}", image.id);
            assert!(open.len() <= open.most(), "{open:?}");
        }
    }
    assert!(open_files_now() < LIMIT as usize);
    assert!(node.catalog.entries().iter().all(|e| e.state.servable()));
    // A page at a time, by id, every one once.
    let (mut after, mut seen) = (String::new(), Vec::new());
    loop {
        let (page, more) = node.library.page_after(&after, 300);
        assert!(page.len() <= 300);
        seen.extend(page.iter().map(|i| i.id.clone()));
        after = seen.last().cloned().unwrap_or_default();
        if !more {
            break;
        }
    }
    let mut by_id: Vec<_> = node.library.images().iter().map(|i| i.id.clone()).collect();
    by_id.sort();
    assert_eq!(seen, by_id);
    // A replica no longer served here has its file closed.
    let last = node.library.images().pop().unwrap();
    let before = open.len();
    assert!(node.library.remove(&last.id).is_some());
    assert_eq!(open.len(), before - 1, "{} was the last one read", last.id);
}
