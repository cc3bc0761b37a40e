//! Sign-in attempts are rate-limited: after 5 failures for one account, or 20 from one address,
//! within 15 minutes, further attempts are refused (429, with when to try again) until the
//! oldest failure is 15 minutes old, whatever the password. Kept in memory: a restarted
//! frontend forgets, which costs an attacker a restart per 5 guesses.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const PER_ACCOUNT: usize = 5;
pub const PER_ADDRESS: usize = 20;

#[derive(Default)]
pub struct Limiter {
    /// A `std::sync::Mutex`: held only to count, never across an await.
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    /// `None` if an attempt for `account` from `address` may be made now, else how long to wait.
    pub fn check(&self, account: &str, address: &str, now: Instant) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = None;
        for (key, limit) in [
            (format!("account:{account}"), PER_ACCOUNT),
            (format!("address:{address}"), PER_ADDRESS),
        ] {
            let Some(times) = map.get_mut(&key) else {
                continue;
            };
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
            if times.len() >= limit {
                let until = WINDOW - now.duration_since(times[0]);
                wait = Some(wait.map_or(until, |w: Duration| w.max(until)));
            }
        }
        wait
    }

    pub fn failed(&self, account: &str, address: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in [format!("account:{account}"), format!("address:{address}")] {
            map.entry(key).or_default().push_back(now);
        }
        // Bounded memory under a flood of made-up names.
        if map.len() > 100_000 {
            map.retain(|_, t| t.back().is_some_and(|b| now.duration_since(*b) < WINDOW));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_an_account_for_the_window() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..PER_ACCOUNT {
            assert_eq!(l.check("ada", "10.0.0.1", t0), None, "attempt {i}");
            l.failed("ada", "10.0.0.1", t0);
        }
        let wait = l
            .check("ada", "10.0.0.2", t0 + Duration::from_secs(60))
            .unwrap();
        assert_eq!(wait, WINDOW - Duration::from_secs(60));
        assert_eq!(
            l.check("bob", "10.0.0.2", t0),
            None,
            "another account is not locked"
        );
        assert_eq!(
            l.check("ada", "10.0.0.1", t0 + WINDOW),
            None,
            "the lock ends"
        );
    }
}
