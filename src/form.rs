//! The back-channel request body: `application/x-www-form-urlencoded` with one `logout_token`.
//!
//! Parsed by hand (the WHATWG urlencoded parser's rules) because the whole body must be checked:
//! a body that is not valid form encoding is refused rather than half-read.

use crate::rejection::Rejection;

const LOGOUT_TOKEN: &[u8] = b"logout_token";

/// True when the media type is `application/x-www-form-urlencoded`, ignoring case, optional
/// whitespace and parameters such as `charset=UTF-8`.
/// Bytes, because the header comes from the client as bytes.
pub fn is_form_urlencoded(content_type: &[u8]) -> bool {
    let media_type = content_type
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    media_type.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

/// Returns the single, non-empty `logout_token` of a form body. Other parameters are ignored
/// but must still be validly encoded.
pub fn extract_logout_token(body: &[u8]) -> Result<String, Rejection> {
    let mut token: Option<String> = None;
    for pair in body.split(|b| *b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(eq) => (
                pair.get(..eq).unwrap_or_default(),
                pair.get(eq + 1..).unwrap_or_default(),
            ),
            None => (pair, &[][..]),
        };
        let name = percent_decode(name)?;
        let value = percent_decode(value)?;
        if name.as_bytes() == LOGOUT_TOKEN {
            if token.is_some() {
                return Err(Rejection::LogoutTokenRepeated);
            }
            token = Some(value);
        }
    }
    match token {
        None => Err(Rejection::LogoutTokenMissing),
        Some(t) if t.is_empty() => Err(Rejection::LogoutTokenEmpty),
        Some(t) => Ok(t),
    }
}

/// Decodes `+` and `%XX`; a `%` not followed by two hex digits, or a result that is not
/// UTF-8, makes the body invalid.
fn percent_decode(input: &[u8]) -> Result<String, Rejection> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|c| hex_value(*c));
                let lo = bytes.next().and_then(|c| hex_value(*c));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(Rejection::FormEncoding),
                }
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| Rejection::FormEncoding)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_form_urlencoded(b"application/x-www-form-urlencoded"));
        assert!(is_form_urlencoded(
            b"Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        ));
        assert!(is_form_urlencoded(
            b" application/x-www-form-urlencoded ;charset=utf-8"
        ));
        assert!(!is_form_urlencoded(b"application/json"));
        assert!(!is_form_urlencoded(b"multipart/form-data; boundary=x"));
        assert!(!is_form_urlencoded(b""));
    }

    #[test]
    fn finds_the_token_among_other_parameters() {
        assert_eq!(
            extract_logout_token(b"state=x&logout_token=a.b.c&other=%20y+z").unwrap(),
            "a.b.c"
        );
        assert_eq!(
            extract_logout_token(b"logout_token=a%2Eb.c").unwrap(),
            "a.b.c"
        );
        assert_eq!(extract_logout_token(b"&&logout_token=t&").unwrap(), "t");
    }

    #[test]
    fn refusals() {
        assert_eq!(
            extract_logout_token(b""),
            Err(Rejection::LogoutTokenMissing)
        );
        assert_eq!(
            extract_logout_token(b"foo=bar"),
            Err(Rejection::LogoutTokenMissing)
        );
        assert_eq!(
            extract_logout_token(b"logout_token="),
            Err(Rejection::LogoutTokenEmpty)
        );
        assert_eq!(
            extract_logout_token(b"logout_token"),
            Err(Rejection::LogoutTokenEmpty)
        );
        assert_eq!(
            extract_logout_token(b"logout_token=a&logout_token=b"),
            Err(Rejection::LogoutTokenRepeated)
        );
        assert_eq!(
            extract_logout_token(b"logout_token=a&x=%zz"),
            Err(Rejection::FormEncoding)
        );
        assert_eq!(
            extract_logout_token(b"logout_token=%4"),
            Err(Rejection::FormEncoding)
        );
        assert_eq!(
            extract_logout_token(b"logout_token=%ff"),
            Err(Rejection::FormEncoding)
        );
    }

    #[test]
    fn encoded_name_counts() {
        assert_eq!(
            extract_logout_token(b"logout%5Ftoken=a&logout_token=b"),
            Err(Rejection::LogoutTokenRepeated)
        );
    }
}
