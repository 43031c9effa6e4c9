//! The session filter's decision for one request: pass, or refuse a revoked or unreadable
//! session. Per request: one scan of the `Cookie` lines and one small shared-data read (the
//! store's generation); only when the store changed since this worker last saw the token, one
//! small JSON decode and at most two reads of one small bucket each. No signature
//! verification (the oauth2 filter checked the cookie's HMAC).

use crate::bearer_token::bearer_jwt;
use crate::config::SessionConfig;
use crate::cookie_header::{find_cookie, CookieLookup};
use crate::responses::SessionRefusal;
use crate::revocations::RevocationStore;
use crate::session_cache::SessionCache;
use crate::session_token::parse_session_token;
use crate::shared_store::SharedStore;

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionVerdict {
    /// No session cookie (authentication is the oauth2 filter's job), or a live session.
    Pass,
    Refuse(SessionRefusal),
}

/// What the session check reads from a request, as bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionCredentials<'a> {
    /// Every `Cookie` header line.
    pub cookie_lines: &'a [&'a [u8]],
    /// Every `Authorization` header line (read only with `session.bearer_tokens`).
    pub authorization_lines: &'a [&'a [u8]],
}

/// The store and this worker's memory of live tokens.
pub struct SessionLookup<'a> {
    pub rules: &'a RevocationStore,
    pub store: &'a dyn SharedStore,
    pub cache: &'a mut SessionCache,
    /// Unix seconds; asked only when the store is looked at (a remembered live token needs no
    /// clock: one host call fewer per request).
    pub clock: &'a dyn Fn() -> i64,
}

/// Decides from the request's credentials.
pub fn check_session(
    credentials: SessionCredentials<'_>,
    cfg: &SessionConfig,
    lookup: &mut SessionLookup<'_>,
) -> Result<SessionVerdict, String> {
    match find_cookie(credentials.cookie_lines, &cfg.cookie_name) {
        CookieLookup::Absent => {}
        CookieLookup::Duplicate => return Ok(SessionVerdict::Refuse(SessionRefusal::Malformed)),
        CookieLookup::One(token) => match token_is_live(token, lookup)? {
            Some(true) => {}
            Some(false) => return Ok(SessionVerdict::Refuse(SessionRefusal::Revoked)),
            None => return Ok(SessionVerdict::Refuse(SessionRefusal::Malformed)),
        },
    }
    if cfg.bearer_tokens {
        for line in credentials.authorization_lines {
            let Some(token) = bearer_jwt(line) else {
                continue;
            };
            // An unreadable bearer token is not this filter's to judge: it passes.
            if token_is_live(token, lookup)? == Some(false) {
                return Ok(SessionVerdict::Refuse(SessionRefusal::BearerRevoked));
            }
        }
    }
    Ok(SessionVerdict::Pass)
}

/// `Some(true)` live, `Some(false)` revoked, `None` unreadable.
fn token_is_live(token: &[u8], lookup: &mut SessionLookup<'_>) -> Result<Option<bool>, String> {
    // Read before the lookup: a revocation written after this read bumps the generation, so
    // what is remembered below is checked again on the next request.
    let generation = lookup.rules.generation(lookup.store)?;
    if lookup.cache.is_known_live(token, generation) {
        return Ok(Some(true));
    }
    let Ok(claims) = parse_session_token(token) else {
        return Ok(None);
    };
    if lookup
        .rules
        .is_revoked(lookup.store, &claims, (lookup.clock)())?
    {
        return Ok(Some(false));
    }
    lookup.cache.remember_live(token, generation);
    Ok(Some(true))
}
