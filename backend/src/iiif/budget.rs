//! How much memory IIIF renders may hold at once on a node.
//!
//! Anyone may ask for a render, no sign-in needed, and one can hold a few hundred megabytes
//! (a 16 MP output turned and encoded as PNG): sixteen at once took a node to 2.1 GB. Each
//! render first takes its share of the budget ([`render::memory_needed`]); renders that do
//! not fit wait in a short queue, and beyond it, or after waiting too long, the answer is 503
//! with `Retry-After`. Stored tiles never pass through here: visitors' tiles keep flowing
//! while renders queue.
//!
//! [`render::memory_needed`]: super::render::memory_needed

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default budget: room for the largest render this server allows (a 64 MP source
/// decoded and resampled, a 16 MP output: about 530 MB) and some smaller ones beside it, on a
/// node whose memory is mostly page cache.
pub const DEFAULT_RENDER_MEMORY: u64 = 768 << 20;
/// Renders waiting for room beyond which a new one is refused at once.
pub const MAX_WAITING: usize = 64;
/// How long a render waits for room before it is refused.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// The budget is counted in units of this many bytes (semaphore permits are `u32`).
const UNIT: u64 = 1 << 20;

/// A node's budget for renders in flight.
pub struct RenderBudget {
    room: Arc<Semaphore>,
    units: u32,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

/// Why a render was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("{0} renders are already waiting for memory")]
    QueueFull(usize),
    #[error("no memory for this render within {0:?}")]
    Waited(Duration),
}

/// Memory held by an admitted render; given back when dropped.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
}

impl RenderBudget {
    pub fn new(bytes: u64, max_waiting: usize, max_wait: Duration) -> RenderBudget {
        let units = u32::try_from((bytes / UNIT).max(1)).unwrap_or(u32::MAX);
        RenderBudget {
            room: Arc::new(Semaphore::new(units as usize)),
            units,
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// Waits for room for a render holding `bytes`. A render larger than the whole budget
    /// takes all of it (it runs alone) rather than never running.
    pub async fn admit(&self, bytes: u64) -> Result<Admitted, Busy> {
        let units = u32::try_from(bytes.div_ceil(UNIT).max(1))
            .unwrap_or(u32::MAX)
            .min(self.units);
        if let Ok(permit) = self.room.clone().try_acquire_many_owned(units) {
            return Ok(Admitted { _permit: permit });
        }
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        if queued >= self.max_waiting {
            return Err(Busy::QueueFull(queued));
        }
        match tokio::time::timeout(self.max_wait, self.room.clone().acquire_many_owned(units)).await
        {
            Ok(Ok(permit)) => Ok(Admitted { _permit: permit }),
            // The semaphore is never closed; a timeout is the only way out.
            _ => Err(Busy::Waited(self.max_wait)),
        }
    }

    /// Bytes held by renders now.
    pub fn in_use(&self) -> u64 {
        u64::from(self.units - self.room.available_permits() as u32) * UNIT
    }

    /// Renders waiting for room now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// Counts a waiter out however it leaves (admitted, refused, or its request dropped).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn renders_wait_for_room_then_are_refused() {
        let budget = Arc::new(RenderBudget::new(100 * UNIT, 1, Duration::from_secs(10)));
        let big = budget.admit(60 * UNIT).await.unwrap();
        assert_eq!(budget.in_use(), 60 * UNIT);
        // Another 60 does not fit: it waits, and gets in once the first is done.
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.admit(60 * UNIT).await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        assert_eq!(budget.waiting(), 1);
        // The queue (of one) is full: a third is refused at once.
        assert_eq!(
            budget.admit(60 * UNIT).await.err(),
            Some(Busy::QueueFull(1))
        );
        drop(big);
        assert!(waiter.await.unwrap().is_ok());
        assert_eq!(budget.waiting(), 0);
        assert_eq!(budget.in_use(), 0, "given back when dropped");

        // Waiting too long is refused, and the waiter is counted out.
        let _hold = budget.admit(100 * UNIT).await.unwrap();
        assert_eq!(
            budget.admit(1).await.err(),
            Some(Busy::Waited(Duration::from_secs(10)))
        );
        assert_eq!(budget.waiting(), 0);
    }

    #[tokio::test]
    async fn a_render_larger_than_the_budget_runs_alone() {
        let budget = RenderBudget::new(10 * UNIT, 4, Duration::from_secs(1));
        let all = budget.admit(1 << 40).await.unwrap();
        assert_eq!(budget.in_use(), 10 * UNIT);
        drop(all);
        assert_eq!(budget.in_use(), 0);
    }
}
