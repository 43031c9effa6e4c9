//! Section 2.6, check by check, with real signatures (ES256 and EdDSA keys made per run).

use super::*;
use crate::jwks::parse_jwks_value;
use jwt_simple::prelude::*;
use serde_json::json;

const ISS: &str = "https://idp.example";
const NOW: i64 = 1_800_000_000;

struct Fixture {
    es: ES256KeyPair,
    ed: Ed25519KeyPair,
    keys: KeySet,
    policy: IssuerPolicy,
}

struct Keys<'a>(Option<&'a KeySet>);

impl KeySource for Keys<'_> {
    fn keys(&self, issuer_index: usize) -> Option<&KeySet> {
        if issuer_index == 0 {
            self.0
        } else {
            None
        }
    }
}

fn fixture() -> Fixture {
    let es = ES256KeyPair::generate().with_key_id("ec-1");
    let ed = Ed25519KeyPair::generate().with_key_id("ed-1");
    let es_jwk: serde_json::Value = serde_json::from_str(&es.public_key().to_jwk()).unwrap();
    let ed_jwk: serde_json::Value = serde_json::from_str(&ed.public_key().to_jwk()).unwrap();
    let jwks = json!({"keys": [es_jwk, ed_jwk]});
    let algorithms = vec![Algorithm::ES256, Algorithm::EdDSA];
    let keys = parse_jwks_value(&jwks, &algorithms).unwrap().keys;
    Fixture {
        es,
        ed,
        keys,
        policy: IssuerPolicy {
            issuer: ISS.into(),
            client_ids: vec!["app".into()],
            algorithms,
            clock_skew_seconds: 60,
            max_token_age_seconds: 300,
            require_logout_jwt_typ: false,
            require_exp: false,
            revoke_all_user_sessions: false,
        },
    }
}

fn good_claims() -> serde_json::Value {
    json!({
        "iss": ISS,
        "aud": "app",
        "iat": NOW - 5,
        "exp": NOW + 115,
        "jti": "jti-1",
        "sub": "alice",
        "sid": "sid-1",
        "events": {BACKCHANNEL_EVENT: {}},
    })
}

fn claims_of(payload: serde_json::Value) -> JWTClaims<serde_json::Value> {
    JWTClaims {
        issued_at: None,
        expires_at: None,
        invalid_before: None,
        issuer: None,
        subject: None,
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom: payload,
    }
}

fn typ(t: &str) -> HeaderOptions {
    HeaderOptions {
        signature_type: Some(t.into()),
        ..Default::default()
    }
}

impl Fixture {
    fn es_token(&self, payload: serde_json::Value) -> String {
        self.es
            .sign_with_options(claims_of(payload), &typ("logout+jwt"))
            .unwrap()
    }

    fn check(&self, token: &str) -> Result<VerifiedLogout, Rejection> {
        validate(
            token,
            std::slice::from_ref(&self.policy),
            &Keys(Some(&self.keys)),
            NOW,
        )
    }

    fn check_claims(
        &self,
        edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Result<VerifiedLogout, Rejection> {
        let mut claims = good_claims();
        edit(claims.as_object_mut().unwrap());
        self.check(&self.es_token(claims))
    }
}

#[test]
fn accepts_a_valid_token_with_either_algorithm() {
    let f = fixture();
    let logout = f.check(&f.es_token(good_claims())).unwrap();
    assert_eq!(logout.issuer(), ISS);
    assert_eq!(logout.sid(), Some("sid-1"));
    assert_eq!(logout.sub(), Some("alice"));
    assert_eq!(logout.jti(), "jti-1");
    assert!(logout.revokes_session());
    assert!(!logout.revokes_user_sessions());
    assert_eq!(logout.valid_until(), NOW + 115 + 60);

    let ed_token =
        f.ed.sign_with_options(claims_of(good_claims()), &typ("JWT"))
            .unwrap();
    assert!(f.check(&ed_token).is_ok());
}

#[test]
fn shapes_real_providers_send() {
    let f = fixture();
    // Keycloak: extra events member, payload typ, aud array.
    let keycloak = f.check_claims(|c| {
        c.insert("typ".into(), json!("Logout"));
        c.insert("aud".into(), json!(["other", "app"]));
        c.insert(
            "events".into(),
            json!({BACKCHANNEL_EVENT: {}, "revoke_offline_access": true}),
        );
    });
    assert!(keycloak.is_ok(), "{keycloak:?}");
    // Only sub: revokes the user's sessions.
    let only_sub = f
        .check_claims(|c| {
            c.remove("sid");
        })
        .unwrap();
    assert!(only_sub.revokes_user_sessions());
    assert!(!only_sub.revokes_session());
    // Only sid.
    assert!(f
        .check_claims(|c| {
            c.remove("sub");
        })
        .unwrap()
        .revokes_session());
    // Fractional NumericDate.
    assert!(f
        .check_claims(|c| {
            c.insert("iat".into(), json!(NOW as f64 - 0.5));
        })
        .is_ok());
}

#[test]
fn revoke_all_option() {
    let mut f = fixture();
    f.policy.revoke_all_user_sessions = true;
    let logout = f.check(&f.es_token(good_claims())).unwrap();
    assert!(logout.revokes_session() && logout.revokes_user_sessions());
}

#[test]
fn every_claim_check_has_its_own_rejection() {
    let f = fixture();
    type Edit = Box<dyn Fn(&mut serde_json::Map<String, serde_json::Value>)>;
    let cases: Vec<(Rejection, Edit)> = vec![
        (
            Rejection::UnknownIssuer,
            Box::new(|c| {
                c.insert("iss".into(), json!("https://evil"));
            }),
        ),
        (
            Rejection::UnknownIssuer,
            Box::new(|c| {
                c.remove("iss");
            }),
        ),
        (
            Rejection::Aud,
            Box::new(|c| {
                c.insert("aud".into(), json!("other"));
            }),
        ),
        (
            Rejection::Aud,
            Box::new(|c| {
                c.insert("aud".into(), json!(["a", "b"]));
            }),
        ),
        (
            Rejection::Aud,
            Box::new(|c| {
                c.remove("aud");
            }),
        ),
        (
            Rejection::IatMissing,
            Box::new(|c| {
                c.remove("iat");
            }),
        ),
        (
            Rejection::IatInFuture,
            Box::new(|c| {
                c.insert("iat".into(), json!(NOW + 61));
            }),
        ),
        (
            Rejection::TokenTooOld,
            Box::new(|c| {
                c.insert("iat".into(), json!(NOW - 361));
            }),
        ),
        (
            Rejection::Expired,
            Box::new(|c| {
                c.insert("exp".into(), json!(NOW - 61));
            }),
        ),
        (
            Rejection::NotYetValid,
            Box::new(|c| {
                c.insert("nbf".into(), json!(NOW + 120));
            }),
        ),
        (
            Rejection::EventsMissing,
            Box::new(|c| {
                c.remove("events");
            }),
        ),
        (
            Rejection::EventsNotObject,
            Box::new(|c| {
                c.insert("events".into(), json!([BACKCHANNEL_EVENT]));
            }),
        ),
        (
            Rejection::EventsMemberMissing,
            Box::new(|c| {
                c.insert(
                    "events".into(),
                    json!({"http://schemas.openid.net/event/other": {}}),
                );
            }),
        ),
        (
            Rejection::EventsMemberNotObject,
            Box::new(|c| {
                c.insert("events".into(), json!({BACKCHANNEL_EVENT: true}));
            }),
        ),
        (
            Rejection::NoncePresent,
            Box::new(|c| {
                c.insert("nonce".into(), json!("n"));
            }),
        ),
        (
            Rejection::SubSidMissing,
            Box::new(|c| {
                c.remove("sub");
                c.remove("sid");
            }),
        ),
        (
            Rejection::JtiMissing,
            Box::new(|c| {
                c.remove("jti");
            }),
        ),
        (
            Rejection::ClaimTooLong("sid"),
            Box::new(|c| {
                c.insert("sid".into(), json!("x".repeat(2000)));
            }),
        ),
        (
            Rejection::MalformedJwt("iat is not a number"),
            Box::new(|c| {
                c.insert("iat".into(), json!("soon"));
            }),
        ),
    ];
    for (expected, edit) in cases {
        assert_eq!(f.check_claims(edit), Err(expected.clone()), "{expected:?}");
    }
}

#[test]
fn header_checks() {
    let f = fixture();
    let claims = good_claims();
    // typ
    let at_jwt =
        f.es.sign_with_options(claims_of(claims.clone()), &typ("at+jwt"))
            .unwrap();
    assert_eq!(f.check(&at_jwt), Err(Rejection::Typ));
    let plain =
        f.es.sign_with_options(claims_of(claims.clone()), &typ("JWT"))
            .unwrap();
    assert!(f.check(&plain).is_ok());
    let mut strict = fixture();
    strict.policy.require_logout_jwt_typ = true;
    let strict_plain = strict
        .es
        .sign_with_options(claims_of(claims.clone()), &typ("JWT"))
        .unwrap();
    assert_eq!(strict.check(&strict_plain), Err(Rejection::Typ));
    // RFC 7515, 4.1.9: the media-type spelling is the same type.
    for (t, lenient, strict_ok) in [
        ("application/logout+jwt", true, true),
        ("Application/Logout+JWT", true, true),
        ("application/jwt", true, false),
        ("application/logout+jwt; x=1", false, false),
        ("application/", false, false),
        ("text/logout+jwt", false, false),
    ] {
        let token =
            f.es.sign_with_options(claims_of(claims.clone()), &typ(t))
                .unwrap();
        assert_eq!(f.check(&token).is_ok(), lenient, "{t}");
        let token = strict
            .es
            .sign_with_options(claims_of(claims.clone()), &typ(t))
            .unwrap();
        assert_eq!(strict.check(&token).is_ok(), strict_ok, "strict {t}");
    }

    // alg none / HMAC / not allowed
    let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&claims.to_string()));
    assert_eq!(f.check(&unsigned), Err(Rejection::AlgNotAllowed));
    let hs = HS256Key::generate()
        .authenticate(claims_of(claims.clone()))
        .unwrap();
    assert_eq!(f.check(&hs), Err(Rejection::AlgNotAllowed));
    let mut es_only = fixture();
    es_only.policy.algorithms = vec![Algorithm::ES256];
    let ed_token = es_only.ed.sign(claims_of(claims.clone())).unwrap();
    assert_eq!(es_only.check(&ed_token), Err(Rejection::AlgNotAllowed));

    // kid
    let stranger = ES256KeyPair::generate().with_key_id("nope");
    let unknown = stranger.sign(claims_of(claims.clone())).unwrap();
    assert_eq!(f.check(&unknown), Err(Rejection::UnknownKid));
    let same_kid = ES256KeyPair::generate().with_key_id("ec-1");
    let forged = same_kid.sign(claims_of(claims.clone())).unwrap();
    assert_eq!(f.check(&forged), Err(Rejection::Signature));
    let no_kid = ES256KeyPair::from_bytes(&f.es.to_bytes()).unwrap();
    assert!(
        f.check(&no_kid.sign(claims_of(claims.clone())).unwrap())
            .is_ok(),
        "no kid: tried against keys of the alg"
    );

    // tampered payload
    let token = f.es_token(claims.clone());
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut other = claims.clone();
    other["sid"] = json!("sid-2");
    let forged_payload = b64(&other.to_string());
    parts[1] = &forged_payload;
    assert_eq!(f.check(&parts.join(".")), Err(Rejection::Signature));

    // keys not yet known
    let none = validate(&token, std::slice::from_ref(&f.policy), &Keys(None), NOW);
    assert_eq!(none, Err(Rejection::KeysUnavailable));

    // structure
    assert!(matches!(
        f.check("not-a-jwt"),
        Err(Rejection::MalformedJwt(_))
    ));
    assert!(matches!(
        f.check("a.b.c.d.e"),
        Err(Rejection::MalformedJwt(_))
    ));
}

fn b64(s: &str) -> String {
    use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
    Base64UrlSafeNoPadding::encode_to_string(s).unwrap()
}

/// A host crypto stand-in: answers as told and counts the calls.
struct FakeHost {
    answer: Option<bool>,
    calls: std::cell::Cell<usize>,
}

impl crate::key_set::NativeVerifier for FakeHost {
    fn verify(&self, hash: &str, spki: &[u8], signature: &[u8], _signed: &[u8]) -> Option<bool> {
        assert_eq!(hash, "sha256");
        assert_eq!(
            spki.first(),
            Some(&0x30),
            "SubjectPublicKeyInfo is a DER SEQUENCE"
        );
        assert_eq!(
            signature.first(),
            Some(&0x30),
            "ECDSA signature handed over as DER"
        );
        self.calls.set(self.calls.get() + 1);
        self.answer
    }
}

struct WithHost<'a>(&'a KeySet, &'a FakeHost);

impl KeySource for WithHost<'_> {
    fn keys(&self, _: usize) -> Option<&KeySet> {
        Some(self.0)
    }
    fn native_verifier(&self) -> Option<&dyn crate::key_set::NativeVerifier> {
        Some(self.1)
    }
}

#[test]
fn host_crypto_decides_when_it_can_and_pure_rust_otherwise() {
    let f = fixture();
    let token = f.es_token(good_claims());
    let policies = std::slice::from_ref(&f.policy);
    let says_no = FakeHost {
        answer: Some(false),
        calls: 0.into(),
    };
    assert_eq!(
        validate(&token, policies, &WithHost(&f.keys, &says_no), NOW),
        Err(Rejection::Signature)
    );
    assert_eq!(says_no.calls.get(), 1);
    let unavailable = FakeHost {
        answer: None,
        calls: 0.into(),
    };
    assert!(
        validate(&token, policies, &WithHost(&f.keys, &unavailable), NOW).is_ok(),
        "falls back to pure Rust"
    );
    // EdDSA has no native form: the host is not asked.
    let ed_token = f.ed.sign(claims_of(good_claims())).unwrap();
    let never = FakeHost {
        answer: Some(false),
        calls: 0.into(),
    };
    assert!(validate(&ed_token, policies, &WithHost(&f.keys, &never), NOW).is_ok());
    assert_eq!(never.calls.get(), 0);
}

#[test]
fn exp_is_optional_unless_required() {
    let f = fixture();
    let no_exp = f.check_claims(|c| {
        c.remove("exp");
    });
    let logout = no_exp.expect("a fresh token without exp is accepted");
    // Without exp the jti is kept until iat + max age + skew.
    assert_eq!(logout.valid_until(), logout.iat() + 300 + 60);
    let too_old = f.check_claims(|c| {
        c.remove("exp");
        c.insert("iat".into(), json!(NOW - 361));
    });
    assert_eq!(too_old, Err(Rejection::TokenTooOld));
    let mut strict = fixture();
    strict.policy.require_exp = true;
    assert_eq!(
        strict.check_claims(|c| {
            c.remove("exp");
        }),
        Err(Rejection::ExpMissing)
    );
}
