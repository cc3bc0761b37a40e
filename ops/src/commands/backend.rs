//! `td backend`: one node's image server, over the disks the cluster configuration gives it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use std::time::Duration;

use backend::disk::{self, Disk};
use backend::disk_probe::DiskProbe;
use backend::worker::Runner;
use backend::Library;
use cluster::ClusterConfig;

/// Run one node's image server: adopt or recognise each of its disks, then serve the images
/// on them (viewer, tiles, IIIF, thumbnails, health, metrics).
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
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    let Some(node) = config.node(&args.node) else {
        let known: Vec<_> = config.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "no node '{}' in {} (it has: {})",
            args.node,
            args.config.display(),
            known.join(", ")
        );
    };
    let mut disks = Vec::new();
    for d in &node.disks {
        match disk::adopt_or_check(d, &node.name) {
            Ok(_) => disks.push(Arc::new(Disk::new(d.clone()))),
            Err(e) => eprintln!("td backend: {e}"),
        }
    }
    let disk_count = disks.len();
    if disks.is_empty() {
        eprintln!(
            "td backend: warning: node {} has no usable disk; serving nothing",
            node.name
        );
    }
    let (library, problems) = Library::open_disks(disks);
    for p in problems {
        eprintln!("td backend: skipping: {p}");
    }
    let library = Arc::new(library);
    let listen = args.listen.unwrap_or(node.address);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        println!(
            "td backend {}: {} images on {} disks, listening on http://{}/",
            node.name,
            library.len(),
            disk_count,
            listener.local_addr()?
        );
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        // Every disk is watched by its probe worker while the node serves.
        let runner = Runner::new();
        for disk in library.disks() {
            runner.spawn(DiskProbe::new(disk.clone()));
        }
        backend::http::serve(listener, library, Vec::new(), runner.clone(), shutdown).await;
        runner.shutdown(Duration::from_secs(5)).await;
        Ok(ExitCode::SUCCESS)
    })
}
