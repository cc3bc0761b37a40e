//! Work visitors must not wait behind: the bytes of a re-mirror, a replica placed and read back
//! on its target, a scrub's reads. Each call runs on a thread of its own at a lower CPU and I/O
//! priority ([`NICE`]), so that the kernel runs a visitor's request at once when it wakes
//! rather than at the end of the background thread's time slice (a few milliseconds, the
//! visitor's whole p99 otherwise). The work still has the CPU whenever visitors leave it idle.
//!
//! A thread per call rather than a pool: a lowered priority cannot be raised again without
//! privilege, so a thread that ran background work never serves anything else; a thread costs
//! tens of microseconds against the milliseconds of a chunk of disk work. The calls at once
//! are bounded ([`AT_ONCE`]); more wait their turn.
//!
//! Never for work a visitor or an uploader waits on.

use std::sync::OnceLock;

use tokio::sync::{oneshot, Semaphore};

/// The nice value of a background thread: its weight is about a tenth of a visitor thread's,
/// enough to be preempted at a wakeup and still to progress on a busy machine.
pub const NICE: libc::c_int = 10;
/// Background threads alive at once.
pub const AT_ONCE: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    #[error("cannot start a thread for {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the background work {what} panicked")]
    Panicked { what: &'static str },
}

fn places() -> &'static Semaphore {
    static PLACES: OnceLock<Semaphore> = OnceLock::new();
    PLACES.get_or_init(|| Semaphore::new(AT_ONCE))
}

/// Runs `f` on a background thread named after `what` and waits for its result.
pub async fn run<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackgroundError> {
    let _place = places().acquire().await.expect("never closed");
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("bg-{what}"))
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .map_err(|source| BackgroundError::Start { what, source })?;
    rx.await.map_err(|_| BackgroundError::Panicked { what })
}

/// This thread's CPU nice value to [`NICE`] (never higher a priority than it had) and its I/O
/// to the lowest best-effort level. Both are per thread on Linux (`who` = 0 is the calling
/// thread); a failure leaves it as it was.
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread, no memory passed.
    unsafe {
        if nice_here() < NICE {
            libc::setpriority(libc::PRIO_PROCESS, 0, NICE);
        }
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_BE: libc::c_long = 2;
        const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | 7,
        );
    }
}

/// The calling thread's nice value.
pub fn nice_here() -> libc::c_int {
    // SAFETY: a plain system call on the calling thread. errno is not checked: -1 is a nice
    // value too, and the tests compare with `NICE`.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_work_runs_at_a_lower_priority_and_this_thread_keeps_its_own() {
        let before = nice_here();
        let there = run("test", nice_here).await.unwrap();
        assert_eq!(there, NICE.max(before));
        assert_eq!(nice_here(), before);
    }

    #[tokio::test]
    async fn a_panic_is_an_error_not_a_hang() {
        let e = run("test", || -> u32 { panic!("on purpose") })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("panicked"), "{e}");
    }
}
