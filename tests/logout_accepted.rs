//! Valid logout tokens, as real identity providers send them, are accepted (200, no-store) and
//! revoke the matching sessions on every Envoy worker, and only those.

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::json;

/// A second issuer of the same Envoy, configured with `revoke_all_user_sessions`.
const ALL_SESSIONS_ISSUER: &str = "https://idp-all-sessions.example.test";

fn check_accepted(c: &mut Checks, case: &str, r: &Response) {
    check_endpoint_answer(c, case, r, 200, None);
    c.check(r.body.is_empty(), || {
        format!("{case}: want an empty body, got {}", r.summary())
    });
}

#[test]
fn valid_logout_tokens_revoke_the_matching_sessions_on_every_worker() {
    let mut config = base_config();
    let mut all_sessions = issuer_config(ALL_SESSIONS_ISSUER, &["RS256"]);
    all_sessions["revoke_all_user_sessions"] = json!(true);
    config["issuers"].as_array_mut().unwrap().push(all_sessions);
    let envoy = Envoy::start(&config);
    let mut c = Checks::new();

    // Bystanders that no logout below targets: they must pass at the end.
    let bystander = Session::new("bystander");
    check_passes_everywhere(&mut c, &envoy, "bystander before", &bystander);

    // sid (and sub), signed with each algorithm.
    for alg in Alg::ALL {
        let case = format!("sid+sub {}", alg.name());
        let victim = Session::new(&format!("victim-{}", alg.name()));
        // The same user in another browser: a sid logout leaves it alone.
        let other_session = Session::with(
            ISSUER,
            &jws::unique_id("sid-other-"),
            &victim.sub,
            victim.iat,
        );
        // The same sid at another identity provider: never touched.
        let other_issuer = Session::with(
            ALL_SESSIONS_ISSUER,
            &victim.sid,
            &jws::unique_id("sub-"),
            victim.iat,
        );
        check_passes_everywhere(&mut c, &envoy, &format!("{case}: before"), &victim);
        let r = envoy.logout(&keys().sign(alg, &victim.logout_claims()));
        check_accepted(&mut c, &case, &r);
        check_refused_everywhere(&mut c, &envoy, &case, &victim);
        check_passes_everywhere(
            &mut c,
            &envoy,
            &format!("{case}: same user, other sid"),
            &other_session,
        );
        check_passes_everywhere(
            &mut c,
            &envoy,
            &format!("{case}: same sid, other issuer"),
            &other_issuer,
        );
    }

    // Only sub: every session of that user issued up to the token's iat.
    {
        let case = "sub only";
        let now = jws::now();
        let sub = jws::unique_id("sub-only-");
        let older = Session::with(ISSUER, &jws::unique_id("sid-"), &sub, now - 120);
        let at_cutoff = Session::with(ISSUER, &jws::unique_id("sid-"), &sub, now - 30);
        let newer = Session::with(ISSUER, &jws::unique_id("sid-"), &sub, now - 10);
        let other_user = Session::with(ISSUER, &jws::unique_id("sid-"), "someone-else", now - 120);
        let mut claims = jws::logout_claims(None, Some(&sub));
        claims["iat"] = json!(now - 30);
        let r = envoy.logout(&keys().sign(Alg::Rs256, &claims));
        check_accepted(&mut c, case, &r);
        check_refused_everywhere(&mut c, &envoy, "sub only: session issued before", &older);
        check_refused_everywhere(
            &mut c,
            &envoy,
            "sub only: session issued at the token's iat",
            &at_cutoff,
        );
        check_passes_everywhere(
            &mut c,
            &envoy,
            "sub only: session issued after the token's iat",
            &newer,
        );
        check_passes_everywhere(&mut c, &envoy, "sub only: other user", &other_user);
    }

    // revoke_all_user_sessions: a sid logout revokes every session of its sub.
    {
        let case = "revoke_all_user_sessions";
        let victim = Session::of(ALL_SESSIONS_ISSUER, "all");
        let sibling = Session::with(
            ALL_SESSIONS_ISSUER,
            &jws::unique_id("sid-sibling-"),
            &victim.sub,
            victim.iat,
        );
        let other_user = Session::of(ALL_SESSIONS_ISSUER, "all-other");
        let r = envoy.logout(&victim.logout_token());
        check_accepted(&mut c, case, &r);
        check_refused_everywhere(&mut c, &envoy, &format!("{case}: the sid"), &victim);
        check_refused_everywhere(
            &mut c,
            &envoy,
            &format!("{case}: another session of the sub"),
            &sibling,
        );
        check_passes_everywhere(&mut c, &envoy, &format!("{case}: other user"), &other_user);
    }

    // aud as an array that contains the client id.
    {
        let case = "aud array";
        let victim = Session::new("aud-array");
        let mut claims = victim.logout_claims();
        claims["aud"] = json!(["another-client", CLIENT_ID]);
        let r = envoy.logout(&keys().sign(Alg::Rs256, &claims));
        check_accepted(&mut c, case, &r);
        check_refused_everywhere(&mut c, &envoy, case, &victim);
    }

    // Keycloak's shape: header typ JWT, payload typ Logout, revoke_offline_access in events.
    {
        let case = "Keycloak shape";
        let victim = Session::new("keycloak");
        let mut claims = victim.logout_claims();
        claims["typ"] = json!("Logout");
        claims["events"] = json!({BCL_EVENT: {}, "revoke_offline_access": true});
        let token = keys().sign_json(Alg::Rs256, &jws::header(Alg::Rs256, Some("JWT")), &claims);
        let r = envoy.logout(&token);
        check_accepted(&mut c, case, &r);
        check_refused_everywhere(&mut c, &envoy, case, &victim);
    }

    // No typ header at all (older providers), other form parameters ignored.
    {
        let case = "no typ, extra form parameters";
        let victim = Session::new("no-typ");
        let token = keys().sign_json(
            Alg::EdDsa,
            &jws::header(Alg::EdDsa, None),
            &victim.logout_claims(),
        );
        let r = envoy.send(&Request::post(BACKCHANNEL_PATH).form(&[
            ("state", "x"),
            ("logout_token", &token),
            ("extra", "y z"),
        ]));
        check_accepted(&mut c, case, &r);
        check_refused_everywhere(&mut c, &envoy, case, &victim);
    }

    check_passes_everywhere(&mut c, &envoy, "bystander after", &bystander);
    let accepted = envoy.bcl_stat("bcl.logout.accepted");
    c.check(accepted == 8, || {
        format!("bcl.logout.accepted should count the 8 logouts, is {accepted}")
    });
    check_backchannel_never_forwarded(&mut c, &envoy);
    c.finish("valid logout tokens");
}
