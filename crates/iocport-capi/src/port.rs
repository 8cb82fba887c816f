//! The completion-port calls: `CreateIoCompletionPort`, `GetQueuedCompletionStatus(Ex)`,
//! `PostQueuedCompletionStatus`, `CloseHandle`, `CancelIo(Ex)`, `GetOverlappedResult`,
//! `SetFileCompletionNotificationModes`, and the thread's last error.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use iocport::{Builder, GetError, Packet};

use crate::core::{
    assoc_of, associate, check_ov, deliver, identity, lock, read_ov, thread_no, unassociate, Ctx,
    Port, RawBuf,
};
use crate::guard;
use crate::handles::{self, Object};
use crate::status::{last_error, nt_success, set_last_error, status_to_win32};
use crate::types::*;

/// The fd a `HANDLE` of a file or socket stands for, if it has that shape (0..=i32::MAX).
pub(crate) fn handle_fd(h: HANDLE) -> Option<RawFd> {
    let v = h as usize;
    if v <= i32::MAX as usize {
        Some(v as RawFd)
    } else {
        None
    }
}

/// The port a handle names, or the last error to fail with.
fn port_of(h: HANDLE) -> Result<Port, DWORD> {
    match handles::get(h) {
        Some(Object::Port(p)) => Ok(p),
        // A thread or an event (STATUS_OBJECT_TYPE_MISMATCH on Windows), or garbage.
        _ => Err(ERROR_INVALID_HANDLE),
    }
}

/// `FILE_SKIP_*` modes set on fds not yet associated; applied when they are.
static EARLY_MODES: Mutex<Option<HashMap<RawFd, u8>>> = Mutex::new(None);

/// Forgets what is remembered about `fd` when the program closes it.
pub(crate) fn forget_fd(fd: RawFd) {
    if let Some(m) = lock(&EARLY_MODES).as_mut() {
        m.remove(&fd);
    }
}

fn new_port(concurrency: DWORD) -> Result<HANDLE, DWORD> {
    crate::core::ignore_sigpipe();
    let port: Port = Builder::new()
        .concurrency(concurrency as usize)
        .build()
        .map_err(|_| ERROR_NOT_SUPPORTED)?;
    port.set_completion_hook(crate::core::hook)
        .map_err(|_| ERROR_NOT_SUPPORTED)?;
    handles::insert(Object::Port(port.clone())).ok_or_else(|| {
        port.close();
        ERROR_NOT_ENOUGH_MEMORY
    })
}

fn create_io_completion_port(
    file: HANDLE,
    existing: HANDLE,
    key: ULONG_PTR,
    concurrency: DWORD,
) -> Result<HANDLE, DWORD> {
    if file == INVALID_HANDLE_VALUE {
        if !existing.is_null() {
            return Err(ERROR_INVALID_PARAMETER);
        }
        return new_port(concurrency);
    }
    let Some(fd) = handle_fd(file) else {
        // Not a file: a port (STATUS_OBJECT_TYPE_MISMATCH on Windows) or garbage.
        return Err(ERROR_INVALID_HANDLE);
    };
    if file.is_null() || identity(fd).is_none() {
        return Err(ERROR_INVALID_HANDLE);
    }
    let (port, handle) = if existing.is_null() {
        let h = new_port(concurrency)?;
        (port_of(h)?, h)
    } else {
        (port_of(existing)?, existing)
    };
    match associate(fd, &port, key, false) {
        Ok(assoc) => {
            if let Some(modes) = lock(&EARLY_MODES).as_mut().and_then(|m| m.remove(&fd)) {
                assoc.set_modes(modes);
            }
            Ok(handle)
        }
        Err(e) => {
            if existing.is_null() {
                if let Some(Object::Port(p)) = handles::remove(handle) {
                    p.close();
                }
            }
            Err(e)
        }
    }
}

/// Creates a completion port, associates a file or socket with one, or both.
#[no_mangle]
pub unsafe extern "C" fn CreateIoCompletionPort(
    FileHandle: HANDLE,
    ExistingCompletionPort: HANDLE,
    CompletionKey: ULONG_PTR,
    NumberOfConcurrentThreads: DWORD,
) -> HANDLE {
    guard(std::ptr::null_mut(), || {
        match create_io_completion_port(
            FileHandle,
            ExistingCompletionPort,
            CompletionKey,
            NumberOfConcurrentThreads,
        ) {
            Ok(h) => h,
            Err(e) => {
                set_last_error(e);
                std::ptr::null_mut()
            }
        }
    })
}

/// A wait of `ms` milliseconds (`INFINITE`: none) as a deadline.
fn deadline(ms: DWORD) -> Option<Instant> {
    if ms == INFINITE {
        None
    } else {
        Some(Instant::now() + Duration::from_millis(ms.into()))
    }
}

fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// Dequeues one packet for the program: follow-ups and silent packets are handled here.
fn next(port: &Port, deadline: Option<Instant>) -> Result<Packet<Ctx, RawBuf>, GetError> {
    loop {
        let packet = port.get(remaining(deadline))?;
        if let Some(p) = deliver(packet) {
            return Ok(p);
        }
    }
}

/// The last error of a failed wait.
fn wait_error(e: GetError) -> DWORD {
    match e {
        GetError::TimedOut => WAIT_TIMEOUT,
        GetError::Closed => ERROR_ABANDONED_WAIT_0,
    }
}

/// Dequeues a completion packet, waiting up to `dwMilliseconds`.
#[no_mangle]
pub unsafe extern "C" fn GetQueuedCompletionStatus(
    CompletionPort: HANDLE,
    lpNumberOfBytesTransferred: *mut DWORD,
    lpCompletionKey: *mut ULONG_PTR,
    lpOverlapped: *mut *mut OVERLAPPED,
    dwMilliseconds: DWORD,
) -> BOOL {
    guard(FALSE, || {
        if lpOverlapped.is_null()
            || lpNumberOfBytesTransferred.is_null()
            || lpCompletionKey.is_null()
        {
            set_last_error(ERROR_INVALID_PARAMETER);
            return FALSE;
        }
        let port = match port_of(CompletionPort) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: checked not NULL; the caller's out-parameter.
                unsafe { *lpOverlapped = std::ptr::null_mut() };
                set_last_error(e);
                return FALSE;
            }
        };
        match next(&port, deadline(dwMilliseconds)) {
            Ok(p) => {
                // SAFETY: the three out-parameters were checked not NULL; they are the caller's.
                unsafe {
                    *lpNumberOfBytesTransferred = p.bytes as DWORD;
                    *lpCompletionKey = p.key;
                    *lpOverlapped = p.value.ov as *mut OVERLAPPED;
                }
                if nt_success(p.value.status) {
                    TRUE
                } else {
                    set_last_error(status_to_win32(p.value.status));
                    FALSE
                }
            }
            Err(e) => {
                // SAFETY: as above. Key and byte count stay untouched, as on Windows.
                unsafe { *lpOverlapped = std::ptr::null_mut() };
                set_last_error(wait_error(e));
                FALSE
            }
        }
    })
}

thread_local! {
    /// The packets of one `GetQueuedCompletionStatusEx` call, kept to avoid an allocation per call.
    static BATCH: RefCell<Vec<Packet<Ctx, RawBuf>>> = const { RefCell::new(Vec::new()) };
}

/// Dequeues up to `ulCount` packets at once, waiting up to `dwMilliseconds` for the first.
/// `fAlertable` is accepted and ignored: there are no APCs.
#[no_mangle]
pub unsafe extern "C" fn GetQueuedCompletionStatusEx(
    CompletionPort: HANDLE,
    lpCompletionPortEntries: *mut OVERLAPPED_ENTRY,
    ulCount: ULONG,
    ulNumEntriesRemoved: *mut ULONG,
    dwMilliseconds: DWORD,
    _fAlertable: BOOL,
) -> BOOL {
    guard(FALSE, || {
        if lpCompletionPortEntries.is_null() || ulNumEntriesRemoved.is_null() || ulCount == 0 {
            set_last_error(ERROR_INVALID_PARAMETER);
            return FALSE;
        }
        let port = match port_of(CompletionPort) {
            Ok(p) => p,
            Err(e) => {
                set_last_error(e);
                return FALSE;
            }
        };
        let deadline = deadline(dwMilliseconds);
        BATCH.with(|batch| {
            let mut batch = batch.borrow_mut();
            loop {
                batch.clear();
                if let Err(e) = port.get_many(&mut batch, ulCount as usize, remaining(deadline)) {
                    // SAFETY: checked not NULL; the caller's out-parameter.
                    unsafe { *ulNumEntriesRemoved = 0 };
                    set_last_error(wait_error(e));
                    return FALSE;
                }
                let mut n = 0usize;
                for packet in batch.drain(..) {
                    let Some(p) = deliver(packet) else { continue };
                    // SAFETY: the caller's array holds `ulCount` entries and `n` stays below it
                    // (get_many returned at most that many packets).
                    unsafe {
                        lpCompletionPortEntries.add(n).write(OVERLAPPED_ENTRY {
                            lpCompletionKey: p.key,
                            lpOverlapped: p.value.ov as *mut OVERLAPPED,
                            Internal: p.value.status as u32 as usize,
                            dwNumberOfBytesTransferred: p.bytes as DWORD,
                        });
                    }
                    n += 1;
                }
                if n > 0 {
                    // SAFETY: checked not NULL.
                    unsafe { *ulNumEntriesRemoved = n as ULONG };
                    return TRUE;
                }
            }
        })
    })
}

/// Queues a packet of the program's own.
#[no_mangle]
pub unsafe extern "C" fn PostQueuedCompletionStatus(
    CompletionPort: HANDLE,
    dwNumberOfBytesTransferred: DWORD,
    dwCompletionKey: ULONG_PTR,
    lpOverlapped: *mut OVERLAPPED,
) -> BOOL {
    guard(FALSE, || {
        let port = match port_of(CompletionPort) {
            Ok(p) => p,
            Err(e) => {
                set_last_error(e);
                return FALSE;
            }
        };
        match port.post(
            dwCompletionKey,
            dwNumberOfBytesTransferred as usize,
            Ctx::posted(lpOverlapped),
        ) {
            Ok(()) => {
                // A thread in WaitForSingleObject on this port sees the packet at once.
                crate::wait::wake_port_waiters();
                TRUE
            }
            Err(_) => {
                set_last_error(ERROR_INVALID_HANDLE);
                FALSE
            }
        }
    })
}

/// Closes the program's fd `fd` the Windows way: operations in flight on it are aborted (their
/// packets still come), the association ends, and the number is free at once.
pub(crate) fn close_fd(fd: RawFd) -> Result<(), i32> {
    if let Some(assoc) = unassociate(fd) {
        assoc.close();
    }
    forget_fd(fd);
    crate::file::forget(fd);
    crate::bsd::forget(fd);
    crate::sock::close_accepting(fd)
}

/// Closes a port, a thread or event handle, a socket or a file.
#[no_mangle]
pub unsafe extern "C" fn CloseHandle(hObject: HANDLE) -> BOOL {
    guard(FALSE, || {
        if hObject == INVALID_HANDLE_VALUE || hObject == crate::thread::CURRENT_THREAD {
            // GetCurrentProcess()'s and GetCurrentThread()'s pseudo-handles: closing them does
            // nothing and succeeds.
            return TRUE;
        }
        if handles::is_object_handle(hObject) {
            return match handles::remove(hObject) {
                Some(Object::Port(port)) => {
                    // Waiters get ERROR_ABANDONED_WAIT_0; operations still in flight are
                    // cancelled and their OVERLAPPEDs written.
                    for packet in port.close() {
                        crate::core::abandon(packet);
                    }
                    TRUE
                }
                // The thread runs on; the event lives while a wait holds it.
                Some(Object::Thread(_) | Object::Event(_)) => TRUE,
                None => {
                    set_last_error(ERROR_INVALID_HANDLE);
                    FALSE
                }
            };
        }
        match handle_fd(hObject) {
            Some(fd) if !hObject.is_null() => match close_fd(fd) {
                Ok(()) => TRUE,
                Err(_) => {
                    set_last_error(ERROR_INVALID_HANDLE);
                    FALSE
                }
            },
            _ => {
                set_last_error(ERROR_INVALID_HANDLE);
                FALSE
            }
        }
    })
}

/// Cancels the operations the calling thread started on `hFile`.
#[no_mangle]
pub unsafe extern "C" fn CancelIo(hFile: HANDLE) -> BOOL {
    guard(FALSE, || {
        let Some(fd) = handle_fd(hFile).filter(|_| !hFile.is_null()) else {
            set_last_error(ERROR_INVALID_HANDLE);
            return FALSE;
        };
        match assoc_of(fd) {
            Some(a) => {
                a.cancel(None, Some(thread_no()));
                a.handle.port().poll_completions();
                TRUE
            }
            None if identity(fd).is_some() => TRUE,
            None => {
                set_last_error(ERROR_INVALID_HANDLE);
                FALSE
            }
        }
    })
}

/// Cancels the operation started with `lpOverlapped` on `hFile`, or all of its operations.
#[no_mangle]
pub unsafe extern "C" fn CancelIoEx(hFile: HANDLE, lpOverlapped: *mut OVERLAPPED) -> BOOL {
    guard(FALSE, || {
        let Some(fd) = handle_fd(hFile).filter(|_| !hFile.is_null()) else {
            set_last_error(ERROR_INVALID_HANDLE);
            return FALSE;
        };
        let ov = (!lpOverlapped.is_null()).then_some(lpOverlapped as usize);
        match assoc_of(fd) {
            Some(a) if a.cancel(ov, None) => {
                a.handle.port().poll_completions();
                TRUE
            }
            Some(_) => {
                set_last_error(ERROR_NOT_FOUND);
                FALSE
            }
            None if identity(fd).is_some() => {
                set_last_error(ERROR_NOT_FOUND);
                FALSE
            }
            None => {
                set_last_error(ERROR_INVALID_HANDLE);
                FALSE
            }
        }
    })
}

/// Waits (with `bWait`) for the `OVERLAPPED`'s operation: `Internal` is polled, backing off from
/// a microsecond to a millisecond, since no event is set.
pub(crate) fn overlapped_result(
    fd: Option<RawFd>,
    ov: *mut OVERLAPPED,
    wait: bool,
) -> Result<(NTSTATUS, usize), DWORD> {
    if !check_ov(ov) {
        return Err(ERROR_INVALID_PARAMETER);
    }
    // The port's completions are moved to its queue here too, so the status is written even if
    // no thread waits on the port.
    let port = fd.and_then(assoc_of).map(|a| a.handle.port().clone());
    let mut pause = Duration::from_micros(1);
    loop {
        if let Some(p) = &port {
            p.poll_completions();
        }
        let (status, bytes) = read_ov(ov);
        if status != STATUS_PENDING {
            return Ok((status, bytes));
        }
        if !wait {
            return Err(ERROR_IO_INCOMPLETE);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

/// The outcome of an overlapped operation, waiting for it with `bWait`.
#[no_mangle]
pub unsafe extern "C" fn GetOverlappedResult(
    hFile: HANDLE,
    lpOverlapped: *mut OVERLAPPED,
    lpNumberOfBytesTransferred: *mut DWORD,
    bWait: BOOL,
) -> BOOL {
    guard(FALSE, || {
        if lpNumberOfBytesTransferred.is_null() {
            set_last_error(ERROR_INVALID_PARAMETER);
            return FALSE;
        }
        match overlapped_result(handle_fd(hFile), lpOverlapped, bWait != 0) {
            Ok((status, bytes)) => {
                // SAFETY: checked not NULL; the caller's out-parameter.
                unsafe { *lpNumberOfBytesTransferred = bytes as DWORD };
                if nt_success(status) {
                    TRUE
                } else {
                    set_last_error(status_to_win32(status));
                    FALSE
                }
            }
            Err(e) => {
                set_last_error(e);
                FALSE
            }
        }
    })
}

/// `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`: operations that complete at once return their result
/// and queue no packet. `FILE_SKIP_SET_EVENT_ON_HANDLE` is accepted (no event is ever set).
#[no_mangle]
pub unsafe extern "C" fn SetFileCompletionNotificationModes(FileHandle: HANDLE, Flags: u8) -> BOOL {
    guard(FALSE, || {
        let Some(fd) = handle_fd(FileHandle).filter(|_| !FileHandle.is_null()) else {
            set_last_error(ERROR_INVALID_HANDLE);
            return FALSE;
        };
        if Flags & !(FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE) != 0 {
            set_last_error(ERROR_INVALID_PARAMETER);
            return FALSE;
        }
        match assoc_of(fd) {
            Some(a) => a.set_modes(Flags),
            None if identity(fd).is_some() => {
                lock(&EARLY_MODES)
                    .get_or_insert_with(HashMap::new)
                    .insert(fd, Flags);
            }
            None => {
                set_last_error(ERROR_INVALID_HANDLE);
                return FALSE;
            }
        }
        TRUE
    })
}

/// The calling thread's last error.
#[no_mangle]
pub extern "C" fn GetLastError() -> DWORD {
    last_error()
}

/// Sets the calling thread's last error.
#[no_mangle]
pub extern "C" fn SetLastError(dwErrCode: DWORD) {
    set_last_error(dwErrCode)
}
