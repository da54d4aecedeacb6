//! When the next scheduled cleanup runs: a pure function of the settings
//! and the last run (the task that starts it is `scheduler`).
//!
//! `next_run_at` = the start of the last scheduled run (or, when there has
//! been none, the moment the interval was last set) + `interval_hours`.
//! `interval_hours = 0`: no scheduled run, ever, and no timer wakes up.
//! A change applies at once; a `next_run_at` already past runs now, once.

/// Unix seconds of the next scheduled run, or None when the schedule is off.
pub fn next_run_at(
    interval_hours: u32,
    last_scheduled_run: Option<i64>,
    interval_set_at: i64,
) -> Option<i64> {
    if interval_hours == 0 {
        return None;
    }
    let base = last_scheduled_run.unwrap_or(interval_set_at);
    Some(base.saturating_add(i64::from(interval_hours) * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    #[test]
    fn interval_zero_means_no_run_ever() {
        assert_eq!(next_run_at(0, None, T), None);
        assert_eq!(next_run_at(0, Some(T), T), None);
    }

    #[test]
    fn without_a_run_the_clock_starts_when_the_interval_was_set() {
        assert_eq!(next_run_at(24, None, T), Some(T + DAY));
    }

    #[test]
    fn a_longer_interval_counts_from_the_last_run_not_from_the_change() {
        // Daily runs at T, T+1d, T+2d, T+3d; at T+3.5d the interval becomes 7 days.
        let runs = [T, T + DAY, T + 2 * DAY, T + 3 * DAY];
        for pair in runs.windows(2) {
            assert_eq!(next_run_at(24, Some(pair[0]), T - DAY), Some(pair[1]));
        }
        let changed_at = T + 3 * DAY + DAY / 2;
        assert_eq!(
            next_run_at(24 * 7, Some(T + 3 * DAY), changed_at),
            Some(T + 10 * DAY)
        );
    }

    #[test]
    fn a_shorter_interval_can_make_the_next_run_already_due() {
        // Last run a day ago; the interval drops to 1 h: due now (the timer runs it at once).
        let now = T + DAY;
        assert!(next_run_at(1, Some(T), now).unwrap() < now);
    }
}
