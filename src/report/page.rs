//! Pages of `GET /api/v1/images`: keyset pagination over the image objects
//! in (daemon name, image ID) order. A cursor is the key of the last image a
//! page returned, and the next page is every matching image strictly after
//! it: an image present before and after a rescan is returned exactly once,
//! whatever the rescan added or removed around it, and a cursor whose image
//! has gone still says where to go on.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::ImageObject;
use crate::domain::{DaemonName, FieldErrors, ImageId};

/// A page's size when the request names none.
pub const DEFAULT_LIMIT: usize = 500;
/// The largest page a request may ask for.
pub const MAX_LIMIT: usize = 5000;

/// How many image objects a page holds at most: 1 to `MAX_LIMIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(usize);

impl Default for PageLimit {
    fn default() -> Self {
        Self(DEFAULT_LIMIT)
    }
}

impl PageLimit {
    /// Digits only: `+5`, ` 5`, `5.0` and an empty value are refused, as a
    /// value out of range is.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let refused = || format!("a whole number from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})");
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refused());
        }
        match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(Self(n)),
            _ => Err(refused()),
        }
    }

    pub fn get(self) -> usize {
        self.0
    }
}

/// Where a page starts: after the image with this key. Holds a valid daemon
/// name and a valid image ID, whether it was parsed from a request or taken
/// from an image of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    daemon: String,
    id: String,
}

/// A cursor longer than this was not handed out by the server (a daemon name
/// is at most 64 characters, an image ID 71).
const MAX_CURSOR_LEN: usize = 256;

impl Cursor {
    /// The cursor of the page after the one that ended with `image`.
    pub fn after(image: &ImageObject) -> Self {
        Self {
            daemon: image.daemon.clone(),
            id: image.id.clone(),
        }
    }

    /// A cursor as `encode` wrote it; anything else is refused with one
    /// sentence, whatever was wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let refused = || {
            "not a cursor this server handed out: take it from the previous page's \
             X-Next-Cursor or Link header, unchanged"
                .to_owned()
        };
        if raw.len() > MAX_CURSOR_LEN {
            return Err(refused());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| refused())?;
        let text = String::from_utf8(bytes).map_err(|_| refused())?;
        let (daemon, id) = text.split_once('\0').ok_or_else(refused)?;
        let daemon = DaemonName::parse(daemon).map_err(|_| refused())?;
        let id = ImageId::parse(id).map_err(|_| refused())?;
        Ok(Self {
            daemon: daemon.to_string(),
            id: id.to_string(),
        })
    }

    /// The opaque token: URL-safe base64 (no padding) of `daemon NUL id`.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}\0{}", self.daemon, self.id))
    }

    /// The (daemon name, image ID) key the API orders images by.
    pub fn key(&self) -> (&str, &str) {
        (&self.daemon, &self.id)
    }
}

/// `limit` and `cursor` of a request, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: PageLimit,
    pub after: Option<Cursor>,
}

/// The raw `limit` and `cursor` as a query string carries them.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageInput {
    /// How many images a page holds at most (1 to 5000, default 500).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 5000)]
    pub limit: Option<String>,
    /// Where the page starts: the previous page's `X-Next-Cursor`, as the
    /// server handed it out. Without it, the first page.
    #[serde(default)]
    pub cursor: Option<String>,
}

impl PageRequest {
    pub fn parse(input: &PageInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let limit = match input.limit.as_deref() {
            None => PageLimit::default(),
            Some(raw) => PageLimit::parse(raw).unwrap_or_else(|e| {
                errors.add("limit", e);
                PageLimit::default()
            }),
        };
        let after = input
            .cursor
            .as_deref()
            .and_then(|raw| Cursor::parse(raw).map_err(|e| errors.add("cursor", e)).ok());
        errors.into_result(|| Self { limit, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn cursor(daemon: &str, id: &str) -> Cursor {
        Cursor {
            daemon: daemon.into(),
            id: id.into(),
        }
    }

    #[test]
    fn a_cursor_reads_back_as_the_key_it_was_made_of() {
        let made = cursor("gpu-1.local", ID);
        let token = made.encode();
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token} needs no escaping in a URL"
        );
        let read = Cursor::parse(&token).unwrap();
        assert_eq!(read, made);
        assert_eq!(read.key(), ("gpu-1.local", ID));
    }

    #[test]
    fn a_forged_or_damaged_cursor_is_refused() {
        let good = cursor("d", ID).encode();
        let encode = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for bad in [
            String::new(),
            "!!!".into(),
            format!("{good}="),
            good[..good.len() - 3].to_owned(),
            encode("d"),
            encode(&format!("d\0{}", &ID[..70])),
            encode(&format!("d\0{}", ID.to_uppercase())),
            encode(&format!("d/x\0{ID}")),
            encode(&format!("\0{ID}")),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0]),
            "A".repeat(MAX_CURSOR_LEN + 1),
        ] {
            let err = Cursor::parse(&bad).expect_err(&bad);
            assert!(err.contains("not a cursor"), "{err}");
        }
    }

    #[test]
    fn the_limit_is_a_whole_number_from_1_to_5000() {
        assert_eq!(PageLimit::parse("1").unwrap().get(), 1);
        assert_eq!(PageLimit::parse("5000").unwrap().get(), 5000);
        assert_eq!(PageLimit::parse("0042").unwrap().get(), 42);
        for bad in [
            "0",
            "5001",
            "",
            "abc",
            "+5",
            " 5",
            "5.0",
            "-1",
            "99999999999999999999999",
        ] {
            assert!(PageLimit::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(PageLimit::default().get(), DEFAULT_LIMIT);
    }

    #[test]
    fn both_bad_values_are_reported_at_once() {
        let errors = PageRequest::parse(&PageInput {
            limit: Some("0".into()),
            cursor: Some("x".into()),
        })
        .unwrap_err();
        assert!(errors.get("limit").is_some() && errors.get("cursor").is_some());
        let none = PageRequest::parse(&PageInput::default()).unwrap();
        assert_eq!(none, PageRequest::default());
    }
}
