//! Enclosures: the SES status page of every enclosure on the host (`sg_ses --page=es`): fans,
//! power supplies, temperature sensors, and slots that report a fault. Where the host has no
//! enclosure (a plain PC, a virtual machine), the status says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster::worker::BoxFuture;
use cluster::{Component, DiskConfig, EventKind};

use crate::detector::{Detector, Findings, Look};
use floor::event_log::NewEvent;

/// One element of the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// `Power supply`, `Cooling`, `Temperature sensor`, `Array device slot`...
    pub kind: String,
    /// Its number among its kind; `None` for the overall descriptor.
    pub index: Option<u32>,
    /// `OK`, `Critical`, `Noncritical`, `Unrecoverable`, `Not installed`, `Unsupported`...
    pub status: String,
    /// The `Name=value` fields sg_ses prints for it.
    pub fields: Vec<(String, String)>,
}

impl Element {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Why it is faulty, if it is.
    pub fn fault(&self) -> Option<String> {
        let mut why = Vec::new();
        if matches!(
            self.status.as_str(),
            "Critical" | "Noncritical" | "Unrecoverable"
        ) {
            why.push(format!("status {}", self.status));
        }
        for flag in [
            "Predicted failure",
            "Fail",
            "Fault sensed",
            "OT failure",
            "OT warning",
            "UT failure",
            "AC fail",
            "DC fail",
            "Overtmp fail",
            "Temperature warn",
            "DC overvoltage",
            "DC undervoltage",
            "DC overcurrent",
        ] {
            if self.field(flag) == Some("1") {
                why.push(flag.to_string());
            }
        }
        (!why.is_empty()).then(|| why.join(", "))
    }

    pub fn name(&self) -> String {
        match self.index {
            Some(i) => format!("{} {i}", self.kind),
            None => format!("{} (overall)", self.kind),
        }
    }
}

/// Reads the text sg_ses prints for the Enclosure Status page.
pub fn parse_status_page(text: &str) -> Result<Vec<Element>, String> {
    if !text.contains("Enclosure Status diagnostic page") {
        let first = text.lines().next().unwrap_or("").trim();
        return Err(format!("not an enclosure status page: {first:?}"));
    }
    let mut elements: Vec<Element> = Vec::new();
    let mut kind: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Element type: ") {
            kind = Some(rest.split(',').next().unwrap_or(rest).trim().to_string());
        } else if line == "Overall descriptor:"
            || line.starts_with("Element ") && line.ends_with(" descriptor:")
        {
            let Some(kind) = kind.clone() else { continue };
            let index = line
                .strip_prefix("Element ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok());
            elements.push(Element {
                kind,
                index,
                status: String::new(),
                fields: Vec::new(),
            });
        } else if let Some(e) = elements.last_mut() {
            for part in line.split(", ") {
                if let Some(status) = part.strip_prefix("status: ") {
                    e.status = status.trim().to_string();
                } else if let Some((k, v)) = part.split_once('=') {
                    e.fields.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
        }
    }
    if elements.is_empty() {
        return Err("the enclosure status page lists no elements".into());
    }
    Ok(elements)
}

/// The SES devices of the host's enclosures, from `/sys/class/enclosure`.
pub fn discover(sys: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(sys.join("class/enclosure")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_dir(e.path().join("device/scsi_generic")).ok())
        .flat_map(|sg| sg.filter_map(Result::ok))
        .map(|sg| Path::new("/dev").join(sg.file_name()))
        .collect()
}

pub struct Enclosures {
    program: PathBuf,
    /// Given ones; found in `/sys` at every run when empty.
    given: Vec<PathBuf>,
    disks: Vec<DiskConfig>,
}

impl Enclosures {
    pub fn new(program: PathBuf, given: Vec<PathBuf>, disks: Vec<DiskConfig>) -> Enclosures {
        Enclosures {
            program,
            given,
            disks,
        }
    }

    async fn status_page(&self, dev: &Path) -> Result<String, String> {
        let run = tokio::process::Command::new(&self.program)
            .arg("--page=es")
            .arg(dev)
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(Duration::from_secs(10), run).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "{} is not installed (Debian: apt-get install sg3-utils)",
                    self.program.display()
                ))
            }
            Ok(Err(e)) => return Err(format!("cannot run {}: {e}", self.program.display())),
            Err(_) => return Err(format!("sg_ses on {} took over 10 s", dev.display())),
        };
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "sg_ses {}: {} ({})",
                dev.display(),
                said.lines().last().unwrap_or("failed").trim(),
                out.status
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Detector for Enclosures {
    fn name(&self) -> String {
        "enclosure".into()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn budget(&self) -> Duration {
        Duration::from_secs(12)
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            let devices = if self.given.is_empty() {
                discover(Path::new("/sys"))
            } else {
                self.given.clone()
            };
            if devices.is_empty() {
                return Ok(Look::Unavailable(
                    "no SES enclosure on this host (/sys/class/enclosure is empty)".into(),
                ));
            }
            let (mut elements, mut faults, mut errors) = (0, 0, Vec::new());
            for dev in &devices {
                let parsed = self
                    .status_page(dev)
                    .await
                    .and_then(|text| parse_status_page(&text));
                let list = match parsed {
                    Ok(list) => list,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                let enclosure = dev.display().to_string();
                elements += list.len();
                for e in &list {
                    let key = format!("ses:{enclosure}:{}", e.name());
                    let component = || Component::Enclosure {
                        enclosure: enclosure.clone(),
                        element: e.name(),
                    };
                    let Some(why) = e.fault() else {
                        found.clear(&key, || {
                            NewEvent::new(
                                component(),
                                EventKind::Recovered,
                                format!("{} of enclosure {enclosure} reports OK again", e.name()),
                            )
                        });
                        continue;
                    };
                    faults += 1;
                    let slot = e.kind.contains("device slot").then_some(e.index).flatten();
                    let disk = slot.and_then(|s| {
                        self.disks.iter().find(|d| {
                            d.location.slot == Some(s)
                                && (devices.len() == 1
                                    || d.location.enclosure.as_deref() == Some(&enclosure))
                        })
                    });
                    let mut event = NewEvent::new(
                        component(),
                        EventKind::EnclosureFault,
                        match disk {
                            Some(d) => format!(
                                "enclosure {enclosure}: {} (disk {}) reports a fault: {why}",
                                e.name(),
                                d.id
                            ),
                            None => format!(
                                "enclosure {enclosure}: {} reports a fault: {why}",
                                e.name()
                            ),
                        },
                    )
                    .evidence(format!(
                        "{}: status {}, {}",
                        e.name(),
                        e.status,
                        e.fields
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    if let Some(d) = disk {
                        event = event.at(d.location.clone(), d.serial.clone());
                    }
                    found.report(&key, event);
                }
            }
            if elements == 0 && !errors.is_empty() {
                return Err(errors.join("; "));
            }
            Ok(Look::Done(format!(
                "{} enclosures, {elements} elements, {faults} reporting a fault{}",
                devices.len(),
                if errors.is_empty() {
                    String::new()
                } else {
                    format!("; {}", errors.join("; "))
                }
            )))
        })
    }
}
