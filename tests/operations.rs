//! Operating the filter: an invalid configuration is refused, metrics reach Prometheus, the
//! example Envoy configs validate, and docker-compose.yml is well-formed.

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Runs `bcl-check-config` (the offline checker) on `config`; returns what it printed.
fn check_config(config: &serde_json::Value) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bcl-check-config"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run bcl-check-config");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_offline_checker_accepts_what_the_filter_accepts() {
    let out = check_config(&base_config());
    assert!(out.contains("configuration OK"), "{out}");
}

/// Starts Envoy with `config` and expects the filter to refuse it: Envoy exits, or runs without
/// the listener, or (should a future Envoy keep it) answers no request through the filter.
/// Returns Envoy's log.
fn expect_refused(config: &serde_json::Value) -> String {
    match Envoy::try_start(config) {
        Err(StartError::Exited { log, .. }) => log,
        Err(StartError::NotReady { log, .. }) => log,
        Err(StartError::Io(e)) => panic!("could not run Envoy: {e}"),
        Ok(mut envoy) => {
            // Envoy came up: the filter must at least not serve traffic unguarded.
            let r = envoy.send(&Request::get("/app"));
            assert_ne!(
                r.status,
                200,
                "Envoy started with an invalid plugin configuration and served {}",
                r.summary()
            );
            envoy.wait_for_log("invalid plugin configuration", Duration::from_secs(10));
            assert!(envoy.is_running() || !envoy.log().is_empty());
            envoy.log()
        }
    }
}

#[test]
fn an_invalid_configuration_is_refused_and_named_in_the_log() {
    let mut c = Checks::new();

    let mut empty_client_ids = base_config();
    empty_client_ids["issuers"][0]["client_ids"] = json!([]);
    let mut bad_ttl = base_config();
    bad_ttl["revocation_ttl_seconds"] = json!(0);
    let mut unknown_field = base_config();
    unknown_field["session"] = json!({"cookie_nmae": "IdToken"});

    for (case, config, field) in [
        (
            "empty client_ids",
            empty_client_ids,
            "issuers[0].client_ids",
        ),
        ("zero TTL", bad_ttl, "revocation_ttl_seconds"),
        ("misspelt field", unknown_field, "cookie_nmae"),
    ] {
        // The offline checker prints the very line Envoy logs.
        let checker = check_config(&config);
        let log = expect_refused(&config);
        c.check(
            checker.starts_with("invalid plugin configuration: ")
                && log.lines().any(|l| l.contains(checker.trim())),
            || format!("{case}: bcl-check-config printed {checker:?}, not in Envoy's log"),
        );
        let line = log
            .lines()
            .find(|l| l.contains("invalid plugin configuration"))
            .map(str::to_string);
        c.check(line.as_deref().is_some_and(|l| l.contains(field)), || {
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            format!(
                "{case}: want a log line `invalid plugin configuration: ...{field}...`, got {line:?}; \
                 log tail: {tail:#?}"
            )
        });
    }
    c.finish("invalid configurations");
}

/// A counter line of Prometheus text (`name{labels} value` or `name value`): its value.
fn prometheus_value(text: &str, name_contains: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let metric = l.split_whitespace().next().unwrap_or_default();
            name_contains.iter().all(|n| metric.contains(n))
        })
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_count_accepted_and_rejected_logouts() {
    let envoy = Envoy::start(&base_config());
    let mut c = Checks::new();

    let session = Session::new("metrics");
    let r = envoy.logout(&session.logout_token());
    check_endpoint_answer(&mut c, "accepted logout", &r, 200, None);
    let r = envoy.logout("not-a-jwt");
    check_endpoint_answer(&mut c, "rejected logout", &r, 400, Some("malformed_jwt"));
    let _ = envoy.get_with_cookie("/app", &session.id_token, "text/html");

    let stats = envoy.stats();
    for (name, want) in [
        ("wasmcustom.bcl.logout.accepted", 1),
        ("wasmcustom.bcl.logout.rejected.malformed_jwt", 1),
        ("wasmcustom.bcl.session.revoked", 1),
        ("wasmcustom.bcl.store.revocation_entries", 1),
    ] {
        let got = stats.get(name).copied();
        c.check(got == Some(want), || {
            format!("/stats: {name} should be {want}, is {got:?}")
        });
    }

    let prom = envoy.prometheus();
    let accepted = prometheus_value(&prom, &["bcl_logout_accepted"]);
    c.check(accepted == Some(1.0), || {
        let ours: Vec<&str> = prom.lines().filter(|l| l.contains("bcl")).collect();
        format!("/stats/prometheus: bcl_logout_accepted should be 1, is {accepted:?}; bcl lines: {ours:#?}")
    });
    let rejected = prometheus_value(&prom, &["bcl_logout_rejected", "malformed_jwt"]);
    c.check(rejected == Some(1.0), || {
        let ours: Vec<&str> = prom.lines().filter(|l| l.contains("bcl")).collect();
        format!(
            "/stats/prometheus: the malformed_jwt rejection counter should be 1, is {rejected:?}; bcl lines: {ours:#?}"
        )
    });
    c.finish("metrics");
}

/// The example configs of `envoy/` pass `envoy --mode validate` (with the built filter).
#[test]
fn example_envoy_configs_validate() {
    let mut c = Checks::new();
    let wasm = wasm_path();
    let dir = std::env::temp_dir().join(jws::unique_id("bcl-validate-"));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["envoy-local.yaml", "envoy-oauth2.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("envoy").join(name)).unwrap();
        let text = text.replace(
            "target/wasm32-wasip1/release/envoy_backchannel_logout.wasm",
            &wasm.display().to_string(),
        );
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = Command::new(envoy_bin())
            .args(["--mode", "validate", "--use-dynamic-base-id", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        c.check(out.status.success() && text.contains("OK"), || {
            let tail: Vec<&str> = text.lines().rev().take(6).collect();
            format!("envoy/{name} does not validate: {tail:#?}")
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    c.finish("example configs");
}

#[test]
fn docker_compose_file_is_valid() {
    let Ok(out) = Command::new("docker-compose")
        .args(["config", "-q"])
        .current_dir(repo_root())
        .output()
    else {
        eprintln!(
            "SKIPPED: docker-compose is not installed (scripts/setup.sh installs Debian's \
             docker-compose); docker-compose.yml was not checked"
        );
        return;
    };
    assert!(
        out.status.success(),
        "docker-compose config -q failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
