//! The ID token in the session cookie (the value after `IdToken=`), read without a signature
//! check on every proxied request, as bytes.
#![no_main]

use envoy_backchannel_logout::session_token::{parse_session_token, MAX_SESSION_COOKIE_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(claims) = parse_session_token(data) {
        assert!(data.len() <= MAX_SESSION_COOKIE_BYTES);
        // Documented: needs sub or sid, non-empty.
        assert!(
            !claims.sub.as_deref().unwrap_or_default().is_empty()
                || !claims.sid.as_deref().unwrap_or_default().is_empty()
        );
    }
});
