//! The last few values asked for by key, each built once: requests that ask
//! for one while it is built wait for it rather than build their own, and
//! the least recently asked is let go when more are kept than `KEPT`.
//! Pure bookkeeping; what a value is and what its key holds is the caller's.

use std::sync::{Arc, Mutex, OnceLock};

/// How many values are kept: a few admins' tables and their "Show more".
pub const KEPT: usize = 8;

pub struct Recent<K, V> {
    held: Mutex<Vec<(K, Arc<OnceLock<V>>)>>,
}

impl<K, V> std::fmt::Debug for Recent<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.held.lock().map_or(0, |h| h.len());
        f.debug_struct("Recent").field("kept", &kept).finish()
    }
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Self {
            held: Mutex::new(Vec::new()),
        }
    }
}

impl<K: PartialEq, V: Clone> Recent<K, V> {
    /// The value for `key`, built by `build` if it is not kept.
    pub fn get_or_build(&self, key: K, build: impl FnOnce() -> V) -> V {
        let cell = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let cell = match held.iter().position(|(k, _)| *k == key) {
                Some(i) => held.remove(i).1,
                None => Arc::default(),
            };
            held.push((key, Arc::clone(&cell)));
            if held.len() > KEPT {
                held.remove(0);
            }
            cell
        };
        cell.get_or_init(build).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_same_key_is_built_once() {
        let recent = Recent::default();
        let builds = Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            builds.get()
        };
        assert_eq!(recent.get_or_build("a", build), 1);
        assert_eq!(recent.get_or_build("a", build), 1);
        assert_eq!(recent.get_or_build("b", build), 2);
    }

    #[test]
    fn the_least_recently_asked_is_let_go() {
        let recent = Recent::default();
        for n in 0..KEPT {
            recent.get_or_build(n, || n);
        }
        // Asking for 0 again makes 1 the least recent.
        recent.get_or_build(0, || 100);
        recent.get_or_build(KEPT, || KEPT);
        assert_eq!(recent.get_or_build(0, || 100), 0);
        assert_eq!(recent.get_or_build(1, || 100), 100);
    }
}
