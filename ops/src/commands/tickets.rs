//! `td tickets` and `td ticket done|acquit`: the repair tickets every node's monitor keeps,
//! one per physical fault, and the operator's marks on them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cluster::ticket::{Mark, MarkRequest, Ticket, TicketPage, TicketState};
use cluster::ClusterConfig;
use floor::client::Call;

const ASK: Duration = Duration::from_secs(10);

/// List the repair tickets of every node: what part to replace (most likely first), where it
/// is (rack, node, enclosure, slot, serial), what was taken out of service meanwhile, what the
/// system did, and the evidence. One ticket per physical fault; a fault that goes on adds
/// none.
///
/// By default the tickets that still ask something (open, done, verified) and those closed in
/// the last week. Exit status: 0 when no ticket is open, 1 when some are, 2 when no node
/// answered.
#[derive(clap::Args)]
pub struct ListArgs {
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Every ticket the nodes keep, closed and acquitted ones too.
    #[arg(long)]
    all: bool,
    /// One JSON object: {"tickets": [...], "problems": [...]}.
    #[arg(long)]
    json: bool,
}

/// Mark a ticket: `done` once its part was replaced or repaired (the node then checks that
/// the new part works and closes it), `acquit` when nothing was wrong (a false alarm).
#[derive(clap::Args)]
pub struct MarkArgs {
    /// done or acquit.
    #[arg(value_enum)]
    mark: MarkWord,
    /// The ticket's id, as `td tickets` prints it (`node-a.m42`).
    id: String,
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Who marks it (default: $USER).
    #[arg(long)]
    by: Option<String>,
    /// A few words kept with the mark ("swapped for serial ZX81").
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MarkWord {
    Done,
    Acquit,
}

/// Asks every node's monitor for its tickets; the nodes that did not answer, and why.
pub async fn gather(config: &ClusterConfig) -> (Vec<Ticket>, Vec<String>) {
    let client = floor::Client::new();
    let asks = config.nodes.iter().map(|n| {
        let client = client.clone();
        let url = format!("http://{}/tickets", n.monitor_address());
        async move {
            let page: Result<TicketPage, _> = client.get_json(&url, ASK, 16 << 20).await;
            (n.name.clone(), url, page)
        }
    });
    let mut tickets = Vec::new();
    let mut problems = Vec::new();
    for (node, url, page) in futures_util::future::join_all(asks).await {
        match page {
            Ok(page) => {
                tickets.extend(page.tickets);
                problems.extend(page.problems.into_iter().map(|p| format!("{node}: {p}")));
            }
            Err(e) => problems.push(format!(
                "{node}: its monitor does not answer at {url} ({e}); its tickets are not listed"
            )),
        }
    }
    tickets.sort_by_key(|t| (!t.urgent, t.state, t.opened_at, t.id.clone()));
    (tickets, problems)
}

pub fn list(args: ListArgs) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    let runtime = runtime()?;
    let (tickets, problems) = runtime.block_on(gather(&config));
    let answered = problems
        .iter()
        .filter(|p| p.contains("does not answer"))
        .count()
        < config.nodes.len();
    let week_ago = cluster::unix_now().saturating_sub(7 * 24 * 3600);
    let shown: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| args.all || t.state.active() || t.closed_at.is_some_and(|c| c >= week_ago))
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "tickets": shown,
                "problems": problems,
            }))?
        );
    } else {
        if shown.is_empty() {
            println!("no tickets: nothing to replace");
        }
        for t in &shown {
            print!("{}", repair::ticket_text::text(t));
        }
        for p in &problems {
            eprintln!("td tickets: {p}");
        }
    }
    Ok(if !answered {
        ExitCode::from(2)
    } else if tickets.iter().any(|t| t.state == TicketState::Open) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn mark(args: MarkArgs) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    if !cluster::ticket::valid_ticket_id(&args.id) {
        bail!(
            "{:?} is not a ticket id (they look like node-a.m42)",
            args.id
        );
    }
    let node = args
        .id
        .rsplit_once('.')
        .and_then(|(node, _)| config.node(node))
        .with_context(|| {
            format!(
                "ticket {} names no node of {}: its id starts with the node that keeps it",
                args.id,
                args.config.display()
            )
        })?;
    let secret = cluster::auth::Secret::load(&config.secret_path())
        .map_err(|e| anyhow::anyhow!("the cluster secret is needed to mark a ticket: {e}"))?;
    let target = monitor::tickets::signing_target(&node.name);
    let client = floor::Client::signed(
        Ok(secret),
        vec![(target.clone(), format!("http://{}", node.monitor_address()))],
    );
    let request = MarkRequest {
        mark: match args.mark {
            MarkWord::Done => Mark::Done,
            MarkWord::Acquit => Mark::Acquit,
        },
        by: args
            .by
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_default(),
        note: args.note,
    };
    let body = serde_json::to_vec(&request)?;
    let path = format!("/tickets/{}", args.id);
    let headers = [("content-type", "application/json".to_string())];
    let answer = runtime()?
        .block_on(client.call_any(
            &target,
            Call::new("POST", &path).body(body.into()).headers(&headers),
            ASK,
        ))
        .with_context(|| format!("cannot reach the monitor of {}", node.name))?;
    if answer.status != 200 {
        bail!(
            "the monitor of {} refused: {}",
            node.name,
            String::from_utf8_lossy(&answer.body).trim()
        );
    }
    let ticket: Ticket = serde_json::from_slice(&answer.body)?;
    println!(
        "ticket {} is {:?} now: {}",
        ticket.id, ticket.state, ticket.summary
    );
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
