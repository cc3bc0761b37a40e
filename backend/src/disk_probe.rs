//! The disk health probe: a worker per disk that writes, flushes and reads back a small file
//! (`DISK/.td-probe`), so that a failed disk is found and masked before a visitor's request runs
//! into it, a busy one is masked while it is slow, and a failed one that answers again is
//! handed back to be checked.
//!
//! The rules, for a disk in service (healthy or slow):
//! - every [`PROBE_INTERVAL`] a probe runs, on a blocking thread;
//! - a probe not done within [`PROBE_BUDGET`] marks the disk slow: visitors are sent to the
//!   other replicas. A busy disk is not a dead disk: the worker keeps waiting for that same
//!   probe, and never starts a second one while one is outstanding (on a hung filesystem each
//!   would be one more stuck thread);
//! - a probe done within the budget makes a slow disk serve again (one that finishes but took
//!   longer than the budget keeps it slow: a disk that stays slow does not flap in and out);
//! - a probe still outstanding after [`HANG_LIMIT`] fails the disk (`disk_hung`);
//! - a probe that returns an I/O error fails the disk at once (`disk_failed`).
//!
//! A failed disk is probed again every [`RETRY_INTERVAL`], still one probe at a time. After
//! [`RETURN_PASSES`] probes in a row done within the budget it is marked returning and the
//! worker's [`OnReturn`] hook is called to check it; while it is returning the worker does not
//! probe it, and takes up again from whatever state the check leaves it in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::EventKind;

use crate::disk::{Disk, DiskState};
use crate::faults::Faults;
use crate::worker::{BoxFuture, Worker, WorkerState};

/// How often each disk in service is probed (from the end of one probe to the start of the
/// next).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The masking budget: a probe slower than this marks the disk slow, and its images are served
/// from their other replicas until a probe is quick again.
pub const PROBE_BUDGET: Duration = Duration::from_secs(2);
/// A probe still outstanding after this long means a hung disk, and fails it. The probe is one
/// block written and flushed (`fdatasync`); on a healthy disk under the heaviest writeback load
/// (gigabytes of dirty pages being flushed, a journal commit queued behind them) that takes
/// seconds, up to some tens of seconds on a slow spindle — the kernel's own hung-task warning
/// comes at 120 s. A minute is far beyond any of that, and still short next to the time an
/// operator needs to act on the event.
pub const HANG_LIMIT: Duration = Duration::from_secs(60);
/// How often a failed disk is probed again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// How many probes in a row a failed disk must pass (each within [`PROBE_BUDGET`]) before it is
/// marked returning and checked.
pub const RETURN_PASSES: u32 = 3;
/// The probe file, at the root of the disk.
pub const PROBE_FILE: &str = ".td-probe";

/// Called once a failed disk has passed [`RETURN_PASSES`] probes and is marked returning: it
/// checks the disk and then calls `mark_returned()` (it serves again) or `mark_failed`. The
/// probe worker awaits it, and does not probe the disk while it stays returning.
pub type OnReturn = Arc<dyn Fn(Arc<Disk>) -> BoxFuture<'static, ()> + Send + Sync>;

/// A hook that does nothing: a disk that answers again stays returning (out of service) until
/// something else decides.
pub fn no_return_hook() -> OnReturn {
    Arc::new(|_disk| Box::pin(async {}))
}

/// The probe in flight: at most one per disk.
struct Outstanding {
    job: tokio::task::JoinHandle<std::io::Result<()>>,
    started: Instant,
}

pub struct DiskProbe {
    disk: Arc<Disk>,
    faults: Arc<Faults>,
    on_return: OnReturn,
    /// Probes started.
    round: u64,
    /// Probes passed, in all.
    passed: u64,
    /// Probes passed in a row while the disk is failed.
    passes: u32,
    /// How long the last finished probe took.
    last_ms: Option<u64>,
    outstanding: Option<Outstanding>,
}

impl DiskProbe {
    pub fn new(disk: Arc<Disk>, faults: Arc<Faults>, on_return: OnReturn) -> DiskProbe {
        DiskProbe {
            disk,
            faults,
            on_return,
            round: 0,
            passed: 0,
            passes: 0,
            last_ms: None,
            outstanding: None,
        }
    }

    fn start(&mut self) {
        self.round += 1;
        let root = self.disk.config.path.clone();
        let round = self.round;
        // A disk in service must still be the one adopted: a disk swapped for another (or for
        // a blank one) faster than a probe notices it being gone is failed, never written to,
        // and then checked (and a blank one adopted) as it returns. A failed disk is probed
        // without it, so that a blank one can pass and be adopted.
        let in_service = !self.disk.is_failed();
        self.outstanding = Some(Outstanding {
            job: tokio::task::spawn_blocking(move || {
                let identity = root.join(crate::disk::IDENTITY_FILE);
                // (A disk gone altogether, or not a folder, fails on the probe's own write, in
                // the OS's words.)
                let gone = matches!(std::fs::metadata(&identity), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
                if in_service && gone && root.is_dir() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!(
                            "{} is gone: this is not the disk adopted here (swapped?)",
                            identity.display()
                        ),
                    ));
                }
                floor::probe::write_fsync_read(&root.join(PROBE_FILE), round)
            }),
            started: Instant::now(),
        });
    }

    /// The probe is done and passed, in `took`.
    async fn passed(&mut self, took: Duration, failed: bool) -> WorkerState {
        let ms = millis(took);
        self.passed += 1;
        self.last_ms = Some(ms);
        let id = &self.disk.config.id;
        if failed {
            if took > PROBE_BUDGET {
                self.passes = 0;
                return WorkerState::Throttled(RETRY_INTERVAL);
            }
            self.passes += 1;
            tracing::info!(disk = %id, probe_ms = ms, passes = self.passes, "failed disk passed a probe");
            if self.passes < RETURN_PASSES {
                return WorkerState::Throttled(RETRY_INTERVAL);
            }
            self.passes = 0;
            if self.disk.mark_returning() {
                tracing::warn!(
                    disk = %id,
                    passes = RETURN_PASSES,
                    "failed disk answers its probes again: checking it before it serves"
                );
                (self.on_return)(self.disk.clone()).await;
            }
            return WorkerState::Throttled(PROBE_INTERVAL);
        }
        if took > PROBE_BUDGET {
            // Done, but over the budget: still slow.
            if self.disk.mark_slow(ms) {
                tracing::warn!(disk = %id, probe_ms = ms, "disk slow: masked from visitors");
            }
        } else if self.disk.mark_quick() {
            tracing::info!(disk = %id, probe_ms = ms, "disk quick again: serving");
        }
        WorkerState::Throttled(PROBE_INTERVAL)
    }

    /// The probe returned an I/O error.
    fn io_error(&mut self, error: std::io::Error, took: Duration, failed: bool) -> WorkerState {
        self.passes = 0;
        self.last_ms = Some(millis(took));
        if failed {
            tracing::debug!(disk = %self.disk.config.id, error = %error, "failed disk still fails its probe");
        } else {
            let why = format!("health probe: {error}");
            self.faults
                .disk_failed(&self.disk, EventKind::DiskFailed, &why);
        }
        WorkerState::Throttled(RETRY_INTERVAL)
    }

    /// The probe is still outstanding after `so_far`.
    fn still_waiting(&mut self, so_far: Duration, failed: bool) -> WorkerState {
        let ms = millis(so_far);
        let id = &self.disk.config.id;
        if failed {
            // A failed disk whose probe hangs has not come back.
            self.passes = 0;
        } else if so_far >= HANG_LIMIT {
            let why = format!(
                "health probe (one block written and flushed) still not done after {} s",
                so_far.as_secs()
            );
            self.faults
                .disk_failed(&self.disk, EventKind::DiskHung, &why);
        } else if so_far >= PROBE_BUDGET && self.disk.mark_slow(ms) {
            tracing::warn!(disk = %id, probe_ms = ms, "disk slow: masked from visitors while its probe is outstanding");
        }
        WorkerState::Busy
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Worker for DiskProbe {
    fn name(&self) -> String {
        format!("disk probe {}", self.disk.config.id)
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            let failed = match self.disk.state() {
                DiskState::Returning { .. } => {
                    // Being checked: not probed until the check says what it is.
                    self.passes = 0;
                    return Ok(WorkerState::Throttled(PROBE_INTERVAL));
                }
                DiskState::Failed { .. } => true,
                DiskState::Healthy | DiskState::Slow { .. } => false,
            };
            if self.outstanding.is_none() {
                self.start();
            }
            let probe = self.outstanding.as_mut().expect("a probe is outstanding");
            let elapsed = probe.started.elapsed();
            // How long to wait for it in this unit of work: a disk in service up to the budget,
            // then a second at a time up to the hang limit (so `/health` and `/workers` show the
            // time grow); a failed disk a retry interval at a time.
            let step = if failed {
                RETRY_INTERVAL
            } else if elapsed < PROBE_BUDGET {
                PROBE_BUDGET - elapsed
            } else {
                PROBE_INTERVAL.min(HANG_LIMIT.saturating_sub(elapsed))
            };
            let joined = match tokio::time::timeout(step, &mut probe.job).await {
                Ok(joined) => joined,
                Err(_) => {
                    let so_far = probe.started.elapsed();
                    return Ok(self.still_waiting(so_far, failed));
                }
            };
            let took = probe.started.elapsed();
            self.outstanding = None;
            match joined {
                Ok(Ok(())) => Ok(self.passed(took, failed).await),
                Ok(Err(e)) => Ok(self.io_error(e, took, failed)),
                Err(join) => Err(format!("probe task failed: {join}")),
            }
        })
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(PROBE_INTERVAL))
    }

    fn progress(&self) -> String {
        let outstanding = self
            .outstanding
            .as_ref()
            .map(|o| millis(o.started.elapsed()));
        match self.disk.state() {
            DiskState::Healthy => format!(
                "{} probes passed, every {PROBE_INTERVAL:?}{}",
                self.passed,
                self.last_ms
                    .map_or_else(String::new, |ms| format!("; last took {ms} ms"))
            ),
            DiskState::Slow { probe_ms, .. } => match outstanding {
                Some(ms) => format!(
                    "disk slow, masked: probe outstanding for {ms} ms (failed at {HANG_LIMIT:?})"
                ),
                None => format!("disk slow, masked: last probe took {probe_ms} ms"),
            },
            DiskState::Failed { error, .. } => match outstanding {
                Some(ms) => format!(
                    "disk failed: {error}; probe outstanding for {ms} ms, not counted as a pass"
                ),
                None => format!(
                    "disk failed: {error}; probed every {RETRY_INTERVAL:?}, {} of {RETURN_PASSES} \
                     passes in a row",
                    self.passes
                ),
            },
            DiskState::Returning { .. } => {
                "disk answering again: being checked before it serves; not probed meanwhile".into()
            }
        }
    }
}
