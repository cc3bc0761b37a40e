//! The node's repair tickets, made on request by the repair crate's diagnosis from this
//! monitor's event log and its backend's (asked over loopback), and the operator's marks on
//! them, recorded as events so the tickets are rebuilt the same at any moment.

use std::time::Duration;

use cluster::auth::{NonceBook, Refused, Secret, SignedParts};
use cluster::redundancy::RemirrorStatus;
use cluster::ticket::{Mark, MarkRequest, Ticket, TicketPage};
use cluster::{ClusterConfig, Component, Event, EventKind, EventPage, NodeConfig};
use floor::{EventLog, NewEvent};

use crate::node_monitor::Monitor;

/// What the backend is given to answer.
const ASK: Duration = Duration::from_secs(5);
/// Events asked of the backend per page.
const PAGE: usize = 10_000;

/// The name a request to this monitor is signed for: distinct from the backend's, so a
/// request signed for one is refused by the other.
pub fn signing_target(node: &str) -> String {
    format!("{node}:monitor")
}

/// Every event of this node: the monitor's own and, if it answers, its backend's.
async fn events(node: &NodeConfig, log: &EventLog, problems: &mut Vec<String>) -> Vec<Event> {
    let mut all = log.since(0, usize::MAX).events;
    let client = floor::Client::new();
    let mut since = 0;
    loop {
        let path = format!("/events?since={since}&limit={PAGE}");
        let page = client
            .get_at(node.address, &path, ASK)
            .await
            .map_err(|e| e.to_string())
            .and_then(|a| {
                if a.status != 200 {
                    return Err(format!("answered {}", a.status));
                }
                serde_json::from_slice::<EventPage>(&a.body).map_err(|e| e.to_string())
            });
        match page {
            Ok(page) => {
                let n = page.events.len();
                all.extend(page.events);
                // The backend answers at most its own page size (1000), whatever is asked:
                // only an empty page, or one that does not move on, is the end.
                if n == 0 || page.next <= since {
                    break;
                }
                since = page.next;
            }
            Err(e) => {
                problems.push(format!(
                    "the backend's events (http://{}/events): {e}; tickets are made from the \
                     monitor's alone",
                    node.address
                ));
                break;
            }
        }
    }
    all
}

/// Images one failure from loss that no node can copy again by itself now, as every node's
/// backend says (the one holding the last replica knows): the node whose replica was lost,
/// and a sentence.
async fn blocked(
    cluster: &ClusterConfig,
    me: &str,
    problems: &mut Vec<String>,
) -> Vec<(String, String)> {
    let client = floor::Client::new();
    let asks = cluster.nodes.iter().map(|n| {
        let client = client.clone();
        let url = format!("{}/redundancy", n.origin());
        async move {
            let status: Result<RemirrorStatus, _> = client.get_json(&url, ASK, 4 << 20).await;
            (n.name.clone(), status)
        }
    });
    let mut all = Vec::new();
    let mut silent = Vec::new();
    for (name, status) in futures_util::future::join_all(asks).await {
        match status {
            Ok(s) => all.extend(s.waiting.into_iter().filter_map(|w| {
                let why = w.blocked?;
                Some((
                    w.lost.clone(),
                    format!(
                        "{} has one replica left (on {name}; the one on {} is lost) and cannot be copied: {why}",
                        w.image, w.lost
                    ),
                ))
            })),
            Err(_) => silent.push(name),
        }
    }
    // A silent node is a fault of its own (its watcher's ticket); only this node's backend
    // not answering is worth saying here.
    if silent.contains(&me.to_string()) {
        problems.push(format!(
            "the backend of {me} did not give its re-mirroring status: urgency is judged without it"
        ));
    }
    all
}

/// This node's tickets, now.
pub async fn page(m: &Monitor) -> TicketPage {
    page_of(&m.cluster, &m.node, m.recorder.log()).await
}

/// The tickets of `node`, from `log` (its monitor's) and its backend's events.
pub async fn page_of(cluster: &ClusterConfig, node: &NodeConfig, log: &EventLog) -> TicketPage {
    let mut problems = Vec::new();
    let events = events(node, log, &mut problems).await;
    let blocked = blocked(cluster, &node.name, &mut problems).await;
    let settings = repair::Settings::from_config(&cluster.repair);
    let (cluster, name) = (cluster.clone(), node.name.clone());
    // The fold reads every event: off the async threads.
    let tickets = tokio::task::spawn_blocking(move || {
        repair::tickets(
            &repair::Input {
                cluster: &cluster,
                node: &name,
                events: &events,
                blocked: &blocked,
                now: cluster::unix_now(),
            },
            &settings,
        )
    })
    .await
    .unwrap_or_default();
    TicketPage {
        node: node.name.clone(),
        tickets,
        problems,
    }
}

/// Why a mark was refused, as the operator's command says it.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error("not signed with the cluster's secret: {0}")]
    Unsigned(String),
    #[error("the request is not a mark: {0}")]
    Malformed(String),
    #[error("node {node} keeps no ticket {id}")]
    Unknown { node: String, id: String },
    #[error("ticket {id} is {state:?} already: nothing to mark")]
    Ended {
        id: String,
        state: cluster::TicketState,
    },
}

/// What a mark request carries, as it arrived.
pub struct MarkCall<'a> {
    pub id: &'a str,
    pub path_and_query: &'a str,
    pub auth: Option<&'a str>,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// Checks a signed mark and records it; the ticket as it is after.
pub async fn mark(
    m: &Monitor,
    secret: Option<&Secret>,
    nonces: &NonceBook,
    call: MarkCall<'_>,
) -> Result<Ticket, MarkError> {
    let secret = secret.ok_or_else(|| {
        MarkError::Unsigned("this monitor has no cluster secret; marks are off".into())
    })?;
    let target = signing_target(&m.node.name);
    let parts = SignedParts {
        method: "POST",
        path_and_query: call.path_and_query,
        user: "",
        target: &target,
        body: call.body,
        upload_offset: "",
        content_type: call.content_type,
    };
    let now = cluster::unix_now();
    let refused = |r: Refused| MarkError::Unsigned(r.to_string());
    let nonce = secret
        .verify_request(call.auth, &parts, now)
        .map_err(refused)?;
    nonces.first_use(&nonce, now).map_err(refused)?;
    let request: MarkRequest =
        serde_json::from_slice(call.body).map_err(|e| MarkError::Malformed(e.to_string()))?;
    let ticket = page(m)
        .await
        .tickets
        .into_iter()
        .find(|t| t.id == call.id)
        .ok_or_else(|| MarkError::Unknown {
            node: m.node.name.clone(),
            id: call.id.to_string(),
        })?;
    if !ticket.state.active() {
        return Err(MarkError::Ended {
            id: ticket.id,
            state: ticket.state,
        });
    }
    let (kind, said) = match request.mark {
        Mark::Done => (EventKind::TicketDone, "marked done"),
        Mark::Acquit => (EventKind::TicketAcquitted, "acquitted"),
    };
    let by = if request.by.is_empty() {
        "the operator".to_string()
    } else {
        request.by.chars().take(80).collect()
    };
    let mut event = NewEvent::new(
        Component::Ticket {
            ticket: ticket.id.clone(),
        },
        kind,
        format!("ticket {} {said} by {by}", ticket.id),
    )
    .evidence(format!("by {by}"));
    let note: String = request.note.chars().take(500).collect();
    if !note.is_empty() {
        event = event.evidence(note);
    }
    m.recorder.log().record(event);
    m.recorder.log().flush();
    tracing::info!(ticket = %ticket.id, mark = ?request.mark, by = %by, "ticket marked");
    page(m)
        .await
        .tickets
        .into_iter()
        .find(|t| t.id == call.id)
        .ok_or(MarkError::Unknown {
            node: m.node.name.clone(),
            id: call.id.to_string(),
        })
}
