//! The proxy-wasm shell: reads configuration, clock, headers, body and shared data from
//! Envoy, hands them to the core, and sends back what the core decided. No decisions here.

mod abi;
mod change_gauge;
mod fleet_metrics;
mod fleet_service;
mod fleet_write;
mod host;
mod http_filter;
mod jwks_client;
mod keys;
mod logout_request;
mod metrics;
mod session_request;
#[cfg(feature = "test-panic")]
mod test_panic;

use crate::config::{parse_config, FilterConfig};
use crate::fleet::settings::SYNC_SERVICE_ROOT_ID;
use crate::jwks_fetch::FetchReason;
use crate::logout_token::IssuerPolicy;
use crate::revocations::{warn_threshold, RevocationStore, REVOCATION_BUCKETS};
use crate::session_cache::SessionCache;
use fleet_metrics::FleetMetrics;
use fleet_service::{FleetService, SERVICE_TICK_MILLIS};
use host::{log, now_unix, EnvoySharedData};
use http_filter::HttpFilter;
use jwks_client::{on_answer, start_fetch, FetchStep, PendingFetch};
use keys::KeyCache;
use metrics::{Metrics, StoreFill};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root {
            context_id,
            ..Root::default()
        })
    });
}}

/// Shared-data key of the sweep cursor: which revocation bucket the next sweep starts at.
const SWEEP_CURSOR_KEY: &str = "bcl:sweep";
/// Buckets swept per tick (by whichever VM claims the slice): the whole store every 32
/// ticks, so an expired entry stops counting against `max_revocations` within about 32 s.
/// Most buckets are small; at 1,000,000 revocations a tick copies about 0.5 MB.
const SWEEP_BUCKETS_PER_TICK: u32 = 2048;

/// Everything an HTTP context needs, built once per VM in `on_configure`.
pub struct Runtime {
    pub config: FilterConfig,
    pub policies: Vec<IssuerPolicy>,
    pub rules: RevocationStore,
    pub metrics: Metrics,
    pub keys: RefCell<KeyCache>,
    /// Session tokens this VM found live, by store generation (see `session_cache.rs`).
    pub session_cache: RefCell<SessionCache>,
    /// The fleet's stats, when the configuration has a `fleet` block.
    pub fleet_metrics: Option<FleetMetrics>,
    /// This worker saw the fleet's revocations loaded (it never goes back).
    pub fleet_loaded: Cell<bool>,
    /// This VM's `vm_id` (to find the sync service's logout queue).
    pub vm_id: Vec<u8>,
    /// The logout queue, once resolved.
    pub fleet_queue: Cell<Option<u32>>,
}

thread_local! {
    /// The root context of this VM that runs the sync service: Envoy configures a singleton
    /// service's root context twice, and only one may run the sync.
    static SYNC_OWNER: Cell<Option<u32>> = const { Cell::new(None) };
}

#[derive(Default)]
struct Root {
    context_id: u32,
    runtime: Option<Rc<Runtime>>,
    /// Set when this root context runs the fleet's sync service (see `fleet_service.rs`).
    service: Option<FleetService>,
    /// This root context belongs to the sync service (`root_id` [`SYNC_SERVICE_ROOT_ID`]).
    sync_role: Option<crate::fleet::settings::FleetConfig>,
    /// Key fetches this VM's root context has in flight, by call token.
    pending: HashMap<u32, PendingFetch>,
}

impl Root {
    /// Runs the sync service here unless another root context of this VM does.
    fn claim_sync(&mut self) {
        let (Some(fleet), Some(runtime)) = (&self.sync_role, &self.runtime) else {
            return;
        };
        let id = self.context_id;
        let claimed = SYNC_OWNER.with(|owner| {
            if owner.get().is_none() {
                owner.set(Some(id));
            }
            owner.get() == Some(id)
        });
        if claimed {
            self.service = Some(FleetService::new(runtime.clone(), fleet.clone()));
        }
    }
}

impl Context for Root {
    fn on_done(&mut self) -> bool {
        if self.service.take().is_some() {
            // Another root context of the service (if any) takes over on its next tick.
            SYNC_OWNER.with(|owner| owner.set(None));
        }
        true
    }

    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        if let Some(service) = &mut self.service {
            service.on_call_response(token_id, status_code, response_size);
        }
    }

    fn on_grpc_stream_message(&mut self, token_id: u32, message_size: usize) {
        if let Some(service) = &mut self.service {
            service.on_stream_message(token_id, message_size);
        }
    }

    fn on_grpc_stream_close(&mut self, token_id: u32, status_code: u32) {
        if let Some(service) = &mut self.service {
            service.on_stream_close(token_id, status_code);
        }
    }

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
        let bytes = abi::buffer(BufferType::PluginConfiguration, 0, usize::MAX).unwrap_or_default();
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
        for warning in &config.warnings {
            log(LogLevel::Warn, &format!("backchannel logout: {warning}"));
        }
        let rules = RevocationStore::new(&config.store_limits);
        if let Err(error) = rules.ensure_created(&EnvoySharedData) {
            log(
                LogLevel::Critical,
                &format!("backchannel logout: shared data unavailable: {error}"),
            );
            return false;
        }
        if matches!(abi::shared_data(SWEEP_CURSOR_KEY), Ok(None)) {
            let _ = abi::set_shared_data(SWEEP_CURSOR_KEY, &0u32.to_le_bytes(), 0);
        }
        let tick_millis =
            u32::try_from(config.tick_seconds.saturating_mul(1000)).unwrap_or(u32::MAX);
        let _ = abi::set_tick_period_millis(tick_millis);
        let keys = KeyCache::new(&mut config);
        let root_id = abi::property(&["plugin_root_id"])
            .ok()
            .flatten()
            .unwrap_or_default();
        let runs_sync = root_id == SYNC_SERVICE_ROOT_ID.as_bytes();
        let fleet = config.fleet.clone();
        let runtime = Rc::new(Runtime {
            policies: config.policies(),
            rules,
            metrics: Metrics::define(),
            keys: RefCell::new(keys),
            session_cache: RefCell::new(SessionCache::default()),
            fleet_metrics: fleet.as_ref().map(|_| FleetMetrics::define()),
            fleet_loaded: Cell::new(false),
            vm_id: abi::property(&["plugin_vm_id"])
                .ok()
                .flatten()
                .unwrap_or_default(),
            fleet_queue: Cell::new(None),
            config,
        });
        self.runtime = Some(runtime.clone());
        if runs_sync {
            let Some(fleet) = fleet else {
                log(
                    LogLevel::Critical,
                    &format!("invalid plugin configuration: fleet: is required for root_id {SYNC_SERVICE_ROOT_ID}"),
                );
                return false;
            };
            self.sync_role = Some(fleet);
            self.claim_sync();
            let _ = abi::set_tick_period_millis(SERVICE_TICK_MILLIS);
        }
        true
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if let Some(service) = &mut self.service {
            service.on_queue_ready(queue_id);
        }
    }

    fn on_tick(&mut self) {
        if self.sync_role.is_some() && self.service.is_none() {
            self.claim_sync();
        }
        if let Some(service) = &mut self.service {
            service.on_tick();
            return;
        }
        let Some(runtime) = &self.runtime else {
            return;
        };
        sweep_some_buckets(runtime);
        report_store_fill(runtime);
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

/// Sets the store gauges from the shared counters (two small shared-data reads).
pub(crate) fn report_store_fill(runtime: &Runtime) {
    let revocations = runtime.rules.revocations();
    let count = revocations.count(&EnvoySharedData).unwrap_or(0);
    let capacity = revocations.cap();
    runtime.metrics.store_fill(&StoreFill {
        revocations: count,
        capacity,
        replay_entries: runtime
            .rules
            .token_ids()
            .count(&EnvoySharedData)
            .unwrap_or(0),
        near_full: count >= warn_threshold(capacity),
    });
}

/// Claims the next few buckets through the shared cursor (so workers share the work instead
/// of repeating it) and drops their expired entries: revocations go once their time to live
/// has passed even if nothing else writes to their bucket.
fn sweep_some_buckets(runtime: &Runtime) {
    let buckets = REVOCATION_BUCKETS;
    let Ok(Some((cursor_bytes, cas))) = abi::shared_data(SWEEP_CURSOR_KEY) else {
        return;
    };
    let start = cursor_bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes)
        % buckets;
    let count = SWEEP_BUCKETS_PER_TICK.min(buckets);
    let next = (start + count) % buckets;
    if abi::set_shared_data(SWEEP_CURSOR_KEY, &next.to_le_bytes(), cas).is_err() {
        return; // Another worker took this slice.
    }
    let now = now_unix();
    for offset in 0..count {
        let index = (start + offset) % buckets;
        if let Err(error) = runtime.rules.sweep(&EnvoySharedData, index, now) {
            log(
                LogLevel::Warn,
                &format!("backchannel logout: sweep failed: {error}"),
            );
        }
    }
}
