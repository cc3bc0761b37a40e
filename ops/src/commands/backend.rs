//! `td backend`: one node's image server, over the disks the cluster configuration gives it.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use backend::{CatalogStart, Node};
use cluster::ClusterConfig;

/// Run one node's image server: adopt or recognise each of its disks, bring its catalog up to
/// date with what they hold, then serve the images on them (viewer, tiles, IIIF, thumbnails;
/// the catalog for frontends; health, metrics, events and workers for operators).
///
/// A disk that is not the configured one, or holds unknown files, is reported and left alone;
/// the node serves from the others.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Which node of the configuration this is.
    #[arg(long)]
    node: String,
    /// Listen here instead of the node's configured address (e.g. 127.0.0.1:0 for any port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Throw the catalog away and rebuild it from the disks, then serve. (A missing or damaged
    /// catalog is rebuilt without asking.)
    #[arg(long)]
    rebuild_catalog: bool,
    /// Check the stopped node instead of serving: every replica in the catalog is read and
    /// hashed against its manifest, and every replica on the disks must be in the catalog.
    /// Changes nothing. Exits 1 if anything disagrees.
    #[arg(long, conflicts_with_all = ["rebuild_catalog", "listen"])]
    audit: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    if args.audit {
        return audit(&config, &args.node);
    }
    let start = if args.rebuild_catalog {
        CatalogStart::Rebuild
    } else {
        CatalogStart::Sync
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    // Before anything else, so that a SIGTERM from now on stops the node in order.
    let stop = runtime.block_on(async { crate::stopping::StopSignal::new() })?;
    let (node, opening) = Node::open(&config, &args.node, start)?;
    let name = node.config.name.clone();
    for w in &opening.warnings {
        tracing::warn!(node = %name, "{w}");
    }
    if let Some(why) = &opening.rebuilt {
        let s = &opening.sync;
        tracing::warn!(
            node = %name,
            replicas = s.added,
            unreadable = s.unreadable.len(),
            "catalog rebuilt from the disks ({why})"
        );
    }
    if node.library.disks().is_empty() {
        tracing::warn!(node = %name, "no usable disk; serving nothing");
    }
    let listen = args.listen.unwrap_or(node.config.address);
    // Uploads are tiled by this same program (`td tile`), as a child held to the node's limits.
    let program =
        std::env::current_exe().context("cannot find this program to tile uploads with")?;
    node.ingest.tile_in(backend::ingest::tiling::Tiler::Child {
        program,
        memory_bytes: node
            .config
            .tile_memory_mb
            .unwrap_or(backend::ingest::tiling::DEFAULT_TILE_MEMORY_MB)
            .saturating_mul(1 << 20),
        time: node
            .config
            .tile_minutes
            .map_or(backend::ingest::tiling::DEFAULT_TILE_TIME, |m| {
                std::time::Duration::from_secs(m.saturating_mul(60))
            }),
    });
    let node = Arc::new(node);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let scheme = if node.tls.is_some() { "https" } else { "http" };
        println!(
            "td backend {name}: {} images on {} disks, listening on {scheme}://{}/",
            node.library.len(),
            node.library.disks().len(),
            listener.local_addr()?
        );
        node.start_workers();
        let runner = node.runner.clone();
        let events = node.events.clone();
        let catalog = node.catalog.clone();
        crate::stopping::serve_until_stopped("backend", stop, |told| {
            backend::http::serve(listener, node, async move {
                let _ = told.await;
            })
        })
        .await;
        runner.shutdown(Duration::from_secs(5)).await;
        catalog.flush();
        events.flush();
        tracing::info!(node = %name, "stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn audit(config: &ClusterConfig, name: &str) -> Result<ExitCode> {
    let tty = std::io::stderr().is_terminal();
    let mut last = Instant::now();
    let started = Instant::now();
    let mut progress = |done: u64, total: u64| {
        if tty && last.elapsed() > Duration::from_millis(200) {
            last = Instant::now();
            let pct = (done * 100).checked_div(total).unwrap_or(100);
            eprint!(
                "\raudit {name}: {pct}% ({} of {} MiB)",
                done >> 20,
                total >> 20
            );
        }
    };
    let report = match backend::node::audit(config, name, &mut progress) {
        // The node runs and holds its catalog: read it over HTTP instead.
        Err(backend::node::NodeError::Catalog(backend::catalog::CatalogError::Store(
            floor::store::StoreError::Locked { .. },
        ))) => {
            let node = config
                .node(name)
                .context("the node is in the configuration")?;
            let url = format!("{}/catalog?since=0", node.origin());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let page: cluster::CatalogPage = runtime
                .block_on(floor::Client::new().get_json(&url, Duration::from_secs(60), 1 << 30))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "node {name} runs (its catalog is in use by another process), and its \
                         catalog cannot be read from {url}: {e}"
                    )
                })?;
            println!("node {name} runs: its catalog read from {url}");
            backend::node::audit_running(config, name, page.entries, &mut progress)?
        }
        other => other?,
    };
    if tty {
        eprint!("\r\x1b[K");
    }
    for p in &report.problems {
        println!("problem: {p}");
    }
    println!(
        "audit {name}: {} replicas, {} MiB read and hashed in {:.1} s: {}",
        report.replicas,
        report.bytes >> 20,
        started.elapsed().as_secs_f64(),
        if report.problems.is_empty() {
            "all agree with the catalog".to_string()
        } else {
            format!("{} problems", report.problems.len())
        }
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
