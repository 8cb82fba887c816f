//! The I/O layer under a port: the op table, the fd registry and skip-on-success, shared by every
//! backend, over the backend that runs the operations, chosen at run time (`driver.rs`): io_uring
//! (`uring/`) or, where io_uring is refused, epoll and a thread pool (`epoll/`).
//!
//! # The contract a backend keeps
//!
//! The port (`port.rs`) calls only [`Io`]; `Io` calls the backend's `Driver` for:
//! - **set-up and probe**: `new` fails with a typed error naming what is missing; `report` lists each
//!   probe's answer; `supports(op)`;
//! - **submission**: `push_op` queues an operation under the op table's lock (so taking a slot and
//!   queueing its request is one critical section), `push_cancel`, and `submit`/`make_room`, called
//!   without that lock, which make progress on a full queue or `EBUSY` by reaping in place (the
//!   `reap` closure the port passes), never by spinning;
//! - **completions**: `reap(block, max, f)` hands each operation's completion (`user_data`, result)
//!   to `f`, oldest first, and handles the backend's own completions itself; they never count
//!   against `max`;
//! - **the wait and the wake**: `wait(deadline)` blocks the port's leader in the kernel until a
//!   completion, the deadline or a `wake`; a `wake` is never lost, whoever reaps (see `uring/`).
//!
//! # Who owns an operation's memory, from start to packet
//!
//! 1. The caller's request ([`Request`]) is checked and *lent* before any lock is taken: the buffers
//!    move into a [`Lent`] and their addresses are read then, so no [`IoBuf`] method (user code)
//!    ever runs under a lock, and a panicking one drops the request with nothing taken.
//! 2. Under the op table's lock the operation takes a slot (boxed: it never moves), the `Lent` and the
//!    caller's value move into it, and the backend's request, whose pointers all point into the slot
//!    or into the buffers it owns, is queued. From here the slot owns everything the kernel may read
//!    or write, and a reference to the handle's fd, so the fd cannot be closed (and its number reused)
//!    under an operation in flight.
//! 3. The operation's one completion is reaped (by whichever thread reaps): the slot's contents become
//!    the packet (buffers, value, status), the slot is freed under a new generation, and the packet
//!    is placed on the port. A slot is never freed before its completion, so the kernel never writes
//!    into memory that safe code can free; `close` and `Drop` wait for every completion.
//! 4. The fd entry's last reference, if a slot held it, is dropped after the locks are released
//!    (`close(2)` of a lingering socket can block).
//!
//! # Who waits in the kernel
//!
//! One thread at a time, the port's *leader* (leader/followers, `port.rs`), calls [`Io::wait`];
//! other waiting threads park on their own futex. The close drain also waits, with a timeout. Any
//! thread may reap: the leader after its wait, a `get` that finds nothing queued, a submission that
//! meets a full completion queue.
//!
//! # What an operation costs
//!
//! Measured with `perf` on NOPs in batches of 32 (one thread, io_uring, 2 vCPUs, 2026-12-04;
//! about 140 ns per NOP in all, where the raw ring of `bench nop` takes about 78 ns): the kernel's
//! share (`io_uring_enter`, `io_submit_sqes`, the NOP itself) is about 78 ns, the same as the raw
//! ring's whole cost, and iocport's own is about 60 ns:
//!
//! | step (self time in the profile) | ns | what |
//! | --- | --- | --- |
//! | `submit_lent` | ~16 | check and lend, the op table's lock, a slot (free list, generation), the request built into it |
//! | `reap`'s closure (`complete`, `place`) | ~13 | the slot back to the free list, the packet built from it and queued on the port |
//! | `push_entry`, `push_op` | ~10 | the submission ring's shared head read and tail write, per entry |
//! | `batch`, the lock's release, dropping the lent memory | ~10 | the deferred submission's bookkeeping |
//! | the rest, none over 1.2% | ~11 | `get_many`, the port's counters, thread-locals |
//!
//! Store-forwarding stalls (an entry or a packet built by one function and copied out by its
//! caller in other widths) cost about 12 ns per NOP until `sqe::build` and `Lending::finish` were
//! inlined. What is left is spread over the steps above: no single lever (registered files,
//! per-thread slot caches) would bring iocport to 0.8x the raw ring, which would leave it 20 ns
//! per operation for everything in the table.
//!
//! # Cancellation
//!
//! A cancel is queued in the same critical section as the check that its target is live, and the
//! kernel takes requests in queue order, so it can only reach operations queued before it: never a
//! later tenant of the slot, nor a later file with the same fd number. A cancel that finds the
//! submission queue full waits in the op table (`Ops::cancels`) under its target's own identity
//! (the operation's id, or the fd's entry, which keeps the number open) and is queued by the next
//! thread that holds the lock, checked again then.

pub(crate) mod claim;
#[cfg(not(loom))]
mod driver;
#[cfg(not(loom))]
mod epoll;
mod fd;
#[cfg(loom)]
mod mock;
mod provided;
mod skip;
#[cfg(not(loom))]
mod uring;
pub(crate) mod wake;

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::buf::IoBuf;
use crate::error::{Error, OpError};
use crate::id::{Generations, OpId};
use crate::op::{Interest, IoVecs, Lending, Lent, Op};
use crate::packet::{Data, Packet, Status};
use crate::sync::{lock, AtomicBool, Mutex, MutexGuard, Ordering};

pub(crate) use fd::FdEntry;
pub(crate) use provided::Available;
use provided::Provided;
#[cfg(not(loom))]
pub(crate) use provided::GROUP as PROVIDED_GROUP;
#[cfg(not(loom))]
pub(crate) use skip::short_at_end;
pub(crate) use skip::{done_now, skips, try_now, SKIP_READS, SKIP_WRITES};

// The backend, chosen in this one place: at run time between io_uring and epoll (`driver.rs`).
// The loom models run the port and this file over a model ring (`mock.rs`) that keeps the same
// contract.
#[cfg(not(loom))]
use driver::{Driver, Entry};
#[cfg(loom)]
use mock::{Driver, Entry};

/// What a cancellation targets.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CancelTarget {
    /// One operation, by its `user_data` (and its fd, -1 for none, where the backend keeps
    /// operations by fd).
    Op(u64, #[cfg_attr(loom, allow(dead_code))] RawFd),
    /// Every operation on an fd (needs [`Features::cancel_fd`]).
    Fd(RawFd),
    /// Every operation on the ring (needs [`Features::cancel_any`]).
    Any,
}

/// An operation's completion: its `user_data`, the kernel's result, and its flags (io_uring's
/// `IORING_CQE_F_*`: which provided buffer a receive used; 0 elsewhere).
pub(crate) struct Completion {
    pub(crate) user_data: u64,
    pub(crate) result: i32,
    pub(crate) flags: u32,
}

/// `IORING_CQE_F_BUFFER`: the completion's upper 16 flag bits are a provided buffer's id.
pub(crate) const CQE_F_BUFFER: u32 = 1;
/// `IORING_CQE_F_MORE`: the operation goes on; more completions follow under its `user_data`.
pub(crate) const CQE_F_MORE: u32 = 2;

/// The kernel features the backend uses beyond the minimum, as probed at set-up (and possibly
/// pretended missing by `IOCPORT_TEST_MISSING`, so that tests run the paths older kernels take).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Features {
    /// `IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL` (Linux 5.19): cancel every operation on an
    /// fd with one request. Without it: each live operation is cancelled by its own id.
    pub(crate) cancel_fd: bool,
    /// `IORING_ASYNC_CANCEL_ANY` (Linux 5.19): cancel everything with one request (the close
    /// drain). Without it: each live operation by its own id.
    pub(crate) cancel_any: bool,
    /// `IORING_POLL_ADD_MULTI` (Linux 5.13): one poll serves every wake-up. Without it: a one-shot
    /// poll, re-armed after each wake-up (the eventfd is drained first).
    pub(crate) multishot_poll: bool,
    /// `IORING_RECV_MULTISHOT` (Linux 6.0): `recv_multishot`, and `accept_multishot` (whose
    /// `IORING_ACCEPT_MULTISHOT`, Linux 5.19, it implies). Without it: refused as unsupported.
    #[cfg_attr(loom, allow(dead_code))] // the model ring runs no receives
    pub(crate) recv_multishot: bool,
    /// `IORING_SETUP_COOP_TASKRUN` (Linux 5.19), used by [`SubmitMode::Caller`] only.
    #[cfg_attr(loom, allow(dead_code))] // the model ring has no task work
    pub(crate) coop_taskrun: bool,
}

/// Submission queue entries of a port's ring unless [`Builder::entries`](crate::Builder::entries)
/// says otherwise.
pub(crate) const DEFAULT_ENTRIES: u32 = 256;

/// Slots in one op table, at most (operations in flight at once on one port).
const MAX_SLOTS: usize = 1 << 30;

/// How often one operation is started again after the kernel ended it for its submitting thread's
/// exit ([`SubmitMode::Caller`]); past this its `ECANCELED` is reported (the kernel may also cancel
/// work it cannot start, e.g. when no worker thread can be created).
const MAX_RESTARTS: u8 = 16;

/// `ERESTARTSYS`, the kernel's own "interrupted, restart the call" (512), which io_uring may pass
/// on as the result of a splice a signal interrupted.
const ERESTARTSYS: i32 = 512;

/// Who submits a port's operations to the kernel, and so who owns them there.
///
/// io_uring ties each request to the thread that submitted it: when that thread exits, its
/// requests that wait for readiness or sit on its worker queue are ended with `ECANCELED`, and a
/// completion's last step runs on it. Every mode keeps operations thread-agnostic as Windows does
/// (none ends because its thread exited); they differ in what a completion's latency depends on
/// and in what they cost. Measured on 2 vCPUs (`BENCHMARKS.md`): `Caller` has the throughput,
/// the other two cost about a third of the echo server's requests per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubmitMode {
    /// Each thread submits the operations it starts (`io_uring_enter`), with
    /// `IORING_SETUP_COOP_TASKRUN`: the kernel does not interrupt a running thread to finish its
    /// operations; a thread finishes them when it next enters the kernel (any system call, a wait,
    /// or the next timer tick while it computes, at most 4 ms at HZ=250). An operation the kernel
    /// ends because its thread exited is started again by the thread that reaps it, from the same
    /// slot and buffers (before it began, such an operation has done nothing; a `connect` resumes as
    /// a wait for the socket's outcome). The default: the fastest, and no operation is lost. The
    /// same holds for the port's own wake-up poll (a `post` that must wake the thread waiting in
    /// the kernel): it finishes on the thread that armed it (the one that set the port up, or the
    /// last to re-arm it), within a tick if that thread is computing.
    #[default]
    Caller,
    /// As [`Caller`](SubmitMode::Caller), without `COOP_TASKRUN`: the kernel interrupts a busy
    /// submitting thread at once to finish its operation, so a completion's latency never depends
    /// on what that thread is doing. The interrupts cost throughput (an echo server: about a third).
    CallerInterrupted,
    /// The ring's own kernel submission thread (`IORING_SETUP_SQPOLL`, one per process, shared by
    /// every port through `IORING_SETUP_ATTACH_WQ`) takes the operations any thread queues and owns
    /// them: no user thread's exit or work touches them, and starting one needs no system call
    /// while that thread is awake. The thread polls for 50 ms after its last work, a CPU's worth:
    /// for machines with a core to spare.
    KernelThread,
}

impl SubmitMode {
    /// Whether the kernel ties operations to the thread that submitted them.
    pub(crate) fn caller_owned(self) -> bool {
        self != SubmitMode::KernelThread
    }
}

/// One kernel feature the I/O backend probed at set-up, and what it is used for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Feature {
    /// The kernel's name for it (`IORING_ASYNC_CANCEL_FD`, `IORING_OP_RECV`, ...).
    pub name: &'static str,
    /// Whether the kernel offers it (features pretended missing by `IOCPORT_TEST_MISSING` are
    /// reported missing).
    pub available: bool,
    /// What the port uses it for, and what it does without it.
    pub purpose: &'static str,
}

impl Feature {
    pub(crate) fn new(name: &'static str, available: bool, purpose: &'static str) -> Feature {
        Feature {
            name,
            available,
            purpose,
        }
    }
}

/// The I/O backend that runs a port's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// io_uring: the kernel runs the operations and queues their completions.
    IoUring,
    /// The fallback where io_uring is refused: sockets, pipes and other pollable fds are tried at
    /// once and, when they would block, wait for readiness through edge-triggered epoll; regular
    /// files, block devices and `fsync` run on a bounded pool of threads; timers are a timer heap
    /// behind one timerfd. Same operations, packets and errors as io_uring.
    Epoll,
}

impl Backend {
    /// The backend's name: `io_uring` or `epoll`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which backend a port should use ([`Builder::backend`](crate::Builder::backend), or the
/// environment variable `IOCPORT_BACKEND=auto|io_uring|epoll` when the builder does not say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendChoice {
    /// io_uring, or epoll if io_uring cannot be set up (refused by seccomp, disabled by
    /// `kernel.io_uring_disabled`, missing, lacking a feature the port needs); the reason is logged
    /// once and kept ([`CompletionPort::backend`](crate::CompletionPort::backend)).
    #[default]
    Auto,
    /// io_uring only: a port that cannot set it up fails with [`Error::Unavailable`] and the reason.
    IoUring,
    /// The epoll fallback, even where io_uring works.
    Epoll,
}

impl BackendChoice {
    /// Parses `auto`, `io_uring` (or `io-uring`, `uring`) and `epoll`.
    pub fn parse(s: &str) -> Option<BackendChoice> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(BackendChoice::Auto),
            "io_uring" | "io-uring" | "uring" | "iouring" => Some(BackendChoice::IoUring),
            "epoll" => Some(BackendChoice::Epoll),
            _ => None,
        }
    }
}

/// The backend a port runs on and why it was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// The backend.
    pub backend: Backend,
    /// Why: `the default`, `forced by IOCPORT_BACKEND=epoll`, or what io_uring's set-up said.
    pub reason: String,
}

/// The environment variable that chooses the backend when the builder does not.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const BACKEND_VAR: &str = "IOCPORT_BACKEND";

/// How a port's I/O is set up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) entries: u32,
    pub(crate) mode: SubmitMode,
    /// `None`: from `IOCPORT_BACKEND`, else [`BackendChoice::Auto`].
    pub(crate) backend: Option<BackendChoice>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            entries: DEFAULT_ENTRIES,
            mode: SubmitMode::default(),
            backend: None,
        }
    }
}

/// One operation's slot.
struct Slot<T, B> {
    /// The current (or last) tenant's generation.
    generation: u64,
    live: bool,
    /// `cancel` was asked for this tenant.
    cancel_requested: bool,
    /// Times the kernel ended this tenant because the thread that submitted it exited, and it was
    /// started again ([`SubmitMode::Caller`] only).
    restarts: u8,
    /// A `connect` started again as a poll for writability (see `complete`).
    resumed_connect: bool,
    /// The fd's `cancel_epoch` when the operation started.
    fd_epoch: u32,
    op: Op,
    key: usize,
    value: Option<T>,
    /// An operation with many packets: makes the value of each but the last, from the value and
    /// the packet's ordinal.
    repeat: Option<Repeat<T>>,
    /// Packets of an operation with many, so far.
    shots: u64,
    lending: Lending<B>,
    /// The iovec array the last vectored tenant used, kept for the next one.
    iov: IoVecs,
    fd: Option<Arc<FdEntry>>,
}

/// A cancellation waiting for room in the submission queue, by its target's own identity.
enum PendingCancel {
    Op(OpId),
    Fd(Arc<FdEntry>),
    All,
}

/// The op table.
struct Ops<T, B> {
    slots: Vec<Box<Slot<T, B>>>,
    free: Vec<u32>,
    generations: Generations,
    /// Set when the port closes: no operation starts after it.
    closed: bool,
    /// Operations started whose packet has not yet been placed.
    in_flight: usize,
    cancels: Vec<PendingCancel>,
    /// Operations to start again whose requests found the submission queue full (slot indexes).
    restarts: Vec<u32>,
}

/// The op table's lock, which also makes its holder the submission queue's only producer. Fd entries
/// whose last reference goes while it is held are kept in `deferred` and handed, once the lock is
/// released, to the closer thread (`fd::close_later`).
struct Locked<'a, T, B> {
    guard: Option<MutexGuard<'a, Ops<T, B>>>,
    deferred: Vec<FdEntry>,
}

impl<T, B> Locked<'_, T, B> {
    #[inline]
    fn ops(&mut self) -> &mut Ops<T, B> {
        self.guard.as_mut().expect("held until dropped")
    }

    /// Lets go of one reference to an fd entry; the last one is closed after the lock is released.
    fn release_fd(&mut self, fd: Arc<FdEntry>) {
        if let Some(last) = Arc::into_inner(fd) {
            self.deferred.push(last);
        }
    }
}

impl<T, B> Drop for Locked<'_, T, B> {
    #[inline]
    fn drop(&mut self) {
        drop(self.guard.take());
        if !self.deferred.is_empty() {
            // Unlocked now; closing may still block (a lingering socket), so not on this thread
            // either.
            for entry in self.deferred.drain(..) {
                fd::close_later(entry);
            }
        }
    }
}

/// The I/O half of a port: the op table over one backend.
pub(crate) struct Io<T, B: IoBuf> {
    driver: Driver,
    /// The backend and why it was chosen.
    info: BackendInfo,
    ops: Mutex<Ops<T, B>>,
    /// `Ops::cancels` or `Ops::restarts` is not empty (readable without the lock).
    cancels_waiting: AtomicBool,
    /// Requests were queued while reaping (operations started again, the wake-up poll, cancels):
    /// they need a submission.
    unsubmitted: AtomicBool,
    /// The kernel ties operations to the thread that submitted them ([`SubmitMode::Caller`]).
    caller_owned: bool,
    /// Runs on every operation's packet before it is placed (see
    /// [`CompletionPort::set_completion_hook`](crate::CompletionPort::set_completion_hook)).
    pub(crate) hook: std::sync::OnceLock<fn(&mut Packet<T, B>)>,
    /// The buffers the program provided for `recv_provided` (`provided.rs`). Declared after
    /// `driver`, so that the kernel's ring is unregistered (the ring closed) before its memory is
    /// freed. Locked inside the op table's lock, never the other way round.
    provided: Mutex<Provided<B>>,
    /// The epoll backend's list of the provided buffers not yet used.
    available: Arc<Available>,
}

/// How an operation should be started.
pub(crate) struct Start<'a, T> {
    pub(crate) key: usize,
    pub(crate) fd: Option<&'a Arc<FdEntry>>,
    /// Inside [`CompletionPort::batch`](crate::CompletionPort::batch): queue, submit later.
    pub(crate) defer: bool,
    /// An operation with many packets (a multishot receive or accept): makes the value of each
    /// but the last. It is the program's `Clone`, run under the op table's lock (documented).
    pub(crate) repeat: Option<Repeat<T>>,
}

/// Makes the value of a packet of an operation with many, from the operation's value and the
/// packet's ordinal (from 0).
pub(crate) type Repeat<T> = fn(&T, u64) -> T;

/// The `user_data` of operation `index` of generation `generation`: the slot in the low half, the
/// generation's low half above it (the full generation is checked wherever an id is taken from the
/// program; a completion always belongs to its slot's live tenant).
fn user_data(index: u32, generation: u64) -> u64 {
    (generation << 32) | u64::from(index)
}

impl<T, B: IoBuf> Io<T, B> {
    pub(crate) fn new(config: &Config) -> Result<Io<T, B>, Error> {
        let (driver, info) = Driver::new(config)?;
        Ok(Io {
            caller_owned: config.mode.caller_owned() && info.backend == Backend::IoUring,
            driver,
            info,
            ops: Mutex::new(Ops {
                slots: Vec::new(),
                free: Vec::new(),
                generations: Generations::default(),
                closed: false,
                in_flight: 0,
                cancels: Vec::new(),
                restarts: Vec::new(),
            }),
            cancels_waiting: AtomicBool::new(false),
            unsubmitted: AtomicBool::new(false),
            hook: std::sync::OnceLock::new(),
            provided: Mutex::new(Provided::default()),
            available: Arc::default(),
        })
    }

    /// The epoll backend's list of provided buffers (for a `recv_provided` request).
    pub(crate) fn available(&self) -> &Arc<Available> {
        &self.available
    }

    /// Gives the port `buf` for `recv_provided` (see `provided.rs`); `addr` and `len` were read
    /// from it before this call (no user code runs under the lock).
    pub(crate) fn provide(&self, buf: B, addr: *mut u8, len: usize) -> Result<(), (Error, B)> {
        let invalid = |reason| Error::InvalidArgument {
            op: "provide_buffer",
            fd: -1,
            reason,
        };
        if len == 0 || len > u32::MAX as usize {
            let reason = "a provided buffer holds 1 byte to 4 GiB - 1";
            return Err((invalid(reason), buf));
        }
        let mut p = lock(&self.provided);
        if p.room() == 0 {
            return Err((invalid("the port holds 4096 provided buffers already"), buf));
        }
        if let Err(e) = self.register_pool(&mut p) {
            return Err((e, buf));
        }
        p.add(buf, addr, len as u32, &self.available);
        Ok(())
    }

    /// Registers the kernel's provided buffer ring if it is not yet: before the first buffer, or
    /// before the first `recv_provided` (so that one started before any buffer finds an empty
    /// ring, and ends with `ENOBUFS` at once, as on the epoll backend).
    pub(crate) fn ensure_pool(&self) -> Result<(), Error> {
        self.register_pool(&mut lock(&self.provided))
    }

    fn register_pool(&self, p: &mut Provided<B>) -> Result<(), Error> {
        if p.ring.is_none() && !p.listed {
            match self.driver.register_buf_ring()? {
                Some(ring) => p.ring = Some(ring),
                None => p.listed = true,
            }
        }
        Ok(())
    }

    #[inline]
    fn lock(&self) -> Locked<'_, T, B> {
        Locked {
            guard: Some(lock(&self.ops)),
            deferred: Vec::new(),
        }
    }

    /// Every kernel feature the backend probed, with its answer.
    pub(crate) fn report(&self) -> Vec<Feature> {
        self.driver.report().to_vec()
    }

    /// The backend and why it was chosen.
    /// Whether `transmit_file` splices through a pipe here (io_uring), which the caller makes
    /// before any lock is taken.
    pub(crate) fn splices(&self) -> bool {
        self.driver.staged(Op::TransmitFile)
    }

    pub(crate) fn backend(&self) -> &BackendInfo {
        &self.info
    }

    /// Prepares a newly associated fd for the backend.
    pub(crate) fn attach(&self, fd: &FdEntry) -> Result<(), Error> {
        self.driver.attach(fd)
    }

    /// Takes a slot for an operation whose buffers are lent already, queues its request and (unless
    /// deferred) submits it. `reap` is called if the kernel asks for completions to be reaped before
    /// it takes more.
    pub(crate) fn submit_lent(
        &self,
        start: Start<'_, T>,
        op: Op,
        lent: Lent<B>,
        value: T,
        reap: &mut dyn FnMut(),
    ) -> Result<OpId, OpError<T, B>> {
        let raw = start.fd.map_or(-1, |f| f.raw());
        let refuse = |error: Error, lent: Lent<B>, value: T| {
            Err(OpError {
                error,
                value,
                data: lent.into_data(),
            })
        };
        if !self.driver.supports(op) {
            return refuse(Error::Unsupported { op: op.name() }, lent, value);
        }
        let mut locked = self.lock();
        let ops = locked.ops();
        if ops.closed {
            drop(locked);
            return refuse(Error::Closed, lent, value);
        }
        let index = match ops.free.pop() {
            Some(i) => i,
            None if ops.slots.len() >= MAX_SLOTS => {
                drop(locked);
                let reason = "more than 2^30 operations in flight on one port";
                return refuse(
                    Error::InvalidArgument {
                        op: op.name(),
                        fd: raw,
                        reason,
                    },
                    lent,
                    value,
                );
            }
            None => {
                ops.slots.push(Box::new(Slot {
                    generation: 0,
                    live: false,
                    cancel_requested: false,
                    restarts: 0,
                    resumed_connect: false,
                    fd_epoch: 0,
                    op: Op::Nop,
                    key: 0,
                    value: None,
                    repeat: None,
                    shots: 0,
                    lending: Lending::default(),
                    iov: IoVecs::default(),
                    fd: None,
                }));
                (ops.slots.len() - 1) as u32
            }
        };
        let generation = ops.generations.next();
        let slot = &mut ops.slots[index as usize];
        slot.generation = generation.get();
        slot.live = true;
        slot.cancel_requested = false;
        slot.restarts = 0;
        slot.resumed_connect = false;
        slot.fd_epoch = start
            .fd
            .map_or(0, |f| f.cancel_epoch.load(Ordering::Relaxed));
        slot.op = op;
        slot.key = start.key;
        slot.value = Some(value);
        slot.repeat = start.repeat;
        slot.shots = 0;
        slot.fd = start.fd.cloned();
        // A vectored operation brought its own iovec array: give the one kept here to this
        // thread's scratch, for its next vectored operation.
        let spare = match lent {
            Lent::Bufs { .. } => Some(std::mem::take(&mut slot.iov)),
            _ => None,
        };
        slot.lending.install(lent);
        let ud = user_data(index, generation.get());
        // SAFETY: we hold the op table's lock, so we are the submission queue's only producer; every
        // pointer in the request points into the slot (boxed: it never moves) or the buffers it
        // owns, which it keeps until `reap` takes this operation's completion; the port waits for
        // every operation in flight before it frees the slots.
        let pushed = unsafe {
            self.driver
                .push_op(op, start.fd.map(|f| &**f), &mut slot.lending, ud)
        };
        // Counted under the lock: `cancel_all_and_drain` either refused us or waits for us.
        ops.in_flight += 1;
        if let Some(fd) = start.fd {
            fd.pending.fetch_add(1, Ordering::Relaxed);
        }
        if pushed.is_ok() {
            self.maintain(&mut locked);
        }
        drop(locked);
        if let Some(spare) = spare {
            spare.recycle();
        }
        let id = OpId::new(index, generation);
        if let Err(entry) = pushed {
            self.push_when_room(&entry, id, reap);
        }
        if !start.defer {
            if let Err(e) = self.driver.submit(reap) {
                // The request stays queued; the next `io_uring_enter` (the leader's wait) submits it.
                tracing_hint(op.name(), raw, &e);
            }
        }
        Ok(id)
    }

    /// The submission queue was full: makes room and queues `entry` (operation `id`'s). If the
    /// operation was meant to be cancelled meanwhile (by `cancel`, its handle's drop, or `close`),
    /// its cancel follows it at once.
    fn push_when_room(&self, entry: &Entry, id: OpId, reap: &mut dyn FnMut()) {
        loop {
            if let Err(e) = self.driver.make_room(reap) {
                tracing_hint("submit", -1, &e);
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut locked = self.lock();
            // SAFETY: as in `submit_lent`: the lock is held, the entry's memory is the slot's.
            if unsafe { self.driver.push_entry(entry) } {
                let ops = locked.ops();
                let slot = &ops.slots[id.index()];
                let doomed = ops.closed
                    || slot.cancel_requested
                    || slot
                        .fd
                        .as_ref()
                        .is_some_and(|f| f.closing.load(Ordering::Relaxed));
                if doomed {
                    ops.cancels.push(PendingCancel::Op(id));
                    self.cancels_waiting.store(true, Ordering::Release);
                }
                self.maintain(&mut locked);
                return;
            }
        }
    }

    /// Queues what waits for the submission lock: pending cancellations (checked again now) and the
    /// wake-up poll's re-arm. Returns `false` if the submission queue filled up first.
    #[inline]
    fn maintain(&self, locked: &mut Locked<'_, T, B>) -> bool {
        if self.cancels_waiting.load(Ordering::Acquire) && !self.flush_cancels(locked) {
            return false;
        }
        if self.driver.needs_rearm() {
            // SAFETY: the caller holds the op table's lock.
            return unsafe { self.driver.rearm() };
        }
        true
    }

    fn flush_cancels(&self, locked: &mut Locked<'_, T, B>) -> bool {
        while let Some(&index) = locked.ops().restarts.last() {
            let slot = &mut locked.ops().slots[index as usize];
            if slot.live {
                let ud = user_data(index, slot.generation);
                let fd = slot.fd.as_deref();
                // SAFETY: as in `submit_lent`: the lock is held; the slot keeps the memory.
                if unsafe { self.driver.push_op(slot.op, fd, &mut slot.lending, ud) }.is_err() {
                    return false;
                }
                self.unsubmitted.store(true, Ordering::Release);
            }
            locked.ops().restarts.pop();
        }
        let features = self.driver.features();
        while let Some(next) = locked.ops().cancels.pop() {
            let ops = locked.ops();
            let target = match &next {
                PendingCancel::Op(id) => match ops.slots.get(id.index()) {
                    Some(s) if s.live && s.generation == id.generation().get() => {
                        Some(CancelTarget::Op(
                            user_data(id.index() as u32, s.generation),
                            s.fd.as_ref().map_or(-1, |f| f.raw()),
                        ))
                    }
                    _ => None,
                },
                PendingCancel::Fd(fd) if fd.pending.load(Ordering::Relaxed) == 0 => None,
                PendingCancel::Fd(fd) if features.cancel_fd => Some(CancelTarget::Fd(fd.raw())),
                PendingCancel::All if features.cancel_any => Some(CancelTarget::Any),
                // The kernel cannot match by fd or cancel everything: one cancel per live
                // operation, by its own id.
                PendingCancel::Fd(fd) => {
                    expand(ops, Some(fd));
                    None
                }
                PendingCancel::All => {
                    expand(ops, None);
                    None
                }
            };
            if let Some(target) = target {
                // SAFETY: the caller holds the op table's lock.
                if !unsafe { self.driver.push_cancel(target) } {
                    locked.ops().cancels.push(next);
                    return false;
                }
            }
            if let PendingCancel::Fd(fd) = next {
                locked.release_fd(fd);
            }
        }
        self.cancels_waiting.store(false, Ordering::Release);
        true
    }

    /// Operations started whose packet has not yet been placed.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().ops().in_flight
    }

    /// Submits what `batch` left queued.
    pub(crate) fn flush(&self, reap: &mut dyn FnMut()) {
        let mut queued = true;
        if self.driver.needs_rearm() || self.cancels_waiting.load(Ordering::Acquire) {
            queued = self.maintain(&mut self.lock());
        }
        self.submit_queued(queued, "batch", reap);
    }

    /// Reaps up to `max` operation completions and hands each one's packet to `place`; returns how
    /// many. The op table is locked once for the lot. `in_flight` drops after each packet is placed,
    /// so `close` never misses one.
    pub(crate) fn reap(
        &self,
        block: bool,
        max: usize,
        place: &mut dyn FnMut(Packet<T, B>),
    ) -> usize {
        let mut locked: Option<Locked<'_, T, B>> = None;
        let placed = self.driver.reap(block, max, &mut |c| {
            let locked = locked.get_or_insert_with(|| self.lock());
            match self.complete(locked, &c) {
                Some((mut packet, last)) => {
                    if let Some(hook) = self.hook.get() {
                        hook(&mut packet);
                    }
                    place(packet);
                    if last {
                        locked.ops().in_flight -= 1;
                    }
                    true
                }
                None => false,
            }
        });
        if self.driver.needs_rearm() || self.cancels_waiting.load(Ordering::Acquire) {
            let locked = locked.get_or_insert_with(|| self.lock());
            self.maintain(locked);
            // A re-armed wake-up poll or a cancel queued here must reach the kernel now: the
            // leader may be asleep waiting for exactly that.
            self.unsubmitted.store(true, Ordering::Release);
        }
        drop(locked);
        // A load first: the swap, a locked instruction, only when there is something to submit.
        if self.unsubmitted.load(Ordering::Acquire)
            && self.unsubmitted.swap(false, Ordering::AcqRel)
        {
            // Requests queued while reaping (operations started again, the wake-up poll, cancels):
            // submit them. No reaping in place from here (the caller's `place` takes at most
            // `max`): if the kernel wants completions reaped first, the next reap or the leader's
            // wait submits them.
            match self.driver.try_submit() {
                Ok(true) => {}
                Ok(false) => self.unsubmitted.store(true, Ordering::Release),
                Err(e) => tracing_hint("restart", -1, &e),
            }
        }
        placed
    }

    /// Turns a completion into its packet and whether it is the operation's last, which frees the
    /// slot; `None` if the operation goes on without a packet (started again, its next stage).
    fn complete(
        &self,
        locked: &mut Locked<'_, T, B>,
        c: &Completion,
    ) -> Option<(Packet<T, B>, bool)> {
        let index = (c.user_data & 0xffff_ffff) as usize;
        let ops = locked.ops();
        let slot = ops.slots.get_mut(index)?;
        if !slot.live || slot.generation as u32 != (c.user_data >> 32) as u32 {
            debug_assert!(
                false,
                "a completion for no live operation: {:#x}",
                c.user_data
            );
            return None;
        }
        if let Some(repeat) = slot.repeat {
            let more = c.flags & CQE_F_MORE != 0;
            let accepted = slot.op == Op::AcceptMulti && c.result >= 0;
            if more || c.result > 0 || accepted {
                // A message of an operation with many packets: its own packet, with its buffer
                // and a clone of the value; the slot stays. A last completion that carries data
                // (the kernel ended the request for its own reasons: a full completion queue)
                // is not the operation's end: its data goes out the same way and the request
                // is started again under the same id.
                let generation = std::num::NonZeroU64::new(slot.generation).expect("live: not 0");
                let id = OpId::new(index as u32, generation);
                let (bytes, data) = if accepted {
                    (0, accepted_socket(c.result))
                } else {
                    let buf = if c.flags & CQE_F_BUFFER != 0 {
                        lock(&self.provided).take((c.flags >> 16) as u16)
                    } else {
                        None
                    };
                    (
                        usize::try_from(c.result).unwrap_or(0),
                        buf.map_or(Data::None, Data::Buf),
                    )
                };
                let packet = Packet {
                    key: slot.key,
                    bytes,
                    status: match c.result {
                        r if r < 0 => Status::from_errno(-r),
                        _ => Status::SUCCESS,
                    },
                    op: Some(id),
                    value: repeat(
                        slot.value.as_ref().expect("a live slot holds its value"),
                        slot.shots,
                    ),
                    data,
                };
                slot.shots += 1;
                if !more {
                    let stopped = slot.cancel_requested
                        || ops.closed
                        || slot.fd.as_ref().is_some_and(|f| {
                            f.closing.load(Ordering::Relaxed)
                                || f.cancel_epoch.load(Ordering::Relaxed) != slot.fd_epoch
                        });
                    self.push_stage(slot, &mut ops.restarts, index, c.user_data);
                    if stopped {
                        // Its cancel may have found nothing in the kernel between the two
                        // requests: one follows the new request (queued after it).
                        ops.cancels.push(PendingCancel::Op(id));
                        self.cancels_waiting.store(true, Ordering::Release);
                    }
                }
                return Some((packet, false));
            }
        }
        if c.result == -libc::ECANCELED
            && self.caller_owned
            && !slot.cancel_requested
            && !ops.closed
            && slot.restarts < MAX_RESTARTS
            && !slot.fd.as_ref().is_some_and(|f| {
                f.closing.load(Ordering::Relaxed)
                    || f.cancel_epoch.load(Ordering::Relaxed) != slot.fd_epoch
            })
        {
            // Nobody cancelled it: the kernel ended it because the thread that submitted it
            // exited, before it did anything (a request that has begun ends with its result). Start
            // it again, from the same slot, so it outlives that thread as it would on Windows.
            slot.restarts += 1;
            if slot.op == Op::Connect {
                // The socket is still connecting: connecting again would say EALREADY. Wait for
                // it to be writable instead; its SO_ERROR is then the connect's result.
                slot.op = Op::Poll(Interest::WRITABLE);
                slot.resumed_connect = true;
            }
            // SAFETY: as in `submit_lent`: the lock is held; the slot still holds everything the
            // request points to.
            match unsafe {
                self.driver
                    .push_op(slot.op, slot.fd.as_deref(), &mut slot.lending, c.user_data)
            } {
                Ok(()) => self.unsubmitted.store(true, Ordering::Release),
                Err(_) => {
                    ops.restarts.push(index as u32);
                    self.cancels_waiting.store(true, Ordering::Release);
                }
            }
            return None;
        }
        let mut result = c.result;
        if let Op::RecvProvided { .. } = slot.op {
            // The provided buffer the receive used: named by the completion (io_uring) or by the
            // slot (epoll); out of the pool and into the packet.
            let picked = std::mem::take(&mut slot.lending.area.picked);
            let bid = if c.flags & CQE_F_BUFFER != 0 {
                Some((c.flags >> 16) as u16)
            } else {
                picked.checked_sub(1).map(|b| b as u16)
            };
            if let Some(buf) = bid.and_then(|b| lock(&self.provided).take(b)) {
                slot.lending.lent = Lent::Picked(buf);
            }
        }
        if self.driver.staged(slot.op) {
            let stopped = slot.cancel_requested
                || ops.closed
                || slot.fd.as_ref().is_some_and(|f| {
                    f.closing.load(Ordering::Relaxed)
                        || f.cancel_epoch.load(Ordering::Relaxed) != slot.fd_epoch
                });
            // A stage the kernel interrupted ends with EINTR or ERESTARTSYS rather than
            // ECANCELED: a splice blocked in an io-wq worker is signalled, for a cancel or for the
            // exit of the thread that submitted it; a poll ends with ECANCELED.
            let interrupted =
                result == -libc::EINTR || result == -ERESTARTSYS || result == -libc::ECANCELED;
            if stopped && result < 0 {
                // Cancelled (or its handle or port closing) while a stage was in the kernel:
                // whatever error that stage ended with, the operation was cancelled, once.
                result = -libc::ECANCELED;
            } else if interrupted && slot.restarts < MAX_RESTARTS {
                // Nobody cancelled it: its submitting thread exited. An interrupted stage has
                // moved nothing (a splice that moved bytes returns their count): start the same
                // stage again, so the operation outlives that thread as it would on Windows.
                slot.restarts += 1;
                self.push_stage(slot, &mut ops.restarts, index, c.user_data);
                return None;
            } else {
                if result == -ERESTARTSYS {
                    // Never a program's to see.
                    result = -libc::EINTR;
                }
                match slot.lending.transmit_step(result) {
                    // Cancelled between two stages (the cancel found no stage in the kernel, or
                    // found the one that just ended): it ends here, as if the kernel had ended
                    // the stage.
                    None if stopped => result = -libc::ECANCELED,
                    None => {
                        // The next stage, under the same `user_data`: a cancel aimed at this
                        // operation reaches whichever stage is in the kernel.
                        self.push_stage(slot, &mut ops.restarts, index, c.user_data);
                        return None;
                    }
                    Some(r) => result = r,
                }
            }
        }
        if slot.resumed_connect {
            slot.resumed_connect = false;
            slot.op = Op::Connect;
            if result >= 0 {
                result = socket_error(slot.fd.as_ref().map_or(-1, |f| f.raw()));
            }
        }
        let (bytes, status, data, iov) = slot.lending.finish(result, slot.op);
        if iov.has_capacity() {
            slot.iov = iov;
        }
        slot.live = false;
        slot.repeat = None;
        let value = slot.value.take().expect("a live slot holds its value");
        let fd = slot.fd.take();
        let generation = std::num::NonZeroU64::new(slot.generation).expect("live: not 0");
        let key = slot.key;
        ops.free.push(index as u32);
        if let Some(fd) = fd {
            fd.pending.fetch_sub(1, Ordering::Relaxed);
            // The last operation on a dropped handle closes the fd, once the lock is released.
            locked.release_fd(fd);
        }
        let packet = Packet {
            key,
            bytes,
            status,
            op: Some(OpId::new(index as u32, generation)),
            value,
            data,
        };
        Some((packet, true))
    }

    /// Queues the request a staged operation's slot now builds (its next stage, or the same one
    /// again), under its own `user_data`; one that finds the submission queue full waits in
    /// `restarts` for the next holder of the lock. The caller holds the op table's lock.
    fn push_stage(&self, slot: &mut Slot<T, B>, restarts: &mut Vec<u32>, index: usize, ud: u64) {
        // SAFETY: as in `submit_lent`: the caller holds the lock; the slot holds everything the
        // request points to.
        match unsafe {
            self.driver
                .push_op(slot.op, slot.fd.as_deref(), &mut slot.lending, ud)
        } {
            Ok(()) => self.unsubmitted.store(true, Ordering::Release),
            Err(_) => {
                restarts.push(index as u32);
                self.cancels_waiting.store(true, Ordering::Release);
            }
        }
    }

    /// The leader's wait in the kernel until a completion, `deadline`, or a [`wake`](Self::wake).
    /// Queues what waits for the submission lock first; the wake-up must be armed before it sleeps.
    /// `reap` reaps in place when the kernel needs room.
    pub(crate) fn wait(&self, deadline: Option<Instant>, reap: &mut dyn FnMut()) {
        let mut deadline = deadline;
        if self.driver.needs_rearm() || self.cancels_waiting.load(Ordering::Acquire) {
            let ready = {
                let mut locked = self.lock();
                self.maintain(&mut locked)
            };
            if !ready {
                if let Err(e) = self.driver.make_room(reap) {
                    tracing_hint("submit", -1, &e);
                }
                let mut locked = self.lock();
                if !self.maintain(&mut locked) {
                    // Still no room: do not sleep long without a way to be woken.
                    let soon = Instant::now() + Duration::from_millis(1);
                    deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
                }
            }
        }
        if self.driver.wait(deadline, true).is_err() {
            // Nothing sensible to do about a failing io_uring_enter but not to spin on it.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Makes the thread in [`wait`](Self::wait) return.
    pub(crate) fn wake(&self) {
        self.driver.wake();
    }

    /// Queues `cancel` and submits it.
    fn request_cancel(
        &self,
        mut locked: Locked<'_, T, B>,
        cancel: PendingCancel,
        reap: &mut dyn FnMut(),
    ) {
        locked.ops().cancels.push(cancel);
        self.cancels_waiting.store(true, Ordering::Release);
        let queued = self.maintain(&mut locked);
        drop(locked);
        self.submit_queued(queued, "cancel", reap);
    }

    /// Submits what is queued; if `queued` is false (the submission queue was full when requests
    /// waiting for the lock were to be queued), makes room and queues them first. What still finds
    /// no room waits in the op table for the next holder of the lock (a submission, a reap, the
    /// leader's wait).
    fn submit_queued(&self, queued: bool, what: &str, reap: &mut dyn FnMut()) {
        if !queued {
            if let Err(e) = self.driver.make_room(reap) {
                tracing_hint(what, -1, &e);
            }
            let mut locked = self.lock();
            self.maintain(&mut locked);
        }
        if let Err(e) = self.driver.submit(reap) {
            // Queued all the same: the next `io_uring_enter` submits it.
            tracing_hint(what, -1, &e);
        }
    }

    /// Requests cancellation of `id` if it is in flight.
    pub(crate) fn cancel(&self, id: OpId, reap: &mut dyn FnMut()) -> Result<(), Error> {
        let mut locked = self.lock();
        match locked.ops().slots.get_mut(id.index()) {
            Some(s) if s.live && s.generation == id.generation().get() => {
                s.cancel_requested = true;
            }
            _ => return Err(Error::NotFound { id }),
        }
        self.request_cancel(locked, PendingCancel::Op(id), reap);
        Ok(())
    }

    /// Requests cancellation of every operation on `fd`.
    pub(crate) fn cancel_fd(&self, fd: &Arc<FdEntry>, reap: &mut dyn FnMut()) {
        let locked = self.lock();
        if fd.pending.load(Ordering::Relaxed) == 0 {
            return;
        }
        // Under the lock: every operation in flight on the fd started before this.
        fd.cancel_epoch.fetch_add(1, Ordering::Relaxed);
        self.request_cancel(locked, PendingCancel::Fd(fd.clone()), reap);
    }

    /// Cancels everything in flight and hands each packet to `place` until nothing is left. Cancels
    /// are repeated while operations remain (one that was running in a worker completes by itself).
    pub(crate) fn cancel_all_and_drain(&self, place: &mut dyn FnMut(Packet<T, B>)) {
        self.lock().ops().closed = true;
        let mut next_cancel = Instant::now();
        while self.in_flight() > 0 {
            if Instant::now() >= next_cancel {
                let locked = self.lock();
                self.request_cancel(locked, PendingCancel::All, &mut || {
                    self.reap(true, usize::MAX, place);
                });
                next_cancel = Instant::now() + Duration::from_millis(10);
            }
            // Not as the leader: a wake-up meant for the leader stays pending (see `uring/`).
            let _ = self
                .driver
                .wait(Some(Instant::now() + Duration::from_millis(10)), false);
            self.reap(true, usize::MAX, place);
        }
    }
}

/// The socket a multishot accept created (`fd`, the kernel's result), and its peer's address.
fn accepted_socket<B>(fd: i32) -> Data<B> {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` is the descriptor the kernel just created for the accepted connection; nothing
    // else owns it.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let peer = socket2::SockRef::from(&socket)
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket());
    Data::Accepted(socket, peer.map(Box::new))
}

/// A connecting socket's outcome once it is writable: 0, or the negated `SO_ERROR`.
pub(crate) fn socket_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes of the sizes given, for the length of the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    match rc {
        0 => -err,
        _ => -std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    }
}

/// Adds one cancel per live operation on `fd` (on any fd, with `None`), by its own id.
fn expand<T, B>(ops: &mut Ops<T, B>, fd: Option<&Arc<FdEntry>>) {
    let matching = |s: &Slot<T, B>| {
        s.live && fd.is_none_or(|f| s.fd.as_ref().is_some_and(|g| Arc::ptr_eq(f, g)))
    };
    for i in 0..ops.slots.len() {
        let s = &ops.slots[i];
        if matching(s) {
            let generation = std::num::NonZeroU64::new(s.generation).expect("live: not 0");
            ops.cancels
                .push(PendingCancel::Op(OpId::new(i as u32, generation)));
        }
    }
}

/// Submission errors leave the request queued for the next `io_uring_enter`; nothing is lost, but
/// the program may want to know.
fn tracing_hint(op: &str, fd: RawFd, e: &std::io::Error) {
    tracing::warn!(op, fd, error = %e, "io_uring_enter failed; the request stays queued for the next one");
}

impl<T, B: IoBuf> Drop for Io<T, B> {
    /// The last safety net: if operations are still in flight (every handle and port dropped without
    /// a `close` that waited), cancel them and wait for the kernel before the slots are freed.
    fn drop(&mut self) {
        if self.in_flight() > 0 {
            self.cancel_all_and_drain(&mut drop);
        }
    }
}
