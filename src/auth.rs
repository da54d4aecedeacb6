//! The admin's credentials and browser sessions: argon2 password hashes,
//! API tokens and session cookies, all stored hashed. Imports `store`.

use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::store::{CredentialKind, Store, StoreError};

pub const MIN_PASSWORD_LEN: usize = 12;
/// A configured API token shorter than this could be guessed; generated
/// ones have 43 characters.
pub const MIN_API_TOKEN_LEN: usize = 32;
const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the admin password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long")]
    WeakPassword,
    #[error(
        "EXAPP_JANITOR_API_TOKEN must be at least {MIN_API_TOKEN_LEN} characters long \
         (generate one with `openssl rand -base64 32`)"
    )]
    ShortApiToken,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A validated admin password; its Debug never shows it.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let len = raw.chars().count();
        if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
            return Err(AuthError::WeakPassword);
        }
        Ok(Self(raw.to_owned()))
    }

    /// 24 random letters and digits (about 143 bits).
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        let mut bytes = [0u8; 24];
        OsRng.fill_bytes(&mut bytes);
        Self(
            bytes
                .iter()
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .collect(),
        )
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> Result<String, AuthError> {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(self.0.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Hash(e.to_string()))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// 32 random bytes, URL-safe base64: session cookies, CSRF and API tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// At start: the password from `EXAPP_JANITOR_ADMIN_PASSWORD` replaces the
/// stored one when it differs; without it, a first start generates one and
/// returns it so the caller can show it once.
pub async fn ensure_admin_password(
    store: &Store,
    from_env: Option<&str>,
) -> Result<Option<Password>, AuthError> {
    if let Some(raw) = from_env {
        let password = Password::parse(raw)?;
        if !check_password(store, password.expose()).await? {
            store
                .set_credential(CredentialKind::AdminPassword, &password.hash()?)
                .await?;
            store.delete_all_sessions().await?;
        }
        return Ok(None);
    }
    let generated = Password::generate();
    let stored = store
        .set_credential_if_absent(CredentialKind::AdminPassword, &generated.hash()?)
        .await?;
    Ok(stored.then_some(generated))
}

/// Sets a new admin password and logs every browser out.
pub async fn reset_admin_password(store: &Store, password: &Password) -> Result<(), AuthError> {
    store
        .set_credential(CredentialKind::AdminPassword, &password.hash()?)
        .await?;
    store.delete_all_sessions().await?;
    Ok(())
}

pub async fn check_password(store: &Store, attempt: &str) -> Result<bool, AuthError> {
    check_password_holding(store, attempt, ()).await
}

/// `check_password` that keeps `hold` (a semaphore permit) until the
/// verification has ended: a client that hangs up mid-request drops the
/// request, not the running computation nor its 12 MiB.
pub async fn check_password_holding<H: Send + 'static>(
    store: &Store,
    attempt: &str,
    hold: H,
) -> Result<bool, AuthError> {
    let Some((stored, _)) = store.credential(CredentialKind::AdminPassword).await? else {
        return Ok(false);
    };
    // The hash's own parameters apply (hashes made with other ones still
    // verify); tens of milliseconds of CPU, so off the request threads.
    let attempt = attempt.to_owned();
    tokio::task::spawn_blocking(move || {
        let _hold = hold;
        PasswordHash::new(&stored).is_ok_and(|parsed| {
            argon2()
                .verify_password(attempt.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Argon2id with OWASP's m = 12 MiB, t = 3, p = 1: as strong as the crate's
/// default (19 MiB, t = 2) by OWASP's table of equivalent settings, with less
/// memory taken by every login (the server's peak RSS, BENCHMARKS.md).
fn argon2() -> Argon2<'static> {
    let params = argon2::Params::new(12 * 1024, 3, 1, None).expect("valid Argon2 parameters");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Where the API token comes from.
#[derive(Clone)]
pub enum ApiTokenSource {
    /// `EXAPP_JANITOR_API_TOKEN`, kept only as its hash.
    Env { hash: String },
    /// Generated on the Settings page, stored hashed.
    Stored,
}

impl std::fmt::Debug for ApiTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ApiTokenSource::Env { .. } => "ApiTokenSource::Env",
            ApiTokenSource::Stored => "ApiTokenSource::Stored",
        })
    }
}

impl ApiTokenSource {
    /// An empty or absent variable means "stored"; a token too short to
    /// resist guessing is refused.
    pub fn from_env(value: Option<&str>) -> Result<Self, AuthError> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            Some(token) if token.chars().count() < MIN_API_TOKEN_LEN => {
                Err(AuthError::ShortApiToken)
            }
            Some(token) => Ok(ApiTokenSource::Env {
                hash: sha256_hex(token),
            }),
            None => Ok(ApiTokenSource::Stored),
        }
    }

    /// Whether `presented` is the API token: the variable's, or the stored
    /// one (`stored_hash`: its hash, None while none is set).
    pub fn accepts(&self, stored_hash: Option<&str>, presented: &str) -> bool {
        let expected = match self {
            ApiTokenSource::Env { hash } => hash.as_str(),
            ApiTokenSource::Stored => match stored_hash {
                Some(hash) => hash,
                None => return false,
            },
        };
        constant_time_eq(sha256_hex(presented).as_bytes(), expected.as_bytes())
    }
}

/// Replaces the stored API token with a new one and returns it (shown once).
pub async fn rotate_api_token(store: &Store) -> Result<String, AuthError> {
    let token = random_token();
    store
        .set_credential(CredentialKind::ApiToken, &sha256_hex(&token))
        .await?;
    Ok(token)
}

/// A logged-in browser session.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    pub csrf_token: String,
}

/// Starts a session; returns the cookie value and the session.
pub async fn start_session(store: &Store) -> Result<(String, Session), AuthError> {
    let cookie = random_token();
    let session = Session {
        token_hash: sha256_hex(&cookie),
        csrf_token: random_token(),
    };
    store
        .insert_session(&session.token_hash, &session.csrf_token)
        .await?;
    Ok((cookie, session))
}

/// How long a browser session lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Without a request.
    pub idle: Duration,
    /// In all, however busy: a stolen cookie stops working at the latest
    /// this long after the login.
    pub max_age: Duration,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The session behind a cookie, if it exists, was used within the idle
/// limit and is younger than the absolute one.
pub async fn find_session(
    store: &Store,
    cookie: &str,
    limits: SessionLimits,
) -> Result<Option<Session>, AuthError> {
    let token_hash = sha256_hex(cookie);
    let Some(stored) = store.session(&token_hash).await? else {
        return Ok(None);
    };
    let now = store.clock().now_unix();
    if now - stored.last_seen_at > secs(limits.idle)
        || now - stored.created_at > secs(limits.max_age)
    {
        store.delete_session(&token_hash).await?;
        return Ok(None);
    }
    // One write a minute at most, not one per request.
    if now - stored.last_seen_at >= 60 {
        store.touch_session(&token_hash).await?;
    }
    Ok(Some(Session {
        token_hash,
        csrf_token: stored.csrf_token,
    }))
}

/// Deletes every session past either limit: a session nobody comes back
/// to is otherwise never looked up again, so never removed.
pub async fn purge_sessions(store: &Store, limits: SessionLimits) -> Result<u64, AuthError> {
    let now = store.clock().now_unix();
    Ok(store
        .delete_expired_sessions(
            now.saturating_sub(secs(limits.idle)),
            now.saturating_sub(secs(limits.max_age)),
        )
        .await?)
}

pub async fn end_session(store: &Store, session: &Session) -> Result<(), AuthError> {
    Ok(store.delete_session(&session.token_hash).await?)
}

pub fn csrf_matches(session: &Session, presented: &str) -> bool {
    constant_time_eq(session.csrf_token.as_bytes(), presented.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_shorter_than_the_minimum_are_refused() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(MIN_PASSWORD_LEN)).is_ok());
        assert!(Password::parse(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn generated_passwords_are_long_enough_and_differ() {
        let (a, b) = (Password::generate(), Password::generate());
        assert!(Password::parse(a.expose()).is_ok());
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "Password(<redacted>)");
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let password = Password::parse("correct horse battery").unwrap();
        let parsed_hash = password.hash().unwrap();
        let parsed = PasswordHash::new(&parsed_hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"correct horse batterY", &parsed)
            .is_err());
    }

    #[test]
    fn a_configured_api_token_needs_32_characters() {
        let short = "x".repeat(MIN_API_TOKEN_LEN - 1);
        assert!(matches!(
            ApiTokenSource::from_env(Some(&short)),
            Err(AuthError::ShortApiToken)
        ));
        let long = "x".repeat(MIN_API_TOKEN_LEN);
        assert!(matches!(
            ApiTokenSource::from_env(Some(&long)),
            Ok(ApiTokenSource::Env { .. })
        ));
        assert!(matches!(
            ApiTokenSource::from_env(Some("  ")),
            Ok(ApiTokenSource::Stored)
        ));
    }

    #[test]
    fn tokens_compare_in_full() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
