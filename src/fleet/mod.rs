//! Fleet: sharing revocations between Envoys through etcd v3.
//!
//! The sans-I/O half: the `fleet` configuration block, the record and lease formats, the
//! write a logout makes, the sync service's state machine, and the flags it publishes to the
//! workers. The gRPC calls are made by `shell/fleet_*.rs`.

pub mod etcd_api;
pub mod lease_window;
pub mod protobuf;
pub mod record;
pub mod settings;
pub mod shared_state;
pub mod sync;
pub mod write;
