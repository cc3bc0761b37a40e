//! SMART: `smartctl --json -a /dev/DISK` for every disk on a real block device, and the
//! attributes that predict a failure: reallocated, pending and uncorrectable sectors (the
//! disk), interface CRC errors (the cable or backplane, not the disk), NVMe media errors,
//! spare and critical warnings, SCSI grown defects and uncorrected errors. A disk without SMART
//! (a loop device, a folder) is "not available" in the status, never an error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use cluster::worker::BoxFuture;
use cluster::{Component, DiskConfig, EventKind};
use serde_json::Value;

use crate::detector::{Detector, Findings, Look};
use crate::devices::{self, DiskDevice};
use floor::event_log::NewEvent;

/// One thing smartctl says that matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartFinding {
    pub kind: EventKind,
    /// `Reallocated_Sector_Ct`, `media_errors`, `smart_status`...
    pub attribute: String,
    pub value: u64,
    /// What it means, for people.
    pub meaning: &'static str,
}

/// What a smartctl run told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmartReport {
    Read {
        model: Option<String>,
        serial: Option<String>,
        passed: Option<bool>,
        findings: Vec<SmartFinding>,
    },
    /// No SMART data, and why (smartctl's own message where it gave one).
    Unavailable(String),
}

/// ATA attributes that predict failure: id, what a non-zero raw value means, and the kind.
const ATA: [(u64, &str, EventKind); 6] = [
    (5, "sectors reallocated", EventKind::SmartWarning),
    (
        187,
        "uncorrectable errors reported",
        EventKind::SmartWarning,
    ),
    (188, "commands timed out", EventKind::SmartWarning),
    (197, "sectors pending reallocation", EventKind::SmartWarning),
    (
        198,
        "sectors uncorrectable offline",
        EventKind::SmartWarning,
    ),
    (
        199,
        "interface CRC errors: check the cable or backplane, not the disk",
        EventKind::CableErrors,
    ),
];

/// Reads smartctl's JSON output (whatever its exit status: it exits non-zero for a failing
/// disk too).
pub fn parse(json: &[u8]) -> Result<SmartReport, String> {
    let v: Value = serde_json::from_slice(json).map_err(|e| {
        let start = String::from_utf8_lossy(&json[..json.len().min(80)]).into_owned();
        format!("smartctl printed something that is not JSON ({e}): {start:?}")
    })?;
    if !v.is_object() {
        return Err("smartctl printed JSON that is not an object".into());
    }
    let u = |v: &Value| v.as_u64();
    let mut findings = Vec::new();
    let mut add = |kind, attribute: &str, value: u64, meaning| {
        if value > 0 {
            findings.push(SmartFinding {
                kind,
                attribute: attribute.to_string(),
                value,
                meaning,
            });
        }
    };
    let passed = v["smart_status"]["passed"].as_bool();
    if passed == Some(false) {
        add(
            EventKind::SmartFailed,
            "smart_status",
            1,
            "the drive's own SMART self-assessment says it is failing",
        );
    }
    let mut seen_any = passed.is_some();
    if let Some(table) = v["ata_smart_attributes"]["table"].as_array() {
        seen_any = true;
        for row in table {
            let Some(id) = u(&row["id"]) else { continue };
            if let Some((_, meaning, kind)) = ATA.iter().find(|(a, _, _)| *a == id) {
                let name = row["name"].as_str().unwrap_or("attribute");
                // Some drives pack more into the raw value's upper bytes; the low 32 bits
                // are the count.
                let raw = u(&row["raw"]["value"]).unwrap_or(0) & 0xffff_ffff;
                add(*kind, &format!("{id} {name}"), raw, meaning);
            }
        }
    }
    let nvme = &v["nvme_smart_health_information_log"];
    if nvme.is_object() {
        seen_any = true;
        add(
            EventKind::SmartWarning,
            "critical_warning",
            u(&nvme["critical_warning"]).unwrap_or(0),
            "the controller raised a critical warning (spare, temperature, reliability or \
             read-only)",
        );
        add(
            EventKind::SmartWarning,
            "media_errors",
            u(&nvme["media_errors"]).unwrap_or(0),
            "unrecovered data integrity errors",
        );
        if let (Some(spare), Some(threshold)) = (
            u(&nvme["available_spare"]),
            u(&nvme["available_spare_threshold"]),
        ) {
            if spare < threshold {
                add(
                    EventKind::SmartWarning,
                    "available_spare",
                    spare,
                    "spare capacity below the drive's threshold",
                );
            }
        }
    }
    if let Some(defects) = u(&v["scsi_grown_defect_list"]) {
        seen_any = true;
        add(
            EventKind::SmartWarning,
            "scsi_grown_defect_list",
            defects,
            "defects found since manufacture",
        );
    }
    for op in ["read", "write", "verify"] {
        if let Some(n) = u(&v["scsi_error_counter_log"][op]["total_uncorrected_errors"]) {
            seen_any = true;
            add(
                EventKind::SmartWarning,
                &format!("{op} total_uncorrected_errors"),
                n,
                "errors the drive could not correct",
            );
        }
    }
    if !seen_any {
        let said: Vec<&str> = v["smartctl"]["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["string"].as_str())
            .collect();
        let exit = u(&v["smartctl"]["exit_status"]).unwrap_or(0);
        return Ok(SmartReport::Unavailable(if said.is_empty() {
            format!("no SMART data (smartctl exit status {exit})")
        } else {
            said.join("; ")
        }));
    }
    let text = |k: &str| v[k].as_str().map(String::from);
    Ok(SmartReport::Read {
        model: text("model_name").or_else(|| text("scsi_model_name")),
        serial: text("serial_number"),
        passed,
        findings,
    })
}

/// A drive without SMART is asked again only after this long (or when its device changes).
const UNAVAILABLE_AGAIN: Duration = Duration::from_secs(600);

pub struct Smart {
    program: PathBuf,
    disks: Vec<DiskConfig>,
    /// Devices found without SMART, and when: not asked again every run.
    without: HashMap<PathBuf, (std::time::Instant, String)>,
    /// The last value reported per (disk, attribute): a value is reported when it changes.
    reported: HashMap<(String, String), u64>,
    line: String,
}

impl Smart {
    /// `program` is smartctl (a path, or a name looked up on `PATH`).
    pub fn new(program: PathBuf, disks: Vec<DiskConfig>) -> Smart {
        Smart {
            program,
            disks,
            reported: HashMap::new(),
            without: HashMap::new(),
            line: String::new(),
        }
    }
}

/// Runs smartctl on `dev`'s drive, within 10 s.
async fn ask(program: PathBuf, dev: DiskDevice) -> Result<SmartReport, String> {
    let Some(path) = dev.dev_path() else {
        return Ok(SmartReport::Unavailable(
            dev.note
                .clone()
                .unwrap_or_else(|| "no block device".to_string()),
        ));
    };
    let run = tokio::process::Command::new(&program)
        .arg("--json")
        .arg("-a")
        .arg(&path)
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(SmartReport::Unavailable(format!(
                "{} is not installed (Debian: apt-get install smartmontools)",
                program.display()
            )))
        }
        Ok(Err(e)) => return Err(format!("cannot run {}: {e}", program.display())),
        Err(_) => return Err(format!("smartctl on {} took over 10 s", path.display())),
    };
    parse(&out.stdout).map_err(|e| format!("{}: {e}", path.display()))
}

impl Detector for Smart {
    fn name(&self) -> String {
        "SMART".into()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn budget(&self) -> Duration {
        Duration::from_secs(25)
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            let devices = devices::discover(&self.disks, std::path::Path::new("/sys"));
            // One smartctl per drive (folder disks may share one), all at once; a drive
            // known to have no SMART is not asked again for a while.
            self.without
                .retain(|_, (at, _)| at.elapsed() < UNAVAILABLE_AGAIN);
            let mut set = tokio::task::JoinSet::new();
            let mut asked: HashMap<PathBuf, usize> = HashMap::new();
            for (i, d) in devices.iter().enumerate() {
                let Some(path) = d.dev_path() else { continue };
                if self.without.contains_key(&path) || asked.contains_key(&path) {
                    continue;
                }
                asked.insert(path, i);
                let (program, d) = (self.program.clone(), d.clone());
                set.spawn(async move { (i, ask(program, d).await) });
            }
            let mut by_drive: HashMap<usize, Result<SmartReport, String>> = HashMap::new();
            while let Some(done) = set.join_next().await {
                let (i, answer) = done.map_err(|e| format!("a smartctl task failed: {e}"))?;
                if let (Ok(SmartReport::Unavailable(why)), Some(path)) =
                    (&answer, devices[i].dev_path())
                {
                    self.without
                        .insert(path, (std::time::Instant::now(), why.clone()));
                }
                by_drive.insert(i, answer);
            }
            let answers: Vec<Result<SmartReport, String>> = devices
                .iter()
                .map(|d| match d.dev_path() {
                    None => Ok(SmartReport::Unavailable(
                        d.note.clone().unwrap_or_else(|| "no block device".into()),
                    )),
                    Some(path) => match self.without.get(&path) {
                        Some((_, why)) => Ok(SmartReport::Unavailable(why.clone())),
                        None => by_drive[&asked[&path]].clone(),
                    },
                })
                .collect();
            let (mut read, mut unavailable, mut errors) = (0, Vec::new(), Vec::new());
            for ((dev, config), answer) in devices.iter().zip(&self.disks).zip(answers) {
                match answer {
                    Ok(SmartReport::Unavailable(why)) => {
                        unavailable.push(format!("{}: {why}", dev.disk))
                    }
                    Err(e) => errors.push(format!("{}: {e}", dev.disk)),
                    Ok(SmartReport::Read {
                        serial,
                        findings,
                        model,
                        ..
                    }) => {
                        read += 1;
                        if let (Some(seen), Some(configured)) = (&serial, &config.serial) {
                            if seen != configured {
                                found.report(
                                    &format!("smart:{}:serial", dev.disk),
                                    NewEvent::new(
                                        Component::Disk {
                                            disk: dev.disk.clone(),
                                        },
                                        EventKind::DiskRefused,
                                        format!(
                                            "the drive holding disk {} has serial {seen}, not the \
                                             configured {configured}: a swapped drive or a wrong \
                                             configuration",
                                            dev.disk
                                        ),
                                    )
                                    .at(config.location.clone(), config.serial.clone()),
                                );
                            }
                        }
                        for f in findings {
                            let key = (dev.disk.clone(), f.attribute.clone());
                            let before = self.reported.insert(key, f.value);
                            if before == Some(f.value) {
                                continue;
                            }
                            let was = before.map_or_else(String::new, |b| format!(" (was {b})"));
                            found.report(
                                &format!("smart:{}:{}", dev.disk, f.attribute),
                                NewEvent::new(
                                    Component::Disk {
                                        disk: dev.disk.clone(),
                                    },
                                    f.kind,
                                    format!(
                                        "SMART on disk {}: {} {} ({})",
                                        dev.disk, f.value, f.meaning, f.attribute
                                    ),
                                )
                                .at(
                                    config.location.clone(),
                                    serial.clone().or(config.serial.clone()),
                                )
                                .evidence(format!(
                                    "smartctl {}: {} = {}{was}; model {}",
                                    dev.dev_path().unwrap_or_default().display(),
                                    f.attribute,
                                    f.value,
                                    model.as_deref().unwrap_or("unknown")
                                )),
                            );
                        }
                    }
                }
            }
            self.line = format!(
                "{read} disks read, {} without SMART{}",
                unavailable.len(),
                if unavailable.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", unavailable.join("; "))
                }
            );
            if !errors.is_empty() {
                return Err(errors.join("; "));
            }
            if read == 0 {
                return Ok(Look::Unavailable(format!(
                    "no disk here has SMART: {}",
                    unavailable.join("; ")
                )));
            }
            Ok(Look::Done(self.line.clone()))
        })
    }
}
