//! Self-checks of the test harness and the example keys; these need Envoy but not the filter.

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use jwt_simple::prelude::*;

/// The hand-made JWS verify with jwt-simple against the committed public JWKS.
#[test]
fn example_keys_sign_standard_jws() {
    let jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(jws::keys_dir().join("jwks.json")).unwrap())
            .unwrap();
    assert_eq!(
        jwks,
        keys().jwks(),
        "envoy/keys/jwks.json does not match the private keys"
    );
    let find = |kid: &str| {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap()
            .clone()
    };
    let b = |v: &serde_json::Value| jws::b64url_decode(v.as_str().unwrap()).unwrap();
    let claims = jws::logout_claims(Some("s1"), Some("u1"));
    let opts = || VerificationOptions {
        allowed_issuers: Some(HashSet::from_strings(&[ISSUER])),
        ..Default::default()
    };

    let rsa = find("example-rsa");
    let pk = RS256PublicKey::from_components(&b(&rsa["n"]), &b(&rsa["e"])).unwrap();
    let t = keys().sign(Alg::Rs256, &claims);
    pk.verify_token::<serde_json::Value>(&t, Some(opts()))
        .unwrap();

    let ec = find("example-ec");
    let mut point = vec![4u8];
    point.extend(b(&ec["x"]));
    point.extend(b(&ec["y"]));
    let pk = ES256PublicKey::from_bytes(&point).unwrap();
    let t = keys().sign(Alg::Es256, &claims);
    pk.verify_token::<serde_json::Value>(&t, Some(opts()))
        .unwrap();

    let ed = find("example-ed");
    let pk = Ed25519PublicKey::from_bytes(&b(&ed["x"])).unwrap();
    let t = keys().sign(Alg::EdDsa, &claims);
    pk.verify_token::<serde_json::Value>(&t, Some(opts()))
        .unwrap();

    // A tampered payload does not verify.
    let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
    parts[1] = jws::b64url(br#"{"iss":"https://idp.example.test","sub":"x"}"#);
    assert!(pk
        .verify_token::<serde_json::Value>(&parts.join("."), Some(opts()))
        .is_err());

    let (h, p) = jws::decode_parts(&t).unwrap();
    assert_eq!(h["kid"], "example-ed");
    assert_eq!(h["typ"], "logout+jwt");
    assert_eq!(p["sid"], "s1");
}

/// Envoy from the test template, with the wasm filter cut out: start-up, port discovery,
/// upstream, stats and memory readings work.
#[test]
fn envoy_harness_without_filter() {
    let envoy = Envoy::try_start_with_template(&base_config(), "test-minimal.yaml.tmpl", false)
        .unwrap_or_else(|e| panic!("{e:#?}"));
    for i in 0..10 {
        let r = envoy.send(&Request::get(&format!("/x?i={i}")));
        assert_eq!(r.status, 200, "{}", r.summary());
        assert_eq!(r.body_str(), UPSTREAM_BODY);
    }
    let r = envoy.send(&Request::post("/post").form(&[("a", "b c")]));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(envoy.upstream.hits(), 11);
    assert!(envoy.stat("http.ingress.downstream_rq_completed") >= 11);
    assert!(envoy.memory_allocated() > 0);
    assert!(envoy
        .prometheus()
        .contains("envoy_http_downstream_rq_completed"));
}
