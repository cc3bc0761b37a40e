//! Background work as workers under one runner (the shape of Garage's background workers).
//!
//! A worker does one small unit of work per call and says what it wants next: to go on at
//! once, to pause, to wait for more work, or to stop. The runner owns the loop, counts errors,
//! backs off after failures (1 s doubling to a minute), publishes every worker's status for
//! `GET /workers`, and stops them all on shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// What a worker wants after a unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// More to do now.
    Busy,
    /// More to do after this pause (a rate limit).
    Throttled(Duration),
    /// Nothing to do until `wait_for_work` returns.
    Idle,
    /// Finished for good.
    Done,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One kind of background work.
pub trait Worker: Send + 'static {
    fn name(&self) -> String;
    /// One unit of work. An error is counted and retried after a back-off.
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>>;
    /// Resolves when there may be work again after `Idle`.
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()>;
    /// A short line on what it is doing ("probing every 1 s", "42 %"), for people.
    fn progress(&self) -> String {
        String::new()
    }
}

/// A worker as `GET /workers` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub state: String,
    pub progress: String,
    pub units_done: u64,
    pub errors: u64,
    pub consecutive_errors: u64,
    pub last_error: Option<String>,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs workers until shutdown and keeps their statuses.
#[derive(Clone, Default)]
pub struct Runner {
    /// A `std::sync::Mutex`: held only to copy a status in or out, never across an await.
    statuses: Arc<Mutex<Vec<WorkerStatus>>>,
    stop: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
}

impl Runner {
    pub fn new() -> Runner {
        Runner::default()
    }

    pub fn statuses(&self) -> Vec<WorkerStatus> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts `worker` on the current Tokio runtime.
    pub fn spawn(&self, mut worker: impl Worker) {
        let slot = {
            let mut all = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
            all.push(WorkerStatus {
                name: worker.name(),
                state: "starting".into(),
                ..WorkerStatus::default()
            });
            all.len() - 1
        };
        let statuses = self.statuses.clone();
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            let update = |f: &dyn Fn(&mut WorkerStatus)| {
                let mut all = statuses.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut all[slot]);
            };
            let mut backoff = FIRST_BACKOFF;
            loop {
                let result = tokio::select! {
                    _ = stop.cancelled() => break,
                    r = worker.work() => r,
                };
                let progress = worker.progress();
                match result {
                    Ok(state) => {
                        backoff = FIRST_BACKOFF;
                        update(&|s| {
                            s.units_done += 1;
                            s.consecutive_errors = 0;
                            s.progress = progress.clone();
                            s.state = match state {
                                WorkerState::Busy => "busy".into(),
                                WorkerState::Throttled(d) => format!("throttled {d:?}"),
                                WorkerState::Idle => "idle".into(),
                                WorkerState::Done => "done".into(),
                            };
                        });
                        let pause = async {
                            match state {
                                WorkerState::Busy => {}
                                WorkerState::Throttled(d) => tokio::time::sleep(d).await,
                                WorkerState::Idle => worker.wait_for_work().await,
                                WorkerState::Done => std::future::pending().await,
                            }
                        };
                        if state == WorkerState::Done {
                            break;
                        }
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            () = pause => {}
                        }
                    }
                    Err(error) => {
                        update(&|s| {
                            s.errors += 1;
                            s.consecutive_errors += 1;
                            s.last_error = Some(error.clone());
                            s.state = format!("backing off {backoff:?}");
                        });
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            update(&|s| s.state = "stopped".into());
        });
    }

    /// Asks every worker to stop and waits for them, at most `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(deadline, self.tasks.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails twice, then succeeds three times, then is done.
    struct Flaky {
        calls: u32,
    }

    impl Worker for Flaky {
        fn name(&self) -> String {
            "flaky".into()
        }
        fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
            Box::pin(async move {
                self.calls += 1;
                match self.calls {
                    1 | 2 => Err(format!("failure {}", self.calls)),
                    3 | 4 => Ok(WorkerState::Throttled(Duration::from_millis(10))),
                    _ => Ok(WorkerState::Done),
                }
            })
        }
        fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_and_are_counted_then_work_resumes() {
        let runner = Runner::new();
        runner.spawn(Flaky { calls: 0 });
        // Paused time: the runner's sleeps (1 s, then 2 s of back-off) pass at once when idle.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let s = &runner.statuses()[0];
        assert_eq!((s.errors, s.consecutive_errors, s.units_done), (2, 0, 3));
        assert_eq!(s.last_error.as_deref(), Some("failure 2"));
        assert_eq!(s.state, "stopped");
        runner.shutdown(Duration::from_secs(1)).await;
    }

    struct Forever;

    impl Worker for Forever {
        fn name(&self) -> String {
            "forever".into()
        }
        fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
            Box::pin(async { Ok(WorkerState::Idle) })
        }
        fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_idle_workers() {
        let runner = Runner::new();
        runner.spawn(Forever);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(runner.statuses()[0].state, "idle");
        runner.shutdown(Duration::from_secs(1)).await;
        assert_eq!(runner.statuses()[0].state, "stopped");
    }
}
