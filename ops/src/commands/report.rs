//! `td report`: the weekly visit report, made now from what every node says (the tickets of
//! its monitor, the events of its monitor and backend, the cluster's state as `td status`
//! counts it), previewed as text, written as HTML, or mailed. [`collect`] is also what the
//! frontends' report schedule sends.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use cluster::ticket::TicketPage;
use cluster::{ClusterConfig, Event, EventPage};
use repair::mail::Mail;
use repair::report::{Inputs, NodeTickets, VisitReport};

/// Make the visit report now: what to replace on the next visit, in walking order (rack, node,
/// enclosure, slot), with what to bring, the label and serial to look for and the evidence;
/// what was repaired in the last week; the cluster's state; and the failure log (faults per
/// kind of part, last week and since the start). Every node's monitor is asked for its
/// tickets; a node that does not answer is named in the report.
///
/// Without options the report is printed as text. `--send` mails it now as `[mail]` in the
/// configuration says (through its SMTP server, or into its outbox folder) and says where it
/// went; the frontend holding the canonical address also sends it by itself on
/// `[mail] report_schedule` (default Mondays 07:00).
///
///     [mail]
///     smtp_host = "mail.museum.example"     # or, without a server: outbox = "outbox"
///     smtp_port = 587                       # the default
///     security = "starttls"                 # the default; "tls" (port 465); "none" (loopback)
///     user = "td"                           # with password_file, if the server asks
///     password_file = "mail.password"       # next to this file; one line, chmod 600
///     from = "Tertiary Disk <td@museum.example>"
///     to = ["operator@museum.example"]
///     report_schedule = "0 0 7 * * Mon"     # sec min hour day month weekday, local time
///
/// Exit status: 0 when the report was made (and sent, with --send), 1 otherwise.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Mail the report now ([mail] in the configuration) and say where it went.
    #[arg(long)]
    send: bool,
    /// Write the report as one HTML page (no external resources; prints on A4) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// How long a node's monitor or backend is given to answer one question.
const ASK: Duration = Duration::from_secs(5);
/// Events asked per page (a backend answers at most 1000 at a time).
const EVENT_PAGE: usize = 1000;
/// At most this many pages of events per log: a log longer than that is counted in part,
/// and the report says so.
const MAX_EVENT_PAGES: usize = 200;

/// Asks every node and puts the report together.
pub async fn collect(config: &ClusterConfig) -> VisitReport {
    let client = floor::Client::new();
    let tickets = futures_util::future::join_all(config.nodes.iter().map(|n| {
        let client = client.clone();
        let url = format!("http://{}/tickets", n.monitor_address());
        async move {
            let answer = client
                .get_json::<TicketPage>(&url, ASK, 16 << 20)
                .await
                .map_err(|e| format!("its monitor does not answer at {url}: {e}"));
            NodeTickets {
                node: n.name.clone(),
                answer,
            }
        }
    }));
    let sources: Vec<(String, &'static str, std::net::SocketAddr)> = config
        .nodes
        .iter()
        .flat_map(|n| {
            [
                (n.name.clone(), "monitor", n.monitor_address()),
                (n.name.clone(), "backend", n.address),
            ]
        })
        .collect();
    let logs = futures_util::future::join_all(sources.into_iter().map(|(node, role, addr)| {
        let client = client.clone();
        async move { (node, role, addr, all_events(&client, addr).await) }
    }));
    let (tickets, logs, status) = tokio::join!(tickets, logs, super::status::gather(config));
    let mut events: Vec<Event> = Vec::new();
    let mut problems = Vec::new();
    for (node, role, addr, got) in logs {
        match got {
            Ok((list, complete)) => {
                if !complete {
                    problems.push(format!(
                        "the {role} of {node} holds more than {} events; the failure log \
                         counts the first of them",
                        EVENT_PAGE * MAX_EVENT_PAGES
                    ));
                }
                events.extend(list);
            }
            Err(e) => problems.push(format!(
                "the events of the {role} of {node} (http://{addr}/events): {e}"
            )),
        }
    }
    let now = cluster::unix_now();
    VisitReport::build(Inputs {
        config,
        tickets: &tickets,
        status: &status,
        events: &events,
        event_problems: &problems,
        now,
        utc_offset: repair::report::local_utc_offset(now),
    })
}

/// Every event of one log, page by page; whether the whole log was read.
async fn all_events(
    client: &floor::Client,
    addr: std::net::SocketAddr,
) -> Result<(Vec<Event>, bool), String> {
    let mut all = Vec::new();
    let mut since = 0;
    for _ in 0..MAX_EVENT_PAGES {
        let path = format!("/events?since={since}&limit={EVENT_PAGE}");
        let answer = client
            .get_at(addr, &path, ASK)
            .await
            .map_err(|e| e.to_string())?;
        if answer.status != 200 {
            return Err(format!("answered {}", answer.status));
        }
        let page: EventPage =
            serde_json::from_slice(&answer.body).map_err(|e| format!("not an event page: {e}"))?;
        if page.events.is_empty() || page.next <= since {
            return Ok((all, true));
        }
        since = page.next;
        all.extend(page.events);
    }
    Ok((all, false))
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let report = collect(&config).await;
        for n in &report.not_answering {
            eprintln!("td report: node {}: {}", n.node, n.why);
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else if !args.send && args.html.is_none() {
            print!("{}", report.text());
        }
        if let Some(file) = &args.html {
            std::fs::write(file, report.html())
                .with_context(|| format!("cannot write {}", file.display()))?;
            if !args.json {
                println!("td report: the HTML is in {}", file.display());
            }
        }
        if args.send {
            let mail = Mail::report(&report);
            let delivered = repair::mail::send(&config.mail, &mail).await?;
            if !args.json {
                println!("td report: \"{}\" {delivered}", mail.subject);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
