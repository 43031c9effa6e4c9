//! Fleet mode against a real etcd cluster (Debian's `etcd-server`, three members on loopback
//! unless a test says otherwise) and several real Envoys: a logout accepted by one Envoy is
//! enforced by every Envoy, a replay is refused fleet-wide, a restarted Envoy loads every
//! revocation before it serves a session, and member failures, a full etcd outage and a
//! compacted watch revision lose nothing.

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::etcd::EtcdCluster;
use common::jws::{self, Alg};
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a revocation may take to reach another Envoy before a test calls it lost. The
/// benchmark measures the real figure (milliseconds); this only has to survive a loaded CI
/// machine.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(15);

fn fleet_config(prefix: &str) -> Value {
    let mut config = base_config();
    merge(
        &mut config,
        json!({"fleet": {"etcd_cluster": "etcd", "key_prefix": prefix, "call_timeout_ms": 2000}}),
    );
    config
}

/// Waits until the Envoy's sync service has loaded the fleet's revocations and watches etcd.
fn wait_synced(envoy: &Envoy, what: &str) {
    let ok = poll(Duration::from_secs(60), || {
        envoy.bcl_stat("bcl.fleet.loaded") == 1 && envoy.bcl_stat("bcl.fleet.connected") == 1
    });
    assert!(
        ok,
        "{what}: the sync service never reported loaded and connected; log tail:\n{}",
        tail(&envoy.log(), 40)
    );
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A session whose ID token is signed with Ed25519 (fast to mint by the thousand).
fn quick_session(label: &str, n: usize) -> Session {
    let sid = format!("sid-{label}-{n}-{}", jws::unique_id(""));
    let sub = format!("sub-{label}-{n}-{}", jws::unique_id(""));
    let iat = jws::now() - 5;
    let mut claims = jws::id_token_claims(&sid, &sub, iat);
    claims["iss"] = json!(ISSUER);
    let id_token = keys().sign_json(Alg::EdDsa, &jws::header(Alg::EdDsa, Some("JWT")), &claims);
    Session {
        iss: ISSUER.to_string(),
        sid,
        sub,
        iat,
        id_token,
    }
}

fn quick_logout_token(session: &Session) -> String {
    keys().sign(Alg::EdDsa, &session.logout_claims())
}

/// Whether one request with the session's cookie is forwarded.
fn passes_once(envoy: &Envoy, session: &Session) -> bool {
    passes(envoy, session, 1) == 1
}

/// Waits until `envoy` refuses the session, then checks it refuses it on every request.
fn check_reaches(c: &mut Checks, envoy: &Envoy, case: &str, session: &Session) {
    let reached = poll(PROPAGATION_TIMEOUT, || !passes_once(envoy, session));
    if c.check(reached, || {
        format!(
            "{case}: the revocation of sid={} never reached this Envoy; log tail:\n{}",
            session.sid,
            tail(&envoy.log(), 30)
        )
    }) {
        check_refused_everywhere(c, envoy, case, session);
    }
}

/// [`check_reaches`] for many sessions: refused, then refused again on a new connection.
fn check_reaches_quickly(c: &mut Checks, envoy: &Envoy, case: &str, session: &Session) {
    let reached = poll(PROPAGATION_TIMEOUT, || !passes_once(envoy, session));
    c.check(reached && passes(envoy, session, 2) == 0, || {
        format!(
            "{case}: the revocation of sid={} did not reach this Envoy",
            session.sid
        )
    });
}

#[test]
fn a_logout_to_one_envoy_is_enforced_by_every_envoy_and_a_replay_anywhere_is_refused() {
    let etcd = EtcdCluster::start(3);
    let config = fleet_config("/t1/");
    let envoys: Vec<Envoy> = (0..3).map(|_| Envoy::start_fleet(&config, &etcd)).collect();
    for (i, envoy) in envoys.iter().enumerate() {
        wait_synced(envoy, &format!("envoy {i}"));
    }
    let mut c = Checks::new();

    // By sid: the logout goes to A, the user comes back through B and C.
    let by_sid = Session::new("fleet-sid");
    let bystander = Session::new("fleet-bystander");
    for envoy in &envoys {
        check_passes_everywhere(&mut c, envoy, "before the logout", &by_sid);
    }
    let token = by_sid.logout_token();
    let r = envoys[0].logout(&token);
    check_endpoint_answer(&mut c, "logout to A", &r, 200, None);
    for (i, envoy) in envoys.iter().enumerate() {
        check_reaches(&mut c, envoy, &format!("sid logout, envoy {i}"), &by_sid);
        check_passes_everywhere(&mut c, envoy, "a session never logged out", &bystander);
    }

    // The same token sent to another replica is a replay for the fleet.
    for (i, envoy) in envoys.iter().enumerate().skip(1) {
        let r = envoy.logout(&token);
        check_endpoint_answer(
            &mut c,
            &format!("the same token replayed to envoy {i}"),
            &r,
            400,
            Some("jti_replayed"),
        );
    }
    c.check(envoys[1].bcl_stat("bcl.fleet.replays_refused") >= 1, || {
        "the replay refused through etcd is not counted".into()
    });

    // By sub (no sid in the token): every session of the user issued up to the logout, on
    // every Envoy; a login after the logout stays valid everywhere.
    let before = Session::new("fleet-sub");
    let mut claims = jws::logout_claims(None, Some(&before.sub));
    claims["iss"] = json!(ISSUER);
    let r = envoys[1].logout(&keys().sign(Alg::Rs256, &claims));
    check_endpoint_answer(&mut c, "sub logout to B", &r, 200, None);
    let after = Session::with(ISSUER, "sid-after-login", &before.sub, jws::now() + 2);
    for (i, envoy) in envoys.iter().enumerate() {
        check_reaches(&mut c, envoy, &format!("sub logout, envoy {i}"), &before);
        check_passes_everywhere(
            &mut c,
            envoy,
            &format!("a login after the sub logout, envoy {i}"),
            &after,
        );
    }

    // etcd holds hashed ids only: no sid, sub, issuer or token in clear.
    let records = etcd.range_prefix(b"/t1/");
    c.check(records.len() == 4, || {
        format!(
            "want 4 keys under /t1/ (2 jtis, 2 revocations), got {}: {:?}",
            records.len(),
            records
                .iter()
                .map(|(k, _)| String::from_utf8_lossy(k).to_string())
                .collect::<Vec<_>>()
        )
    });
    for (key, value) in &records {
        for secret in [&by_sid.sid, &by_sid.sub, &before.sub, &ISSUER.to_string()] {
            let in_key = key.windows(secret.len()).any(|w| w == secret.as_bytes());
            let in_value = value.windows(secret.len()).any(|w| w == secret.as_bytes());
            c.check(!in_key && !in_value, || {
                format!(
                    "etcd key {} holds {secret} in clear",
                    String::from_utf8_lossy(key)
                )
            });
        }
    }
    c.finish("fleet: logout reaches every Envoy");
}

#[test]
fn a_restarted_envoy_refuses_every_revoked_session_on_its_first_request() {
    let etcd = EtcdCluster::start(3);
    let config = fleet_config("/t2/");
    let a = Envoy::start_fleet(&config, &etcd);
    let mut b = Envoy::start_fleet(&config, &etcd);
    wait_synced(&a, "A");
    wait_synced(&b, "B");
    let mut c = Checks::new();
    let revoked: Vec<Session> = (0..40).map(|i| quick_session("restart", i)).collect();
    for session in &revoked {
        let r = a.logout(&quick_logout_token(session));
        check_endpoint_answer(&mut c, "logout to A", &r, 200, None);
    }
    let live = quick_session("restart-live", 0);
    b.kill();
    drop(b);
    let b = Envoy::start_fleet(&config, &etcd);
    // From its very first answer on, no revoked session is forwarded: 503 while loading,
    // then the refusal.
    let mut first_statuses = Vec::new();
    for session in &revoked {
        let r = b.get_with_cookie("/app/page", &session.id_token, "text/html");
        first_statuses.push(r.status);
        c.check(r.status != 200, || {
            format!(
                "restarted B forwarded revoked session {} on its first request: {}",
                session.sid,
                r.summary()
            )
        });
    }
    wait_synced(&b, "restarted B");
    for session in &revoked {
        check_refused_everywhere(&mut c, &b, "restarted B", session);
    }
    check_passes_everywhere(&mut c, &b, "a live session on restarted B", &live);
    c.check(b.log().contains("fleet: loaded 40 revocations"), || {
        format!(
            "restarted B did not log its load; log:\n{}",
            tail(&b.log(), 30)
        )
    });
    c.finish(&format!(
        "fleet: restart (first answers {:?})",
        &first_statuses[..first_statuses.len().min(8)]
    ));
}

#[test]
fn a_member_killed_during_a_stream_of_logouts_loses_none() {
    let mut etcd = EtcdCluster::start(3);
    let config = fleet_config("/t3/");
    let envoys: Vec<Envoy> = (0..3).map(|_| Envoy::start_fleet(&config, &etcd)).collect();
    for (i, envoy) in envoys.iter().enumerate() {
        wait_synced(envoy, &format!("envoy {i}"));
    }
    let mut c = Checks::new();
    let sessions: Vec<Session> = (0..240).map(|i| quick_session("member-kill", i)).collect();
    for (i, session) in sessions.iter().enumerate() {
        if i == 80 {
            etcd.kill(0);
        }
        let r = envoys[i % 3].logout(&quick_logout_token(session));
        check_endpoint_answer(&mut c, &format!("logout {i}"), &r, 200, None);
    }
    let stored = poll(PROPAGATION_TIMEOUT, || {
        etcd.count_prefix(b"/t3/r/") == sessions.len()
    });
    c.check(stored, || {
        format!(
            "etcd holds {} of {} revocations",
            etcd.count_prefix(b"/t3/r/"),
            sessions.len()
        )
    });
    for (i, envoy) in envoys.iter().enumerate() {
        for session in &sessions {
            check_reaches_quickly(&mut c, envoy, &format!("envoy {i}"), session);
        }
    }
    c.finish("fleet: one member of three killed");
}

#[test]
fn with_etcd_down_logouts_are_enforced_here_queued_and_delivered_when_it_returns() {
    let mut etcd = EtcdCluster::start(3);
    let config = fleet_config("/t4/");
    let a = Envoy::start_fleet(&config, &etcd);
    let b = Envoy::start_fleet(&config, &etcd);
    wait_synced(&a, "A");
    wait_synced(&b, "B");
    let mut c = Checks::new();
    let known = Session::new("outage-known");
    c.check(a.logout(&known.logout_token()).status == 200, || {
        "logout before the outage".into()
    });
    check_reaches(&mut c, &b, "before the outage", &known);

    etcd.kill_all();
    let down = poll(PROPAGATION_TIMEOUT, || {
        a.bcl_stat("bcl.fleet.connected") == 0 && b.bcl_stat("bcl.fleet.connected") == 0
    });
    c.check(down, || "the Envoys never noticed etcd was down".into());
    let during: Vec<Session> = (0..20).map(|i| quick_session("outage", i)).collect();
    for session in &during {
        let r = a.logout(&quick_logout_token(session));
        check_endpoint_answer(&mut c, "logout during the outage", &r, 200, None);
    }
    for session in &during {
        check_refused_everywhere(&mut c, &a, "A, during the outage", session);
    }
    check_refused_everywhere(&mut c, &b, "B keeps what it knew", &known);
    c.check(a.bcl_stat("bcl.fleet.queued") >= 1, || {
        "A's queue gauge shows nothing queued".into()
    });

    etcd.restart_all();
    for session in &during {
        check_reaches(&mut c, &b, "B, after etcd returned", session);
    }
    let drained = poll(PROPAGATION_TIMEOUT, || a.bcl_stat("bcl.fleet.queued") == 0);
    c.check(drained, || {
        format!(
            "A's queue never drained: {}",
            a.bcl_stat("bcl.fleet.queued")
        )
    });
    c.check(etcd.count_prefix(b"/t4/r/") == 21, || {
        format!(
            "etcd holds {} of 21 revocations",
            etcd.count_prefix(b"/t4/r/")
        )
    });
    c.finish("fleet: etcd entirely down");
}

#[test]
fn a_logout_whose_idp_hung_up_before_etcd_answered_still_reaches_every_envoy() {
    let mut etcd = EtcdCluster::start(3);
    let config = fleet_config("/t8/");
    let a = Envoy::start_fleet(&config, &etcd);
    let b = Envoy::start_fleet(&config, &etcd);
    wait_synced(&a, "A");
    wait_synced(&b, "B");
    let mut c = Checks::new();
    // etcd hangs: A's transaction waits (call_timeout_ms is 2 s) and the IdP gives up first.
    etcd.pause_all();
    let session = quick_session("hung-up", 0);
    let request =
        Request::post(BACKCHANNEL_PATH).form(&[("logout_token", &quick_logout_token(&session))]);
    let mut stream = http::connect(a.port).unwrap();
    std::io::Write::write_all(&mut stream, &request.to_bytes(a.port)).unwrap();
    let logged = poll(Duration::from_secs(10), || {
        a.bcl_stat("bcl.logout.accepted") >= 1
    });
    c.check(logged, || "A never accepted the logout".into());
    drop(stream);
    let queued = poll(Duration::from_secs(10), || {
        a.log()
            .contains("the back-channel request ended before etcd answered")
    });
    c.check(queued, || {
        format!(
            "A did not notice the IdP hung up; log tail:\n{}",
            tail(&a.log(), 20)
        )
    });
    check_refused_everywhere(&mut c, &a, "A enforces it at once", &session);
    etcd.resume_all();
    check_reaches(&mut c, &b, "B, once etcd answers again", &session);
    c.finish("fleet: the IdP hung up while etcd was slow");
}

#[test]
fn a_watch_resuming_from_a_compacted_revision_reloads_everything() {
    let mut etcd = EtcdCluster::start(3);
    let config = fleet_config("/t5/");
    let a = Envoy::start_fleet(&config, &etcd);
    // B reaches etcd through member 2 only, so it can be cut off while A goes on writing.
    let b = Envoy::start_fleet_members(&config, &etcd, &[2]);
    wait_synced(&a, "A");
    wait_synced(&b, "B");
    let mut c = Checks::new();
    etcd.kill(2);
    let cut = poll(PROPAGATION_TIMEOUT, || {
        b.bcl_stat("bcl.fleet.connected") == 0
    });
    c.check(cut, || "B never noticed its member was gone".into());
    let missed: Vec<Session> = (0..10).map(|i| quick_session("compacted", i)).collect();
    for session in &missed {
        let r = a.logout(&quick_logout_token(session));
        check_endpoint_answer(&mut c, "logout while B is cut off", &r, 200, None);
    }
    // A may have queued some of them (when the killed member was the leader, writes fail until
    // the other two elect one); the compaction must come after etcd holds all ten.
    let written = poll(PROPAGATION_TIMEOUT, || {
        etcd.count_prefix(b"/t5/j/") == missed.len()
    });
    c.check(written, || {
        format!(
            "etcd holds {} of the {} logouts sent to A",
            etcd.count_prefix(b"/t5/j/"),
            missed.len()
        )
    });
    let revision = etcd.revision();
    etcd.compact(revision);
    // B must not reconnect before member 2 has caught up with the compaction itself (a
    // lagging member would still serve the old revision, and B would lose nothing either).
    b.pause();
    etcd.restart(2);
    let caught_up = poll(PROPAGATION_TIMEOUT, || etcd.compacted_on(2, revision));
    b.resume();
    c.check(caught_up, || "member 2 never applied the compaction".into());
    for session in &missed {
        check_reaches(&mut c, &b, "B after a compacted resume", session);
    }
    c.check(b.bcl_stat("bcl.fleet.full_reloads") >= 1, || {
        format!("B did not reload fully; log tail:\n{}", tail(&b.log(), 20))
    });
    c.check(b.log().contains("was compacted"), || {
        "B did not log the compaction".into()
    });
    c.finish("fleet: compacted watch revision");
}

#[test]
fn ten_thousand_logouts_over_three_envoys_are_enforced_by_every_envoy() {
    const LOGOUTS: usize = 10_000;
    let etcd = EtcdCluster::start(3);
    let config = fleet_config("/t6/");
    let envoys: Vec<Envoy> = (0..3).map(|_| Envoy::start_fleet(&config, &etcd)).collect();
    for (i, envoy) in envoys.iter().enumerate() {
        wait_synced(envoy, &format!("envoy {i}"));
    }
    let sessions: Vec<Session> = (0..LOGOUTS).map(|i| quick_session("bulk", i)).collect();
    let tokens: Vec<String> = sessions.iter().map(quick_logout_token).collect();
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|worker| {
                let envoys = &envoys;
                let tokens = &tokens;
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for i in (worker..tokens.len()).step_by(4) {
                        let r = envoys[i % 3].logout(&tokens[i]);
                        if r.status != 200 {
                            failures.push(format!("logout {i}: {}", r.summary()));
                        }
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let sent_in = started.elapsed();
    let mut c = Checks::new();
    c.check(failures.is_empty(), || {
        format!(
            "{} logouts failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        )
    });
    c.check(etcd.count_prefix(b"/t6/r/") == LOGOUTS, || {
        format!("etcd holds {} of {LOGOUTS}", etcd.count_prefix(b"/t6/r/"))
    });
    for (i, envoy) in envoys.iter().enumerate() {
        let all = poll(PROPAGATION_TIMEOUT, || {
            envoy.bcl_stat("bcl.store.revocation_entries") == LOGOUTS as i64
        });
        c.check(all, || {
            format!(
                "envoy {i} holds {} of {LOGOUTS} revocations",
                envoy.bcl_stat("bcl.store.revocation_entries")
            )
        });
    }
    // Every session, on every Envoy: each one is refused.
    let passed: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|worker| {
                let envoys = &envoys;
                let sessions = &sessions;
                scope.spawn(move || {
                    let mut passed = Vec::new();
                    for i in (worker..sessions.len()).step_by(4) {
                        for (e, envoy) in envoys.iter().enumerate() {
                            if passes_once(envoy, &sessions[i]) {
                                passed.push(format!("session {i} passed on envoy {e}"));
                            }
                        }
                    }
                    passed
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    c.check(passed.is_empty(), || {
        format!(
            "{} revoked sessions passed, e.g. {:?}",
            passed.len(),
            &passed[..passed.len().min(5)]
        )
    });
    c.finish(&format!(
        "fleet: {LOGOUTS} logouts over three Envoys (sent in {:.1} s)",
        sent_in.as_secs_f64()
    ));
}

#[test]
fn mutual_tls_between_envoy_and_etcd() {
    let etcd = EtcdCluster::start_tls(3);
    let config = fleet_config("/t7/");
    let a = Envoy::start_fleet(&config, &etcd);
    let b = Envoy::start_fleet(&config, &etcd);
    wait_synced(&a, "A (mTLS)");
    wait_synced(&b, "B (mTLS)");
    let mut c = Checks::new();
    let session = Session::new("mtls");
    let r = a.logout(&session.logout_token());
    check_endpoint_answer(&mut c, "logout to A over mTLS", &r, 200, None);
    check_reaches(&mut c, &b, "B over mTLS", &session);
    c.check(a.bcl_stat("bcl.fleet.written") >= 1, || {
        "A wrote nothing to etcd".into()
    });
    c.finish("fleet: mTLS");
}

#[test]
fn without_a_fleet_block_nothing_reaches_etcd_and_the_service_refuses_to_start() {
    let etcd = EtcdCluster::start(1);
    let mut c = Checks::new();
    // The ordinary filter (no fleet block, no sync service) next to a running etcd: it
    // keeps revocations to itself, as before, and defines no fleet stats.
    let envoy = Envoy::start(&base_config());
    let session = Session::new("no-fleet");
    let r = envoy.logout(&session.logout_token());
    check_endpoint_answer(&mut c, "logout without fleet", &r, 200, None);
    check_refused_everywhere(&mut c, &envoy, "without fleet", &session);
    c.check(
        !envoy.stats().keys().any(|k| k.contains("bcl.fleet.")),
        || "fleet stats defined without a fleet block".into(),
    );
    c.check(etcd.count_prefix(b"/") == 0, || {
        "something was written to etcd without a fleet block".into()
    });
    // The sync service without a fleet block is a configuration error, said in one line.
    let err = Envoy::try_start_fleet(&base_config(), &etcd);
    match err {
        Ok(_) => c.fail("the sync service started without a fleet block"),
        Err(e) => {
            let text = format!("{e:?}");
            c.check(
                text.contains("fleet: is required for root_id backchannel_logout_fleet"),
                || format!("want the configuration error in Envoy's log, got {text}"),
            );
        }
    }
    c.finish("fleet: none configured");
}
