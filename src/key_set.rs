//! An issuer's verifying keys and how a signature is checked with them: by the host's native
//! crypto when it has a form for the key (Envoy's BoringSSL), else in pure Rust (jwt-simple).
//!
//! Each key is bound to exactly one algorithm when the set is built (`jwks.rs`), so the token
//! header can only pick among keys already fit for an allowed algorithm.

use crate::algorithm::Algorithm;
use crate::der::{ecdsa_signature, Curve};
use jwt_simple::prelude::*;

/// One verifying key bound to one algorithm.
pub struct KeyEntry {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub(crate) key: VerifyingKey,
    /// The same key for a host's native crypto, when the algorithm has a native form.
    pub(crate) native: Option<NativeKey>,
}

/// A key as a host's native crypto takes it: SubjectPublicKeyInfo DER and a hash name.
pub(crate) struct NativeKey {
    spki: Vec<u8>,
    hash: &'static str,
    /// For ECDSA: the curve, to turn the JWS `r || s` signature into DER.
    ecdsa_curve: Option<Curve>,
}

/// Signature verification by the host (Envoy's BoringSSL through its `verify_signature`
/// foreign function: about 40 times faster than pure Rust inside the Wasm VM).
pub trait NativeVerifier {
    /// `Some(valid)` when the host checked the signature; `None` when it cannot (another
    /// proxy-wasm host, or an error), and the pure-Rust path is used instead.
    fn verify(&self, hash: &str, spki: &[u8], signature: &[u8], signed: &[u8]) -> Option<bool>;
}

pub(crate) enum VerifyingKey {
    Rs256(RS256PublicKey),
    Rs384(RS384PublicKey),
    Rs512(RS512PublicKey),
    Ps256(PS256PublicKey),
    Ps384(PS384PublicKey),
    Ps512(PS512PublicKey),
    Es256(ES256PublicKey),
    Es384(ES384PublicKey),
    Ed25519(Ed25519PublicKey),
}

/// Why a signature check did not succeed.
#[derive(Debug, PartialEq, Eq)]
pub enum VerifyFailure {
    /// No key of the set fits the token's `kid` and `alg`.
    NoMatchingKey,
    /// A key fits but the signature is wrong.
    BadSignature,
    /// The signature is right but the claims cannot be read as JWT claims.
    MalformedClaims,
}

/// The usable keys of one issuer.
#[derive(Default)]
pub struct KeySet {
    pub(crate) keys: Vec<KeyEntry>,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True when some key carries this `kid` (used to decide whether a refetch could help).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Verifies the JWS signature with the keys bound to `alg`, chosen by `kid` when the
    /// token has one (keys without a `kid` stay candidates), or all of them otherwise.
    /// Only the signature is checked here; claims are the caller's business. The host's
    /// native crypto is used when given and able; otherwise pure Rust.
    pub fn verify(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
        typ: Option<&str>,
        native: Option<&dyn NativeVerifier>,
    ) -> Result<(), VerifyFailure> {
        let mut result = Err(VerifyFailure::NoMatchingKey);
        for entry in self.keys.iter().filter(|k| k.alg == alg) {
            if let (Some(wanted), Some(have)) = (kid, entry.kid.as_deref()) {
                if wanted != have {
                    continue;
                }
            }
            let checked = native.and_then(|host| entry.verify_natively(host, token));
            let outcome = match checked {
                Some(true) => Ok(()),
                Some(false) => Err(VerifyFailure::BadSignature),
                None => entry.key.verify_signature(token, typ),
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(failure) => result = Err(failure),
            }
        }
        result
    }
}

impl KeyEntry {
    fn verify_natively(&self, host: &dyn NativeVerifier, token: &str) -> Option<bool> {
        let native = self.native.as_ref()?;
        let (signed, signature_b64) = token.rsplit_once('.')?;
        let raw = crate::base64url::decode(signature_b64)?;
        let signature = match native.ecdsa_curve {
            // A signature of the wrong length is simply invalid.
            Some(curve) => match ecdsa_signature(curve, &raw) {
                Some(der) => der,
                None => return Some(false),
            },
            None => raw,
        };
        host.verify(native.hash, &native.spki, &signature, signed.as_bytes())
    }
}

/// The native form of a key for `alg`: Envoy's `verify_signature` takes PKCS#1 v1.5 RSA and
/// ECDSA keys with a digest name; RSA-PSS and Ed25519 stay on the pure-Rust path.
pub(crate) fn native_key(alg: Algorithm, spki: Vec<u8>) -> Option<NativeKey> {
    let (hash, ecdsa_curve) = match alg {
        Algorithm::RS256 => ("sha256", None),
        Algorithm::RS384 => ("sha384", None),
        Algorithm::RS512 => ("sha512", None),
        Algorithm::ES256 => ("sha256", Some(Curve::P256)),
        Algorithm::ES384 => ("sha384", Some(Curve::P384)),
        _ => return None,
    };
    Some(NativeKey {
        spki,
        hash,
        ecdsa_curve,
    })
}

impl VerifyingKey {
    fn verify_signature(&self, token: &str, typ: Option<&str>) -> Result<(), VerifyFailure> {
        let options = signature_only_options(typ);
        let outcome = match self {
            VerifyingKey::Rs256(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            VerifyingKey::Rs384(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            VerifyingKey::Rs512(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            VerifyingKey::Ps256(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            VerifyingKey::Ps384(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            VerifyingKey::Ps512(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            VerifyingKey::Es256(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            VerifyingKey::Es384(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            VerifyingKey::Ed25519(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        };
        outcome.map_err(|err| {
            if err.downcast_ref::<serde_json::Error>().is_some() {
                VerifyFailure::MalformedClaims
            } else {
                VerifyFailure::BadSignature
            }
        })
    }
}

/// jwt-simple always validates some claims after the signature. The logout-token rules are
/// stricter and need their own error for each step, so its time checks are neutralised here
/// (time pinned to 0 with no tolerance, future tokens allowed) and done in `logout_token`.
/// Its `typ` rule (`JWT` or `*+JWT`) would refuse `application/logout+jwt`'s sibling
/// `application/jwt`: `logout_token` has already decided on `typ`, so the token's own value
/// is passed as the required one.
fn signature_only_options(typ: Option<&str>) -> Option<VerificationOptions> {
    Some(VerificationOptions {
        accept_future: true,
        time_tolerance: Some(Duration::from_secs(0)),
        artificial_time: Some(Duration::from_secs(0)),
        max_token_length: None,
        required_signature_type: typ.map(str::to_owned),
        ..Default::default()
    })
}
