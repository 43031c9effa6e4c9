//! The store keeps what it promises: exactly `max_revocations` revocations are accepted before
//! the first `store_full`, whatever hashing does; the logout that fills it to 80 % logs a
//! warning and sets the `bcl.store.near_full` gauge; a refusal evicts nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const CAP: usize = 50;

#[test]
fn a_store_filled_to_its_bound_accepts_exactly_max_revocations_and_warns_at_80_percent() {
    let mut config = base_config();
    config["max_revocations"] = json!(CAP);
    let envoy = Envoy::start(&config);
    let mut c = Checks::new();
    let gauge = |name: &str| envoy.bcl_stat(&format!("bcl.store.{name}"));

    let sessions: Vec<Session> = (0..CAP).map(|_| Session::new("cap")).collect();
    let mut accepted = 0;
    for (i, s) in sessions.iter().enumerate() {
        let r = envoy.logout(&s.logout_token());
        if r.status == 200 {
            accepted += 1;
        } else {
            c.fail(format!(
                "logout {} of {CAP} refused: {}",
                i + 1,
                r.summary()
            ));
        }
        if i + 1 == CAP * 8 / 10 - 1 {
            c.check(
                !envoy.log().contains("revocation store is 80% full"),
                || format!("warned before 80 % ({} of {CAP})", i + 1),
            );
        }
    }
    c.check(accepted == CAP, || format!("{accepted} of {CAP} accepted"));
    c.check(
        envoy.wait_for_log("revocation store is 80% full", Duration::from_secs(5)),
        || "no 80 % warning in the log".to_string(),
    );
    let warnings = envoy.log().matches("revocation store is 80% full").count();
    c.check(warnings == 1, || {
        format!("{warnings} warnings, want exactly 1")
    });
    let near_full = poll(Duration::from_secs(5), || gauge("near_full") == 1);
    c.check(near_full, || {
        format!("gauge near_full = {}, want 1", gauge("near_full"))
    });
    c.check(gauge("revocation_capacity") == CAP as i64, || {
        format!(
            "gauge revocation_capacity = {}",
            gauge("revocation_capacity")
        )
    });
    c.check(gauge("revocation_entries") == CAP as i64, || {
        format!("gauge revocation_entries = {}", gauge("revocation_entries"))
    });

    // Full: refused, nothing evicted, and the refused token's jti is not consumed.
    let over = Session::new("over");
    let token = over.logout_token();
    let r = envoy.logout(&token);
    check_endpoint_answer(&mut c, "logout past the cap", &r, 400, Some("store_full"));
    let r = envoy.logout(&token);
    check_endpoint_answer(&mut c, "its retry", &r, 400, Some("store_full"));
    check_passes_everywhere(&mut c, &envoy, "refused logout revoked nothing", &over);
    for s in sessions.iter().step_by(7) {
        check_refused_everywhere(&mut c, &envoy, "stored revocation kept", s);
    }
    // A second logout of a session already revoked takes no room: still a success.
    let again = sessions[3].logout_token();
    let r = envoy.logout(&again);
    check_endpoint_answer(&mut c, "logout of a revoked session", &r, 200, None);
    c.finish("store capacity");
}
