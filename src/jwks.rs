//! An issuer's signing keys, parsed from a JWKS (RFC 7517) into a [`KeySet`].
//!
//! Each key is bound to exactly one algorithm when the set is built, so the token header can
//! only pick among keys already fit for an allowed algorithm (Back-Channel Logout 1.0, 2.6
//! step 3: "never let the header choose the key type"). Keys that are unusable (symmetric,
//! unsupported curve, `use: enc`, RSA under 2048 bits) are skipped and reported, not fatal:
//! a real IdP's JWKS often carries encryption keys beside the signing ones.

use crate::algorithm::{Algorithm, KeyFamily};
use crate::der::{ec_spki, rsa_spki, Curve};
use crate::jws::decode_part;
use crate::key_set::{native_key, KeyEntry, KeySet, VerifyingKey};
use jwt_simple::prelude::*;
use serde_json::{Map, Value};

/// A JWKS larger than this is refused outright: a hostile or broken IdP answer must not
/// cost unbounded memory in every worker.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// At most this many keys are considered.
pub const MAX_KEYS: usize = 64;
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// What parsing a JWKS produced: the keys, and a note for each key that was skipped.
pub struct ParsedJwks {
    pub keys: KeySet,
    pub skipped: Vec<String>,
}

/// Parses a JWKS document, keeping the keys usable with `allowed` algorithms.
/// Fails when the document is not a JWKS at all or holds no usable key.
pub fn parse_jwks(document: &[u8], allowed: &[Algorithm]) -> Result<ParsedJwks, String> {
    if document.len() > MAX_JWKS_BYTES {
        return Err(format!("JWKS is larger than {MAX_JWKS_BYTES} bytes"));
    }
    let root: Value =
        serde_json::from_slice(document).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    parse_jwks_value(&root, allowed)
}

/// Same as [`parse_jwks`] for a JWKS already parsed as JSON (inline in the configuration).
pub fn parse_jwks_value(root: &Value, allowed: &[Algorithm]) -> Result<ParsedJwks, String> {
    let keys = root
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "JWKS has no \"keys\" array".to_string())?;
    let mut set = KeySet::default();
    let mut skipped = Vec::new();
    for (index, jwk) in keys.iter().take(MAX_KEYS).enumerate() {
        let Some(jwk) = jwk.as_object() else {
            skipped.push(format!("keys[{index}]: not a JSON object"));
            continue;
        };
        match parse_jwk(jwk, allowed) {
            Ok(entries) => set.keys.extend(entries),
            Err(reason) => skipped.push(format!("keys[{index}]: {reason}")),
        }
    }
    if keys.len() > MAX_KEYS {
        skipped.push(format!("keys beyond the first {MAX_KEYS} ignored"));
    }
    if set.keys.is_empty() {
        let detail = if skipped.is_empty() {
            "the set is empty".to_string()
        } else {
            skipped.join("; ")
        };
        return Err(format!("JWKS has no usable signing key ({detail})"));
    }
    Ok(ParsedJwks { keys: set, skipped })
}

fn parse_jwk(jwk: &Map<String, Value>, allowed: &[Algorithm]) -> Result<Vec<KeyEntry>, String> {
    let text = |name: &str| -> Result<Option<&str>, String> {
        match jwk.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("{name} is not a string")),
        }
    };
    let kty = text("kty")?.ok_or("no kty")?;
    let kid = text("kid")?.map(str::to_owned);
    if let Some(usage) = text("use")? {
        if usage != "sig" {
            return Err(format!("use is {usage:?}, not \"sig\""));
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err("key_ops does not allow verify".into());
        }
    }
    let declared_alg = match text("alg")? {
        None => None,
        Some(name) => Some(
            Algorithm::from_name(name).ok_or_else(|| format!("alg {name:?} is not supported"))?,
        ),
    };
    let family = match (kty, text("crv")?) {
        ("RSA", _) => KeyFamily::Rsa,
        ("EC", Some("P-256")) => KeyFamily::EcP256,
        ("EC", Some("P-384")) => KeyFamily::EcP384,
        ("OKP", Some("Ed25519")) => KeyFamily::Ed25519,
        (kty, crv) => return Err(format!("unsupported key type {kty:?} (crv {crv:?})")),
    };
    let algorithms: Vec<Algorithm> = allowed
        .iter()
        .copied()
        .filter(|alg| alg.key_family() == family)
        .filter(|alg| declared_alg.is_none_or(|declared| declared == *alg))
        .collect();
    if algorithms.is_empty() {
        return Err("no allowed algorithm fits this key".into());
    }
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        let value = text(name)?.ok_or_else(|| format!("no {name}"))?;
        decode_part(value.trim_end_matches('=')).map_err(|_| format!("{name} is not base64url"))
    };
    let mut entries = Vec::with_capacity(algorithms.len());
    for alg in algorithms {
        let mut spki = None;
        let key = match family {
            KeyFamily::Rsa => {
                let n = b64("n")?;
                let e = b64("e")?;
                let significant = n.iter().skip_while(|b| **b == 0).count();
                if significant < MIN_RSA_MODULUS_BYTES {
                    return Err("RSA modulus is shorter than 2048 bits".into());
                }
                spki = Some(rsa_spki(&n, &e));
                rsa_key(alg, &n, &e).map_err(|_| "RSA key is invalid".to_string())?
            }
            KeyFamily::EcP256 | KeyFamily::EcP384 => {
                let x = b64("x")?;
                let y = b64("y")?;
                let size = if family == KeyFamily::EcP256 { 32 } else { 48 };
                if x.len() != size || y.len() != size {
                    return Err("EC coordinates have the wrong length".into());
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(4u8);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let invalid = |_| "EC point is not on the curve".to_string();
                let curve = if family == KeyFamily::EcP256 {
                    Curve::P256
                } else {
                    Curve::P384
                };
                spki = Some(ec_spki(curve, &point));
                if family == KeyFamily::EcP256 {
                    VerifyingKey::Es256(ES256PublicKey::from_bytes(&point).map_err(invalid)?)
                } else {
                    VerifyingKey::Es384(ES384PublicKey::from_bytes(&point).map_err(invalid)?)
                }
            }
            KeyFamily::Ed25519 => {
                let x = b64("x")?;
                VerifyingKey::Ed25519(
                    Ed25519PublicKey::from_bytes(&x)
                        .map_err(|_| "Ed25519 key is invalid".to_string())?,
                )
            }
        };
        entries.push(KeyEntry {
            kid: kid.clone(),
            alg,
            key,
            native: spki.and_then(|spki| native_key(alg, spki)),
        });
    }
    Ok(entries)
}

fn rsa_key(alg: Algorithm, n: &[u8], e: &[u8]) -> Result<VerifyingKey, jwt_simple::Error> {
    Ok(match alg {
        Algorithm::RS256 => VerifyingKey::Rs256(RS256PublicKey::from_components(n, e)?),
        Algorithm::RS384 => VerifyingKey::Rs384(RS384PublicKey::from_components(n, e)?),
        Algorithm::RS512 => VerifyingKey::Rs512(RS512PublicKey::from_components(n, e)?),
        Algorithm::PS256 => VerifyingKey::Ps256(PS256PublicKey::from_components(n, e)?),
        Algorithm::PS384 => VerifyingKey::Ps384(PS384PublicKey::from_components(n, e)?),
        Algorithm::PS512 => VerifyingKey::Ps512(PS512PublicKey::from_components(n, e)?),
        _ => return Err(jwt_simple::JWTError::InvalidPublicKey.into()),
    })
}
