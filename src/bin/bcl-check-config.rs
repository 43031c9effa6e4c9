//! Checks a plugin configuration offline, with the filter's own parser, before it is rolled
//! out: `bcl-check-config config.json` (or `-` / no argument for stdin).
//!
//! Prints exactly the line Envoy would log when the plugin refuses to start
//! (`invalid plugin configuration: <field>: <reason>`) and exits 1, or a summary of what the
//! filter will do and exits 0. Warnings (settings accepted but ignored) are printed too.

use envoy_backchannel_logout::config::{parse_config, FilterConfig, KeySourceConfig};
use envoy_backchannel_logout::fleet::settings::{BeforeLoaded, SYNC_SERVICE_ROOT_ID};
use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let path = std::env::args().nth(1).unwrap_or_else(|| "-".to_string());
    if path == "-h" || path == "--help" {
        println!("usage: bcl-check-config [FILE|-]   (the plugin configuration JSON; - = stdin)");
        return ExitCode::SUCCESS;
    }
    let mut bytes = Vec::new();
    let read = if path == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(drop)
    } else {
        std::fs::read(&path).map(|b| bytes = b)
    };
    if let Err(error) = read {
        eprintln!("bcl-check-config: cannot read {path}: {error}");
        return ExitCode::from(2);
    }
    match parse_config(&bytes) {
        Ok(config) => {
            print_summary(&config);
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("invalid plugin configuration: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_summary(config: &FilterConfig) {
    for warning in &config.warnings {
        println!("warning: {warning}");
    }
    println!("configuration OK");
    println!("  endpoint: POST {}", config.backchannel_path);
    println!(
        "  store: max_revocations {}, revocation_ttl_seconds {}",
        config.store_limits.max_revocations, config.store_limits.revocation_ttl_seconds
    );
    for issuer in &config.issuers {
        let keys = match &issuer.key_source {
            KeySourceConfig::Inline => format!(
                "{} inline key(s)",
                issuer.inline_keys.as_ref().map_or(0, |k| k.len())
            ),
            KeySourceConfig::JwksUri { uri, cluster } => {
                format!("jwks_uri {uri} through cluster {cluster}")
            }
            KeySourceConfig::Discovery { cluster } => {
                format!("discovery through cluster {cluster}")
            }
        };
        let algorithms: Vec<&str> = issuer.policy.algorithms.iter().map(|a| a.name()).collect();
        println!(
            "  issuer {}: client_ids {:?}, algorithms {:?}, {keys}",
            issuer.policy.issuer, issuer.policy.client_ids, algorithms
        );
    }
    let session = &config.session;
    println!(
        "  session check: {}, cookie {}, bearer tokens {}",
        if session.enabled { "on" } else { "off" },
        session.cookie_name,
        if session.bearer_tokens { "on" } else { "off" }
    );
    match &config.fleet {
        None => println!("  fleet: off (revocations stay in this Envoy process)"),
        Some(fleet) => println!(
            "  fleet: etcd through cluster {}, key prefix {}, call timeout {} ms, sessions before loaded: {}, queue up to {} logouts (give the sync service, root_id {}, the same configuration)",
            fleet.etcd_cluster,
            fleet.key_prefix,
            fleet.call_timeout_ms,
            match fleet.sessions_before_loaded {
                BeforeLoaded::Refuse => "refused (503)",
                BeforeLoaded::Allow => "allowed",
            },
            fleet.max_queued_logouts,
            SYNC_SERVICE_ROOT_ID
        ),
    }
}
