//! Self-checks of the fleet harness: the etcd clusters of tests/common/etcd.rs (quorum through a
//! killed member, restarts, TLS, the data helpers, compaction) and an Envoy from
//! `envoy/test-fleet.yaml.tmpl` with the ordinary plugin configuration (no `fleet` block yet):
//! it serves, and its `etcd` cluster reaches the members, in plaintext and over mTLS.

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};

use common::etcd::{b64_decode, b64_encode, EtcdCluster};
use common::*;
use serde_json::json;

/// Envoy's `health_flags` of every `etcd` endpoint, by port, from the admin's `/clusters`.
/// The base configuration with a `fleet` block: the template's sync service needs one.
fn fleet_config() -> serde_json::Value {
    let mut config = base_config();
    merge(
        &mut config,
        serde_json::json!({"fleet": {"etcd_cluster": "etcd", "key_prefix": "/harness/"}}),
    );
    config
}

fn etcd_health_flags(envoy: &Envoy) -> Vec<(u16, String)> {
    let text = envoy.admin_get("/clusters").unwrap().body_str();
    text.lines()
        .filter_map(|l| l.strip_prefix("etcd::127.0.0.1:"))
        .filter_map(|l| {
            let (port, rest) = l.split_once("::")?;
            let flags = rest.strip_prefix("health_flags::")?;
            Some((port.parse().ok()?, flags.to_string()))
        })
        .collect()
}

/// Polls until Envoy's `etcd` endpoints have exactly the `want` flags (by port), or panics
/// with what it saw.
fn wait_for_etcd_flags(envoy: &Envoy, want: &[(u16, &str)]) {
    let mut seen = Vec::new();
    let ok = poll(Duration::from_secs(10), || {
        seen = etcd_health_flags(envoy);
        seen.len() == want.len()
            && want
                .iter()
                .all(|(port, flags)| seen.iter().any(|(p, f)| p == port && f == flags))
    });
    assert!(ok, "etcd endpoints in Envoy: want {want:?}, got {seen:?}");
}

/// A protobuf length-delimited field (wire type 2).
fn pb_bytes(field: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![field << 3 | 2];
    let mut n = data.len();
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(data);
    out
}

/// A unary call of etcd's `etcdserverpb.KV/<method>` with the encoded request `message`,
/// through the template's test-only route to the `etcd` cluster: HTTP/1.1 to Envoy, gRPC over
/// HTTP/2 (and TLS when the cluster has it) to a member, as the filter's calls will go. The
/// body is the framed answer; HTTP/1.1 drops the trailers, but a refused call comes back
/// trailers-only, with `grpc-status` among the headers.
fn grpc_kv_via_envoy(envoy: &Envoy, method: &str, message: &[u8]) -> Response {
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    envoy.send(
        &Request::post(&format!("/etcdserverpb.KV/{method}"))
            .header("Content-Type", "application/grpc")
            .header("TE", "trailers")
            .body(body),
    )
}

/// Checks a gRPC answer from [`grpc_kv_via_envoy`]: HTTP 200, no error status, and (when
/// given) `needle` somewhere in the answer (e.g. the value a Range should return).
fn check_grpc_ok(r: &Response, what: &str, needle: Option<&[u8]>) {
    assert!(grpc_ok(r, needle), "{what}: {}", r.summary());
}

fn grpc_ok(r: &Response, needle: Option<&[u8]>) -> bool {
    r.status == 200
        && r.header("content-type") == Some("application/grpc")
        && r.header("grpc-status").is_none_or(|s| s == "0")
        && needle.is_none_or(|n| r.body.windows(n.len()).any(|w| w == n))
}

#[test]
fn base64_round_trips() {
    for len in 0..=7 {
        let data: Vec<u8> = (0..len).map(|i| (i * 83 + 255) as u8).collect();
        assert_eq!(b64_decode(&b64_encode(&data)), data);
    }
    assert_eq!(b64_encode(b"foo"), "Zm9v");
    assert_eq!(b64_encode(b"fo"), "Zm8=");
    assert_eq!(b64_encode(&[0xfb, 0xff]), "+/8=");
}

/// Three members keep a quorum with one killed; a restarted member rejoins; the whole cluster
/// comes back from all members killed at once, with its data.
#[test]
fn etcd_quorum_survives_a_killed_member() {
    let t0 = Instant::now();
    let mut etcd = EtcdCluster::start(3);
    eprintln!("3 members healthy after {:?}", t0.elapsed());
    assert!(!etcd.is_tls());
    etcd.put(b"bcl/k1", b"v1");

    let t = Instant::now();
    etcd.kill(0);
    assert!(!etcd.is_running(0));
    assert!(!etcd.health(0));
    assert_eq!(etcd.get(b"bcl/k1").as_deref(), Some(&b"v1"[..]));
    etcd.put(b"bcl/k2", b"v2");
    eprintln!("read and write with m0 down after {:?}", t.elapsed());

    let t = Instant::now();
    etcd.restart(0);
    eprintln!("m0 healthy again after {:?}", t.elapsed());
    assert!((0..3).all(|i| etcd.health(i)));
    assert_eq!(
        etcd.range_prefix(b"bcl/"),
        vec![
            (b"bcl/k1".to_vec(), b"v1".to_vec()),
            (b"bcl/k2".to_vec(), b"v2".to_vec()),
        ]
    );

    let t = Instant::now();
    etcd.kill_all();
    assert!((0..3).all(|i| !etcd.is_running(i)));
    etcd.restart_all();
    eprintln!("all 3 back after {:?}", t.elapsed());
    assert_eq!(etcd.count_prefix(b"bcl/"), 2);
    etcd.put(b"bcl/k3", b"v3");
    assert_eq!(etcd.count_prefix(b"bcl/"), 3);
    eprintln!("whole test {:?}", t0.elapsed());
}

/// The data helpers on any bytes (paged ranges, prefixes ending in 0xff), and a physical
/// compaction at the latest revision.
#[test]
fn etcd_data_helpers_and_compaction() {
    let etcd = EtcdCluster::start(1);
    let r0 = etcd.revision();
    etcd.put(b"c/key", b"one");
    etcd.put(b"c/key", b"two");
    let latest = etcd.revision();
    assert_eq!(latest, r0 + 2);
    etcd.compact(latest);
    // Compacted: the old revision is gone, the value stays, compacting again is fine.
    let old = Request::post("/v3/kv/range")
        .body(
            json!({"key": b64_encode(b"c/key"), "revision": (latest - 1).to_string()}).to_string(),
        )
        .send(etcd.client_port(0))
        .unwrap();
    assert!(
        old.body_str()
            .contains("required revision has been compacted"),
        "a range at a compacted revision: {}",
        old.summary()
    );
    assert_eq!(etcd.get(b"c/key").as_deref(), Some(&b"two"[..]));
    etcd.compact(latest);

    // Binary keys under a prefix that ends in 0xff, more than one page (1000 keys a page).
    let prefix = [b'b', 0xff];
    for i in 0..1100u32 {
        let mut key = prefix.to_vec();
        key.extend_from_slice(&i.to_be_bytes());
        etcd.put(&key, &[0, 0xff, (i % 256) as u8]);
    }
    etcd.put(b"c", b"outside the prefix");
    let all = etcd.range_prefix(&prefix);
    assert_eq!(all.len(), 1100);
    assert_eq!(etcd.count_prefix(&prefix), 1100);
    for (i, (key, value)) in all.iter().enumerate() {
        let mut want = prefix.to_vec();
        want.extend_from_slice(&(i as u32).to_be_bytes());
        assert_eq!(key, &want);
        assert_eq!(value, &[0, 0xff, (i % 256) as u8]);
    }
    assert_eq!(etcd.count_prefix(b""), 1102);
    assert_eq!(etcd.count_prefix(b"nothing/"), 0);
    assert!(etcd.range_prefix(b"nothing/").is_empty());
    assert_eq!(etcd.get(b"nothing"), None);
}

/// A TLS member is healthy on its plaintext metrics port, refuses a plaintext client, and
/// Envoy's `etcd` cluster reaches it over mTLS (health check, then an HTTP/2 request through
/// the JSON gateway).
#[test]
fn etcd_tls_cluster_and_fleet_envoy() {
    let etcd = EtcdCluster::start_tls(1);
    assert!(etcd.is_tls());
    let metrics = Request::get("/health").send(etcd.metrics_port(0)).unwrap();
    assert_eq!(metrics.status, 200, "{}", metrics.summary());
    assert_eq!(metrics.json().unwrap()["health"], "true");
    let tls = etcd.tls_files().unwrap();
    for f in [
        &tls.ca,
        &tls.client_cert,
        &tls.client_key,
        &tls.server_cert,
        &tls.server_key,
    ] {
        assert!(f.is_file(), "{} missing", f.display());
    }
    // The client port speaks TLS only.
    let plain = Request::get("/health").send(etcd.client_port(0));
    assert!(
        plain.as_ref().map_or(true, |r| r.status == 400),
        "plaintext on the TLS client port: {plain:?}"
    );

    let envoy = Envoy::start_fleet(&fleet_config(), &etcd);
    wait_for_etcd_flags(&envoy, &[(etcd.client_port(0), "healthy")]);
    let put = [pb_bytes(1, b"tls/k"), pb_bytes(2, b"value-over-mtls")].concat();
    check_grpc_ok(
        &grpc_kv_via_envoy(&envoy, "Put", &put),
        "Put through Envoy over mTLS",
        None,
    );
    check_grpc_ok(
        &grpc_kv_via_envoy(&envoy, "Range", &pb_bytes(1, b"tls/k")),
        "Range through Envoy over mTLS",
        Some(b"value-over-mtls"),
    );
}

/// An Envoy from the fleet template with the ordinary configuration serves; its `etcd` cluster
/// shows every member healthy, then a killed one unhealthy (and back after a restart); Envoy
/// itself can be killed and a new one started for the same cluster.
#[test]
fn fleet_envoy_with_plaintext_etcd() {
    let mut etcd = EtcdCluster::start(3);
    let t = Instant::now();
    let mut envoy = Envoy::start_fleet(&fleet_config(), &etcd);
    eprintln!("fleet Envoy ready after {:?}", t.elapsed());
    let ports = etcd.client_ports();
    let all_healthy: Vec<(u16, &str)> = ports.iter().map(|&p| (p, "healthy")).collect();
    wait_for_etcd_flags(&envoy, &all_healthy);

    let r = envoy.send(&Request::get("/app/page"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.body_str(), UPSTREAM_BODY);
    // A session check still works (the singleton shares the filter's VM and configuration),
    // once the sync service has loaded the fleet's revocations (503 before).
    assert!(poll(Duration::from_secs(30), || envoy
        .bcl_stat("bcl.fleet.loaded")
        == 1));
    let session = Session::new("fleet");
    assert_eq!(passes(&envoy, &session, 4), 4);
    // The singleton exists (its plugin's stats), next to the HTTP filter's.
    let stats = envoy.stats();
    for plugin in ["backchannel_logout", "backchannel_logout_fleet"] {
        let name = format!("wasm.{plugin}.vm_reload_failure");
        assert_eq!(stats.get(&name), Some(&0), "{name}");
    }

    // gRPC through Envoy's `etcd` cluster to a key the harness wrote directly, and back.
    etcd.put(b"fleet/k", b"written-directly");
    let range = pb_bytes(1, b"fleet/k");
    check_grpc_ok(
        &grpc_kv_via_envoy(&envoy, "Range", &range),
        "Range through Envoy",
        Some(b"written-directly"),
    );
    let put = [pb_bytes(1, b"fleet/k2"), pb_bytes(2, b"via-envoy")].concat();
    check_grpc_ok(
        &grpc_kv_via_envoy(&envoy, "Put", &put),
        "Put through Envoy",
        None,
    );
    assert_eq!(etcd.get(b"fleet/k2").as_deref(), Some(&b"via-envoy"[..]));

    // A killed member leaves Envoy's rotation at its next check; requests still go through.
    etcd.kill(1);
    let mut flags = all_healthy.clone();
    flags[1].1 = "/failed_active_hc";
    wait_for_etcd_flags(&envoy, &flags);
    // When m1 led, calls fail with UNAVAILABLE ("etcdserver: leader changed") until the others
    // elect a leader (well under a second with the test timings): etcd's clients retry.
    let mut last = None;
    let recovered = poll(Duration::from_secs(10), || {
        let r = grpc_kv_via_envoy(&envoy, "Range", &range);
        let ok = grpc_ok(&r, Some(b"written-directly"));
        last = Some(r);
        ok
    });
    assert!(
        recovered,
        "no Range through Envoy within 10 s of killing m1: {}",
        last.map(|r| r.summary()).unwrap_or_default()
    );
    for _ in 0..6 {
        check_grpc_ok(
            &grpc_kv_via_envoy(&envoy, "Range", &range),
            "Range through Envoy with m1 down",
            Some(b"written-directly"),
        );
    }
    etcd.restart(1);
    wait_for_etcd_flags(&envoy, &all_healthy);

    // Envoy killed and started again for the same cluster.
    envoy.kill();
    assert!(!envoy.is_running());
    let envoy = Envoy::start_fleet(&fleet_config(), &etcd);
    wait_for_etcd_flags(&envoy, &all_healthy);
    assert_eq!(envoy.send(&Request::get("/app/page")).status, 200);

    // A template placeholder left unfilled is an error, not a YAML mystery.
    match Envoy::try_start_with_template(&fleet_config(), "test-fleet.yaml.tmpl", true) {
        Err(StartError::Io(msg)) => assert!(msg.contains("@ETCD_ENDPOINTS@"), "{msg}"),
        Err(e) => panic!("want a placeholder error, got {e:?}"),
        Ok(_) => panic!("the fleet template started without its etcd placeholders"),
    }
}
