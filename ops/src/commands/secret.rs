//! `td secret`: the cluster's shared secret: made once on the first host, then fetched by each
//! other host with a join code instead of being copied by hand ([`cluster::join`]).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use cluster::auth::Secret;
use cluster::join::{JoinCode, JoinReply, JOIN_PATH, MAX_VALID_SECS};
use cluster::ClusterConfig;
use floor::secret_file::Installed;

/// The cluster's shared secret. Every backend, frontend and monitor needs the same one: it
/// signs the backends' internal API (no anonymous writes), the portal's sessions and the
/// frontends' heartbeats.
///
/// `td secret --config C` makes it on the first host (32 random bytes, readable by its owner
/// only, at `secret_file` of the configuration, default `cluster.secret` next to it), unless it
/// exists. Every other host gets it over the network: `td secret invite NAME` on a host that
/// has it prints a join code valid for an hour; `td secret join` on host NAME asks the nodes
/// for the secret with that code. The secret travels sealed for the code, so neither the
/// network nor a node of another cluster learns it.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Print a join code with which host NAME can fetch the secret (run where the secret is).
    Invite {
        /// The cluster configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The host the code is for: a node's or frontend's name.
        name: String,
        /// How long the code works: "1h" (the default), "30m", up to "7d".
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        valid: Duration,
    },
    /// Fetch the secret from the cluster's nodes with a join code, and write it here.
    Join {
        /// The cluster configuration (TOML); the secret is written at its `secret_file`.
        #[arg(long)]
        config: PathBuf,
        /// The code `td secret invite` printed. Without it, it is read from standard input
        /// (so it stays out of the shell's history).
        #[arg(long)]
        code: Option<String>,
        /// Ask only this node (default: each node of the configuration in turn until one
        /// answers).
        #[arg(long)]
        from: Option<String>,
    },
}

/// How long one node is given to answer.
const ASK: Duration = Duration::from_secs(10);

pub fn run(args: Args) -> Result<ExitCode> {
    match args.action {
        None => {
            let Some(config) = args.config else {
                bail!(
                    "which cluster? give --config CLUSTER.toml (or `td secret invite` / `td \
                     secret join`; see td secret --help)"
                );
            };
            make(ClusterConfig::load(&config)?)
        }
        Some(Action::Invite {
            config,
            name,
            valid,
        }) => invite(ClusterConfig::load(&config)?, &name, valid),
        Some(Action::Join { config, code, from }) => {
            join(ClusterConfig::load(&config)?, code, from.as_deref())
        }
    }
}

fn make(config: ClusterConfig) -> Result<ExitCode> {
    let path = config.secret_path();
    let existed = path.exists();
    floor::secret_file::create(&path)?;
    if existed {
        println!("{} exists; kept as it is", path.display());
    } else {
        println!(
            "made {}; on every other node and frontend, run `td secret join` with a code from \
             `td secret invite NAME` here",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn invite(config: ClusterConfig, name: &str, valid: Duration) -> Result<ExitCode> {
    let secret = Secret::load(&config.secret_path())?;
    if valid.is_zero() || valid.as_secs() > MAX_VALID_SECS {
        bail!(
            "--valid must be more than nothing and at most 7d (a code opens the secret until \
             it expires)"
        );
    }
    let known = config.node(name).is_some() || config.frontend(name).is_some();
    if !known {
        eprintln!(
            "note: {name} is not a node or frontend of this configuration; the code works, \
             but give the new host a configuration that names it"
        );
    }
    let expires = cluster::unix_now() + valid.as_secs();
    let code = JoinCode::issue(&secret, name, expires)?;
    let until = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(expires));
    println!("Join code for {name}, valid until {until}:\n\n  {code}\n");
    println!(
        "On {name}, with this same cluster configuration, run\n\n  td secret join --config \
         CLUSTER.toml\n\nand type the code when asked. Anyone who has the code can fetch the \
         secret until then: pass it on as you would a password."
    );
    Ok(ExitCode::SUCCESS)
}

fn join(config: ClusterConfig, code: Option<String>, from: Option<&str>) -> Result<ExitCode> {
    let code = match code {
        Some(c) => c,
        None => read_code()?,
    };
    let code = JoinCode::parse(&code)?;
    let path = config.secret_path();
    // Already done (a second run, or the first host): nothing to fetch.
    if let Ok(there) = Secret::load(&path) {
        if JoinCode::issue(&there, &code.name, code.expires)? == code {
            println!("{} already holds this cluster's secret", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        bail!(
            "{} holds another cluster's secret than the one this code is for; it was kept \
             (move it away first if this host now belongs to this cluster)",
            path.display()
        );
    }
    code.check_time(cluster::unix_now())?;
    floor::tls::trust_cluster(&config)?;
    let nodes: Vec<_> = match from {
        Some(name) => vec![config
            .node(name)
            .with_context(|| format!("no node named {name} in this configuration"))?],
        None => config.nodes.iter().collect(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = floor::Client::new();
    let mut tried = Vec::new();
    for node in nodes {
        let url = format!("{}{JOIN_PATH}", node.origin());
        let request = code.request()?;
        let body = serde_json::to_vec(&request).expect("plain data");
        let answer = match runtime.block_on(client.post_json(&url, body.into(), ASK, 64 << 10)) {
            Ok(a) => a,
            Err(e) => {
                tried.push(format!("{}: {e}", node.name));
                continue;
            }
        };
        let said = String::from_utf8_lossy(&answer.body).trim().to_string();
        if answer.status != 200 {
            // A wrong or expired code is wrong at every node: say so at once.
            if answer.status == 403 {
                bail!("{} refused the code: {said}", node.name);
            }
            tried.push(format!("{}: {} {said}", node.name, answer.status));
            continue;
        }
        let reply: JoinReply = serde_json::from_slice(&answer.body).with_context(|| {
            format!("{} answered something that is not a join reply", node.name)
        })?;
        let secret = code.open(&reply)?;
        let outcome = floor::secret_file::install(&path, &secret)?;
        match outcome {
            Installed::Written => println!(
                "got the cluster secret from {} (sealed for this code); wrote {} (readable by \
                 its owner only)",
                node.name,
                path.display()
            ),
            Installed::AlreadyThere => {
                println!("{} already holds this cluster's secret", path.display())
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    bail!(
        "no node gave the secret:\n  {}\n(start a node that has it, or give --from NODE)",
        tried.join("\n  ")
    )
}

/// The code from standard input, asked for when it is a terminal.
fn read_code() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        print!("Join code: ");
        std::io::stdout().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the join code from standard input")?;
    if line.trim().is_empty() {
        bail!("no join code given: pass --code or type it on standard input");
    }
    Ok(line)
}
