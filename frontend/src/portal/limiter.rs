//! Sign-in attempts are rate-limited two ways, neither of which an attacker can turn into a
//! lockout of someone else:
//!
//! - **Per account, a back-off**: after [`Limits::per_account`] failures, each further attempt
//!   for that account must wait [`Limits::backoff`] after the last failure, doubling with each
//!   failure up to [`Limits::backoff_cap`] (429 with Retry-After until then). A guesser is
//!   slowed to a few guesses an hour; the owner waits at most the cap, and not at all from a
//!   browser that signed in to the account before (a device cookie, see `super::device`).
//!   Failures are forgotten after [`Limits::window`] without one, and by a right password.
//! - **Per client address**, [`Limits::per_address`] failures within the window, then refused
//!   until the oldest is a window old. The address is the forwarded client's behind a trusted
//!   proxy (`super::address`), so visitors sharing a proxy do not share a limit.
//!
//! Kept in memory: a restarted frontend forgets, which costs an attacker a restart per few
//! guesses. An attempt is counted as a failure when it begins, before its password is hashed,
//! and taken back if the password was right (or never checked): counted after the hash, guesses
//! sent at once would all be checked before the first failure was recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const PER_ACCOUNT: usize = 5;
pub const PER_ADDRESS: usize = 20;
pub const BACKOFF: Duration = Duration::from_secs(1);
pub const BACKOFF_CAP: Duration = Duration::from_secs(5 * 60);

/// How many failures slow or stop what, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long failures are remembered.
    pub window: Duration,
    /// Failures of one account before its back-off starts.
    pub per_account: usize,
    /// Failures from one client address within the window before it is refused.
    pub per_address: usize,
    /// The first wait of the back-off.
    pub backoff: Duration,
    /// The longest wait of the back-off: the most a guesser can keep the owner waiting.
    pub backoff_cap: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            window: WINDOW,
            per_account: PER_ACCOUNT,
            per_address: PER_ADDRESS,
            backoff: BACKOFF,
            backoff_cap: BACKOFF_CAP,
        }
    }
}

impl Limits {
    /// The wait after `failures` failures of one account.
    pub fn wait_after(&self, failures: usize) -> Duration {
        let Some(over) = failures.checked_sub(self.per_account) else {
            return Duration::ZERO;
        };
        // Capped exponent: 2^20 times any sensible base is beyond any cap.
        let factor = 1u32 << over.min(20);
        self.backoff.saturating_mul(factor).min(self.backoff_cap)
    }
}

/// One account's failures.
#[derive(Debug, Clone, Copy)]
struct Account {
    failures: usize,
    last: Instant,
}

#[derive(Default)]
struct Book {
    accounts: HashMap<String, Account>,
    addresses: HashMap<String, VecDeque<Instant>>,
}

#[derive(Default)]
pub struct Limiter {
    limits: Limits,
    /// A `std::sync::Mutex`: held only to count, never across an await.
    book: Mutex<Book>,
}

/// An attempt under way, counted as a failure until [`Limiter::take_back`] or
/// [`Limiter::succeeded`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an attempt is a failure unless taken back"]
pub struct Attempt {
    account: String,
    address: String,
    at: Instant,
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            book: Mutex::default(),
        }
    }

    /// Begins an attempt for `account` from `address`, counting it as a failure; or, when
    /// either must wait, how long (and nothing is counted). `known_device`: the browser signed
    /// in to this account before, so the account's back-off does not apply to it.
    pub fn begin(
        &self,
        account: &str,
        address: &str,
        known_device: bool,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let limits = self.limits;
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        if let Some(times) = book.addresses.get_mut(address) {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= limits.window)
            {
                times.pop_front();
            }
            if times.len() >= limits.per_address {
                wait = limits.window.saturating_sub(now.duration_since(times[0]));
            }
        }
        if let Some(a) = book.accounts.get_mut(account) {
            if now.duration_since(a.last) >= limits.window {
                a.failures = 0;
            }
            let ready = a.last + limits.wait_after(a.failures);
            if !known_device && ready > now {
                wait = wait.max(ready - now);
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        book.addresses
            .entry(address.to_string())
            .or_default()
            .push_back(now);
        let a = book.accounts.entry(account.to_string()).or_insert(Account {
            failures: 0,
            last: now,
        });
        a.failures += 1;
        a.last = a.last.max(now);
        // Bounded memory under a flood of made-up names and addresses.
        if book.accounts.len() + book.addresses.len() > 100_000 {
            book.accounts
                .retain(|_, a| now.duration_since(a.last) < limits.window);
            book.addresses.retain(|_, t| {
                t.back()
                    .is_some_and(|b| now.duration_since(*b) < limits.window)
            });
        }
        Ok(Attempt {
            account: account.to_string(),
            address: address.to_string(),
            at: now,
        })
    }

    /// The attempt was not a failure: its password was never checked.
    pub fn take_back(&self, attempt: Attempt) {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(times) = book.addresses.get_mut(&attempt.address) {
            if let Some(i) = times.iter().rposition(|t| *t == attempt.at) {
                times.remove(i);
            }
        }
        if let Some(a) = book.accounts.get_mut(&attempt.account) {
            a.failures = a.failures.saturating_sub(1);
        }
    }

    /// The password was right: the account's back-off ends, and the attempt is not counted
    /// against its address.
    pub fn succeeded(&self, attempt: Attempt) {
        let account = attempt.account.clone();
        self.take_back(attempt);
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.accounts.remove(&account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_backs_off_exponentially_up_to_the_cap_and_never_locks() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..PER_ACCOUNT {
            assert!(l.begin("ada", &format!("10.0.0.{i}"), false, t0).is_ok());
        }
        // The sixth waits the first step, from the last failure.
        assert_eq!(l.begin("ada", "10.1.0.1", false, t0), Err(BACKOFF));
        let mut t = t0;
        let mut waits = Vec::new();
        for i in 0..12 {
            let wait = l.begin("ada", "10.1.0.2", false, t).unwrap_err();
            waits.push(wait);
            t += wait;
            let _ = l.begin("ada", &format!("10.2.0.{i}"), false, t).unwrap();
        }
        assert_eq!(waits[..4], [1, 2, 4, 8].map(Duration::from_secs));
        assert!(waits.iter().all(|w| *w <= BACKOFF_CAP), "{waits:?}");
        assert_eq!(*waits.last().unwrap(), BACKOFF_CAP);
        // However long the guessing went on, the owner waits at most the cap, and a known
        // device not at all; another account is untouched.
        let owner = l.begin("ada", "10.9.9.9", false, t).unwrap_err();
        assert!(owner <= BACKOFF_CAP);
        let right = l.begin("ada", "10.9.9.9", true, t).unwrap();
        assert!(l.begin("bob", "10.9.9.8", false, t).is_ok());
        // A right password ends the back-off.
        l.succeeded(right);
        assert!(l.begin("ada", "10.9.9.9", false, t).is_ok());
    }

    #[test]
    fn attempts_under_way_count_and_an_address_is_limited() {
        let l = Limiter::default();
        let t0 = Instant::now();
        // Five at once, none finished: the sixth is refused already.
        let attempts: Vec<Attempt> = (0..PER_ACCOUNT)
            .map(|_| l.begin("ada", "10.0.0.1", false, t0).unwrap())
            .collect();
        assert!(l.begin("ada", "10.0.0.1", false, t0).is_err());
        // One was never checked: a place again, for one attempt.
        let mut attempts = attempts.into_iter();
        l.take_back(attempts.next().unwrap());
        let again = l.begin("ada", "10.0.0.1", false, t0).unwrap();
        assert!(l.begin("ada", "10.0.0.1", false, t0).is_err());
        l.take_back(again);
        // The refused attempts counted nothing: the address has four failures, so sixteen
        // more make its twenty; then it waits for the window, whatever the account.
        for i in 0..PER_ADDRESS - (PER_ACCOUNT - 1) {
            let _ = l.begin(&format!("user{i}"), "10.0.0.1", false, t0).unwrap();
        }
        assert_eq!(l.begin("carol", "10.0.0.1", true, t0), Err(WINDOW));
        assert!(l.begin("carol", "10.0.0.2", false, t0).is_ok());
        assert!(l.begin("carol", "10.0.0.1", false, t0 + WINDOW).is_ok());
    }
}
