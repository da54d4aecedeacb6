//! The one source of the time of day: system time in production, a clock a
//! test moves by hand. Every part where time decides something (the
//! schedule, minimum ages, job leases, the settle time after an update, row
//! timestamps) reads and waits on it, so a test advances it instead of
//! sleeping. Timeouts of calls to daemons stay on tokio's monotonic timer:
//! they measure how long a peer takes, not what time it is.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Clock(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    Manual(Arc<Manual>),
}

struct Manual {
    now_ms: AtomicI64,
    advanced: Notify,
    /// Sleeps in progress: a test advances only once the task it drives is
    /// waiting, or the advance would happen before the task's deadline is set.
    sleepers: AtomicUsize,
}

/// Counts one sleep on a manual clock for as long as it lasts (a sleep in a
/// `select!` that lost is dropped, not finished).
struct Sleeping<'a>(&'a AtomicUsize);

impl<'a> Sleeping<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Sleeping<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock(system)"),
            Source::Manual(m) => {
                write!(f, "Clock(manual at {} ms)", m.now_ms.load(Ordering::SeqCst))
            }
        }
    }
}

fn system_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

impl Clock {
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock that stands still at the system time of now until `advance`
    /// moves it (tests).
    pub fn manual() -> Self {
        Self(Source::Manual(Arc::new(Manual {
            now_ms: AtomicI64::new(system_ms()),
            advanced: Notify::new(),
            sleepers: AtomicUsize::new(0),
        })))
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Source::System => system_ms(),
            Source::Manual(m) => m.now_ms.load(Ordering::SeqCst),
        }
    }

    /// Unix seconds.
    pub fn now_unix(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    pub fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.now_ms()) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    /// Moves a manual clock forward and wakes whoever sleeps on it.
    ///
    /// # Panics
    /// On the system clock: only a test moves time.
    pub fn advance(&self, by: Duration) {
        match &self.0 {
            Source::System => panic!("the system clock cannot be advanced"),
            Source::Manual(m) => {
                let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
                m.now_ms.fetch_add(ms, Ordering::SeqCst);
                m.advanced.notify_waiters();
            }
        }
    }

    /// Waits until this clock has moved on by `duration`.
    pub async fn sleep(&self, duration: Duration) {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        self.sleep_until_ms(self.now_ms().saturating_add(ms)).await;
    }

    /// Waits until this clock reads `at_ms` (unix milliseconds) or later: a
    /// deadline fixed when it was computed, so an advance made before the
    /// wait begins still counts.
    pub async fn sleep_until_ms(&self, at_ms: i64) {
        match &self.0 {
            Source::System => {
                let left = at_ms.saturating_sub(system_ms());
                tokio::time::sleep(Duration::from_millis(u64::try_from(left).unwrap_or(0))).await;
            }
            Source::Manual(m) => {
                let _sleeping = Sleeping::new(&m.sleepers);
                loop {
                    // Interest first, then the check: an advance in between still wakes us.
                    let advanced = m.advanced.notified();
                    if m.now_ms.load(Ordering::SeqCst) >= at_ms {
                        return;
                    }
                    advanced.await;
                }
            }
        }
    }

    /// How many tasks wait on this manual clock now (always 0 on the system
    /// clock). A test advances once the task it drives is among them.
    pub fn sleepers(&self) -> usize {
        match &self.0 {
            Source::System => 0,
            Source::Manual(m) => m.sleepers.load(Ordering::SeqCst),
        }
    }
}

/// Unix seconds as RFC 3339 (UTC), the way the API and the CLI print every
/// time; the number itself if it is out of range.
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// RFC 3339 text (a daemon's time stamps, the API's own) as unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let clock = Clock::manual();
        let start = clock.now_ms();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now_ms(), start);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(clock.now_ms(), start + 3_600_000);
        assert_eq!(clock.now_unix(), (start + 3_600_000).div_euclid(1000));
    }

    #[test]
    fn clones_share_one_time() {
        let clock = Clock::manual();
        let other = clock.clone();
        clock.advance(Duration::from_secs(1));
        assert_eq!(other.now_ms(), clock.now_ms());
    }

    #[tokio::test]
    async fn a_sleep_on_a_manual_clock_ends_when_the_clock_passes_its_end() {
        let clock = Clock::manual();
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep(Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "59 of 60 s");
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken by the advance")
            .unwrap();
    }

    #[tokio::test]
    async fn a_sleep_counts_as_a_sleeper_until_it_ends_or_is_dropped() {
        let clock = Clock::manual();
        let until = clock.now_ms() + 1000;
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until_ms(until).await }
        });
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(clock.sleepers(), 1);
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken by the advance")
            .unwrap();
        assert_eq!(clock.sleepers(), 0);

        let dropped = tokio::time::timeout(
            Duration::from_millis(10),
            clock.sleep(Duration::from_secs(1)),
        );
        assert!(
            dropped.await.is_err(),
            "a manual clock does not move by itself"
        );
        assert_eq!(clock.sleepers(), 0, "a dropped sleep no longer counts");
        assert_eq!(Clock::system().sleepers(), 0);
    }

    #[tokio::test]
    async fn a_deadline_already_passed_returns_at_once() {
        let clock = Clock::manual();
        clock.sleep_until_ms(clock.now_ms()).await;
        Clock::system().sleep_until_ms(0).await;
    }
}
