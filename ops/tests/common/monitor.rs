//! Running `td monitor` in tests and reading its events.

use std::path::Path;
use std::time::{Duration, Instant};

use cluster::{Event, EventKind};

use super::{get, start_td, Backend};

/// A free loopback address (bound, then let go), never one this process was given before: a
/// port bound and dropped can come back at the very next bind, and two processes of one test
/// on one port fail to start.
pub fn free_addr() -> String {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr.to_string();
        }
    }
}

/// Starts `td monitor --config config --node node EXTRA…`; its address is `.addr`.
pub fn start_monitor(config: &Path, node: &str, extra: &[&str]) -> Backend {
    let c = config.to_str().unwrap();
    let mut args = vec!["monitor", "--config", c, "--node", node];
    args.extend_from_slice(extra);
    start_td(
        &args,
        &config.with_extension(format!("{node}.monitor.stderr")),
    )
}

pub fn events(addr: &str) -> Vec<Event> {
    let (status, _, body) = get(addr, "/events?since=0&limit=10000");
    assert_eq!(status, 200);
    let page: cluster::EventPage = serde_json::from_slice(&body).unwrap();
    page.events
}

pub fn health(addr: &str) -> serde_json::Value {
    serde_json::from_slice(&get(addr, "/health").2).unwrap()
}

/// The status of detector `name` in the monitor's `/health`.
pub fn detector(addr: &str, name: &str) -> serde_json::Value {
    let h = health(addr);
    h["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no detector {name} in {h}"))
        .clone()
}

/// Waits until the probe of `disk` has run `rounds` more times.
pub fn probe_rounds(addr: &str, disk: &str, rounds: u64) {
    let name = format!("disk probe {disk}");
    let runs = |addr: &str| detector(addr, &name)["runs"].as_u64().unwrap();
    let from = runs(addr);
    wait_until(
        &format!("{rounds} more rounds of {name}"),
        Duration::from_secs(10),
        || (runs(addr) >= from + rounds).then_some(()),
    );
}

/// Polls every 10 ms until `ok` holds, at most `limit`; panics with `what` otherwise.
pub fn wait_until<T>(what: &str, limit: Duration, mut ok: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = ok() {
            return v;
        }
        assert!(Instant::now() < until, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A point in the event log: what was there before a fault was caused.
pub struct Mark(Vec<Event>);

impl Mark {
    /// Before anything: every event is news.
    pub fn empty() -> Mark {
        Mark(Vec::new())
    }

    pub fn now(addr: &str) -> Mark {
        Mark(events(addr))
    }

    /// Whether `e` is news since the mark: a new event, or one seen again (its count grew).
    pub fn is_news(&self, e: &Event) -> bool {
        self.0
            .iter()
            .find(|b| b.id == e.id)
            .is_none_or(|b| e.count > b.count)
    }
}

/// Waits for news of `kind` about which `about` accepts, at most 20 s; returns it and how long
/// after `since` it was seen (the poll adds at most 10 ms).
pub fn wait_event(
    addr: &str,
    mark: &Mark,
    kind: EventKind,
    since: Instant,
    about: impl Fn(&Event) -> bool,
) -> (Event, Duration) {
    wait_until(
        &format!("a {kind:?} event"),
        Duration::from_secs(20),
        || {
            events(addr)
                .into_iter()
                .find(|e| e.kind == kind && about(e) && mark.is_news(e))
                .map(|e| (e, since.elapsed()))
        },
    )
}

/// How many times to cause each fault (`TD_TRIALS`, default 1; `bench/detection` asks for 10).
pub fn trials() -> usize {
    std::env::var("TD_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1)
}

/// Prints the median, min and max of `latencies` as `bench/detection` reads them.
pub fn report(fault: &str, latencies: &mut [Duration]) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "detection latency {fault}: median {:.0} ms, min {:.0} ms, max {:.0} ms over {} trials",
        ms(latencies[latencies.len() / 2]),
        ms(latencies[0]),
        ms(latencies[latencies.len() - 1]),
        latencies.len()
    );
}

pub fn disk_is(e: &Event, disk: &str) -> bool {
    e.component == cluster::Component::Disk { disk: disk.into() }
}

/// Writes an executable shell script (a stand-in for smartctl or sg_ses) at `path`.
pub fn script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
