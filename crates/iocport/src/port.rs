//! The completion port: a FIFO packet queue, a LIFO stack of waiting threads, and the active count.
//!
//! # How it works
//!
//! One mutex guards the whole state ([`State`]): the packet queue, the waiter stack and the active
//! count. Every decision "does this packet go to a thread or to the queue" is taken under it, which is
//! what makes the concurrency value exact and wake-ups impossible to lose. The mutex is never held
//! across a wake-up or a park.
//!
//! A thread that finds no packet it may take pushes its own waiter (one per thread, reused, kept in a
//! thread-local) on top of the stack and spins briefly, then parks. A poster that finds a waiter it may
//! release (`active < concurrency`) pops the *top* one (the thread that waited last: LIFO, as NT's
//! `KiInsertQueue`), counts it active on its behalf, and hands the packet straight into that waiter's
//! slot (as Wine's `completion_wait`), then unparks it. One post therefore wakes at most one thread,
//! and the woken thread never has to take the port lock again.
//!
//! A waiter that times out removes itself from the stack under the lock; if it is no longer there, a
//! poster (or `close`) has already committed to it and it waits for that hand-off to land.
//!
//! The pieces that later let an I/O driver plug in are [`CompletionPort::post_packet`] (a driver's
//! completions are packets like any other) and the waiter's park step, the one place a thread sleeps.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::sync::{
    current, lock, park_until, spin_until, Arc, AtomicBool, AtomicU64, AtomicU8, AtomicUsize,
    Mutex, Ordering, Thread,
};
use crate::thread::{self, Associated};

/// The outcome carried by a packet: success, or the OS error of the operation it reports.
///
/// User packets posted with [`CompletionPort::post`] always carry [`Status::SUCCESS`]. A failed I/O is
/// reported as a packet whose status holds the error, not as a failed [`get`](CompletionPort::get).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status(i32);

impl Status {
    /// The operation succeeded.
    pub const SUCCESS: Status = Status(0);

    /// A status carrying the OS error `errno` (a positive `E*` value; 0 means success).
    pub const fn from_errno(errno: i32) -> Status {
        Status(errno)
    }

    /// Whether the operation succeeded.
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// The OS error number, or `None` on success.
    pub const fn errno(self) -> Option<i32> {
        if self.0 == 0 {
            None
        } else {
            Some(self.0)
        }
    }

    /// The error as an [`std::io::Error`], or `None` on success.
    pub fn error(self) -> Option<std::io::Error> {
        self.errno().map(std::io::Error::from_raw_os_error)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error() {
            None => f.write_str("Status::SUCCESS"),
            Some(e) => write!(f, "Status({}: {e})", self.0),
        }
    }
}

/// A completion packet: what [`get`](CompletionPort::get) returns.
///
/// The Win32 equivalent is an `OVERLAPPED_ENTRY`: the completion key, the number of bytes transferred,
/// the status, and the operation's own context (here an owned value of the program's choosing).
#[doc(alias = "OVERLAPPED_ENTRY")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<T> {
    /// The completion key of the handle (or the key given to [`post`](CompletionPort::post)).
    #[doc(alias = "lpCompletionKey")]
    pub key: usize,
    /// The number of bytes transferred.
    #[doc(alias = "lpNumberOfBytesTransferred")]
    pub bytes: usize,
    /// Success, or the error of the operation this packet reports.
    pub status: Status,
    /// The operation's context, handed back.
    #[doc(alias = "lpOverlapped")]
    pub value: T,
}

impl<T> Packet<T> {
    /// A successful packet.
    pub const fn new(key: usize, bytes: usize, value: T) -> Packet<T> {
        Packet {
            key,
            bytes,
            status: Status::SUCCESS,
            value,
        }
    }
}

/// Why [`get`](CompletionPort::get) returned no packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GetError {
    /// The timeout passed with no packet for this thread (Win32 `WAIT_TIMEOUT`).
    #[doc(alias = "WAIT_TIMEOUT")]
    TimedOut,
    /// The port was closed, before or while waiting (Win32 `ERROR_ABANDONED_WAIT_0`).
    #[doc(alias = "ERROR_ABANDONED_WAIT_0")]
    Closed,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GetError::TimedOut => "timed out waiting for a completion packet",
            GetError::Closed => "the completion port was closed",
        })
    }
}

impl std::error::Error for GetError {}

/// [`post`](CompletionPort::post) on a closed port: the packet is handed back.
#[derive(Clone, PartialEq, Eq)]
pub struct PostError<T>(pub Packet<T>);

impl<T> PostError<T> {
    /// The packet that was not queued.
    pub fn into_inner(self) -> Packet<T> {
        self.0
    }
}

impl<T> fmt::Debug for PostError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostError")
            .field("key", &self.0.key)
            .field("bytes", &self.0.bytes)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PostError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot post packet (key {}) to a closed completion port",
            self.0.key
        )
    }
}

impl<T> std::error::Error for PostError<T> {}

/// A snapshot of a port's counters, from [`CompletionPort::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortStats {
    /// The concurrency value: how many threads may run packets at once.
    pub concurrency: usize,
    /// Packets queued, not yet taken by any thread.
    pub queued: usize,
    /// Threads waiting in `get`.
    pub waiting: usize,
    /// Threads counted as running a packet (may exceed `concurrency` after a blocking section).
    pub active: usize,
    /// Packets accepted by `post` since the port was created.
    pub posted: u64,
    /// Packets handed to threads since the port was created.
    pub delivered: u64,
    /// Times a waiting thread went to sleep in the kernel (after its spin found nothing).
    pub parks: u64,
    /// Times a sleeping thread woke up again (hand-off, close, timeout or spurious).
    pub wakeups: u64,
    /// Whether the port has been closed.
    pub closed: bool,
}

const WAITING: u8 = 0;
const READY: u8 = 1;
const CLOSED: u8 = 2;

/// One thread's place on the waiter stack. Each thread owns one per packet type and reuses it.
struct Waiter<T> {
    /// `WAITING` until a poster stores `READY` (after filling `slot`) or `close` stores `CLOSED`.
    state: AtomicU8,
    /// Set under the port lock: this waiter already counts as active (a `get_many_min` round after the
    /// first), so handing it a packet does not raise the active count.
    holds_slot: AtomicBool,
    /// The packet handed over by a poster. Written once by the poster that popped this waiter off the
    /// stack, read by the waiter after it sees `READY`.
    slot: Mutex<Option<Packet<T>>>,
    thread: Thread,
}

impl<T> Waiter<T> {
    fn deliver(&self, packet: Packet<T>) {
        *lock(&self.slot) = Some(packet);
        self.state.store(READY, Ordering::Release);
        self.thread.unpark();
    }

    fn close(&self) {
        self.state.store(CLOSED, Ordering::Release);
        self.thread.unpark();
    }

    fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }
}

fn my_waiter<T: 'static>() -> Arc<Waiter<T>> {
    thread::with_waiter(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some(w) = cell
            .as_ref()
            .and_then(|b| b.downcast_ref::<Arc<Waiter<T>>>())
        {
            return w.clone();
        }
        let w = Arc::new(Waiter {
            state: AtomicU8::new(WAITING),
            holds_slot: AtomicBool::new(false),
            slot: Mutex::new(None),
            thread: current(),
        });
        *cell = Some(Box::new(w.clone()));
        w
    })
}

/// Everything the port lock guards.
struct State<T> {
    /// Packets not yet handed to a thread, oldest first.
    queue: VecDeque<Packet<T>>,
    /// Threads waiting for a packet; the top (last) is released first.
    waiters: Vec<Arc<Waiter<T>>>,
    /// How many entries of `waiters` have `holds_slot` set.
    holders: usize,
    /// Threads counted as running a packet.
    active: usize,
    closed: bool,
    posted: u64,
    delivered: u64,
}

impl<T> State<T> {
    /// Pops the waiter a packet should go to now, if any, and counts it active.
    ///
    /// Invariant kept by every caller: while a packet is queued, no waiter is releasable.
    fn releasable_waiter(&mut self, concurrency: usize) -> Option<Arc<Waiter<T>>> {
        if self.active < concurrency {
            let w = self.waiters.pop()?;
            if w.holds_slot.load(Ordering::Relaxed) {
                self.holders -= 1;
            } else {
                self.active += 1;
            }
            return Some(w);
        }
        if self.holders == 0 {
            return None;
        }
        let i = self
            .waiters
            .iter()
            .rposition(|w| w.holds_slot.load(Ordering::Relaxed))?;
        self.holders -= 1;
        Some(self.waiters.remove(i))
    }
}

struct Inner<T> {
    state: Mutex<State<T>>,
    concurrency: usize,
    /// `CompletionPort` handles alive; the last one to drop closes the port.
    handles: AtomicUsize,
    parks: AtomicU64,
    wakeups: AtomicU64,
}

impl<T> Inner<T> {
    fn id(&self) -> usize {
        self as *const Self as usize
    }

    /// Hands one queued packet to a waiter if a slot allows it. Call after anything that lowers the
    /// active count.
    fn dispatch(&self, mut st: crate::sync::MutexGuard<'_, State<T>>) {
        if st.queue.is_empty() {
            return;
        }
        if let Some(w) = st.releasable_waiter(self.concurrency) {
            let packet = st.queue.pop_front().expect("queue checked non-empty");
            st.delivered += 1;
            drop(st);
            w.deliver(packet);
        }
    }
}

impl<T> Associated for Arc<Inner<T>> {
    fn id(&self) -> usize {
        Inner::id(self)
    }

    fn release(&self) {
        let mut st = lock(&self.state);
        st.active -= 1;
        self.dispatch(st);
    }

    fn reacquire(&self) {
        lock(&self.state).active += 1;
    }
}

/// Whether the calling thread already counts as active on the port when it asks for a packet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not active: it must get a slot (`active < concurrency`) to take a packet.
    None,
    /// Active from its previous packet: that slot is given back first (NT: `KeRemoveQueue`).
    Release,
    /// Active and keeping its slot (later rounds of `get_many_min`).
    Hold,
}

/// An I/O completion port: a queue of completion packets and the threads that serve it.
///
/// Packets come out in FIFO order; waiting threads are released in LIFO order (the thread that waited
/// last is woken first, its cache and stack still warm); and at most
/// [`concurrency`](CompletionPort::concurrency) threads are *active* (running a packet they got from
/// this port) at once. A thread becomes active when `get` hands it a packet and stops being active
/// when it calls `get` again, enters a [`blocking`](crate::blocking) section, or exits.
///
/// `CompletionPort` is a cheap handle: clone it to share the port between threads. When the last
/// handle is dropped the port is closed and the packets still queued are dropped.
///
/// # Examples
///
/// A pool of worker threads serving one port:
///
/// ```
/// use iocport::{CompletionPort, GetError};
/// use std::thread;
///
/// let port = CompletionPort::new(2); // at most 2 workers run at once
/// let workers: Vec<_> = (0..4)
///     .map(|_| {
///         let port = port.clone();
///         thread::spawn(move || {
///             let mut sum = 0;
///             loop {
///                 match port.get(None) {
///                     Ok(packet) => sum += packet.bytes,
///                     Err(GetError::Closed) => return sum,
///                     Err(e) => panic!("{e}"),
///                 }
///             }
///         })
///     })
///     .collect();
/// for i in 0..100 {
///     port.post(i, 1, format!("job {i}")).unwrap();
/// }
/// while port.stats().queued > 0 {
///     thread::yield_now();
/// }
/// port.close();
/// let total: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
/// assert_eq!(total, 100);
/// ```
pub struct CompletionPort<T> {
    inner: Arc<Inner<T>>,
}

impl<T: Send + 'static> CompletionPort<T> {
    /// Creates a port that lets at most `concurrency` threads run packets at once; 0 means the number
    /// of CPUs (as `CreateIoCompletionPort` with `NumberOfConcurrentThreads` = 0).
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn new(concurrency: usize) -> CompletionPort<T> {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            concurrency
        };
        CompletionPort {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    waiters: Vec::new(),
                    holders: 0,
                    active: 0,
                    closed: false,
                    posted: 0,
                    delivered: 0,
                }),
                concurrency,
                handles: AtomicUsize::new(1),
                parks: AtomicU64::new(0),
                wakeups: AtomicU64::new(0),
            }),
        }
    }

    /// The concurrency value: how many threads may run packets from this port at once.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Queues a packet with status [`Status::SUCCESS`]. Nothing in it is validated.
    ///
    /// If a thread is waiting and fewer than [`concurrency`](Self::concurrency) threads are active,
    /// the packet goes straight to the thread that waited last and wakes it (only it); otherwise it is
    /// queued behind the packets already there.
    ///
    /// # Errors
    ///
    /// On a closed port the packet is handed back in [`PostError`].
    #[doc(alias = "PostQueuedCompletionStatus")]
    pub fn post(&self, key: usize, bytes: usize, value: T) -> Result<(), PostError<T>> {
        self.post_packet(Packet::new(key, bytes, value))
    }

    /// Queues a complete packet, status included (as `NtSetIoCompletion`, which can report a failure).
    ///
    /// # Errors
    ///
    /// On a closed port the packet is handed back in [`PostError`].
    #[doc(alias = "NtSetIoCompletion")]
    pub fn post_packet(&self, packet: Packet<T>) -> Result<(), PostError<T>> {
        let mut st = lock(&self.inner.state);
        if st.closed {
            return Err(PostError(packet));
        }
        st.posted += 1;
        match st.releasable_waiter(self.inner.concurrency) {
            Some(w) => {
                st.delivered += 1;
                drop(st);
                w.deliver(packet);
            }
            None => st.queue.push_back(packet),
        }
        Ok(())
    }

    /// Takes the oldest packet, waiting up to `timeout` for one (`None`: forever; zero: just poll).
    ///
    /// If the calling thread was active on this port (it got its previous packet here), it first gives
    /// its slot back. It then takes a queued packet at once, without sleeping, if fewer than
    /// [`concurrency`](Self::concurrency) threads are active; otherwise it waits, and waiting threads
    /// are released last-in first-out.
    ///
    /// # Errors
    ///
    /// [`GetError::TimedOut`] when the timeout passes, [`GetError::Closed`] when the port is or gets
    /// closed. A packet reporting a failed operation is not an error here: see [`Packet::status`].
    #[doc(alias = "GetQueuedCompletionStatus")]
    pub fn get(&self, timeout: Option<Duration>) -> Result<Packet<T>, GetError> {
        let slot = if thread::begin_get(self.inner.id()) {
            Slot::Release
        } else {
            Slot::None
        };
        let packet = self.take(slot, timeout)?;
        self.became_active();
        Ok(packet)
    }

    /// Takes up to `max` packets into `out` once at least one is there, waiting up to `timeout` for the
    /// first. Returns how many were appended (at least 1). The calling thread counts as one active
    /// thread, however many packets it took.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Panics
    ///
    /// If `max` is 0.
    #[doc(alias = "GetQueuedCompletionStatusEx")]
    pub fn get_many(
        &self,
        out: &mut Vec<Packet<T>>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, GetError> {
        self.get_many_min(out, 1, max, timeout)
    }

    /// Takes up to `max` packets into `out`, waiting until at least `min` have arrived or `timeout`
    /// passes, then returns how many were appended, which is fewer than `min` only if the timeout
    /// passed or the port was closed meanwhile (as Solaris `port_getn`, AIX
    /// `GetMultipleCompletionStatus`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), when no packet at all arrived.
    ///
    /// # Panics
    ///
    /// If `max` is 0 or `min > max`.
    #[doc(alias = "port_getn")]
    #[doc(alias = "GetMultipleCompletionStatus")]
    pub fn get_many_min(
        &self,
        out: &mut Vec<Packet<T>>,
        min: usize,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, GetError> {
        assert!(max > 0, "get_many: max must be at least 1");
        assert!(
            min <= max,
            "get_many: min ({min}) must not exceed max ({max})"
        );
        // A timeout too large to express as an `Instant` waits forever, as in `get`.
        let timeout = timeout.filter(|t| t.is_zero() || Instant::now().checked_add(*t).is_some());
        let deadline = match timeout {
            Some(t) if min > 1 && !t.is_zero() => Instant::now().checked_add(t),
            _ => None,
        };
        let first = self.get(timeout)?;
        out.push(first);
        let mut n = 1 + self.drain(out, max - 1);
        while n < min {
            let left = match (timeout, deadline) {
                (None, _) => None,
                (Some(_), Some(d)) => Some(d.saturating_duration_since(Instant::now())),
                (Some(_), None) => Some(Duration::ZERO),
            };
            match self.take(Slot::Hold, left) {
                Ok(p) => {
                    out.push(p);
                    n += 1 + self.drain(out, max - n - 1);
                }
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// Moves up to `max` queued packets into `out` for a thread that already holds a slot.
    fn drain(&self, out: &mut Vec<Packet<T>>, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let mut st = lock(&self.inner.state);
        let n = max.min(st.queue.len());
        out.extend(st.queue.drain(..n));
        st.delivered += n as u64;
        n
    }

    /// One packet for this thread, by the rules of `slot`.
    fn take(&self, slot: Slot, timeout: Option<Duration>) -> Result<Packet<T>, GetError> {
        let mut st = lock(&self.inner.state);
        if slot == Slot::Release {
            st.active -= 1;
        }
        if st.closed {
            return Err(GetError::Closed);
        }
        if slot == Slot::Hold || st.active < self.inner.concurrency {
            if let Some(packet) = st.queue.pop_front() {
                if slot != Slot::Hold {
                    st.active += 1;
                }
                st.delivered += 1;
                return Ok(packet);
            }
        }
        if timeout == Some(Duration::ZERO) {
            return Err(GetError::TimedOut);
        }
        let w = my_waiter::<T>();
        w.state.store(WAITING, Ordering::Relaxed);
        w.holds_slot.store(slot == Slot::Hold, Ordering::Relaxed);
        if slot == Slot::Hold {
            st.holders += 1;
        }
        st.waiters.push(w.clone());
        drop(st);
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.wait(&w, deadline)
    }

    /// Waits on this thread's waiter until a packet is handed over, the port closes, or `deadline`.
    fn wait(
        &self,
        w: &Arc<Waiter<T>>,
        mut deadline: Option<Instant>,
    ) -> Result<Packet<T>, GetError> {
        if !spin_until(|| !w.is_waiting()) {
            self.inner.parks.fetch_add(1, Ordering::Relaxed);
            // Check before every park, not only after: once `unregister` has failed the hand-off may
            // already have landed, and then only the unpark token would wake us.
            while w.is_waiting() {
                let timed_out = park_until(deadline);
                self.inner.wakeups.fetch_add(1, Ordering::Relaxed);
                if !w.is_waiting() {
                    break;
                }
                if timed_out {
                    if self.unregister(w) {
                        return Err(GetError::TimedOut);
                    }
                    // A poster or `close` popped us already: its hand-off is about to land.
                    deadline = None;
                }
            }
        }
        match w.state.load(Ordering::Acquire) {
            READY => Ok(lock(&w.slot).take().expect("a READY waiter holds a packet")),
            _ => Err(GetError::Closed),
        }
    }

    /// Removes `w` from the waiter stack; `false` if someone already popped it.
    fn unregister(&self, w: &Arc<Waiter<T>>) -> bool {
        let mut st = lock(&self.inner.state);
        match st.waiters.iter().rposition(|x| Arc::ptr_eq(x, w)) {
            Some(i) => {
                st.waiters.remove(i);
                if w.holds_slot.load(Ordering::Relaxed) {
                    st.holders -= 1;
                }
                true
            }
            None => false,
        }
    }

    fn became_active(&self) {
        thread::set_active(self.inner.id(), || Box::new(self.inner.clone()));
    }

    /// Closes the port: every waiting thread wakes with [`GetError::Closed`], later posts fail, and the
    /// packets still queued are returned, oldest first, so nothing is dropped unseen. Closing a closed
    /// port returns nothing.
    #[doc(alias = "CloseHandle")]
    pub fn close(&self) -> Vec<Packet<T>> {
        let (waiters, queue) = {
            let mut st = lock(&self.inner.state);
            if st.closed {
                return Vec::new();
            }
            st.closed = true;
            st.holders = 0;
            (
                std::mem::take(&mut st.waiters),
                std::mem::take(&mut st.queue),
            )
        };
        for w in waiters {
            w.close();
        }
        queue.into()
    }

    /// Whether [`close`](Self::close) has been called (or every handle dropped).
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.state).closed
    }

    /// A consistent snapshot of the port's counters.
    pub fn stats(&self) -> PortStats {
        let st = lock(&self.inner.state);
        PortStats {
            concurrency: self.inner.concurrency,
            queued: st.queue.len(),
            waiting: st.waiters.len(),
            active: st.active,
            posted: st.posted,
            delivered: st.delivered,
            parks: self.inner.parks.load(Ordering::Relaxed),
            wakeups: self.inner.wakeups.load(Ordering::Relaxed),
            closed: st.closed,
        }
    }
}

impl<T: Send + 'static> Default for CompletionPort<T> {
    /// A port whose concurrency value is the number of CPUs.
    fn default() -> Self {
        CompletionPort::new(0)
    }
}

impl<T> Clone for CompletionPort<T> {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        CompletionPort {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Drop for CompletionPort<T> {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last handle: close, and drop what is queued here rather than whenever the last
        // associated thread lets go of the core.
        let queue = {
            let mut st = lock(&self.inner.state);
            st.closed = true;
            std::mem::take(&mut st.queue)
        };
        drop(queue);
    }
}

impl<T> fmt::Debug for CompletionPort<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("CompletionPort")
            .field("concurrency", &self.inner.concurrency)
            .field("queued", &st.queue.len())
            .field("waiting", &st.waiters.len())
            .field("active", &st.active)
            .field("closed", &st.closed)
            .finish()
    }
}
