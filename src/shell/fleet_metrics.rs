//! The fleet's Envoy stats (`wasmcustom.bcl.fleet.*`): the sync service's state as gauges,
//! what it and the workers did as counters. Same-named stats of every VM are one stat.

use super::metrics::{define, Metrics};
use proxy_wasm::types::MetricType;

pub struct FleetMetrics {
    connected: Option<u32>,
    loaded: Option<u32>,
    revision: Option<u32>,
    lag_ms: Option<u32>,
    queued: Option<u32>,
    applied: Option<u32>,
    full_reloads: Option<u32>,
    etcd_errors: Option<u32>,
    written: Option<u32>,
    skipped: Option<u32>,
    logouts_queued: Option<u32>,
    replays_refused: Option<u32>,
    sessions_before_load: Option<u32>,
}

impl FleetMetrics {
    pub fn define() -> Self {
        FleetMetrics {
            connected: define(MetricType::Gauge, "bcl.fleet.connected"),
            loaded: define(MetricType::Gauge, "bcl.fleet.loaded"),
            revision: define(MetricType::Gauge, "bcl.fleet.revision"),
            lag_ms: define(MetricType::Gauge, "bcl.fleet.lag_ms"),
            queued: define(MetricType::Gauge, "bcl.fleet.queued"),
            applied: define(MetricType::Counter, "bcl.fleet.applied"),
            full_reloads: define(MetricType::Counter, "bcl.fleet.full_reloads"),
            etcd_errors: define(MetricType::Counter, "bcl.fleet.etcd_errors"),
            written: define(MetricType::Counter, "bcl.fleet.written"),
            skipped: define(MetricType::Counter, "bcl.fleet.skipped_records"),
            logouts_queued: define(MetricType::Counter, "bcl.fleet.logouts_queued"),
            replays_refused: define(MetricType::Counter, "bcl.fleet.replays_refused"),
            sessions_before_load: define(MetricType::Counter, "bcl.fleet.sessions_before_load"),
        }
    }

    pub fn set_connected(&self, connected: bool) {
        Metrics::set(self.connected, u64::from(connected));
    }
    pub fn set_loaded(&self) {
        Metrics::set(self.loaded, 1);
    }
    pub fn set_revision(&self, revision: i64) {
        Metrics::set(self.revision, revision.max(0) as u64);
    }
    /// From the accepting Envoy's write to this Envoy's apply (clocks of both hosts).
    pub fn set_lag_ms(&self, lag: u64) {
        Metrics::set(self.lag_ms, lag);
    }
    pub fn set_queued(&self, queued: u32) {
        Metrics::set(self.queued, u64::from(queued));
    }
    pub fn applied(&self, n: u32) {
        Metrics::add(self.applied, i64::from(n));
    }
    pub fn full_reload(&self) {
        Metrics::add(self.full_reloads, 1);
    }
    pub fn etcd_error(&self) {
        Metrics::add(self.etcd_errors, 1);
    }
    pub fn written(&self) {
        Metrics::add(self.written, 1);
    }
    pub fn skipped(&self, n: u32) {
        Metrics::add(self.skipped, i64::from(n));
    }
    pub fn logout_queued(&self) {
        Metrics::add(self.logouts_queued, 1);
    }
    pub fn replay_refused(&self) {
        Metrics::add(self.replays_refused, 1);
    }
    pub fn session_before_load(&self) {
        Metrics::add(self.sessions_before_load, 1);
    }
}
