//! `failure_policy: FAIL_RELOAD` (every config of `envoy/`): a crashed filter VM is replaced on
//! the next request after a short backoff, and the new VM sees the revocations stored before
//! the crash (Envoy shared data outlives the VM). docs/FAILURE_POLICY.md has the numbers.
//!
//! The crash comes from the `test-panic` build of the filter (a request with header
//! `x-bcl-test-panic` panics it). This test builds it itself, into `target/test-panic` so the
//! release `.wasm` is never overwritten, unless that build is newer than every source file.

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::*;

/// Newest modification time of `path` (a file, or every file under a directory).
fn newest(path: &Path) -> SystemTime {
    let meta = std::fs::metadata(path).unwrap();
    if meta.is_file() {
        return meta.modified().unwrap();
    }
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| newest(&e.unwrap().path()))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The `test-panic` build of the filter, built when missing or older than the sources.
fn test_panic_wasm() -> PathBuf {
    let root = repo_root();
    let target_dir = root.join("target/test-panic");
    let wasm = target_dir.join("wasm32-wasip1/release/envoy_backchannel_logout.wasm");
    let sources = [
        newest(&root.join("src")),
        newest(&root.join("Cargo.toml")),
        newest(&root.join("Cargo.lock")),
    ];
    let built = std::fs::metadata(&wasm).and_then(|m| m.modified()).ok();
    if built.is_some_and(|b| sources.iter().all(|s| *s <= b)) {
        eprintln!("test-panic build is up to date: {}", wasm.display());
        return wasm;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "building the test-panic filter into {}",
        target_dir.display()
    );
    let started = Instant::now();
    let status = Command::new(cargo)
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--features",
            "test-panic",
        ])
        .status()
        .expect("run cargo build for the test-panic filter");
    assert!(status.success(), "cargo build --features test-panic failed");
    eprintln!("built in {:.1?}", started.elapsed());
    assert!(wasm.is_file(), "{} missing after the build", wasm.display());
    wasm
}

/// Worker threads whose VM has crashed so far: the thread ids of Envoy's
/// `Function: proxy_on_... failed` log lines.
fn crashed_threads(envoy: &Envoy) -> BTreeSet<String> {
    envoy
        .log()
        .lines()
        .filter(|l| l.contains("Function: proxy_on_") && l.contains("failed"))
        .filter_map(|l| {
            l.split(']')
                .nth(1)
                .map(|t| t.trim_start_matches('[').to_string())
        })
        .collect()
}

fn panic_request() -> Request {
    Request::get("/app/page").header("x-bcl-test-panic", "1")
}

#[test]
fn fail_reload_replaces_a_crashed_vm_and_keeps_the_revocations() {
    let template =
        std::fs::read_to_string(repo_root().join("envoy/test-minimal.yaml.tmpl")).unwrap();
    assert!(
        template.contains("failure_policy: FAIL_RELOAD"),
        "envoy/test-minimal.yaml.tmpl should use failure_policy: FAIL_RELOAD"
    );
    let wasm = test_panic_wasm();
    let envoy = Envoy::start_with_wasm(&base_config(), &wasm);
    let mut c = Checks::new();

    let revoked = Session::new("revoked-before-crash");
    let live = Session::new("live");
    let r = envoy.logout(&revoked.logout_token());
    check_endpoint_answer(&mut c, "logout before the crash", &r, 200, None);
    check_refused_everywhere(&mut c, &envoy, "revoked, before the crash", &revoked);
    check_passes_everywhere(&mut c, &envoy, "live, before the crash", &live);
    let created_before = envoy.stat("wasm.envoy.wasm.runtime.v8.created");

    // Crash the VM of both workers: panic requests on new connections until Envoy's log shows
    // a failed VM call on two threads (each new connection lands on either worker).
    let mut panic_statuses = Vec::new();
    for _ in 0..60 {
        if crashed_threads(&envoy).len() >= 2 {
            break;
        }
        panic_statuses.push(envoy.send(&panic_request()).status);
        // Let the log line be written before looking again.
        poll(Duration::from_millis(500), || {
            crashed_threads(&envoy).len() >= 2
        });
    }
    let crashed = crashed_threads(&envoy);
    eprintln!(
        "panic requests: {} answered {:?}; VM crashed on threads {crashed:?}",
        panic_statuses.len(),
        panic_statuses
    );
    c.check(crashed.len() >= 2, || {
        format!("the VM crashed on {crashed:?} only, want both workers")
    });
    c.check(panic_statuses.iter().all(|s| *s == 503), || {
        format!("a crashing request should get 503 (never pass): {panic_statuses:?}")
    });

    // Recovery: the live session passes 10 times in a row (fresh connections, so both workers).
    let crashed_at = Instant::now();
    let mut answered_503 = 0;
    let mut others = Vec::new();
    let mut in_a_row = 0;
    let recovered = poll(Duration::from_secs(30), || {
        let r = envoy.get_with_cookie("/app/page", &live.id_token, "text/html");
        match r.status {
            200 => in_a_row += 1,
            503 => {
                answered_503 += 1;
                in_a_row = 0;
            }
            s => {
                others.push(s);
                in_a_row = 0;
            }
        }
        in_a_row >= 10
    });
    let took = crashed_at.elapsed();
    eprintln!(
        "FAIL_RELOAD: recovered={recovered} after {took:.2?}; {answered_503} requests answered \
         503 meanwhile (polling every 50 ms); other statuses: {others:?}"
    );
    c.check(recovered, || {
        format!(
            "no recovery within 30 s of the crash: {answered_503} answers 503, others {others:?}"
        )
    });
    c.check(others.is_empty(), || {
        format!("while recovering, only 503 or 200 expected, got {others:?}")
    });

    // The replacement VMs see the shared data of the crashed ones.
    check_refused_everywhere(
        &mut c,
        &envoy,
        "revoked before the crash, after the reload",
        &revoked,
    );
    check_passes_everywhere(&mut c, &envoy, "live session after the reload", &live);
    let fresh = Session::new("after-reload");
    let r = envoy.logout(&fresh.logout_token());
    check_endpoint_answer(&mut c, "logout after the reload", &r, 200, None);
    check_refused_everywhere(&mut c, &envoy, "logged out after the reload", &fresh);

    let reload_success = envoy.stat("wasm.backchannel_logout.vm_reload_success");
    let reload_backoff = envoy.stat("wasm.backchannel_logout.vm_reload_backoff");
    let reload_failure = envoy.stat("wasm.backchannel_logout.vm_reload_failure");
    let created = envoy.stat("wasm.envoy.wasm.runtime.v8.created") - created_before;
    eprintln!(
        "stats: wasm.backchannel_logout.vm_reload_success={reload_success} \
         vm_reload_backoff={reload_backoff} vm_reload_failure={reload_failure}; \
         wasm.envoy.wasm.runtime.v8.created +{created}"
    );
    c.check(reload_success >= 2, || {
        format!("wasm.backchannel_logout.vm_reload_success = {reload_success}, want >= 2")
    });
    c.check(reload_failure == 0, || {
        format!("wasm.backchannel_logout.vm_reload_failure = {reload_failure}")
    });
    c.finish("FAIL_RELOAD");
}
