//! The back-channel POST body (`application/x-www-form-urlencoded`), as the IdP sends it,
//! and the request's `Content-Type` value.
#![no_main]

use envoy_backchannel_logout::form::{extract_logout_token, is_form_urlencoded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = is_form_urlencoded(data);
    if let Ok(token) = extract_logout_token(data) {
        // Documented: the single, non-empty logout_token. Percent-decoding never grows a value.
        assert!(!token.is_empty());
        assert!(token.len() <= data.len());
    }
});
