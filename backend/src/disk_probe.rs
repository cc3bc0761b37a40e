//! The disk health probe: a worker per disk that writes, flushes and reads back a small file
//! every second within a time budget, so that a failed or hung disk is found and masked before
//! a visitor's request runs into it.

use std::sync::Arc;
use std::time::Duration;

use cluster::EventKind;

use crate::disk::Disk;
use crate::faults::Faults;
use crate::worker::{BoxFuture, Worker, WorkerState};

/// How often each disk is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// A probe slower than this means a hung disk: it is failed rather than waited for.
pub const PROBE_BUDGET: Duration = Duration::from_secs(2);
/// The probe file, at the root of the disk.
pub const PROBE_FILE: &str = ".td-probe";

pub struct DiskProbe {
    disk: Arc<Disk>,
    faults: Arc<Faults>,
    round: u64,
}

impl DiskProbe {
    pub fn new(disk: Arc<Disk>, faults: Arc<Faults>) -> DiskProbe {
        DiskProbe {
            disk,
            faults,
            round: 0,
        }
    }
}

impl Worker for DiskProbe {
    fn name(&self) -> String {
        format!("disk probe {}", self.disk.config.id)
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            if self.disk.is_failed() {
                // Failed disks stay out until repair; probing them again would only hang.
                return Ok(WorkerState::Done);
            }
            self.round += 1;
            let path = self.disk.config.path.join(PROBE_FILE);
            let job = tokio::task::spawn_blocking({
                let round = self.round;
                move || floor::probe::write_fsync_read(&path, round)
            });
            match tokio::time::timeout(PROBE_BUDGET, job).await {
                Ok(Ok(Ok(()))) => Ok(WorkerState::Throttled(PROBE_INTERVAL)),
                Ok(Ok(Err(e))) => {
                    let why = format!("health probe: {e}");
                    self.faults
                        .disk_failed(&self.disk, EventKind::DiskFailed, &why);
                    Ok(WorkerState::Done)
                }
                Ok(Err(join)) => Err(format!("probe task failed: {join}")),
                Err(_) => {
                    let why = format!("health probe hung for more than {PROBE_BUDGET:?}");
                    self.faults
                        .disk_failed(&self.disk, EventKind::DiskHung, &why);
                    Ok(WorkerState::Done)
                }
            }
        })
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(PROBE_INTERVAL))
    }

    fn progress(&self) -> String {
        match self.disk.state() {
            crate::disk::DiskState::Healthy => format!("{} probes passed", self.round),
            crate::disk::DiskState::Failed { error, .. } => format!("disk failed: {error}"),
            crate::disk::DiskState::Slow { probe_ms, .. } => {
                format!("disk slow: last probe {probe_ms} ms")
            }
            crate::disk::DiskState::Returning { .. } => "disk answering again: being checked".into(),
        }
    }
}
