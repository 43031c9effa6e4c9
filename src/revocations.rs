//! What a verified logout revokes, and whether a session is revoked: the rules of
//! Back-Channel Logout 1.0, 2.5-2.7, over two bounded sets in Envoy shared data.
//!
//! - `sid` present: that session of that issuer, keyed by (issuer, sid).
//! - `sub` (no `sid`, or the issuer's `revoke_all_user_sessions`): every session of that user
//!   at that issuer whose ID token was issued up to the logout token's `iat` (the cutoff), so
//!   a login after the logout stays valid.
//! - The `jti` is remembered while its token could still be accepted (step 8, replay).
//!
//! The layout of both sets is fixed by the code, not by the configuration (see `bucket.rs`):
//! a configuration reload keeps every live revocation and every remembered `jti` in force.

use crate::bucket::{BucketedSet, Entry, InsertError, OnExisting};
use crate::entry_id::{entry_id, EntryKind};
use crate::logout_token::VerifiedLogout;
use crate::rejection::Rejection;
use crate::session_token::SessionClaims;
use crate::shared_store::SharedStore;

/// Buckets of the revocation set. 65,536 keys at most (created on first use); at 1,000,000
/// revocations a bucket holds about 15 entries (240 bytes), which is what one lookup copies.
pub const REVOCATION_BUCKETS: u32 = 65_536;
/// Buckets of the replay cache.
pub const TOKEN_ID_BUCKETS: u32 = 16_384;
const REVOCATION_PREFIX: &str = "bcl:r2:";
const REVOCATION_COUNT_KEY: &str = "bcl:r2:count";
/// Bumped after every write that can revoke a session; see `session_cache.rs`.
const GENERATION_KEY: &str = "bcl:r2:gen";
/// Set in every generation read from shared data and clear in every change count: a worker
/// whose change counter stopped answering falls back to shared data without ever taking a
/// value of one for the other.
const SHARED_GENERATION: u64 = 1 << 63;
const TOKEN_ID_PREFIX: &str = "bcl:j2:";
const TOKEN_ID_COUNT_KEY: &str = "bcl:j2:count";
/// The replay cache holds at least this many `jti`s. Its entries live only while their token
/// could be accepted (minutes), so its fill follows the logout rate, not `max_revocations`:
/// a small revocation cap must not make a burst of logouts look like a full store.
pub const MIN_TOKEN_ID_CAP: u32 = 100_000;
/// Share of the capacity at which the filter warns (log line and gauge).
pub const WARN_PERCENT: u64 = 80;

/// What the configuration sizes: the caps and the time to live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Live revocations the store accepts; the replay cache holds as many `jti`s, and at
    /// least [`MIN_TOKEN_ID_CAP`].
    pub max_revocations: u32,
    pub revocation_ttl_seconds: i64,
}

/// What recording a logout did.
#[derive(Debug, PartialEq, Eq)]
pub struct Recorded {
    /// New revocation entries (0 when the logout only merged into existing ones).
    pub new_entries: u32,
    /// True when this logout filled the store past [`WARN_PERCENT`] of its capacity.
    pub crossed_warning: bool,
    /// The revocation entries as written (one or two), for the fleet to replicate.
    pub entries: Vec<Entry>,
    /// The replay-cache entry of the logout token's `jti`.
    pub token_id: Entry,
}

/// The revocation rules over the two sets.
#[derive(Clone, Debug)]
pub struct RevocationStore {
    revocations: BucketedSet,
    token_ids: BucketedSet,
    ttl: i64,
}

impl RevocationStore {
    pub fn new(limits: &StoreLimits) -> Self {
        RevocationStore {
            revocations: BucketedSet::new(
                REVOCATION_PREFIX,
                REVOCATION_COUNT_KEY,
                REVOCATION_BUCKETS,
                limits.max_revocations,
            ),
            token_ids: BucketedSet::new(
                TOKEN_ID_PREFIX,
                TOKEN_ID_COUNT_KEY,
                TOKEN_ID_BUCKETS,
                limits.max_revocations.max(MIN_TOKEN_ID_CAP),
            ),
            ttl: limits.revocation_ttl_seconds,
        }
    }

    pub fn revocations(&self) -> &BucketedSet {
        &self.revocations
    }

    pub fn token_ids(&self) -> &BucketedSet {
        &self.token_ids
    }

    /// Creates the counters, and every replay-cache bucket (its claims must be exactly-once,
    /// see [`BucketedSet::ensure_buckets_created`]; 16,384 small keys). Revocation buckets are
    /// created by their first write: a merge is idempotent, and a creation race is settled by
    /// the read-back.
    pub fn ensure_created(&self, store: &dyn SharedStore) -> Result<(), String> {
        self.revocations.ensure_created(store)?;
        self.token_ids.ensure_created(store)?;
        self.token_ids.ensure_buckets_created(store)
    }

    /// Step 8 and the revocation, all or nothing: the `jti` is claimed first (so of two
    /// copies of one token racing, exactly one succeeds), and the claim is undone when the
    /// revocation cannot be stored, so the IdP's retry is not taken for a replay.
    pub fn record(
        &self,
        store: &dyn SharedStore,
        logout: &VerifiedLogout,
        now: i64,
    ) -> Result<Recorded, Rejection> {
        let jti_id = entry_id(EntryKind::TokenId, logout.issuer(), logout.jti());
        let claim = Entry {
            id: jti_id,
            cutoff: 0,
            expires_at: unix_u32(logout.valid_until().max(now).saturating_add(1)),
        };
        let claimed = self
            .token_ids
            .insert(store, claim, OnExisting::Keep, now)
            .map_err(store_rejection)?;
        if !claimed.inserted {
            return Err(Rejection::JtiReplayed);
        }
        let revoked = self.revoke(store, logout, now).map(|mut recorded| {
            recorded.token_id = claim;
            recorded
        });
        // Before the IdP hears 200: workers that remember a session as live look again.
        // Bumped even after a failure, which may have written part of the revocation.
        let bumped = self.bump_generation(store);
        match (revoked, bumped) {
            (Ok(recorded), Ok(())) => Ok(recorded),
            (result, bumped) => {
                // Refused for a store reason: the IdP's retry must not be taken for a replay.
                // Best effort: if even this fails, the jti expires with its token.
                let _ = self.token_ids.remove(store, jti_id);
                Err(match (result, bumped) {
                    (Err(rejection), _) => rejection,
                    _ => Rejection::StoreError,
                })
            }
        }
    }

    fn revoke(
        &self,
        store: &dyn SharedStore,
        logout: &VerifiedLogout,
        now: i64,
    ) -> Result<Recorded, Rejection> {
        let expires_at = unix_u32(now.saturating_add(self.ttl));
        let cutoff = unix_u32(logout.iat());
        let warn_at = warn_threshold(self.revocations.cap());
        let mut recorded = Recorded {
            new_entries: 0,
            crossed_warning: false,
            entries: Vec::with_capacity(2),
            token_id: Entry {
                id: 0,
                cutoff: 0,
                expires_at: 0,
            },
        };
        let mut revoke = |kind: EntryKind, value: &str| -> Result<(), Rejection> {
            let entry = Entry {
                id: entry_id(kind, logout.issuer(), value),
                cutoff,
                expires_at,
            };
            let outcome = self
                .revocations
                .insert(store, entry, OnExisting::Merge, now)
                .map_err(store_rejection)?;
            if outcome.inserted {
                recorded.new_entries += 1;
            }
            recorded.crossed_warning |= outcome.count_after == Some(warn_at);
            recorded.entries.push(entry);
            Ok(())
        };
        if let Some(sid) = logout.sid().filter(|_| logout.revokes_session()) {
            revoke(EntryKind::Session, sid)?;
        }
        if let Some(sub) = logout.sub().filter(|_| logout.revokes_user_sessions()) {
            revoke(EntryKind::User, sub)?;
        }
        Ok(recorded)
    }

    /// Applies a revocation another Envoy of the fleet accepted (merged like a local one;
    /// an expired entry is skipped). The caller bumps the generation once per batch.
    /// Returns whether the store changed (a new entry, or a later cutoff or expiry): only
    /// then must workers look at remembered sessions again.
    pub fn apply(
        &self,
        store: &dyn SharedStore,
        entry: Entry,
        now: i64,
    ) -> Result<bool, InsertError> {
        if i64::from(entry.expires_at) <= now {
            return Ok(false);
        }
        self.revocations
            .insert(store, entry, OnExisting::Merge, now)
            .map(|outcome| outcome.changed)
    }

    /// The store's generation: changes whenever a revocation is written. The host's change
    /// counter when it has one (Envoy: a gauge, one host call that copies nothing), else the
    /// generation value in shared data.
    pub fn generation(&self, store: &dyn SharedStore) -> Result<u64, String> {
        if let Some(count) = store.change_count() {
            return Ok(count & !SHARED_GENERATION);
        }
        Ok(store
            .get(GENERATION_KEY)?
            .and_then(|(bytes, _)| bytes.first_chunk::<8>().map(|b| u64::from_le_bytes(*b)))
            .unwrap_or(0)
            | SHARED_GENERATION)
    }

    /// Moves the generation on (compare-and-swap; a missing key is created), and the host's
    /// change counter. Called only after the change is written: a worker that reads the new
    /// generation and then the store must find the change.
    pub fn bump_generation(&self, store: &dyn SharedStore) -> Result<(), String> {
        store.count_change();
        for _ in 0..64 {
            let current = store.get(GENERATION_KEY)?;
            let (value, cas) = match &current {
                Some((bytes, cas)) => (
                    bytes
                        .first_chunk::<8>()
                        .map_or(0, |b| u64::from_le_bytes(*b)),
                    Some(*cas),
                ),
                None => (0, None),
            };
            match store.set(GENERATION_KEY, &value.wrapping_add(1).to_le_bytes(), cas) {
                Ok(()) => return Ok(()),
                Err(crate::shared_store::WriteError::CasMismatch) => continue,
                Err(crate::shared_store::WriteError::Host(e)) => return Err(e),
            }
        }
        Err("too many concurrent writers".into())
    }

    /// Whether a session is revoked: at most two reads of one small bucket each.
    pub fn is_revoked(
        &self,
        store: &dyn SharedStore,
        session: &SessionClaims,
        now: i64,
    ) -> Result<bool, String> {
        if let Some(sid) = session.sid.as_deref().filter(|s| !s.is_empty()) {
            let id = entry_id(EntryKind::Session, &session.iss, sid);
            if self.revocations.find(store, id, now)?.is_some() {
                return Ok(true);
            }
        }
        if let Some(sub) = session.sub.as_deref().filter(|s| !s.is_empty()) {
            let id = entry_id(EntryKind::User, &session.iss, sub);
            if let Some(entry) = self.revocations.find(store, id, now)? {
                return Ok(session.iat <= i64::from(entry.cutoff));
            }
        }
        Ok(false)
    }

    /// Drops expired entries of revocation bucket `index` and, on every fourth index, of
    /// replay-cache bucket `index / 4`: one pass over the revocation buckets is one pass over
    /// the replay cache. Returns how many entries went.
    pub fn sweep(&self, store: &dyn SharedStore, index: u32, now: i64) -> Result<u32, String> {
        let token_ids = if index.is_multiple_of(REVOCATION_BUCKETS / TOKEN_ID_BUCKETS) {
            self.token_ids
                .sweep(store, index / (REVOCATION_BUCKETS / TOKEN_ID_BUCKETS), now)?
        } else {
            0
        };
        Ok(self.revocations.sweep(store, index, now)? + token_ids)
    }
}

/// The count at which a logout crosses [`WARN_PERCENT`] of `cap` (exactly one logout does).
pub fn warn_threshold(cap: u32) -> u32 {
    (u64::from(cap) * WARN_PERCENT).div_ceil(100).max(1) as u32
}

/// Seconds as stored in an entry: clamped to `u32` (until the year 2106).
fn unix_u32(seconds: i64) -> u32 {
    seconds.clamp(0, i64::from(u32::MAX)) as u32
}

fn store_rejection(err: InsertError) -> Rejection {
    match err {
        InsertError::Full => Rejection::StoreFull,
        InsertError::Store(_) => Rejection::StoreError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_store::MemoryStore;

    const A: &str = "https://a";
    const B: &str = "https://b";

    /// A store of `cap` revocations with a long TTL.
    fn capped(cap: u32) -> (RevocationStore, MemoryStore) {
        let rules = RevocationStore::new(&StoreLimits {
            max_revocations: cap,
            revocation_ttl_seconds: 1000,
        });
        let store = MemoryStore::default();
        rules.ensure_created(&store).unwrap();
        (rules, store)
    }

    /// The logout of session `s<i>` (jti `j<i>`) at issuer A.
    fn nth_logout(i: u32) -> VerifiedLogout {
        VerifiedLogout::for_tests(
            A,
            None,
            Some(&format!("s{i}")),
            &format!("j{i}"),
            100,
            false,
        )
    }

    fn setup(ttl: i64) -> (RevocationStore, MemoryStore) {
        let rules = RevocationStore::new(&StoreLimits {
            max_revocations: 64,
            revocation_ttl_seconds: ttl,
        });
        let store = MemoryStore::default();
        rules.ensure_created(&store).unwrap();
        (rules, store)
    }

    fn session(iss: &str, sub: &str, sid: Option<&str>, iat: i64) -> SessionClaims {
        SessionClaims {
            iss: iss.into(),
            sub: Some(sub.into()),
            sid: sid.map(Into::into),
            iat,
        }
    }

    #[test]
    fn applying_a_fleet_entry_reports_only_real_changes() {
        let (rules, store) = setup(3600);
        let entry = Entry {
            id: 42,
            cutoff: 100,
            expires_at: 5000,
        };
        assert_eq!(rules.apply(&store, entry, 1000), Ok(true), "new");
        assert_eq!(rules.apply(&store, entry, 1000), Ok(false), "an echo");
        let later = Entry {
            cutoff: 200,
            ..entry
        };
        assert_eq!(rules.apply(&store, later, 1000), Ok(true), "a later cutoff");
        let expired = Entry {
            id: 43,
            cutoff: 0,
            expires_at: 999,
        };
        assert_eq!(
            rules.apply(&store, expired, 1000),
            Ok(false),
            "expired: skipped"
        );
        assert_eq!(
            rules
                .revocations()
                .find(&store, 42, 1000)
                .ok()
                .flatten()
                .map(|e| e.cutoff),
            Some(200)
        );
    }

    #[test]
    fn sid_revokes_that_session_of_that_issuer_only() {
        let (rules, store) = setup(1000);
        let logout = VerifiedLogout::for_tests(A, Some("alice"), Some("s1"), "j1", 100, false);
        rules.record(&store, &logout, 100).unwrap();
        assert!(rules
            .is_revoked(&store, &session(A, "alice", Some("s1"), 50), 101)
            .unwrap());
        assert!(
            !rules
                .is_revoked(&store, &session(A, "alice", Some("s2"), 50), 101)
                .unwrap(),
            "other session of the user"
        );
        assert!(
            !rules
                .is_revoked(&store, &session(B, "alice", Some("s1"), 50), 101)
                .unwrap(),
            "same sid, other issuer"
        );
    }

    #[test]
    fn sub_revokes_sessions_issued_up_to_the_logout() {
        let (rules, store) = setup(1000);
        let logout = VerifiedLogout::for_tests(A, Some("alice"), None, "j1", 100, false);
        rules.record(&store, &logout, 100).unwrap();
        assert!(rules
            .is_revoked(&store, &session(A, "alice", Some("s1"), 90), 101)
            .unwrap());
        assert!(rules
            .is_revoked(&store, &session(A, "alice", None, 100), 101)
            .unwrap());
        assert!(
            !rules
                .is_revoked(&store, &session(A, "alice", Some("s9"), 101), 102)
                .unwrap(),
            "login after logout"
        );
        assert!(!rules
            .is_revoked(&store, &session(A, "bob", None, 90), 101)
            .unwrap());
        assert!(!rules
            .is_revoked(&store, &session(B, "alice", None, 90), 101)
            .unwrap());
    }

    #[test]
    fn all_sessions_option_revokes_by_sub_despite_sid() {
        let (rules, store) = setup(1000);
        let logout = VerifiedLogout::for_tests(A, Some("alice"), Some("s1"), "j1", 100, true);
        rules.record(&store, &logout, 100).unwrap();
        assert!(rules
            .is_revoked(&store, &session(A, "alice", Some("s2"), 90), 101)
            .unwrap());
    }

    #[test]
    fn replayed_jti_changes_nothing() {
        let (rules, store) = setup(1000);
        let first = VerifiedLogout::for_tests(A, Some("alice"), Some("s1"), "j1", 100, false);
        assert_eq!(rules.record(&store, &first, 100).unwrap().new_entries, 1);
        let replay = VerifiedLogout::for_tests(A, Some("alice"), Some("s2"), "j1", 100, false);
        assert_eq!(
            rules.record(&store, &replay, 101),
            Err(Rejection::JtiReplayed)
        );
        assert!(!rules
            .is_revoked(&store, &session(A, "alice", Some("s2"), 50), 102)
            .unwrap());
        // The same jti from another issuer is another token.
        let other = VerifiedLogout::for_tests(B, Some("alice"), Some("s2"), "j1", 100, false);
        assert!(rules.record(&store, &other, 101).is_ok());
    }

    #[test]
    fn revocations_expire_after_ttl() {
        let (rules, store) = setup(10);
        let logout = VerifiedLogout::for_tests(A, None, Some("s1"), "j1", 100, false);
        rules.record(&store, &logout, 100).unwrap();
        assert!(rules
            .is_revoked(&store, &session(A, "x", Some("s1"), 50), 109)
            .unwrap());
        assert!(!rules
            .is_revoked(&store, &session(A, "x", Some("s1"), 50), 110)
            .unwrap());
        let rev = rules.revocations();
        let swept: u32 = (0..rev.buckets())
            .map(|i| rev.sweep(&store, i, 110).unwrap())
            .sum();
        assert_eq!(swept, 1);
    }

    #[test]
    fn full_store_refuses_and_keeps_what_it_has() {
        let (rules, store) = capped(2);
        for i in 0..2 {
            let l = nth_logout(i);
            rules.record(&store, &l, 100).unwrap();
        }
        let l = VerifiedLogout::for_tests(A, None, Some("s9"), "j9", 100, false);
        assert_eq!(rules.record(&store, &l, 100), Err(Rejection::StoreFull));
        assert!(rules
            .is_revoked(&store, &session(A, "x", Some("s0"), 1), 101)
            .unwrap());
        // The refused logout did not consume its jti: once there is room, its retry works.
        let rev = rules.revocations();
        let swept: u32 = (0..rev.buckets())
            .map(|i| rev.sweep(&store, i, 2000).unwrap())
            .sum();
        assert_eq!(swept, 2);
        let retry = VerifiedLogout::for_tests(A, None, Some("s9"), "j9", 1990, false);
        assert_eq!(rules.record(&store, &retry, 2000).unwrap().new_entries, 1);
    }

    #[test]
    fn warns_once_at_eighty_percent() {
        let (rules, store) = capped(10);
        let warnings: Vec<bool> = (0..10)
            .map(|i| {
                let l = nth_logout(i);
                rules.record(&store, &l, 100).unwrap().crossed_warning
            })
            .collect();
        assert_eq!(warnings.iter().filter(|w| **w).count(), 1);
        assert!(warnings[7], "the 8th of 10 crosses 80 %");
    }

    #[test]
    fn capacity_is_exact_at_any_size() {
        for cap in [10u32, 1000, 20_000] {
            let (rules, store) = capped(cap);
            for i in 0..cap {
                let l = nth_logout(i);
                rules
                    .record(&store, &l, 100)
                    .unwrap_or_else(|e| panic!("{i} of {cap}: {e:?}"));
            }
            let l = VerifiedLogout::for_tests(A, None, Some("over"), "jover", 100, false);
            assert_eq!(rules.record(&store, &l, 100), Err(Rejection::StoreFull));
        }
    }

    /// Refuses writes to one key, like a host that cannot store it.
    struct RefusesKey<'a>(&'a MemoryStore, &'static str);

    impl SharedStore for RefusesKey<'_> {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
            self.0.get(key)
        }
        fn set(
            &self,
            key: &str,
            value: &[u8],
            cas: Option<u32>,
        ) -> Result<(), crate::shared_store::WriteError> {
            if key == self.1 {
                return Err(crate::shared_store::WriteError::Host("refused".into()));
            }
            self.0.set(key, value, cas)
        }
    }

    #[test]
    fn a_failed_generation_bump_is_a_store_error_that_keeps_the_jti_free() {
        let (rules, memory) = capped(10);
        let failing = RefusesKey(&memory, GENERATION_KEY);
        let logout = nth_logout(1);
        assert_eq!(
            rules.record(&failing, &logout, 100),
            Err(Rejection::StoreError)
        );
        // The retry, once the host stores again, is not a replay.
        assert!(rules.record(&memory, &logout, 100).is_ok());
        assert_eq!(rules.generation(&memory).unwrap(), 1 | SHARED_GENERATION);
    }

    /// Shared data with the host's change counter beside it (Envoy: a gauge).
    struct WithChangeCounter<'a>(&'a MemoryStore, std::cell::Cell<u64>);

    impl SharedStore for WithChangeCounter<'_> {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
            self.0.get(key)
        }
        fn set(
            &self,
            key: &str,
            value: &[u8],
            cas: Option<u32>,
        ) -> Result<(), crate::shared_store::WriteError> {
            self.0.set(key, value, cas)
        }
        fn change_count(&self) -> Option<u64> {
            Some(self.1.get())
        }
        fn count_change(&self) {
            self.1.set(self.1.get() + 1);
        }
    }

    #[test]
    fn the_generation_is_the_host_change_counter_when_there_is_one() {
        let (rules, memory) = capped(10);
        let counted = WithChangeCounter(&memory, std::cell::Cell::new(0));
        let before = rules.generation(&counted).unwrap();
        rules.record(&counted, &nth_logout(1), 100).unwrap();
        let after = rules.generation(&counted).unwrap();
        assert_eq!((before, after), (0, 1), "one change, counted once");
        // Shared data moved as well, and its values never equal a counter's: a worker whose
        // counter stops answering cannot take an old value for a current one.
        let shared = rules.generation(&memory).unwrap();
        assert_eq!(shared, 1 | SHARED_GENERATION);
        assert_ne!(rules.generation(&memory).unwrap(), after);
        // A fleet batch moves it too.
        rules.bump_generation(&counted).unwrap();
        assert_eq!(rules.generation(&counted).unwrap(), 2);
    }
}
