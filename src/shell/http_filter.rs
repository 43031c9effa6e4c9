//! One HTTP request: the back-channel endpoint ([`super::logout_request`]) or a request whose
//! session is checked ([`super::session_request`]). Decided once, on the request headers.

use super::host::{send_response, RequestHeaders};
use super::logout_request::LogoutRequest;
use super::session_request::check_request;
use super::Runtime;
use crate::header_map::first_value;
use crate::responses::unavailable;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

pub struct HttpFilter {
    runtime: Option<Rc<Runtime>>,
    context_id: u32,
    /// Set when the request is for the back-channel endpoint.
    logout: Option<LogoutRequest>,
}

impl HttpFilter {
    pub fn new(runtime: Option<Rc<Runtime>>, context_id: u32) -> Self {
        HttpFilter {
            runtime,
            context_id,
            logout: None,
        }
    }

    fn holds_upstream_answer(&self) -> bool {
        self.logout
            .as_ref()
            .is_some_and(LogoutRequest::holds_upstream_answer)
    }
}

impl Context for HttpFilter {
    fn on_done(&mut self) -> bool {
        if let (Some(runtime), Some(logout)) = (self.runtime.clone(), self.logout.as_mut()) {
            logout.on_stream_done(&runtime, self.context_id);
        }
        true
    }

    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        if let (Some(runtime), Some(logout)) = (self.runtime.clone(), self.logout.as_mut()) {
            logout.on_grpc_response(
                &runtime,
                token_id,
                status_code,
                response_size,
                self.context_id,
            );
        }
    }

    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if let (Some(runtime), Some(logout)) = (self.runtime.clone(), self.logout.as_mut()) {
            logout.on_call_response(&runtime, token_id, body_size, self.context_id);
        }
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "test-panic")]
        super::test_panic::maybe_panic();
        let Some(runtime) = self.runtime.clone() else {
            // Not configured: fail closed.
            send_response(&unavailable());
            return Action::Pause;
        };
        let headers = RequestHeaders::read();
        let fields = headers.fields();
        let path = first_value(&fields, ":path").unwrap_or_default();
        let path_only = path.split(|b| *b == b'?').next().unwrap_or_default();
        if path_only != runtime.config.backchannel_path.as_bytes() {
            if !runtime.config.session.enabled {
                return Action::Continue;
            }
            return check_request(&runtime, &fields, self.context_id);
        }
        let logout = self.logout.insert(LogoutRequest::default());
        logout.on_headers(&runtime, &fields, end_of_stream, self.context_id)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match (self.runtime.clone(), self.logout.as_mut()) {
            (Some(runtime), Some(logout)) => {
                logout.on_body(&runtime, body_size, end_of_stream, self.context_id)
            }
            _ => Action::Continue,
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match (self.runtime.clone(), self.logout.as_mut()) {
            (Some(runtime), Some(logout)) => logout.on_trailers(&runtime, self.context_id),
            _ => Action::Continue,
        }
    }

    /// Without the `hold_router` buffer the router has already forwarded the back-channel
    /// request, and an upstream may answer before this filter is done (for example while a
    /// key fetch is in flight). Holding that answer lets the filter's own reply replace it:
    /// the IdP always hears from the filter.
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.holds_upstream_answer() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        if self.holds_upstream_answer() {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}
