//! Fleet-mode measurements for `bench/fleet.sh`: how fast a logout accepted by one Envoy
//! refuses the session on the other Envoys, how fast a restarted Envoy enforces what etcd
//! holds, and a bulk loader that writes revocations straight into etcd. Signs with the EXAMPLE
//! keys of `envoy/keys/` (test-only keys), as `examples/bcl_load.rs` does.
//!
//! ```text
//! # propagation: 1,000 logouts/s round robin over three Envoys, each followed by polls of the
//! # two others with the session's IdToken cookie until they refuse it
//! cargo run -q --release --example fleet_probe -- propagate \
//!     --envoys 127.0.0.1:10000,127.0.0.1:10001,127.0.0.1:10002 --count 10000 --rate 1000
//! # write 100,000 revocations (sids <prefix>0 .. <prefix>99999) into etcd through its JSON gateway
//! cargo run -q --release --example fleet_probe -- etcd-load --etcd 127.0.0.1:2379 \
//!     --prefix /bench/ --count 100000 --sid-prefix bulk-
//! # wait for the first refusal of a revoked session by an Envoy that is starting
//! cargo run -q --release --example fleet_probe -- first-refused --envoy 127.0.0.1:10000 \
//!     --sid bulk-42 --live-sid never-revoked --since-ns "$(date +%s%N)"
//! ```
//!
//! **propagate**: pre-signs `--count` logout tokens (`--alg`, default eddsa; `sid` =
//! `<sid-prefix><n>`, a unique `jti`, `iat` = signing time, `exp` = `iat + --ttl`) and as many
//! `IdToken` cookies for the same sids (EdDSA-signed ID tokens issued a minute ago; the session
//! path does not check their signature). Before the run it checks that a few of these sessions
//! and a control session are live (200) on every Envoy. Then `--threads` threads pace logout
//! `n` to start at `n / rate` seconds: POST it to Envoy `n % E` over a keep-alive connection,
//! take t0 when its 200 has been read, then GET `/` with the cookie and `Accept: text/html` (a
//! navigation: a refused session answers 302, a live one is forwarded upstream and answers 200)
//! on each other Envoy, in turn, round after round (`--poll-us` apart, default 500), until each
//! has answered 302 or `--timeout-ms` (default 5000) has passed. The figure per (logout, other
//! Envoy) is the time from t0 to the moment the 302 was read: an upper bound of the propagation,
//! by at most one poll round (`lower_bound_ms`: the time from t0 to sending the last poll that
//! still passed, 0 when the first poll was refused; the session was refused on that Envoy
//! between the two). `poll_rtt_ms` is the round-trip time of the polls (how loaded the Envoys
//! are). The first `--warmup` logouts (default 100) are left out of the
//! figures. After the run the control session must still be live everywhere.
//!
//! Prints one JSON object: `count`, `measured`, `rate_target`, `rate_achieved` (measured logouts
//! over the time from the first to the last POST's start), `schedule_lag_ms` (how late POSTs
//! started, p50/p99/max), `logout_statuses`, `post_ms` (the logout's own latency at the first
//! Envoy: p50/p90/p99/max), `propagation_ms` (both other Envoys together), `first_polled_ms` and
//! `second_polled_ms` (the other Envoy polled first in each round, and the one polled second),
//! `by_envoy_ms` (by the Envoy that refused), `never` (pairs not refused within the timeout),
//! `poll_statuses` (every status seen while polling), `polls_per_target` (mean),
//! `live_check` and `control_after`.
//!
//! **etcd-load**: writes revocations for sids `<sid-prefix><from>` .. `<sid-prefix><from+count-1>`
//! of `--iss` (cutoff now - 60, expiry now + `--ttl`, default 3600; no lease) with etcd's JSON
//! gateway (`POST /v3/kv/txn`, 128 puts per transaction, the default `--max-txn-ops`), over
//! `--connections` keep-alive connections (default 4) spread over the `--etcd` endpoints.
//! `--puts-per-txn N` (1 to 128) and `--lease ID` (attach the keys to that lease) are for
//! experiments. Prints `{written, txns, elapsed_s, per_s, retries}`.
//!
//! **first-refused**: GETs `/` with the `IdToken` cookie of `--sid` on `--envoy` every
//! `--interval-ms` (default 2) until the answer is 302 (connection refused, 503 while loading and
//! 200 are waited through), up to `--timeout-s` (default 300). Then one GET with `--live-sid`'s
//! cookie, which must pass. Prints `{ms, statuses, connect_errors, live_status}` where `ms` is the
//! time from `--since-ns` (Unix ns, e.g. taken just before Envoy was started) to the 302.

// A developer tool sharing the tests' signer: the crate's no-panic lints guard request paths
// in src/, not this.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/common/jws.rs"]
mod jws;

#[path = "support/keep_alive.rs"]
mod keep_alive;
use keep_alive::Conn;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use envoy_backchannel_logout::bucket::Entry;
use envoy_backchannel_logout::entry_id::{entry_id, EntryKind};
use envoy_backchannel_logout::fleet::record::{revocation_key, revocation_value};
use jws::{Alg, ExampleKeys};
use serde_json::{json, Value};

const USAGE: &str = "usage: fleet_probe propagate --envoys H:P,H:P[,..] --count N [--rate R] \
[--threads T] [--alg eddsa|es256|rs256] [--poll-us U] [--timeout-ms M] [--warmup W] \
[--sid-prefix P] [--ttl S]\n       fleet_probe etcd-load --etcd H:P[,..] --prefix /p/ --count N \
[--from F] [--sid-prefix P] [--connections K] [--ttl S] [--iss URL] [--puts-per-txn N] \
[--lease ID]\n       fleet_probe \
first-refused --envoy H:P --sid S --live-sid S --since-ns NS [--timeout-s S] [--interval-ms M]";

/// Flags as name -> value (every flag takes one value).
fn flags(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected {flag}\n{USAGE}"))?;
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        out.insert(name.to_string(), value.clone());
    }
    Ok(out)
}

struct Flags(BTreeMap<String, String>);

impl Flags {
    fn text(&self, name: &str, default: Option<&str>) -> Result<String, String> {
        match (self.0.get(name), default) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(d)) => Ok(d.to_string()),
            (None, None) => Err(format!("--{name} is required\n{USAGE}")),
        }
    }
    fn number(&self, name: &str, default: Option<u64>) -> Result<u64, String> {
        match (self.0.get(name), default) {
            (Some(v), _) => v.parse().map_err(|_| format!("--{name}: not a number")),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("--{name} is required\n{USAGE}")),
        }
    }
    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!("unknown option --{k}\n{USAGE}")),
            None => Ok(()),
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

// ------------------------------------------------------------------------------- HTTP/1.1

fn logout_request(authority: &str, token: &str) -> Vec<u8> {
    let body = format!("logout_token={token}");
    format!(
        "POST /bff/backchannel HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A navigation request with the session cookie: 302 when refused, 200 (upstream) when live.
fn session_request(authority: &str, id_token: &str) -> Vec<u8> {
    format!(
        "GET /app HTTP/1.1\r\nHost: {authority}\r\nAccept: text/html\r\nCookie: IdToken={id_token}\r\n\r\n"
    )
    .into_bytes()
}

/// The ID token of session `sid` as the oauth2 filter keeps it in the `IdToken` cookie.
fn id_token(keys: &ExampleKeys, sid: &str) -> String {
    let claims = jws::id_token_claims(sid, &format!("sub-{sid}"), jws::now() - 60);
    keys.sign_json(Alg::EdDsa, &jws::header(Alg::EdDsa, Some("JWT")), &claims)
}

// ------------------------------------------------------------------------------- figures

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i]
}

/// `{n, p50, p90, p99, max, mean}` of `values` (milliseconds, three decimals).
fn summary(values: &[f64]) -> Value {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    let mean = if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    };
    json!({
        "n": v.len(),
        "p50": r(percentile(&v, 0.50)),
        "p90": r(percentile(&v, 0.90)),
        "p99": r(percentile(&v, 0.99)),
        "max": r(v.last().copied().unwrap_or(f64::NAN)),
        "mean": r(mean),
    })
}

fn count_map(map: &BTreeMap<String, u64>) -> Value {
    json!(map)
}

// ------------------------------------------------------------------------------- propagate

/// What one logout showed.
struct Outcome {
    index: usize,
    post_status: u16,
    post_ms: f64,
    lag_ms: f64,
    started: Instant,
    /// (other Envoy, order polled in a round (0 first), ms from t0 to its 302 or None).
    seen: Vec<(usize, usize, Option<f64>)>,
    /// Per other Envoy that refused: ms from t0 to sending the last poll it still let through
    /// (0 when the first poll was refused): the refusal came after this.
    lower: Vec<f64>,
    /// Round-trip time of every poll (ms).
    rtt: Vec<f64>,
    polls: u64,
    poll_statuses: BTreeMap<String, u64>,
    transport_errors: u64,
}

fn propagate(f: &Flags) -> Result<Value, String> {
    f.check_known(&[
        "envoys",
        "count",
        "rate",
        "threads",
        "alg",
        "poll-us",
        "timeout-ms",
        "warmup",
        "sid-prefix",
        "ttl",
    ])?;
    let envoys: Vec<String> = f
        .text("envoys", None)?
        .split(',')
        .map(str::to_string)
        .collect();
    if envoys.len() < 2 {
        return Err("--envoys needs at least two Envoys".into());
    }
    let count = f.number("count", None)? as usize;
    let rate = f.number("rate", Some(1000))?.max(1) as f64;
    let threads = f.number("threads", Some(32))?.max(1) as usize;
    let alg_name = f.text("alg", Some("eddsa"))?;
    let alg = Alg::parse(&alg_name).ok_or_else(|| format!("unknown alg {alg_name}"))?;
    let poll = Duration::from_micros(f.number("poll-us", Some(500))?);
    let timeout = Duration::from_millis(f.number("timeout-ms", Some(5000))?);
    let warmup = f.number("warmup", Some(100))? as usize;
    let sid_prefix = f.text("sid-prefix", Some(&format!("prop-{}-", std::process::id())))?;
    let ttl = f.number("ttl", Some(600))? as i64;

    // Sign everything first (all CPUs; nothing is measured yet).
    let keys = Arc::new(ExampleKeys::load()?);
    let sign_start = Instant::now();
    let next = AtomicUsize::new(0);
    let signers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut pairs: Vec<(usize, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..signers)
            .map(|_| {
                let (keys, next, sid_prefix) = (&keys, &next, &sid_prefix);
                s.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= count {
                            break out;
                        }
                        let sid = format!("{sid_prefix}{n}");
                        let iat = jws::now();
                        let claims = json!({
                            "iss": jws::ISSUER, "aud": jws::CLIENT_ID, "iat": iat, "exp": iat + ttl,
                            "jti": jws::unique_id("jti-"), "sid": sid,
                            "events": {jws::BCL_EVENT: {}},
                        });
                        out.push((n, keys.sign(alg, &claims), id_token(keys, &sid)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    pairs.sort_by_key(|p| p.0);
    let sign_s = sign_start.elapsed().as_secs_f64();
    let control = id_token(&keys, &format!("{sid_prefix}control"));

    // A few sessions, and the control one, must be live everywhere before the run.
    let mut live_check: BTreeMap<String, u64> = BTreeMap::new();
    for authority in &envoys {
        let mut conn = Conn::new(authority);
        let sample = pairs.iter().rev().take(5).map(|p| p.2.as_str());
        for cookie in sample.chain(std::iter::once(control.as_str())) {
            let status = conn
                .exchange(&session_request(authority, cookie))
                .map(|(s, _)| s.to_string())
                .unwrap_or_else(|e| format!("error: {e}"));
            *live_check.entry(status).or_default() += 1;
        }
    }
    if live_check.keys().any(|k| k != "200") {
        return Err(format!(
            "sessions are not live before the run: {live_check:?}"
        ));
    }

    let pairs = Arc::new(pairs);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (pairs, next, envoys) = (pairs.clone(), next.clone(), envoys.clone());
            std::thread::spawn(move || {
                let mut conns: Vec<Conn> = envoys.iter().map(|a| Conn::new(a)).collect();
                let mut out = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= pairs.len() {
                        break out;
                    }
                    let due = start + Duration::from_secs_f64(n as f64 / rate);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    out.push(one_logout(
                        &mut conns, &envoys, n, &pairs[n], due, poll, timeout,
                    ));
                }
            })
        })
        .collect();
    let mut outcomes: Vec<Outcome> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    outcomes.sort_by_key(|o| o.index);

    let mut control_after: BTreeMap<String, u64> = BTreeMap::new();
    for authority in &envoys {
        let status = Conn::new(authority)
            .exchange(&session_request(authority, &control))
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|e| format!("error: {e}"));
        *control_after.entry(status).or_default() += 1;
    }

    let measured: Vec<&Outcome> = outcomes.iter().filter(|o| o.index >= warmup).collect();
    let mut logout_statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut poll_statuses: BTreeMap<String, u64> = BTreeMap::new();
    let (mut all, mut first, mut second) = (Vec::new(), Vec::new(), Vec::new());
    let mut by_envoy: Vec<Vec<f64>> = vec![Vec::new(); envoys.len()];
    let (mut post, mut lag, mut lower, mut rtt) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut never, mut polls, mut targets, mut transport_errors) = (0u64, 0u64, 0u64, 0u64);
    for o in &measured {
        *logout_statuses
            .entry(o.post_status.to_string())
            .or_default() += 1;
        for (k, v) in &o.poll_statuses {
            *poll_statuses.entry(k.clone()).or_default() += v;
        }
        transport_errors += o.transport_errors;
        lag.push(o.lag_ms);
        if o.post_status != 200 {
            continue;
        }
        post.push(o.post_ms);
        lower.extend_from_slice(&o.lower);
        rtt.extend_from_slice(&o.rtt);
        polls += o.polls;
        for (envoy, order, ms) in &o.seen {
            targets += 1;
            match ms {
                Some(ms) => {
                    all.push(*ms);
                    by_envoy[*envoy].push(*ms);
                    if *order == 0 {
                        first.push(*ms);
                    } else {
                        second.push(*ms);
                    }
                }
                None => never += 1,
            }
        }
    }
    let span = match (measured.first(), measured.last()) {
        (Some(a), Some(b)) if measured.len() > 1 => (b.started - a.started).as_secs_f64(),
        _ => 0.0,
    };
    let by_envoy_json: serde_json::Map<String, Value> = by_envoy
        .iter()
        .enumerate()
        .map(|(i, v)| (envoys[i].clone(), summary(v)))
        .collect();
    Ok(json!({
        "count": outcomes.len(),
        "warmup": warmup.min(outcomes.len()),
        "measured": measured.len(),
        "alg": alg.name(),
        "sign_s": sign_s,
        "threads": threads,
        "poll_us": poll.as_micros() as u64,
        "timeout_ms": timeout.as_millis() as u64,
        "rate_target": rate,
        "rate_achieved": if span > 0.0 { (measured.len() - 1) as f64 / span } else { 0.0 },
        "schedule_lag_ms": summary(&lag),
        "logout_statuses": count_map(&logout_statuses),
        "post_ms": summary(&post),
        "propagation_ms": summary(&all),
        "lower_bound_ms": summary(&lower),
        "poll_rtt_ms": summary(&rtt),
        "first_polled_ms": summary(&first),
        "second_polled_ms": summary(&second),
        "by_envoy_ms": by_envoy_json,
        "pairs": targets,
        "never": never,
        "polls_per_target": if targets > 0 { polls as f64 / targets as f64 } else { 0.0 },
        "poll_statuses": count_map(&poll_statuses),
        "transport_errors": transport_errors,
        "live_check": count_map(&live_check),
        "control_after": count_map(&control_after),
    }))
}

#[allow(clippy::too_many_arguments)]
fn one_logout(
    conns: &mut [Conn],
    envoys: &[String],
    n: usize,
    (_, token, cookie): &(usize, String, String),
    due: Instant,
    poll: Duration,
    timeout: Duration,
) -> Outcome {
    let k = envoys.len();
    let a = n % k;
    let started = Instant::now();
    let mut out = Outcome {
        index: n,
        post_status: 0,
        post_ms: 0.0,
        lag_ms: started.saturating_duration_since(due).as_secs_f64() * 1e3,
        started,
        seen: Vec::new(),
        lower: Vec::new(),
        rtt: Vec::new(),
        polls: 0,
        poll_statuses: BTreeMap::new(),
        transport_errors: 0,
    };
    match conns[a].exchange(&logout_request(&envoys[a], token)) {
        Ok((status, _)) => out.post_status = status,
        Err(_) => {
            out.transport_errors += 1;
            return out;
        }
    }
    let t0 = Instant::now();
    out.post_ms = (t0 - started).as_secs_f64() * 1e3;
    if out.post_status != 200 {
        return out;
    }
    // The others in a fixed order per logout: the next Envoy first, then the one after.
    // (Envoy, order, send time of its last poll that passed, in ms from t0)
    let mut pending: Vec<(usize, usize, f64)> = (1..k).map(|d| ((a + d) % k, d - 1, 0.0)).collect();
    let requests: Vec<Vec<u8>> = envoys.iter().map(|e| session_request(e, cookie)).collect();
    while !pending.is_empty() {
        let mut still = Vec::with_capacity(pending.len());
        for (envoy, order, mut passed) in pending {
            out.polls += 1;
            let sent = t0.elapsed().as_secs_f64() * 1e3;
            let answer = conns[envoy].exchange(&requests[envoy]);
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            out.rtt.push(ms - sent);
            match answer {
                Ok((302, _)) => {
                    *out.poll_statuses.entry("302".into()).or_default() += 1;
                    out.seen.push((envoy, order, Some(ms)));
                    out.lower.push(passed);
                    continue;
                }
                Ok((status, _)) => {
                    if status == 200 {
                        passed = sent;
                    }
                    *out.poll_statuses.entry(status.to_string()).or_default() += 1;
                }
                Err(_) => out.transport_errors += 1,
            }
            still.push((envoy, order, passed));
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if t0.elapsed() >= timeout {
            for (envoy, order, _) in pending {
                out.seen.push((envoy, order, None));
            }
            break;
        }
        if !poll.is_zero() {
            std::thread::sleep(poll);
        }
    }
    out
}

// ------------------------------------------------------------------------------- etcd-load

fn gateway_post(authority: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Puts per transaction: etcd's default `--max-txn-ops`.
const PUTS_PER_TXN: u64 = 128;

fn etcd_load(f: &Flags) -> Result<Value, String> {
    f.check_known(&[
        "etcd",
        "prefix",
        "count",
        "from",
        "sid-prefix",
        "connections",
        "ttl",
        "iss",
        "puts-per-txn",
        "lease",
    ])?;
    let endpoints: Vec<String> = f
        .text("etcd", None)?
        .split(',')
        .map(str::to_string)
        .collect();
    let prefix = f.text("prefix", None)?;
    let count = f.number("count", None)?;
    let from = f.number("from", Some(0))?;
    let sid_prefix = f.text("sid-prefix", Some("bulk-"))?;
    let connections = f.number("connections", Some(4))?.max(1) as usize;
    let ttl = f.number("ttl", Some(3600))?;
    let iss = f.text("iss", Some(jws::ISSUER))?;
    let per_txn = f
        .number("puts-per-txn", Some(PUTS_PER_TXN))?
        .clamp(1, PUTS_PER_TXN);
    let lease = f.number("lease", Some(0))?;
    let now = jws::now() as u64;
    let cutoff = (now - 60) as u32;
    let expires_at = (now + ttl) as u32;
    let txns = count.div_ceil(per_txn);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..connections)
        .map(|c| {
            let authority = endpoints[c % endpoints.len()].clone();
            let (next, prefix, sid_prefix, iss) =
                (next.clone(), prefix.clone(), sid_prefix.clone(), iss.clone());
            std::thread::spawn(move || -> Result<u64, String> {
                let mut conn = Conn::new(&authority);
                let mut retries = 0u64;
                loop {
                    let t = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if t >= txns {
                        return Ok(retries);
                    }
                    let first = from + t * per_txn;
                    let last = (first + per_txn).min(from + count);
                    let written_ms = unix_ms();
                    let puts: Vec<Value> = (first..last)
                        .map(|n| {
                            let entry = Entry {
                                id: entry_id(
                                    EntryKind::Session,
                                    &iss,
                                    &format!("{sid_prefix}{n}"),
                                ),
                                cutoff,
                                expires_at,
                            };
                            json!({"requestPut": {
                                "key": jws::b64(&revocation_key(&prefix, &entry)),
                                "value": jws::b64(&revocation_value(&entry, written_ms)),
                                "lease": lease.to_string(),
                            }})
                        })
                        .collect();
                    let body = json!({ "success": puts }).to_string();
                    let request = gateway_post(&authority, "/v3/kv/txn", &body);
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let answer = conn.exchange(&request);
                        let ok = matches!(&answer, Ok((200, body)) if !body.is_empty()
                            && serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("header").is_some()));
                        if ok {
                            break;
                        }
                        if attempt >= 20 {
                            let why = match answer {
                                Ok((status, body)) => {
                                    format!("{status} {}", String::from_utf8_lossy(&body))
                                }
                                Err(e) => e.to_string(),
                            };
                            return Err(format!("txn {t} failed 20 times: {why}"));
                        }
                        retries += 1;
                        std::thread::sleep(Duration::from_millis(50 * attempt));
                    }
                }
            })
        })
        .collect();
    let mut retries = 0;
    for h in handles {
        retries += h.join().map_err(|_| "a loader thread panicked")??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(json!({
        "written": count,
        "txns": txns,
        "elapsed_s": elapsed,
        "per_s": if elapsed > 0.0 { count as f64 / elapsed } else { 0.0 },
        "retries": retries,
    }))
}

// ------------------------------------------------------------------------------- first-refused

fn first_refused(f: &Flags) -> Result<Value, String> {
    f.check_known(&[
        "envoy",
        "sid",
        "live-sid",
        "since-ns",
        "timeout-s",
        "interval-ms",
    ])?;
    let authority = f.text("envoy", None)?;
    let sid = f.text("sid", None)?;
    let live_sid = f.text("live-sid", None)?;
    let since_ns = u128::from(f.number("since-ns", None)?);
    let timeout = Duration::from_secs(f.number("timeout-s", Some(300))?);
    let interval = Duration::from_millis(f.number("interval-ms", Some(2))?);
    let keys = ExampleKeys::load()?;
    let revoked = session_request(&authority, &id_token(&keys, &sid));
    let live = session_request(&authority, &id_token(&keys, &live_sid));
    let mut conn = Conn::new(&authority);
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut connect_errors = 0u64;
    let start = Instant::now();
    let ms = loop {
        match conn.exchange(&revoked) {
            Ok((status, _)) => {
                *statuses.entry(status.to_string()).or_default() += 1;
                if status == 302 {
                    break unix_ns().saturating_sub(since_ns) as f64 / 1e6;
                }
            }
            Err(_) => connect_errors += 1,
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "no refusal within {timeout:?}: statuses {statuses:?}, {connect_errors} connection errors"
            ));
        }
        std::thread::sleep(interval);
    };
    let live_status = conn
        .exchange(&live)
        .map(|(s, _)| json!(s))
        .unwrap_or_else(|e| json!(format!("error: {e}")));
    Ok(json!({
        "ms": (ms * 10.0).round() / 10.0,
        "statuses": count_map(&statuses),
        "connect_errors": connect_errors,
        "live_status": live_status,
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let result = flags(rest).map(Flags).and_then(|f| match mode.as_str() {
        "propagate" => propagate(&f),
        "etcd-load" => etcd_load(&f),
        "first-refused" => first_refused(&f),
        _ => Err(USAGE.to_string()),
    });
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fleet_probe: {e}");
            ExitCode::FAILURE
        }
    }
}
