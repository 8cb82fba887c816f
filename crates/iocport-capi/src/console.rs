//! `SetConsoleCtrlHandler`: Ctrl-C (SIGINT) and termination requests (SIGTERM) delivered to the
//! program's handlers as `CTRL_C_EVENT` and `CTRL_BREAK_EVENT`, the way IOCP servers stop.
//!
//! How it works:
//! - The first call installs the library's handler for SIGINT and SIGTERM. That handler does only
//!   what is async-signal-safe: it writes the signal's number, one byte, to a pipe (non-blocking;
//!   errno is saved and restored).
//! - A dispatcher thread of the library reads the pipe and starts one thread per event (Windows
//!   too runs each control event on a new thread), which calls the handlers from the most
//!   recently added to the first, until one returns TRUE. The handlers never run in signal
//!   context, so they may lock, allocate, post to a port or call `exit`.
//! - If no handler returns TRUE, the default action ends the process as the signal would have:
//!   the signal's default disposition is restored and the signal raised again on that thread (on
//!   Windows the default handler calls `ExitProcess`).
//! - `SetConsoleCtrlHandler(NULL, TRUE)` ignores Ctrl-C, as Windows: SIGINT's disposition becomes
//!   `SIG_IGN` (which programs started from this one inherit, as Windows' flag is inherited);
//!   `(NULL, FALSE)` puts the library's handler back. A process that starts with SIGINT ignored
//!   (a shell's background job) has Ctrl-C ignored from the first call on, as a Windows process
//!   whose parent set the flag.
//! - Until the first call the signals are left alone (their default action ends the process).
//! - After `fork`, the child starts afresh: its SIGINT and SIGTERM get their default handling
//!   back (SIGINT stays ignored if it was), it has none of the parent's handlers, and its own
//!   first call installs everything anew (the parent's dispatcher thread does not exist there).

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, Once};

use crate::core::lock;
use crate::guard;
use crate::status::{errno, set_last_error};
use crate::types::*;

/// `CTRL_C_EVENT`: Ctrl-C, from SIGINT.
pub const CTRL_C_EVENT: DWORD = 0;
/// `CTRL_BREAK_EVENT`: Ctrl-Break, from SIGTERM (the "please stop" of Linux).
pub const CTRL_BREAK_EVENT: DWORD = 1;

/// `PHANDLER_ROUTINE`: a handler, which returns TRUE if it handled the event.
/// Declared "C-unwind": a handler may end its thread with `ExitThread`.
pub type CtrlHandler = unsafe extern "C-unwind" fn(DWORD) -> BOOL;

/// The handlers and the Ctrl-C flag.
struct Ctrl {
    /// The handlers, in the order they were added (called from the last).
    handlers: Vec<CtrlHandler>,
    /// The process whose dispatcher thread runs (0 before the first call; another pid in a
    /// child made by `fork`, where everything starts anew).
    pid: i32,
}

static CTRL: Mutex<Ctrl> = Mutex::new(Ctrl {
    handlers: Vec::new(),
    pid: 0,
});

/// The pipe's write end, for the signal handler; -1 when there is none.
static PIPE_WR: AtomicI32 = AtomicI32::new(-1);
/// The pipe's read end, which the dispatcher reads; -1 when there is none.
static PIPE_RD: AtomicI32 = AtomicI32::new(-1);
/// Ctrl-C is ignored (`SetConsoleCtrlHandler(NULL, TRUE)`, or SIGINT ignored at the first call).
static IGNORE_CTRL_C: AtomicBool = AtomicBool::new(false);
/// The library's handler is installed (false again in a child after `fork`).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The signal handler: writes the signal's number to the pipe. Async-signal-safe: atomics,
/// `write` and errno only.
extern "C" fn on_signal(sig: c_int) {
    // SAFETY: __errno_location is the calling thread's errno, which the handler must preserve.
    let saved = unsafe { *libc::__errno_location() };
    let fd = PIPE_WR.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: one byte from the stack to the pipe (non-blocking: if it is full, the event is
        // dropped rather than the handler blocking).
        unsafe { libc::write(fd, &byte as *const u8 as *const libc::c_void, 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// Sets `sig`'s disposition to `handler` (`SIG_DFL`, `SIG_IGN` or `on_signal`). Async-signal-safe
/// (it runs in the `fork` child handler).
fn set_disposition(sig: c_int, handler: libc::sighandler_t) -> bool {
    // SAFETY: a zeroed sigaction is valid; sigemptyset and sigaddset initialise its mask.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaddset(&mut sa.sa_mask, libc::SIGINT);
        libc::sigaddset(&mut sa.sa_mask, libc::SIGTERM);
        libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0
    }
}

/// `sig`'s current disposition.
fn disposition(sig: c_int) -> libc::sighandler_t {
    // SAFETY: sigaction with a NULL new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

/// The handler SIGINT should have now.
fn sigint_handler() -> libc::sighandler_t {
    if IGNORE_CTRL_C.load(Ordering::SeqCst) {
        libc::SIG_IGN
    } else {
        on_signal as *const () as libc::sighandler_t
    }
}

/// In the child of a `fork`: the parent's dispatcher thread is not here, and the pipe is shared
/// with the parent, so the signals get their default handling back and the pipe is let go.
/// Async-signal-safe (atomics, `sigaction`, `close`).
extern "C" fn after_fork_in_child() {
    if !INSTALLED.swap(false, Ordering::SeqCst) {
        return;
    }
    let sigint = if IGNORE_CTRL_C.load(Ordering::SeqCst) {
        libc::SIG_IGN
    } else {
        libc::SIG_DFL
    };
    set_disposition(libc::SIGINT, sigint);
    set_disposition(libc::SIGTERM, libc::SIG_DFL);
    for fd in [&PIPE_WR, &PIPE_RD] {
        let fd = fd.swap(-1, Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: the child's copy of the library's own pipe end.
            unsafe { libc::close(fd) };
        }
    }
}

/// Installs the pipe, the dispatcher thread and the signal handlers in this process, unless done
/// already. `Err` is the last error to fail with.
fn install(ctrl: &mut Ctrl) -> Result<(), DWORD> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if ctrl.pid == pid && INSTALLED.load(Ordering::SeqCst) {
        return Ok(());
    }
    static ATFORK: Once = Once::new();
    ATFORK.call_once(|| {
        // SAFETY: registers a child handler that only does async-signal-safe things.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    if ctrl.pid != pid {
        // The first call, or the first in a child made by fork: none of the parent's handlers.
        ctrl.handlers.clear();
        // A process that starts with SIGINT ignored has Ctrl-C ignored (an inherited flag).
        IGNORE_CTRL_C.store(disposition(libc::SIGINT) == libc::SIG_IGN, Ordering::SeqCst);
    }
    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(ERROR_NOT_ENOUGH_MEMORY);
    }
    let [rd, wr] = fds;
    // SAFETY: F_SETFL on the pipe's write end just made.
    unsafe { libc::fcntl(wr, libc::F_SETFL, libc::O_NONBLOCK) };
    let spawned = std::thread::Builder::new()
        .name("iocport-ctrl".into())
        .spawn(move || dispatch_loop(rd));
    if spawned.is_err() {
        // SAFETY: the pipe just made, never shared.
        unsafe {
            libc::close(rd);
            libc::close(wr);
        }
        return Err(ERROR_NOT_ENOUGH_MEMORY);
    }
    PIPE_RD.store(rd, Ordering::SeqCst);
    PIPE_WR.store(wr, Ordering::SeqCst);
    INSTALLED.store(true, Ordering::SeqCst);
    ctrl.pid = pid;
    if !set_disposition(libc::SIGINT, sigint_handler())
        || !set_disposition(libc::SIGTERM, on_signal as *const () as libc::sighandler_t)
    {
        return Err(ERROR_INVALID_PARAMETER);
    }
    Ok(())
}

/// The dispatcher thread: one event per byte read, each on a thread of its own.
fn dispatch_loop(rd: c_int) {
    loop {
        let mut byte = 0u8;
        // SAFETY: one byte into the stack.
        let n = unsafe { libc::read(rd, &mut byte as *mut u8 as *mut libc::c_void, 1) };
        if n == 1 {
            let sig = byte as c_int;
            // On a thread as `CreateThread` makes them, so that a handler may end it with
            // `ExitThread` (the routine's frames are plain old frames).
            if crate::thread::spawn(event_thread, sig as usize as *mut libc::c_void).is_err() {
                // No thread to be had: deliver it on this one.
                let _ = std::panic::catch_unwind(|| dispatch(sig));
            }
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            // The pipe is gone (a fork child closed its copy: not this process's).
            return;
        }
    }
}

/// A control event's thread: delivers the event of the signal in `param`.
unsafe extern "C-unwind" fn event_thread(param: *mut libc::c_void) -> DWORD {
    dispatch(param as usize as c_int);
    0
}

/// Delivers one signal's event to the handlers, most recent first; the default action if none
/// returns TRUE.
///
/// A handler may call `ExitThread`, whose forced unwind crosses this frame: nothing with a
/// destructor is live across the calls (each handler is fetched, as a plain function pointer,
/// under the lock and called after it).
fn dispatch(sig: c_int) {
    let event = if sig == libc::SIGINT {
        CTRL_C_EVENT
    } else {
        CTRL_BREAK_EVENT
    };
    if sig == libc::SIGINT && IGNORE_CTRL_C.load(Ordering::SeqCst) {
        // Raised before SIG_IGN took its place.
        return;
    }
    // The handlers as they were when the event came, most recent first, by index.
    let count = lock(&CTRL).handlers.len();
    let mut i = count;
    while i > 0 {
        i -= 1;
        let Some(h) = handler_at(i) else { continue };
        // SAFETY: a handler the program registered, called with the event as Windows does.
        if unsafe { h(event) } != FALSE {
            return;
        }
    }
    default_action(sig);
}

/// The `i`th handler registered, if there are still that many.
fn handler_at(i: usize) -> Option<CtrlHandler> {
    lock(&CTRL).handlers.get(i).copied()
}

/// Ends the process by `sig`, as if the library had never handled it: the default disposition
/// back, the signal unblocked on this thread and raised.
fn default_action(sig: c_int) {
    set_disposition(sig, libc::SIG_DFL);
    // SAFETY: a local signal set, initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
        // Not reached: the signal's default action ends the process. Should something have
        // caught it meanwhile, end as a shell reports a death by that signal.
        libc::_exit(128 + sig);
    }
}

/// Adds (`Add` TRUE) or removes a handler of Ctrl-C (SIGINT, `CTRL_C_EVENT`) and termination
/// requests (SIGTERM, `CTRL_BREAK_EVENT`); with a NULL handler, ignores Ctrl-C (`Add` TRUE) or
/// restores it (`Add` FALSE). Handlers run on a thread of the library, the most recently added
/// first, until one returns TRUE; if none does, the process ends by the signal. Removing a
/// handler that is not registered fails with `ERROR_INVALID_PARAMETER` (a handler added twice is
/// removed once per call).
#[no_mangle]
pub extern "C" fn SetConsoleCtrlHandler(HandlerRoutine: Option<CtrlHandler>, Add: BOOL) -> BOOL {
    guard(FALSE, || {
        let mut ctrl = lock(&CTRL);
        if let Some(h) = HandlerRoutine {
            if Add == FALSE {
                let pos = ctrl
                    .handlers
                    .iter()
                    .rposition(|&x| x as usize == h as usize);
                // SAFETY: getpid has no preconditions.
                let ours = ctrl.pid == unsafe { libc::getpid() };
                return match pos {
                    Some(i) if ours => {
                        ctrl.handlers.remove(i);
                        TRUE
                    }
                    _ => {
                        set_last_error(ERROR_INVALID_PARAMETER);
                        FALSE
                    }
                };
            }
            if let Err(e) = install(&mut ctrl) {
                set_last_error(e);
                return FALSE;
            }
            ctrl.handlers.push(h);
            return TRUE;
        }
        if let Err(e) = install(&mut ctrl) {
            set_last_error(e);
            return FALSE;
        }
        IGNORE_CTRL_C.store(Add != FALSE, Ordering::SeqCst);
        if !set_disposition(libc::SIGINT, sigint_handler()) {
            set_last_error(ERROR_INVALID_PARAMETER);
            return FALSE;
        }
        TRUE
    })
}
