//! Repair tickets on the wire: one per physical fault, naming the part to replace (most likely
//! first), what was taken out of service meanwhile, where the part is as printed on the
//! hardware, and the events that show it. The repair crate makes them from a node's events;
//! the monitor serves them; `td tickets`, the visit report and the dashboard read them.

use serde::{Deserialize, Serialize};

use crate::{EventKind, Location};

/// A part an operator can replace (or, for software, report).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "snake_case")]
pub enum Part {
    Disk {
        disk: String,
    },
    /// The cable or backplane connector between an adapter and one disk.
    CableOrBackplane {
        disk: String,
    },
    /// A host adapter or bus shared by several disks (`adapter 0 bus 1`, or as the kernel
    /// names it: `ata3`).
    Bus {
        bus: String,
    },
    /// A fan, power supply or sensor of an enclosure.
    EnclosureElement {
        enclosure: String,
        element: String,
    },
    /// A whole node (its mainboard, power supply or memory: found on the visit).
    Node {
        node: String,
    },
    /// Not a part: a program that keeps failing. Its ticket is a bug report.
    Software {
        process: String,
    },
}

impl Part {
    /// What the part is, in a few words ("disk", "host adapter or bus").
    pub fn kind(&self) -> &'static str {
        match self {
            Part::Disk { .. } => "disk",
            Part::CableOrBackplane { .. } => "cable or backplane",
            Part::Bus { .. } => "host adapter or bus",
            Part::EnclosureElement { .. } => "enclosure element",
            Part::Node { .. } => "node",
            Part::Software { .. } => "software",
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Disk { disk } => write!(f, "disk {disk}"),
            Part::CableOrBackplane { disk } => write!(f, "the cable or backplane of disk {disk}"),
            Part::Bus { bus } => write!(f, "host adapter or bus {bus}"),
            Part::EnclosureElement { enclosure, element } => {
                write!(f, "{element} of enclosure {enclosure}")
            }
            Part::Node { node } => write!(f, "node {node}"),
            Part::Software { process } => write!(f, "the {process} program"),
        }
    }
}

/// One part a fault may be, with how likely it is and where to find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspect {
    #[serde(flatten)]
    pub part: Part,
    /// In percent; the suspects of a ticket add up to 100.
    pub likelihood: u8,
    /// Where it is, as configured (and printed on the hardware).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// What to bring ("a disk of at least 8 TB", "a SATA cable").
    pub bring: String,
    /// What to do, in plain words.
    pub todo: String,
}

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// The fault stands; the part is on the next visit's list.
    Open,
    /// The operator says the part was replaced or repaired; the node has not seen it work yet.
    Done,
    /// The node saw the new part work (a new disk adopted, a node answering again).
    Verified,
    /// Verified, and it kept working: nothing left to do.
    Closed,
    /// The operator found nothing wrong: a false alarm.
    Acquitted,
}

impl TicketState {
    /// Still asks something of the operator or the node.
    pub fn active(self) -> bool {
        matches!(
            self,
            TicketState::Open | TicketState::Done | TicketState::Verified
        )
    }
}

/// The events of one kind behind a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub kind: EventKind,
    /// What the events are about (`disk d2`, `ata3`).
    pub about: String,
    /// How many times it was seen, over all its events.
    pub count: u64,
    pub first_seen: u64,
    pub last_seen: u64,
    /// The first lines of evidence, as recorded.
    pub lines: Vec<String>,
}

/// One physical fault and what is asked about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Stable: the node and the first event that showed the fault (`node-a.m42`).
    pub id: String,
    /// The node that keeps it (the one holding the part, or, for a silent node, its watcher).
    pub node: String,
    #[serde(default)]
    pub rack: String,
    pub state: TicketState,
    /// Some image is one failure from loss and the cluster cannot copy it by itself: the
    /// operator is told at once, not at the weekly visit.
    pub urgent: bool,
    /// One sentence: what is wrong.
    pub summary: String,
    /// What the part may be, most likely first. Never empty.
    pub suspects: Vec<Suspect>,
    /// What is out of service until the repair (`disk d2: its replicas are served from their
    /// other copies`).
    pub out_of_service: Vec<String>,
    /// What the system did by itself (masked, re-mirrored, restarted, power-cycled).
    pub actions: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub opened_at: u64,
    pub updated_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<u64>,
    /// Notes from the operator's marks and the node's checks, oldest first.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// `GET /tickets` of a monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketPage {
    pub node: String,
    pub tickets: Vec<Ticket>,
    /// What could not be read to make them (the backend's events, its redundancy), if any.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// An operator's mark on a ticket (`td ticket done|acquit ID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    Done,
    Acquit,
}

/// `POST /tickets/ID` of a monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRequest {
    pub mark: Mark,
    /// Who marks it, and anything they want to say ("swapped for serial ZX81").
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub note: String,
}

/// True for an id a ticket may have: a node name, a dot, a letter and a number.
pub fn valid_ticket_id(id: &str) -> bool {
    id.len() <= 80
        && !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.contains("..")
}
