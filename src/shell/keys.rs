//! Each VM's view of the issuers' keys: inline keys from the configuration, or keys fetched
//! from the identity provider and kept in shared data (one fetch for the whole Envoy), parsed
//! again only when the shared copy changes.

use super::host::EnvoyCrypto;
use crate::config::{FilterConfig, KeySourceConfig};
use crate::key_set::{KeySet, NativeVerifier};
use crate::logout_token::KeySource;

enum CachedKeys {
    Inline(KeySet),
    Remote {
        /// Version of the shared-data copy these keys were parsed from.
        version: Option<u32>,
        keys: Option<KeySet>,
    },
}

/// Keys per issuer, in configuration order.
pub struct KeyCache {
    entries: Vec<CachedKeys>,
}

impl KeyCache {
    /// Takes the inline key sets out of the configuration (they are not needed twice).
    pub fn new(config: &mut FilterConfig) -> Self {
        let entries = config
            .issuers
            .iter_mut()
            .map(
                |issuer| match (&issuer.key_source, issuer.inline_keys.take()) {
                    (KeySourceConfig::Inline, Some(keys)) => CachedKeys::Inline(keys),
                    _ => CachedKeys::Remote {
                        version: None,
                        keys: None,
                    },
                },
            )
            .collect();
        KeyCache { entries }
    }

    /// Replaces a remote issuer's keys after a newer shared copy was parsed.
    pub fn set_remote(&mut self, issuer_index: usize, new_version: u32, new_keys: KeySet) {
        if let Some(CachedKeys::Remote { version, keys }) = self.entries.get_mut(issuer_index) {
            *version = Some(new_version);
            *keys = Some(new_keys);
        }
    }

    /// The version of the shared copy a remote issuer's keys came from, if any.
    pub fn remote_version(&self, issuer_index: usize) -> Option<u32> {
        match self.entries.get(issuer_index) {
            Some(CachedKeys::Remote { version, .. }) => *version,
            _ => None,
        }
    }
}

impl KeySource for KeyCache {
    fn keys(&self, issuer_index: usize) -> Option<&KeySet> {
        match self.entries.get(issuer_index)? {
            CachedKeys::Inline(keys) => Some(keys),
            CachedKeys::Remote { keys, .. } => keys.as_ref(),
        }
    }

    fn native_verifier(&self) -> Option<&dyn NativeVerifier> {
        Some(&EnvoyCrypto)
    }
}
