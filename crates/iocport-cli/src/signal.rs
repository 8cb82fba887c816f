//! Ctrl-C for servers and the copier, the completion-port way: SIGINT, SIGTERM and SIGHUP (the
//! terminal closed) are blocked in every thread and read from a signalfd instead, so a server
//! associates the fd with its port and starts one read on it; the packet of that read is the order
//! to stop. No signal handler runs, so nothing async-signal-unsafe can happen, and the stop arrives
//! on a worker thread like any completion.
//!
//! The signalfd is blocking on purpose: io_uring then waits for a signal (by polling the fd, or on
//! one of its workers) whatever the kernel version, where a nonblocking one may complete the read
//! at once with `EAGAIN` on kernels that do not poll `O_NONBLOCK` files.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// The size of one `struct signalfd_siginfo`: a read of the signalfd needs a buffer this large.
pub(crate) const SIGINFO_SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and so in every thread it spawns afterwards:
/// call it before spawning any) and returns a signalfd that becomes readable when one is pending.
pub(crate) fn stop_signals() -> io::Result<OwnedFd> {
    // SAFETY: `set` is a plain C struct that `sigemptyset` initialises before any other use; the
    // calls only read or write that local and the thread's signal mask.
    let fd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `signalfd` just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The signal number in a buffer filled by a read of the signalfd.
pub(crate) fn signal_number(buf: &[u8]) -> Option<u32> {
    // `ssi_signo` is the first field, a u32 in native byte order.
    buf.get(..4)
        .map(|b| u32::from_ne_bytes(b.try_into().expect("four bytes")))
}
