//! `td remirror`: what re-mirroring does on each node, and the operator's throttle.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cluster::redundancy::RemirrorStatus;
use cluster::ClusterConfig;
use floor::client::Call;

/// Show each node's re-mirroring (copies under way, waiting, done), or change how fast it may
/// read and send: `--throttle 50MB` (bytes per second; k, M, G suffixes, decimal) or
/// `--throttle off` (as fast as the disks go). The setting is kept across restarts.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Only this node (default: all).
    #[arg(long)]
    node: Option<String>,
    /// The new limit per node, in bytes per second, or `off`.
    #[arg(long)]
    throttle: Option<String>,
}

fn rate(s: &str) -> Result<Option<u64>> {
    if s.eq_ignore_ascii_case("off") || s == "0" {
        return Ok(None);
    }
    let s = s.trim_end_matches(['B', 'b', '/', 's']);
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        Some('g' | 'G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("--throttle {s:?}: give bytes per second (50M, 200k) or off"))?;
    if n.is_nan() || n <= 0.0 {
        bail!("--throttle must be more than 0 (or off)");
    }
    Ok(Some((n * mult as f64) as u64))
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    let nodes: Vec<_> = match &args.node {
        Some(n) => vec![config
            .node(n)
            .with_context(|| format!("node '{n}' is not in {}", args.config.display()))?
            .clone()],
        None => config.nodes.clone(),
    };
    let throttle = args.throttle.as_deref().map(rate).transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut failures = 0;
        let client = match throttle {
            Some(_) => {
                let secret = cluster::auth::Secret::load(&config.secret_path()).map_err(|e| {
                    anyhow::anyhow!("the cluster secret is needed to change the throttle: {e}")
                })?;
                let origins = config
                    .nodes
                    .iter()
                    .map(|n| (n.name.clone(), n.origin()))
                    .collect();
                floor::Client::signed(Ok(secret), origins)
            }
            None => floor::Client::new(),
        };
        for node in &nodes {
            let answer: Result<RemirrorStatus, _> = match throttle {
                Some(limit) => {
                    let body = serde_json::json!({ "bytes_per_second": limit }).to_string();
                    client
                        .call_json(
                            &node.name,
                            Call::new("PUT", "/internal/remirror/throttle").body(body.into()),
                            Duration::from_secs(10),
                        )
                        .await
                }
                None => {
                    client
                        .get_json(
                            &format!("{}/redundancy", node.origin()),
                            Duration::from_secs(10),
                            4 << 20,
                        )
                        .await
                }
            };
            match answer {
                Ok(s) => println!("{}", line(&s)),
                Err(e) => {
                    failures += 1;
                    println!("{}: {e}", node.name);
                }
            }
        }
        Ok(if failures == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

fn line(s: &RemirrorStatus) -> String {
    let limit = s.throttle_bytes_per_second.map_or_else(
        || "no limit".to_string(),
        |b| format!("at most {}/s", super::human_bytes(b)),
    );
    let mut out = format!(
        "{}: {} copies under way, {} waiting, {} copied ({}), {} trimmed; throttle: {limit}",
        s.node,
        s.jobs.len(),
        s.waiting.len(),
        s.copied,
        super::human_bytes(s.copied_bytes),
        s.trimmed
    );
    for j in &s.jobs {
        out.push_str(&format!(
            "\n  {} → {}: {} ({} of {})",
            j.image,
            j.target.as_deref().unwrap_or("?"),
            j.step,
            super::human_bytes(j.bytes_done),
            super::human_bytes(j.bytes_total)
        ));
    }
    out
}
