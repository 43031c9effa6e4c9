//! A request as the host hands it over: the serialized header map (any bytes, any count,
//! truncated or lying sizes), then everything the filter reads from it: the path and the
//! redirect target, the `Cookie` lines and the session token, `Authorization: Bearer`, the
//! API-or-navigation decision, and the back-channel endpoint's header checks.
#![no_main]

use envoy_backchannel_logout::bearer_token::bearer_jwt;
use envoy_backchannel_logout::cookie_header::{find_cookie, CookieLookup};
use envoy_backchannel_logout::endpoint::on_request_headers;
use envoy_backchannel_logout::header_map::{all_values, first_value, parse_header_map};
use envoy_backchannel_logout::redirect::redirect_target;
use envoy_backchannel_logout::session_token::parse_session_token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fields = parse_header_map(data);
    for field in &fields {
        assert!(field.name.len() + field.value.len() <= data.len());
    }
    let path = first_value(&fields, ":path").unwrap_or(b"/");
    let location = redirect_target(path);
    // Never a network-path reference, never a byte a browser would strip.
    assert!(location.starts_with('/'));
    assert!(!location.starts_with("//") && !location.contains('\\'));
    assert!(location.bytes().all(|b| (0x21..=0x7e).contains(&b)));

    let cookies: Vec<&[u8]> = all_values(&fields, "cookie").collect();
    if let CookieLookup::One(token) = find_cookie(&cookies, "IdToken") {
        let _ = parse_session_token(token);
    }
    for authorization in all_values(&fields, "authorization") {
        if let Some(token) = bearer_jwt(authorization) {
            assert_eq!(token.iter().filter(|b| **b == b'.').count(), 2);
            let _ = parse_session_token(token);
        }
    }
    let _ = on_request_headers(
        first_value(&fields, ":method").unwrap_or_default(),
        first_value(&fields, "content-type"),
        first_value(&fields, "content-length"),
        data.first().is_some_and(|b| b & 1 == 1),
        65536,
    );
});
