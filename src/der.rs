//! Just enough DER (X.690) to hand keys and ECDSA signatures to a host's native crypto:
//! SubjectPublicKeyInfo for RSA and EC P-256/P-384 keys (RFC 5480, RFC 8017 A.1.1) and the
//! `ECDSA-Sig-Value` form of a JWS `r || s` signature (RFC 7518, 3.4).

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: [u8; 2] = [0x05, 0x00];
/// 1.2.840.113549.1.1.1 rsaEncryption
const OID_RSA: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
/// 1.2.840.10045.2.1 id-ecPublicKey
const OID_EC: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7 prime256v1
const OID_P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.3.132.0.34 secp384r1
const OID_P384: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// An EC curve this module can describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    /// Bytes of one coordinate, and of `r` or `s` in a JWS signature.
    pub fn field_bytes(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER from big-endian bytes: leading zeros dropped, one zero added back
/// when the high bit is set (DER's minimal two's complement).
fn unsigned_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(first) => bytes.get(first..).unwrap_or_default(),
        None => &[0],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(INTEGER, &content)
}

fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut with_unused_bits = Vec::with_capacity(content.len() + 1);
    with_unused_bits.push(0);
    with_unused_bits.extend_from_slice(content);
    tlv(BIT_STRING, &with_unused_bits)
}

/// SubjectPublicKeyInfo of an RSA key from its JWK `n` and `e` (big-endian bytes).
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let rsa_public_key = tlv(
        SEQUENCE,
        &[unsigned_integer(n), unsigned_integer(e)].concat(),
    );
    let algorithm = tlv(SEQUENCE, &[&OID_RSA[..], &NULL[..]].concat());
    tlv(SEQUENCE, &[algorithm, bit_string(&rsa_public_key)].concat())
}

/// SubjectPublicKeyInfo of an EC key from its uncompressed point `04 || x || y`.
pub fn ec_spki(curve: Curve, uncompressed_point: &[u8]) -> Vec<u8> {
    let curve_oid: &[u8] = match curve {
        Curve::P256 => &OID_P256,
        Curve::P384 => &OID_P384,
    };
    let algorithm = tlv(SEQUENCE, &[&OID_EC[..], curve_oid].concat());
    tlv(
        SEQUENCE,
        &[algorithm, bit_string(uncompressed_point)].concat(),
    )
}

/// The DER `ECDSA-Sig-Value` of a JWS ECDSA signature (`r || s`, each `field_bytes` long);
/// `None` when the length is wrong for the curve.
pub fn ecdsa_signature(curve: Curve, raw: &[u8]) -> Option<Vec<u8>> {
    let size = curve.field_bytes();
    if raw.len() != 2 * size {
        return None;
    }
    let (r, s) = raw.split_at(size);
    Some(tlv(
        SEQUENCE,
        &[unsigned_integer(r), unsigned_integer(s)].concat(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::DecodePublicKey;

    #[test]
    fn integers_are_minimal() {
        assert_eq!(unsigned_integer(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(unsigned_integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), vec![2, 1, 0]);
        assert_eq!(tlv(4, &[0; 200])[..3], [4, 0x81, 200]);
        assert_eq!(tlv(4, &[0; 300])[..4], [4, 0x82, 1, 44]);
    }

    #[test]
    fn rsa_spki_parses_with_an_independent_decoder() {
        let jwks: serde_json::Value =
            serde_json::from_str(include_str!("../envoy/keys/jwks.json")).unwrap();
        let rsa = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kty"] == "RSA")
            .unwrap();
        let n = crate::base64url::decode(rsa["n"].as_str().unwrap()).unwrap();
        let e = crate::base64url::decode(rsa["e"].as_str().unwrap()).unwrap();
        use rsa::pkcs8::DecodePublicKey as _;
        let key = rsa::RsaPublicKey::from_public_key_der(&rsa_spki(&n, &e)).unwrap();
        use rsa::traits::PublicKeyParts;
        assert_eq!(key.n().to_bytes_be(), n);
        assert_eq!(key.e().to_bytes_be(), e);
    }

    #[test]
    fn ec_spki_and_signature_verify_with_an_independent_implementation() {
        use p256::ecdsa::signature::{Signer, Verifier};
        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let point = signing.verifying_key().to_sec1_point(false);
        let spki = ec_spki(Curve::P256, point.as_bytes());
        let verifying = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
        let sig: p256::ecdsa::Signature = signing.sign(b"header.payload");
        let der = ecdsa_signature(Curve::P256, &sig.to_bytes()).unwrap();
        let parsed = p256::ecdsa::DerSignature::try_from(der.as_slice()).unwrap();
        verifying.verify(b"header.payload", &parsed).unwrap();
        assert!(ecdsa_signature(Curve::P256, &[0; 63]).is_none());
        assert!(ecdsa_signature(Curve::P384, &[1; 96]).is_some());
    }
}
