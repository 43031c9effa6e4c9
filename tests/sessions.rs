//! The session side: how a revoked or unreadable session cookie is refused, revocations that
//! expire, a store that stays bounded, and a full store that refuses new logouts.

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Checks the `Set-Cookie` headers clear every cookie of DESIGN.md's default `clear_cookies`.
fn check_cookies_cleared(c: &mut Checks, case: &str, r: &Response) {
    let set_cookies = r.headers_all("set-cookie");
    let mut problems = Vec::new();
    for name in CLEARED_COOKIES {
        let Some(v) = set_cookies
            .iter()
            .find(|v| v.starts_with(&format!("{name}=")))
        else {
            problems.push(format!("no Set-Cookie for {name}"));
            continue;
        };
        let attrs: Vec<String> = v
            .split(';')
            .map(|a| a.trim().to_ascii_lowercase())
            .collect();
        let want = [
            format!("{}=deleted", name.to_ascii_lowercase()),
            "path=/".to_string(),
            "expires=thu, 01 jan 1970 00:00:00 gmt".to_string(),
            "max-age=0".to_string(),
            "secure".to_string(),
            "httponly".to_string(),
        ];
        let missing: Vec<&String> = want.iter().filter(|w| !attrs.contains(w)).collect();
        if !missing.is_empty() {
            problems.push(format!("`{v}` lacks {missing:?}"));
        }
    }
    c.check(problems.is_empty(), || {
        format!(
            "{case}: cookies not cleared as DESIGN.md says: {}",
            problems.join("; ")
        )
    });
    c.check(
        r.header("cache-control")
            .is_some_and(|v| v.contains("no-store")),
        || format!("{case}: want Cache-Control no-store: {}", r.summary()),
    );
}

fn check_json_error(c: &mut Checks, case: &str, r: &Response, status: u16, error: &str) {
    c.check(r.status == status, || {
        format!("{case}: want {status}, got {}", r.summary())
    });
    c.check(r.json().is_some_and(|v| v["error"] == error), || {
        format!("{case}: want JSON error {error:?}, got {}", r.summary())
    });
    c.check(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        || {
            format!(
                "{case}: want Content-Type application/json: {}",
                r.summary()
            )
        },
    );
    check_cookies_cleared(c, case, r);
}

#[test]
fn refused_sessions_get_a_redirect_or_a_401_with_cleared_cookies() {
    let mut config = base_config();
    config["session"] = json!({"api_path_prefixes": ["/api/"]});
    let envoy = Envoy::start(&config);
    let mut c = Checks::new();

    let revoked = Session::new("revoked");
    let other = Session::new("other");
    let r = envoy.logout(&revoked.logout_token());
    check_endpoint_answer(&mut c, "logout", &r, 200, None);

    let hits_before = envoy.upstream.hits();

    // A page navigation: back to the same URL (query kept), cookies cleared.
    for (case, extra) in [
        ("navigation, Accept text/html", None),
        (
            "navigation, Sec-Fetch-Mode navigate",
            Some(("Sec-Fetch-Mode", "navigate")),
        ),
    ] {
        let mut req = Request::get("/app/page?x=1&y=a%20b")
            .header("Cookie", &format!("IdToken={}", revoked.id_token))
            .header("Accept", "text/html,application/xhtml+xml");
        if let Some((n, v)) = extra {
            req = req.header(n, v);
        }
        let r = envoy.send(&req);
        c.check(r.status == 302, || {
            format!("{case}: want 302, got {}", r.summary())
        });
        c.check(
            r.header("location") == Some("/app/page?x=1&y=a%20b"),
            || {
                format!(
                    "{case}: want Location = the same path and query, got {}",
                    r.summary()
                )
            },
        );
        check_cookies_cleared(&mut c, case, &r);
    }

    // Every cookie of the oauth2 filter present: still refused, all cleared.
    {
        let case = "navigation with every oauth2 cookie";
        let cookie = format!(
            "BearerToken=b; OauthHMAC=h; OauthExpires=9999999999; IdToken={}; RefreshToken=r",
            revoked.id_token
        );
        let r = envoy.send(
            &Request::get("/")
                .header("Cookie", &cookie)
                .header("Accept", "text/html"),
        );
        c.check(r.status == 302 && r.header("location") == Some("/"), || {
            format!("{case}: want 302 to /, got {}", r.summary())
        });
        check_cookies_cleared(&mut c, case, &r);
    }

    // API calls: 401 JSON.
    let api_calls = [
        (
            "API call, Accept application/json",
            "/app/data",
            "application/json",
            None,
        ),
        (
            "API call, api_path_prefixes /api/",
            "/api/me",
            "text/html",
            None,
        ),
        (
            "API call, Sec-Fetch-Mode cors",
            "/app/data",
            "*/*",
            Some(("Sec-Fetch-Mode", "cors")),
        ),
    ];
    for (case, path, accept, extra) in api_calls {
        let mut req = Request::get(path)
            .header("Cookie", &format!("IdToken={}", revoked.id_token))
            .header("Accept", accept);
        if let Some((n, v)) = extra {
            req = req.header(n, v);
        }
        let r = envoy.send(&req);
        check_json_error(&mut c, case, &r, 401, "session_revoked");
    }

    // Unreadable session cookies are refused too.
    for (case, value) in [
        ("malformed cookie: garbage", "garbage".to_string()),
        (
            "malformed cookie: three parts, not JSON",
            "a.b.c".to_string(),
        ),
        (
            "malformed cookie: JWT without sub or sid",
            keys().sign_json(
                Alg::Rs256,
                &jws::header(Alg::Rs256, Some("JWT")),
                &json!({"iss": ISSUER, "iat": jws::now()}),
            ),
        ),
    ] {
        let r = envoy.send(
            &Request::get("/api/me")
                .header("Cookie", &format!("IdToken={value}"))
                .header("Accept", "application/json"),
        );
        check_json_error(&mut c, case, &r, 401, "invalid_session");
        let r = envoy.get_with_cookie("/app/page", &value, "text/html");
        c.check(r.status == 302, || {
            format!("{case} (navigation): want 302, got {}", r.summary())
        });
    }

    let refused_hits = envoy.upstream.hits() - hits_before;
    c.check(refused_hits == 0, || {
        format!("{refused_hits} refused requests reached the upstream")
    });

    // No session cookie, or another live session: passes untouched.
    for (case, req) in [
        (
            "no cookie",
            Request::get("/app/page").header("Accept", "text/html"),
        ),
        (
            "other cookies only",
            Request::get("/app/page").header("Cookie", "theme=dark; BearerToken=x"),
        ),
        (
            "another session",
            Request::get("/api/me")
                .header("Cookie", &format!("IdToken={}", other.id_token))
                .header("Accept", "application/json"),
        ),
    ] {
        let r = envoy.send(&req);
        c.check(r.status == 200 && r.body_str() == UPSTREAM_BODY, || {
            format!("{case}: want the upstream's 200, got {}", r.summary())
        });
    }

    let revoked_count = envoy.bcl_stat("bcl.session.revoked");
    c.check(revoked_count == 6, || {
        format!("bcl.session.revoked should count 6 refusals, is {revoked_count}")
    });
    let malformed_count = envoy.bcl_stat("bcl.session.malformed");
    c.check(malformed_count == 6, || {
        format!("bcl.session.malformed should count 6 refusals, is {malformed_count}")
    });
    c.finish("session refusals");
}

#[test]
fn revocations_expire_after_their_ttl() {
    let mut config = base_config();
    config["revocation_ttl_seconds"] = json!(2);
    config["tick_seconds"] = json!(1);
    let envoy = Envoy::start(&config);
    let mut c = Checks::new();

    let session = Session::new("ttl");
    let r = envoy.logout(&session.logout_token());
    let logged_out_at = Instant::now();
    check_endpoint_answer(&mut c, "logout", &r, 200, None);
    check_refused_everywhere(&mut c, &envoy, "right after logout", &session);

    // Poll until the session passes again on every worker (both VMs see the expiry).
    let back = poll(Duration::from_secs(15), || {
        passes(&envoy, &session, 10) == 10
    });
    let after = logged_out_at.elapsed();
    c.check(back, || {
        format!("the session is still refused {after:?} after a logout with a 2 s TTL")
    });
    // Expiry times are whole seconds: a 2 s TTL may end up to 1 s early.
    c.check(after >= Duration::from_secs(1), || {
        format!("the revocation ended after {after:?}, well before its 2 s TTL")
    });
    c.finish("revocation TTL");
}

/// Sends `n` logouts of distinct new sessions; returns the last session (the last to expire).
fn logout_wave(c: &mut Checks, envoy: &Envoy, label: &str, n: usize) -> Session {
    let mut last = None;
    for i in 0..n {
        let s = Session::new(label);
        let r = envoy.logout(&keys().sign(Alg::EdDsa, &s.logout_claims()));
        if r.status != 200 {
            c.fail(format!("{label} logout {i}: {}", r.summary()));
        }
        last = Some(s);
    }
    last.unwrap()
}

#[test]
fn revocation_store_stays_bounded() {
    const WAVE: usize = 300;
    let mut config = base_config();
    config["revocation_ttl_seconds"] = json!(2);
    config["tick_seconds"] = json!(1);
    let envoy = Envoy::start(&config);
    let mut c = Checks::new();
    let gauge = || envoy.bcl_stat("bcl.store.revocation_entries");

    // Warm up both workers, then measure.
    let warm = Session::new("warm");
    passes(&envoy, &warm, 10);
    let mem_start = envoy.memory_allocated();

    let last_of_wave1 = logout_wave(&mut c, &envoy, "wave1", WAVE);
    let after_wave1 = gauge();
    let mem_wave1 = envoy.memory_allocated();
    c.check(after_wave1 >= WAVE as i64 / 2, || {
        format!("after {WAVE} logouts the entries gauge reads {after_wave1}")
    });

    // Past the TTL: the last wave-1 session passes again, so every wave-1 entry has expired.
    let expired = poll(Duration::from_secs(20), || {
        passes(&envoy, &last_of_wave1, 4) == 4
    });
    c.check(expired, || "wave 1 revocations never expired".to_string());
    // Expired entries stop counting once the sweep has passed over them (one pass over the
    // whole store takes 32 ticks).
    let swept = poll(Duration::from_secs(45), || gauge() <= (WAVE / 10) as i64);
    c.check(swept, || {
        format!("expired entries never swept: gauge {}", gauge())
    });

    logout_wave(&mut c, &envoy, "wave2", WAVE);
    let after_wave2 = gauge();
    let mem_wave2 = envoy.memory_allocated();
    let bound = (WAVE + WAVE / 5) as i64;
    c.check(after_wave2 <= bound, || {
        format!(
            "entries after two waves of {WAVE} (the first expired): {after_wave2}, want <= {bound} \
             (wave 1 alone: {after_wave1})"
        )
    });

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "memory allocated: start {:.1} MiB, after wave 1 {:.1} MiB, after wave 2 {:.1} MiB; \
         entries gauge: {after_wave1} then {after_wave2}",
        mib(mem_start),
        mib(mem_wave1),
        mib(mem_wave2)
    );
    c.check(mem_start > 0 && mem_wave2 > 0, || {
        "admin /memory gave no allocated figure".to_string()
    });
    let growth = mem_wave2.saturating_sub(mem_start);
    c.check(growth < 16 * 1024 * 1024, || {
        format!(
            "Envoy's allocated memory grew by {:.1} MiB over {} logouts",
            mib(growth),
            2 * WAVE
        )
    });
    c.finish("bounded store");
}

#[test]
fn a_full_store_refuses_new_logouts() {
    let mut config = base_config();
    config["max_revocations"] = json!(5);
    let envoy = Envoy::start(&config);
    let mut c = Checks::new();

    let stored: Vec<Session> = (0..5).map(|_| Session::new("fill")).collect();
    for (i, s) in stored.iter().enumerate() {
        let r = envoy.logout(&s.logout_token());
        check_endpoint_answer(&mut c, &format!("logout {} of 5", i + 1), &r, 200, None);
    }
    for i in 0..3 {
        let extra = Session::new("overflow");
        let r = envoy.logout(&extra.logout_token());
        check_endpoint_answer(
            &mut c,
            &format!("logout over max_revocations ({})", i + 1),
            &r,
            400,
            Some("store_full"),
        );
        check_passes_everywhere(&mut c, &envoy, "overflow session not revoked", &extra);
    }
    for s in &stored {
        check_refused_everywhere(&mut c, &envoy, "stored revocation kept", s);
    }
    let rejected = envoy.bcl_stat("bcl.logout.rejected.store_full");
    c.check(rejected == 3, || {
        format!("bcl.logout.rejected.store_full should be 3, is {rejected}")
    });
    c.finish("full store");
}

/// A session this Envoy's workers remember as live is refused from the first request after the
/// IdP's 200, on every worker, both through the change gauge (the default) and through shared
/// data when a `stats_matcher` keeps the gauge from counting.
#[test]
fn a_remembered_live_session_is_refused_at_once_with_or_without_the_change_gauge() {
    const NO_CHANGE_GAUGE: &str = "stats_config:
  stats_matcher:
    exclusion_list:
      patterns:
      - prefix: wasmcustom.bcl.store.changes
";
    for gauge in [true, false] {
        let envoy = if gauge {
            Envoy::start(&base_config())
        } else {
            Envoy::start_with_bootstrap(&base_config(), NO_CHANGE_GAUGE)
        };
        let case = if gauge { "change gauge" } else { "shared data" };
        let mut c = Checks::new();
        let session = Session::new("remembered");
        let other = Session::new("other");
        check_passes_everywhere(&mut c, &envoy, &format!("{case}: before"), &session);
        check_passes_everywhere(&mut c, &envoy, &format!("{case}: before"), &other);
        let r = envoy.logout(&session.logout_token());
        check_endpoint_answer(&mut c, case, &r, 200, None);
        check_refused_everywhere(&mut c, &envoy, &format!("{case}: after"), &session);
        check_passes_everywhere(&mut c, &envoy, &format!("{case}: after"), &other);
        let fell_back = envoy.log().contains("does not count");
        c.check(fell_back != gauge, || {
            format!("{case}: the log should say whether the gauge counts; it says {fell_back}")
        });
        if gauge {
            c.check(envoy.bcl_stat("bcl.store.changes") >= 1, || {
                format!("{case}: wasmcustom.bcl.store.changes never moved")
            });
        }
        c.finish(case);
    }
}
