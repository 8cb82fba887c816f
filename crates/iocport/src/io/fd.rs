//! The fds associated with ports: one registry for the process, and each fd's entry, which every
//! backend shares.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize};
use std::sync::{Mutex as StdMutex, OnceLock};

use crate::error::Error;

/// Every fd associated with some port in this process: a handle belongs to one port only.
fn associated() -> std::sync::MutexGuard<'static, HashSet<RawFd>> {
    static SET: OnceLock<StdMutex<HashSet<RawFd>>> = OnceLock::new();
    SET.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// An fd associated with a port. Dropped (closing the fd) when its handle and every operation that
/// uses it are gone; never while a lock of the port is held (the I/O layer moves the last reference
/// out of its critical sections first), since `close(2)` of a socket may linger.
pub(crate) struct FdEntry {
    fd: OwnedFd,
    /// FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: which operations try synchronously first
    /// ([`SKIP_READS`](super::skip::SKIP_READS) and/or [`SKIP_WRITES`](super::skip::SKIP_WRITES)).
    pub(crate) skip_on_success: AtomicU8,
    /// Operations in flight on this fd. Changed under the op table's lock.
    pub(crate) pending: AtomicUsize,
    /// The handle was dropped: an operation that could not be queued yet is cancelled once it is.
    pub(crate) closing: AtomicBool,
    /// Counts `cancel_all`s on the handle (changed under the op table's lock): an operation that
    /// ends with `ECANCELED` after one was asked for is not one the kernel ended for its thread.
    pub(crate) cancel_epoch: AtomicU32,
    /// Opened with `O_DIRECT`: a synchronous first try would wait for the device, so skip-on-success
    /// sends its reads and writes straight to the kernel.
    pub(crate) direct: bool,
    /// Its file type (`st_mode & S_IFMT`): the epoll backend polls neither regular files, block
    /// devices nor directories.
    pub(crate) file_type: libc::mode_t,
    /// How the epoll backend registered it (set when it is associated with such a port).
    #[cfg(not(loom))]
    pub(crate) epoll: OnceLock<super::epoll::Attached>,
}

impl FdEntry {
    pub(crate) fn new(fd: OwnedFd) -> Result<FdEntry, Error> {
        let raw = fd.as_raw_fd();
        // SAFETY: `st` is valid for writes of a `stat` for the length of the call.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above; fstat only reads the fd table and the file's attributes.
        if unsafe { libc::fstat(raw, &mut st) } == -1 {
            return Err(Error::BadFd {
                fd: raw,
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: F_GETFL takes no argument and only reads the fd's flags.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
        let direct = flags != -1 && flags & libc::O_DIRECT != 0;
        if !associated().insert(raw) {
            // Someone else owns the number too (a duplicated `from_raw_fd`): give it back unclosed,
            // which is what its other owner expects.
            std::mem::forget(fd);
            return Err(Error::AlreadyAssociated { fd: raw });
        }
        Ok(FdEntry {
            fd,
            skip_on_success: AtomicU8::new(0),
            pending: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            cancel_epoch: AtomicU32::new(0),
            direct,
            file_type: st.st_mode & libc::S_IFMT,
            #[cfg(not(loom))]
            epoll: OnceLock::new(),
        })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A regular file or block device: a read or write may come back short only at its end, so
    /// a short first try (`RWF_NOWAIT`: part of the range was not cached) is not the result.
    pub(crate) fn regular(&self) -> bool {
        matches!(self.file_type, libc::S_IFREG | libc::S_IFBLK)
    }
}

/// Closes `entry`'s fd on the process's closer thread: a port thread that reaped an operation's
/// completion must not wait for `close(2)`, which blocks on a socket with `SO_LINGER` and unsent
/// data, or on a file whose last close flushes (NFS). Only fds whose handle was dropped while
/// operations were in flight get here; a handle dropped with none closes its fd at once, on the
/// dropping thread, as `closesocket` does. If the thread cannot be started the fd is closed here.
pub(crate) fn close_later(entry: FdEntry) {
    use std::sync::mpsc::{channel, Sender};
    static CLOSER: OnceLock<Option<StdMutex<Sender<FdEntry>>>> = OnceLock::new();
    let closer = CLOSER.get_or_init(|| {
        let (tx, rx) = channel::<FdEntry>();
        std::thread::Builder::new()
            .name("iocport-close".into())
            .spawn(move || rx.into_iter().for_each(drop))
            .ok()
            .map(|_| StdMutex::new(tx))
    });
    match closer {
        Some(tx) => {
            let tx = tx.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(back) = tx.send(entry) {
                drop(tx);
                drop(back.0);
            }
        }
        None => drop(entry),
    }
}

impl Drop for FdEntry {
    fn drop(&mut self) {
        // The epoll backend gives the fd its flags back and takes it out of its epoll set.
        #[cfg(not(loom))]
        if let Some(attached) = self.epoll.get() {
            attached.detach();
        }
        // Still open here (`fd` closes after this): the number cannot be taken by a new file before
        // it leaves the set.
        associated().remove(&self.fd.as_raw_fd());
    }
}
