use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{FieldErrors, ProtectedPattern};

/// The admin's settings, valid by construction: built from defaults or by
/// applying a checked change.
/// A field missing from stored JSON (added by a later version) takes its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Hours between scheduled cleanups; 0 = no scheduled cleanup.
    pub interval_hours: u32,
    /// Clean an ExApp's old images right after it was updated.
    pub cleanup_on_update: bool,
    /// Outdated images kept per ExApp and daemon, most recent first.
    pub keep_previous: u32,
    /// Hours an image must have been outdated before it is removable.
    pub min_age_hours: u32,
    /// Also remove dangling images (untagged, unowned, unused).
    pub remove_dangling: bool,
    /// Images with a reference matching one of these are never removed.
    pub protected_patterns: Vec<ProtectedPattern>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval_hours: 168,
            cleanup_on_update: false,
            keep_previous: 0,
            min_age_hours: 24,
            remove_dangling: false,
            protected_patterns: Vec::new(),
        }
    }
}

/// Ten years in hours: the longest interval or age.
pub const MAX_HOURS: u32 = 87_600;
pub const MAX_KEEP_PREVIOUS: u32 = 1000;
pub const MAX_PATTERNS: usize = 100;

pub const SETTING_KEYS: [&str; 6] = [
    "interval_hours",
    "cleanup_on_update",
    "keep_previous",
    "min_age_hours",
    "remove_dangling",
    "protected_patterns",
];

/// A change as `PATCH /api/v1/settings` takes it: any subset of the
/// settings, and the version it was made from. `Settings::apply` reads the
/// change key by key; this type is its description in the OpenAPI document,
/// and a test keeps its fields equal to `SETTING_KEYS`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SettingsChange {
    #[schema(nullable = false, minimum = 0, maximum = 87_600)]
    interval_hours: Option<u32>,
    #[schema(nullable = false)]
    cleanup_on_update: Option<bool>,
    #[schema(nullable = false, minimum = 0, maximum = 1000)]
    keep_previous: Option<u32>,
    #[schema(nullable = false, minimum = 0, maximum = 87_600)]
    min_age_hours: Option<u32>,
    #[schema(nullable = false)]
    remove_dangling: Option<bool>,
    /// Globs on image references (`*` matches across `/`), no spaces.
    #[schema(nullable = false)]
    protected_patterns: Option<Vec<String>>,
    /// The `version` the change was made from; 409 when it is no longer current.
    #[schema(nullable = false, minimum = 0)]
    version: Option<i64>,
}

impl Settings {
    /// The JSON API's stricter rule on top of `apply`: numbers must be JSON
    /// numbers and switches JSON booleans. `apply` also takes them as text,
    /// because an HTML form (the Settings page) sends nothing else; an API
    /// client that sends `"5"` has made a mistake worth telling it about.
    pub fn check_json_types(change: &Map<String, Value>) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        for (key, value) in change {
            let (ok, expected) = match key.as_str() {
                "interval_hours" | "min_age_hours" | "keep_previous" => {
                    (value.is_number(), "a JSON number")
                }
                "cleanup_on_update" | "remove_dangling" => {
                    (value.is_boolean(), "a JSON boolean (true or false)")
                }
                _ => (true, ""), // unknown keys and the patterns: `apply` says why
            };
            if !ok {
                let got = if value.is_string() {
                    ", not a string"
                } else {
                    ""
                };
                errors.add(key, format!("must be {expected}{got}"));
            }
        }
        errors.into_result(|| ())
    }

    /// Applies a change (any subset of the keys, JSON values). Every key is
    /// checked; one bad value refuses the whole change. Numbers and switches
    /// may come as text (forms); the API checks `check_json_types` first.
    pub fn apply(&self, change: &Map<String, Value>) -> Result<Settings, FieldErrors> {
        let mut next = self.clone();
        let mut errors = FieldErrors::new();
        for (key, value) in change {
            let result = match key.as_str() {
                "interval_hours" => hours(value).map(|v| next.interval_hours = v),
                "min_age_hours" => hours(value).map(|v| next.min_age_hours = v),
                "keep_previous" => whole(value, MAX_KEEP_PREVIOUS).map(|v| next.keep_previous = v),
                "cleanup_on_update" => boolean(value).map(|v| next.cleanup_on_update = v),
                "remove_dangling" => boolean(value).map(|v| next.remove_dangling = v),
                "protected_patterns" => patterns(value).map(|v| next.protected_patterns = v),
                _ => Err(format!(
                    "unknown setting; the settings are {}",
                    SETTING_KEYS.join(", ")
                )),
            };
            if let Err(message) = result {
                errors.add(&short_key(key), message);
            }
        }
        errors.into_result(|| next)
    }
}

/// A key as it is safe to echo back (it may be anything a client sent).
fn short_key(key: &str) -> String {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    if k.is_empty() {
        "setting".into()
    } else {
        k
    }
}

fn whole(value: &Value, max: u32) -> Result<u32, String> {
    let message = || format!("a whole number from 0 to {max}");
    let n = match value {
        Value::Number(n) => n.as_u64().ok_or_else(message)?,
        Value::String(s) => s.trim().parse::<u64>().map_err(|_| message())?,
        _ => return Err(message()),
    };
    u32::try_from(n)
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(message)
}

fn hours(value: &Value) -> Result<u32, String> {
    whole(value, MAX_HOURS)
        .map_err(|_| format!("a whole number of hours from 0 to {MAX_HOURS} (ten years)"))
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if matches!(s.as_str(), "true" | "on" | "1") => Ok(true),
        Value::String(s) if matches!(s.as_str(), "false" | "off" | "0" | "") => Ok(false),
        _ => Err("true or false".into()),
    }
}

fn patterns(value: &Value) -> Result<Vec<ProtectedPattern>, String> {
    let Value::Array(items) = value else {
        return Err(r#"a list of patterns, e.g. ["ghcr.io/nextcloud/llm2:*"]"#.into());
    };
    if items.len() > MAX_PATTERNS {
        return Err(format!("at most {MAX_PATTERNS} patterns"));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(raw) = item else {
            return Err("every pattern is a string".into());
        };
        out.push(ProtectedPattern::parse(raw)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// The document's description of a change, as JSON.
    fn change_schema() -> Value {
        serde_json::to_value(<SettingsChange as utoipa::PartialSchema>::schema()).unwrap()
    }

    #[test]
    fn the_documented_change_has_exactly_the_settings_and_the_version() {
        let schema = change_schema();
        let documented: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: Vec<&str> = SETTING_KEYS.iter().copied().chain(["version"]).collect();
        expected.sort();
        assert_eq!(documented, expected);
    }

    #[test]
    fn the_documented_limits_are_the_ones_apply_enforces() {
        let schema = change_schema();
        let max = |key: &str| schema["properties"][key]["maximum"].as_u64().unwrap();
        assert_eq!(max("interval_hours"), u64::from(MAX_HOURS));
        assert_eq!(max("min_age_hours"), u64::from(MAX_HOURS));
        assert_eq!(max("keep_previous"), u64::from(MAX_KEEP_PREVIOUS));
        for (key, max) in [
            ("interval_hours", MAX_HOURS),
            ("min_age_hours", MAX_HOURS),
            ("keep_previous", MAX_KEEP_PREVIOUS),
        ] {
            assert!(Settings::default()
                .apply(&change(json!({ key: max })))
                .is_ok());
            assert!(Settings::default()
                .apply(&change(json!({ key: max + 1 })))
                .is_err());
        }
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let s = Settings::default();
        assert_eq!(
            (
                s.interval_hours,
                s.cleanup_on_update,
                s.keep_previous,
                s.min_age_hours,
                s.remove_dangling
            ),
            (168, false, 0, 24, false)
        );
        assert!(s.protected_patterns.is_empty());
    }

    #[test]
    fn a_valid_change_applies_only_its_keys() {
        let s = Settings::default()
            .apply(&change(json!({"interval_hours": 0, "protected_patterns": ["ghcr.io/nextcloud/llm2:*"], "cleanup_on_update": true})))
            .unwrap();
        assert_eq!(
            (s.interval_hours, s.cleanup_on_update, s.min_age_hours),
            (0, true, 24)
        );
        assert_eq!(s.protected_patterns[0].as_str(), "ghcr.io/nextcloud/llm2:*");
    }

    #[test]
    fn every_bad_value_is_named_and_nothing_applies() {
        let errors = Settings::default()
            .apply(&change(json!({
                "interval_hours": -1,
                "min_age_hours": 87601,
                "keep_previous": "many",
                "remove_dangling": "maybe",
                "protected_patterns": ["ok:*", "bad[", "x".repeat(100_000)],
                "force": true,
            })))
            .unwrap_err();
        for field in [
            "interval_hours",
            "min_age_hours",
            "keep_previous",
            "remove_dangling",
            "protected_patterns",
            "force",
        ] {
            assert!(errors.get(field).is_some(), "{field}: {errors}");
        }
    }

    #[test]
    fn the_json_api_takes_numbers_and_switches_only_as_json_numbers_and_booleans() {
        let errors = Settings::check_json_types(&change(json!({
            "keep_previous": "2",
            "interval_hours": " 5 ",
            "min_age_hours": true,
            "remove_dangling": "on",
            "cleanup_on_update": 1,
        })))
        .unwrap_err();
        assert!(errors
            .get("keep_previous")
            .unwrap()
            .contains("not a string"));
        assert!(errors
            .get("remove_dangling")
            .unwrap()
            .contains("JSON boolean"));
        assert_eq!(errors.iter().count(), 5, "{errors}");
        assert!(Settings::check_json_types(&change(json!({
            "keep_previous": 2,
            "remove_dangling": false,
            "protected_patterns": [],
            "unknown": "left to apply",
        })))
        .is_ok());
    }

    #[test]
    fn numbers_may_come_as_text_from_forms() {
        let s = Settings::default()
            .apply(&change(
                json!({"keep_previous": "2", "remove_dangling": "on"}),
            ))
            .unwrap();
        assert_eq!((s.keep_previous, s.remove_dangling), (2, true));
        assert!(Settings::default()
            .apply(&change(json!({"keep_previous": 1.5})))
            .is_err());
    }
}
