//! Compact JWS parsing (header and payload JSON) and the base64url decoder under it.
#![no_main]

use envoy_backchannel_logout::{base64url, jws};
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(parsed) = jws::parse::<Map<String, Value>>(&text) {
        // The signing input is the first two parts, a prefix of the token.
        assert!(text.starts_with(parsed.signing_input));
        assert_eq!(parsed.signing_input.matches('.').count(), 1);
    }
    let _ = jws::parse_payload::<Map<String, Value>>(&text);
    let _ = jws::parse_payload::<Value>(&text);

    // Differential check against the decoder jwt-simple uses, plus the round trip.
    let ours = base64url::decode(&text);
    let reference = Base64UrlSafeNoPadding::decode_to_vec(text.as_bytes(), None).ok();
    assert_eq!(ours, reference, "{text:?}");
    if let Some(bytes) = ours {
        assert_eq!(
            Base64UrlSafeNoPadding::encode_to_string(&bytes).ok().as_deref(),
            Some(&*text)
        );
    }
});
