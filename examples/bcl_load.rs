//! Load generator for the back-channel endpoint: signs logout tokens with the EXAMPLE keys of
//! `envoy/keys/` (test-only keys) and POSTs them to `/bff/backchannel` over keep-alive HTTP/1.1
//! connections. Used by `bench/store-and-session.sh`.
//!
//! ```text
//! # stream: sign (threads) and POST at once, each token with a fresh iat; stop at store_full
//! cargo run -q --release --example bcl_load -- --url http://127.0.0.1:10000/bff/backchannel \
//!     --alg es256 --count 110000 --connections 8 --until-full
//! # pre-sign (no network), one token a line, then POST them in a timed run
//! cargo run -q --release --example bcl_load -- --sign-only --alg rs256 --count 10000 > tokens
//! cargo run -q --release --example bcl_load -- --url ... --tokens tokens --envoy-pid 1234
//! ```
//!
//! Every token has a unique `jti`, a distinct `sid` (`<sid-prefix><n>`), `iat` = the time it was
//! signed, `exp` = `iat + ttl`, `aud` = the client id and the back-channel `events` member.
//!
//! Options: `--url URL` (http only), `--count N` (tokens to sign/send), `--alg es256|rs256|eddsa`
//! (default es256), `--connections K` (default 8), `--threads T` (signing threads, default
//! the number of CPUs this process may use), `--until-full` (stop at the first `store_full`),
//! `--sign-only`, `--tokens FILE` (POST these instead of signing), `--sid-prefix P` (default
//! `load-<pid>-`), `--iss`, `--aud`, `--ttl SECONDS` (default 120), `--envoy-pid PID` (report
//! that process's CPU time, utime + stime from /proc, over the POSTing part), `--clk-tck HZ`
//! (default 100).
//!
//! Prints one JSON object on stdout: `sent`, `statuses` (status -> count), `codes`
//! (`error_description` code -> count), `accepted` (200s), `elapsed_s` (first request to last
//! answer), `per_s` (answers per second), `p50_us`/`p99_us` (request latency), `sign_s` (time
//! spent signing, streaming mode: summed over the signing threads), `envoy_cpu_ticks` and
//! `envoy_cpu_us_per_request` with `--envoy-pid`, `transport_errors`.

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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jws::{Alg, ExampleKeys};
use serde_json::json;

const USAGE: &str = "usage: bcl_load --url http://HOST:PORT/PATH --count N [--alg es256|rs256|eddsa] \
[--connections K] [--threads T] [--until-full] [--tokens FILE] [--sid-prefix P] [--iss URL] \
[--aud ID] [--ttl SECONDS] [--envoy-pid PID] [--clk-tck HZ]\n       bcl_load --sign-only --count N [--alg ..] [--threads T] ...";

struct Opts {
    url: Option<String>,
    count: u64,
    alg: Alg,
    connections: usize,
    threads: usize,
    until_full: bool,
    sign_only: bool,
    tokens: Option<String>,
    sid_prefix: String,
    iss: String,
    aud: String,
    ttl: i64,
    envoy_pid: Option<u32>,
    clk_tck: u64,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        url: None,
        count: 0,
        alg: Alg::Es256,
        connections: 8,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        until_full: false,
        sign_only: false,
        tokens: None,
        sid_prefix: format!("load-{}-", std::process::id()),
        iss: jws::ISSUER.to_string(),
        aud: jws::CLIENT_ID.to_string(),
        ttl: 120,
        envoy_pid: None,
        clk_tck: 100,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--until-full" => {
                o.until_full = true;
                continue;
            }
            "--sign-only" => {
                o.sign_only = true;
                continue;
            }
            _ => {}
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--url" => o.url = Some(value.clone()),
            "--count" => o.count = number()?,
            "--alg" => o.alg = Alg::parse(&value).ok_or_else(|| format!("unknown alg {value}"))?,
            "--connections" => o.connections = number()?.max(1) as usize,
            "--threads" => o.threads = number()?.max(1) as usize,
            "--tokens" => o.tokens = Some(value.clone()),
            "--sid-prefix" => o.sid_prefix = value.clone(),
            "--iss" => o.iss = value.clone(),
            "--aud" => o.aud = value.clone(),
            "--ttl" => o.ttl = number()? as i64,
            "--envoy-pid" => o.envoy_pid = Some(number()? as u32),
            "--clk-tck" => o.clk_tck = number()?.max(1),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if o.tokens.is_none() && o.count == 0 {
        return Err(format!("--count is required\n{USAGE}"));
    }
    if !o.sign_only && o.url.is_none() {
        return Err(format!("--url is required\n{USAGE}"));
    }
    Ok(o)
}

/// Signs token number `n`: a distinct sid, a unique jti, iat = now.
fn sign_one(keys: &ExampleKeys, o: &Opts, n: u64) -> String {
    let iat = jws::now();
    let claims = json!({
        "iss": o.iss, "aud": o.aud, "iat": iat, "exp": iat + o.ttl,
        "jti": jws::unique_id("jti-"),
        "sid": format!("{}{n}", o.sid_prefix),
        "events": {jws::BCL_EVENT: {}},
    });
    keys.sign(o.alg, &claims)
}

/// `http://host:port/path` -> ("host:port", "/path").
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok((authority.to_string(), path.to_string()))
}

/// The answer to one POST: status and the `error_description` code, if any.
struct Answer {
    status: u16,
    code: Option<String>,
}

/// POSTs one logout and reads the answer's status and error code.
fn post(conn: &mut Conn, request: &[u8]) -> std::io::Result<Answer> {
    conn.exchange(request).map(|(status, body)| Answer {
        status,
        code: (status != 200).then(|| error_code(&body)),
    })
}

/// The `<code>` of `{"error_description": "<code>: <text>"}`, or `-`.
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error_description")?
                .as_str()
                .map(|d| d.split(':').next().unwrap_or("").to_string())
        })
        .unwrap_or_else(|| "-".to_string())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, u64>,
    codes: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
    transport_errors: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.codes {
            *self.codes.entry(k).or_default() += v;
        }
        self.latencies_us.extend(other.latencies_us);
        self.transport_errors += other.transport_errors;
    }
}

fn request_bytes(authority: &str, path: &str, token: &str) -> Vec<u8> {
    let body = format!("logout_token={token}");
    format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One sender: takes tokens from `tokens` until it is empty or `stop` is set.
fn sender(
    authority: String,
    path: String,
    tokens: Arc<Mutex<Receiver<String>>>,
    stop: Arc<AtomicBool>,
    until_full: bool,
) -> Tally {
    let mut conn = Conn::new(&authority);
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let token = match tokens.lock().unwrap().recv() {
            Ok(t) => t,
            Err(_) => break,
        };
        let request = request_bytes(&authority, &path, &token);
        let start = Instant::now();
        match post(&mut conn, &request) {
            Ok(answer) => {
                let us = start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                tally.latencies_us.push(us);
                *tally.statuses.entry(answer.status).or_default() += 1;
                if let Some(code) = answer.code {
                    if until_full && code == "store_full" {
                        stop.store(true, Ordering::Relaxed);
                    }
                    *tally.codes.entry(code).or_default() += 1;
                }
            }
            Err(e) => {
                tally.transport_errors += 1;
                if tally.transport_errors <= 3 {
                    eprintln!("bcl_load: {e}");
                }
                if tally.transport_errors > 100 {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    tally
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i]
}

fn run(o: &Opts) -> Result<String, String> {
    let keys = Arc::new(ExampleKeys::load()?);
    if o.sign_only {
        let next = Arc::new(AtomicU64::new(0));
        let chunks: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..o.threads)
                .map(|_| {
                    let (keys, next) = (keys.clone(), next.clone());
                    s.spawn(move || {
                        let mut out = String::new();
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= o.count {
                                break out;
                            }
                            out.push_str(&sign_one(&keys, o, n));
                            out.push('\n');
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        return Ok(chunks.concat().trim_end().to_string());
    }

    let (authority, path) = split_url(o.url.as_deref().unwrap_or(""))?;
    let stop = Arc::new(AtomicBool::new(false));
    let sign_nanos = Arc::new(AtomicU64::new(0));
    let mut signers = Vec::new();
    // Pre-signed tokens all go into the channel before the clock starts; signed tokens stream
    // through a short one, so each is POSTed within moments of its iat.
    let (tx, rx) = match &o.tokens {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            let mut tokens: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            if o.count > 0 {
                tokens.truncate(o.count as usize);
            }
            let (ptx, prx) = sync_channel::<String>(tokens.len().max(1));
            for t in tokens {
                ptx.send(t.to_string()).map_err(|e| e.to_string())?;
            }
            (None, prx)
        }
        None => {
            let (tx, rx) = sync_channel::<String>(256);
            (Some(tx), rx)
        }
    };
    let rx = Arc::new(Mutex::new(rx));
    // What was sent: the `alg` of the first token of a file, else the one signed with.
    let alg = match &o.tokens {
        Some(file) => std::fs::read_to_string(file)
            .ok()
            .and_then(|t| jws::decode_parts(t.lines().next()?))
            .and_then(|(h, _)| h.get("alg")?.as_str().map(String::from))
            .unwrap_or_else(|| "-".to_string()),
        None => o.alg.name().to_string(),
    };
    if let Some(tx) = tx {
        let next = Arc::new(AtomicU64::new(0));
        for _ in 0..o.threads {
            let (keys, next, tx, stop, sign_nanos) = (
                keys.clone(),
                next.clone(),
                tx.clone(),
                stop.clone(),
                sign_nanos.clone(),
            );
            let opts = Opts {
                url: None,
                tokens: None,
                sid_prefix: o.sid_prefix.clone(),
                iss: o.iss.clone(),
                aud: o.aud.clone(),
                ..*o
            };
            signers.push(std::thread::spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= opts.count {
                    break;
                }
                let t0 = Instant::now();
                let token = sign_one(&keys, &opts, n);
                sign_nanos.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if tx.send(token).is_err() {
                    break;
                }
            }));
        }
    }

    let cpu_before = o.envoy_pid.and_then(cpu_ticks);
    let start = Instant::now();
    let senders: Vec<_> = (0..o.connections)
        .map(|_| {
            let (authority, path, rx, stop) =
                (authority.clone(), path.clone(), rx.clone(), stop.clone());
            let until_full = o.until_full;
            std::thread::spawn(move || sender(authority, path, rx, stop, until_full))
        })
        .collect();
    let mut tally = Tally::default();
    for s in senders {
        tally.merge(s.join().map_err(|_| "a sender thread panicked")?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = o.envoy_pid.and_then(cpu_ticks);
    // Unblock the signers (they wait on a full channel) and let them go.
    drop(rx);
    for s in signers {
        let _ = s.join();
    }

    let sent: u64 = tally.statuses.values().sum();
    tally.latencies_us.sort_unstable();
    let mut out = json!({
        "sent": sent,
        "accepted": tally.statuses.get(&200).copied().unwrap_or(0),
        "statuses": tally.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "codes": tally.codes,
        "transport_errors": tally.transport_errors,
        "elapsed_s": elapsed,
        "per_s": if elapsed > 0.0 { sent as f64 / elapsed } else { 0.0 },
        "p50_us": percentile(&tally.latencies_us, 0.50),
        "p99_us": percentile(&tally.latencies_us, 0.99),
        "sign_s": sign_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        "connections": o.connections,
        "alg": alg,
    });
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        let ticks = b.saturating_sub(a);
        out["envoy_cpu_ticks"] = json!(ticks);
        if sent > 0 {
            out["envoy_cpu_us_per_request"] =
                json!(ticks as f64 * 1e6 / o.clk_tck as f64 / sent as f64);
        }
    }
    Ok(out.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args).and_then(|o| run(&o)) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bcl_load: {e}");
            ExitCode::FAILURE
        }
    }
}
