//! One HTTP request: either the back-channel endpoint or a request to check for a revoked
//! session. Moves bytes between Envoy and the core; every decision is the core's.

use super::host::{log, now_unix, request_header, send_response, EnvoySharedData};
use super::jwks_client::{
    is_remote, on_answer, refresh_from_shared, start_fetch, FetchStep, PendingFetch,
};
use super::Runtime;
use crate::endpoint::{
    on_request_body, on_request_headers, process_logout, rejection_log_line, BodyStep, HeadersStep,
};
use crate::jwks_fetch::FetchReason;
use crate::rejection::Rejection;
use crate::responses::{
    logout_accepted, logout_rejected, session_refused, unavailable, LocalResponse, RequestFacts,
    SessionRefusal,
};
use crate::session_check::{check_session, SessionVerdict};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel};
use std::rc::Rc;

pub struct HttpFilter {
    runtime: Option<Rc<Runtime>>,
    context_id: u32,
    /// True once the request is known to be a logout request whose body is being read.
    reading_logout_body: bool,
    /// True once a local reply was sent: later callbacks do nothing.
    answered: bool,
    /// A logout waiting for its issuer's keys to be fetched: the body and the fetch.
    waiting_for_keys: Option<(Vec<u8>, u32, PendingFetch)>,
}

impl HttpFilter {
    pub fn new(runtime: Option<Rc<Runtime>>, context_id: u32) -> Self {
        HttpFilter {
            runtime,
            context_id,
            reading_logout_body: false,
            answered: false,
            waiting_for_keys: None,
        }
    }

    fn reject_logout(&mut self, runtime: &Runtime, rejection: &Rejection) -> Action {
        runtime.metrics.logout_rejected(rejection);
        log(
            LogLevel::Info,
            &format!(
                "{} [ctx {}]",
                rejection_log_line(rejection, None),
                self.context_id
            ),
        );
        self.answer(&logout_rejected(rejection))
    }

    fn answer(&mut self, response: &LocalResponse) -> Action {
        self.answered = true;
        send_response(response);
        Action::Pause
    }

    /// Validates and records the logout. When the token's key is unknown and the issuer's
    /// keys come from the IdP, fetches them once (rate-limited for the whole Envoy) and
    /// validates again on the answer, so a key rotation needs no restart.
    fn finish_logout(&mut self, runtime: &Runtime, body: Vec<u8>, may_fetch: bool) -> Action {
        let now = now_unix();
        refresh_from_shared(runtime);
        let keys = runtime.keys.borrow();
        let outcome = process_logout(
            &body,
            &runtime.policies,
            &*keys,
            &runtime.rules,
            &EnvoySharedData,
            now,
        );
        drop(keys);
        if may_fetch {
            if let Err(Rejection::UnknownKid | Rejection::KeysUnavailable) = &outcome.result {
                let index = outcome
                    .claimed_issuer
                    .as_deref()
                    .and_then(|iss| runtime.policies.iter().position(|p| p.issuer == iss));
                if let Some(index) = index.filter(|i| is_remote(runtime, *i)) {
                    if let Some((token, pending)) =
                        start_fetch(runtime, index, FetchReason::UnknownKey, now)
                    {
                        self.waiting_for_keys = Some((body, token, pending));
                        return Action::Pause;
                    }
                }
            }
        }
        log(
            LogLevel::Info,
            &format!("{} [ctx {}]", outcome.log_line(), self.context_id),
        );
        match &outcome.result {
            Ok(accepted) => {
                runtime.metrics.logout_accepted(accepted.entry_delta);
                self.answer(&logout_accepted())
            }
            Err(rejection) => {
                runtime.metrics.logout_rejected(rejection);
                self.answer(&logout_rejected(rejection))
            }
        }
    }

    fn check_session(&mut self, runtime: &Runtime, path: &str) -> Action {
        let cookie = request_header("cookie");
        let verdict = check_session(
            cookie.as_deref(),
            &runtime.config.session,
            &runtime.rules,
            &EnvoySharedData,
            now_unix(),
        );
        let refusal = match verdict {
            Ok(SessionVerdict::Pass) => return Action::Continue,
            Ok(SessionVerdict::Refuse(refusal)) => refusal,
            Err(error) => {
                // Fail closed: a session that cannot be checked is not forwarded.
                log(
                    LogLevel::Error,
                    &format!("backchannel logout: revocation lookup failed: {error}"),
                );
                return self.answer(&unavailable());
            }
        };
        match refusal {
            SessionRefusal::Revoked => runtime.metrics.session_revoked(),
            SessionRefusal::Malformed => runtime.metrics.session_malformed(),
        }
        let accept = request_header("accept");
        let sec_fetch_mode = request_header("sec-fetch-mode");
        let facts = RequestFacts {
            path,
            accept: accept.as_deref(),
            sec_fetch_mode: sec_fetch_mode.as_deref(),
        };
        let response = session_refused(refusal, &facts, &runtime.config.session);
        self.answer(&response)
    }
}

impl Context for HttpFilter {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        let Some((body, token, pending)) = self.waiting_for_keys.take() else {
            return;
        };
        if token != token_id {
            self.waiting_for_keys = Some((body, token, pending));
            return;
        }
        match on_answer(&runtime, pending, body_size, now_unix()) {
            FetchStep::Continued(next_token, next) => {
                self.waiting_for_keys = Some((body, next_token, next));
            }
            FetchStep::Done => {
                // Whatever the fetch gave, answer now: with the new keys, or the original
                // refusal. A local reply ends the stream; no resume.
                self.finish_logout(&runtime, body, false);
            }
        }
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "test-panic")]
        super::test_panic::maybe_panic();
        let Some(runtime) = self.runtime.clone() else {
            // Not configured: fail closed.
            return self.answer(&unavailable());
        };
        let path = request_header(":path").unwrap_or_default();
        let path_only = path.split('?').next().unwrap_or_default();
        if path_only != runtime.config.backchannel_path {
            if !runtime.config.session.enabled {
                return Action::Continue;
            }
            return self.check_session(&runtime, &path);
        }

        let method = request_header(":method").unwrap_or_default();
        let content_type = request_header("content-type");
        let content_length = request_header("content-length");
        match on_request_headers(
            &method,
            content_type.as_deref(),
            content_length.as_deref(),
            end_of_stream,
            runtime.config.max_body_bytes,
        ) {
            HeadersStep::Refuse(rejection) => self.reject_logout(&runtime, &rejection),
            HeadersStep::ReadBody => {
                // Envoy delivers no body callbacks after a paused headers callback, so the
                // headers go on and the body is held here (Pause in on_http_request_body)
                // until the answer is known, which may take a key fetch. The Envoy configs
                // of this repo put a buffer filter right after this one on the back-channel
                // route: it holds the headers too, so the router (and the upstream) never
                // sees the request and cannot answer before this filter does.
                self.reading_logout_body = true;
                Action::Continue
            }
        }
    }

    /// Without the `hold_router` buffer (see `on_http_request_headers`) the router has already
    /// forwarded the back-channel request, and an upstream may answer before this filter is
    /// done (for example while a key fetch is in flight). Holding that answer lets the
    /// filter's own reply replace it: the IdP always hears from the filter.
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.reading_logout_body && !self.answered {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        if self.reading_logout_body && !self.answered {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.answered {
            return Action::Pause;
        }
        if !self.reading_logout_body {
            return Action::Continue;
        }
        let Some(runtime) = self.runtime.clone() else {
            return Action::Pause;
        };
        match on_request_body(body_size, end_of_stream, runtime.config.max_body_bytes) {
            BodyStep::Wait => Action::Pause,
            BodyStep::Refuse(rejection) => self.reject_logout(&runtime, &rejection),
            BodyStep::Complete => {
                let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                self.finish_logout(&runtime, body, true)
            }
        }
    }
}
