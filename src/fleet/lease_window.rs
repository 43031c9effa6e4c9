//! etcd leases shared by time window: every key written in etcd carries the lease of the
//! minute its entry expires in, so etcd deletes it then, with one lease per minute of the
//! time to live instead of one per logout.
//!
//! The lease id is derived from the key prefix and the window, so every Envoy of the fleet
//! computes the same id with no coordination: whoever writes first grants it (a second grant
//! of an existing id fails with "lease already exists", which is the wanted state). A
//! window's lease expires at the window's end plus [`LEASE_GRACE_SECONDS`]: an entry lives in
//! etcd at least as long as it is enforced locally, at most a window and the grace longer.

/// Width of a lease window.
pub const LEASE_WINDOW_SECONDS: i64 = 60;
/// Extra life of a lease past its window's end.
pub const LEASE_GRACE_SECONDS: i64 = 5;

/// A lease to use (and to grant if etcd does not have it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseSpec {
    pub id: i64,
    pub ttl_seconds: i64,
}

/// The lease for an entry that expires at `expires_at` (Unix seconds), granted at `now`.
pub fn lease_for(prefix: &str, expires_at: u32, now: i64) -> LeaseSpec {
    let window = i64::from(expires_at).div_euclid(LEASE_WINDOW_SECONDS) + 1;
    let window_end = window.saturating_mul(LEASE_WINDOW_SECONDS);
    LeaseSpec {
        id: lease_id(prefix, window),
        ttl_seconds: (window_end - now).max(1) + LEASE_GRACE_SECONDS,
    }
}

/// Positive, nonzero, and the same for every Envoy with this prefix: 30 bits of the prefix's
/// hash above 32 bits of the window number (a window is a minute: good until year 10,000).
fn lease_id(prefix: &str, window: i64) -> i64 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in prefix.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let high = i64::from(hash & 0x3fff_ffff) | 0x4000_0000;
    (high << 32) | (window & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_one_minute_share_a_lease_that_outlives_them() {
        let now = 1_700_000_000;
        let a = lease_for("/bcl/", 1_700_003_600, now);
        let b = lease_for("/bcl/", 1_700_003_619, now);
        assert_eq!(a.id, b.id);
        let c = lease_for("/bcl/", 1_700_003_660, now);
        assert_ne!(a.id, c.id);
        // The lease ends after the entry, by less than a window and the grace.
        for expires in [1_700_003_600_u32, 1_700_003_619, 1_700_003_659] {
            let lease = lease_for("/bcl/", expires, now);
            let lease_end = now + lease.ttl_seconds;
            assert!(lease_end > i64::from(expires));
            assert!(lease_end <= i64::from(expires) + LEASE_WINDOW_SECONDS + LEASE_GRACE_SECONDS);
        }
    }

    #[test]
    fn ids_are_positive_and_differ_between_prefixes() {
        let a = lease_for("/fleet-a/", 1_700_000_000, 0);
        let b = lease_for("/fleet-b/", 1_700_000_000, 0);
        assert!(a.id > 0 && b.id > 0);
        assert_ne!(a.id, b.id);
        assert!(lease_for("/x/", 0, 0).ttl_seconds >= 1);
    }
}
