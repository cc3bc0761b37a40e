//! `td demo`: a two-node appliance on this machine, with a few sample artworks mirrored on both
//! nodes, run the way a real cluster runs (a `CLUSTER.toml`, disks with identities, catalogs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use backend::replica::{self, Sources};
use backend::{CatalogStart, Node};
use cluster::ClusterConfig;
use tiler::TileOptions;

use crate::samples::{Sample, SAMPLES};

/// The demo's two nodes, in two power domains, each with two disks (folders).
const NODES: [&str; 2] = ["node-a", "node-b"];
const DISKS_PER_NODE: usize = 2;

/// Render and tile a few built-in sample artworks, place a replica of each on two demo nodes,
/// then serve both on this machine.
///
/// The first run renders the samples and tiles them (a minute or less); later runs reuse them.
/// Everything lives under --data: the originals, `cluster.toml`, and each node's disks and
/// state. Stop it with Ctrl-C.
#[derive(clap::Args)]
pub struct Args {
    /// Where the demo keeps its originals, configuration, disks and node state.
    #[arg(long, default_value = "demo-data")]
    data: PathBuf,
    /// Address of the first node, the one to open (loopback by default: the demo is for this
    /// machine). Port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the second node, which holds the other replica of every image [default: the
    /// next port after --listen].
    #[arg(long)]
    second: Option<SocketAddr>,
    /// Prepare everything (samples, disks, `cluster.toml` with these addresses) and exit,
    /// printing how to start each node with `td backend`.
    #[arg(long)]
    prepare: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let second = args.second.unwrap_or_else(|| {
        let mut s = args.listen;
        if s.port() != 0 {
            s.set_port(s.port().wrapping_add(1));
        }
        s
    });
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    let data = args
        .data
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.data.display()))?;
    // Bound first, so that the configuration names the ports really in use.
    let listeners = [args.listen, second].map(|addr| {
        std::net::TcpListener::bind(addr).with_context(|| {
            format!(
                "cannot listen on {addr} (is another demo running? try --listen 127.0.0.1:8090)"
            )
        })
    });
    let [a, b] = listeners;
    let listeners = [a?, b?];
    let addrs = [listeners[0].local_addr()?, listeners[1].local_addr()?];
    let config_path = data.join("cluster.toml");
    std::fs::write(&config_path, cluster_toml(&addrs))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = ClusterConfig::load(&config_path)?;
    // The demo's disks are folders; a real node's are mounted filesystems.
    for disk in config.nodes.iter().flat_map(|n| &n.disks) {
        std::fs::create_dir_all(&disk.path)
            .with_context(|| format!("cannot create {}", disk.path.display()))?;
    }
    for sample in &SAMPLES {
        prepare(sample, &data, &config)?;
    }
    if args.prepare {
        println!("Prepared {} ({} samples).", data.display(), SAMPLES.len());
        for (name, addr) in NODES.iter().zip(addrs) {
            println!(
                "{name} http://{addr}/  td backend --config {} --node {name}",
                config_path.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut nodes = Vec::new();
    for name in NODES {
        let (node, opening) = Node::open(&config, name, CatalogStart::Sync)?;
        for w in &opening.warnings {
            eprintln!("td demo {name}: {w}");
        }
        nodes.push(Arc::new(node));
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let stop = tokio_util::sync::CancellationToken::new();
        let mut servers = tokio::task::JoinSet::new();
        for (node, listener) in nodes.iter().zip(listeners) {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            node.start_workers();
            let stopped = stop.clone().cancelled_owned();
            servers.spawn(backend::http::serve(listener, node.clone(), stopped));
        }
        println!(
            "Tertiary Disk demo: {} images, each on both nodes: {} at http://{} and {} at http://{}",
            nodes[0].library.len(),
            NODES[0],
            addrs[0],
            NODES[1],
            addrs[1]
        );
        println!("Open http://{}/ in a browser. Stop with Ctrl-C.", addrs[0]);
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
        while servers.join_next().await.is_some() {}
        for node in &nodes {
            node.runner.shutdown(std::time::Duration::from_secs(5)).await;
            node.events.flush();
        }
        println!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The demo cluster: paths relative to the file, so the data folder can be moved.
fn cluster_toml(addrs: &[SocketAddr; 2]) -> String {
    let mut out = String::from(
        "# Written by `td demo` at every start (the addresses may change); edit a copy instead.\n\
         name = \"Tertiary Disk demo\"\n",
    );
    for (n, (name, addr)) in NODES.iter().zip(addrs).enumerate() {
        let domain = ["A", "B"][n];
        out.push_str(&format!(
            "\n[[node]]\nname = \"{name}\"\naddress = \"{addr}\"\npower_domain = \"{domain}\"\n\
             rack = \"demo\"\nstate_dir = \"{name}/state\"\n"
        ));
        for d in 1..=DISKS_PER_NODE {
            out.push_str(&format!(
                "\n[[node.disk]]\nid = \"{name}-disk{d}\"\npath = \"{name}/disk{d}\"\n\
                 serial = \"DEMO-{domain}{d}\"\n\
                 location = {{ enclosure = \"{name}-front\", slot = {d}, power_feed = \"{domain}\" }}\n"
            ));
        }
    }
    out
}

/// Renders and tiles one sample unless done before, then places its replicas: on each node,
/// on one of its disks, taking turns so both disks hold some.
fn prepare(sample: &Sample, data: &Path, config: &ClusterConfig) -> Result<()> {
    let work = data.join("originals");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let original = work.join(format!("{}.jpg", sample.id));
    let pyramid = work.join(format!("{}.tdp", sample.id));
    let thumb = tiler::default_thumbnail_path(&pyramid);
    let placed = |node: &cluster::NodeConfig| {
        node.disks.iter().any(|d| {
            d.path
                .join(backend::disk::IMAGES_DIR)
                .join(sample.id)
                .exists()
        })
    };
    if config.nodes.iter().all(placed) {
        return Ok(());
    }
    if !original.exists() {
        eprintln!(
            "rendering {} ({}×{}) …",
            sample.id, sample.width, sample.height
        );
        sample.render(&original)?;
    }
    if tiler::PyramidReader::open(&pyramid).is_err() || !thumb.exists() {
        eprintln!("tiling {} …", sample.id);
        let report = tiler::tile(
            &original,
            &pyramid,
            &thumb,
            &TileOptions::default(),
            &|_, _| {},
        )?;
        eprintln!(
            "  {} levels, {} tiles in {:.1} s",
            report.geometry.levels.len(),
            report.geometry.tile_count(),
            report.seconds
        );
    }
    let nodes: Vec<String> = config.nodes.iter().map(|n| n.name.clone()).collect();
    let turn = SAMPLES.iter().position(|s| s.id == sample.id).unwrap_or(0);
    let meta = (sample.meta)();
    for (n, node) in config.nodes.iter().enumerate() {
        if placed(node) {
            continue;
        }
        let disk = &node.disks[(turn + n) % node.disks.len()];
        backend::disk::adopt_or_check(disk, &node.name)?;
        let sources = Sources {
            original: &original,
            pyramid: &pyramid,
            thumbnail: &thumb,
            meta: &meta,
        };
        replica::place(
            &disk.path.join(backend::disk::IMAGES_DIR),
            sample.id,
            &sources,
            &nodes,
        )
        .with_context(|| format!("placing {} on disk {}", sample.id, disk.id))?;
    }
    Ok(())
}
