//! `td status`: the cluster at a glance, asked of every node: its disks, its catalog (every
//! replica it holds, with its state) and its re-mirroring; each image counted by the one rule
//! in `cluster::redundancy`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use cluster::redundancy::{
    classify, ClusterStatus, DiskStatus, ImageHealth, ImageProblem, NodeStatus, RemirrorStatus,
    Seen,
};
use cluster::{CatalogPage, ClusterConfig, ReplicaState};

/// Show the cluster at a glance: nodes and disks with their state; images in total, healthy
/// (two readable replicas in two power domains), under-replicated (naming what was lost),
/// being repaired (with progress and time left) and lost (no replica readable).
///
/// Exit status: 0 when every image is healthy, 1 when some are not, 2 when no node answered.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// One JSON object (keys images, healthy, under_replicated, repairing, lost, nodes,
    /// problems, repairs, waiting) instead of text.
    #[arg(long)]
    json: bool,
}

const ASK: Duration = Duration::from_secs(5);

/// Asks every node and counts.
pub async fn gather(config: &ClusterConfig) -> ClusterStatus {
    let client = floor::Client::new();
    let asks = config.nodes.iter().map(|n| {
        let (client, origin) = (client.clone(), n.origin());
        async move {
            let health: Result<serde_json::Value, _> = client
                .get_json(&format!("{origin}/health"), ASK, 4 << 20)
                .await;
            let catalog: Result<CatalogPage, _> = client
                .get_json(
                    &format!("{origin}/catalog?since=0&files=false"),
                    ASK * 6,
                    1 << 30,
                )
                .await;
            let remirror: Option<RemirrorStatus> = client
                .get_json(&format!("{origin}/redundancy"), ASK, 4 << 20)
                .await
                .ok();
            (health, catalog, remirror)
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    let mut status = ClusterStatus {
        cluster: config.name.clone(),
        ..ClusterStatus::default()
    };
    // image → its replicas: (node, disk, state, node up), and the nodes its sets name.
    let mut images: BTreeMap<String, Vec<(String, String, ReplicaState, bool)>> = BTreeMap::new();
    let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (node, (health, catalog, remirror)) in config.nodes.iter().zip(answers) {
        let up = catalog.is_ok();
        let mut ns = NodeStatus {
            name: node.name.clone(),
            power_domain: node.power_domain.clone(),
            up,
            error: catalog.as_ref().err().map(ToString::to_string),
            ..NodeStatus::default()
        };
        if let Ok(h) = &health {
            ns.images = h["images"].as_u64().unwrap_or(0) as usize;
            for d in h["disks"].as_array().into_iter().flatten() {
                ns.disks.push(DiskStatus {
                    id: d["id"].as_str().unwrap_or("?").to_string(),
                    state: d["state"].as_str().unwrap_or("?").to_string(),
                    error: d["error"].as_str().map(str::to_string),
                    free_bytes: d["free_bytes"].as_u64(),
                });
            }
        } else {
            ns.disks = node
                .disks
                .iter()
                .map(|d| DiskStatus {
                    id: d.id.clone(),
                    state: "unknown (node silent)".into(),
                    ..DiskStatus::default()
                })
                .collect();
        }
        // What a silent node holds is known from its partners' sets, below.
        if let Ok(page) = catalog {
            for e in page.entries {
                named.entry(e.id.clone()).or_default().extend(e.nodes);
                images
                    .entry(e.id)
                    .or_default()
                    .push((node.name.clone(), e.disk, e.state, true));
            }
        }
        if let Some(r) = remirror {
            status.repairs.extend(r.jobs);
            status.waiting.extend(r.waiting);
        }
        status.nodes.push(ns);
    }
    // Replicas on silent nodes, from the sets their partners name.
    let silent: Vec<&str> = status
        .nodes
        .iter()
        .filter(|n| !n.up)
        .map(|n| n.name.as_str())
        .collect();
    let domain_of = |n: &str| config.node(n).map(|c| c.power_domain.as_str());
    for (id, replicas) in images.iter_mut() {
        let names = named.get(id).cloned().unwrap_or_default();
        for s in silent.iter().filter(|s| names.iter().any(|n| n == *s)) {
            if !replicas.iter().any(|r| r.0 == *s) {
                replicas.push((s.to_string(), "?".into(), ReplicaState::Ok, false));
            }
        }
    }
    let repairing: std::collections::BTreeSet<&str> =
        status.repairs.iter().map(|j| j.image.as_str()).collect();
    for (id, replicas) in &images {
        let seen: Vec<Seen> = replicas
            .iter()
            .map(|(node, disk, state, up)| Seen {
                node,
                disk,
                state,
                node_up: *up,
            })
            .collect();
        let health = classify(&seen, domain_of);
        match &health {
            ImageHealth::Deleted => {
                status.deleted += 1;
                continue;
            }
            _ if seen.iter().all(|s| s.state.gone()) => continue,
            ImageHealth::Healthy => status.healthy += 1,
            ImageHealth::UnderReplicated { .. } => {
                status.under_replicated += 1;
                if repairing.contains(id.as_str()) {
                    status.repairing += 1;
                }
            }
            ImageHealth::Lost { .. } => status.lost += 1,
        }
        status.images += 1;
        if health != ImageHealth::Healthy {
            status.problems.push(ImageProblem {
                image: id.clone(),
                readable_on: seen
                    .iter()
                    .filter(|s| s.node_up && s.state.servable())
                    .map(|s| s.node.to_string())
                    .collect(),
                health,
            });
        }
    }
    status
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(gather(&config));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", text(&status));
    }
    Ok(if status.nodes.iter().all(|n| !n.up) {
        ExitCode::from(2)
    } else if status.healthy == status.images {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn text(s: &ClusterStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "cluster {}", s.cluster);
    for n in &s.nodes {
        let state = if n.up { "up" } else { "SILENT" };
        let _ = writeln!(
            out,
            "  node {} (power domain {}): {state}, {} images",
            n.name, n.power_domain, n.images
        );
        if let Some(e) = n.error.as_ref().filter(|_| !n.up) {
            let _ = writeln!(out, "    {e}");
        }
        for d in &n.disks {
            let free = d
                .free_bytes
                .map(|b| format!(", {} free", super::human_bytes(b)))
                .unwrap_or_default();
            let err = d
                .error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            let _ = writeln!(out, "    disk {}: {}{free}{err}", d.id, d.state);
        }
    }
    let _ = writeln!(
        out,
        "images: {} in all, {} healthy, {} under-replicated ({} being repaired), {} lost{}",
        s.images,
        s.healthy,
        s.under_replicated,
        s.repairing,
        s.lost,
        if s.deleted > 0 {
            format!("; {} withdrawn", s.deleted)
        } else {
            String::new()
        }
    );
    for p in &s.problems {
        let what = match &p.health {
            ImageHealth::UnderReplicated { lost } => {
                format!("under-replicated: lost {}", lost.join("; "))
            }
            ImageHealth::Lost { lost } => format!("LOST: {}", lost.join("; ")),
            other => format!("{other:?}"),
        };
        let on = if p.readable_on.is_empty() {
            String::new()
        } else {
            format!(" (readable on {})", p.readable_on.join(", "))
        };
        let _ = writeln!(out, "  {}: {what}{on}", p.image);
    }
    for j in &s.repairs {
        let pct = (j.bytes_done * 100).checked_div(j.bytes_total).unwrap_or(0);
        let eta = j
            .eta_seconds()
            .map(|e| format!(", about {e} s left"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  repairing {}: {} → {}, {}: {pct}% of {}{eta}",
            j.image,
            j.lost,
            j.target.as_deref().unwrap_or("(target not chosen yet)"),
            j.step,
            super::human_bytes(j.bytes_total)
        );
    }
    for w in &s.waiting {
        let why = match &w.blocked {
            Some(b) => format!("blocked: {b}"),
            None => format!("copied in {} s (grace period)", w.in_seconds),
        };
        let _ = writeln!(out, "  {}: lost {}; {why}", w.image, w.lost);
    }
    out
}
