//! A per-worker memory of session tokens found live, so the same cookie, which arrives on
//! every request of a session, is decoded and looked up once per change of the store.
//!
//! Correct because of the store's generation counter ([`crate::revocations`]): every write
//! that can revoke a session bumps it *before* the IdP gets its 200, and a remembered verdict
//! is used only while the generation is the one it was decided under. So the request after a
//! logout, on any worker, sees a new generation and checks again. Only "live" is remembered:
//! a refusal is always decided afresh.
//!
//! Bounded: a direct-mapped table of [`SLOTS`] slots, each holding at most one token of at most
//! [`MAX_REMEMBERED_TOKEN_BYTES`] (larger tokens are simply checked every time), so a client
//! sending many distinct made-up tokens costs a worker at most 4 MiB. A token is compared in
//! full, so a hash collision only costs a lookup, never a wrong verdict.

use crate::byte_scan::bytes_equal;

/// Slots per worker.
pub const SLOTS: usize = 1024;
/// Tokens longer than this are not remembered (ID tokens are 1 to 2 KiB).
pub const MAX_REMEMBERED_TOKEN_BYTES: usize = 4096;

struct Slot {
    token: Vec<u8>,
    generation: u64,
}

/// The table of one worker (one VM).
pub struct SessionCache {
    slots: Vec<Option<Slot>>,
}

impl Default for SessionCache {
    fn default() -> Self {
        SessionCache {
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }
}

impl SessionCache {
    /// True when `token` was found live under this very `generation`.
    pub fn is_known_live(&self, token: &[u8], generation: u64) -> bool {
        self.slots
            .get(slot_of(token))
            .and_then(Option::as_ref)
            .is_some_and(|slot| slot.generation == generation && bytes_equal(&slot.token, token))
    }

    /// Remembers that `token` was found live under `generation` (read before the lookup).
    pub fn remember_live(&mut self, token: &[u8], generation: u64) {
        if token.len() > MAX_REMEMBERED_TOKEN_BYTES {
            return;
        }
        if let Some(slot) = self.slots.get_mut(slot_of(token)) {
            match slot {
                Some(existing) if bytes_equal(&existing.token, token) => {
                    existing.generation = generation
                }
                _ => {
                    *slot = Some(Slot {
                        token: token.to_vec(),
                        generation,
                    })
                }
            }
        }
    }
}

/// Which slot a token goes to: a cheap hash of its length and its last 32 bytes (the end of
/// the signature, which differs between tokens), so choosing a slot costs nothing like a
/// decode.
fn slot_of(token: &[u8]) -> usize {
    let tail = token.get(token.len().saturating_sub(32)..).unwrap_or(token);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ token.len() as u64;
    for b in tail {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_generation_and_compares_in_full() {
        let mut cache = SessionCache::default();
        let token = b"header.payload.signature-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        assert!(!cache.is_known_live(token, 1));
        cache.remember_live(token, 1);
        assert!(cache.is_known_live(token, 1));
        assert!(!cache.is_known_live(token, 2), "the store changed");
        // Same tail and length, other payload: same slot, not the same token.
        let forged = b"header.PAYLOAD.signature-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        assert_eq!(slot_of(token), slot_of(forged));
        assert!(!cache.is_known_live(forged, 1));
        cache.remember_live(forged, 1);
        assert!(!cache.is_known_live(token, 1), "evicted by the other token");
        cache.remember_live(b"", 3);
        assert!(cache.is_known_live(b"", 3));
        let huge = vec![b'a'; MAX_REMEMBERED_TOKEN_BYTES + 1];
        cache.remember_live(&huge, 3);
        assert!(
            !cache.is_known_live(&huge, 3),
            "not remembered: checked every time"
        );
    }
}
