//! The back-channel endpoint's shell: one request to `backchannel_path`, from its headers to
//! the answer. Reads the body (however it ends: data with end of stream, or trailers), may
//! wait for the issuer's keys to be fetched, then answers with what the core decided.

use super::abi;
use super::fleet_write::{begin, on_etcd_answer, PendingWrite, Progress, WriteOutcome};
use super::host::{log, now_unix, send_response, EnvoySharedData};
use super::jwks_client::{
    is_remote, on_answer, refresh_from_shared, start_fetch, FetchStep, PendingFetch,
};
use super::{report_store_fill, Runtime};
use crate::endpoint::{
    on_request_body, on_request_headers, process_logout, rejection_log_line, BodyStep, HeadersStep,
};
use crate::fleet::shared_state;
use crate::fleet::write::{FleetWrite, ReplayGuard};
use crate::header_map::{first_value, HeaderField};
use crate::jwks_fetch::FetchReason;
use crate::rejection::Rejection;
use crate::responses::{logout_accepted, logout_rejected, LocalResponse};
use crate::revocations::Recorded;
use proxy_wasm::types::{Action, BufferType, LogLevel};

/// Puts a logout etcd did not take into the sync service's queue (bounded by
/// `fleet.max_queued_logouts`). False when there is no room or no queue.
fn queue_for_fleet(runtime: &Runtime, write: &FleetWrite) -> bool {
    let Some(fleet) = &runtime.config.fleet else {
        return false;
    };
    let queue = match runtime.fleet_queue.get() {
        Some(queue) => queue,
        None => match abi::resolve_shared_queue(&runtime.vm_id, shared_state::QUEUE_NAME) {
            Ok(queue) => {
                runtime.fleet_queue.set(Some(queue));
                queue
            }
            Err(_) => return false,
        },
    };
    if !matches!(
        shared_state::reserve_queue_place(&EnvoySharedData, fleet.max_queued_logouts),
        Ok(true)
    ) {
        return false;
    }
    if abi::enqueue_shared_queue(queue, &write.encode()).is_err() {
        let _ = shared_state::release_queue_place(&EnvoySharedData);
        return false;
    }
    true
}

/// Where a logout request stands.
#[derive(Default)]
pub struct LogoutRequest {
    /// The body is being read (the headers went on; see [`Self::on_headers`]).
    reading_body: bool,
    /// Bytes of body buffered so far, as the last body callback reported.
    body_size: usize,
    /// A local reply was sent: later callbacks do nothing.
    answered: bool,
    /// Waiting for the issuer's keys: the body, and the fetch in flight.
    waiting_for_keys: Option<(Vec<u8>, u32, PendingFetch)>,
    /// Accepted here, waiting for etcd (fleet mode).
    waiting_for_fleet: Option<PendingWrite>,
}

impl LogoutRequest {
    fn is_waiting(&self) -> bool {
        self.waiting_for_keys.is_some() || self.waiting_for_fleet.is_some()
    }

    /// etcd answered a call of this request's fleet write.
    pub fn on_grpc_response(
        &mut self,
        runtime: &Runtime,
        token: u32,
        status: u32,
        size: usize,
        context_id: u32,
    ) {
        let (Some(fleet), Some(pending)) = (&runtime.config.fleet, self.waiting_for_fleet.take())
        else {
            return;
        };
        if !pending.owns(token) {
            self.waiting_for_fleet = Some(pending);
            return;
        }
        let write = pending.write.clone();
        match on_etcd_answer(fleet, pending, token, status, size, now_unix()) {
            Progress::Wait(next) => self.waiting_for_fleet = Some(next),
            Progress::Done(outcome) => {
                self.fleet_done(runtime, outcome, write, context_id);
            }
        }
    }

    /// The stream ends (the IdP went away, or Envoy reset it) while etcd has not answered:
    /// Envoy cancels the call, so the logout, in force here already, goes to the queue: the
    /// sync service writes it (again, if etcd took it after all: a put is idempotent).
    pub fn on_stream_done(&mut self, runtime: &Runtime, context_id: u32) {
        if let Some(pending) = self.waiting_for_fleet.take() {
            let queued = queue_for_fleet(runtime, &pending.write);
            log(
                LogLevel::Warn,
                &format!(
                    "fleet: the back-channel request ended before etcd answered; the logout (in force here) {} [ctx {context_id}]",
                    if queued {
                        "was queued for the fleet"
                    } else {
                        "could not be queued: the other Envoys will not learn of it"
                    }
                ),
            );
        }
    }

    /// Sends an accepted logout to etcd (fleet mode); answers when it is done.
    fn replicate(&mut self, runtime: &Runtime, recorded: &Recorded, context_id: u32) -> Action {
        let Some(fleet) = &runtime.config.fleet else {
            return self.answer(&logout_accepted());
        };
        let write = FleetWrite {
            token_id: recorded.token_id,
            revocations: recorded.entries.clone(),
            written_ms: abi::current_time_nanos().map_or(0, |n| n / 1_000_000),
        };
        if !shared_state::is_connected(&EnvoySharedData) {
            // etcd is known to be down: do not make the IdP wait for a timeout.
            return self.fleet_done(runtime, WriteOutcome::Failed(14), write, context_id);
        }
        match begin(fleet, write.clone(), ReplayGuard::Guarded, now_unix()) {
            Progress::Wait(pending) => {
                self.waiting_for_fleet = Some(pending);
                Action::Pause
            }
            Progress::Done(outcome) => self.fleet_done(runtime, outcome, write, context_id),
        }
    }

    /// The IdP's answer once etcd has spoken (or could not).
    fn fleet_done(
        &mut self,
        runtime: &Runtime,
        outcome: WriteOutcome,
        write: FleetWrite,
        context_id: u32,
    ) -> Action {
        let metrics = runtime.fleet_metrics.as_ref();
        match outcome {
            WriteOutcome::Written => {
                if let Some(m) = metrics {
                    m.written();
                }
                self.answer(&logout_accepted())
            }
            WriteOutcome::Replayed => {
                // Another Envoy accepted this token: a replay for the fleet. What this Envoy
                // recorded is that same revocation, already in etcd; it stays.
                if let Some(m) = metrics {
                    m.replay_refused();
                }
                let rejection = Rejection::JtiReplayed;
                runtime.metrics.logout_rejected(&rejection);
                log(
                    LogLevel::Info,
                    &format!(
                        "{} (another Envoy of the fleet accepted it) [ctx {context_id}]",
                        rejection_log_line(&rejection, None)
                    ),
                );
                self.answer(&logout_rejected(&rejection))
            }
            WriteOutcome::Failed(status) => {
                if let Some(m) = metrics {
                    m.etcd_error();
                }
                if queue_for_fleet(runtime, &write) {
                    if let Some(m) = metrics {
                        m.logout_queued();
                    }
                    log(
                        LogLevel::Warn,
                        &format!("fleet: etcd did not take a logout (gRPC status {status}): enforced here and queued for the fleet [ctx {context_id}]"),
                    );
                    self.answer(&logout_accepted())
                } else {
                    let rejection = Rejection::FleetUnavailable;
                    runtime.metrics.logout_rejected(&rejection);
                    log(
                        LogLevel::Error,
                        &format!("fleet: etcd did not take a logout (gRPC status {status}) and the queue is full or missing (is the sync service, root_id backchannel_logout_fleet, configured with this vm_id?): answered 400 so the IdP may retry; enforced here only [ctx {context_id}]"),
                    );
                    self.answer(&logout_rejected(&rejection))
                }
            }
        }
    }

    /// True while the filter has not answered yet: an upstream answer must wait.
    pub fn holds_upstream_answer(&self) -> bool {
        self.reading_body && !self.answered
    }

    /// Decides on the headers. When a body follows, the headers go on: Envoy delivers no
    /// body callbacks after a paused headers callback. The Envoy configs of this repo put a
    /// buffer filter right after this one on the back-channel route, so the router (and the
    /// upstream) never see the request and cannot answer before this filter does.
    pub fn on_headers(
        &mut self,
        runtime: &Runtime,
        headers: &[HeaderField<'_>],
        end_of_stream: bool,
        context_id: u32,
    ) -> Action {
        match on_request_headers(
            first_value(headers, ":method").unwrap_or_default(),
            first_value(headers, "content-type"),
            first_value(headers, "content-length"),
            end_of_stream,
            runtime.config.max_body_bytes,
        ) {
            HeadersStep::Refuse(rejection) => self.reject(runtime, &rejection, context_id),
            HeadersStep::ReadBody => {
                self.reading_body = true;
                Action::Continue
            }
        }
    }

    pub fn on_body(
        &mut self,
        runtime: &Runtime,
        body_size: usize,
        end_of_stream: bool,
        context_id: u32,
    ) -> Action {
        if self.answered || self.is_waiting() {
            return Action::Pause;
        }
        if !self.reading_body {
            return Action::Continue;
        }
        self.body_size = body_size;
        match on_request_body(body_size, end_of_stream, runtime.config.max_body_bytes) {
            BodyStep::Wait => Action::Pause,
            BodyStep::Refuse(rejection) => self.reject(runtime, &rejection, context_id),
            BodyStep::Complete => self.body_complete(runtime, context_id),
        }
    }

    /// Trailers end the request (HTTP/2 may send them after the last data frame, with no end
    /// of stream on the data): the body buffered so far is the whole body.
    pub fn on_trailers(&mut self, runtime: &Runtime, context_id: u32) -> Action {
        if self.answered || self.is_waiting() {
            return Action::Pause;
        }
        if !self.reading_body {
            return Action::Continue;
        }
        self.body_complete(runtime, context_id)
    }

    fn body_complete(&mut self, runtime: &Runtime, context_id: u32) -> Action {
        // One byte over the limit is enough to refuse; the body was checked as it grew.
        let limit = runtime.config.max_body_bytes.saturating_add(1);
        let body = abi::buffer(BufferType::HttpRequestBody, 0, self.body_size.min(limit))
            .unwrap_or_default();
        if body.len() > runtime.config.max_body_bytes {
            return self.reject(runtime, &Rejection::BodyTooLarge, context_id);
        }
        self.finish(runtime, body, true, context_id)
    }

    /// The answer of a key fetch this request started.
    pub fn on_call_response(
        &mut self,
        runtime: &Runtime,
        token_id: u32,
        body_size: usize,
        context_id: u32,
    ) {
        let Some((body, token, pending)) = self.waiting_for_keys.take() else {
            return;
        };
        if token != token_id {
            self.waiting_for_keys = Some((body, token, pending));
            return;
        }
        match on_answer(runtime, pending, body_size, now_unix()) {
            FetchStep::Continued(next_token, next) => {
                self.waiting_for_keys = Some((body, next_token, next));
            }
            FetchStep::Done => {
                // Whatever the fetch gave, answer now: with the new keys, or the original
                // refusal. A local reply ends the stream; no resume.
                self.finish(runtime, body, false, context_id);
            }
        }
    }

    /// Validates and records the logout. When the token's key is unknown and the issuer's
    /// keys come from the IdP, fetches them once (rate-limited for the whole Envoy) and
    /// validates again on the answer, so a key rotation needs no restart.
    fn finish(
        &mut self,
        runtime: &Runtime,
        body: Vec<u8>,
        may_fetch: bool,
        context_id: u32,
    ) -> Action {
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
            &format!("{} [ctx {context_id}]", outcome.log_line()),
        );
        match &outcome.result {
            Ok(accepted) => {
                runtime.metrics.logout_accepted();
                if accepted.recorded.crossed_warning {
                    log(
                        LogLevel::Warn,
                        &format!(
                            "backchannel logout: revocation store is {}% full ({} of max_revocations {}): raise max_revocations or shorten revocation_ttl_seconds before logouts are refused",
                            crate::revocations::WARN_PERCENT,
                            crate::revocations::warn_threshold(runtime.rules.revocations().cap()),
                            runtime.rules.revocations().cap()
                        ),
                    );
                }
                report_store_fill(runtime);
                self.replicate(runtime, &accepted.recorded, context_id)
            }
            Err(rejection) => {
                runtime.metrics.logout_rejected(rejection);
                self.answer(&logout_rejected(rejection))
            }
        }
    }

    fn reject(&mut self, runtime: &Runtime, rejection: &Rejection, context_id: u32) -> Action {
        runtime.metrics.logout_rejected(rejection);
        log(
            LogLevel::Info,
            &format!("{} [ctx {context_id}]", rejection_log_line(rejection, None)),
        );
        self.answer(&logout_rejected(rejection))
    }

    fn answer(&mut self, response: &LocalResponse) -> Action {
        self.answered = true;
        send_response(response);
        Action::Pause
    }
}
