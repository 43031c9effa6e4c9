//! The back-channel logout endpoint as a sans-I/O state machine: the shell feeds it the
//! request's headers, the body's progress and finally the body; it answers what to do.

use crate::form::{extract_logout_token, is_form_urlencoded};
use crate::logout_token::{
    validate_parsed, IssuerPolicy, KeySource, UnverifiedToken, VerifiedLogout,
};
use crate::rejection::Rejection;
use crate::revocations::{Recorded, RevocationStore};
use crate::shared_store::SharedStore;

/// What to do once the request headers are known.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadersStep {
    /// Answer now with this refusal; the body is not read.
    Refuse(Rejection),
    /// Buffer the body, then call [`process_logout`].
    ReadBody,
}

/// Decides on the request headers alone: method, content type, declared length. Bytes as
/// the client sent them: none of them is trusted to be UTF-8.
pub fn on_request_headers(
    method: &[u8],
    content_type: Option<&[u8]>,
    content_length: Option<&[u8]>,
    end_of_stream: bool,
    max_body_bytes: usize,
) -> HeadersStep {
    if method != b"POST" {
        return HeadersStep::Refuse(Rejection::MethodNotAllowed);
    }
    if !content_type.is_some_and(is_form_urlencoded) {
        return HeadersStep::Refuse(Rejection::ContentType);
    }
    if let Some(length) = content_length {
        match std::str::from_utf8(length.trim_ascii())
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) if n > max_body_bytes as u64 => {
                return HeadersStep::Refuse(Rejection::BodyTooLarge)
            }
            Some(_) => {}
            None => return HeadersStep::Refuse(Rejection::FormEncoding),
        }
    }
    if end_of_stream {
        return HeadersStep::Refuse(Rejection::LogoutTokenMissing);
    }
    HeadersStep::ReadBody
}

/// What to do as body data arrives.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyStep {
    /// Keep buffering.
    Wait,
    /// The body grew past the limit: refuse without buffering the rest.
    Refuse(Rejection),
    /// The whole body is buffered.
    Complete,
}

/// Decides from the buffered size so far.
pub fn on_request_body(
    buffered_bytes: usize,
    end_of_stream: bool,
    max_body_bytes: usize,
) -> BodyStep {
    if buffered_bytes > max_body_bytes {
        BodyStep::Refuse(Rejection::BodyTooLarge)
    } else if end_of_stream {
        BodyStep::Complete
    } else {
        BodyStep::Wait
    }
}

/// The result of one logout request, with what the log line and the stats need.
#[derive(Debug)]
pub struct LogoutOutcome {
    pub result: Result<Accepted, Rejection>,
    /// The issuer the token claimed (unverified when rejected), for the log line only.
    pub claimed_issuer: Option<String>,
}

/// A recorded logout.
#[derive(Debug)]
pub struct Accepted {
    pub logout: VerifiedLogout,
    pub recorded: Recorded,
}

impl LogoutOutcome {
    /// The single log line for this outcome: no token, no claims beyond the issuer.
    pub fn log_line(&self) -> String {
        match &self.result {
            Ok(accepted) => {
                let logout = &accepted.logout;
                let scope = match (logout.revokes_session(), logout.revokes_user_sessions()) {
                    (true, true) => "session and user sessions",
                    (true, false) => "session",
                    _ => "user sessions",
                };
                format!(
                    "backchannel logout accepted: iss={} revoked={scope}",
                    logout.issuer()
                )
            }
            Err(rejection) => rejection_log_line(rejection, self.claimed_issuer.as_deref()),
        }
    }
}

/// The log line of a refusal; also used for refusals decided on the headers alone.
pub fn rejection_log_line(rejection: &Rejection, claimed_issuer: Option<&str>) -> String {
    format!(
        "backchannel logout rejected: {rejection} (iss={})",
        claimed_issuer.unwrap_or("-")
    )
}

/// Handles a complete body: form, token, validation, replay check and revocation.
pub fn process_logout(
    body: &[u8],
    issuers: &[IssuerPolicy],
    keys: &dyn KeySource,
    rules: &RevocationStore,
    store: &dyn SharedStore,
    now: i64,
) -> LogoutOutcome {
    let token = match extract_logout_token(body) {
        Ok(token) => token,
        Err(rejection) => {
            return LogoutOutcome {
                result: Err(rejection),
                claimed_issuer: None,
            }
        }
    };
    let parsed = match UnverifiedToken::parse(&token) {
        Ok(parsed) => parsed,
        Err(rejection) => {
            return LogoutOutcome {
                result: Err(rejection),
                claimed_issuer: None,
            }
        }
    };
    // Logged only when it is a configured issuer: an arbitrary string from the token is not.
    let claimed_issuer = parsed
        .claimed_issuer()
        .filter(|iss| issuers.iter().any(|p| p.issuer == *iss))
        .map(str::to_owned);
    let result = validate_parsed(&parsed, issuers, keys, now).and_then(|logout| {
        let recorded = rules.record(store, &logout, now)?;
        Ok(Accepted { logout, recorded })
    });
    LogoutOutcome {
        result,
        claimed_issuer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_decisions() {
        let max = 100;
        let form = Some(&b"application/x-www-form-urlencoded"[..]);
        assert_eq!(
            on_request_headers(b"GET", form, None, true, max),
            HeadersStep::Refuse(Rejection::MethodNotAllowed)
        );
        assert_eq!(
            on_request_headers(b"POST", Some(&b"application/json"[..]), None, false, max),
            HeadersStep::Refuse(Rejection::ContentType)
        );
        assert_eq!(
            on_request_headers(b"POST", None, None, false, max),
            HeadersStep::Refuse(Rejection::ContentType)
        );
        assert_eq!(
            on_request_headers(b"POST", form, Some(&b"101"[..]), false, max),
            HeadersStep::Refuse(Rejection::BodyTooLarge)
        );
        assert_eq!(
            on_request_headers(b"POST", form, Some(&b"0"[..]), true, max),
            HeadersStep::Refuse(Rejection::LogoutTokenMissing)
        );
        assert_eq!(
            on_request_headers(b"POST", form, Some(&b"50"[..]), false, max),
            HeadersStep::ReadBody
        );
        assert_eq!(
            on_request_headers(b"POST", form, None, false, max),
            HeadersStep::ReadBody
        );
    }

    #[test]
    fn body_decisions() {
        assert_eq!(on_request_body(10, false, 100), BodyStep::Wait);
        assert_eq!(
            on_request_body(101, false, 100),
            BodyStep::Refuse(Rejection::BodyTooLarge)
        );
        assert_eq!(on_request_body(100, true, 100), BodyStep::Complete);
    }
}
