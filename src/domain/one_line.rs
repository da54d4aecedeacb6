//! Text from outside (a daemon's words, an error that quotes them) made safe
//! to store, show and log: one line, no control characters, bounded length.
//! A newline in it would start a forged log line, an ANSI escape would
//! repaint a terminal, a bidi override would reorder what the admin reads,
//! and an unbounded length would be stored and sent with every page.

use std::fmt;

/// An error and the errors it came from, `: `-joined: the whole story for
/// a log line, where a page or a terminal shows only the first.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}

/// At most this many characters of an error are stored or shown.
pub const ERROR_MAX_CHARS: usize = 1000;

/// One line of untrusted text: line breaks and tabs became spaces (runs of
/// them one space), other control and bidi-formatting characters became
/// `�`, and a text longer than its limit was cut and ends in `…`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OneLine(String);

impl OneLine {
    /// `text` made one line of at most `max_chars` characters (the `…` included).
    pub fn new(text: &str, max_chars: usize) -> Self {
        let mut out = String::with_capacity(text.len().min(max_chars * 4));
        let mut count = 0;
        let mut pending_space = false;
        for c in text.chars() {
            let c = match c {
                c if c.is_whitespace() => {
                    pending_space = count > 0;
                    continue;
                }
                c if c.is_control() || is_bidi_control(c) => '\u{FFFD}',
                c => c,
            };
            let needed = 1 + usize::from(pending_space);
            if count + needed > max_chars {
                // More follows than fits: its last character makes room for `…`.
                if out.pop().is_some() {
                    out.push('…');
                }
                break;
            }
            if pending_space {
                out.push(' ');
                count += 1;
                pending_space = false;
            }
            out.push(c);
            count += 1;
        }
        Self(out)
    }

    /// An error message for storing and showing: [`ERROR_MAX_CHARS`] at most.
    pub fn error(text: &str) -> Self {
        Self::new(text, ERROR_MAX_CHARS)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for OneLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<OneLine> for String {
    fn from(line: OneLine) -> String {
        line.0
    }
}

/// Characters that reorder the text around them when shown (Trojan-Source style).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_tabs_become_single_spaces_and_the_ends_are_trimmed() {
        let line = OneLine::new("\n  boom\r\n2030-01-01 INFO forged\t\u{2028}x \n", 100);
        assert_eq!(line.as_str(), "boom 2030-01-01 INFO forged x");
    }

    #[test]
    fn escapes_and_bidi_overrides_are_replaced_not_passed_on() {
        let line = OneLine::new("a\x1b[31mb\u{202E}c\u{7f}\u{9b}d", 100);
        assert_eq!(line.as_str(), "a\u{FFFD}[31mb\u{FFFD}c\u{FFFD}\u{FFFD}d");
    }

    #[test]
    fn a_long_text_is_cut_to_its_limit_with_an_ellipsis() {
        let line = OneLine::new(&"é".repeat(5000), 10);
        assert_eq!(line.as_str().chars().count(), 10);
        assert!(line.as_str().ends_with("é…"));
        assert_eq!(OneLine::new("exactly10!", 10).as_str(), "exactly10!");
        assert_eq!(OneLine::new("short", 10).as_str(), "short");
    }

    #[test]
    fn an_error_is_at_most_a_thousand_characters() {
        let line = OneLine::error(&"x".repeat(200 * 1024 * 1024 / 100));
        assert_eq!(line.as_str().chars().count(), ERROR_MAX_CHARS);
    }
}
