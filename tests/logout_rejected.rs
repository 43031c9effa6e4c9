//! Every kind of bad back-channel request is refused with the stable error code of DESIGN.md
//! (400, or 405 for a GET), no-store headers, and revokes nothing: the session the request
//! targets still passes afterwards.

// Test code: helpers outside #[test] functions may unwrap and index too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::{json, Value};

/// An issuer that allows RS256 only.
const RS256_ONLY: &str = "https://idp-rs256-only.example.test";
/// An issuer with `require_logout_jwt_typ` and `require_exp`.
const STRICT_TYP: &str = "https://idp-strict-typ.example.test";

/// A refusal case: what to send for the victim session, and the expected answer.
struct Case {
    name: &'static str,
    issuer: &'static str,
    status: u16,
    code: Option<&'static str>,
    request: Box<dyn Fn(&Session) -> Request>,
}

fn post_token(token: String) -> Request {
    Request::post(BACKCHANNEL_PATH).form(&[("logout_token", &token)])
}

/// A case whose request is a logout token built from the victim's valid claims by `edit`,
/// signed RS256 with the standard header.
fn claims_case(
    name: &'static str,
    code: &'static str,
    edit: impl Fn(&mut Value) + 'static,
) -> Case {
    Case {
        name,
        issuer: ISSUER,
        status: 400,
        code: Some(code),
        request: Box::new(move |s| {
            let mut claims = s.logout_claims();
            edit(&mut claims);
            post_token(keys().sign(Alg::Rs256, &claims))
        }),
    }
}

/// A case with a fully custom token made from the victim's valid claims.
fn token_case(
    name: &'static str,
    issuer: &'static str,
    code: &'static str,
    token: impl Fn(&Session) -> String + 'static,
) -> Case {
    Case {
        name,
        issuer,
        status: 400,
        code: Some(code),
        request: Box::new(move |s| post_token(token(s))),
    }
}

fn remove(claim: &'static str) -> impl Fn(&mut Value) {
    move |c: &mut Value| {
        c.as_object_mut().unwrap().remove(claim);
    }
}

fn cases() -> Vec<Case> {
    let now = jws::now();
    vec![
        // The form.
        Case {
            name: "no logout_token parameter",
            issuer: ISSUER,
            status: 400,
            code: Some("logout_token_missing"),
            request: Box::new(|_| Request::post(BACKCHANNEL_PATH).form(&[("state", "abc")])),
        },
        Case {
            name: "empty body",
            issuer: ISSUER,
            status: 400,
            code: Some("logout_token_missing"),
            request: Box::new(|_| {
                Request::post(BACKCHANNEL_PATH)
                    .header("Content-Type", "application/x-www-form-urlencoded")
            }),
        },
        Case {
            name: "two logout_token parameters",
            issuer: ISSUER,
            status: 400,
            code: Some("logout_token_repeated"),
            request: Box::new(|s| {
                let t = s.logout_token();
                Request::post(BACKCHANNEL_PATH).form(&[("logout_token", &t), ("logout_token", &t)])
            }),
        },
        Case {
            name: "empty logout_token",
            issuer: ISSUER,
            status: 400,
            code: Some("logout_token_empty"),
            request: Box::new(|_| Request::post(BACKCHANNEL_PATH).form(&[("logout_token", "")])),
        },
        Case {
            name: "JSON content type",
            issuer: ISSUER,
            status: 400,
            code: Some("content_type"),
            request: Box::new(|s| {
                Request::post(BACKCHANNEL_PATH)
                    .header("Content-Type", "application/json")
                    .body(json!({"logout_token": s.logout_token()}).to_string())
            }),
        },
        Case {
            name: "form body without content type",
            issuer: ISSUER,
            status: 400,
            code: Some("content_type"),
            request: Box::new(|s| {
                Request::post(BACKCHANNEL_PATH).body(format!("logout_token={}", s.logout_token()))
            }),
        },
        Case {
            name: "GET",
            issuer: ISSUER,
            status: 405,
            code: None,
            request: Box::new(|s| {
                Request::get(&format!(
                    "{BACKCHANNEL_PATH}?logout_token={}",
                    s.logout_token()
                ))
            }),
        },
        Case {
            name: "100 KiB body over the 64 KiB default",
            issuer: ISSUER,
            status: 400,
            code: Some("body_too_large"),
            request: Box::new(|s| {
                let pad = "a".repeat(100 * 1024);
                Request::post(BACKCHANNEL_PATH)
                    .form(&[("logout_token", &s.logout_token()), ("pad", &pad)])
            }),
        },
        // The JWS.
        token_case("not a JWT", ISSUER, "malformed_jwt", |_| {
            "this-is-not-a-jwt".to_string()
        }),
        token_case("alg none", ISSUER, "alg_not_allowed", |s| {
            jws::unsigned(
                &json!({"alg": "none", "typ": "logout+jwt"}),
                &s.logout_claims(),
            )
        }),
        token_case(
            "HS256 keyed with the public JWKS",
            ISSUER,
            "alg_not_allowed",
            |s| {
                let secret = keys().jwks().to_string();
                jws::hs256(
                    secret.as_bytes(),
                    &json!({"alg": "HS256", "kid": "example-rsa", "typ": "logout+jwt"}),
                    &s.logout_claims(),
                )
            },
        ),
        token_case(
            "ES256 for an RS256-only issuer",
            RS256_ONLY,
            "alg_not_allowed",
            |s| keys().sign(Alg::Es256, &s.logout_claims()),
        ),
        token_case("unknown kid", ISSUER, "unknown_kid", |s| {
            keys().sign_json(
                Alg::Rs256,
                &json!({"alg": "RS256", "kid": "no-such-key", "typ": "logout+jwt"}),
                &s.logout_claims(),
            )
        }),
        token_case(
            "bad signature (payload swapped after signing)",
            ISSUER,
            "signature",
            |s| {
                let other = Session::new("signed");
                let signed = keys().sign(Alg::Rs256, &other.logout_claims());
                let parts: Vec<&str> = signed.split('.').collect();
                let payload = jws::b64url(s.logout_claims().to_string().as_bytes());
                format!("{}.{payload}.{}", parts[0], parts[2])
            },
        ),
        token_case(
            "bad signature (signature bytes altered)",
            ISSUER,
            "signature",
            |s| {
                let signed = keys().sign(Alg::Es256, &s.logout_claims());
                let parts: Vec<&str> = signed.split('.').collect();
                let mut sig = jws::b64url_decode(parts[2]).unwrap();
                sig[10] ^= 0x01;
                format!("{}.{}.{}", parts[0], parts[1], jws::b64url(&sig))
            },
        ),
        // The claims.
        claims_case("wrong iss", "unknown_issuer", |c| {
            c["iss"] = json!("https://evil.example.test")
        }),
        claims_case("wrong aud", "aud", |c| c["aud"] = json!("another-client")),
        claims_case("expired", "expired", move |c| {
            c["iat"] = json!(now - 200);
            c["exp"] = json!(now - 120);
        }),
        // A token without exp is accepted by default (bounded by iat + max age); an issuer
        // with `require_exp` refuses it.
        token_case(
            "no exp, issuer with require_exp",
            STRICT_TYP,
            "exp_missing",
            |s| {
                let mut claims = s.logout_claims();
                claims.as_object_mut().unwrap().remove("exp");
                keys().sign(Alg::Rs256, &claims)
            },
        ),
        claims_case("no iat", "iat_missing", remove("iat")),
        claims_case("iat in the future", "iat_in_future", move |c| {
            c["iat"] = json!(now + 600);
            c["exp"] = json!(now + 720);
        }),
        claims_case("too old", "token_too_old", move |c| {
            c["iat"] = json!(now - 1000);
            c["exp"] = json!(now + 120);
        }),
        claims_case("no events", "events_missing", remove("events")),
        claims_case("wrong events member", "events_member_missing", |c| {
            c["events"] = json!({"http://schemas.openid.net/event/other": {}})
        }),
        claims_case("events not an object", "events_not_object", |c| {
            c["events"] = json!([BCL_EVENT])
        }),
        claims_case("nonce present", "nonce_present", |c| {
            c["nonce"] = json!("n-1")
        }),
        claims_case("neither sub nor sid", "sub_sid_missing", |c| {
            let o = c.as_object_mut().unwrap();
            o.remove("sub");
            o.remove("sid");
        }),
        claims_case("no jti", "jti_missing", remove("jti")),
        // Typing.
        token_case("typ at+jwt", ISSUER, "typ", |s| {
            keys().sign_json(
                Alg::Rs256,
                &jws::header(Alg::Rs256, Some("at+jwt")),
                &s.logout_claims(),
            )
        }),
        token_case(
            "typ JWT when logout+jwt is required",
            STRICT_TYP,
            "typ",
            |s| {
                keys().sign_json(
                    Alg::Rs256,
                    &jws::header(Alg::Rs256, Some("JWT")),
                    &s.logout_claims(),
                )
            },
        ),
    ]
}

#[test]
fn every_refusal_answers_its_code_and_revokes_nothing() {
    let mut config = base_config();
    let mut strict = issuer_config(STRICT_TYP, &["RS256"]);
    strict["require_logout_jwt_typ"] = json!(true);
    strict["require_exp"] = json!(true);
    config["issuers"]
        .as_array_mut()
        .unwrap()
        .extend([issuer_config(RS256_ONLY, &["RS256"]), strict]);
    let envoy = Envoy::start(&config);
    let mut c = Checks::new();

    for case in cases() {
        let victim = Session::of(case.issuer, "victim");
        let req = (case.request)(&victim);
        let r = match req.send(envoy.port) {
            Ok(r) => r,
            Err(e) => {
                c.fail(format!("{}: request failed: {e}", case.name));
                continue;
            }
        };
        check_endpoint_answer(&mut c, case.name, &r, case.status, case.code);
        if case.status == 405 {
            c.check(r.header("allow") == Some("POST"), || {
                format!("{}: want Allow: POST, got {}", case.name, r.summary())
            });
        }
        check_passes_everywhere(
            &mut c,
            &envoy,
            &format!("{}: nothing revoked", case.name),
            &victim,
        );
    }

    // The strict issuer accepts logout+jwt (so the typ refusal above is about the typ).
    {
        let victim = Session::of(STRICT_TYP, "strict-ok");
        let r = envoy.logout(&victim.logout_token());
        check_endpoint_answer(&mut c, "strict issuer, typ logout+jwt", &r, 200, None);
        check_refused_everywhere(&mut c, &envoy, "strict issuer, typ logout+jwt", &victim);
    }

    // Replay: the same valid token twice.
    {
        let victim = Session::new("replay");
        let token = victim.logout_token();
        let first = envoy.logout(&token);
        check_endpoint_answer(&mut c, "replay: first use", &first, 200, None);
        let second = envoy.logout(&token);
        check_endpoint_answer(
            &mut c,
            "replay: second use",
            &second,
            400,
            Some("jti_replayed"),
        );
        // A replay on a fresh connection lands on any worker: the jti cache is shared.
        for i in 0..6 {
            let again = envoy.logout(&token);
            check_endpoint_answer(
                &mut c,
                &format!("replay: use {}", i + 3),
                &again,
                400,
                Some("jti_replayed"),
            );
        }
    }

    let accepted = envoy.bcl_stat("bcl.logout.accepted");
    c.check(accepted == 2, || {
        format!("bcl.logout.accepted should be 2 (strict issuer + first replay use), is {accepted}")
    });
    check_backchannel_never_forwarded(&mut c, &envoy);
    c.finish("refused logout requests");
}
