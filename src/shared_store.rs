//! The host's shared key-value store, behind a small trait so the revocation logic is plain
//! Rust: Envoy shared data in the Wasm shell, [`MemoryStore`] in tests (and, later, a
//! fleet-wide store behind the same two calls).

use std::cell::RefCell;
use std::collections::HashMap;

/// A write could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Another writer changed the value since it was read: read again and retry.
    CasMismatch,
    /// The host refused the write for another reason.
    Host(String),
}

/// Process-wide key-value data with compare-and-swap, modelled on Envoy shared data:
/// values are copied on read, a write to an existing key with a stale `cas` fails, and a
/// write to a missing key ignores `cas` (there is no atomic create-if-absent).
pub trait SharedStore {
    /// The value and its version, or `None` when the key was never written.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String>;
    /// Writes `value`; with `cas`, only if the version is still `cas`.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError>;

    /// A process-wide counter that every worker can read more cheaply than a shared-data
    /// value, moved on by [`SharedStore::count_change`] after every change of the store, or
    /// `None` when the host has none (readers then use a generation value in shared data).
    /// Envoy: a gauge, read with one host call that allocates nothing.
    fn change_count(&self) -> Option<u64> {
        None
    }

    /// Moves [`SharedStore::change_count`] on (after the store changed).
    fn count_change(&self) {}
}

/// An in-memory [`SharedStore`] with Envoy's semantics, for tests.
#[derive(Default)]
pub struct MemoryStore {
    entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    next_cas: RefCell<u32>,
}

impl MemoryStore {
    pub fn key_count(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn total_value_bytes(&self) -> usize {
        self.entries.borrow().values().map(|(v, _)| v.len()).sum()
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        let mut entries = self.entries.borrow_mut();
        if let (Some(cas), Some((_, current))) = (cas, entries.get(key)) {
            if cas != *current {
                return Err(WriteError::CasMismatch);
            }
        }
        let mut next = self.next_cas.borrow_mut();
        *next = next.wrapping_add(1).max(1);
        entries.insert(key.to_owned(), (value.to_vec(), *next));
        Ok(())
    }
}
