//! The proxy-wasm host calls this module makes, called through the ABI directly so that no
//! answer of the host, and no byte of a request, can reach a panic.
//!
//! Why not the SDK's `hostcalls`: its string getters unwrap UTF-8 (one `Cookie: x=\xff` killed
//! the VM), its map reader unwraps UTF-8 on header names, and every one of its wrappers
//! `panic!`s on a status it does not expect. Here every call returns the raw status as an
//! error value and every byte stays a byte. docs/DESIGN.md lists which SDK calls remain and
//! why they are safe.
//!
//! Memory the host hands back was allocated inside the VM by the SDK's exported
//! `proxy_on_memory_allocate` (a `Vec<u8>` with capacity == size); it is taken back with
//! `Vec::from_raw_parts(ptr, size, size)`, exactly as the SDK does.

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
use std::ptr::null_mut;

/// A host status other than success, as the raw ABI number (0 Ok, 1 NotFound, 2 BadArgument,
/// 8 CasMismatch, 10 InternalFailure, ...).
pub type HostStatus = u32;

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
/// A shared queue with nothing in it.
const EMPTY: u32 = 7;
/// `proxy_set_shared_data` with a stale version.
pub const CAS_MISMATCH: u32 = 8;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_grpc_send(token: u32, message: *const u8, message_size: usize, end_stream: u32)
        -> u32;
    fn proxy_grpc_cancel(token: u32) -> u32;
    fn proxy_register_shared_queue(name: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_resolve_shared_queue(
        vm_id: *const u8,
        vm_id_size: usize,
        name: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(
        queue_id: u32,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> u32;
}

/// Takes ownership of bytes the host allocated in this VM.
///
/// # Safety
/// `data`/`size` must come from a host call that just returned them (allocated by the SDK's
/// `proxy_on_memory_allocate`, so a `Vec<u8>` of capacity `size`), and be taken only once.
unsafe fn take_host_bytes(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() || size == 0 {
        // The host allocates nothing for an empty value; a zero-size allocation, if any,
        // is the SDK allocator's dangling pointer and needs no free.
        return Vec::new();
    }
    Vec::from_raw_parts(data, size, size)
}

/// Maps a "get bytes" answer: Ok with data, NotFound as `None`, any other status as an error.
fn bytes_answer(status: u32, data: *mut u8, size: usize) -> Result<Option<Vec<u8>>, HostStatus> {
    match status {
        // SAFETY: the host just returned this buffer for us; it is taken once, here.
        OK => Ok(Some(unsafe { take_host_bytes(data, size) })),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

pub fn log(level: LogLevel, message: &str) {
    // SAFETY: pointer and length of a live &str.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// The host's wall clock in nanoseconds since the Unix epoch.
pub fn current_time_nanos() -> Result<u64, HostStatus> {
    let mut nanos: u64 = 0;
    // SAFETY: `nanos` outlives the call.
    match unsafe { proxy_get_current_time_nanoseconds(&mut nanos) } {
        OK => Ok(nanos),
        other => Err(other),
    }
}

pub fn set_tick_period_millis(period: u32) -> Result<(), HostStatus> {
    // SAFETY: no pointers.
    match unsafe { proxy_set_tick_period_milliseconds(period) } {
        OK => Ok(()),
        other => Err(other),
    }
}

/// Bytes of a host buffer (request body, call response body, plugin configuration).
pub fn buffer(kind: BufferType, start: usize, max_size: usize) -> Result<Vec<u8>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the out-pointers outlive the call.
    let status =
        unsafe { proxy_get_buffer_bytes(kind as u32, start, max_size, &mut data, &mut size) };
    bytes_answer(status, data, size).map(Option::unwrap_or_default)
}

/// A whole header map, serialized as the host sends it (read it with
/// [`crate::header_map::parse_header_map`]).
pub fn header_map(kind: MapType) -> Result<Vec<u8>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the out-pointers outlive the call.
    let status = unsafe { proxy_get_header_map_pairs(kind as u32, &mut data, &mut size) };
    bytes_answer(status, data, size).map(Option::unwrap_or_default)
}

/// The first value of one header, as bytes.
pub fn header_value(kind: MapType, name: &str) -> Result<Option<Vec<u8>>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: pointer and length of a live &str; the out-pointers outlive the call.
    let status = unsafe {
        proxy_get_header_map_value(kind as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    bytes_answer(status, data, size)
}

/// A shared-data value and its version; `None` when the key was never written.
pub fn shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: pointer and length of a live &str; the out-pointers outlive the call.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    Ok(bytes_answer(status, data, size)?.map(|value| (value, cas)))
}

/// Writes a shared-data value; `cas` 0 writes unconditionally. A stale `cas` answers
/// [`CAS_MISMATCH`].
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), HostStatus> {
    // SAFETY: pointers and lengths of live slices.
    match unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    } {
        OK => Ok(()),
        other => Err(other),
    }
}

/// Sends a local reply. Header names and values are sent as given (serialized the way the
/// host reads header maps).
pub fn send_local_response(
    status: u32,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
) -> Result<(), HostStatus> {
    let map = crate::header_map::serialize_header_map(headers);
    // SAFETY: pointers and lengths of live slices; -1 means "not a gRPC reply".
    match unsafe {
        proxy_send_local_response(
            status,
            null_mut(),
            0,
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            -1,
        )
    } {
        OK => Ok(()),
        other => Err(other),
    }
}

/// Calls one of the host's foreign functions (Envoy's `verify_signature`).
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Vec<u8>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: pointers and lengths of live slices; the out-pointers outlive the call.
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    match bytes_answer(status, data, size)? {
        Some(answer) => Ok(answer),
        None => Err(NOT_FOUND),
    }
}

pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, HostStatus> {
    let mut id: u32 = 0;
    // SAFETY: pointer and length of a live &str; `id` outlives the call.
    match unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) } {
        OK => Ok(id),
        other => Err(other),
    }
}

pub fn increment_metric(id: u32, delta: i64) {
    // SAFETY: no pointers.
    let _ = unsafe { proxy_increment_metric(id, delta) };
}

pub fn record_metric(id: u32, value: u64) {
    // SAFETY: no pointers.
    let _ = unsafe { proxy_record_metric(id, value) };
}

/// The current value of a counter or gauge (no allocation: the host writes one `u64`).
pub fn metric_value(id: u32) -> Result<u64, HostStatus> {
    let mut value: u64 = 0;
    // SAFETY: `value` outlives the call.
    match unsafe { proxy_get_metric(id, &mut value) } {
        OK => Ok(value),
        other => Err(other),
    }
}

/// A host property (`plugin_root_id`, `plugin_vm_id`, ...) by its path segments.
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, HostStatus> {
    let joined = path.join("\0");
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: pointer and length of a live String; the out-pointers outlive the call.
    let status = unsafe { proxy_get_property(joined.as_ptr(), joined.len(), &mut data, &mut size) };
    bytes_answer(status, data, size)
}

/// Sends one message on an open gRPC stream.
pub fn grpc_send(token: u32, message: &[u8], end_stream: bool) -> Result<(), HostStatus> {
    // SAFETY: pointer and length of a live slice.
    match unsafe {
        proxy_grpc_send(
            token,
            message.as_ptr(),
            message.len(),
            u32::from(end_stream),
        )
    } {
        OK => Ok(()),
        other => Err(other),
    }
}

/// Cancels a gRPC call or stream. The host sends no close callback for it.
pub fn grpc_cancel(token: u32) {
    // SAFETY: no pointers.
    let _ = unsafe { proxy_grpc_cancel(token) };
}

/// Registers a shared queue owned by this VM's root context.
pub fn register_shared_queue(name: &str) -> Result<u32, HostStatus> {
    let mut id: u32 = 0;
    // SAFETY: pointer and length of a live &str; `id` outlives the call.
    match unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) } {
        OK => Ok(id),
        other => Err(other),
    }
}

/// Finds a shared queue another VM of `vm_id` registered.
pub fn resolve_shared_queue(vm_id: &[u8], name: &str) -> Result<u32, HostStatus> {
    let mut id: u32 = 0;
    // SAFETY: pointers and lengths of live slices; `id` outlives the call.
    match unsafe {
        proxy_resolve_shared_queue(
            vm_id.as_ptr(),
            vm_id.len(),
            name.as_ptr(),
            name.len(),
            &mut id,
        )
    } {
        OK => Ok(id),
        other => Err(other),
    }
}

pub fn enqueue_shared_queue(queue_id: u32, value: &[u8]) -> Result<(), HostStatus> {
    // SAFETY: pointer and length of a live slice.
    match unsafe { proxy_enqueue_shared_queue(queue_id, value.as_ptr(), value.len()) } {
        OK => Ok(()),
        other => Err(other),
    }
}

/// The next item of a shared queue; `None` when it is empty.
pub fn dequeue_shared_queue(queue_id: u32) -> Result<Option<Vec<u8>>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the out-pointers outlive the call.
    let status = unsafe { proxy_dequeue_shared_queue(queue_id, &mut data, &mut size) };
    match status {
        EMPTY => Ok(None),
        status => bytes_answer(status, data, size),
    }
}
