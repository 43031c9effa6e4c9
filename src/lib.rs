//! OpenID Connect Back-Channel Logout for Envoy, as one proxy-wasm HTTP filter.
//!
//! The filter has two jobs. On the back-channel path it receives the identity provider's
//! logout token, verifies it as Back-Channel Logout 1.0 section 2.6 demands and records the
//! revocation in Envoy shared data. On every other request it reads the session cookie and
//! refuses a revoked session, on every worker at once.
//!
//! Everything below is plain Rust without host calls (a sans-I/O core, unit-tested natively);
//! `shell` is the thin proxy-wasm layer that moves bytes between Envoy and the core.

pub mod algorithm;
pub mod base64url;
pub mod bearer_token;
pub mod bucket;
pub mod byte_scan;
pub mod config;
pub mod cookie_header;
pub mod der;
pub mod endpoint;
pub mod entry_id;
pub mod fleet;
pub mod form;
pub mod header_map;
pub mod jwks;
pub mod jwks_fetch;
pub mod jws;
pub mod key_set;
pub mod logout_token;
pub mod numeric_date;
pub mod redirect;
pub mod rejection;
pub mod responses;
pub mod revocations;
pub mod session_cache;
pub mod session_check;
pub mod session_token;
pub mod shared_store;

#[cfg(target_arch = "wasm32")]
mod shell;
