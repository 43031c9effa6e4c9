//! The host's serialized header map (proxy-wasm ABI `proxy_get_header_map_pairs`), read as
//! bytes.
//!
//! The SDK's own reader turns every name into a `String` and unwraps, so a header name the
//! codec let through with a non-UTF-8 byte would kill the VM; this one never panics, keeps
//! names and values as bytes, and keeps every entry (HTTP/1.1 may carry several `Cookie`
//! lines, and Envoy keeps them apart).
//!
//! Layout: `u32 count`, then `count` pairs of `u32 name_len, u32 value_len`, then for each
//! entry the name bytes, a NUL, the value bytes, a NUL. All integers little-endian.

/// One header as the host sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// Decodes a serialized header map. A truncated or inconsistent map yields the entries that
/// could be read before the inconsistency (never a panic, never an entry out of bounds).
pub fn parse_header_map(bytes: &[u8]) -> Vec<HeaderField<'_>> {
    let Some((count, rest)) = read_u32(bytes) else {
        return Vec::new();
    };
    // Each entry needs at least 8 size bytes and 2 NULs: a count beyond that is a lie.
    let count = (count as usize).min(rest.len() / 10);
    let Some((sizes, mut data)) = rest.split_at_checked(count * 8) else {
        return Vec::new();
    };
    let mut fields = Vec::with_capacity(count);
    for pair in sizes.chunks_exact(8) {
        let Some((name_len, tail)) = read_u32(pair) else {
            break;
        };
        let Some((value_len, _)) = read_u32(tail) else {
            break;
        };
        let Some((name, after_name)) = take_terminated(data, name_len as usize) else {
            break;
        };
        let Some((value, after_value)) = take_terminated(after_name, value_len as usize) else {
            break;
        };
        fields.push(HeaderField { name, value });
        data = after_value;
    }
    fields
}

/// The first value of header `name` (lower-case, as Envoy keeps names).
pub fn first_value<'a>(fields: &[HeaderField<'a>], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|f| f.name == name.as_bytes())
        .map(|f| f.value)
}

/// Every value of header `name`, in order.
pub fn all_values<'a, 'n>(
    fields: &'n [HeaderField<'a>],
    name: &'n str,
) -> impl Iterator<Item = &'a [u8]> + 'n {
    fields
        .iter()
        .filter(move |f| f.name == name.as_bytes())
        .map(|f| f.value)
}

fn read_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}

/// `len` bytes followed by a NUL.
fn take_terminated(bytes: &[u8], len: usize) -> Option<(&[u8], &[u8])> {
    let (field, rest) = bytes.split_at_checked(len)?;
    let (&nul, rest) = rest.split_first()?;
    (nul == 0).then_some((field, rest))
}

/// Serializes a header map the way the host does; for tests and fuzzing seeds.
pub fn serialize_header_map(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    for (name, value) in fields {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in fields {
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_bytes_and_repeats() {
        let map = serialize_header_map(&[
            (b":path", b"/x"),
            (b"cookie", b"a=\xff"),
            (b"cookie", b"IdToken=t"),
            (b"empty", b""),
        ]);
        let fields = parse_header_map(&map);
        assert_eq!(fields.len(), 4);
        assert_eq!(first_value(&fields, ":path"), Some(&b"/x"[..]));
        let cookies: Vec<&[u8]> = all_values(&fields, "cookie").collect();
        assert_eq!(cookies, vec![&b"a=\xff"[..], &b"IdToken=t"[..]]);
        assert_eq!(first_value(&fields, "empty"), Some(&b""[..]));
        assert_eq!(first_value(&fields, "missing"), None);
    }

    #[test]
    fn hostile_maps_never_panic() {
        assert!(parse_header_map(b"").is_empty());
        assert!(parse_header_map(&u32::MAX.to_le_bytes()).is_empty());
        let mut map = serialize_header_map(&[(b"a", b"b"), (b"c", b"d")]);
        map.truncate(map.len() - 2);
        assert_eq!(
            parse_header_map(&map).len(),
            1,
            "truncated second entry dropped"
        );
        let mut lying = serialize_header_map(&[(b"a", b"b")]);
        lying[4] = 200; // name length far past the end
        assert!(parse_header_map(&lying).is_empty());
        let mut no_nul = serialize_header_map(&[(b"a", b"b")]);
        let len = no_nul.len();
        no_nul[len - 1] = b'x';
        assert!(parse_header_map(&no_nul).is_empty());
    }
}
