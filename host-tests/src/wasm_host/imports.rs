//! The proxy-wasm ABI 0.2.1 imports (module `env`), each backed by real state in [`HostState`].
//! Statuses and enum numbers are the ABI's (proxy-wasm/spec `abi-versions/v0.2.1`).

use gammaroute_filter::host::pairs;
use wasmtime::{Caller, Linker, Result};

use super::memory::{give, read, read_str, write};
use super::{HostState, HttpCall, LogLevel, MetricKind};

const ENV: &str = "env";

pub(super) const OK: i32 = 0;
pub(super) const NOT_FOUND: i32 = 1;
pub(super) const BAD_ARGUMENT: i32 = 2;
pub(super) const SERIALIZATION_FAILURE: i32 = 3;
pub(super) const EMPTY: i32 = 7;
pub(super) const CAS_MISMATCH: i32 = 8;

type C<'a> = Caller<'a, HostState>;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_log",
        |mut c: C<'_>, level: i32, ptr: i32, len: i32| -> Result<i32> {
            c.data_mut().count_call("proxy_log");
            let msg = read_str(&mut c, "proxy_log", ptr, len)?;
            match LogLevel::from_abi(level) {
                Some(level) => {
                    c.data_mut().log(level, msg);
                    Ok(OK)
                }
                None => Ok(BAD_ARGUMENT),
            }
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_log_level",
        |mut c: C<'_>, ret: i32| -> Result<i32> {
            let level = c.data().log_level as u32;
            write(&mut c, "proxy_get_log_level", ret, &level.to_le_bytes())?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, ret: i32| -> Result<i32> {
            let now = c.data().now_nanos;
            write(
                &mut c,
                "proxy_get_current_time_nanoseconds",
                ret,
                &now.to_le_bytes(),
            )?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, ms: i32| -> i32 {
            c.data_mut().tick_period_ms = ms as u32;
            OK
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_buffer_bytes",
        |mut c: C<'_>,
         kind: i32,
         start: i32,
         max: i32,
         ret_data: i32,
         ret_size: i32|
         -> Result<i32> {
            let Some(buf) = c.data().buffer(kind) else {
                return Ok(NOT_FOUND);
            };
            let start = (start as u32 as usize).min(buf.len());
            let end = start.saturating_add(max as u32 as usize).min(buf.len());
            let bytes = buf[start..end].to_vec();
            give(&mut c, "proxy_get_buffer_bytes", &bytes, ret_data, ret_size)?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, size: i32, data: i32, len: i32| -> Result<i32> {
            let bytes = read(&mut c, "proxy_set_buffer_bytes", data, len)?;
            let Some(buf) = c.data_mut().buffer_mut(kind) else {
                return Ok(NOT_FOUND);
            };
            // Replace `size` bytes at `start` (Envoy's semantics; start 0 + size >= len replaces all).
            let start = (start as u32 as usize).min(buf.len());
            let end = start.saturating_add(size as u32 as usize).min(buf.len());
            buf.splice(start..end, bytes);
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, map: i32, ret_data: i32, ret_size: i32| -> Result<i32> {
            c.data_mut().count_call("proxy_get_header_map_pairs");
            let Some(headers) = c.data().map(map) else {
                return Ok(NOT_FOUND);
            };
            let bytes = pairs::encode(headers);
            give(
                &mut c,
                "proxy_get_header_map_pairs",
                &bytes,
                ret_data,
                ret_size,
            )?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_header_map_pairs",
        |mut c: C<'_>, map: i32, data: i32, len: i32| -> Result<i32> {
            c.data_mut().count_call("proxy_set_header_map_pairs");
            let bytes = read(&mut c, "proxy_set_header_map_pairs", data, len)?;
            let Some(decoded) = pairs::decode(&bytes) else {
                return Ok(SERIALIZATION_FAILURE);
            };
            match c.data_mut().map_mut(map) {
                Some(headers) => {
                    *headers = decoded;
                    Ok(OK)
                }
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_header_map_value",
        |mut c: C<'_>,
         map: i32,
         key: i32,
         key_len: i32,
         ret_data: i32,
         ret_size: i32|
         -> Result<i32> {
            c.data_mut().count_call("proxy_get_header_map_value");
            let key = read_str(&mut c, "proxy_get_header_map_value", key, key_len)?;
            let Some(headers) = c.data().map(map) else {
                return Ok(NOT_FOUND);
            };
            let Some(value) = header_value(headers, &key).map(str::to_string) else {
                return Ok(NOT_FOUND);
            };
            give(
                &mut c,
                "proxy_get_header_map_value",
                value.as_bytes(),
                ret_data,
                ret_size,
            )?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_replace_header_map_value",
        |mut c: C<'_>,
         map: i32,
         key: i32,
         key_len: i32,
         value: i32,
         value_len: i32|
         -> Result<i32> {
            c.data_mut().count_call("proxy_replace_header_map_value");
            let key = read_str(&mut c, "proxy_replace_header_map_value", key, key_len)?
                .to_ascii_lowercase();
            let value = read_str(&mut c, "proxy_replace_header_map_value", value, value_len)?;
            let Some(headers) = c.data_mut().map_mut(map) else {
                return Ok(NOT_FOUND);
            };
            // Envoy: the first entry keeps its position and takes the value; duplicates go.
            match headers.iter().position(|(k, _)| *k == key) {
                Some(at) => {
                    headers[at].1 = value;
                    let mut i = 0;
                    headers.retain(|(k, _)| {
                        i += 1;
                        i - 1 <= at || *k != key
                    });
                }
                None => headers.push((key, value)),
            }
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_add_header_map_value",
        |mut c: C<'_>,
         map: i32,
         key: i32,
         key_len: i32,
         value: i32,
         value_len: i32|
         -> Result<i32> {
            c.data_mut().count_call("proxy_add_header_map_value");
            let key =
                read_str(&mut c, "proxy_add_header_map_value", key, key_len)?.to_ascii_lowercase();
            let value = read_str(&mut c, "proxy_add_header_map_value", value, value_len)?;
            match c.data_mut().map_mut(map) {
                Some(headers) => {
                    headers.push((key, value));
                    Ok(OK)
                }
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_remove_header_map_value",
        |mut c: C<'_>, map: i32, key: i32, key_len: i32| -> Result<i32> {
            c.data_mut().count_call("proxy_remove_header_map_value");
            let key = read_str(&mut c, "proxy_remove_header_map_value", key, key_len)?
                .to_ascii_lowercase();
            match c.data_mut().map_mut(map) {
                Some(headers) => {
                    headers.retain(|(k, _)| *k != key);
                    Ok(OK)
                }
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_property",
        |mut c: C<'_>, path: i32, path_len: i32, ret_data: i32, ret_size: i32| -> Result<i32> {
            c.data_mut().count_call("proxy_get_property");
            let path = read(&mut c, "proxy_get_property", path, path_len)?;
            let key = property_key(&path);
            let Some(value) = c.data().properties.get(&key).cloned() else {
                return Ok(NOT_FOUND);
            };
            give(&mut c, "proxy_get_property", &value, ret_data, ret_size)?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_property",
        |mut c: C<'_>, path: i32, path_len: i32, data: i32, len: i32| -> Result<i32> {
            let path = read(&mut c, "proxy_set_property", path, path_len)?;
            let value = read(&mut c, "proxy_set_property", data, len)?;
            c.data_mut().properties.insert(property_key(&path), value);
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_shared_data",
        |mut c: C<'_>,
         key: i32,
         key_len: i32,
         ret_data: i32,
         ret_size: i32,
         ret_cas: i32|
         -> Result<i32> {
            let key = read_str(&mut c, "proxy_get_shared_data", key, key_len)?;
            let entry = c
                .data()
                .shared
                .lock()
                .map_err(poisoned)?
                .data
                .get(&key)
                .cloned();
            let Some((value, cas)) = entry else {
                return Ok(NOT_FOUND);
            };
            give(&mut c, "proxy_get_shared_data", &value, ret_data, ret_size)?;
            write(&mut c, "proxy_get_shared_data", ret_cas, &cas.to_le_bytes())?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_shared_data",
        |mut c: C<'_>,
         key: i32,
         key_len: i32,
         value: i32,
         value_len: i32,
         cas: i32|
         -> Result<i32> {
            let key = read_str(&mut c, "proxy_set_shared_data", key, key_len)?;
            let value = read(&mut c, "proxy_set_shared_data", value, value_len)?;
            let shared = c.data().shared.clone();
            let mut shared = shared.lock().map_err(poisoned)?;
            Ok(match shared.set(&key, value, cas as u32) {
                true => OK,
                false => CAS_MISMATCH,
            })
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_register_shared_queue",
        |mut c: C<'_>, name: i32, name_len: i32, ret_id: i32| -> Result<i32> {
            let name = read_str(&mut c, "proxy_register_shared_queue", name, name_len)?;
            let (vm_id, owner) = (
                c.data().vm_id.clone(),
                (c.data().instance, c.data().effective_context),
            );
            let id = c
                .data()
                .shared
                .lock()
                .map_err(poisoned)?
                .register_queue(&vm_id, &name, owner);
            write(
                &mut c,
                "proxy_register_shared_queue",
                ret_id,
                &id.to_le_bytes(),
            )?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_resolve_shared_queue",
        |mut c: C<'_>,
         vm: i32,
         vm_len: i32,
         name: i32,
         name_len: i32,
         ret_id: i32|
         -> Result<i32> {
            let vm_id = read_str(&mut c, "proxy_resolve_shared_queue", vm, vm_len)?;
            let name = read_str(&mut c, "proxy_resolve_shared_queue", name, name_len)?;
            let id = c
                .data()
                .shared
                .lock()
                .map_err(poisoned)?
                .resolve_queue(&vm_id, &name);
            match id {
                Some(id) => {
                    write(
                        &mut c,
                        "proxy_resolve_shared_queue",
                        ret_id,
                        &id.to_le_bytes(),
                    )?;
                    Ok(OK)
                }
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_enqueue_shared_queue",
        |mut c: C<'_>, id: i32, data: i32, len: i32| -> Result<i32> {
            let value = read(&mut c, "proxy_enqueue_shared_queue", data, len)?;
            let mut shared = c.data().shared.lock().map_err(poisoned)?;
            Ok(match shared.enqueue(id as u32, value) {
                true => OK,
                false => NOT_FOUND,
            })
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_dequeue_shared_queue",
        |mut c: C<'_>, id: i32, ret_data: i32, ret_size: i32| -> Result<i32> {
            let item = {
                let mut shared = c.data().shared.lock().map_err(poisoned)?;
                match shared.dequeue(id as u32) {
                    Some(item) => item.ok_or(EMPTY),
                    None => Err(NOT_FOUND),
                }
            };
            match item {
                Ok(bytes) => {
                    give(
                        &mut c,
                        "proxy_dequeue_shared_queue",
                        &bytes,
                        ret_data,
                        ret_size,
                    )?;
                    Ok(OK)
                }
                Err(status) => Ok(status),
            }
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_continue_stream",
        |mut c: C<'_>, stream: i32| -> i32 {
            c.data_mut()
                .stream_actions
                .push(format!("continue {stream}"));
            OK
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_close_stream",
        |mut c: C<'_>, stream: i32| -> i32 {
            c.data_mut().stream_actions.push(format!("close {stream}"));
            OK
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_send_local_response",
        |mut c: C<'_>,
         status: i32,
         details: i32,
         details_len: i32,
         body: i32,
         body_len: i32,
         headers: i32,
         headers_len: i32,
         grpc_status: i32|
         -> Result<i32> {
            c.data_mut().count_call("proxy_send_local_response");
            let details = read_str(&mut c, "proxy_send_local_response", details, details_len)?;
            let body = read(&mut c, "proxy_send_local_response", body, body_len)?;
            let raw = read(&mut c, "proxy_send_local_response", headers, headers_len)?;
            let headers = if raw.is_empty() {
                Vec::new()
            } else {
                match pairs::decode(&raw) {
                    Some(h) => h,
                    None => return Ok(SERIALIZATION_FAILURE),
                }
            };
            c.data_mut().local_response = Some(super::LocalResponse {
                status: status as u32 as u16,
                headers,
                body,
                details,
                grpc_status,
            });
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_http_call",
        |mut c: C<'_>,
         upstream: i32,
         upstream_len: i32,
         headers: i32,
         headers_len: i32,
         body: i32,
         body_len: i32,
         trailers: i32,
         trailers_len: i32,
         timeout_ms: i32,
         ret_token: i32|
         -> Result<i32> {
            const IMPORT: &str = "proxy_http_call";
            let upstream = read_str(&mut c, IMPORT, upstream, upstream_len)?;
            let headers = read(&mut c, IMPORT, headers, headers_len)?;
            let body = read(&mut c, IMPORT, body, body_len)?;
            let trailers = read(&mut c, IMPORT, trailers, trailers_len)?;
            let decode = |b: &[u8]| {
                if b.is_empty() {
                    Some(Vec::new())
                } else {
                    pairs::decode(b)
                }
            };
            let (Some(headers), Some(trailers)) = (decode(&headers), decode(&trailers)) else {
                return Ok(SERIALIZATION_FAILURE);
            };
            let state = c.data_mut();
            if !state.known_clusters.is_empty() && !state.known_clusters.contains(&upstream) {
                return Ok(BAD_ARGUMENT); // Envoy: unknown cluster fails synchronously.
            }
            let required = [":method", ":path", ":authority"];
            if required.iter().any(|r| header_value(&headers, r).is_none()) {
                return Ok(BAD_ARGUMENT);
            }
            state.next_token += 1;
            let token = state.next_token;
            state.http_calls.push(HttpCall {
                token,
                context: state.effective_context,
                upstream,
                headers,
                body,
                trailers,
                timeout_ms: timeout_ms as u32,
            });
            write(&mut c, IMPORT, ret_token, &token.to_le_bytes())?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_effective_context",
        |mut c: C<'_>, context: i32| -> i32 {
            let context = context as u32;
            let state = c.data_mut();
            if state.live_contexts.contains(&context) {
                state.effective_context = context;
                OK
            } else {
                BAD_ARGUMENT
            }
        },
    )?;
    linker.func_wrap(ENV, "proxy_done", |mut c: C<'_>| -> i32 {
        c.data_mut().done_called += 1;
        OK
    })?;
    linker.func_wrap(
        ENV,
        "proxy_call_foreign_function",
        |mut c: C<'_>,
         name: i32,
         name_len: i32,
         args: i32,
         args_len: i32,
         ret_data: i32,
         ret_size: i32|
         -> Result<i32> {
            c.data_mut().count_call("proxy_call_foreign_function");
            let name = read_str(&mut c, "proxy_call_foreign_function", name, name_len)?;
            let args = read(&mut c, "proxy_call_foreign_function", args, args_len)?;
            let state = c.data_mut();
            let known = state.foreign_functions.contains(&name);
            state.foreign_calls.push((name, args));
            if !known {
                return Ok(NOT_FOUND);
            }
            give(
                &mut c,
                "proxy_call_foreign_function",
                &[],
                ret_data,
                ret_size,
            )?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_define_metric",
        |mut c: C<'_>, kind: i32, name: i32, name_len: i32, ret_id: i32| -> Result<i32> {
            c.data_mut().count_call("proxy_define_metric");
            let name = read_str(&mut c, "proxy_define_metric", name, name_len)?;
            let Some(kind) = MetricKind::from_abi(kind) else {
                return Ok(BAD_ARGUMENT);
            };
            let id = c.data_mut().define_metric(kind, name);
            write(&mut c, "proxy_define_metric", ret_id, &id.to_le_bytes())?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_increment_metric",
        |mut c: C<'_>, id: i32, offset: i64| -> i32 {
            c.data_mut().count_call("proxy_increment_metric");
            match c.data_mut().metrics.get_mut(id as u32 as usize) {
                Some(m) if m.kind != MetricKind::Histogram => {
                    m.value = m.value.wrapping_add(offset);
                    OK
                }
                Some(_) => BAD_ARGUMENT,
                None => NOT_FOUND,
            }
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_record_metric",
        |mut c: C<'_>, id: i32, value: i64| -> i32 {
            c.data_mut().count_call("proxy_record_metric");
            match c.data_mut().metrics.get_mut(id as u32 as usize) {
                Some(m) => {
                    m.value = value;
                    m.recorded.push(value as u64);
                    OK
                }
                None => NOT_FOUND,
            }
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_metric",
        |mut c: C<'_>, id: i32, ret: i32| -> Result<i32> {
            let Some(value) = c.data().metrics.get(id as u32 as usize).map(|m| m.value) else {
                return Ok(NOT_FOUND);
            };
            write(&mut c, "proxy_get_metric", ret, &value.to_le_bytes())?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_status",
        |mut c: C<'_>, ret_code: i32, ret_data: i32, ret_size: i32| -> Result<i32> {
            let (code, message) = c.data().call_status.clone();
            write(&mut c, "proxy_get_status", ret_code, &code.to_le_bytes())?;
            give(
                &mut c,
                "proxy_get_status",
                message.as_bytes(),
                ret_data,
                ret_size,
            )?;
            Ok(OK)
        },
    )?;
    Ok(())
}

/// A property path as the ABI sends it (segments separated by NUL, maybe NUL-terminated) in
/// the host's key form: segments joined with `.` (`destination.address`).
fn property_key(path: &[u8]) -> String {
    String::from_utf8_lossy(path)
        .trim_end_matches('\0')
        .replace('\0', ".")
}

pub(super) fn header_value<'h>(headers: &'h [(String, String)], key: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

fn poisoned<T>(_: T) -> wasmtime::Error {
    wasmtime::Error::msg("shared data lock poisoned by a panicking test thread")
}
