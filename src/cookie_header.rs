//! Finding one cookie in a request's `Cookie` header lines (RFC 6265, 5.4), as bytes.
//!
//! Bytes, because the header comes from the client: one byte that is not UTF-8 in an unrelated
//! cookie must neither kill the VM nor hide the session cookie. Every line, because HTTP/1.1
//! clients may send several `Cookie` lines and Envoy keeps them apart: a session cookie in the
//! second line is as much a session cookie as one in the first.

use crate::byte_scan::split_at_byte;

/// What the `Cookie` header lines say about one cookie.
#[derive(Debug, PartialEq, Eq)]
pub enum CookieLookup<'a> {
    Absent,
    One(&'a [u8]),
    /// The cookie appears more than once (in one line or across lines): ambiguous, so refused
    /// (a cookie injected from a sibling domain must not shadow the real one).
    Duplicate,
}

/// Finds cookie `name` across every `Cookie` header line. A value in double quotes is
/// unquoted.
pub fn find_cookie<'a>(lines: &[&'a [u8]], name: &str) -> CookieLookup<'a> {
    let mut found = CookieLookup::Absent;
    for line in lines {
        let mut rest = Some(*line);
        while let Some(bytes) = rest {
            let (pair, after) = split_at_byte(bytes, b';');
            rest = after;
            let (key, Some(value)) = split_at_byte(pair, b'=') else {
                continue;
            };
            if key.trim_ascii() != name.as_bytes() {
                continue;
            }
            if found != CookieLookup::Absent {
                return CookieLookup::Duplicate;
            }
            let value = value.trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            found = CookieLookup::One(value);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str) -> CookieLookup<'_> {
        find_cookie(&[header.as_bytes()], "IdToken")
    }

    #[test]
    fn finds_cookies() {
        assert_eq!(
            one("a=1; IdToken=abc; OauthHMAC=x"),
            CookieLookup::One(b"abc")
        );
        assert_eq!(one("IdToken=\"q\""), CookieLookup::One(b"q"));
        assert_eq!(one("XIdToken=1"), CookieLookup::Absent);
        assert_eq!(one(""), CookieLookup::Absent);
        assert_eq!(one("IdToken=a;IdToken=b"), CookieLookup::Duplicate);
        assert_eq!(one("junk; IdToken=v=w"), CookieLookup::One(b"v=w"));
        assert_eq!(one("IdToken="), CookieLookup::One(b""));
    }

    #[test]
    fn reads_every_line_and_any_byte() {
        let lines: [&[u8]; 2] = [b"x=\xff; y=2", b"IdToken=t"];
        assert_eq!(find_cookie(&lines, "IdToken"), CookieLookup::One(b"t"));
        let lines: [&[u8]; 2] = [b"IdToken=a", b"IdToken=b"];
        assert_eq!(find_cookie(&lines, "IdToken"), CookieLookup::Duplicate);
        let lines: [&[u8]; 1] = [b"\xff\xfe=\x00; IdToken=\xff"];
        assert_eq!(find_cookie(&lines, "IdToken"), CookieLookup::One(b"\xff"));
        assert_eq!(find_cookie(&[], "IdToken"), CookieLookup::Absent);
    }
}
