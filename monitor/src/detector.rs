//! A detector is a worker that looks at one thing at its own interval, within a time budget,
//! and reports faults through [`Findings`]. Its status (last run, how long it took, what it
//! last found, whether it can work at all here) is kept for the monitor's `/health` and for the
//! watchdog that notices a detector that stopped running.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::worker::{BoxFuture, Worker, WorkerState};
use serde::Serialize;

use crate::recorder::{Recorder, Reported};
use floor::event_log::NewEvent;

/// How a run went, besides the faults it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// It looked; the line says what it saw ("3 probes passed").
    Done(String),
    /// It cannot work on this host (no SMART on a loop device, no enclosure); the line says why.
    Unavailable(String),
}

/// One kind of looking.
pub trait Detector: Send + 'static {
    fn name(&self) -> String;
    fn interval(&self) -> Duration;
    /// A run that takes longer is cut off and counted as an error.
    fn budget(&self) -> Duration;
    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>>;
}

/// A detector as the monitor's `/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorStatus {
    pub name: String,
    pub interval_ms: u64,
    pub budget_ms: u64,
    /// `starting`, `ok`, `unavailable` or `error`.
    pub state: String,
    pub line: String,
    pub runs: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// When the last run ended (ms since the Unix epoch).
    pub last_run_ms: Option<u64>,
    pub last_run_took_ms: Option<u64>,
    pub last_finding: Option<Finding>,
    /// When it was started (ms since the Unix epoch).
    pub started_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub time: u64,
    pub event: u64,
    pub summary: String,
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Every detector's status, shared by the workers, `/health` and the watchdog.
#[derive(Clone, Default)]
pub struct Statuses(Arc<Mutex<Vec<DetectorStatus>>>);

impl Statuses {
    pub fn all(&self) -> Vec<DetectorStatus> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn add(&self, status: DetectorStatus) -> usize {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.push(status);
        all.len() - 1
    }

    fn update(&self, slot: usize, f: impl FnOnce(&mut DetectorStatus)) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut all[slot]);
    }
}

/// What a detector reports through: the recorder, and its own status's last finding.
pub struct Findings {
    recorder: Arc<Recorder>,
    statuses: Statuses,
    slot: usize,
}

impl Findings {
    /// Reports fault `key` (see [`Recorder::report`]).
    pub fn report(&self, key: &str, new: NewEvent) -> Reported {
        let summary = new.summary.clone();
        let reported = self.recorder.report(key, new);
        let event = reported.id();
        self.statuses.update(self.slot, |s| {
            s.last_finding = Some(Finding {
                time: cluster::unix_now(),
                event,
                summary,
            })
        });
        reported
    }

    /// Ends fault `key` if it is open, recording `recovered()`.
    pub fn clear(&self, key: &str, recovered: impl FnOnce() -> NewEvent) -> bool {
        self.recorder.clear(key, recovered).is_some()
    }

    pub fn is_open(&self, key: &str) -> bool {
        self.recorder.is_open(key)
    }

    pub fn log(&self) -> &floor::EventLog {
        self.recorder.log()
    }

    /// Every detector's status (for the watchdog).
    pub fn statuses(&self) -> Vec<DetectorStatus> {
        self.statuses.all()
    }
}

/// Runs a [`Detector`] as a worker under the runner.
pub struct DetectorWorker<D: Detector> {
    detector: D,
    findings: Findings,
    interval: Duration,
    budget: Duration,
}

impl<D: Detector> DetectorWorker<D> {
    pub fn new(detector: D, recorder: Arc<Recorder>, statuses: &Statuses) -> DetectorWorker<D> {
        let (interval, budget) = (detector.interval(), detector.budget());
        let slot = statuses.add(DetectorStatus {
            name: detector.name(),
            interval_ms: interval.as_millis() as u64,
            budget_ms: budget.as_millis() as u64,
            state: "starting".into(),
            line: String::new(),
            runs: 0,
            errors: 0,
            last_error: None,
            last_run_ms: None,
            last_run_took_ms: None,
            last_finding: None,
            started_ms: unix_ms(),
        });
        DetectorWorker {
            detector,
            findings: Findings {
                recorder,
                statuses: statuses.clone(),
                slot,
            },
            interval,
            budget,
        }
    }
}

impl<D: Detector> Worker for DetectorWorker<D> {
    fn name(&self) -> String {
        format!("detector {}", self.detector.name())
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = tokio::time::timeout(self.budget, self.detector.run(&self.findings)).await;
            let took = started.elapsed();
            let result = result.unwrap_or_else(|_| {
                Err(format!(
                    "a run took longer than its budget of {:?}",
                    self.budget
                ))
            });
            self.findings.statuses.update(self.findings.slot, |s| {
                s.runs += 1;
                s.last_run_ms = Some(unix_ms());
                s.last_run_took_ms = Some(took.as_millis() as u64);
                match &result {
                    Ok(Look::Done(line)) => {
                        s.state = "ok".into();
                        s.line.clone_from(line);
                    }
                    Ok(Look::Unavailable(line)) => {
                        s.state = "unavailable".into();
                        s.line.clone_from(line);
                    }
                    Err(e) => {
                        s.state = "error".into();
                        s.errors += 1;
                        s.last_error = Some(e.clone());
                    }
                }
            });
            // An error is shown and the detector tries again at its interval: the runner's
            // back-off would leave a fault unseen for up to a minute.
            Ok(WorkerState::Throttled(self.interval.saturating_sub(took)))
        })
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(self.interval))
    }

    fn progress(&self) -> String {
        self.findings.statuses.all()[self.findings.slot]
            .line
            .clone()
    }
}
