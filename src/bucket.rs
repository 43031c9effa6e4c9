//! A bounded set of expiring entries spread over a fixed number of shared-data keys.
//!
//! Envoy shared data cannot delete keys, so the key count is fixed by configuration
//! (`<prefix><n>` for n below the bucket count) and each key's value holds at most
//! `capacity` entries. Expired entries are dropped whenever a bucket is rewritten and by
//! [`BucketedSet::sweep`], so memory is bounded by `buckets × capacity × largest entry`
//! whatever happens over the process's life.
//!
//! Writes are compare-and-swap loops: a concurrent write on another worker makes the CAS
//! fail, and the loop re-reads and re-applies, so no writer's entry is lost.

use crate::shared_store::{SharedStore, WriteError};

/// Format byte at the start of every bucket value; an unknown one is treated as empty.
const FORMAT_V1: u8 = 1;
/// Bytes before the two length-prefixed strings of an entry.
const ENTRY_FIXED_BYTES: usize = 1 + 8 + 8 + 2 + 2;
const MAX_CAS_ATTEMPTS: usize = 32;

/// What an entry is about; one byte in the stored form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// One session: (issuer, sid).
    Session = 1,
    /// All of a user's sessions issued up to `cutoff`: (issuer, sub).
    User = 2,
    /// A logout token's `jti`, for replay detection: (issuer, jti).
    TokenId = 3,
}

impl EntryKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(EntryKind::Session),
            2 => Some(EntryKind::User),
            3 => Some(EntryKind::TokenId),
            _ => None,
        }
    }
}

/// One stored fact, with an absolute expiry (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub issuer: String,
    pub value: String,
    /// For [`EntryKind::User`]: sessions with `iat <= cutoff` are revoked.
    pub cutoff: i64,
    pub expires_at: i64,
}

/// A borrowed view of a stored entry, read without allocating on the per-request path.
#[derive(Clone, Copy, Debug)]
pub struct EntryView<'a> {
    pub kind: Option<EntryKind>,
    pub issuer: &'a [u8],
    pub value: &'a [u8],
    pub cutoff: i64,
    pub expires_at: i64,
}

/// Why an insert failed.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The bucket holds `capacity` live entries.
    Full,
    /// The host refused a read or write, or the CAS kept failing.
    Store(String),
}

/// How an insert changed the bucket.
#[derive(Debug, PartialEq, Eq)]
pub struct InsertOutcome {
    /// False when an entry with the same identity was already live (merged or kept).
    pub inserted: bool,
    /// Change in the number of stored entries (expired ones dropped count negative).
    pub entry_delta: i64,
}

/// How a write treats an entry that already exists with the same identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnExisting {
    /// Keep the latest cutoff and expiry (revocations are idempotent).
    Merge,
    /// Leave the bucket alone and report `inserted: false` (replay detection).
    Keep,
}

/// A fixed family of shared-data keys holding expiring entries.
#[derive(Clone, Debug)]
pub struct BucketedSet {
    prefix: &'static str,
    buckets: u32,
    capacity: usize,
}

impl BucketedSet {
    pub fn new(prefix: &'static str, buckets: u32, capacity: usize) -> Self {
        BucketedSet {
            prefix,
            buckets: buckets.max(1),
            capacity: capacity.max(1),
        }
    }

    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The key of bucket `index`.
    pub fn key(&self, index: u32) -> String {
        format!("{}{}", self.prefix, index)
    }

    /// The bucket an identity lives in. FNV-1a: stable across builds and processes, unlike
    /// std's hasher, so an upgraded module finds the entries an older one wrote.
    pub fn bucket_of(&self, kind: EntryKind, issuer: &str, value: &str) -> u32 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                hash ^= u64::from(*b);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        feed(&[kind as u8]);
        feed(issuer.as_bytes());
        feed(&[0]);
        feed(value.as_bytes());
        (hash % u64::from(self.buckets)) as u32
    }

    /// Creates every bucket key that does not exist yet, so later writes always have a
    /// version to compare against. Run when the plugin starts, before traffic.
    pub fn ensure_created(&self, store: &dyn SharedStore) -> Result<(), String> {
        for index in 0..self.buckets {
            let key = self.key(index);
            if store.get(&key)?.is_none() {
                store
                    .set(&key, &[FORMAT_V1], None)
                    .map_err(|e| format!("{e:?}"))?;
            }
        }
        Ok(())
    }

    /// Finds the live entry with this identity, if any, and hands it to `inspect`.
    /// One host call; no allocation beyond the host's copy of the value.
    pub fn find<T>(
        &self,
        store: &dyn SharedStore,
        kind: EntryKind,
        issuer: &str,
        value: &str,
        now: i64,
        inspect: impl FnOnce(EntryView<'_>) -> T,
    ) -> Result<Option<T>, String> {
        let key = self.key(self.bucket_of(kind, issuer, value));
        let Some((bytes, _)) = store.get(&key)? else {
            return Ok(None);
        };
        let found = entries(&bytes).find(|e| {
            e.kind == Some(kind)
                && e.expires_at > now
                && e.issuer == issuer.as_bytes()
                && e.value == value.as_bytes()
        });
        Ok(found.map(inspect))
    }

    /// Adds `entry` to its bucket (dropping expired entries on the way), retrying on CAS
    /// conflicts.
    pub fn insert(
        &self,
        store: &dyn SharedStore,
        entry: &Entry,
        on_existing: OnExisting,
        now: i64,
    ) -> Result<InsertOutcome, InsertError> {
        let key = self.key(self.bucket_of(entry.kind, &entry.issuer, &entry.value));
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = store.get(&key).map_err(InsertError::Store)?;
            let (bytes, cas) = match &current {
                Some((bytes, cas)) => (bytes.as_slice(), Some(*cas)),
                None => (&[][..], None),
            };
            let stored_before = entries(bytes).count() as i64;
            let mut live: Vec<Entry> = entries(bytes)
                .filter(|e| e.expires_at > now)
                .filter_map(|e| e.to_owned_entry())
                .collect();
            let existing = live.iter_mut().find(|e| {
                e.kind == entry.kind && e.issuer == entry.issuer && e.value == entry.value
            });
            let inserted = match (existing, on_existing) {
                (Some(_), OnExisting::Keep) => {
                    return Ok(InsertOutcome {
                        inserted: false,
                        entry_delta: 0,
                    })
                }
                (Some(found), OnExisting::Merge) => {
                    found.cutoff = found.cutoff.max(entry.cutoff);
                    found.expires_at = found.expires_at.max(entry.expires_at);
                    false
                }
                (None, _) => {
                    if live.len() >= self.capacity {
                        return Err(InsertError::Full);
                    }
                    live.push(entry.clone());
                    true
                }
            };
            let encoded = encode(&live);
            match store.set(&key, &encoded, cas) {
                Ok(()) => {}
                Err(WriteError::CasMismatch) => continue,
                Err(WriteError::Host(e)) => return Err(InsertError::Store(e)),
            }
            // A write to a missing key ignores the CAS, so two first writers can overwrite
            // each other; read back and retry if ours did not survive.
            if cas.is_none() && !self.holds(store, &key, entry)? {
                continue;
            }
            return Ok(InsertOutcome {
                inserted,
                entry_delta: live.len() as i64 - stored_before,
            });
        }
        Err(InsertError::Store("too many concurrent writers".into()))
    }

    fn holds(
        &self,
        store: &dyn SharedStore,
        key: &str,
        entry: &Entry,
    ) -> Result<bool, InsertError> {
        let current = store.get(key).map_err(InsertError::Store)?;
        Ok(current.is_some_and(|(bytes, _)| {
            entries(&bytes).any(|e| {
                e.kind == Some(entry.kind)
                    && e.issuer == entry.issuer.as_bytes()
                    && e.value == entry.value.as_bytes()
            })
        }))
    }

    /// Drops expired entries from bucket `index`; returns the change in stored entries.
    pub fn sweep(&self, store: &dyn SharedStore, index: u32, now: i64) -> Result<i64, String> {
        let key = self.key(index);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some((bytes, cas)) = store.get(&key)? else {
                return Ok(0);
            };
            let before = entries(&bytes).count();
            let live: Vec<Entry> = entries(&bytes)
                .filter(|e| e.expires_at > now)
                .filter_map(|e| e.to_owned_entry())
                .collect();
            if live.len() == before {
                return Ok(0);
            }
            match store.set(&key, &encode(&live), Some(cas)) {
                Ok(()) => return Ok(live.len() as i64 - before as i64),
                Err(WriteError::CasMismatch) => continue,
                Err(WriteError::Host(e)) => return Err(e),
            }
        }
        Err("too many concurrent writers".into())
    }

    /// Entries stored in bucket `index`, expired ones included (for tests and gauges).
    pub fn stored_entries(&self, store: &dyn SharedStore, index: u32) -> Result<usize, String> {
        Ok(store
            .get(&self.key(index))?
            .map_or(0, |(bytes, _)| entries(&bytes).count()))
    }
}

impl EntryView<'_> {
    fn to_owned_entry(self) -> Option<Entry> {
        Some(Entry {
            kind: self.kind?,
            issuer: String::from_utf8(self.issuer.to_vec()).ok()?,
            value: String::from_utf8(self.value.to_vec()).ok()?,
            cutoff: self.cutoff,
            expires_at: self.expires_at,
        })
    }
}

/// Serialises entries: format byte, then per entry
/// `kind u8 | cutoff i64 | expires_at i64 | issuer_len u16 | value_len u16 | issuer | value`.
fn encode(entries: &[Entry]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|e| ENTRY_FIXED_BYTES + e.issuer.len() + e.value.len())
        .sum();
    let mut out = Vec::with_capacity(1 + size);
    out.push(FORMAT_V1);
    for e in entries {
        let issuer = clip(e.issuer.as_bytes());
        let value = clip(e.value.as_bytes());
        out.push(e.kind as u8);
        out.extend_from_slice(&e.cutoff.to_le_bytes());
        out.extend_from_slice(&e.expires_at.to_le_bytes());
        out.extend_from_slice(&(issuer.len() as u16).to_le_bytes());
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(issuer);
        out.extend_from_slice(value);
    }
    out
}

fn clip(bytes: &[u8]) -> &[u8] {
    bytes.get(..usize::from(u16::MAX)).unwrap_or(bytes)
}

/// Iterates the entries of a stored bucket; stops at the first malformed byte (a value from
/// an unknown format reads as empty rather than as garbage).
fn entries(bytes: &[u8]) -> impl Iterator<Item = EntryView<'_>> {
    let mut rest = match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => rest,
        _ => &[][..],
    };
    std::iter::from_fn(move || {
        let (view, tail) = read_entry(rest)?;
        rest = tail;
        Some(view)
    })
}

fn read_entry(bytes: &[u8]) -> Option<(EntryView<'_>, &[u8])> {
    let (&kind, rest) = bytes.split_first()?;
    let (cutoff, rest) = rest.split_first_chunk::<8>()?;
    let (expires_at, rest) = rest.split_first_chunk::<8>()?;
    let (issuer_len, rest) = rest.split_first_chunk::<2>()?;
    let (value_len, rest) = rest.split_first_chunk::<2>()?;
    let (issuer, rest) = rest.split_at_checked(usize::from(u16::from_le_bytes(*issuer_len)))?;
    let (value, rest) = rest.split_at_checked(usize::from(u16::from_le_bytes(*value_len)))?;
    Some((
        EntryView {
            kind: EntryKind::from_byte(kind),
            issuer,
            value,
            cutoff: i64::from_le_bytes(*cutoff),
            expires_at: i64::from_le_bytes(*expires_at),
        },
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_store::MemoryStore;

    fn entry(kind: EntryKind, value: &str, expires_at: i64) -> Entry {
        Entry {
            kind,
            issuer: "https://idp".into(),
            value: value.into(),
            cutoff: 100,
            expires_at,
        }
    }

    #[test]
    fn insert_find_expire() {
        let store = MemoryStore::default();
        let set = BucketedSet::new("t:", 4, 8);
        set.ensure_created(&store).unwrap();
        let e = entry(EntryKind::Session, "sid-1", 200);
        let out = set.insert(&store, &e, OnExisting::Merge, 100).unwrap();
        assert_eq!(
            out,
            InsertOutcome {
                inserted: true,
                entry_delta: 1
            }
        );
        let found = set
            .find(
                &store,
                EntryKind::Session,
                "https://idp",
                "sid-1",
                150,
                |v| v.cutoff,
            )
            .unwrap();
        assert_eq!(found, Some(100));
        // Other kind, other issuer, other value: not found.
        assert!(set
            .find(&store, EntryKind::User, "https://idp", "sid-1", 150, |_| ())
            .unwrap()
            .is_none());
        assert!(set
            .find(
                &store,
                EntryKind::Session,
                "https://other",
                "sid-1",
                150,
                |_| ()
            )
            .unwrap()
            .is_none());
        // Expired.
        assert!(set
            .find(
                &store,
                EntryKind::Session,
                "https://idp",
                "sid-1",
                200,
                |_| ()
            )
            .unwrap()
            .is_none());
    }

    #[test]
    fn merge_and_keep() {
        let store = MemoryStore::default();
        let set = BucketedSet::new("t:", 1, 8);
        let mut e = entry(EntryKind::User, "alice", 500);
        set.insert(&store, &e, OnExisting::Merge, 0).unwrap();
        e.cutoff = 300;
        let out = set.insert(&store, &e, OnExisting::Merge, 0).unwrap();
        assert!(!out.inserted);
        assert_eq!(
            set.find(&store, EntryKind::User, "https://idp", "alice", 0, |v| v
                .cutoff)
                .unwrap(),
            Some(300)
        );
        let jti = entry(EntryKind::TokenId, "j1", 500);
        assert!(
            set.insert(&store, &jti, OnExisting::Keep, 0)
                .unwrap()
                .inserted
        );
        assert!(
            !set.insert(&store, &jti, OnExisting::Keep, 0)
                .unwrap()
                .inserted
        );
    }

    #[test]
    fn capacity_is_enforced_and_expired_entries_make_room() {
        let store = MemoryStore::default();
        let set = BucketedSet::new("t:", 1, 2);
        set.insert(
            &store,
            &entry(EntryKind::Session, "a", 10),
            OnExisting::Merge,
            0,
        )
        .unwrap();
        set.insert(
            &store,
            &entry(EntryKind::Session, "b", 20),
            OnExisting::Merge,
            0,
        )
        .unwrap();
        assert_eq!(
            set.insert(
                &store,
                &entry(EntryKind::Session, "c", 20),
                OnExisting::Merge,
                0
            ),
            Err(InsertError::Full)
        );
        let out = set
            .insert(
                &store,
                &entry(EntryKind::Session, "c", 30),
                OnExisting::Merge,
                10,
            )
            .unwrap();
        assert_eq!(out.entry_delta, 0, "one expired dropped, one added");
    }

    #[test]
    fn key_count_and_bytes_stay_bounded() {
        let store = MemoryStore::default();
        let set = BucketedSet::new("t:", 16, 64);
        set.ensure_created(&store).unwrap();
        let mut now = 0;
        for wave in 0..20 {
            for i in 0..200 {
                let e = entry(EntryKind::Session, &format!("sid-{wave}-{i}"), now + 10);
                set.insert(&store, &e, OnExisting::Merge, now).unwrap();
            }
            now += 11;
            for b in 0..16 {
                set.sweep(&store, b, now).unwrap();
            }
        }
        assert_eq!(store.key_count(), 16);
        assert!(
            store.total_value_bytes() <= 16,
            "all swept: {}",
            store.total_value_bytes()
        );
    }

    #[test]
    fn cas_conflict_is_retried_without_loss() {
        /// A store whose first CAS write fails, as if another worker wrote in between.
        struct Racy {
            inner: MemoryStore,
            raced: std::cell::Cell<bool>,
        }
        impl SharedStore for Racy {
            fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
                self.inner.get(key)
            }
            fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
                if cas.is_some() && !self.raced.replace(true) {
                    let other = BucketedSet::new("t:", 1, 8);
                    other
                        .insert(
                            &self.inner,
                            &entry(EntryKind::Session, "other", 99),
                            OnExisting::Merge,
                            0,
                        )
                        .unwrap();
                }
                self.inner.set(key, value, cas)
            }
        }
        let store = Racy {
            inner: MemoryStore::default(),
            raced: false.into(),
        };
        let set = BucketedSet::new("t:", 1, 8);
        set.ensure_created(&store).unwrap();
        set.insert(
            &store,
            &entry(EntryKind::Session, "mine", 99),
            OnExisting::Merge,
            0,
        )
        .unwrap();
        for sid in ["mine", "other"] {
            assert!(
                set.find(&store, EntryKind::Session, "https://idp", sid, 0, |_| ())
                    .unwrap()
                    .is_some(),
                "{sid}"
            );
        }
    }

    #[test]
    fn garbage_reads_as_empty() {
        assert_eq!(entries(&[9, 1, 2, 3]).count(), 0);
        assert_eq!(entries(&[FORMAT_V1, 1, 2, 3]).count(), 0);
        assert_eq!(entries(&[]).count(), 0);
    }
}
