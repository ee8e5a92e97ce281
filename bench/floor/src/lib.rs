//! The floor of a proxy-wasm HTTP filter in Envoy (bench/e2e.py, BENCHMARKS.md): the exports
//! Envoy needs and nothing else. Built twice:
//! - default: a no-op filter (Envoy enters the VM for each stream callback and returns);
//! - `--features read-headers`: on request headers, read the whole request header map once
//!   (`proxy_get_header_map_pairs`, the one read gammaroute needs) and set one header
//!   (`proxy_replace_header_map_value`, as gammaroute sets `x-gamma-cluster`).
//!
//! Own ABI bindings (proxy-wasm spec, ABI 0.2.1) rather than the Rust SDK, so the floor pays no
//! SDK dispatch either.

#[cfg(feature = "read-headers")]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Host-filled memory (the header map); freed right after use.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    Box::into_raw(vec![0u8; size].into_boxed_slice()).cast::<u8>()
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context: u32, _parent: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    #[cfg(feature = "read-headers")]
    read_headers_set_one();
    0
}

#[cfg(feature = "read-headers")]
fn read_headers_set_one() {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the host fills `data`/`size` with memory from proxy_on_memory_allocate.
    let status = unsafe { proxy_get_header_map_pairs(0, &mut data, &mut size) };
    let pairs = if status == 0 && !data.is_null() {
        // SAFETY: a boxed [u8] of exactly `size` bytes, allocated above.
        unsafe { Vec::from_raw_parts(data, size, size) }
    } else {
        Vec::new()
    };
    // Touch the map the way a filter would (its pair count), so the read is not dead code.
    let count = pairs.get(..4).map_or(0, |b| b[0]);
    let (key, value) = ("x-floor", if count > 0 { "1" } else { "0" });
    // SAFETY: pointers to live slices.
    let _ = unsafe {
        proxy_replace_header_map_value(0, key.as_ptr(), key.len(), value.as_ptr(), value.len())
    };
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context: u32, _headers: usize, _eos: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_done(_context: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_log(_context: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_delete(_context: u32) {}
