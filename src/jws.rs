//! Compact JWS structure: three base64url parts, a JSON header and a JSON payload.
//!
//! Only structure here; what the header and claims mean is decided by the callers
//! ([`crate::logout_token`] verifies, [`crate::session_cookie`] only reads).

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The header members this filter looks at; others are ignored.
#[derive(Debug, Deserialize)]
pub struct JoseHeader {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

/// A compact JWS split into its parts, the header and payload decoded but nothing verified.
#[derive(Debug)]
pub struct CompactJws<'a, P> {
    pub header: JoseHeader,
    pub payload: P,
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    pub signing_input: &'a str,
}

/// Splits a compact JWS and decodes the header and the payload as `P`.
pub fn parse<P: DeserializeOwned>(token: &str) -> Result<CompactJws<'_, P>, &'static str> {
    let (header_b64, payload_b64, _signature_b64) = split(token)?;
    let header: JoseHeader = serde_json::from_slice(&decode_part(header_b64)?)
        .map_err(|_| "header is not a JSON object with a string alg")?;
    let payload: P = serde_json::from_slice(&decode_part(payload_b64)?)
        .map_err(|_| "payload is not a JSON object of the expected shape")?;
    let signing_input = token
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or("token is not three base64url parts")?;
    Ok(CompactJws {
        header,
        payload,
        signing_input,
    })
}

/// Decodes only the payload: the session path needs no header and must stay cheap.
pub fn parse_payload<P: DeserializeOwned>(token: &str) -> Result<P, &'static str> {
    let (_, payload_b64, _) = split(token)?;
    serde_json::from_slice(&decode_part(payload_b64)?)
        .map_err(|_| "payload is not a JSON object of the expected shape")
}

fn split(token: &str) -> Result<(&str, &str, &str), &'static str> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok((h, p, s)),
        _ => Err("token is not three base64url parts"),
    }
}

/// Strict base64url without padding (RFC 7515, 2).
pub fn decode_part(part: &str) -> Result<Vec<u8>, &'static str> {
    crate::base64url::decode(part).ok_or("a part is not base64url")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_simple::reexports::ct_codecs::Encoder;

    fn b64(s: &str) -> String {
        jwt_simple::reexports::ct_codecs::Base64UrlSafeNoPadding::encode_to_string(s).unwrap()
    }

    #[test]
    fn parses_header_and_payload() {
        let token = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256","kid":"k1","typ":"logout+jwt"}"#),
            b64(r#"{"iss":"x"}"#)
        );
        let jws: CompactJws<serde_json::Value> = parse(&token).unwrap();
        assert_eq!(jws.header.alg, "RS256");
        assert_eq!(jws.header.kid.as_deref(), Some("k1"));
        assert_eq!(jws.payload["iss"], "x");
        assert_eq!(jws.signing_input.matches('.').count(), 1);
    }

    #[test]
    fn refuses_bad_structure() {
        let h = b64(r#"{"alg":"RS256"}"#);
        let p = b64(r#"{}"#);
        for bad in [
            String::new(),
            "abc".into(),
            format!("{h}.{p}"),
            format!("{h}.{p}.s.x"),
            format!("{h}.!!.s"),
            format!("{}.{p}.s", b64("[1]")),
            format!("{}.{p}.s", b64(r#"{"alg":1}"#)),
            format!("{h}.{}.s", b64("not json")),
            format!("{h}=.{p}.s"),
        ] {
            assert!(parse::<serde_json::Value>(&bad).is_err(), "{bad}");
        }
    }
}
