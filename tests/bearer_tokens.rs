//! `session.bearer_tokens`: a request whose `Authorization: Bearer` JWT belongs to a revoked
//! session gets 401 `invalid_token` (RFC 6750); opaque tokens and live sessions pass; the
//! option is off by default.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::json;

/// An access token shaped like Keycloak's or node-oidc-provider's JWT access tokens.
fn access_token(session: &Session, iat: i64) -> String {
    let claims = json!({
        "iss": session.iss,
        "sub": session.sub,
        "sid": session.sid,
        "aud": "https://api.example.test",
        "client_id": CLIENT_ID,
        "scope": "openid api",
        "iat": iat,
        "exp": iat + 600,
        "jti": jws::unique_id("at-"),
    });
    keys().sign_json(
        Alg::Rs256,
        &jws::header(Alg::Rs256, Some("at+jwt")),
        &claims,
    )
}

fn api_get(envoy: &Envoy, authorization: &str) -> Response {
    envoy.send(
        &Request::get("/api/orders")
            .header("authorization", authorization)
            .header("accept", "application/json"),
    )
}

#[test]
fn revoked_sessions_bearer_tokens_are_refused() {
    let mut config = base_config();
    config["session"] = json!({ "bearer_tokens": true });
    let envoy = Envoy::start(&config);
    let mut c = Checks::new();

    let alice = Session::new("bearer-alice");
    let bob = Session::new("bearer-bob");
    let alice_at = access_token(&alice, alice.iat);
    let bob_at = access_token(&bob, bob.iat);
    for (who, token) in [("alice", &alice_at), ("bob", &bob_at)] {
        let r = api_get(&envoy, &format!("Bearer {token}"));
        c.check(r.status == 200, || {
            format!("{who} before logout: {}", r.summary())
        });
    }

    let r = envoy.logout(&alice.logout_token());
    check_endpoint_answer(&mut c, "alice's logout", &r, 200, None);

    for i in 0..10 {
        let r = api_get(&envoy, &format!("Bearer {alice_at}"));
        c.check(r.status == 401, || {
            format!("alice after logout #{i}: {}", r.summary())
        });
        c.check(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with(r#"Bearer error="invalid_token""#)),
            || format!("WWW-Authenticate: {}", r.summary()),
        );
        c.check(
            r.json().is_some_and(|v| v["error"] == "invalid_token"),
            || format!("JSON body: {}", r.summary()),
        );
        let r = api_get(&envoy, &format!("Bearer {bob_at}"));
        c.check(r.status == 200, || {
            format!("bob after alice's logout: {}", r.summary())
        });
    }
    // Any case for the scheme; opaque tokens and other schemes pass untouched.
    let r = api_get(&envoy, &format!("bearer {alice_at}"));
    c.check(r.status == 401, || {
        format!("lower-case scheme: {}", r.summary())
    });
    for other in [
        "Bearer 2YotnFZFEjr1zjCsicMWpAA",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer not.a.jwt",
    ] {
        let r = api_get(&envoy, other);
        c.check(r.status == 200, || format!("{other:?}: {}", r.summary()));
    }
    // A user-wide logout (sub only) refuses tokens issued up to it, not later ones.
    let carol = Session::new("bearer-carol");
    let before = access_token(&carol, carol.iat);
    let sub_only = keys().sign(Alg::Rs256, &{
        let mut claims = jws::logout_claims(None, Some(&carol.sub));
        claims["iss"] = json!(carol.iss);
        claims
    });
    let r = envoy.logout(&sub_only);
    check_endpoint_answer(&mut c, "carol's user-wide logout", &r, 200, None);
    let r = api_get(&envoy, &format!("Bearer {before}"));
    c.check(r.status == 401, || {
        format!("carol's older token: {}", r.summary())
    });
    let later = access_token(&carol, jws::now() + 2);
    let r = api_get(&envoy, &format!("Bearer {later}"));
    c.check(r.status == 200, || {
        format!("carol's later token: {}", r.summary())
    });
    let refused = envoy.bcl_stat("bcl.bearer.revoked");
    c.check(refused >= 11, || format!("bcl.bearer.revoked = {refused}"));
    c.finish("bearer tokens");
}

#[test]
fn bearer_tokens_are_not_checked_by_default() {
    let envoy = Envoy::start(&base_config());
    let mut c = Checks::new();
    let dave = Session::new("bearer-dave");
    let token = access_token(&dave, dave.iat);
    let r = envoy.logout(&dave.logout_token());
    check_endpoint_answer(&mut c, "dave's logout", &r, 200, None);
    let r = api_get(&envoy, &format!("Bearer {token}"));
    c.check(r.status == 200, || {
        format!("off by default: {}", r.summary())
    });
    c.finish("bearer tokens off");
}
