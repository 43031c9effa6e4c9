//! The proxy-wasm shell: reads configuration, clock, headers, body and shared data from
//! Envoy, hands them to the core, and sends back what the core decided. No decisions here.

mod host;
mod http_filter;
mod jwks_client;
mod keys;
mod metrics;
#[cfg(feature = "test-panic")]
mod test_panic;

use crate::config::{parse_config, FilterConfig};
use crate::jwks_fetch::FetchReason;
use crate::logout_token::IssuerPolicy;
use crate::revocations::RevocationStore;
use host::{log, now_unix, EnvoySharedData};
use http_filter::HttpFilter;
use jwks_client::{on_answer, start_fetch, FetchStep, PendingFetch};
use keys::KeyCache;
use metrics::Metrics;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Shared-data key of the sweep cursor: which revocation bucket the next sweep starts at.
const SWEEP_CURSOR_KEY: &str = "bcl:sweep";
/// Buckets one VM sweeps per tick.
const SWEEP_BUCKETS_PER_TICK: u32 = 32;

/// Everything an HTTP context needs, built once per VM in `on_configure`.
pub struct Runtime {
    pub config: FilterConfig,
    pub policies: Vec<IssuerPolicy>,
    pub rules: RevocationStore,
    pub metrics: Metrics,
    pub keys: RefCell<KeyCache>,
}

#[derive(Default)]
struct Root {
    runtime: Option<Rc<Runtime>>,
    /// Key fetches this VM's root context has in flight, by call token.
    pending: HashMap<u32, PendingFetch>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let (Some(runtime), Some(pending)) = (&self.runtime, self.pending.remove(&token_id)) else {
            return;
        };
        if let FetchStep::Continued(token, next) =
            on_answer(runtime, pending, body_size, now_unix())
        {
            self.pending.insert(token, next);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut config = match parse_config(&bytes) {
            Ok(config) => config,
            Err(error) => {
                log(
                    LogLevel::Critical,
                    &format!("invalid plugin configuration: {error}"),
                );
                return false;
            }
        };
        let rules = RevocationStore::new(&config.store_limits);
        if let Err(error) = rules.ensure_created(&EnvoySharedData) {
            log(
                LogLevel::Critical,
                &format!("backchannel logout: shared data unavailable: {error}"),
            );
            return false;
        }
        if shared_key_missing(SWEEP_CURSOR_KEY) {
            let _ = hostcalls::set_shared_data(SWEEP_CURSOR_KEY, Some(&0u32.to_le_bytes()), None);
        }
        let _ = hostcalls::set_tick_period(Duration::from_secs(config.tick_seconds));
        let keys = KeyCache::new(&mut config);
        self.runtime = Some(Rc::new(Runtime {
            policies: config.policies(),
            rules,
            metrics: Metrics::define(),
            keys: RefCell::new(keys),
            config,
        }));
        true
    }

    fn on_tick(&mut self) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        sweep_some_buckets(runtime);
        // Periodic key refresh; `start_fetch` lets one worker of the whole Envoy do it.
        let now = now_unix();
        for index in 0..runtime.config.issuers.len() {
            if self.pending.values().any(|p| p.issuer_index == index) {
                continue;
            }
            if let Some((token, pending)) = start_fetch(runtime, index, FetchReason::Periodic, now)
            {
                self.pending.insert(token, pending);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpFilter::new(self.runtime.clone(), context_id)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn shared_key_missing(key: &str) -> bool {
    matches!(hostcalls::get_shared_data(key), Ok((None, _)))
}

/// Claims the next few buckets through the shared cursor (so workers share the work instead
/// of repeating it) and drops their expired entries: revocations go once their time to live
/// has passed even if nothing else writes to their bucket.
fn sweep_some_buckets(runtime: &Runtime) {
    let buckets = runtime.rules.revocation_buckets().buckets();
    let Ok((Some(cursor_bytes), cas)) = hostcalls::get_shared_data(SWEEP_CURSOR_KEY) else {
        return;
    };
    let start = cursor_bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes)
        % buckets;
    let count = SWEEP_BUCKETS_PER_TICK.min(buckets);
    let next = (start + count) % buckets;
    if hostcalls::set_shared_data(SWEEP_CURSOR_KEY, Some(&next.to_le_bytes()), cas).is_err() {
        return; // Another worker took this slice.
    }
    let now = now_unix();
    let mut delta = 0;
    for offset in 0..count {
        let index = (start + offset) % buckets;
        match runtime.rules.sweep(&EnvoySharedData, index, now) {
            Ok(d) => delta += d,
            Err(error) => log(
                LogLevel::Warn,
                &format!("backchannel logout: sweep failed: {error}"),
            ),
        }
    }
    runtime.metrics.revocation_entries_changed(delta);
}
