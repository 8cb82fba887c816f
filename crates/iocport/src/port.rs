//! The completion port: a FIFO packet queue, a LIFO stack of waiting threads, and the active count.
//!
//! # How it works
//!
//! The common case takes no lock. Queued packets live in a lock-free ring (`queue.rs`, with an
//! overflow list behind the lock for bursts larger than the ring); the active count is an atomic
//! that only a CAS bounded by the concurrency value raises (`try_acquire`). A thread that calls `get`
//! while a packet is queued takes it at once: if it was active it keeps its slot (NT's fast path in
//! `KeRemoveQueue`), otherwise it must win a free one.
//!
//! A thread that finds nothing spins briefly (a cross-core wake-up costs tens of microseconds on
//! small VMs, a hand-off usually lands within a few hundred nanoseconds), then takes the lock, gives
//! its slot back, pushes its own waiter (one per thread, reused, kept in a thread-local) on top of
//! the stack, looks once more, and parks. Posters check for sleeping waiters after queueing
//! (`sleepers`, with a `SeqCst` fence on both sides: either the waiter sees the packet or the poster
//! sees the waiter). A poster that sees one takes the lock and hands a packet to the *top* waiter
//! (the thread that waited last: LIFO, as NT's `KiInsertQueue`) if a slot is free, counting it
//! active on its behalf and putting the packet straight into that waiter's slot (as Wine's
//! `completion_wait`), then unparks it. One post therefore wakes at most one thread, and the woken
//! thread does not take the lock again. Giving a slot back (`blocking`, thread exit, a `get` on
//! another port) dispatches the same way.
//!
//! A waiter that times out removes itself from the stack under the lock; if it is no longer there, a
//! poster (or `close`) has already committed to it and it waits for that hand-off to land.
//!
//! `close` raises a bit in every counter shard that posts update with their first atomic operation,
//! so a post racing `close` either sees the bit and fails, or is waited for and its packet is among
//! those `close` returns.
//!
//! # Waiting for I/O: leader/followers
//!
//! Once the port has I/O (`io/`, which hides the backend behind `Io::wait`, `Io::wake` and
//! `Io::reap`), one waiting thread at a time is the *leader*: instead of parking it blocks in the
//! kernel (`lead`). Woken by a completion, it reaps the
//! completion queue, keeps the oldest packet for itself if it may take one, places the rest in the
//! queue (from where they go to parked *followers*, LIFO), and hands the leader role to the follower
//! on top of the stack as it leaves (`resign`). A completion thus reaches a thread with one wake-up.
//! A post that no follower may take wakes the leader through the kernel (`wake_leader`; the rules
//! that keep that wake-up from being lost whoever reaps it are in `io/wake.rs`). Threads that call
//! `get` while completions wait unreaped reap them on the way (`reap_direct`), without blocking.
//!
//! ## The leader keeps its role
//!
//! A leader that takes a packet keeps the role while it runs it (`step_away`) instead of waking a
//! follower to take its place, and takes up the wait in the kernel again when it calls `get`. In
//! the usual loop (take a packet, start the next operation, `get`) the thread that started an
//! operation is then the one waiting for it in the kernel, which matters on io_uring: a
//! completion is finished by the task that submitted the request (`COOP_TASKRUN`), so a submitter
//! parked as a follower is woken for that and wakes the leader in turn. Measured at one read in
//! flight with two worker threads: three wake-ups per read with a follower promoted at every
//! packet, one when the leader keeps its role (BENCHMARKS.md, `file_direct_qd1`).
//!
//! While the leader is away nobody waits in the kernel. A thread that calls `get` takes the role
//! at once (it is awake anyway); a worker that enters a blocking section, or whose `get(0)` finds
//! nothing, hands it to the top follower (`hand_off_away`); and the follower on top of the stack
//! keeps watch: it parks for at most [`TAKEOVER`] at a time and takes the role over if the leader
//! has been away for a whole period, so completions are watched again within two periods even if
//! the leader never comes back. Whoever sends the leader away, or changes the top of the stack
//! while it is away, wakes a top follower that does not keep watch yet (`keep_watch`). A port
//! where the leader has not left for a whole period is quiet: its followers then park until
//! woken, instead of looking 200 times a second for nothing.
//!
//! The alternative, a dedicated reaper thread that waits in the kernel and posts every completion to
//! the port, costs two wake-ups per completion and a thread that competes for the CPUs. Measured with
//! `iocport bench wake` (a NOP started while the worker sleeps; 2 vCPUs, medians of 5 rounds):
//! leader/followers p50 5.9 us, p99 29 us; reaper p50 14.6 us, p99 50 us; in the full run of
//! BENCHMARKS.md p50 8.1 us against 51.5 us. So the leader design stays.

use std::collections::VecDeque;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::buf::IoBuf;
use crate::error::Error;
use crate::io::{Config, Io};
use crate::packet::Packet;
use crate::queue::{Full, Ring};
use crate::sync::{
    current, fence, lock, park_until, spin_until, Arc, AtomicBool, AtomicU64, AtomicU8,
    AtomicUsize, Mutex, Ordering, Thread,
};
use crate::thread::{self, Associated};

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
pub struct PostError<T, B = Vec<u8>>(pub Packet<T, B>);

impl<T, B> PostError<T, B> {
    /// The packet that was not queued.
    pub fn into_inner(self) -> Packet<T, B> {
        self.0
    }
}

impl<T: PartialEq, B: PartialEq> PartialEq for PostError<T, B> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T, B> fmt::Debug for PostError<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostError")
            .field("key", &self.0.key)
            .field("bytes", &self.0.bytes)
            .finish_non_exhaustive()
    }
}

impl<T, B> fmt::Display for PostError<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot post packet (key {}) to a closed completion port",
            self.0.key
        )
    }
}

impl<T, B> std::error::Error for PostError<T, B> {}

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
    /// Times a waiting thread took the role of waiting in the kernel over from one that had been
    /// away running a packet for too long (see [`CompletionPort::get`]).
    pub takeovers: u64,
    /// Whether the port has been closed.
    pub closed: bool,
}

/// How long the leader may be away (running the packet it took, see "The leader keeps its role")
/// before the top follower takes the role over; the top follower looks once per period, so a
/// leader that never comes back is replaced within two.
const TAKEOVER: Duration = Duration::from_millis(5);

const WAITING: u8 = 0;
const READY: u8 = 1;
const CLOSED: u8 = 2;
/// The waiter has been made the leader: it is to wait for completions in the kernel.
const LEAD: u8 = 3;

/// One thread's place on the waiter stack. Each thread owns one per packet type and reuses it.
struct Waiter<T, B> {
    /// `WAITING` until a poster stores `READY` (after filling `slot`), `close` stores `CLOSED`, or a
    /// resigning leader stores `LEAD`.
    state: AtomicU8,
    /// Set under the port lock: this waiter already counts as active (a `get_many_min` round after the
    /// first), so handing it a packet does not raise the active count.
    holds_slot: AtomicBool,
    /// The packet handed over by a poster. Written once by the poster that popped this waiter off the
    /// stack, read by the waiter after it sees `READY`.
    slot: Mutex<Option<Packet<T, B>>>,
    thread: Thread,
    /// The thread's [`thread::mark`].
    mark: usize,
    /// Set under the port lock: the waiter parks for at most [`TAKEOVER`] (it keeps watch over
    /// the leader, see `Inner::watch`); else it parks until woken, and whoever sends the leader
    /// away or moves this waiter to the top while the leader is away wakes it (`keep_watch`).
    watching: AtomicBool,
}

impl<T, B> Waiter<T, B> {
    fn deliver(&self, packet: Packet<T, B>) {
        *lock(&self.slot) = Some(packet);
        self.state.store(READY, Ordering::Release);
        self.thread.unpark();
    }

    fn close(&self) {
        self.state.store(CLOSED, Ordering::Release);
        self.thread.unpark();
    }

    fn promote(&self) {
        self.state.store(LEAD, Ordering::Release);
        self.thread.unpark();
    }

    fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }
}

fn my_waiter<T: 'static, B: 'static>() -> Arc<Waiter<T, B>> {
    thread::with_waiter(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some(w) = cell
            .as_ref()
            .and_then(|b| b.downcast_ref::<Arc<Waiter<T, B>>>())
        {
            return w.clone();
        }
        let w = Arc::new(Waiter {
            state: AtomicU8::new(WAITING),
            holds_slot: AtomicBool::new(false),
            slot: Mutex::new(None),
            thread: current(),
            mark: thread::mark(),
            watching: AtomicBool::new(false),
        });
        *cell = Some(Box::new(w.clone()));
        w
    })
}

/// Counter shards: each thread updates the shard of its own number, so posts and gets on different
/// threads never write to the same cache line for bookkeeping.
#[cfg(not(loom))]
const SHARDS: usize = 8;
#[cfg(loom)]
const SHARDS: usize = 1;

/// One shard of the port's counters.
struct Shard {
    /// Four things in one word, so that a post updates its shard with two atomic operations in all
    /// and races `close` and ring growth without a lock: the low [`POSTING_BITS`] count posts under
    /// way on threads of this shard; [`CLOSED_BIT`] is set by `close` and [`GROW_BIT`] while a ring
    /// level is added; the bits between count the packets posted. A post adds 1 and looks at the bits
    /// in the same operation: either it sees a bit and backs off (fails, or waits for the growth),
    /// or `close` (or the growth) sees it under way and waits until its packet is queued (both are
    /// read-modify-writes of one word, so one of them comes first).
    posts: AtomicU64,
    delivered: AtomicU64,
}

const POSTING_BITS: u32 = 16;
const POSTING_MASK: u64 = (1 << POSTING_BITS) - 1;
const CLOSED_BIT: u64 = 1 << 63;
const GROW_BIT: u64 = 1 << 62;
/// Added when a post ends: one more packet posted, one post fewer under way.
const POST_DONE: u64 = (1 << POSTING_BITS) - 1;

/// What the port lock guards: the rare, ordered parts.
struct State<T, B> {
    /// Packets posted while the ring was full, oldest first (see `queue.rs`).
    overflow: VecDeque<Packet<T, B>>,
    /// Threads waiting for a packet; the top (last) is released first.
    waiters: Vec<Arc<Waiter<T, B>>>,
    /// How many entries of `waiters` have `holds_slot` set.
    holders: usize,
    /// With I/O: the waiting thread that blocks in the kernel for completions (leader/followers).
    /// Counted in `sleepers`, not in `waiters`.
    leader: Option<Arc<Waiter<T, B>>>,
    /// The leader is in (or about to enter) `io_uring_enter` and no wake-up NOP is on its way:
    /// a packet for it needs one. Set by the leader under the lock, cleared by whoever sends the NOP
    /// and by the leader when it returns.
    leader_asleep: bool,
    /// The leader took a packet and runs it: it keeps the role (no follower is woken to take it)
    /// and takes up the wait again when it calls `get`; meanwhile nobody waits in the kernel, and
    /// it does not count in `sleepers`. A thread that calls `get` takes the role over at once; the
    /// top follower does once the leader has been away for a whole [`TAKEOVER`] period (see "The
    /// leader keeps its role").
    leader_away: bool,
    /// Counts the leader's departures, so that a watching follower can tell one long absence
    /// from several short ones.
    away_epoch: u64,
    /// Completions reaped after `close` took the queue: `close` returns them too.
    late: Vec<Packet<T, B>>,
}

impl<T, B> State<T, B> {
    /// Moves the follower on top of the stack to the leader's place (the caller wakes it with
    /// `promote` once the lock is released). `sleepers` is unchanged: it counts both.
    fn top_to_leader(&mut self) -> Option<Arc<Waiter<T, B>>> {
        let next = self.waiters.pop()?;
        if next.holds_slot.load(Ordering::Relaxed) {
            self.holders -= 1;
        }
        self.leader = Some(next.clone());
        Some(next)
    }
}

struct Inner<T, B: IoBuf> {
    concurrency: usize,
    /// Set once, by `close` or when the last handle is dropped.
    closed: AtomicBool,
    /// Whether `State::overflow` may hold packets; while it does, posts go there too.
    spilled: AtomicBool,
    /// Queued packets, oldest first (the overflow holds newer ones).
    ring: CachePadded<Ring<Packet<T, B>>>,
    /// Serialises adding ring levels; posts that meet [`GROW_BIT`] wait on it.
    grow: Mutex<()>,
    /// Threads counted as running a packet. Only changed by `try_acquire` (a CAS that never passes
    /// `concurrency`) and by decrements, plus `reacquire` after a blocking section.
    active: CachePadded<AtomicUsize>,
    /// `State::waiters.len()`, readable without the lock: a poster takes the lock only if it is not 0.
    sleepers: CachePadded<AtomicUsize>,
    /// Times a follower took the leader role over from a leader away too long (`TAKEOVER`).
    takeovers: AtomicU64,
    /// The [`thread::mark`] of the leader while it is away, else 0: lets a thread that stops
    /// waiting (`hand_off_away`) tell without the lock that it is not the away leader.
    away_mark: AtomicUsize,
    shards: [CachePadded<Shard>; SHARDS],
    state: Mutex<State<T, B>>,
    /// `CompletionPort` handles alive; the last one to drop closes the port.
    handles: AtomicUsize,
    parks: AtomicU64,
    wakeups: AtomicU64,
    /// The I/O side, set up by the first operation (or by [`Builder::build`]).
    io: OnceLock<Io<T, B>>,
    /// How to set it up.
    config: Config,
}

impl<T, B: IoBuf> Inner<T, B> {
    fn id(&self) -> usize {
        self as *const Self as usize
    }

    fn shard(&self) -> &Shard {
        &self.shards[thread::shard() % SHARDS]
    }

    /// Counts the calling thread active if that keeps the count within the concurrency value.
    fn try_acquire(&self) -> bool {
        let mut active = self.active.load(Ordering::SeqCst);
        while active < self.concurrency {
            match self.active.compare_exchange_weak(
                active,
                active + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => active = now,
            }
        }
        false
    }

    /// Whether a packet may be queued (a hint: exact only under the lock).
    fn maybe_queued(&self) -> bool {
        !self.ring.is_empty() || self.spilled.load(Ordering::Acquire)
    }

    /// Queues `packet` behind every packet queued before it, or hands it back with the ring's top
    /// level when that is full and a level may be added ([`grow`](Self::grow)). The caller counts as
    /// a post under way.
    #[inline]
    fn push(&self, packet: Packet<T, B>) -> Result<(), (Packet<T, B>, usize)> {
        let packet = if self.spilled.load(Ordering::Acquire) {
            packet
        } else {
            match self.ring.push(packet) {
                Ok(()) => return Ok(()),
                Err(Full::Grow(packet, top)) => return Err((packet, top)),
                Err(Full::Last(packet)) => packet,
            }
        };
        let mut st = lock(&self.state);
        if self.refill(&mut st) {
            if let Err(full) = self.ring.push(packet) {
                st.overflow.push_back(full.into_inner());
                self.spilled.store(true, Ordering::Release);
            }
        } else {
            st.overflow.push_back(packet);
            self.spilled.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Adds the ring level above `top` once no post is under way (see "Why growing is sealed" in
    /// `queue.rs`). The caller does not count as a post under way. Rare: at most once per level in
    /// the life of the port.
    #[cold]
    fn grow(&self, top: usize) {
        let _one = lock(&self.grow);
        // New posts see the bit and wait on `self.grow`.
        self.fence_posts(GROW_BIT);
        self.ring.grow(top);
        for shard in &self.shards {
            shard.posts.fetch_and(!GROW_BIT, Ordering::AcqRel);
        }
    }

    /// Sets `bit` in every shard's posts word, so that posts starting from now on back off, then
    /// waits until the posts already under way have finished.
    fn fence_posts(&self, bit: u64) {
        for shard in &self.shards {
            shard.posts.fetch_or(bit, Ordering::AcqRel);
        }
        let idle = |shard: &Shard| shard.posts.load(Ordering::Acquire) & POSTING_MASK == 0;
        for shard in &self.shards {
            while !idle(shard) {
                spin_until(|| idle(shard));
            }
        }
    }

    /// Moves overflow packets into the ring while it has room, oldest first. Returns `true` (and
    /// lowers `spilled`) once the overflow is empty. The caller holds the lock. Only ever pushes to
    /// the last ring level (the overflow is used only once that is full), so it never races growth.
    fn refill(&self, st: &mut State<T, B>) -> bool {
        while let Some(packet) = st.overflow.pop_front() {
            if let Err(full) = self.ring.push(packet) {
                st.overflow.push_front(full.into_inner());
                return false;
            }
        }
        self.spilled.store(false, Ordering::Release);
        true
    }

    /// Takes the oldest queued packet.
    #[inline]
    fn pop(&self) -> Option<Packet<T, B>> {
        if let Some(packet) = self.ring.pop() {
            return Some(packet);
        }
        if !self.spilled.load(Ordering::Acquire) {
            return None;
        }
        self.pop_locked(&mut lock(&self.state))
    }

    /// Takes the oldest queued packet; the caller holds the lock, so the answer is exact. Refills the
    /// ring from the overflow, so that the next pops are lock-free again.
    fn pop_locked(&self, st: &mut State<T, B>) -> Option<Packet<T, B>> {
        if let Some(packet) = self.ring.pop() {
            return Some(packet);
        }
        self.refill(st);
        self.ring.pop()
    }

    /// If the thread of `mark` is the leader, away, gives the role to the top follower (or to
    /// nobody: the next thread that waits takes it).
    fn hand_off_away(&self, mark: usize) {
        // Only the away leader itself stores its mark, and others only replace it: a thread that
        // reads another value is not the away leader.
        if self.away_mark.load(Ordering::Relaxed) != mark {
            return;
        }
        let next = {
            let mut st = lock(&self.state);
            if !(st.leader_away && st.leader.as_ref().is_some_and(|l| l.mark == mark)) {
                return;
            }
            st.leader = None;
            let _ = self.set_away(&mut st, false);
            // The follower moves from the stack to the leader's place: still one sleeper.
            st.top_to_leader()
        };
        if let Some(next) = next {
            next.promote();
        }
    }

    /// Marks the leader away (it took a packet) or back (it, or a thread taking its place, waits
    /// again). Going away, it returns the top follower if that one must be woken to keep watch
    /// (`keep_watch`).
    fn set_away(&self, st: &mut State<T, B>, away: bool) -> Option<Arc<Waiter<T, B>>> {
        st.leader_away = away;
        let mark = match &st.leader {
            Some(l) if away => l.mark,
            _ => 0,
        };
        self.away_mark.store(mark, Ordering::Relaxed);
        if away {
            st.away_epoch += 1;
        }
        Self::keep_watch(st)
    }

    /// While the leader is away, the follower on top of the stack must keep watch (park for at
    /// most [`TAKEOVER`]): if it does not (it parked below another, or while the port was idle),
    /// marks it watching and returns it, for the caller to wake once the lock is released. Called
    /// wherever the leader goes away or the top changes while it is.
    fn keep_watch(st: &State<T, B>) -> Option<Arc<Waiter<T, B>>> {
        if !st.leader_away {
            return None;
        }
        let top = st.waiters.last()?;
        if top.watching.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(top.clone())
    }

    /// How follower `w` parks: `None` to park until woken (no I/O, not the top follower, or the
    /// port quiet: the leader has not left since `seen`, the departure the follower last saw);
    /// else for one [`TAKEOVER`] period, with `Some(epoch)` if the leader is away (since departure
    /// `epoch`), `Some(None)` if it is not but has been lately (the next departure needs no wake-up).
    fn watch(&self, w: &Arc<Waiter<T, B>>, seen: &mut Option<u64>) -> Option<Option<u64>> {
        self.io.get()?;
        let st = lock(&self.state);
        let look = if !st.waiters.last().is_some_and(|x| Arc::ptr_eq(x, w)) {
            None
        } else if st.leader_away {
            Some(Some(st.away_epoch))
        } else if *seen != Some(st.away_epoch) {
            Some(None)
        } else {
            None
        };
        *seen = Some(st.away_epoch);
        w.watching.store(look.is_some(), Ordering::Relaxed);
        look
    }

    /// The calling thread stops counting as active. If that frees a slot for a waiter while a packet
    /// is queued, the packet goes to that waiter.
    fn release_slot(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
        // Pairs with the fence in `take` after a waiter registers: either it sees the lower count,
        // or we see it on the stack.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 && self.maybe_queued() {
            self.dispatch();
        }
    }

    /// Hands queued packets to waiters while there are both and a waiter may be released: the top of
    /// the stack (LIFO) if a slot is free, else the topmost waiter that holds a slot already.
    fn dispatch(&self) {
        loop {
            let mut st = lock(&self.state);
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let choice = match st.waiters.len().checked_sub(1) {
                None => None,
                Some(top) if st.waiters[top].holds_slot.load(Ordering::Relaxed) => {
                    Some((top, false))
                }
                Some(top) if self.try_acquire() => Some((top, true)),
                Some(_) if st.holders > 0 => st
                    .waiters
                    .iter()
                    .rposition(|w| w.holds_slot.load(Ordering::Relaxed))
                    .map(|i| (i, false)),
                Some(_) => None,
            };
            let Some((index, acquired)) = choice else {
                self.wake_leader(st);
                return;
            };
            let Some(packet) = self.pop_locked(&mut st) else {
                if acquired {
                    // Nothing queued after all. A packet pushed from now on is dispatched by its
                    // poster, which sees the waiters and takes this lock after us.
                    self.active.fetch_sub(1, Ordering::SeqCst);
                }
                return;
            };
            let w = st.waiters.remove(index);
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            if w.holds_slot.load(Ordering::Relaxed) {
                st.holders -= 1;
            }
            let top = Self::keep_watch(&st);
            drop(st);
            self.shard().delivered.fetch_add(1, Ordering::Relaxed);
            w.deliver(packet);
            if let Some(top) = top {
                top.thread.unpark();
            }
        }
    }

    /// With no follower to take a queued packet, the leader (blocked in the kernel) may: wake it.
    fn wake_leader(&self, mut st: crate::sync::MutexGuard<'_, State<T, B>>) {
        let Some(leader) = &st.leader else {
            return;
        };
        if !st.leader_asleep || !self.maybe_queued() {
            return;
        }
        if !leader.holds_slot.load(Ordering::Relaxed)
            && self.active.load(Ordering::SeqCst) >= self.concurrency
        {
            return;
        }
        st.leader_asleep = false;
        drop(st);
        if let Some(io) = self.io.get() {
            io.wake();
        }
    }

    /// Queues `packet` (a post, or a completion) behind the packets queued before it and hands it
    /// to a waiter if one may take it; on a closed port gives it back.
    #[inline]
    fn post(&self, packet: Packet<T, B>) -> Result<(), Packet<T, B>> {
        let shard = self.shard();
        // The usual case in straight line: nothing spilled, the top level has room. The packet is
        // written into the ring once, not first moved through the retry loop's state (measured:
        // each of those moves of a packet is a few ns of store-forwarding stalls).
        let word = shard.posts.fetch_add(1, Ordering::Acquire);
        if word & (CLOSED_BIT | GROW_BIT) == 0 && !self.spilled.load(Ordering::Acquire) {
            match self.ring.push(packet) {
                Ok(()) => {
                    self.posted(shard);
                    return Ok(());
                }
                Err(full) => {
                    shard.posts.fetch_sub(1, Ordering::Release);
                    return self.post_slow(shard, full.into_inner());
                }
            }
        }
        shard.posts.fetch_sub(1, Ordering::Release);
        self.post_slow(shard, packet)
    }

    /// Ends a post whose packet is queued: wakes a waiter if there is one, and marks the post
    /// done.
    #[inline]
    fn posted(&self, shard: &Shard) {
        // Pairs with the fence in `take` after a waiter registers: either it sees our packet, or we
        // see it on the stack and hand the packet over.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            self.dispatch();
        }
        shard.posts.fetch_add(POST_DONE, Ordering::Release);
    }

    /// [`post`](Self::post) when the port is closing or growing, the ring is full, or packets
    /// have spilled to the overflow list.
    #[cold]
    fn post_slow(&self, shard: &Shard, packet: Packet<T, B>) -> Result<(), Packet<T, B>> {
        let mut packet = packet;
        loop {
            let word = shard.posts.fetch_add(1, Ordering::Acquire);
            if word & (CLOSED_BIT | GROW_BIT) != 0 {
                shard.posts.fetch_sub(1, Ordering::Release);
                if word & CLOSED_BIT != 0 {
                    return Err(packet);
                }
                // A level is being added: wait until it is there.
                drop(lock(&self.grow));
                continue;
            }
            match self.push(packet) {
                Ok(()) => break,
                Err((back, top)) => {
                    shard.posts.fetch_sub(1, Ordering::Release);
                    self.grow(top);
                    packet = back;
                }
            }
        }
        self.posted(shard);
        Ok(())
    }

    /// Places a completion's packet: queued like a post, or kept for `close` if the port closed.
    fn place(&self, packet: Packet<T, B>) {
        if let Err(packet) = self.post(packet) {
            lock(&self.state).late.push(packet);
        }
    }

    /// Marks the port closed, wakes every waiter with "closed", and takes everything queued once
    /// every post under way has finished. Returns `None` if it was closed already.
    fn shut(&self) -> Option<Vec<Packet<T, B>>> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return None;
        }
        // Every post from here on sees the bit and fails.
        self.fence_posts(CLOSED_BIT);
        let (waiters, queued) = {
            let mut st = lock(&self.state);
            st.holders = 0;
            let waiters = std::mem::take(&mut st.waiters);
            // The leader, if any, still counts: it sees `closed` and resigns.
            self.sleepers.fetch_sub(waiters.len(), Ordering::SeqCst);
            let mut queued = Vec::with_capacity(self.ring.len() + st.overflow.len());
            while let Some(packet) = self.ring.pop() {
                queued.push(packet);
            }
            queued.extend(st.overflow.drain(..));
            self.spilled.store(false, Ordering::Release);
            (waiters, queued)
        };
        for w in waiters {
            w.close();
        }
        Some(queued)
    }
}

impl<T: Send + 'static, B: IoBuf> Inner<T, B> {
    /// [`shut`](Inner::shut), then cancels every operation in flight and waits until the kernel has
    /// finished with all of them: their packets (and buffers) are returned with the queued ones.
    fn close_all(&self) -> Option<Vec<Packet<T, B>>> {
        let mut queued = self.shut()?;
        if let Some(io) = self.io.get() {
            // The leader, if any, sees `closed` and resigns.
            if lock(&self.state).leader.is_some() {
                io.wake();
            }
            io.cancel_all_and_drain(&mut |p| self.place(p));
            queued.append(&mut lock(&self.state).late);
        }
        Some(queued)
    }

    /// Reaps what completions are there, after any other thread that is reaping, and places their
    /// packets: how a submission that meets `EBUSY` makes progress.
    fn reap_in_place(&self, io: &Io<T, B>) {
        io.reap(true, usize::MAX, &mut |p| self.place(p));
    }

    /// For a thread that holds a slot, with nothing queued: takes up to `max` completions straight
    /// from the ring, skipping the queue (FIFO holds: the queue is empty and the ring is in order).
    fn reap_direct(&self, io: &Io<T, B>, max: usize, out: &mut dyn FnMut(Packet<T, B>)) -> usize {
        if max == 0 || self.maybe_queued() || self.closed.load(Ordering::SeqCst) {
            return 0;
        }
        let n = io.reap(false, max, out);
        if n > 0 {
            let shard = self.shard();
            // Never queued: counted posted and delivered at once.
            shard
                .posts
                .fetch_add((n as u64) << POSTING_BITS, Ordering::Relaxed);
            shard.delivered.fetch_add(n as u64, Ordering::Relaxed);
        }
        n
    }
}

impl<T: Send + 'static, B: IoBuf> Associated for Arc<Inner<T, B>> {
    fn id(&self) -> usize {
        Inner::id(self)
    }

    fn release(&self, mark: usize) {
        // A leader away that now blocks (or exits) would leave the kernel unwatched: hand the
        // role on. (The thread's waiter may be gone already when it exits: it is known by mark.)
        self.hand_off_away(mark);
        self.release_slot();
    }

    fn reacquire(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }
}

/// The test-only hook a leader runs before it enters the kernel (`testing::set_leader_hook`).
static LEADER_HOOK: std::sync::atomic::AtomicPtr<()> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

pub(crate) fn set_leader_hook(hook: Option<fn()>) {
    let p = hook.map_or(std::ptr::null_mut(), |f| f as *mut ());
    LEADER_HOOK.store(p, std::sync::atomic::Ordering::Release);
}

fn run_leader_hook() {
    let p = LEADER_HOOK.load(std::sync::atomic::Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: only `set_leader_hook` stores a non-null pointer, and it is always a `fn()`.
        let f: fn() = unsafe { std::mem::transmute::<*mut (), fn()>(p) };
        f();
    }
}

/// Whether the calling thread already counts as active on the port when it asks for a packet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not active: it must get a slot (`active < concurrency`) to take a packet.
    None,
    /// Active from its previous packet: it keeps that slot if a packet is there at once (NT's fast
    /// path, `KeRemoveQueue`), and gives it back before it sleeps.
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
/// when it waits in `get` again, enters a [`blocking`](crate::blocking) section, or exits.
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
pub struct CompletionPort<T: Send + 'static, B: IoBuf = Vec<u8>> {
    inner: Arc<Inner<T, B>>,
}

impl<T: Send + 'static> CompletionPort<T> {
    /// Creates a port that lets at most `concurrency` threads run packets at once; 0 means the number
    /// of CPUs (as `CreateIoCompletionPort` with `NumberOfConcurrentThreads` = 0). Its operations
    /// take `Vec<u8>` buffers; [`with_concurrency`](CompletionPort::with_concurrency) makes a port for
    /// another [`IoBuf`] type. The io_uring ring is set up by the first operation;
    /// [`Builder`](crate::Builder) sets it up at once.
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn new(concurrency: usize) -> CompletionPort<T> {
        CompletionPort::with_concurrency(concurrency)
    }
}

impl<T: Send + 'static, B: IoBuf> CompletionPort<T, B> {
    /// As [`new`](CompletionPort::new), for a port whose operations take buffers of type `B`.
    pub fn with_concurrency(concurrency: usize) -> CompletionPort<T, B> {
        Self::with_config(concurrency, Config::default())
    }

    /// A port whose I/O (when first needed) is set up by `config`.
    pub(crate) fn with_config(concurrency: usize, config: Config) -> CompletionPort<T, B> {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            concurrency
        };
        CompletionPort {
            inner: Arc::new(Inner {
                concurrency,
                closed: AtomicBool::new(false),
                spilled: AtomicBool::new(false),
                ring: CachePadded::new(Ring::new()),
                grow: Mutex::new(()),
                active: CachePadded::new(AtomicUsize::new(0)),
                sleepers: CachePadded::new(AtomicUsize::new(0)),
                takeovers: AtomicU64::new(0),
                away_mark: AtomicUsize::new(0),
                shards: std::array::from_fn(|_| {
                    CachePadded::new(Shard {
                        posts: AtomicU64::new(0),
                        delivered: AtomicU64::new(0),
                    })
                }),
                state: Mutex::new(State {
                    overflow: VecDeque::new(),
                    waiters: Vec::new(),
                    holders: 0,
                    leader: None,
                    leader_asleep: false,
                    leader_away: false,
                    away_epoch: 0,
                    late: Vec::new(),
                }),
                handles: AtomicUsize::new(1),
                parks: AtomicU64::new(0),
                wakeups: AtomicU64::new(0),
                io: OnceLock::new(),
                config,
            }),
        }
    }

    /// Sets `hook` to run on every operation's packet once the operation has completed and before
    /// the packet is queued (or, for operations ended by [`close`](CompletionPort::close), before
    /// it is returned): it may rewrite the packet's fields. It runs on the thread that reaps the
    /// completion, with the port's operation table locked, so it must be short, must not start or
    /// cancel operations on this port, and must not panic. Packets posted with
    /// [`post`](CompletionPort::post) and those of operations that completed at once
    /// ([`Started::Done`](crate::Started::Done)) do not pass through it.
    ///
    /// This is where a layer that mirrors each operation's status into memory of its own (the C
    /// ABI's `OVERLAPPED.Internal`) writes it, so that the status is there before any thread can
    /// dequeue the packet. Sets up the port's I/O if that is not done yet.
    ///
    /// # Errors
    ///
    /// [`Error::HookSet`] if the port has a hook already, [`Error::Closed`], or
    /// [`Error::Unavailable`] if no backend can be set up.
    pub fn set_completion_hook(&self, hook: fn(&mut Packet<T, B>)) -> Result<(), Error> {
        self.io()?.hook.set(hook).map_err(|_| Error::HookSet)
    }

    /// Moves the completions the kernel has ready into the port's queue, running the
    /// [completion hook](CompletionPort::set_completion_hook) on each, without waiting and without
    /// taking a packet; returns how many. `get` does this itself: this is for a layer that must
    /// see operations complete while no thread waits in `get` (the C ABI's `GetOverlappedResult`
    /// and `closesocket`, whose callers read the status the hook writes).
    pub fn poll_completions(&self) -> usize {
        match self.inner.io.get() {
            Some(io) => io.reap(false, usize::MAX, &mut |p| self.inner.place(p)),
            None => 0,
        }
    }

    /// The concurrency value: how many threads may run packets from this port at once.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Queues a packet with status [`Status::SUCCESS`](crate::Status::SUCCESS). Nothing in it is validated.
    ///
    /// If a thread is waiting and fewer than [`concurrency`](Self::concurrency) threads are active,
    /// the packet goes straight to the thread that waited last and wakes it (only it); otherwise it is
    /// queued behind the packets already there.
    ///
    /// # Errors
    ///
    /// On a closed port the packet is handed back in [`PostError`].
    #[doc(alias = "PostQueuedCompletionStatus")]
    pub fn post(&self, key: usize, bytes: usize, value: T) -> Result<(), PostError<T, B>> {
        self.post_packet(Packet::new(key, bytes, value))
    }

    /// Queues a complete packet, status included (as `NtSetIoCompletion`, which can report a failure).
    ///
    /// # Errors
    ///
    /// On a closed port the packet is handed back in [`PostError`].
    #[doc(alias = "NtSetIoCompletion")]
    pub fn post_packet(&self, packet: Packet<T, B>) -> Result<(), PostError<T, B>> {
        self.inner.post(packet).map_err(PostError)
    }

    /// Gives the port a buffer for [`Handle::recv_provided`](crate::Handle::recv_provided): a
    /// receive that runs takes the oldest one given, and hands it back in its packet. A port holds
    /// up to 4,096; the ones no receive has taken are dropped with the port.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an empty buffer (or one of 4 GiB or more) or when the port
    /// holds 4,096 already; [`Error::Unsupported`] where the kernel has no provided buffer rings
    /// (Linux 5.19); [`Error::Closed`]. The buffer is handed back with the error.
    pub fn provide_buffer(&self, mut buf: B) -> Result<(), (Error, B)> {
        // The buffer's memory is read here, before any lock (it is the program's code).
        let (addr, len) = (buf.as_mut_ptr(), buf.len());
        match self.io() {
            Ok(io) => io.provide(buf, addr, len),
            Err(e) => Err((e, buf)),
        }
    }

    /// Takes the oldest packet, waiting up to `timeout` for one (`None`: forever; zero: just poll).
    ///
    /// If the calling thread was active on this port (it got its previous packet here) and a packet is
    /// queued, it takes it at once and stays active. Otherwise it takes a queued packet if fewer than
    /// [`concurrency`](Self::concurrency) threads are active, or else waits: first briefly spinning
    /// (still counted active, if it was, so the next packet finds a warm thread), then asleep, no
    /// longer counted. Sleeping threads are released last-in first-out.
    ///
    /// With I/O, one waiting thread waits in the kernel for completions. When it takes a packet it
    /// keeps that role while it runs it, and takes up the wait again at its next `get` (the thread
    /// that starts an operation is then usually the one that waits for it, one wake-up per
    /// completion). If it does not come back within about 5 ms (10 ms at most) and is not in a
    /// [`blocking`](crate::blocking) section, a waiting thread takes the role over
    /// ([`PortStats::takeovers`]); meanwhile completions that no thread reaps wait in the kernel.
    ///
    /// # Errors
    ///
    /// [`GetError::TimedOut`] when the timeout passes, [`GetError::Closed`] when the port is or gets
    /// closed. A packet reporting a failed operation is not an error here: see [`Packet::status`].
    #[doc(alias = "GetQueuedCompletionStatus")]
    pub fn get(&self, timeout: Option<Duration>) -> Result<Packet<T, B>, GetError> {
        let slot = if thread::begin_get(self.inner.id()) {
            Slot::Release
        } else {
            Slot::None
        };
        // `take`'s result is handed back as it is: unpacking it with `?` and wrapping it again in
        // `Ok` made the compiler copy the packet through misaligned temporaries (measured: 17 ns
        // of a 66 ns post+get, store-forwarding stalls).
        let got = self.take(slot, timeout);
        if got.is_ok() {
            self.became_active();
        }
        got
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
        out: &mut Vec<Packet<T, B>>,
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
        out: &mut Vec<Packet<T, B>>,
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

    /// Moves up to `max` queued packets, then completions waiting in the ring, into `out`, for a
    /// thread that already holds a slot.
    fn drain(&self, out: &mut Vec<Packet<T, B>>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            match self.inner.pop() {
                Some(packet) => out.push(packet),
                None => break,
            }
            n += 1;
        }
        if n > 0 {
            self.inner
                .shard()
                .delivered
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Some(io) = self.inner.io.get() {
            n += self.inner.reap_direct(io, max - n, &mut |p| out.push(p));
        }
        n
    }

    /// Takes a queued packet if the rules allow it now: a thread holding a slot always may; any other
    /// thread needs a free slot.
    #[inline]
    fn try_take(&self, holding: bool) -> Option<Packet<T, B>> {
        let inner = &*self.inner;
        let packet = if holding {
            inner.pop()?
        } else {
            if !inner.maybe_queued() || !inner.try_acquire() {
                return None;
            }
            match inner.pop() {
                Some(packet) => packet,
                None => {
                    inner.release_slot();
                    return None;
                }
            }
        };
        inner.shard().delivered.fetch_add(1, Ordering::Relaxed);
        Some(packet)
    }

    /// One packet for this thread, by the rules of `slot`.
    #[inline]
    fn take(&self, slot: Slot, timeout: Option<Duration>) -> Result<Packet<T, B>, GetError> {
        // The common case, kept small: this thread holds a slot (and the count is not above the
        // limit) and a packet is in the ring.
        let inner = &*self.inner;
        let keeps_slot = match slot {
            Slot::None => false,
            Slot::Release => inner.active.load(Ordering::SeqCst) <= inner.concurrency,
            Slot::Hold => true,
        };
        if keeps_slot {
            if let Some(packet) = inner.ring.pop() {
                inner.shard().delivered.fetch_add(1, Ordering::Relaxed);
                return Ok(packet);
            }
        }
        self.take_slow(slot, timeout)
    }

    /// Everything but the common case of [`take`](Self::take).
    #[cold]
    #[inline(never)]
    fn take_slow(
        &self,
        mut slot: Slot,
        timeout: Option<Duration>,
    ) -> Result<Packet<T, B>, GetError> {
        let inner = &*self.inner;
        if slot == Slot::Release && inner.active.load(Ordering::SeqCst) > inner.concurrency {
            // Back from a blocking section, the count is above the limit: giving our slot back
            // still leaves it at the limit, so we may not keep it for the next packet (NT: a thread
            // is released only while the count is below the maximum).
            inner.release_slot();
            slot = Slot::None;
        }
        let holding = slot != Slot::None;
        let give_back = || {
            if slot == Slot::Release {
                inner.release_slot();
            }
        };
        // Fast path, then one bounded spin while still holding the slot (if any).
        let mut spun = false;
        loop {
            if inner.closed.load(Ordering::Acquire) {
                give_back();
                return Err(GetError::Closed);
            }
            if let Some(packet) = self.try_take(holding) {
                return Ok(packet);
            }
            if let Some(io) = inner.io.get() {
                // Completions nobody has reaped yet (no thread was waiting in the kernel): take the
                // oldest straight from the ring if we may run one.
                if holding || inner.try_acquire() {
                    let mut got = None;
                    inner.reap_direct(io, 1, &mut |p| got = Some(p));
                    if let Some(packet) = got {
                        return Ok(packet);
                    }
                    if !holding {
                        inner.release_slot();
                    }
                }
            }
            if timeout == Some(Duration::ZERO) {
                give_back();
                // The thread is not going to wait: if it is the away leader, somebody else must.
                inner.hand_off_away(thread::mark());
                return Err(GetError::TimedOut);
            }
            if spun || !spin_until(|| inner.maybe_queued() || inner.closed.load(Ordering::Relaxed))
            {
                break;
            }
            spun = true;
        }

        // Slow path: register on the waiter stack, then look once more.
        let mut st = lock(&inner.state);
        if slot == Slot::Release {
            // No dispatch needed: we look at the queue ourselves below, and if we may not take a
            // packet (the count is still at the limit) no other waiter may either.
            inner.active.fetch_sub(1, Ordering::SeqCst);
        }
        let holding = slot == Slot::Hold;
        if inner.closed.load(Ordering::Acquire) {
            return Err(GetError::Closed);
        }
        let w = my_waiter::<T, B>();
        w.state.store(WAITING, Ordering::Relaxed);
        w.holds_slot.store(holding, Ordering::Relaxed);
        w.watching.store(false, Ordering::Relaxed);
        if holding {
            st.holders += 1;
        }
        st.waiters.push(w.clone());
        inner.sleepers.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fences in `post_packet` and `release_slot`.
        fence(Ordering::SeqCst);
        if holding || inner.try_acquire() {
            if let Some(packet) = inner.pop_locked(&mut st) {
                st.waiters.pop();
                inner.sleepers.fetch_sub(1, Ordering::SeqCst);
                if holding {
                    st.holders -= 1;
                }
                let top = Inner::keep_watch(&st);
                drop(st);
                if let Some(top) = top {
                    top.thread.unpark();
                }
                inner.shard().delivered.fetch_add(1, Ordering::Relaxed);
                return Ok(packet);
            }
            if !holding {
                // A packet pushed from now on is dispatched by its poster, which sees us waiting.
                inner.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        if inner.io.get().is_some() && (st.leader.is_none() || st.leader_away) {
            // With I/O, one waiting thread blocks in the kernel for completions instead of parking:
            // this one, if there is no leader, or if the leader is away running a packet (itself,
            // back for the next, usually; or another thread, which finds it has lost the role).
            st.waiters.pop();
            if holding {
                st.holders -= 1;
            }
            st.leader = Some(w.clone());
            st.leader_asleep = false;
            let _ = inner.set_away(&mut st, false);
            drop(st);
            return self.lead(&w, holding, deadline);
        }
        drop(st);
        self.wait(&w, deadline)
    }

    /// The leader's loop: takes a queued packet or a completion as soon as it may, else blocks in
    /// `io_uring_enter` until a completion, a wake-up NOP or the deadline. Completions it does not
    /// keep go to the port's queue and from there to the followers (LIFO). Leaving, it hands the
    /// role to the follower on top of the stack, so completions are always watched while anyone waits.
    fn lead(
        &self,
        w: &Arc<Waiter<T, B>>,
        holding: bool,
        deadline: Option<Instant>,
    ) -> Result<Packet<T, B>, GetError> {
        let inner = &*self.inner;
        let io = inner
            .io
            .get()
            .expect("a port has a leader only once it has I/O");
        loop {
            let acquired = holding || inner.try_acquire();
            // Queued packets first (FIFO), then the oldest completion.
            let mut mine = if acquired { inner.pop() } else { None };
            let mut direct = false;
            io.reap(true, usize::MAX, &mut |p| {
                // Once the port is closing, completions (its own cancellations among them) belong
                // to `close`, not to a waiter.
                if acquired && mine.is_none() && !inner.closed.load(Ordering::SeqCst) {
                    mine = Some(p);
                    direct = true;
                } else {
                    inner.place(p);
                }
            });
            if let Some(packet) = mine {
                self.step_away(w);
                let shard = inner.shard();
                if direct {
                    // A completion taken straight from the ring was never queued: count it posted
                    // too, so that `posted - delivered` stays what is queued or in hand-off.
                    shard.posts.fetch_add(1 << POSTING_BITS, Ordering::Relaxed);
                }
                shard.delivered.fetch_add(1, Ordering::Relaxed);
                return Ok(packet);
            }
            if acquired && !holding {
                inner.release_slot();
            }
            if inner.closed.load(Ordering::Acquire) {
                self.resign(w);
                return Err(GetError::Closed);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.resign(w);
                return Err(GetError::TimedOut);
            }
            {
                let mut st = lock(&inner.state);
                let may_take = holding || inner.active.load(Ordering::SeqCst) < inner.concurrency;
                if may_take && inner.maybe_queued() {
                    continue;
                }
                // From here a poster that queues a packet for us sends a wake-up NOP.
                st.leader_asleep = true;
            }
            inner.parks.fetch_add(1, Ordering::Relaxed);
            run_leader_hook();
            io.wait(deadline, &mut || inner.reap_in_place(io));
            inner.wakeups.fetch_add(1, Ordering::Relaxed);
            lock(&inner.state).leader_asleep = false;
        }
    }

    /// Gives up the leader role, handing it to the follower on top of the stack.
    fn resign(&self, w: &Arc<Waiter<T, B>>) {
        let inner = &*self.inner;
        let next = {
            let mut st = lock(&inner.state);
            if st.leader.as_ref().is_some_and(|l| Arc::ptr_eq(l, w)) {
                st.leader = None;
                st.leader_asleep = false;
                // One sleeper fewer: we leave, and the follower moves from the stack to our place.
                inner.sleepers.fetch_sub(1, Ordering::SeqCst);
                st.top_to_leader()
            } else {
                None
            }
        };
        if let Some(next) = next {
            next.promote();
        }
    }

    /// The leader leaves with a packet to run: it keeps the role, away (see "The leader keeps its
    /// role"), so that no follower is woken to take it. It no longer counts as a sleeper.
    fn step_away(&self, w: &Arc<Waiter<T, B>>) {
        let inner = &*self.inner;
        let mut st = lock(&inner.state);
        if st.leader.as_ref().is_some_and(|l| Arc::ptr_eq(l, w)) {
            st.leader_asleep = false;
            let top = inner.set_away(&mut st, true);
            inner.sleepers.fetch_sub(1, Ordering::SeqCst);
            drop(st);
            if let Some(top) = top {
                top.thread.unpark();
            }
        }
    }

    /// A follower whose [`TAKEOVER`] park ended: it takes the role if the leader has been away
    /// since before it parked (departure `epoch`) and nobody has popped it meanwhile (else a
    /// hand-off is landing).
    fn take_over(&self, w: &Arc<Waiter<T, B>>, epoch: u64) -> bool {
        let inner = &*self.inner;
        let mut st = lock(&inner.state);
        if !st.leader_away || st.away_epoch != epoch || inner.closed.load(Ordering::Acquire) {
            return false;
        }
        let Some(i) = st.waiters.iter().rposition(|x| Arc::ptr_eq(x, w)) else {
            return false;
        };
        // From the stack to the leader's place: still one sleeper.
        st.waiters.remove(i);
        if w.holds_slot.load(Ordering::Relaxed) {
            st.holders -= 1;
        }
        st.leader = Some(w.clone());
        st.leader_asleep = false;
        let _ = inner.set_away(&mut st, false);
        inner.takeovers.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Waits on this thread's waiter until a packet is handed over, the port closes, or `deadline`.
    fn wait(
        &self,
        w: &Arc<Waiter<T, B>>,
        deadline: Option<Instant>,
    ) -> Result<Packet<T, B>, GetError> {
        let given = deadline;
        let mut deadline = deadline;
        // The leader's last departure this waiter saw (`Inner::watch`).
        let mut seen = None;
        if !spin_until(|| !w.is_waiting()) {
            self.inner.parks.fetch_add(1, Ordering::Relaxed);
            // Check before every park, not only after: once `unregister` has failed the hand-off may
            // already have landed, and then only the unpark token would wake us.
            while w.is_waiting() {
                // While the leader is away nobody waits in the kernel: the follower on top keeps
                // watch, and takes the role over once the leader has been away a whole period.
                let watch = self.inner.watch(w, &mut seen);
                if !w.is_waiting() {
                    // A hand-off landed while `watch` waited for the lock: no park needed. (Under
                    // loom this check is needed, not only cheaper: loom drops the unpark token of
                    // a thread blocked on a mutex, tokio-rs/loom#249.)
                    break;
                }
                let look = watch.map(|_| Instant::now() + TAKEOVER);
                // Which end the park has: the caller's deadline, or the next look.
                let (until, at_deadline) = match (deadline, look) {
                    (Some(d), Some(t)) if t < d => (Some(t), false),
                    (Some(d), _) => (Some(d), true),
                    (None, t) => (t, false),
                };
                let woke_at_end = park_until(until);
                self.inner.wakeups.fetch_add(1, Ordering::Relaxed);
                if !w.is_waiting() {
                    break;
                }
                if !woke_at_end {
                    continue;
                }
                if at_deadline {
                    if self.unregister(w) {
                        return Err(GetError::TimedOut);
                    }
                    // A poster or `close` popped us already: its hand-off is about to land.
                    deadline = None;
                } else if let Some(Some(epoch)) = watch {
                    if self.take_over(w, epoch) {
                        return self.lead(w, w.holds_slot.load(Ordering::Relaxed), given);
                    }
                }
            }
        }
        match w.state.load(Ordering::Acquire) {
            READY => Ok(lock(&w.slot).take().expect("a READY waiter holds a packet")),
            LEAD => self.lead(w, w.holds_slot.load(Ordering::Relaxed), given),
            _ => Err(GetError::Closed),
        }
    }

    /// Removes `w` from the waiter stack; `false` if someone already popped it.
    fn unregister(&self, w: &Arc<Waiter<T, B>>) -> bool {
        let mut st = lock(&self.inner.state);
        match st.waiters.iter().rposition(|x| Arc::ptr_eq(x, w)) {
            Some(i) => {
                st.waiters.remove(i);
                self.inner.sleepers.fetch_sub(1, Ordering::SeqCst);
                if w.holds_slot.load(Ordering::Relaxed) {
                    st.holders -= 1;
                }
                let top = Inner::keep_watch(&st);
                drop(st);
                if let Some(top) = top {
                    top.thread.unpark();
                }
                true
            }
            None => false,
        }
    }

    /// The port's io_uring side, set up on first use. If threads are already waiting, the one on top
    /// becomes the leader, so that the first completions are watched.
    pub(crate) fn io(&self) -> Result<&Io<T, B>, Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if let Some(io) = self.inner.io.get() {
            return Ok(io);
        }
        let next = {
            let mut st = lock(&self.inner.state);
            if self.inner.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            if self.inner.io.get().is_none() {
                let io = Io::new(&self.inner.config)?;
                let _ = self.inner.io.set(io);
            }
            if st.leader.is_none() {
                st.top_to_leader()
            } else {
                None
            }
        };
        if let Some(next) = next {
            next.promote();
        }
        Ok(self.inner.io.get().expect("set above"))
    }

    /// The io_uring side if it has been set up.
    pub(crate) fn io_if_set(&self) -> Option<&Io<T, B>> {
        self.inner.io.get()
    }

    /// Reaps in place (see `Inner::reap_in_place`).
    pub(crate) fn reap_in_place(&self) {
        if let Some(io) = self.inner.io.get() {
            self.inner.reap_in_place(io);
        }
    }

    /// This port's identity (for batches).
    pub(crate) fn id(&self) -> usize {
        self.inner.id()
    }

    fn became_active(&self) {
        thread::set_active(self.inner.id(), || Box::new(self.inner.clone()));
    }

    /// Closes the port: every waiting thread wakes with [`GetError::Closed`], later posts fail, and the
    /// packets still queued are returned, oldest first, so nothing is dropped unseen. Closing a closed
    /// port returns nothing.
    #[doc(alias = "CloseHandle")]
    pub fn close(&self) -> Vec<Packet<T, B>> {
        self.inner.close_all().unwrap_or_default()
    }

    /// Whether [`close`](Self::close) has been called (or every handle dropped).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// A snapshot of the port's counters. Each is exact when read; taken together while other
    /// threads post and get, they may be a few operations apart.
    pub fn stats(&self) -> PortStats {
        let inner = &*self.inner;
        let (queued, waiting) = {
            let st = lock(&inner.state);
            (
                inner.ring.len() + st.overflow.len(),
                st.waiters.len() + usize::from(st.leader.is_some() && !st.leader_away),
            )
        };
        let sum = |f: fn(&Shard) -> u64| inner.shards.iter().map(|s| f(s)).sum();
        PortStats {
            concurrency: inner.concurrency,
            queued,
            waiting,
            active: inner.active.load(Ordering::SeqCst),
            posted: sum(|s| {
                (s.posts.load(Ordering::Relaxed) & !(CLOSED_BIT | GROW_BIT)) >> POSTING_BITS
            }),
            delivered: sum(|s| s.delivered.load(Ordering::Relaxed)),
            parks: inner.parks.load(Ordering::Relaxed),
            wakeups: inner.wakeups.load(Ordering::Relaxed),
            takeovers: inner.takeovers.load(Ordering::Relaxed),
            closed: inner.closed.load(Ordering::Acquire),
        }
    }
}

impl<T: Send + 'static, B: IoBuf> Default for CompletionPort<T, B> {
    /// A port whose concurrency value is the number of CPUs.
    fn default() -> Self {
        CompletionPort::with_concurrency(0)
    }
}

impl<T: Send + 'static, B: IoBuf> Clone for CompletionPort<T, B> {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        CompletionPort {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + 'static, B: IoBuf> Drop for CompletionPort<T, B> {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last handle: close, and drop what is queued here rather than whenever the last
        // associated thread lets go of the core. No thread can be waiting: it would hold a handle.
        drop(self.inner.close_all());
    }
}

impl<T: Send + 'static, B: IoBuf> fmt::Debug for CompletionPort<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("CompletionPort")
            .field("concurrency", &inner.concurrency)
            .field("active", &inner.active.load(Ordering::Relaxed))
            .field("sleepers", &inner.sleepers.load(Ordering::Relaxed))
            .field("closed", &inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
