//! A shared-data bucket value as another worker (or an older module) wrote it: decoded
//! directly, then used by `BucketedSet::find/insert/remove/sweep` on a store pre-seeded with
//! it, with the counter also pre-seeded by the fuzzer.
//!
//! Input: 1 selector byte, 8 bytes little-endian `now`, 4 bytes counter value, then the
//! bucket value.
#![no_main]

use envoy_backchannel_logout::bucket::{decode_entries, BucketedSet, Entry, OnExisting, ENTRY_BYTES};
use envoy_backchannel_logout::shared_store::{MemoryStore, SharedStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((now, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let Some((count, value)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let now = i64::from_le_bytes(*now);
    let stored = decode_entries(value).count();
    assert!(stored <= value.len() / ENTRY_BYTES);

    // One bucket, so every id lands on the fuzzer's value.
    let cap = 1 + u32::from(selector >> 4);
    let set = BucketedSet::new("fz:", "fz:n", 1, cap);
    let store = MemoryStore::default();
    if store.set(&set.key(0), value, None).is_err() || store.set("fz:n", count, None).is_err() {
        return;
    }
    // Ids taken from the stored value when there is one, so lookups hit.
    let id = decode_entries(value)
        .nth(usize::from(selector & 3))
        .map_or(u64::from(selector), |e| e.id);
    let _ = set.find(&store, id, now);

    let entry = Entry {
        id,
        cutoff: 7,
        expires_at: (now.saturating_add(60)).clamp(0, i64::from(u32::MAX)) as u32,
    };
    let on_existing = if selector & 0x08 == 0 {
        OnExisting::Merge
    } else {
        OnExisting::Keep
    };
    let count_before = set.count(&store).unwrap_or_default();
    match set.insert(&store, entry, on_existing, now) {
        Ok(outcome) => {
            if outcome.inserted {
                assert!(count_before < cap, "inserted past the cap");
                if i64::from(entry.expires_at) > now {
                    assert!(set.contains(&store, id, now).unwrap_or(false));
                }
            }
        }
        Err(_) => {
            // A refusal takes no slot.
            assert!(set.count(&store).unwrap_or_default() <= count_before);
        }
    }
    let _ = set.remove(&store, id);
    assert!(!set.contains(&store, id, now).unwrap_or(true));
    let _ = set.sweep(&store, 0, now);
    let left = store.get(&set.key(0)).ok().flatten().map_or(0, |(v, _)| decode_entries(&v).count());
    assert!(left <= stored.max(1));
});
