//! Reading and changing the settings: one code path for the Settings page,
//! `exapp-janitor settings` and `/api/v1/settings`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::rfc3339;
use crate::domain::{FieldErrors, ProtectedPattern, Settings};
use crate::schedule;
use crate::store::{Store, StoreError};

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
    /// The change was made from a version that is not the stored one any
    /// more: someone else changed the settings meanwhile. Nothing changed.
    #[error("the settings were changed elsewhere since version {seen}; nothing was changed")]
    Conflict {
        seen: i64,
        current: Box<SettingsView>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The settings object of the contract: the settings plus the schedule.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    pub interval_hours: u32,
    pub cleanup_on_update: bool,
    pub keep_previous: u32,
    pub min_age_hours: u32,
    pub remove_dangling: bool,
    #[schema(value_type = Vec<String>)]
    pub protected_patterns: Vec<ProtectedPattern>,
    #[serde(serialize_with = "as_rfc3339")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<i64>,
    #[serde(serialize_with = "as_rfc3339")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_run_at: Option<i64>,
    /// Bumped by every change; a change may name the version it was made
    /// from (0: never saved).
    pub version: i64,
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
/// schedule runs next. Reads only (the server writes the first row when it
/// starts: `ensure_stored`).
pub async fn load(store: &Store) -> Result<SettingsView, SettingsError> {
    let (settings, interval_set_at, version) = match store.settings_row().await? {
        Some(row) => (
            parse_stored(&row.settings)?,
            row.interval_set_at,
            row.version,
        ),
        // Never saved and no server started yet: the clock would start now.
        None => (Settings::default(), store.clock().now_unix(), 0),
    };
    let last_run_at = store.last_run_at("schedule").await?;
    Ok(SettingsView {
        version,
        next_run_at: schedule::next_run_at(settings.interval_hours, last_run_at, interval_set_at),
        last_run_at,
        interval_hours: settings.interval_hours,
        cleanup_on_update: settings.cleanup_on_update,
        keep_previous: settings.keep_previous,
        min_age_hours: settings.min_age_hours,
        remove_dangling: settings.remove_dangling,
        protected_patterns: settings.protected_patterns,
    })
}

/// Writes the defaults when no settings were ever stored: the schedule's
/// clock starts with the first start of the server.
pub async fn ensure_stored(store: &crate::store::Store) -> Result<(), StoreError> {
    let defaults = serde_json::to_string(&Settings::default()).expect("settings serialise");
    store.ensure_settings(&defaults).await
}

/// How often a change retries when another change (without a version) came
/// first: each retry applies it to the newer settings.
const CHANGE_RETRIES: usize = 20;

/// Applies a change (any subset of the keys); all of it or, on any bad
/// value, nothing. With `seen`, only to that version of the settings (a
/// form that showed it: a conflict changes nothing); without, to whatever
/// is stored when it is written (compare-and-swap, retried), so two changes
/// at once both apply. (`Janitor::change_settings` also wakes the
/// scheduler and rescans when the patterns changed.)
pub async fn update(
    store: &Store,
    change: &Map<String, Value>,
    seen: Option<i64>,
) -> Result<Updated, SettingsError> {
    let mut retries = 0;
    let (current, next) = loop {
        let row = store.settings_row().await?;
        let version = row.as_ref().map(|r| r.version);
        if let Some(seen) = seen.filter(|s| *s != version.unwrap_or(0)) {
            return Err(SettingsError::Conflict {
                seen,
                current: Box::new(load(store).await?),
            });
        }
        // Unreadable settings are repaired by saving: the change applies to the defaults.
        let current = match row.as_ref().map(|r| parse_stored(&r.settings)) {
            None => Settings::default(),
            Some(Ok(s)) => s,
            Some(Err(why)) => {
                tracing::warn!(error = %why, "replacing unreadable settings: the change applies to the defaults");
                Settings::default()
            }
        };
        let next = current.apply(change).map_err(SettingsError::Invalid)?;
        let json = serde_json::to_string(&next).expect("settings serialise");
        let interval_changed = next.interval_hours != current.interval_hours;
        if store
            .save_settings(&json, interval_changed, version)
            .await?
        {
            break (current, next);
        }
        retries += 1;
        if seen.is_some() || retries > CHANGE_RETRIES {
            return Err(SettingsError::Conflict {
                seen: version.unwrap_or(0),
                current: Box::new(load(store).await?),
            });
        }
    };
    tracing::info!(keys = ?change.keys().collect::<Vec<_>>(), "settings changed");
    Ok(Updated {
        view: load(store).await?,
        patterns_changed: next.protected_patterns != current.protected_patterns,
    })
}

/// A change that was saved.
#[derive(Debug)]
pub struct Updated {
    pub view: SettingsView,
    /// Statuses depend on the patterns: the images need a rescan.
    pub patterns_changed: bool,
}
