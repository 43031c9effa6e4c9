//! The `fleet` block of the plugin configuration: which Envoy cluster reaches etcd, under
//! which key prefix this fleet's revocations live, and how long a logout may wait for etcd.
//!
//! Optional: without it the filter keeps revocations in this Envoy process only, exactly as
//! before. The same block must be given to the HTTP filter and to the singleton service
//! (`root_id: backchannel_logout_fleet`) of every Envoy of the fleet.

use crate::config::ConfigError;
use serde::Deserialize;

/// The `root_id` that makes the module run as the fleet's sync service (one per Envoy,
/// `bootstrap_extensions` with `singleton: true`) instead of the HTTP filter.
pub const SYNC_SERVICE_ROOT_ID: &str = "backchannel_logout_fleet";

/// What session requests get before this Envoy has loaded the fleet's revocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeforeLoaded {
    /// 503 with a JSON error: a revoked session is never forwarded (the default).
    Refuse,
    /// Checked against what is known so far: a session revoked elsewhere passes until the load
    /// completes (seconds), but a restart of every Envoy never takes the sessions down.
    Allow,
}

/// The parsed `fleet` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetConfig {
    /// Envoy cluster of the etcd members (HTTP/2; mTLS in the cluster's transport socket).
    pub etcd_cluster: String,
    /// Every key this fleet writes starts with it; fleets sharing one etcd use different ones.
    pub key_prefix: String,
    /// How long a logout waits for etcd before it is queued and answered (milliseconds).
    pub call_timeout_ms: u32,
    /// Keys per Range call while loading at start.
    pub load_page_size: u32,
    pub sessions_before_loaded: BeforeLoaded,
    /// Logouts kept for etcd while it is unreachable; past it, the IdP gets 503.
    pub max_queued_logouts: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleet {
    etcd_cluster: String,
    #[serde(default = "default_prefix")]
    key_prefix: String,
    #[serde(default = "default_call_timeout_ms")]
    call_timeout_ms: u64,
    #[serde(default = "default_load_page_size")]
    load_page_size: u64,
    #[serde(default = "default_before_loaded")]
    sessions_before_loaded: String,
    #[serde(default = "default_max_queued")]
    max_queued_logouts: u64,
}

fn default_prefix() -> String {
    "/backchannel-logout/".into()
}
fn default_call_timeout_ms() -> u64 {
    1000
}
fn default_load_page_size() -> u64 {
    5000
}
fn default_before_loaded() -> String {
    "refuse".into()
}
fn default_max_queued() -> u64 {
    100_000
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: format!("fleet.{field}"),
        reason: reason.into(),
    }
}

fn within(value: u64, min: u64, max: u64, field: &str) -> Result<u32, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value as u32)
    } else {
        Err(invalid(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ))
    }
}

impl RawFleet {
    pub(crate) fn compile(self) -> Result<FleetConfig, ConfigError> {
        if self.etcd_cluster.is_empty() {
            return Err(invalid(
                "etcd_cluster",
                "must name the Envoy cluster of etcd",
            ));
        }
        // Printable ASCII keeps the keys readable with etcdctl and out of any encoding issue.
        let prefix_ok = !self.key_prefix.is_empty()
            && self.key_prefix.len() <= 128
            && self.key_prefix.bytes().all(|b| b.is_ascii_graphic());
        if !prefix_ok {
            return Err(invalid(
                "key_prefix",
                "must be 1 to 128 printable ASCII characters without spaces",
            ));
        }
        let sessions_before_loaded = match self.sessions_before_loaded.as_str() {
            "refuse" => BeforeLoaded::Refuse,
            "allow" => BeforeLoaded::Allow,
            other => {
                return Err(invalid(
                    "sessions_before_loaded",
                    format!("must be \"refuse\" or \"allow\", got {other:?}"),
                ))
            }
        };
        Ok(FleetConfig {
            etcd_cluster: self.etcd_cluster,
            key_prefix: self.key_prefix,
            call_timeout_ms: within(self.call_timeout_ms, 50, 30_000, "call_timeout_ms")?,
            load_page_size: within(self.load_page_size, 100, 50_000, "load_page_size")?,
            sessions_before_loaded,
            max_queued_logouts: within(
                self.max_queued_logouts,
                1,
                1_000_000,
                "max_queued_logouts",
            )?,
        })
    }
}
