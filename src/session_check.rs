//! The session filter's decision for one request: pass, or refuse a revoked or unreadable
//! session. Constant work per request: one scan of the `Cookie` lines, one small JSON decode
//! and at most two shared-data reads of one small bucket each; no signature verification
//! (the oauth2 filter checked the HMAC).

use crate::config::SessionConfig;
use crate::cookie_header::{find_cookie, CookieLookup};
use crate::responses::SessionRefusal;
use crate::revocations::RevocationStore;
use crate::session_token::parse_session_token;
use crate::shared_store::SharedStore;

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionVerdict {
    /// No session cookie (authentication is the oauth2 filter's job), or a live session.
    Pass,
    Refuse(SessionRefusal),
}

/// Decides from every `Cookie` header line of the request, as bytes.
pub fn check_session(
    cookie_lines: &[&[u8]],
    cfg: &SessionConfig,
    rules: &RevocationStore,
    store: &dyn SharedStore,
    now: i64,
) -> Result<SessionVerdict, String> {
    let value = match find_cookie(cookie_lines, &cfg.cookie_name) {
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
