//! Reloading the filter's configuration while Envoy runs (a new listener version from a
//! file-watched LDS resource): every live revocation stays enforced, whatever store settings
//! the new configuration has. Item 6 of the hardening contract (the others are in
//! `tests/hardening.rs`).

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// An issuer only the middle configuration has: its logouts tell which configuration serves.
const EXTRA_ISSUER: &str = "https://extra.idp.example.test";

/// A logout of a new session of [`EXTRA_ISSUER`].
fn extra_issuer_logout(envoy: &Envoy) -> Response {
    let s = Session::of(EXTRA_ISSUER, "probe");
    envoy.logout(&s.logout_token())
}

fn error_description(r: &Response) -> String {
    r.json()
        .and_then(|v| v["error_description"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// What must hold after every reload.
struct Fixture {
    s: Session,
    s_token: String,
    u_sessions: Vec<Session>,
    l: Session,
}

fn check_all_enforced(c: &mut Checks, envoy: &Envoy, when: &str, f: &Fixture) {
    check_refused_everywhere(c, envoy, &format!("{when}: revoked sid session S"), &f.s);
    for (i, u) in f.u_sessions.iter().enumerate() {
        check_refused_everywhere(
            c,
            envoy,
            &format!("{when}: session {} of sub-wide revoked user U", i + 1),
            u,
        );
    }
    check_passes_everywhere(c, envoy, &format!("{when}: live session L"), &f.l);
    let r = envoy.logout(&f.s_token);
    check_endpoint_answer(
        c,
        &format!("{when}: replay of S's logout token"),
        &r,
        400,
        Some("jti_replayed"),
    );
    let fresh = Session::new("fresh");
    let r = envoy.logout(&fresh.logout_token());
    check_endpoint_answer(c, &format!("{when}: a new logout"), &r, 200, None);
    check_refused_everywhere(
        c,
        envoy,
        &format!("{when}: the new logout's session"),
        &fresh,
    );
}

fn with_store(revocation_buckets: u64, max_revocations: u64, ttl: u64) -> Value {
    let mut config = base_config();
    merge(
        &mut config,
        json!({
            "revocation_buckets": revocation_buckets,
            "max_revocations": max_revocations,
            "revocation_ttl_seconds": ttl,
        }),
    );
    config
}

#[test]
fn item6_a_reload_keeps_every_live_revocation_enforced() {
    // The defaults, spelt out.
    let first = with_store(1024, 100_000, 86_400);
    let envoy = Envoy::start_lds(&first);
    let mut c = Checks::new();

    let s = Session::new("s");
    let s_token = s.logout_token();
    let r = envoy.logout(&s_token);
    check_endpoint_answer(&mut c, "logout of S (sid and sub)", &r, 200, None);

    // U: a sub-only logout revokes every earlier session of the user.
    let u = Session::new("u");
    let u_other = Session::with(
        ISSUER,
        &jws::unique_id("sid-u-other-"),
        &u.sub,
        jws::now() - 30,
    );
    let mut claims = jws::logout_claims(None, Some(&u.sub));
    claims["iss"] = json!(ISSUER);
    let r = envoy.logout(&keys().sign(Alg::Rs256, &claims));
    check_endpoint_answer(&mut c, "logout of U (sub only)", &r, 200, None);

    let fixture = Fixture {
        s,
        s_token,
        u_sessions: vec![u, u_other],
        l: Session::new("l"),
    };
    check_refused_everywhere(&mut c, &envoy, "before any reload: S", &fixture.s);
    check_passes_everywhere(&mut c, &envoy, "before any reload: L", &fixture.l);
    let r = extra_issuer_logout(&envoy);
    check_endpoint_answer(
        &mut c,
        "before any reload: the extra issuer is unknown",
        &r,
        400,
        Some("unknown_issuer"),
    );

    // Reload 1: other store settings and an extra issuer.
    let mut second = with_store(7, 5000, 3600);
    second["issuers"]
        .as_array_mut()
        .unwrap()
        .push(issuer_config(EXTRA_ISSUER, &["RS256"]));
    envoy.update_plugin_config(&second);
    let mut last = None;
    let serving = poll(Duration::from_secs(10), || {
        let r = extra_issuer_logout(&envoy);
        let ok = r.status == 200;
        last = Some(r);
        ok
    });
    c.check(serving, || {
        format!(
            "after reload 1 the extra issuer's logouts should be accepted, last answer: {}",
            last.as_ref().map(Response::summary).unwrap_or_default()
        )
    });
    check_all_enforced(
        &mut c,
        &envoy,
        "after reload 1 (buckets 7, max 5000, TTL 1 h)",
        &fixture,
    );

    // Reload 2: back to the defaults.
    envoy.update_plugin_config(&base_config());
    let serving = poll(Duration::from_secs(10), || {
        let r = extra_issuer_logout(&envoy);
        let ok = error_description(&r).starts_with("unknown_issuer");
        last = Some(r);
        ok
    });
    c.check(serving, || {
        format!(
            "after reload 2 the extra issuer should be unknown again, last answer: {}",
            last.as_ref().map(Response::summary).unwrap_or_default()
        )
    });
    check_all_enforced(&mut c, &envoy, "after reload 2 (defaults)", &fixture);
    c.finish("reload keeps revocations");
}
