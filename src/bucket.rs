//! A set of expiring 16-byte entries spread over a FIXED number of Envoy shared-data keys
//! (buckets), with one shared counter that caps the whole set exactly.
//!
//! Fixed, because Envoy keeps shared data across a configuration reload: a layout derived
//! from the configuration would look for old revocations in the wrong buckets after a reload
//! and let revoked sessions through. Nothing here depends on the configuration but the cap.
//!
//! Exact cap, because a per-bucket cap lets hashing decide when the store is full (the first
//! refusal came at 57 % of the advertised capacity). The counter makes the cap global; the
//! per-bucket limit that remains is four times the mean plus slack, which uniform hashing
//! does not reach before the global cap (it only stops a hostile concentration).
//!
//! Shared data has no delete and no create-if-absent: values are rewritten with
//! compare-and-swap, expired entries are dropped whenever a bucket is written and by
//! [`BucketedSet::sweep`], and a write that created a key is read back (two creators race).
//!
//! Value format: one version byte (2), then entries of `id u64, cutoff u32, expires_at u32`
//! (little-endian). Anything else in a bucket (a torn or foreign value) reads as no entries,
//! never a panic.

use crate::shared_store::{SharedStore, WriteError};

const FORMAT_V2: u8 = 2;
/// Bytes of one entry in a bucket.
pub const ENTRY_BYTES: usize = 16;
/// Concurrent writers are few (Envoy's workers); this only bounds a pathological loop.
const MAX_CAS_ATTEMPTS: usize = 64;
/// A bucket may hold this many times its mean share of the cap, plus [`BUCKET_SLACK`].
const BUCKET_SPREAD_FACTOR: u32 = 4;
const BUCKET_SLACK: u32 = 32;

/// One entry: what it names (an [`crate::entry_id`]), a cutoff (the logout's `iat` for
/// user-wide revocations) and when it stops counting (Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub cutoff: u32,
    pub expires_at: u32,
}

/// Why an insert failed.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The set holds its cap (or the bucket its hard limit): nothing was evicted.
    Full,
    Store(String),
}

/// What an insert did.
#[derive(Debug, PartialEq, Eq)]
pub struct InsertOutcome {
    /// A new entry was added (false: an entry with the id was there already).
    pub inserted: bool,
    /// Entries counted after the insert, when this insert added one.
    pub count_after: Option<u32>,
    /// The stored set changed (an entry added, or a later cutoff or expiry merged in): a
    /// remembered live session must be looked at again.
    pub changed: bool,
}

/// What to do when the id is already present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnExisting {
    /// Keep the later expiry and the later cutoff (revocations).
    Merge,
    /// Leave it as it is and report `inserted: false` (the replay cache's claim).
    Keep,
}

/// The layout of one set: key prefix, bucket count and counter key are constants of the code.
#[derive(Clone, Debug)]
pub struct BucketedSet {
    prefix: &'static str,
    counter_key: &'static str,
    buckets: u32,
    cap: u32,
    bucket_limit: usize,
}

impl BucketedSet {
    /// `cap` is the only configurable part: how many entries the whole set may hold.
    pub fn new(prefix: &'static str, counter_key: &'static str, buckets: u32, cap: u32) -> Self {
        let buckets = buckets.max(1);
        let cap = cap.max(1);
        let mean = cap.div_ceil(buckets);
        BucketedSet {
            prefix,
            counter_key,
            buckets,
            cap,
            bucket_limit: mean
                .saturating_mul(BUCKET_SPREAD_FACTOR)
                .saturating_add(BUCKET_SLACK) as usize,
        }
    }

    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    pub fn cap(&self) -> u32 {
        self.cap
    }

    pub fn key(&self, index: u32) -> String {
        format!("{}{}", self.prefix, index)
    }

    pub fn bucket_of(&self, id: u64) -> u32 {
        (id % u64::from(self.buckets)) as u32
    }

    /// Creates the counter if it is missing. Buckets are created by their first write.
    pub fn ensure_created(&self, store: &dyn SharedStore) -> Result<(), String> {
        if store.get(self.counter_key)?.is_none() {
            store
                .set(self.counter_key, &0u32.to_le_bytes(), None)
                .map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    }

    /// Creates every bucket now (empty), so that no insert ever creates one. Needed where an
    /// insert must be exactly-once ([`OnExisting::Keep`], the replay cache's claim): two
    /// workers creating the same missing key both write unconditionally (shared data has no
    /// create-if-absent), and when they carry the same id each one's read-back finds it, so
    /// both would win. With the key present, the compare-and-swap picks one.
    pub fn ensure_buckets_created(&self, store: &dyn SharedStore) -> Result<(), String> {
        for index in 0..self.buckets {
            let key = self.key(index);
            if store.get(&key)?.is_none() {
                store
                    .set(&key, &[FORMAT_V2], None)
                    .map_err(|e| format!("{e:?}"))?;
            }
        }
        Ok(())
    }

    /// Entries counted now (expired ones until they are dropped).
    pub fn count(&self, store: &dyn SharedStore) -> Result<u32, String> {
        Ok(store
            .get(self.counter_key)?
            .map_or(0, |(bytes, _)| decode_count(&bytes)))
    }

    /// The live entry with this id, if any. One shared-data read of one bucket.
    pub fn find(
        &self,
        store: &dyn SharedStore,
        id: u64,
        now: i64,
    ) -> Result<Option<Entry>, String> {
        let Some((bytes, _)) = store.get(&self.key(self.bucket_of(id)))? else {
            return Ok(None);
        };
        let found = decode_entries(&bytes).find(|e| e.id == id && is_live(e, now));
        Ok(found)
    }

    /// Adds `entry` (or merges it into the entry with its id), dropping expired entries of
    /// its bucket on the way. Refuses with [`InsertError::Full`] rather than evict.
    pub fn insert(
        &self,
        store: &dyn SharedStore,
        entry: Entry,
        on_existing: OnExisting,
        now: i64,
    ) -> Result<InsertOutcome, InsertError> {
        let key = self.key(self.bucket_of(entry.id));
        let mut reserved: Option<u32> = None;
        let result = self.insert_loop(store, &key, entry, on_existing, now, &mut reserved);
        let added = matches!(result, Ok(InsertOutcome { inserted: true, .. }));
        if reserved.is_some() && !added {
            // The slot taken in the counter was not used: give it back.
            self.release(store, 1);
        }
        result
    }

    fn insert_loop(
        &self,
        store: &dyn SharedStore,
        key: &str,
        entry: Entry,
        on_existing: OnExisting,
        now: i64,
        reserved: &mut Option<u32>,
    ) -> Result<InsertOutcome, InsertError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = store.get(key).map_err(InsertError::Store)?;
            let (bytes, cas) = match &current {
                Some((bytes, cas)) => (bytes.as_slice(), Some(*cas)),
                None => (&[][..], None),
            };
            let stored = decode_entries(bytes).count();
            let mut live: Vec<Entry> = decode_entries(bytes).filter(|e| is_live(e, now)).collect();
            let expired = stored - live.len();
            let inserted = match live.iter_mut().find(|e| e.id == entry.id) {
                Some(_) if on_existing == OnExisting::Keep => {
                    return Ok(InsertOutcome {
                        inserted: false,
                        count_after: None,
                        changed: false,
                    })
                }
                Some(found)
                    if found.cutoff >= entry.cutoff && found.expires_at >= entry.expires_at =>
                {
                    // Nothing to merge (a fleet echo of this Envoy's own write): no write.
                    return Ok(InsertOutcome {
                        inserted: false,
                        count_after: None,
                        changed: false,
                    });
                }
                Some(found) => {
                    found.cutoff = found.cutoff.max(entry.cutoff);
                    found.expires_at = found.expires_at.max(entry.expires_at);
                    false
                }
                None => {
                    if live.len() >= self.bucket_limit {
                        return Err(InsertError::Full);
                    }
                    if reserved.is_none() {
                        *reserved = Some(self.reserve(store)?);
                    }
                    live.push(entry);
                    true
                }
            };
            match store.set(key, &encode_entries(&live), cas) {
                Ok(()) => {}
                Err(WriteError::CasMismatch) => continue,
                Err(WriteError::Host(e)) => return Err(InsertError::Store(e)),
            }
            if cas.is_none() && !self.holds(store, key, entry.id)? {
                continue; // Another writer created the key at the same time and won.
            }
            if expired > 0 {
                self.release(store, expired as u32);
            }
            return Ok(InsertOutcome {
                inserted,
                count_after: if inserted { *reserved } else { None },
                changed: true,
            });
        }
        Err(InsertError::Store("too many concurrent writers".into()))
    }

    /// True while the id has a live entry.
    pub fn contains(&self, store: &dyn SharedStore, id: u64, now: i64) -> Result<bool, String> {
        Ok(self.find(store, id, now)?.is_some())
    }

    /// Drops the entry with this id (undoes a claim whose logout then failed).
    pub fn remove(&self, store: &dyn SharedStore, id: u64) -> Result<(), String> {
        let key = self.key(self.bucket_of(id));
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some((bytes, cas)) = store.get(&key)? else {
                return Ok(());
            };
            let kept: Vec<Entry> = decode_entries(&bytes).filter(|e| e.id != id).collect();
            let removed = decode_entries(&bytes).count() - kept.len();
            if removed == 0 {
                return Ok(());
            }
            match store.set(&key, &encode_entries(&kept), Some(cas)) {
                Ok(()) => {
                    self.release(store, removed as u32);
                    return Ok(());
                }
                Err(WriteError::CasMismatch) => continue,
                Err(WriteError::Host(e)) => return Err(e),
            }
        }
        Err("too many concurrent writers".into())
    }

    /// Drops the expired entries of bucket `index`; returns how many went.
    pub fn sweep(&self, store: &dyn SharedStore, index: u32, now: i64) -> Result<u32, String> {
        let key = self.key(index % self.buckets);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some((bytes, cas)) = store.get(&key)? else {
                return Ok(0);
            };
            let live: Vec<Entry> = decode_entries(&bytes).filter(|e| is_live(e, now)).collect();
            let removed = decode_entries(&bytes).count() - live.len();
            if removed == 0 {
                return Ok(0);
            }
            match store.set(&key, &encode_entries(&live), Some(cas)) {
                Ok(()) => {
                    self.release(store, removed as u32);
                    return Ok(removed as u32);
                }
                Err(WriteError::CasMismatch) => continue,
                Err(WriteError::Host(e)) => return Err(e),
            }
        }
        Err("too many concurrent writers".into())
    }

    fn holds(&self, store: &dyn SharedStore, key: &str, id: u64) -> Result<bool, InsertError> {
        let current = store.get(key).map_err(InsertError::Store)?;
        Ok(current.is_some_and(|(bytes, _)| decode_entries(&bytes).any(|e| e.id == id)))
    }

    /// Takes one slot of the cap; returns the count after, or `Full`.
    fn reserve(&self, store: &dyn SharedStore) -> Result<u32, InsertError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = store.get(self.counter_key).map_err(InsertError::Store)?;
            let (count, cas) = current
                .as_ref()
                .map_or((0, None), |(bytes, cas)| (decode_count(bytes), Some(*cas)));
            if count >= self.cap {
                return Err(InsertError::Full);
            }
            let next = count + 1;
            match store.set(self.counter_key, &next.to_le_bytes(), cas) {
                Ok(()) => return Ok(next),
                Err(WriteError::CasMismatch) => continue,
                Err(WriteError::Host(e)) => return Err(InsertError::Store(e)),
            }
        }
        Err(InsertError::Store("too many concurrent writers".into()))
    }

    /// Gives back `n` slots. A failure only leaves the count high (the store refuses early),
    /// never low.
    fn release(&self, store: &dyn SharedStore, n: u32) {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Ok(Some((bytes, cas))) = store.get(self.counter_key) else {
                return;
            };
            let next = decode_count(&bytes).saturating_sub(n);
            match store.set(self.counter_key, &next.to_le_bytes(), Some(cas)) {
                Err(WriteError::CasMismatch) => continue,
                _ => return,
            }
        }
    }
}

fn is_live(entry: &Entry, now: i64) -> bool {
    i64::from(entry.expires_at) > now
}

fn decode_count(bytes: &[u8]) -> u32 {
    bytes
        .first_chunk::<4>()
        .map_or(0, |head| u32::from_le_bytes(*head))
}

/// Encodes a bucket value.
pub fn encode_entries(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + entries.len() * ENTRY_BYTES);
    out.push(FORMAT_V2);
    for e in entries {
        out.extend_from_slice(&e.id.to_le_bytes());
        out.extend_from_slice(&e.cutoff.to_le_bytes());
        out.extend_from_slice(&e.expires_at.to_le_bytes());
    }
    out
}

/// Decodes a bucket value; anything that is not format 2 reads as empty, a trailing partial
/// entry is ignored.
pub fn decode_entries(bytes: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    let body = match bytes.split_first() {
        Some((&FORMAT_V2, rest)) => rest,
        _ => &[][..],
    };
    body.chunks_exact(ENTRY_BYTES).filter_map(|chunk| {
        let (id, rest) = chunk.split_first_chunk::<8>()?;
        let (cutoff, rest) = rest.split_first_chunk::<4>()?;
        let (expires_at, _) = rest.split_first_chunk::<4>()?;
        Some(Entry {
            id: u64::from_le_bytes(*id),
            cutoff: u32::from_le_bytes(*cutoff),
            expires_at: u32::from_le_bytes(*expires_at),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_store::MemoryStore;

    fn entry(id: u64, expires_at: u32) -> Entry {
        Entry {
            id,
            cutoff: 100,
            expires_at,
        }
    }

    fn set(buckets: u32, cap: u32) -> (BucketedSet, MemoryStore) {
        let set = BucketedSet::new("t:", "t:n", buckets, cap);
        let store = MemoryStore::default();
        set.ensure_created(&store).unwrap();
        (set, store)
    }

    #[test]
    fn insert_find_expire() {
        let (set, store) = set(4, 8);
        let out = set
            .insert(&store, entry(7, 200), OnExisting::Merge, 100)
            .unwrap();
        assert_eq!(
            out,
            InsertOutcome {
                inserted: true,
                count_after: Some(1),
                changed: true,
            }
        );
        assert_eq!(set.find(&store, 7, 150).unwrap().unwrap().cutoff, 100);
        assert!(set.find(&store, 8, 150).unwrap().is_none());
        assert!(set.find(&store, 7, 200).unwrap().is_none(), "expired");
    }

    #[test]
    fn merge_keep_and_remove() {
        let (set, store) = set(1, 8);
        let mut e = entry(1, 500);
        set.insert(&store, e, OnExisting::Merge, 0).unwrap();
        e.cutoff = 300;
        let out = set.insert(&store, e, OnExisting::Merge, 0).unwrap();
        assert!(!out.inserted);
        assert_eq!(set.find(&store, 1, 0).unwrap().unwrap().cutoff, 300);
        assert_eq!(set.count(&store).unwrap(), 1, "a merge takes no slot");
        assert!(
            set.insert(&store, entry(2, 500), OnExisting::Keep, 0)
                .unwrap()
                .inserted
        );
        assert!(
            !set.insert(&store, entry(2, 500), OnExisting::Keep, 0)
                .unwrap()
                .inserted
        );
        set.remove(&store, 2).unwrap();
        assert!(!set.contains(&store, 2, 0).unwrap());
        assert_eq!(set.count(&store).unwrap(), 1);
    }

    #[test]
    fn the_cap_is_exact_and_expiry_makes_room() {
        let (set, store) = set(64, 100);
        for id in 0..100u64 {
            set.insert(&store, entry(id * 7919, 50), OnExisting::Merge, 0)
                .unwrap();
        }
        assert_eq!(
            set.insert(&store, entry(1_000_003, 500), OnExisting::Merge, 0),
            Err(InsertError::Full)
        );
        assert_eq!(set.count(&store).unwrap(), 100, "a refusal takes no slot");
        let swept: u32 = (0..64).map(|i| set.sweep(&store, i, 50).unwrap()).sum();
        assert_eq!(swept, 100);
        assert_eq!(set.count(&store).unwrap(), 0);
        assert!(
            set.insert(&store, entry(1_000_003, 500), OnExisting::Merge, 50)
                .unwrap()
                .inserted
        );
    }

    #[test]
    fn garbage_buckets_read_as_empty_and_are_replaced() {
        let (set, store) = set(1, 8);
        for garbage in [&b""[..], b"\x01abc", b"\x02short", &[0xff; 40]] {
            store.set(&set.key(0), garbage, None).unwrap();
            assert!(set.find(&store, 1, 0).unwrap().is_none());
            set.insert(&store, entry(1, 10), OnExisting::Merge, 0)
                .unwrap();
            assert!(set.find(&store, 1, 0).unwrap().is_some());
            set.remove(&store, 1).unwrap();
        }
        assert_eq!(decode_entries(b"\x02").count(), 0);
        assert_eq!(decode_entries(&encode_entries(&[entry(1, 2)])).count(), 1);
    }
}
