//! Hardening: what an odd request, an odd token or an odd configuration must never do to the
//! filter. Each test is named after the item of the hardening contract it encodes:
//!
//! 1. non-UTF-8 header bytes never take the filter down;
//! 2. the session cookie is found in every `Cookie:` header line;
//! 3. a refused navigation is never redirected off-site;
//! 4. `typ` is a media type (RFC 7515, 4.1.9);
//! 5. a logout token without `exp` is bounded by `iat` (and `require_exp` demands one);
//! 7. a logout refused for a store reason does not consume its `jti`;
//! 9. two issuers never share a key record (FNV-1a collision);
//! 10. a configuration with an absurd worst case is refused.
//!
//! (Item 6, a reload keeps every revocation, is in `tests/reload.rs`.)

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::http::{raw_request, send_raw};
use common::idp::{Answer, Idp};
use common::*;
use serde_json::{json, Value};

/// Sends a raw HTTP/1.1 request to the main listener. A connection error becomes status 0 with
/// the error as body, so a test reports it with the other checks instead of stopping.
fn raw(
    envoy: &Envoy,
    method: &str,
    path: &[u8],
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Response {
    let bytes = raw_request(method, path, envoy.port, headers, body);
    send_raw(envoy.port, &bytes).unwrap_or_else(|e| Response {
        status: 0,
        headers: Vec::new(),
        body: format!("connection error: {e}").into_bytes(),
    })
}

/// `bytes` with `extra` appended (to put a raw 0xff after some text).
fn with_bytes(text: &str, extra: &[u8]) -> Vec<u8> {
    let mut v = text.as_bytes().to_vec();
    v.extend_from_slice(extra);
    v
}

/// The line of Envoy's log that says why it did not start (the plugin's refusal if any).
fn start_error_line(e: &StartError) -> String {
    match e {
        StartError::Exited { log, .. } | StartError::NotReady { log, .. } => log
            .lines()
            .find(|l| l.contains("invalid plugin configuration"))
            .or_else(|| log.lines().rev().find(|l| l.contains("[critical]")))
            .unwrap_or("(no explanation in the log)")
            .to_string(),
        StartError::Io(e) => e.clone(),
    }
}

fn is_upstream_200(r: &Response) -> bool {
    r.status == 200 && r.body_str() == UPSTREAM_BODY
}

/// Whether the answer clears every cookie of DESIGN.md's default `clear_cookies`.
fn clears_cookies(r: &Response) -> bool {
    let set_cookies = r.headers_all("set-cookie");
    CLEARED_COOKIES.iter().all(|name| {
        set_cookies
            .iter()
            .any(|v| v.starts_with(&format!("{name}=deleted")))
    })
}

/// The `error_description` of a back-channel answer.
fn error_description(r: &Response) -> String {
    r.json()
        .and_then(|v| v["error_description"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Counts unexpected answers per case over many rounds, keeping the first example of each.
#[derive(Default)]
struct Tally {
    cases: BTreeMap<String, (usize, usize, String)>,
}

impl Tally {
    fn record(&mut self, case: &str, ok: bool, r: &Response) {
        let e = self
            .cases
            .entry(case.to_string())
            .or_insert((0, 0, String::new()));
        e.0 += 1;
        if !ok {
            e.1 += 1;
            if e.2.is_empty() {
                e.2 = r.summary();
            }
        }
    }

    fn report(self, c: &mut Checks) {
        for (case, (total, bad, example)) in self.cases {
            c.check(bad == 0, || {
                format!("{case}: {bad} of {total} answers unexpected, first: {example}")
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Non-UTF-8 header bytes never take the filter down.

#[test]
fn item1_non_utf8_header_bytes_never_take_the_filter_down() {
    let envoy = Envoy::start(&base_config());
    let mut c = Checks::new();

    let live = Session::new("live");
    let revoked = Session::new("revoked");
    let r = envoy.logout(&revoked.logout_token());
    check_endpoint_answer(&mut c, "logout of the session to revoke", &r, 200, None);

    let odd_cookie = b"x=\xff".to_vec();
    let live_and_odd = with_bytes(&format!("IdToken={}; x=", live.id_token), b"\xff");
    let revoked_and_odd = with_bytes(&format!("IdToken={}; x=", revoked.id_token), b"\xff");
    let live_cookie = format!("IdToken={}", live.id_token).into_bytes();
    let revoked_cookie = format!("IdToken={}", revoked.id_token).into_bytes();
    // The body is never read: the content type is refused first. A fresh session anyway.
    let unused = Session::new("bad-content-type");
    let logout_body = format!(
        "logout_token={}",
        common::http::form_encode(&unused.logout_token())
    )
    .into_bytes();

    let mut tally = Tally::default();
    let mut five_o_threes = 0;
    for _ in 0..20 {
        let page = b"/app/page".as_slice();
        let html: &[u8] = b"text/html";

        let r = raw(
            &envoy,
            "GET",
            page,
            &[("Cookie", &odd_cookie), ("Accept", html)],
            b"",
        );
        five_o_threes += usize::from(r.status == 503);
        tally.record(
            "Cookie `x=\\xff` only: want the upstream's 200",
            is_upstream_200(&r),
            &r,
        );

        let r = raw(
            &envoy,
            "GET",
            page,
            &[("Cookie", &live_and_odd), ("Accept", html)],
            b"",
        );
        five_o_threes += usize::from(r.status == 503);
        tally.record(
            "Cookie `IdToken=<live>; x=\\xff`: want the upstream's 200",
            is_upstream_200(&r),
            &r,
        );

        let r = raw(
            &envoy,
            "GET",
            page,
            &[("Cookie", &revoked_and_odd), ("Accept", html)],
            b"",
        );
        five_o_threes += usize::from(r.status == 503);
        tally.record(
            "Cookie `IdToken=<revoked>; x=\\xff`: want 302 with cookies cleared",
            r.status == 302 && clears_cookies(&r),
            &r,
        );

        // Accept and Sec-Fetch-Mode are read when a session is refused.
        let r = raw(
            &envoy,
            "GET",
            page,
            &[("Cookie", &revoked_cookie), ("Accept", b"\xff")],
            b"",
        );
        five_o_threes += usize::from(r.status == 503);
        tally.record(
            "revoked session, `Accept: \\xff`: want a refusal (302 or 401)",
            matches!(r.status, 302 | 401) && clears_cookies(&r),
            &r,
        );
        let r = raw(
            &envoy,
            "GET",
            page,
            &[("Cookie", &live_cookie), ("Accept", b"\xff")],
            b"",
        );
        five_o_threes += usize::from(r.status == 503);
        tally.record(
            "live session, `Accept: \\xff`: want the upstream's 200",
            is_upstream_200(&r),
            &r,
        );

        let r = raw(
            &envoy,
            "GET",
            page,
            &[
                ("Cookie", &revoked_cookie),
                ("Accept", html),
                ("Sec-Fetch-Mode", b"\xfe"),
            ],
            b"",
        );
        five_o_threes += usize::from(r.status == 503);
        tally.record(
            "revoked session, `Sec-Fetch-Mode: \\xfe`: want a refusal (302 or 401)",
            matches!(r.status, 302 | 401) && clears_cookies(&r),
            &r,
        );
        let r = raw(
            &envoy,
            "GET",
            page,
            &[
                ("Cookie", &live_cookie),
                ("Accept", html),
                ("Sec-Fetch-Mode", b"\xfe"),
            ],
            b"",
        );
        five_o_threes += usize::from(r.status == 503);
        tally.record(
            "live session, `Sec-Fetch-Mode: \\xfe`: want the upstream's 200",
            is_upstream_200(&r),
            &r,
        );

        let r = raw(
            &envoy,
            "POST",
            BACKCHANNEL_PATH.as_bytes(),
            &[("Content-Type", b"\xff")],
            &logout_body,
        );
        five_o_threes += usize::from(r.status == 503);
        tally.record(
            "back-channel POST, `Content-Type: \\xff`: want 400 content_type",
            r.status == 400 && error_description(&r).starts_with("content_type"),
            &r,
        );
    }
    tally.report(&mut c);
    c.check(five_o_threes == 0, || {
        format!("{five_o_threes} of 160 requests with odd header bytes got 503")
    });

    // Afterwards, everything still works on both workers.
    check_passes_everywhere(&mut c, &envoy, "a live session afterwards", &live);
    let after = Session::new("after");
    let r = envoy.logout(&after.logout_token());
    check_endpoint_answer(&mut c, "a valid logout afterwards", &r, 200, None);
    check_refused_everywhere(&mut c, &envoy, "the session logged out afterwards", &after);
    c.finish("non-UTF-8 header bytes");
}

// ---------------------------------------------------------------------------------------------
// 2. The session cookie in a second `Cookie:` header line.

#[test]
fn item2_idtoken_in_a_second_cookie_header_line() {
    let envoy = Envoy::start(&base_config());
    let mut c = Checks::new();

    let revoked = Session::new("revoked");
    let live = Session::new("live");
    let other_live = Session::new("other-live");
    let r = envoy.logout(&revoked.logout_token());
    check_endpoint_answer(&mut c, "logout", &r, 200, None);

    let two_lines = |first: &str, second: &str| {
        raw(
            &envoy,
            "GET",
            b"/app/page",
            &[
                ("Cookie", first.as_bytes()),
                ("Cookie", second.as_bytes()),
                ("Accept", b"text/html"),
            ],
            b"",
        )
    };
    let revoked_cookie = format!("IdToken={}", revoked.id_token);
    let live_cookie = format!("IdToken={}", live.id_token);
    let other_cookie = format!("IdToken={}", other_live.id_token);

    let mut tally = Tally::default();
    let malformed_before = envoy.bcl_stat("bcl.session.malformed");
    let mut duplicates_sent = 0;
    for _ in 0..6 {
        let r = two_lines("theme=dark; lang=en", &revoked_cookie);
        tally.record(
            "revoked IdToken in the second Cookie line: want 302 with cookies cleared",
            r.status == 302 && clears_cookies(&r),
            &r,
        );

        let r = two_lines(&format!("theme=dark; {live_cookie}"), &live_cookie);
        duplicates_sent += 1;
        tally.record(
            "the same live IdToken in both Cookie lines: want a refusal (302/401) with cookies \
             cleared",
            matches!(r.status, 302 | 401) && clears_cookies(&r),
            &r,
        );

        let r = two_lines(&live_cookie, &other_cookie);
        duplicates_sent += 1;
        tally.record(
            "two live IdTokens, one per Cookie line: want a refusal (302/401) with cookies cleared",
            matches!(r.status, 302 | 401) && clears_cookies(&r),
            &r,
        );

        let r = two_lines("theme=dark; lang=en", &live_cookie);
        tally.record(
            "live IdToken in the second Cookie line: want the upstream's 200",
            is_upstream_200(&r),
            &r,
        );
    }
    tally.report(&mut c);
    let malformed = envoy.bcl_stat("bcl.session.malformed") - malformed_before;
    c.check(malformed == duplicates_sent, || {
        format!(
            "an IdToken in both Cookie lines is a malformed session: bcl.session.malformed rose by \
             {malformed}, want {duplicates_sent}"
        )
    });
    c.finish("second Cookie line");
}

// ---------------------------------------------------------------------------------------------
// 3. A refused navigation is never redirected off-site.

#[test]
fn item3_refused_navigation_never_redirects_off_site() {
    let envoy = Envoy::start(&base_config());
    let mut c = Checks::new();

    let revoked = Session::new("revoked");
    let r = envoy.logout(&revoked.logout_token());
    check_endpoint_answer(&mut c, "logout", &r, 200, None);
    let cookie = format!("IdToken={}", revoked.id_token);

    let navigate = |path: &[u8]| {
        raw(
            &envoy,
            "GET",
            path,
            &[("Cookie", cookie.as_bytes()), ("Accept", b"text/html")],
            b"",
        )
    };
    for path in [
        "/\\evil.example/x",
        "//evil.example/x",
        "/%5Cevil.example/x",
        "/%2F%2Fevil.example",
        "/%2fevil.example",
        "/\\/evil.example",
    ] {
        let r = navigate(path.as_bytes());
        c.check(r.status == 302 && clears_cookies(&r), || {
            format!(
                "path `{path}`: want the filter's 302 with cookies cleared, got {}",
                r.summary()
            )
        });
        c.check(r.header("location") == Some("/"), || {
            format!(
                "path `{path}`: want `Location: /` exactly, got {}",
                r.summary()
            )
        });
    }
    let r = navigate(b"/app/page?x=1");
    c.check(
        r.status == 302 && r.header("location") == Some("/app/page?x=1"),
        || {
            format!(
                "path `/app/page?x=1`: want 302 to `/app/page?x=1`, got {}",
                r.summary()
            )
        },
    );
    c.finish("open redirect");
}

// ---------------------------------------------------------------------------------------------
// 4. `typ` media types.

const STRICT_ISSUER: &str = "https://strict.idp.example.test";

#[test]
fn item4_typ_media_types() {
    let mut config = base_config();
    let mut strict = issuer_config(STRICT_ISSUER, &["RS256"]);
    strict["require_logout_jwt_typ"] = json!(true);
    config["issuers"].as_array_mut().unwrap().push(strict);
    let envoy = Envoy::start(&config);
    let mut c = Checks::new();

    for (iss, typ, status, code) in [
        (ISSUER, "application/logout+jwt", 200, None),
        (ISSUER, "application/jwt", 200, None),
        (ISSUER, "Application/Logout+JWT", 200, None),
        (ISSUER, "logout+jwt", 200, None),
        (ISSUER, "JWT", 200, None),
        (ISSUER, "application/logout+jwt; x=1", 400, Some("typ")),
        (STRICT_ISSUER, "application/logout+jwt", 200, None),
        (STRICT_ISSUER, "logout+jwt", 200, None),
        (STRICT_ISSUER, "application/jwt", 400, Some("typ")),
        (STRICT_ISSUER, "JWT", 400, Some("typ")),
        (
            STRICT_ISSUER,
            "application/logout+jwt; x=1",
            400,
            Some("typ"),
        ),
    ] {
        let session = Session::of(iss, "typ");
        let header = jws::header(Alg::Rs256, Some(typ));
        let token = keys().sign_json(Alg::Rs256, &header, &session.logout_claims());
        let r = envoy.logout(&token);
        let case = format!("issuer {iss}, typ {typ:?}");
        check_endpoint_answer(&mut c, &case, &r, status, code);
        if status == 200 {
            let passed = passes(&envoy, &session, 4);
            c.check(passed == 0, || {
                format!("{case}: the logged-out session still passed {passed}/4 times")
            });
        }
    }
    c.finish("typ media types");
}

// ---------------------------------------------------------------------------------------------
// 5. A logout token without `exp`.

const REQUIRE_EXP_ISSUER: &str = "https://require-exp.idp.example.test";

/// A valid RS256 logout token for `session` without `exp`, issued at `iat`.
fn token_without_exp(session: &Session, iat: i64) -> String {
    let mut claims = session.logout_claims();
    claims.as_object_mut().unwrap().remove("exp");
    claims["iat"] = json!(iat);
    keys().sign(Alg::Rs256, &claims)
}

#[test]
fn item5_logout_token_without_exp() {
    let mut c = Checks::new();
    {
        let envoy = Envoy::start(&base_config());
        let session = Session::new("no-exp");
        let token = token_without_exp(&session, jws::now());
        let r = envoy.logout(&token);
        check_endpoint_answer(&mut c, "no exp, fresh iat", &r, 200, None);
        check_refused_everywhere(&mut c, &envoy, "no exp, fresh iat", &session);
        let r = envoy.logout(&token);
        check_endpoint_answer(
            &mut c,
            "no exp, fresh iat, replayed",
            &r,
            400,
            Some("jti_replayed"),
        );

        // Defaults: max_token_age_seconds 300 + clock_skew_seconds 60.
        let old = Session::new("no-exp-old");
        let r = envoy.logout(&token_without_exp(&old, jws::now() - 360 - 40));
        check_endpoint_answer(
            &mut c,
            "no exp, iat older than max_token_age + skew",
            &r,
            400,
            Some("token_too_old"),
        );
        check_passes_everywhere(&mut c, &envoy, "no exp, too old: not revoked", &old);
    }

    let mut config = base_config();
    let mut strict = issuer_config(REQUIRE_EXP_ISSUER, &["RS256"]);
    strict["require_exp"] = json!(true);
    config["issuers"].as_array_mut().unwrap().push(strict);
    match Envoy::try_start(&config) {
        Ok(envoy) => {
            let session = Session::of(REQUIRE_EXP_ISSUER, "require-exp");
            let r = envoy.logout(&token_without_exp(&session, jws::now()));
            check_endpoint_answer(&mut c, "require_exp: no exp", &r, 400, Some("exp_missing"));
            let r = envoy.logout(&session.logout_token());
            check_endpoint_answer(&mut c, "require_exp: with exp", &r, 200, None);
            let plain = Session::new("default-issuer");
            let r = envoy.logout(&token_without_exp(&plain, jws::now()));
            check_endpoint_answer(
                &mut c,
                "require_exp on another issuer: no exp here",
                &r,
                200,
                None,
            );
        }
        Err(e) => c.fail(format!(
            "issuer option `\"require_exp\": true` refused, Envoy did not start: {}",
            start_error_line(&e)
        )),
    }
    c.finish("logout token without exp");
}

// ---------------------------------------------------------------------------------------------
// 7. A logout refused for a store reason does not consume its `jti`.

#[test]
fn item7_store_refusal_does_not_consume_the_jti() {
    let mut config = base_config();
    merge(
        &mut config,
        json!({
            "max_revocations": 2,
            "revocation_ttl_seconds": 2,
            // Today needed to make the store full deterministic; still accepted (and ignored)
            // once max_revocations is an exact global cap.
            "revocation_buckets": 1,
        }),
    );
    let envoy = Envoy::start(&config);
    let mut c = Checks::new();

    for i in 0..2 {
        let s = Session::new("fill");
        let r = envoy.logout(&s.logout_token());
        check_endpoint_answer(&mut c, &format!("logout {} of 2", i + 1), &r, 200, None);
    }
    let t = Session::new("third");
    let mut claims = t.logout_claims();
    let iat = jws::now();
    claims["iat"] = json!(iat);
    claims["exp"] = json!(iat + 120);
    let token = keys().sign(Alg::Rs256, &claims);
    let r = envoy.logout(&token);
    check_endpoint_answer(
        &mut c,
        "third logout, store full",
        &r,
        400,
        Some("store_full"),
    );

    // Re-send T until the first two revocations expired (TTL 2 s): not store_full any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = r;
    while error_description(&last).starts_with("store_full") && Instant::now() < deadline {
        poll(Duration::from_millis(300), || false);
        last = envoy.logout(&token);
    }
    c.check(!error_description(&last).starts_with("store_full"), || {
        format!(
            "the store stayed full 10 s after its 2 s revocations: {}",
            last.summary()
        )
    });
    check_endpoint_answer(
        &mut c,
        "the same token once the store has room (its jti must not have been consumed)",
        &last,
        200,
        None,
    );
    if last.status == 200 {
        // Its revocation lives 2 s (whole seconds, so maybe 1): check at once.
        let passed = passes(&envoy, &t, 6);
        c.check(passed == 0, || {
            format!("T's session passed {passed}/6 times right after its logout was accepted")
        });
    }
    c.finish("store refusal keeps the jti");
}

// ---------------------------------------------------------------------------------------------
// 9. Two issuers never share a key record.

/// Two different issuer strings with the same FNV-1a 64 hash (0xd7edf13a6abeb297), so today the
/// same `bcl:k:<hash>` (keys) and `bcl:a:<hash>` (fetch attempt) shared-data keys.
///
/// Found with a throw-away program (not committed): van Oorschot-Wiener parallel collision
/// search with distinguished points (20 low zero bits) on
/// `f(x) = fnv1a64("https://idp.example/" + hex16(x))` (offset basis 0xcbf29ce484222325,
/// prime 0x100000001b3, lowercase hex): the collision came after 1.36e10 evaluations (~24 min
/// of one shared core). The test checks the pair again before using it.
const COLLIDING_ISSUERS: [&str; 2] = [COLLISION_A, COLLISION_B];
const COLLISION_A: &str = "https://idp.example/46f2553b2cd1a1b4";
const COLLISION_B: &str = "https://idp.example/cc60e937ad25e664";

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The remote issuer entry of item 9: keys from the test IdP at `path`.
fn remote_issuer(idp: &Idp, issuer: &str, alg: &str, path: &str) -> Value {
    json!({
        "issuer": issuer,
        "client_ids": [CLIENT_ID],
        "algorithms": [alg],
        "jwks_uri": format!("{}{path}", idp.base_url()),
        "cluster": "idp",
        "jwks_refresh_seconds": 2,
        "jwks_min_refetch_seconds": 1,
    })
}

/// The example JWKS with only the key `kid`.
fn jwks_only(kid: &str) -> Value {
    let mut jwks = keys().jwks();
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] == kid);
    jwks
}

#[test]
fn item9_issuer_key_records_do_not_collide() {
    let [a, b] = COLLIDING_ISSUERS;
    assert_ne!(a, b);
    assert_eq!(
        fnv1a64(a.as_bytes()),
        fnv1a64(b.as_bytes()),
        "the hard-coded pair must collide"
    );

    let idp = Idp::start().unwrap();
    idp.set(
        "/jwks-a",
        Answer::json("rsa only", &jwks_only(Alg::Rs256.kid())),
    );
    idp.set(
        "/jwks-b",
        Answer::json("ec only", &jwks_only(Alg::Es256.kid())),
    );
    let config = json!({
        "backchannel_path": BACKCHANNEL_PATH,
        "tick_seconds": 1,
        "issuers": [
            remote_issuer(&idp, a, "RS256", "/jwks-a"),
            remote_issuer(&idp, b, "ES256", "/jwks-b"),
        ],
    });
    let envoy = Envoy::start_with_idp(&config, idp.port());
    let mut c = Checks::new();

    let logout_a = |c: &mut Checks, case: &str| {
        let s = Session::of(a, "a");
        let r = envoy.logout(&keys().sign(Alg::Rs256, &s.logout_claims()));
        check_endpoint_answer(c, &format!("{case}: issuer A (RS256)"), &r, 200, None);
    };
    let logout_b = |c: &mut Checks, case: &str| {
        let s = Session::of(b, "b");
        let r = envoy.logout(&keys().sign(Alg::Es256, &s.logout_claims()));
        check_endpoint_answer(c, &format!("{case}: issuer B (ES256)"), &r, 200, None);
    };

    // First logouts: each fetches its issuer's keys on the unknown kid.
    logout_a(&mut c, "first logout");
    logout_b(&mut c, "first logout");

    // The periodic refresh (every 2 s) fetches both again.
    let refreshed = poll(Duration::from_secs(12), || {
        idp.count("/jwks-a") >= 2 && idp.count("/jwks-b") >= 2
    });
    c.check(refreshed, || {
        format!(
            "both issuers' keys should be refreshed every 2 s: {} fetches of /jwks-a, {} of \
             /jwks-b in 12 s",
            idp.count("/jwks-a"),
            idp.count("/jwks-b")
        )
    });

    // Across later fetches, both issuers keep verifying with their own keys.
    for round in 1..=4 {
        let hits = idp.hits().len();
        logout_a(&mut c, &format!("round {round}"));
        logout_b(&mut c, &format!("round {round}"));
        logout_a(&mut c, &format!("round {round}, again"));
        // Wait for the next key fetch before the next round.
        poll(Duration::from_secs(5), || idp.hits().len() > hits);
    }

    // B's token signed with A's RSA key: refused.
    let s = Session::of(b, "cross");
    let r = envoy.logout(&keys().sign(Alg::Rs256, &s.logout_claims()));
    c.check(r.status == 400, || {
        format!(
            "issuer B's token signed with A's RSA key: want 400, got {}",
            r.summary()
        )
    });
    check_passes_everywhere(&mut c, &envoy, "cross-signed logout revoked nothing", &s);
    // And A's token signed with B's EC key.
    let s = Session::of(a, "cross");
    let r = envoy.logout(&keys().sign(Alg::Es256, &s.logout_claims()));
    c.check(r.status == 400, || {
        format!(
            "issuer A's token signed with B's EC key: want 400, got {}",
            r.summary()
        )
    });
    c.finish("colliding issuers");
}

// ---------------------------------------------------------------------------------------------
// 10. Configurations with an absurd worst case are refused.

/// Starts Envoy with `config` and expects the filter to refuse it (as in tests/operations.rs):
/// Envoy exits, or runs without serving through the filter. Returns Envoy's log.
fn expect_refused(config: &Value) -> String {
    match Envoy::try_start(config) {
        Err(StartError::Exited { log, .. }) | Err(StartError::NotReady { log, .. }) => log,
        Err(StartError::Io(e)) => panic!("could not run Envoy: {e}"),
        Ok(envoy) => {
            // The plugin was configured before Envoy became ready: its log line, if any, is
            // already written.
            let r = envoy.send(&Request::get("/app"));
            format!(
                "(Envoy started and answered GET /app with {})\n{}",
                r.summary(),
                envoy.log()
            )
        }
    }
}

#[test]
fn item10_absurd_configurations_are_refused() {
    let mut c = Checks::new();
    for (case, patch) in [
        (
            "max_revocations 10000000",
            json!({"max_revocations": 10_000_000}),
        ),
        (
            "max_revocations 10000000, revocation_buckets 1",
            json!({"max_revocations": 10_000_000, "revocation_buckets": 1}),
        ),
        (
            "max_revocations 2000001",
            json!({"max_revocations": 2_000_001}),
        ),
    ] {
        let mut config = base_config();
        merge(&mut config, patch);
        let log = expect_refused(&config);
        let line = log
            .lines()
            .find(|l| l.contains("invalid plugin configuration"))
            .map(str::to_string);
        c.check(
            line.as_deref()
                .is_some_and(|l| l.contains("invalid plugin configuration: max_revocations:")),
            || {
                format!(
                    "{case}: want a log line `invalid plugin configuration: max_revocations: ...`, \
                     got {line:?}"
                )
            },
        );
    }

    // The bound itself is accepted.
    let mut config = base_config();
    config["max_revocations"] = json!(2_000_000);
    match Envoy::try_start(&config) {
        Ok(envoy) => {
            let s = Session::new("bound");
            let r = envoy.logout(&s.logout_token());
            check_endpoint_answer(&mut c, "max_revocations 2000000: a logout", &r, 200, None);
        }
        Err(e) => c.fail(format!(
            "max_revocations 2000000 (the bound) should be accepted: {}",
            start_error_line(&e)
        )),
    }
    c.finish("absurd configurations");
}
