//! Sign-in attempts are rate-limited: after 5 failures for one account, or 20 from one address,
//! within 15 minutes, further attempts are refused (429, with when to try again) until the
//! oldest failure is 15 minutes old, whatever the password. Kept in memory: a restarted
//! frontend forgets, which costs an attacker a restart per 5 guesses.
//!
//! An attempt is counted as a failure when it begins, before its password is hashed, and taken
//! back if the password was right (or never checked): counted after the hash, guesses sent at
//! once would all be checked before the first failure was recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const PER_ACCOUNT: usize = 5;
pub const PER_ADDRESS: usize = 20;

/// How many failures lock what, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub window: Duration,
    pub per_account: usize,
    pub per_address: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            window: WINDOW,
            per_account: PER_ACCOUNT,
            per_address: PER_ADDRESS,
        }
    }
}

#[derive(Default)]
pub struct Limiter {
    limits: Limits,
    /// A `std::sync::Mutex`: held only to count, never across an await.
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// An attempt under way, counted as a failure until [`Limiter::take_back`].
#[derive(Debug)]
#[must_use = "an attempt is a failure unless taken back"]
pub struct Attempt {
    keys: [String; 2],
    at: Instant,
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            failures: Mutex::default(),
        }
    }

    /// Begins an attempt for `account` from `address`, counting it as a failure; or, when
    /// either is locked, how long to wait (and nothing is counted).
    pub fn begin(&self, account: &str, address: &str, now: Instant) -> Result<Attempt, Duration> {
        let keys = [format!("account:{account}"), format!("address:{address}")];
        let window = self.limits.window;
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = None;
        for (key, limit) in keys
            .iter()
            .zip([self.limits.per_account, self.limits.per_address])
        {
            let Some(times) = map.get_mut(key) else {
                continue;
            };
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                times.pop_front();
            }
            if times.len() >= limit {
                let until = window.saturating_sub(now.duration_since(times[0]));
                wait = Some(wait.map_or(until, |w: Duration| w.max(until)));
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        for key in &keys {
            map.entry(key.clone()).or_default().push_back(now);
        }
        // Bounded memory under a flood of made-up names.
        if map.len() > 100_000 {
            map.retain(|_, t| t.back().is_some_and(|b| now.duration_since(*b) < window));
        }
        Ok(Attempt { keys, at: now })
    }

    /// The attempt was not a failure: the password was right, or it was never checked.
    pub fn take_back(&self, attempt: Attempt) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in &attempt.keys {
            if let Some(times) = map.get_mut(key) {
                if let Some(i) = times.iter().rposition(|t| *t == attempt.at) {
                    times.remove(i);
                }
            }
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
            assert!(l.begin("ada", "10.0.0.1", t0).is_ok(), "attempt {i}");
        }
        let wait = l
            .begin("ada", "10.0.0.2", t0 + Duration::from_secs(60))
            .unwrap_err();
        assert_eq!(wait, WINDOW - Duration::from_secs(60));
        assert!(
            l.begin("bob", "10.0.0.2", t0).is_ok(),
            "another account is not locked"
        );
        assert!(
            l.begin("ada", "10.0.0.1", t0 + WINDOW).is_ok(),
            "the lock ends"
        );
    }

    #[test]
    fn attempts_under_way_count_and_a_right_password_is_taken_back() {
        let l = Limiter::default();
        let t0 = Instant::now();
        // Five at once, none finished: the sixth is refused already.
        let attempts: Vec<Attempt> = (0..PER_ACCOUNT)
            .map(|_| l.begin("ada", "10.0.0.1", t0).unwrap())
            .collect();
        assert!(l.begin("ada", "10.0.0.1", t0).is_err());
        // One of them was right: a place again, for one attempt.
        let mut attempts = attempts.into_iter();
        l.take_back(attempts.next().unwrap());
        let again = l.begin("ada", "10.0.0.1", t0).unwrap();
        assert!(l.begin("ada", "10.0.0.1", t0).is_err());
        l.take_back(again);
        // The refused attempts counted nothing: the address has four failures, so sixteen
        // more make its twenty.
        for i in 0..PER_ADDRESS - (PER_ACCOUNT - 1) {
            let _ = l.begin(&format!("user{i}"), "10.0.0.1", t0).unwrap();
        }
        assert!(l.begin("carol", "10.0.0.1", t0).is_err());
    }
}
