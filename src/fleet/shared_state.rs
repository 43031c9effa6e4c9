//! What the sync service tells the workers of its Envoy, through shared data: whether the
//! fleet's revocations are loaded (sessions may be served), whether etcd is reachable (a
//! logout tries etcd or goes straight to the queue), and how many logouts wait in the queue.
//!
//! Three small keys; shared data outlives a VM reload, so a crashed and reloaded filter
//! still knows the store is loaded.

use crate::shared_store::{SharedStore, WriteError};

const LOADED_KEY: &str = "bcl:f:loaded";
const CONNECTED_KEY: &str = "bcl:f:up";
const QUEUED_KEY: &str = "bcl:f:queued";
/// Name of the shared queue the sync service registers and the workers enqueue into.
pub const QUEUE_NAME: &str = "bcl:f:queue";

fn flag(store: &dyn SharedStore, key: &str) -> bool {
    matches!(store.get(key), Ok(Some((bytes, _))) if bytes.first() == Some(&1))
}

/// Set once, when the first full load completes; never cleared.
pub fn mark_loaded(store: &dyn SharedStore) -> Result<(), String> {
    store.set(LOADED_KEY, &[1], None).map_err(write_error)
}

pub fn is_loaded(store: &dyn SharedStore) -> bool {
    flag(store, LOADED_KEY)
}

pub fn set_connected(store: &dyn SharedStore, connected: bool) -> Result<(), String> {
    store
        .set(CONNECTED_KEY, &[u8::from(connected)], None)
        .map_err(write_error)
}

pub fn is_connected(store: &dyn SharedStore) -> bool {
    flag(store, CONNECTED_KEY)
}

/// Logouts waiting for etcd in this Envoy.
pub fn queued(store: &dyn SharedStore) -> u32 {
    match store.get(QUEUED_KEY) {
        Ok(Some((bytes, _))) => bytes
            .first_chunk::<4>()
            .map_or(0, |b| u32::from_le_bytes(*b)),
        _ => 0,
    }
}

/// Takes a place in the queue: `Ok(false)` when `limit` places are taken already.
pub fn reserve_queue_place(store: &dyn SharedStore, limit: u32) -> Result<bool, String> {
    update_queued(store, |n| (n < limit).then(|| n + 1)).map(|updated| updated.is_some())
}

/// Gives a place back once its logout reached etcd (or was dropped as expired).
pub fn release_queue_place(store: &dyn SharedStore) -> Result<(), String> {
    update_queued(store, |n| Some(n.saturating_sub(1))).map(|_| ())
}

fn update_queued(
    store: &dyn SharedStore,
    change: impl Fn(u32) -> Option<u32>,
) -> Result<Option<u32>, String> {
    for _ in 0..64 {
        let (current, cas) = match store.get(QUEUED_KEY)? {
            Some((bytes, cas)) => (
                bytes
                    .first_chunk::<4>()
                    .map_or(0, |b| u32::from_le_bytes(*b)),
                Some(cas),
            ),
            None => (0, None),
        };
        let Some(next) = change(current) else {
            return Ok(None);
        };
        match store.set(QUEUED_KEY, &next.to_le_bytes(), cas) {
            Ok(()) => return Ok(Some(next)),
            Err(WriteError::CasMismatch) => continue,
            Err(WriteError::Host(e)) => return Err(e),
        }
    }
    Err("too many concurrent writers".into())
}

fn write_error(error: WriteError) -> String {
    match error {
        WriteError::CasMismatch => "compare-and-swap mismatch".into(),
        WriteError::Host(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_store::MemoryStore;

    #[test]
    fn flags_start_false_and_loaded_stays_set() {
        let store = MemoryStore::default();
        assert!(!is_loaded(&store));
        assert!(!is_connected(&store));
        mark_loaded(&store).ok();
        set_connected(&store, true).ok();
        assert!(is_loaded(&store) && is_connected(&store));
        set_connected(&store, false).ok();
        assert!(!is_connected(&store));
        assert!(is_loaded(&store));
    }

    #[test]
    fn the_queue_count_is_bounded() {
        let store = MemoryStore::default();
        assert_eq!(reserve_queue_place(&store, 2), Ok(true));
        assert_eq!(reserve_queue_place(&store, 2), Ok(true));
        assert_eq!(reserve_queue_place(&store, 2), Ok(false));
        assert_eq!(queued(&store), 2);
        release_queue_place(&store).ok();
        assert_eq!(queued(&store), 1);
        release_queue_place(&store).ok();
        release_queue_place(&store).ok();
        assert_eq!(queued(&store), 0);
    }
}
