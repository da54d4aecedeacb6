//! HTML rendered once and shared by every request that would render the
//! same bytes: the key holds everything the HTML is made from, the second
//! it is rendered at included (pages write the server's `now` into every
//! `<time>`), so a hit is exactly what a render would have written.
//!
//! Measured with 100 daemons of 1,000 images, the Images page cost a
//! millisecond of CPU per request, most of it rendering and escaping its 250
//! rows; 32 clients asking for one table while the engines held the CPUs
//! queued behind each other's renders. With the memo they share one render a
//! second.

use std::sync::Arc;

use actix_web::web::Bytes;
use askama::filters::HtmlSafe;

use crate::recent::Recent;

/// HTML rendered by a template, shared as it is.
#[derive(Clone)]
pub struct Rendered(Arc<str>);

impl Rendered {
    pub fn new(html: String) -> Self {
        Self(Arc::from(html))
    }

    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same render, not another one of equal text.
    #[cfg(test)]
    pub fn is(&self, other: &Rendered) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The HTML as a body chunk that shares it, uncopied.
    pub fn bytes(&self) -> Bytes {
        Bytes::from_owner(Shared(Arc::clone(&self.0)))
    }
}

/// What a `Bytes` of a render holds on to.
struct Shared(Arc<str>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl HtmlSafe for Rendered {}

/// The last renders by key (`Recent`): a few admins' tables.
pub struct RenderMemo<K>(Recent<K, Rendered>);

impl<K> Default for RenderMemo<K> {
    fn default() -> Self {
        Self(Recent::default())
    }
}

impl<K: PartialEq> RenderMemo<K> {
    /// The HTML for `key`: rendered by `render` on the first request for
    /// it; requests that arrive meanwhile wait for that render rather than
    /// making their own.
    pub fn get(&self, key: K, render: impl FnOnce() -> String) -> Rendered {
        self.0.get_or_build(key, || Rendered::new(render()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_same_key_is_rendered_once_and_shared() {
        let memo = RenderMemo::default();
        let renders = Cell::new(0);
        let render = || {
            renders.set(renders.get() + 1);
            format!("render {}", renders.get())
        };
        let first = memo.get(("table", 1_000), render);
        let again = memo.get(("table", 1_000), render);
        assert_eq!(renders.get(), 1);
        assert!(first.is(&again));
    }

    #[test]
    fn another_key_is_rendered_anew() {
        let memo = RenderMemo::default();
        let first = memo.get(("table", 1_000), || "at 1000".to_owned());
        let next_second = memo.get(("table", 1_001), || "at 1001".to_owned());
        assert_eq!(first.to_string(), "at 1000");
        assert_eq!(next_second.to_string(), "at 1001");
    }
}
