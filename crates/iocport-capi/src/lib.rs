//! The Win32 completion-port and Winsock names as a C library, on `iocport`.
//!
//! A Windows IOCP server in C or C++ builds against `include/iocport/windows.h` with only its
//! includes changed: `CreateIoCompletionPort`, `GetQueuedCompletionStatus(Ex)`,
//! `PostQueuedCompletionStatus`, `WSARecv`, `WSASend`, `AcceptEx`, `ConnectEx`, `ReadFile`,
//! `WriteFile`, `CancelIoEx` and the rest keep Windows' return values, last errors and
//! `OVERLAPPED` rules (see `docs/porting.md`). The Win32 essentials such servers also call are
//! here too: threads and waits (`thread.rs`, `event.rs`, `wait.rs`), critical sections, SRW locks,
//! condition variables (`locks.rs`), heaps (`heap.rs`), the console control handler
//! (`console.rs`), `FormatMessage` (`fmtmsg.rs`), system information and clocks (`base.rs`).
//!
//! How it maps:
//! - A completion port is an `iocport::CompletionPort` whose packets carry a small `Ctx`
//!   (the caller's `OVERLAPPED` and what the operation needs to finish); its `HANDLE` is an entry
//!   of a table (`handles.rs`) encoded so that it never equals an fd, NULL or
//!   `INVALID_HANDLE_VALUE`.
//! - A `SOCKET` (and the `HANDLE` of a file) is the Linux fd. Associating it with a port associates
//!   a duplicate of the fd with the `iocport` port, so the program's number stays its own:
//!   `closesocket` closes it at once, and `AcceptEx` can put a new connection under it.
//! - Threads and events are entries of the same table; their signal states live under one lock
//!   (`wait.rs`), as NT's dispatcher objects do, and a worker that blocks in a wait, a sleep or a
//!   lock leaves its port's concurrency count (`iocport::enter_blocking`), as on NT.
//! - Operations go through `iocport`; the port's completion hook (`core::hook`) writes
//!   `OVERLAPPED.InternalHigh` and then `Internal` (the NTSTATUS) before the packet can be
//!   dequeued, and never touches the `OVERLAPPED` after.
//! - Errors travel as NTSTATUS and become Win32 or Winsock codes per API (`status.rs`).
//!
//! No panic crosses the ABI: every entry point that can fail runs inside `guard`, which turns one
//! into a failure with `ERROR_INTERNAL_ERROR`. `ExitThread` alone unwinds on purpose (glibc's
//! forced unwind of `pthread_exit`), through "C-unwind" frames with nothing to drop.

#![allow(non_snake_case, clippy::missing_safety_doc)]
// `iocport` hands an operation's context and buffers back by value when it cannot start it; the
// closures that start operations return that as is.
#![allow(clippy::result_large_err)]

mod base;
mod bsd;
mod console;
mod core;
mod event;
mod file;
mod fmtmsg;
mod handles;
mod heap;
mod inflight;
mod locks;
mod port;
mod sock;
mod status;
mod thread;
mod types;
mod wait;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs the body of an entry point that takes a lock for its caller (`EnterCriticalSection`,
/// `AcquireSRWLock...`, `SleepConditionVariable...`): there a failure cannot be reported, and
/// returning would let the caller believe it holds the lock, so a panic ends the process. (Those
/// entry points are not built under loom, whose models drive the lock types directly.)
#[cfg(not(loom))]
pub(crate) fn guard_or_abort<R>(what: &str, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            eprintln!("libiocport: internal error in {what}; the lock state is unknown: aborting");
            std::process::abort()
        }
    }
}

/// Runs an entry point's body; a panic becomes `fail` with `ERROR_INTERNAL_ERROR` as the last
/// error, never an unwind into C.
pub(crate) fn guard<R>(fail: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            status::set_last_error(types::ERROR_INTERNAL_ERROR);
            fail
        }
    }
}
