//! The plugin configuration: parsed once, strictly (unknown fields refused), into an
//! immutable [`FilterConfig`]. Every error names the field so the operator can fix it from
//! the one log line Envoy prints.

use crate::algorithm::{is_forbidden_name, Algorithm};
use crate::fleet::settings::{FleetConfig, RawFleet};
use crate::jwks::parse_jwks_value;
use crate::key_set::KeySet;
use crate::logout_token::IssuerPolicy;
use crate::revocations::StoreLimits;
use serde::Deserialize;
use std::fmt;

/// The largest `max_revocations` accepted.
pub const MAX_REVOCATIONS_LIMIT: u64 = 2_000_000;

/// A configuration error: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_backchannel_path")]
    backchannel_path: String,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: u64,
    #[serde(default = "default_revocation_ttl")]
    revocation_ttl_seconds: u64,
    /// Accepted for older configurations and ignored: the store's layout is fixed by the code
    /// so that a reload cannot strand revocations (see `bucket.rs`).
    #[serde(default)]
    revocation_buckets: Option<serde_json::Value>,
    #[serde(default = "default_max_revocations")]
    max_revocations: u64,
    #[serde(default = "default_tick_seconds")]
    tick_seconds: u64,
    issuers: Vec<RawIssuer>,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    fleet: Option<RawFleet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    issuer: String,
    client_ids: Vec<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    #[serde(default)]
    jwks: Option<serde_json::Value>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    discovery: bool,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default = "default_jwks_refresh")]
    jwks_refresh_seconds: u64,
    #[serde(default = "default_jwks_min_refetch")]
    jwks_min_refetch_seconds: u64,
    #[serde(default = "default_clock_skew")]
    clock_skew_seconds: u64,
    #[serde(default = "default_max_token_age")]
    max_token_age_seconds: u64,
    #[serde(default)]
    require_logout_jwt_typ: bool,
    #[serde(default)]
    require_exp: bool,
    #[serde(default)]
    revoke_all_user_sessions: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default = "default_cookie_name")]
    cookie_name: String,
    #[serde(default = "default_clear_cookies")]
    clear_cookies: Vec<String>,
    #[serde(default = "default_cookie_path")]
    clear_cookie_path: String,
    #[serde(default)]
    clear_cookie_domain: Option<String>,
    #[serde(default)]
    api_path_prefixes: Vec<String>,
    #[serde(default = "default_true")]
    api_accept_json: bool,
    #[serde(default)]
    bearer_tokens: bool,
}

impl Default for RawSession {
    fn default() -> Self {
        RawSession {
            enabled: true,
            cookie_name: default_cookie_name(),
            clear_cookies: default_clear_cookies(),
            clear_cookie_path: default_cookie_path(),
            clear_cookie_domain: None,
            api_path_prefixes: Vec::new(),
            api_accept_json: true,
            bearer_tokens: false,
        }
    }
}

fn default_backchannel_path() -> String {
    "/bff/backchannel".into()
}
fn default_max_body_bytes() -> u64 {
    64 * 1024
}
fn default_revocation_ttl() -> u64 {
    24 * 60 * 60
}
fn default_max_revocations() -> u64 {
    100_000
}
fn default_tick_seconds() -> u64 {
    1
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_jwks_refresh() -> u64 {
    300
}
fn default_jwks_min_refetch() -> u64 {
    30
}
fn default_clock_skew() -> u64 {
    60
}
fn default_max_token_age() -> u64 {
    300
}
fn default_true() -> bool {
    true
}
fn default_cookie_name() -> String {
    "IdToken".into()
}
fn default_clear_cookies() -> Vec<String> {
    [
        "BearerToken",
        "IdToken",
        "RefreshToken",
        "OauthHMAC",
        "OauthExpires",
    ]
    .map(String::from)
    .to_vec()
}
fn default_cookie_path() -> String {
    "/".into()
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySourceConfig {
    /// A JWKS in the configuration; parsed when the plugin starts.
    Inline,
    /// Fetched from `jwks_uri` through Envoy cluster `cluster`.
    JwksUri { uri: String, cluster: String },
    /// `jwks_uri` read from the issuer's discovery document first.
    Discovery { cluster: String },
}

/// One issuer, compiled.
pub struct IssuerConfig {
    pub policy: IssuerPolicy,
    pub key_source: KeySourceConfig,
    /// Keys parsed from the inline JWKS, if any.
    pub inline_keys: Option<KeySet>,
    pub jwks_refresh_seconds: u64,
    pub jwks_min_refetch_seconds: u64,
}

/// How the session filter answers a revoked or unreadable session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub enabled: bool,
    pub cookie_name: String,
    pub clear_cookies: Vec<String>,
    pub clear_cookie_path: String,
    pub clear_cookie_domain: Option<String>,
    pub api_path_prefixes: Vec<String>,
    pub api_accept_json: bool,
    /// Also refuse requests whose `Authorization: Bearer` JWT belongs to a revoked session.
    pub bearer_tokens: bool,
}

/// The whole configuration, validated.
pub struct FilterConfig {
    pub backchannel_path: String,
    pub max_body_bytes: usize,
    pub tick_seconds: u64,
    pub store_limits: StoreLimits,
    pub issuers: Vec<IssuerConfig>,
    pub session: SessionConfig,
    /// Sharing revocations with the other Envoys through etcd (`None`: this Envoy only).
    pub fleet: Option<FleetConfig>,
    /// Accepted but ignored settings, one line each, for the log.
    pub warnings: Vec<String>,
}

impl FilterConfig {
    pub fn policies(&self) -> Vec<IssuerPolicy> {
        self.issuers.iter().map(|i| i.policy.clone()).collect()
    }
}

/// Parses and validates the plugin configuration (JSON).
pub fn parse_config(bytes: &[u8]) -> Result<FilterConfig, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(err(
            "configuration",
            "is empty; at least \"issuers\" is required",
        ));
    }
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        // serde names the offending field in its message ("unknown field `x`", "missing
        // field `y`"); keep that text, it is what the operator needs.
        err("configuration", text)
    })?;

    if !raw.backchannel_path.starts_with('/') || raw.backchannel_path.contains(['?', '#']) {
        return Err(err(
            "backchannel_path",
            "must be a path starting with / and without query",
        ));
    }
    let max_body_bytes = bounded(raw.max_body_bytes, 1024, 1024 * 1024, "max_body_bytes")?;
    let revocation_ttl_seconds = bounded(
        raw.revocation_ttl_seconds,
        1,
        366 * 24 * 3600,
        "revocation_ttl_seconds",
    )?;
    // The cap bounds memory (16 bytes an entry, twice: revocations and replay cache) and what
    // one lookup copies at worst; past 2,000,000 both stop being reasonable for one process.
    let max_revocations = bounded(
        raw.max_revocations,
        1,
        MAX_REVOCATIONS_LIMIT,
        "max_revocations",
    )?;
    let mut warnings = Vec::new();
    if raw.revocation_buckets.is_some() {
        warnings.push(
            "revocation_buckets is ignored: the store's layout is fixed, so a reload never \
             strands a revocation"
                .to_string(),
        );
    }
    let tick_seconds = bounded(raw.tick_seconds, 1, 3600, "tick_seconds")?;

    if raw.issuers.is_empty() {
        return Err(err("issuers", "must list at least one issuer"));
    }
    let mut issuers = Vec::with_capacity(raw.issuers.len());
    for (index, raw_issuer) in raw.issuers.into_iter().enumerate() {
        let issuer = compile_issuer(raw_issuer, &format!("issuers[{index}]"))?;
        if issuers
            .iter()
            .any(|i: &IssuerConfig| i.policy.issuer == issuer.policy.issuer)
        {
            return Err(err(
                format!("issuers[{index}].issuer"),
                "is configured twice",
            ));
        }
        issuers.push(issuer);
    }

    let session = compile_session(raw.session)?;
    let fleet = raw.fleet.map(RawFleet::compile).transpose()?;
    Ok(FilterConfig {
        backchannel_path: raw.backchannel_path,
        max_body_bytes: max_body_bytes as usize,
        tick_seconds,
        store_limits: StoreLimits {
            max_revocations: max_revocations as u32,
            revocation_ttl_seconds: revocation_ttl_seconds as i64,
        },
        issuers,
        session,
        fleet,
        warnings,
    })
}

fn bounded(value: u64, min: u64, max: u64, field: &str) -> Result<u64, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(err(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ))
    }
}

fn compile_issuer(raw: RawIssuer, at: &str) -> Result<IssuerConfig, ConfigError> {
    if raw.issuer.is_empty() {
        return Err(err(format!("{at}.issuer"), "must not be empty"));
    }
    if raw.client_ids.is_empty() || raw.client_ids.iter().any(String::is_empty) {
        return Err(err(
            format!("{at}.client_ids"),
            "must list at least one non-empty client id",
        ));
    }
    if raw.algorithms.is_empty() {
        return Err(err(format!("{at}.algorithms"), "must not be empty"));
    }
    let mut algorithms = Vec::with_capacity(raw.algorithms.len());
    for name in &raw.algorithms {
        if is_forbidden_name(name) {
            return Err(err(
                format!("{at}.algorithms"),
                format!("{name:?} is never allowed (none and HMAC would let anyone forge logouts)"),
            ));
        }
        let alg = Algorithm::from_name(name).ok_or_else(|| {
            err(
                format!("{at}.algorithms"),
                format!(
                    "{name:?} is not supported (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA)"
                ),
            )
        })?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    let clock_skew_seconds = bounded(
        raw.clock_skew_seconds,
        0,
        600,
        &format!("{at}.clock_skew_seconds"),
    )?;
    let max_token_age_seconds = bounded(
        raw.max_token_age_seconds,
        1,
        86_400,
        &format!("{at}.max_token_age_seconds"),
    )?;
    let jwks_refresh_seconds = bounded(
        raw.jwks_refresh_seconds,
        1,
        7 * 86_400,
        &format!("{at}.jwks_refresh_seconds"),
    )?;
    let jwks_min_refetch_seconds = bounded(
        raw.jwks_min_refetch_seconds,
        1,
        86_400,
        &format!("{at}.jwks_min_refetch_seconds"),
    )?;

    let sources = usize::from(raw.jwks.is_some())
        + usize::from(raw.jwks_uri.is_some())
        + usize::from(raw.discovery);
    if sources != 1 {
        return Err(err(
            format!("{at}.jwks"),
            "set exactly one key source: jwks (inline), jwks_uri (+ cluster) or discovery: true (+ cluster)",
        ));
    }
    let needs_cluster = |cluster: Option<String>| -> Result<String, ConfigError> {
        cluster.filter(|c| !c.is_empty()).ok_or_else(|| {
            err(
                format!("{at}.cluster"),
                "is required with jwks_uri or discovery",
            )
        })
    };
    let (key_source, inline_keys) = if let Some(jwks) = &raw.jwks {
        let parsed =
            parse_jwks_value(jwks, &algorithms).map_err(|e| err(format!("{at}.jwks"), e))?;
        (KeySourceConfig::Inline, Some(parsed.keys))
    } else if let Some(uri) = raw.jwks_uri {
        if !(uri.starts_with("http://") || uri.starts_with("https://")) {
            return Err(err(
                format!("{at}.jwks_uri"),
                "must be an http:// or https:// URL",
            ));
        }
        let cluster = needs_cluster(raw.cluster)?;
        (KeySourceConfig::JwksUri { uri, cluster }, None)
    } else {
        if !(raw.issuer.starts_with("http://") || raw.issuer.starts_with("https://")) {
            return Err(err(
                format!("{at}.discovery"),
                "needs an issuer that is an http(s) URL",
            ));
        }
        let cluster = needs_cluster(raw.cluster)?;
        (KeySourceConfig::Discovery { cluster }, None)
    };

    Ok(IssuerConfig {
        policy: IssuerPolicy {
            issuer: raw.issuer,
            client_ids: raw.client_ids,
            algorithms,
            clock_skew_seconds: clock_skew_seconds as i64,
            max_token_age_seconds: max_token_age_seconds as i64,
            require_logout_jwt_typ: raw.require_logout_jwt_typ,
            require_exp: raw.require_exp,
            revoke_all_user_sessions: raw.revoke_all_user_sessions,
        },
        key_source,
        inline_keys,
        jwks_refresh_seconds,
        jwks_min_refetch_seconds,
    })
}

fn compile_session(raw: RawSession) -> Result<SessionConfig, ConfigError> {
    if !is_cookie_name(&raw.cookie_name) {
        return Err(err("session.cookie_name", "must be a valid cookie name"));
    }
    if let Some(bad) = raw.clear_cookies.iter().find(|n| !is_cookie_name(n)) {
        return Err(err(
            "session.clear_cookies",
            format!("{bad:?} is not a valid cookie name"),
        ));
    }
    if !raw.clear_cookie_path.starts_with('/') || raw.clear_cookie_path.contains([';', '\r', '\n'])
    {
        return Err(err(
            "session.clear_cookie_path",
            "must be a path starting with /",
        ));
    }
    if let Some(domain) = &raw.clear_cookie_domain {
        if domain.is_empty() || domain.contains([';', ' ', '\r', '\n', ',']) {
            return Err(err("session.clear_cookie_domain", "must be a domain name"));
        }
    }
    if let Some(bad) = raw.api_path_prefixes.iter().find(|p| !p.starts_with('/')) {
        return Err(err(
            "session.api_path_prefixes",
            format!("{bad:?} must start with /"),
        ));
    }
    Ok(SessionConfig {
        enabled: raw.enabled,
        cookie_name: raw.cookie_name,
        clear_cookies: raw.clear_cookies,
        clear_cookie_path: raw.clear_cookie_path,
        clear_cookie_domain: raw.clear_cookie_domain,
        api_path_prefixes: raw.api_path_prefixes,
        api_accept_json: raw.api_accept_json,
        bearer_tokens: raw.bearer_tokens,
    })
}

/// RFC 6265 cookie-name: an RFC 7230 token.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn minimal(extra_issuer: &str) -> String {
        format!(
            r#"{{"issuers":[{{"issuer":"https://idp","client_ids":["app"],"algorithms":["EdDSA"],"jwks":{JWKS}{extra_issuer}}}]}}"#
        )
    }

    fn with_fleet(fleet: &str) -> Result<FilterConfig, ConfigError> {
        let base = minimal("");
        let text = format!("{},\"fleet\":{fleet}}}", base.trim_end_matches('}'));
        parse_config(text.as_bytes())
    }

    #[test]
    fn fleet_is_optional_and_checked_field_by_field() {
        assert_eq!(
            parse_config(minimal("").as_bytes()).map(|c| c.fleet),
            Ok(None)
        );
        let fleet = with_fleet(r#"{"etcd_cluster":"etcd"}"#)
            .ok()
            .and_then(|c| c.fleet);
        assert_eq!(
            fleet.map(|f| (f.key_prefix, f.call_timeout_ms, f.sessions_before_loaded)),
            Some((
                "/backchannel-logout/".to_string(),
                1000,
                crate::fleet::settings::BeforeLoaded::Refuse
            ))
        );
        for (fleet, field) in [
            (r#"{}"#, "configuration"),
            (r#"{"etcd_cluster":""}"#, "fleet.etcd_cluster"),
            (
                r#"{"etcd_cluster":"e","key_prefix":""}"#,
                "fleet.key_prefix",
            ),
            (
                r#"{"etcd_cluster":"e","key_prefix":"a b"}"#,
                "fleet.key_prefix",
            ),
            (
                r#"{"etcd_cluster":"e","call_timeout_ms":10}"#,
                "fleet.call_timeout_ms",
            ),
            (
                r#"{"etcd_cluster":"e","load_page_size":0}"#,
                "fleet.load_page_size",
            ),
            (
                r#"{"etcd_cluster":"e","max_queued_logouts":0}"#,
                "fleet.max_queued_logouts",
            ),
            (
                r#"{"etcd_cluster":"e","sessions_before_loaded":"yes"}"#,
                "fleet.sessions_before_loaded",
            ),
            (r#"{"etcd_cluster":"e","password":"x"}"#, "configuration"),
        ] {
            let result = with_fleet(fleet).map(|_| ());
            assert!(
                matches!(&result, Err(e) if e.field == field),
                "{fleet}: want an error on {field}, got {result:?}"
            );
        }
    }

    #[test]
    fn defaults() {
        let cfg = parse_config(minimal("").as_bytes()).unwrap();
        assert_eq!(cfg.backchannel_path, "/bff/backchannel");
        assert_eq!(cfg.max_body_bytes, 65536);
        assert_eq!(cfg.session.cookie_name, "IdToken");
        assert_eq!(cfg.session.clear_cookies.len(), 5);
        let issuer = &cfg.issuers[0];
        assert_eq!(issuer.policy.clock_skew_seconds, 60);
        assert_eq!(issuer.inline_keys.as_ref().unwrap().len(), 1);
        assert_eq!(issuer.key_source, KeySourceConfig::Inline);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("", "configuration"),
            ("{}", "missing field `issuers`"),
            (r#"{"issuers":[],"bogus":1}"#, "unknown field `bogus`"),
            (r#"{"issuers":[]}"#, "issuers"),
            (
                r#"{"issuers":[{"issuer":"x","client_ids":[],"jwks":{"keys":[]}}]}"#,
                "issuers[0].client_ids",
            ),
            (
                &minimal(r#","jwks_uri":"http://x/jwks""#),
                "issuers[0].jwks",
            ),
            (
                r#"{"issuers":[{"issuer":"x","client_ids":["a"],"jwks_uri":"http://x/j"}]}"#,
                "issuers[0].cluster",
            ),
            (
                r#"{"issuers":[{"issuer":"x","client_ids":["a"],"algorithms":["HS256"],"jwks":{"keys":[]}}]}"#,
                "issuers[0].algorithms",
            ),
            (
                r#"{"issuers":[{"issuer":"x","client_ids":["a"],"algorithms":["none"],"jwks":{"keys":[]}}]}"#,
                "issuers[0].algorithms",
            ),
            (
                r#"{"issuers":[{"issuer":"x","client_ids":["a"],"jwks":{"keys":[]}}]}"#,
                "issuers[0].jwks",
            ),
        ];
        for (json, field) in cases {
            let e = parse_config(json.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("accepted {json}"));
            assert!(e.to_string().contains(field), "{json}: {e}");
        }
        for (patch, field) in [
            (r#""max_revocations":10000000,"#, "max_revocations"),
            (
                r#""max_revocations":2000001,"revocation_buckets":1,"#,
                "max_revocations",
            ),
            (r#""max_revocations":0,"#, "max_revocations"),
        ] {
            let json = minimal("").replacen('{', &format!("{{{patch}"), 1);
            let e = parse_config(json.as_bytes()).err().unwrap();
            assert_eq!(e.field, field, "{json}");
        }
        let ok = minimal("").replacen(
            '{',
            r#"{"max_revocations":2000000,"revocation_buckets":1,"#,
            1,
        );
        let cfg = parse_config(ok.as_bytes()).unwrap();
        assert_eq!(cfg.store_limits.max_revocations, 2_000_000);
        assert_eq!(cfg.warnings.len(), 1);
        let e = parse_config(br#"{"backchannel_path":"nope","issuers":[]}"#)
            .err()
            .unwrap();
        assert_eq!(e.field, "backchannel_path");
        let bad_session = minimal("").replace("]}", r#"],"session":{"cookie_name":"a b"}}"#);
        assert_eq!(
            parse_config(bad_session.as_bytes()).err().unwrap().field,
            "session.cookie_name"
        );
    }

    #[test]
    fn remote_key_sources() {
        let cfg = parse_config(
            br#"{"issuers":[{"issuer":"http://idp","client_ids":["a"],"discovery":true,"cluster":"idp"},
                 {"issuer":"i2","client_ids":["a"],"jwks_uri":"http://idp/jwks","cluster":"idp"}]}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.issuers[0].key_source,
            KeySourceConfig::Discovery {
                cluster: "idp".into()
            }
        );
        assert!(matches!(
            cfg.issuers[1].key_source,
            KeySourceConfig::JwksUri { .. }
        ));
    }
}
