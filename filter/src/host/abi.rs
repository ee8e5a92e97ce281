//! proxy-wasm ABI 0.2.1 imports, wrapped so that every host answer is a `Result`.
//!
//! We bind the imports ourselves instead of using the Rust SDK's wrappers because those
//! `panic!` on any status they do not expect, and a panic kills the VM. The status, map and
//! buffer numbers are the ABI's (proxy-wasm/spec, `abi-versions/v0.2.1`).

use super::pairs;

/// A non-OK status returned by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

impl Status {
    pub const NOT_FOUND: Status = Status(1);
    /// A shared queue with nothing in it.
    pub const EMPTY: Status = Status(7);
    /// Set when the host returned OK but data we could not decode.
    pub const SERIALIZATION_FAILURE: Status = Status(3);
}

/// Header maps the filter touches (`proxy_get_header_map_pairs` map types).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Map {
    Request = 0,
    Response = 2,
    HttpCallResponse = 6,
}

#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Buffer {
    HttpCallResponseBody = 4,
    PluginConfiguration = 7,
}

#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum LogLevel {
    Info = 2,
    Warn = 3,
    Error = 4,
}

#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message: *const u8, size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer: u32,
        start: usize,
        max: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_size: usize,
        args: *const u8,
        args_size: usize,
        results: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_http_call(
        upstream: *const u8,
        upstream_size: usize,
        headers: *const u8,
        headers_size: usize,
        body: *const u8,
        body_size: usize,
        trailers: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        token: *mut u32,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        value: *mut *mut u8,
        value_size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_register_shared_queue(name: *const u8, name_size: usize, token: *mut u32) -> u32;
    fn proxy_enqueue_shared_queue(token: u32, value: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(token: u32, value: *mut *mut u8, value_size: *mut usize) -> u32;
}

fn check(status: u32) -> Result<(), Status> {
    match status {
        0 => Ok(()),
        other => Err(Status(other)),
    }
}

/// Takes ownership of memory the host filled through `proxy_on_memory_allocate`.
///
/// # Safety
/// `data`/`size` must come from a host call that allocated them with
/// [`super::exports::proxy_on_memory_allocate`] (a boxed `[u8]` of exactly `size` bytes).
unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

pub fn log(level: LogLevel, message: &str) {
    // Logging is best effort: there is nowhere to report a failed log.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

pub fn now_nanos() -> Result<u64, Status> {
    let mut t = 0u64;
    check(unsafe { proxy_get_current_time_nanoseconds(&mut t) })?;
    Ok(t)
}

pub fn buffer(buffer: Buffer, size: usize) -> Result<Vec<u8>, Status> {
    let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
    check(unsafe { proxy_get_buffer_bytes(buffer as u32, 0, size, &mut data, &mut len) })?;
    Ok(unsafe { take(data, len) })
}

pub fn headers(map: Map) -> Result<Vec<(String, String)>, Status> {
    let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
    check(unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut len) })?;
    let bytes = unsafe { take(data, len) };
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    pairs::decode(&bytes).ok_or(Status::SERIALIZATION_FAILURE)
}

/// [`headers`] into a reused pool (see [`pairs::decode_into`]): the pairs are `pool[..n]`.
pub fn headers_into(map: Map, pool: &mut Vec<(String, String)>) -> Result<usize, Status> {
    let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
    check(unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut len) })?;
    let bytes = unsafe { take(data, len) };
    if bytes.is_empty() {
        return Ok(0);
    }
    pairs::decode_into(&bytes, pool).ok_or(Status::SERIALIZATION_FAILURE)
}

pub fn set_header(map: Map, name: &str, value: &str) -> Result<(), Status> {
    check(unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn add_header(map: Map, name: &str, value: &str) -> Result<(), Status> {
    check(unsafe {
        proxy_add_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn remove_header(map: Map, name: &str) -> Result<(), Status> {
    check(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// Reads a property such as `["destination", "address"]`; `Ok(None)` when the host has none.
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let joined = path.join("\0");
    let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
    match check(unsafe { proxy_get_property(joined.as_ptr(), joined.len(), &mut data, &mut len) }) {
        Ok(()) => Ok(Some(unsafe { take(data, len) })),
        Err(Status::NOT_FOUND) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn send_local_response(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    details: &str,
) -> Result<(), Status> {
    let encoded = pairs::encode(headers);
    check(unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            encoded.as_ptr(),
            encoded.len(),
            -1,
        )
    })
}

pub fn call_foreign_function(name: &str, args: &[u8]) -> Result<Vec<u8>, Status> {
    let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
    check(unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            args.as_ptr(),
            args.len(),
            &mut data,
            &mut len,
        )
    })?;
    Ok(unsafe { take(data, len) })
}

pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, by: i64) -> Result<(), Status> {
    check(unsafe { proxy_increment_metric(id, by) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    check(unsafe { proxy_record_metric(id, value) })
}

pub fn set_tick_period(ms: u32) -> Result<(), Status> {
    check(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// Sends an HTTP request through the Envoy cluster `upstream`; the answer arrives in
/// `proxy_on_http_call_response` with the returned token.
pub fn dispatch_http_call<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    upstream: &str,
    headers: &[(K, V)],
    timeout_ms: u32,
) -> Result<u32, Status> {
    let encoded = pairs::encode(headers);
    let trailers = pairs::encode::<&str, &str>(&[]);
    let mut token = 0u32;
    check(unsafe {
        proxy_http_call(
            upstream.as_ptr(),
            upstream.len(),
            encoded.as_ptr(),
            encoded.len(),
            std::ptr::null(),
            0,
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    })?;
    Ok(token)
}

/// A shared-data value and its CAS token; `Ok(None)` when the key does not exist.
pub fn shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
    let (mut data, mut len, mut cas) = (std::ptr::null_mut(), 0usize, 0u32);
    match check(unsafe {
        proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut len, &mut cas)
    }) {
        Ok(()) => Ok(Some((unsafe { take(data, len) }, cas))),
        Err(Status::NOT_FOUND) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a shared-data value; `cas` 0 writes unconditionally, else only over that version
/// (status 8, CAS mismatch, otherwise).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    check(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Registers (or re-points at this root context) the shared queue `name` of this VM's `vm_id`;
/// the host then calls `proxy_on_queue_ready` here for every enqueue, on this VM's thread.
pub fn register_shared_queue(name: &str) -> Result<u32, Status> {
    let mut token = 0u32;
    check(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut token) })?;
    Ok(token)
}

/// Appends to a shared queue of this process by its token (`NotFound` when it is gone).
pub fn enqueue_shared_queue(token: u32, value: &[u8]) -> Result<(), Status> {
    check(unsafe { proxy_enqueue_shared_queue(token, value.as_ptr(), value.len()) })
}

/// The oldest item of a shared queue; `Ok(None)` when it is empty.
pub fn dequeue_shared_queue(token: u32) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
    match check(unsafe { proxy_dequeue_shared_queue(token, &mut data, &mut len) }) {
        Ok(()) => Ok(Some(unsafe { take(data, len) })),
        Err(Status::EMPTY) => Ok(None),
        Err(e) => Err(e),
    }
}
