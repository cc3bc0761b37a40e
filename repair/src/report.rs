//! The weekly visit report: what the operator must do on the next visit, in walking order
//! (rack → node → enclosure → slot), with what to bring, the label and serial to look for, the
//! evidence and what the cluster already did; what was repaired in the last week; the
//! cluster's state (redundancy, disks filling, SMART warnings); and the failure log, counts of
//! faults per kind of part over the last week and since the start, like the table of the
//! Tertiary Disk paper.
//!
//! [`VisitReport::build`] is a pure function of what the nodes said (their tickets, events and
//! status) and the time; [`VisitReport::text`] and [`VisitReport::html`] render it. The HTML
//! is one self-contained page (no external resources, an SVG picture of each enclosure to open
//! with the slots to touch marked) that reads on a phone and prints on A4.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use cluster::redundancy::{ClusterStatus, ImageHealth};
use cluster::ticket::{Part, Ticket, TicketPage, TicketState};
use cluster::{ClusterConfig, Component, Event, EventKind};
use serde::Serialize;

/// A week, in seconds: the report's period.
pub const WEEK: u64 = 7 * 86_400;

/// Unhealthy images named one by one; past this many only their number is given.
const IMAGES_NAMED: usize = 20;

/// What one node's monitor answered when asked for its tickets.
#[derive(Debug, Clone)]
pub struct NodeTickets {
    pub node: String,
    /// Its page, or why it could not be had (in a sentence naming the monitor).
    pub answer: Result<TicketPage, String>,
}

/// Everything a report is made of, as gathered from the nodes.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub config: &'a ClusterConfig,
    /// One answer per node asked.
    pub tickets: &'a [NodeTickets],
    pub status: &'a ClusterStatus,
    /// The events the nodes' monitors and backends hold, since the start.
    pub events: &'a [Event],
    /// Event logs that could not be read ("the backend of node-b: connection refused").
    pub event_problems: &'a [String],
    /// Seconds since the Unix epoch.
    pub now: u64,
    /// The local time's offset from UTC in seconds, for the times the report prints.
    pub utc_offset: i32,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitReport {
    pub cluster: String,
    pub made_at: u64,
    pub utc_offset: i32,
    /// What to do on the visit: urgent first, then in walking order.
    pub visit: Vec<VisitItem>,
    /// Tickets verified, closed or acquitted in the last week.
    pub done: Vec<DoneItem>,
    /// Nodes whose monitors did not say what their tickets are.
    pub not_answering: Vec<NotAnswering>,
    /// What the nodes could not read to make their tickets, and event logs that could not be
    /// read.
    pub problems: Vec<String>,
    pub state: ClusterState,
    pub failure_log: FailureLog,
    /// A picture of each enclosure to open.
    pub enclosures: Vec<Enclosure>,
}

/// One part to see to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitItem {
    pub ticket: String,
    /// Open, or done by the operator but not yet seen working.
    pub state: TicketState,
    pub urgent: bool,
    /// What is wrong, in one sentence.
    pub summary: String,
    /// The most likely part ("disk a1").
    pub part: String,
    /// What kind of part it is ("disk", "cable or backplane").
    pub kind: String,
    /// How likely it is, in percent.
    pub likelihood: u8,
    /// The other parts it may be, most likely first, each with what to bring.
    pub alternatives: Vec<String>,
    pub bring: String,
    pub todo: String,
    pub label: Label,
    pub serial: Option<String>,
    /// The evidence, in one line.
    pub evidence: String,
    /// What the cluster already did by itself.
    pub actions: Vec<String>,
    pub out_of_service: Vec<String>,
    pub opened_at: u64,
    pub done_at: Option<u64>,
}

/// Where a part is, as printed on the hardware.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Label {
    pub rack: String,
    pub node: String,
    pub enclosure: Option<String>,
    pub slot: Option<u32>,
    /// For a host adapter or bus.
    pub adapter: Option<u32>,
    pub bus: Option<u32>,
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.rack.is_empty() {
            parts.push(format!("rack {}", self.rack));
        }
        parts.push(format!("node {}", self.node));
        if let Some(e) = &self.enclosure {
            parts.push(format!("enclosure {e}"));
        }
        if let Some(s) = self.slot {
            parts.push(format!("slot {s}"));
        }
        if let Some(a) = self.adapter {
            parts.push(format!("adapter {a}"));
        }
        if let Some(b) = self.bus {
            parts.push(format!("bus {b}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A ticket finished in the last week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DoneItem {
    pub ticket: String,
    pub state: TicketState,
    pub part: String,
    pub label: Label,
    pub serial: Option<String>,
    pub summary: String,
    /// When it was verified, closed or acquitted.
    pub at: u64,
    /// The last note on it (who marked it, what they said, what the node saw).
    pub note: Option<String>,
}

/// A node whose tickets are not known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotAnswering {
    pub node: String,
    pub why: String,
}

/// The cluster at the time of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterState {
    pub images: usize,
    pub healthy: usize,
    pub under_replicated: usize,
    pub repairing: usize,
    pub lost: usize,
    pub withdrawn: usize,
    pub nodes: Vec<NodeLine>,
    /// The first unhealthy images, with what was lost.
    pub unhealthy: Vec<String>,
    /// How many more are not named.
    pub unhealthy_more: usize,
    /// Copies under way.
    pub repairs: Vec<String>,
    /// Disks past their filling threshold in the last week.
    pub filling: Vec<Watch>,
    /// SMART warnings and failed verdicts seen in the last week.
    pub smart: Vec<Watch>,
}

/// A node at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeLine {
    pub name: String,
    pub up: bool,
    pub error: Option<String>,
    /// Its disks that are not healthy ("b1: failed").
    pub disks: Vec<String>,
}

/// Something to keep an eye on: a disk filling up, a SMART warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watch {
    pub node: String,
    /// What it is about ("disk a1").
    pub about: String,
    /// The latest event's summary.
    pub summary: String,
    pub first_seen: u64,
    pub last_seen: u64,
    /// Events of this kind about it: in the last week, and since the start (a trend).
    pub week: usize,
    pub all: usize,
}

/// Faults per kind of part, like the Tertiary Disk paper's table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailureLog {
    /// The oldest record the counts go back to.
    pub since: Option<u64>,
    /// One row per kind of part, from the tickets (one per physical fault).
    pub rows: Vec<FailureRow>,
    /// The events behind them, per kind of component.
    pub events: Vec<EventRow>,
    /// Nodes whose tickets are not counted (their monitors did not answer).
    pub not_counted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureRow {
    /// The kind of part ("disk", "cable or backplane", …).
    pub kind: String,
    /// How many the cluster has, where the configuration says ("12 disks").
    pub installed: Option<String>,
    /// Faults opened in the last week, and since the start.
    pub week: usize,
    pub all: usize,
    /// Faults the operator found to be false alarms, since the start.
    pub false_alarms: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub component: String,
    pub week: usize,
    pub all: usize,
}

/// An enclosure to open, drawn with its slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enclosure {
    pub rack: String,
    pub node: String,
    pub name: String,
    /// In slot order; gaps between configured slots are drawn as empty bays.
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    pub slot: u32,
    pub disk: Option<String>,
    pub serial: Option<String>,
    pub mark: SlotMark,
}

/// What the operator does at a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mark", rename_all = "snake_case")]
pub enum SlotMark {
    /// No disk configured in this bay.
    Empty,
    /// Nothing to do.
    Fine,
    /// A part to replace here (an open ticket).
    Replace { ticket: String },
    /// Marked done, not yet seen working: look at it.
    Check { ticket: String },
}

/// Kinds of part, in the failure log's order.
const PART_KINDS: [&str; 6] = [
    "disk",
    "cable or backplane",
    "host adapter or bus",
    "enclosure element",
    "node",
    "software",
];

/// Slots drawn per row of an enclosure picture.
const SLOTS_PER_ROW: usize = 12;
/// Past this span between the lowest and highest slot, only configured slots are drawn.
const MAX_DRAWN_SPAN: u32 = 96;

impl VisitReport {
    /// Puts the report together. Pure: the same inputs give the same report.
    pub fn build(inputs: Inputs<'_>) -> VisitReport {
        let Inputs {
            config,
            tickets,
            status,
            events,
            event_problems,
            now,
            utc_offset,
        } = inputs;
        let week_start = now.saturating_sub(WEEK);
        let mut all_tickets: Vec<&Ticket> = Vec::new();
        let mut not_answering = Vec::new();
        let mut problems = Vec::new();
        for answer in tickets {
            match &answer.answer {
                Ok(page) => {
                    all_tickets.extend(&page.tickets);
                    problems.extend(
                        page.problems
                            .iter()
                            .map(|p| format!("{}: {}", answer.node, one_line(p))),
                    );
                }
                Err(why) => not_answering.push(NotAnswering {
                    node: answer.node.clone(),
                    why: one_line(why),
                }),
            }
        }
        // A ticket is kept by one node; should two answer with the same id, it counts once.
        let mut seen = BTreeSet::new();
        all_tickets.retain(|t| seen.insert(t.id.as_str()));
        problems.extend(event_problems.iter().map(|p| one_line(p)));

        let mut visit: Vec<VisitItem> = all_tickets
            .iter()
            .filter(|t| matches!(t.state, TicketState::Open | TicketState::Done))
            .map(|t| visit_item(config, t))
            .collect();
        visit.sort_by(walking_order);

        let mut done: Vec<DoneItem> = all_tickets
            .iter()
            .filter_map(|t| {
                let at = match t.state {
                    TicketState::Verified => t.verified_at.unwrap_or(t.updated_at),
                    TicketState::Closed => t.closed_at.or(t.verified_at).unwrap_or(t.updated_at),
                    TicketState::Acquitted => t.updated_at,
                    TicketState::Open | TicketState::Done => return None,
                };
                (at >= week_start).then(|| {
                    let item = visit_item(config, t);
                    DoneItem {
                        ticket: t.id.clone(),
                        state: t.state,
                        part: item.part,
                        label: item.label,
                        serial: item.serial,
                        summary: one_line(&t.summary),
                        at,
                        note: t.notes.last().map(|n| one_line(n)),
                    }
                })
            })
            .collect();
        done.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.ticket.cmp(&b.ticket)));

        let enclosures = enclosures(config, &visit);
        let failure_log = failure_log(config, &all_tickets, events, &not_answering, week_start);
        VisitReport {
            cluster: config.name.clone(),
            made_at: now,
            utc_offset,
            visit,
            done,
            not_answering,
            problems,
            state: cluster_state(status, events, week_start),
            failure_log,
            enclosures,
        }
    }

    /// The mail's subject: the cluster, and what the visit asks.
    pub fn subject(&self) -> String {
        let urgent = self.visit.iter().filter(|v| v.urgent).count();
        let what = match (self.visit.len(), urgent) {
            (0, _) => "nothing to replace".to_string(),
            (n, 0) => format!("{n} {} to see to", plural(n, "part", "parts")),
            (n, u) => format!("{n} {} to see to, {u} URGENT", plural(n, "part", "parts")),
        };
        let silent = if self.not_answering.is_empty() {
            String::new()
        } else {
            format!(
                "; {} {} not answering",
                self.not_answering.len(),
                plural(self.not_answering.len(), "node", "nodes")
            )
        };
        format!(
            "{}: visit report of {}, {what}{silent}",
            one_line(&self.cluster),
            self.date(self.made_at)
        )
    }

    /// A time as the report prints it, in its local offset.
    fn time(&self, t: u64) -> String {
        format_time(t, self.utc_offset, "%a %Y-%m-%d %H:%M", true)
    }

    fn date(&self, t: u64) -> String {
        format_time(t, self.utc_offset, "%a %Y-%m-%d", false)
    }

    /// The report as plain text (the mail's text part, and `td report`).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let o = &mut out;
        let _ = writeln!(o, "Visit report: {}", one_line(&self.cluster));
        let _ = writeln!(o, "Made {}", self.time(self.made_at));
        let _ = writeln!(o);
        let urgent = self.visit.iter().filter(|v| v.urgent).count();
        let _ = writeln!(
            o,
            "TO DO ON THIS VISIT: {}",
            match (self.visit.len(), urgent) {
                (0, _) => "nothing to replace".to_string(),
                (n, 0) => format!("{n} {}", plural(n, "part", "parts")),
                (n, u) => format!("{n} {} ({u} urgent)", plural(n, "part", "parts")),
            }
        );
        for (n, v) in self.visit.iter().enumerate() {
            let _ = writeln!(o);
            let flag = match (v.urgent, v.state) {
                (true, _) => "URGENT  ",
                (false, TicketState::Done) => "CHECK  ",
                _ => "",
            };
            let verb = if v.kind == "software" {
                "Report"
            } else if v.state == TicketState::Done {
                "Check"
            } else {
                "Replace"
            };
            let serial = v
                .serial
                .as_ref()
                .map(|s| format!(" (serial {})", one_line(s)))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "{}. {flag}{verb} {}: {}{serial}",
                n + 1,
                one_line(&v.part),
                one_line(&v.label.to_string())
            );
            let _ = writeln!(o, "   Why: {}", one_line(&v.summary));
            if let (TicketState::Done, Some(at)) = (v.state, v.done_at) {
                let _ = writeln!(
                    o,
                    "   Marked done {}, not yet seen working: check it is seated and powered",
                    self.time(at)
                );
            }
            let _ = writeln!(o, "   Bring: {}", one_line(&v.bring));
            let _ = writeln!(o, "   Do: {}", one_line(&v.todo));
            if v.likelihood < 100 {
                let _ = writeln!(o, "   Most likely ({} %); or else:", v.likelihood);
                for a in &v.alternatives {
                    let _ = writeln!(o, "     - {}", one_line(a));
                }
            }
            let _ = writeln!(o, "   Evidence: {}", one_line(&v.evidence));
            if !v.actions.is_empty() {
                let _ = writeln!(o, "   Already done: {}", one_line(&v.actions.join("; ")));
            }
            if !v.out_of_service.is_empty() {
                let _ = writeln!(
                    o,
                    "   Out of service meanwhile: {}",
                    one_line(&v.out_of_service.join("; "))
                );
            }
            let _ = writeln!(
                o,
                "   Ticket {}, open since {}",
                one_line(&v.ticket),
                self.time(v.opened_at)
            );
        }
        if !self.not_answering.is_empty() {
            let _ = writeln!(o);
            let _ = writeln!(o, "NOT ANSWERING (their tickets are not in this report):");
            for n in &self.not_answering {
                let _ = writeln!(o, "  node {}: {}", one_line(&n.node), n.why);
            }
        }
        for e in &self.enclosures {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "Enclosure {} ({}node {}):",
                one_line(&e.name),
                if e.rack.is_empty() {
                    String::new()
                } else {
                    format!("rack {}, ", one_line(&e.rack))
                },
                one_line(&e.node)
            );
            let row: Vec<String> = e
                .slots
                .iter()
                .map(|s| match &s.mark {
                    SlotMark::Empty => format!("[{} -]", s.slot),
                    SlotMark::Fine => format!("[{}]", s.slot),
                    SlotMark::Replace { .. } => format!("[{} REPLACE]", s.slot),
                    SlotMark::Check { .. } => format!("[{} CHECK]", s.slot),
                })
                .collect();
            let _ = writeln!(o, "  {}", row.join(" "));
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "DONE IN THE LAST WEEK:");
        if self.done.is_empty() {
            let _ = writeln!(o, "  nothing");
        }
        for d in &self.done {
            let _ = writeln!(
                o,
                "  {} {}: {} ({}){}",
                self.date(d.at),
                done_word(d.state),
                one_line(&d.part),
                one_line(&d.label.to_string()),
                d.note
                    .as_ref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            );
        }
        let s = &self.state;
        let _ = writeln!(o);
        let _ = writeln!(o, "CLUSTER STATE:");
        let _ = writeln!(
            o,
            "  images: {} in all, {} healthy, {} under-replicated ({} being repaired), {} lost{}",
            s.images,
            s.healthy,
            s.under_replicated,
            s.repairing,
            s.lost,
            if s.withdrawn > 0 {
                format!(", {} withdrawn", s.withdrawn)
            } else {
                String::new()
            }
        );
        for n in &s.nodes {
            let _ = writeln!(
                o,
                "  node {}: {}{}",
                one_line(&n.name),
                if n.up { "up" } else { "NOT ANSWERING" },
                if n.disks.is_empty() {
                    String::new()
                } else {
                    format!("; disks {}", one_line(&n.disks.join(", ")))
                }
            );
        }
        for u in &s.unhealthy {
            let _ = writeln!(o, "  {}", one_line(u));
        }
        if s.unhealthy_more > 0 {
            let _ = writeln!(o, "  … and {} more images not healthy", s.unhealthy_more);
        }
        for r in &s.repairs {
            let _ = writeln!(o, "  repairing {}", one_line(r));
        }
        if s.filling.is_empty() {
            let _ = writeln!(o, "  disks filling: none");
        }
        for w in &s.filling {
            let _ = writeln!(
                o,
                "  filling: node {} {}: {} (last seen {})",
                one_line(&w.node),
                one_line(&w.about),
                one_line(&w.summary),
                self.time(w.last_seen)
            );
        }
        if s.smart.is_empty() {
            let _ = writeln!(o, "  SMART warnings: none");
        }
        for w in &s.smart {
            let _ = writeln!(
                o,
                "  SMART: node {} {}: {} ({} this week, {} since {})",
                one_line(&w.node),
                one_line(&w.about),
                one_line(&w.summary),
                w.week,
                w.all,
                self.date(w.first_seen)
            );
        }
        let f = &self.failure_log;
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "FAILURE LOG (faults per kind of part{}):",
            f.since
                .map(|t| format!("; records since {}", self.date(t)))
                .unwrap_or_default()
        );
        let _ = writeln!(
            o,
            "  {:<20} {:>14} {:>10} {:>12} {:>13}",
            "part", "installed", "last week", "since start", "false alarms"
        );
        for r in &f.rows {
            let _ = writeln!(
                o,
                "  {:<20} {:>14} {:>10} {:>12} {:>13}",
                r.kind,
                r.installed.as_deref().unwrap_or("-"),
                r.week,
                r.all,
                r.false_alarms
            );
        }
        if !f.events.is_empty() {
            let _ = writeln!(o, "  events recorded, per component:");
            for e in &f.events {
                let _ = writeln!(
                    o,
                    "  {:<20} {:>14} {:>10} {:>12}",
                    e.component, "", e.week, e.all
                );
            }
        }
        for n in &f.not_counted {
            let _ = writeln!(o, "  not counted: {}", one_line(n));
        }
        if !self.problems.is_empty() {
            let _ = writeln!(o);
            let _ = writeln!(o, "COULD NOT BE READ:");
            for p in &self.problems {
                let _ = writeln!(o, "  {p}");
            }
        }
        out
    }

    /// The report as one self-contained HTML page (the mail's HTML part, `td report --html`).
    pub fn html(&self) -> String {
        let mut out = String::new();
        let o = &mut out;
        let title = format!(
            "Visit report: {}, {}",
            self.cluster,
            self.date(self.made_at)
        );
        let _ = write!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
            esc(&title)
        );
        let _ = writeln!(o, "<h1>Visit report: {}</h1>", esc(&self.cluster));
        let urgent = self.visit.iter().filter(|v| v.urgent).count();
        let _ = writeln!(
            o,
            "<p class=\"meta\">Made {}. {}</p>",
            esc(&self.time(self.made_at)),
            esc(&match (self.visit.len(), urgent) {
                (0, _) => "Nothing to replace.".to_string(),
                (n, 0) => format!("{n} {} to see to.", plural(n, "part", "parts")),
                (n, u) => format!("{n} {} to see to, {u} urgent.", plural(n, "part", "parts")),
            })
        );
        if !self.not_answering.is_empty() {
            let _ = writeln!(
                o,
                "<div class=\"warn\"><strong>Not answering:</strong> their tickets are not in \
                 this report.<ul>"
            );
            for n in &self.not_answering {
                let _ = writeln!(o, "<li>node <b>{}</b>: {}</li>", esc(&n.node), esc(&n.why));
            }
            let _ = writeln!(o, "</ul></div>");
        }
        let _ = writeln!(o, "<h2>To do on this visit</h2>");
        if self.visit.is_empty() {
            let _ = writeln!(o, "<p>Nothing to replace.</p>");
        } else {
            let _ = writeln!(o, "<ol class=\"visit\">");
            for v in &self.visit {
                self.html_item(o, v);
            }
            let _ = writeln!(o, "</ol>");
        }
        if !self.enclosures.is_empty() {
            let _ = writeln!(o, "<h2>Enclosures to open</h2>");
            for e in &self.enclosures {
                let _ = writeln!(
                    o,
                    "<figure>{}<figcaption>Enclosure <b>{}</b>, {}node {}: red = replace, \
                     amber = check, dashed = empty bay.</figcaption></figure>",
                    enclosure_svg(e),
                    esc(&e.name),
                    if e.rack.is_empty() {
                        String::new()
                    } else {
                        format!("rack {}, ", esc(&e.rack))
                    },
                    esc(&e.node)
                );
            }
        }
        let _ = writeln!(o, "<h2>Done in the last week</h2>");
        if self.done.is_empty() {
            let _ = writeln!(o, "<p>Nothing.</p>");
        } else {
            let _ = writeln!(o, "<ul class=\"done\">");
            for d in &self.done {
                let _ = writeln!(
                    o,
                    "<li>{} <b>{}</b>: {} ({}){}</li>",
                    esc(&self.date(d.at)),
                    done_word(d.state),
                    esc(&d.part),
                    esc(&d.label.to_string()),
                    d.note
                        .as_ref()
                        .map(|n| format!(": {}", esc(n)))
                        .unwrap_or_default()
                );
            }
            let _ = writeln!(o, "</ul>");
        }
        self.html_state(o);
        self.html_failure_log(o);
        if !self.problems.is_empty() {
            let _ = writeln!(o, "<h2>Could not be read</h2><ul>");
            for p in &self.problems {
                let _ = writeln!(o, "<li>{}</li>", esc(p));
            }
            let _ = writeln!(o, "</ul>");
        }
        let _ = writeln!(o, "</body>\n</html>");
        out
    }

    fn html_item(&self, o: &mut String, v: &VisitItem) {
        let class = match (v.urgent, v.state) {
            (true, _) => "item urgent",
            (false, TicketState::Done) => "item check",
            _ => "item",
        };
        let verb = if v.kind == "software" {
            "Report"
        } else if v.state == TicketState::Done {
            "Check"
        } else {
            "Replace"
        };
        let _ = writeln!(o, "<li class=\"{class}\">");
        let flag = if v.urgent {
            "<span class=\"flag\">URGENT</span> "
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "<h3>{flag}{verb} {}</h3>\n<p class=\"where\">{}{}</p>",
            esc(&v.part),
            esc(&v.label.to_string()),
            v.serial
                .as_ref()
                .map(|s| format!(", serial <b class=\"serial\">{}</b>", esc(s)))
                .unwrap_or_default()
        );
        let _ = writeln!(o, "<dl>");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(o, "<dt>{k}</dt><dd>{v}</dd>");
        };
        row("Why", esc(&v.summary));
        if let (TicketState::Done, Some(at)) = (v.state, v.done_at) {
            row(
                "Marked done",
                format!(
                    "{}; not yet seen working: check it is seated and powered",
                    esc(&self.time(at))
                ),
            );
        }
        row("Bring", esc(&v.bring));
        row("Do", esc(&v.todo));
        if v.likelihood < 100 {
            row(
                "Or else",
                format!(
                    "this is the most likely part ({} %); otherwise:<ul>{}</ul>",
                    v.likelihood,
                    v.alternatives
                        .iter()
                        .map(|a| format!("<li>{}</li>", esc(a)))
                        .collect::<String>()
                ),
            );
        }
        row("Evidence", esc(&v.evidence));
        if !v.actions.is_empty() {
            row("Already done", esc(&v.actions.join("; ")));
        }
        if !v.out_of_service.is_empty() {
            row("Out of service", esc(&v.out_of_service.join("; ")));
        }
        row(
            "Ticket",
            format!(
                "{}, open since {}",
                esc(&v.ticket),
                esc(&self.time(v.opened_at))
            ),
        );
        let _ = writeln!(o, "</dl>\n</li>");
    }

    fn html_state(&self, o: &mut String) {
        let s = &self.state;
        let _ = writeln!(o, "<h2>Cluster state</h2>");
        let _ = writeln!(
            o,
            "<table class=\"counts\"><tr><th>images</th><th>healthy</th>\
             <th>under-replicated</th><th>being repaired</th><th>lost</th></tr>\
             <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td></tr></table>",
            s.images,
            s.healthy,
            s.under_replicated,
            s.repairing,
            if s.lost > 0 { " class=\"bad\"" } else { "" },
            s.lost
        );
        if s.withdrawn > 0 {
            let _ = writeln!(
                o,
                "<p>{} withdrawn images are not counted.</p>",
                s.withdrawn
            );
        }
        let _ = writeln!(o, "<ul class=\"nodes\">");
        for n in &s.nodes {
            let _ = writeln!(
                o,
                "<li>node <b>{}</b>: {}{}</li>",
                esc(&n.name),
                if n.up {
                    "up".to_string()
                } else {
                    "<span class=\"bad\">not answering</span>".to_string()
                },
                if n.disks.is_empty() {
                    String::new()
                } else {
                    format!("; disks {}", esc(&n.disks.join(", ")))
                }
            );
        }
        let _ = writeln!(o, "</ul>");
        if !s.unhealthy.is_empty() || !s.repairs.is_empty() {
            let _ = writeln!(o, "<ul class=\"images\">");
            for u in &s.unhealthy {
                let _ = writeln!(o, "<li>{}</li>", esc(u));
            }
            if s.unhealthy_more > 0 {
                let _ = writeln!(o, "<li>… and {} more</li>", s.unhealthy_more);
            }
            for r in &s.repairs {
                let _ = writeln!(o, "<li>repairing {}</li>", esc(r));
            }
            let _ = writeln!(o, "</ul>");
        }
        for (title, watches, none) in [
            (
                "Disks filling",
                &s.filling,
                "No disk is past its filling threshold.",
            ),
            ("SMART warnings", &s.smart, "No SMART warning this week."),
        ] {
            let _ = writeln!(o, "<h3>{title}</h3>");
            if watches.is_empty() {
                let _ = writeln!(o, "<p>{none}</p>");
                continue;
            }
            let _ = writeln!(o, "<ul>");
            for w in watches {
                let _ = writeln!(
                    o,
                    "<li>node {} {}: {} <span class=\"meta\">(this week {}, since {} {}; last \
                     seen {})</span></li>",
                    esc(&w.node),
                    esc(&w.about),
                    esc(&w.summary),
                    w.week,
                    esc(&self.date(w.first_seen)),
                    w.all,
                    esc(&self.time(w.last_seen))
                );
            }
            let _ = writeln!(o, "</ul>");
        }
    }

    fn html_failure_log(&self, o: &mut String) {
        let f = &self.failure_log;
        let _ = writeln!(o, "<h2>Failure log</h2>");
        let _ = writeln!(
            o,
            "<p class=\"meta\">Faults per kind of part (one per ticket){}.</p>",
            f.since
                .map(|t| format!("; records since {}", esc(&self.date(t))))
                .unwrap_or_default()
        );
        let _ = writeln!(
            o,
            "<table class=\"log\"><tr><th>part</th><th>installed</th><th>last week</th>\
             <th>since start</th><th>false alarms</th></tr>"
        );
        for r in &f.rows {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.kind),
                esc(r.installed.as_deref().unwrap_or("–")),
                r.week,
                r.all,
                r.false_alarms
            );
        }
        let _ = writeln!(o, "</table>");
        if !f.events.is_empty() {
            let _ = writeln!(
                o,
                "<table class=\"log\"><tr><th>events about</th><th>last week</th>\
                 <th>since start</th></tr>"
            );
            for e in &f.events {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&e.component),
                    e.week,
                    e.all
                );
            }
            let _ = writeln!(o, "</table>");
        }
        for n in &f.not_counted {
            let _ = writeln!(o, "<p class=\"warn\">Not counted: {}</p>", esc(n));
        }
    }
}

/// The page's style: readable on a phone, printable on A4, nothing dark behind text.
const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;line-height:1.4;color:#111;
background:#fff;margin:0 auto;padding:1em;max-width:52em}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;border-bottom:1px solid #999;margin-top:1.5em}
h3{font-size:1.05em;margin:.2em 0}
.meta{color:#555}
.warn{border:2px solid #b26a00;padding:.4em .8em;margin:.8em 0}
ol.visit{padding-left:1.4em}
.item{border:1px solid #bbb;border-left:6px solid #555;padding:.5em .8em;margin:0 0 .8em 0}
.item.urgent{border-left-color:#c62828}
.item.check{border-left-color:#e0a000}
.flag{color:#c62828;border:2px solid #c62828;padding:0 .3em;font-size:.85em}
.serial{font-family:ui-monospace,Menlo,Consolas,monospace}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15em .8em;margin:.4em 0}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
dd ul{margin:.2em 0;padding-left:1.2em}
figure{margin:.8em 0}figure svg{max-width:100%;height:auto}
figcaption{font-size:.9em;color:#444}
table{border-collapse:collapse;margin:.5em 0;max-width:100%}
th,td{border:1px solid #bbb;padding:.2em .5em;text-align:right}
th:first-child,td:first-child{text-align:left}
table.counts td,table.counts th{text-align:center}
.bad{color:#c62828;font-weight:600}
@media (max-width:30em){dl{grid-template-columns:1fr}dt{margin-top:.3em}body{padding:.5em}
table.log{display:block;overflow-x:auto}}
@media print{
@page{size:A4;margin:14mm}
body{max-width:none;padding:0;font-size:10.5pt;color:#000;background:#fff}
.item,figure,table,.warn{break-inside:avoid}
h2,h3{break-after:avoid}
svg{print-color-adjust:exact;-webkit-print-color-adjust:exact}
}
";

/// A ticket's most likely part, where it is and what to do about it.
fn visit_item(config: &ClusterConfig, t: &Ticket) -> VisitItem {
    let top = t.suspects.first();
    let node_config = config.node(&t.node);
    let rack = if t.rack.is_empty() {
        node_config.map(|n| n.rack.clone()).unwrap_or_default()
    } else {
        t.rack.clone()
    };
    // The configuration knows a disk's place when the ticket does not say it.
    let configured = top.and_then(|s| match &s.part {
        Part::Disk { disk } | Part::CableOrBackplane { disk } => config
            .nodes
            .iter()
            .flat_map(|n| &n.disks)
            .find(|d| &d.id == disk),
        _ => None,
    });
    let location = top
        .and_then(|s| s.location.clone())
        .or_else(|| configured.map(|d| d.location.clone()))
        .unwrap_or_default();
    let is_bus = matches!(top.map(|s| &s.part), Some(Part::Bus { .. }));
    let enclosure = match top.map(|s| &s.part) {
        Some(Part::EnclosureElement { enclosure, .. }) => Some(enclosure.clone()),
        _ => location.enclosure.clone(),
    };
    let label = Label {
        rack,
        node: t.node.clone(),
        enclosure,
        slot: if is_bus { None } else { location.slot },
        adapter: location.adapter.filter(|_| is_bus),
        bus: location.bus.filter(|_| is_bus),
    };
    let serial = top
        .and_then(|s| s.serial.clone())
        .or_else(|| configured.and_then(|d| d.serial.clone()));
    VisitItem {
        ticket: t.id.clone(),
        state: t.state,
        urgent: t.urgent,
        summary: one_line(&t.summary),
        part: top.map_or_else(|| "a part not named".to_string(), |s| s.part.to_string()),
        kind: top.map_or("unknown", |s| s.part.kind()).to_string(),
        likelihood: top.map_or(0, |s| s.likelihood),
        alternatives: t
            .suspects
            .iter()
            .skip(1)
            .map(|s| {
                format!(
                    "{} ({} %): bring {}; {}",
                    s.part,
                    s.likelihood,
                    one_line(&s.bring),
                    one_line(&s.todo)
                )
            })
            .collect(),
        bring: top.map_or_else(String::new, |s| one_line(&s.bring)),
        todo: top.map_or_else(String::new, |s| one_line(&s.todo)),
        label,
        serial,
        evidence: evidence_line(t),
        actions: t.actions.iter().map(|a| one_line(a)).collect(),
        out_of_service: t.out_of_service.iter().map(|a| one_line(a)).collect(),
        opened_at: t.opened_at,
        done_at: t.done_at,
    }
}

/// Urgent first, then in the order the operator walks: rack, node, enclosure, slot (numbers
/// within names counted as numbers: rack r2 before rack r10).
fn walking_order(a: &VisitItem, b: &VisitItem) -> Ordering {
    b.urgent
        .cmp(&a.urgent)
        .then_with(|| natural(&a.label.rack, &b.label.rack))
        .then_with(|| natural(&a.label.node, &b.label.node))
        .then_with(|| match (&a.label.enclosure, &b.label.enclosure) {
            (Some(x), Some(y)) => natural(x, y),
            // What is not in an enclosure (the node itself, its adapter) is seen first.
            (x, y) => x.is_some().cmp(&y.is_some()),
        })
        .then_with(|| a.label.slot.cmp(&b.label.slot))
        .then_with(|| natural(&a.ticket, &b.ticket))
}

/// Compares names with the numbers in them taken as numbers ("e2" < "e10").
pub fn natural(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut digits = None;
        for (i, c) in s.char_indices() {
            let d = c.is_ascii_digit();
            if digits.is_some_and(|was| was != d) {
                out.push((digits.unwrap_or(false), &s[start..i]));
                start = i;
            }
            digits = Some(d);
        }
        if start < s.len() {
            out.push((digits.unwrap_or(false), &s[start..]));
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let o = match (x, y) {
            ((true, m), (true, n)) => {
                let (m, n) = (m.trim_start_matches('0'), n.trim_start_matches('0'));
                m.len().cmp(&n.len()).then_with(|| m.cmp(n))
            }
            ((_, m), (_, n)) => m.cmp(n),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// A ticket's evidence in one line: each kind with its count and what it is about, then the
/// first recorded line.
fn evidence_line(t: &Ticket) -> String {
    let kinds: Vec<String> = t
        .evidence
        .iter()
        .map(|e| {
            let times = if e.count > 1 {
                format!(" ×{}", e.count)
            } else {
                String::new()
            };
            format!("{}{times} ({})", kind_words(e.kind), e.about)
        })
        .collect();
    let mut line = if kinds.is_empty() {
        "none recorded".to_string()
    } else {
        kinds.join(", ")
    };
    if let Some(first) = t.evidence.iter().find_map(|e| e.lines.first()) {
        let _ = write!(line, ": \u{201c}{}\u{201d}", clip(&one_line(first), 160));
    }
    clip(&one_line(&line), 400)
}

/// An event kind in words ("disk failed").
pub fn kind_words(kind: EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn done_word(state: TicketState) -> &'static str {
    match state {
        TicketState::Verified => "verified working",
        TicketState::Closed => "closed",
        TicketState::Acquitted => "acquitted (false alarm)",
        TicketState::Open => "open",
        TicketState::Done => "done",
    }
}

/// The cluster's state from `td status`'s count and the events of the week.
fn cluster_state(status: &ClusterStatus, events: &[Event], week_start: u64) -> ClusterState {
    let nodes = status
        .nodes
        .iter()
        .map(|n| NodeLine {
            name: n.name.clone(),
            up: n.up,
            error: n.error.as_ref().map(|e| one_line(e)),
            disks: n
                .disks
                .iter()
                .filter(|d| d.state != "healthy" && d.state != "ok")
                .map(|d| format!("{}: {}", d.id, d.state))
                .collect(),
        })
        .collect();
    let unhealthy: Vec<String> = status
        .problems
        .iter()
        .map(|p| match &p.health {
            ImageHealth::UnderReplicated { lost } => {
                format!("{}: under-replicated, lost {}", p.image, lost.join("; "))
            }
            ImageHealth::Lost { lost } => format!("{}: LOST, {}", p.image, lost.join("; ")),
            ImageHealth::Healthy => format!("{}: healthy", p.image),
            ImageHealth::Deleted => format!("{}: withdrawn", p.image),
        })
        .map(|l| one_line(&l))
        .collect();
    let repairs = status
        .repairs
        .iter()
        .map(|j| {
            let pct = (j.bytes_done.saturating_mul(100))
                .checked_div(j.bytes_total)
                .unwrap_or(0);
            one_line(&format!(
                "{}: {} → {}, {} {pct}%",
                j.image,
                j.lost,
                j.target.as_deref().unwrap_or("(target not chosen yet)"),
                j.step
            ))
        })
        .collect();
    ClusterState {
        images: status.images,
        healthy: status.healthy,
        under_replicated: status.under_replicated,
        repairing: status.repairing,
        lost: status.lost,
        withdrawn: status.deleted,
        nodes,
        unhealthy_more: unhealthy.len().saturating_sub(IMAGES_NAMED),
        unhealthy: unhealthy.into_iter().take(IMAGES_NAMED).collect(),
        repairs,
        filling: watches(events, week_start, |k| k == EventKind::DiskFilling),
        smart: watches(events, week_start, |k| {
            matches!(k, EventKind::SmartWarning | EventKind::SmartFailed)
        }),
    }
}

/// Per node and component, the events of the kinds `wanted` seen in the last week: the latest
/// one's summary, and how many there were this week and since the start.
fn watches(events: &[Event], week_start: u64, wanted: impl Fn(EventKind) -> bool) -> Vec<Watch> {
    let mut by: BTreeMap<(String, String), Vec<&Event>> = BTreeMap::new();
    for e in events.iter().filter(|e| wanted(e.kind)) {
        by.entry((e.node.clone(), about(&e.component)))
            .or_default()
            .push(e);
    }
    by.into_iter()
        .filter_map(|((node, about), mut es)| {
            es.sort_by_key(|e| (last_seen(e), e.id));
            let latest = *es.last()?;
            (last_seen(latest) >= week_start).then(|| Watch {
                node,
                about,
                summary: one_line(&latest.summary),
                first_seen: es.iter().map(|e| e.time).min().unwrap_or(latest.time),
                last_seen: last_seen(latest),
                week: es.iter().filter(|e| last_seen(e) >= week_start).count(),
                all: es.len(),
            })
        })
        .collect()
}

fn last_seen(e: &Event) -> u64 {
    e.last_seen.max(e.time)
}

/// What an event is about, in words ("disk a1", "ata3").
fn about(c: &Component) -> String {
    match c {
        Component::Disk { disk } => format!("disk {disk}"),
        Component::Bus { bus } => format!("bus {bus}"),
        Component::Enclosure { enclosure, element } => {
            format!("{element} of enclosure {enclosure}")
        }
        Component::Replica { image, disk } => format!("replica of {image} on disk {disk}"),
        Component::Catalog => "the catalog".into(),
        Component::Process { name } => format!("process {name}"),
        Component::Host => "the host".into(),
        Component::Peer { peer } => format!("node {peer}"),
        Component::Detector { detector } => format!("detector {detector}"),
        Component::Ticket { ticket } => format!("ticket {ticket}"),
    }
}

/// The kinds of event that are a fault seen (not a recovery, a start or an operator's mark).
fn is_fault(kind: EventKind) -> bool {
    use EventKind::*;
    matches!(
        kind,
        DiskFailed
            | DiskHung
            | DiskRefused
            | DiskMissing
            | IoError
            | MediumError
            | CommandTimeout
            | DeviceReset
            | BusReset
            | DeviceOffline
            | FilesystemError
            | FilesystemShutdown
            | SmartFailed
            | SmartWarning
            | CableErrors
            | EnclosureFault
            | DiskFilling
            | MemoryLow
            | Overheating
            | ProcessDied
            | ProcessHung
            | PeerSilent
            | DetectorStalled
            | ReplicaCorrupt
            | ReplicaUnreadable
    )
}

/// The failure log's component of an event, or none for what is not a fault.
fn event_component(e: &Event) -> Option<&'static str> {
    if !is_fault(e.kind) {
        return None;
    }
    Some(match (&e.component, e.kind) {
        (_, EventKind::CableErrors) => "cable or backplane",
        (Component::Disk { .. }, _) => "disk",
        (Component::Bus { .. }, _) => "host adapter or bus",
        (Component::Enclosure { .. }, _) => "enclosure",
        (Component::Peer { .. }, _) => "node (silent)",
        (Component::Host, _) => "host (memory, temperature)",
        (Component::Process { .. }, _) => "software",
        (Component::Detector { .. }, _) => "monitor",
        (Component::Replica { .. } | Component::Catalog, _) => "stored data",
        (Component::Ticket { .. }, _) => return None,
    })
}

/// Faults per kind of part from the tickets, and the events behind them per component.
fn failure_log(
    config: &ClusterConfig,
    tickets: &[&Ticket],
    events: &[Event],
    not_answering: &[NotAnswering],
    week_start: u64,
) -> FailureLog {
    let disks = config.nodes.iter().map(|n| n.disks.len()).sum::<usize>();
    let buses: BTreeSet<(&str, u32, Option<u32>)> = config
        .nodes
        .iter()
        .flat_map(|n| {
            n.disks
                .iter()
                .filter_map(move |d| Some((n.name.as_str(), d.location.adapter?, d.location.bus)))
        })
        .collect();
    let enclosures: BTreeSet<(&str, &str)> = config
        .nodes
        .iter()
        .flat_map(|n| {
            n.disks
                .iter()
                .filter_map(move |d| Some((n.name.as_str(), d.location.enclosure.as_deref()?)))
        })
        .collect();
    let installed = |kind: &str| -> Option<String> {
        let n = config.nodes.len();
        match kind {
            "disk" => Some(format!("{disks} {}", plural(disks, "disk", "disks"))),
            "cable or backplane" => Some(format!(
                "{disks} {}",
                plural(disks, "connection", "connections")
            )),
            "host adapter or bus" if !buses.is_empty() => Some(format!(
                "{} {}",
                buses.len(),
                plural(buses.len(), "bus", "buses")
            )),
            "enclosure element" if !enclosures.is_empty() => Some(format!(
                "{} {}",
                enclosures.len(),
                plural(enclosures.len(), "enclosure", "enclosures")
            )),
            "node" => Some(format!("{n} {}", plural(n, "node", "nodes"))),
            _ => None,
        }
    };
    let rows = PART_KINDS
        .iter()
        .map(|kind| {
            let of_kind: Vec<&&Ticket> = tickets
                .iter()
                .filter(|t| t.suspects.first().map(|s| s.part.kind()) == Some(*kind))
                .collect();
            let real = || of_kind.iter().filter(|t| t.state != TicketState::Acquitted);
            FailureRow {
                kind: kind.to_string(),
                installed: installed(kind),
                week: real().filter(|t| t.opened_at >= week_start).count(),
                all: real().count(),
                false_alarms: of_kind
                    .iter()
                    .filter(|t| t.state == TicketState::Acquitted)
                    .count(),
            }
        })
        .collect();
    let mut counted: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    for e in events {
        if let Some(c) = event_component(e) {
            let entry = counted.entry(c).or_default();
            entry.1 += 1;
            if e.time >= week_start {
                entry.0 += 1;
            }
        }
    }
    let since = events
        .iter()
        .map(|e| e.time)
        .chain(tickets.iter().map(|t| t.opened_at))
        .filter(|t| *t > 0)
        .min();
    FailureLog {
        since,
        rows,
        events: counted
            .into_iter()
            .map(|(component, (week, all))| EventRow {
                component: component.to_string(),
                week,
                all,
            })
            .collect(),
        not_counted: not_answering
            .iter()
            .map(|n| {
                format!(
                    "the tickets of node {} (its monitor did not answer)",
                    n.node
                )
            })
            .collect(),
    }
}

/// The enclosures holding a slot to touch, each with every configured slot.
fn enclosures(config: &ClusterConfig, visit: &[VisitItem]) -> Vec<Enclosure> {
    // (node, enclosure) → slot → mark
    let mut marked: BTreeMap<(String, String), BTreeMap<u32, SlotMark>> = BTreeMap::new();
    for v in visit {
        let (Some(enclosure), Some(slot)) = (&v.label.enclosure, v.label.slot) else {
            continue;
        };
        let mark = match v.state {
            TicketState::Done => SlotMark::Check {
                ticket: v.ticket.clone(),
            },
            _ => SlotMark::Replace {
                ticket: v.ticket.clone(),
            },
        };
        let slots = marked
            .entry((v.label.node.clone(), enclosure.clone()))
            .or_default();
        // A part to replace outweighs one to check in the same slot.
        if !matches!(slots.get(&slot), Some(SlotMark::Replace { .. })) {
            slots.insert(slot, mark);
        }
    }
    let mut out: Vec<Enclosure> = marked
        .into_iter()
        .map(|((node, name), marks)| {
            let node_config = config.node(&node);
            let configured: BTreeMap<u32, &cluster::DiskConfig> = node_config
                .into_iter()
                .flat_map(|n| &n.disks)
                .filter(|d| d.location.enclosure.as_deref() == Some(name.as_str()))
                .filter_map(|d| Some((d.location.slot?, d)))
                .collect();
            let numbers: BTreeSet<u32> = configured.keys().chain(marks.keys()).copied().collect();
            let (low, high) = (
                numbers.first().copied().unwrap_or(0),
                numbers.last().copied().unwrap_or(0),
            );
            let drawn: Vec<u32> = if high - low <= MAX_DRAWN_SPAN {
                (low..=high).collect()
            } else {
                numbers.into_iter().collect()
            };
            let slots = drawn
                .into_iter()
                .map(|n| {
                    let disk = configured.get(&n);
                    Slot {
                        slot: n,
                        disk: disk.map(|d| d.id.clone()),
                        serial: disk.and_then(|d| d.serial.clone()),
                        mark: marks.get(&n).cloned().unwrap_or(if disk.is_some() {
                            SlotMark::Fine
                        } else {
                            SlotMark::Empty
                        }),
                    }
                })
                .collect();
            Enclosure {
                rack: node_config.map(|n| n.rack.clone()).unwrap_or_default(),
                node,
                name,
                slots,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        natural(&a.rack, &b.rack)
            .then_with(|| natural(&a.node, &b.node))
            .then_with(|| natural(&a.name, &b.name))
    });
    out
}

/// An enclosure as an SVG picture: one bay per slot, in rows of [`SLOTS_PER_ROW`]; a slot to
/// replace is red with its number in white and "REPLACE", one to check amber.
pub fn enclosure_svg(e: &Enclosure) -> String {
    const W: usize = 64;
    const H: usize = 92;
    const GAP: usize = 8;
    const PAD: usize = 10;
    let columns = e.slots.len().clamp(1, SLOTS_PER_ROW);
    let rows = e.slots.len().div_ceil(SLOTS_PER_ROW).max(1);
    let width = PAD * 2 + columns * W + (columns - 1) * GAP;
    let height = PAD * 2 + rows * H + (rows - 1) * GAP;
    let to_touch: Vec<String> = e
        .slots
        .iter()
        .filter_map(|s| match s.mark {
            SlotMark::Replace { .. } => Some(format!("replace slot {}", s.slot)),
            SlotMark::Check { .. } => Some(format!("check slot {}", s.slot)),
            _ => None,
        })
        .collect();
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"enclosure\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-label=\"{}\" font-family=\"sans-serif\">",
        esc(&format!(
            "Enclosure {} of node {}: {}",
            e.name,
            e.node,
            to_touch.join(", ")
        ))
    );
    let _ = write!(
        out,
        "<rect x=\"1\" y=\"1\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"#fafafa\" \
         stroke=\"#444\" stroke-width=\"2\"/>",
        width - 2,
        height - 2
    );
    for (i, s) in e.slots.iter().enumerate() {
        let x = PAD + (i % SLOTS_PER_ROW) * (W + GAP);
        let y = PAD + (i / SLOTS_PER_ROW) * (H + GAP);
        let (class, fill, stroke, text, width, dash, word) = match &s.mark {
            SlotMark::Replace { .. } => (
                "slot replace",
                "#d32f2f",
                "#7f0000",
                "#ffffff",
                4,
                "",
                "REPLACE",
            ),
            SlotMark::Check { .. } => (
                "slot check",
                "#ffd54f",
                "#8a6d00",
                "#000000",
                3,
                "",
                "CHECK",
            ),
            SlotMark::Fine => ("slot", "#ffffff", "#666666", "#333333", 1, "", ""),
            SlotMark::Empty => (
                "slot empty",
                "#ffffff",
                "#aaaaaa",
                "#999999",
                1,
                " stroke-dasharray=\"4 3\"",
                "",
            ),
        };
        let title = match (&s.mark, &s.disk) {
            (SlotMark::Replace { ticket }, disk) => format!(
                "slot {}: replace{} (ticket {ticket})",
                s.slot,
                disk.as_ref()
                    .map(|d| format!(" disk {d}"))
                    .unwrap_or_default()
            ),
            (SlotMark::Check { ticket }, disk) => format!(
                "slot {}: check{} (ticket {ticket})",
                s.slot,
                disk.as_ref()
                    .map(|d| format!(" disk {d}"))
                    .unwrap_or_default()
            ),
            (_, Some(d)) => format!("slot {}: disk {d}", s.slot),
            (_, None) => format!("slot {}: empty", s.slot),
        };
        let _ = write!(
            out,
            "<g class=\"{class}\" data-slot=\"{}\"><title>{}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"4\" fill=\"{fill}\" \
             stroke=\"{stroke}\" stroke-width=\"{width}\"{dash}/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{text}\">slot</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"24\" font-weight=\"bold\" \
             fill=\"{text}\">{}</text>",
            s.slot,
            esc(&title),
            x + W / 2,
            y + 16,
            x + W / 2,
            y + 44,
            s.slot
        );
        if let Some(d) = &s.disk {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" \
                 fill=\"{text}\">{}</text>",
                x + W / 2,
                y + 62,
                esc(&clip_front(d, 10))
            );
        }
        if !word.is_empty() {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" \
                 font-weight=\"bold\" fill=\"{text}\">{word}</text>",
                x + W / 2,
                y + 80
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

/// Escapes text for HTML and SVG, in content and in quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters have no place in a page (and some are not allowed in XML).
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text on one line: line breaks and other control characters become spaces.
fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    out.truncate(out.trim_end().len());
    out
}

/// At most `max` characters, the last ones, with an ellipsis before when cut (the end of a
/// disk's id tells it from its neighbours: "…a-disk1").
fn clip_front(s: &str, max: usize) -> String {
    let count = s.chars().count();
    if count <= max {
        return s.to_string();
    }
    let keep: String = s.chars().skip(count - (max - 1)).collect();
    format!("…{keep}")
}

/// At most `max` characters, with an ellipsis when cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// This machine's offset from UTC at `t` (seconds since the Unix epoch), for
/// [`Inputs::utc_offset`].
pub fn local_utc_offset(t: u64) -> i32 {
    use chrono::TimeZone;
    i64::try_from(t)
        .ok()
        .and_then(|t| chrono::Local.timestamp_opt(t, 0).single())
        .map_or(0, |d| d.offset().local_minus_utc())
}

/// A Unix time in the given offset, with the offset named when `zone` ("UTC", "+01:00").
fn format_time(t: u64, offset_seconds: i32, pattern: &str, zone: bool) -> String {
    let offset = chrono::FixedOffset::east_opt(offset_seconds)
        .or_else(|| chrono::FixedOffset::east_opt(0))
        .expect("a zero offset is valid");
    let Some(at) = i64::try_from(t)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
    else {
        return format!("{t} (Unix time)");
    };
    let local = at.with_timezone(&offset);
    if !zone {
        return local.format(pattern).to_string();
    }
    let zone = if offset.local_minus_utc() == 0 {
        "UTC".to_string()
    } else {
        local.format("%:z").to_string()
    };
    format!("{} {zone}", local.format(pattern))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::redundancy::{DiskStatus, ImageProblem, NodeStatus};
    use cluster::ticket::{Evidence, Suspect};
    use cluster::Location;

    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    const CONFIG: &str = r#"
name = "Museum <basement> & annex"

[[node]]
name = "node-b"
address = "127.0.0.1:8102"
power_domain = "B"
rack = "r10"

[[node.disk]]
id = "b1"
path = "/srv/b1"
serial = "SER-B1"
location = { enclosure = "e1", slot = 1 }

[[node]]
name = "node-a"
address = "127.0.0.1:8101"
power_domain = "A"
rack = "r2"

[[node.disk]]
id = "a1"
path = "/srv/a1"
serial = "SER-A1"
location = { adapter = 0, bus = 0, enclosure = "e10", slot = 1 }

[[node.disk]]
id = "a2"
path = "/srv/a2"
serial = "SER-A2"
location = { adapter = 0, bus = 0, enclosure = "e2", slot = 2 }

[[node.disk]]
id = "a3"
path = "/srv/a3"
location = { adapter = 0, bus = 1, enclosure = "e2", slot = 4 }

[[node.disk]]
id = "a4"
path = "/srv/a4"
location = { adapter = 0, bus = 1, enclosure = "e2", slot = 1 }
"#;

    fn config() -> ClusterConfig {
        ClusterConfig::parse(CONFIG).unwrap()
    }

    fn suspect(part: Part, likelihood: u8) -> Suspect {
        Suspect {
            part,
            likelihood,
            location: None,
            serial: None,
            bring: "a 4 TB SATA disk".into(),
            todo: "pull the marked disk, slide the new one in".into(),
        }
    }

    fn ticket(id: &str, node: &str, part: Part, state: TicketState, opened_at: u64) -> Ticket {
        Ticket {
            id: id.into(),
            node: node.into(),
            rack: String::new(),
            state,
            urgent: false,
            summary: format!("{part} failed"),
            suspects: vec![suspect(part, 100)],
            out_of_service: vec![],
            actions: vec!["masked from visitors".into()],
            evidence: vec![Evidence {
                kind: EventKind::DiskFailed,
                about: "disk".into(),
                count: 3,
                first_seen: opened_at,
                last_seen: opened_at,
                lines: vec!["read error at sector 42".into()],
            }],
            opened_at,
            updated_at: opened_at,
            done_at: None,
            verified_at: None,
            closed_at: None,
            notes: vec![],
        }
    }

    fn disk(d: &str) -> Part {
        Part::Disk { disk: d.into() }
    }

    fn page(node: &str, tickets: Vec<Ticket>) -> NodeTickets {
        NodeTickets {
            node: node.into(),
            answer: Ok(TicketPage {
                node: node.into(),
                tickets,
                problems: vec![],
            }),
        }
    }

    fn build(
        config: &ClusterConfig,
        tickets: &[NodeTickets],
        status: &ClusterStatus,
        events: &[Event],
    ) -> VisitReport {
        VisitReport::build(Inputs {
            config,
            tickets,
            status,
            events,
            event_problems: &[],
            now: NOW,
            utc_offset: 0,
        })
    }

    fn event(id: u64, node: &str, component: Component, kind: EventKind, time: u64) -> Event {
        Event {
            id,
            time,
            node: node.into(),
            source: "monitor".into(),
            component,
            kind,
            summary: format!("{kind:?}"),
            location: None,
            serial: None,
            evidence: vec![],
            count: 1,
            last_seen: time,
        }
    }

    #[test]
    fn visit_is_urgent_first_then_rack_node_enclosure_slot() {
        let c = config();
        let mut urgent = ticket("node-b.m9", "node-b", disk("b1"), TicketState::Open, NOW);
        urgent.urgent = true;
        let tickets = [
            page("node-b", vec![urgent]),
            page(
                "node-a",
                vec![
                    ticket("node-a.m5", "node-a", disk("a1"), TicketState::Open, NOW),
                    ticket("node-a.m4", "node-a", disk("a3"), TicketState::Done, NOW),
                    ticket("node-a.m3", "node-a", disk("a2"), TicketState::Open, NOW),
                    ticket(
                        "node-a.m2",
                        "node-a",
                        Part::Node {
                            node: "node-a".into(),
                        },
                        TicketState::Open,
                        NOW,
                    ),
                    ticket("node-a.m1", "node-a", disk("a4"), TicketState::Closed, NOW),
                ],
            ),
        ];
        let r = build(&c, &tickets, &ClusterStatus::default(), &[]);
        let order: Vec<&str> = r.visit.iter().map(|v| v.ticket.as_str()).collect();
        // Urgent (rack r10) first; then rack r2 before r10: the node itself, enclosure e2
        // (slot 2, then 4) before e10; the closed ticket is not on the list.
        assert_eq!(
            order,
            [
                "node-b.m9",
                "node-a.m2",
                "node-a.m3",
                "node-a.m4",
                "node-a.m5"
            ]
        );
        let a2 = &r.visit[2];
        assert_eq!(
            a2.label.to_string(),
            "rack r2, node node-a, enclosure e2, slot 2"
        );
        assert_eq!(a2.serial.as_deref(), Some("SER-A2"));
        assert_eq!(a2.bring, "a 4 TB SATA disk");
        assert!(r.visit[0].urgent);
        assert!(
            r.subject().contains("5 parts to see to, 1 URGENT"),
            "{}",
            r.subject()
        );
        assert!(r
            .subject()
            .starts_with("Museum <basement> & annex: visit report"));
        let text = r.text();
        let first = text.find("URGENT  Replace disk b1").unwrap();
        let second = text.find("Replace node node-a").unwrap();
        assert!(first < second, "{text}");
        assert!(text.contains("CHECK  Check disk a3"), "{text}");
        assert!(
            text.contains(
                "Evidence: disk failed ×3 (disk): \u{201c}read error at sector 42\u{201d}"
            ),
            "{text}"
        );
        assert!(
            text.contains("Already done: masked from visitors"),
            "{text}"
        );
    }

    #[test]
    fn long_names_are_cut_where_they_differ() {
        assert_eq!(clip_front("node-a-disk1", 10), "…e-a-disk1");
        assert_eq!(clip_front("a1", 10), "a1");
        assert_eq!(clip("ééééé", 3), "ééé…");
        assert_eq!(one_line("a\nb\r\tc  "), "a b  c");
    }

    #[test]
    fn natural_order_counts_numbers() {
        let mut names = vec!["r10", "r2", "r1", "rack", "r02b", "r2a"];
        names.sort_by(|a, b| natural(a, b));
        assert_eq!(names, ["r1", "r2", "r2a", "r02b", "r10", "rack"]);
        assert_eq!(natural("e2", "e2"), Ordering::Equal);
        assert_eq!(natural("", "a"), Ordering::Less);
    }

    #[test]
    fn everything_is_escaped_in_the_html() {
        let c = config();
        let mut t = ticket("node-a.m1", "node-a", disk("a2"), TicketState::Open, NOW);
        t.summary = "<script>alert(\"x\")</script> & 'more'".into();
        t.suspects[0].bring = "a <b>bold</b> disk".into();
        t.suspects.push(Suspect {
            likelihood: 30,
            ..suspect(
                Part::CableOrBackplane {
                    disk: "a2<img src=x onerror=alert(1)>".into(),
                },
                30,
            )
        });
        t.suspects[0].likelihood = 70;
        t.suspects[0].location = Some(Location {
            enclosure: Some("e2\"><script>".into()),
            slot: Some(2),
            ..Location::default()
        });
        t.actions = vec!["</dd><h1>".into()];
        let tickets = [
            page("node-a", vec![t]),
            NodeTickets {
                node: "node-b".into(),
                answer: Err("node-b <monitor> did not answer\nsecond line".into()),
            },
        ];
        let r = build(&c, &tickets, &ClusterStatus::default(), &[]);
        let html = r.html();
        for raw in [
            "<script",
            "<b>bold",
            "<img",
            "</dd><h1>",
            "<monitor>",
            "<basement>",
        ] {
            assert!(!html.contains(raw), "{raw} not escaped in\n{html}");
        }
        assert!(
            html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;more&#39;")
        );
        assert!(html.contains("Museum &lt;basement&gt; &amp; annex"));
        assert!(html.contains("node-b &lt;monitor&gt; did not answer second line"));
        // The enclosure's name reaches the SVG escaped too.
        assert!(html.contains("e2&quot;&gt;&lt;script&gt;"));
        // The text keeps one item to a line, whatever the fields hold.
        assert!(r
            .text()
            .contains("  node node-b: node-b <monitor> did not answer second line\n"));
    }

    #[test]
    fn the_page_stands_alone_reads_on_a_phone_and_prints() {
        let c = config();
        let r = build(
            &c,
            &[page(
                "node-a",
                vec![ticket(
                    "node-a.m1",
                    "node-a",
                    disk("a2"),
                    TicketState::Open,
                    NOW,
                )],
            )],
            &ClusterStatus::default(),
            &[],
        );
        let html = r.html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html
            .contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
        assert!(html.contains("@media print") && html.contains("size:A4"));
        assert!(html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        // No resource from anywhere: no links, scripts, images or imported styles.
        let without_namespace = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for outside in [
            "http:", "https:", "src=", "href=", "@import", "url(", "<script", "<link",
        ] {
            assert!(
                !without_namespace.contains(outside),
                "{outside} in the page"
            );
        }
        // No dark background anywhere in the style.
        assert!(!STYLE.contains("background:#0") && !STYLE.contains("background:#1"));
    }

    #[test]
    fn enclosure_pictures_mark_the_slots_to_touch() {
        let c = config();
        let tickets = [page(
            "node-a",
            vec![
                ticket("node-a.m1", "node-a", disk("a2"), TicketState::Open, NOW),
                ticket("node-a.m2", "node-a", disk("a3"), TicketState::Done, NOW),
                ticket(
                    "node-a.m3",
                    "node-a",
                    Part::CableOrBackplane { disk: "a1".into() },
                    TicketState::Open,
                    NOW,
                ),
            ],
        )];
        let r = build(&c, &tickets, &ClusterStatus::default(), &[]);
        let names: Vec<(&str, &str)> = r
            .enclosures
            .iter()
            .map(|e| (e.node.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(names, [("node-a", "e2"), ("node-a", "e10")]);
        let e2 = &r.enclosures[0];
        let slots: Vec<(u32, &SlotMark)> = e2.slots.iter().map(|s| (s.slot, &s.mark)).collect();
        assert_eq!(
            slots,
            [
                (1, &SlotMark::Fine),
                (
                    2,
                    &SlotMark::Replace {
                        ticket: "node-a.m1".into()
                    }
                ),
                (3, &SlotMark::Empty),
                (
                    4,
                    &SlotMark::Check {
                        ticket: "node-a.m2".into()
                    }
                ),
            ]
        );
        let svg = enclosure_svg(e2);
        let group = |slot: u32| {
            let start = svg.find(&format!("data-slot=\"{slot}\"")).unwrap();
            let end = start + svg[start..].find("</g>").unwrap();
            svg[svg[..start].rfind("<g ").unwrap()..end].to_string()
        };
        let failed = group(2);
        assert!(failed.starts_with("<g class=\"slot replace\""), "{failed}");
        assert!(failed.contains("fill=\"#d32f2f\""), "{failed}");
        assert!(failed.contains(">2</text>") && failed.contains(">REPLACE</text>"));
        assert!(failed.contains("replace disk a2 (ticket node-a.m1)"));
        assert!(group(4).starts_with("<g class=\"slot check\""));
        assert!(group(4).contains(">CHECK</text>"));
        assert!(group(3).contains("stroke-dasharray"));
        let fine = group(1);
        assert!(fine.contains("fill=\"#ffffff\"") && !fine.contains("REPLACE"));
        assert!(svg
            .contains("aria-label=\"Enclosure e2 of node node-a: replace slot 2, check slot 4\""));
        // The cable of a1 is touched at a1's slot of e10.
        assert!(matches!(
            r.enclosures[1].slots[0].mark,
            SlotMark::Replace { .. }
        ));
        assert!(r.text().contains("[1] [2 REPLACE] [3 -] [4 CHECK]"));
    }

    #[test]
    fn absurd_slot_numbers_draw_only_what_is_there() {
        let c = config();
        let mut t = ticket("node-a.m1", "node-a", disk("a2"), TicketState::Open, NOW);
        t.suspects[0].location = Some(Location {
            enclosure: Some("e2".into()),
            slot: Some(4_000_000_000),
            ..Location::default()
        });
        let r = build(
            &c,
            &[page("node-a", vec![t])],
            &ClusterStatus::default(),
            &[],
        );
        let slots: Vec<u32> = r.enclosures[0].slots.iter().map(|s| s.slot).collect();
        assert_eq!(slots, [1, 2, 4, 4_000_000_000]);
    }

    #[test]
    fn failure_log_counts_faults_per_kind_over_the_week_and_since_the_start() {
        let c = config();
        let old = NOW - 30 * DAY;
        let recent = NOW - DAY;
        let bus = Part::Bus {
            bus: "adapter 0 bus 1".into(),
        };
        let mut acquitted = ticket(
            "node-a.m6",
            "node-a",
            disk("a4"),
            TicketState::Acquitted,
            recent,
        );
        acquitted.updated_at = recent;
        let mut closed = ticket("node-a.m7", "node-a", disk("a1"), TicketState::Closed, old);
        closed.closed_at = Some(recent);
        closed.notes = vec!["the new disk was adopted and refilled".into()];
        let mut closed_long_ago =
            ticket("node-a.m8", "node-a", disk("a3"), TicketState::Closed, old);
        closed_long_ago.closed_at = Some(old + DAY);
        let tickets = [
            page(
                "node-a",
                vec![
                    ticket("node-a.m1", "node-a", disk("a2"), TicketState::Open, recent),
                    closed,
                    closed_long_ago,
                    ticket("node-a.m2", "node-a", bus.clone(), TicketState::Open, old),
                    ticket(
                        "node-a.m3",
                        "node-a",
                        Part::Software {
                            process: "backend".into(),
                        },
                        TicketState::Open,
                        recent,
                    ),
                    acquitted,
                ],
            ),
            NodeTickets {
                node: "node-b".into(),
                answer: Err("refused".into()),
            },
        ];
        let d = |disk: &str| Component::Disk { disk: disk.into() };
        let events = [
            event(1, "node-a", d("a2"), EventKind::DiskFailed, recent),
            event(2, "node-a", d("a2"), EventKind::IoError, recent),
            event(3, "node-a", d("a1"), EventKind::DiskFailed, old),
            event(4, "node-a", d("a1"), EventKind::CableErrors, old),
            event(5, "node-a", d("a1"), EventKind::Recovered, old),
            event(
                6,
                "node-a",
                Component::Process {
                    name: "backend".into(),
                },
                EventKind::ProcessDied,
                recent,
            ),
            event(7, "node-a", Component::Host, EventKind::Started, recent),
        ];
        let r = build(&c, &tickets, &ClusterStatus::default(), &events);
        let row = |kind: &str| {
            let r = r.failure_log.rows.iter().find(|r| r.kind == kind).unwrap();
            (r.installed.clone(), r.week, r.all, r.false_alarms)
        };
        assert_eq!(row("disk"), (Some("5 disks".into()), 1, 3, 1));
        assert_eq!(
            row("cable or backplane"),
            (Some("5 connections".into()), 0, 0, 0)
        );
        assert_eq!(
            row("host adapter or bus"),
            (Some("2 buses".into()), 0, 1, 0)
        );
        assert_eq!(
            row("enclosure element"),
            (Some("3 enclosures".into()), 0, 0, 0)
        );
        assert_eq!(row("node"), (Some("2 nodes".into()), 0, 0, 0));
        assert_eq!(row("software"), (None, 1, 1, 0));
        let kinds: Vec<&str> = r.failure_log.rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, PART_KINDS);
        let ev: Vec<(&str, usize, usize)> = r
            .failure_log
            .events
            .iter()
            .map(|e| (e.component.as_str(), e.week, e.all))
            .collect();
        assert_eq!(
            ev,
            [
                ("cable or backplane", 0, 1),
                ("disk", 2, 3),
                ("software", 1, 1)
            ]
        );
        assert_eq!(r.failure_log.since, Some(old));
        assert_eq!(
            r.failure_log.not_counted,
            ["the tickets of node node-b (its monitor did not answer)"]
        );
        // Done this week: the acquitted and the recently closed, not the one closed long ago.
        let done: Vec<(&str, TicketState)> = r
            .done
            .iter()
            .map(|d| (d.ticket.as_str(), d.state))
            .collect();
        assert_eq!(
            done,
            [
                ("node-a.m6", TicketState::Acquitted),
                ("node-a.m7", TicketState::Closed)
            ]
        );
        let text = r.text();
        assert!(text.contains("closed: disk a1 (rack r2, node node-a, enclosure e10, slot 1): the new disk was adopted and refilled"), "{text}");
        assert!(
            text.contains(
                "  disk                        5 disks          1            3             1"
            ),
            "{text}"
        );
        assert!(r
            .html()
            .contains("<tr><td>disk</td><td>5 disks</td><td>1</td><td>3</td><td>1</td></tr>"));
    }

    #[test]
    fn state_names_silent_nodes_filling_disks_and_smart_warnings() {
        let c = config();
        let status = ClusterStatus {
            cluster: c.name.clone(),
            images: 10,
            healthy: 8,
            under_replicated: 2,
            repairing: 1,
            nodes: vec![
                NodeStatus {
                    name: "node-a".into(),
                    up: true,
                    disks: vec![
                        DiskStatus {
                            id: "a1".into(),
                            state: "healthy".into(),
                            ..DiskStatus::default()
                        },
                        DiskStatus {
                            id: "a2".into(),
                            state: "failed".into(),
                            ..DiskStatus::default()
                        },
                    ],
                    ..NodeStatus::default()
                },
                NodeStatus {
                    name: "node-b".into(),
                    up: false,
                    error: Some("connection refused".into()),
                    ..NodeStatus::default()
                },
            ],
            problems: vec![ImageProblem {
                image: "img-1".into(),
                health: ImageHealth::UnderReplicated {
                    lost: vec!["node-a disk a2: the disk failed".into()],
                },
                readable_on: vec!["node-b".into()],
            }],
            ..ClusterStatus::default()
        };
        let d = |disk: &str| Component::Disk { disk: disk.into() };
        let mut filling = event(1, "node-a", d("a1"), EventKind::DiskFilling, NOW - 3 * DAY);
        filling.summary = "disk a1 is 93% full (warning at 90%): 40 GiB free".into();
        let stale = event(2, "node-a", d("a3"), EventKind::DiskFilling, NOW - 20 * DAY);
        let events = [
            filling,
            stale,
            event(
                3,
                "node-a",
                d("a4"),
                EventKind::SmartWarning,
                NOW - 40 * DAY,
            ),
            event(4, "node-a", d("a4"), EventKind::SmartWarning, NOW - 2 * DAY),
            event(5, "node-a", d("a4"), EventKind::SmartWarning, NOW - DAY),
        ];
        let r = build(&c, &[page("node-a", vec![])], &status, &events);
        let s = &r.state;
        assert_eq!(
            (s.images, s.healthy, s.under_replicated, s.repairing),
            (10, 8, 2, 1)
        );
        assert_eq!(s.nodes[0].disks, ["a2: failed"]);
        assert!(!s.nodes[1].up);
        assert_eq!(s.filling.len(), 1);
        assert_eq!(s.filling[0].about, "disk a1");
        assert_eq!((s.smart[0].week, s.smart[0].all), (2, 3));
        assert_eq!(s.smart[0].first_seen, NOW - 40 * DAY);
        let text = r.text();
        assert!(text.contains(
            "images: 10 in all, 8 healthy, 2 under-replicated (1 being repaired), 0 lost"
        ));
        assert!(text.contains("node node-b: NOT ANSWERING"));
        assert!(text.contains("img-1: under-replicated, lost node-a disk a2: the disk failed"));
        assert!(text.contains("filling: node node-a disk a1: disk a1 is 93% full"));
        assert!(text.contains("SMART: node node-a disk a4: SmartWarning (2 this week, 3 since"));
        assert!(
            r.subject().ends_with("nothing to replace"),
            "{}",
            r.subject()
        );
    }

    #[test]
    fn times_are_printed_in_the_local_offset() {
        assert_eq!(
            format_time(1_800_000_000, 0, "%a %Y-%m-%d %H:%M", true),
            "Fri 2027-01-15 08:00 UTC"
        );
        assert_eq!(
            format_time(1_800_000_000, 3600, "%a %Y-%m-%d %H:%M", true),
            "Fri 2027-01-15 09:00 +01:00"
        );
        assert_eq!(
            format_time(u64::MAX, 0, "%Y", false),
            format!("{} (Unix time)", u64::MAX)
        );
    }
}
