//! Test-only JWS signer for the EXAMPLE keys under `envoy/keys/`.
//!
//! jwt-simple signs only its own header and claims structs; the tests need tokens with any
//! header (`alg: none`, odd `typ`, `crit`, a `kid` that lies) and any payload (claims missing,
//! `aud` arrays, `nonce`, ...). So this builds `base64url(header).base64url(payload)` from JSON
//! text and signs those bytes itself with the crates jwt-simple is built on.
//!
//! Shared by the integration tests (`tests/common/mod.rs`) and `examples/mint.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Issuer of the example configuration (`envoy/envoy-local.yaml`, tests).
pub const ISSUER: &str = "https://idp.example.test";
/// Client id of the example configuration.
pub const CLIENT_ID: &str = "example-app";
/// The `events` member that marks a back-channel logout token.
pub const BCL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The signature algorithms of the example keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::Rs256, Alg::Es256, Alg::EdDsa];

    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// The `kid` of the example key for this algorithm.
    pub fn kid(self) -> &'static str {
        match self {
            Alg::Rs256 => "example-rsa",
            Alg::Es256 => "example-ec",
            Alg::EdDsa => "example-ed",
        }
    }

    /// File name of the private key under `envoy/keys/`.
    pub fn file(self) -> &'static str {
        match self {
            Alg::Rs256 => "example-rsa.pem",
            Alg::Es256 => "example-ec.pem",
            Alg::EdDsa => "example-ed.pem",
        }
    }

    pub fn parse(s: &str) -> Option<Alg> {
        match s.to_ascii_lowercase().as_str() {
            "rs256" | "rsa" => Some(Alg::Rs256),
            "es256" | "ec" => Some(Alg::Es256),
            "eddsa" | "ed25519" | "ed" => Some(Alg::EdDsa),
            _ => None,
        }
    }
}

/// The example private keys, loaded from PEM.
pub struct ExampleKeys {
    rsa: rsa::RsaPrivateKey,
    ec: p256::ecdsa::SigningKey,
    ed: ed25519_compact::KeyPair,
}

/// `envoy/keys/` of this repository.
pub fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("envoy")
        .join("keys")
}

fn read(dir: &Path, alg: Alg) -> Result<String, String> {
    let path = dir.join(alg.file());
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses an RSA private key in PKCS#8 or PKCS#1 PEM.
pub fn rsa_from_pem(pem: &str) -> Result<rsa::RsaPrivateKey, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("RSA key: {e}"))
}

/// Parses a P-256 private key in PKCS#8 PEM.
pub fn ec_from_pem(pem: &str) -> Result<p256::ecdsa::SigningKey, String> {
    use p256::pkcs8::DecodePrivateKey;
    p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|e| format!("EC key: {e}"))
}

/// Parses an Ed25519 private key in PKCS#8 PEM.
pub fn ed_from_pem(pem: &str) -> Result<ed25519_compact::KeyPair, String> {
    ed25519_compact::KeyPair::from_pem(pem).map_err(|e| format!("Ed25519 key: {e}"))
}

impl ExampleKeys {
    /// Loads the keys from `envoy/keys/`.
    pub fn load() -> Result<Self, String> {
        Self::load_from(&keys_dir())
    }

    pub fn load_from(dir: &Path) -> Result<Self, String> {
        Ok(ExampleKeys {
            rsa: rsa_from_pem(&read(dir, Alg::Rs256)?)?,
            ec: ec_from_pem(&read(dir, Alg::Es256)?)?,
            ed: ed_from_pem(&read(dir, Alg::EdDsa)?)?,
        })
    }

    /// The JWS signature of `msg` (PKCS#1 v1.5 SHA-256, ECDSA P-256 SHA-256 as `r||s`, Ed25519).
    pub fn sign_bytes(&self, alg: Alg, msg: &[u8]) -> Vec<u8> {
        match alg {
            Alg::Rs256 => {
                use rsa::signature::{SignatureEncoding, Signer};
                let key = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(self.rsa.clone());
                key.sign(msg).to_vec()
            }
            Alg::Es256 => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = self.ec.sign(msg);
                sig.to_bytes().to_vec()
            }
            Alg::EdDsa => self.ed.sk.sign(msg, None).to_vec(),
        }
    }

    /// Signs `header` and `payload` exactly as given (the header is not touched: set `alg` and
    /// `kid` yourself, or use [`ExampleKeys::sign`]).
    pub fn sign_json(&self, alg: Alg, header: &Value, payload: &Value) -> String {
        self.sign_text(alg, &header.to_string(), &payload.to_string())
    }

    /// Signs header and payload given as raw JSON text (for payloads serde_json cannot produce,
    /// e.g. duplicate members).
    pub fn sign_text(&self, alg: Alg, header: &str, payload: &str) -> String {
        let signing_input = format!(
            "{}.{}",
            b64url(header.as_bytes()),
            b64url(payload.as_bytes())
        );
        let sig = self.sign_bytes(alg, signing_input.as_bytes());
        format!("{signing_input}.{}", b64url(&sig))
    }

    /// Signs `payload` with the standard header `{"alg", "kid", "typ": "logout+jwt"}`.
    pub fn sign(&self, alg: Alg, payload: &Value) -> String {
        self.sign_json(alg, &header(alg, Some("logout+jwt")), payload)
    }

    /// The public JWKS of the example keys (`kty`, `kid`, `use: sig`, `alg`, key members).
    pub fn jwks(&self) -> Value {
        use rsa::traits::PublicKeyParts;
        let rsa_pub = self.rsa.to_public_key();
        let point = self.ec.verifying_key().to_sec1_point(false);
        let point = point.as_bytes();
        // Uncompressed SEC1: 0x04 || x (32 bytes) || y (32 bytes).
        let (x, y) = match point {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => (&point[..0], &point[..0]),
        };
        json!({"keys": [
            {
                "kty": "RSA", "kid": Alg::Rs256.kid(), "use": "sig", "alg": "RS256",
                "n": b64url(&rsa_pub.n().to_bytes_be()),
                "e": b64url(&rsa_pub.e().to_bytes_be()),
            },
            {
                "kty": "EC", "kid": Alg::Es256.kid(), "use": "sig", "alg": "ES256",
                "crv": "P-256", "x": b64url(x), "y": b64url(y),
            },
            {
                "kty": "OKP", "kid": Alg::EdDsa.kid(), "use": "sig", "alg": "EdDSA",
                "crv": "Ed25519", "x": b64url(self.ed.pk.as_ref()),
            },
        ]})
    }
}

/// A JWS header `{"alg", "kid", "typ"?}` for the example key of `alg`.
pub fn header(alg: Alg, typ: Option<&str>) -> Value {
    let mut h = json!({"alg": alg.name(), "kid": alg.kid()});
    if let Some(typ) = typ {
        h["typ"] = json!(typ);
    }
    h
}

/// An unsigned token `header.payload.` (for `alg: none`).
pub fn unsigned(header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}.",
        b64url(header.to_string().as_bytes()),
        b64url(payload.to_string().as_bytes())
    )
}

/// An HS256 token (HMAC-SHA256 with `secret`), as an attacker would make one.
pub fn hs256(secret: &[u8], header: &Value, payload: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(payload.to_string().as_bytes())
    );
    format!("{input}.{}", b64url(&hmac_sha256(secret, input.as_bytes())))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use rsa::sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        let d = Sha256::digest(key);
        k[..32].copy_from_slice(&d);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A process-unique, hard-to-guess identifier (for `jti`, `sid`).
pub fn unique_id(prefix: &str) -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u128(nanos);
    h.write_u64(n);
    h.write_u32(std::process::id());
    format!("{prefix}{n}-{:016x}", h.finish())
}

/// The claims of a valid logout token: `iss`, `aud`, `iat` = now, `exp` = now + 120, `jti`,
/// `events`, plus `sid`/`sub` when given.
pub fn logout_claims(sid: Option<&str>, sub: Option<&str>) -> Value {
    let now = now();
    let mut c = json!({
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 120,
        "jti": unique_id("jti-"),
        "events": {BCL_EVENT: {}},
    });
    if let Some(sid) = sid {
        c["sid"] = json!(sid);
    }
    if let Some(sub) = sub {
        c["sub"] = json!(sub);
    }
    c
}

/// The claims of an ID token as the oauth2 filter would keep it in the `IdToken` cookie.
pub fn id_token_claims(sid: &str, sub: &str, iat: i64) -> Value {
    json!({
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": sub,
        "sid": sid,
        "iat": iat,
        "exp": iat + 3600,
        "auth_time": iat,
    })
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// base64url without padding.
pub fn b64url(data: &[u8]) -> String {
    encode64(data, B64URL, false)
}

/// Standard base64 with padding (what etcd's JSON gateway takes and gives for bytes).
pub fn b64(data: &[u8]) -> String {
    encode64(data, B64, true)
}

fn encode64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64url (padding tolerated). `None` on a bad character.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    decode64(s, B64URL)
}

/// Decodes standard base64 (padding tolerated). `None` on a bad character.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    decode64(s, B64)
}

fn decode64(s: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = alphabet.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The decoded header and payload of a JWS (no verification).
pub fn decode_parts(token: &str) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let h = b64url_decode(parts.next()?)?;
    let p = b64url_decode(parts.next()?)?;
    Some((
        serde_json::from_slice(&h).ok()?,
        serde_json::from_slice(&p).ok()?,
    ))
}
