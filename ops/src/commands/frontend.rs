//! `td frontend`: one of the two redirecting frontends.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cluster::ClusterConfig;

/// Run one frontend: keep a table of every image's replicas from the backends' catalogs,
/// check every backend every second, and redirect visitors to a healthy replica; serve the
/// gallery and search. It serves at its own address, and at the canonical address while it
/// holds it: the two frontends exchange heartbeats, and the one that finds its peer gone takes
/// the address over once a majority of the backends confirm it. The one holding the address
/// also mails the weekly visit report on `[mail] report_schedule` (see `td report --help`).
#[derive(clap::Args)]
pub struct Args {
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Which frontend of the configuration this is.
    #[arg(long)]
    name: String,
    /// Listen here instead of the frontend's own configured address.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let stop = crate::stopping::StopSignal::new()?;
        let front = frontend::open(&config, &args.name)?;
        let own = args.listen.unwrap_or_else(|| {
            config
                .frontend(&args.name)
                .expect("checked by open")
                .address
        });
        let listener = tokio::net::TcpListener::bind(own)
            .await
            .with_context(|| format!("cannot listen on {own}"))?;
        let scheme = if front.tls.is_some() { "https" } else { "http" };
        println!(
            "td frontend {}: {} backends, listening on {scheme}://{}/",
            front.name,
            config.nodes.len(),
            listener.local_addr()?
        );
        // With an alias, the canonical port is served on every address from the start: the
        // moment the alias is added, visitors reach this frontend.
        let alias_port = config.canonical.filter(|_| {
            config
                .frontend(&args.name)
                .is_some_and(|f| f.interface.is_some())
        });
        if let Some(canonical) = alias_port {
            let any = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), canonical.port());
            let alias_listener = tokio::net::TcpListener::bind(any)
                .await
                .with_context(|| format!("cannot listen on {any}"))?;
            tokio::spawn(frontend::http::serve(
                alias_listener,
                front.clone(),
                std::future::pending(),
            ));
        }
        frontend::start_failover(&config, &front).await?;
        // The weekly visit report, sent by whichever frontend holds the canonical address.
        let for_report = std::sync::Arc::new(config.clone());
        frontend::report::start(
            &config,
            &front,
            std::sync::Arc::new(move || {
                let config = for_report.clone();
                Box::pin(async move { crate::commands::report::collect(&config).await })
            }),
        )?;
        let runner = front.runner.clone();
        let name = front.name.clone();
        crate::stopping::serve_until_stopped("frontend", stop, |told| {
            frontend::http::serve(listener, front, async move {
                let _ = told.await;
            })
        })
        .await;
        // Stopping the workers stops the holder, which gives the canonical address up.
        runner.shutdown(std::time::Duration::from_secs(2)).await;
        tracing::info!(frontend = %name, "stopped");
        Ok(ExitCode::SUCCESS)
    })
}
