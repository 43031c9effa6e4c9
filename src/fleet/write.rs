//! What one accepted logout writes to etcd, and how: a single transaction that puts the
//! logout token's `jti` only if no Envoy of the fleet has put it yet (fleet-wide replay
//! detection) together with the revocation entries, each key under its lease window.
//!
//! The same write, encoded with [`FleetWrite::encode`], is what waits in the local queue
//! while etcd is unreachable; the sync service sends it later without the replay guard (the
//! logout was already accepted and answered).

use super::etcd_api::{txn_request, Put};
use super::lease_window::{lease_for, LeaseSpec};
use super::record::{revocation_key, revocation_value, token_id_key, token_id_value};
use crate::bucket::Entry;

const QUEUE_FORMAT: u8 = 1;
const ENTRY_BYTES: usize = 16;
/// A logout revokes by `sid`, by `sub`, or both.
const MAX_REVOCATIONS_PER_WRITE: usize = 2;

/// The etcd side of one accepted logout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetWrite {
    /// The replay-cache entry of the logout token's `jti`.
    pub token_id: Entry,
    /// The revocation entries (one or two).
    pub revocations: Vec<Entry>,
    /// When the logout was accepted (Unix milliseconds).
    pub written_ms: u64,
}

/// Whether the transaction refuses a `jti` another Envoy already wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayGuard {
    /// The logout is being answered: a `jti` present in etcd makes it a replay.
    Guarded,
    /// The logout was answered already (queued while etcd was down): write unconditionally.
    Unguarded,
}

impl FleetWrite {
    /// The transaction's request message.
    pub fn txn(&self, prefix: &str, now: i64, guard: ReplayGuard) -> Vec<u8> {
        let token_key = token_id_key(prefix, self.token_id.id);
        let mut puts = Vec::with_capacity(1 + self.revocations.len());
        puts.push(Put {
            key: token_key.clone(),
            value: token_id_value(self.token_id.expires_at),
            lease: lease_for(prefix, self.token_id.expires_at, now).id,
        });
        for entry in &self.revocations {
            puts.push(Put {
                key: revocation_key(prefix, entry),
                value: revocation_value(entry, self.written_ms),
                lease: lease_for(prefix, entry.expires_at, now).id,
            });
        }
        let absent = match guard {
            ReplayGuard::Guarded => Some(token_key.as_slice()),
            ReplayGuard::Unguarded => None,
        };
        txn_request(absent, &puts)
    }

    /// The leases the transaction names, each once: granted when etcd answers that one is
    /// missing, then the transaction is sent again.
    pub fn leases(&self, prefix: &str, now: i64) -> Vec<LeaseSpec> {
        let mut leases: Vec<LeaseSpec> = Vec::with_capacity(3);
        for entry in std::iter::once(&self.token_id).chain(&self.revocations) {
            let lease = lease_for(prefix, entry.expires_at, now);
            if !leases.iter().any(|l| l.id == lease.id) {
                leases.push(lease);
            }
        }
        leases
    }

    /// True when every revocation has expired: nothing left worth writing.
    pub fn is_expired(&self, now: i64) -> bool {
        self.revocations
            .iter()
            .all(|e| i64::from(e.expires_at) <= now)
    }

    /// The queue format: `[1, written_ms u64, count u8, token_id entry, entries...]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10 + ENTRY_BYTES * (1 + self.revocations.len()));
        out.push(QUEUE_FORMAT);
        out.extend_from_slice(&self.written_ms.to_le_bytes());
        out.push(self.revocations.len().min(MAX_REVOCATIONS_PER_WRITE) as u8);
        for entry in std::iter::once(&self.token_id).chain(self.revocations.iter().take(2)) {
            out.extend_from_slice(&entry.id.to_le_bytes());
            out.extend_from_slice(&entry.cutoff.to_le_bytes());
            out.extend_from_slice(&entry.expires_at.to_le_bytes());
        }
        out
    }

    /// Reads a queued write back; `None` for anything this version did not write.
    pub fn decode(bytes: &[u8]) -> Option<FleetWrite> {
        let (&format, rest) = bytes.split_first()?;
        if format != QUEUE_FORMAT {
            return None;
        }
        let (written_ms, rest) = rest.split_first_chunk::<8>()?;
        let (&count, mut rest) = rest.split_first()?;
        let count = usize::from(count);
        if count == 0
            || count > MAX_REVOCATIONS_PER_WRITE
            || rest.len() != ENTRY_BYTES * (1 + count)
        {
            return None;
        }
        let mut entries = Vec::with_capacity(1 + count);
        while let Some((chunk, tail)) = rest.split_first_chunk::<ENTRY_BYTES>() {
            let (id, more) = chunk.split_first_chunk::<8>()?;
            let (cutoff, more) = more.split_first_chunk::<4>()?;
            let expires_at = more.first_chunk::<4>()?;
            entries.push(Entry {
                id: u64::from_le_bytes(*id),
                cutoff: u32::from_le_bytes(*cutoff),
                expires_at: u32::from_le_bytes(*expires_at),
            });
            rest = tail;
        }
        let token_id = *entries.first()?;
        Some(FleetWrite {
            token_id,
            revocations: entries.get(1..)?.to_vec(),
            written_ms: u64::from_le_bytes(*written_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write() -> FleetWrite {
        FleetWrite {
            token_id: Entry {
                id: 7,
                cutoff: 0,
                expires_at: 1_700_000_120,
            },
            revocations: vec![
                Entry {
                    id: 8,
                    cutoff: 1_700_000_000,
                    expires_at: 1_700_086_400,
                },
                Entry {
                    id: 9,
                    cutoff: 1_700_000_000,
                    expires_at: 1_700_086_400,
                },
            ],
            written_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn a_queued_write_reads_back_and_damage_is_refused() {
        let w = write();
        let bytes = w.encode();
        assert_eq!(FleetWrite::decode(&bytes), Some(w));
        for len in 0..bytes.len() {
            assert_eq!(
                FleetWrite::decode(bytes.get(..len).unwrap_or_default()),
                None
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(FleetWrite::decode(&longer), None);
    }

    #[test]
    fn leases_are_named_once_per_window() {
        let w = write();
        let leases = w.leases("/bcl/", 1_700_000_000);
        // The jti's minute, and one minute shared by both revocations.
        assert_eq!(leases.len(), 2);
    }

    #[test]
    fn expiry_follows_the_revocations() {
        let w = write();
        assert!(!w.is_expired(1_700_000_500));
        assert!(w.is_expired(1_700_086_400));
    }
}
