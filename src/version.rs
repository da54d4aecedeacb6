//! What this build is: Cargo's version and, when it was built from a git
//! checkout, the commit (see `build.rs`).

/// `0.1.0 (git 1a2b3c4d5e6f)` from a checkout, `0.1.0` from a tarball:
/// what `--version`, the health check and the pages' footer say.
pub const VERSION: &str = env!("EXAPP_JANITOR_VERSION");

/// Cargo's version alone (`0.1.0`).
pub const NUMBER: &str = env!("CARGO_PKG_VERSION");

/// The git commit (12 hex digits) it was built from, if known.
pub const COMMIT: Option<&str> = option_env!("EXAPP_JANITOR_COMMIT");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_starts_with_cargos_and_names_the_commit_when_known() {
        assert!(VERSION.starts_with(NUMBER), "{VERSION}");
        match COMMIT {
            Some(commit) => {
                assert_eq!(VERSION, format!("{NUMBER} (git {commit})"));
                assert!(commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit()));
            }
            None => assert_eq!(VERSION, NUMBER),
        }
    }
}
