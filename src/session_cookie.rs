//! The session cookie: finding it in the `Cookie` header and reading the ID token in it.
//!
//! The oauth2 filter before this one has already checked the cookie's HMAC, so the signature
//! is not verified again here: that keeps the per-request cost to a base64 and a small JSON
//! decode. Anything that is not a readable ID token is refused, never waved through.

use crate::jws;
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// Cookie values longer than this are not decoded (an ID token is a few KiB at most).
pub const MAX_SESSION_COOKIE_BYTES: usize = 16 * 1024;

/// What the `Cookie` header says about the session cookie.
#[derive(Debug, PartialEq, Eq)]
pub enum CookieLookup<'a> {
    Absent,
    One(&'a str),
    /// The cookie appears more than once: ambiguous, so refused (a cookie injected from a
    /// sibling domain must not shadow the real one).
    Duplicate,
}

/// Finds cookie `name` in a `Cookie` header (`a=1; b=2`, RFC 6265, 5.4). A value in double
/// quotes is unquoted.
pub fn find_cookie<'a>(header: &'a str, name: &str) -> CookieLookup<'a> {
    let mut found = CookieLookup::Absent;
    for pair in header.split(';') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        if key.trim() != name {
            continue;
        }
        if found != CookieLookup::Absent {
            return CookieLookup::Duplicate;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        found = CookieLookup::One(value);
    }
    found
}

/// The claims of the session's ID token that revocation depends on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(deserialize_with = "numeric_date")]
    pub iat: i64,
}

/// Reads the ID token in a session cookie. Needs `iss`, `iat` and `sub` or `sid`.
pub fn parse_session_token(value: &str) -> Result<SessionClaims, &'static str> {
    if value.len() > MAX_SESSION_COOKIE_BYTES {
        return Err("session cookie is too large");
    }
    let claims: SessionClaims = jws::parse_payload(value)?;
    if claims.sub.as_deref().unwrap_or_default().is_empty()
        && claims.sid.as_deref().unwrap_or_default().is_empty()
    {
        return Err("session token has neither sub nor sid");
    }
    Ok(claims)
}

fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(deserializer)?;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        })
        .ok_or_else(|| de::Error::custom("iat is not a NumericDate"))
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
    fn finds_cookies() {
        let h = "a=1; IdToken=abc; OauthHMAC=x";
        assert_eq!(find_cookie(h, "IdToken"), CookieLookup::One("abc"));
        assert_eq!(
            find_cookie("IdToken=\"q\"", "IdToken"),
            CookieLookup::One("q")
        );
        assert_eq!(find_cookie("XIdToken=1", "IdToken"), CookieLookup::Absent);
        assert_eq!(find_cookie("", "IdToken"), CookieLookup::Absent);
        assert_eq!(
            find_cookie("IdToken=a;IdToken=b", "IdToken"),
            CookieLookup::Duplicate
        );
        assert_eq!(
            find_cookie("junk; IdToken=v=w", "IdToken"),
            CookieLookup::One("v=w")
        );
    }

    #[test]
    fn reads_claims() {
        let c = parse_session_token(&token(
            r#"{"iss":"i","sub":"u","sid":"s","iat":5,"aud":["x"]}"#,
        ))
        .unwrap();
        assert_eq!(c.iss, "i");
        assert_eq!(c.sid.as_deref(), Some("s"));
        assert_eq!(c.iat, 5);
        let c = parse_session_token(&token(r#"{"iss":"i","sub":"u","iat":5.7}"#)).unwrap();
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
            token("[]"),
        ] {
            assert!(parse_session_token(&bad).is_err(), "{bad}");
        }
    }
}
