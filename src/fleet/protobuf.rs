//! Just enough of the protobuf wire format (proto3) to speak etcd v3's gRPC API by hand.
//!
//! Why by hand: the few etcd messages the filter sends and reads need a handful of scalar,
//! bytes and nested-message fields, which is less code than a generated codec and its
//! runtime in a wasm module, and every byte read from the network goes through the bounded,
//! panic-free [`Reader`] below.
//!
//! [`Writer`] encodes fields in the order the caller writes them; its typed methods leave
//! proto3 default values out, as a generated encoder does. [`Reader`] walks the fields of one
//! message: the caller keeps the ones it knows and skips the rest (proto3 unknown fields).
//! Groups (deprecated wire types 3 and 4), wire types 6 and 7, field number 0, varints
//! longer than 10 bytes and anything cut short are errors, never a panic.

use std::fmt;

/// Wire type of varint fields (`int64`, `uint64`, `bool`, enums...).
const WIRE_VARINT: u8 = 0;
/// Wire type of 8-byte little-endian fields (`fixed64`, `sfixed64`, `double`).
const WIRE_FIXED64: u8 = 1;
/// Wire type of length-delimited fields (`bytes`, `string`, messages, packed repeated).
const WIRE_LEN: u8 = 2;
/// Wire type of the deprecated group start marker.
const WIRE_START_GROUP: u8 = 3;
/// Wire type of the deprecated group end marker.
const WIRE_END_GROUP: u8 = 4;
/// Wire type of 4-byte little-endian fields (`fixed32`, `sfixed32`, `float`).
const WIRE_FIXED32: u8 = 5;

/// A `u64` takes at most 10 varint bytes (7 bits each; the tenth carries bit 63 only).
pub const MAX_VARINT_BYTES: usize = 10;
/// Highest field number protobuf allows (2^29 - 1).
pub const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// Why bytes are not a well-formed protobuf message (or not the field type expected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// The input ends inside a tag, a varint, a length or a field's value.
    Truncated,
    /// A varint runs past 10 bytes or past 64 bits.
    VarintTooLong,
    /// A group (wire type 3 or 4): proto3 has none, and skipping one needs a nesting walk.
    Group,
    /// Wire type 6 or 7, which do not exist.
    InvalidWireType(u8),
    /// Field number 0 or above [`MAX_FIELD_NUMBER`].
    InvalidFieldNumber,
    /// A known field arrived with another wire type than its declared type uses.
    WrongWireType,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Truncated => f.write_str("protobuf message truncated"),
            ProtoError::VarintTooLong => f.write_str("protobuf varint longer than 64 bits"),
            ProtoError::Group => f.write_str("protobuf group fields are not supported"),
            ProtoError::InvalidWireType(t) => write!(f, "protobuf wire type {t} does not exist"),
            ProtoError::InvalidFieldNumber => f.write_str("protobuf field number out of range"),
            ProtoError::WrongWireType => f.write_str("protobuf field has an unexpected wire type"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// Encodes one message, field after field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// The message's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The message's bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    fn raw_varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    fn tag(&mut self, field: u32, wire_type: u8) {
        self.raw_varint((u64::from(field) << 3) | u64::from(wire_type));
    }

    /// A varint field, written even when 0.
    pub fn varint(&mut self, field: u32, value: u64) {
        self.tag(field, WIRE_VARINT);
        self.raw_varint(value);
    }

    /// A fixed64 field (8 bytes little-endian), written even when 0.
    pub fn fixed64(&mut self, field: u32, value: u64) {
        self.tag(field, WIRE_FIXED64);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    /// A fixed32 field (4 bytes little-endian), written even when 0.
    pub fn fixed32(&mut self, field: u32, value: u32) {
        self.tag(field, WIRE_FIXED32);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    /// A length-delimited field, written even when empty.
    pub fn length_delimited(&mut self, field: u32, value: &[u8]) {
        self.tag(field, WIRE_LEN);
        self.raw_varint(value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    /// An `int64` (or enum) field, left out when 0. A negative value takes 10 bytes (two's
    /// complement, as protobuf encodes `int64`).
    pub fn int64(&mut self, field: u32, value: i64) {
        if value != 0 {
            self.int64_explicit(field, value);
        }
    }

    /// An `int64` field written even when 0: a oneof member, whose presence is the point.
    pub fn int64_explicit(&mut self, field: u32, value: i64) {
        self.varint(field, value as u64);
    }

    /// A `uint64` field, left out when 0.
    pub fn uint64(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.varint(field, value);
        }
    }

    /// A `bool` field, left out when false.
    pub fn bool(&mut self, field: u32, value: bool) {
        if value {
            self.varint(field, 1);
        }
    }

    /// A `bytes` field, left out when empty.
    pub fn bytes(&mut self, field: u32, value: &[u8]) {
        if !value.is_empty() {
            self.length_delimited(field, value);
        }
    }

    /// A `string` field, left out when empty.
    pub fn string(&mut self, field: u32, value: &str) {
        self.bytes(field, value.as_bytes());
    }

    /// A nested message field, always written (a present sub-message, even an empty one, is
    /// not the same as an absent one). `build` writes the sub-message's fields.
    pub fn message(&mut self, field: u32, build: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::new();
        build(&mut inner);
        self.length_delimited(field, &inner.buf);
    }
}

/// One field's value as the wire carries it; its meaning comes from the field's declared type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// An `int64`, `int32` or enum field (a negative `int32` is sign-extended on the wire).
    pub fn int64(self) -> Result<i64, ProtoError> {
        self.uint64().map(|v| v as i64)
    }

    /// A `uint64` field.
    pub fn uint64(self) -> Result<u64, ProtoError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(ProtoError::WrongWireType),
        }
    }

    /// A `bool` field: any non-zero varint is true.
    pub fn bool(self) -> Result<bool, ProtoError> {
        self.uint64().map(|v| v != 0)
    }

    /// A `bytes`, `string` or message field.
    pub fn bytes(self) -> Result<&'a [u8], ProtoError> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(ProtoError::WrongWireType),
        }
    }

    /// A `string` field; invalid UTF-8 is replaced rather than failing the message.
    pub fn string(self) -> Result<String, ProtoError> {
        self.bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// The fields of one message, in wire order: `(field number, value)`.
///
/// Yields each field, or one error and then nothing: after malformed bytes the position of
/// the next field is unknown.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Reader<'a> {
    /// The fields of the message `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            failed: false,
        }
    }

    fn next_field(&mut self) -> Result<(u32, Value<'a>), ProtoError> {
        let tag = read_varint(&mut self.rest)?;
        let field = u32::try_from(tag >> 3)
            .ok()
            .filter(|n| (1..=MAX_FIELD_NUMBER).contains(n))
            .ok_or(ProtoError::InvalidFieldNumber)?;
        let value = match (tag & 7) as u8 {
            WIRE_VARINT => Value::Varint(read_varint(&mut self.rest)?),
            WIRE_FIXED64 => Value::Fixed64(u64::from_le_bytes(take_array(&mut self.rest)?)),
            WIRE_LEN => {
                let len = usize::try_from(read_varint(&mut self.rest)?)
                    .map_err(|_| ProtoError::Truncated)?;
                Value::Bytes(take(&mut self.rest, len)?)
            }
            WIRE_START_GROUP | WIRE_END_GROUP => return Err(ProtoError::Group),
            WIRE_FIXED32 => Value::Fixed32(u32::from_le_bytes(take_array(&mut self.rest)?)),
            other => return Err(ProtoError::InvalidWireType(other)),
        };
        Ok((field, value))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u32, Value<'a>), ProtoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let field = self.next_field();
        if field.is_err() {
            self.failed = true;
        }
        Some(field)
    }
}

/// Reads one varint off the front of `bytes`.
fn read_varint(bytes: &mut &[u8]) -> Result<u64, ProtoError> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(MAX_VARINT_BYTES) {
        // The tenth byte holds bit 63 only.
        if i == MAX_VARINT_BYTES - 1 && *byte > 1 {
            return Err(ProtoError::VarintTooLong);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = bytes.get(i + 1..).unwrap_or_default();
            return Ok(value);
        }
    }
    if bytes.len() >= MAX_VARINT_BYTES {
        Err(ProtoError::VarintTooLong)
    } else {
        Err(ProtoError::Truncated)
    }
}

/// Takes `len` bytes off the front of `bytes`.
fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Result<&'a [u8], ProtoError> {
    let (taken, rest) = bytes.split_at_checked(len).ok_or(ProtoError::Truncated)?;
    *bytes = rest;
    Ok(taken)
}

/// Takes `N` bytes off the front of `bytes`.
fn take_array<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], ProtoError> {
    let (taken, rest) = bytes
        .split_first_chunk::<N>()
        .ok_or(ProtoError::Truncated)?;
    *bytes = rest;
    Ok(*taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(bytes: &[u8]) -> Result<Vec<(u32, Value<'_>)>, ProtoError> {
        Reader::new(bytes).collect()
    }

    #[test]
    fn varints_encode_little_endian_seven_bits_at_a_time() {
        let mut w = Writer::new();
        w.varint(1, 0);
        w.varint(1, 1);
        w.varint(1, 127);
        w.varint(1, 128);
        w.varint(1, 300);
        w.varint(1, u64::MAX);
        assert_eq!(
            w.as_bytes(),
            [
                0x08, 0x00, // 0
                0x08, 0x01, // 1
                0x08, 0x7f, // 127
                0x08, 0x80, 0x01, // 128
                0x08, 0xac, 0x02, // 300 = 0b10_0101100
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // 2^64 - 1
            ]
        );
        let values: Vec<u64> = Reader::new(w.as_bytes())
            .map(|f| f.unwrap().1.uint64().unwrap())
            .collect();
        assert_eq!(values, [0, 1, 127, 128, 300, u64::MAX]);
    }

    #[test]
    fn negative_int64_is_ten_bytes_twos_complement() {
        let mut w = Writer::new();
        w.int64(2, -1);
        w.int64(3, i64::MIN);
        assert_eq!(
            w.as_bytes(),
            [
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // -1
                0x18, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, // i64::MIN
            ]
        );
        let values: Vec<(u32, i64)> = Reader::new(w.as_bytes())
            .map(|f| {
                let (n, v) = f.unwrap();
                (n, v.int64().unwrap())
            })
            .collect();
        assert_eq!(values, [(2, -1), (3, i64::MIN)]);
    }

    #[test]
    fn typed_writers_leave_defaults_out() {
        let mut w = Writer::new();
        w.int64(1, 0);
        w.uint64(2, 0);
        w.bool(3, false);
        w.bytes(4, b"");
        w.string(5, "");
        assert!(w.as_bytes().is_empty());
        w.int64_explicit(6, 0);
        assert_eq!(w.as_bytes(), [0x30, 0x00]);
    }

    #[test]
    fn every_wire_type_round_trips() {
        let mut w = Writer::new();
        w.bool(1, true);
        w.fixed64(2, 0x0102_0304_0506_0708);
        w.string(3, "hé");
        w.fixed32(4, 0xdead_beef);
        w.message(5, |m| m.int64(1, 7));
        w.message(6, |_| {});
        w.varint(MAX_FIELD_NUMBER, 9);
        let got = fields(w.as_bytes()).unwrap();
        assert_eq!(
            got,
            [
                (1, Value::Varint(1)),
                (2, Value::Fixed64(0x0102_0304_0506_0708)),
                (3, Value::Bytes("hé".as_bytes())),
                (4, Value::Fixed32(0xdead_beef)),
                (5, Value::Bytes(&[0x08, 0x07])),
                (6, Value::Bytes(&[])),
                (MAX_FIELD_NUMBER, Value::Varint(9)),
            ]
        );
        // Bytes on the wire: fixed values are little-endian.
        assert_eq!(
            w.as_bytes().get(2..11).unwrap(),
            [0x11, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]
        );
    }

    #[test]
    fn value_accessors_check_the_wire_type() {
        assert_eq!(Value::Varint(1).bool(), Ok(true));
        assert_eq!(Value::Varint(2).bool(), Ok(true));
        assert_eq!(Value::Varint(0).bool(), Ok(false));
        assert_eq!(Value::Bytes(b"x").int64(), Err(ProtoError::WrongWireType));
        assert_eq!(Value::Fixed64(1).uint64(), Err(ProtoError::WrongWireType));
        assert_eq!(Value::Varint(1).bytes(), Err(ProtoError::WrongWireType));
        assert_eq!(Value::Fixed32(1).string(), Err(ProtoError::WrongWireType));
        assert_eq!(
            Value::Bytes(&[b'a', 0xff, b'b']).string(),
            Ok("a\u{fffd}b".to_string())
        );
    }

    #[test]
    fn varints_past_ten_bytes_or_64_bits_are_rejected() {
        // Eleven bytes (field 1, then a varint whose tenth byte continues).
        let mut eleven = vec![0x08];
        eleven.extend_from_slice(&[0x80; 10]);
        eleven.push(0x00);
        assert_eq!(fields(&eleven), Err(ProtoError::VarintTooLong));
        // Ten bytes, but the last one sets bits above 63.
        let mut overflow = vec![0x08];
        overflow.extend_from_slice(&[0xff; 9]);
        overflow.push(0x02);
        assert_eq!(fields(&overflow), Err(ProtoError::VarintTooLong));
        // A tag that is too long.
        assert_eq!(fields(&[0xff; 11]), Err(ProtoError::VarintTooLong));
        // Ten bytes with a non-minimal (but legal) padding: accepted.
        let padded = [
            0x08, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
        ];
        assert_eq!(fields(&padded), Ok(vec![(1, Value::Varint(1))]));
    }

    #[test]
    fn groups_and_nonexistent_wire_types_are_rejected() {
        // Field 1 start group (0x0b), field 1 end group (0x0c).
        assert_eq!(fields(&[0x0b, 0x0c]), Err(ProtoError::Group));
        assert_eq!(fields(&[0x0c]), Err(ProtoError::Group));
        assert_eq!(fields(&[0x08, 0x01, 0x0b]), Err(ProtoError::Group));
        assert_eq!(fields(&[0x0e, 0x00]), Err(ProtoError::InvalidWireType(6)));
        assert_eq!(fields(&[0x0f, 0x00]), Err(ProtoError::InvalidWireType(7)));
    }

    #[test]
    fn field_numbers_out_of_range_are_rejected() {
        // Field 0, varint.
        assert_eq!(fields(&[0x00, 0x01]), Err(ProtoError::InvalidFieldNumber));
        // Field 2^29 (one past the maximum): tag 2^32, as a varint.
        assert_eq!(
            fields(&[0x80, 0x80, 0x80, 0x80, 0x10, 0x01]),
            Err(ProtoError::InvalidFieldNumber)
        );
        // Field 2^61 - 1 (a tag that fits u64 but not u32).
        assert_eq!(
            fields(&[0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01]),
            Err(ProtoError::InvalidFieldNumber)
        );
    }

    #[test]
    fn truncated_input_is_an_error_at_every_cut() {
        let mut w = Writer::new();
        w.int64(1, -5);
        w.fixed64(2, 1);
        w.fixed32(3, 1);
        w.message(4, |m| m.bytes(1, b"some bytes"));
        w.varint(5, 300);
        let bytes = w.into_bytes();
        let boundaries = [11, 20, 25, 39, 42];
        for cut in 0..bytes.len() {
            let got = fields(&bytes[..cut]);
            if boundaries.contains(&cut) || cut == 0 {
                assert!(got.is_ok(), "cut {cut}: {got:?}");
            } else {
                assert_eq!(got, Err(ProtoError::Truncated), "cut {cut}");
            }
        }
        assert_eq!(fields(&bytes).unwrap().len(), 5);
    }

    #[test]
    fn a_length_past_the_end_is_truncated_not_a_huge_allocation() {
        // Field 1, length 2^63 + 1.
        let bytes = [
            0x0a, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00,
        ];
        assert_eq!(fields(&bytes), Err(ProtoError::Truncated));
    }

    #[test]
    fn the_reader_stops_after_an_error() {
        let mut reader = Reader::new(&[0x08, 0x01, 0x0b, 0x08, 0x02]);
        assert_eq!(reader.next(), Some(Ok((1, Value::Varint(1)))));
        assert_eq!(reader.next(), Some(Err(ProtoError::Group)));
        assert_eq!(reader.next(), None);
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            ProtoError::InvalidWireType(7).to_string(),
            "protobuf wire type 7 does not exist"
        );
        assert_eq!(
            ProtoError::Truncated.to_string(),
            "protobuf message truncated"
        );
    }
}
