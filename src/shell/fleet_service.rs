//! The fleet's sync service: the module loaded a second time in each Envoy, as a singleton
//! `WasmService` on the main thread with the filter's `vm_id` (so it shares the filter's
//! shared data). It loads every live revocation from etcd at start, watches the prefix and
//! applies what other Envoys write, publishes the sync state for the workers, and sends the
//! logouts the workers queued while etcd was unreachable.
//!
//! Decisions are in [`crate::fleet::sync::FleetSync`]; this file moves bytes and logs.

use super::abi;
use super::fleet_metrics::FleetMetrics;
use super::fleet_write::{begin, on_etcd_answer, PendingWrite, Progress, WriteOutcome};
use super::host::{log, now_unix, EnvoySharedData};
use super::Runtime;
use crate::fleet::etcd_api::{decode_range_response, decode_watch_response};
use crate::fleet::settings::FleetConfig;
use crate::fleet::shared_state::{self, QUEUE_NAME};
use crate::fleet::sync::{Command, FleetSync, Step};
use crate::fleet::write::{FleetWrite, ReplayGuard};
use proxy_wasm::types::{BufferType, LogLevel};
use std::rc::Rc;
use std::time::Duration;

/// How often the service looks at its state (reconnects, queue) when nothing else wakes it.
pub const SERVICE_TICK_MILLIS: u32 = 100;
/// Makes etcd close a watch on a member that lost quorum, so the service reconnects to a
/// member that has it instead of waiting on a partitioned one.
const HAS_LEADER: (&str, &[u8]) = ("hasleader", b"true");

pub struct FleetService {
    runtime: Rc<Runtime>,
    fleet: FleetConfig,
    sync: FleetSync,
    metrics: FleetMetrics,
    /// The Range call of the load in flight.
    range_call: Option<u32>,
    /// The watch stream.
    stream: Option<u32>,
    queue: Option<u32>,
    /// A queued logout being written.
    draining: Option<PendingWrite>,
    /// A queued logout whose write failed: retried before the next one is taken.
    retry: Option<FleetWrite>,
    connected_published: Option<bool>,
}

fn now_ms() -> u64 {
    abi::current_time_nanos().map_or(0, |n| n / 1_000_000)
}

impl FleetService {
    pub fn new(runtime: Rc<Runtime>, fleet: FleetConfig) -> Self {
        let sync = FleetSync::new(&fleet.key_prefix, fleet.load_page_size);
        let queue = abi::register_shared_queue(QUEUE_NAME).ok();
        if queue.is_none() {
            log(
                LogLevel::Error,
                "fleet: cannot register the logout queue: logouts accepted while etcd is down will be refused",
            );
        }
        let service = FleetService {
            runtime,
            fleet,
            sync,
            metrics: FleetMetrics::define(),
            range_call: None,
            stream: None,
            queue,
            draining: None,
            retry: None,
            connected_published: None,
        };
        service.publish_connected(false);
        service
    }

    fn publish_connected(&self, connected: bool) {
        let _ = shared_state::set_connected(&EnvoySharedData, connected);
        self.metrics.set_connected(connected);
    }

    pub fn on_tick(&mut self) {
        let step = self.sync.on_tick(now_ms());
        self.handle(step);
        self.drain_queue();
        self.metrics
            .set_queued(shared_state::queued(&EnvoySharedData));
    }

    pub fn on_queue_ready(&mut self, queue_id: u32) {
        if Some(queue_id) == self.queue {
            self.drain_queue();
        }
    }

    pub fn on_call_response(&mut self, token: u32, status: u32, size: usize) {
        if self.range_call == Some(token) {
            self.range_call = None;
            let now = now_ms();
            let step = if status == 0 {
                let body = abi::buffer(BufferType::GrpcReceiveBuffer, 0, size).unwrap_or_default();
                match decode_range_response(&body) {
                    Ok(page) => self.sync.on_range(&page, now),
                    Err(error) => {
                        log(
                            LogLevel::Warn,
                            &format!("fleet: unreadable Range answer from etcd: {error}"),
                        );
                        self.sync.on_range_failed(u32::MAX, now)
                    }
                }
            } else {
                self.metrics.etcd_error();
                self.sync.on_range_failed(status, now)
            };
            self.handle(step);
            return;
        }
        if self.draining.as_ref().is_some_and(|p| p.owns(token)) {
            if let Some(pending) = self.draining.take() {
                let write = pending.write.clone();
                let progress =
                    on_etcd_answer(&self.fleet, pending, token, status, size, now_unix());
                self.after_drain_step(progress, write);
            }
        }
    }

    pub fn on_stream_message(&mut self, token: u32, size: usize) {
        if self.stream != Some(token) {
            return;
        }
        let body = abi::buffer(BufferType::GrpcReceiveBuffer, 0, size).unwrap_or_default();
        let now = now_ms();
        let step = match decode_watch_response(&body) {
            Ok(message) => self.sync.on_watch(&message, now),
            Err(error) => {
                log(
                    LogLevel::Warn,
                    &format!("fleet: unreadable Watch message from etcd: {error}; reconnecting"),
                );
                abi::grpc_cancel(token);
                self.stream = None;
                self.sync.on_stream_closed(u32::MAX, now)
            }
        };
        self.handle(step);
    }

    pub fn on_stream_close(&mut self, token: u32, status: u32) {
        if self.stream != Some(token) {
            return;
        }
        self.stream = None;
        self.metrics.etcd_error();
        let step = self.sync.on_stream_closed(status, now_ms());
        self.handle(step);
    }

    /// Applies, publishes and logs one step, and sends its request.
    fn handle(&mut self, step: Step) {
        if !step.apply.is_empty() {
            self.apply(&step);
        }
        if step.skipped > 0 {
            self.metrics.skipped(step.skipped);
            log(
                LogLevel::Warn,
                &format!(
                    "fleet: skipped {} records under {} that are not revocations of this version",
                    step.skipped, self.fleet.key_prefix
                ),
            );
        }
        if step.full_reload {
            self.metrics.full_reload();
        }
        if let Some(line) = &step.transition {
            log(LogLevel::Info, line);
        }
        if step.became_loaded {
            if let Err(error) = shared_state::mark_loaded(&EnvoySharedData) {
                log(
                    LogLevel::Error,
                    &format!("fleet: cannot publish the loaded state: {error}"),
                );
            }
            self.metrics.set_loaded();
        }
        match step.command {
            Some(Command::Range(request)) => self.send_range(&request),
            Some(Command::OpenWatch(request)) => self.open_watch(&request),
            None => {}
        }
        self.metrics.set_revision(self.sync.revision());
        let connected = self.sync.is_connected();
        if self.connected_published != Some(connected) {
            self.connected_published = Some(connected);
            self.publish_connected(connected);
        }
    }

    fn apply(&self, step: &Step) {
        let now = now_unix();
        let wall_ms = now_ms();
        let mut applied = 0u32;
        let mut refused = 0u32;
        for record in &step.apply {
            match self
                .runtime
                .rules
                .apply(&EnvoySharedData, record.entry, now)
            {
                Ok(_) => applied += 1,
                Err(_) => refused += 1,
            }
            self.metrics
                .set_lag_ms(wall_ms.saturating_sub(record.written_ms));
        }
        // Echoes of this Envoy's own writes change nothing: the workers' memory of live
        // sessions stays valid.
        if !changed {
            self.metrics.applied(applied);
            return;
        }
        if let Err(error) = self.runtime.rules.bump_generation(&EnvoySharedData) {
            log(
                LogLevel::Error,
                &format!("fleet: cannot bump the store generation: {error}"),
            );
        }
        self.metrics.applied(applied);
        if refused > 0 {
            log(
                LogLevel::Error,
                &format!(
                    "fleet: {refused} revocations from etcd could not be stored here (store full or unavailable): raise max_revocations"
                ),
            );
        }
        super::report_store_fill(&self.runtime);
    }

    fn send_range(&mut self, request: &[u8]) {
        match proxy_wasm::hostcalls::dispatch_grpc_call(
            &self.fleet.etcd_cluster,
            "etcdserverpb.KV",
            "Range",
            vec![HAS_LEADER],
            Some(request),
            Duration::from_millis(u64::from(self.fleet.call_timeout_ms).max(5000)),
        ) {
            Ok(token) if Some(token) != self.stream => self.range_call = Some(token),
            Ok(token) => {
                // A call token equal to the stream's would be misrouted by the SDK.
                abi::grpc_cancel(token);
                let step = self.sync.on_range_failed(u32::MAX, now_ms());
                self.handle(step);
            }
            Err(status) => {
                let step = self.sync.on_range_failed(status as u32, now_ms());
                self.handle(step);
            }
        }
    }

    fn open_watch(&mut self, request: &[u8]) {
        if let Some(old) = self.stream.take() {
            abi::grpc_cancel(old);
        }
        let opened = proxy_wasm::hostcalls::open_grpc_stream(
            &self.fleet.etcd_cluster,
            "etcdserverpb.Watch",
            "Watch",
            vec![HAS_LEADER],
        );
        let result = match opened {
            Ok(token) if Some(token) == self.range_call => {
                abi::grpc_cancel(token);
                Err(u32::MAX)
            }
            Ok(token) => match abi::grpc_send(token, request, false) {
                Ok(()) => {
                    self.stream = Some(token);
                    Ok(())
                }
                Err(status) => {
                    abi::grpc_cancel(token);
                    Err(status)
                }
            },
            Err(status) => Err(status as u32),
        };
        if let Err(status) = result {
            self.metrics.etcd_error();
            let step = self.sync.on_stream_closed(status, now_ms());
            self.handle(step);
        }
    }

    /// Sends queued logouts, one at a time, while etcd is reachable.
    fn drain_queue(&mut self) {
        if self.draining.is_some() || !self.sync.is_connected() {
            return;
        }
        loop {
            let write = match self.retry.take() {
                Some(write) => write,
                None => {
                    let Some(queue) = self.queue else { return };
                    match abi::dequeue_shared_queue(queue) {
                        Ok(Some(bytes)) => match FleetWrite::decode(&bytes) {
                            Some(write) => write,
                            None => {
                                let _ = shared_state::release_queue_place(&EnvoySharedData);
                                continue;
                            }
                        },
                        _ => return,
                    }
                }
            };
            let now = now_unix();
            if write.is_expired(now) {
                let _ = shared_state::release_queue_place(&EnvoySharedData);
                continue;
            }
            let progress = begin(&self.fleet, write.clone(), ReplayGuard::Unguarded, now);
            match progress {
                Progress::Wait(pending) if self.stream.is_some_and(|s| pending.owns(s)) => {
                    // A token shared with the stream would be misrouted: try again later.
                    self.retry = Some(write);
                    return;
                }
                other => {
                    self.after_drain_step(other, write);
                    if self.draining.is_some() || self.retry.is_some() {
                        return;
                    }
                }
            }
        }
    }

    fn after_drain_step(&mut self, progress: Progress, write: FleetWrite) {
        match progress {
            Progress::Wait(pending) => self.draining = Some(pending),
            Progress::Done(WriteOutcome::Written | WriteOutcome::Replayed) => {
                let _ = shared_state::release_queue_place(&EnvoySharedData);
                self.metrics.written();
                self.drain_queue();
            }
            Progress::Done(WriteOutcome::Failed(status)) => {
                self.metrics.etcd_error();
                log(
                    LogLevel::Warn,
                    &format!("fleet: a queued logout could not be written (gRPC status {status}); it stays queued"),
                );
                // Tried again first thing on a later tick, once connected.
                self.retry = Some(write);
            }
        }
    }
}
