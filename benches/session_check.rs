//! Native cost of the filter core's hot paths (`cargo bench --bench session_check`).
//!
//! std only (no criterion): each case runs in batches timed with `Instant`, and the report is
//! the median ns/op over the batches (min and max beside it, to show the noise). Nothing here
//! asserts a time: speed is measured and reported (bench/RESULTS.md), never tested.
//!
//! Cases:
//! - `parse_session_token`: base64url + JSON decode of a ~1 KB ID token (the cookie value);
//! - `check_session`: the whole per-request decision (cookie scan, decode, revocation lookup)
//!   against a `MemoryStore` holding 10,000 revocations, for a live session, a revoked `sid`,
//!   a user-level (`sub`) revocation, and no cookie at all;
//! - `process_logout`: the back-channel endpoint for an RS256 logout token signed with the
//!   example key in `envoy/keys/` (form decode, JWS verify in pure Rust, claim checks, replay
//!   cache, revocation write). Every iteration gets a fresh token, since a replayed `jti` is
//!   refused.
//!
//! Options (after `--`): `--quick` for fewer, shorter batches.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use envoy_backchannel_logout::bucket::{Entry, OnExisting};
use envoy_backchannel_logout::config::SessionConfig;
use envoy_backchannel_logout::config::{parse_config, FilterConfig};
use envoy_backchannel_logout::cookie_header::find_cookie;
use envoy_backchannel_logout::endpoint::process_logout;
use envoy_backchannel_logout::entry_id::{entry_id, EntryKind};
use envoy_backchannel_logout::jws::decode_part;
use envoy_backchannel_logout::key_set::KeySet;
use envoy_backchannel_logout::logout_token::KeySource;
use envoy_backchannel_logout::revocations::RevocationStore;
use envoy_backchannel_logout::session_cache::SessionCache;
use envoy_backchannel_logout::session_check::{
    check_session, SessionCredentials, SessionLookup, SessionVerdict,
};
use envoy_backchannel_logout::session_token::parse_session_token;
use envoy_backchannel_logout::shared_store::MemoryStore;
use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use serde_json::json;

const ISSUER: &str = "https://idp.example.test";
const CLIENT_ID: &str = "example-app";
const BCL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
const REVOCATIONS: usize = 10_000;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn keys_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/envoy/keys"))
}

/// The filter configuration of `envoy/envoy-local.yaml`, reduced to RS256, with the example
/// public keys inline.
fn config() -> FilterConfig {
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keys_dir().join("jwks.json")).unwrap()).unwrap();
    let raw = json!({
        "issuers": [{
            "issuer": ISSUER,
            "client_ids": [CLIENT_ID],
            "algorithms": ["RS256", "ES256", "EdDSA"],
            "jwks": jwks,
        }],
        "session": {"cookie_name": "IdToken", "api_path_prefixes": ["/api/"]},
    });
    parse_config(raw.to_string().as_bytes()).unwrap()
}

struct InlineKeys<'a>(&'a KeySet);

impl KeySource for InlineKeys<'_> {
    fn keys(&self, issuer_index: usize) -> Option<&KeySet> {
        (issuer_index == 0).then_some(self.0)
    }
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

/// An ID token shaped like a real IdP's (about 1 KB): the claims an OpenID Provider puts in
/// besides the ones the filter reads, and 256 bytes of "signature" (not checked on this path).
fn id_token(sub: &str, sid: &str, iat: i64) -> String {
    let header = json!({"alg": "RS256", "kid": "k", "typ": "JWT"});
    let payload = json!({
        "iss": ISSUER,
        "sub": sub,
        "aud": CLIENT_ID,
        "exp": iat + 3600,
        "iat": iat,
        "auth_time": iat - 2,
        "nonce": "n-0S6_WzA2Mj-Q4vZxYt1d8p",
        "sid": sid,
        "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
        "acr": "urn:mace:incommon:iap:silver",
        "amr": ["pwd", "otp"],
        "azp": CLIENT_ID,
        "email": "jane.doe@example.test",
        "email_verified": true,
        "name": "Jane Doe",
        "given_name": "Jane",
        "family_name": "Doe",
        "preferred_username": "jdoe",
        "locale": "en-GB",
        "groups": ["staff", "engineering", "on-call"],
    });
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(&[0x5a; 256])
    )
}

/// The `Cookie` header the oauth2 filter leaves for the filters after it: its own cookies
/// around the ID token (values of realistic sizes).
fn cookie_header(id_token: &str) -> String {
    format!(
        "OauthHMAC={}; OauthExpires={}; BearerToken={}; IdToken={}; RefreshToken={}",
        b64(&[7; 32]),
        now() + 3600,
        b64(&[3; 600]),
        id_token,
        b64(&[9; 300]),
    )
}

/// Fills the store with `REVOCATIONS` live revocations: nine in ten for a `sid`, one in ten
/// for a `sub`, all of the configured issuer (the worst case for a lookup: same issuer bytes).
fn fill_store(rules: &RevocationStore, store: &MemoryStore, now: i64) {
    rules.ensure_created(store).unwrap();
    for i in 0..REVOCATIONS {
        let (kind, value) = if i % 10 == 9 {
            (EntryKind::User, format!("user-{i:06}"))
        } else {
            (EntryKind::Session, format!("sid-{i:06}-5b1f0c2e"))
        };
        let entry = Entry {
            id: entry_id(kind, ISSUER, &value),
            cutoff: (now - 10) as u32,
            expires_at: (now + 86_400) as u32,
        };
        rules
            .revocations()
            .insert(store, entry, OnExisting::Merge, now)
            .unwrap();
    }
}

/// The per-request decision for one Cookie header (or none), with this worker's cache.
fn decide_cookie(
    header: Option<&str>,
    cfg: &SessionConfig,
    rules: &RevocationStore,
    store: &MemoryStore,
    cache: &mut SessionCache,
    now: i64,
) -> SessionVerdict {
    let lines: Vec<&[u8]> = header.map(str::as_bytes).into_iter().collect();
    check_session(
        SessionCredentials {
            cookie_lines: &lines,
            authorization_lines: &[],
        },
        cfg,
        &mut SessionLookup {
            rules,
            store,
            cache,
            clock: &|| now,
        },
    )
    .unwrap()
}

/// A logout token signed with the example RSA key, as an IdP sends it (form-encoded body).
fn logout_body(key: &RS256KeyPair, n: usize) -> Vec<u8> {
    #[derive(Serialize, Deserialize)]
    struct LogoutClaims {
        sid: String,
        events: serde_json::Value,
    }
    let extra = LogoutClaims {
        sid: format!("bench-sid-{n}"),
        events: json!({ BCL_EVENT: {} }),
    };
    let claims = Claims::with_custom_claims(extra, jwt_simple::prelude::Duration::from_secs(120))
        .with_issuer(ISSUER)
        .with_audience(CLIENT_ID)
        .with_subject(format!("bench-user-{n}"))
        .with_jwt_id(format!("bench-jti-{n}-{}", now()));
    let token = key.sign(claims).unwrap();
    // base64url and dots need no form escaping.
    format!("logout_token={token}").into_bytes()
}

/// A plain lookup-table base64url decoder (no padding), for comparison only: the filter uses
/// ct_codecs' constant-time decoder, which is built for secrets, not for a public payload.
fn table_base64url(input: &str) -> Option<Vec<u8>> {
    const INVALID: u8 = 0xff;
    const TABLE: [u8; 256] = {
        let mut t = [INVALID; 256];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut i = 0;
        while i < 64 {
            t[alphabet[i] as usize] = i as u8;
            i += 1;
        }
        t
    };
    let bytes = input.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in bytes {
        let v = TABLE[c as usize];
        if v == INVALID {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits must be zero (canonical encoding).
    (acc & ((1 << bits) - 1) == 0).then_some(out)
}

struct Plan {
    batches: usize,
    target: Duration,
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
    iters: usize,
}

/// Runs `op(i)` in `plan.batches` batches of a size calibrated to last about `plan.target`.
fn measure(plan: &Plan, mut op: impl FnMut(usize)) -> Stats {
    let mut i = 0usize;
    // Warm-up and calibration.
    let mut per_batch = 1usize;
    loop {
        let start = Instant::now();
        for _ in 0..per_batch {
            op(i);
            i += 1;
        }
        let took = start.elapsed();
        if took >= plan.target / 4 || per_batch >= 1 << 24 {
            let per_op = took.as_secs_f64() / per_batch as f64;
            per_batch = ((plan.target.as_secs_f64() / per_op) as usize).max(1);
            break;
        }
        per_batch *= 2;
    }
    let mut samples = Vec::with_capacity(plan.batches);
    for _ in 0..plan.batches {
        let start = Instant::now();
        for _ in 0..per_batch {
            op(i);
            i += 1;
        }
        samples.push(start.elapsed().as_nanos() as f64 / per_batch as f64);
    }
    samples.sort_by(f64::total_cmp);
    Stats {
        median: samples[samples.len() / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
        iters: i,
    }
}

fn report(name: &str, detail: &str, s: &Stats) {
    println!(
        "| {name:<38} | {:>10.1} | {:>10.1} | {:>10.1} | {detail}",
        s.median, s.min, s.max
    );
}

fn main() {
    // cargo bench passes `--bench`; libtest-style filters are ignored.
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            batches: 5,
            target: Duration::from_millis(20),
        }
    } else {
        Plan {
            batches: 11,
            target: Duration::from_millis(60),
        }
    };

    let cfg = config();
    let rules = RevocationStore::new(&cfg.store_limits);
    let store = MemoryStore::default();
    let t = now();
    fill_store(&rules, &store, t);

    let live = id_token("248289761001", "f1f6a0e8-6f2b-4d55-9f1b-live", t - 60);
    let live_header = cookie_header(&live);
    let revoked_sid = id_token("248289761001", "sid-000500-5b1f0c2e", t - 60);
    let revoked_sid_header = cookie_header(&revoked_sid);
    let revoked_sub = id_token("user-000509", "f1f6a0e8-other-sid", t - 60);
    let revoked_sub_header = cookie_header(&revoked_sub);

    // The cases must decide what they claim to, or the timings mean nothing.
    let mut cache = SessionCache::default();
    let mut decide =
        |h: Option<&str>| decide_cookie(h, &cfg.session, &rules, &store, &mut cache, t);
    assert_eq!(decide(Some(&live_header)), SessionVerdict::Pass);
    assert_eq!(decide(None), SessionVerdict::Pass);
    assert!(matches!(
        decide(Some(&revoked_sid_header)),
        SessionVerdict::Refuse(_)
    ));
    assert!(matches!(
        decide(Some(&revoked_sub_header)),
        SessionVerdict::Refuse(_)
    ));

    println!(
        "store: {} revocations in {} keys, {} bytes of values; ID token {} bytes; Cookie header {} bytes",
        REVOCATIONS,
        store.key_count(),
        store.total_value_bytes(),
        live.len(),
        live_header.len()
    );
    println!();
    println!(
        "| {:<38} | {:>10} | {:>10} | {:>10} | notes",
        "case", "median ns", "min ns", "max ns"
    );
    println!("|{:-<40}|{:->12}|{:->12}|{:->12}|------", "", "", "", "");

    let s = measure(&plan, |_| {
        black_box(parse_session_token(black_box(live.as_bytes())).unwrap());
    });
    report(
        "parse_session_token (1 KB ID token)",
        "base64url + JSON of the payload",
        &s,
    );

    let payload_b64 = live.split('.').nth(1).unwrap();
    let s = measure(&plan, |_| {
        black_box(decode_part(black_box(payload_b64)).unwrap());
    });
    report(
        "  of which: base64url of the payload",
        &format!("jws::decode_part, {} chars", payload_b64.len()),
        &s,
    );

    assert_eq!(
        table_base64url(payload_b64),
        Some(decode_part(payload_b64).unwrap())
    );
    let s = measure(&plan, |_| {
        black_box(table_base64url(black_box(payload_b64)).unwrap());
    });
    report(
        "  reference: table-driven base64url",
        "NOT the filter's code: what a lookup-table decoder costs",
        &s,
    );

    let s = measure(&plan, |_| {
        black_box(find_cookie(&[black_box(live_header.as_bytes())], "IdToken"));
    });
    report(
        "find_cookie (2.4 KB Cookie header)",
        "split on ';', compare names",
        &s,
    );

    let live_claims = parse_session_token(live.as_bytes()).unwrap();
    let s = measure(&plan, |_| {
        black_box(
            rules
                .is_revoked(&store, black_box(&live_claims), t)
                .unwrap(),
        );
    });
    report(
        "is_revoked, live session",
        "2 bucket reads (copy + scan)",
        &s,
    );

    let s = measure(&plan, |_| {
        black_box(decide_cookie(
            None,
            &cfg.session,
            &rules,
            &store,
            &mut cache,
            t,
        ));
    });
    report("check_session, no Cookie header", "pass", &s);

    let s = measure(&plan, |_| {
        black_box(decide_cookie(
            Some(black_box(&live_header)),
            &cfg.session,
            &rules,
            &store,
            &mut cache,
            t,
        ));
    });
    report(
        "check_session, live session",
        "pass; remembered: 1 store read (generation)",
        &s,
    );

    let s = measure(&plan, |_| {
        black_box(decide_cookie(
            Some(black_box(&revoked_sid_header)),
            &cfg.session,
            &rules,
            &store,
            &mut cache,
            t,
        ));
    });
    report("check_session, revoked sid", "refuse; 1 store read", &s);

    let s = measure(&plan, |_| {
        black_box(decide_cookie(
            Some(black_box(&revoked_sub_header)),
            &cfg.session,
            &rules,
            &store,
            &mut cache,
            t,
        ));
    });
    report("check_session, revoked sub", "refuse; 2 store reads", &s);

    // The endpoint: pre-sign one token per iteration (signing is not what is measured).
    let pem = std::fs::read_to_string(keys_dir().join("example-rsa.pem")).unwrap();
    let key = RS256KeyPair::from_pem(&pem)
        .unwrap()
        .with_key_id("example-rsa");
    let keys = cfg.issuers[0].inline_keys.as_ref().unwrap();
    let policies = cfg.policies();
    let logout_plan = Plan {
        batches: if quick { 3 } else { 7 },
        target: Duration::from_millis(if quick { 10 } else { 25 }),
    };
    // Calibration + batches: about (batches + 2) × target / 200 µs tokens; mint generously.
    let want = (logout_plan.batches + 3) * logout_plan.target.as_micros() as usize / 150 + 64;
    let bodies: Vec<Vec<u8>> = (0..want).map(|n| logout_body(&key, n)).collect();
    let t = now();
    let first = process_logout(&bodies[0], &policies, &InlineKeys(keys), &rules, &store, t);
    assert!(first.result.is_ok(), "{:?}", first.result.err());
    let mut accepted = 0usize;
    let s = measure(&logout_plan, |i| {
        let body = &bodies[(i + 1) % bodies.len()];
        let outcome = process_logout(body, &policies, &InlineKeys(keys), &rules, &store, t);
        accepted += usize::from(outcome.result.is_ok());
        black_box(outcome);
    });
    report(
        "process_logout, RS256 (pure Rust)",
        &format!(
            "accepted {accepted} of {} (rest: jti replay after wrap-around)",
            s.iters
        ),
        &s,
    );
}
