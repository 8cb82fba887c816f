//! The epoll backend: where io_uring is refused (Docker's and containerd's default seccomp
//! profiles, `kernel.io_uring_disabled`, gVisor), the same operations, packets and errors through
//! readiness and a thread pool.
//!
//! - **Sockets, pipes and other pollable fds** are put in non-blocking mode when they are associated
//!   (their flags are restored when the handle goes) and registered once with an edge-triggered
//!   epoll. An operation is tried at once; if it would block it waits in its fd's queue for its
//!   direction (reads, writes, polls), in order. An epoll event runs the fd's waiting operations
//!   until one would block again. Trying, queueing and running happen under the fd's lock, so an
//!   event that arrives after an attempt failed always finds the operation queued.
//! - **Regular files, block devices and fds epoll refuses** are never added to epoll. Reads and
//!   writes are tried at once with `RWF_NOWAIT` (page-cached data needs no thread), else, like
//!   `fsync`, they run on a bounded pool of threads (`pool.rs`).
//! - **Timers** are a heap behind one timerfd (`timers.rs`); `nop` completes at once.
//!
//! Operations queued under the op table's lock ([`Driver::push_op`]) are started by one thread at
//! a time, in queue order, together with cancellations, so a cancel reaches exactly the operations
//! queued before it, as on io_uring. An operation is *claimed* by the one thread that runs it: a
//! cancel takes it out of its queue (fd queue, pool queue, timer heap) while it is waiting and
//! completes it with `ECANCELED`, and finds nothing once it runs; it then completes with its real
//! result. Every operation ends in exactly one completion, queued in the backend's completion
//! queue and reaped like io_uring's.
//!
//! Nothing here belongs to the thread that started an operation: whichever thread handles the fd's
//! next event, or a pool thread, runs it.
//!
//! # Who waits, and the wake-up
//!
//! The port's leader blocks in `epoll_wait`; a `get` that finds nothing queued polls epoll without
//! blocking. A `post` that must wake the leader writes to an eventfd in the epoll set (edge
//! triggered); a pool thread whose completion is queued while the leader sleeps does the same. The
//! rules of `../wake.rs` apply: a wake-up taken by a thread other than the leader is written again.

mod pool;
mod run;
mod timers;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::error::Error;
use crate::op::{Lending, Op};
use crate::sync::{lock, lock_or_skip, AtomicUsize, Mutex, Ordering};

use super::claim::Waiting;
use super::fd::FdEntry;
use super::wake::{LeaderSleep, WakeState};
use super::{CancelTarget, Completion, Config, Feature, Features};

use pool::Pool;
use run::{Outcome, Sqe, Target};
use timers::Timers;

/// Token of the wake-up eventfd in the epoll set.
const WAKE: u64 = u64::MAX;
/// Token of the timerfd.
const TIMER: u64 = u64::MAX - 1;
/// Events taken from the kernel per `epoll_wait`.
const EVENTS: usize = 128;

/// How the epoll backend sees an associated fd.
pub(crate) enum Attached {
    /// Registered with epoll.
    Poll(Arc<Pollable>),
    /// Not pollable: a regular file, block device or directory, or an fd epoll refuses.
    File,
}

impl Attached {
    /// The handle is gone and so is every operation on the fd: restore its flags and take it out
    /// of epoll, before it is closed.
    pub(crate) fn detach(&self) {
        if let Attached::Poll(p) = self {
            p.detach();
        }
    }
}

/// A pollable fd's registration and its waiting operations.
pub(crate) struct Pollable {
    fd: RawFd,
    token: u64,
    socket: bool,
    /// The fd's status flags before it was associated (restored when the handle goes), if
    /// association changed them.
    saved_flags: Option<i32>,
    epfd: Arc<OwnedFd>,
    registry: Weak<Mutex<HashMap<RawFd, Arc<Pollable>>>>,
    queues: Mutex<Queues>,
}

#[derive(Default)]
struct Queues {
    readers: Waiting<Sqe>,
    writers: Waiting<Sqe>,
    pollers: Waiting<Sqe>,
    /// A read would block and no event has come since: a new read waits for the next event
    /// without a first try (a ping-pong saves a failing `recv` per round). Set after `EAGAIN`,
    /// cleared by an event, both under the fd's lock, so an event after the `EAGAIN` always runs
    /// what waits.
    read_blocked: bool,
    /// The same for writes.
    write_blocked: bool,
}

impl Pollable {
    /// Starts `sqe`: runs it now unless operations of its direction are waiting already (order is
    /// kept), else queues it for the fd's next event.
    fn start(&self, mut sqe: Sqe, shared: &Shared) {
        let mut q = lock(&self.queues);
        if sqe.unordered() {
            // Not behind the others: `MSG_DONTWAIT` ends now (`EAGAIN` if it would block), an
            // error-queue read waits with the polls.
            match attempt(&mut sqe, shared) {
                Some(r) => shared.finish(&sqe, r),
                None => q.pollers.push(sqe),
            }
            return;
        }
        match sqe.reads() {
            Some(reads) => {
                let q = &mut *q;
                let (list, blocked) = if reads {
                    (&mut q.readers, &mut q.read_blocked)
                } else {
                    (&mut q.writers, &mut q.write_blocked)
                };
                if list.is_empty() && !*blocked {
                    if let Some(r) = attempt(&mut sqe, shared) {
                        shared.finish(&sqe, r);
                        return;
                    }
                    *blocked = true;
                }
                list.push(sqe);
            }
            None => match attempt(&mut sqe, shared) {
                Some(r) => shared.finish(&sqe, r),
                None => q.pollers.push(sqe),
            },
        }
    }

    /// An epoll event: runs the waiting operations it may settle, each direction until one would
    /// block again.
    fn ready(&self, events: u32, shared: &Shared) {
        let hangup = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        let attempt = |sqe: &mut Sqe| attempt(sqe, shared);
        let done = |sqe: Sqe, r| shared.finish(&sqe, r);
        let mut q = lock(&self.queues);
        if events & ((libc::EPOLLIN | libc::EPOLLRDHUP) as u32 | hangup) != 0 {
            q.readers.run_front(attempt, done);
            // Whatever still waits found the fd would block.
            q.read_blocked = !q.readers.is_empty();
        }
        if events & (libc::EPOLLOUT as u32 | hangup) != 0 {
            q.writers.run_front(attempt, done);
            q.write_blocked = !q.writers.is_empty();
        }
        if !q.pollers.is_empty() {
            q.pollers.run_all(attempt, done);
        }
    }

    /// Takes the waiting operations `pick` chooses out of the queues, completing them with
    /// `ECANCELED`; returns how many.
    fn cancel(&self, shared: &Shared, pick: impl Fn(&Sqe) -> bool) -> usize {
        let mut q = lock(&self.queues);
        let done = |sqe: Sqe, r| shared.push(sqe.user_data, r);
        q.readers.cancel(&pick, done)
            + q.writers.cancel(&pick, done)
            + q.pollers.cancel(&pick, done)
    }

    fn detach(&self) {
        // SAFETY: takes no pointers (the event argument may be null for EPOLL_CTL_DEL).
        unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                self.fd,
                std::ptr::null_mut(),
            )
        };
        if let Some(flags) = self.saved_flags {
            // SAFETY: F_SETFL takes an int; the fd is still open (its entry closes it after this).
            unsafe { libc::fcntl(self.fd, libc::F_SETFL, flags) };
        }
        if let Some(registry) = self.registry.upgrade() {
            let mut map = lock(&registry);
            if map.get(&self.fd).is_some_and(|p| p.token == self.token) {
                map.remove(&self.fd);
            }
        }
    }
}

/// One attempt at a waiting operation on a pollable fd, without blocking: `Some(result)` once it
/// is done, `None` if it would block. A multishot receive runs on: each message's completion is
/// queued as it comes, until the operation ends or the socket would block (epoll's events are
/// edge-triggered: it must be drained).
fn attempt(sqe: &mut Sqe, shared: &Shared) -> Option<i32> {
    loop {
        match sqe.run(true) {
            Outcome::Done(r) => return Some(r),
            Outcome::Again => return None,
            Outcome::More(r, flags) => shared.push_flags(sqe.user_data, r, flags),
        }
    }
}

/// What the pool's threads share with the driver: the completion queue and the wake-up.
pub(super) struct Shared {
    cq: Mutex<VecDeque<Completion>>,
    /// Completions queued (readable without the lock).
    cq_len: AtomicUsize,
    /// Whether the port's leader is in (or about to enter) `epoll_wait`.
    leader: LeaderSleep,
    wake: WakeState,
    wake_fd: OwnedFd,
}

impl Shared {
    /// Queues an operation's completion.
    fn push(&self, user_data: u64, result: i32) {
        self.push_flags(user_data, result, 0);
    }

    /// Queues the last completion of `sqe`, with its flags.
    fn finish(&self, sqe: &Sqe, result: i32) {
        self.push_flags(sqe.user_data, result, sqe.flags);
    }

    /// Queues a completion with flags (io_uring's `IORING_CQE_F_*`).
    fn push_flags(&self, user_data: u64, result: i32, flags: u32) {
        let mut cq = lock(&self.cq);
        cq.push_back(Completion {
            user_data,
            result,
            flags,
        });
        // Under the lock: a reaper never sees the entry before the count.
        self.cq_len.fetch_add(1, Ordering::SeqCst);
    }

    /// Completions were queued by a thread that will not reap them: if the leader is asleep, wake
    /// it to reap them (see [`LeaderSleep`]).
    fn notify(&self) {
        if self.leader.must_wake() {
            self.wake.send(|| self.write_wake());
        }
    }

    fn write_wake(&self) {
        super::wake::signal(self.wake_fd.as_raw_fd());
    }
}

/// What waits to be started, in order.
enum Queued {
    Op(Sqe),
    Cancel(CancelTarget),
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    epfd: Arc<OwnedFd>,
    timers: Timers,
    /// Operations and cancels queued under the op table's lock, not yet started.
    sq: Mutex<Vec<Queued>>,
    /// Held by the one thread that starts what is queued (it keeps the batch it works on).
    starting: Mutex<Vec<Queued>>,
    /// Pollable fds by number (epoll events carry the number and a registration count).
    fds: Arc<Mutex<HashMap<RawFd, Arc<Pollable>>>>,
    registrations: AtomicUsize,
    /// One reaper of the completion queue at a time.
    reaping: Mutex<()>,
    pool: Pool,
    report: Vec<Feature>,
}

fn unavailable(what: &str) -> Error {
    let source = io::Error::last_os_error();
    Error::Unavailable {
        reason: format!("epoll backend: {what} failed: {source}"),
        source,
    }
}

/// Takes ownership of a new fd, or reports what failed.
fn owned(raw: RawFd, what: &str) -> Result<OwnedFd, Error> {
    if raw < 0 {
        return Err(unavailable(what));
    }
    // SAFETY: `raw` was just created by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn epoll_add(epfd: RawFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is valid for the length of the call.
    if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Driver {
    pub(crate) fn new(_config: &Config) -> Result<Driver, Error> {
        // SAFETY: no pointers; a non-negative return is a new fd.
        let epfd = owned(
            unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
            "epoll_create1",
        )?;
        // SAFETY: as above.
        let wake_fd = owned(
            unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
            "creating the port's wake-up eventfd",
        )?;
        // SAFETY: as above.
        let timer_fd = owned(
            unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
                )
            },
            "timerfd_create",
        )?;
        let add = |fd: RawFd, events: i32, token: u64, what: &str| {
            epoll_add(epfd.as_raw_fd(), fd, events as u32, token).map_err(|source| {
                Error::Unavailable {
                    reason: format!("epoll backend: registering the {what} failed: {source}"),
                    source,
                }
            })
        };
        // Edge-triggered: every write is one event, taken by one thread (see `../wake.rs`).
        add(
            wake_fd.as_raw_fd(),
            libc::EPOLLIN | libc::EPOLLET,
            WAKE,
            "wake-up eventfd",
        )?;
        add(timer_fd.as_raw_fd(), libc::EPOLLIN, TIMER, "timerfd")?;
        let shared = Arc::new(Shared {
            cq: Mutex::new(VecDeque::new()),
            cq_len: AtomicUsize::new(0),
            leader: LeaderSleep::default(),
            wake: WakeState::new(),
            wake_fd,
        });
        shared.wake.rearmed();
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Enough threads to keep a device's queue as deep as io_uring would (64 reads in flight),
        // more on large machines; idle ones exit.
        let pool = Pool::new(shared.clone(), (4 * cpus).clamp(64, 256));
        let report = vec![
            Feature::new(
                "epoll (edge-triggered)",
                true,
                "sockets, pipes and other pollable fds: tried at once, then on readiness",
            ),
            Feature::new(
                "thread pool",
                true,
                "regular files, block devices, fsync: tried at once with RWF_NOWAIT, else on one of \
                 up to 64 threads (4 per CPU on more than 16 CPUs, at most 256)",
            ),
            Feature::new("timerfd", true, "timers (a heap behind one timerfd)"),
            Feature::new("eventfd", true, "the wake-up of the thread waiting in epoll_wait"),
        ];
        Ok(Driver {
            shared,
            epfd: Arc::new(epfd),
            timers: Timers::new(timer_fd),
            sq: Mutex::new(Vec::new()),
            starting: Mutex::new(Vec::new()),
            fds: Arc::new(Mutex::new(HashMap::new())),
            registrations: AtomicUsize::new(0),
            reaping: Mutex::new(()),
            pool,
            report,
        })
    }

    /// Registers a newly associated fd with epoll in non-blocking mode, unless it is a regular
    /// file, a block device or a directory, or epoll refuses it.
    pub(crate) fn attach(&self, entry: &FdEntry) -> Result<(), Error> {
        let fd = entry.raw();
        let kind = entry.file_type;
        if matches!(kind, libc::S_IFREG | libc::S_IFBLK | libc::S_IFDIR) {
            let _ = entry.epoll.set(Attached::File);
            return Ok(());
        }
        let n = self.registrations.fetch_add(1, Ordering::Relaxed) as u64;
        let token = (n << 32) | u64::from(fd as u32);
        let events = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        if let Err(e) = epoll_add(self.epfd.as_raw_fd(), fd, events as u32, token) {
            if e.raw_os_error() == Some(libc::EPERM) {
                // Not pollable: the pool runs its operations.
                let _ = entry.epoll.set(Attached::File);
                return Ok(());
            }
            return Err(Error::Register { fd, source: e });
        }
        // SAFETY: F_GETFL takes no argument.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        let saved_flags = (flags >= 0 && flags & libc::O_NONBLOCK == 0).then_some(flags);
        if let Some(flags) = saved_flags {
            // SAFETY: F_SETFL takes an int.
            if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
                let source = io::Error::last_os_error();
                // SAFETY: takes no pointers (the event may be null for EPOLL_CTL_DEL).
                unsafe {
                    libc::epoll_ctl(
                        self.epfd.as_raw_fd(),
                        libc::EPOLL_CTL_DEL,
                        fd,
                        std::ptr::null_mut(),
                    )
                };
                return Err(Error::Register { fd, source });
            }
        }
        let pollable = Arc::new(Pollable {
            fd,
            token,
            socket: kind == libc::S_IFSOCK,
            saved_flags,
            epfd: self.epfd.clone(),
            registry: Arc::downgrade(&self.fds),
            queues: Mutex::new(Queues::default()),
        });
        lock(&self.fds).insert(fd, pollable.clone());
        let _ = entry.epoll.set(Attached::Poll(pollable));
        Ok(())
    }

    pub(crate) fn report(&self) -> &[Feature] {
        &self.report
    }

    pub(crate) fn features(&self) -> Features {
        Features {
            cancel_fd: true,
            cancel_any: true,
            multishot_poll: true,
            recv_multishot: true,
            coop_taskrun: false,
        }
    }

    #[inline]
    pub(crate) fn supports(&self, _op: Op) -> bool {
        true
    }

    /// Queues `op` to be started by [`submit`](Self::submit) (or the leader's wait).
    ///
    /// # Safety
    ///
    /// As `uring::Driver::push_op`: the caller holds the op table's lock, and `lending` stays at
    /// its address, untouched, until the operation's completion is reaped.
    pub(crate) unsafe fn push_op<B>(
        &self,
        op: Op,
        fd: Option<&FdEntry>,
        lending: &mut Lending<B>,
        user_data: u64,
    ) {
        let target = match fd.and_then(|f| f.epoll.get()) {
            None if fd.is_none() => Target::None,
            Some(Attached::Poll(p)) => Target::Poll(p.clone()),
            _ => Target::File {
                direct: fd.is_some_and(|f| f.direct),
            },
        };
        let raw = fd.map_or(-1, FdEntry::raw);
        let sqe = Sqe::build(op, raw, target, lending, user_data);
        lock(&self.sq).push(Queued::Op(sqe));
    }

    /// Queues a cancellation, started in order with the operations.
    ///
    /// # Safety
    ///
    /// None beyond the caller holding the op table's lock (it keeps the order).
    pub(crate) unsafe fn push_cancel(&self, target: CancelTarget) -> bool {
        lock(&self.sq).push(Queued::Cancel(target));
        true
    }

    /// Starts what is queued, in order, unless another thread is doing so (it then starts ours
    /// too: it looks again after letting go).
    fn start_queued(&self) {
        loop {
            // (A batch a panic left has nothing half done: its operations are moved out one by
            // one, so a poisoned lock is carried on with.)
            let Some(mut batch) = lock_or_skip(&self.starting, false) else {
                return;
            };
            loop {
                std::mem::swap(&mut *lock(&self.sq), &mut *batch);
                if batch.is_empty() {
                    break;
                }
                for queued in batch.drain(..) {
                    match queued {
                        Queued::Op(sqe) => self.start(sqe),
                        Queued::Cancel(target) => self.cancel(target),
                    }
                }
            }
            drop(batch);
            if lock(&self.sq).is_empty() {
                return;
            }
        }
    }

    fn start(&self, mut sqe: Sqe) {
        let shared = &*self.shared;
        match (&sqe.target, sqe.op) {
            (_, Op::Nop) => shared.push(sqe.user_data, 0),
            (_, Op::Timer) => match sqe.mem {
                run::Mem::Timer(after) => self.timers.add(sqe.user_data, after),
                _ => unreachable!("a timer lends its duration"),
            },
            // Never waits, whatever else waits on the fd (it is how a program ends a connection
            // whose send is stuck).
            (_, Op::Shutdown(_)) => {
                let r = match sqe.run(true) {
                    Outcome::Done(r) | Outcome::More(r, _) => r,
                    Outcome::Again => -libc::EAGAIN,
                };
                shared.push(sqe.user_data, r);
            }
            (Target::Poll(p), op) if !matches!(op, Op::Fsync { .. }) => {
                p.clone().start(sqe, shared)
            }
            // A file that epoll does not poll is always ready.
            (_, Op::Poll(_)) => {
                let r = match sqe.run(true) {
                    Outcome::Done(r) | Outcome::More(r, _) => r,
                    Outcome::Again => 0,
                };
                shared.push(sqe.user_data, r);
            }
            _ if sqe.nowait_first() => match sqe.run(true) {
                Outcome::Done(r) | Outcome::More(r, _) => shared.push(sqe.user_data, r),
                Outcome::Again => self.pool.push(sqe),
            },
            _ => self.pool.push(sqe),
        }
    }

    fn pollable(&self, fd: RawFd) -> Option<Arc<Pollable>> {
        lock(&self.fds).get(&fd).cloned()
    }

    /// A cancellation, in its place among the operations: what it targets that is still waiting
    /// ends with `ECANCELED`; what is running ends with its result.
    fn cancel(&self, target: CancelTarget) {
        let shared = &*self.shared;
        match target {
            CancelTarget::Op(user_data, fd) => {
                let pick = |s: &Sqe| s.user_data == user_data;
                let found = self
                    .pollable(fd)
                    .is_some_and(|p| p.cancel(shared, pick) > 0);
                if !found && self.pool.cancel(pick) == 0 {
                    self.timers.cancel(shared, |ud| ud == user_data);
                }
            }
            CancelTarget::Fd(fd) => {
                if let Some(p) = self.pollable(fd) {
                    p.cancel(shared, |_| true);
                }
                self.pool.cancel(|s| s.fd == fd);
            }
            CancelTarget::Any => {
                let all: Vec<Arc<Pollable>> = lock(&self.fds).values().cloned().collect();
                for p in all {
                    p.cancel(shared, |_| true);
                }
                self.pool.cancel(|_| true);
                self.timers.cancel(shared, |_| true);
            }
        }
    }

    /// Starts what is queued; completions that came of it are reaped at once (`reap`), so that
    /// their packets reach the port without waking the leader.
    pub(crate) fn submit(&self, reap: &mut dyn FnMut()) -> io::Result<()> {
        self.start_queued();
        if self.shared.cq_len.load(Ordering::SeqCst) > 0 {
            reap();
        }
        Ok(())
    }

    /// Starts what is queued, without reaping: a sleeping leader is woken for what completed.
    pub(crate) fn try_submit(&self) -> io::Result<bool> {
        self.start_queued();
        if self.shared.cq_len.load(Ordering::SeqCst) > 0 {
            self.shared.notify();
        }
        Ok(true)
    }

    /// The queue is never full.
    pub(crate) fn make_room(&self, reap: &mut dyn FnMut()) -> io::Result<()> {
        self.submit(reap)
    }

    /// Starts what is queued, then waits in `epoll_wait` until an event, `deadline` or a wake-up,
    /// unless completions are queued already; handles the events it gets. The port's leader calls
    /// it with `leader` set; the close drain with a deadline.
    pub(crate) fn wait(&self, deadline: Option<Instant>, leader: bool) -> io::Result<()> {
        self.start_queued();
        let shared = &*self.shared;
        let queued = || shared.cq_len.load(Ordering::SeqCst);
        let may_block = if leader {
            shared.leader.may_sleep(queued)
        } else {
            queued() == 0
        };
        let timeout = if !may_block {
            0
        } else {
            match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    // Rounded up: never return before the deadline.
                    i32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
                }
            }
        };
        let result = self.poll_events(timeout, leader);
        result.map(|resend| {
            if resend {
                shared.write_wake();
                if let Some(d) = deadline {
                    // Not the leader (the close drain): the leader has not come back for the
                    // wake-up taken here, and would hand it back at once; sleep out the wait
                    // rather than spin on it.
                    std::thread::sleep(d.saturating_duration_since(Instant::now()));
                }
            }
        })
    }

    /// One `epoll_wait` of at most `timeout` ms, and the events it returns handled. Returns
    /// whether a wake-up was taken that the leader may still need (see `../wake.rs`).
    fn poll_events(&self, timeout: i32, leader: bool) -> io::Result<bool> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        // SAFETY: `events` is valid for writes of `EVENTS` entries for the length of the call.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS as i32,
                timeout,
            )
        };
        // Read before anything else can change errno.
        let error = (n < 0).then(io::Error::last_os_error);
        if leader {
            // Back from the kernel: completions and wake-ups from now on find it awake.
            self.shared.leader.awake();
            self.shared.wake.leader_back();
        }
        if let Some(e) = error {
            return match e.raw_os_error() {
                Some(libc::EINTR) => Ok(false),
                _ => Err(e),
            };
        }
        let mut resend = false;
        for ev in &events[..n as usize] {
            let (token, flags) = (ev.u64, ev.events);
            match token {
                WAKE => {
                    if !leader {
                        resend |= self.shared.wake.reaped_completion(false, false, || {});
                    }
                }
                TIMER => self.timers.fire(&self.shared),
                token => {
                    let fd = token as u32 as RawFd;
                    if let Some(p) = self.pollable(fd).filter(|p| p.token == token) {
                        p.ready(flags, &self.shared);
                    }
                }
            }
        }
        Ok(resend)
    }

    /// Hands queued completions to `f`, oldest first, until `f` has said `true` `max` times;
    /// returns how many times it did. Without `block` (a `get` that found nothing queued), it first
    /// handles the events epoll has without waiting, and gives up at once if another thread is
    /// reaping.
    pub(crate) fn reap(
        &self,
        block: bool,
        max: usize,
        f: &mut dyn FnMut(Completion) -> bool,
    ) -> usize {
        let shared = &*self.shared;
        let Some(guard) = lock_or_skip(&self.reaping, block) else {
            return 0;
        };
        let mut resend = false;
        if !block && shared.cq_len.load(Ordering::SeqCst) < max {
            resend = self.poll_events(0, false).unwrap_or(false);
        }
        let mut n = 0;
        while n < max {
            let next = {
                let mut cq = lock(&shared.cq);
                let next = cq.pop_front();
                if next.is_some() {
                    shared.cq_len.fetch_sub(1, Ordering::SeqCst);
                }
                next
            };
            let Some(c) = next else { break };
            n += usize::from(f(c));
        }
        drop(guard);
        if resend {
            shared.write_wake();
        }
        if shared.cq_len.load(Ordering::SeqCst) > 0 {
            // Left for others (this reap took its `max`): the leader may be asleep.
            shared.notify();
        }
        n
    }

    /// Makes the thread waiting in `wait` return.
    pub(crate) fn wake(&self) {
        self.shared.wake.send(|| self.shared.write_wake());
    }
}
