//! Fleet: sharing revocations between Envoys through etcd v3.
//!
//! Envoy shared data reaches the workers of one Envoy only; a logout received by one Envoy
//! must also close the session on every other Envoy of the fleet. etcd v3 holds the fleet's
//! revocations, spoken to over Envoy's own gRPC client, so the messages are encoded here by
//! hand (no code generator, no new dependency in the module).

pub mod etcd_api;
pub mod protobuf;
