//! A crowd of the most expensive IIIF requests anyone may send, without signing in: 32 at
//! once, turned PNGs of the largest size a node renders and distorted sizes that once decoded
//! a full-resolution strip for a few kilobytes. The node's memory stays within its render
//! budget (renders wait, then are told to come back with 503 and `Retry-After`), and
//! visitors' tiles keep coming throughout.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::{get, DemoPlan};

/// The render budget given to node-a here (MiB), small enough that the crowd must queue.
const BUDGET_MB: u64 = 256;
/// What a node holds besides renders (its tile cache, buffers, the allocator's slack): the
/// stated bound is the memory before the crowd, plus the budget, plus this.
const SLACK_MB: u64 = 160;

/// A field of `/proc/PID/status`, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[test]
fn a_crowd_of_worst_case_renders_stays_within_the_budget_while_tiles_flow() {
    let plan = DemoPlan::prepare();
    let config = plan.dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let node_a = format!("name = \"node-a\"\naddress = \"{}\"", plan.addr("node-a"));
    assert!(text.contains(&node_a), "node-a in {text}");
    std::fs::write(
        &config,
        text.replace(
            &node_a,
            &format!("{node_a}\nrender_memory_mb = {BUDGET_MB}"),
        ),
    )
    .unwrap();
    let node = plan.start("node-a");
    let addr = node.addr.clone();
    // seahorse-valley (6000×4000) is on node-a. Warm up: a render and some tiles, so that
    // the baseline includes what any serving node holds.
    assert_eq!(
        get(&addr, "/iiif/3/seahorse-valley/full/400,/0/default.jpg").0,
        200
    );
    for col in 0..8 {
        assert_eq!(
            get(&addr, &format!("/tiles/seahorse-valley/0/{col}/0.jpg")).0,
            200
        );
    }
    let before_kb = status_kb(node.pid(), "VmRSS:");

    let worst = [
        "/iiif/3/seahorse-valley/full/max/90/default.png",
        "/iiif/3/seahorse-valley/full/^max/270/gray.png",
        "/iiif/3/seahorse-valley/full/6000,1/0/default.jpg",
        "/iiif/3/seahorse-valley/full/1,4000/0/default.png",
    ];
    let done = Arc::new(AtomicBool::new(false));
    let (ok, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let crowd: Vec<_> = (0..32)
        .map(|i| {
            let (addr, path) = (addr.clone(), worst[i % worst.len()]);
            let (ok, busy) = (ok.clone(), busy.clone());
            std::thread::spawn(move || {
                let (status, head, _) = get(&addr, path);
                match status {
                    200 => ok.fetch_add(1, Ordering::SeqCst),
                    503 => {
                        assert!(head.contains("retry-after: "), "{path}: {head}");
                        busy.fetch_add(1, Ordering::SeqCst)
                    }
                    other => panic!("{path}: {other} {head}"),
                };
            })
        })
        .collect();
    // A visitor's tiles, fetched one after another while the crowd is served.
    let visitor = {
        let (addr, done) = (addr.clone(), done.clone());
        std::thread::spawn(move || {
            let mut served = 0u32;
            let mut n = 0u32;
            while !done.load(Ordering::SeqCst) || served < 20 {
                let (col, row) = (n % 23, (n / 23) % 15);
                let path = format!("/tiles/seahorse-valley/0/{col}/{row}.jpg");
                let (status, _, body) = get(&addr, &path);
                assert_eq!(status, 200, "{path} during the crowd");
                assert!(body.starts_with(b"\xff\xd8\xff"), "{path}: a JPEG");
                served += 1;
                n += 1;
            }
            served
        })
    };
    let started = Instant::now();
    for t in crowd {
        t.join().unwrap();
    }
    let crowd_took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let tiles = visitor.join().unwrap();
    let peak_kb = status_kb(node.pid(), "VmHWM:");
    let after_kb = status_kb(node.pid(), "VmRSS:");
    let (ok, busy) = (ok.load(Ordering::SeqCst), busy.load(Ordering::SeqCst));
    eprintln!(
        "32 worst-case renders in {crowd_took:?}: {ok} rendered, {busy} told to retry; \
         {tiles} tiles served meanwhile; node memory {} MiB before, peak {} MiB, {} MiB after \
         (budget {BUDGET_MB} MiB)",
        before_kb / 1024,
        peak_kb / 1024,
        after_kb / 1024
    );
    assert!(ok >= 1, "some renders were served");
    let bound_kb = before_kb + (BUDGET_MB + SLACK_MB) * 1024;
    assert!(
        peak_kb <= bound_kb,
        "peak {} MiB over the stated bound {} MiB",
        peak_kb / 1024,
        bound_kb / 1024
    );
    // The node still answers, and its health shows the renders gone.
    let (_, _, body) = get(&addr, "/health");
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["renders"]["memory_in_use_bytes"], 0, "{health}");
    assert_eq!(health["renders"]["waiting"], 0, "{health}");
}
