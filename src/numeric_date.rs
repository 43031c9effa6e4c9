//! NumericDate (RFC 7519, 2): seconds since the epoch, possibly fractional. One reader for
//! every token this filter looks at (logout tokens, session ID tokens, bearer tokens).

use serde::de::{self, Deserialize, Deserializer};
use serde_json::Number;

/// Whole seconds of a JSON number; fractions are floored. `None` for NaN-like or huge values
/// that fit no `i64`.
pub fn seconds(n: &Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 9.0e18)
            .map(|f| f.floor() as i64)
    })
}

/// `#[serde(deserialize_with = "numeric_date::deserialize")]` for a required NumericDate.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let n = Number::deserialize(deserializer)?;
    seconds(&n).ok_or_else(|| de::Error::custom("not a NumericDate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_fractions_and_nonsense() {
        let n = |s: &str| serde_json::from_str::<Number>(s).unwrap();
        assert_eq!(seconds(&n("5")), Some(5));
        assert_eq!(seconds(&n("5.7")), Some(5));
        assert_eq!(seconds(&n("-1.5")), Some(-2));
        assert_eq!(seconds(&n("1e300")), None);
        assert_eq!(seconds(&n("18446744073709551615")), None);
    }
}
