//! Guest memory access for host functions. An out-of-bounds pointer from the module traps with
//! the name of the import that received it.

use wasmtime::{Caller, Error, Extern, Memory, Result};

use super::HostState;

fn memory(c: &mut Caller<'_, HostState>, import: &str) -> Result<Memory> {
    match c.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(Error::msg(format!(
            "{import}: the module exports no linear memory named `memory`"
        ))),
    }
}

/// Copies `len` bytes at `ptr` out of the module.
pub(super) fn read(
    c: &mut Caller<'_, HostState>,
    import: &str,
    ptr: i32,
    len: i32,
) -> Result<Vec<u8>> {
    let mem = memory(c, import)?;
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    mem.data(&*c)
        .get(start..start.saturating_add(len))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            Error::msg(format!(
                "{import}: guest pointer {start:#x}+{len} is outside linear memory"
            ))
        })
}

/// Reads a UTF-8 string (lossily) at `ptr`.
pub(super) fn read_str(
    c: &mut Caller<'_, HostState>,
    import: &str,
    ptr: i32,
    len: i32,
) -> Result<String> {
    Ok(String::from_utf8_lossy(&read(c, import, ptr, len)?).into_owned())
}

/// Writes `bytes` at `ptr` in the module.
pub(super) fn write(
    c: &mut Caller<'_, HostState>,
    import: &str,
    ptr: i32,
    bytes: &[u8],
) -> Result<()> {
    let mem = memory(c, import)?;
    let start = ptr as u32 as usize;
    mem.data_mut(&mut *c)
        .get_mut(start..start.saturating_add(bytes.len()))
        .ok_or_else(|| {
            Error::msg(format!(
                "{import}: guest pointer {start:#x}+{} is outside linear memory",
                bytes.len()
            ))
        })?
        .copy_from_slice(bytes);
    Ok(())
}

/// Hands `bytes` to the module the ABI way: memory from `proxy_on_memory_allocate`, then the
/// pointer and size written to `ret_data`/`ret_size`.
pub(super) fn give(
    c: &mut Caller<'_, HostState>,
    import: &str,
    bytes: &[u8],
    ret_data: i32,
    ret_size: i32,
) -> Result<()> {
    let ptr = if bytes.is_empty() {
        0
    } else {
        let alloc = c
            .get_export("proxy_on_memory_allocate")
            .and_then(Extern::into_func)
            .ok_or_else(|| {
                Error::msg(format!(
                    "{import}: the module does not export proxy_on_memory_allocate"
                ))
            })?
            .typed::<i32, i32>(&*c)?;
        let ptr = alloc.call(&mut *c, bytes.len() as i32)?;
        if ptr == 0 {
            return Err(Error::msg(format!(
                "{import}: proxy_on_memory_allocate({}) returned null",
                bytes.len()
            )));
        }
        write(c, import, ptr, bytes)?;
        ptr
    };
    write(c, import, ret_data, &ptr.to_le_bytes())?;
    write(c, import, ret_size, &(bytes.len() as u32).to_le_bytes())?;
    Ok(())
}
