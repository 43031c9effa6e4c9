//! Sends one [`FleetWrite`] to etcd and follows it to an outcome: the transaction, and when
//! etcd answers that a lease window is missing, the lease grants, then the transaction once
//! more. Used by a worker for the logout it is answering (guarded: a `jti` another Envoy
//! wrote is a replay) and by the sync service for a queued logout (unguarded).

use super::abi;
use super::host::log;
use crate::fleet::etcd_api::{
    decode_lease_grant_response, decode_txn_response, lease_grant_request,
};
use crate::fleet::settings::FleetConfig;
use crate::fleet::write::{FleetWrite, ReplayGuard};
use proxy_wasm::types::{BufferType, LogLevel};
use std::time::Duration;

/// gRPC status codes etcd answers with.
const GRPC_OK: u32 = 0;
/// "etcdserver: requested lease not found".
const GRPC_NOT_FOUND: u32 = 5;
/// "etcdserver: lease already exists": another Envoy granted the window's lease first.
const GRPC_FAILED_PRECONDITION: u32 = 9;

/// Where a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// In etcd: every Envoy will apply it.
    Written,
    /// Guarded write: another Envoy already wrote this `jti`. Nothing was written.
    Replayed,
    /// etcd did not take it (unreachable, timeout, an error): the gRPC status, or
    /// `u32::MAX` when etcd answered something unreadable.
    Failed(u32),
}

#[derive(Debug)]
enum Stage {
    Txn(u32),
    /// Lease grants in flight.
    Leases(Vec<u32>),
}

/// A write waiting for etcd.
#[derive(Debug)]
pub struct PendingWrite {
    pub write: FleetWrite,
    guard: ReplayGuard,
    stage: Stage,
    /// The transaction was retried after granting leases once already.
    leases_granted: bool,
}

/// Either waiting, with the call tokens to route answers by, or done.
pub enum Progress {
    Wait(PendingWrite),
    Done(WriteOutcome),
}

impl PendingWrite {
    /// Whether `token` belongs to this write.
    pub fn owns(&self, token: u32) -> bool {
        match &self.stage {
            Stage::Txn(t) => *t == token,
            Stage::Leases(tokens) => tokens.contains(&token),
        }
    }
}

fn call(
    fleet: &FleetConfig,
    service: &str,
    method: &str,
    message: &[u8],
) -> Result<u32, WriteOutcome> {
    // The SDK's wrapper registers the token with its dispatcher, which routes the answer to
    // this context; it panics only on statuses Envoy does not return for a named cluster
    // (docs/DESIGN.md).
    proxy_wasm::hostcalls::dispatch_grpc_call(
        &fleet.etcd_cluster,
        service,
        method,
        Vec::new(),
        Some(message),
        Duration::from_millis(u64::from(fleet.call_timeout_ms)),
    )
    .map_err(|status| WriteOutcome::Failed(status as u32))
}

/// Starts the transaction.
pub fn begin(fleet: &FleetConfig, write: FleetWrite, guard: ReplayGuard, now: i64) -> Progress {
    let txn = write.txn(&fleet.key_prefix, now, guard);
    match call(fleet, "etcdserverpb.KV", "Txn", &txn) {
        Ok(token) => Progress::Wait(PendingWrite {
            write,
            guard,
            stage: Stage::Txn(token),
            leases_granted: false,
        }),
        Err(outcome) => Progress::Done(outcome),
    }
}

/// An answer for this write arrived (`status` is the gRPC status; the message is in the
/// gRPC receive buffer when it is 0).
pub fn on_etcd_answer(
    fleet: &FleetConfig,
    mut pending: PendingWrite,
    token: u32,
    status: u32,
    size: usize,
    now: i64,
) -> Progress {
    let body = if status == GRPC_OK {
        abi::buffer(BufferType::GrpcReceiveBuffer, 0, size).unwrap_or_default()
    } else {
        Vec::new()
    };
    match &mut pending.stage {
        Stage::Txn(_) => match status {
            GRPC_OK => match decode_txn_response(&body) {
                Ok(answer) if answer.succeeded => Progress::Done(WriteOutcome::Written),
                Ok(_) => Progress::Done(WriteOutcome::Replayed),
                Err(error) => {
                    log(
                        LogLevel::Warn,
                        &format!("fleet: unreadable Txn answer from etcd: {error}"),
                    );
                    Progress::Done(WriteOutcome::Failed(u32::MAX))
                }
            },
            GRPC_NOT_FOUND if !pending.leases_granted => grant_leases(fleet, pending, now),
            other => Progress::Done(WriteOutcome::Failed(other)),
        },
        Stage::Leases(tokens) => {
            tokens.retain(|t| *t != token);
            let granted = match status {
                GRPC_OK => decode_lease_grant_response(&body)
                    .map(|answer| answer.error.is_empty())
                    .unwrap_or(false),
                GRPC_FAILED_PRECONDITION => true,
                _ => false,
            };
            if !granted {
                for other in tokens.iter() {
                    abi::grpc_cancel(*other);
                }
                return Progress::Done(WriteOutcome::Failed(status));
            }
            if !tokens.is_empty() {
                return Progress::Wait(pending);
            }
            let txn = pending.write.txn(&fleet.key_prefix, now, pending.guard);
            match call(fleet, "etcdserverpb.KV", "Txn", &txn) {
                Ok(token) => {
                    pending.stage = Stage::Txn(token);
                    Progress::Wait(pending)
                }
                Err(outcome) => Progress::Done(outcome),
            }
        }
    }
}

fn grant_leases(fleet: &FleetConfig, mut pending: PendingWrite, now: i64) -> Progress {
    pending.leases_granted = true;
    let mut tokens = Vec::new();
    for lease in pending.write.leases(&fleet.key_prefix, now) {
        let request = lease_grant_request(lease.ttl_seconds, lease.id);
        match call(fleet, "etcdserverpb.Lease", "LeaseGrant", &request) {
            Ok(token) => tokens.push(token),
            Err(outcome) => {
                for token in &tokens {
                    abi::grpc_cancel(*token);
                }
                return Progress::Done(outcome);
            }
        }
    }
    pending.stage = Stage::Leases(tokens);
    Progress::Wait(pending)
}
