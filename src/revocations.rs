//! The revocation rules: what a verified logout writes, and whether a session is revoked.
//!
//! Keys: a session is revoked by (issuer, sid); a user's sessions by (issuer, sub) with a
//! cutoff, the logout token's `iat`, so a login after the logout stays valid. The issuer is
//! part of every key: a `sid` from one OP never touches another OP's sessions.

use crate::bucket::{BucketedSet, Entry, EntryKind, InsertError, OnExisting};
use crate::logout_token::VerifiedLogout;
use crate::rejection::Rejection;
use crate::session_cookie::SessionClaims;
use crate::shared_store::SharedStore;

/// Shared-data key prefixes. Part of the stored format: change them only with a migration.
const REVOCATION_PREFIX: &str = "bcl:r:";
const TOKEN_ID_PREFIX: &str = "bcl:j:";
/// Each replay bucket holds this many `jti`s; the bucket count scales with the revocation
/// buckets (a quarter, at least 16).
const TOKEN_IDS_PER_BUCKET: usize = 256;

/// Sizing of the store, from the plugin configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    pub revocation_buckets: u32,
    pub max_revocations: u32,
    pub revocation_ttl_seconds: i64,
}

/// What recording a logout changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Recorded {
    /// Change in the number of stored revocation entries, for the gauge.
    pub entry_delta: i64,
}

/// The revocation and replay state kept in shared data.
#[derive(Clone, Debug)]
pub struct RevocationStore {
    revocations: BucketedSet,
    token_ids: BucketedSet,
    ttl: i64,
}

impl RevocationStore {
    pub fn new(limits: &StoreLimits) -> Self {
        let buckets = limits.revocation_buckets.max(1);
        let per_bucket = limits.max_revocations.div_ceil(buckets).max(1) as usize;
        RevocationStore {
            revocations: BucketedSet::new(REVOCATION_PREFIX, buckets, per_bucket),
            token_ids: BucketedSet::new(
                TOKEN_ID_PREFIX,
                (buckets / 4).max(16),
                TOKEN_IDS_PER_BUCKET,
            ),
            ttl: limits.revocation_ttl_seconds,
        }
    }

    pub fn revocation_buckets(&self) -> &BucketedSet {
        &self.revocations
    }

    pub fn token_id_buckets(&self) -> &BucketedSet {
        &self.token_ids
    }

    /// Creates every key up front (see [`BucketedSet::ensure_created`]).
    pub fn ensure_created(&self, store: &dyn SharedStore) -> Result<(), String> {
        self.revocations.ensure_created(store)?;
        self.token_ids.ensure_created(store)
    }

    /// Records a verified logout: first claims its `jti` (step 8, replay), then stores the
    /// session and/or user revocation. A replayed token changes nothing.
    pub fn record(
        &self,
        store: &dyn SharedStore,
        logout: &VerifiedLogout,
        now: i64,
    ) -> Result<Recorded, Rejection> {
        let token_id = Entry {
            kind: EntryKind::TokenId,
            issuer: logout.issuer().to_owned(),
            value: logout.jti().to_owned(),
            cutoff: 0,
            expires_at: logout.valid_until().max(now) + 1,
        };
        let claimed = self
            .token_ids
            .insert(store, &token_id, OnExisting::Keep, now)
            .map_err(store_rejection)?;
        if !claimed.inserted {
            return Err(Rejection::JtiReplayed);
        }

        let expires_at = now.saturating_add(self.ttl);
        let revoke = |kind: EntryKind, value: &str| -> Result<i64, Rejection> {
            let entry = Entry {
                kind,
                issuer: logout.issuer().to_owned(),
                value: value.to_owned(),
                cutoff: logout.iat(),
                expires_at,
            };
            self.revocations
                .insert(store, &entry, OnExisting::Merge, now)
                .map(|outcome| outcome.entry_delta)
                .map_err(store_rejection)
        };
        let mut entry_delta = 0;
        if let Some(sid) = logout.sid().filter(|_| logout.revokes_session()) {
            entry_delta += revoke(EntryKind::Session, sid)?;
        }
        if let Some(sub) = logout.sub().filter(|_| logout.revokes_user_sessions()) {
            entry_delta += revoke(EntryKind::User, sub)?;
        }
        Ok(Recorded { entry_delta })
    }

    /// True when the session is revoked: its (issuer, sid) is, or its (issuer, sub) is with a
    /// cutoff at or after the session's `iat`. At most two shared-data reads.
    pub fn is_revoked(
        &self,
        store: &dyn SharedStore,
        session: &SessionClaims,
        now: i64,
    ) -> Result<bool, String> {
        if let Some(sid) = session.sid.as_deref() {
            let hit =
                self.revocations
                    .find(store, EntryKind::Session, &session.iss, sid, now, |_| ())?;
            if hit.is_some() {
                return Ok(true);
            }
        }
        if let Some(sub) = session.sub.as_deref() {
            let cutoff =
                self.revocations
                    .find(store, EntryKind::User, &session.iss, sub, now, |v| v.cutoff)?;
            if cutoff.is_some_and(|cutoff| session.iat <= cutoff) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Sweeps revocation bucket `index` and the replay bucket of the same index (if any);
    /// returns the change in revocation entries.
    pub fn sweep(&self, store: &dyn SharedStore, index: u32, now: i64) -> Result<i64, String> {
        if index < self.token_ids.buckets() {
            self.token_ids.sweep(store, index, now)?;
        }
        self.revocations.sweep(store, index, now)
    }
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

    fn setup(ttl: i64) -> (RevocationStore, MemoryStore) {
        let rules = RevocationStore::new(&StoreLimits {
            revocation_buckets: 8,
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
        assert_eq!(rules.record(&store, &first, 100).unwrap().entry_delta, 1);
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
        let swept: i64 = (0..8).map(|i| rules.sweep(&store, i, 110).unwrap()).sum();
        assert_eq!(swept, -1);
    }

    #[test]
    fn full_store_refuses_and_keeps_what_it_has() {
        let rules = RevocationStore::new(&StoreLimits {
            revocation_buckets: 1,
            max_revocations: 2,
            revocation_ttl_seconds: 1000,
        });
        let store = MemoryStore::default();
        for i in 0..2 {
            let l = VerifiedLogout::for_tests(
                A,
                None,
                Some(&format!("s{i}")),
                &format!("j{i}"),
                100,
                false,
            );
            rules.record(&store, &l, 100).unwrap();
        }
        let l = VerifiedLogout::for_tests(A, None, Some("s9"), "j9", 100, false);
        assert_eq!(rules.record(&store, &l, 100), Err(Rejection::StoreFull));
        assert!(rules
            .is_revoked(&store, &session(A, "x", Some("s0"), 1), 101)
            .unwrap());
    }
}
