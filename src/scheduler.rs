//! The timer task that starts scheduled cleanups when `schedule::next_run_at`
//! says they are due.

use std::time::Duration;

use crate::janitor::Janitor;
use crate::jobs;

/// The longest the scheduler sleeps before it reads the settings again: a
/// change made by another process (the CLI, a second server) applies within
/// this time; one made in this process wakes it at once.
pub const SETTINGS_POLL: Duration = Duration::from_secs(5);

/// Runs scheduled cleanups until the process ends. It sleeps until the next
/// run is due, the settings change here, or `SETTINGS_POLL` passes,
/// whichever comes first.
///
/// "Due" is the janitor's clock (a test advances it past the next run);
/// reading the settings again and retrying after an error are on tokio's
/// timer: they wait for other processes and the database, not for a time of day.
pub fn spawn(app: Janitor) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let clock = app.clock().clone();
        loop {
            // Register interest before reading, so a change made meanwhile still wakes us.
            let changed = app.settings_changed.notified();
            let next = match crate::settings::load(&app.store).await {
                Ok(view) => view.next_run_at,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the schedule; trying again in a minute");
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    }
                    continue;
                }
            };
            let Some(next) = next else {
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep(SETTINGS_POLL) => {}
                }
                continue;
            };
            if next > clock.now_unix() {
                tokio::select! {
                    _ = changed => {}
                    _ = clock.sleep_until_ms(next.saturating_mul(1000)) => {}
                    _ = tokio::time::sleep(SETTINGS_POLL) => {}
                }
                continue;
            }
            let policy = app.policy().await;
            match jobs::start_scheduled_run(&app, next, policy).await {
                Ok(Some(run)) => tracing::info!(
                    run_id = run.id,
                    jobs = run.jobs.len(),
                    "scheduled cleanup started"
                ),
                // Another process sharing the data dir made this run.
                Ok(None) => tracing::info!("the scheduled cleanup was started by another process"),
                Err(e) => {
                    tracing::error!(error = %e, "the scheduled cleanup could not start; trying again in a minute");
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            }
        }
    })
}
