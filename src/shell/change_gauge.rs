//! The store's change counter as an Envoy gauge (`wasmcustom.bcl.store.changes`).
//!
//! Every session check reads the store's generation. In shared data that read takes a
//! lock, a hash lookup and a call back into the VM to allocate the copy; a gauge is one atomic
//! load that writes a `u64` into the VM. Envoy keeps one gauge per name for the whole process,
//! so an increment on one worker (or by the fleet's sync service) is what every other worker
//! reads next, as with shared data.
//!
//! A `stats_matcher` that rejects the name gives a gauge that never moves: each VM checks once
//! that an increment is seen, and otherwise stays with shared data (one log line).

use super::abi;
use super::host::log;
use super::metrics::define;
use proxy_wasm::types::{LogLevel, MetricType};
use std::cell::Cell;

const NAME: &str = "bcl.store.changes";

thread_local! {
    /// `None` until probed; then the gauge's id, or `Some(None)` when it is not usable.
    static GAUGE: Cell<Option<Option<u32>>> = const { Cell::new(None) };
}

/// The gauge's value, or `None` when this VM uses shared data instead.
pub fn read() -> Option<u64> {
    let id = gauge()?;
    // The probe left the gauge at 1 or more, so 0 means it is gone: Envoy's custom-metric
    // eviction (`enable_eviction`) keeps non-zero gauges, but `get_metric` answers 0 for a
    // removed one, and a generation stuck at 0 would let remembered sessions pass for ever.
    match abi::metric_value(id) {
        Ok(value) if value > 0 => Some(value),
        answer => {
            GAUGE.with(|g| g.set(Some(None)));
            log(
                LogLevel::Warn,
                &format!("backchannel logout: {NAME} unreadable ({answer:?}); using shared data"),
            );
            None
        }
    }
}

/// Moves the gauge on by one (after a change of the store).
pub fn advance() {
    if let Some(id) = gauge() {
        abi::increment_metric(id, 1);
    }
}

fn gauge() -> Option<u32> {
    GAUGE.with(|g| {
        if let Some(known) = g.get() {
            return known;
        }
        let probed = probe();
        g.set(Some(probed));
        probed
    })
}

/// Defines the gauge and checks that an increment is seen. The extra increment costs other
/// workers one look at the store for the sessions they remember, nothing more.
fn probe() -> Option<u32> {
    let counts = define(MetricType::Gauge, NAME).filter(|&id| {
        let before = abi::metric_value(id);
        abi::increment_metric(id, 1);
        matches!((before, abi::metric_value(id)), (Ok(b), Ok(a)) if a > b)
    });
    if counts.is_some() {
        counts
    } else {
        log(
            LogLevel::Warn,
            &format!(
                "backchannel logout: the gauge {NAME} does not count (a stats_matcher?); \
                 workers read the store's generation from shared data instead"
            ),
        );
        None
    }
}
