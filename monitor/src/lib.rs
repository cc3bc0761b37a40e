//! The node monitor: a small process per node, separate from the backend it watches, that runs
//! detectors for disk, bus, enclosure, host, process and peer faults and writes what they find,
//! with its evidence, into the node's event log.
//!
//! It records facts, and serves the tickets the repair crate's diagnosis makes of them; it
//! never diagnoses or repairs by itself (that is the repair crate's job), never
//! writes to a disk that is not the one configured for its slot, and never depends on another
//! node to do its job. A detector that cannot work here (no SMART on a loop device) says so in
//! its status; nothing a detector reads can crash the monitor.

pub mod detector;
pub mod detectors;
pub mod devices;
pub mod frontend_alias;
pub mod http;
pub mod kernel_log;
pub mod node_monitor;
pub mod power_cycle;
pub mod recorder;
pub mod tickets;
pub mod urgent_mail;
pub mod watchdog;

pub use node_monitor::{Monitor, MonitorError, Options};
pub use recorder::Recorder;
