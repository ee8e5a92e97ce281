//! The proxy-wasm exports: thin ABI wrappers that take the host's arguments, open the VM state
//! ([`super::vm::with_vm`]) and call the module that does the work — [`super::configure`],
//! [`super::stream`] (requests) and [`super::updates`] (table fetching) — so no flow lives here.

use super::abi;
use super::configure::configure;
use super::stream::{self, CONTINUE};
use super::updates;
use super::vm::with_vm;

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory the host fills for us (header maps, buffers, properties); freed by `abi::take`.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    // Uninitialised: the host writes all `size` bytes before we read them (zeroing the request
    // header buffer first was measurable per request).
    Box::into_raw(Box::<[u8]>::new_uninit_slice(size)).cast::<u8>()
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root: u32, _size: usize) -> u32 {
    let seed = abi::now_nanos().unwrap_or(0x9e37_79b9_7f4a_7c15) | 1;
    with_vm((), |vm| vm.rng = seed);
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context: u32, parent: u32) {
    with_vm((), |vm| vm.create_context(context, parent));
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root: u32, size: usize) -> u32 {
    u32::from(configure(root, size))
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root: u32) {
    with_vm((), |vm| updates::tick(vm, root));
}

/// A wake-up from the VM that fetched a table (`host::wakeup`).
#[no_mangle]
pub extern "C" fn proxy_on_queue_ready(root: u32, queue: u32) {
    with_vm((), |vm| updates::woken(vm, root, queue));
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    _root: u32,
    token: u32,
    headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    with_vm((), |vm| updates::response(vm, token, headers, body_size));
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context: u32,
    _headers: usize,
    _end_of_stream: u32,
) -> u32 {
    with_vm(CONTINUE, |vm| stream::request_headers(vm, context))
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context: u32,
    _headers: usize,
    _end_of_stream: u32,
) -> u32 {
    with_vm(CONTINUE, |vm| stream::response_headers(vm, context))
}

#[no_mangle]
pub extern "C" fn proxy_on_done(_context: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_log(_context: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context: u32) {
    with_vm((), |vm| vm.delete_context(context));
}
