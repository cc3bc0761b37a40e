//! The operator's limit on how fast re-mirroring reads and sends, changed while it runs and
//! kept across restarts (`STATE/remirror-throttle.json`). The limit is for the node as a whole
//! (shared by the copies under way at once), and it holds only while visitors are served, here
//! or on the copy's target (its answers say so): a copy between two nodes no visitor asked
//! anything for [`IDLE`] goes as fast as the disks do.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Visitors are idle when none was served for this long.
pub const IDLE: Duration = Duration::from_secs(2);
/// On a target's answer to a chunk: it serves visitors now (the sender keeps to the limit).
pub const VISITORS_HEADER: &str = "td-visitors";

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// Bytes per second; `None`: as fast as the disks and the network go.
    pub bytes_per_second: Option<u64>,
}

pub struct Throttle {
    path: PathBuf,
    setting: Mutex<Setting>,
    /// Copies sending now; the limit is shared between them.
    sending: AtomicU32,
    /// Whose turn it is to send a chunk while the limit holds (see [`Throttle::turn`]).
    turn: tokio::sync::Mutex<()>,
}

/// Held while a copy sends (see [`Throttle::sending`]).
pub struct Sending<'a>(&'a Throttle);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.sending.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Throttle {
    /// The setting kept at `path`, or none.
    pub fn open(path: PathBuf) -> Throttle {
        let setting = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Throttle {
            path,
            setting: Mutex::new(setting),
            sending: AtomicU32::new(0),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    pub fn get(&self) -> Setting {
        *self.setting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the limit now and for later runs.
    pub fn set(&self, setting: Setting) -> std::io::Result<()> {
        floor::durable::write(
            &self.path,
            &serde_json::to_vec_pretty(&setting).expect("plain data"),
        )
        .map_err(|e| e.source)?;
        *self.setting.lock().unwrap_or_else(|p| p.into_inner()) = setting;
        Ok(())
    }

    /// Counts a copy as sending until the guard is dropped.
    pub fn sending(&self) -> Sending<'_> {
        self.sending.fetch_add(1, Ordering::Relaxed);
        Sending(self)
    }

    /// While the limit holds, a node's copies send their chunks one at a time: held while a
    /// chunk is read and sent, given back before the pause after it. Two copies' reads and
    /// writes at once kept both cores busy with them, and visitors' requests waited for a core
    /// (`bench/remirror` 2 GiB at 50M per node, visitor p99 against the same load without a
    /// re-mirror: 1.19-1.45 in four runs with both copies at once, 1.00 and 1.21 taking
    /// turns). `None` while visitors are idle: the copies then go at once, as fast as the
    /// disks do.
    pub async fn turn(
        &self,
        since_visit: Option<Duration>,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.pacing(since_visit) {
            true => Some(self.turn.lock().await),
            false => None,
        }
    }

    /// Whether the limit holds now (visitors were served `since_visit` ago, and it is set).
    pub fn pacing(&self, since_visit: Option<Duration>) -> bool {
        since_visit.is_some_and(|d| d < IDLE)
            && self.get().bytes_per_second.is_some_and(|rate| rate > 0)
    }

    /// How long to pause after one copy sent `bytes` in `took`, to keep the node to the limit:
    /// none while visitors are idle (`since_visit`: how long ago one was last served).
    pub fn pause(&self, bytes: u64, took: Duration, since_visit: Option<Duration>) -> Duration {
        match self.get().bytes_per_second {
            Some(rate) if self.pacing(since_visit) => {
                let share = rate as f64 / f64::from(self.sending.load(Ordering::Relaxed).max(1));
                Duration::from_secs_f64(bytes as f64 / share).saturating_sub(took)
            }
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_kept_shared_and_holds_only_while_visitors_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let t = Throttle::open(path.clone());
        let busy = Some(Duration::from_millis(100));
        assert_eq!(t.pause(1 << 30, Duration::ZERO, busy), Duration::ZERO);
        t.set(Setting {
            bytes_per_second: Some(1 << 20),
        })
        .unwrap();
        let again = Throttle::open(path);
        assert_eq!(again.get().bytes_per_second, Some(1 << 20));
        // 8 MiB at 1 MiB/s, sent in 1 s: seven seconds to wait while visitors are served.
        let one = again.sending();
        assert_eq!(
            again.pause(8 << 20, Duration::from_secs(1), busy),
            Duration::from_secs(7)
        );
        // Two copies at once share the limit.
        let two = again.sending();
        assert_eq!(
            again.pause(8 << 20, Duration::from_secs(1), busy),
            Duration::from_secs(15)
        );
        drop((one, two));
        assert!(again.pacing(busy));
        // Nobody looking (none served for 2 s, or ever): full speed.
        let idle = Some(IDLE);
        assert!(!again.pacing(idle) && !again.pacing(None));
        assert_eq!(again.pause(8 << 20, Duration::ZERO, idle), Duration::ZERO);
        assert_eq!(again.pause(8 << 20, Duration::ZERO, None), Duration::ZERO);
    }

    #[tokio::test]
    async fn while_the_limit_holds_the_copies_take_turns_and_idle_they_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let t = Throttle::open(dir.path().join("t.json"));
        let busy = Some(Duration::from_millis(100));
        // No limit set: no turns, even with visitors.
        assert!(t.turn(busy).await.is_none());
        t.set(Setting {
            bytes_per_second: Some(1 << 20),
        })
        .unwrap();
        let first = t.turn(busy).await.expect("a turn while pacing");
        // A second copy waits for the first one's chunk.
        use futures_util::FutureExt;
        assert!(t.turn(busy).now_or_never().is_none(), "two turns at once");
        // Idle visitors: the copies go at once, the turn held or not.
        assert!(t.turn(Some(IDLE)).await.is_none());
        drop(first);
        assert!(t.turn(busy).await.is_some());
    }
}
