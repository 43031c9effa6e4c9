//! The plugin configuration (JSON) the operator writes into the Envoy config.
#![no_main]

use envoy_backchannel_logout::config::parse_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_config(data) {
        Ok(cfg) => {
            assert!(!cfg.issuers.is_empty());
            assert!(cfg.backchannel_path.starts_with('/'));
            assert!((1024..=1024 * 1024).contains(&cfg.max_body_bytes));
            assert!((1..=3600).contains(&cfg.tick_seconds));
            let limits = &cfg.store_limits;
            // The absurd worst cases are refused: the cap bounds memory and each lookup's copy.
            assert!((1..=2_000_000).contains(&limits.max_revocations));
            assert!(limits.revocation_ttl_seconds >= 1);
            let policies = cfg.policies();
            assert_eq!(policies.len(), cfg.issuers.len());
            for p in &policies {
                assert!(!p.issuer.is_empty());
                assert!(!p.client_ids.is_empty());
                assert!(!p.algorithms.is_empty());
            }
        }
        Err(e) => {
            assert!(!e.field.is_empty());
            let _ = e.to_string();
        }
    }
});
