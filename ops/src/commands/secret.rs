//! `td secret`: the cluster's shared secret.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use cluster::ClusterConfig;

/// Make the cluster's shared secret (32 random bytes, readable by its owner only) at
/// `secret_file` of the configuration (default `cluster.secret` next to it), unless it exists.
/// Every backend and frontend needs the same file: it signs the backends' internal API (no
/// anonymous writes) and the portal's sessions. Without it a node takes no uploads.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    let path = config.secret_path();
    let existed = path.exists();
    floor::secret_file::create(&path)?;
    if existed {
        println!("{} exists; kept as it is", path.display());
    } else {
        println!(
            "made {}; copy it to every node and frontend (same path)",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
