//! Slows down and then refuses repeated failed logins (and wrong API
//! tokens) from one address. The decisions are pure functions of the record
//! and the monotonic time (`Instant`, not the janitor's `Clock`: they
//! measure how fast an address tries, in this process, not a time of day).
//!
//! An attempt is counted as a failure when it is admitted, before the
//! password is verified, and forgiven only when it succeeds: counted after
//! the verification, a burst of parallel guesses would all pass the check
//! while none of them had failed yet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// Failures answered without delay.
    pub free_failures: u32,
    /// Added per failure past the free ones, up to `max_delay`.
    pub delay_step: Duration,
    pub max_delay: Duration,
    /// At this many failures in the window the address is locked out…
    pub lock_after: u32,
    /// …for this long.
    pub lock_for: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            free_failures: 3,
            delay_step: Duration::from_millis(250),
            max_delay: Duration::from_secs(2),
            lock_after: 8,
            lock_for: Duration::from_secs(15 * 60),
        }
    }
}

impl ThrottlePolicy {
    /// Wrong API tokens. A token has at least 32 characters and cannot be
    /// guessed, so this throttle is against floods, not guessing: a script
    /// with a stale token gets a few more tries than a password would before
    /// its address is locked out.
    pub fn api_token() -> Self {
        Self {
            free_failures: 10,
            lock_after: 30,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    failures: u32,
    first_failure: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Locked { retry_after: Duration },
}

/// The answer to one attempt, before it is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Verify it; it already counts as a failure. If it fails, hold the
    /// answer back this long.
    Admitted {
        delay_if_wrong: Duration,
    },
    Locked {
        retry_after: Duration,
    },
}

impl ThrottlePolicy {
    fn verdict(&self, record: Option<&Record>, now: Instant) -> Verdict {
        match record.and_then(|r| r.locked_until) {
            Some(until) if until > now => Verdict::Locked {
                retry_after: until - now,
            },
            _ => Verdict::Allowed,
        }
    }

    /// The record after one more failure, and how long to hold the answer.
    fn fail(&self, record: Option<Record>, now: Instant) -> (Record, Duration) {
        let mut record = match record {
            Some(r)
                if now.duration_since(r.first_failure) <= self.window
                    && r.locked_until.is_none_or(|u| u > now) =>
            {
                r
            }
            _ => Record {
                failures: 0,
                first_failure: now,
                locked_until: None,
            },
        };
        record.failures += 1;
        if record.failures >= self.lock_after {
            record.locked_until = Some(now + self.lock_for);
        }
        let over = record.failures.saturating_sub(self.free_failures);
        let delay = (self.delay_step * over).min(self.max_delay);
        (record, delay)
    }
}

/// Failed-login records per client address, in memory.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            records: Mutex::default(),
        }
    }

    pub fn check(&self, ip: IpAddr) -> Verdict {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        self.policy
            .verdict(records.get(&client_key(ip)), Instant::now())
    }

    /// Admits one attempt (counted as a failure until `succeeded`), or
    /// refuses it while the address is locked out. Checking and counting
    /// under one lock is what keeps parallel attempts from slipping through.
    pub fn admit(&self, ip: IpAddr) -> Admission {
        let key = client_key(ip);
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Verdict::Locked { retry_after } = self.policy.verdict(records.get(&key), now) {
            return Admission::Locked { retry_after };
        }
        let delay_if_wrong = self.record_failure(&mut records, key, now);
        Admission::Admitted { delay_if_wrong }
    }

    /// Records a failure; returns how long to wait before answering.
    pub fn failed(&self, ip: IpAddr) -> Duration {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        self.record_failure(&mut records, client_key(ip), Instant::now())
    }

    fn record_failure(
        &self,
        records: &mut HashMap<IpAddr, Record>,
        ip: IpAddr,
        now: Instant,
    ) -> Duration {
        let (record, delay) = self.policy.fail(records.get(&ip).copied(), now);
        records.insert(ip, record);
        // Keep the map from growing without bound under a spray of addresses.
        if records.len() > 10_000 {
            let window = self.policy.window;
            records.retain(|_, r| {
                now.duration_since(r.first_failure) <= window
                    || r.locked_until.is_some_and(|u| u > now)
            });
        }
        delay
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&client_key(ip));
    }
}

/// Every throttle of one server.
#[derive(Debug)]
pub struct Throttles {
    pub logins: LoginThrottle,
    /// Its own records: a script with a stale token does not lock the
    /// admin's browser out, nor the other way round.
    pub api_tokens: LoginThrottle,
    pub verifications: VerificationSlots,
}

impl Throttles {
    pub fn new(logins: ThrottlePolicy) -> Self {
        Self {
            logins: LoginThrottle::new(logins),
            api_tokens: LoginThrottle::new(ThrottlePolicy::api_token()),
            verifications: VerificationSlots::default(),
        }
    }
}

/// Bounds the password verifications running at once, from all clients
/// together. Each Argon2 verification takes 12 MiB and tens of milliseconds
/// of CPU; unbounded, a burst of 400 logins took the server past 600 MB.
#[derive(Debug)]
pub struct VerificationSlots {
    permits: Arc<Semaphore>,
    /// How long a login waits for a slot before it is told to come back.
    wait: Duration,
}

impl VerificationSlots {
    pub const PERMITS: usize = 1;
    pub const WAIT: Duration = Duration::from_secs(3);

    /// A slot, or None when every slot stayed busy for `wait`. The permit is
    /// to be held until the verification itself has ended, not just until
    /// the request is answered or dropped.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

impl Default for VerificationSlots {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(Self::PERMITS)),
            wait: Self::WAIT,
        }
    }
}

/// Whom failures are counted against: an IPv4 address, or an IPv6 /64 — one
/// host is usually given a whole /64 and could otherwise try 2^64 addresses.
fn client_key(ip: IpAddr) -> IpAddr {
    match crate::domain::canonical_ip(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_n(policy: &ThrottlePolicy, n: u32, now: Instant) -> (Option<Record>, Vec<Duration>) {
        let mut record = None;
        let mut delays = Vec::new();
        for _ in 0..n {
            let (r, d) = policy.fail(record, now);
            record = Some(r);
            delays.push(d);
        }
        (record, delays)
    }

    #[test]
    fn the_first_failures_are_free_then_each_is_slower() {
        let policy = ThrottlePolicy::default();
        let (_, delays) = fail_n(&policy, 6, Instant::now());
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 0, 250, 500, 750]);
    }

    #[test]
    fn the_address_is_locked_after_too_many_failures_and_unlocked_later() {
        let policy = ThrottlePolicy::default();
        let now = Instant::now();
        let (record, _) = fail_n(&policy, policy.lock_after - 1, now);
        assert_eq!(policy.verdict(record.as_ref(), now), Verdict::Allowed);
        let (record, _) = policy.fail(record, now);
        assert_eq!(
            policy.verdict(Some(&record), now),
            Verdict::Locked {
                retry_after: policy.lock_for
            }
        );
        let later = now + policy.lock_for + Duration::from_secs(1);
        assert_eq!(policy.verdict(Some(&record), later), Verdict::Allowed);
        let (after, delay) = policy.fail(Some(record), later);
        assert_eq!(
            (after.failures, delay),
            (1, Duration::ZERO),
            "a fresh start after the lock"
        );
    }

    #[test]
    fn an_ipv6_64_counts_as_one_client_and_an_ipv4_address_as_itself() {
        let throttle = LoginThrottle::new(ThrottlePolicy::default());
        for n in 0..8u16 {
            let ip = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, n, n, n, n + 1);
            throttle.failed(ip.into());
        }
        let neighbour: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(matches!(throttle.check(neighbour), Verdict::Locked { .. }));
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(throttle.check(next_64), Verdict::Allowed);

        for _ in 0..8 {
            throttle.failed("192.0.2.1".parse().unwrap());
        }
        assert!(matches!(
            throttle.check("::ffff:192.0.2.1".parse().unwrap()),
            Verdict::Locked { .. }
        ));
        assert_eq!(
            throttle.check("192.0.2.2".parse().unwrap()),
            Verdict::Allowed
        );
    }

    #[test]
    fn admitted_attempts_count_before_they_are_verified() {
        let throttle = LoginThrottle::new(ThrottlePolicy::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        // Eight attempts in flight at once, none verified yet: the ninth
        // is refused.
        for _ in 0..8 {
            assert!(matches!(throttle.admit(ip), Admission::Admitted { .. }));
        }
        assert!(matches!(throttle.admit(ip), Admission::Locked { .. }));
        // A success forgives what was counted.
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        throttle.admit(other);
        throttle.succeeded(other);
        assert_eq!(
            throttle.admit(other),
            Admission::Admitted {
                delay_if_wrong: Duration::ZERO
            }
        );
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let policy = ThrottlePolicy::default();
        let now = Instant::now();
        let (record, _) = fail_n(&policy, 5, now);
        let (record, _) = policy.fail(record, now + policy.window + Duration::from_secs(1));
        assert_eq!(record.failures, 1);
    }
}
