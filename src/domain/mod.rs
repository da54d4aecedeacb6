//! Plain, validated values shared by every layer. Each type can only hold a
//! valid value: it is parsed once, at the boundary (CLI flag, form, JSON body,
//! database row), and trusted everywhere after.

mod daemon_name;
mod endpoint;
mod field_errors;
mod harp;
mod ids;
mod new_daemon;
mod nextcloud;
mod one_line;
mod protected;
mod public_url;
mod settings;
mod trusted_proxies;

pub use daemon_name::DaemonName;
pub use endpoint::{Endpoint, HarpAddress, HostPort, TlsFiles};
pub use field_errors::FieldErrors;
pub use harp::{parse_exapps, HarpAccess, HarpKey};
pub use ids::{is_placeholder_reference, short_id, AppId, ImageId, EXAPP_CONTAINER_PREFIX};
pub use new_daemon::{NewDaemon, NewDaemonInput};
pub use nextcloud::{AppPassword, NextcloudLogin, NextcloudUrl, NextcloudUser};
pub use one_line::{error_chain, OneLine, ERROR_MAX_CHARS};
pub use protected::ProtectedPattern;
pub use public_url::{is_address_or_localhost, PublicUrl, PublicUrlError};
pub use settings::{Settings, SettingsChange, MAX_HOURS, SETTING_KEYS};
pub use trusted_proxies::{
    canonical as canonical_ip, TrustedProxies, TrustedProxy, TrustedProxyError,
};
