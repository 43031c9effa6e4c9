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

/// The revocation keys split by the first byte of the id (its first two hex digits): a load
/// reads them slice by slice. Why: etcd 3.4 walks every key from a Range's start to its end
/// whatever the `limit` (etcd-io/etcd#11057), so paging through one range of 1,000,000 keys
/// cost 2 minutes (quadratic); a slice holds 1/256 of them.
pub const REVOCATION_SLICES: u16 = 256;

/// Where slice `slice` starts (slice 0 starts at the range's start, so nothing sorts before).
pub fn revocation_slice_start(prefix: &str, slice: u16) -> Vec<u8> {
    if slice == 0 {
        revocations_key_start(prefix)
    } else {
        format!("{prefix}r/{slice:02x}").into_bytes()
    }
}

/// Where slice `slice` ends (exclusive); the last slice ends with the range.
pub fn revocation_slice_end(prefix: &str, slice: u16) -> Vec<u8> {
    if slice + 1 >= REVOCATION_SLICES {
        revocations_range_end(prefix)
    } else {
        format!("{prefix}r/{:02x}", slice + 1).into_bytes()
    }
}

/// The slice a key under the revocation range falls in.
pub fn revocation_slice_of(prefix: &str, key: &[u8]) -> u16 {
    let start = revocations_key_start(prefix);
    let digits = key
        .strip_prefix(start.as_slice())
        .and_then(|rest| rest.get(..2));
    match digits
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| u16::from_str_radix(d, 16).ok())
    {
        Some(slice) => slice,
        // Not two hex digits: sorts before "00" (slice 0) or after "ff" (the last slice).
        None if key < revocation_slice_start(prefix, 1).as_slice() => 0,
        None => REVOCATION_SLICES - 1,
    }
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
    fn slices_cover_the_range_in_order_without_gaps() {
        let p = "/bcl/";
        assert_eq!(revocation_slice_start(p, 0), revocations_key_start(p));
        assert_eq!(
            revocation_slice_end(p, REVOCATION_SLICES - 1),
            revocations_range_end(p)
        );
        for slice in 0..REVOCATION_SLICES - 1 {
            assert_eq!(
                revocation_slice_end(p, slice),
                revocation_slice_start(p, slice + 1)
            );
            assert!(revocation_slice_start(p, slice) < revocation_slice_end(p, slice));
        }
        for id in [0u64, 0x09ff_ffff_ffff_ffff, 0x0a00_0000_0000_0000, u64::MAX] {
            let key = revocation_key(p, &Entry { id, ..ENTRY });
            let slice = revocation_slice_of(p, &key);
            assert_eq!(u64::from(slice), id >> 56);
            assert!(key.as_slice() >= revocation_slice_start(p, slice).as_slice());
            assert!(key.as_slice() < revocation_slice_end(p, slice).as_slice());
        }
        assert_eq!(revocation_slice_of(p, b"/bcl/r/zz"), REVOCATION_SLICES - 1);
        assert_eq!(revocation_slice_of(p, b"/bcl/r/-"), 0);
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
