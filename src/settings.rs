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
    /// The stored settings are there but cannot be read: nothing is removed
    /// until they are saved again (fail closed, never the defaults).
    #[error(
        "the stored settings cannot be read ({0}); nothing is removed until they are saved again"
    )]
    Unreadable(String),
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
pub async fn in_force(store: &crate::store::Store) -> Result<Settings, SettingsError> {
    match store.settings_row().await? {
        None => Ok(Settings::default()),
        Some(row) => parse_stored(&row.settings),
    }
}

/// The stored JSON, checked as a change would be: a key missing (added by a
/// later version) takes its default; anything else wrong makes the settings
/// unreadable, which stops every removal until they are saved again.
fn parse_stored(json: &str) -> Result<Settings, SettingsError> {
    let unreadable = |why: String| {
        tracing::error!(error = %why, "the stored settings cannot be read; nothing is removed until they are saved again");
        SettingsError::Unreadable(why)
    };
    let Ok(Value::Object(stored)) = serde_json::from_str::<Value>(json) else {
        return Err(unreadable("not a JSON object".into()));
    };
    Settings::default()
        .apply(&stored)
        .map_err(|e| unreadable(e.to_string()))
}

/// The settings in force (the defaults until the first change) and when the
/// schedule runs next.
pub async fn load(app: &App) -> Result<SettingsView, SettingsError> {
    let defaults = serde_json::to_string(&Settings::default()).expect("settings serialise");
    app.store.ensure_settings(&defaults).await?;
    let row = app.store.settings_row().await?.expect("ensured above");
    let settings = parse_stored(&row.settings)?;
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
    // Unreadable settings are repaired by saving: the change applies to the defaults.
    let current = match load(app).await {
        Ok(view) => view.settings(),
        Err(SettingsError::Unreadable(why)) => {
            tracing::warn!(error = %why, "replacing unreadable settings: the change applies to the defaults");
            Settings::default()
        }
        Err(e) => return Err(e),
    };
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
    load(app).await
}
