//! The host side of the proxy-wasm ABI (0.1.0 and 0.2.x, the subset
//! Layotto's functions use), Layotto's `proxy_get_state` and
//! `proxy_invoke_service`, our `proxy_save_state` and `proxy_publish_event`,
//! and the few WASI calls that TinyGo, Rust and AssemblyScript runtimes make
//! at start-up. Host calls that need the runtime block this thread (a
//! blocking-pool thread, never a reactor thread) on the runtime's handle.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Engine, Extern, ExternType, Linker, Module, ResourceLimiter, Val};

use crate::{HttpCall, Shared};

/// proxy-wasm status codes.
pub(crate) mod status {
    pub const OK: i32 = 0;
    pub const NOT_FOUND: i32 = 1;
    pub const BAD_ARGUMENT: i32 = 2;
    pub const INVALID_MEMORY_ACCESS: i32 = 6;
    pub const INTERNAL_FAILURE: i32 = 10;
    pub const UNIMPLEMENTED: i32 = 12;
}

/// proxy-wasm buffer types; 8 is Layotto's call data (`proxy_get_id`'s answer).
const REQUEST_BODY: i32 = 0;
const RESPONSE_BODY: i32 = 1;
const VM_CONFIGURATION: i32 = 6;
const PLUGIN_CONFIGURATION: i32 = 7;
const CALL_DATA: i32 = 8;

/// proxy-wasm header map types.
const REQUEST_HEADERS: i32 = 0;
const REQUEST_TRAILERS: i32 = 1;
const RESPONSE_HEADERS: i32 = 2;
const RESPONSE_TRAILERS: i32 = 3;

/// WASI errno values.
const WASI_EBADF: i32 = 8;
const WASI_ENOSYS: i32 = 52;

const WASI_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// What one instance's host functions see.
pub(crate) struct HostState {
    pub function: Arc<str>,
    pub cap: MemoryCap,
    pub vm_config: Vec<u8>,
    pub plugin_config: Vec<u8>,
    /// Buffer 8: where `proxy_get_id` writes the function's id.
    pub call_data: Vec<u8>,
    pub call: CallState,
    pub shared: Weak<Shared>,
    /// When the current call must be over; host calls get what is left.
    pub deadline: Instant,
}

/// The request and response of the call in progress.
#[derive(Default)]
pub(crate) struct CallState {
    pub request_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    pub request_trailers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub response_trailers: Vec<(String, String)>,
    pub response_body: Vec<u8>,
    /// Set by `proxy_send_local_response`.
    pub local_response: Option<crate::HttpAnswer>,
}

impl CallState {
    pub fn new(call: HttpCall) -> Self {
        Self {
            request_headers: call.headers,
            request_body: call.body,
            request_trailers: call.trailers,
            ..Default::default()
        }
    }
}

/// Caps an instance's linear memory; growing past it traps with [`MemoryOverrun`].
pub(crate) struct MemoryCap {
    pub max_bytes: usize,
}

/// A `memory.grow` (or an initial memory) past the cap.
#[derive(Debug)]
pub(crate) struct MemoryOverrun {
    pub cap: usize,
    pub desired: usize,
}

impl std::fmt::Display for MemoryOverrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "memory would grow to {} bytes, past its cap of {} bytes", self.desired, self.cap)
    }
}

impl std::error::Error for MemoryOverrun {}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            return Err(wasmtime::Error::new(MemoryOverrun { cap: self.max_bytes, desired }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A table entry is a pointer: this keeps tables well inside the memory cap.
        Ok(desired <= self.max_bytes / 64)
    }
}

/// WASI `proc_exit`: ends the call; code 0 during start-up is a normal end of `_start`.
#[derive(Debug)]
pub(crate) struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the module exited with code {}", self.0)
    }
}

impl std::error::Error for Exit {}

type Ctx<'a> = Caller<'a, HostState>;

fn memory(caller: &mut Ctx<'_>) -> Option<wasmtime::Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

/// `len` bytes at `ptr` of the module's memory.
fn read(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, i32> {
    let memory = memory(caller).ok_or(status::INVALID_MEMORY_ACCESS)?;
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let end = start.checked_add(len).ok_or(status::INVALID_MEMORY_ACCESS)?;
    memory.data(&*caller).get(start..end).map(<[u8]>::to_vec).ok_or(status::INVALID_MEMORY_ACCESS)
}

fn read_string(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> Result<String, i32> {
    String::from_utf8(read(caller, ptr, len)?).map_err(|_| status::BAD_ARGUMENT)
}

fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> Result<(), i32> {
    let memory = memory(caller).ok_or(status::INVALID_MEMORY_ACCESS)?;
    memory.write(&mut *caller, ptr as u32 as usize, bytes).map_err(|_| status::INVALID_MEMORY_ACCESS)
}

fn write_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> Result<(), i32> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Copies `data` into memory the module allocates (its `malloc` or
/// `proxy_on_memory_allocate`) and stores the pointer and length at
/// `ptr_out` and `len_out`. Empty data is a null pointer, which the SDKs
/// read as "no value". A trap in the allocator ends the call.
fn give(caller: &mut Ctx<'_>, data: &[u8], ptr_out: i32, len_out: i32) -> wasmtime::Result<i32> {
    let ptr = if data.is_empty() {
        0
    } else {
        let allocator = caller
            .get_export("malloc")
            .or_else(|| caller.get_export("proxy_on_memory_allocate"))
            .and_then(Extern::into_func);
        let Some(allocator) = allocator else {
            return Err(wasmtime::Error::msg(
                "the module exports no allocator (malloc or proxy_on_memory_allocate)",
            ));
        };
        let len = i32::try_from(data.len()).map_err(|_| wasmtime::Error::msg("a host buffer over 2 GiB"))?;
        let ptr = allocator.typed::<i32, i32>(&*caller)?.call(&mut *caller, len)?;
        if ptr == 0 {
            // The module's allocator is out of memory.
            return Ok(status::INTERNAL_FAILURE);
        }
        if let Err(code) = write(caller, ptr, data) {
            return Ok(code);
        }
        ptr
    };
    let len = data.len() as u32;
    match write_u32(caller, ptr_out, ptr as u32).and_then(|()| write_u32(caller, len_out, len)) {
        Ok(()) => Ok(status::OK),
        Err(code) => Ok(code),
    }
}

/// Runs `f` with the value or returns the status code of the failure.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return Ok(code),
        }
    };
}

fn buffer(state: &HostState, kind: i32) -> Option<&[u8]> {
    Some(match kind {
        REQUEST_BODY => &state.call.request_body,
        RESPONSE_BODY => &state.call.response_body,
        VM_CONFIGURATION => &state.vm_config,
        PLUGIN_CONFIGURATION => &state.plugin_config,
        CALL_DATA => &state.call_data,
        _ => return None,
    })
}

fn buffer_mut(state: &mut HostState, kind: i32) -> Option<&mut Vec<u8>> {
    Some(match kind {
        REQUEST_BODY => &mut state.call.request_body,
        RESPONSE_BODY => &mut state.call.response_body,
        CALL_DATA => &mut state.call_data,
        _ => return None,
    })
}

fn header_map(state: &mut HostState, kind: i32) -> Option<&mut Vec<(String, String)>> {
    Some(match kind {
        REQUEST_HEADERS => &mut state.call.request_headers,
        REQUEST_TRAILERS => &mut state.call.request_trailers,
        RESPONSE_HEADERS => &mut state.call.response_headers,
        RESPONSE_TRAILERS => &mut state.call.response_trailers,
        _ => return None,
    })
}

/// proxy-wasm's map encoding: a count, each pair's key and value lengths,
/// then each key and value followed by a NUL, all little-endian u32.
pub(crate) fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (key, value) in pairs {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let count = u32_at(0)?;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        sizes.push((u32_at(4 + i * 8)?, u32_at(8 + i * 8)?));
    }
    let mut at = 4 + count * 8;
    let mut pairs = Vec::with_capacity(sizes.len());
    for (key_len, value_len) in sizes {
        let key = String::from_utf8(bytes.get(at..at + key_len)?.to_vec()).ok()?;
        at += key_len + 1;
        let value = String::from_utf8(bytes.get(at..at + value_len)?.to_vec()).ok()?;
        at += value_len + 1;
        pairs.push((key, value));
    }
    Some(pairs)
}

/// What is left of the call's deadline, for a host call into the runtime.
fn remaining(state: &HostState) -> Duration {
    state.deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
}

/// Runs a runtime call from this (blocking) thread, within the call's
/// deadline; a failure is logged naming the function and becomes InternalFailure.
fn block_on<T>(
    caller: &Ctx<'_>,
    what: &str,
    call: impl FnOnce(Arc<Shared>) -> futures_like::BoxFuture<layotto_core::Result<T>>,
) -> Result<T, i32> {
    let state = caller.data();
    let Some(shared) = state.shared.upgrade() else {
        return Err(status::INTERNAL_FAILURE);
    };
    let (handle, limit, function) = (shared.handle.clone(), remaining(state), state.function.clone());
    match handle.block_on(tokio::time::timeout(limit, call(shared))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::warn!(function = %function, error = %e, "{what} failed");
            Err(status::INTERNAL_FAILURE)
        }
        Err(_) => {
            tracing::warn!(function = %function, "{what}: no answer within the call's deadline");
            Err(status::INTERNAL_FAILURE)
        }
    }
}

mod futures_like {
    pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
}

/// A linker for `module`: the host functions, plus stubs for the proxy-wasm
/// and WASI calls we do not serve (they answer "unimplemented"), so modules
/// built by Layotto's toolchains link; any other unknown import is an error
/// naming it.
pub(crate) fn linker(engine: &Engine, module: &Module) -> wasmtime::Result<Linker<HostState>> {
    let mut linker: Linker<HostState> = Linker::new(engine);
    linker.allow_shadowing(true);
    for import in module.imports() {
        let (module_name, name) = (import.module(), import.name());
        let stubbed =
            (module_name == "env" && name.starts_with("proxy_")) || WASI_MODULES.contains(&module_name);
        let ExternType::Func(ty) = import.ty() else { continue };
        if !stubbed {
            continue;
        }
        let answer = if module_name == "env" { status::UNIMPLEMENTED } else { WASI_ENOSYS };
        let results: Vec<wasmtime::ValType> = ty.results().collect();
        let (module_name, name) = (module_name.to_owned(), name.to_owned());
        linker.func_new(&module_name.clone(), &name.clone(), ty, move |caller: Ctx<'_>, _params: &[Val], out: &mut [Val]| {
            tracing::debug!(function = %caller.data().function, import = %format!("{module_name}.{name}"), "unimplemented host call");
            for (slot, ty) in out.iter_mut().zip(&results) {
                *slot = match ty {
                    wasmtime::ValType::I32 => Val::I32(answer),
                    other => Val::default_for_ty(other).unwrap_or(Val::I32(0)),
                };
            }
            Ok(())
        })?;
    }
    proxy_wasm(&mut linker)?;
    layotto(&mut linker)?;
    for wasi in WASI_MODULES {
        self::wasi(&mut linker, wasi)?;
    }
    Ok(linker)
}

fn proxy_wasm(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_log", |mut caller: Ctx<'_>, level: i32, ptr: i32, len: i32| {
        let message = tri!(read(&mut caller, ptr, len));
        let message = String::from_utf8_lossy(&message);
        let function = &caller.data().function;
        match level {
            0 => tracing::trace!(function = %function, "{message}"),
            1 => tracing::debug!(function = %function, "{message}"),
            2 => tracing::info!(function = %function, "{message}"),
            3 => tracing::warn!(function = %function, "{message}"),
            _ => tracing::error!(function = %function, "{message}"),
        }
        Ok(status::OK)
    })?;
    linker.func_wrap("env", "proxy_get_log_level", |mut caller: Ctx<'_>, out: i32| {
        // Info: the modules' own debug logs are filtered by our subscriber anyway.
        Ok(write_u32(&mut caller, out, 2).err().unwrap_or(status::OK))
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut caller: Ctx<'_>, kind: i32, start: i32, max: i32, ptr_out: i32, len_out: i32| {
            let Some(bytes) = buffer(caller.data(), kind) else { return Ok(status::BAD_ARGUMENT) };
            let start = (start as u32 as usize).min(bytes.len());
            let end = start.saturating_add(max as u32 as usize).min(bytes.len());
            let slice = bytes[start..end].to_vec();
            give(&mut caller, &slice, ptr_out, len_out)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut caller: Ctx<'_>, kind: i32, len_out: i32, flags_out: i32| {
            let Some(bytes) = buffer(caller.data(), kind) else { return Ok(status::BAD_ARGUMENT) };
            let len = bytes.len() as u32;
            tri!(write_u32(&mut caller, len_out, len));
            tri!(write_u32(&mut caller, flags_out, 0));
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut caller: Ctx<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
            let data = tri!(read(&mut caller, ptr, len));
            let cap = caller.data().cap.max_bytes;
            let Some(bytes) = buffer_mut(caller.data_mut(), kind) else { return Ok(status::BAD_ARGUMENT) };
            // Replaces bytes [start, start + size) with the data, as proxy-wasm hosts do.
            let start = (start as u32 as usize).min(bytes.len());
            let end = start.saturating_add(size as u32 as usize).min(bytes.len());
            // Host buffers count against the instance's memory cap too.
            if bytes.len() - (end - start) + data.len() > cap {
                return Ok(status::BAD_ARGUMENT);
            }
            bytes.splice(start..end, data);
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut caller: Ctx<'_>, kind: i32, ptr_out: i32, len_out: i32| {
            let Some(map) = header_map(caller.data_mut(), kind) else { return Ok(status::BAD_ARGUMENT) };
            let encoded = encode_pairs(map);
            give(&mut caller, &encoded, ptr_out, len_out)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut caller: Ctx<'_>, kind: i32, ptr: i32, len: i32| {
            let bytes = tri!(read(&mut caller, ptr, len));
            let Some(pairs) = decode_pairs(&bytes) else { return Ok(status::BAD_ARGUMENT) };
            let Some(map) = header_map(caller.data_mut(), kind) else { return Ok(status::BAD_ARGUMENT) };
            *map = pairs;
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut caller: Ctx<'_>, kind: i32, size_out: i32| {
            let Some(map) = header_map(caller.data_mut(), kind) else { return Ok(status::BAD_ARGUMENT) };
            let size = encode_pairs(map).len() as u32;
            Ok(write_u32(&mut caller, size_out, size).err().unwrap_or(status::OK))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut caller: Ctx<'_>, kind: i32, key_ptr: i32, key_len: i32, ptr_out: i32, len_out: i32| {
            let key = tri!(read_string(&mut caller, key_ptr, key_len));
            let Some(map) = header_map(caller.data_mut(), kind) else { return Ok(status::BAD_ARGUMENT) };
            let Some((_, value)) = map.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key)) else {
                return Ok(status::NOT_FOUND);
            };
            let value = value.clone().into_bytes();
            give(&mut caller, &value, ptr_out, len_out)
        },
    )?;
    for (name, replace) in [("proxy_add_header_map_value", false), ("proxy_replace_header_map_value", true)] {
        linker.func_wrap(
            "env",
            name,
            move |mut caller: Ctx<'_>,
                  kind: i32,
                  key_ptr: i32,
                  key_len: i32,
                  value_ptr: i32,
                  value_len: i32| {
                let key = tri!(read_string(&mut caller, key_ptr, key_len));
                let value = tri!(read_string(&mut caller, value_ptr, value_len));
                let cap = caller.data().cap.max_bytes;
                let Some(map) = header_map(caller.data_mut(), kind) else { return Ok(status::BAD_ARGUMENT) };
                let size: usize = map.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
                if size + key.len() + value.len() > cap {
                    return Ok(status::BAD_ARGUMENT);
                }
                if replace {
                    map.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
                }
                map.push((key, value));
                Ok(status::OK)
            },
        )?;
    }
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut caller: Ctx<'_>, kind: i32, key_ptr: i32, key_len: i32| {
            let key = tri!(read_string(&mut caller, key_ptr, key_len));
            let Some(map) = header_map(caller.data_mut(), kind) else { return Ok(status::BAD_ARGUMENT) };
            map.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut caller: Ctx<'_>,
         code: i32,
         _details_ptr: i32,
         _details_len: i32,
         body_ptr: i32,
         body_len: i32,
         headers_ptr: i32,
         headers_len: i32,
         _grpc_status: i32| {
            let body = tri!(read(&mut caller, body_ptr, body_len));
            let headers = tri!(read(&mut caller, headers_ptr, headers_len));
            let headers =
                if headers.is_empty() { Vec::new() } else { decode_pairs(&headers).unwrap_or_default() };
            let Ok(code) = u16::try_from(code) else { return Ok(status::BAD_ARGUMENT) };
            if !(100..=999).contains(&code) {
                return Ok(status::BAD_ARGUMENT);
            }
            caller.data_mut().call.local_response = Some(crate::HttpAnswer { status: code, headers, body });
            Ok(status::OK)
        },
    )?;
    linker.func_wrap("env", "proxy_get_current_time_nanoseconds", |mut caller: Ctx<'_>, out: i32| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Ok(write(&mut caller, out, &nanos.to_le_bytes()).err().unwrap_or(status::OK))
    })?;
    linker.func_wrap("env", "proxy_get_property", |_: Ctx<'_>, _: i32, _: i32, _: i32, _: i32| {
        Ok(status::NOT_FOUND)
    })?;
    // Calls that change nothing here: one request per context, no ticks, no streams to resume.
    linker.func_wrap("env", "proxy_set_property", |_: Ctx<'_>, _: i32, _: i32, _: i32, _: i32| {
        Ok(status::OK)
    })?;
    linker.func_wrap("env", "proxy_set_effective_context", |_: Ctx<'_>, _: i32| Ok(status::OK))?;
    linker.func_wrap("env", "proxy_set_tick_period_milliseconds", |_: Ctx<'_>, _: i32| Ok(status::OK))?;
    linker.func_wrap("env", "proxy_done", |_: Ctx<'_>| Ok(status::OK))?;
    linker.func_wrap("env", "proxy_continue_request", |_: Ctx<'_>| Ok(status::OK))?;
    linker.func_wrap("env", "proxy_continue_response", |_: Ctx<'_>| Ok(status::OK))?;
    linker.func_wrap("env", "proxy_continue_stream", |_: Ctx<'_>, _: i32| Ok(status::OK))?;
    linker.func_wrap("env", "proxy_close_stream", |_: Ctx<'_>, _: i32| Ok(status::OK))?;
    Ok(())
}

/// Layotto's host functions, and ours for the rest of the APIs.
fn layotto(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_state",
        |mut caller: Ctx<'_>,
         store_ptr: i32,
         store_len: i32,
         key_ptr: i32,
         key_len: i32,
         ptr_out: i32,
         len_out: i32| {
            let store = tri!(read_string(&mut caller, store_ptr, store_len));
            let key = tri!(read_string(&mut caller, key_ptr, key_len));
            let value = tri!(block_on(&caller, "proxy_get_state", move |shared| {
                Box::pin(async move { shared.host.get_state(&store, &key).await })
            }));
            give(&mut caller, &value.unwrap_or_default(), ptr_out, len_out)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_invoke_service",
        |mut caller: Ctx<'_>,
         id_ptr: i32,
         id_len: i32,
         method_ptr: i32,
         method_len: i32,
         param_ptr: i32,
         param_len: i32,
         ptr_out: i32,
         len_out: i32| {
            let id = tri!(read_string(&mut caller, id_ptr, id_len));
            let method = tri!(read_string(&mut caller, method_ptr, method_len));
            let param = tri!(read(&mut caller, param_ptr, param_len));
            let body = tri!(block_on(&caller, "proxy_invoke_service", move |shared| {
                Box::pin(async move { shared.invoke_service(&id, &method, param).await })
            }));
            give(&mut caller, &body, ptr_out, len_out)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_save_state",
        |mut caller: Ctx<'_>,
         store_ptr: i32,
         store_len: i32,
         key_ptr: i32,
         key_len: i32,
         value_ptr: i32,
         value_len: i32| {
            let store = tri!(read_string(&mut caller, store_ptr, store_len));
            let key = tri!(read_string(&mut caller, key_ptr, key_len));
            let value = tri!(read(&mut caller, value_ptr, value_len));
            tri!(block_on(&caller, "proxy_save_state", move |shared| {
                Box::pin(async move { shared.host.save_state(&store, &key, value).await })
            }));
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_publish_event",
        |mut caller: Ctx<'_>,
         pubsub_ptr: i32,
         pubsub_len: i32,
         topic_ptr: i32,
         topic_len: i32,
         data_ptr: i32,
         data_len: i32| {
            let pubsub = tri!(read_string(&mut caller, pubsub_ptr, pubsub_len));
            let topic = tri!(read_string(&mut caller, topic_ptr, topic_len));
            let data = tri!(read(&mut caller, data_ptr, data_len));
            tri!(block_on(&caller, "proxy_publish_event", move |shared| {
                Box::pin(async move { shared.host.publish(&pubsub, &topic, data).await })
            }));
            Ok(status::OK)
        },
    )?;
    Ok(())
}

/// The WASI calls language runtimes make on their own: output, clocks,
/// randomness, an empty environment, no files, and `proc_exit`.
fn wasi(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "fd_write",
        |mut caller: Ctx<'_>, fd: i32, iovs: i32, count: i32, written_out: i32| {
            // What a module prints goes to the log, clipped: its output must not become ours to hold.
            const KEPT: usize = 64 * 1024;
            let mut text = Vec::new();
            let mut written: u32 = 0;
            for i in 0..count.max(0) {
                let Some(at) = i.checked_mul(8).and_then(|offset| iovs.checked_add(offset)) else {
                    return Ok(WASI_EBADF);
                };
                let iov = tri!(read(&mut caller, at, 8));
                let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                written = written.saturating_add(len as u32);
                if text.len() < KEPT {
                    let keep = (len as u32 as usize).min(KEPT - text.len());
                    text.extend(tri!(read(&mut caller, ptr, keep as i32)));
                }
            }
            let text = String::from_utf8_lossy(&text);
            let text = text.trim_end();
            if !text.is_empty() {
                let function = &caller.data().function;
                match fd {
                    1 => tracing::info!(function = %function, "{text}"),
                    2 => tracing::warn!(function = %function, "{text}"),
                    _ => return Ok(WASI_EBADF),
                }
            }
            Ok(write_u32(&mut caller, written_out, written).map_or(WASI_EBADF, |()| 0))
        },
    )?;
    linker.func_wrap(module, "proc_exit", |_: Ctx<'_>, code: i32| -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(Exit(code)))
    })?;
    linker.func_wrap(
        module,
        "clock_time_get",
        |mut caller: Ctx<'_>, clock: i32, _precision: i64, out: i32| {
            let nanos = match clock {
                0 => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
                _ => monotonic_nanos(),
            };
            Ok(write(&mut caller, out, &nanos.to_le_bytes()).map_or(WASI_EBADF, |()| 0))
        },
    )?;
    linker.func_wrap(module, "random_get", |mut caller: Ctx<'_>, ptr: i32, len: i32| {
        let size = memory(&mut caller).map_or(0, |m| m.data_size(&caller));
        let (start, len) = (ptr as u32 as usize, len as u32 as usize);
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Ok(WASI_EBADF);
        }
        let bytes = random_bytes(len);
        Ok(write(&mut caller, ptr, &bytes).map_or(WASI_EBADF, |()| 0))
    })?;
    for (sizes, values) in [("environ_sizes_get", "environ_get"), ("args_sizes_get", "args_get")] {
        linker.func_wrap(module, sizes, |mut caller: Ctx<'_>, count_out: i32, size_out: i32| {
            let wrote =
                write_u32(&mut caller, count_out, 0).and_then(|()| write_u32(&mut caller, size_out, 0));
            Ok(wrote.map_or(WASI_EBADF, |()| 0))
        })?;
        linker.func_wrap(module, values, |_: Ctx<'_>, _: i32, _: i32| Ok(0))?;
    }
    linker.func_wrap(module, "sched_yield", |_: Ctx<'_>| Ok(0))?;
    // No preopened directories: libc's start-up stops asking at the first EBADF.
    linker.func_wrap(module, "fd_prestat_get", |_: Ctx<'_>, _: i32, _: i32| Ok(WASI_EBADF))?;
    linker.func_wrap(module, "fd_fdstat_get", |mut caller: Ctx<'_>, fd: i32, out: i32| {
        if !(0..=2).contains(&fd) {
            return Ok(WASI_EBADF);
        }
        // A character device with no flags and every right.
        let mut stat = [0u8; 24];
        stat[0] = 2;
        stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        stat[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        Ok(write(&mut caller, out, &stat).map_or(WASI_EBADF, |()| 0))
    })?;
    linker.func_wrap(module, "fd_close", |_: Ctx<'_>, _: i32| Ok(0))?;
    Ok(())
}

fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Not for keys: seeds language runtimes' hash maps and the like.
fn random_bytes(len: usize) -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut out = Vec::with_capacity(len);
    let mut counter = 0u64;
    while out.len() < len {
        let mut hasher = state.build_hasher();
        hasher.write_u64(counter);
        hasher.write_u64(monotonic_nanos());
        out.extend_from_slice(&hasher.finish().to_le_bytes());
        counter += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_maps_round_trip_in_proxy_wasm_encoding() {
        let pairs =
            vec![("id".to_owned(), "id_1".to_owned()), (":path".to_owned(), "/?name=book1".to_owned())];
        let encoded = encode_pairs(&pairs);
        assert_eq!(&encoded[..4], &2u32.to_le_bytes());
        assert_eq!(&encoded[4..8], &2u32.to_le_bytes());
        assert_eq!(decode_pairs(&encoded), Some(pairs));
        assert_eq!(decode_pairs(&encoded[..10]), None, "a truncated map is refused");
    }

    #[test]
    fn random_bytes_fill_what_is_asked() {
        assert_eq!(random_bytes(13).len(), 13);
        assert_ne!(random_bytes(16), random_bytes(16));
    }
}
