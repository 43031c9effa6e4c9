//! A JWKS document as the IdP serves it (or inline in the configuration), with every
//! algorithm allowed, then a signature check with each parsed key; and the DER helpers that
//! turn JWK members and JWS signatures into the host's native forms.
#![no_main]

use envoy_backchannel_logout::algorithm::Algorithm;
use envoy_backchannel_logout::der::{ec_spki, ecdsa_signature, rsa_spki, Curve};
use envoy_backchannel_logout::jwks::{parse_jwks, MAX_JWKS_BYTES, MAX_KEYS};
use envoy_backchannel_logout::key_set::NativeVerifier;
use libfuzzer_sys::fuzz_target;

/// A header `{"alg":"..","kid":"k"}`-free token: `{}`.`{}`.`AAAA`, with a 64-byte signature
/// for the ECDSA length check too.
const TOKENS: [&str; 2] = [
    "e30.e30.AAAA",
    "e30.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
];

/// Says "valid" to everything, so `verify_natively`'s signature conversion is exercised.
struct Accepting;
impl NativeVerifier for Accepting {
    fn verify(&self, hash: &str, spki: &[u8], _signature: &[u8], _signed: &[u8]) -> Option<bool> {
        assert!(!hash.is_empty());
        assert!(!spki.is_empty());
        Some(true)
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_jwks(data, &Algorithm::ALL) {
        assert!(data.len() <= MAX_JWKS_BYTES);
        assert!(!parsed.keys.is_empty());
        // An RSA key can be bound to at most six algorithms (RS*, PS*).
        assert!(parsed.keys.len() <= MAX_KEYS * 6);
        for alg in Algorithm::ALL {
            for token in TOKENS {
                // Pure Rust: a junk signature never verifies.
                assert!(parsed.keys.verify(token, alg, None, None, None).is_err());
                let _ = parsed.keys.verify(token, alg, Some("k"), None, Some(&Accepting));
            }
        }
        let _ = parsed.keys.has_kid("k");
    }

    // DER helpers on raw bytes: first byte picks the split point.
    if let Some((&split, rest)) = data.split_first() {
        let at = usize::from(split).min(rest.len());
        let (a, b) = rest.split_at(at);
        let spki = rsa_spki(a, b);
        assert_eq!(spki.first(), Some(&0x30));
        for curve in [Curve::P256, Curve::P384] {
            let spki = ec_spki(curve, rest);
            assert_eq!(spki.first(), Some(&0x30));
            match ecdsa_signature(curve, rest) {
                Some(der) => {
                    assert_eq!(rest.len(), 2 * curve.field_bytes());
                    assert_eq!(der.first(), Some(&0x30));
                    // SEQUENCE length matches what follows (short or 0x81 long form).
                    let (len, header) = match der.get(1) {
                        Some(&0x81) => (der.get(2).map(|l| usize::from(*l)), 3),
                        Some(&l) => (Some(usize::from(l)), 2),
                        None => (None, 0),
                    };
                    assert_eq!(len, Some(der.len() - header));
                }
                None => assert_ne!(rest.len(), 2 * curve.field_bytes()),
            }
        }
    }
});
