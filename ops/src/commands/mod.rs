//! One module per `td` subcommand: its arguments and what it runs.

pub mod backend;
pub mod demo;
pub mod demo_tls;
pub mod events;
pub mod frontend;
pub mod image;
pub mod inspect;
pub mod monitor;
pub mod remirror;
pub mod report;
pub mod secret;
pub mod status;
pub mod tickets;
pub mod tile;
pub mod user;

/// Formats a byte count for people: 1.5 MiB, 312 KiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
