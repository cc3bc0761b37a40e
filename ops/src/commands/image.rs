//! `td image rm`: an operator withdraws an image from the whole cluster.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use cluster::ClusterConfig;
use floor::client::Call;

/// Act on one image of the cluster.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster configuration (TOML); before or after the action.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Withdraw an image: every node removes its replica and keeps a tombstone, so that a
    /// returning disk, a re-mirror or a rebuilt catalog never brings it back. The frontends
    /// stop listing and redirecting it within seconds. It cannot be undone (upload the
    /// original again to bring the picture back, under a new id).
    Rm {
        /// The image id (as in /images/ID).
        id: String,
        /// Do it: without this, only say what would be removed.
        #[arg(long)]
        yes: bool,
    },
}

pub fn run(args: Args) -> Result<ExitCode> {
    let Some(config) = &args.config else {
        bail!("which cluster? give --config CLUSTER.toml");
    };
    let config = ClusterConfig::load(config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    let Action::Rm { id, yes } = args.action;
    if !cluster::valid_image_id(&id) {
        bail!("'{id}' is not an image id");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(remove(&config, &id, yes))
}

async fn remove(config: &ClusterConfig, id: &str, yes: bool) -> Result<ExitCode> {
    let status = super::status::gather(config).await;
    let holders: Vec<String> = status
        .nodes
        .iter()
        .filter(|n| n.up)
        .map(|n| n.name.clone())
        .collect();
    if !yes {
        println!(
            "td image rm {id}: would withdraw it on every node that answers ({}); add --yes to do it",
            holders.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let secret = cluster::auth::Secret::load(&config.secret_path())
        .map_err(|e| anyhow::anyhow!("the cluster secret is needed to withdraw an image: {e}"))?;
    let origins = config
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.origin()))
        .collect();
    let client = floor::Client::signed(Ok(secret), origins);
    let path = format!("/internal/images/{id}/delete");
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for node in &config.nodes {
        match client
            .call(
                &node.name,
                Call::new("POST", &path),
                Duration::from_secs(30),
            )
            .await
        {
            Ok(_) => done.push(node.name.clone()),
            Err(e) => failed.push(format!("{}: {e}", node.name)),
        }
    }
    if done.is_empty() {
        bail!("no node withdrew {id}:\n  {}", failed.join("\n  "));
    }
    println!("{id} withdrawn on {} (tombstones kept)", done.join(", "));
    if !failed.is_empty() {
        println!(
            "not reached, they remove their replica when they answer again (the others' tombstones tell them):\n  {}",
            failed.join("\n  ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
