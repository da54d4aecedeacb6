use std::fmt;

use serde::{Deserialize, Serialize};

/// A glob on image references (`ghcr.io/nextcloud/llm2:*`) whose images the
/// janitor never removes. `*` matches across `/`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProtectedPattern {
    raw: String,
    #[serde(skip)]
    compiled: Option<glob::Pattern>,
}

impl ProtectedPattern {
    pub const MAX_LEN: usize = 512;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("a pattern must not be empty".into());
        }
        if raw.len() > Self::MAX_LEN {
            return Err(format!(
                "a pattern has at most {} characters",
                Self::MAX_LEN
            ));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{raw:?}: a pattern has no spaces"));
        }
        let compiled = glob::Pattern::new(raw)
            .map_err(|e| format!("{raw:?} is not a valid pattern: {}", e.msg))?;
        Ok(Self {
            raw: raw.to_owned(),
            compiled: Some(compiled),
        })
    }

    pub fn matches(&self, reference: &str) -> bool {
        match &self.compiled {
            Some(p) => p.matches(reference),
            None => glob::Pattern::new(&self.raw).is_ok_and(|p| p.matches(reference)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Debug for ProtectedPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProtectedPattern({:?})", self.raw)
    }
}

impl fmt::Display for ProtectedPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl TryFrom<String> for ProtectedPattern {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl From<ProtectedPattern> for String {
    fn from(p: ProtectedPattern) -> String {
        p.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_matches_any_tag() {
        let p = ProtectedPattern::parse("ghcr.io/nextcloud/llm2:*").unwrap();
        assert!(p.matches("ghcr.io/nextcloud/llm2:1.2.0-cuda"));
        assert!(!p.matches("ghcr.io/nextcloud/llm3:1"));
    }

    #[test]
    fn invalid_or_empty_patterns_are_refused() {
        for bad in ["", "ghcr.io/[unclosed", "a b", &"x".repeat(600)] {
            assert!(ProtectedPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
