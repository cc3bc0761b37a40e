//! The operator's limit on how fast re-mirroring reads and sends, changed while it runs and
//! kept across restarts (`STATE/remirror-throttle.json`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// Bytes per second; `None`: as fast as the disks and the network go.
    pub bytes_per_second: Option<u64>,
}

pub struct Throttle {
    path: PathBuf,
    setting: Mutex<Setting>,
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

    /// How long to pause after sending `sent` bytes since `start`, to keep to the limit.
    pub fn pause(&self, sent: u64, start: Instant) -> Duration {
        match self.get().bytes_per_second {
            Some(rate) if rate > 0 => {
                let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                due.saturating_sub(start.elapsed())
            }
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_kept_and_paces_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let t = Throttle::open(path.clone());
        assert_eq!(t.pause(1 << 30, Instant::now()), Duration::ZERO);
        t.set(Setting {
            bytes_per_second: Some(1 << 20),
        })
        .unwrap();
        let again = Throttle::open(path);
        assert_eq!(again.get().bytes_per_second, Some(1 << 20));
        // 10 MiB at 1 MiB/s: about ten seconds to wait from a start just now.
        let p = again.pause(10 << 20, Instant::now());
        assert!(
            p > Duration::from_secs(9) && p <= Duration::from_secs(10),
            "{p:?}"
        );
    }
}
