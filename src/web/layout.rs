//! What every page's frame needs: the active navigation entry, for a
//! logged-in admin the CSRF token that forms and htmx requests carry, and
//! the version for the footer.

use super::guard::CurrentSession;

pub struct Layout {
    pub nav: &'static str,
    /// Empty when nobody is logged in (login and error pages).
    pub csrf: String,
    /// What this build is (`crate::version::VERSION`), in the footer.
    pub version: &'static str,
}

impl Layout {
    pub fn page(nav: &'static str, session: &CurrentSession) -> Self {
        Self {
            nav,
            csrf: session.0.csrf_token.clone(),
            version: crate::version::VERSION,
        }
    }

    pub fn public() -> Self {
        Self {
            nav: "",
            csrf: String::new(),
            version: crate::version::VERSION,
        }
    }

    pub fn logged_in(&self) -> bool {
        !self.csrf.is_empty()
    }
}
