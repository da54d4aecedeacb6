//! Reading and changing the settings: one code path for the Settings page,
//! `exapp-janitor settings` and `/api/v1/settings`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::app::App;
use crate::domain::{FieldErrors, ProtectedPattern, Settings};
use crate::inventory::rfc3339;
use crate::schedule;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid settings: {0}")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The settings object of the contract: the settings plus the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    pub interval_hours: u32,
    pub cleanup_on_update: bool,
    pub keep_previous: u32,
    pub min_age_hours: u32,
    pub remove_dangling: bool,
    pub protected_patterns: Vec<ProtectedPattern>,
    #[serde(serialize_with = "as_rfc3339")]
    pub next_run_at: Option<i64>,
    #[serde(serialize_with = "as_rfc3339")]
    pub last_run_at: Option<i64>,
}

fn as_rfc3339<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

impl SettingsView {
    pub fn settings(&self) -> Settings {
        Settings {
            interval_hours: self.interval_hours,
            cleanup_on_update: self.cleanup_on_update,
            keep_previous: self.keep_previous,
            min_age_hours: self.min_age_hours,
            remove_dangling: self.remove_dangling,
            protected_patterns: self.protected_patterns.clone(),
        }
    }
}

/// Only the settings in force (the defaults until the first change): one
/// read, for every page and API call that applies the policy.
pub async fn in_force(store: &crate::store::Store) -> Result<Settings, StoreError> {
    Ok(store
        .settings_row()
        .await?
        .map_or_else(Settings::default, |row| parse_stored(&row.settings)))
}

/// The stored JSON, or the defaults (logged) if it cannot be read.
fn parse_stored(json: &str) -> Settings {
    serde_json::from_str(json).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the stored settings are unreadable; using the defaults until they are saved again");
        Settings::default()
    })
}

/// The settings in force (the defaults until the first change) and when the
/// schedule runs next.
pub async fn load(app: &App) -> Result<SettingsView, StoreError> {
    let defaults = serde_json::to_string(&Settings::default()).expect("settings serialise");
    app.store.ensure_settings(&defaults).await?;
    let row = app.store.settings_row().await?.expect("ensured above");
    let settings = parse_stored(&row.settings);
    let last_run_at = app.store.last_run_at("schedule").await?;
    Ok(SettingsView {
        next_run_at: schedule::next_run_at(
            settings.interval_hours,
            last_run_at,
            row.interval_set_at,
        ),
        last_run_at,
        interval_hours: settings.interval_hours,
        cleanup_on_update: settings.cleanup_on_update,
        keep_previous: settings.keep_previous,
        min_age_hours: settings.min_age_hours,
        remove_dangling: settings.remove_dangling,
        protected_patterns: settings.protected_patterns,
    })
}

/// Applies a change (any subset of the keys); all of it or, on any bad
/// value, nothing. Wakes the scheduler so a new interval applies at once.
pub async fn update(app: &App, change: &Map<String, Value>) -> Result<SettingsView, SettingsError> {
    let current = load(app).await?.settings();
    let next = current.apply(change).map_err(SettingsError::Invalid)?;
    let json = serde_json::to_string(&next).expect("settings serialise");
    app.store
        .save_settings(&json, next.interval_hours != current.interval_hours)
        .await?;
    app.settings_changed.notify_waiters();
    if next.protected_patterns != current.protected_patterns {
        // Statuses depend on the patterns: show them as soon as possible.
        let app = app.clone();
        tokio::spawn(async move {
            let options = app.scan_options().await;
            let _ = crate::scan::scan_all(&app.store, &options).await;
        });
    }
    tracing::info!(keys = ?change.keys().collect::<Vec<_>>(), "settings changed");
    Ok(load(app).await?)
}
