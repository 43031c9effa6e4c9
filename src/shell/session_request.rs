//! The session filter's shell: one request that is not the back-channel endpoint. Reads the
//! `Cookie` lines, `:path`, `Accept` and `Sec-Fetch-Mode` as bytes, asks the core, and either
//! lets the request go on or sends the refusal.

use super::host::{log, now_unix, send_response, EnvoySharedData};
use super::Runtime;
use crate::fleet::settings::BeforeLoaded;
use crate::fleet::shared_state;
use crate::header_map::{all_values, first_value, HeaderField};
use crate::responses::{fleet_loading, session_refused, unavailable, RequestFacts, SessionRefusal};
use crate::session_check::{check_session, SessionCredentials, SessionLookup, SessionVerdict};
use proxy_wasm::types::{Action, LogLevel};

/// Decides one request. `Action::Pause` means a local reply was sent.
pub fn check_request(runtime: &Runtime, headers: &[HeaderField<'_>], context_id: u32) -> Action {
    let cookie_lines: Vec<&[u8]> = all_values(headers, "cookie").collect();
    let authorization_lines: Vec<&[u8]> = if runtime.config.session.bearer_tokens {
        all_values(headers, "authorization").collect()
    } else {
        Vec::new()
    };
    if !fleet_ready(runtime, &cookie_lines, &authorization_lines) {
        if let Some(m) = &runtime.fleet_metrics {
            m.session_before_load();
        }
        send_response(&fleet_loading());
        return Action::Pause;
    }
    let Ok(mut cache) = runtime.session_cache.try_borrow_mut() else {
        // Never happens (one request at a time per VM); fail closed if it ever did.
        send_response(&unavailable());
        return Action::Pause;
    };
    let verdict = check_session(
        SessionCredentials {
            cookie_lines: &cookie_lines,
            authorization_lines: &authorization_lines,
        },
        &runtime.config.session,
        &mut SessionLookup {
            rules: &runtime.rules,
            store: &EnvoySharedData,
            cache: &mut cache,
            clock: &now_unix,
        },
    );
    drop(cache);
    let refusal = match verdict {
        Ok(SessionVerdict::Pass) => return Action::Continue,
        Ok(SessionVerdict::Refuse(refusal)) => refusal,
        Err(error) => {
            // Fail closed: a session that cannot be checked is not forwarded.
            log(
                LogLevel::Error,
                &format!(
                    "backchannel logout: revocation lookup failed: {error} [ctx {context_id}]"
                ),
            );
            send_response(&unavailable());
            return Action::Pause;
        }
    };
    match refusal {
        SessionRefusal::Revoked => runtime.metrics.session_revoked(),
        SessionRefusal::Malformed => runtime.metrics.session_malformed(),
        SessionRefusal::BearerRevoked => runtime.metrics.bearer_revoked(),
    }
    let facts = RequestFacts {
        path: first_value(headers, ":path").unwrap_or(b"/"),
        accept: first_value(headers, "accept"),
        sec_fetch_mode: first_value(headers, "sec-fetch-mode"),
    };
    send_response(&session_refused(refusal, &facts, &runtime.config.session));
    Action::Pause
}

/// Fleet mode, `sessions_before_loaded: refuse`: a request that carries a session (the
/// session cookie's name in a `Cookie` line, or any `Authorization` line when bearer tokens
/// are checked) waits until this Envoy has loaded the fleet's revocations. Once seen loaded,
/// a worker never reads the flag again.
fn fleet_ready(runtime: &Runtime, cookie_lines: &[&[u8]], authorization_lines: &[&[u8]]) -> bool {
    if runtime.fleet_loaded.get() {
        return true;
    }
    let Some(fleet) = &runtime.config.fleet else {
        return true;
    };
    if fleet.sessions_before_loaded == BeforeLoaded::Allow {
        return true;
    }
    if shared_state::is_loaded(&EnvoySharedData) {
        runtime.fleet_loaded.set(true);
        return true;
    }
    let name = runtime.config.session.cookie_name.as_bytes();
    let carries_cookie = cookie_lines
        .iter()
        .any(|line| line.windows(name.len()).any(|w| w == name));
    !carries_cookie && authorization_lines.is_empty()
}
