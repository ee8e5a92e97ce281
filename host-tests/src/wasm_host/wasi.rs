//! The WASI preview1 functions a `wasm32-wasip1` proxy-wasm module imports, implemented here
//! instead of pulling in `wasmtime-wasi` (which brings an async runtime and a filesystem layer a
//! filter never uses). stdout/stderr go to the captured logs; there is no filesystem, no
//! environment, no arguments; `random_get` is deterministic (seeded per VM) so runs repeat.

use wasmtime::{Caller, Linker, Result};

use super::memory::{read, write};
use super::{HostState, LogLevel};

const WASI: &str = "wasi_snapshot_preview1";
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_INVAL: i32 = 28;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        WASI,
        "fd_write",
        |mut c: Caller<'_, HostState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         nwritten: i32|
         -> Result<i32> {
            let level = match fd {
                1 => LogLevel::Info,
                2 => LogLevel::Error,
                _ => return Ok(ERRNO_BADF),
            };
            let iov = read(&mut c, "fd_write", iovs, iovs_len.wrapping_mul(8))?;
            let mut out = Vec::new();
            for chunk in iov.chunks_exact(8) {
                let ptr = i32::from_le_bytes(chunk[0..4].try_into().unwrap_or_default());
                let len = i32::from_le_bytes(chunk[4..8].try_into().unwrap_or_default());
                out.extend(read(&mut c, "fd_write", ptr, len)?);
            }
            write(
                &mut c,
                "fd_write",
                nwritten,
                &(out.len() as u32).to_le_bytes(),
            )?;
            let text = String::from_utf8_lossy(&out).trim_end().to_string();
            c.data_mut().log(level, format!("[fd {fd}] {text}"));
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.func_wrap(
        WASI,
        "random_get",
        |mut c: Caller<'_, HostState>, buf: i32, len: i32| -> Result<i32> {
            let mut bytes = vec![0u8; len.max(0) as usize];
            for b in bytes.iter_mut() {
                *b = c.data_mut().next_random() as u8;
            }
            write(&mut c, "random_get", buf, &bytes)?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    for (name, count) in [("environ_sizes_get", 0), ("args_sizes_get", 0)] {
        let _ = count;
        linker.func_wrap(
            WASI,
            name,
            move |mut c: Caller<'_, HostState>, count: i32, size: i32| -> Result<i32> {
                write(&mut c, name, count, &0u32.to_le_bytes())?;
                write(&mut c, name, size, &0u32.to_le_bytes())?;
                Ok(ERRNO_SUCCESS)
            },
        )?;
    }
    for name in ["environ_get", "args_get"] {
        linker.func_wrap(
            WASI,
            name,
            |_: Caller<'_, HostState>, _: i32, _: i32| -> i32 { ERRNO_SUCCESS },
        )?;
    }
    linker.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: Caller<'_, HostState>, _id: i32, _precision: i64, out: i32| -> Result<i32> {
            let now = c.data().now_nanos;
            write(&mut c, "clock_time_get", out, &now.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.func_wrap(
        WASI,
        "proc_exit",
        |_: Caller<'_, HostState>, code: i32| -> Result<()> {
            Err(wasmtime::Error::msg(format!(
                "wasi_snapshot_preview1::proc_exit({code}) called by the module"
            )))
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_close",
        |_: Caller<'_, HostState>, _: i32| -> i32 { ERRNO_BADF },
    )?;
    linker.func_wrap(
        WASI,
        "fd_fdstat_get",
        |_: Caller<'_, HostState>, _: i32, _: i32| -> i32 { ERRNO_BADF },
    )?;
    linker.func_wrap(
        WASI,
        "fd_seek",
        |_: Caller<'_, HostState>, _: i32, _: i64, _: i32, _: i32| -> i32 { ERRNO_BADF },
    )?;
    linker.func_wrap(WASI, "sched_yield", |_: Caller<'_, HostState>| -> i32 {
        ERRNO_SUCCESS
    })?;
    linker.func_wrap(
        WASI,
        "fd_prestat_get",
        |_: Caller<'_, HostState>, _: i32, _: i32| -> i32 { ERRNO_BADF },
    )?;
    linker.func_wrap(
        WASI,
        "fd_prestat_dir_name",
        |_: Caller<'_, HostState>, _: i32, _: i32, _: i32| -> i32 { ERRNO_INVAL },
    )?;
    Ok(())
}
