//! I/O completion ports for Linux.
//!
//! An I/O completion port is one object that completion *packets* are queued on, and that a pool of
//! worker threads serves by calling [`get`](CompletionPort::get). It is the proactor model of Windows
//! NT (`CreateIoCompletionPort`), Solaris event ports and AIX, with their semantics:
//!
//! - packets come out **FIFO**;
//! - waiting threads are released **LIFO**: the thread that waited last, whose cache is still warm, runs
//!   first;
//! - at most *N* threads (the **concurrency value**) run packets at once; a thread that would block for
//!   long marks it with [`blocking`] so that another may run meanwhile;
//! - one packet wakes at most one thread, and a thread that asks while a packet is queued takes it
//!   without sleeping.
//!
//! Programs [`post`](CompletionPort::post) their own packets, and start asynchronous operations on
//! files and sockets [`associate`](CompletionPort::associate)d with the port: each ends in exactly one
//! packet, which hands the operation's buffer and value back. The operations run on io_uring; as on
//! Windows, none ends because the thread that started it exited ([`SubmitMode`] says how, and what
//! each way costs). Linux 5.11 or later; every newer kernel feature used is probed, never assumed
//! ([`CompletionPort::features`]).
//!
//! Where io_uring is refused (the default seccomp profiles of Docker and containerd,
//! `kernel.io_uring_disabled`, gVisor), a port runs on its fallback backend instead, with the same
//! operations, packets and errors: epoll readiness for sockets and pipes, a thread pool for regular
//! files ([`Backend::Epoll`]). [`Builder::backend`] or the environment variable
//! `IOCPORT_BACKEND=auto|io_uring|epoll` chooses; [`CompletionPort::backend`] says which runs and
//! why.
//!
//! # Examples
//!
//! Posting and getting packets:
//!
//! ```
//! use iocport::{CompletionPort, GetError};
//! use std::time::Duration;
//!
//! let port: CompletionPort<&str> = CompletionPort::new(0); // concurrency = number of CPUs
//! port.post(7, 512, "hello").unwrap();
//!
//! let packet = port.get(Some(Duration::from_secs(1))).unwrap();
//! assert_eq!((packet.key, packet.bytes, packet.value), (7, 512, "hello"));
//! assert!(packet.status.is_ok());
//!
//! // Nothing left: a zero timeout polls.
//! assert_eq!(port.get(Some(Duration::ZERO)), Err(GetError::TimedOut));
//!
//! port.close();
//! assert_eq!(port.get(None), Err(GetError::Closed));
//! ```
//!
//! Reading a file through the port: the buffer moves into the operation and comes back in its packet.
//!
//! ```
//! use iocport::CompletionPort;
//! use std::io::Write;
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let path = std::env::temp_dir().join(format!("iocport-doc-{}", std::process::id()));
//! std::fs::File::create(&path)?.write_all(b"hello, port")?;
//!
//! let port: CompletionPort<&str> = CompletionPort::new(0);
//! let file = port.associate(std::fs::File::open(&path)?, 42)?; // completion key 42
//! file.read_at(vec![0; 5], 7, "my read")?;
//!
//! let mut packet = port.get(Some(Duration::from_secs(5)))?;
//! assert_eq!((packet.key, packet.value, packet.result()?), (42, "my read", 4));
//! assert_eq!(&packet.take_buf().unwrap()[..4], b"port");
//! # std::fs::remove_file(&path)?;
//! # Ok(())
//! # }
//! ```
//!
//! See [`CompletionPort`] for a worker pool.

#![deny(missing_docs)]

mod buf;
mod error;
mod handle;
mod id;
mod io;
mod op;
mod packet;
mod port;
mod queue;
mod sync;
mod thread;

pub use buf::IoBuf;
pub use error::{Error, OpError};
pub use handle::{Builder, Handle, Started};
pub use id::OpId;
pub use io::{Backend, BackendChoice, BackendInfo, Feature, SubmitMode};
pub use op::Interest;
pub use packet::{Data, Packet, Status};
pub use port::{CompletionPort, GetError, PortStats, PostError};
pub use thread::{blocking, enter_blocking, BlockingGuard};

/// Knobs for iocport's own tests: not part of the API, may change at any time.
#[doc(hidden)]
pub mod testing {
    pub use crate::io::claim::{Attempt, Waiting};
    pub use crate::io::wake::LeaderSleep;
    /// Moves the process-wide operation generation sequence forward to at least `n` (never back).
    pub fn advance_generations_to(n: u64) {
        crate::id::advance_generations_to(n);
    }

    /// Runs `hook` in every port leader of this process after it has decided to sleep in the kernel
    /// and before it enters it (the window where a wake-up can be taken by another thread); `None`
    /// removes it.
    pub fn set_leader_hook(hook: Option<fn()>) {
        crate::port::set_leader_hook(hook);
    }

    /// Loom models only: ports created from now on use the old wake-up scheme (`true`), with the two
    /// bugs the current one fixes (see `io/wake.rs`), or the current one (`false`, the default).
    #[cfg(loom)]
    pub fn set_legacy_wake(on: bool) {
        crate::io::Config::set_legacy_wake(on);
    }
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
