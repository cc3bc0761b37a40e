//! The detectors a monitor runs, one module each.

pub mod disk_probe;
pub mod enclosure;
pub mod host;
pub mod peers;
pub mod process;
pub mod smart;
