//! Concurrent logouts never lose a revocation, and a replayed token is accepted once.
//!
//! Every revocation takes a slot in one shared-data counter (the store's exact cap), so the two
//! Envoy workers' compare-and-swap writes contend on every logout; many clients at once must
//! still end with every revocation stored and counted once. The same token sent by many clients at once must be accepted
//! exactly once (`jti` replay check under contention).

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::Write;
use std::sync::Barrier;
use std::thread;

use common::*;
use serde_json::json;

const LOGOUTS: usize = 200;
const CLIENTS: usize = 8;

/// Every logout goes through the one shared counter: maximal contention between the workers.
fn one_bucket_config() -> serde_json::Value {
    let mut config = base_config();
    config["max_revocations"] = json!(10_000);
    config
}

/// The back-channel POST for `token`, as (head, body) bytes, so a client can send the head
/// first and the body at a common start signal.
fn logout_request_parts(port: u16, token: &str) -> (Vec<u8>, Vec<u8>) {
    let req = Request::post(BACKCHANNEL_PATH).form(&[("logout_token", token)]);
    let mut bytes = req.to_bytes(port);
    let body = bytes.split_off(bytes.len() - req.body.len());
    (bytes, body)
}

/// The description code of a 400 answer (`jti_replayed` of `jti_replayed: ...`).
fn error_code(r: &Response) -> Option<String> {
    let desc = r.json()?["error_description"].as_str()?.to_string();
    Some(desc.split(':').next().unwrap_or_default().to_string())
}

#[test]
fn concurrent_logouts_into_one_bucket_lose_no_revocation() {
    let envoy = Envoy::start(&one_bucket_config());
    let mut c = Checks::new();
    let port = envoy.port;

    let sessions: Vec<Session> = (0..LOGOUTS)
        .map(|i| Session::new(&format!("conc{i}")))
        .collect();
    let tokens: Vec<String> = sessions.iter().map(Session::logout_token).collect();

    // 8 clients start together; each sends its share of the tokens, each request on its own
    // connection (so both workers get many).
    let barrier = Barrier::new(CLIENTS);
    let answers: Vec<(usize, Result<Response, String>)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (barrier, tokens) = (&barrier, &tokens);
                scope.spawn(move || {
                    barrier.wait();
                    (client..LOGOUTS)
                        .step_by(CLIENTS)
                        .map(|i| {
                            let r = Request::post(BACKCHANNEL_PATH)
                                .form(&[("logout_token", tokens[i].as_str())])
                                .send(port)
                                .map_err(|e| e.to_string());
                            (i, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    c.check(answers.len() == LOGOUTS, || {
        format!("{} answers for {LOGOUTS} logouts", answers.len())
    });
    let refused: Vec<String> = answers
        .iter()
        .filter_map(|(i, r)| match r {
            Ok(r) if r.status == 200 => None,
            Ok(r) => Some(format!("logout {i}: {}", r.summary())),
            Err(e) => Some(format!("logout {i}: {e}")),
        })
        .collect();
    c.check(refused.is_empty(), || {
        format!(
            "{} of {LOGOUTS} concurrent valid logouts did not get 200, e.g.:\n    {}",
            refused.len(),
            refused[..refused.len().min(5)].join("\n    ")
        )
    });

    // Every session is refused, on new connections (either worker), twice each.
    let mut still_passing = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        for _ in 0..2 {
            let r = envoy.get_with_cookie("/app/page", &s.id_token, "text/html");
            if r.status != 302 {
                still_passing.push(format!("session {i} (sid {}): {}", s.sid, r.summary()));
                break;
            }
        }
    }
    c.check(still_passing.is_empty(), || {
        format!(
            "{} of {LOGOUTS} logged-out sessions were not refused with 302 (revocations lost), \
             e.g.:\n    {}",
            still_passing.len(),
            still_passing[..still_passing.len().min(5)].join("\n    ")
        )
    });

    let entries = envoy.bcl_stat("bcl.store.revocation_entries");
    c.check(entries == LOGOUTS as i64, || {
        format!("bcl.store.revocation_entries is {entries}, want {LOGOUTS}")
    });
    let accepted = envoy.bcl_stat("bcl.logout.accepted");
    c.check(accepted == LOGOUTS as i64, || {
        format!("bcl.logout.accepted is {accepted}, want {LOGOUTS}")
    });
    for code in ["store_error", "store_full"] {
        let n = envoy.bcl_stat(&format!("bcl.logout.rejected.{code}"));
        c.check(n == 0, || {
            format!("bcl.logout.rejected.{code} is {n}, want 0")
        });
    }
    check_backchannel_never_forwarded(&mut c, &envoy);
    c.finish("concurrent logouts");
}

#[test]
fn a_token_replayed_concurrently_is_accepted_exactly_once() {
    const ROUNDS: usize = 5;
    let envoy = Envoy::start(&one_bucket_config());
    let mut c = Checks::new();
    let port = envoy.port;

    for round in 1..=ROUNDS {
        let case = format!("replay race {round}/{ROUNDS}");
        let victim = Session::new(&format!("replay{round}"));
        let token = victim.logout_token();
        let (head, body) = logout_request_parts(port, &token);

        // Every client connects and sends the request head; the bodies go at one signal, so
        // the filter sees the 8 complete requests as close together as the clients can make it.
        let barrier = Barrier::new(CLIENTS);
        let answers: Vec<Result<Response, String>> = thread::scope(|scope| {
            let handles: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let (barrier, head, body) = (&barrier, &head, &body);
                    scope.spawn(move || {
                        let mut stream = http::connect(port);
                        if let Ok(s) = stream.as_mut() {
                            let _ = s.write_all(head);
                        }
                        barrier.wait();
                        let mut stream = stream.map_err(|e| e.to_string())?;
                        let written = stream.write_all(body);
                        http::read_response(&mut stream, written.err()).map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });

        let ok = answers
            .iter()
            .filter(|r| matches!(r, Ok(r) if r.status == 200))
            .count();
        let replayed = answers
            .iter()
            .filter(|r| {
                matches!(r, Ok(r) if r.status == 400
                    && error_code(r).as_deref() == Some("jti_replayed"))
            })
            .count();
        let summaries: Vec<String> = answers
            .iter()
            .map(|r| match r {
                Ok(r) => format!("{} {}", r.status, r.body_str()),
                Err(e) => format!("error: {e}"),
            })
            .collect();
        c.check(ok == 1 && replayed == CLIENTS - 1, || {
            format!(
                "{case}: the same token from {CLIENTS} clients at once: want exactly one 200 and \
                 {} `jti_replayed`, got {ok} accepted, {replayed} jti_replayed: {summaries:?}",
                CLIENTS - 1
            )
        });
        check_refused_everywhere(&mut c, &envoy, &case, &victim);
    }

    let accepted = envoy.bcl_stat("bcl.logout.accepted");
    c.check(accepted == ROUNDS as i64, || {
        format!("bcl.logout.accepted is {accepted}, want {ROUNDS} (one per replayed token)")
    });
    let replayed = envoy.bcl_stat("bcl.logout.rejected.jti_replayed");
    let want = (ROUNDS * (CLIENTS - 1)) as i64;
    c.check(replayed == want, || {
        format!("bcl.logout.rejected.jti_replayed is {replayed}, want {want}")
    });
    let entries = envoy.bcl_stat("bcl.store.revocation_entries");
    c.check(entries == ROUNDS as i64, || {
        format!("bcl.store.revocation_entries is {entries}, want {ROUNDS}")
    });
    check_backchannel_never_forwarded(&mut c, &envoy);
    c.finish("replay race");
}
