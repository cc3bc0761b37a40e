//! Events: the facts a node records about its hardware, its processes and its replicas, with
//! their evidence. The monitor and the backend write them; repair reads them.

use serde::{Deserialize, Serialize};

use crate::Location;

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "component", rename_all = "snake_case")]
pub enum Component {
    Disk {
        disk: String,
    },
    /// A host adapter, bus or link the kernel names (`ata3`, `scsi host2`, `nvme0`), shared
    /// by the disks behind it.
    Bus {
        bus: String,
    },
    /// An element of a SES enclosure (fan, power supply, temperature sensor, slot).
    Enclosure {
        enclosure: String,
        element: String,
    },
    Replica {
        image: String,
        disk: String,
    },
    Catalog,
    Process {
        name: String,
    },
    Host,
    /// Another node, as seen from this one.
    Peer {
        peer: String,
    },
    /// One of the monitor's own detectors.
    Detector {
        detector: String,
    },
    /// A repair ticket (the operator's marks on it).
    Ticket {
        ticket: String,
    },
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A read or probe returned an I/O error.
    DiskFailed,
    /// A probe did not return within its budget.
    DiskHung,
    /// A disk is not the one configured for its slot, or holds unknown files.
    DiskRefused,
    /// Nothing (or another filesystem) is mounted where the disk should be.
    DiskMissing,
    /// The kernel logged an I/O error on a device and sector.
    IoError,
    /// The drive reported a medium error (unreadable sector).
    MediumError,
    /// A command to the device timed out.
    CommandTimeout,
    /// A device, link, target or controller was reset.
    DeviceReset,
    /// A whole bus or host adapter was reset.
    BusReset,
    /// The kernel took a device offline.
    DeviceOffline,
    /// The filesystem reported an error (or remounted read-only).
    FilesystemError,
    /// The filesystem shut itself down (or was shut down); every access now fails.
    FilesystemShutdown,
    /// The drive's SMART self-assessment failed.
    SmartFailed,
    /// A SMART attribute that predicts failure is not zero (reallocated, pending,
    /// uncorrectable sectors; NVMe media errors or spare).
    SmartWarning,
    /// Interface CRC errors: the cable or backplane, not the disk.
    CableErrors,
    /// An enclosure element (fan, power supply, temperature, slot) reports a fault.
    EnclosureFault,
    /// A disk is filling up past its threshold.
    DiskFilling,
    /// The host is short of memory.
    MemoryLow,
    /// A temperature sensor is past its limit.
    Overheating,
    /// A process ended on its own.
    ProcessDied,
    /// A process was started again after it ended.
    ProcessRestarted,
    /// A process is alive but does not answer in time.
    ProcessHung,
    /// A process hung past its limit was killed by its monitor, to be restarted.
    ProcessKilled,
    /// Another node stopped answering.
    PeerSilent,
    /// A detector has not completed a run for much longer than its interval.
    DetectorStalled,
    /// A fault reported earlier is over (the event says which).
    Recovered,
    /// Part of a replica does not match its checksum.
    ReplicaCorrupt,
    /// A replica cannot be opened (missing or damaged files).
    ReplicaUnreadable,
    /// The catalog was rebuilt from the disks (missing, damaged or asked for).
    CatalogRebuilt,
    /// A failed disk answers again and was checked.
    DiskReturned,
    /// A blank disk was adopted in the slot of a failed one (to be refilled by re-mirroring).
    DiskReplaced,
    /// A lost replica was copied again from its survivor: two replicas again.
    ReplicaRemirrored,
    /// An image was withdrawn by its owner or an operator (a tombstone stays).
    ImageDeleted,
    /// A process started.
    Started,
    /// The operator says a ticket's part was replaced or repaired (evidence: who, and what
    /// they said).
    TicketDone,
    /// The operator found nothing wrong with a ticket's part: a false alarm.
    TicketAcquitted,
    /// The operator was mailed at once about an urgent ticket.
    TicketMailed,
    /// A silent node's outlet was cycled through its remote power switch (the summary says
    /// with what outcome).
    PowerCycled,
    /// A dead frontend's leftover canonical address was removed from its host's interface.
    AliasRemoved,
}

/// One recorded fact. A fault that goes on (a disk spewing errors) is one event whose
/// `count` grows, not thousands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Assigned by the log: grows with every event of the node.
    pub id: u64,
    /// Seconds since the Unix epoch, when it was first seen.
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
    /// The error messages, log lines or probe results that show it (the first few).
    #[serde(default)]
    pub evidence: Vec<String>,
    /// How many times it was seen.
    #[serde(default = "one")]
    pub count: u64,
    /// When it was last seen (seconds since the Unix epoch).
    #[serde(default)]
    pub last_seen: u64,
}

fn one() -> u64 {
    1
}

/// Events after a given id, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    pub node: String,
    pub events: Vec<Event>,
    /// Ask with `since=next` for what comes after.
    pub next: u64,
}
