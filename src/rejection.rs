//! Why a back-channel logout request was refused: one enum, mapped to the HTTP answer, the log
//! line and the stats counter in one place ([`crate::responses`]), so the three never disagree.

use std::fmt;

/// Every reason the endpoint refuses a request. The `code()` strings are a stable interface:
/// they start the `error_description`, name the stats counter and are what operators grep for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    MethodNotAllowed,
    ContentType,
    BodyTooLarge,
    FormEncoding,
    LogoutTokenMissing,
    LogoutTokenEmpty,
    LogoutTokenRepeated,
    MalformedJwt(&'static str),
    UnknownIssuer,
    Typ,
    Crit,
    AlgNotAllowed,
    KeysUnavailable,
    UnknownKid,
    Signature,
    Aud,
    IatMissing,
    IatInFuture,
    TokenTooOld,
    ExpMissing,
    Expired,
    NotYetValid,
    EventsMissing,
    EventsNotObject,
    EventsMemberMissing,
    EventsMemberNotObject,
    NoncePresent,
    SubSidMissing,
    ClaimTooLong(&'static str),
    JtiMissing,
    JtiReplayed,
    StoreFull,
    StoreError,
    /// etcd is unreachable and this Envoy's queue of logouts for it is full.
    FleetUnavailable,
}

impl Rejection {
    /// Every code, for defining one counter per code when the plugin starts.
    pub const ALL_CODES: [&'static str; 34] = [
        "method_not_allowed",
        "content_type",
        "body_too_large",
        "form_encoding",
        "logout_token_missing",
        "logout_token_empty",
        "logout_token_repeated",
        "malformed_jwt",
        "unknown_issuer",
        "typ",
        "crit",
        "alg_not_allowed",
        "keys_unavailable",
        "unknown_kid",
        "signature",
        "aud",
        "iat_missing",
        "iat_in_future",
        "token_too_old",
        "exp_missing",
        "expired",
        "not_yet_valid",
        "events_missing",
        "events_not_object",
        "events_member_missing",
        "events_member_not_object",
        "nonce_present",
        "sub_sid_missing",
        "claim_too_long",
        "jti_missing",
        "jti_replayed",
        "store_full",
        "store_error",
        "fleet_unavailable",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::ContentType => "content_type",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::FormEncoding => "form_encoding",
            Rejection::LogoutTokenMissing => "logout_token_missing",
            Rejection::LogoutTokenEmpty => "logout_token_empty",
            Rejection::LogoutTokenRepeated => "logout_token_repeated",
            Rejection::MalformedJwt(_) => "malformed_jwt",
            Rejection::UnknownIssuer => "unknown_issuer",
            Rejection::Typ => "typ",
            Rejection::Crit => "crit",
            Rejection::AlgNotAllowed => "alg_not_allowed",
            Rejection::KeysUnavailable => "keys_unavailable",
            Rejection::UnknownKid => "unknown_kid",
            Rejection::Signature => "signature",
            Rejection::Aud => "aud",
            Rejection::IatMissing => "iat_missing",
            Rejection::IatInFuture => "iat_in_future",
            Rejection::TokenTooOld => "token_too_old",
            Rejection::ExpMissing => "exp_missing",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::EventsMissing => "events_missing",
            Rejection::EventsNotObject => "events_not_object",
            Rejection::EventsMemberMissing => "events_member_missing",
            Rejection::EventsMemberNotObject => "events_member_not_object",
            Rejection::NoncePresent => "nonce_present",
            Rejection::SubSidMissing => "sub_sid_missing",
            Rejection::ClaimTooLong(_) => "claim_too_long",
            Rejection::JtiMissing => "jti_missing",
            Rejection::JtiReplayed => "jti_replayed",
            Rejection::StoreFull => "store_full",
            Rejection::StoreError => "store_error",
            Rejection::FleetUnavailable => "fleet_unavailable",
        }
    }

    /// Human text after the code. Never contains token material.
    pub fn explanation(&self) -> String {
        match self {
            Rejection::MethodNotAllowed => {
                "the back-channel logout endpoint accepts POST only".into()
            }
            Rejection::ContentType => {
                "Content-Type must be application/x-www-form-urlencoded".into()
            }
            Rejection::BodyTooLarge => "request body exceeds the configured limit".into(),
            Rejection::FormEncoding => {
                "body is not valid application/x-www-form-urlencoded data".into()
            }
            Rejection::LogoutTokenMissing => "the form has no logout_token parameter".into(),
            Rejection::LogoutTokenEmpty => "the logout_token parameter is empty".into(),
            Rejection::LogoutTokenRepeated => "the form has more than one logout_token".into(),
            Rejection::MalformedJwt(what) => {
                format!("logout_token is not a valid signed JWT: {what}")
            }
            Rejection::UnknownIssuer => "iss is missing or is not a configured issuer".into(),
            Rejection::Typ => "header typ is not accepted (logout+jwt expected)".into(),
            Rejection::Crit => "header crit names extensions this receiver does not support".into(),
            Rejection::AlgNotAllowed => {
                "alg is not allowed for this issuer (none and HMAC are never accepted)".into()
            }
            Rejection::KeysUnavailable => {
                "the issuer's signing keys are not available yet; try again later".into()
            }
            Rejection::UnknownKid => "no key of the issuer matches the token's kid and alg".into(),
            Rejection::Signature => "signature verification failed".into(),
            Rejection::Aud => "aud does not contain a configured client id".into(),
            Rejection::IatMissing => "iat claim is required".into(),
            Rejection::IatInFuture => "iat is in the future beyond the allowed clock skew".into(),
            Rejection::TokenTooOld => "iat is older than the configured maximum token age".into(),
            Rejection::ExpMissing => "exp claim is required".into(),
            Rejection::Expired => "token has expired".into(),
            Rejection::NotYetValid => "nbf is in the future beyond the allowed clock skew".into(),
            Rejection::EventsMissing => "events claim is required".into(),
            Rejection::EventsNotObject => "events claim must be a JSON object".into(),
            Rejection::EventsMemberMissing => {
                "events has no http://schemas.openid.net/event/backchannel-logout member".into()
            }
            Rejection::EventsMemberNotObject => {
                "the back-channel logout event value must be a JSON object".into()
            }
            Rejection::NoncePresent => "a logout token must not contain nonce".into(),
            Rejection::SubSidMissing => "the token must contain sub, sid or both".into(),
            Rejection::ClaimTooLong(claim) => format!("{claim} is longer than the allowed maximum"),
            Rejection::JtiMissing => "jti claim is required".into(),
            Rejection::JtiReplayed => "this jti was already used".into(),
            Rejection::StoreFull => {
                "the revocation store is full; the logout was not recorded".into()
            }
            Rejection::StoreError => "the revocation could not be stored".into(),
            Rejection::FleetUnavailable => {
                "etcd is unreachable and the queue of logouts waiting for it is full".into()
            }
        }
    }

    /// 405 for a wrong method, 400 for everything else (Back-Channel Logout 1.0, 2.8).
    pub fn status(&self) -> u32 {
        match self {
            Rejection::MethodNotAllowed => 405,
            _ => 400,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.explanation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed() {
        let samples = [
            Rejection::MethodNotAllowed,
            Rejection::MalformedJwt("x"),
            Rejection::ClaimTooLong("sid"),
            Rejection::StoreError,
            Rejection::FleetUnavailable,
        ];
        for r in samples {
            assert!(Rejection::ALL_CODES.contains(&r.code()));
        }
        let mut codes = Rejection::ALL_CODES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Rejection::ALL_CODES.len());
    }

    #[test]
    fn display_starts_with_code() {
        let r = Rejection::IatInFuture;
        assert!(r.to_string().starts_with("iat_in_future: "));
    }
}
