//! One strict reading of every JSON request body of the API. Before, each
//! route read its body its own way: `PATCH /settings` took `"5"` for a
//! number and the last of two equal keys, `/cleanup/preview` refused the
//! first and took the second. Now, everywhere:
//!
//! - a body that is not one JSON object, or has a key twice (at any depth),
//!   is 400: a duplicate means the client and we may read different values;
//! - a field of the wrong JSON type (`"5"` for a number, `"true"` for a
//!   boolean, `5` for a text) is 422 with that field named, like any other
//!   invalid value.
//!
//! HTML forms send every value as text; they do not come through here.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::errors::ApiError;
use crate::domain::FieldErrors;

/// The JSON type a field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// A whole number.
    Integer,
    TextList,
}

/// The body as a JSON object: 400 when it is not one or repeats a key.
/// `empty_is_object`: no body means `{}` (routes whose fields are all
/// optional); anything sent must be one JSON object, as everywhere.
pub fn object(body: &[u8], empty_is_object: bool) -> Result<Map<String, Value>, ApiError> {
    // No body at all; a body of blanks is not JSON, and is refused as such.
    if empty_is_object && body.is_empty() {
        return Ok(Map::new());
    }
    let invalid = |e: serde_json::Error| ApiError::BadRequest(format!("invalid JSON body: {e}"));
    serde_json::from_slice::<NoDuplicateKeys>(body).map_err(invalid)?;
    match serde_json::from_slice::<Value>(body).map_err(invalid)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::BadRequest("expected a JSON object".into())),
    }
}

/// 422 naming every field present with the wrong JSON type. `null` is
/// accepted for `optional` fields (it means "not given"); fields not listed
/// are left to the route (unknown ones are refused there).
pub fn check_types(
    body: &Map<String, Value>,
    fields: &[(&str, Kind)],
    optional: &[&str],
) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();
    for (name, kind) in fields {
        let Some(value) = body.get(*name) else {
            continue;
        };
        if value.is_null() && optional.contains(name) {
            continue;
        }
        if let Some(message) = type_error(value, *kind) {
            errors.add(name, message);
        }
    }
    errors.into_result(|| ())
}

/// Why `value` is not of `kind`; None when it is.
pub fn type_error(value: &Value, kind: Kind) -> Option<String> {
    let ok = match kind {
        Kind::Text => value.is_string(),
        Kind::Integer => value.is_i64() || value.is_u64(),
        Kind::TextList => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string)),
    };
    if ok {
        return None;
    }
    let expected = match kind {
        Kind::Text => "a JSON string",
        Kind::Integer => "a whole number, as a JSON number",
        Kind::TextList => "a JSON array of strings",
    };
    Some(match value {
        Value::String(_) => format!("{expected}, not a string"),
        _ => expected.to_owned(),
    })
}

/// Deserialises any JSON document and fails at the first object that has a
/// key twice (serde_json and serde_json::Value keep the last silently).
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key {}",
                    printable(&key)
                )));
            }
            map.next_value::<NoDuplicateKeys>()?;
            seen.insert(key);
        }
        Ok(NoDuplicateKeys)
    }
}

/// Keys are client text: named only when short and plain.
fn printable(key: &str) -> String {
    if key.len() <= 40 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        format!("`{key}`")
    } else {
        "in an object".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(result: Result<Map<String, Value>, ApiError>) -> String {
        match result {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_key_twice_is_refused_at_any_depth() {
        for body in [
            r#"{"a": 1, "a": 1}"#,
            r#"{"a": {"b": 1, "b": 2}}"#,
            r#"{"a": [{"b": 1}, {"c": 1, "c": 1}]}"#,
        ] {
            let answer = status(object(body.as_bytes(), false));
            assert!(answer.contains("duplicate key"), "{body}: {answer}");
        }
        assert_eq!(
            status(object(
                br#"{"a": {"b": 1}, "b": [{"a": 1}], "c": null}"#,
                false
            )),
            "ok",
            "the same key in different objects is fine"
        );
    }

    #[test]
    fn only_an_object_is_a_body_and_empty_only_where_allowed() {
        assert!(status(object(b"[]", false)).contains("expected a JSON object"));
        assert!(status(object(b"{", false)).contains("invalid JSON body"));
        assert!(status(object(b" ", false)).contains("invalid JSON body"));
        assert_eq!(status(object(b"", true)), "ok");
        assert!(status(object(b" \n", true)).contains("invalid JSON body"));
        assert!(status(object(b"null", true)).contains("expected a JSON object"));
        assert!(status(object(b"null", false)).contains("expected a JSON object"));
    }

    #[test]
    fn a_number_as_text_is_named_as_the_wrong_type() {
        let body = json!({"n": "5", "b": true, "t": 5, "l": ["a", 1], "ok": 5, "none": null});
        let errors = check_types(
            body.as_object().unwrap(),
            &[
                ("n", Kind::Integer),
                ("b", Kind::Integer),
                ("t", Kind::Text),
                ("l", Kind::TextList),
                ("ok", Kind::Integer),
                ("none", Kind::Text),
                ("absent", Kind::Integer),
            ],
            &["none"],
        )
        .unwrap_err();
        assert!(
            errors.get("n").unwrap().contains("not a string"),
            "{errors}"
        );
        assert!(
            !errors.get("b").unwrap().contains("not a string"),
            "{errors}"
        );
        assert!(errors.get("t").is_some() && errors.get("l").is_some());
        assert_eq!(errors.iter().count(), 4, "{errors}");
        assert!(type_error(&json!(1.5), Kind::Integer).is_some());
        assert!(type_error(&json!(-3), Kind::Integer).is_none());
    }
}
