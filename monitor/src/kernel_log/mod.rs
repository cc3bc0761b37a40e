//! The kernel log detector: follows `/dev/kmsg` from a thread of its own, recognises the
//! messages that report a disk, bus or filesystem fault ([`parse`]), maps the device named to
//! the configured disk ([`crate::devices`]) and reports it with the line as evidence.
//!
//! Only the kernel's own records count (facility 0): a program writing to `/dev/kmsg` cannot
//! fake a disk fault. Where it stopped reading is remembered per boot, so a restarted monitor
//! picks up what the kernel logged while it was down, and never reads a line twice.

pub mod parse;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cluster::worker::BoxFuture;
use cluster::{Component, DiskConfig, EventKind};
use tokio::sync::mpsc;

use crate::detector::{Detector, Findings, Look};
use crate::devices::{self, DiskDevice};
use floor::event_log::{EventLog, NewEvent};
use parse::{DeviceRef, Symptom};

/// What the reading thread passes on.
#[derive(Debug)]
pub enum Item {
    Record(String),
    /// The kernel overwrote records before they were read.
    Lost,
    /// The log cannot be read; the thread has ended.
    Failed(String),
}

/// Where to start reading.
#[derive(Debug, Clone, Copy)]
pub enum From {
    /// Only what is logged from now on.
    Now,
    /// Everything the kernel still holds after this sequence number.
    After(u64),
}

/// Reads `/dev/kmsg`-format records from `path` on a thread, one `read` per record.
pub fn follow(path: PathBuf, from: From) -> mpsc::Receiver<Item> {
    let (tx, rx) = mpsc::channel(4096);
    let spawned = std::thread::Builder::new()
        .name("kmsg".into())
        .spawn(move || {
            let mut file = match open(&path, from) {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.blocking_send(Item::Failed(format!(
                        "cannot read {}: {e}{}",
                        path.display(),
                        if e.kind() == std::io::ErrorKind::PermissionDenied {
                            " (kernel.dmesg_restrict is set: run the monitor as root or with \
                             CAP_SYSLOG)"
                        } else {
                            ""
                        }
                    )));
                    return;
                }
            };
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let item = match file.read(&mut buf) {
                    Ok(0) => {
                        // A plain file (a replayed log) ends; /dev/kmsg never does.
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    Ok(n) => Item::Record(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(e) if e.raw_os_error() == Some(libc::EPIPE) => Item::Lost,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Item::Failed(format!(
                            "reading {}: {e}",
                            path.display()
                        )));
                        return;
                    }
                };
                if tx.blocking_send(item).is_err() {
                    return; // the monitor is stopping
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "kernel log: cannot start its reading thread");
    }
    rx
}

fn open(path: &Path, from: From) -> std::io::Result<std::fs::File> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    if matches!(from, From::Now) {
        // On /dev/kmsg, SEEK_END skips to the next record to come.
        f.seek(SeekFrom::End(0))?;
    }
    Ok(f)
}

/// Where reading stopped, kept in the event log's store: the boot it belongs to (sequence
/// numbers start again at every boot) and the last record read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub boot_id: String,
    pub seq: u64,
}

pub const POSITION_KEY: &str = "kernel-log-position";

pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Where to start on this boot: after the remembered record, or from now on the first run
/// (old lines may name a device that meant another disk then).
pub fn start_position(log: &EventLog, boot: &str) -> From {
    log.recall::<Position>(POSITION_KEY)
        .filter(|p| p.boot_id == boot)
        .map_or(From::Now, |p| From::After(p.seq))
}

pub struct KernelLog {
    rx: mpsc::Receiver<Item>,
    disks: Vec<DiskConfig>,
    devices: Vec<DiskDevice>,
    found_at: Instant,
    sys: PathBuf,
    boot: String,
    after: Option<u64>,
    failed: Option<String>,
    records: u64,
    faults: u64,
    lost: u64,
}

/// How often the disks' devices are looked up again (a disk remounted on another device).
const REDISCOVER: Duration = Duration::from_secs(10);

impl KernelLog {
    pub fn new(rx: mpsc::Receiver<Item>, disks: Vec<DiskConfig>, from: From) -> KernelLog {
        let sys = PathBuf::from("/sys");
        KernelLog {
            rx,
            devices: devices::discover(&disks, &sys),
            disks,
            found_at: Instant::now(),
            sys,
            boot: boot_id(),
            after: match from {
                From::After(seq) => Some(seq),
                From::Now => None,
            },
            failed: None,
            records: 0,
            faults: 0,
            lost: 0,
        }
    }

    /// Handles one record; returns whether it reported a fault.
    pub fn handle(&mut self, raw: &str, found: &Findings) -> bool {
        let Some(record) = parse::record(raw) else {
            return false;
        };
        if let Some(seq) = record.seq {
            if self.after.is_some_and(|after| seq <= after) {
                return false;
            }
            self.after = Some(seq);
        }
        self.records += 1;
        if record.facility != 0 {
            return false;
        }
        let Some(symptom) = parse::classify(&record.message) else {
            return false;
        };
        self.faults += 1;
        let line = record.message.clone();
        let matched: Vec<&DiskDevice> = self
            .devices
            .iter()
            .filter(|d| matches(d, &symptom.device, record.device))
            .collect();
        let what = describe(&symptom);
        match (&symptom.device, matched.as_slice()) {
            (_, []) => {
                let name = device_name(&symptom.device);
                found.report(
                    &format!("kmsg:device:{name}:{:?}", symptom.kind),
                    NewEvent::new(
                        Component::Host,
                        symptom.kind,
                        format!(
                            "the kernel reports {what} on {name}, which holds none of this \
                             node's disks (the system disk?)"
                        ),
                    )
                    .evidence(line),
                );
            }
            (DeviceRef::Host(host), disks) => {
                let names: Vec<&str> = disks.iter().map(|d| d.disk.as_str()).collect();
                found.report(
                    &format!("kmsg:bus:{host}:{:?}", symptom.kind),
                    NewEvent::new(
                        Component::Bus {
                            bus: format!("scsi {host}"),
                        },
                        symptom.kind,
                        format!(
                            "the kernel reports {what} on SCSI {host}, the adapter of disks {}",
                            names.join(", ")
                        ),
                    )
                    .evidence(line),
                );
            }
            (_, disks) => {
                for d in disks {
                    let config = self.disks.iter().find(|c| c.id == d.disk);
                    let slot = config
                        .and_then(|c| c.location.slot)
                        .map_or_else(String::new, |s| format!(", slot {s}"));
                    let mut event = NewEvent::new(
                        Component::Disk {
                            disk: d.disk.clone(),
                        },
                        symptom.kind,
                        format!(
                            "the kernel reports {what} on disk {} ({}{slot})",
                            d.disk,
                            device_name(&symptom.device)
                        ),
                    )
                    .evidence(line.clone());
                    if let Some(c) = config {
                        event = event.at(c.location.clone(), c.serial.clone());
                    }
                    found.report(&format!("kmsg:disk:{}:{:?}", d.disk, symptom.kind), event);
                }
            }
        }
        true
    }

    fn remember(&self, log: &EventLog) {
        if let Some(seq) = self.after {
            log.remember(
                POSITION_KEY,
                &Position {
                    boot_id: self.boot.clone(),
                    seq,
                },
            );
        }
    }
}

fn matches(d: &DiskDevice, device: &DeviceRef, number: Option<(u32, u32)>) -> bool {
    if number.is_some() && number == d.dev {
        return true;
    }
    let same = |a: &Option<String>, b: &str| a.as_deref() == Some(b);
    match device {
        DeviceRef::Block(name) => {
            same(&d.block, name)
                || same(&d.whole, name)
                || d.whole.as_deref().is_some_and(|w| is_partition_of(name, w))
        }
        DeviceRef::Scsi(addr) => same(&d.scsi, addr),
        DeviceRef::Ata(port) => same(&d.ata, port),
        DeviceRef::Nvme(ctrl) => same(&d.nvme, ctrl),
        DeviceRef::Host(host) => same(&d.host, host),
    }
}

/// `sda2` of `sda`, `nvme0n1p2` of `nvme0n1`.
fn is_partition_of(name: &str, whole: &str) -> bool {
    name.strip_prefix(whole).is_some_and(|rest| {
        let digits = rest.strip_prefix('p').unwrap_or(rest);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn device_name(d: &DeviceRef) -> String {
    match d {
        DeviceRef::Block(n) | DeviceRef::Ata(n) | DeviceRef::Nvme(n) | DeviceRef::Host(n) => {
            n.clone()
        }
        DeviceRef::Scsi(a) => format!("SCSI device {a}"),
    }
}

fn describe(s: &Symptom) -> String {
    let sector = s
        .sector
        .map_or_else(String::new, |n| format!(" at sector {n}"));
    match s.kind {
        EventKind::IoError => format!("an I/O error{sector}"),
        EventKind::MediumError => format!("a medium error (unreadable sector){sector}"),
        EventKind::CommandTimeout => "a command timeout".into(),
        EventKind::DeviceReset => "a reset of the device or its link".into(),
        EventKind::BusReset => "a bus reset".into(),
        EventKind::DeviceOffline => "the device going offline".into(),
        EventKind::FilesystemError => "a filesystem error".into(),
        EventKind::FilesystemShutdown => "a filesystem shutdown (every access now fails)".into(),
        EventKind::CableErrors => "interface CRC errors (cable or backplane)".into(),
        other => format!("{other:?}"),
    }
}

impl Detector for KernelLog {
    fn name(&self) -> String {
        "kernel log".into()
    }

    /// A run waits up to this for a record, so a line is handled as soon as it is logged.
    fn interval(&self) -> Duration {
        Duration::from_millis(200)
    }

    fn budget(&self) -> Duration {
        Duration::from_secs(2)
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            if let Some(why) = &self.failed {
                return Ok(Look::Unavailable(why.clone()));
            }
            if self.found_at.elapsed() > REDISCOVER {
                self.devices = devices::discover(&self.disks, &self.sys);
                self.found_at = Instant::now();
            }
            // Wait for the next record (at most an interval), then take what else has
            // arrived, at most a few thousand records per run.
            let before = self.after;
            let mut first = match tokio::time::timeout(self.interval(), self.rx.recv()).await {
                Ok(Some(item)) => Some(item),
                Ok(None) => {
                    let why = "the kernel log reader stopped".to_string();
                    self.failed = Some(why.clone());
                    return Err(why);
                }
                Err(_) => None,
            };
            for n in 0..4096 {
                let next = match first.take() {
                    Some(item) if n == 0 => Ok(item),
                    _ => self.rx.try_recv(),
                };
                match next {
                    Ok(Item::Record(raw)) => {
                        self.handle(&raw, found);
                    }
                    Ok(Item::Lost) => self.lost += 1,
                    Ok(Item::Failed(why)) => {
                        self.failed = Some(why.clone());
                        return Ok(Look::Unavailable(why));
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        let why = "the kernel log reader stopped".to_string();
                        self.failed = Some(why.clone());
                        return Err(why);
                    }
                }
            }
            if self.after != before {
                self.remember(found.log());
            }
            let mapped = self.devices.iter().filter(|d| d.block.is_some()).count();
            Ok(Look::Done(format!(
                "{} records read, {} faults recognised, {} lost to overflow; {mapped} of {} \
                 disks mapped to devices",
                self.records,
                self.faults,
                self.lost,
                self.devices.len()
            )))
        })
    }
}
