//! Counters of what this node serves, for `/metrics` (Prometheus text format): requests by
//! route and status, a latency histogram by route, and (given by the caller) the tile cache's
//! hits and misses.
//! Everything is a relaxed atomic add, so counting costs the request path next to nothing.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Routes as they are counted; the first path segment decides.
pub const ROUTES: [&str; 8] = [
    "tiles", "iiif", "view", "thumbs", "gallery", "site", "probe", "other",
];
/// Statuses counted on their own; the rest fall into their class ("4xx", …).
const STATUSES: [u16; 10] = [200, 303, 304, 400, 404, 405, 500, 501, 503, 0];
/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// One disk's figures for `/metrics`.
pub struct DiskGauge {
    pub id: String,
    pub failed: bool,
    /// Bytes free and in all; unknown for a failed disk (it is not asked).
    pub free: Option<u64>,
    pub total: Option<u64>,
}

#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; ROUTES.len()],
    other_status: [[AtomicU64; 5]; ROUTES.len()],
    latency: [[AtomicU64; BUCKETS.len()]; ROUTES.len()],
    latency_count: [AtomicU64; ROUTES.len()],
    latency_micros: [AtomicU64; ROUTES.len()],
    bytes: [AtomicU64; ROUTES.len()],
}

fn route_index(path: &str) -> usize {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "" => 4,
        "health" | "metrics" => 6,
        other => ROUTES.iter().position(|r| *r == other).unwrap_or(7),
    }
}

/// When a visitor was last served here (tiles, IIIF, the viewer, thumbnails), in milliseconds
/// since [`CLOCK`]: background work runs at full speed while nobody is looking.
static LAST_VISIT_MS: AtomicU64 = AtomicU64::new(0);
static CLOCK: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn clock_ms() -> u64 {
    CLOCK
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

/// How long ago a visitor was last served by this process; `None`: never.
pub fn since_last_visit() -> Option<Duration> {
    match LAST_VISIT_MS.load(Ordering::Relaxed) {
        0 => None,
        at => Some(Duration::from_millis(clock_ms().saturating_sub(at))),
    }
}

impl Metrics {
    pub fn record(&self, path: &str, status: u16, elapsed: Duration) {
        let r = route_index(path);
        if r < 4 {
            LAST_VISIT_MS.store(clock_ms(), Ordering::Relaxed);
        }
        match STATUSES.iter().position(|&s| s == status && s != 0) {
            Some(i) => self.requests[r][i].fetch_add(1, Ordering::Relaxed),
            None => self.other_status[r][(usize::from(status / 100)).clamp(1, 5) - 1]
                .fetch_add(1, Ordering::Relaxed),
        };
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency[r][i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count[r].fetch_add(1, Ordering::Relaxed);
        self.latency_micros[r].fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts the body bytes of a response to `path`.
    pub fn add_bytes(&self, path: &str, n: u64) {
        self.bytes[route_index(path)].fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(
        &self,
        images: usize,
        (cache_hits, cache_misses): (u64, u64),
        disks: &[DiskGauge],
    ) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str(
            "# HELP td_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE td_http_requests_total counter\n");
        for (r, route) in ROUTES.iter().enumerate() {
            for (i, status) in STATUSES.iter().enumerate().filter(|(_, s)| **s != 0) {
                let n = get(&self.requests[r][i]);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "td_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
            for (class, counter) in self.other_status[r].iter().enumerate() {
                let n = get(counter);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "td_http_requests_total{{route=\"{route}\",status=\"{}xx\"}} {n}",
                        class + 1
                    );
                }
            }
        }
        out.push_str("# HELP td_http_request_duration_seconds Time from request to response head, by route.\n");
        out.push_str("# TYPE td_http_request_duration_seconds histogram\n");
        for (r, route) in ROUTES.iter().enumerate() {
            let count = get(&self.latency_count[r]);
            if count == 0 {
                continue;
            }
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "td_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    get(&self.latency[r][i])
                );
            }
            let _ = writeln!(
                out,
                "td_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "td_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                get(&self.latency_micros[r]) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "td_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        out.push_str("# HELP td_http_response_bytes_total Body bytes sent, by route.\n");
        out.push_str("# TYPE td_http_response_bytes_total counter\n");
        for (r, route) in ROUTES.iter().enumerate() {
            let n = get(&self.bytes[r]);
            if n > 0 {
                let _ = writeln!(out, "td_http_response_bytes_total{{route=\"{route}\"}} {n}");
            }
        }
        out.push_str("# HELP td_tile_cache_requests_total Tile requests answered from memory (hit) or disk (miss).\n");
        out.push_str("# TYPE td_tile_cache_requests_total counter\n");
        let _ = writeln!(
            out,
            "td_tile_cache_requests_total{{result=\"hit\"}} {}",
            cache_hits
        );
        let _ = writeln!(
            out,
            "td_tile_cache_requests_total{{result=\"miss\"}} {}",
            cache_misses
        );
        out.push_str("# HELP td_images Images this node serves.\n# TYPE td_images gauge\n");
        let _ = writeln!(out, "td_images {images}");
        out.push_str("# HELP td_disk_failed Whether the disk is failed (1) or in service (0).\n# TYPE td_disk_failed gauge\n");
        for d in disks {
            let _ = writeln!(
                out,
                "td_disk_failed{{disk=\"{}\"}} {}",
                d.id,
                u8::from(d.failed)
            );
        }
        out.push_str("# HELP td_disk_free_bytes Bytes free on the disk's filesystem.\n# TYPE td_disk_free_bytes gauge\n");
        for d in disks {
            if let Some(free) = d.free {
                let _ = writeln!(out, "td_disk_free_bytes{{disk=\"{}\"}} {free}", d.id);
            }
        }
        out.push_str("# HELP td_disk_size_bytes Size of the disk's filesystem.\n# TYPE td_disk_size_bytes gauge\n");
        for d in disks {
            if let Some(total) = d.total {
                let _ = writeln!(out, "td_disk_size_bytes{{disk=\"{}\"}} {total}", d.id);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_and_status_with_cumulative_buckets() {
        let m = Metrics::default();
        m.record("/tiles/a/0/0/0.jpg", 200, Duration::from_micros(300));
        m.record("/tiles/a/0/0/0.jpg", 200, Duration::from_millis(20));
        m.record("/iiif/3/a/info.json", 404, Duration::from_micros(50));
        m.record("/nowhere", 418, Duration::from_micros(50));
        m.add_bytes("/tiles/a/0/0/0.jpg", 1000);
        m.add_bytes("/tiles/a/0/0/1.jpg", 234);
        let disks = [
            DiskGauge {
                id: "a1".into(),
                failed: false,
                free: Some(10),
                total: Some(20),
            },
            DiskGauge {
                id: "a2".into(),
                failed: true,
                free: None,
                total: None,
            },
        ];
        let text = m.render(3, (5, 1), &disks);
        assert!(text.contains("td_disk_failed{disk=\"a2\"} 1\n"), "{text}");
        assert!(text.contains("td_disk_free_bytes{disk=\"a1\"} 10\n"));
        assert!(!text.contains("td_disk_free_bytes{disk=\"a2\"}"));
        assert!(
            text.contains("td_http_requests_total{route=\"tiles\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("td_http_requests_total{route=\"iiif\",status=\"404\"} 1\n"));
        assert!(text.contains("td_http_requests_total{route=\"other\",status=\"4xx\"} 1\n"));
        assert!(text.contains(
            "td_http_request_duration_seconds_bucket{route=\"tiles\",le=\"0.0005\"} 1\n"
        ));
        assert!(text
            .contains("td_http_request_duration_seconds_bucket{route=\"tiles\",le=\"0.025\"} 2\n"));
        assert!(text.contains("td_http_request_duration_seconds_count{route=\"tiles\"} 2\n"));
        assert!(text.contains("td_images 3\n"));
        assert!(text.contains("td_http_response_bytes_total{route=\"tiles\"} 1234\n"));
        assert!(text.contains("td_tile_cache_requests_total{result=\"hit\"} 5\n"));
    }
}
