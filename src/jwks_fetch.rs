//! Fetching an issuer's keys from the identity provider, minus the I/O: URLs, the answers'
//! checks, the shared record that holds the last good JWKS, and when a fetch is due.
//!
//! One fetch serves the whole Envoy: workers claim a fetch by compare-and-swap on a shared
//! "last attempt" time, so periodic refreshes and unknown-`kid` refetches are rate-limited
//! process-wide, not per worker. The last good JWKS stays in force until a better one comes.

use crate::algorithm::Algorithm;
use crate::jwks::{parse_jwks, ParsedJwks, MAX_JWKS_BYTES};

/// Where to send a request: the `:authority` and `:path` pseudo-headers of an http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub authority: String,
    pub path: String,
}

/// Splits an `http://` or `https://` URL. The scheme only matters to the Envoy cluster (TLS
/// or not), which the configuration names; here it is checked and dropped.
pub fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http(s) URL"))?;
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => (
            rest.get(..at).unwrap_or_default(),
            rest.get(at..).unwrap_or("/"),
        ),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return Err(format!("{url:?} has no usable host"));
    }
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Ok(HttpTarget {
        authority: authority.to_string(),
        path,
    })
}

/// OpenID Connect Discovery 1.0, 4: the configuration document's URL.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// What went wrong with a fetch: the transport or status (`fetch_failed`), or the content
/// (`rejected`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchProblem {
    Failed(String),
    Rejected(String),
}

impl FetchProblem {
    pub fn message(&self) -> &str {
        match self {
            FetchProblem::Failed(m) | FetchProblem::Rejected(m) => m,
        }
    }
}

fn check_status_and_size(status: Option<&str>, body: &[u8]) -> Result<(), FetchProblem> {
    match status {
        None => return Err(FetchProblem::Failed("no answer (reset or timeout)".into())),
        Some("200") => {}
        Some(other) => return Err(FetchProblem::Failed(format!("HTTP status {other}"))),
    }
    if body.is_empty() {
        return Err(FetchProblem::Rejected("empty body".into()));
    }
    if body.len() > MAX_JWKS_BYTES {
        return Err(FetchProblem::Rejected(format!(
            "body larger than {MAX_JWKS_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Reads `jwks_uri` from a discovery answer whose `issuer` must equal the configured one
/// exactly (Discovery 1.0, 4.3: otherwise the document is not to be used).
pub fn jwks_uri_from_discovery(
    status: Option<&str>,
    body: &[u8],
    expected_issuer: &str,
) -> Result<String, FetchProblem> {
    check_status_and_size(status, body)?;
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| FetchProblem::Rejected("discovery document is not JSON".into()))?;
    if doc.get("issuer").and_then(|v| v.as_str()) != Some(expected_issuer) {
        return Err(FetchProblem::Rejected(
            "discovery document's issuer does not match the configured issuer".into(),
        ));
    }
    let uri = doc
        .get("jwks_uri")
        .and_then(|v| v.as_str())
        .ok_or_else(|| FetchProblem::Rejected("discovery document has no jwks_uri".into()))?;
    parse_http_url(uri).map_err(FetchProblem::Rejected)?;
    Ok(uri.to_string())
}

/// Checks a JWKS answer: 200, not empty, not huge, JSON, at least one usable key.
pub fn check_jwks_answer(
    status: Option<&str>,
    body: &[u8],
    allowed: &[Algorithm],
) -> Result<ParsedJwks, FetchProblem> {
    check_status_and_size(status, body)?;
    parse_jwks(body, allowed).map_err(FetchProblem::Rejected)
}

/// Shared-data key of an issuer's last good JWKS. Named by the issuer string itself (not a
/// hash of it: two issuers whose hashes collide would share keys), so the configuration's
/// order does not matter and several filter configs share one copy.
pub fn keys_record_key(issuer: &str) -> String {
    format!("bcl:k:{issuer}")
}

/// Shared-data key of an issuer's last fetch attempt time (the process-wide rate limit).
pub fn attempt_record_key(issuer: &str) -> String {
    format!("bcl:a:{issuer}")
}

/// The stored form of the last good JWKS: when it was fetched, and the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysRecord {
    pub fetched_at: i64,
    pub jwks: Vec<u8>,
}

impl KeysRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.jwks.len());
        out.extend_from_slice(&self.fetched_at.to_le_bytes());
        out.extend_from_slice(&self.jwks);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (fetched_at, jwks) = bytes.split_first_chunk::<8>()?;
        Some(KeysRecord {
            fetched_at: i64::from_le_bytes(*fetched_at),
            jwks: jwks.to_vec(),
        })
    }
}

/// Reads a stored attempt time (absent or unreadable means "never").
pub fn decode_attempt(bytes: Option<&[u8]>) -> Option<i64> {
    bytes
        .and_then(|b| b.split_first_chunk::<8>())
        .map(|(t, _)| i64::from_le_bytes(*t))
}

/// Why a fetch is wanted; on-demand ones come from a token whose key is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchReason {
    Periodic,
    UnknownKey,
}

/// Whether a fetch may start now, given the last good keys' age and the last attempt.
/// Periodic: keys missing or older than `refresh`, and no attempt in the last
/// `min_refetch` (so a failing IdP is retried at that pace, not on every tick). Unknown key:
/// no attempt in the last `min_refetch`.
pub fn fetch_allowed(
    reason: FetchReason,
    fetched_at: Option<i64>,
    last_attempt: Option<i64>,
    now: i64,
    refresh_seconds: i64,
    min_refetch_seconds: i64,
) -> bool {
    let attempt_window_over =
        last_attempt.is_none_or(|t| now >= t.saturating_add(min_refetch_seconds) || now < t);
    match reason {
        FetchReason::UnknownKey => attempt_window_over,
        FetchReason::Periodic => {
            let stale = fetched_at.is_none_or(|t| now >= t.saturating_add(refresh_seconds));
            stale && attempt_window_over
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:3000/jwks?x=1").unwrap(),
            HttpTarget {
                authority: "127.0.0.1:3000".into(),
                path: "/jwks?x=1".into()
            }
        );
        assert_eq!(parse_http_url("https://idp").unwrap().path, "/");
        assert_eq!(parse_http_url("https://idp?x").unwrap().path, "/?x");
        assert!(parse_http_url("ftp://idp/x").is_err());
        assert!(parse_http_url("http:///x").is_err());
        assert!(parse_http_url("http://user@idp/x").is_err());
        assert_eq!(
            discovery_url("http://idp/realms/a/"),
            "http://idp/realms/a/.well-known/openid-configuration"
        );
    }

    #[test]
    fn discovery_answers() {
        let ok = br#"{"issuer":"http://idp","jwks_uri":"http://idp/jwks"}"#;
        assert_eq!(
            jwks_uri_from_discovery(Some("200"), ok, "http://idp").unwrap(),
            "http://idp/jwks"
        );
        assert!(matches!(
            jwks_uri_from_discovery(Some("200"), ok, "http://other"),
            Err(FetchProblem::Rejected(_))
        ));
        assert!(matches!(
            jwks_uri_from_discovery(Some("500"), ok, "http://idp"),
            Err(FetchProblem::Failed(_))
        ));
        assert!(matches!(
            jwks_uri_from_discovery(None, b"", "http://idp"),
            Err(FetchProblem::Failed(_))
        ));
        assert!(matches!(
            jwks_uri_from_discovery(Some("200"), b"<html>", "http://idp"),
            Err(FetchProblem::Rejected(_))
        ));
    }

    #[test]
    fn jwks_answers() {
        let algs = [Algorithm::EdDSA];
        let good = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        assert_eq!(
            check_jwks_answer(Some("200"), good, &algs)
                .unwrap()
                .keys
                .len(),
            1
        );
        for (status, body) in [
            (Some("404"), &good[..]),
            (Some("200"), &b""[..]),
            (Some("200"), &b"not json"[..]),
            (Some("200"), &br#"{"keys":[]}"#[..]),
            (
                Some("200"),
                &br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#[..],
            ),
        ] {
            assert!(
                check_jwks_answer(status, body, &algs).is_err(),
                "{status:?} {body:?}"
            );
        }
        let huge = vec![b' '; MAX_JWKS_BYTES + 1];
        assert!(matches!(
            check_jwks_answer(Some("200"), &huge, &algs),
            Err(FetchProblem::Rejected(_))
        ));
    }

    #[test]
    fn schedule() {
        use FetchReason::*;
        assert!(fetch_allowed(Periodic, None, None, 100, 300, 30));
        assert!(
            !fetch_allowed(Periodic, Some(90), Some(90), 100, 300, 30),
            "fresh keys"
        );
        assert!(
            fetch_allowed(Periodic, Some(90), Some(90), 390, 300, 30),
            "stale keys"
        );
        assert!(
            !fetch_allowed(Periodic, None, Some(90), 100, 300, 30),
            "failing IdP retried at min_refetch pace"
        );
        assert!(fetch_allowed(Periodic, None, Some(90), 120, 300, 30));
        assert!(!fetch_allowed(UnknownKey, Some(90), Some(90), 100, 300, 30));
        assert!(fetch_allowed(UnknownKey, Some(90), Some(90), 121, 300, 30));
    }

    #[test]
    fn records_round_trip() {
        let r = KeysRecord {
            fetched_at: 42,
            jwks: b"{}".to_vec(),
        };
        assert_eq!(KeysRecord::decode(&r.encode()), Some(r));
        assert_eq!(KeysRecord::decode(b"short"), None);
        assert_eq!(decode_attempt(Some(&7i64.to_le_bytes())), Some(7));
        assert_eq!(decode_attempt(None), None);
        assert_ne!(keys_record_key("a"), keys_record_key("b"));
    }
}
