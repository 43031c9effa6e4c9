//! An etcd v3 response as the gRPC stream delivers it (one message, unframed): the protobuf
//! field reader and the Range, Txn, LeaseGrant and Watch response decoders; and the request
//! encoders fed with the same bytes as keys, read back with the field reader; the revocation
//! records of Watch events, and the same bytes as a queued logout.
//!
//! Input: the message. The encoders take the first half as key, the rest as value.
#![no_main]

use envoy_backchannel_logout::fleet::etcd_api::{
    decode_lease_grant_response, decode_range_response, decode_txn_response, decode_watch_response,
    prefix_range_end, range_request, txn_request, watch_create_request, Put,
};
use envoy_backchannel_logout::fleet::protobuf::{Reader, Value, Writer};
use envoy_backchannel_logout::fleet::record::{decode_revocation, revocation_key};
use envoy_backchannel_logout::fleet::write::FleetWrite;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fields: Result<Vec<(u32, Value<'_>)>, _> = Reader::new(data).collect();
    // A field takes two bytes at least (a tag, then a varint or a length).
    if let Ok(fields) = &fields {
        assert!(fields.len() <= data.len() / 2);
        assert_eq!(fields, &read_back(&rewrite(fields)));
    }

    // A decoder only accepts a message whose top level reads cleanly.
    let range = decode_range_response(data);
    let txn = decode_txn_response(data);
    let lease = decode_lease_grant_response(data);
    let watch = decode_watch_response(data);
    if range.is_ok() || txn.is_ok() || lease.is_ok() || watch.is_ok() {
        assert!(fields.is_ok());
    }
    if let Ok(range) = range {
        assert!(range.kvs.len() <= data.len() / 2);
    }
    if let Ok(watch) = &watch {
        assert!(watch.events.len() <= data.len() / 2);
        // Every key and value of a Watch event, as the sync service reads them.
        for event in &watch.events {
            if let Ok(record) = decode_revocation("/p/", &event.kv.key, &event.kv.value) {
                let key = revocation_key("/p/", &record.entry);
                assert_eq!(key, event.kv.key);
            }
        }
    }
    // A queued logout as the sync service takes it from the shared queue.
    if let Some(write) = FleetWrite::decode(data) {
        assert_eq!(FleetWrite::decode(&write.encode()), Some(write));
    }

    encoders(data);
});

/// The fields again, each in its shortest form.
fn rewrite(fields: &[(u32, Value<'_>)]) -> Vec<u8> {
    let mut w = Writer::new();
    for (number, value) in fields {
        match *value {
            Value::Varint(v) => w.varint(*number, v),
            Value::Fixed64(v) => w.fixed64(*number, v),
            Value::Bytes(b) => w.length_delimited(*number, b),
            Value::Fixed32(v) => w.fixed32(*number, v),
        }
    }
    w.into_bytes()
}

fn read_back(bytes: &[u8]) -> Vec<(u32, Value<'_>)> {
    Reader::new(bytes)
        .map(|f| f.unwrap_or_else(|e| panic!("Writer output does not read back: {e}")))
        .collect()
}

fn encoders(data: &[u8]) {
    let (key, value) = data.split_at(data.len() / 2);

    let end = prefix_range_end(key);
    if key.iter().any(|b| *b != 0xff) {
        // Every key under the prefix sorts below the end.
        assert!(key < end.as_slice());
        assert!([key, &[0xff; 8][..]].concat().as_slice() < end.as_slice());
    } else {
        assert_eq!(end, [0]);
    }

    let request = range_request(key, &end, 10, 3);
    let fields = read_back(&request);
    let key_field = (!key.is_empty()).then_some((1, Value::Bytes(key)));
    assert_eq!(fields.iter().find(|f| f.0 == 1).copied(), key_field);
    assert!(fields.iter().any(|f| *f == (2, Value::Bytes(&end))));

    let watch = watch_create_request(key, &end, -1, true);
    assert_eq!(read_back(&watch).len(), 1);

    let put = Put {
        key: key.to_vec(),
        value: value.to_vec(),
        lease: i64::from(data.first().copied().unwrap_or(0)) - 128,
    };
    let txn = txn_request(Some(key), &[put.clone(), put]);
    let fields = read_back(&txn);
    // One compare, two operations.
    assert_eq!(fields.len(), 3);
}
