//! `td monitor`: one node's monitor, a process of its own beside the node's backend.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

use cluster::ClusterConfig;
use monitor::detectors::process::StartCommand;
use monitor::{Monitor, Options};

/// Run one node's monitor: detectors for its disks (kernel log, probes, SMART), enclosures,
/// host, backend process and peers, each at its own interval, writing what they find into the
/// node's event log. It starts the node's backend and restarts it if it dies (unless
/// --watch-only), and serves /health, /events, /ping and /workers.
///
/// Read the events with `td events`.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Which node of the configuration this is.
    #[arg(long)]
    node: String,
    /// Listen here instead of the node's configured monitor address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Only watch the backend; never start or restart it (when something else runs it).
    #[arg(long)]
    watch_only: bool,
    /// A disk past this many percent used is reported as filling.
    #[arg(long, default_value_t = 90.0, value_parser = percent)]
    fill_warn: f64,
    /// The smartctl program (smartmontools).
    #[arg(long, default_value = "smartctl")]
    smartctl: PathBuf,
    /// The sg_ses program (sg3-utils).
    #[arg(long, default_value = "sg_ses")]
    sg_ses: PathBuf,
    /// An enclosure's SES device (/dev/sgN) to ask; repeat for more. Default: those listed in
    /// /sys/class/enclosure.
    #[arg(long = "enclosure")]
    enclosures: Vec<PathBuf>,
    /// The kernel log to follow.
    #[arg(long, default_value = "/dev/kmsg")]
    kernel_log: PathBuf,
    /// A frontend that runs on this host: if it dies holding the canonical address as an
    /// alias, the alias is removed at once. Repeat for more.
    #[arg(long = "frontend", value_name = "NAME")]
    frontends: Vec<String>,
}

fn percent(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (1.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err("a percentage from 1 to 100".into())
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    for name in &args.frontends {
        if !config.frontends.iter().any(|f| &f.name == name) {
            anyhow::bail!(
                "--frontend {name}: no frontend of that name in {}",
                args.config.display()
            );
        }
    }
    let backend = if args.watch_only {
        None
    } else {
        let exe = std::env::current_exe().context("cannot find the td program itself")?;
        Some(StartCommand {
            program: exe,
            args: vec![
                "backend".into(),
                "--config".into(),
                args.config.display().to_string(),
                "--node".into(),
                args.node.clone(),
            ],
        })
    };
    let options = Options {
        backend,
        smartctl: args.smartctl,
        sg_ses: args.sg_ses,
        enclosures: args.enclosures,
        kernel_log: args.kernel_log,
        fill_warn_percent: args.fill_warn,
        frontends: args.frontends,
    };
    let monitor = Arc::new(Monitor::open(&config, &args.node, options)?);
    let listen = args.listen.unwrap_or(monitor.node.monitor_address());
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let stop = crate::stopping::StopSignal::new()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (the node's monitor address)"))?;
        println!(
            "td monitor {}: {} disks, listening on http://{}/",
            monitor.node.name,
            monitor.node.disks.len(),
            listener.local_addr()?
        );
        monitor.start();
        let served = monitor.clone();
        crate::stopping::serve_until_stopped("monitor", stop, |told| {
            monitor::http::serve(listener, served, async move {
                let _ = told.await;
            })
        })
        .await;
        monitor.shutdown().await;
        tracing::info!(node = %monitor.node.name, "stopped");
        Ok(ExitCode::SUCCESS)
    })
}
