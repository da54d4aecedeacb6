//! What every page's frame needs: the active navigation entry and, for a
//! logged-in admin, the CSRF token that forms and htmx requests carry.

use super::guard::CurrentSession;

pub struct Layout {
    pub nav: &'static str,
    /// Empty when nobody is logged in (login and error pages).
    pub csrf: String,
}

impl Layout {
    pub fn page(nav: &'static str, session: &CurrentSession) -> Self {
        Self {
            nav,
            csrf: session.0.csrf_token.clone(),
        }
    }

    pub fn public() -> Self {
        Self {
            nav: "",
            csrf: String::new(),
        }
    }

    pub fn logged_in(&self) -> bool {
        !self.csrf.is_empty()
    }
}
