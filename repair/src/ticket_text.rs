//! A ticket in plain words: its state, the part to replace with its label (rack, node,
//! enclosure, slot, serial), what to bring and do, what is out of service, what the system
//! did, and the evidence; for `td tickets` and the urgent mail.

use std::time::Duration;

use cluster::ticket::Ticket;

/// Where a part is, as printed on the hardware: rack, node, enclosure, slot, serial.
pub fn label(t: &Ticket, s: &cluster::Suspect) -> String {
    let mut parts = Vec::new();
    if !t.rack.is_empty() {
        parts.push(format!("rack {}", t.rack));
    }
    match &s.part {
        cluster::Part::Node { node } => parts.push(format!("node {node}")),
        _ => parts.push(format!("node {}", t.node)),
    }
    if let Some(l) = &s.location {
        if let Some(e) = &l.enclosure {
            parts.push(format!("enclosure {e}"));
        }
        if let Some(slot) = l.slot {
            parts.push(format!("slot {slot}"));
        }
        if l.slot.is_none() {
            if let (Some(a), Some(b)) = (l.adapter, l.bus) {
                parts.push(format!("adapter {a} bus {b}"));
            }
        }
    }
    if let Some(serial) = &s.serial {
        parts.push(format!("serial {serial}"));
    }
    parts.join(", ")
}

fn when(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

/// A ticket in plain text, as `td tickets` prints it and an urgent mail carries it.
pub fn text(t: &Ticket) -> String {
    let mut out = String::new();
    let state = format!("{:?}", t.state).to_uppercase();
    let urgent = if t.urgent { " URGENT" } else { "" };
    out.push_str(&format!("{state}{urgent}  {}  {}\n", t.id, t.summary));
    out.push_str(&format!("  opened {}", when(t.opened_at)));
    if let Some(d) = t.done_at {
        out.push_str(&format!(", done {}", when(d)));
    }
    if let Some(v) = t.verified_at {
        out.push_str(&format!(", verified {}", when(v)));
    }
    if let Some(c) = t.closed_at {
        out.push_str(&format!(", closed {}", when(c)));
    }
    out.push('\n');
    for (i, s) in t.suspects.iter().enumerate() {
        let lead = if i == 0 { "replace" } else { "or" };
        out.push_str(&format!(
            "  {lead}: {} ({}%) at {}\n",
            s.part,
            s.likelihood,
            label(t, s)
        ));
        if i == 0 {
            out.push_str(&format!("    bring: {}\n    do: {}\n", s.bring, s.todo));
        }
    }
    for o in &t.out_of_service {
        out.push_str(&format!("  out of service: {o}\n"));
    }
    for a in &t.actions {
        out.push_str(&format!("  done by the system: {a}\n"));
    }
    for e in &t.evidence {
        let line = e.lines.last().map(String::as_str).unwrap_or("");
        out.push_str(&format!(
            "  evidence: {} on {} ×{} ({} … {}): {line}\n",
            crate::report::kind_words(e.kind),
            e.about,
            e.count,
            when(e.first_seen),
            when(e.last_seen)
        ));
    }
    for n in &t.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    out.push('\n');
    out
}
