//! Scrubbing: a worker per disk reads every file of every replica on it back from the disk
//! (page cache dropped first) and compares it with the replica's manifest, at a rate limit,
//! a full pass per period (`[repair] scrub_period_days`), only inside its window (a cron
//! expression, `scrub_window`). Where it stopped is kept in `STATE/scrub-DISK.json`, so a
//! restart goes on from there. A replica that does not match is damaged: it stops being served
//! at once (503, visitors go to the other replica), the catalog marks it unreadable, an event
//! records what was wrong, and its partner, seeing it lost, copies the good replica again.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{Component, EventKind, ReplicaState};
use floor::{EventLog, NewEvent};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::disk::Disk;
use crate::library::Library;
use crate::replica;
use crate::worker::{BoxFuture, Worker, WorkerState};

/// Where one disk's scrub stands, kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Unix seconds when the pass under way started (0: none yet).
    pub pass_started: u64,
    /// The last image id checked in this pass ("" at its start).
    pub after: String,
    /// Unix seconds when the last full pass ended.
    pub last_pass_done: u64,
    pub passes: u64,
    /// In this pass.
    pub replicas: u64,
    pub bytes: u64,
    /// Replicas found damaged since the first pass.
    pub damaged: u64,
}

/// The scrub's settings, from `[repair]`.
#[derive(Clone)]
pub struct Settings {
    pub period: Duration,
    pub window: Option<cron::Schedule>,
    /// Bytes per second; 0: no limit.
    pub rate: u64,
}

impl Settings {
    /// From the configuration; an unreadable window is an error naming it.
    pub fn from_config(repair: &cluster::RepairConfig) -> Result<Settings, String> {
        let window = repair
            .scrub_window
            .as_deref()
            .map(|w| {
                cron::Schedule::from_str(w).map_err(|e| {
                    format!(
                        "[repair] scrub_window {w:?} is not a cron expression with seconds \
                         (sec min hour day month weekday): {e}"
                    )
                })
            })
            .transpose()?;
        Ok(Settings {
            period: Duration::from_secs(repair.scrub_period_days.saturating_mul(86_400)),
            window,
            rate: repair.scrub_rate_mb.saturating_mul(1_000_000),
        })
    }

    fn open_now(&self) -> bool {
        self.window.as_ref().is_none_or(|w| {
            let now = chrono::Utc::now();
            // Cron times fall on whole seconds.
            w.includes(now - chrono::Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos())))
        })
    }
}

pub struct Scrubber {
    disk: Arc<Disk>,
    catalog: Arc<Catalog>,
    library: Arc<Library>,
    events: Arc<EventLog>,
    settings: Settings,
    path: PathBuf,
    progress: Progress,
    /// When `progress` was last written to `path`.
    kept_at: Instant,
    last: String,
}

/// How often where the scrub stands is written down: a restart checks again at most this much.
const KEEP_EVERY: Duration = Duration::from_secs(5);

/// The least time a replica's check takes when paced: its files cost a seek or so each
/// whatever their size, so tiny replicas at a bytes-per-second rate would take a disk (and a
/// core hashing them) whole. 100 replicas a second scrub half a million in under 1.5 h.
const LEAST_PER_REPLICA: Duration = Duration::from_millis(10);

impl Scrubber {
    pub fn new(
        disk: Arc<Disk>,
        state_dir: &std::path::Path,
        catalog: Arc<Catalog>,
        library: Arc<Library>,
        events: Arc<EventLog>,
        settings: Settings,
    ) -> Scrubber {
        let path = state_dir.join(format!("scrub-{}.json", disk.config.id));
        let progress = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Scrubber {
            disk,
            catalog,
            library,
            events,
            settings,
            path,
            progress,
            kept_at: Instant::now(),
            last: "not started".into(),
        }
    }

    /// Writes down where the scrub stands, at most every [`KEEP_EVERY`] unless `now`.
    fn keep(&mut self, now: bool) {
        if !now && self.kept_at.elapsed() < KEEP_EVERY {
            return;
        }
        self.kept_at = Instant::now();
        if let Err(e) = floor::durable::write(
            &self.path,
            &serde_json::to_vec_pretty(&self.progress).expect("plain data"),
        ) {
            tracing::warn!(disk = %self.disk.config.id, error = %e.source, "scrub: where it stopped cannot be kept");
        }
    }

    /// The next replica of this disk after `after`, by id.
    fn next(&self) -> Option<cluster::CatalogEntry> {
        let disk = &self.disk.config.id;
        self.catalog
            .after(&self.progress.after)
            .find(|e| &e.disk == disk && e.state.servable())
    }

    /// Reads replica `id` back; what is wrong, if anything.
    fn check(disk: &Disk, id: &str) -> Result<(u64, Vec<String>), String> {
        let dir = disk.images_dir().join(id);
        let manifest = replica::read_manifest(&dir, id).map_err(|e| e.to_string())?;
        for f in &manifest.files {
            replica::drop_cache(&dir.join(&f.name));
        }
        let size = manifest.files.iter().map(|f| f.size).sum();
        let wrong = replica::verify(&dir, &manifest, &mut |_| {})
            .iter()
            .map(ToString::to_string)
            .collect();
        Ok((size, wrong))
    }

    fn damaged(&mut self, id: &str, wrong: &[String]) {
        self.progress.damaged += 1;
        if let Some(image) = self.library.get(id) {
            image.mark_damaged();
        }
        let reason = format!("scrub: {}", wrong.join("; "));
        if let Err(e) = self
            .catalog
            .set_state(id, ReplicaState::unreadable(reason.clone()))
        {
            tracing::error!(image = id, error = %e, "catalog: cannot mark a damaged replica");
        }
        self.catalog.flush();
        tracing::error!(image = id, disk = %self.disk.config.id, error = %reason, "scrub found a damaged replica; not served, copied again from its partner");
        let mut event = NewEvent::new(
            Component::Replica {
                image: id.to_string(),
                disk: self.disk.config.id.clone(),
            },
            EventKind::ReplicaCorrupt,
            format!(
                "the scrub found the replica of {id} on disk {} damaged; it is no longer served \
                 and is copied again from its other replica",
                self.disk.config.id
            ),
        )
        .at(
            self.disk.config.location.clone(),
            self.disk.config.serial.clone(),
        );
        for w in wrong {
            event = event.evidence(w.clone());
        }
        self.events.record(event);
    }
}

impl Worker for Scrubber {
    fn name(&self) -> String {
        format!("scrub {}", self.disk.config.id)
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            if !self.disk.serves() {
                self.last = "disk not in service; waiting".into();
                return Ok(WorkerState::Throttled(Duration::from_secs(10)));
            }
            if !self.settings.open_now() {
                self.last = "outside its window; waiting".into();
                return Ok(WorkerState::Throttled(Duration::from_secs(30)));
            }
            let now = cluster::unix_now();
            if self.progress.pass_started == 0 {
                let due = self.progress.last_pass_done + self.settings.period.as_secs();
                if self.progress.passes > 0 && now < due {
                    self.last = format!(
                        "pass {} done; the next in {} h",
                        self.progress.passes,
                        (due - now) / 3600
                    );
                    return Ok(WorkerState::Throttled(Duration::from_secs(
                        (due - now).min(3600),
                    )));
                }
                self.progress = Progress {
                    pass_started: now,
                    after: String::new(),
                    replicas: 0,
                    bytes: 0,
                    ..self.progress.clone()
                };
                self.keep(true);
            }
            let Some(entry) = self.next() else {
                self.progress.pass_started = 0;
                self.progress.last_pass_done = now;
                self.progress.passes += 1;
                self.keep(true);
                self.last = format!(
                    "pass {} done: {} replicas, {} MB read",
                    self.progress.passes,
                    self.progress.replicas,
                    self.progress.bytes / 1_000_000
                );
                tracing::info!(disk = %self.disk.config.id, replicas = self.progress.replicas, bytes = self.progress.bytes, "scrub pass done");
                return Ok(WorkerState::Busy);
            };
            let started = Instant::now();
            let (disk, id) = (self.disk.clone(), entry.id.clone());
            let checked = floor::background::run("scrub", move || Scrubber::check(&disk, &id))
                .await
                .map_err(|e| e.to_string())?;
            match checked {
                Ok((size, wrong)) => {
                    self.progress.bytes += size;
                    if !wrong.is_empty() {
                        self.damaged(&entry.id, &wrong);
                    }
                    // Paced: this replica's bytes at the rate take at least this long.
                    if self.settings.rate > 0 {
                        let due = Duration::from_secs_f64(size as f64 / self.settings.rate as f64)
                            .max(LEAST_PER_REPLICA);
                        let pause = due.saturating_sub(started.elapsed());
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
                Err(e) => self.damaged(&entry.id, &[e]),
            }
            self.progress.replicas += 1;
            self.progress.after = entry.id.clone();
            self.keep(false);
            self.last = format!(
                "pass {}: {} replicas checked, {} MB, up to {}",
                self.progress.passes + 1,
                self.progress.replicas,
                self.progress.bytes / 1_000_000,
                self.progress.after
            );
            Ok(WorkerState::Busy)
        })
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(Duration::from_secs(10)))
    }

    fn progress(&self) -> String {
        self.last.clone()
    }
}
