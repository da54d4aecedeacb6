//! How numbers and times look on the pages.

use humansize::{format_size, DECIMAL};

/// Bytes the way `docker system df` prints them (decimal units).
pub fn bytes(n: u64) -> String {
    format_size(n, DECIMAL)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_like_docker_and_utc() {
        assert_eq!(bytes(1_982_256), "1.98 MB");
        assert_eq!(datetime(1_800_000_000), "2027-01-15 08:00 UTC");
        assert_eq!(
            datetime_text("2027-01-15T08:00:00Z"),
            "2027-01-15 08:00 UTC"
        );
    }
}
