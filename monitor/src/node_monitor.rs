//! One node's monitor: its event log, its detectors under one runner, and the backend it
//! supervises. `td monitor` opens it, serves [`crate::http`] and stops it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cluster::worker::Runner;
use cluster::{ClusterConfig, Component, EventKind, NodeConfig};

use crate::detector::{DetectorWorker, Statuses};
use crate::detectors::disk_probe::DiskProbe;
use crate::detectors::enclosure::Enclosures;
use crate::detectors::host::Host;
use crate::detectors::peers::Peers;
use crate::detectors::process::{BackendWatch, StartCommand, Supervised};
use crate::detectors::smart::Smart;
use crate::kernel_log::{self, KernelLog};
use crate::recorder::Recorder;
use crate::watchdog::Watchdog;
use floor::event_log::{EventLog, NewEvent};
use floor::store::StoreError;

/// How the monitor is to work; the defaults are a real node's.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start (and restart) the backend with this; `None`: only watch it.
    pub backend: Option<StartCommand>,
    pub smartctl: PathBuf,
    pub sg_ses: PathBuf,
    /// SES devices to ask; empty: those found in `/sys/class/enclosure`.
    pub enclosures: Vec<PathBuf>,
    /// The kernel log (`/dev/kmsg`).
    pub kernel_log: PathBuf,
    /// A disk past this many percent used is filling.
    pub fill_warn_percent: f64,
    /// Frontends on this host whose leftover alias is removed when they die.
    pub frontends: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            backend: None,
            smartctl: "smartctl".into(),
            sg_ses: "sg_ses".into(),
            enclosures: Vec::new(),
            kernel_log: "/dev/kmsg".into(),
            fill_warn_percent: 90.0,
            frontends: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("node '{0}' is not in the cluster configuration")]
    UnknownNode(String),
    #[error("cannot create the monitor's state folder {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The name of the monitor's event log in the node's state folder.
pub const EVENT_LOG: &str = "monitor-events";

pub struct Monitor {
    pub node: NodeConfig,
    pub cluster: ClusterConfig,
    pub recorder: Arc<Recorder>,
    pub statuses: Statuses,
    pub runner: Runner,
    pub supervised: Arc<Supervised>,
    options: Options,
}

impl Monitor {
    pub fn open(
        cluster: &ClusterConfig,
        name: &str,
        options: Options,
    ) -> Result<Monitor, MonitorError> {
        let node = cluster
            .node(name)
            .ok_or_else(|| MonitorError::UnknownNode(name.to_string()))?
            .clone();
        let state = node.state_dir();
        std::fs::create_dir_all(&state).map_err(|source| MonitorError::StateDir {
            path: state.clone(),
            source,
        })?;
        let log = EventLog::open(&state.join(EVENT_LOG), name, "monitor")?;
        log.record(NewEvent::new(
            Component::Process {
                name: "monitor".into(),
            },
            EventKind::Started,
            format!(
                "the monitor of {name} started, watching {} disks",
                node.disks.len()
            ),
        ));
        Ok(Monitor {
            node,
            cluster: cluster.clone(),
            recorder: Arc::new(Recorder::new(log)),
            statuses: Statuses::default(),
            runner: Runner::new(),
            supervised: Arc::default(),
            options,
        })
    }

    /// Starts every detector on the current Tokio runtime.
    pub fn start(&self) {
        let spawn = &self.runner;
        let (rec, st) = (&self.recorder, &self.statuses);
        let disks = self.node.disks.clone();
        let boot = kernel_log::boot_id();
        let from = kernel_log::start_position(rec.log(), &boot);
        let rx = kernel_log::follow(self.options.kernel_log.clone(), from);
        spawn_detector(spawn, KernelLog::new(rx, disks.clone(), from), rec, st);
        for d in &disks {
            spawn_detector(spawn, DiskProbe::new(d.clone(), &self.node.name), rec, st);
        }
        spawn_detector(
            spawn,
            Smart::new(self.options.smartctl.clone(), disks.clone()),
            rec,
            st,
        );
        spawn_detector(
            spawn,
            Enclosures::new(
                self.options.sg_ses.clone(),
                self.options.enclosures.clone(),
                disks.clone(),
            ),
            rec,
            st,
        );
        spawn_detector(
            spawn,
            Host::new(disks, self.options.fill_warn_percent),
            rec,
            st,
        );
        spawn_detector(
            spawn,
            BackendWatch::new(
                &self.node.name,
                self.node.address,
                self.options.backend.clone(),
                self.supervised.clone(),
            )
            .killing_after(Duration::from_secs(
                self.cluster.repair.hung_backend_seconds,
            )),
            rec,
            st,
        );
        spawn_detector(
            spawn,
            Peers::new(&self.cluster.nodes, &self.node.name),
            rec,
            st,
        );
        spawn_detector(
            spawn,
            crate::power_cycle::PowerCycler::new(&self.cluster, &self.node.name),
            rec,
            st,
        );
        spawn_detector(
            spawn,
            crate::urgent_mail::UrgentMail::new(&self.cluster, &self.node),
            rec,
            st,
        );
        for f in self
            .cluster
            .frontends
            .iter()
            .filter(|f| self.options.frontends.contains(&f.name))
        {
            spawn_detector(
                spawn,
                crate::frontend_alias::FrontendAlias::new(&self.cluster, f),
                rec,
                st,
            );
        }
        spawn_detector(spawn, Watchdog, rec, st);
    }

    /// Stops the detectors, then the backend it started, and makes the log durable.
    pub async fn shutdown(&self) {
        self.runner.shutdown(Duration::from_secs(3)).await;
        let supervised = self.supervised.clone();
        let _ = tokio::task::spawn_blocking(move || supervised.stop(Duration::from_secs(5))).await;
        self.recorder.log().flush();
    }
}

fn spawn_detector<D: crate::detector::Detector>(
    runner: &Runner,
    detector: D,
    recorder: &Arc<Recorder>,
    statuses: &Statuses,
) {
    runner.spawn(DetectorWorker::new(detector, recorder.clone(), statuses));
}
