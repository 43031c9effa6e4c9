//! Byte search and comparison eight bytes at a time, for the per-request path.
//!
//! In `wasm32-wasip1` a byte slice comparison is wasi-libc's `memcmp` and a search is a loop,
//! both one byte per step. The session check runs on every request and walks a `Cookie` line
//! of a few KB and compares a remembered token of about 1 KB; reading `u64` words instead
//! makes those walks several times shorter (bench/instructions.sh).

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The position of the first `needle` in `haystack`.
pub fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    let pattern = ONES * u64::from(needle);
    let mut words = haystack.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let x = word_of(word) ^ pattern;
        // A byte of `x` is zero where `needle` is. The lowest flagged byte is always a true
        // match (a borrow only flags bytes above one), and little-endian puts it first.
        let flags = x.wrapping_sub(ONES) & !x & HIGH_BITS;
        if flags != 0 {
            return Some(offset + (flags.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|b| *b == needle)
        .map(|i| offset + i)
}

/// `a == b`, a word at a time.
pub fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    if !(&mut wa)
        .zip(&mut wb)
        .all(|(x, y)| word_of(x) == word_of(y))
    {
        return false;
    }
    wa.remainder() == wb.remainder()
}

/// Splits at the first `separator`: the part before it, and the rest after it if there was one.
pub fn split_at_byte(bytes: &[u8], separator: u8) -> (&[u8], Option<&[u8]>) {
    match find_byte(bytes, separator).and_then(|i| bytes.split_at_checked(i)) {
        Some((before, rest)) => (before, rest.get(1..)),
        None => (bytes, None),
    }
}

/// Eight bytes as a little-endian word (the caller passes `chunks_exact(8)` items).
fn word_of(bytes: &[u8]) -> u64 {
    bytes
        .first_chunk::<8>()
        .map_or(0, |word| u64::from_le_bytes(*word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_byte_at_every_offset_and_around_lookalikes() {
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'a'; len];
                bytes[at] = b';';
                if at + 1 < len {
                    bytes[at + 1] = b';';
                }
                assert_eq!(find_byte(&bytes, b';'), Some(at), "len {len} at {at}");
            }
            assert_eq!(find_byte(&vec![b'a'; len], b';'), None);
        }
        // Bytes next to the needle's value, zero and high bytes: no false match.
        let tricky = [0x3a, 0x3c, 0x00, 0xbb, 0xff, 0x3b ^ 0x80, 0x01, 0x3a, 0x3b];
        assert_eq!(find_byte(&tricky, b';'), Some(8));
        assert_eq!(find_byte(&[0u8; 17], 0), Some(0));
        assert_eq!(find_byte(&[1, 1, 1, 1, 1, 1, 1, 1, 0], 0), Some(8));
    }

    #[test]
    fn compares_like_slice_equality() {
        for len in 0..40 {
            let a: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert!(bytes_equal(&a, &a.clone()));
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x80;
                assert!(!bytes_equal(&a, &b), "len {len} at {at}");
            }
            assert!(!bytes_equal(&a, &a[..len.saturating_sub(1)]) || len == 0);
        }
    }

    #[test]
    fn splits_at_the_first_separator() {
        assert_eq!(
            split_at_byte(b"a=1; b=2", b';'),
            (&b"a=1"[..], Some(&b" b=2"[..]))
        );
        assert_eq!(split_at_byte(b"a=1;", b';'), (&b"a=1"[..], Some(&b""[..])));
        assert_eq!(split_at_byte(b"a=1", b';'), (&b"a=1"[..], None));
        assert_eq!(split_at_byte(b"", b';'), (&b""[..], None));
    }
}
