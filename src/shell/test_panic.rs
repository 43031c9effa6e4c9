//! Test-only crash switch (cargo feature `test-panic`, never in a release build or a shipped
//! config): a request carrying header `x-bcl-test-panic` makes the filter panic, so the
//! integration tests can show what Envoy's `failure_policy` does with a crashed VM
//! (tests/failure_policy.rs, docs/FAILURE_POLICY.md).

use super::abi;
use proxy_wasm::types::MapType;

/// Panics when the request has an `x-bcl-test-panic` header (any value, read as bytes so the
/// check itself never fails on odd header bytes).
pub fn maybe_panic() {
    if let Ok(Some(_)) = abi::header_value(MapType::HttpRequestHeaders, "x-bcl-test-panic") {
        // The whole point of this test-only feature is to crash the VM on demand.
        #[allow(clippy::panic)]
        {
            panic!("x-bcl-test-panic: crashing the VM on purpose (feature test-panic)");
        }
    }
}
