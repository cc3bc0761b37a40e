//! Events: the facts a node records about its hardware and its replicas, with their evidence.

use serde::{Deserialize, Serialize};

use crate::Location;

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "component", rename_all = "snake_case")]
pub enum Component {
    Disk { disk: String },
    Replica { image: String, disk: String },
    Catalog,
    Process { name: String },
    Host,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A read or probe returned an I/O error.
    DiskFailed,
    /// A probe did not return within its budget.
    DiskHung,
    /// A disk is not the one configured for its slot, or holds unknown files.
    DiskRefused,
    /// Part of a replica does not match its checksum.
    ReplicaCorrupt,
    /// A replica cannot be opened (missing or damaged files).
    ReplicaUnreadable,
    /// The catalog was rebuilt from the disks (missing, damaged or asked for).
    CatalogRebuilt,
    /// A process started.
    Started,
}

/// One recorded fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Assigned by the log: grows with every event of the node.
    pub id: u64,
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub node: String,
    /// Who noticed it (`backend`, `monitor`).
    pub source: String,
    #[serde(flatten)]
    pub component: Component,
    pub kind: EventKind,
    /// One sentence an operator can act on.
    pub summary: String,
    /// Where the part is, as configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The error messages, log lines or probe results that show it.
    #[serde(default)]
    pub evidence: Vec<String>,
}

/// Events after a given id, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    pub node: String,
    pub events: Vec<Event>,
    /// Ask with `since=next` for what comes after.
    pub next: u64,
}
