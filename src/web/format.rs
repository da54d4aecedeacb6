//! How numbers and times look on the pages.
//!
//! One rule each: sizes in decimal units with three significant digits, as
//! `docker system df` prints them; counts with their noun in the right
//! number ("1 run", "2 runs"); a moment as the admin's local time plus how
//! far away it is ("in 6 days", "3 h ago"). The server writes UTC and the
//! relative form; `static/app.js` rewrites every `<time>` into local time.

use std::fmt;

/// Bytes in decimal units as `docker system df` prints them, always with
/// three significant digits: "1.98 MB", "12.5 MB", "734 MB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    // Rounding may carry into the next unit (999.6 kB prints as 1.00 MB).
    while value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if value >= 99.95 {
        0
    } else if value >= 9.995 {
        1
    } else {
        2
    };
    format!("{value:.decimals$} {}", UNITS[unit])
}

/// `n` with its noun: "1 image", "3 images".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Unix seconds as `2026-11-30 14:05 UTC`.
pub fn datetime(secs: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// RFC 3339 text (as the API gives it) for display, unchanged if it does not parse.
pub fn datetime_text(rfc3339: &str) -> String {
    crate::clock::parse_rfc3339(rfc3339).map_or_else(|| rfc3339.to_owned(), datetime)
}

/// How far `at` is from `now`, in the largest unit that fits: "in 6 days",
/// "3 h ago", "just now". `static/app.js` words it the same way.
pub fn relative(at: i64, now: i64) -> String {
    let d = at - now;
    let a = d.unsigned_abs();
    let amount = match a {
        0..60 => return "just now".to_owned(),
        60..3_600 => format!("{} min", a / 60),
        3_600..172_800 => format!("{} h", a / 3_600),
        _ => format!("{} days", a / 86_400),
    };
    if d > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// A span of time in words: "42 s", "3 min 5 s", "2 h 10 min".
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3_600, (s % 3_600) / 60),
    }
}

/// A moment on a page: a `<time>` element that carries RFC 3339 for the
/// script and reads as UTC with the relative form without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    pub iso: String,
    pub text: String,
    /// The server's now (unix seconds): the script counts "in 6 days" from
    /// it, not from the browser's own clock, which may be off.
    pub now: i64,
    /// Only "3 days ago"; the moment itself shows on hover.
    pub relative_only: bool,
}

impl When {
    pub fn at(secs: i64, now: i64) -> Self {
        Self {
            iso: crate::clock::rfc3339(secs),
            text: format!("{} ({})", datetime(secs), relative(secs, now)),
            now,
            relative_only: false,
        }
    }

    /// "3 days ago", "in 2 h": for a reason that reads better without a date.
    pub fn ago(secs: i64, now: i64) -> Self {
        Self {
            iso: crate::clock::rfc3339(secs),
            text: relative(secs, now),
            now,
            relative_only: true,
        }
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Both parts are made here from a number: nothing to escape.
        write!(
            f,
            r#"<time datetime="{}" title="{}" data-now="{}"{}>{}</time>"#,
            self.iso,
            self.iso,
            self.now,
            if self.relative_only {
                " data-relative-only"
            } else {
                ""
            },
            self.text
        )
    }
}

impl askama::filters::HtmlSafe for When {}

/// HTML made of escaped text and `When`s: a sentence with a moment in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Html(String);

impl Html {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `text`, escaped.
    pub fn text(mut self, text: &str) -> Self {
        for c in text.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
        self
    }

    pub fn when(mut self, when: &When) -> Self {
        use std::fmt::Write;
        let _ = write!(self.0, "{when}");
        self
    }

    /// The words without the markup.
    #[cfg(test)]
    pub fn plain(&self) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in self.0.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
    }
}

impl fmt::Display for Html {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl askama::filters::HtmlSafe for Html {}

/// A reference cut for a narrow column: the start may be elided, the end
/// (the tag, or the last characters) always shows, and `full` is the whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub full: String,
    pub start: String,
    pub end: String,
}

impl Reference {
    pub fn new(full: &str) -> Self {
        // The tag tells versions apart, so it stays whole; a digest or a
        // reference without a tag keeps its last 12 characters.
        let cut = match full.rfind([':', '@']) {
            Some(i) if full.len() - i <= 40 && !full[i..].contains('/') => i,
            _ => full.char_indices().rev().nth(11).map_or(0, |(i, _)| i),
        };
        Self {
            full: full.to_owned(),
            start: full[..cut].to_owned(),
            end: full[cut..].to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker_with_one_precision_rule() {
        assert_eq!(bytes(1_982_256), "1.98 MB");
        assert_eq!(bytes(734_000_000), "734 MB");
        assert_eq!(bytes(12_500_000), "12.5 MB");
        assert_eq!(bytes(999_600), "1.00 MB");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(5_000_000_000), "5.00 GB");
    }

    #[test]
    fn counts_carry_their_noun_in_the_right_number() {
        assert_eq!(count(1, "run", "runs"), "1 run");
        assert_eq!(count(0, "run", "runs"), "0 runs");
        assert_eq!(count(2, "image", "images"), "2 images");
    }

    #[test]
    fn moments_read_as_utc_with_how_far_away_they_are() {
        let now = 1_800_000_000;
        assert_eq!(datetime(now), "2027-01-15 08:00 UTC");
        assert_eq!(relative(now + 6 * 86_400 + 5, now), "in 6 days");
        assert_eq!(relative(now - 3 * 3_600 - 20, now), "3 h ago");
        assert_eq!(relative(now - 30, now), "just now");
        assert_eq!(relative(now + 150, now), "in 2 min");
        let w = When::at(now, now + 60);
        assert_eq!(
            w.to_string(),
            r#"<time datetime="2027-01-15T08:00:00Z" title="2027-01-15T08:00:00Z" data-now="1800000060">2027-01-15 08:00 UTC (1 min ago)</time>"#
        );
    }

    #[test]
    fn spans_of_time_read_in_the_largest_units() {
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(185), "3 min 5 s");
        assert_eq!(duration(7_800), "2 h 10 min");
    }

    #[test]
    fn html_escapes_text_and_keeps_moments() {
        let h = Html::new()
            .text("<b> & \"x\" until ")
            .when(&When::at(1_800_000_000, 1_800_000_000));
        assert!(h
            .to_string()
            .starts_with("&lt;b&gt; &amp; &quot;x&quot; until <time "));
        assert_eq!(
            h.plain(),
            "<b> & \"x\" until 2027-01-15 08:00 UTC (just now)"
        );
    }

    #[test]
    fn a_reference_keeps_its_tag_whole_and_may_lose_its_start() {
        let r = Reference::new("ghcr.io/nextcloud/context_chat_backend:4.2.0-cuda");
        assert_eq!(r.start, "ghcr.io/nextcloud/context_chat_backend");
        assert_eq!(r.end, ":4.2.0-cuda");
        let d = Reference::new(&format!("ghcr.io/x/y@sha256:{}", "a".repeat(64)));
        assert_eq!(d.end.len(), 12, "a digest keeps its last characters");
        assert_eq!(format!("{}{}", d.start, d.end), d.full);
        let port = Reference::new("registry:5000/x/app");
        assert_eq!(format!("{}{}", port.start, port.end), port.full);
        assert_eq!(port.end, "y:5000/x/app", "no tag: the last 12 characters");
        assert_eq!(Reference::new("<none>").full, "<none>");
    }
}
