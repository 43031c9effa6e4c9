//! The session filter's decision for one request: pass, or refuse a revoked or unreadable
//! session. Constant work per request: one cookie scan, one small JSON decode and at most
//! two shared-data reads; no signature verification (the oauth2 filter checked the HMAC).

use crate::config::SessionConfig;
use crate::responses::SessionRefusal;
use crate::revocations::RevocationStore;
use crate::session_cookie::{find_cookie, parse_session_token, CookieLookup};
use crate::shared_store::SharedStore;

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionVerdict {
    /// No session cookie (authentication is the oauth2 filter's job), or a live session.
    Pass,
    Refuse(SessionRefusal),
}

/// Decides from the request's `Cookie` header.
pub fn check_session(
    cookie_header: Option<&str>,
    cfg: &SessionConfig,
    rules: &RevocationStore,
    store: &dyn SharedStore,
    now: i64,
) -> Result<SessionVerdict, String> {
    let Some(header) = cookie_header else {
        return Ok(SessionVerdict::Pass);
    };
    let value = match find_cookie(header, &cfg.cookie_name) {
        CookieLookup::Absent => return Ok(SessionVerdict::Pass),
        CookieLookup::Duplicate => return Ok(SessionVerdict::Refuse(SessionRefusal::Malformed)),
        CookieLookup::One(value) => value,
    };
    let Ok(claims) = parse_session_token(value) else {
        return Ok(SessionVerdict::Refuse(SessionRefusal::Malformed));
    };
    if rules.is_revoked(store, &claims, now)? {
        Ok(SessionVerdict::Refuse(SessionRefusal::Revoked))
    } else {
        Ok(SessionVerdict::Pass)
    }
}
