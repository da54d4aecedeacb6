use std::fmt;

/// The admin's name for one Docker daemon: 1 to 64 characters of
/// `[A-Za-z0-9_.-]`, not only dots, so it is safe in a URL path, a log line
/// and a metric label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DaemonName(String);

impl DaemonName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("a name is required".into());
        }
        if raw.chars().count() > Self::MAX_LEN {
            return Err(format!("at most {} characters", Self::MAX_LEN));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(format!(
                "only letters, digits, '_', '.' and '-' are allowed (found {:?})",
                bad
            ));
        }
        // `.` and `..` as a path segment are collapsed by browsers, so
        // `/daemons/../remove` would lead somewhere else entirely.
        if raw.chars().all(|c| c == '.') {
            return Err("a name of only dots is not allowed".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DaemonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DaemonName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_and_punctuation_of_the_allowed_set() {
        for ok in ["local", "gpu-host_2.example", "a", &"x".repeat(64)] {
            assert_eq!(DaemonName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_empty_too_long_and_foreign_characters() {
        for bad in [
            "",
            &"x".repeat(65),
            "a b",
            "a/b",
            "<script>",
            "näme",
            "a\0b",
        ] {
            assert!(DaemonName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn rejects_names_of_only_dots_which_browsers_collapse_in_links() {
        for bad in [".", "..", "..."] {
            assert!(DaemonName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        for ok in [".hidden", "a..b", "v1."] {
            assert!(DaemonName::parse(ok).is_ok(), "{ok:?} was refused");
        }
    }
}
