//! A back-channel POST whose body ends with trailers (HTTP/2 DATA then a trailers HEADERS
//! frame; HTTP/1.1 chunked with a trailer section) is answered, and revokes its session.
//!
//! Envoy ends such a request in `on_http_request_trailers`, never with `end_of_stream` in the
//! body callback: a filter that waits for the latter leaves the IdP hanging.
//!
//! HTTP/1.1: Envoy's HTTP/1 codec hands trailers to filters only with the HCM's
//! `http_protocol_options: {enable_trailers: true}`; without it the trailers are dropped and the
//! body simply ends. Both are tested (the second with a copy of the test template that sets it).

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::h2::{send_all_with, H2Request};
use common::http::{connect, form_encode, read_response};
use common::*;

const FORM: &str = "application/x-www-form-urlencoded";

fn h2_logout(token: &str) -> H2Request {
    H2Request::new("POST", BACKCHANNEL_PATH)
        .header("content-type", FORM)
        .body(format!("logout_token={}", form_encode(token)))
}

#[test]
fn http2_logout_ending_with_trailers_is_answered_and_revokes() {
    let envoy = Envoy::start(&base_config());
    let mut c = Checks::new();

    // Control: the same POST over HTTP/2 without trailers.
    let plain = Session::new("h2-plain");
    let r = send_all_with(
        envoy.port,
        &[h2_logout(&plain.logout_token())],
        1,
        Duration::from_secs(5),
    );
    c.check(r[0].status == Some(200), || {
        format!(
            "HTTP/2 logout without trailers: want 200, got {}",
            r[0].summary()
        )
    });
    check_refused_everywhere(&mut c, &envoy, "HTTP/2 logout without trailers", &plain);

    // The body, then a trailers frame ends the stream.
    let session = Session::new("h2-trailers");
    check_passes_everywhere(&mut c, &envoy, "before the logout", &session);
    let started = Instant::now();
    let r = send_all_with(
        envoy.port,
        &[h2_logout(&session.logout_token()).trailer("x-trailer", "1")],
        1,
        Duration::from_secs(5),
    );
    let took = started.elapsed();
    eprintln!(
        "HTTP/2 logout with trailers: {} after {took:?}",
        r[0].summary()
    );
    c.check(
        r[0].outcome == "response" && r[0].status == Some(200),
        || {
            format!(
                "HTTP/2 logout ending with trailers: want 200 within 5 s, got {} after {took:?}",
                r[0].summary()
            )
        },
    );
    c.check(
        r[0].header("cache-control")
            .is_some_and(|v| v.contains("no-store")),
        || {
            format!(
                "HTTP/2 logout: want Cache-Control no-store, got {}",
                r[0].summary()
            )
        },
    );
    check_refused_everywhere(
        &mut c,
        &envoy,
        "after the HTTP/2 logout with trailers",
        &session,
    );
    // And refused over HTTP/2 too.
    let r = send_all_with(
        envoy.port,
        &[H2Request::new("GET", "/app/page")
            .header("cookie", format!("IdToken={}", session.id_token))
            .header("accept", "text/html")],
        1,
        Duration::from_secs(5),
    );
    c.check(r[0].status == Some(302), || {
        format!(
            "revoked session over HTTP/2: want 302, got {}",
            r[0].summary()
        )
    });
    check_backchannel_never_forwarded(&mut c, &envoy);
    c.finish("HTTP/2 logout with trailers");
}

/// POSTs `logout_token=<token>` chunked, with a trailer section; the answer, or the error
/// after 5 s.
fn chunked_logout_with_trailers(port: u16, token: &str) -> std::io::Result<Response> {
    let body = format!("logout_token={}", form_encode(token));
    let (first, second) = body.split_at(body.len() / 2);
    let mut bytes = format!(
        "POST {BACKCHANNEL_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: {FORM}\r\nTransfer-Encoding: chunked\r\nTrailer: x-trailer\r\n\r\n"
    );
    for part in [first, second] {
        bytes.push_str(&format!("{:x}\r\n{part}\r\n", part.len()));
    }
    bytes.push_str("0\r\nx-trailer: 1\r\n\r\n");
    let mut stream = connect(port)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let write = stream.write_all(bytes.as_bytes());
    read_response(&mut stream, write.err())
}

fn check_http1_chunked_trailers(envoy: &Envoy, case: &str) {
    let mut c = Checks::new();
    let session = Session::new("h1-trailers");
    check_passes_everywhere(
        &mut c,
        envoy,
        &format!("{case}: before the logout"),
        &session,
    );
    let started = Instant::now();
    let r = chunked_logout_with_trailers(envoy.port, &session.logout_token());
    let took = started.elapsed();
    match &r {
        Ok(r) => {
            eprintln!("{case}: {} after {took:?}", r.summary());
            check_endpoint_answer(&mut c, case, r, 200, None);
        }
        Err(e) => c.fail(format!(
            "{case}: want 200 within 5 s, got no answer after {took:?}: {e}"
        )),
    }
    check_refused_everywhere(
        &mut c,
        envoy,
        &format!("{case}: after the logout"),
        &session,
    );
    check_backchannel_never_forwarded(&mut c, envoy);
    c.finish(case);
}

#[test]
fn http1_chunked_logout_with_trailers_default_codec() {
    // The test template has no enable_trailers: Envoy drops the trailer section.
    let envoy = Envoy::start(&base_config());
    check_http1_chunked_trailers(&envoy, "HTTP/1.1 chunked + trailers (trailers dropped)");
}

#[test]
fn http1_chunked_logout_with_trailers_enabled() {
    // A copy of the test template whose HCM passes HTTP/1 trailers to the filters.
    let template =
        std::fs::read_to_string(repo_root().join("envoy/test-minimal.yaml.tmpl")).unwrap();
    let needle = "          codec_type: AUTO\n";
    assert!(
        template.contains(needle),
        "test template: no `codec_type: AUTO` line"
    );
    let template = template.replace(
        needle,
        &format!("{needle}          http_protocol_options: {{ enable_trailers: true }}\n"),
    );
    let dir = std::env::temp_dir().join(jws::unique_id("bcl-trailers-template-"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("test-trailers.yaml.tmpl");
    std::fs::write(&path, template).unwrap();
    // An absolute template path: `envoy/`.join(absolute) is that path.
    let envoy = match Envoy::try_start_with_template(&base_config(), path.to_str().unwrap(), true) {
        Ok(e) => e,
        Err(err) => panic!("Envoy did not start: {err:#?}"),
    };
    let _ = std::fs::remove_dir_all(&dir);
    check_http1_chunked_trailers(&envoy, "HTTP/1.1 chunked + trailers (enable_trailers)");
}
