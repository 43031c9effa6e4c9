//! Keys fetched from the identity provider through an Envoy cluster: from `jwks_uri` and through
//! discovery, kept through bad answers, refetched on an unknown `kid` (key rotation), and fetched
//! once for the whole Envoy, not once per worker.
//!
//! The identity provider is a small server run by the test (`tests/common/idp.rs`) whose answers
//! the test switches while Envoy runs; Envoy reaches it through the template's `idp` cluster.

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};

use common::idp::{Answer, Idp};
use common::*;
use serde_json::{json, Value};

const JWKS_PATH: &str = "/jwks";
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

const FETCH_OK: &str = "bcl.jwks.fetch_ok";
const FETCH_FAILED: &str = "bcl.jwks.fetch_failed";
const REJECTED: &str = "bcl.jwks.rejected";

/// The fetch settings of these tests: a refresh every 2 s, at most one fetch per second.
const REFRESH_SECONDS: u64 = 2;
const MIN_REFETCH_SECONDS: u64 = 1;

/// A plugin configuration with one issuer whose keys come from the test's identity provider.
/// `source` holds the key-source members (`jwks_uri` or `discovery`, and `cluster`).
fn remote_config(issuer: &str, algorithms: &[&str], source: Value, refresh_seconds: u64) -> Value {
    let mut entry = json!({
        "issuer": issuer,
        "client_ids": [CLIENT_ID],
        "algorithms": algorithms,
        "jwks_refresh_seconds": refresh_seconds,
        "jwks_min_refetch_seconds": MIN_REFETCH_SECONDS,
    });
    merge(&mut entry, source);
    json!({
        "backchannel_path": BACKCHANNEL_PATH,
        "tick_seconds": 1,
        "issuers": [entry],
    })
}

/// The `jwks_uri` key source pointing at the test's identity provider.
fn jwks_uri_source(idp: &Idp) -> Value {
    json!({"jwks_uri": format!("{}{JWKS_PATH}", idp.base_url()), "cluster": "idp"})
}

/// The example keys' public JWKS, keeping only the keys whose `kid` is listed.
fn jwks_with(kids: &[&str]) -> Value {
    let mut jwks = keys().jwks();
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| kids.iter().any(|kid| k["kid"] == *kid));
    jwks
}

fn good_jwks_answer() -> Answer {
    Answer::json("good jwks", &keys().jwks())
}

/// The three key-fetch counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FetchStats {
    ok: i64,
    failed: i64,
    rejected: i64,
}

fn fetch_stats(envoy: &Envoy) -> FetchStats {
    let stats = envoy.stats();
    let get = |name: &str| {
        stats
            .get(&format!("wasmcustom.{name}"))
            .copied()
            .unwrap_or(0)
    };
    FetchStats {
        ok: get(FETCH_OK),
        failed: get(FETCH_FAILED),
        rejected: get(REJECTED),
    }
}

/// Log lines of the filter's key fetches (for failure messages).
fn fetch_log_lines(envoy: &Envoy) -> String {
    let log = envoy.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("key")).collect();
    lines[lines.len().saturating_sub(12)..].join("\n    ")
}

/// Waits (polling) until `deadline`; for the rate-limit windows the filter counts in whole
/// seconds, which only the passing of time ends.
fn wait_until(deadline: Instant) {
    poll(deadline.saturating_duration_since(Instant::now()), || {
        Instant::now() >= deadline
    });
}

/// A valid RS256 logout for a new session must get 200 and revoke that session everywhere.
fn check_new_logout_accepted(c: &mut Checks, envoy: &Envoy, case: &str) {
    let victim = Session::new(case);
    let r = envoy.logout(&victim.logout_token());
    check_endpoint_answer(c, &format!("{case}: valid logout"), &r, 200, None);
    check_refused_everywhere(
        c,
        envoy,
        &format!("{case}: the logged-out session"),
        &victim,
    );
}

#[test]
fn keys_from_jwks_uri_are_fetched_and_survive_bad_answers() {
    let idp = Idp::start().unwrap();
    idp.set(JWKS_PATH, Answer::status("503", 503));
    let config = remote_config(ISSUER, &["RS256"], jwks_uri_source(&idp), REFRESH_SECONDS);
    let envoy = Envoy::start_with_idp(&config, idp.port());
    let mut c = Checks::new();

    // 1. The identity provider answers 503: no key was ever fetched.
    let failed_seen = poll(Duration::from_secs(10), || fetch_stats(&envoy).failed >= 1);
    c.check(failed_seen, || {
        format!(
            "while the IdP answers 503, bcl.jwks.fetch_failed never rose ({:?}, {} requests at \
             {JWKS_PATH}); log:\n    {}",
            fetch_stats(&envoy),
            idp.count(JWKS_PATH),
            fetch_log_lines(&envoy)
        )
    });
    let before_keys = Session::new("before-keys");
    let r = envoy.logout(&before_keys.logout_token());
    check_endpoint_answer(
        &mut c,
        "valid logout while no key was ever fetched",
        &r,
        400,
        Some("keys_unavailable"),
    );
    check_passes_everywhere(
        &mut c,
        &envoy,
        "session of the refused logout (keys_unavailable)",
        &before_keys,
    );
    let failure_logged = envoy.wait_for_log(
        &format!("key fetch for {ISSUER} failed: HTTP status 503"),
        Duration::from_secs(5),
    );
    c.check(failure_logged, || {
        format!(
            "no log line `key fetch for {ISSUER} failed: HTTP status 503`; key lines:\n    {}",
            fetch_log_lines(&envoy)
        )
    });
    let stats = fetch_stats(&envoy);
    c.check(stats.ok == 0, || {
        format!("no good answer was served yet, but {stats:?}")
    });

    // 2. Good keys: fetched within a few ticks, then a logout is accepted.
    idp.set(JWKS_PATH, good_jwks_answer());
    let fetched = poll(Duration::from_secs(10), || fetch_stats(&envoy).ok >= 1);
    c.check(fetched, || {
        format!(
            "the IdP serves the JWKS, but bcl.jwks.fetch_ok never rose ({:?}, {} good answers \
             served); log:\n    {}",
            fetch_stats(&envoy),
            idp.served(JWKS_PATH, "good jwks"),
            fetch_log_lines(&envoy)
        )
    });
    check_new_logout_accepted(&mut c, &envoy, "keys fetched");

    // 3. Bad answers: each is counted and logged, and the last good keys stay in force.
    let padded = {
        // A real JWKS, padded with whitespace past the 256 KiB limit: refused for its size
        // alone.
        let mut text = keys().jwks().to_string();
        text.push_str(&" ".repeat(300 * 1024 - text.len()));
        text
    };
    let bad_answers = [
        (Answer::status("500", 500), FETCH_FAILED),
        (
            Answer::new("not json", 200, "application/json", "not json"),
            REJECTED,
        ),
        (
            Answer::json("empty key set", &json!({"keys": []})),
            REJECTED,
        ),
        (
            Answer::new("300 KiB body", 200, "application/json", padded),
            REJECTED,
        ),
        (
            Answer::json(
                "oct key only",
                &json!({"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]}),
            ),
            REJECTED,
        ),
    ];
    for (answer, counter) in bad_answers {
        let label = answer.label.clone();
        let case = format!("IdP answers {label}");
        let snapshot_at = Instant::now();
        let before = fetch_stats(&envoy);
        let requests_before = idp.count(JWKS_PATH);
        idp.set(JWKS_PATH, answer);
        let served = poll(Duration::from_secs(10), || {
            idp.served(JWKS_PATH, &label) >= 1
        });
        c.check(served, || {
            format!(
                "{case}: no fetch attempt within 10 s ({requests_before} requests at {JWKS_PATH} \
                 before, {} now)",
                idp.count(JWKS_PATH)
            )
        });
        let counted = poll(Duration::from_secs(5), || {
            let now = fetch_stats(&envoy);
            now.failed > before.failed || now.rejected > before.rejected
        });
        let after = fetch_stats(&envoy);
        c.check(counted, || {
            format!(
                "{case}: neither bcl.jwks.fetch_failed nor bcl.jwks.rejected rose (before \
                 {before:?}, after {after:?}); log:\n    {}",
                fetch_log_lines(&envoy)
            )
        });
        // README: transport or status problems are `fetch_failed`, bad content `rejected`.
        let (rose, other, other_name) = if counter == FETCH_FAILED {
            (
                after.failed > before.failed,
                after.rejected - before.rejected,
                REJECTED,
            )
        } else {
            (
                after.rejected > before.rejected,
                after.failed - before.failed,
                FETCH_FAILED,
            )
        };
        c.check(counted && rose && other == 0, || {
            format!(
                "{case}: README counts this as {counter}, got before {before:?}, after {after:?} \
                 ({other_name} +{other})"
            )
        });
        // A good answer served just before the snapshot may still be counted after it.
        let good_in_flight = idp
            .hits()
            .iter()
            .filter(|h| h.served == "good jwks" && h.at + Duration::from_secs(1) >= snapshot_at)
            .count() as i64;
        c.check(after.ok - before.ok <= good_in_flight, || {
            format!(
                "{case}: bcl.jwks.fetch_ok rose although only bad answers were served: before \
                 {before:?}, after {after:?}"
            )
        });
        check_new_logout_accepted(&mut c, &envoy, &format!("{case}, last good keys"));
    }
    let kept_logged =
        envoy.wait_for_log("the last good keys stay in force", Duration::from_secs(2));
    c.check(kept_logged, || {
        format!(
            "no log line saying the last good keys stay in force; key lines:\n    {}",
            fetch_log_lines(&envoy)
        )
    });
    check_backchannel_never_forwarded(&mut c, &envoy);
    c.finish("keys from jwks_uri");
}

#[test]
fn one_fetch_serves_the_whole_envoy() {
    const WINDOW: Duration = Duration::from_secs(10);
    let idp = Idp::start().unwrap();
    idp.set(JWKS_PATH, good_jwks_answer());
    let config = remote_config(ISSUER, &["RS256"], jwks_uri_source(&idp), REFRESH_SECONDS);
    let envoy = Envoy::start_with_idp(&config, idp.port());
    let mut c = Checks::new();

    // Steady state: the keys were fetched at least twice (the first fetch and one refresh).
    let steady = poll(Duration::from_secs(15), || fetch_stats(&envoy).ok >= 2);
    c.check(steady, || {
        format!(
            "keys not fetched and refreshed within 15 s: {:?}; log:\n    {}",
            fetch_stats(&envoy),
            fetch_log_lines(&envoy)
        )
    });

    // Both workers (and any other VM) tick every second; over the window only the refresh
    // period decides how often the IdP is asked. No unknown kid is sent, so no refetch.
    let start = Instant::now();
    let ok_before = fetch_stats(&envoy).ok;
    wait_until(start + WINDOW);
    let end = Instant::now();
    let requests = idp.count_between(JWKS_PATH, start, end);
    let ok_during = fetch_stats(&envoy).ok - ok_before;
    let expected = WINDOW.as_secs_f64() / REFRESH_SECONDS as f64;
    let times: Vec<String> = idp
        .hits()
        .iter()
        .filter(|h| h.path == JWKS_PATH && h.at >= start && h.at < end)
        .map(|h| format!("{:.2}s", (h.at - start).as_secs_f64()))
        .collect();
    eprintln!(
        "{requests} JWKS requests in {:?} (expected about {expected}); at {times:?}",
        WINDOW
    );
    c.check((requests as f64) < 1.5 * expected, || {
        format!(
            "{requests} JWKS requests in {WINDOW:?} with a {REFRESH_SECONDS} s refresh: want \
             fewer than {} (about {expected}: one fetch for the whole Envoy, not one per \
             worker); requests at {times:?}",
            1.5 * expected
        )
    });
    c.check((requests as f64) >= expected / 2.0, || {
        format!(
            "{requests} JWKS requests in {WINDOW:?} with a {REFRESH_SECONDS} s refresh: the keys \
             are not refreshed (want about {expected}); requests at {times:?}"
        )
    });
    c.check(ok_during >= 1 && ok_during as usize <= requests + 1, || {
        format!("bcl.jwks.fetch_ok rose by {ok_during} for {requests} JWKS requests")
    });
    check_new_logout_accepted(&mut c, &envoy, "after the window");
    c.finish("one fetch for the whole Envoy");
}

#[test]
fn an_unknown_kid_refetches_the_keys_and_picks_up_a_rotated_key() {
    let idp = Idp::start().unwrap();
    idp.set(
        JWKS_PATH,
        Answer::json("rsa only", &jwks_with(&[Alg::Rs256.kid()])),
    );
    // A refresh period far beyond the test: every fetch after the first is a refetch.
    let config = remote_config(ISSUER, &["RS256", "ES256"], jwks_uri_source(&idp), 3600);
    let envoy = Envoy::start_with_idp(&config, idp.port());
    let mut c = Checks::new();

    let fetched = poll(Duration::from_secs(10), || fetch_stats(&envoy).ok >= 1);
    c.check(fetched, || {
        format!(
            "first fetch never succeeded: {:?}; log:\n    {}",
            fetch_stats(&envoy),
            fetch_log_lines(&envoy)
        )
    });
    check_new_logout_accepted(&mut c, &envoy, "RS256 with the first keys");

    // The EC key is not published yet: its kid is unknown, whether or not a refetch happens.
    let rotated = Session::new("rotated");
    let es_token = keys().sign(Alg::Es256, &rotated.logout_claims());
    let before = idp.count(JWKS_PATH);
    let r = envoy.logout(&es_token);
    check_endpoint_answer(
        &mut c,
        "ES256 token, kid example-ec not published yet",
        &r,
        400,
        Some("unknown_kid"),
    );
    let refetches = idp.count(JWKS_PATH) - before;
    c.check(refetches <= 1, || {
        format!("one logout with an unknown kid caused {refetches} JWKS requests, want at most 1")
    });
    check_passes_everywhere(&mut c, &envoy, "session of the unknown-kid token", &rotated);

    // The IdP rotates: the EC key is published. Past the rate-limit window, the same token
    // (a refused token's jti is not consumed) is accepted in that one request.
    idp.set(JWKS_PATH, good_jwks_answer());
    let last = idp.last_hit(JWKS_PATH).unwrap_or_else(Instant::now);
    wait_until(last + Duration::from_millis(MIN_REFETCH_SECONDS * 1000 + 500));
    let requests_before = idp.count(JWKS_PATH);
    let stats_before = fetch_stats(&envoy);
    let r = envoy.logout(&es_token);
    let requests_during = idp.count(JWKS_PATH) - requests_before;
    check_endpoint_answer(
        &mut c,
        "ES256 token after the IdP published kid example-ec (refetch on unknown kid)",
        &r,
        200,
        None,
    );
    c.check(requests_during == 1, || {
        format!(
            "the unknown-kid logout should cause exactly one JWKS request, caused \
             {requests_during}; log:\n    {}",
            fetch_log_lines(&envoy)
        )
    });
    let stats_after = fetch_stats(&envoy);
    c.check(stats_after.ok == stats_before.ok + 1, || {
        format!(
            "bcl.jwks.fetch_ok should rise by one: before {stats_before:?}, after {stats_after:?}"
        )
    });
    check_refused_everywhere(&mut c, &envoy, "session of the rotated-key token", &rotated);

    // The new key stays known: another ES256 logout needs no fetch.
    let requests_before = idp.count(JWKS_PATH);
    let other = Session::new("rotated-2");
    let r = envoy.logout(&keys().sign(Alg::Es256, &other.logout_claims()));
    check_endpoint_answer(&mut c, "second ES256 token", &r, 200, None);
    let extra = idp.count(JWKS_PATH) - requests_before;
    c.check(extra == 0, || {
        format!("a logout with a known kid caused {extra} JWKS requests")
    });
    check_refused_everywhere(&mut c, &envoy, "session of the second ES256 token", &other);
    c.finish("unknown kid refetch");
}

#[test]
fn discovery_document_must_name_the_configured_issuer() {
    let idp = Idp::start().unwrap();
    let issuer = idp.base_url();
    let jwks_uri = format!("{issuer}{JWKS_PATH}");
    idp.set(
        DISCOVERY_PATH,
        Answer::json(
            "wrong issuer",
            &json!({"issuer": "https://impostor.example.test", "jwks_uri": jwks_uri}),
        ),
    );
    idp.set(JWKS_PATH, good_jwks_answer());
    let config = remote_config(
        &issuer,
        &["RS256"],
        json!({"discovery": true, "cluster": "idp"}),
        REFRESH_SECONDS,
    );
    let envoy = Envoy::start_with_idp(&config, idp.port());
    let mut c = Checks::new();

    // 1. The document names another issuer: refused, its jwks_uri is not followed.
    let rejected = poll(Duration::from_secs(10), || {
        fetch_stats(&envoy).rejected >= 1
    });
    c.check(rejected, || {
        format!(
            "discovery document with the wrong issuer: bcl.jwks.rejected never rose ({:?}, {} \
             discovery requests); log:\n    {}",
            fetch_stats(&envoy),
            idp.count(DISCOVERY_PATH),
            fetch_log_lines(&envoy)
        )
    });
    let victim = Session::of(&issuer, "discovery");
    let r = envoy.logout(&victim.logout_token());
    check_endpoint_answer(
        &mut c,
        "logout while the discovery document names another issuer",
        &r,
        400,
        Some("keys_unavailable"),
    );
    let jwks_requests = idp.count(JWKS_PATH);
    c.check(jwks_requests == 0, || {
        format!("the JWKS of a refused discovery document was fetched {jwks_requests} times")
    });
    let stats = fetch_stats(&envoy);
    c.check(stats.ok == 0, || {
        format!("keys fetched from a refused discovery document: {stats:?}")
    });
    let logged = envoy.wait_for_log(
        &format!("key fetch for {issuer} rejected"),
        Duration::from_secs(5),
    );
    c.check(logged, || {
        format!(
            "no log line `key fetch for {issuer} rejected`; key lines:\n    {}",
            fetch_log_lines(&envoy)
        )
    });
    check_passes_everywhere(&mut c, &envoy, "session of the refused logout", &victim);

    // 2. The right document: its jwks_uri is fetched and logouts are accepted.
    idp.set(
        DISCOVERY_PATH,
        Answer::json(
            "right issuer",
            &json!({"issuer": issuer, "jwks_uri": jwks_uri}),
        ),
    );
    let fetched = poll(Duration::from_secs(10), || fetch_stats(&envoy).ok >= 1);
    c.check(fetched, || {
        format!(
            "discovery document fixed, but no keys fetched: {:?}, {} discovery requests served \
             the right document, {} JWKS requests; log:\n    {}",
            fetch_stats(&envoy),
            idp.served(DISCOVERY_PATH, "right issuer"),
            idp.count(JWKS_PATH),
            fetch_log_lines(&envoy)
        )
    });
    c.check(idp.count(JWKS_PATH) >= 1, || {
        "keys counted as fetched but the JWKS was never requested".to_string()
    });
    let r = envoy.logout(&victim.logout_token());
    check_endpoint_answer(
        &mut c,
        "logout after discovery succeeded (same token as the refused one)",
        &r,
        200,
        None,
    );
    check_refused_everywhere(&mut c, &envoy, "session logged out via discovery", &victim);
    c.finish("discovery");
}
