//! `td events`: what the nodes recorded (their monitors' and backends' event logs), merged in
//! time order, asked over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use cluster::{ClusterConfig, Event, EventPage};

/// Show the events the nodes recorded: failed, hung or missing disks, kernel errors, SMART and
/// enclosure warnings, full disks, dead or hung processes, silent peers. Each node's monitor and
/// backend are asked; a fault that goes on is one line with a count.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Only this node (default: all).
    #[arg(long)]
    node: Option<String>,
    /// Only events seen since then: a duration ago (`90s`, `10m`, `2h`, `3d`), or a time
    /// (`2026-11-23T20:00:00Z`, `2026-11-23 20:00:00` in UTC). Default: the last 50 of each log.
    #[arg(long)]
    since: Option<String>,
    /// Keep printing new events as they are recorded (Ctrl-C to stop).
    #[arg(long, short)]
    follow: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

/// Where events come from: a node's monitor or backend.
struct Source {
    node: String,
    role: &'static str,
    addr: SocketAddr,
    next: u64,
    warned: bool,
}

/// Seconds since the Unix epoch for `--since`.
fn since_time(s: &str, now: SystemTime) -> Result<u64> {
    let at = if let Ok(ago) = humantime::parse_duration(s) {
        now - ago
    } else if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        t
    } else {
        bail!("--since {s:?}: give a duration (10m, 2h, 3d) or a UTC time (2026-11-23T20:00:00Z)")
    };
    Ok(at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    let nodes: Vec<_> = match &args.node {
        Some(name) => vec![config
            .node(name)
            .with_context(|| format!("node '{name}' is not in {}", args.config.display()))?],
        None => config.nodes.iter().collect(),
    };
    let from = args
        .since
        .as_deref()
        .map(|s| since_time(s, SystemTime::now()))
        .transpose()?;
    let mut sources: Vec<Source> = nodes
        .iter()
        .flat_map(|n| {
            [("monitor", n.monitor_address()), ("backend", n.address)].map(|(role, addr)| Source {
                node: n.name.clone(),
                role,
                addr,
                next: 0,
                warned: false,
            })
        })
        .collect();
    let racks: std::collections::HashMap<String, String> = config
        .nodes
        .iter()
        .filter(|n| !n.rack.is_empty())
        .map(|n| (n.name.clone(), n.rack.clone()))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let first = fetch_all(&mut sources, |_| match from {
            Some(t) => format!("/events?since=0&from={t}&limit=10000"),
            None => "/events?limit=50".to_string(),
        })
        .await;
        let answered = sources.iter().any(|s| !s.warned);
        print_events(first, args.json, &racks);
        if !args.follow {
            return Ok(if answered {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let new = fetch_all(&mut sources, |s| {
                format!("/events?since={}&limit=10000", s.next)
            })
            .await;
            print_events(new, args.json, &racks);
        }
    })
}

/// Asks every source; says once on stderr which cannot be reached.
async fn fetch_all(sources: &mut [Source], path: impl Fn(&Source) -> String) -> Vec<Event> {
    let mut all = Vec::new();
    let client = floor::Client::new();
    for s in sources.iter_mut() {
        let got = client
            .get_at(s.addr, &path(s), Duration::from_secs(2))
            .await
            .map_err(|e| e.to_string())
            .and_then(|a| {
                if a.status != 200 {
                    return Err(format!("answered {}", a.status));
                }
                serde_json::from_slice::<EventPage>(&a.body)
                    .map_err(|e| format!("not an event page: {e}"))
            });
        match got {
            Ok(page) => {
                if s.warned {
                    eprintln!("td events: the {} of {} answers again", s.role, s.node);
                    s.warned = false;
                }
                s.next = s.next.max(page.next);
                all.extend(page.events);
            }
            Err(e) if !s.warned => {
                eprintln!(
                    "td events: cannot ask the {} of {} at http://{}/: {e}",
                    s.role, s.node, s.addr
                );
                s.warned = true;
            }
            Err(_) => {}
        }
    }
    all.sort_by_key(|e| (e.time, e.node.clone(), e.id));
    all
}

/// Prints events for people (or as JSON lines); `racks` says where each node stands.
fn print_events(events: Vec<Event>, json: bool, racks: &std::collections::HashMap<String, String>) {
    for e in events {
        if json {
            println!("{}", serde_json::to_string(&e).expect("plain data"));
            continue;
        }
        let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(e.time));
        let component = serde_json::to_value(&e.component).expect("plain data");
        let what = component
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| match (k.as_str(), v.as_str()) {
                        ("component", Some(c)) => c.to_string(),
                        (_, Some(v)) => v.to_string(),
                        _ => String::new(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let kind = serde_json::to_value(e.kind).expect("plain data");
        let count = if e.count > 1 {
            let last =
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(e.last_seen));
            format!(" (×{}, last {last})", e.count)
        } else {
            String::new()
        };
        println!(
            "{when} {} {} {what}: {}{count}\n    {}",
            e.node,
            e.source,
            kind.as_str().unwrap_or("?"),
            e.summary
        );
        let mut place = Vec::new();
        if let Some(rack) = racks
            .get(&e.node)
            .filter(|_| e.location.is_some() || e.serial.is_some())
        {
            place.push(format!("rack {rack}, node {}", e.node));
        }
        if let Some(serial) = &e.serial {
            place.push(format!("serial {serial}"));
        }
        if let Some(l) = &e.location {
            let fields = serde_json::to_value(l).expect("plain data");
            for (k, v) in fields.as_object().into_iter().flatten() {
                if !v.is_null() {
                    place.push(format!(
                        "{} {}",
                        k.replace('_', " "),
                        v.to_string().trim_matches('"')
                    ));
                }
            }
        }
        if !place.is_empty() {
            println!("    at {}", place.join(", "));
        }
        for line in &e.evidence {
            println!("    | {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(since_time("10m", now).unwrap(), 1_800_000_000 - 600);
        assert_eq!(since_time("2h", now).unwrap(), 1_800_000_000 - 7200);
        assert_eq!(
            since_time("2026-11-23T20:00:00Z", now).unwrap(),
            1_795_464_000
        );
        assert_eq!(
            since_time("2026-11-23 20:00:00", now).unwrap(),
            1_795_464_000
        );
        assert!(since_time("yesterday-ish", now).is_err());
    }
}
