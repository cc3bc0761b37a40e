//! Kernel log lines: the record format of `/dev/kmsg` (and `dmesg` lines), and the messages of
//! the block, SCSI, ATA, NVMe, ext4 and XFS code that report a fault, with the device they name.
//! The patterns follow the kernel's own format strings (`blk_print_req_error`,
//! `buffer_io_error`, `sd_print_sense_hdr`, `ata_eh_link_report`, `nvme_timeout`,
//! `ext4_handle_error`, `xfs_do_force_shutdown`, ...). Anything else is not a fault.

use std::sync::OnceLock;

use cluster::EventKind;
use regex::Regex;

/// One kernel log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Syslog facility (0 = the kernel itself; anything else was written by a program).
    pub facility: u8,
    pub level: u8,
    /// `/dev/kmsg` sequence number.
    pub seq: Option<u64>,
    pub message: String,
    /// The `DEVICE=b8:1` dictionary entry: the block device's major and minor.
    pub device: Option<(u32, u32)>,
}

/// Parses a `/dev/kmsg` record (`6,1234,5678901,-;message` then ` KEY=value` lines) or a
/// `dmesg` line (`[  123.456] message`, or the bare message). `None` for what is neither.
pub fn record(raw: &str) -> Option<Record> {
    let mut lines = raw.lines();
    let first = lines.next()?;
    if let Some((head, message)) = first.split_once(';') {
        let mut fields = head.split(',');
        let prio: u32 = fields.next()?.parse().ok()?;
        let seq: u64 = fields.next()?.parse().ok()?;
        let device = lines
            .filter_map(|l| l.strip_prefix(" DEVICE=b"))
            .find_map(|d| {
                let (a, b) = d.split_once(':')?;
                Some((a.parse().ok()?, b.trim().parse().ok()?))
            });
        return Some(Record {
            facility: u8::try_from(prio >> 3).ok()?,
            level: (prio & 7) as u8,
            seq: Some(seq),
            message: message.to_string(),
            device,
        });
    }
    let message = dmesg_message(first);
    (!message.is_empty()).then(|| Record {
        facility: 0,
        level: 3,
        seq: None,
        message: message.to_string(),
        device: None,
    })
}

/// The message of a `dmesg` or syslog line: without `host kernel: `, a clock, and leading
/// `[timestamp]` groups (no kernel message starts with `[`).
fn dmesg_message(line: &str) -> &str {
    let mut rest = line.trim();
    if let Some(i) = rest.find("kernel: ") {
        rest = &rest[i + "kernel: ".len()..];
    }
    loop {
        rest = rest.trim_start();
        let clock = rest.len() > 9
            && rest.as_bytes()[2] == b':'
            && rest.as_bytes()[5] == b':'
            && rest.as_bytes()[8] == b' '
            && rest[..8].bytes().all(|b| b.is_ascii_digit() || b == b':');
        if clock {
            rest = &rest[9..];
        } else if let Some(after) = rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
            rest = after.1.strip_prefix(':').unwrap_or(after.1);
        } else {
            return rest.trim_end();
        }
    }
}

/// What a kernel message names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceRef {
    /// A block device or partition (`sda`, `sda1`, `loop0`, `nvme0n1`).
    Block(String),
    /// A SCSI device by address (`2:0:0:0`).
    Scsi(String),
    /// An ATA port (`ata3`), for link and port messages.
    Ata(String),
    /// An NVMe controller (`nvme0`).
    Nvme(String),
    /// A SCSI host adapter (`host2`): everything behind it.
    Host(String),
}

/// A fault the kernel reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symptom {
    pub kind: EventKind,
    pub device: DeviceRef,
    pub sector: Option<u64>,
}

struct Patterns {
    blk: Regex,
    buffer: Regex,
    scsi: Regex,
    ata: Regex,
    nvme_ctrl: Regex,
    nvme_ns: Regex,
    ext4: Regex,
    jbd2: Regex,
    xfs: Regex,
    btrfs: Regex,
    bus_reset: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("a valid pattern");
        Patterns {
            // blk_print_req_error: "%s error, dev %s, sector %llu op ..." (older kernels put
            // "blk_update_request: " in front).
            blk: re(r"^(?:blk_update_request: |print_req_error: )?([A-Za-z/ ]*?error), dev ([\w.-]+), sector (\d+)"),
            // buffer_io_error: "Buffer I/O error on dev %pg, logical block %llu%s"
            buffer: re(r"^Buffer I/O error on dev(?:ice)? ([\w.-]+), logical block (\d+)"),
            // sdev_printk: "sd H:C:T:L: [sda] ..." (the disk name only once it is known)
            scsi: re(r"^(?:sd|scsi) (\d+:\d+:\d+:\d+): (?:\[(\w+)\] )?(.*)$"),
            // ata_port_printk / ata_dev_printk: "ata3: ..." / "ata3.00: ..."
            ata: re(r"^(ata\d+)(?:\.\d+)?: (.*)$"),
            nvme_ctrl: re(r"^nvme (nvme\d+): (.*)$"),
            // nvme_log_error: "nvme0n1: I/O Cmd(0x2) @ LBA 5264, 8 blocks, I/O Error (sct 0x2 / sc 0x81)"
            nvme_ns: re(r"^(nvme\d+)(n\d+): .*@ LBA (\d+),.*Error \(sct (0x[0-9a-f]+)"),
            ext4: re(r"^EXT4-fs (error|warning)? ?\((?:device )?([\w.-]+)\)(?::)? ?(.*)$"),
            jbd2: re(r"(?:^Aborting journal on device |^JBD2: .* (?:for|on) )([\w.-]+?)-\d+"),
            xfs: re(r"^XFS \(([\w.-]+)\): (.*)$"),
            btrfs: re(r"^BTRFS (?:error|warning|critical) \(device ([\w.-]+)\)"),
            bus_reset: re(r"(?i)^(?:scsi )?(host\d+)?:?.*\bbus reset\b"),
        }
    })
}

/// The fault a kernel message reports, if it reports one.
pub fn classify(message: &str) -> Option<Symptom> {
    let p = patterns();
    let block = |name: &str| DeviceRef::Block(name.to_string());
    let symptom = |kind, device| {
        Some(Symptom {
            kind,
            device,
            sector: None,
        })
    };
    if let Some(c) = p.blk.captures(message) {
        let kind = match &c[1] {
            "critical medium error" => EventKind::MediumError,
            "timeout error" => EventKind::CommandTimeout,
            "recoverable transport error" => EventKind::DeviceReset,
            _ => EventKind::IoError,
        };
        return Some(Symptom {
            kind,
            device: block(&c[2]),
            sector: c[3].parse().ok(),
        });
    }
    if let Some(c) = p.buffer.captures(message) {
        return Some(Symptom {
            kind: EventKind::IoError,
            device: block(&c[1]),
            sector: None,
        });
    }
    if let Some(c) = p.scsi.captures(message) {
        let device = match c.get(2) {
            Some(name) => block(name.as_str()),
            None => DeviceRef::Scsi(c[1].to_string()),
        };
        return scsi(&c[3]).and_then(|kind| symptom(kind, device));
    }
    if let Some(c) = p.ata.captures(message) {
        return ata(&c[2]).and_then(|kind| symptom(kind, DeviceRef::Ata(c[1].to_string())));
    }
    if let Some(c) = p.nvme_ns.captures(message) {
        // Status code type 2 is a media error.
        let kind = if &c[4] == "0x2" {
            EventKind::MediumError
        } else {
            EventKind::IoError
        };
        return Some(Symptom {
            kind,
            device: block(&format!("{}{}", &c[1], &c[2])),
            sector: c[3].parse().ok(),
        });
    }
    if let Some(c) = p.nvme_ctrl.captures(message) {
        return nvme(&c[2]).and_then(|kind| symptom(kind, DeviceRef::Nvme(c[1].to_string())));
    }
    if let Some(c) = p.ext4.captures(message) {
        let rest = &c[3];
        let kind = if rest.starts_with("shut down requested") {
            EventKind::FilesystemShutdown
        } else if rest.contains("I/O error") {
            EventKind::IoError
        } else if c.get(1).is_some_and(|m| m.as_str() == "error")
            || rest.contains("Remounting filesystem read-only")
            || rest.contains("error")
        {
            EventKind::FilesystemError
        } else {
            return None;
        };
        return symptom(kind, block(&c[2]));
    }
    if let Some(c) = p.jbd2.captures(message) {
        return symptom(EventKind::FilesystemError, block(&c[1]));
    }
    if let Some(c) = p.xfs.captures(message) {
        let rest = c[2].to_ascii_lowercase();
        let kind = if rest.contains("shut down")
            || rest.contains("shutdown")
            || rest.contains("shutting down")
        {
            EventKind::FilesystemShutdown
        } else if rest.contains("i/o error") {
            EventKind::IoError
        } else if rest.contains("corrupt") || rest.contains("error") {
            EventKind::FilesystemError
        } else {
            return None;
        };
        return symptom(kind, block(&c[1]));
    }
    if let Some(c) = p.btrfs.captures(message) {
        return symptom(EventKind::FilesystemError, block(&c[1]));
    }
    if let Some(c) = p.bus_reset.captures(message) {
        let host = c.get(1).map_or("unknown host", |m| m.as_str());
        return symptom(EventKind::BusReset, DeviceRef::Host(host.to_string()));
    }
    None
}

/// What follows `sd H:C:T:L: [sda] `.
fn scsi(rest: &str) -> Option<EventKind> {
    let has = |s: &str| rest.contains(s);
    if has("Medium Error") || has("Unrecovered read error") || has("Unrecovered write error") {
        Some(EventKind::MediumError)
    } else if has("timing out command") || has("DID_TIME_OUT") || has("attempting task abort") {
        Some(EventKind::CommandTimeout)
    } else if has("Device offlined") || has("rejecting I/O to offline device") {
        Some(EventKind::DeviceOffline)
    } else if has("Power-on or device reset occurred") || has("device reset") {
        Some(EventKind::DeviceReset)
    } else if has("Sense Key : 0x3 ") {
        // Sense key 3 is a medium error, printed as a number by some drivers.
        Some(EventKind::MediumError)
    } else if has(" Result: hostbyte=")
        || has("Hardware Error")
        || has("Sense Key : Aborted Command")
    {
        Some(EventKind::IoError)
    } else {
        None
    }
}

/// What follows `ata3: ` or `ata3.00: `.
fn ata(rest: &str) -> Option<EventKind> {
    let has = |s: &str| rest.contains(s);
    if has("error: {") && has("UNC") {
        Some(EventKind::MediumError)
    } else if has("ICRC") || has("BadCRC") || has("limiting SATA link speed") {
        Some(EventKind::CableErrors)
    } else if has("timeout") {
        Some(EventKind::CommandTimeout)
    } else if has("resetting link") || has("COMRESET failed") || has("link is slow to respond") {
        Some(EventKind::DeviceReset)
    } else if has("SATA link down") || rest.trim() == "disabled" {
        Some(EventKind::DeviceOffline)
    } else if has("exception Emask") || has("failed command:") {
        Some(EventKind::IoError)
    } else {
        None
    }
}

/// What follows `nvme nvme0: `.
fn nvme(rest: &str) -> Option<EventKind> {
    let has = |s: &str| rest.contains(s);
    if has("timeout") {
        Some(EventKind::CommandTimeout)
    } else if has("Device not ready")
        || has("Removing after probe failure")
        || has("Disabling device after reset failure")
    {
        Some(EventKind::DeviceOffline)
    } else if has("controller is down") || has("resetting controller") {
        Some(EventKind::DeviceReset)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_records_and_dmesg_lines_are_read() {
        let r = record("3,1234,5678901,-;I/O error, dev loop0, sector 24578 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 0\n SUBSYSTEM=block\n DEVICE=b7:0\n").unwrap();
        assert_eq!((r.facility, r.level, r.seq), (0, 3, Some(1234)));
        assert_eq!(r.device, Some((7, 0)));
        let s = classify(&r.message).unwrap();
        assert_eq!(s.kind, EventKind::IoError);
        assert_eq!(s.device, DeviceRef::Block("loop0".into()));
        assert_eq!(s.sector, Some(24578));
        // Written by a program, not the kernel: facility 1.
        assert_eq!(record("11,99,5,-;sd 0:0:0:0: fake").unwrap().facility, 1);
        let d = record("[  402.117425] EXT4-fs (loop3): shut down requested (2)").unwrap();
        assert_eq!(
            classify(&d.message).unwrap(),
            Symptom {
                kind: EventKind::FilesystemShutdown,
                device: DeviceRef::Block("loop3".into()),
                sector: None
            }
        );
        for junk in ["", "[", "[]", "x;y", "6,,;", "\u{0}\u{1}", "3,abc,1,-;msg"] {
            let _ = record(junk).map(|r| classify(&r.message));
        }
    }

    proptest::proptest! {
        #[test]
        fn garbled_lines_never_panic(s in "\\PC{0,200}") {
            if let Some(r) = record(&s) {
                let _ = classify(&r.message);
            }
            let _ = classify(&s);
        }
    }
}
