//! What the janitor needs to use a HaRP daemon beyond its address: the
//! shared key (a secret) and the ExApps to look for (HaRP lists nothing).

use std::fmt;

use super::AppId;

/// HaRP's shared key (`HP_SHARED_KEY`; AppAPI's daemon setting "HaRP shared
/// key"). It opens every ExApp and Docker call on that host, so nothing
/// prints it: no `Display`, and `Debug` shows only that there is one.
#[derive(Clone, PartialEq, Eq)]
pub struct HarpKey(String);

impl HarpKey {
    pub const MAX_LEN: usize = 256;

    /// A key as read from a file or a form: surrounding whitespace (the
    /// file's final newline) is not part of it; inside it, only visible
    /// ASCII (it travels in an HTTP header).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let key = raw.trim();
        if key.is_empty() {
            return Err("the HaRP shared key is empty".into());
        }
        if key.len() > Self::MAX_LEN {
            return Err(format!(
                "a HaRP shared key has at most {} characters",
                Self::MAX_LEN
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a HaRP shared key has only visible ASCII characters (no spaces)".into());
        }
        Ok(Self(key.to_owned()))
    }

    /// The key itself: for the one header that carries it, and the store.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HarpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HarpKey(redacted)")
    }
}

/// A HaRP daemon's key and the ExApps the janitor looks for there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarpAccess {
    pub key: HarpKey,
    /// Sorted, without duplicates.
    pub exapps: Vec<AppId>,
}

impl HarpAccess {
    /// At most this many ExApps per daemon: each is one inspect per scan.
    pub const MAX_EXAPPS: usize = 500;

    pub fn new(key: HarpKey, exapps: impl IntoIterator<Item = AppId>) -> Self {
        let mut exapps: Vec<AppId> = exapps.into_iter().collect();
        exapps.sort();
        exapps.dedup();
        Self { key, exapps }
    }
}

/// ExApp IDs as given (flags, JSON, a form's lines), each checked.
pub fn parse_exapps<'a>(raw: impl IntoIterator<Item = &'a str>) -> Result<Vec<AppId>, String> {
    let mut ids = Vec::new();
    for r in raw {
        let r = r.trim();
        if r.is_empty() {
            continue;
        }
        ids.push(AppId::parse(r).map_err(|_| {
            format!("{r:?} is not an ExApp ID (letters, digits, '_', '-' and '.', at most 64)")
        })?);
    }
    if ids.len() > HarpAccess::MAX_EXAPPS {
        return Err(format!("at most {} ExApps", HarpAccess::MAX_EXAPPS));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_s_newline_is_not_part_of_the_key() {
        assert_eq!(HarpKey::parse("s3cret\n").unwrap().expose(), "s3cret");
    }

    #[test]
    fn a_key_never_shows_in_debug_output() {
        let key = HarpKey::parse("s3cret").unwrap();
        let access = HarpAccess::new(key, []);
        assert!(!format!("{access:?}").contains("s3cret"));
    }

    #[test]
    fn keys_with_spaces_controls_or_nothing_are_refused() {
        for bad in ["", "  ", "a b", "a\u{7}b", "ä"] {
            assert!(HarpKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(HarpKey::parse(&"k".repeat(HarpKey::MAX_LEN + 1)).is_err());
    }

    #[test]
    fn exapp_ids_are_checked_sorted_and_deduplicated() {
        let ids = parse_exapps(["llm2", " context_chat_backend ", "", "llm2"]).unwrap();
        let access = HarpAccess::new(HarpKey::parse("k").unwrap(), ids);
        let names: Vec<&str> = access.exapps.iter().map(AppId::as_str).collect();
        assert_eq!(names, ["context_chat_backend", "llm2"]);
        assert!(parse_exapps(["llm2;rm -rf"])
            .unwrap_err()
            .contains("not an ExApp ID"));
    }
}
