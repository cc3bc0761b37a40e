//! Diagnosis: a node's events (its monitor's and its backend's) folded into tickets, one per
//! physical fault. A pure function of the events, the configuration and the time, so a
//! node's tickets are rebuilt from its event logs at any moment and come out the same: the
//! operator's marks are events too.
//!
//! The rules, each with its test below:
//! - a disk that fails, hangs, goes missing or is refused for longer than the grace period is
//!   a fault; one that answers again within it is not (a reseat, a bus reset);
//! - disks behind one adapter and bus (as configured) failing within the grace period of each
//!   other are one fault of the shared part, not one per disk;
//! - interface CRC errors point at the cable or backplane; a failed SMART verdict, SMART
//!   warnings or medium errors seen more than once point at the disk, even while it serves;
//! - a disk that fails again after it answered again without being replaced is the disk;
//! - when the evidence cannot tell a disk from its cable or slot, both are named, the disk
//!   first;
//! - a program that dies again and again within a window (killed after a hang counts) is a
//!   software defect: a bug report with its evidence, not a part;
//! - a silent node is a fault only once it stays silent past its grace period, and only its
//!   watcher (the next node in the configuration that answers) keeps the ticket;
//! - an enclosure element at fault is that element.

use std::collections::{BTreeMap, BTreeSet};

use cluster::ticket::{Evidence, Part, Suspect, Ticket, TicketState};
use cluster::{ClusterConfig, Component, DiskConfig, Event, EventKind, Location, RepairConfig};

/// Evidence lines kept per kind of event on a ticket.
const LINES: usize = 3;

/// How long faults must last, and how long a repair must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// A disk or enclosure fault shorter than this is not a ticket; disks of one bus failing
    /// within it of each other are one fault.
    pub grace: u64,
    /// A silent node becomes a ticket after this long.
    pub node_down: u64,
    /// A verified repair closes after it held this long.
    pub settle: u64,
    /// A program that dies or hangs this many times within `crash_window` is a defect.
    pub crash_count: u64,
    pub crash_window: u64,
}

impl Settings {
    pub fn from_config(repair: &RepairConfig) -> Settings {
        Settings {
            grace: repair.ticket_grace_seconds,
            node_down: repair.node_grace_seconds,
            settle: repair.ticket_settle_seconds,
            crash_count: 3,
            crash_window: 600,
        }
    }
}

/// What a node's tickets are made from.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub cluster: &'a ClusterConfig,
    /// The node whose events these are.
    pub node: &'a str,
    /// Its monitor's and its backend's events, in any order.
    pub events: &'a [Event],
    /// Images one failure from loss that the cluster cannot copy again by itself now (no room,
    /// no other power domain), as the nodes holding their last replica say: the node whose
    /// replica was lost, and a sentence. A ticket is urgent when its part is that node's.
    pub blocked: &'a [(String, String)],
    pub now: u64,
}

/// What a fault is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Disk(String),
    Bus(String),
    Element(String, String),
    Peer(String),
    Process(String),
}

/// A fault being followed, before it is a ticket.
#[derive(Debug, Clone)]
struct Draft {
    id: String,
    unit: Unit,
    /// The disks it took out of service (several for a bus).
    disks: BTreeSet<String>,
    opened_at: u64,
    updated_at: u64,
    /// What is down now, since when.
    down: BTreeMap<String, u64>,
    /// The longest outage that ended.
    longest_down: u64,
    /// Shown whatever the outage: the evidence alone names a part.
    definite: bool,
    evidence: BTreeMap<(EventKind, String), Evidence>,
    state: TicketState,
    done_at: Option<u64>,
    verified_at: Option<u64>,
    closed_at: Option<u64>,
    /// A blank disk was adopted in its slot.
    replaced: bool,
    /// The same disk answered again without being replaced (reseated, or it came back).
    came_back: bool,
    /// It failed again after it came back: the disk itself.
    failed_after_return: bool,
    /// Times a program died or hung, for the crash-loop rule.
    deaths: Vec<u64>,
    restarts: u64,
    /// Times its monitor killed it, hung.
    killed: u64,
    /// Actions recorded as events (a power cycle), with when.
    did: Vec<String>,
    notes: Vec<String>,
}

impl Draft {
    fn new(id: String, unit: Unit, at: u64) -> Draft {
        Draft {
            id,
            unit,
            disks: BTreeSet::new(),
            opened_at: at,
            updated_at: at,
            down: BTreeMap::new(),
            longest_down: 0,
            definite: false,
            evidence: BTreeMap::new(),
            state: TicketState::Open,
            done_at: None,
            verified_at: None,
            closed_at: None,
            replaced: false,
            came_back: false,
            failed_after_return: false,
            deaths: Vec::new(),
            restarts: 0,
            killed: 0,
            did: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn add(&mut self, e: &Event, about: String) {
        self.updated_at = self.updated_at.max(e.last_seen.max(e.time));
        let ev = self
            .evidence
            .entry((e.kind, about.clone()))
            .or_insert_with(|| Evidence {
                kind: e.kind,
                about,
                count: 0,
                first_seen: e.time,
                last_seen: e.time,
                lines: Vec::new(),
            });
        ev.count += e.count.max(1);
        ev.first_seen = ev.first_seen.min(e.time);
        ev.last_seen = ev.last_seen.max(e.last_seen.max(e.time));
        for line in std::iter::once(&e.summary).chain(&e.evidence) {
            if ev.lines.len() < LINES && !ev.lines.contains(line) {
                ev.lines.push(line.clone());
            }
        }
    }

    fn count(&self, kind: EventKind) -> u64 {
        self.evidence
            .values()
            .filter(|e| e.kind == kind)
            .map(|e| e.count)
            .sum()
    }

    fn has(&self, kind: EventKind) -> bool {
        self.count(kind) > 0
    }

    /// The longest outage, the one going on counted up to `now`.
    fn outage(&self, now: u64) -> u64 {
        let current = self
            .down
            .values()
            .map(|since| now.saturating_sub(*since))
            .max()
            .unwrap_or(0);
        self.longest_down.max(current)
    }

    fn ended(&self) -> bool {
        matches!(self.state, TicketState::Closed | TicketState::Acquitted)
    }
}

/// Kinds that say a disk is out of service until it answers again.
fn outage(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::DiskFailed
            | EventKind::DiskHung
            | EventKind::DiskMissing
            | EventKind::DiskRefused
    )
}

/// Kinds that say a disk answers again.
fn back(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Recovered | EventKind::DiskReturned | EventKind::DiskReplaced
    )
}

/// The shared part two disks hang off, as configured.
fn bus_of(disk: &DiskConfig) -> Option<String> {
    let l = &disk.location;
    Some(format!("adapter {} bus {}", l.adapter?, l.bus?))
}

/// The tickets of `input.node`, oldest first.
pub fn tickets(input: &Input<'_>, settings: &Settings) -> Vec<Ticket> {
    let Some(node) = input.cluster.node(input.node) else {
        return Vec::new();
    };
    let disk_config = |id: &str| node.disks.iter().find(|d| d.id == id);
    let mut events: Vec<&Event> = input.events.iter().collect();
    events.sort_by(|a, b| (a.time, &a.source, a.id).cmp(&(b.time, &b.source, b.id)));

    let mut drafts: Vec<Draft> = Vec::new();
    // The last ended draft of each unit, for the rule of a disk that fails again.
    let mut bus_events: Vec<&Event> = Vec::new();
    let mut silent: BTreeSet<String> = BTreeSet::new();
    let id_of = |e: &Event| {
        let from = e.source.chars().next().unwrap_or('x');
        format!("{}.{from}{}", input.node, e.id)
    };
    // The active draft that follows `disk` (its own, or its bus's).
    let active_for_disk = |drafts: &[Draft], disk: &str| {
        drafts.iter().rposition(|d| {
            !d.ended() && (d.unit == Unit::Disk(disk.to_string()) || d.disks.contains(disk))
        })
    };
    let active_for =
        |drafts: &[Draft], unit: &Unit| drafts.iter().rposition(|d| !d.ended() && d.unit == *unit);

    for e in events {
        let t = e.time;
        // A repair that held until now closed before this event: a new fault is a new ticket.
        for d in drafts.iter_mut().filter(|d| !d.ended()) {
            settle(d, t, settings);
        }
        match (&e.component, e.kind) {
            (Component::Ticket { ticket }, EventKind::TicketDone | EventKind::TicketAcquitted) => {
                let Some(d) = drafts.iter_mut().find(|d| d.id == *ticket && !d.ended()) else {
                    continue;
                };
                let said = e.evidence.join("; ");
                if e.kind == EventKind::TicketAcquitted {
                    d.state = TicketState::Acquitted;
                    d.closed_at = Some(t);
                    d.notes
                        .push(format!("acquitted (a false alarm) at {}: {said}", stamp(t)));
                } else if d.state == TicketState::Open {
                    d.state = TicketState::Done;
                    d.done_at = Some(t);
                    d.notes.push(format!("marked done at {}: {said}", stamp(t)));
                    if d.down.is_empty() {
                        // Nothing is down: what the node can see of the part works now.
                        d.state = TicketState::Verified;
                        d.verified_at = Some(t);
                    }
                }
            }
            (Component::Disk { disk }, kind) if outage(kind) => {
                let about = format!("disk {disk}");
                let i = match active_for_disk(&drafts, disk) {
                    Some(i) => i,
                    None => {
                        let again = drafts
                            .iter()
                            .rev()
                            .find(|d| d.unit == Unit::Disk(disk.clone()))
                            .is_some_and(|d| d.came_back && !d.replaced);
                        let mut d = Draft::new(id_of(e), Unit::Disk(disk.clone()), t);
                        d.disks.insert(disk.clone());
                        if again {
                            d.failed_after_return = true;
                            d.notes.push(format!(
                                "disk {disk} answered again once without being replaced, and \
                                 fails again: the disk itself"
                            ));
                        }
                        drafts.push(d);
                        drafts.len() - 1
                    }
                };
                let starts = drafts[i].down.is_empty() && drafts[i].state == TicketState::Open;
                // A new outage, with another disk behind the same bus down since less than
                // the grace period: one fault of the shared part.
                let bus = disk_config(disk).and_then(bus_of);
                let partner = bus.as_ref().filter(|_| starts).and_then(|bus| {
                    drafts.iter().position(|d| {
                        !d.ended()
                            && d.state == TicketState::Open
                            && !d.disks.contains(disk)
                            && d.down
                                .values()
                                .any(|since| t.saturating_sub(*since) <= settings.grace)
                            && d.disks
                                .iter()
                                .all(|o| disk_config(o).and_then(bus_of).as_ref() == Some(bus))
                    })
                });
                if let (Some(p), Some(bus)) = (partner, bus) {
                    let mine = drafts.remove(i);
                    let p = if p > i { p - 1 } else { p };
                    let d = &mut drafts[p];
                    d.unit = Unit::Bus(bus);
                    d.disks.insert(disk.clone());
                    for (key, ev) in mine.evidence {
                        d.evidence.entry(key).or_insert(ev);
                    }
                    d.down.insert(disk.clone(), t);
                    d.add(e, about);
                    continue;
                }
                let d = &mut drafts[i];
                if d.state == TicketState::Verified {
                    d.state = TicketState::Open;
                    d.verified_at = None;
                    if d.came_back && !d.replaced {
                        d.failed_after_return = true;
                    }
                    d.notes.push(format!(
                        "failed again at {} after it answered again",
                        stamp(t)
                    ));
                }
                d.down.entry(disk.clone()).or_insert(t);
                d.add(e, about);
            }
            (Component::Disk { disk }, kind) if back(kind) => {
                let Some(i) = active_for_disk(&drafts, disk) else {
                    continue;
                };
                let d = &mut drafts[i];
                let Some(since) = d.down.remove(disk) else {
                    if kind != EventKind::Recovered {
                        d.add(e, format!("disk {disk}"));
                    }
                    continue;
                };
                d.longest_down = d.longest_down.max(t.saturating_sub(since));
                if kind == EventKind::DiskReplaced {
                    d.replaced = true;
                    d.add(e, format!("disk {disk}"));
                } else if kind == EventKind::DiskReturned {
                    d.came_back = true;
                    d.add(e, format!("disk {disk}"));
                }
                if !d.down.is_empty() {
                    continue;
                }
                if !d.definite && d.outage(t) < settings.grace && d.state == TicketState::Open {
                    // Back within the grace period: not a fault. Its evidence stays with the
                    // disk in case it fails for good later.
                    let mut latent = drafts.remove(i);
                    latent.state = TicketState::Open;
                    latent.longest_down = 0;
                    if latent.unit == Unit::Disk(disk.clone()) {
                        drafts.push(latent);
                    }
                    continue;
                }
                verify(d, t, kind);
            }
            (Component::Disk { disk }, kind) if disk_symptom(kind) => {
                let i = match active_for_disk(&drafts, disk) {
                    Some(i) => i,
                    None => {
                        let mut d = Draft::new(id_of(e), Unit::Disk(disk.clone()), t);
                        d.disks.insert(disk.clone());
                        drafts.push(d);
                        drafts.len() - 1
                    }
                };
                let d = &mut drafts[i];
                d.add(e, format!("disk {disk}"));
                if d.has(EventKind::CableErrors)
                    || d.has(EventKind::SmartFailed)
                    || d.has(EventKind::SmartWarning)
                    || d.count(EventKind::MediumError) >= 2
                {
                    d.definite = true;
                }
                if d.state == TicketState::Verified && d.definite {
                    d.state = TicketState::Open;
                    d.verified_at = None;
                    d.notes
                        .push(format!("errors again at {} after the repair", stamp(t)));
                }
            }
            (
                Component::Replica { disk, .. },
                EventKind::ReplicaCorrupt | EventKind::ReplicaUnreadable,
            ) => {
                if let Some(i) = active_for_disk(&drafts, disk) {
                    drafts[i].add(e, format!("disk {disk}"));
                }
            }
            (Component::Bus { .. }, _) => bus_events.push(e),
            (Component::Enclosure { enclosure, element }, EventKind::EnclosureFault) => {
                let unit = Unit::Element(enclosure.clone(), element.clone());
                let i = active_for(&drafts, &unit).unwrap_or_else(|| {
                    drafts.push(Draft::new(id_of(e), unit.clone(), t));
                    drafts.len() - 1
                });
                let d = &mut drafts[i];
                d.down.entry(element.clone()).or_insert(t);
                d.add(e, format!("{element} of enclosure {enclosure}"));
            }
            (Component::Enclosure { enclosure, element }, EventKind::Recovered) => {
                let unit = Unit::Element(enclosure.clone(), element.clone());
                let Some(i) = active_for(&drafts, &unit) else {
                    continue;
                };
                let d = &mut drafts[i];
                if let Some(since) = d.down.remove(element) {
                    d.longest_down = d.longest_down.max(t.saturating_sub(since));
                    if d.longest_down < settings.grace && d.state == TicketState::Open {
                        drafts.remove(i);
                        continue;
                    }
                    verify(&mut drafts[i], t, EventKind::Recovered);
                }
            }
            // A hang that needed a kill ends in a death too; one that passed is no failure.
            (Component::Process { name }, EventKind::ProcessDied) => {
                let unit = Unit::Process(name.clone());
                let i = active_for(&drafts, &unit).unwrap_or_else(|| {
                    drafts.push(Draft::new(id_of(e), unit.clone(), t));
                    drafts.len() - 1
                });
                let d = &mut drafts[i];
                d.add(e, format!("the {name} program"));
                d.deaths
                    .extend(std::iter::repeat_n(t, e.count.max(1) as usize));
                let recent = d
                    .deaths
                    .iter()
                    .filter(|&&at| t.saturating_sub(at) <= settings.crash_window)
                    .count() as u64;
                if recent >= settings.crash_count {
                    d.definite = true;
                }
            }
            (Component::Process { name }, EventKind::ProcessRestarted) => {
                if let Some(i) = active_for(&drafts, &Unit::Process(name.clone())) {
                    drafts[i].restarts += e.count.max(1);
                }
            }
            (Component::Process { name }, EventKind::ProcessKilled) => {
                let unit = Unit::Process(name.clone());
                let i = active_for(&drafts, &unit).unwrap_or_else(|| {
                    drafts.push(Draft::new(id_of(e), unit.clone(), t));
                    drafts.len() - 1
                });
                drafts[i].killed += 1;
                drafts[i].add(e, format!("the {name} program"));
            }
            (Component::Peer { peer }, EventKind::PeerSilent) => {
                silent.insert(peer.clone());
                let unit = Unit::Peer(peer.clone());
                let i = active_for(&drafts, &unit).unwrap_or_else(|| {
                    drafts.push(Draft::new(id_of(e), unit.clone(), t));
                    drafts.len() - 1
                });
                let d = &mut drafts[i];
                d.down.entry(peer.clone()).or_insert(t);
                d.add(e, format!("node {peer}"));
            }
            (Component::Peer { peer }, EventKind::PowerCycled) => {
                if let Some(i) = active_for(&drafts, &Unit::Peer(peer.clone())) {
                    drafts[i].did.push(format!("{}: {}", stamp(t), e.summary));
                    drafts[i].add(e, format!("node {peer}"));
                }
            }
            (Component::Peer { peer }, EventKind::Recovered) => {
                silent.remove(peer);
                let Some(i) = active_for(&drafts, &Unit::Peer(peer.clone())) else {
                    continue;
                };
                let d = &mut drafts[i];
                if let Some(since) = d.down.remove(peer) {
                    d.longest_down = d.longest_down.max(t.saturating_sub(since));
                    if d.longest_down < settings.node_down && d.state == TicketState::Open {
                        drafts.remove(i);
                        continue;
                    }
                    verify(&mut drafts[i], t, EventKind::Recovered);
                }
            }
            _ => {}
        }
    }

    let remirrored = input
        .events
        .iter()
        .filter(|e| e.kind == EventKind::ReplicaRemirrored)
        .collect::<Vec<_>>();
    let mut out = Vec::new();
    for mut d in drafts {
        let needed = match &d.unit {
            Unit::Peer(_) => settings.node_down,
            Unit::Process(_) => u64::MAX,
            _ => settings.grace,
        };
        if !d.definite && d.outage(input.now) < needed {
            continue;
        }
        if let Unit::Peer(peer) = &d.unit {
            if watcher(input.cluster, peer, &silent) != input.node {
                continue;
            }
        }
        if let Unit::Bus(_) = &d.unit {
            for e in &bus_events {
                if e.time + settings.grace >= d.opened_at && e.time <= d.updated_at + settings.grace
                {
                    let about = match &e.component {
                        Component::Bus { bus } => bus.clone(),
                        _ => String::new(),
                    };
                    d.add(e, about);
                }
            }
        }
        settle(&mut d, input.now, settings);
        let actions = actions(&d, &remirrored, input.now);
        let suspects = suspects(&d, node, &disk_config);
        // Where the operator walks to: the silent node's rack, not its watcher's.
        let rack = match &d.unit {
            Unit::Peer(peer) => input.cluster.node(peer).map(|n| n.rack.clone()),
            _ => None,
        }
        .unwrap_or_else(|| node.rack.clone());
        let out_of_service = d
            .down
            .keys()
            .map(|what| match &d.unit {
                Unit::Disk(_) | Unit::Bus(_) => format!(
                    "disk {what}: not used; its replicas are served from their other copies"
                ),
                Unit::Peer(_) => format!(
                    "node {what}: visitors are sent to the other replica of each of its images"
                ),
                Unit::Element(e, _) => format!("{what} of enclosure {e}"),
                Unit::Process(_) => what.clone(),
            })
            .collect();
        let hardware = !matches!(d.unit, Unit::Process(_));
        // The node whose loss the blocked images suffer: this one, or the silent peer.
        let lost_node = match &d.unit {
            Unit::Peer(peer) => peer.as_str(),
            _ => input.node,
        };
        let why: Vec<&String> = input
            .blocked
            .iter()
            .filter(|(lost, _)| lost == lost_node)
            .map(|(_, why)| why)
            .collect();
        let urgent =
            hardware && matches!(d.state, TicketState::Open | TicketState::Done) && !why.is_empty();
        let summary = summary(&d);
        let mut evidence: Vec<Evidence> = d.evidence.into_values().collect();
        evidence.sort_by_key(|e| (e.first_seen, e.about.clone()));
        let mut notes = d.notes;
        if urgent {
            notes.extend(why.iter().take(5).map(|b| format!("urgent: {b}")));
            if why.len() > 5 {
                notes.push(format!("urgent: and {} more images", why.len() - 5));
            }
        }
        out.push(Ticket {
            id: d.id,
            node: input.node.to_string(),
            rack,
            state: d.state,
            urgent,
            summary,
            suspects,
            out_of_service,
            actions,
            evidence,
            opened_at: d.opened_at,
            updated_at: d.updated_at,
            done_at: d.done_at,
            verified_at: d.verified_at,
            closed_at: d.closed_at,
            notes,
        });
    }
    out.sort_by_key(|t| (t.opened_at, t.id.clone()));
    out
}

/// Kinds that are symptoms of a disk (or its link) without taking it out by themselves.
fn disk_symptom(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::IoError
            | EventKind::MediumError
            | EventKind::CommandTimeout
            | EventKind::DeviceReset
            | EventKind::DeviceOffline
            | EventKind::FilesystemError
            | EventKind::FilesystemShutdown
            | EventKind::SmartFailed
            | EventKind::SmartWarning
            | EventKind::CableErrors
    )
}

/// The part answers again: the repair is seen working (or it came back by itself).
fn verify(d: &mut Draft, t: u64, kind: EventKind) {
    if d.state == TicketState::Verified {
        return;
    }
    let note = match (kind, d.state) {
        (EventKind::DiskReplaced, _) => format!(
            "a blank disk was adopted in its slot at {}; re-mirroring refills it",
            stamp(t)
        ),
        (_, TicketState::Done) => format!("seen working again at {} after the repair", stamp(t)),
        _ => format!(
            "answers again by itself at {} (reseated, a loose link, or a passing fault)",
            stamp(t)
        ),
    };
    if d.done_at.is_none() && kind == EventKind::DiskReplaced {
        d.done_at = Some(t);
    }
    d.state = TicketState::Verified;
    d.verified_at = Some(t);
    d.updated_at = d.updated_at.max(t);
    d.notes.push(note);
}

/// A verified repair that held closes; so does a program that stopped failing.
fn settle(d: &mut Draft, now: u64, settings: &Settings) {
    if let Unit::Process(_) = d.unit {
        let last = d.deaths.last().copied().unwrap_or(d.opened_at);
        if d.state.active() && now.saturating_sub(last) >= settings.settle {
            d.state = TicketState::Closed;
            d.closed_at = Some(last + settings.settle);
            d.notes
                .push(format!("no failure since {}: closed", stamp(last)));
        }
        return;
    }
    if let (TicketState::Verified, Some(at)) = (d.state, d.verified_at) {
        let since_fault = d
            .evidence
            .values()
            .filter(|e| e.kind != EventKind::DiskReplaced && e.kind != EventKind::DiskReturned)
            .map(|e| e.last_seen)
            .max()
            .unwrap_or(at);
        let from = at.max(since_fault);
        if now.saturating_sub(from) >= settings.settle {
            d.state = TicketState::Closed;
            d.closed_at = Some(from + settings.settle);
        }
    }
}

/// What the system did about it by itself.
fn actions(d: &Draft, remirrored: &[&Event], now: u64) -> Vec<String> {
    let mut actions = Vec::new();
    match &d.unit {
        Unit::Disk(_) | Unit::Bus(_) if d.longest_down > 0 || !d.down.is_empty() => {
            actions.push(
                "masked at once: visitors were sent to the other replica of each image".into(),
            );
            let end = d.closed_at.unwrap_or(now);
            let copies = remirrored
                .iter()
                .filter(|e| e.time >= d.opened_at && e.time <= end)
                .count();
            if copies > 0 {
                actions.push(format!(
                    "{copies} images copied again from their surviving replicas (re-mirrored)"
                ));
            }
        }
        Unit::Process(name) if d.restarts > 0 || d.killed > 0 => {
            if d.killed > 0 {
                actions.push(format!(
                    "the {name} program was killed {} times after it hung",
                    d.killed
                ));
            }
            actions.push(format!(
                "the {name} program was restarted {} times",
                d.restarts
            ));
        }
        Unit::Peer(_) => actions
            .push("masked: the frontends send visitors to the other replica of each image".into()),
        _ => {}
    }
    actions.extend(d.did.iter().cloned());
    actions
}

/// One sentence: what is wrong.
fn summary(d: &Draft) -> String {
    let disks = d.disks.iter().cloned().collect::<Vec<_>>().join(", ");
    match &d.unit {
        Unit::Bus(bus) => format!("disks {disks} behind {bus} failed together: the shared part"),
        Unit::Disk(disk) if d.failed_after_return => {
            format!("disk {disk} failed again after it answered again: the disk itself")
        }
        Unit::Disk(disk) if d.has(EventKind::DiskRefused) && d.down.contains_key(disk) => {
            format!("the disk in the slot of disk {disk} is not that disk")
        }
        Unit::Disk(disk)
            if d.has(EventKind::CableErrors) && d.longest_down == 0 && d.down.is_empty() =>
        {
            format!("interface CRC errors on the link of disk {disk}")
        }
        Unit::Disk(disk) if d.longest_down == 0 && d.down.is_empty() => {
            format!("disk {disk} reports it may fail soon")
        }
        Unit::Disk(disk) => {
            let what = if d.has(EventKind::DiskMissing) && !d.has(EventKind::DiskFailed) {
                "went missing"
            } else if d.has(EventKind::DiskHung) && !d.has(EventKind::DiskFailed) {
                "stopped answering"
            } else {
                "failed"
            };
            format!("disk {disk} {what}")
        }
        Unit::Element(enclosure, element) => {
            format!("{element} of enclosure {enclosure} reports a fault")
        }
        Unit::Peer(peer) => format!("node {peer} does not answer"),
        Unit::Process(name) => format!("the {name} program keeps failing: a software defect"),
    }
}

fn disk_suspect(d: &DiskConfig, likelihood: u8, todo: String) -> Suspect {
    let serial = d
        .serial
        .as_deref()
        .map_or(String::new(), |s| format!(", serial {s}"));
    Suspect {
        part: Part::Disk { disk: d.id.clone() },
        likelihood,
        location: Some(d.location.clone()),
        serial: d.serial.clone(),
        bring: format!("a disk at least as large as disk {}{serial}", d.id),
        todo,
    }
}

fn cable_suspect(d: &DiskConfig, likelihood: u8) -> Suspect {
    Suspect {
        part: Part::CableOrBackplane { disk: d.id.clone() },
        likelihood,
        location: Some(d.location.clone()),
        serial: None,
        bring:
            "a data cable for one disk (and the backplane's part number, if a cable does not help)"
                .into(),
        todo: format!(
            "replace the cable of disk {}; if the errors go on, its backplane connector",
            d.id
        ),
    }
}

/// What the part may be, most likely first. Never a part without evidence: every suspect
/// follows from the draft's events and the configuration of the part they name.
fn suspects<'c>(
    d: &Draft,
    node: &cluster::NodeConfig,
    disk_config: &dyn Fn(&str) -> Option<&'c DiskConfig>,
) -> Vec<Suspect> {
    let unknown_disk = |id: &str| DiskConfig {
        id: id.to_string(),
        path: Default::default(),
        serial: None,
        location: Location::default(),
    };
    match &d.unit {
        Unit::Disk(disk) => {
            let c = disk_config(disk)
                .cloned()
                .unwrap_or_else(|| unknown_disk(disk));
            let swap = format!(
                "replace disk {disk}: the node adopts the blank disk and refills it by itself"
            );
            if d.has(EventKind::DiskRefused) && d.down.contains_key(disk) {
                return vec![disk_suspect(
                    &c,
                    100,
                    format!(
                        "put disk {disk} back in its slot, or, if it is gone for good, a blank \
                         disk (the one there belongs elsewhere)"
                    ),
                )];
            }
            let medium = d.has(EventKind::SmartFailed)
                || d.has(EventKind::SmartWarning)
                || d.count(EventKind::MediumError) >= 2;
            if d.failed_after_return || (medium && !d.has(EventKind::CableErrors)) {
                return vec![disk_suspect(&c, 100, swap)];
            }
            if d.has(EventKind::CableErrors) && !medium {
                return vec![cable_suspect(&c, 80), disk_suspect(&c, 20, swap)];
            }
            if d.has(EventKind::CableErrors) {
                return vec![disk_suspect(&c, 60, swap), cable_suspect(&c, 40)];
            }
            // Failed, hung or missing with nothing more: the disk is the likelier, but its
            // link cannot be told apart from here.
            vec![disk_suspect(&c, 70, format!("{swap}; if the new one fails too, replace its cable or backplane connector")), cable_suspect(&c, 30)]
        }
        Unit::Bus(bus) => {
            let first = d.disks.iter().next().and_then(|id| disk_config(id));
            let location = first.map(|c| Location {
                slot: None,
                target: None,
                ..c.location.clone()
            });
            let mut s = vec![Suspect {
                part: Part::Bus { bus: bus.clone() },
                likelihood: 80,
                location,
                serial: None,
                bring: format!("a host adapter like {bus} of node {} (and its cables)", node.name),
                todo: format!(
                    "reseat, then replace, {bus} and its cables; the disks {} behind it come back by themselves",
                    d.disks.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            }];
            let n = d.disks.len().max(1) as u8;
            for id in &d.disks {
                let c = disk_config(id).cloned().unwrap_or_else(|| unknown_disk(id));
                s.push(disk_suspect(
                    &c,
                    20 / n,
                    format!("only if disk {id} alone stays failed once the bus is repaired"),
                ));
            }
            fix_total(&mut s);
            s
        }
        Unit::Element(enclosure, element) => vec![Suspect {
            part: Part::EnclosureElement {
                enclosure: enclosure.clone(),
                element: element.clone(),
            },
            likelihood: 100,
            location: Some(Location {
                enclosure: Some(enclosure.clone()),
                ..Location::default()
            }),
            serial: None,
            bring: format!("a replacement {element} for enclosure {enclosure}"),
            todo: format!("replace {element} of enclosure {enclosure}"),
        }],
        Unit::Peer(peer) => {
            vec![Suspect {
                part: Part::Node { node: peer.clone() },
                likelihood: 100,
                location: None,
                serial: None,
                bring: "a power supply for the node, in case it does not start".into(),
                todo: format!(
                    "look at node {peer}: power it on and watch it start; if it does not, \
                     replace its power supply, then its mainboard"
                ),
            }]
        }
        Unit::Process(name) => vec![Suspect {
            part: Part::Software {
                process: name.clone(),
            },
            likelihood: 100,
            location: None,
            serial: None,
            bring: "nothing".into(),
            todo: format!(
                "send this ticket (its evidence is the {name} program's last output) to the \
                 developers; it is restarted by itself meanwhile"
            ),
        }],
    }
}

/// Likelihoods add up to 100 (rounding gives the rest to the first).
fn fix_total(s: &mut [Suspect]) {
    let rest: u8 = s.iter().skip(1).map(|x| x.likelihood).sum();
    if let Some(first) = s.first_mut() {
        first.likelihood = 100u8.saturating_sub(rest);
    }
}

/// The node that keeps a silent node's ticket: the next one after it in the configuration
/// that is not silent itself (as this node sees them).
pub fn watcher<'c>(cluster: &'c ClusterConfig, peer: &str, silent: &BTreeSet<String>) -> &'c str {
    let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
    let at = names.iter().position(|n| *n == peer).unwrap_or(0);
    (1..names.len())
        .map(|k| names[(at + k) % names.len()])
        .find(|n| !silent.contains(*n))
        .unwrap_or("")
}

/// A time for notes, in UTC.
fn stamp(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
        .to_string()
}
