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
//! This release has the port itself: programs [`post`](CompletionPort::post) their own packets.
//! Asynchronous file and socket operations completing through the port (on io_uring) come next; see the
//! README's status table.
//!
//! # Examples
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
//! See [`CompletionPort`] for a worker pool.

#![deny(missing_docs)]

mod buf;
mod driver;
mod error;
mod handle;
mod io;
mod op;
mod port;
mod queue;
mod sync;
mod thread;

pub use buf::IoBuf;
pub use error::{Error, OpError};
pub use handle::{Builder, Handle, Started};
pub use op::{Interest, OpId};
pub use port::{CompletionPort, Data, GetError, Packet, PortStats, PostError, Status};
pub use thread::{blocking, enter_blocking, BlockingGuard};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
