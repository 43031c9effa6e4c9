//! Hostile traffic against one real Envoy with the filter: a few thousand generated requests
//! (HTTP/1.1 raw bytes and HTTP/2) with random bytes in every header the filter reads, in the
//! path and in back-channel bodies, odd methods and duplicated headers. Envoy's own codec may
//! refuse some (400, reset, closed connection): counted, fine. Afterwards:
//! - no 503 from the filter, and no Wasm VM failure (stat and log);
//! - a live session still passes on every worker, a session revoked before the burst is still
//!   refused, and a fresh logout is still accepted and revokes its session.
//!
//! The generator is a seeded xorshift: the seed is printed, and `BCL_HOSTILE_SEED=<n>` replays
//! a run. `BCL_HOSTILE_H1=<n>` / `BCL_HOSTILE_H2=<n>` change how many requests each protocol
//! gets.

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use common::h2::{send_all_with, H2Request};
use common::http::{connect, form_encode, read_response};
use common::*;

const DEFAULT_SEED: u64 = 0x0bc1_5eed_2026_1126;
const DEFAULT_H1: usize = 1500;
const DEFAULT_H2: usize = 2000;
/// Stats that count crashed Wasm VMs under `failure_policy: FAIL_RELOAD` (Envoy 1.40 has no
/// crash counter as such: a crash shows as reloads, found by crashing the VM on purpose, see
/// docs/FAILURE_POLICY.md). `wasm.envoy.wasm.runtime.v8.created` must not grow either.
const VM_FAILURE_STATS: [&str; 3] = [
    "wasm.backchannel_logout.vm_reload_success",
    "wasm.backchannel_logout.vm_reload_backoff",
    "wasm.backchannel_logout.vm_reload_failure",
];
const VM_CREATED_STAT: &str = "wasm.envoy.wasm.runtime.v8.created";
/// Envoy's log lines for a trapped VM (`Function: proxy_on_request_headers failed: Uncaught
/// RuntimeError: unreachable`) and the Rust panic message the filter logs just before.
const VM_FAILURE_LOG: [&str; 2] = ["Function: proxy_on_", "panicked at"];

/// xorshift64*: small, deterministic, good enough to pick bytes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// 0..n
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Hostile bytes of a [`Rng::len`] length.
    fn junk(&mut self, max: usize, framing_bytes: bool) -> Vec<u8> {
        let n = self.len(max);
        self.bytes(n, framing_bytes)
    }

    /// 1 to `max` hostile bytes.
    fn junk_short(&mut self, max: usize, framing_bytes: bool) -> Vec<u8> {
        let n = 1 + self.below(max);
        self.bytes(n, framing_bytes)
    }

    fn pick_bytes(&mut self, items: &[&'static [u8]]) -> &'static [u8] {
        items[self.below(items.len())]
    }

    /// A length: mostly short, sometimes a few hundred bytes, rarely up to `max`.
    fn len(&mut self, max: usize) -> usize {
        match self.below(100) {
            0..=69 => self.below(40),
            70..=94 => self.below(600),
            _ => self.below(max + 1),
        }
    }

    /// Hostile bytes: high bytes, quotes, separators, percent signs, token text. Bytes that
    /// would break HTTP/1 framing (CR, LF, NUL) only when `framing_bytes`.
    fn bytes(&mut self, len: usize, framing_bytes: bool) -> Vec<u8> {
        const SPECIAL: &[u8] = b"\"';=%,& \t\\/?#+.-_~!*()<>[]{}|^`@:";
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let b = match self.below(10) {
                0..=2 => 0x80 + self.below(0x80) as u8,
                3..=4 => *self.pick(SPECIAL),
                5 => {
                    out.extend_from_slice(self.pick_bytes(&[
                        &b"IdToken="[..],
                        b"%ff",
                        b"%",
                        b"%zz",
                        b"\xc3\x28",
                        b"\xef\xbf\xbd",
                        b"\xf0\x9f\x92\xa9",
                        b"==",
                        b";;",
                        b"logout_token=",
                    ]));
                    continue;
                }
                6 if framing_bytes && self.chance(10) => *self.pick(b"\r\n\0"),
                _ => *self.pick(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
            };
            out.push(b);
        }
        out.truncate(len);
        out
    }
}

/// What the generator knows: real tokens to mangle.
struct Material {
    live_id_token: String,
    revoked_id_token: String,
    valid_logout: String,
}

/// One generated request, protocol-neutral.
struct Generated {
    method: Vec<u8>,
    path: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    /// HTTP/1 only: whether to add a Content-Length matching the body.
    add_length: bool,
}

fn cookie_value(rng: &mut Rng, m: &Material, framing: bool) -> Vec<u8> {
    let mut v: Vec<u8> = Vec::new();
    let garbage_token = |rng: &mut Rng| -> Vec<u8> {
        match rng.below(6) {
            0 => rng.junk(16 * 1024, false),
            1 => {
                // Three "parts" of garbage.
                let mut t = rng.junk(200, false);
                t.push(b'.');
                t.extend(rng.junk(400, false));
                t.push(b'.');
                t.extend(rng.junk(300, false));
                t
            }
            2 => {
                // A real token, mangled at one spot.
                let base = if rng.chance(50) {
                    &m.live_id_token
                } else {
                    &m.revoked_id_token
                };
                let mut t = base.as_bytes().to_vec();
                let at = rng.below(t.len());
                let junk = rng.junk_short(8, false);
                t.splice(at..(at + rng.below(4)).min(t.len()), junk);
                t
            }
            3 => {
                // header.payload.sig with a JSON-ish payload of garbage.
                let payload = format!(
                    "{{\"sid\":\"{}\",\"sub\":{},\"iss\":\"{}\"}}",
                    String::from_utf8_lossy(&rng.junk(50, false)),
                    rng.next(),
                    ISSUER
                );
                format!(
                    "eyJhbGciOiJSUzI1NiJ9.{}.{}",
                    base64url(payload.as_bytes()),
                    base64url(&rng.junk(300, false))
                )
                .into_bytes()
            }
            4 => b"".to_vec(),
            _ => rng.junk(100, framing),
        }
    };
    let pairs = 1 + rng.below(4);
    for i in 0..pairs {
        if i > 0 {
            v.extend_from_slice(rng.pick_bytes(&[&b"; "[..], b";", b",", b" ;; ", b"; ; "]));
        }
        match rng.below(5) {
            0 | 1 => {
                v.extend_from_slice(rng.pick_bytes(&[
                    &b"IdToken="[..],
                    b"idtoken=",
                    b"IdToken =",
                    b" IdToken=",
                    b"IdToken=\"",
                    b"IdToken",
                ]));
                v.extend(garbage_token(rng));
            }
            2 => {
                let name = rng.junk(30, false);
                v.extend(name);
                v.push(b'=');
                v.extend(rng.junk(16 * 1024, framing));
            }
            3 => v.extend(rng.junk(200, framing)),
            _ => v.extend_from_slice(b"BearerToken=b; OauthHMAC=h"),
        }
    }
    v
}

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn generate(rng: &mut Rng, m: &Material, http1: bool) -> Generated {
    // Rarely, bytes that break framing (HTTP/2: Envoy drops the whole connection for them).
    let framing = rng.chance(if http1 { 3 } else { 1 });
    let backchannel = rng.chance(40);
    let method: Vec<u8> = match rng.below(12) {
        0..=3 if backchannel => b"POST".to_vec(),
        0..=2 => b"GET".to_vec(),
        3 => b"POST".to_vec(),
        4 => rng
            .pick_bytes(&[
                &b"PUT"[..],
                b"DELETE",
                b"PATCH",
                b"OPTIONS",
                b"HEAD",
                b"TRACE",
            ])
            .to_vec(),
        5 => rng
            .pick_bytes(&[&b"post"[..], b"get", b"Post", b"pOST"])
            .to_vec(),
        6 => b"CONNECT".to_vec(),
        7 => {
            let n = 1 + rng.below(12);
            (0..n)
                .map(|_| *rng.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'*+-.^_`|~"))
                .collect()
        }
        8 => rng.junk_short(10, framing),
        _ => b"POST".to_vec(),
    };
    let path: Vec<u8> = {
        let base: &[u8] = if backchannel {
            BACKCHANNEL_PATH.as_bytes()
        } else {
            rng.pick_bytes(&[
                &b"/"[..],
                b"/app/page",
                b"/api/me",
                b"/bff/back",
                b"/bff/backchannelx",
            ])
        };
        let mut p = base.to_vec();
        match rng.below(8) {
            0 => {
                p.push(b'?');
                p.extend(rng.junk(2000, false));
            }
            1 => p.extend(rng.junk(100, framing)),
            2 => p = rng.junk(300, framing),
            3 => {
                p.extend_from_slice(b"?logout_token=");
                p.extend(rng.junk(500, false));
            }
            4 => p = format!("http://127.0.0.1{BACKCHANNEL_PATH}").into_bytes(),
            5 => {
                p = format!(
                    "/bff/%62ackchannel{}",
                    if rng.chance(50) { "/" } else { "" }
                )
                .into_bytes()
            }
            _ => {}
        }
        p
    };
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut h = |n: &[u8], v: Vec<u8>| headers.push((n.to_vec(), v));
    let form = b"application/x-www-form-urlencoded".to_vec();
    // cookie: zero to three lines
    for _ in 0..rng.below(4) {
        let name: &[u8] = rng.pick_bytes(&[&b"cookie"[..], b"Cookie", b"COOKIE"]);
        let v = cookie_value(rng, m, framing);
        h(name, v);
    }
    if rng.chance(60) {
        let v = match rng.below(6) {
            0..=1 => form.clone(),
            2 => {
                let mut v = form.clone();
                v.extend_from_slice(b"; charset=");
                v.extend(rng.junk(40, framing));
                v
            }
            3 => rng
                .pick_bytes(&[
                    &b"application/json"[..],
                    b"APPLICATION/X-WWW-FORM-URLENCODED",
                    b"multipart/form-data; boundary=x",
                    b"text/plain",
                    b"application/x-www-form-urlencoded\xff",
                ])
                .to_vec(),
            _ => rng.junk(300, framing),
        };
        h(b"content-type", v);
    }
    for name in [&b"accept"[..], b"sec-fetch-mode", b"authorization"] {
        if rng.chance(40) {
            let v = if rng.chance(30) {
                rng.pick_bytes(&[
                    &b"text/html"[..],
                    b"application/json",
                    b"navigate",
                    b"cors",
                    b"*/*",
                ])
                .to_vec()
            } else {
                rng.junk(4000, framing)
            };
            h(name, v);
        }
        if rng.chance(5) {
            let v = rng.junk(100, framing);
            h(name, v); // duplicated
        }
    }
    if rng.chance(5) {
        h(b"x-random", rng.junk(16 * 1024, framing));
    }
    // The body.
    let body: Vec<u8> = if method == b"GET" && rng.chance(80) {
        Vec::new()
    } else {
        match rng.below(10) {
            0..=2 => {
                let mut b = b"logout_token=".to_vec();
                b.extend(rng.junk(3000, false));
                b
            }
            3 => {
                // A valid token, mangled or with extra fields.
                let mut b = format!("logout_token={}", form_encode(&m.valid_logout)).into_bytes();
                match rng.below(4) {
                    0 => b.extend_from_slice(b"&logout_token=x"),
                    1 => {
                        let at = rng.below(b.len());
                        b.insert(at, 0xff);
                    }
                    2 => b.extend_from_slice(b"&%ff%fe=%"),
                    _ => {
                        b.push(b'&');
                        b.extend(rng.junk(200, false));
                    }
                }
                b
            }
            4 => rng.junk(8000, true),
            5 if rng.chance(15) => {
                // Huge: around and over the filter's and the buffer's limits.
                let n = *rng.pick(&[64 * 1024, 1024 * 1024 - 10, 1024 * 1024 + 10, 1536 * 1024]);
                let mut b = b"logout_token=".to_vec();
                b.resize(n, b'A');
                b
            }
            6 => {
                let pairs = rng.below(50);
                let mut b = Vec::new();
                for i in 0..pairs {
                    if i > 0 {
                        b.push(b'&');
                    }
                    b.extend(rng.junk(30, false));
                    b.push(b'=');
                    b.extend(rng.junk(30, false));
                }
                b
            }
            _ => Vec::new(),
        }
    };
    let add_length = true;
    // Shuffle a little: swap two headers.
    if headers.len() > 1 && rng.chance(30) {
        let (a, b) = (rng.below(headers.len()), rng.below(headers.len()));
        headers.swap(a, b);
    }
    let mut g = Generated {
        method,
        path,
        headers,
        body,
        add_length,
    };
    // Most requests are hostile in one part only, the rest well-formed, so that they get past
    // Envoy's codec and reach the filter; one in eight is hostile everywhere.
    let focus = rng.below(8);
    if focus != 7 {
        focus_on(rng, m, &mut g, focus, backchannel);
    }
    if focus == 2 || (focus == 7 && rng.chance(15)) {
        odd_length(rng, &mut g, http1);
    }
    g
}

/// Gives `g` an odd content-length for its final body. HTTP/1: never a number larger than the
/// body (Envoy would wait for the rest); HTTP/2: anything (Envoy checks it against the DATA
/// frames).
fn odd_length(rng: &mut Rng, g: &mut Generated, http1: bool) {
    let len = g.body.len();
    let v: Vec<u8> = match rng.below(5) {
        0 => format!("-{}", rng.below(100)).into_bytes(),
        1 => {
            let mut v = b"x".to_vec();
            v.extend(rng.junk_short(20, false));
            v
        }
        2 => format!("{}", len / 2).into_bytes(),
        3 if !http1 => format!("{}", rng.next()).into_bytes(),
        3 => format!("{len} ").into_bytes(),
        _ => format!("{len}, {len}").into_bytes(),
    };
    g.headers.push((b"content-length".to_vec(), v));
    g.add_length = false;
    if rng.chance(20) {
        g.headers
            .push((b"content-length".to_vec(), format!("{len}").into_bytes()));
    }
}

/// Makes every part of `g` but part `focus` well-formed: 0 cookie, 1 content-type,
/// 2 content-length, 3 accept / sec-fetch-mode / authorization / others, 4 path, 5 method,
/// 6 body.
fn focus_on(rng: &mut Rng, m: &Material, g: &mut Generated, focus: usize, backchannel: bool) {
    let group = |name: &[u8]| -> usize {
        match name.to_ascii_lowercase().as_slice() {
            b"cookie" => 0,
            b"content-type" => 1,
            b"content-length" => 2,
            _ => 3,
        }
    };
    g.headers.retain(|(n, _)| group(n) == focus);
    if focus != 0 && rng.chance(50) {
        let token = if rng.chance(50) {
            &m.live_id_token
        } else {
            &m.revoked_id_token
        };
        g.headers
            .push((b"cookie".to_vec(), format!("IdToken={token}").into_bytes()));
    }
    if focus != 1 && backchannel {
        g.headers.push((
            b"content-type".to_vec(),
            b"application/x-www-form-urlencoded".to_vec(),
        ));
    }
    if focus != 2 {
        g.add_length = true;
    }
    if focus != 4 {
        g.path = if backchannel {
            BACKCHANNEL_PATH.as_bytes().to_vec()
        } else {
            b"/app/page".to_vec()
        };
    }
    if focus != 5 {
        g.method = if backchannel {
            b"POST".to_vec()
        } else {
            b"GET".to_vec()
        };
    }
    if focus != 6 {
        g.body = if backchannel {
            let junk: String = (0..rng.below(40))
                .map(|_| char::from(*rng.pick(b"abcdefghijklmnopqrstuvwxyz0123456789._-")))
                .collect();
            format!("logout_token={junk}").into_bytes()
        } else {
            Vec::new()
        };
    }
}

fn to_http1(g: &Generated, port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&g.method);
    out.push(b' ');
    out.extend_from_slice(&g.path);
    out.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n").as_bytes(),
    );
    for (n, v) in &g.headers {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if g.add_length && !g.body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", g.body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&g.body);
    out
}

fn to_h2(g: &Generated) -> H2Request {
    let lower = |n: &[u8]| n.to_ascii_lowercase();
    H2Request {
        method: g.method.clone(),
        path: g.path.clone(),
        authority: b"127.0.0.1".to_vec(),
        headers: g
            .headers
            .iter()
            .map(|(n, v)| (lower(n), v.clone()))
            .collect(),
        body: (!g.body.is_empty()).then(|| g.body.clone()),
        trailers: None,
    }
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<String, usize>,
    filter_503: Vec<String>,
    upstream_503: usize,
}

impl Tally {
    fn add(&mut self, key: String) {
        *self.statuses.entry(key).or_default() += 1;
    }

    fn status(&mut self, proto: &str, status: u16, body: &[u8], what: impl FnOnce() -> String) {
        self.add(format!("{proto} {status}"));
        if status == 503 {
            if body.starts_with(b"upstream connect error") {
                self.upstream_503 += 1;
            } else if self.filter_503.len() < 5 {
                let mut w = what();
                if w.len() > 700 {
                    let mut cut = 700;
                    while !w.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    w.truncate(cut);
                    w.push_str("...");
                }
                self.filter_503.push(w);
            } else {
                self.filter_503.push(String::new());
            }
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Generated {
    /// Method, path, headers and body, shortened, for failure and verbose messages.
    fn describe(&self) -> String {
        format!(
            "{} {} headers={:?} body={}",
            String::from_utf8_lossy(&self.method),
            short(&self.path),
            self.headers
                .iter()
                .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), short(v)))
                .collect::<Vec<_>>(),
            short(&self.body)
        )
    }
}

fn short(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
    format!("{s:?}{}", if bytes.len() > 80 { "..." } else { "" })
}

#[test]
fn hostile_traffic_leaves_the_filter_working() {
    let seed = std::env::var("BCL_HOSTILE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let n_h1 = env_usize("BCL_HOSTILE_H1", DEFAULT_H1);
    let n_h2 = env_usize("BCL_HOSTILE_H2", DEFAULT_H2);
    eprintln!("hostile traffic: seed {seed} (BCL_HOSTILE_SEED={seed} replays it), {n_h1} HTTP/1.1 + {n_h2} HTTP/2 requests");
    let started = Instant::now();

    let envoy = Envoy::start(&base_config());
    let mut c = Checks::new();

    let live = Session::new("live");
    let revoked = Session::new("revoked-before");
    let r = envoy.logout(&revoked.logout_token());
    check_endpoint_answer(&mut c, "logout before the burst", &r, 200, None);
    check_refused_everywhere(&mut c, &envoy, "revoked before the burst", &revoked);
    check_passes_everywhere(&mut c, &envoy, "live session before the burst", &live);
    // A valid token for a session nobody checks, mangled by the generator (the unmangled
    // original is never sent: it would be accepted, which is fine but not the point).
    let m = Material {
        live_id_token: live.id_token.clone(),
        revoked_id_token: revoked.id_token.clone(),
        valid_logout: Session::new("mangled").logout_token(),
    };

    let created_before = envoy.stat(VM_CREATED_STAT);
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();

    // HTTP/1.1: one connection per request, raw bytes.
    let h1_started = Instant::now();
    for i in 0..n_h1 {
        let g = generate(&mut rng, &m, true);
        let bytes = to_http1(&g, envoy.port);
        let result = (|| {
            let mut stream = connect(envoy.port)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let write = stream.write_all(&bytes);
            read_response(&mut stream, write.err())
        })();
        match result {
            Ok(r) => tally.status("h1", r.status, &r.body, || {
                format!("h1 #{i}: {} -> {}", g.describe(), r.summary())
            }),
            Err(e) => {
                let timeout = e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut;
                let what = if timeout {
                    "h1 timeout"
                } else {
                    "h1 closed without answer"
                };
                tally.add(what.into());
                if std::env::var_os("BCL_HOSTILE_VERBOSE").is_some() {
                    eprintln!(
                        "{what} #{i}: {} ({} bytes) add_length={}: {e}",
                        g.describe(),
                        g.body.len(),
                        g.add_length
                    );
                }
            }
        }
    }
    let h1_time = h1_started.elapsed();

    // HTTP/2: batches over one connection each (a new one when Envoy ends it).
    let h2_started = Instant::now();
    let mut h2_connections = 0;
    let mut slow_h2: Vec<String> = Vec::new();
    // Batches of requests, each sent by its own h2_client.py over one connection (a new one
    // when Envoy ends it: Envoy closes a connection it finds malformed about 1 s later, so the
    // batches run side by side to overlap those waits).
    let batch = 100;
    let batches: Vec<Vec<Generated>> = (0..n_h2.div_ceil(batch))
        .map(|b| {
            let n = batch.min(n_h2 - b * batch);
            (0..n).map(|_| generate(&mut rng, &m, false)).collect()
        })
        .collect();
    let port = envoy.port;
    let all_results: Vec<Vec<common::h2::H2Result>> = std::thread::scope(|scope| {
        let handles: Vec<_> = batches
            .iter()
            .map(|gens| {
                scope.spawn(move || {
                    let reqs: Vec<H2Request> = gens.iter().map(to_h2).collect();
                    send_all_with(port, &reqs, 1, Duration::from_secs(10))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sent = 0;
    for (gens, results) in batches.iter().zip(&all_results) {
        let n = gens.len();
        h2_connections += results.iter().map(|r| r.connection).max().unwrap_or(0) + 1;
        for (k, (g, r)) in gens.iter().zip(results).enumerate() {
            match (r.outcome.as_str(), r.status) {
                ("response", Some(s)) => tally.status("h2", s, &r.body, || {
                    format!("h2 #{}: {} -> {}", sent + k, g.describe(), r.summary())
                }),
                (outcome, _) => {
                    tally.add(format!("h2 {outcome}"));
                    if std::env::var_os("BCL_HOSTILE_VERBOSE").is_some() {
                        eprintln!("h2 {outcome}: {} ({})", g.describe(), r.error);
                    }
                }
            }
            if r.elapsed_ms > 2000 && slow_h2.len() < 3 {
                slow_h2.push(format!(
                    "h2 #{}: {} {} took {} ms: {}",
                    sent + k,
                    String::from_utf8_lossy(&g.method),
                    short(&g.path),
                    r.elapsed_ms,
                    r.summary()
                ));
            }
        }
        sent += n;
    }
    let h2_time = h2_started.elapsed();

    eprintln!(
        "sent {n_h1} HTTP/1.1 requests in {h1_time:.1?}, {n_h2} HTTP/2 requests on {h2_connections} \
         connections in {h2_time:.1?}"
    );
    for s in &slow_h2 {
        eprintln!("slow: {s}");
    }
    eprintln!("statuses / outcomes:");
    for (k, v) in &tally.statuses {
        eprintln!("  {k:>28}: {v}");
    }
    eprintln!(
        "503 from the filter or a dead VM: {}; 503 after an upstream reset: {}",
        tally.filter_503.len(),
        tally.upstream_503
    );

    // 1. No 503 from the filter.
    c.check(tally.filter_503.is_empty(), || {
        format!(
            "{} requests were answered 503 (a crashed VM, or the filter's own 503); first ones:\n    {}",
            tally.filter_503.len(),
            tally
                .filter_503
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("\n    ")
        )
    });
    // 2. No VM failure: stats and log.
    let stats = envoy.stats();
    let mut wasm_stats: Vec<(&String, &i64)> = stats
        .iter()
        .filter(|(k, _)| k.starts_with("wasm.") || k.contains("wasm_filter"))
        .collect();
    wasm_stats.sort();
    eprintln!("wasm stats: {wasm_stats:?}");
    for name in VM_FAILURE_STATS {
        let v = stats.get(name).copied().unwrap_or(0);
        c.check(v == 0, || format!("stat {name} = {v}: a Wasm VM failed"));
    }
    let created = stats.get(VM_CREATED_STAT).copied().unwrap_or(0) - created_before;
    c.check(created == 0, || {
        format!("{VM_CREATED_STAT} grew by {created} during the burst: VMs were replaced")
    });
    let log = envoy.log();
    // The filter's panic messages (the line after "panicked at" holds the message), distinct.
    let lines: Vec<&str> = log.lines().collect();
    let mut crash_lines: Vec<String> = Vec::new();
    let mut crash_count = 0;
    for (i, l) in lines.iter().enumerate() {
        if VM_FAILURE_LOG.iter().any(|n| l.contains(n)) {
            let at = l
                .find("panicked at")
                .or_else(|| l.find("Function:"))
                .unwrap_or(0);
            let mut line = l[at..].to_string();
            if l.contains("panicked at") {
                if let Some(next) = lines.get(i + 1) {
                    line.push(' ');
                    line.push_str(next);
                }
            }
            // One line per panic site (the messages differ by the offending bytes).
            let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
            if !crash_lines.iter().any(|c| cut(c, 110) == cut(&line, 110)) {
                crash_lines.push(cut(&line, 300));
            }
            crash_count += 1;
        }
    }
    c.check(crash_lines.is_empty(), || {
        format!(
            "Envoy's log shows {crash_count} VM failure lines; one per kind:\n    {}",
            crash_lines.join("\n    ")
        )
    });
    // 3. A live session still passes on every worker.
    check_passes_everywhere(&mut c, &envoy, "live session after the burst", &live);
    // 4. The session revoked before the burst is still refused.
    check_refused_everywhere(
        &mut c,
        &envoy,
        "revoked before the burst, after it",
        &revoked,
    );
    // 5. A fresh logout is accepted and revokes its session.
    let fresh = Session::new("fresh");
    let r = envoy.logout(&fresh.logout_token());
    check_endpoint_answer(&mut c, "fresh logout after the burst", &r, 200, None);
    check_refused_everywhere(&mut c, &envoy, "fresh logout after the burst", &fresh);
    // The back-channel path itself (query aside) never reached the upstream. (Other paths
    // that merely start with it, like `/bff/backchannelx`, are ordinary requests.)
    let forwarded: Vec<String> = envoy
        .upstream
        .paths()
        .into_iter()
        .filter(|p| p.split('?').next() == Some(BACKCHANNEL_PATH))
        .collect();
    c.check(forwarded.is_empty(), || {
        format!(
            "{} back-channel requests reached the upstream: {:?}",
            forwarded.len(),
            forwarded.iter().take(5).collect::<Vec<_>>()
        )
    });

    eprintln!("hostile traffic test took {:.1?}", started.elapsed());
    c.finish(&format!("hostile traffic (seed {seed})"));
}

/// A revoked session's `IdToken` is refused whichever `Cookie` line carries it (HTTP/1.1 allows
/// several; HTTP/2 clients send one `cookie` header per pair).
#[test]
fn a_revoked_session_in_any_cookie_line_is_refused() {
    let envoy = Envoy::start(&base_config());
    let mut c = Checks::new();
    let revoked = Session::new("revoked-second-line");
    let r = envoy.logout(&revoked.logout_token());
    check_endpoint_answer(&mut c, "logout", &r, 200, None);
    let id = format!("IdToken={}", revoked.id_token);
    let cases: [(&str, Vec<&str>); 4] = [
        ("one line", vec![&id]),
        ("second of two lines", vec!["theme=dark", &id]),
        ("first of two lines", vec![&id, "theme=dark"]),
        ("third of three lines", vec!["a=1", "b=2; c=3", &id]),
    ];
    for (case, lines) in &cases {
        for n in 0..6 {
            let mut req = Request::get("/app/page").header("Accept", "text/html");
            for l in lines {
                req = req.header("Cookie", l);
            }
            let r = envoy.send(&req);
            if !c.check(r.status == 302, || {
                format!(
                    "HTTP/1.1, revoked IdToken in the {case}: want 302, got {} (try {n})",
                    r.summary()
                )
            }) {
                break;
            }
        }
        let mut h2 = H2Request::new("GET", "/app/page").header("accept", "text/html");
        for l in lines {
            h2 = h2.header("cookie", l);
        }
        let results = send_all_with(envoy.port, &vec![h2; 6], 1, Duration::from_secs(10));
        for r in &results {
            if !c.check(r.status == Some(302), || {
                format!(
                    "HTTP/2, revoked IdToken in the {case}: want 302, got {}",
                    r.summary()
                )
            }) {
                break;
            }
        }
    }
    c.finish("revoked IdToken in any Cookie line");
}
