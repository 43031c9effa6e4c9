//! The 64-bit identifier a revocation or a replay-cache entry is stored under.
//!
//! Why hashed: an entry then takes 16 bytes whatever the length of the issuer and the id
//! (the store's memory bound holds at 1,000,000 revocations), and no `sub`, `sid` or `jti`
//! sits in Envoy's memory in clear. A collision can only refuse a session that was not
//! revoked (or call a fresh `jti` a replay): never let a revoked session pass. With 10^6
//! entries the chance that a given lookup hits a foreign entry is about 10^6 / 2^64 = 5e-14.
//!
//! The encoding is length-prefixed, so ("ab", "c") and ("a", "bc") differ, and the kind is
//! part of it, so a `sid` never matches a `sub` or a `jti`. The issuer is part of it, so a
//! `sid` from one issuer never touches another issuer's sessions.

/// What an identifier names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// One session: (issuer, sid).
    Session = 1,
    /// Every session of a user up to a cutoff: (issuer, sub).
    User = 2,
    /// A logout token already used: (issuer, jti).
    TokenId = 3,
}

/// FNV-1a 64 over `kind, len(issuer), issuer, value`, then murmur3's 64-bit finalizer so
/// that every bit of the result depends on every input byte (buckets are picked from it).
pub fn entry_id(kind: EntryKind, issuer: &str, value: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(&[kind as u8]);
    feed(&(issuer.len() as u64).to_le_bytes());
    feed(issuer.as_bytes());
    feed(value.as_bytes());
    fmix64(hash)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_issuer_and_boundaries_matter() {
        let a = entry_id(EntryKind::Session, "https://a", "s1");
        assert_eq!(a, entry_id(EntryKind::Session, "https://a", "s1"));
        assert_ne!(a, entry_id(EntryKind::User, "https://a", "s1"));
        assert_ne!(a, entry_id(EntryKind::Session, "https://b", "s1"));
        assert_ne!(
            entry_id(EntryKind::Session, "ab", "c"),
            entry_id(EntryKind::Session, "a", "bc")
        );
    }
}
