//! The logout token from the back-channel POST, validated against one inline-JWKS issuer
//! (the example keys, RS256/ES256/EdDSA) at a time the input chooses.
//!
//! Input: 8 bytes little-endian `now`, 1 mode byte, then the rest.
//! - mode even: the rest is the token (lossy UTF-8), as the IdP would send it.
//! - mode odd: the rest is `header JSON 0xFF payload JSON`; the target base64url-encodes both
//!   and appends a junk 64-byte signature, so the fuzzer works on claims, not base64.
//!
//! Each token is validated twice: with the real keys (pure-Rust signature check), and with a
//! host "native verifier" that accepts every signature, so RS256/ES256 tokens get past step 2
//! and reach the claim checks (aud, iat, exp, nbf, sub/sid, events, nonce, jti).
#![no_main]

use envoy_backchannel_logout::config::{parse_config, FilterConfig};
use envoy_backchannel_logout::key_set::{KeySet, NativeVerifier};
use envoy_backchannel_logout::logout_token::{
    validate, UnverifiedToken, IssuerPolicy, KeySource, MAX_IDENTIFIER_BYTES,
};
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use libfuzzer_sys::fuzz_target;

const JWKS: &str = include_str!("../../envoy/keys/jwks.json");

struct Fixture {
    config: FilterConfig,
    policies: Vec<IssuerPolicy>,
}

fn fixture() -> Fixture {
    let config = format!(
        r#"{{"issuers":[{{"issuer":"https://idp.example.test","client_ids":["example-app"],
        "algorithms":["RS256","ES256","EdDSA"],"jwks":{JWKS}}}]}}"#
    );
    let config = match parse_config(config.as_bytes()) {
        Ok(config) => config,
        Err(e) => panic!("fixture config: {e}"),
    };
    let policies = config.policies();
    Fixture { config, policies }
}

struct Keys<'a> {
    config: &'a FilterConfig,
    native: Option<&'a dyn NativeVerifier>,
}

impl KeySource for Keys<'_> {
    fn keys(&self, issuer_index: usize) -> Option<&KeySet> {
        self.config.issuers.get(issuer_index)?.inline_keys.as_ref()
    }
    fn native_verifier(&self) -> Option<&dyn NativeVerifier> {
        self.native
    }
}

struct AcceptAll;
impl NativeVerifier for AcceptAll {
    fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        Some(true)
    }
}

thread_local! {
    static FIXTURE: Fixture = fixture();
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap_or_default()
}

fn check(f: &Fixture, token: &str, now: i64) {
    let claimed = UnverifiedToken::parse(token)
        .ok()
        .and_then(|t| t.claimed_issuer().map(str::to_owned));
    for native in [None, Some(&AcceptAll as &dyn NativeVerifier)] {
        let keys = Keys {
            config: &f.config,
            native,
        };
        let Ok(verified) = validate(token, &f.policies, &keys, now) else {
            continue;
        };
        // Only a configured issuer, named by the token itself, can come out.
        let policy = &f.policies[verified.issuer_index()];
        assert_eq!(verified.issuer(), policy.issuer);
        assert_eq!(claimed.as_deref(), Some(verified.issuer()));
        // Identifiers are bounded and non-empty when present; a jti is always there.
        for id in [verified.sub(), verified.sid(), Some(verified.jti())]
            .into_iter()
            .flatten()
        {
            assert!(!id.is_empty() && id.len() <= MAX_IDENTIFIER_BYTES);
        }
        assert!(verified.sub().is_some() || verified.sid().is_some());
        assert!(verified.revokes_user_sessions() || verified.revokes_session());
        // iat within the skew of now.
        assert!(verified.iat() <= now.saturating_add(policy.clock_skew_seconds));
        // With or without exp, the jti is kept no longer than iat + max age + skew: the
        // replay cache stays bounded.
        assert!(
            verified.valid_until()
                <= verified
                    .iat()
                    .saturating_add(policy.max_token_age_seconds)
                    .saturating_add(policy.clock_skew_seconds)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((now, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let now = i64::from_le_bytes(*now);
    let Some((&mode, rest)) = rest.split_first() else {
        return;
    };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (header, payload) = match rest.iter().position(|b| *b == 0xff) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &b"{}"[..]),
        };
        format!("{}.{}.{}", b64(header), b64(payload), b64(&[0x5a; 64]))
    };
    FIXTURE.with(|f| check(f, &token, now));
});
