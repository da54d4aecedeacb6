use std::fmt;

use serde::{Deserialize, Serialize};

/// A full Docker image ID, `sha256:` and 64 lowercase hex digits. Parsed from
/// what a daemon says, so a malformed ID never reaches a delete call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageId(String);

impl ImageId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let hex = raw
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("{raw:?} is not a sha256 image ID"))?;
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("{raw:?} is not a sha256 image ID"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12 hex digits Docker shows.
    pub fn short(&self) -> &str {
        short_id(&self.0)
    }
}

/// The 12 hex digits Docker shows of an image ID given as text (`sha256:`
/// and 64 hex digits, unparsed: from a stored row or a listing); text too
/// short for that as it is.
pub fn short_id(image_id: &str) -> &str {
    image_id.get(7..19).unwrap_or(image_id)
}

/// Whether a listed reference is Engine 20.10's `<none>:<none>` or
/// `<none>@<none>`, which it gives an image without tags or digests: no
/// reference at all.
pub fn is_placeholder_reference(reference: &str) -> bool {
    reference.starts_with("<none>")
}

impl TryFrom<String> for ImageId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl From<ImageId> for String {
    fn from(id: ImageId) -> String {
        id.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Nextcloud ExApp's ID, taken from its container name `nc_app_<appid>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppId(String);

pub const EXAPP_CONTAINER_PREFIX: &str = "nc_app_";

impl AppId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("{raw:?} is not an ExApp ID"))
        }
    }

    /// The ExApp a container belongs to, from its name (with or without
    /// Docker's leading `/`); None for any other container.
    pub fn from_container_name(name: &str) -> Option<Self> {
        let name = name.strip_prefix('/').unwrap_or(name);
        Self::parse(name.strip_prefix(EXAPP_CONTAINER_PREFIX)?).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AppId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl From<AppId> for String {
    fn from(id: AppId) -> String {
        id.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_are_sha256_with_64_hex_digits() {
        let id = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(ImageId::parse(&id).unwrap().short(), "abababababab");
        for bad in [
            "",
            "ab".repeat(32).as_str(),
            "sha256:xyz",
            &format!("sha256:{}", "AB".repeat(32)),
            &format!("sha512:{}", "ab".repeat(32)),
        ] {
            assert!(ImageId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exapp_ids_come_from_nc_app_container_names() {
        assert_eq!(
            AppId::from_container_name("/nc_app_context_chat_backend")
                .unwrap()
                .as_str(),
            "context_chat_backend"
        );
        assert_eq!(
            AppId::from_container_name("nc_app_llm2").unwrap().as_str(),
            "llm2"
        );
        assert!(AppId::from_container_name("/nc_app_").is_none());
        assert!(AppId::from_container_name("/backup_tool").is_none());
        assert!(AppId::from_container_name("/nc_app_bad name").is_none());
    }
}
