//! The operator's dashboard at `/ops/`, for accounts with the operator role: the cluster drawn
//! as racks, nodes and enclosure slots coloured by their disk's state; the repair tickets with
//! done and acquit buttons; redundancy and repair progress; the workers; the last events.
//!
//! Every page asks every node's backend (`/health`, `/redundancy`, `/workers`, `/events`) and
//! monitor (`/health`, `/tickets`, `/workers`, `/events`) at once, each with a short deadline,
//! so a node that does not answer costs at most that deadline and is named on the page. A mark
//! is a plain form posted here with the session's CSRF token; this frontend then makes the
//! call signed with the cluster secret to the monitor of the node that keeps the ticket, and
//! shows its refusal in words when it refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::auth::Secret;
use cluster::redundancy::RemirrorStatus;
use cluster::ticket::{valid_ticket_id, Mark, MarkRequest, Ticket, TicketPage, TicketState};
use cluster::{ClusterConfig, DiskConfig, Event, EventPage, NodeConfig};
use floor::client::{Call, CallError};
use serde::Deserialize;
use site::dashboard::{self as page, SlotState};
use warp::http::{HeaderMap, Response, StatusCode};
use warp::Filter;

use super::session::Session;
use super::users::Role;
use super::{html, plain, see_other, Body, Portal};
use crate::table::Table;

/// What each node's backend and monitor are given to answer a page's questions.
const ASK: Duration = Duration::from_secs(2);
/// A monitor makes its tickets on request from its event log and its backend's: a little more.
const ASK_TICKETS: Duration = Duration::from_secs(3);
/// What a monitor is given to record a mark.
const MARK_DEADLINE: Duration = Duration::from_secs(5);
/// Events shown, newest first.
const EVENTS: usize = 30;
/// Where a visitor without a session is sent: the sign-in page, which leads back here.
const SIGN_IN: &str = "/portal/?next=%2Fops%2F";

/// The name a mark is signed for: the monitor of `node`, distinct from its backend so that a
/// request signed for one is refused by the other (as `monitor::tickets::signing_target`).
fn monitor_target(node: &str) -> String {
    format!("{node}:monitor")
}

/// What the dashboard asks, and of whom.
pub struct Dashboard {
    cluster: String,
    nodes: Vec<NodeConfig>,
    /// Unsigned questions to backends and monitors; marks signed for the monitors.
    client: floor::Client,
}

/// This frontend, whose own workers the dashboard lists too.
pub struct Local {
    pub name: String,
    pub runner: cluster::worker::Runner,
}

/// Why a mark did not go through.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error("{0:?} is not a ticket id (they look like node-a.m42)")]
    BadId(String),
    #[error(
        "ticket {id} names no node of this cluster: its id starts with the node that keeps it"
    )]
    UnknownNode { id: String },
    #[error("the monitor of {node} refused to mark ticket {id}: {reason}")]
    Refused {
        node: String,
        id: String,
        status: u16,
        reason: String,
    },
    #[error("ticket {id} was not marked: {source}")]
    Unreachable {
        id: String,
        #[source]
        source: CallError,
    },
    #[error("the monitor of {node} answered the mark of ticket {id} with something unreadable: {detail}")]
    BadAnswer {
        node: String,
        id: String,
        detail: String,
    },
}

impl MarkError {
    /// The status of the page that says so.
    fn status(&self) -> StatusCode {
        match self {
            MarkError::BadId(_) => StatusCode::BAD_REQUEST,
            MarkError::UnknownNode { .. } => StatusCode::NOT_FOUND,
            MarkError::Refused { status: 404, .. } => StatusCode::NOT_FOUND,
            MarkError::Refused { status: 409, .. } => StatusCode::CONFLICT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A backend's `/health`, as far as the dashboard reads it.
#[derive(Debug, Default, Deserialize)]
struct BackendHealth {
    #[serde(default)]
    images: Option<u64>,
    #[serde(default)]
    disks: Vec<HealthDisk>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct HealthDisk {
    id: String,
    state: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    probe_ms: Option<u64>,
    #[serde(default)]
    free_bytes: Option<u64>,
    #[serde(default)]
    total_bytes: Option<u64>,
}

/// A monitor's `/health`: its detectors, one per disk probe among them.
#[derive(Debug, Default, Deserialize)]
struct MonitorHealth {
    #[serde(default)]
    detectors: Vec<DetectorLine>,
}

#[derive(Debug, Deserialize)]
struct DetectorLine {
    name: String,
    #[serde(default)]
    line: String,
}

/// One worker of a `/workers` answer.
#[derive(Debug, Deserialize)]
struct WorkerLine {
    name: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    progress: String,
    #[serde(default)]
    errors: u64,
    #[serde(default)]
    consecutive_errors: u64,
    #[serde(default)]
    last_error: Option<String>,
}

/// Everything one node said (or why not).
struct Answers {
    health: Result<BackendHealth, CallError>,
    redundancy: Result<RemirrorStatus, CallError>,
    backend_workers: Result<Vec<WorkerLine>, CallError>,
    backend_events: Result<EventPage, CallError>,
    monitor_health: Result<MonitorHealth, CallError>,
    tickets: Result<TicketPage, CallError>,
    monitor_workers: Result<Vec<WorkerLine>, CallError>,
    monitor_events: Result<EventPage, CallError>,
}

impl Dashboard {
    pub fn new(cluster: &ClusterConfig, secret: Result<Secret, String>) -> Dashboard {
        let monitors = cluster
            .nodes
            .iter()
            .map(|n| {
                (
                    monitor_target(&n.name),
                    format!("http://{}", n.monitor_address()),
                )
            })
            .collect();
        Dashboard {
            cluster: cluster.name.clone(),
            nodes: cluster.nodes.clone(),
            client: floor::Client::signed(secret, monitors),
        }
    }

    async fn ask(&self, n: &NodeConfig) -> Answers {
        let backend = n.origin();
        let monitor = format!("http://{}", n.monitor_address());
        let c = &self.client;
        let urls = [
            format!("{backend}/health"),
            format!("{backend}/redundancy"),
            format!("{backend}/workers"),
            format!("{backend}/events?limit={EVENTS}"),
            format!("{monitor}/health"),
            format!("{monitor}/tickets"),
            format!("{monitor}/workers"),
            format!("{monitor}/events?limit={EVENTS}"),
        ];
        let (
            health,
            redundancy,
            backend_workers,
            backend_events,
            monitor_health,
            tickets,
            monitor_workers,
            monitor_events,
        ) = tokio::join!(
            c.get_json(&urls[0], ASK, 4 << 20),
            c.get_json(&urls[1], ASK, 4 << 20),
            c.get_json(&urls[2], ASK, 1 << 20),
            c.get_json(&urls[3], ASK, 4 << 20),
            c.get_json(&urls[4], ASK, 4 << 20),
            c.get_json(&urls[5], ASK_TICKETS, 16 << 20),
            c.get_json(&urls[6], ASK, 1 << 20),
            c.get_json(&urls[7], ASK, 4 << 20),
        );
        Answers {
            health,
            redundancy,
            backend_workers,
            backend_events,
            monitor_health,
            tickets,
            monitor_workers,
            monitor_events,
        }
    }

    /// Asks every node at once and fills the page (all but who is signed in and what they
    /// did).
    async fn gather(&self, local: &Local, table: &Table) -> page::Dashboard {
        let started = Instant::now();
        let now = cluster::unix_now();
        let answers = futures_util::future::join_all(self.nodes.iter().map(|n| self.ask(n))).await;
        let took = started.elapsed();
        let mut d = page::Dashboard {
            cluster: self.cluster.clone(),
            asked: format!(
                "As the nodes answered at {} (asked for {:.1} s).",
                utc(now, false),
                took.as_secs_f64()
            ),
            ..page::Dashboard::default()
        };
        let mut racks: Vec<page::Rack> = Vec::new();
        let mut tickets: Vec<Ticket> = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        let mut repairs = Vec::new();
        let mut waiting = Vec::new();
        d.workers.push(page::Workers {
            process: format!("frontend {}", local.name),
            workers: Ok(local
                .runner
                .statuses()
                .into_iter()
                .map(|w| {
                    worker(&WorkerLine {
                        name: w.name,
                        state: w.state,
                        progress: w.progress,
                        errors: w.errors,
                        consecutive_errors: w.consecutive_errors,
                        last_error: w.last_error,
                    })
                })
                .collect()),
        });
        for (n, a) in self.nodes.iter().zip(answers) {
            let mut notes = Vec::new();
            if let Err(e) = &a.health {
                tracing::debug!(node = %n.name, error = %e, "dashboard: a backend does not answer");
                d.problems
                    .push(format!("{}: its image server does not answer: {e}", n.name));
                notes.push(format!("image server: {}", short(e)));
            }
            match a.tickets {
                Ok(answer) => {
                    tickets.extend(answer.tickets);
                    d.problems.extend(
                        answer
                            .problems
                            .into_iter()
                            .map(|p| format!("{}: {p}", n.name)),
                    );
                }
                Err(e) => {
                    tracing::debug!(node = %n.name, error = %e, "dashboard: a monitor does not answer");
                    d.problems.push(format!(
                        "{}: its monitor does not answer ({e}); its tickets are not listed",
                        n.name
                    ));
                    notes.push(format!("monitor: {}", short(&e)));
                }
            }
            let health = a.health.as_ref().ok();
            // Other answers missing while the main one came: said once each.
            if health.is_some() {
                if let Err(e) = &a.redundancy {
                    d.problems.push(format!(
                        "{}: its copies under way are not shown: {e}",
                        n.name
                    ));
                }
            }
            let probes = a.monitor_health.as_ref().ok();
            if let Some(h) = health {
                notes.extend(
                    h.warnings
                        .iter()
                        .filter(|w| !self.about_a_disk(n, w))
                        .cloned(),
                );
            }
            let node_box = page::NodeBox {
                name: n.name.clone(),
                power_domain: n.power_domain.clone(),
                answering: health.is_some(),
                notes,
                images: health.and_then(|h| h.images),
                enclosures: enclosures(n, health, probes),
            };
            let rack = if n.rack.is_empty() {
                "(no rack given)".to_string()
            } else {
                n.rack.clone()
            };
            match racks.iter_mut().find(|r| r.name == rack) {
                Some(r) => r.nodes.push(node_box),
                None => racks.push(page::Rack {
                    name: rack,
                    nodes: vec![node_box],
                }),
            }
            if let Ok(r) = a.redundancy {
                repairs.extend(r.jobs);
                waiting.extend(r.waiting);
            }
            for (process, list) in [
                ("backend", a.backend_workers),
                ("monitor", a.monitor_workers),
            ] {
                d.workers.push(page::Workers {
                    process: format!("{} {process}", n.name),
                    workers: list
                        .map(|l| l.iter().map(worker).collect())
                        .map_err(|e| format!("does not answer: {}", short(&e))),
                });
            }
            for answer in [a.backend_events, a.monitor_events].into_iter().flatten() {
                events.extend(answer.events);
            }
        }
        d.racks = racks;
        tickets.retain(|t| t.state.active());
        tickets.sort_by_key(|t| (!t.urgent, t.state, t.opened_at, t.id.clone()));
        d.tickets = tickets.iter().map(|t| ticket_item(t, now)).collect();
        let counts = table.redundancy();
        let repairing: BTreeSet<&str> = repairs.iter().map(|j| j.image.as_str()).collect();
        d.redundancy = page::Redundancy {
            images: counts.images,
            healthy: counts.healthy,
            under_replicated: counts.under_replicated,
            repairing: repairing.len(),
            lost: counts.lost,
            repairs: repairs
                .iter()
                .map(|j| {
                    let pct = (j.bytes_done * 100).checked_div(j.bytes_total).unwrap_or(0);
                    let eta = j
                        .eta_seconds()
                        .map(|e| format!(", about {e} s left"))
                        .unwrap_or_default();
                    page::Repair {
                        image: j.image.clone(),
                        what: format!(
                            "lost {} → {}",
                            j.lost,
                            j.target.as_deref().unwrap_or("(target not chosen yet)")
                        ),
                        step: j.step.clone(),
                        done: j.bytes_done,
                        total: j.bytes_total,
                        progress: format!("{pct}% of {}{eta}", bytes(j.bytes_total)),
                    }
                })
                .collect(),
            waiting: waiting
                .iter()
                .map(|w| match &w.blocked {
                    Some(b) => format!("{}: lost {}; blocked: {b}", w.image, w.lost),
                    None if w.in_seconds > 0 => format!(
                        "{}: lost {}; copied in {} s (grace period)",
                        w.image, w.lost, w.in_seconds
                    ),
                    None => format!("{}: lost {}; waits for its turn", w.image, w.lost),
                })
                .collect(),
        };
        events.sort_by_key(|e| std::cmp::Reverse((e.last_seen.max(e.time), e.id)));
        events.truncate(EVENTS);
        d.events = events
            .iter()
            .map(|e| {
                let at = e.last_seen.max(e.time);
                page::EventItem {
                    datetime: utc(at, true),
                    ago: ago(now, at),
                    node: e.node.clone(),
                    source: e.source.clone(),
                    kind: serde_json::to_value(e.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| format!("{:?}", e.kind)),
                    summary: e.summary.clone(),
                    count: e.count,
                }
            })
            .collect();
        d
    }

    /// Whether a backend's warning is about one of `node`'s disks (then it is shown in the
    /// disk's slot, not again on the node).
    fn about_a_disk(&self, node: &NodeConfig, warning: &str) -> bool {
        node.disks.iter().any(|d| mentions(warning, &d.id))
    }

    /// Marks ticket `id` through the monitor of the node that keeps it, as `by`.
    pub async fn mark(
        &self,
        id: &str,
        mark: Mark,
        by: &str,
        frontend: &str,
    ) -> Result<Ticket, MarkError> {
        if !valid_ticket_id(id) {
            return Err(MarkError::BadId(id.to_string()));
        }
        let node = id
            .rsplit_once('.')
            .and_then(|(node, _)| self.nodes.iter().find(|n| n.name == node))
            .ok_or_else(|| MarkError::UnknownNode { id: id.to_string() })?;
        let request = MarkRequest {
            mark,
            by: by.to_string(),
            note: format!("on the dashboard of frontend {frontend}"),
        };
        let body = serde_json::to_vec(&request).expect("plain data");
        let path = format!("/tickets/{id}");
        let headers = [("content-type", "application/json".to_string())];
        let call = Call::new("POST", &path).body(body.into()).headers(&headers);
        let answer = self
            .client
            .call_any(&monitor_target(&node.name), call, MARK_DEADLINE)
            .await
            .map_err(|source| MarkError::Unreachable {
                id: id.to_string(),
                source,
            })?;
        if answer.status != 200 {
            let reason = String::from_utf8_lossy(&answer.body[..answer.body.len().min(500)])
                .trim()
                .to_string();
            return Err(MarkError::Refused {
                node: node.name.clone(),
                id: id.to_string(),
                status: answer.status,
                reason,
            });
        }
        serde_json::from_slice(&answer.body).map_err(|e| MarkError::BadAnswer {
            node: node.name.clone(),
            id: id.to_string(),
            detail: e.to_string(),
        })
    }
}

/// True when `text` names `word` as a whole word (a disk id in a warning).
fn mentions(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|w| w == word)
}

/// The first sentence of an error, for a node's box (the whole one is in the list above).
fn short(e: &CallError) -> String {
    match e {
        CallError::Refused { .. } => "connection refused".into(),
        CallError::Timeout { deadline, .. } => format!("no answer within {deadline:?}"),
        CallError::Status { status, .. } => format!("answered {status}"),
        other => other.to_string(),
    }
}

/// `node`'s disks by enclosure, each slot coloured by what its backend and monitor say.
fn enclosures(
    n: &NodeConfig,
    health: Option<&BackendHealth>,
    probes: Option<&MonitorHealth>,
) -> Vec<page::Enclosure> {
    let mut by: BTreeMap<String, Vec<&DiskConfig>> = BTreeMap::new();
    for d in &n.disks {
        let name = d
            .location
            .enclosure
            .clone()
            .unwrap_or_else(|| "(no enclosure given)".into());
        by.entry(name).or_default().push(d);
    }
    by.into_iter()
        .map(|(name, mut disks)| {
            disks.sort_by_key(|d| (d.location.slot.is_none(), d.location.slot));
            page::Enclosure {
                name,
                slots: disks
                    .into_iter()
                    .map(|d| {
                        let line = probes.and_then(|m| {
                            m.detectors
                                .iter()
                                .find(|x| x.name == format!("disk probe {}", d.id))
                                .map(|x| x.line.as_str())
                        });
                        let (state, detail) = slot_state(d, health, line);
                        page::Slot {
                            slot: d.location.slot,
                            disk: d.id.clone(),
                            serial: d.serial.clone(),
                            state,
                            detail,
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A disk's state from its backend's `/health` (`None`: the backend did not answer) and its
/// monitor's probe line (`missing: …`, `refused: …`, `failed: …`, or how many passed).
fn slot_state(
    disk: &DiskConfig,
    health: Option<&BackendHealth>,
    probe: Option<&str>,
) -> (SlotState, Option<String>) {
    let says = |what: &str| {
        probe
            .and_then(|l| l.trim().strip_prefix(what))
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|rest| rest.trim().to_string())
    };
    let Some(h) = health else {
        return if let Some(why) = says("missing") {
            (SlotState::Missing, Some(why))
        } else if let Some(why) = says("refused") {
            (SlotState::Refused, Some(why))
        } else if let Some(why) = says("failed") {
            (SlotState::Failed, Some(why))
        } else {
            (
                SlotState::Unknown,
                Some("its node's image server does not answer".into()),
            )
        };
    };
    let Some(d) = h.disks.iter().find(|d| d.id == disk.id) else {
        // Not taken into service when the backend started.
        if let Some(why) = says("missing") {
            return (SlotState::Missing, Some(why));
        }
        let why = h
            .warnings
            .iter()
            .find(|w| mentions(w, &disk.id))
            .cloned()
            .or_else(|| says("refused"))
            .unwrap_or_else(|| "not in service on its node".into());
        return (SlotState::Refused, Some(why));
    };
    match d.state.as_str() {
        "healthy" => {
            let detail = match (d.free_bytes, d.total_bytes) {
                (Some(free), Some(total)) => {
                    Some(format!("{} free of {}", bytes(free), bytes(total)))
                }
                _ => None,
            };
            (SlotState::Healthy, detail)
        }
        "slow" => (
            SlotState::Slow,
            Some(format!(
                "last probe took {} ms",
                d.probe_ms.map_or("?".into(), |m| m.to_string())
            )),
        ),
        "returning" => (
            SlotState::Returning,
            Some("answering again; its replicas are being checked".into()),
        ),
        "failed" => {
            let error = d.error.clone();
            let vanished = error.as_deref().is_some_and(|e| {
                e.contains("No such file or directory") || e.contains("os error 2)")
            });
            match says("missing") {
                Some(why) => (SlotState::Missing, Some(why)),
                None if vanished => (SlotState::Missing, error),
                None => (SlotState::Failed, error),
            }
        }
        other => (SlotState::Unknown, Some(format!("its node says {other:?}"))),
    }
}

fn worker(w: &WorkerLine) -> page::Worker {
    page::Worker {
        name: w.name.clone(),
        state: w.state.clone(),
        progress: w.progress.clone(),
        errors: w.errors,
        failing: w.consecutive_errors > 0,
        last_error: w.last_error.clone(),
    }
}

fn state_word(s: TicketState) -> &'static str {
    match s {
        TicketState::Open => "open",
        TicketState::Done => "done",
        TicketState::Verified => "verified",
        TicketState::Closed => "closed",
        TicketState::Acquitted => "acquitted",
    }
}

fn ticket_item(t: &Ticket, now: u64) -> page::TicketItem {
    let first = t.suspects.first();
    page::TicketItem {
        id: t.id.clone(),
        state: state_word(t.state).to_string(),
        urgent: t.urgent,
        summary: t.summary.clone(),
        part: first.map_or_else(|| "(no part named)".into(), |s| s.part.to_string()),
        likelihood: first.map_or(0, |s| s.likelihood),
        label: first.map_or_else(
            || format!("node {}", t.node),
            |s| repair::ticket_text::label(t, s),
        ),
        others: t
            .suspects
            .iter()
            .skip(1)
            .map(|s| {
                format!(
                    "{} ({}% likely) at {}",
                    s.part,
                    s.likelihood,
                    repair::ticket_text::label(t, s)
                )
            })
            .collect(),
        bring: first.map_or_else(String::new, |s| s.bring.clone()),
        todo: first.map_or_else(String::new, |s| s.todo.clone()),
        opened: format!("{} ({})", ago(now, t.opened_at), utc(t.opened_at, false)),
        can_done: t.state == TicketState::Open,
        can_acquit: matches!(t.state, TicketState::Open | TicketState::Done),
    }
}

/// Seconds since the Unix epoch as a UTC date and time: `2026-05-01 12:03:04 UTC`, or with
/// `iso`, `2026-05-01T12:03:04Z`.
fn utc(secs: u64, iso: bool) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant's days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    if iso {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
    }
}

/// How long ago `t` was, for a person.
fn ago(now: u64, t: u64) -> String {
    let s = now.saturating_sub(t);
    match s {
        0..=4 => "just now".into(),
        5..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The signed-in operator, or the answer for anyone else: no session → the sign-in page and
/// back; another role → 403.
async fn operator(p: &Portal, cookies: Option<&str>) -> Result<Session, Response<Body>> {
    if let Err(why) = &p.secret {
        return Err(html(
            StatusCode::SERVICE_UNAVAILABLE,
            site::message(
                "The dashboard is off",
                &format!("This frontend cannot sign anyone in: {why}"),
            ),
        ));
    }
    let Some(s) = p.session(cookies) else {
        return Err(see_other(SIGN_IN, None));
    };
    let (accounts, name) = (p.accounts.clone(), s.user.clone());
    let role = tokio::task::spawn_blocking(move || accounts.users().map(|u| u.role(&name))).await;
    match role {
        Ok(Ok(Some(Role::Operator))) => Ok(s),
        Ok(Ok(Some(role))) => {
            tracing::info!(user = %s.user, %role, "dashboard: refused to an account that is not an operator");
            Err(html(
                StatusCode::FORBIDDEN,
                site::message(
                    "Operators only",
                    "This page is for the cluster's operators; your account uploads images \
                     (at /portal/). An operator can give an account this role with \
                     td user role NAME operator.",
                ),
            ))
        }
        // Signed in, but the account is gone since: sign in again.
        Ok(Ok(None)) => Err(see_other(SIGN_IN, None)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "dashboard: the accounts file cannot be read");
            Err(html(
                StatusCode::SERVICE_UNAVAILABLE,
                site::message(
                    "The dashboard is unavailable",
                    "The accounts file cannot be read. The reason is in this frontend's log.",
                ),
            ))
        }
        Err(_) => Err(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the account could not be checked",
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    /// A mark that went through: the ticket and the state it is in now.
    marked: Option<String>,
    state: Option<String>,
    /// Reload every this many seconds.
    every: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct MarkForm {
    csrf: Option<String>,
    mark: Option<String>,
}

/// The page for `s`, with what was just done or refused.
async fn render(
    p: &Portal,
    local: &Local,
    s: &Session,
    notice: Option<String>,
    error: Option<String>,
    refresh: Option<u32>,
    status: StatusCode,
) -> Response<Body> {
    let mut d = p.dashboard.gather(local, &p.table).await;
    d.user = s.user.clone();
    d.csrf = p.csrf(s);
    d.notice = notice;
    d.error = error;
    d.refresh = refresh;
    html(status, page::page(&d))
}

async fn show_page(
    cookies: Option<String>,
    q: PageQuery,
    p: Arc<Portal>,
    local: Arc<Local>,
) -> Response<Body> {
    let s = match operator(&p, cookies.as_deref()).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let notice = match (q.marked, q.state) {
        (Some(id), Some(state))
            if valid_ticket_id(&id)
                && ["open", "done", "verified", "closed", "acquitted"]
                    .contains(&state.as_str()) =>
        {
            Some(format!("Ticket {id} is {state} now."))
        }
        _ => None,
    };
    let refresh = q.every.map(|e| e.clamp(5, 600));
    render(&p, &local, &s, notice, None, refresh, StatusCode::OK).await
}

async fn mark_ticket(
    id: String,
    headers: HeaderMap,
    cookies: Option<String>,
    form: MarkForm,
    p: Arc<Portal>,
    local: Arc<Local>,
) -> Response<Body> {
    let s = match operator(&p, cookies.as_deref()).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    if !super::same_origin(&headers) {
        return plain(
            StatusCode::FORBIDDEN,
            "mark tickets from this site's own dashboard",
        );
    }
    if !p.csrf_ok(&s, form.csrf.as_deref()) {
        return plain(
            StatusCode::FORBIDDEN,
            "missing or stale CSRF token: reload the dashboard and try again",
        );
    }
    let what = match form.mark.as_deref() {
        Some("done") => Mark::Done,
        Some("acquit") => Mark::Acquit,
        _ => return plain(StatusCode::BAD_REQUEST, "a ticket is marked done or acquit"),
    };
    match p.dashboard.mark(&id, what, &s.user, &local.name).await {
        Ok(t) => {
            tracing::info!(ticket = %t.id, node = %t.node, mark = ?what, by = %s.user, "dashboard: ticket marked");
            see_other(
                &format!("/ops/?marked={}&state={}", t.id, state_word(t.state)),
                None,
            )
        }
        Err(e) => {
            tracing::warn!(ticket = %id, mark = ?what, by = %s.user, error = %e, "dashboard: a mark did not go through");
            let status = e.status();
            render(&p, &local, &s, None, Some(e.to_string()), None, status).await
        }
    }
}

/// `/ops/` and `/ops/tickets/ID`.
pub fn routes(portal: Arc<Portal>, local: Local) -> warp::filters::BoxedFilter<(Response<Body>,)> {
    let local = Arc::new(local);
    let p = warp::any().map(move || portal.clone());
    let l = warp::any().map(move || local.clone());
    let cookies = warp::header::optional::<String>("cookie");
    let show = warp::path::end()
        .and(warp::get())
        .and(cookies)
        .and(
            warp::query::<PageQuery>()
                .or(warp::any().map(PageQuery::default))
                .unify(),
        )
        .and(p.clone())
        .and(l.clone())
        .then(show_page);
    let mark = warp::path!("tickets" / String)
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(cookies)
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::form::<MarkForm>())
        .and(p)
        .and(l)
        .then(mark_ticket);
    warp::path("ops")
        .and(show.or(mark).unify().recover(super::rejection).unify())
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::session;
    use crate::portal::users::{User, Users};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn disk(id: &str, slot: u32) -> DiskConfig {
        DiskConfig {
            id: id.into(),
            path: format!("/srv/{id}").into(),
            serial: Some(format!("SN-{id}")),
            location: cluster::Location {
                enclosure: Some("e1".into()),
                slot: Some(slot),
                ..cluster::Location::default()
            },
        }
    }

    fn health(disks: serde_json::Value, warnings: &[&str]) -> BackendHealth {
        serde_json::from_value(serde_json::json!({
            "images": 2, "disks": disks, "warnings": warnings, "status": "ok",
        }))
        .unwrap()
    }

    #[test]
    fn a_slot_takes_its_state_from_the_backend_and_the_monitor_s_probe() {
        let d = disk("a1", 1);
        let h = health(
            serde_json::json!([{ "id": "a1", "state": "healthy", "free_bytes": 2_000_000_000u64, "total_bytes": 4_000_000_000u64 }]),
            &[],
        );
        assert_eq!(
            slot_state(&d, Some(&h), Some("12 probes passed, last in 1 ms")),
            (SlotState::Healthy, Some("2.0 GB free of 4.0 GB".into()))
        );
        let h = health(
            serde_json::json!([{ "id": "a1", "state": "failed", "error": "health probe: Input/output error (os error 5)", "since": 1 }]),
            &[],
        );
        assert_eq!(slot_state(&d, Some(&h), None).0, SlotState::Failed);
        assert_eq!(
            slot_state(&d, Some(&h), Some("missing: /srv/a1 does not exist")),
            (SlotState::Missing, Some("/srv/a1 does not exist".into()))
        );
        let gone = health(
            serde_json::json!([{ "id": "a1", "state": "failed", "error": "health probe: No such file or directory (os error 2)", "since": 1 }]),
            &[],
        );
        assert_eq!(slot_state(&d, Some(&gone), None).0, SlotState::Missing);
        let slow = health(
            serde_json::json!([{ "id": "a1", "state": "slow", "probe_ms": 2400, "since": 1 }]),
            &[],
        );
        assert_eq!(
            slot_state(&d, Some(&slow), None),
            (SlotState::Slow, Some("last probe took 2400 ms".into()))
        );
        // Not taken into service: refused, with the backend's reason.
        let refused = health(
            serde_json::json!([]),
            &["disk at /srv/a1 is disk b2 of node node-b, not disk a1 of node node-a: not used"],
        );
        let (state, why) = slot_state(&d, Some(&refused), None);
        assert_eq!(state, SlotState::Refused);
        assert!(why.unwrap().contains("is disk b2"));
        assert_eq!(
            slot_state(&disk("a10", 2), Some(&refused), None),
            (
                SlotState::Refused,
                Some("not in service on its node".into())
            ),
            "a1 is not a10"
        );
        // The node silent: what its monitor says, or unknown.
        assert_eq!(slot_state(&d, None, None).0, SlotState::Unknown);
        assert_eq!(
            slot_state(&d, None, Some("failed: reading x: Not a directory")).0,
            SlotState::Failed
        );
    }

    #[test]
    fn dates_and_ages_read_plainly() {
        assert_eq!(utc(0, false), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_709_210_096, true), "2024-02-29T12:34:56Z");
        assert_eq!(utc(951_782_400, true), "2000-02-29T00:00:00Z");
        assert_eq!(ago(1000, 1000), "just now");
        assert_eq!(ago(1000, 1200), "just now", "a clock a little ahead");
        assert_eq!(ago(1000, 900), "100 s ago");
        assert_eq!(ago(1600, 1000), "10 min ago");
        assert_eq!(ago(10_000, 1000), "2 h ago");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
    }

    /// A frontend's portal and dashboard over a cluster whose node-a is not running and whose
    /// node-b accepts connections but never answers; accounts `olga` (operator) and `ada`
    /// (content provider).
    struct Site {
        addr: std::net::SocketAddr,
        secret: Secret,
        _dir: tempfile::TempDir,
        _hanging: [std::net::TcpListener; 2],
    }

    impl Site {
        async fn start() -> Site {
            let dir = tempfile::tempdir().unwrap();
            // Two ports nothing listens on: both bound at once (one bound and dropped, then
            // another, can be the same port twice), then let go.
            let (a, a_monitor) = {
                let free = [(); 2].map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
                (free[0].local_addr().unwrap(), free[1].local_addr().unwrap())
            };
            let hanging = [(); 2].map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
            let (b, b_monitor) = (
                hanging[0].local_addr().unwrap(),
                hanging[1].local_addr().unwrap(),
            );
            let config = dir.path().join("cluster.toml");
            std::fs::write(
                &config,
                format!(
                    "name = \"test <cluster>\"\n\
                     [[node]]\nname = \"node-a\"\naddress = \"{a}\"\nmonitor = \"{a_monitor}\"\n\
                     power_domain = \"A\"\nrack = \"r1\"\n\
                     [[node.disk]]\nid = \"a1\"\npath = \"a1\"\nserial = \"SN-A1\"\n\
                     location = {{ enclosure = \"e1\", slot = 1 }}\n\
                     [[node]]\nname = \"node-b\"\naddress = \"{b}\"\nmonitor = \"{b_monitor}\"\n\
                     power_domain = \"B\"\nrack = \"r1\"\n"
                ),
            )
            .unwrap();
            let config = ClusterConfig::load(&config).unwrap();
            floor::secret_file::create(&config.secret_path()).unwrap();
            let secret = Secret::load(&config.secret_path()).unwrap();
            let account = |name: &str, role| User {
                name: name.into(),
                hash: "not used: sessions are made directly".into(),
                created: 0,
                role,
                generation: 0,
            };
            Users {
                version: 0,
                users: vec![
                    account("olga", Role::Operator),
                    account("ada", Role::ContentProvider),
                ],
            }
            .save(&config.users_path())
            .unwrap();
            let portal = Arc::new(Portal::new(&config, Arc::new(Table::new(&[]))));
            let local = Local {
                name: "fe-1".into(),
                runner: cluster::worker::Runner::new(),
            };
            let routes = super::super::routes(portal.clone())
                .or(routes(portal, local))
                .unify();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(warp::serve(routes).incoming(listener).run());
            Site {
                addr,
                secret,
                _dir: dir,
                _hanging: hanging,
            }
        }

        fn cookie(&self, user: &str) -> String {
            let value = session::start(&self.secret, user, 0, "5e55", cluster::unix_now());
            format!("{}={value}", session::COOKIE)
        }

        fn csrf(&self, cookie: &str) -> String {
            let s = session::from_cookies(&self.secret, Some(cookie), cluster::unix_now()).unwrap();
            session::csrf(&self.secret, &s)
        }

        /// One request; the status, the head (lower-case names) and the body.
        async fn send(
            &self,
            method: &str,
            path: &str,
            headers: &[(&str, String)],
            body: &str,
        ) -> (u16, String, String) {
            let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            let mut request = format!(
                "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
                self.addr,
                body.len()
            );
            for (k, v) in headers {
                request.push_str(&format!("{k}: {v}\r\n"));
            }
            request.push_str("\r\n");
            request.push_str(body);
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            let answer = String::from_utf8_lossy(&answer).into_owned();
            let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
            let status = head[9..12].parse().unwrap();
            (status, head.to_ascii_lowercase(), body.to_string())
        }

        async fn get(&self, path: &str, cookie: Option<&str>) -> (u16, String, String) {
            let headers: Vec<(&str, String)> = cookie
                .map(|c| ("cookie", c.to_string()))
                .into_iter()
                .collect();
            self.send("GET", path, &headers, "").await
        }

        async fn post_mark(
            &self,
            id: &str,
            cookie: Option<&str>,
            form: &str,
            origin: Option<&str>,
        ) -> (u16, String, String) {
            let mut headers = vec![(
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            )];
            if let Some(c) = cookie {
                headers.push(("cookie", c.to_string()));
            }
            if let Some(o) = origin {
                headers.push(("origin", o.to_string()));
            }
            self.send("POST", &format!("/ops/tickets/{id}"), &headers, form)
                .await
        }
    }

    #[tokio::test]
    async fn without_a_session_the_dashboard_sends_to_the_sign_in_page_and_back() {
        let site = Site::start().await;
        let (status, head, _) = site.get("/ops/", None).await;
        assert_eq!(status, 303, "{head}");
        assert!(head.contains("location: /portal/?next=%2fops%2f"), "{head}");
        assert!(head.contains("cache-control: no-store"), "{head}");
        let (status, _, body) = site.get("/portal/?next=%2Fops%2F", None).await;
        assert_eq!(status, 200);
        assert!(
            body.contains("<input type=\"hidden\" name=\"next\" value=\"/ops/\">"),
            "{body}"
        );
        assert!(body.contains("operator's dashboard"), "{body}");
        // Signed in already: on to where it was going. Never to another site.
        let olga = site.cookie("olga");
        let (status, head, _) = site.get("/portal/?next=%2Fops%2F", Some(&olga)).await;
        assert_eq!(status, 303);
        assert!(head.contains("location: /ops/\r\n"), "{head}");
        let (status, _, _) = site
            .get("/portal/?next=%2F%2Fevil.example%2Fops%2F", Some(&olga))
            .await;
        assert_eq!(status, 200, "the upload page, not a redirect");
        let (status, head, _) = site.post_mark("node-a.m1", None, "mark=done", None).await;
        assert_eq!(status, 303, "a mark without a session: {head}");
        // An account removed since its sign-in signs in again.
        let (status, _, _) = site.get("/ops/", Some(&site.cookie("gone"))).await;
        assert_eq!(status, 303);
    }

    #[tokio::test]
    async fn a_content_provider_is_refused_with_a_plain_page() {
        let site = Site::start().await;
        let ada = site.cookie("ada");
        let (status, head, body) = site.get("/ops/", Some(&ada)).await;
        assert_eq!(status, 403, "{head}");
        assert!(head.contains("cache-control: no-store"), "{head}");
        assert!(head.contains("content-type: text/html"), "{head}");
        assert!(body.contains("Operators only"), "{body}");
        assert!(
            !body.contains("node-a"),
            "nothing of the cluster shown: {body}"
        );
        let token = site.csrf(&ada);
        let (status, _, _) = site
            .post_mark(
                "node-a.m1",
                Some(&ada),
                &format!("csrf={token}&mark=done"),
                None,
            )
            .await;
        assert_eq!(status, 403);
    }

    #[tokio::test]
    async fn an_operator_sees_the_cluster_and_silent_nodes_are_said_so_in_time() {
        let site = Site::start().await;
        let olga = site.cookie("olga");
        let asked = Instant::now();
        let (status, head, body) = site.get("/ops/", Some(&olga)).await;
        let took = asked.elapsed();
        assert_eq!(status, 200, "{head}\n{body}");
        assert!(head.contains("cache-control: no-store"), "{head}");
        assert!(
            took < ASK_TICKETS + Duration::from_secs(2),
            "a node that never answers costs its deadline only: {took:?}"
        );
        assert!(body.contains("test &lt;cluster&gt;"), "escaped: {body}");
        for node in ["node-a", "node-b"] {
            assert!(
                body.contains(&format!("data-node=\"{node}\" data-answering=\"false\"")),
                "{node}: {body}"
            );
        }
        assert!(body.contains("connection refused"), "node-a: {body}");
        assert!(body.contains("did not answer"), "node-b hangs: {body}");
        assert!(
            body.contains("data-disk=\"a1\" data-state=\"unknown\""),
            "{body}"
        );
        assert!(body.contains("Workers") && body.contains("frontend fe-1"));
        // The trailing slash is the page's address; without it, the same page.
        let (status, _, _) = site.get("/ops", Some(&olga)).await;
        assert_eq!(status, 200);
        let (status, _, body) = site
            .get("/ops/?marked=node-a.m1&state=done", Some(&olga))
            .await;
        assert_eq!(status, 200);
        assert!(body.contains("Ticket node-a.m1 is done now."), "{body}");
        let (status, _, body) = site
            .get("/ops/?marked=%3Cb%3E&state=done", Some(&olga))
            .await;
        assert_eq!(status, 200);
        assert!(!body.contains("<b>") && !body.contains("id=\"notice\""));
        let (status, _, _) = site.get("/ops/nothing", Some(&olga)).await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn a_mark_needs_the_session_s_csrf_token_and_says_why_it_failed() {
        let site = Site::start().await;
        let olga = site.cookie("olga");
        let token = site.csrf(&olga);
        let (status, _, body) = site
            .post_mark("node-a.m1", Some(&olga), "mark=done", None)
            .await;
        assert_eq!(status, 403, "no token: {body}");
        assert!(body.contains("CSRF"), "{body}");
        let other = site.csrf(&site.cookie("ada"));
        let (status, _, _) = site
            .post_mark(
                "node-a.m1",
                Some(&olga),
                &format!("csrf={other}&mark=done"),
                None,
            )
            .await;
        assert_eq!(status, 403, "another session's token");
        let (status, _, _) = site
            .post_mark(
                "node-a.m1",
                Some(&olga),
                &format!("csrf={token}&mark=done"),
                Some("http://evil.example"),
            )
            .await;
        assert_eq!(status, 403, "from another site");
        let (status, _, _) = site
            .post_mark(
                "node-a.m1",
                Some(&olga),
                &format!("csrf={token}&mark=burn"),
                None,
            )
            .await;
        assert_eq!(status, 400);
        // With the token: the frontend asks node-a's monitor, which is not running.
        let (status, head, body) = site
            .post_mark(
                "node-a.m1",
                Some(&olga),
                &format!("csrf={token}&mark=done"),
                Some(&format!("http://{}", site.addr)),
            )
            .await;
        assert_eq!(status, 502, "{head}");
        assert!(
            body.contains("ticket node-a.m1 was not marked") && body.contains("connection refused"),
            "{body}"
        );
        assert!(body.contains("role=\"alert\""), "{body}");
        let (status, _, body) = site
            .post_mark(
                "node-z.m1",
                Some(&olga),
                &format!("csrf={token}&mark=acquit"),
                None,
            )
            .await;
        assert_eq!(status, 404);
        assert!(body.contains("names no node of this cluster"), "{body}");
    }
}
