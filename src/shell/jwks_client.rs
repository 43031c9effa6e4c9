//! Fetching issuers' keys through Envoy (`dispatch_http_call`), for the root context's
//! periodic refresh and for a logout request whose `kid` is not known yet. Decisions (is a
//! fetch due, is the answer good) are the core's `jwks_fetch`; this file does the calls.

use super::abi;
use super::host::log;
use super::metrics::Metrics;
use super::Runtime;
use crate::config::KeySourceConfig;
use crate::jwks::{parse_jwks, MAX_JWKS_BYTES};
use crate::jwks_fetch::{
    attempt_record_key, check_jwks_answer, decode_attempt, discovery_url, fetch_allowed,
    jwks_uri_from_discovery, keys_record_key, parse_http_url, FetchProblem, FetchReason,
    KeysRecord,
};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};
use std::time::Duration;

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Which document a pending call fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Discovery,
    Jwks,
}

/// A fetch in flight: whose keys, which document.
#[derive(Debug, Clone, Copy)]
pub struct PendingFetch {
    pub issuer_index: usize,
    pub stage: Stage,
}

/// What to do after an answer arrived.
pub enum FetchStep {
    /// Dispatched the next request of the same fetch (discovery, then JWKS).
    Continued(u32, PendingFetch),
    /// The fetch is over: new keys stored, or the problem logged (last good keys stay).
    Done,
}

/// True when issuer `index` gets its keys from the identity provider.
pub fn is_remote(runtime: &Runtime, index: usize) -> bool {
    runtime
        .config
        .issuers
        .get(index)
        .is_some_and(|i| i.key_source != KeySourceConfig::Inline)
}

/// Claims a fetch for the whole Envoy if one is allowed now (compare-and-swap on the shared
/// attempt time) and dispatches its first request.
pub fn start_fetch(
    runtime: &Runtime,
    index: usize,
    reason: FetchReason,
    now: i64,
) -> Option<(u32, PendingFetch)> {
    let issuer = runtime.config.issuers.get(index)?;
    let (stage, url, cluster) = match &issuer.key_source {
        KeySourceConfig::Inline => return None,
        KeySourceConfig::JwksUri { uri, cluster } => (Stage::Jwks, uri.clone(), cluster),
        KeySourceConfig::Discovery { cluster } => (
            Stage::Discovery,
            discovery_url(&issuer.policy.issuer),
            cluster,
        ),
    };
    let iss = &issuer.policy.issuer;
    let fetched_at = abi::shared_data(&keys_record_key(iss))
        .ok()
        .flatten()
        .and_then(|(bytes, _)| KeysRecord::decode(&bytes))
        .map(|r| r.fetched_at);
    let attempt_key = attempt_record_key(iss);
    let attempt = abi::shared_data(&attempt_key).ok()?;
    let last_attempt = decode_attempt(attempt.as_ref().map(|(bytes, _)| bytes.as_slice()));
    // A missing record is written unconditionally (cas 0): the first creator race is as
    // harmless as one extra fetch.
    let attempt_cas = attempt.map_or(0, |(_, cas)| cas);
    if !fetch_allowed(
        reason,
        fetched_at,
        last_attempt,
        now,
        issuer.jwks_refresh_seconds as i64,
        issuer.jwks_min_refetch_seconds as i64,
    ) {
        return None;
    }
    // Another worker that read the same attempt time loses this race and does not fetch.
    abi::set_shared_data(&attempt_key, &now.to_le_bytes(), attempt_cas).ok()?;
    let pending = PendingFetch {
        issuer_index: index,
        stage,
    };
    match dispatch(cluster, &url) {
        Ok(token) => Some((token, pending)),
        Err(problem) => {
            report(runtime, index, &FetchProblem::Failed(problem));
            None
        }
    }
}

fn dispatch(cluster: &str, url: &str) -> Result<u32, String> {
    let target = parse_http_url(url)?;
    let headers = vec![
        (":method", "GET"),
        (":path", target.path.as_str()),
        (":authority", target.authority.as_str()),
        ("accept", "application/json"),
        ("user-agent", "envoy-backchannel-logout"),
    ];
    // The SDK's call, not `abi`: it registers the token with the SDK's dispatcher, which routes
    // the answer back to this context (an unregistered token's answer would panic there). It
    // panics only on statuses Envoy's httpCall never returns (it answers Ok, BadArgument or
    // InternalFailure); see docs/DESIGN.md.
    hostcalls::dispatch_http_call(cluster, headers, None, vec![], FETCH_TIMEOUT)
        .map_err(|status| format!("dispatch to cluster {cluster:?} failed: {status:?}"))
}

/// Handles the answer of a pending call (read from the host's call-response buffers, as
/// bytes: the IdP's answer is outside data like any request).
pub fn on_answer(
    runtime: &Runtime,
    pending: PendingFetch,
    body_size: usize,
    now: i64,
) -> FetchStep {
    let status = abi::header_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| String::from_utf8(s).ok());
    // One byte over the limit is enough to know the answer is too large.
    let body = abi::buffer(
        BufferType::HttpCallResponseBody,
        0,
        body_size.min(MAX_JWKS_BYTES + 1),
    )
    .unwrap_or_default();
    let Some(issuer) = runtime.config.issuers.get(pending.issuer_index) else {
        return FetchStep::Done;
    };
    let iss = &issuer.policy.issuer;
    let outcome = match pending.stage {
        Stage::Discovery => match jwks_uri_from_discovery(status.as_deref(), &body, iss) {
            Ok(uri) => {
                let cluster = match &issuer.key_source {
                    KeySourceConfig::Discovery { cluster } => cluster.as_str(),
                    _ => "",
                };
                match dispatch(cluster, &uri) {
                    Ok(token) => {
                        return FetchStep::Continued(
                            token,
                            PendingFetch {
                                issuer_index: pending.issuer_index,
                                stage: Stage::Jwks,
                            },
                        )
                    }
                    Err(problem) => Err(FetchProblem::Failed(problem)),
                }
            }
            Err(problem) => Err(problem),
        },
        Stage::Jwks => match check_jwks_answer(status.as_deref(), &body, &issuer.policy.algorithms)
        {
            Ok(parsed) => {
                let record = KeysRecord {
                    fetched_at: now,
                    jwks: body,
                };
                let key = keys_record_key(iss);
                let _ = abi::set_shared_data(&key, &record.encode(), 0);
                let version = abi::shared_data(&key)
                    .ok()
                    .flatten()
                    .map_or(0, |(_, cas)| cas);
                log(
                    LogLevel::Info,
                    &format!(
                        "backchannel logout: keys of {iss} fetched: {} usable{}",
                        parsed.keys.len(),
                        if parsed.skipped.is_empty() {
                            String::new()
                        } else {
                            format!(", skipped: {}", parsed.skipped.join("; "))
                        }
                    ),
                );
                runtime
                    .keys
                    .borrow_mut()
                    .set_remote(pending.issuer_index, version, parsed.keys);
                Metrics::add(runtime.metrics.jwks_fetch_ok, 1);
                Ok(())
            }
            Err(problem) => Err(problem),
        },
    };
    if let Err(problem) = &outcome {
        report(runtime, pending.issuer_index, problem);
    }
    FetchStep::Done
}

fn report(runtime: &Runtime, index: usize, problem: &FetchProblem) {
    let iss = runtime
        .config
        .issuers
        .get(index)
        .map_or("?", |i| i.policy.issuer.as_str());
    let have_keys = runtime.keys.borrow().remote_version(index).is_some();
    let (metric, kind) = match problem {
        FetchProblem::Failed(_) => (runtime.metrics.jwks_fetch_failed, "failed"),
        FetchProblem::Rejected(_) => (runtime.metrics.jwks_rejected, "rejected"),
    };
    Metrics::add(metric, 1);
    log(
        LogLevel::Warn,
        &format!(
            "backchannel logout: key fetch for {iss} {kind}: {}; {}",
            problem.message(),
            if have_keys {
                "the last good keys stay in force"
            } else {
                "no keys known yet: logout tokens of this issuer are refused (keys_unavailable)"
            }
        ),
    );
}

/// Brings this VM's copy of remote issuers' keys up to the shared copy (parsed only when
/// the shared copy changed). One shared-data read per remote issuer.
pub fn refresh_from_shared(runtime: &Runtime) {
    for (index, issuer) in runtime.config.issuers.iter().enumerate() {
        if issuer.key_source == KeySourceConfig::Inline {
            continue;
        }
        let Ok(Some((bytes, cas))) = abi::shared_data(&keys_record_key(&issuer.policy.issuer))
        else {
            continue;
        };
        if runtime.keys.borrow().remote_version(index) == Some(cas) {
            continue;
        }
        let parsed = KeysRecord::decode(&bytes)
            .and_then(|record| parse_jwks(&record.jwks, &issuer.policy.algorithms).ok());
        if let Some(parsed) = parsed {
            runtime
                .keys
                .borrow_mut()
                .set_remote(index, cas, parsed.keys);
        }
    }
}
