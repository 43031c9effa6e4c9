//! Logout Token validation, OpenID Connect Back-Channel Logout 1.0, section 2.6, in the
//! specification's order. Each step is tagged with its number so the code can be read
//! against the text. Time is an argument: the caller reads the clock.
//!
//! Step 1 (decrypt an encrypted token) does not apply: this receiver registers no ID-token
//! encryption, so a JWE (five parts) fails the structure check. Step 9 (match against
//! sessions the RP holds) is not done: the filter does not track live sessions, and 2.7
//! makes a logout for an unknown session a success anyway.

use crate::algorithm::{is_forbidden_name, Algorithm};
use crate::jws;
use crate::key_set::{KeySet, NativeVerifier, VerifyFailure};
use crate::rejection::Rejection;
use serde_json::{Map, Value};

/// The `events` member that marks a back-channel logout token (2.4).
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Identifiers longer than this are refused: they end up in shared data, so their size bounds
/// the store's memory. OpenID Connect Core 1.0, 2 caps `sub` at 255 ASCII characters; real
/// `sid` and `jti` values are UUID-sized.
pub const MAX_IDENTIFIER_BYTES: usize = 255;

/// What the validator needs to know about one configured issuer.
#[derive(Clone, Debug)]
pub struct IssuerPolicy {
    pub issuer: String,
    pub client_ids: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub clock_skew_seconds: i64,
    pub max_token_age_seconds: i64,
    pub require_logout_jwt_typ: bool,
    /// Refuse a token without `exp` (the 2023 errata reading) instead of bounding it by `iat`.
    pub require_exp: bool,
    pub revoke_all_user_sessions: bool,
}

/// Where the keys of an issuer come from at validation time.
pub trait KeySource {
    /// The keys of the issuer at `issuer_index`, or `None` while none are known yet.
    fn keys(&self, issuer_index: usize) -> Option<&KeySet>;

    /// The host's native signature check, if it has one.
    fn native_verifier(&self) -> Option<&dyn NativeVerifier> {
        None
    }
}

/// A logout token that passed every check. Only [`validate`] can build one, so nothing
/// unverified reaches the revocation store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLogout {
    issuer_index: usize,
    issuer: String,
    sub: Option<String>,
    sid: Option<String>,
    jti: String,
    iat: i64,
    valid_until: i64,
    revoke_all_user_sessions: bool,
}

impl VerifiedLogout {
    /// Builds a verified logout without a token, for the store's unit tests only.
    #[cfg(test)]
    pub(crate) fn for_tests(
        issuer: &str,
        sub: Option<&str>,
        sid: Option<&str>,
        jti: &str,
        iat: i64,
        revoke_all_user_sessions: bool,
    ) -> Self {
        VerifiedLogout {
            issuer_index: 0,
            issuer: issuer.into(),
            sub: sub.map(str::to_owned),
            sid: sid.map(str::to_owned),
            jti: jti.into(),
            iat,
            valid_until: iat + 120,
            revoke_all_user_sessions,
        }
    }

    pub fn issuer_index(&self) -> usize {
        self.issuer_index
    }
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    pub fn sub(&self) -> Option<&str> {
        self.sub.as_deref()
    }
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// The token's `iat`: user-wide revocations cut off sessions issued up to this instant.
    pub fn iat(&self) -> i64 {
        self.iat
    }
    /// Until when the token could still be accepted: how long its `jti` must be remembered.
    pub fn valid_until(&self) -> i64 {
        self.valid_until
    }
    /// True when every session of `sub` is to be revoked (no `sid`, or the issuer's
    /// `revoke_all_user_sessions` option).
    pub fn revokes_user_sessions(&self) -> bool {
        self.sub.is_some() && (self.sid.is_none() || self.revoke_all_user_sessions)
    }
    /// True when a single session (`sid`) is revoked.
    pub fn revokes_session(&self) -> bool {
        self.sid.is_some()
    }
}

/// A logout token split and decoded, nothing verified yet. Parsed once per logout: the
/// claimed issuer (for the log line and the key fetch) and the validation read the same copy.
pub struct UnverifiedToken<'a> {
    jws: jws::CompactJws<'a, Map<String, Value>>,
    token: &'a str,
}

impl<'a> UnverifiedToken<'a> {
    pub fn parse(token: &'a str) -> Result<Self, Rejection> {
        let jws = jws::parse::<Map<String, Value>>(token).map_err(Rejection::MalformedJwt)?;
        Ok(UnverifiedToken { jws, token })
    }

    /// Which issuer the token claims, read before verification only to pick the keys; the
    /// signature check that follows proves it.
    pub fn claimed_issuer(&self) -> Option<&str> {
        self.jws.payload.get("iss")?.as_str()
    }
}

/// Parses and validates a logout token; see [`validate_parsed`].
pub fn validate(
    token: &str,
    issuers: &[IssuerPolicy],
    keys: &dyn KeySource,
    now: i64,
) -> Result<VerifiedLogout, Rejection> {
    validate_parsed(&UnverifiedToken::parse(token)?, issuers, keys, now)
}

/// True for a header `typ` that names `logout+jwt`, or (`allow_jwt`) `JWT`, as a media type:
/// RFC 7515, 4.1.9 makes `application/logout+jwt` the same type as `logout+jwt`, and media
/// types compare case-insensitively. Parameters are not part of either value: refused.
fn typ_allowed(typ: &str, allow_jwt: bool) -> bool {
    let subtype = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => typ.get(12..).unwrap_or(""),
        _ => typ,
    };
    subtype.eq_ignore_ascii_case("logout+jwt") || (allow_jwt && subtype.eq_ignore_ascii_case("jwt"))
}

/// Validates a logout token against the configured issuers at time `now` (Unix seconds).
/// The `jti` replay check (step 8) needs shared state and is done by the caller with
/// [`VerifiedLogout::jti`].
pub fn validate_parsed(
    parsed: &UnverifiedToken<'_>,
    issuers: &[IssuerPolicy],
    keys: &dyn KeySource,
    now: i64,
) -> Result<VerifiedLogout, Rejection> {
    let claims = &parsed.jws.payload;
    let header = &parsed.jws.header;
    check_claim_types(claims)?;

    // The issuer selects whose keys and rules apply; step 2 then proves it signed the token.
    let iss = string_claim(claims, "iss")?.ok_or(Rejection::UnknownIssuer)?;
    let (issuer_index, policy) = issuers
        .iter()
        .enumerate()
        .find(|(_, p)| p.issuer == iss)
        .ok_or(Rejection::UnknownIssuer)?;

    // The header, before any key is used. 2.4: typ SHOULD be logout+jwt; 4.1: older OPs
    // send JWT or nothing. A critical extension this receiver does not know is refused
    // (RFC 7515, 4.1.11); it knows none.
    match header.typ.as_deref() {
        Some(typ) if typ_allowed(typ, !policy.require_logout_jwt_typ) => {}
        None if !policy.require_logout_jwt_typ => {}
        _ => return Err(Rejection::Typ),
    }
    if header.crit.is_some() {
        return Err(Rejection::Crit);
    }

    // Step 3: the algorithm must be one expected for this OP; none and HMAC never.
    if is_forbidden_name(&header.alg) {
        return Err(Rejection::AlgNotAllowed);
    }
    let alg = Algorithm::from_name(&header.alg)
        .filter(|alg| policy.algorithms.contains(alg))
        .ok_or(Rejection::AlgNotAllowed)?;

    // Step 2: the signature, with a key of the issuer chosen by kid among keys of `alg`.
    let key_set = keys.keys(issuer_index).ok_or(Rejection::KeysUnavailable)?;
    key_set
        .verify(
            parsed.token,
            alg,
            header.kid.as_deref(),
            header.typ.as_deref(),
            keys.native_verifier(),
        )
        .map_err(|failure| match failure {
            VerifyFailure::NoMatchingKey => Rejection::UnknownKid,
            VerifyFailure::BadSignature => Rejection::Signature,
            VerifyFailure::MalformedClaims => Rejection::MalformedJwt("claims have invalid types"),
        })?;

    // Step 4: iss (matched above), aud, iat, exp.
    if !audience_matches(claims.get("aud"), &policy.client_ids) {
        return Err(Rejection::Aud);
    }
    let skew = policy.clock_skew_seconds;
    let iat = numeric_date(claims, "iat")?.ok_or(Rejection::IatMissing)?;
    if iat > now.saturating_add(skew) {
        return Err(Rejection::IatInFuture);
    }
    if now.saturating_sub(iat) > policy.max_token_age_seconds.saturating_add(skew) {
        return Err(Rejection::TokenTooOld);
    }
    // `exp` is REQUIRED by the 2023 errata text; the 2022 final text and real OPs (Glewlwyd,
    // Ory Hydra, older authentik and Keycloak) omit it. Without it the token is bounded by
    // `iat` + the maximum age checked above, which also bounds how long its jti is kept.
    let exp = numeric_date(claims, "exp")?;
    match exp {
        Some(exp) if now > exp.saturating_add(skew) => return Err(Rejection::Expired),
        None if policy.require_exp => return Err(Rejection::ExpMissing),
        _ => {}
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if nbf > now.saturating_add(skew) {
            return Err(Rejection::NotYetValid);
        }
    }

    // Step 5: sub, sid, or both.
    let sub = identifier_claim(claims, "sub")?;
    let sid = identifier_claim(claims, "sid")?;
    if sub.is_none() && sid.is_none() {
        return Err(Rejection::SubSidMissing);
    }

    // Step 6: events holds the back-channel member, whose value is a JSON object.
    match claims.get("events") {
        None => return Err(Rejection::EventsMissing),
        Some(Value::Object(events)) => match events.get(BACKCHANNEL_EVENT) {
            None => return Err(Rejection::EventsMemberMissing),
            Some(Value::Object(_)) => {}
            Some(_) => return Err(Rejection::EventsMemberNotObject),
        },
        Some(_) => return Err(Rejection::EventsNotObject),
    }

    // Step 7: nonce must be absent (so an ID token can never pass as a logout token).
    if claims.contains_key("nonce") {
        return Err(Rejection::NoncePresent);
    }

    // Step 8 needs a jti (REQUIRED by 2.4); the replay lookup is the caller's.
    let jti = identifier_claim(claims, "jti")?.ok_or(Rejection::JtiMissing)?;

    let token_age_limit = iat.saturating_add(policy.max_token_age_seconds);
    let valid_until = exp.map_or(token_age_limit, |exp| exp.min(token_age_limit));
    Ok(VerifiedLogout {
        issuer_index,
        issuer: policy.issuer.clone(),
        sub,
        sid,
        jti,
        iat,
        valid_until: valid_until.saturating_add(skew),
        revoke_all_user_sessions: policy.revoke_all_user_sessions,
    })
}

/// Registered claims must have their JSON types (RFC 7519, 4.1) before anything reads them;
/// a wrong type is a malformed token, reported as such rather than as a signature failure.
fn check_claim_types(claims: &Map<String, Value>) -> Result<(), Rejection> {
    for name in ["iss", "sub", "sid", "jti"] {
        string_claim(claims, name)?;
    }
    for name in ["iat", "exp", "nbf"] {
        numeric_date(claims, name)?;
    }
    match claims.get("aud") {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(Rejection::MalformedJwt(
            "aud is not a string or an array of strings",
        )),
    }
}

fn audience_matches(aud: Option<&Value>, client_ids: &[String]) -> bool {
    match aud {
        Some(Value::String(one)) => client_ids.iter().any(|id| id == one),
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .any(|one| client_ids.iter().any(|id| id == one)),
        _ => false,
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Rejection::MalformedJwt(claim_type_error(name))),
    }
}

/// A string claim used as an identifier: present means non-empty and bounded in size.
fn identifier_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, Rejection> {
    match string_claim(claims, name)? {
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s.len() > MAX_IDENTIFIER_BYTES => Err(Rejection::ClaimTooLong(name)),
        other => Ok(other),
    }
}

/// A NumericDate claim (RFC 7519, 2), read by the one parser of [`crate::numeric_date`].
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => crate::numeric_date::seconds(n)
            .map(Some)
            .ok_or(Rejection::MalformedJwt(claim_type_error(name))),
        Some(_) => Err(Rejection::MalformedJwt(claim_type_error(name))),
    }
}

fn claim_type_error(name: &str) -> &'static str {
    match name {
        "iss" => "iss is not a string",
        "sub" => "sub is not a string",
        "sid" => "sid is not a string",
        "jti" => "jti is not a string",
        "iat" => "iat is not a number",
        "exp" => "exp is not a number",
        "nbf" => "nbf is not a number",
        _ => "a claim has the wrong type",
    }
}

#[cfg(test)]
#[path = "logout_token_tests.rs"]
mod tests;
