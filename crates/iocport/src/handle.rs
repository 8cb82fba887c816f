//! The I/O API: associating fds with a port, and the operations that complete through it.

use std::cell::Cell;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::buf::IoBuf;
use crate::error::{Error, OpError};
use crate::id::OpId;
use crate::io::{
    done_now, skips, try_now, BackendChoice, BackendInfo, Config, FdEntry, Feature, Repeat, Start,
    SubmitMode, SKIP_READS, SKIP_WRITES,
};
use crate::op::{Interest, Lent, Op, Pipe, Request, CURRENT_POSITION};
use crate::packet::{Data, Packet};
use crate::port::CompletionPort;

/// Sets up a port with its io_uring ring at once, so that an unusable io_uring is reported here
/// rather than at the first operation.
#[derive(Clone, Debug)]
pub struct Builder {
    concurrency: usize,
    config: Config,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Concurrency value 0 (the number of CPUs), 256 submission entries.
    pub fn new() -> Builder {
        Builder {
            concurrency: 0,
            config: Config::default(),
        }
    }

    /// The concurrency value: at most this many threads run packets at once; 0 means the number of
    /// CPUs.
    pub fn concurrency(mut self, n: usize) -> Builder {
        self.concurrency = n;
        self
    }

    /// Submission queue entries of the ring (the completion queue has four times as many). A full
    /// queue is submitted and reused, so this bounds batching, not the operations in flight.
    pub fn entries(mut self, n: u32) -> Builder {
        self.config.entries = n.max(1);
        self
    }

    /// Who submits the port's operations to io_uring ([`SubmitMode`]; the default is
    /// [`SubmitMode::Caller`]). The epoll backend has no such choice: its operations never belong
    /// to the thread that started them.
    pub fn submit_mode(mut self, mode: SubmitMode) -> Builder {
        self.config.mode = mode;
        self
    }

    /// Which I/O backend the port uses: by default ([`BackendChoice::Auto`]) io_uring, or the epoll
    /// fallback where io_uring cannot be set up. Without this call the environment variable
    /// `IOCPORT_BACKEND` (`auto`, `io_uring`, `epoll`) decides, else auto.
    pub fn backend(mut self, choice: BackendChoice) -> Builder {
        self.config.backend = Some(choice);
        self
    }

    /// Creates the port and its I/O backend.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the chosen backend cannot be set up (io_uring forced where the
    /// kernel refuses it, an invalid `IOCPORT_BACKEND`), with the reason.
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn build<T: Send + 'static, B: IoBuf>(self) -> Result<CompletionPort<T, B>, Error> {
        let port = CompletionPort::with_config(self.concurrency, self.config);
        port.io()?;
        Ok(port)
    }
}

/// How an operation started: in flight, or (on a skip-on-success handle) already complete.
#[derive(Debug)]
pub enum Started<T, B> {
    /// In flight: its packet will arrive on the port.
    Pending(OpId),
    /// Completed at once; no packet will be queued (FILE_SKIP_COMPLETION_PORT_ON_SUCCESS).
    Done(Packet<T, B>),
}

impl<T, B> Started<T, B> {
    /// The operation's id if it is in flight.
    pub fn id(&self) -> Option<OpId> {
        match self {
            Started::Pending(id) => Some(*id),
            Started::Done(_) => None,
        }
    }
}

std::thread_local! {
    /// The port whose `batch` this thread is inside, and how deep.
    static BATCH: Cell<(usize, u32)> = const { Cell::new((0, 0)) };
}

fn deferred(port_id: usize) -> bool {
    BATCH.with(|b| b.get().0 == port_id)
}

/// Ends a batch (also on unwind): restores the outer state and submits.
struct BatchGuard<'a, T: Send + 'static, B: IoBuf> {
    port: &'a CompletionPort<T, B>,
    prev: (usize, u32),
}

impl<T: Send + 'static, B: IoBuf> Drop for BatchGuard<'_, T, B> {
    fn drop(&mut self) {
        BATCH.with(|b| b.set(self.prev));
        if self.prev.0 != self.port.id() {
            if let Some(io) = self.port.io_if_set() {
                io.flush(&mut || self.port.reap_in_place());
            }
        }
    }
}

impl<T: Send + 'static, B: IoBuf> CompletionPort<T, B> {
    /// Associates `fd` with the port under completion `key`; operations started on the returned
    /// handle complete through this port. The port owns the fd from now on and closes it once the
    /// handle and every operation on it are gone.
    ///
    /// On the epoll backend ([`Backend::Epoll`](crate::Backend::Epoll)) a socket, pipe or other
    /// pollable fd is put in non-blocking mode (`O_NONBLOCK`) and registered with epoll; its flags
    /// are restored, and it leaves epoll, when the handle and every operation on it are gone (before
    /// the fd is closed, which matters if the program shares its file description). Regular files,
    /// block devices and directories are left as they are and never added to epoll. On io_uring
    /// the fd is left as it is. A program that clears `O_NONBLOCK` on an associated fd (through
    /// [`AsFd`], or another descriptor of the same socket) makes the epoll backend's `accept`,
    /// `connect` and pipe operations block the thread that runs them; socket reads and writes say
    /// `MSG_DONTWAIT` themselves.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyAssociated`] if the fd number is associated already (with any port),
    /// [`Error::BadFd`] if it is not open, [`Error::Closed`], [`Error::Unavailable`] if this is
    /// the port's first I/O and no backend can be set up, or [`Error::Register`] if epoll refuses
    /// the fd for a reason other than it not being pollable. On every error but
    /// `AlreadyAssociated` the fd is closed (the port took it).
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn associate(&self, fd: impl Into<OwnedFd>, key: usize) -> Result<Handle<T, B>, Error> {
        let fd = FdEntry::new(fd.into())?;
        self.io()?.attach(&fd)?;
        Ok(Handle {
            port: self.clone(),
            fd: Arc::new(fd),
            key,
        })
    }

    /// Starts `req` on `fd` (or on no fd) under `key`: checks and lends its buffers, sets up the
    /// ring if needed and submits it, or only queues it inside a `batch`.
    fn start(
        &self,
        key: usize,
        fd: Option<&Arc<FdEntry>>,
        req: Request<B>,
        value: T,
    ) -> Result<OpId, OpError<T, B>> {
        if let Err((reason, len)) = req.check_buffers() {
            return Err(OpError {
                error: Error::InvalidBuffer {
                    op: req.op().name(),
                    fd: fd.map_or(-1, |f| f.raw()),
                    len,
                    reason,
                },
                value,
                data: req.into_data(),
            });
        }
        let (op, lent) = req.lend();
        self.start_lent(key, fd, op, lent, value, None)
    }

    /// Starts an operation whose buffers are checked and lent already; `repeat` makes the value
    /// of each packet but the last of an operation with many (the last one hands `value` back).
    fn start_lent(
        &self,
        key: usize,
        fd: Option<&Arc<FdEntry>>,
        op: Op,
        lent: Lent<B>,
        value: T,
        repeat: Option<Repeat<T>>,
    ) -> Result<OpId, OpError<T, B>> {
        let io = match self.io() {
            Ok(io) => io,
            Err(error) => {
                return Err(OpError {
                    error,
                    value,
                    data: lent.into_data(),
                })
            }
        };
        let start = Start {
            key,
            fd,
            defer: deferred(self.id()),
            repeat,
        };
        io.submit_lent(start, op, lent, value, &mut || self.reap_in_place())
    }

    fn start_port_op(&self, key: usize, req: Request<B>, value: T) -> Result<OpId, OpError<T, B>> {
        self.start(key, None, req, value)
    }

    /// Starts an operation that does nothing and completes at once: its packet goes through the
    /// kernel and back (`IORING_OP_NOP`).
    ///
    /// # Errors
    ///
    /// As [`associate`](Self::associate), with `value` handed back.
    pub fn nop(&self, key: usize, value: T) -> Result<OpId, OpError<T, B>> {
        self.start_port_op(key, Request::Nop, value)
    }

    /// Starts a timer: its packet (status success, 0 bytes) arrives after `after`, or with
    /// `ECANCELED` if cancelled first (Solaris `PORT_SOURCE_TIMER`, io_uring `TIMEOUT`).
    ///
    /// # Errors
    ///
    /// As [`nop`](Self::nop).
    pub fn timer(&self, after: Duration, key: usize, value: T) -> Result<OpId, OpError<T, B>> {
        self.start_port_op(key, Request::Timer(after), value)
    }

    /// Asks the kernel to cancel operation `id`. It still ends in exactly one packet: with
    /// `ECANCELED` ("operation aborted"), or with its real result if it finished first.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if `id` is not in flight on this port (it completed, or it is stale).
    #[doc(alias = "CancelIoEx")]
    pub fn cancel(&self, id: OpId) -> Result<(), Error> {
        match self.io_if_set() {
            Some(io) => io.cancel(id, &mut || self.reap_in_place()),
            None => Err(Error::NotFound { id }),
        }
    }

    /// Every kernel feature the I/O backend probed when it was set up, with its answer; `None` if
    /// the port has no I/O yet (see [`Builder::build`]).
    pub fn features(&self) -> Option<Vec<Feature>> {
        self.io_if_set().map(|io| io.report())
    }

    /// The I/O backend the port runs on and why it was chosen; `None` if the port has no I/O yet
    /// (see [`Builder::build`]).
    pub fn backend(&self) -> Option<BackendInfo> {
        self.io_if_set().map(|io| io.backend().clone())
    }

    /// Runs `f`; the operations it starts on this port (on this thread) are submitted to the kernel
    /// together, with one system call, when it returns.
    pub fn batch<R>(&self, f: impl FnOnce() -> R) -> R {
        let id = self.id();
        let prev = BATCH.with(|b| {
            let prev = b.get();
            if prev.0 == 0 || prev.0 == id {
                b.set((id, prev.1 + 1));
            }
            prev
        });
        let _guard = BatchGuard { port: self, prev };
        f()
    }
}

/// An fd associated with a [`CompletionPort`] under a completion key.
///
/// Operations started on it return at once; each ends in exactly one packet on the port (success,
/// error, cancellation, the handle dropped, or the port closed), which hands the buffer and the value
/// back. Dropping the handle cancels its pending operations; their packets still arrive, and the fd
/// is closed after the last of them.
pub struct Handle<T: Send + 'static, B: IoBuf = Vec<u8>> {
    port: CompletionPort<T, B>,
    fd: Arc<FdEntry>,
    key: usize,
}

impl<T: Send + 'static, B: IoBuf> Handle<T, B> {
    /// The completion key the handle's packets carry.
    pub fn key(&self) -> usize {
        self.key
    }

    /// The port the handle is associated with.
    pub fn port(&self) -> &CompletionPort<T, B> {
        &self.port
    }

    /// Opt in (or out) of skip-on-success: `read`, `write`, `recv` and `send` first try to complete
    /// without blocking (`RWF_NOWAIT`, `MSG_DONTWAIT`); if they can, the result is returned as
    /// [`Started::Done`] and no packet is queued. Otherwise they go to the kernel as usual. Reads
    /// and writes of files opened with `O_DIRECT` always go to the kernel (a first try would wait
    /// for the device). Worth it for page-cached files (measured: 2-3x the reads per second); for
    /// sockets it pays only where data is usually already there.
    #[doc(alias = "SetFileCompletionNotificationModes")]
    #[doc(alias = "FILE_SKIP_COMPLETION_PORT_ON_SUCCESS")]
    pub fn set_skip_on_success(&self, on: bool) {
        let mode = if on { SKIP_READS | SKIP_WRITES } else { 0 };
        self.fd.skip_on_success.store(mode, Ordering::Relaxed);
    }

    /// Skip-on-success for `write`, `write_at` and `send` only: a write that fits in the socket or
    /// page cache completes at once, while reads, which usually find nothing yet on a connection,
    /// go straight to the kernel without a failed first try. The usual choice for servers.
    pub fn set_skip_on_success_writes(&self, on: bool) {
        let mode = if on { SKIP_WRITES } else { 0 };
        self.fd.skip_on_success.store(mode, Ordering::Relaxed);
    }

    fn start(&self, req: Request<B>, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        let op = req.op();
        if skips(self.fd.skip_on_success.load(Ordering::Relaxed), op) && req.check_buffers().is_ok()
        {
            let (op, lent) = req.lend();
            if let Some(rc) = try_now(&self.fd, op, &lent) {
                return Ok(Started::Done(done_now(self.key, rc, lent, value)));
            }
            return self
                .port
                .start_lent(self.key, Some(&self.fd), op, lent, value, None)
                .map(Started::Pending);
        }
        self.port
            .start(self.key, Some(&self.fd), req, value)
            .map(Started::Pending)
    }

    /// Reads into `buf` at `offset` (`pread`).
    #[doc(alias = "ReadFile")]
    pub fn read_at(&self, buf: B, offset: u64, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Read { buf, offset }, value)
    }

    /// Writes `buf` at `offset` (`pwrite`).
    #[doc(alias = "WriteFile")]
    pub fn write_at(&self, buf: B, offset: u64, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Write { buf, offset }, value)
    }

    /// Reads into `buf` at the file position (or from a stream), advancing it.
    pub fn read(&self, buf: B, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(
            Request::Read {
                buf,
                offset: CURRENT_POSITION,
            },
            value,
        )
    }

    /// Writes `buf` at the file position (or to a stream), advancing it.
    pub fn write(&self, buf: B, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(
            Request::Write {
                buf,
                offset: CURRENT_POSITION,
            },
            value,
        )
    }

    /// Reads into several buffers at `offset`, in order (`preadv`).
    pub fn readv_at(
        &self,
        bufs: Vec<B>,
        offset: u64,
        value: T,
    ) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Readv { bufs, offset }, value)
    }

    /// Writes several buffers at `offset`, in order (`pwritev`).
    pub fn writev_at(
        &self,
        bufs: Vec<B>,
        offset: u64,
        value: T,
    ) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Writev { bufs, offset }, value)
    }

    /// Reads into several buffers at the file position or from a stream (`readv`).
    pub fn readv(&self, bufs: Vec<B>, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.readv_at(bufs, CURRENT_POSITION, value)
    }

    /// Writes several buffers at the file position or to a stream (`writev`).
    pub fn writev(&self, bufs: Vec<B>, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.writev_at(bufs, CURRENT_POSITION, value)
    }

    /// Receives into `buf` from a connected socket; `flags` are `recv(2)`'s `MSG_*`.
    #[doc(alias = "WSARecv")]
    pub fn recv(&self, buf: B, flags: i32, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Recv { buf, flags }, value)
    }

    /// Sends `buf` on a connected socket; `flags` are `send(2)`'s `MSG_*` (`MSG_NOSIGNAL` is always
    /// added: a closed peer is an `EPIPE` packet, never a signal).
    #[doc(alias = "WSASend")]
    pub fn send(&self, buf: B, flags: i32, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Send { buf, flags }, value)
    }

    /// Receives into a buffer the port gives it when data arrives, not before: one of those given
    /// with [`CompletionPort::provide_buffer`], which comes back in the packet's
    /// [`Data::Buf`](crate::Data::Buf) (`bytes` of it filled) and is the program's again. A
    /// connection waiting for data thus holds no buffer (on io_uring a provided buffer ring,
    /// `IOSQE_BUFFER_SELECT`, Linux 5.19; on the epoll backend the buffer is taken when the
    /// socket is readable). `flags` are `recv(2)`'s.
    ///
    /// If the port has no buffer when the receive runs (when it starts, or when data arrives),
    /// the packet says `ENOBUFS` and carries none: provide more and receive again. At end of
    /// stream the packet may carry a buffer with 0 bytes filled.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv); [`Error::Unsupported`] where the kernel has no provided buffer
    /// rings (from the first [`provide_buffer`](CompletionPort::provide_buffer)).
    pub fn recv_provided(&self, flags: i32, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        let pool = match self.port.io().and_then(|io| io.ensure_pool().map(|()| io)) {
            Ok(io) => Arc::clone(io.available()),
            Err(error) => {
                return Err(OpError {
                    error,
                    value,
                    data: Data::None,
                })
            }
        };
        let multishot = false;
        self.start(
            Request::RecvProvided {
                flags,
                pool,
                multishot,
            },
            value,
        )
    }

    /// Receives every message that arrives, with one request that stays armed: each message
    /// comes in its own packet, in a buffer the port provides when it arrives (as
    /// [`recv_provided`](Self::recv_provided)), until the operation ends. Saves the submission
    /// (and, on io_uring, the readiness arming) of one receive per message.
    ///
    /// Every packet carries the operation's id, the handle's key and a clone of `value`; the last
    /// one carries `value` itself ([`recv_multishot_with`](Self::recv_multishot_with) makes each
    /// packet's value with a function of its own, which is given the message's ordinal). A
    /// packet with data (success, `bytes > 0`, the buffer in [`Data::Buf`](crate::Data::Buf))
    /// has more after it; the last packet is the one with an error or with 0 bytes:
    /// - 0 bytes, success: end of stream (it may carry a provided buffer, 0 bytes of it filled);
    /// - `ENOBUFS`: the port had no buffer for the next message (provide more and start another;
    ///   the message waits in the socket). With no buffer when it starts, it ends so at once;
    ///   once it has received, only when a message is there to take;
    /// - `ECANCELED`: [`cancel`](CompletionPort::cancel), the handle dropped, or the port closed;
    /// - any other error of `recv(2)`.
    ///
    /// The packets are queued in the order of the data, each before the next message is
    /// received. With several threads calling `get`, two of them may handle two messages of
    /// one connection at once: a program that must keep their order (a stream) orders them by
    /// the ordinals [`recv_multishot_with`](Self::recv_multishot_with) gives (as a Windows
    /// server with several receives pending on one socket numbers them). The kernel never ends
    /// the operation for its own reasons (a full completion queue, its submitting thread's
    /// exit): the port starts it again under the same id.
    ///
    /// The values are made by the thread that reaps each completion, with the port's operation
    /// table locked (as the [completion hook](CompletionPort::set_completion_hook)'s work):
    /// `T`'s `clone` must be cheap (an `Arc`, a plain value), must not start or cancel
    /// operations on this port, and must not panic (a panicking clone loses that message's
    /// packet).
    ///
    /// On io_uring this is `IORING_RECV_MULTISHOT` with the provided buffer ring (Linux 6.0); on
    /// the epoll backend each readiness event receives until the socket would block. `flags` are
    /// `recv(2)`'s, without `MSG_DONTWAIT` or `MSG_WAITALL`.
    ///
    /// # Errors
    ///
    /// As [`recv_provided`](Self::recv_provided); [`Error::InvalidArgument`] for `MSG_DONTWAIT`
    /// or `MSG_WAITALL`; [`Error::Unsupported`] where the kernel has no multishot receive
    /// (before Linux 6.0).
    pub fn recv_multishot(&self, flags: i32, value: T) -> Result<OpId, OpError<T, B>>
    where
        T: Clone,
    {
        self.recv_multishot_with(flags, value, clone_value::<T>)
    }

    /// As [`recv_multishot`](Self::recv_multishot), each message's packet carrying
    /// `each(&value, n)`, `n` the message's ordinal (0 for the first); the last packet carries
    /// `value`. `each` runs as `recv_multishot`'s clones do (the operation table locked: short,
    /// no operations on this port, no panic).
    ///
    /// # Errors
    ///
    /// As [`recv_multishot`](Self::recv_multishot).
    pub fn recv_multishot_with(
        &self,
        flags: i32,
        value: T,
        each: fn(&T, u64) -> T,
    ) -> Result<OpId, OpError<T, B>> {
        let refuse = |error, value| {
            Err(OpError {
                error,
                value,
                data: Data::None,
            })
        };
        if flags & (libc::MSG_DONTWAIT | libc::MSG_WAITALL) != 0 {
            let reason = "a multishot receive takes neither MSG_DONTWAIT nor MSG_WAITALL";
            let error = Error::InvalidArgument {
                op: "recv_multishot",
                fd: self.fd.raw(),
                reason,
            };
            return refuse(error, value);
        }
        let pool = match self.port.io().and_then(|io| io.ensure_pool().map(|()| io)) {
            Ok(io) => Arc::clone(io.available()),
            Err(error) => return refuse(error, value),
        };
        let multishot = true;
        let req = Request::RecvProvided {
            flags,
            pool,
            multishot,
        };
        let (op, lent) = req.lend();
        self.port
            .start_lent(self.key, Some(&self.fd), op, lent, value, Some(each))
    }

    /// Receives one datagram into `buf`; the packet's [`Data::From`](crate::Data::From) carries the
    /// sender's address (`recvmsg`).
    #[doc(alias = "WSARecvFrom")]
    pub fn recv_from(&self, buf: B, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::RecvFrom { buf }, value)
    }

    /// Sends `buf` as one datagram to `addr` (`sendmsg`).
    #[doc(alias = "WSASendTo")]
    pub fn send_to(
        &self,
        buf: B,
        addr: SocketAddr,
        value: T,
    ) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::SendTo { buf, addr }, value)
    }

    /// Sends `len` bytes of `file`, from `offset`, on this handle's socket (or pipe), without
    /// copying them through user space: one packet when all are sent, whose `bytes` is the count
    /// sent (fewer than `len` only if the file ended first). A transmission that fails part way
    /// reports the error with the bytes it had sent in `bytes`.
    ///
    /// On io_uring the bytes are spliced through a pipe (file to pipe, pipe to socket,
    /// `IORING_OP_SPLICE`, in stages of up to the pipe's size, 1 MiB where the system allows);
    /// on the epoll backend `sendfile(2)` sends what the socket takes and the rest when it is
    /// writable. The file is any fd `splice(2)` reads from (a regular file, a block device); it
    /// needs no association, and the operation holds its `Arc` until the packet, so it stays open
    /// whatever the program does with its own reference. `file`'s position is not used nor moved.
    /// A peer that has gone is an `EPIPE` packet, never a signal. Cancelling ends it with
    /// `ECANCELED` (and what it sent so far in `bytes`), as any operation.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBuffer`] if `len` is 0 or over 2,147,483,646 (Windows' limit, so that
    /// every count fits a completion); [`Error::Resources`] if no pipe could be made (the fd
    /// limit); otherwise as any operation. The `value` is handed back.
    #[doc(alias = "TransmitFile")]
    #[doc(alias = "sendfile")]
    pub fn transmit_file(
        &self,
        file: Arc<dyn AsFd + Send + Sync>,
        offset: u64,
        len: u32,
        value: T,
    ) -> Result<Started<T, B>, OpError<T, B>> {
        let pipe = match self.port.io_if_set() {
            Some(io) if io.splices() => match Pipe::take() {
                Ok(p) => Some(p),
                Err(source) => {
                    return Err(OpError {
                        error: Error::Resources {
                            op: Op::TransmitFile.name(),
                            fd: self.fd.raw(),
                            what: "a pipe to splice through",
                            source,
                        },
                        value,
                        data: Data::None,
                    })
                }
            },
            _ => None,
        };
        self.start(
            Request::TransmitFile {
                file,
                offset,
                len,
                pipe,
            },
            value,
        )
    }

    /// Accepts a connection on a listening socket; the packet's
    /// [`Data::Accepted`](crate::Data::Accepted) carries the new socket and the peer's address.
    #[doc(alias = "AcceptEx")]
    pub fn accept(&self, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Accept, value)
    }

    /// Accepts every connection that arrives, with one request that stays armed: each comes in
    /// its own packet ([`Data::Accepted`](crate::Data::Accepted): the new socket and the peer's
    /// address), until the operation ends with an error (its last packet, carrying `value`
    /// itself; the others carry clones, made as [`recv_multishot`](Self::recv_multishot)'s are): `ECANCELED` ([`cancel`](CompletionPort::cancel), the
    /// handle dropped, the port closed), or an error of `accept(2)` (`EMFILE`, `ENFILE`,
    /// `ENOBUFS`, `ENOMEM`, `ECONNABORTED`...: start another, later if it was for want of
    /// descriptors or memory). As with [`recv_multishot`](Self::recv_multishot), the kernel never
    /// ends it for its own reasons: the port starts it again under the same id.
    ///
    /// On io_uring this is `IORING_ACCEPT_MULTISHOT` (Linux 5.19; used where the kernel has the
    /// multishot receive, Linux 6.0); on the epoll backend each readiness event accepts until
    /// the listener would block.
    ///
    /// # Errors
    ///
    /// As [`accept`](Self::accept); [`Error::Unsupported`] where the kernel has no multishot
    /// operations (before Linux 6.0).
    #[doc(alias = "AcceptEx")]
    pub fn accept_multishot(&self, value: T) -> Result<OpId, OpError<T, B>>
    where
        T: Clone,
    {
        let (op, lent) = Request::AcceptMulti.lend();
        self.port.start_lent(
            self.key,
            Some(&self.fd),
            op,
            lent,
            value,
            Some(clone_value::<T>),
        )
    }

    /// Connects a socket to `addr`; a refused connection is a packet with `ECONNREFUSED`.
    #[doc(alias = "ConnectEx")]
    pub fn connect(&self, addr: SocketAddr, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Connect(addr), value)
    }

    /// Shuts down part or all of a connection.
    #[doc(alias = "DisconnectEx")]
    pub fn shutdown(&self, how: Shutdown, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Shutdown(how), value)
    }

    /// Flushes the file's data and metadata to the device.
    #[doc(alias = "FlushFileBuffers")]
    pub fn fsync(&self, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Fsync { datasync: false }, value)
    }

    /// Flushes the file's data (and the metadata needed to read it) to the device.
    pub fn fdatasync(&self, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Fsync { datasync: true }, value)
    }

    /// Waits once for the fd to become ready: the packet's `bytes` holds the `poll(2)` events that
    /// are (Solaris `PORT_SOURCE_FD`). Works on any pollable fd (eventfd, timerfd, pidfd, pipes).
    pub fn poll(&self, interest: Interest, value: T) -> Result<Started<T, B>, OpError<T, B>> {
        self.start(Request::Poll(interest), value)
    }

    /// Asks the kernel to cancel every operation in flight on this handle; each still ends in one
    /// packet (`ECANCELED`, or its real result if it finished first).
    ///
    /// A cancellation that cannot be handed to the kernel at once (its queue is full) waits in the
    /// port and is handed over by the next thread that can, still aimed at this handle's operations
    /// only.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for backends that can refuse.
    #[doc(alias = "CancelIoEx")]
    pub fn cancel_all(&self) -> Result<(), Error> {
        if let Some(io) = self.port.io_if_set() {
            io.cancel_fd(&self.fd, &mut || self.port.reap_in_place());
        }
        Ok(())
    }
}

impl<T: Send + 'static, B: IoBuf> Drop for Handle<T, B> {
    /// Cancels the handle's pending operations (their packets still arrive); the fd is closed after
    /// the last of them completes.
    fn drop(&mut self) {
        self.fd.closing.store(true, Ordering::Relaxed);
        let _ = self.cancel_all();
    }
}

impl<T: Send + 'static, B: IoBuf> AsFd for Handle<T, B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd stays open as long as `self.fd` (an Arc we hold) lives.
        unsafe { BorrowedFd::borrow_raw(self.fd.raw()) }
    }
}

impl<T: Send + 'static, B: IoBuf> AsRawFd for Handle<T, B> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl<T: Send + 'static, B: IoBuf> std::fmt::Debug for Handle<T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("fd", &self.fd.raw())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The value of each packet of a multishot operation started without a function of its own: a
/// clone of the operation's.
fn clone_value<T: Clone>(value: &T, _ordinal: u64) -> T {
    value.clone()
}
