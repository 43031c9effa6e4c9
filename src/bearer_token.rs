//! The JWT access token in `Authorization: Bearer` (RFC 6750, 2.1), for APIs and mobile apps
//! that call through the same Envoy without cookies.
//!
//! Only what revocation needs is read (`iss`, `sub`/`sid`, `iat`, as for the session cookie);
//! the signature is NOT checked: that is `jwt_authn`'s or the app's job, before or after this
//! filter. A token this filter cannot read as a JWT (an opaque token) passes untouched.

/// The token of a `Bearer` credential that looks like a compact JWS (three dot-separated
/// parts), or `None` (another scheme, an opaque token, nothing).
pub fn bearer_jwt(authorization: &[u8]) -> Option<&[u8]> {
    let value = authorization.trim_ascii();
    let scheme_end = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    let dots = token.iter().filter(|b| **b == b'.').count();
    (dots == 2 && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_jwt_bearer_tokens_only() {
        assert_eq!(bearer_jwt(b"Bearer a.b.c"), Some(&b"a.b.c"[..]));
        assert_eq!(bearer_jwt(b"bearer   a.b.c  "), Some(&b"a.b.c"[..]));
        assert_eq!(bearer_jwt(b"Bearer opaque-token"), None);
        assert_eq!(bearer_jwt(b"Bearer a.b.c.d.e"), None, "JWE or junk");
        assert_eq!(bearer_jwt(b"Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_jwt(b"Bearer"), None);
        assert_eq!(bearer_jwt(b""), None);
        assert_eq!(bearer_jwt(b"\xff\xfe a.b.c"), None);
    }
}
