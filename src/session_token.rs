//! The ID token in a session cookie: the few claims revocation depends on.
//!
//! The oauth2 filter before this one has already checked the cookie's HMAC, so the signature
//! is not verified again here: that keeps the per-request cost to a base64 and a small JSON
//! decode. Anything that is not a readable ID token is refused, never waved through.

use crate::jws;
use serde::Deserialize;

/// Cookie values longer than this are not decoded (an ID token is a few KiB at most).
pub const MAX_SESSION_COOKIE_BYTES: usize = 16 * 1024;

/// The claims of the session's ID token that revocation depends on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(deserialize_with = "crate::numeric_date::deserialize")]
    pub iat: i64,
}

/// Reads the ID token in a session cookie. Needs `iss`, `iat` and `sub` or `sid`.
pub fn parse_session_token(value: &[u8]) -> Result<SessionClaims, &'static str> {
    if value.len() > MAX_SESSION_COOKIE_BYTES {
        return Err("session cookie is too large");
    }
    let value = std::str::from_utf8(value).map_err(|_| "session cookie is not a JWT")?;
    let claims: SessionClaims = jws::parse_payload(value)?;
    if claims.sub.as_deref().unwrap_or_default().is_empty()
        && claims.sid.as_deref().unwrap_or_default().is_empty()
    {
        return Err("session token has neither sub nor sid");
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};

    fn token(payload: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            Base64UrlSafeNoPadding::encode_to_string(payload).unwrap()
        )
    }

    #[test]
    fn reads_claims() {
        let c = parse_session_token(
            token(r#"{"iss":"i","sub":"u","sid":"s","iat":5,"aud":["x"]}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(c.iss, "i");
        assert_eq!(c.sid.as_deref(), Some("s"));
        assert_eq!(c.iat, 5);
        let c =
            parse_session_token(token(r#"{"iss":"i","sub":"u","iat":5.7}"#).as_bytes()).unwrap();
        assert_eq!(c.iat, 5);
    }

    #[test]
    fn refuses_unreadable_tokens() {
        for bad in [
            "garbage".to_string(),
            token(r#"{"sub":"u","iat":5}"#),
            token(r#"{"iss":"i","iat":5}"#),
            token(r#"{"iss":"i","sub":"u"}"#),
            token(r#"{"iss":"i","sub":"u","iat":"5"}"#),
            token(r#"{"iss":"i","sub":"","sid":"","iat":5}"#),
            token(r#"{"iss":"i","sub":"u","iat":1e300}"#),
            token("[]"),
        ] {
            assert!(parse_session_token(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse_session_token(b"\xff.\xff.\xff").is_err());
    }
}
