//! The request's `Cookie` header lines, as bytes: finding the session cookie across lines,
//! then reading the ID token in it. Differential: the word-at-a-time scan
//! (`byte_scan`) must find exactly what a plain byte-by-byte reading of RFC 6265 finds.
//!
//! Input: the lines, separated by `\n` (each line is one `Cookie:` header as Envoy keeps it).
#![no_main]

use envoy_backchannel_logout::byte_scan::{bytes_equal, find_byte};
use envoy_backchannel_logout::cookie_header::{find_cookie, CookieLookup};
use envoy_backchannel_logout::session_token::parse_session_token;
use libfuzzer_sys::fuzz_target;

/// The same rules, one byte at a time.
fn reference<'a>(lines: &[&'a [u8]], name: &[u8]) -> CookieLookup<'a> {
    let mut found = CookieLookup::Absent;
    for line in lines {
        for pair in line.split(|b| *b == b';') {
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (key, value) = pair.split_at(eq);
            if key.trim_ascii() != name {
                continue;
            }
            if found != CookieLookup::Absent {
                return CookieLookup::Duplicate;
            }
            let value = value[1..].trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            found = CookieLookup::One(value);
        }
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let lookup = find_cookie(&lines, "IdToken");
    assert_eq!(lookup, reference(&lines, b"IdToken"));
    if let Some((&needle, rest)) = data.split_first() {
        assert_eq!(find_byte(rest, needle), rest.iter().position(|b| *b == needle));
        let (a, b) = rest.split_at(rest.len() / 2);
        assert_eq!(bytes_equal(a, b), a == b);
        assert!(bytes_equal(a, a));
    }
    if let CookieLookup::One(value) = lookup {
        assert!(value.len() <= data.len());
        if let Ok(claims) = parse_session_token(value) {
            assert!(claims.sub.is_some() || claims.sid.is_some());
        }
    }
});
