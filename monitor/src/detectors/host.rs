//! The host: how full each disk is (an event before it is full), memory, load and the
//! temperature sensors the kernel exposes. Fullness comes from `statvfs` on each disk's own
//! path; sysinfo gives memory, load and temperatures.

use std::time::Duration;

use cluster::worker::BoxFuture;
use cluster::{Component, DiskConfig, EventKind};
use sysinfo::{Components, MemoryRefreshKind, RefreshKind, System};

use crate::detector::{Detector, Findings, Look};
use floor::event_log::NewEvent;

/// Below this many percent used again, a filling disk is over (so a disk hovering at the
/// threshold is not an event every second).
const HYSTERESIS: f64 = 2.0;
const MEMORY_LOW_PERCENT: f64 = 5.0;

pub struct Host {
    disks: Vec<DiskConfig>,
    /// A disk past this many percent used is filling.
    fill_warn_percent: f64,
    /// `None` where sysinfo cannot read the host (the status says so).
    system: Option<System>,
    components: Option<Components>,
    runs: u64,
}

impl Host {
    pub fn new(disks: Vec<DiskConfig>, fill_warn_percent: f64) -> Host {
        Host {
            disks,
            fill_warn_percent,
            system: System::new_with_specifics(
                RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
            )
            .ok(),
            components: Components::new_with_refreshed_list().ok(),
            runs: 0,
        }
    }
}

/// (used, usable) bytes of the filesystem at `path`, counted as `df` counts them: blocks
/// reserved for root are neither, so 100 % means nothing more can be written.
fn fullness(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let used = fs2::total_space(path)?.saturating_sub(fs2::free_space(path)?);
    let available = fs2::available_space(path)?;
    Ok((used, used + available))
}

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
}

impl Detector for Host {
    fn name(&self) -> String {
        "host".into()
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(500)
    }

    fn budget(&self) -> Duration {
        Duration::from_secs(3)
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            self.runs += 1;
            // statvfs can block on a dying disk: off the async threads, with a deadline.
            let paths: Vec<_> = self.disks.iter().map(|d| d.path.clone()).collect();
            let sizes = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::task::spawn_blocking(move || {
                    paths.iter().map(|p| fullness(p)).collect::<Vec<_>>()
                }),
            )
            .await
            .map_err(|_| "statvfs on the disks took over 2 s".to_string())?
            .map_err(|e| format!("statvfs task failed: {e}"))?;
            let mut fullest = 0.0f64;
            for (disk, size) in self.disks.iter().zip(sizes) {
                let Ok((used, total)) = size else { continue };
                if total == 0 {
                    continue;
                }
                let percent = used as f64 * 100.0 / total as f64;
                fullest = fullest.max(percent);
                let key = format!("host:{}:filling", disk.id);
                let component = || Component::Disk {
                    disk: disk.id.clone(),
                };
                if percent >= self.fill_warn_percent {
                    found.report(
                        &key,
                        NewEvent::new(
                            component(),
                            EventKind::DiskFilling,
                            format!(
                                "disk {} is {percent:.0}% full (warning at {:.0}%): {} free",
                                disk.id,
                                self.fill_warn_percent,
                                gib(total - used)
                            ),
                        )
                        .at(disk.location.clone(), disk.serial.clone())
                        .evidence(format!(
                            "statvfs {}: {} used of {}",
                            disk.path.display(),
                            gib(used),
                            gib(total)
                        )),
                    );
                } else if percent < self.fill_warn_percent - HYSTERESIS {
                    found.clear(&key, || {
                        NewEvent::new(
                            component(),
                            EventKind::Recovered,
                            format!(
                                "disk {} is below {:.0}% full again",
                                disk.id, self.fill_warn_percent
                            ),
                        )
                    });
                }
            }
            let (total, available) = match self.system.as_mut() {
                Some(system) => {
                    system.refresh_memory();
                    (system.total_memory(), system.available_memory())
                }
                None => (0, 0),
            };
            let free_percent = if total == 0 {
                100.0
            } else {
                available as f64 * 100.0 / total as f64
            };
            if free_percent < MEMORY_LOW_PERCENT {
                found.report(
                    "host:memory",
                    NewEvent::new(
                        Component::Host,
                        EventKind::MemoryLow,
                        format!("the host has {free_percent:.1}% of its memory available"),
                    )
                    .evidence(format!(
                        "{} available of {}",
                        gib(available),
                        gib(total)
                    )),
                );
            } else if free_percent > 2.0 * MEMORY_LOW_PERCENT {
                found.clear("host:memory", || {
                    NewEvent::new(
                        Component::Host,
                        EventKind::Recovered,
                        "the host has memory available again",
                    )
                });
            }
            // Sensors change slowly and reading them costs more: every 10th run.
            let mut hottest: Option<(String, f32)> = None;
            if self.runs % 10 == 1 {
                if let Some(c) = self.components.as_mut() {
                    c.refresh(false);
                }
            }
            for c in self.components.iter().flat_map(|c| c.iter()) {
                let Some(t) = c.temperature() else { continue };
                if hottest.as_ref().is_none_or(|(_, h)| t > *h) {
                    hottest = Some((c.label().to_string(), t));
                }
                let key = format!("host:temperature:{}", c.label());
                match c.critical() {
                    Some(limit) if t >= limit => {
                        found.report(
                            &key,
                            NewEvent::new(
                                Component::Host,
                                EventKind::Overheating,
                                format!(
                                    "{} is at {t:.0} °C, at or past its critical {limit:.0} °C",
                                    c.label()
                                ),
                            ),
                        );
                    }
                    Some(limit) if t < limit - 5.0 => {
                        found.clear(&key, || {
                            NewEvent::new(
                                Component::Host,
                                EventKind::Recovered,
                                format!("{} is back to {t:.0} °C", c.label()),
                            )
                        });
                    }
                    _ => {}
                }
            }
            let load = System::load_average()
                .map_or_else(|e| format!("unknown ({e})"), |l| format!("{:.2}", l.one));
            Ok(Look::Done(format!(
                "fullest disk {fullest:.0}% (warning at {:.0}%), memory {free_percent:.0}% available, \
                 load {load}, {}",
                self.fill_warn_percent,
                match hottest {
                    Some((label, t)) => format!("hottest sensor {label} {t:.0} °C"),
                    None => "no temperature sensors".to_string(),
                }
            )))
        })
    }
}
