//! The request's `Cookie` header lines, as bytes: finding the session cookie across lines,
//! then reading the ID token in it.
//!
//! Input: the lines, separated by `\n` (each line is one `Cookie:` header as Envoy keeps it).
#![no_main]

use envoy_backchannel_logout::cookie_header::{find_cookie, CookieLookup};
use envoy_backchannel_logout::session_token::parse_session_token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    if let CookieLookup::One(value) = find_cookie(&lines, "IdToken") {
        assert!(value.len() <= data.len());
        if let Ok(claims) = parse_session_token(value) {
            assert!(claims.sub.is_some() || claims.sid.is_some());
        }
    }
});
