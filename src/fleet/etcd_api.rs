//! The etcd v3 gRPC messages the fleet sends and reads (`etcdserverpb` in etcd's
//! `api/etcdserverpb/rpc.proto`, `mvccpb` in `api/mvccpb/kv.proto`), each field number as
//! those files declare it.
//!
//! Only the fields the filter uses are encoded; decoders keep the fields the filter needs and
//! skip the rest, so a newer etcd adding fields changes nothing here. Of each response header
//! only the revision is kept: it is what a reader resumes a watch from.
//!
//! gRPC framing (the 5-byte message prefix) is Envoy's gRPC client's job, not this module's.

use super::protobuf::{ProtoError, Reader, Value, Writer};

/// `Compare.CompareResult.EQUAL`.
const COMPARE_EQUAL: i64 = 0;
/// `Compare.CompareTarget.CREATE`.
const COMPARE_TARGET_CREATE: i64 = 1;
/// `Event.EventType.PUT`.
const EVENT_PUT: u64 = 0;
/// `Event.EventType.DELETE`.
const EVENT_DELETE: u64 = 1;

/// The `range_end` that makes a request cover every key starting with `prefix` (etcd's
/// "prefix end", `clientv3.GetPrefixRangeEnd`): the prefix without its trailing 0xff bytes,
/// last byte plus one. An empty or all-0xff prefix gives `[0]`, which etcd reads as "every
/// key from `key` on".
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let Some(last) = prefix.iter().rposition(|b| *b != 0xff) else {
        return vec![0];
    };
    let mut end = prefix.get(..=last).unwrap_or_default().to_vec();
    if let Some(byte) = end.last_mut() {
        *byte = byte.saturating_add(1);
    }
    end
}

/// A `RangeRequest` for the keys in `[key, range_end)` (or just `key` when `range_end` is
/// empty) at `revision` (0: the latest), at most `limit` of them (0: no limit).
///
/// No sort order is sent: etcd returns a range in ascending key order by itself, and any sort
/// order makes etcd read the whole range before applying `limit`, which would make paging
/// through a large prefix quadratic.
pub fn range_request(key: &[u8], range_end: &[u8], limit: i64, revision: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(1, key);
    w.bytes(2, range_end);
    w.int64(3, limit);
    w.int64(4, revision);
    w.into_bytes()
}

/// `mvccpb.KeyValue`: a key as etcd stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    /// Revision of the key's last creation.
    pub create_revision: i64,
    /// Revision of the key's last change.
    pub mod_revision: i64,
    /// Changes since the key's creation (0: the key was deleted).
    pub version: i64,
    pub value: Vec<u8>,
    /// Lease attached to the key (0: none).
    pub lease: i64,
}

/// `RangeResponse`: the keys found, at the store's `revision`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The header's revision: the store's revision the range was read at.
    pub revision: i64,
    pub kvs: Vec<KeyValue>,
    /// More keys in the range than `limit` let through.
    pub more: bool,
    /// Keys in the range in total.
    pub count: i64,
}

/// Decodes a `RangeResponse`.
pub fn decode_range_response(bytes: &[u8]) -> Result<RangeResponse, ProtoError> {
    let mut out = RangeResponse::default();
    for field in Reader::new(bytes) {
        match field? {
            (1, v) => merge_header(v, &mut out.revision)?,
            (2, v) => {
                let mut kv = KeyValue::default();
                merge_key_value(v, &mut kv)?;
                out.kvs.push(kv);
            }
            (3, v) => out.more = v.bool()?,
            (4, v) => out.count = v.int64()?,
            _ => {}
        }
    }
    Ok(out)
}

/// One key to write, with its lease (0: none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Put {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub lease: i64,
}

/// A `PutRequest`.
pub fn put_request(put: &Put) -> Vec<u8> {
    let mut w = Writer::new();
    write_put(&mut w, put);
    w.into_bytes()
}

fn write_put(w: &mut Writer, put: &Put) {
    w.bytes(1, &put.key);
    w.bytes(2, &put.value);
    w.int64(3, put.lease);
}

/// A `TxnRequest` writing every put at once, only if key `absent` does not exist when it is
/// given (compare `create_revision(absent) == 0`), unconditionally otherwise. Nothing is done
/// when the compare fails.
pub fn txn_request(absent: Option<&[u8]>, puts: &[Put]) -> Vec<u8> {
    let mut w = Writer::new();
    if let Some(key) = absent {
        w.message(1, |compare| {
            compare.int64(1, COMPARE_EQUAL);
            compare.int64(2, COMPARE_TARGET_CREATE);
            compare.bytes(3, key);
            // A member of the `target_union` oneof: written although 0, or etcd would compare
            // against no target value.
            compare.int64_explicit(5, 0);
        });
    }
    for put in puts {
        // RequestOp.request_put.
        w.message(2, |op| op.message(2, |request| write_put(request, put)));
    }
    w.into_bytes()
}

/// `TxnResponse`, without the responses of the operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// The header's revision: the store's revision after the transaction.
    pub revision: i64,
    /// The compares held and the success operations ran.
    pub succeeded: bool,
}

/// Decodes a `TxnResponse`.
pub fn decode_txn_response(bytes: &[u8]) -> Result<TxnResponse, ProtoError> {
    let mut out = TxnResponse::default();
    for field in Reader::new(bytes) {
        match field? {
            (1, v) => merge_header(v, &mut out.revision)?,
            (2, v) => out.succeeded = v.bool()?,
            _ => {}
        }
    }
    Ok(out)
}

/// A `LeaseGrantRequest` for a lease of `ttl` seconds, with the given `id` (0: etcd picks).
pub fn lease_grant_request(ttl: i64, id: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.int64(1, ttl);
    w.int64(2, id);
    w.into_bytes()
}

/// `LeaseGrantResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseGrantResponse {
    pub revision: i64,
    /// The lease granted.
    pub id: i64,
    /// The lease's time to live, in seconds, as etcd granted it.
    pub ttl: i64,
    /// Why no lease was granted (empty: one was).
    pub error: String,
}

/// Decodes a `LeaseGrantResponse`.
pub fn decode_lease_grant_response(bytes: &[u8]) -> Result<LeaseGrantResponse, ProtoError> {
    let mut out = LeaseGrantResponse::default();
    for field in Reader::new(bytes) {
        match field? {
            (1, v) => merge_header(v, &mut out.revision)?,
            (2, v) => out.id = v.int64()?,
            (3, v) => out.ttl = v.int64()?,
            (4, v) => out.error = v.string()?,
            _ => {}
        }
    }
    Ok(out)
}

/// A `WatchRequest` creating a watch of `[key, range_end)` (or just `key` when `range_end`
/// is empty) from `start_revision` (0: from now on), with periodic progress notifications
/// when `progress_notify` is set.
pub fn watch_create_request(
    key: &[u8],
    range_end: &[u8],
    start_revision: i64,
    progress_notify: bool,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.message(1, |create| {
        create.bytes(1, key);
        create.bytes(2, range_end);
        create.int64(3, start_revision);
        create.bool(4, progress_notify);
    });
    w.into_bytes()
}

/// `mvccpb.Event.EventType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventKind {
    #[default]
    Put,
    Delete,
    /// A type this module does not know (a newer etcd's): the caller decides.
    Other(u64),
}

/// `mvccpb.Event`: one change a watch reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The key after a put; after a delete, the key with its deletion's `mod_revision`.
    pub kv: KeyValue,
}

/// `WatchResponse`: a watch created or canceled, or changes (or only progress) of one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchResponse {
    /// The header's revision: every change up to it has been sent on this watch.
    pub revision: i64,
    pub watch_id: i64,
    pub created: bool,
    pub canceled: bool,
    /// The watch started before this compacted revision: it was canceled, and changes up to
    /// this revision are lost to it.
    pub compact_revision: i64,
    pub cancel_reason: String,
    pub events: Vec<Event>,
}

/// Decodes a `WatchResponse`.
pub fn decode_watch_response(bytes: &[u8]) -> Result<WatchResponse, ProtoError> {
    let mut out = WatchResponse::default();
    for field in Reader::new(bytes) {
        match field? {
            (1, v) => merge_header(v, &mut out.revision)?,
            (2, v) => out.watch_id = v.int64()?,
            (3, v) => out.created = v.bool()?,
            (4, v) => out.canceled = v.bool()?,
            (5, v) => out.compact_revision = v.int64()?,
            (6, v) => out.cancel_reason = v.string()?,
            (11, v) => out.events.push(decode_event(v.bytes()?)?),
            _ => {}
        }
    }
    Ok(out)
}

/// A `CompactionRequest` discarding history before `revision` (not physical: etcd answers
/// before the space is reclaimed, which changes nothing for readers).
pub fn compaction_request(revision: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.int64(1, revision);
    w.into_bytes()
}

/// Reads a `ResponseHeader`, keeping its revision. Like any message field met twice, a
/// second header merges into the first: its revision replaces the first one's if present.
fn merge_header(value: Value<'_>, revision: &mut i64) -> Result<(), ProtoError> {
    for field in Reader::new(value.bytes()?) {
        if let (3, v) = field? {
            *revision = v.int64()?;
        }
    }
    Ok(())
}

/// Reads a `KeyValue` into `kv` (merging, as protobuf does for a message field met twice).
fn merge_key_value(value: Value<'_>, kv: &mut KeyValue) -> Result<(), ProtoError> {
    for field in Reader::new(value.bytes()?) {
        match field? {
            (1, v) => kv.key = v.bytes()?.to_vec(),
            (2, v) => kv.create_revision = v.int64()?,
            (3, v) => kv.mod_revision = v.int64()?,
            (4, v) => kv.version = v.int64()?,
            (5, v) => kv.value = v.bytes()?.to_vec(),
            (6, v) => kv.lease = v.int64()?,
            _ => {}
        }
    }
    Ok(())
}

fn decode_event(bytes: &[u8]) -> Result<Event, ProtoError> {
    let mut event = Event::default();
    for field in Reader::new(bytes) {
        match field? {
            (1, v) => {
                event.kind = match v.uint64()? {
                    EVENT_PUT => EventKind::Put,
                    EVENT_DELETE => EventKind::Delete,
                    other => EventKind::Other(other),
                }
            }
            (2, v) => merge_key_value(v, &mut event.kv)?,
            _ => {}
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::protobuf::MAX_FIELD_NUMBER;

    /// Encodes a `KeyValue` the way etcd does (defaults left out).
    fn write_key_value(w: &mut Writer, field: u32, kv: &KeyValue) {
        w.message(field, |m| {
            m.bytes(1, &kv.key);
            m.int64(2, kv.create_revision);
            m.int64(3, kv.mod_revision);
            m.int64(4, kv.version);
            m.bytes(5, &kv.value);
            m.int64(6, kv.lease);
        });
    }

    /// A full `ResponseHeader`, so the decoders skip its other fields.
    fn write_header(w: &mut Writer, revision: i64) {
        w.message(1, |h| {
            h.uint64(1, 0x1234_5678_9abc_def0);
            h.uint64(2, u64::MAX);
            h.int64(3, revision);
            h.uint64(4, 7);
        });
    }

    fn kv(key: &str, value: &str, revision: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            value: value.as_bytes().to_vec(),
            lease: 0x694d_7f2a_1c3b_0e01,
        }
    }

    fn encode_range_response(r: &RangeResponse) -> Vec<u8> {
        let mut w = Writer::new();
        write_header(&mut w, r.revision);
        for kv in &r.kvs {
            write_key_value(&mut w, 2, kv);
        }
        w.bool(3, r.more);
        w.int64(4, r.count);
        w.into_bytes()
    }

    fn encode_watch_response(r: &WatchResponse) -> Vec<u8> {
        let mut w = Writer::new();
        write_header(&mut w, r.revision);
        w.int64(2, r.watch_id);
        w.bool(3, r.created);
        w.bool(4, r.canceled);
        w.int64(5, r.compact_revision);
        w.string(6, &r.cancel_reason);
        // fragment = 7, left out.
        for event in &r.events {
            w.message(11, |e| {
                e.uint64(
                    1,
                    match event.kind {
                        EventKind::Put => EVENT_PUT,
                        EventKind::Delete => EVENT_DELETE,
                        EventKind::Other(n) => n,
                    },
                );
                write_key_value(e, 2, &event.kv);
            });
        }
        w.into_bytes()
    }

    fn sample_watch_response() -> WatchResponse {
        WatchResponse {
            revision: 42,
            watch_id: 3,
            created: false,
            canceled: false,
            compact_revision: 0,
            cancel_reason: String::new(),
            events: vec![
                Event {
                    kind: EventKind::Put,
                    kv: kv("r/1", "v1", 41),
                },
                Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: b"r/0".to_vec(),
                        mod_revision: 42,
                        ..KeyValue::default()
                    },
                },
                Event {
                    kind: EventKind::Other(9),
                    kv: KeyValue::default(),
                },
            ],
        }
    }

    /// Every prefix of `bytes` decodes or fails, never panics; the whole decodes.
    fn every_cut<T>(bytes: &[u8], decode: fn(&[u8]) -> Result<T, ProtoError>) {
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut]);
        }
        assert!(decode(bytes).is_ok());
    }

    #[test]
    fn prefix_range_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_range_end(b"a"), b"b");
        assert_eq!(prefix_range_end(b"bcl/r/"), b"bcl/r0");
        assert_eq!(prefix_range_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_range_end(&[b'a', 0xfe, 0xff, 0xff]), [b'a', 0xff]);
        assert_eq!(prefix_range_end(&[0x00]), [0x01]);
        assert_eq!(prefix_range_end(b""), [0]);
        assert_eq!(prefix_range_end(&[0xff]), [0]);
        assert_eq!(prefix_range_end(&[0xff, 0xff]), [0]);
    }

    #[test]
    fn range_request_bytes() {
        assert_eq!(
            range_request(b"a/", b"a0", 2, 5),
            [
                0x0a, 0x02, b'a', b'/', // key: field 1, length 2
                0x12, 0x02, b'a', b'0', // range_end: field 2, length 2
                0x18, 0x02, // limit: field 3, varint 2
                0x20, 0x05, // revision: field 4, varint 5
            ]
        );
        // Defaults left out: a single key at the latest revision, no limit.
        assert_eq!(range_request(b"k", b"", 0, 0), [0x0a, 0x01, b'k']);
        // 1000 = 0b111_1101000: 0xe8 0x07.
        assert_eq!(
            range_request(b"", &[0], 1000, 0),
            [0x12, 0x01, 0x00, 0x18, 0xe8, 0x07]
        );
    }

    #[test]
    fn txn_request_bytes() {
        let put = Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 300,
        };
        assert_eq!(
            txn_request(Some(b"k"), std::slice::from_ref(&put)),
            [
                // compare: field 1, length 7
                0x0a, 0x07, //
                // result EQUAL (0) left out; target CREATE: field 2, varint 1
                0x10, 0x01, //
                // key: field 3, length 1
                0x1a, 0x01, b'k', //
                // create_revision: field 5, varint 0, written (a oneof member)
                0x28, 0x00, //
                // success: field 2, length 11 -> RequestOp.request_put: field 2, length 9
                0x12, 0x0b, 0x12, 0x09, //
                // PutRequest key: field 1, value: field 2, lease: field 3 = 300 (0xac 0x02)
                0x0a, 0x01, b'k', 0x12, 0x01, b'v', 0x18, 0xac, 0x02,
            ]
        );
        // No compare: only the operations.
        let plain = Put {
            key: b"a".to_vec(),
            value: b"1".to_vec(),
            lease: 0,
        };
        assert_eq!(
            txn_request(None, &[plain.clone(), plain]),
            [
                0x12, 0x08, 0x12, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'1', // first put
                0x12, 0x08, 0x12, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'1', // second put
            ]
        );
        assert!(txn_request(None, &[]).is_empty());
    }

    #[test]
    fn put_request_bytes() {
        let put = Put {
            key: b"k".to_vec(),
            value: b"".to_vec(),
            lease: -1,
        };
        assert_eq!(
            put_request(&put),
            [
                0x0a, 0x01, b'k', // key; the empty value is left out
                0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // lease -1
            ]
        );
    }

    #[test]
    fn watch_create_request_bytes() {
        assert_eq!(
            watch_create_request(b"r/", b"r0", 150, true),
            [
                // create_request: field 1, length 13
                0x0a, 0x0d, //
                0x0a, 0x02, b'r', b'/', // key: field 1
                0x12, 0x02, b'r', b'0', // range_end: field 2
                0x18, 0x96, 0x01, // start_revision: field 3, 150 = 0b1_0010110
                0x20, 0x01, // progress_notify: field 4, true
            ]
        );
        // An empty create request is still a create request.
        assert_eq!(watch_create_request(b"", b"", 0, false), [0x0a, 0x00]);
    }

    #[test]
    fn lease_grant_and_compaction_request_bytes() {
        assert_eq!(lease_grant_request(60, 0), [0x08, 0x3c]);
        assert_eq!(lease_grant_request(0, 1), [0x10, 0x01]);
        assert_eq!(compaction_request(300), [0x08, 0xac, 0x02]);
    }

    #[test]
    fn range_response_round_trip() {
        let response = RangeResponse {
            revision: 1234,
            kvs: vec![
                kv("a/1", "one", 3),
                kv("a/2", "", 1233),
                KeyValue::default(),
            ],
            more: true,
            count: 12,
        };
        let bytes = encode_range_response(&response);
        assert_eq!(decode_range_response(&bytes), Ok(response));
        assert_eq!(decode_range_response(&[]), Ok(RangeResponse::default()));
        every_cut(&bytes, decode_range_response);
    }

    #[test]
    fn txn_response_round_trip() {
        let mut w = Writer::new();
        write_header(&mut w, 77);
        w.bool(2, true);
        // responses: one ResponseOp { response_put: PutResponse { header } }, ignored.
        w.message(3, |op| op.message(2, |put| write_header(put, 76)));
        let bytes = w.into_bytes();
        assert_eq!(
            decode_txn_response(&bytes),
            Ok(TxnResponse {
                revision: 77,
                succeeded: true
            })
        );
        every_cut(&bytes, decode_txn_response);
    }

    #[test]
    fn lease_grant_response_round_trip() {
        let mut w = Writer::new();
        write_header(&mut w, 5);
        w.int64(2, 0x694d_7f2a_1c3b_0e01);
        w.int64(3, 60);
        w.string(4, "lease already exists");
        let bytes = w.into_bytes();
        assert_eq!(
            decode_lease_grant_response(&bytes),
            Ok(LeaseGrantResponse {
                revision: 5,
                id: 0x694d_7f2a_1c3b_0e01,
                ttl: 60,
                error: "lease already exists".to_string(),
            })
        );
        every_cut(&bytes, decode_lease_grant_response);
    }

    #[test]
    fn watch_response_round_trip() {
        let response = sample_watch_response();
        let bytes = encode_watch_response(&response);
        assert_eq!(decode_watch_response(&bytes), Ok(response));
        every_cut(&bytes, decode_watch_response);

        let canceled = WatchResponse {
            revision: 90,
            watch_id: 0,
            created: true,
            canceled: true,
            compact_revision: 50,
            cancel_reason: "mvcc: required revision has been compacted".to_string(),
            events: Vec::new(),
        };
        let bytes = encode_watch_response(&canceled);
        assert_eq!(decode_watch_response(&bytes), Ok(canceled));
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut w = Writer::new();
        w.fixed64(100, 1);
        write_header(&mut w, 9);
        w.fixed32(12, 2);
        w.length_delimited(7, b"fragment?"); // `fragment` is a bool; any wire type is skipped
        w.varint(MAX_FIELD_NUMBER, 3);
        w.int64(2, 4);
        w.message(11, |e| {
            e.uint64(1, EVENT_DELETE);
            e.string(3, "unknown in Event");
            e.message(2, |k| {
                k.bytes(1, b"x");
                k.fixed64(99, 0);
            });
        });
        let got = decode_watch_response(w.as_bytes()).unwrap();
        assert_eq!(got.revision, 9);
        assert_eq!(got.watch_id, 4);
        assert_eq!(
            got.events,
            [Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: b"x".to_vec(),
                    ..KeyValue::default()
                }
            }]
        );
        // The same extra fields do not disturb the other decoders.
        assert_eq!(decode_txn_response(w.as_bytes()).unwrap().revision, 9);
        assert_eq!(decode_lease_grant_response(w.as_bytes()).unwrap().id, 4);
    }

    #[test]
    fn a_known_field_with_another_wire_type_is_an_error() {
        // TxnResponse.succeeded (bool) as bytes.
        assert_eq!(
            decode_txn_response(&[0x12, 0x00]),
            Err(ProtoError::WrongWireType)
        );
        // RangeResponse.kvs (message) as a varint.
        assert_eq!(
            decode_range_response(&[0x10, 0x01]),
            Err(ProtoError::WrongWireType)
        );
        // A header that is not a message.
        assert_eq!(
            decode_watch_response(&[0x09, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtoError::WrongWireType)
        );
    }

    #[test]
    fn malformed_nested_messages_fail_the_decode() {
        // WatchResponse.events holding a group start.
        assert_eq!(
            decode_watch_response(&[0x5a, 0x01, 0x0b]),
            Err(ProtoError::Group)
        );
        // RangeResponse.kvs holding a truncated key.
        assert_eq!(
            decode_range_response(&[0x12, 0x02, 0x0a, 0x05]),
            Err(ProtoError::Truncated)
        );
        // An 11-byte revision in the header.
        let mut bytes = vec![0x0a, 0x0c, 0x18];
        bytes.extend_from_slice(&[0xff; 10]);
        bytes.push(0x01);
        assert_eq!(
            decode_lease_grant_response(&bytes),
            Err(ProtoError::VarintTooLong)
        );
    }

    #[test]
    fn repeated_singular_fields_merge_as_protobuf_does() {
        let mut w = Writer::new();
        write_header(&mut w, 10);
        // A second header without a revision keeps the first revision...
        w.message(1, |h| h.uint64(1, 1));
        w.message(11, |e| {
            e.message(2, |k| k.bytes(1, b"key"));
            // ...and a second kv merges into the first.
            e.message(2, |k| k.int64(3, 8));
        });
        let got = decode_watch_response(w.as_bytes()).unwrap();
        assert_eq!(got.revision, 10);
        assert_eq!(
            got.events.first().map(|e| &e.kv),
            Some(&KeyValue {
                key: b"key".to_vec(),
                mod_revision: 8,
                ..KeyValue::default()
            })
        );
    }

    #[test]
    fn negative_and_large_values_decode() {
        let mut w = Writer::new();
        w.message(1, |h| h.int64(3, i64::MAX));
        w.int64(2, -1);
        w.int64(3, i64::MIN);
        let got = decode_lease_grant_response(w.as_bytes()).unwrap();
        assert_eq!((got.revision, got.id, got.ttl), (i64::MAX, -1, i64::MIN));
    }

    #[test]
    fn invalid_utf8_strings_are_replaced_not_fatal() {
        let mut w = Writer::new();
        w.bool(4, true);
        w.length_delimited(6, &[b'o', b'k', 0xc3]);
        let got = decode_watch_response(w.as_bytes()).unwrap();
        assert!(got.canceled);
        assert_eq!(got.cancel_reason, "ok\u{fffd}");
    }
}
