//! Password checks, a few at a time. One Argon2 hash is a core's work for tens of
//! milliseconds and 19 MiB of memory (the default parameters), so at most [`HASHES`] run at
//! once and at most [`QUEUE`] more wait for a place; the rest are refused at once ([`Busy`]:
//! the portal answers 503, try again shortly) instead of piling up.
//!
//! Each place's working memory is allocated once and kept for the next check. Allocated per
//! hash on whichever blocking thread ran it, every thread's malloc arena kept a copy: 40 wrong
//! passwords at once left the frontend holding 776 MB. Now it holds at most [`HASHES`] times
//! the memory of one hash, whatever comes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::Block;
use tokio::sync::Semaphore;

use super::users::{Users, UsersError};

/// Password hashes computed at once.
pub const HASHES: usize = 2;
/// Checks waiting for a place before more are refused.
pub const QUEUE: usize = 8;
/// The `Retry-After` of a check refused for want of a place: a few hashes' time.
pub const BUSY_RETRY_SECS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("too many sign-ins at once")]
    Busy,
    #[error("the password check failed: {0}")]
    Failed(String),
}

/// What the gate has done, for tests and the curious.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateCounts {
    /// Passwords hashed since the start.
    pub hashed: u64,
    /// The most hashes that ran at once.
    pub peak: usize,
    /// Bytes of Argon2 working memory held.
    pub memory: usize,
}

pub struct Gate {
    places: Arc<Semaphore>,
    /// Checks admitted: waiting for a place or hashing.
    admitted: AtomicUsize,
    /// Checks admitted at most: the places and the queue.
    admits: usize,
    /// The places' working memory, at most one per place. A `std::sync::Mutex`: held to take
    /// or return one, on a blocking thread or not, never across an await.
    memory: Mutex<Vec<Vec<Block>>>,
    memory_bytes: AtomicUsize,
    hashed: AtomicU64,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate::new(HASHES, QUEUE)
    }
}

impl Gate {
    pub fn new(hashes: usize, queue: usize) -> Gate {
        let hashes = hashes.max(1);
        Gate {
            places: Arc::new(Semaphore::new(hashes)),
            admitted: AtomicUsize::new(0),
            admits: hashes + queue,
            memory: Mutex::default(),
            memory_bytes: AtomicUsize::new(0),
            hashed: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    pub fn counts(&self) -> GateCounts {
        GateCounts {
            hashed: self.hashed.load(Ordering::Relaxed),
            peak: self.peak.load(Ordering::Relaxed),
            memory: self.memory_bytes.load(Ordering::Relaxed),
        }
    }

    /// Whether `password` is `name`'s among the accounts `users` gives (read once admitted, so
    /// a new account needs no restart); [`GateError::Busy`] when too many checks are under way.
    pub async fn check(
        self: &Arc<Self>,
        users: impl FnOnce() -> Result<Users, UsersError> + Send + 'static,
        name: String,
        password: String,
    ) -> Result<Result<bool, UsersError>, GateError> {
        let admitted = Admitted::new(self.clone());
        if admitted.before >= self.admits {
            return Err(GateError::Busy);
        }
        let place = self
            .places
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| GateError::Busy)?;
        let gate = self.clone();
        // The place, the admission and the memory go with the blocking task: a client that
        // hangs up does not free a place while its hash still runs.
        tokio::task::spawn_blocking(move || {
            let _place = place;
            let _admitted = admitted;
            let users = users()?;
            let mut memory = gate
                .memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or_default();
            let before = memory.capacity();
            let running = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
            gate.peak.fetch_max(running, Ordering::SeqCst);
            let right = users.check_with(&name, &password, &mut memory);
            gate.running.fetch_sub(1, Ordering::SeqCst);
            gate.hashed.fetch_add(1, Ordering::Relaxed);
            let grown = memory.capacity().saturating_sub(before) * std::mem::size_of::<Block>();
            gate.memory_bytes.fetch_add(grown, Ordering::Relaxed);
            gate.memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(memory);
            Ok(right)
        })
        .await
        .map_err(|e| GateError::Failed(e.to_string()))
    }
}

/// One check admitted until dropped.
struct Admitted {
    gate: Arc<Gate>,
    /// How many were admitted before this one.
    before: usize,
}

impl Admitted {
    fn new(gate: Arc<Gate>) -> Admitted {
        let before = gate.admitted.fetch_add(1, Ordering::SeqCst);
        Admitted { gate, before }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gate.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_places_and_the_queue_checks_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        let mut users = Users::default();
        users.add("ada", "correct horse battery", false).unwrap();
        users.save(&path).unwrap();
        // One place and no queue: one check is admitted (it waits while the test holds the
        // place), a second is refused.
        let gate = Arc::new(Gate::new(1, 0));
        let held = gate.places.clone().acquire_owned().await.unwrap();
        let waiting = tokio::spawn({
            let gate = gate.clone();
            let path = path.clone();
            async move {
                gate.check(
                    move || Users::load(&path),
                    "ada".into(),
                    "correct horse battery".into(),
                )
                .await
            }
        });
        while gate.admitted.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            gate.check(
                {
                    let path = path.clone();
                    move || Users::load(&path)
                },
                "ada".into(),
                "wrong".into()
            )
            .await,
            Err(GateError::Busy)
        ));
        drop(held);
        assert!(matches!(waiting.await.unwrap(), Ok(Ok(true))));
        assert!(matches!(
            gate.check(
                move || Users::load(&path),
                "ada".into(),
                "correct horse batterx".into()
            )
            .await,
            Ok(Ok(false))
        ));
        let counts = gate.counts();
        assert_eq!((counts.hashed, counts.peak), (2, 1));
        // One place, one hash's memory (Argon2's default: 19 MiB), kept.
        assert_eq!(counts.memory, 19 * 1024 * 1024);
        assert_eq!(gate.memory.lock().unwrap().len(), 1);
    }
}
