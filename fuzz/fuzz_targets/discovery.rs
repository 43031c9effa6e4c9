//! What the IdP answers to the key fetches (the discovery document and the JWKS), the URLs
//! read from them, and the shared-data records another worker wrote (last good JWKS, last
//! fetch attempt).
#![no_main]

use envoy_backchannel_logout::algorithm::Algorithm;
use envoy_backchannel_logout::jwks_fetch::{
    check_jwks_answer, decode_attempt, jwks_uri_from_discovery, parse_http_url, KeysRecord,
};
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "https://idp.example.test";
const STATUSES: [Option<&str>; 3] = [Some("200"), Some("404"), None];

fuzz_target!(|data: &[u8]| {
    // First byte picks the status; the rest is the body.
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(selector) % STATUSES.len()];

    if let Ok(uri) = jwks_uri_from_discovery(status, body, ISSUER) {
        assert_eq!(status, Some("200"));
        assert!(parse_http_url(&uri).is_ok());
    }
    if let Ok(parsed) = check_jwks_answer(status, body, &Algorithm::ALL) {
        assert!(!parsed.keys.is_empty());
    }

    let text = String::from_utf8_lossy(body);
    if let Ok(target) = parse_http_url(&text) {
        assert!(!target.authority.is_empty());
        assert!(!target.authority.contains(['@', ' ']));
        assert!(target.path.starts_with('/'), "{target:?}");
    }

    match KeysRecord::decode(data) {
        Some(record) => {
            assert_eq!(record.encode(), data);
            assert_eq!(decode_attempt(Some(data)), Some(record.fetched_at));
        }
        None => {
            assert!(data.len() < 8);
            assert_eq!(decode_attempt(Some(data)), None);
        }
    }
});
