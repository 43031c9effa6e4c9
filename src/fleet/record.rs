//! How one revocation and one used `jti` are written in etcd: keys under the fleet's prefix,
//! values of fixed size.
//!
//! etcd holds only what enforcement needs: the entry's 64-bit id (a hash of kind, issuer and
//! `sid` or `sub`, see `entry_id.rs`; no identifier in clear, no token, no claim), the cutoff,
//! the expiry, and when it was written (to measure propagation lag).
//!
//! - revocation: key `<prefix>r/<id as 16 hex>-<cutoff as 8 hex>`, value
//!   `[1, id u64, cutoff u32, expires_at u32, written_ms u64]` (little-endian, 25 bytes).
//!   The cutoff is part of the key so that two Envoys revoking one user at different times
//!   never overwrite each other: every Envoy merges both, keeping the later cutoff.
//! - used `jti`: key `<prefix>j/<id as 16 hex>`, value `[1, expires_at u32]`. Only ever
//!   written by a create-if-absent transaction (fleet-wide replay detection); never watched.

use crate::bucket::Entry;

const VALUE_FORMAT: u8 = 1;
/// Bytes of a revocation value.
pub const REVOCATION_VALUE_BYTES: usize = 25;

/// One revocation as read back from etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetRevocation {
    pub entry: Entry,
    /// When the Envoy that accepted the logout wrote it (Unix milliseconds, its clock).
    pub written_ms: u64,
}

/// Why a key or value under the prefix is not a revocation this version understands.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Not under `<prefix>r/`.
    NotARevocation,
    /// The value's size or format byte is wrong.
    BadValue,
    /// The key names another id or cutoff than the value holds.
    KeyMismatch,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordError::NotARevocation => "key is not a revocation key",
            RecordError::BadValue => "value is not a version-1 revocation record",
            RecordError::KeyMismatch => "key and value name different revocations",
        })
    }
}

/// The first key of the revocations (`<prefix>r/`); with [`revocations_range_end`], the range
/// a load reads and the watch follows.
pub fn revocations_key_start(prefix: &str) -> Vec<u8> {
    format!("{prefix}r/").into_bytes()
}

/// The end (exclusive) of the revocation range: `<prefix>r0` (`0` follows `/`).
pub fn revocations_range_end(prefix: &str) -> Vec<u8> {
    format!("{prefix}r0").into_bytes()
}

pub fn revocation_key(prefix: &str, entry: &Entry) -> Vec<u8> {
    format!("{prefix}r/{:016x}-{:08x}", entry.id, entry.cutoff).into_bytes()
}

pub fn revocation_value(entry: &Entry, written_ms: u64) -> Vec<u8> {
    let mut value = Vec::with_capacity(REVOCATION_VALUE_BYTES);
    value.push(VALUE_FORMAT);
    value.extend_from_slice(&entry.id.to_le_bytes());
    value.extend_from_slice(&entry.cutoff.to_le_bytes());
    value.extend_from_slice(&entry.expires_at.to_le_bytes());
    value.extend_from_slice(&written_ms.to_le_bytes());
    value
}

pub fn token_id_key(prefix: &str, token_id: u64) -> Vec<u8> {
    format!("{prefix}j/{token_id:016x}").into_bytes()
}

pub fn token_id_value(expires_at: u32) -> Vec<u8> {
    let mut value = Vec::with_capacity(5);
    value.push(VALUE_FORMAT);
    value.extend_from_slice(&expires_at.to_le_bytes());
    value
}

/// Reads a revocation back. The key must agree with the value: a value copied under another
/// key (by hand, or by a bug) is refused rather than applied to the wrong sessions.
pub fn decode_revocation(
    prefix: &str,
    key: &[u8],
    value: &[u8],
) -> Result<FleetRevocation, RecordError> {
    let start = revocations_key_start(prefix);
    let name = key
        .strip_prefix(start.as_slice())
        .ok_or(RecordError::NotARevocation)?;
    let bytes: &[u8; REVOCATION_VALUE_BYTES] =
        value.try_into().map_err(|_| RecordError::BadValue)?;
    let [format, rest @ ..] = bytes;
    if *format != VALUE_FORMAT {
        return Err(RecordError::BadValue);
    }
    let (id, rest) = rest.split_first_chunk::<8>().ok_or(RecordError::BadValue)?;
    let (cutoff, rest) = rest.split_first_chunk::<4>().ok_or(RecordError::BadValue)?;
    let (expires_at, rest) = rest.split_first_chunk::<4>().ok_or(RecordError::BadValue)?;
    let written_ms = rest.first_chunk::<8>().ok_or(RecordError::BadValue)?;
    let entry = Entry {
        id: u64::from_le_bytes(*id),
        cutoff: u32::from_le_bytes(*cutoff),
        expires_at: u32::from_le_bytes(*expires_at),
    };
    let expected = format!("{:016x}-{:08x}", entry.id, entry.cutoff);
    if name != expected.as_bytes() {
        return Err(RecordError::KeyMismatch);
    }
    Ok(FleetRevocation {
        entry,
        written_ms: u64::from_le_bytes(*written_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: Entry = Entry {
        id: 0x0123_4567_89ab_cdef,
        cutoff: 1_700_000_000,
        expires_at: 1_700_086_400,
    };

    #[test]
    fn a_revocation_reads_back_as_written() {
        let key = revocation_key("/bcl/", &ENTRY);
        assert_eq!(key, b"/bcl/r/0123456789abcdef-6553f100".to_vec());
        let value = revocation_value(&ENTRY, 42);
        assert_eq!(value.len(), REVOCATION_VALUE_BYTES);
        assert_eq!(
            decode_revocation("/bcl/", &key, &value),
            Ok(FleetRevocation {
                entry: ENTRY,
                written_ms: 42
            })
        );
    }

    #[test]
    fn the_range_covers_revocations_and_nothing_else() {
        let key = revocation_key("/bcl/", &ENTRY);
        assert!(key.as_slice() >= revocations_key_start("/bcl/").as_slice());
        assert!(key.as_slice() < revocations_range_end("/bcl/").as_slice());
        let jti = token_id_key("/bcl/", 7);
        assert!(jti.as_slice() < revocations_key_start("/bcl/").as_slice());
    }

    #[test]
    fn foreign_or_damaged_records_are_refused() {
        let key = revocation_key("/bcl/", &ENTRY);
        let value = revocation_value(&ENTRY, 1);
        assert_eq!(
            decode_revocation("/other/", &key, &value),
            Err(RecordError::NotARevocation)
        );
        for len in 0..value.len() {
            assert_eq!(
                decode_revocation("/bcl/", &key, value.get(..len).unwrap_or_default()),
                Err(RecordError::BadValue)
            );
        }
        let mut wrong_format = value.clone();
        if let Some(b) = wrong_format.first_mut() {
            *b = 9;
        }
        assert_eq!(
            decode_revocation("/bcl/", &key, &wrong_format),
            Err(RecordError::BadValue)
        );
        let other = Entry { id: 1, ..ENTRY };
        assert_eq!(
            decode_revocation("/bcl/", &revocation_key("/bcl/", &other), &value),
            Err(RecordError::KeyMismatch)
        );
    }
}
