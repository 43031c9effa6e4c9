//! The filter's Envoy stats. Defined once per VM; Envoy merges same-named stats across VMs,
//! so counters are process-wide (`wasmcustom.bcl.*` in `/stats`, `/stats/prometheus`).

use super::abi;
use crate::rejection::Rejection;
use proxy_wasm::types::MetricType;

#[derive(Default)]
pub struct Metrics {
    logout_accepted: Option<u32>,
    logout_rejected: Vec<Option<u32>>,
    session_revoked: Option<u32>,
    session_malformed: Option<u32>,
    bearer_revoked: Option<u32>,
    revocation_entries: Option<u32>,
    revocation_capacity: Option<u32>,
    replay_entries: Option<u32>,
    store_near_full: Option<u32>,
    pub jwks_fetch_ok: Option<u32>,
    pub jwks_fetch_failed: Option<u32>,
    pub jwks_rejected: Option<u32>,
}

/// Defines one stat; `None` if the host refuses (the stat is then skipped, never a panic).
pub(super) fn define(kind: MetricType, name: &str) -> Option<u32> {
    abi::define_metric(kind, name).ok()
}

/// The store's fill, as the gauges show it.
pub struct StoreFill {
    pub revocations: u32,
    pub capacity: u32,
    pub replay_entries: u32,
    pub near_full: bool,
}

impl Metrics {
    pub fn define() -> Self {
        Metrics {
            logout_accepted: define(MetricType::Counter, "bcl.logout.accepted"),
            logout_rejected: Rejection::ALL_CODES
                .iter()
                .map(|code| define(MetricType::Counter, &format!("bcl.logout.rejected.{code}")))
                .collect(),
            session_revoked: define(MetricType::Counter, "bcl.session.revoked"),
            session_malformed: define(MetricType::Counter, "bcl.session.malformed"),
            bearer_revoked: define(MetricType::Counter, "bcl.bearer.revoked"),
            revocation_entries: define(MetricType::Gauge, "bcl.store.revocation_entries"),
            revocation_capacity: define(MetricType::Gauge, "bcl.store.revocation_capacity"),
            replay_entries: define(MetricType::Gauge, "bcl.store.replay_entries"),
            store_near_full: define(MetricType::Gauge, "bcl.store.near_full"),
            jwks_fetch_ok: define(MetricType::Counter, "bcl.jwks.fetch_ok"),
            jwks_fetch_failed: define(MetricType::Counter, "bcl.jwks.fetch_failed"),
            jwks_rejected: define(MetricType::Counter, "bcl.jwks.rejected"),
        }
    }

    pub fn add(id: Option<u32>, delta: i64) {
        if let Some(id) = id {
            if delta != 0 {
                abi::increment_metric(id, delta);
            }
        }
    }

    pub(super) fn set(id: Option<u32>, value: u64) {
        if let Some(id) = id {
            abi::record_metric(id, value);
        }
    }

    pub fn logout_accepted(&self) {
        Self::add(self.logout_accepted, 1);
    }

    pub fn logout_rejected(&self, rejection: &Rejection) {
        let index = Rejection::ALL_CODES
            .iter()
            .position(|c| *c == rejection.code());
        let id = index.and_then(|i| self.logout_rejected.get(i).copied().flatten());
        Self::add(id, 1);
    }

    pub fn session_revoked(&self) {
        Self::add(self.session_revoked, 1);
    }

    pub fn session_malformed(&self) {
        Self::add(self.session_malformed, 1);
    }

    pub fn bearer_revoked(&self) {
        Self::add(self.bearer_revoked, 1);
    }

    /// Gauges are set from the store's shared counters, so every VM reports the same values.
    pub fn store_fill(&self, fill: &StoreFill) {
        Self::set(self.revocation_entries, u64::from(fill.revocations));
        Self::set(self.revocation_capacity, u64::from(fill.capacity));
        Self::set(self.replay_entries, u64::from(fill.replay_entries));
        Self::set(self.store_near_full, u64::from(fill.near_full));
    }
}
