//! The operator's dashboard page (`/ops/` on a frontend): the cluster drawn as racks, nodes and
//! enclosure slots coloured by their disk's state (with the state in words beside each colour),
//! the repair tickets with their done and acquit forms, redundancy and repair progress, the
//! workers and the last events. Plain HTML and forms, no script: it works without JavaScript,
//! fits a phone and prints. The frontend gathers the values; this only fills the template.

use crate::{escape, page_with_head};

/// What a slot's disk is doing, as the dashboard colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Healthy,
    /// Answering, but too slowly: visitors are sent to the other replicas meanwhile.
    Slow,
    /// I/O errors or a hung probe: out of service.
    Failed,
    /// Nothing where the disk should be (unmounted, pulled out).
    Missing,
    /// Another disk, or one holding unknown files: not used.
    Refused,
    /// Failed, then answering again: being checked before it serves.
    Returning,
    /// Its node does not answer, so nobody can say.
    Unknown,
}

impl SlotState {
    /// Every state, in the legend's order.
    pub const ALL: [SlotState; 7] = [
        SlotState::Healthy,
        SlotState::Slow,
        SlotState::Failed,
        SlotState::Missing,
        SlotState::Refused,
        SlotState::Returning,
        SlotState::Unknown,
    ];

    /// The key used in class names and `data-state`.
    pub fn key(self) -> &'static str {
        match self {
            SlotState::Healthy => "healthy",
            SlotState::Slow => "slow",
            SlotState::Failed => "failed",
            SlotState::Missing => "missing",
            SlotState::Refused => "refused",
            SlotState::Returning => "returning",
            SlotState::Unknown => "unknown",
        }
    }

    /// What the legend says it means.
    pub fn meaning(self) -> &'static str {
        match self {
            SlotState::Healthy => "serving",
            SlotState::Slow => "answering slowly; visitors go to the other copy meanwhile",
            SlotState::Failed => "I/O errors or hung: out of service",
            SlotState::Missing => "nothing where the disk should be",
            SlotState::Refused => "another disk, or unknown files: not used",
            SlotState::Returning => "answering again, being checked",
            SlotState::Unknown => "its node does not answer",
        }
    }

    /// The slot's colour (sRGB), the same on screen and paper.
    pub fn colour(self) -> &'static str {
        match self {
            SlotState::Healthy => "#2e7d32",
            SlotState::Slow => "#f9a825",
            SlotState::Failed => "#c62828",
            SlotState::Missing => "#37474f",
            SlotState::Refused => "#e65100",
            SlotState::Returning => "#1565c0",
            SlotState::Unknown => "#9e9e9e",
        }
    }
}

/// One disk slot of an enclosure.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The slot number printed on the enclosure, if configured.
    pub slot: Option<u32>,
    pub disk: String,
    pub serial: Option<String>,
    pub state: SlotState,
    /// Why it is in that state, or how full it is (a line).
    pub detail: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Enclosure {
    pub name: String,
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone)]
pub struct NodeBox {
    pub name: String,
    pub power_domain: String,
    /// Its image server answered.
    pub answering: bool,
    /// Why not, or what else is wrong (its monitor silent, warnings), one line each.
    pub notes: Vec<String>,
    pub images: Option<u64>,
    pub enclosures: Vec<Enclosure>,
}

#[derive(Debug, Clone)]
pub struct Rack {
    pub name: String,
    pub nodes: Vec<NodeBox>,
}

/// A repair ticket as listed.
#[derive(Debug, Clone)]
pub struct TicketItem {
    pub id: String,
    /// `open`, `done`, `verified`.
    pub state: String,
    pub urgent: bool,
    pub summary: String,
    /// The most likely part ("disk node-b-disk1") and how likely, in percent.
    pub part: String,
    pub likelihood: u8,
    /// Where it is, as printed on the hardware: rack, node, enclosure, slot, serial.
    pub label: String,
    /// Other suspects, each a line.
    pub others: Vec<String>,
    pub bring: String,
    pub todo: String,
    pub opened: String,
    pub can_done: bool,
    pub can_acquit: bool,
}

/// One re-mirror under way.
#[derive(Debug, Clone)]
pub struct Repair {
    pub image: String,
    /// "node-b disk …: … → node-c".
    pub what: String,
    pub step: String,
    pub done: u64,
    pub total: u64,
    /// "40% of 12 MB, about 3 s left".
    pub progress: String,
}

#[derive(Debug, Clone, Default)]
pub struct Redundancy {
    pub images: usize,
    pub healthy: usize,
    pub under_replicated: usize,
    pub repairing: usize,
    pub lost: usize,
    pub repairs: Vec<Repair>,
    /// Images waiting for their copy (grace period, or blocked), a line each.
    pub waiting: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Worker {
    pub name: String,
    pub state: String,
    pub progress: String,
    pub errors: u64,
    pub failing: bool,
    pub last_error: Option<String>,
}

/// The workers of one process (a frontend, a node's backend or monitor).
#[derive(Debug, Clone)]
pub struct Workers {
    pub process: String,
    /// `Err(why)` when it did not answer.
    pub workers: Result<Vec<Worker>, String>,
}

#[derive(Debug, Clone)]
pub struct EventItem {
    /// `YYYY-MM-DDTHH:MM:SSZ`, and the same said for a person ("3 min ago").
    pub datetime: String,
    pub ago: String,
    pub node: String,
    pub source: String,
    pub kind: String,
    pub summary: String,
    pub count: u64,
}

/// Everything on the page.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    pub cluster: String,
    pub user: String,
    pub csrf: String,
    /// When the nodes were asked (UTC), and how long they took.
    pub asked: String,
    /// A mark that went through, or an error (a mark refused, with the monitor's reason).
    pub notice: Option<String>,
    pub error: Option<String>,
    /// Reload by itself every this many seconds (a meta refresh), if asked.
    pub refresh: Option<u32>,
    /// Nodes or monitors that did not answer, and other things not shown because of it.
    pub problems: Vec<String>,
    pub racks: Vec<Rack>,
    pub tickets: Vec<TicketItem>,
    pub redundancy: Redundancy,
    pub workers: Vec<Workers>,
    pub events: Vec<EventItem>,
}

/// The dashboard's own style: colours fixed (a slot's colour means the same in dark mode and
/// on paper), everything wraps so a phone needs no sideways scrolling.
const STYLE: &str = "<style>\
main.ops { max-width: 80rem; }\
.ops section { margin: 1.25rem 0; }\
.ops h2 { font-size: 1.2rem; margin: 0.5rem 0; border-bottom: 1px solid color-mix(in srgb, var(--fg) 20%, transparent); }\
.ops h3 { font-size: 1.05rem; margin: 0.5rem 0 0.25rem; }\
.ops h4 { font-size: 1rem; margin: 0 0 0.25rem; }\
.ops p, .ops li, .ops dd, .ops summary { overflow-wrap: anywhere; }\
.legend { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; padding: 0; list-style: none; font-size: 0.9rem; }\
.legend li { display: flex; gap: 0.4rem; align-items: center; }\
.legend .swatch { display: inline-block; width: 1rem; height: 1rem; border-radius: 2px; flex: none; }\
.nodes { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(20rem, 100%), 1fr)); gap: 0.75rem; }\
.node { border: 2px solid color-mix(in srgb, var(--fg) 25%, transparent); border-radius: 6px; padding: 0.5rem; min-width: 0; }\
.node.silent { border-style: dashed; border-color: #c62828; }\
.node .silent-flag { color: #fff; background: #c62828; border-radius: 3px; padding: 0 0.3rem; font-size: 0.85rem; }\
.enclosure { margin: 0.4rem 0 0; }\
.enclosure h5 { font-size: 0.9rem; font-weight: 600; margin: 0 0 0.25rem; color: var(--muted); }\
ol.slots { display: grid; grid-template-columns: repeat(auto-fill, minmax(6.5rem, 1fr)); gap: 0.4rem; padding: 0; margin: 0; list-style: none; }\
.slot { border: 2px solid var(--slot); border-radius: 4px; font-size: 0.85rem; line-height: 1.3; min-width: 0; overflow-wrap: anywhere; }\
.slot .swatch { display: block; height: 1.25rem; background: var(--slot); }\
.slot > span:not(.swatch), .slot > strong { display: block; padding: 0 0.3rem; }\
.slot .slot-detail { color: var(--muted); font-size: 0.8rem; }\
.swatch { -webkit-print-color-adjust: exact; print-color-adjust: exact; }\
.ticket { border-left: 4px solid color-mix(in srgb, var(--fg) 30%, transparent); padding: 0.25rem 0.75rem; margin: 0.75rem 0; }\
.ticket.urgent { border-left-color: #c62828; }\
.ticket h3 { display: flex; flex-wrap: wrap; gap: 0.25rem 0.6rem; align-items: baseline; }\
.ticket p { margin: 0.2rem 0; }\
.ticket-state { text-transform: uppercase; font-size: 0.85rem; letter-spacing: 0.03em; }\
.urgent-flag { color: #fff; background: #c62828; border-radius: 3px; padding: 0 0.3rem; font-size: 0.85rem; }\
.marks { display: flex; flex-wrap: wrap; gap: 0.5rem; margin: 0.4rem 0; }\
.marks form { margin: 0; }\
.marks button { font: inherit; padding: 0.4rem 1rem; }\
dl.counts { display: grid; grid-template-columns: repeat(auto-fill, minmax(8rem, 1fr)); gap: 0.25rem 1rem; }\
dl.counts div { min-width: 0; }\
dl.counts dt { color: var(--muted); font-size: 0.9rem; }\
dl.counts dd { margin: 0; font-size: 1.4rem; font-weight: 600; }\
.repairs progress { width: 100%; max-width: 20rem; display: block; }\
.plain { list-style: none; padding: 0; }\
.plain li { padding: 0.3rem 0; border-bottom: 1px solid color-mix(in srgb, var(--fg) 12%, transparent); }\
.workers summary { cursor: pointer; padding: 0.2rem 0; }\
.workers .failing { color: #c0262d; }\
.events time { color: var(--muted); font-size: 0.9rem; }\
.events .kind { font-family: ui-monospace, monospace; font-size: 0.85rem; }\
@media print {\
 header, footer, .portal-bar, .marks, .refresh { display: none; }\
 body { font-size: 10pt; }\
 .node, .ticket, .slot { break-inside: avoid; }\
 .ops a { color: inherit; text-decoration: none; }\
}\
</style>";

fn legend() -> String {
    let mut out = String::from("<ul class=\"legend\" aria-label=\"What the colours mean\">");
    for s in SlotState::ALL {
        out.push_str(&format!(
            "<li data-state=\"{}\"><span class=\"swatch\" style=\"background:{}\"></span>\
             <span><strong>{}</strong>: {}</span></li>",
            s.key(),
            s.colour(),
            s.key(),
            escape(s.meaning())
        ));
    }
    out.push_str("</ul>");
    out
}

fn slot(s: &Slot) -> String {
    let number = s
        .slot
        .map_or_else(|| "Slot ?".to_string(), |n| format!("Slot {n}"));
    let mut li = format!(
        "<li class=\"slot state-{key}\" style=\"--slot:{colour}\" data-disk=\"{disk}\" \
         data-state=\"{key}\" title=\"{number}: disk {disk}, {key}\">\
         <span class=\"swatch\" aria-hidden=\"true\"></span>\
         <span class=\"slot-no\">{number}</span><strong class=\"slot-state\">{key}</strong>\
         <span class=\"slot-disk\">{disk}</span>",
        key = s.state.key(),
        colour = s.state.colour(),
        disk = escape(&s.disk),
    );
    if let Some(serial) = &s.serial {
        li.push_str(&format!(
            "<span class=\"slot-serial\">serial {}</span>",
            escape(serial)
        ));
    }
    if let Some(d) = &s.detail {
        li.push_str(&format!("<span class=\"slot-detail\">{}</span>", escape(d)));
    }
    li.push_str("</li>");
    li
}

fn node(n: &NodeBox) -> String {
    let mut out = format!(
        "<article class=\"node{}\" data-node=\"{}\" data-answering=\"{}\"><h4>{} \
         <span class=\"muted\">power domain {}</span>{}</h4>",
        if n.answering { "" } else { " silent" },
        escape(&n.name),
        n.answering,
        escape(&n.name),
        escape(&n.power_domain),
        if n.answering {
            String::new()
        } else {
            " <span class=\"silent-flag\">not answering</span>".to_string()
        }
    );
    if let Some(images) = n.images {
        out.push_str(&format!(
            "<p class=\"muted\">{images} {}</p>",
            if images == 1 { "replica" } else { "replicas" }
        ));
    }
    for note in &n.notes {
        out.push_str(&format!("<p class=\"error\">{}</p>", escape(note)));
    }
    for e in &n.enclosures {
        out.push_str(&format!(
            "<div class=\"enclosure\" data-enclosure=\"{}\"><h5>Enclosure {}</h5><ol class=\"slots\">",
            escape(&e.name),
            escape(&e.name)
        ));
        for s in &e.slots {
            out.push_str(&slot(s));
        }
        out.push_str("</ol></div>");
    }
    if n.enclosures.is_empty() {
        out.push_str("<p class=\"muted\">No disks configured.</p>");
    }
    out.push_str("</article>");
    out
}

fn ticket(t: &TicketItem, csrf: &str) -> String {
    let id = escape(&t.id);
    let mut out = format!(
        "<article class=\"ticket{}\" id=\"ticket-{id}\" data-ticket=\"{id}\" data-state=\"{}\">\
         <h3><span class=\"ticket-state\">{}</span>{}<span>{id}</span></h3>\
         <p class=\"summary\">{}</p>\
         <p>Replace <strong class=\"part\">{}</strong> ({}% likely) at <span class=\"label\">{}</span></p>",
        if t.urgent { " urgent" } else { "" },
        escape(&t.state),
        escape(&t.state),
        if t.urgent {
            "<span class=\"urgent-flag\">urgent</span>"
        } else {
            ""
        },
        escape(&t.summary),
        escape(&t.part),
        t.likelihood,
        escape(&t.label),
    );
    for o in &t.others {
        out.push_str(&format!("<p class=\"muted\">or {}</p>", escape(o)));
    }
    for (label, text, class) in [("Bring", &t.bring, "bring"), ("Do", &t.todo, "todo")] {
        if !text.is_empty() {
            out.push_str(&format!(
                "<p class=\"muted {class}\">{label}: {}</p>",
                escape(text)
            ));
        }
    }
    out.push_str(&format!(
        "<p class=\"muted\">Opened {}</p>",
        escape(&t.opened)
    ));
    if t.can_done || t.can_acquit {
        out.push_str("<div class=\"marks\">");
        for (allowed, mark, label) in [
            (t.can_done, "done", "Done: part replaced"),
            (t.can_acquit, "acquit", "Acquit: nothing wrong"),
        ] {
            if allowed {
                out.push_str(&format!(
                    "<form method=\"post\" action=\"/ops/tickets/{id}\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                     <input type=\"hidden\" name=\"mark\" value=\"{mark}\">\
                     <button type=\"submit\" class=\"{mark}\">{label}</button></form>",
                    escape(csrf)
                ));
            }
        }
        out.push_str("</div>");
    }
    out.push_str("</article>");
    out
}

fn redundancy(r: &Redundancy) -> String {
    let mut out = String::from("<dl class=\"counts\">");
    for (key, label, value) in [
        ("images", "Images", r.images),
        ("healthy", "Healthy", r.healthy),
        ("under-replicated", "Under-replicated", r.under_replicated),
        ("repairing", "Being repaired", r.repairing),
        ("lost", "Lost", r.lost),
    ] {
        out.push_str(&format!(
            "<div><dt>{label}</dt><dd id=\"count-{key}\">{value}</dd></div>"
        ));
    }
    out.push_str("</dl>");
    if !r.repairs.is_empty() {
        out.push_str("<h3>Copies under way</h3><ul class=\"plain repairs\">");
        for j in &r.repairs {
            out.push_str(&format!(
                "<li data-image=\"{}\"><strong>{}</strong>: {} ({})<progress value=\"{}\" max=\"{}\"></progress>{}</li>",
                escape(&j.image),
                escape(&j.image),
                escape(&j.what),
                escape(&j.step),
                j.done,
                j.total.max(1),
                escape(&j.progress)
            ));
        }
        out.push_str("</ul>");
    }
    if !r.waiting.is_empty() {
        out.push_str("<h3>Waiting for a copy</h3><ul class=\"plain waiting-list\">");
        for w in &r.waiting {
            out.push_str(&format!("<li>{}</li>", escape(w)));
        }
        out.push_str("</ul>");
    }
    out
}

fn workers(groups: &[Workers]) -> String {
    let mut out = String::from("<div class=\"workers\">");
    for g in groups {
        match &g.workers {
            Err(why) => out.push_str(&format!(
                "<p><strong>{}</strong>: <span class=\"error\">{}</span></p>",
                escape(&g.process),
                escape(why)
            )),
            Ok(list) => {
                let failing = list.iter().filter(|w| w.failing).count();
                // "throttled 1s" and "throttled 250ms" are both waiting for their next turn.
                let mut states: Vec<(&str, usize)> = Vec::new();
                for w in list {
                    let word = w.state.split_whitespace().next().unwrap_or("");
                    match states.iter_mut().find(|(s, _)| *s == word) {
                        Some((_, n)) => *n += 1,
                        None => states.push((word, 1)),
                    }
                }
                let states = states
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push_str(&format!(
                    "<details{}><summary><strong>{}</strong>: {} workers ({}){}</summary><ul class=\"plain\">",
                    if failing > 0 { " open" } else { "" },
                    escape(&g.process),
                    list.len(),
                    escape(&states),
                    if failing > 0 {
                        format!(", <span class=\"failing\">{failing} failing</span>")
                    } else {
                        String::new()
                    }
                ));
                for w in list {
                    out.push_str(&format!(
                        "<li class=\"worker{}\"><strong>{}</strong>: {}{}{}{}</li>",
                        if w.failing { " failing" } else { "" },
                        escape(&w.name),
                        escape(&w.state),
                        if w.progress.is_empty() {
                            String::new()
                        } else {
                            format!(" · {}", escape(&w.progress))
                        },
                        if w.errors > 0 {
                            format!(" · {} errors", w.errors)
                        } else {
                            String::new()
                        },
                        w.last_error
                            .as_ref()
                            .filter(|_| w.failing)
                            .map(|e| format!(" · last: {}", escape(e)))
                            .unwrap_or_default()
                    ));
                }
                out.push_str("</ul></details>");
            }
        }
    }
    out.push_str("</div>");
    out
}

fn events(list: &[EventItem]) -> String {
    if list.is_empty() {
        return "<p class=\"muted\">No events.</p>".into();
    }
    let mut out = String::from("<ol class=\"plain events\">");
    for e in list {
        out.push_str(&format!(
            "<li><time datetime=\"{}\" title=\"{}\">{}</time> {} {} <span class=\"kind\">{}</span><br>{}{}</li>",
            escape(&e.datetime),
            escape(&e.datetime),
            escape(&e.ago),
            escape(&e.node),
            escape(&e.source),
            escape(&e.kind),
            escape(&e.summary),
            if e.count > 1 {
                format!(" <span class=\"muted\">(×{})</span>", e.count)
            } else {
                String::new()
            }
        ));
    }
    out.push_str("</ol>");
    out
}

/// The whole dashboard page.
pub fn page(d: &Dashboard) -> String {
    let csrf = escape(&d.csrf);
    let mut body = format!(
        "<nav class=\"portal-bar\"><span>Signed in as <strong>{}</strong> (operator)</span>\
         <a href=\"/ops/\">Refresh</a><a href=\"/portal/\">Upload</a>\
         <form id=\"signout\" method=\"post\" action=\"/portal/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\">Sign out</button></form></nav>\
         <h1>Operations: {}</h1><p class=\"muted\">{} <span class=\"refresh\">{}</span></p>",
        escape(&d.user),
        escape(&d.cluster),
        escape(&d.asked),
        match d.refresh {
            Some(_) => "<a href=\"/ops/\">Stop refreshing</a>".to_string(),
            None => "<a href=\"/ops/?every=15\">Refresh every 15 s</a>".to_string(),
        }
    );
    if let Some(n) = &d.notice {
        body.push_str(&format!(
            "<p class=\"notice\" id=\"notice\" role=\"status\">{}</p>",
            escape(n)
        ));
    }
    if let Some(e) = &d.error {
        body.push_str(&format!(
            "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>",
            escape(e)
        ));
    }
    if !d.problems.is_empty() {
        body.push_str("<section id=\"problems\"><h2>Not answering</h2><ul class=\"plain\">");
        for p in &d.problems {
            body.push_str(&format!("<li class=\"error\">{}</li>", escape(p)));
        }
        body.push_str("</ul></section>");
    }
    body.push_str("<section id=\"cluster\"><h2>Racks, nodes and disks</h2>");
    body.push_str(&legend());
    for r in &d.racks {
        body.push_str(&format!(
            "<section class=\"rack\" data-rack=\"{}\"><h3>Rack {}</h3><div class=\"nodes\">",
            escape(&r.name),
            escape(&r.name)
        ));
        for n in &r.nodes {
            body.push_str(&node(n));
        }
        body.push_str("</div></section>");
    }
    body.push_str("</section>");
    let open = d.tickets.iter().filter(|t| t.state == "open").count();
    body.push_str(&format!(
        "<section id=\"tickets\"><h2>Repair tickets ({open} open)</h2>"
    ));
    if d.tickets.is_empty() {
        body.push_str("<p class=\"muted\">No tickets: nothing to replace.</p>");
    }
    for t in &d.tickets {
        body.push_str(&ticket(t, &d.csrf));
    }
    body.push_str("</section><section id=\"redundancy\"><h2>Redundancy</h2>");
    body.push_str(&redundancy(&d.redundancy));
    body.push_str("</section><section id=\"workers\"><h2>Workers</h2>");
    body.push_str(&workers(&d.workers));
    body.push_str("</section><section id=\"events\"><h2>Last events</h2>");
    body.push_str(&events(&d.events));
    body.push_str("</section>");
    let refresh = d.refresh.map_or_else(String::new, |s| {
        format!("<meta http-equiv=\"refresh\" content=\"{s}\">")
    });
    let html = page_with_head(
        &format!("Operations: {}", d.cluster),
        &format!("{refresh}{STYLE}"),
        &body,
    );
    // The dashboard is wider than the other pages.
    html.replacen("<main>", "<main class=\"ops\">", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped_and_each_slot_says_its_state_in_words() {
        let d = Dashboard {
            cluster: "<b>museum</b>".into(),
            user: "olga".into(),
            csrf: "t\"ok".into(),
            racks: vec![Rack {
                name: "r1".into(),
                nodes: vec![NodeBox {
                    name: "node-a".into(),
                    power_domain: "A".into(),
                    answering: false,
                    notes: vec!["<script>x</script>".into()],
                    images: None,
                    enclosures: vec![Enclosure {
                        name: "e1".into(),
                        slots: vec![Slot {
                            slot: Some(3),
                            disk: "a1".into(),
                            serial: Some("WD<1>".into()),
                            state: SlotState::Failed,
                            detail: Some("I/O \"error\"".into()),
                        }],
                    }],
                }],
            }],
            tickets: vec![TicketItem {
                id: "node-a.m4".into(),
                state: "open".into(),
                urgent: true,
                summary: "disk <a1> failed".into(),
                part: "disk a1".into(),
                likelihood: 90,
                label: "rack r1, node node-a, enclosure e1, slot 3, serial WD<1>".into(),
                others: vec![],
                bring: "a disk".into(),
                todo: "swap it".into(),
                opened: "now".into(),
                can_done: true,
                can_acquit: true,
            }],
            ..Dashboard::default()
        };
        let html = page(&d);
        assert!(!html.contains("<script>x") && !html.contains("<b>museum"));
        assert!(html.contains("&lt;b&gt;museum&lt;/b&gt;"));
        assert!(html.contains("WD&lt;1&gt;") && html.contains("disk &lt;a1&gt; failed"));
        assert!(
            html.contains("value=\"t&quot;ok\""),
            "the CSRF token escaped"
        );
        assert!(html.contains("data-disk=\"a1\" data-state=\"failed\""));
        assert!(html.contains("<strong class=\"slot-state\">failed</strong>"));
        assert!(html.contains("not answering"));
        assert!(html.contains("action=\"/ops/tickets/node-a.m4\""));
        assert!(html.contains("name=\"viewport\""));
        for s in SlotState::ALL {
            assert!(
                html.contains(&format!("<strong>{}</strong>", s.key())),
                "legend: {s:?}"
            );
        }
    }
}
