//! Events and the waits: `CreateEventA/W`, `SetEvent`, `ResetEvent`, `WaitForSingleObject(Ex)`,
//! `WaitForMultipleObjects(Ex)` on thread, event and completion-port handles (see `wait.rs`).

use std::ffi::c_void;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::guard;
use crate::handles::{self, Object};
use crate::status::{bool_ret, set_last_error};
use crate::thread::CURRENT_THREAD;
use crate::types::*;
use crate::wait::{my_parker, wait, Signal, Target};

/// The most handles `WaitForMultipleObjects` takes (Windows' limit).
pub const MAXIMUM_WAIT_OBJECTS: DWORD = 64;

fn create_event(manual: BOOL, initial: BOOL, named: bool) -> HANDLE {
    if named {
        // Named events are shared between processes on Windows; here they are not offered.
        set_last_error(ERROR_NOT_SUPPORTED);
        return std::ptr::null_mut();
    }
    let signal = Arc::new(Signal::new(manual != 0, initial != 0));
    match handles::insert(Object::Event(signal)) {
        Some(h) => {
            // Windows sets ERROR_ALREADY_EXISTS for an existing named event, 0 otherwise.
            set_last_error(ERROR_SUCCESS);
            h
        }
        None => {
            set_last_error(ERROR_NOT_ENOUGH_MEMORY);
            std::ptr::null_mut()
        }
    }
}

/// Creates an event: manual-reset (stays signalled until `ResetEvent`) or auto-reset (one
/// satisfied wait resets it), signalled at once with `bInitialState`. A name is refused with
/// `ERROR_NOT_SUPPORTED`: events are not shared between processes.
#[no_mangle]
pub unsafe extern "C" fn CreateEventA(
    _lpEventAttributes: *mut c_void,
    bManualReset: BOOL,
    bInitialState: BOOL,
    lpName: *const libc::c_char,
) -> HANDLE {
    guard(std::ptr::null_mut(), || {
        create_event(bManualReset, bInitialState, !lpName.is_null())
    })
}

/// `CreateEventA` with a wide name.
#[no_mangle]
pub unsafe extern "C" fn CreateEventW(
    _lpEventAttributes: *mut c_void,
    bManualReset: BOOL,
    bInitialState: BOOL,
    lpName: *const libc::wchar_t,
) -> HANDLE {
    guard(std::ptr::null_mut(), || {
        create_event(bManualReset, bInitialState, !lpName.is_null())
    })
}

fn event_of(h: HANDLE) -> Option<Arc<Signal>> {
    match handles::get(h) {
        Some(Object::Event(e)) => Some(e),
        _ => None,
    }
}

/// Signals the event: it releases every waiter if manual-reset, one if auto-reset.
#[no_mangle]
pub unsafe extern "C" fn SetEvent(hEvent: HANDLE) -> BOOL {
    guard(FALSE, || {
        bool_ret(
            event_of(hEvent)
                .map(|e| e.set())
                .ok_or(ERROR_INVALID_HANDLE),
        )
    })
}

/// Makes the event non-signalled.
#[no_mangle]
pub unsafe extern "C" fn ResetEvent(hEvent: HANDLE) -> BOOL {
    guard(FALSE, || {
        bool_ret(
            event_of(hEvent)
                .map(|e| e.reset())
                .ok_or(ERROR_INVALID_HANDLE),
        )
    })
}

/// What a handle waits on: a thread's end, an event, a port's queue.
fn target_of(h: HANDLE) -> Result<Target, DWORD> {
    if h == CURRENT_THREAD || h == INVALID_HANDLE_VALUE {
        // The calling thread, or (GetCurrentProcess()) the process: neither ends while the
        // caller waits.
        return Ok(Target::Never);
    }
    match handles::get(h) {
        Some(Object::Thread(t)) => Ok(Target::Signal(t.ended.clone())),
        Some(Object::Event(e)) => Ok(Target::Signal(e)),
        Some(Object::Port(p)) => Ok(Target::Port(p)),
        // Sockets and files are not waitable here; garbage is not a handle.
        None => Err(ERROR_INVALID_HANDLE),
    }
}

fn wait_handles(handles: &[HANDLE], all: bool, ms: DWORD) -> DWORD {
    let mut targets = Vec::with_capacity(handles.len());
    for (i, &h) in handles.iter().enumerate() {
        if all && handles[..i].contains(&h) {
            // Windows refuses a wait-all on the same object twice.
            set_last_error(ERROR_INVALID_PARAMETER);
            return WAIT_FAILED;
        }
        match target_of(h) {
            Ok(t) => targets.push(t),
            Err(e) => {
                set_last_error(e);
                return WAIT_FAILED;
            }
        }
    }
    let deadline = match ms {
        INFINITE => None,
        ms => Instant::now().checked_add(Duration::from_millis(ms.into())),
    };
    match wait(&my_parker(), &targets, all, deadline) {
        Some(i) => WAIT_OBJECT_0 + i as DWORD,
        None => WAIT_TIMEOUT,
    }
}

/// Waits until the object is signalled (a thread has ended, an event is set, a port holds a
/// packet) or `dwMilliseconds` pass: `WAIT_OBJECT_0`, `WAIT_TIMEOUT`, or `WAIT_FAILED` with
/// `ERROR_INVALID_HANDLE`.
#[no_mangle]
pub unsafe extern "C" fn WaitForSingleObject(hHandle: HANDLE, dwMilliseconds: DWORD) -> DWORD {
    guard(WAIT_FAILED, || {
        wait_handles(&[hHandle], false, dwMilliseconds)
    })
}

/// As `WaitForSingleObject`; with no APCs on Linux, an alertable wait is never cut short.
#[no_mangle]
pub unsafe extern "C" fn WaitForSingleObjectEx(
    hHandle: HANDLE,
    dwMilliseconds: DWORD,
    _bAlertable: BOOL,
) -> DWORD {
    guard(WAIT_FAILED, || {
        wait_handles(&[hHandle], false, dwMilliseconds)
    })
}

fn wait_multiple(count: DWORD, handles: *const HANDLE, all: BOOL, ms: DWORD) -> DWORD {
    if count == 0 || count > MAXIMUM_WAIT_OBJECTS || handles.is_null() {
        set_last_error(ERROR_INVALID_PARAMETER);
        return WAIT_FAILED;
    }
    // SAFETY: the caller's array of `count` handles (at most 64), not NULL.
    let handles = unsafe { std::slice::from_raw_parts(handles, count as usize) };
    wait_handles(handles, all != 0, ms)
}

/// Waits until one (`bWaitAll` FALSE: `WAIT_OBJECT_0` + the lowest index signalled) or all
/// (`WAIT_OBJECT_0`, every auto-reset event taken at once) of up to 64 objects are signalled, or
/// `dwMilliseconds` pass (`WAIT_TIMEOUT`). `WAIT_FAILED` with `ERROR_INVALID_PARAMETER` for 0 or
/// more than 64 handles, a NULL array or a wait-all naming an object twice, and with
/// `ERROR_INVALID_HANDLE` for a handle that is not a thread, an event or a port.
#[no_mangle]
pub unsafe extern "C" fn WaitForMultipleObjects(
    nCount: DWORD,
    lpHandles: *const HANDLE,
    bWaitAll: BOOL,
    dwMilliseconds: DWORD,
) -> DWORD {
    guard(WAIT_FAILED, || {
        wait_multiple(nCount, lpHandles, bWaitAll, dwMilliseconds)
    })
}

/// As `WaitForMultipleObjects`; with no APCs on Linux, an alertable wait is never cut short.
#[no_mangle]
pub unsafe extern "C" fn WaitForMultipleObjectsEx(
    nCount: DWORD,
    lpHandles: *const HANDLE,
    bWaitAll: BOOL,
    dwMilliseconds: DWORD,
    _bAlertable: BOOL,
) -> DWORD {
    guard(WAIT_FAILED, || {
        wait_multiple(nCount, lpHandles, bWaitAll, dwMilliseconds)
    })
}
