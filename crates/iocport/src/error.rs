//! Errors of the I/O side of the port: typed, and naming the handle and operation concerned.

use std::fmt;
use std::io;
use std::os::fd::RawFd;

use crate::id::OpId;
use crate::packet::Data;

/// Why the port could not start an operation or set something up. Nothing was queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The I/O backend could not be set up: io_uring forced where the kernel lacks it (`ENOSYS`),
    /// a seccomp profile or `kernel.io_uring_disabled` forbids it (`EPERM`), or a resource ran out
    /// (io_uring's or epoll's).
    #[error("the I/O backend is unavailable: {reason}")]
    Unavailable {
        /// What the kernel said and what usually causes it.
        reason: String,
        /// The error of `io_uring_setup`.
        #[source]
        source: io::Error,
    },
    /// The running kernel does not support this operation (probed once when the ring is set up).
    #[error("the kernel's io_uring does not support {op}")]
    Unsupported {
        /// The operation.
        op: &'static str,
    },
    /// The fd is already associated with a completion port.
    #[error("fd {fd} is already associated with a completion port")]
    AlreadyAssociated {
        /// The fd.
        fd: RawFd,
    },
    /// The fd is not an open file descriptor.
    #[error("fd {fd} is not an open file descriptor: {source}")]
    BadFd {
        /// The fd.
        fd: RawFd,
        /// What `fstat` said.
        #[source]
        source: io::Error,
    },
    /// The epoll backend could not register the fd (`epoll_ctl` failed for a reason other than the
    /// fd not being pollable, which sends its operations to the thread pool instead).
    #[error("fd {fd} could not be registered with epoll: {source}")]
    Register {
        /// The fd.
        fd: RawFd,
        /// What `epoll_ctl` said.
        #[source]
        source: io::Error,
    },
    /// `IOCPORT_BACKEND` names no backend.
    #[error("IOCPORT_BACKEND={value:?} is not one of auto, io_uring, epoll")]
    InvalidBackend {
        /// The variable's value.
        value: String,
    },
    /// The port is closed.
    #[error("the completion port is closed")]
    Closed,
    /// [`set_completion_hook`](crate::CompletionPort::set_completion_hook) was called on a port
    /// that has a hook already.
    #[error("the completion port has a completion hook already")]
    HookSet,
    /// The buffer given to the operation cannot be used.
    #[error("{op} on fd {fd}: {reason} (buffer of {len} bytes)")]
    InvalidBuffer {
        /// The operation.
        op: &'static str,
        /// The handle's fd (-1 for port-level operations).
        fd: RawFd,
        /// The buffer's length.
        len: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An argument other than the buffer is out of range.
    #[error("{op} on fd {fd}: {reason}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// The handle's fd (-1 for port-level operations).
        fd: RawFd,
        /// What is wrong.
        reason: &'static str,
    },
    /// [`cancel`](crate::CompletionPort::cancel): no such operation is pending (it completed already,
    /// or the id is stale or from another port). Win32 `ERROR_NOT_FOUND`.
    #[doc(alias = "ERROR_NOT_FOUND")]
    #[error("operation {id:?} is not pending")]
    NotFound {
        /// The id given.
        id: OpId,
    },
    /// What an operation needs beyond its arguments could not be made (a pipe for
    /// `transmit_file`): usually the process's fd limit.
    #[error("{op} on fd {fd}: could not make {what}: {source}")]
    Resources {
        /// The operation.
        op: &'static str,
        /// The handle's fd.
        fd: RawFd,
        /// What could not be made.
        what: &'static str,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the submission.
    #[error("{op} on fd {fd}: submitting to io_uring failed: {source}")]
    Submit {
        /// The operation.
        op: &'static str,
        /// The handle's fd (-1 for port-level operations).
        fd: RawFd,
        /// What `io_uring_enter` said.
        #[source]
        source: io::Error,
    },
}

/// An operation that could not be started: the error, and the value and buffers handed back.
pub struct OpError<T, B> {
    /// What went wrong.
    pub error: Error,
    /// The value given to the operation.
    pub value: T,
    /// The buffers given to the operation.
    pub data: Data<B>,
}

impl<T, B> OpError<T, B> {
    /// The error alone, dropping what was handed back.
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl<T, B> fmt::Debug for OpError<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T, B> fmt::Display for OpError<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T, B> std::error::Error for OpError<T, B> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T, B> From<OpError<T, B>> for io::Error {
    fn from(e: OpError<T, B>) -> io::Error {
        io::Error::other(e.error)
    }
}
