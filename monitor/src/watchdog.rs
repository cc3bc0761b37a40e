//! The monitor's check of itself: a detector that has not finished a run for much longer than
//! its interval (its task died, or something blocks it) is itself a fault, reported as an event.

use std::time::Duration;

use cluster::worker::BoxFuture;
use cluster::{Component, EventKind};

use crate::detector::{unix_ms, Detector, Findings, Look};
use floor::event_log::NewEvent;

pub struct Watchdog;

/// A detector is stalled once this much longer than its interval and budget has passed
/// since its last run ended.
const GRACE: Duration = Duration::from_secs(2);

impl Detector for Watchdog {
    fn name(&self) -> String {
        "self-check".into()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn budget(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            let now = unix_ms();
            let mut stalled = 0;
            let all = found.statuses();
            for s in all.iter().filter(|s| s.name != self.name()) {
                let limit = 3 * s.interval_ms + s.budget_ms + GRACE.as_millis() as u64;
                let since = s.last_run_ms.unwrap_or(s.started_ms);
                let key = format!("stalled:{}", s.name);
                let component = || Component::Detector {
                    detector: s.name.clone(),
                };
                if now.saturating_sub(since) > limit {
                    stalled += 1;
                    found.report(
                        &key,
                        NewEvent::new(
                            component(),
                            EventKind::DetectorStalled,
                            format!(
                                "the monitor's {} detector has not run for {} s (it should run \
                                 every {} ms): its faults go unseen until it runs again",
                                s.name,
                                now.saturating_sub(since) / 1000,
                                s.interval_ms
                            ),
                        )
                        .evidence(format!(
                            "state {}, {} runs, {} errors, last error: {}",
                            s.state,
                            s.runs,
                            s.errors,
                            s.last_error.as_deref().unwrap_or("none")
                        )),
                    );
                } else {
                    found.clear(&key, || {
                        NewEvent::new(
                            component(),
                            EventKind::Recovered,
                            format!("the monitor's {} detector runs again", s.name),
                        )
                    });
                }
            }
            Ok(Look::Done(if stalled == 0 {
                format!("all {} other detectors run", all.len().saturating_sub(1))
            } else {
                format!("{stalled} detectors stalled")
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{DetectorWorker, Statuses};
    use crate::Recorder;
    use cluster::worker::Runner;
    use floor::EventLog;
    use std::sync::Arc;

    /// Runs once, then its task dies (a bug in a detector).
    struct Doomed {
        runs: u32,
    }

    impl Detector for Doomed {
        fn name(&self) -> String {
            "doomed".into()
        }
        fn interval(&self) -> Duration {
            Duration::from_millis(50)
        }
        fn budget(&self) -> Duration {
            Duration::from_millis(50)
        }
        fn run<'a>(&'a mut self, _: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
            Box::pin(async move {
                self.runs += 1;
                if self.runs > 1 {
                    panic!("a bug in a detector");
                }
                Ok(Look::Done("ran".into()))
            })
        }
    }

    #[tokio::test]
    async fn a_detector_that_stopped_running_is_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("ev"), "n1", "monitor").unwrap();
        let recorder = Arc::new(Recorder::new(log));
        let (runner, statuses) = (Runner::new(), Statuses::default());
        runner.spawn(DetectorWorker::new(
            Doomed { runs: 0 },
            recorder.clone(),
            &statuses,
        ));
        runner.spawn(DetectorWorker::new(Watchdog, recorder.clone(), &statuses));
        let started = std::time::Instant::now();
        let stalled = loop {
            let page = recorder.log().since(0, 100);
            if let Some(e) = page
                .events
                .into_iter()
                .find(|e| e.kind == EventKind::DetectorStalled)
            {
                break e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no stall reported"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            stalled.component,
            Component::Detector {
                detector: "doomed".into()
            }
        );
        assert!(stalled.evidence[0].contains("1 runs"), "{stalled:?}");
        runner.shutdown(Duration::from_secs(1)).await;
    }
}
