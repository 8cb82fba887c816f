//! `CRITICAL_SECTION`, `SRWLOCK` and `CONDITION_VARIABLE`: Windows' locks, in the caller's memory,
//! with Windows' layouts (Win64) and semantics. The `Interlocked` family is header-only
//! (`include/iocport/locks.h`): on x64 Windows those are compiler intrinsics too.
//!
//! How they are made:
//! - The lock word of each is a [`parking_lot`] raw lock laid in place in the caller's structure:
//!   a `RawMutex` in a `CRITICAL_SECTION`'s `LockSemaphore`, a `RawRwLock` as the whole `SRWLOCK`.
//!   Their unlocked state is all-zero bytes (a unit test holds parking_lot to that), so
//!   `SRWLOCK_INIT` (`{0}`) is a valid unlocked lock, as on Windows, and nothing needs destroying.
//!   Every state those words can hold is a valid value (they are atomics of plain integers), so
//!   even a section that was never initialised is memory-safe to use.
//! - A `CRITICAL_SECTION` is recursive, as on Windows: `OwningThread` holds the owner's thread id
//!   (Linux's `gettid`, which is what `GetCurrentThreadId` returns) and `RecursionCount` the depth.
//!   Only the owner writes either (the std and parking_lot reentrant mutexes' scheme), so a thread
//!   that reads its own id there owns the section.
//! - A `CONDITION_VARIABLE` parks its sleepers with [`parking_lot_core::park`], keyed on its own
//!   address. The sleeper is queued *before* its lock is released (`park`'s `before_sleep`), so a
//!   wake that follows the release finds it: no wake-up is lost. Its one word counts the sleepers,
//!   so a wake with nobody asleep costs one load.
//! - A thread that blocks (a contended lock, after a short spin; any condition-variable sleep) is
//!   inside an [`iocport::enter_blocking`] section meanwhile: it stops counting against its port's
//!   concurrency value, as a Windows thread blocked in the kernel does, so the port may release
//!   another worker. Without that, a worker waiting on a condition variable for another worker's
//!   packet would wait forever on a port of concurrency 1.
//!
//! Misuse that Windows leaves undefined is made harmless where it can be seen: see
//! `LeaveCriticalSection`, `DeleteCriticalSection`, the SRW releases and the sleeps. NULL (or
//! misaligned) pointers are refused: functions that return a value fail with
//! `ERROR_INVALID_PARAMETER`; `void` ones do nothing and leave the last error as it was.
//!
//! The ownership and recursion bookkeeping and the condition-variable glue are model-checked under
//! loom (`loom_models` at the end; `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=4 cargo test -p
//! iocport-capi --release --lib locks::`, as `scripts/test.sh` runs it), with models of the raw
//! locks and of `park` standing in for parking_lot (module `sys`).
//!
//! # References
//! - Win32: `synchapi.h` (`InitializeCriticalSectionEx`, `SleepConditionVariableSRW`, ...) and
//!   `winnt.h` (`RTL_CRITICAL_SECTION`, `RTL_SRWLOCK`, `RTL_CONDITION_VARIABLE`).
//! - The field values a section shows on Windows (`LockCount` -1 free and -2 held, `DebugInfo`
//!   `(PVOID)-1`, `SpinCount` 0x020007D0 by default on a multiprocessor, the parameter checks of
//!   `InitializeCriticalSectionEx`) follow ReactOS' API tests of `RtlInitializeCriticalSection*`,
//!   which were run against Windows.

#![allow(non_camel_case_types, clippy::upper_case_acronyms)]
// The models use only part of what the C entry points use.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

use std::ffi::c_void;
use std::time::{Duration, Instant};

#[cfg(not(loom))]
use parking_lot::lock_api::{RawMutex as _, RawRwLock as _};

use sys::atomic::AtomicI32;
use sys::atomic::AtomicPtr;
use sys::atomic::AtomicUsize;
use sys::atomic::Ordering::{Relaxed, SeqCst};
use sys::{RawMutex, RawRwLock};

#[cfg(not(loom))]
use crate::guard;
#[cfg(not(loom))]
use crate::status::set_last_error;
use crate::types::*;

/// `ERROR_NOT_OWNER`: sleeping on a lock the thread does not hold.
pub const ERROR_NOT_OWNER: DWORD = 288;
/// `ERROR_TIMEOUT`: a condition-variable sleep timed out.
pub const ERROR_TIMEOUT: DWORD = 1460;
/// `SleepConditionVariableSRW`: the lock is held shared.
pub const CONDITION_VARIABLE_LOCKMODE_SHARED: ULONG = 1;
/// `SpinCount` flag: no debug information (`CRITICAL_SECTION_NO_DEBUG_INFO`).
pub const RTL_CRITICAL_SECTION_FLAG_NO_DEBUG_INFO: DWORD = 0x0100_0000;
/// `SpinCount` flag: the spin adapts (Windows' default).
pub const RTL_CRITICAL_SECTION_FLAG_DYNAMIC_SPIN: DWORD = 0x0200_0000;
/// `SpinCount` flag: a resource type section (kept, no effect).
pub const RTL_CRITICAL_SECTION_FLAG_RESOURCE_TYPE: DWORD = 0x0800_0000;
/// The `InitializeCriticalSectionEx` flags Windows (7 and later) accepts.
const ALLOWED_FLAGS: DWORD = 0x1FFF_FFFF;
/// The flags Windows keeps in `SpinCount`.
const KEPT_FLAGS: DWORD = RTL_CRITICAL_SECTION_FLAG_NO_DEBUG_INFO
    | RTL_CRITICAL_SECTION_FLAG_DYNAMIC_SPIN
    | RTL_CRITICAL_SECTION_FLAG_RESOURCE_TYPE;
/// The spin count proper: the low 24 bits of `SpinCount`.
const SPIN_MASK: usize = 0x00FF_FFFF;
/// What Windows (Vista and later, on a multiprocessor) stores for a spin count of 0: 2000, dynamic.
const DEFAULT_SPIN_COUNT: usize = RTL_CRITICAL_SECTION_FLAG_DYNAMIC_SPIN as usize | 2000;
/// How many times a dynamic-spin section (and an SRW lock) checks the lock before it blocks.
/// Windows adapts its spin from 2000 down as spinning stops paying; parking_lot spins briefly
/// again before it parks, so a short budget here is enough.
const DYNAMIC_SPINS: usize = 128;
/// `LockCount` of a free section, as Windows shows it.
const LOCK_COUNT_FREE: i32 = -1;
/// `LockCount` of a held section, as Windows shows it while no thread waits (Windows subtracts 4
/// more per waiting thread; here the waiters are counted in the lock word instead).
const LOCK_COUNT_HELD: i32 = -2;
/// `DebugInfo` of an initialised section: Windows 8 and later allocate no debug information and
/// store `(PVOID)-1`.
const NO_DEBUG_INFO: *mut c_void = std::ptr::without_provenance_mut(usize::MAX);

// ---- The primitives underneath -------------------------------------------------------------------

/// parking_lot's raw locks and parking, the thread id and the port's blocking sections: the one
/// place the code above reaches them, swapped for models under loom.
#[cfg(not(loom))]
mod sys {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use parking_lot_core::{ParkResult, DEFAULT_PARK_TOKEN, DEFAULT_UNPARK_TOKEN};

    pub(crate) use parking_lot::{RawMutex, RawRwLock};
    pub(crate) use std::sync::atomic;

    /// The calling thread's id: Linux's (`gettid`), never 0, as `GetCurrentThreadId` returns it.
    /// Cached per thread, so entering a section costs no system call.
    pub(crate) fn tid() -> usize {
        // The same cache as GetCurrentThreadId's (reset in a fork child).
        crate::thread::current_tid() as usize
    }

    /// The number of processors (`sysconf(_SC_NPROCESSORS_ONLN)`), read once: Windows spins only
    /// on a multiprocessor.
    pub(crate) fn processors() -> usize {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.load(Ordering::Relaxed);
        if n != 0 {
            return n;
        }
        // SAFETY: sysconf reads a system value; it has no memory arguments.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
        N.store(n, Ordering::Relaxed);
        n
    }

    /// The port's blocking section (see the module's documentation).
    pub(crate) fn blocking() -> iocport::BlockingGuard {
        iocport::enter_blocking()
    }

    /// Queues the calling thread on `key`, runs `before_sleep`, then sleeps until [`unpark_one`] or
    /// [`unpark_all`] on `key` takes it off the queue (`true`) or `deadline` passes first (`false`).
    ///
    /// # Safety
    /// `key` is the address of an object of this module's caller that no parking_lot lock lives at
    /// (a condition variable), so no other primitive parks on it. `before_sleep` must not panic nor
    /// park (`parking_lot_core::park`'s rules); it may unlock parking_lot locks.
    pub(crate) unsafe fn park(
        key: usize,
        before_sleep: impl FnOnce(),
        deadline: Option<Instant>,
    ) -> bool {
        // SAFETY: the key is ours (above); `validate` and `timed_out` do nothing, so they neither
        // panic nor call into parking_lot; `before_sleep` obeys the rules by this function's
        // contract.
        let r = unsafe {
            parking_lot_core::park(
                key,
                || true,
                before_sleep,
                |_, _| {},
                DEFAULT_PARK_TOKEN,
                deadline,
            )
        };
        !matches!(r, ParkResult::TimedOut)
    }

    /// Wakes the thread queued longest on `key`, if any.
    pub(crate) fn unpark_one(key: usize) {
        // SAFETY: keys are condition variables' addresses (see `park`); the callback neither
        // panics nor calls into parking_lot.
        unsafe { parking_lot_core::unpark_one(key, |_| DEFAULT_UNPARK_TOKEN) };
    }

    /// Wakes every thread queued on `key`.
    pub(crate) fn unpark_all(key: usize) {
        // SAFETY: keys are condition variables' addresses (see `park`).
        unsafe { parking_lot_core::unpark_all(key, DEFAULT_UNPARK_TOKEN) };
    }
}

/// Models of the primitives for loom: locks made of loom's mutex and condition variable, and a
/// parking lot that keeps `parking_lot_core::park`'s promise (the thread is queued before
/// `before_sleep` runs; a timeout races with a wake-up and only one of them wins, under the queue's
/// lock). A deadline is modelled as one that may have passed at any moment after `before_sleep`.
#[cfg(loom)]
mod sys {
    use std::time::Instant;

    use loom::sync::{Arc, Condvar, Mutex};

    pub(crate) use loom::sync::atomic;

    /// A mutex with parking_lot's `RawMutex` methods.
    pub(crate) struct RawMutex {
        locked: Mutex<bool>,
        cv: Condvar,
    }

    impl RawMutex {
        pub(crate) fn new() -> RawMutex {
            RawMutex {
                locked: Mutex::new(false),
                cv: Condvar::new(),
            }
        }
        pub(crate) fn lock(&self) {
            let mut l = self.locked.lock().unwrap();
            while *l {
                l = self.cv.wait(l).unwrap();
            }
            *l = true;
        }
        pub(crate) fn try_lock(&self) -> bool {
            let mut l = self.locked.lock().unwrap();
            !std::mem::replace(&mut *l, true)
        }
        pub(crate) fn is_locked(&self) -> bool {
            *self.locked.lock().unwrap()
        }
        /// # Safety
        /// The lock is held (as parking_lot's).
        pub(crate) unsafe fn unlock(&self) {
            let mut l = self.locked.lock().unwrap();
            assert!(*l, "unlock of a free mutex");
            *l = false;
            self.cv.notify_one();
        }
    }

    /// A reader/writer lock with parking_lot's `RawRwLock` methods: (readers, writer).
    pub(crate) struct RawRwLock {
        state: Mutex<(usize, bool)>,
        cv: Condvar,
    }

    impl RawRwLock {
        pub(crate) fn new() -> RawRwLock {
            RawRwLock {
                state: Mutex::new((0, false)),
                cv: Condvar::new(),
            }
        }
        pub(crate) fn lock_exclusive(&self) {
            let mut s = self.state.lock().unwrap();
            while s.0 != 0 || s.1 {
                s = self.cv.wait(s).unwrap();
            }
            s.1 = true;
        }
        pub(crate) fn try_lock_exclusive(&self) -> bool {
            let mut s = self.state.lock().unwrap();
            if s.0 != 0 || s.1 {
                return false;
            }
            s.1 = true;
            true
        }
        pub(crate) fn lock_shared(&self) {
            let mut s = self.state.lock().unwrap();
            while s.1 {
                s = self.cv.wait(s).unwrap();
            }
            s.0 += 1;
        }
        pub(crate) fn try_lock_shared(&self) -> bool {
            let mut s = self.state.lock().unwrap();
            if s.1 {
                return false;
            }
            s.0 += 1;
            true
        }
        pub(crate) fn is_locked(&self) -> bool {
            let s = self.state.lock().unwrap();
            s.0 != 0 || s.1
        }
        pub(crate) fn is_locked_exclusive(&self) -> bool {
            self.state.lock().unwrap().1
        }
        /// # Safety
        /// Held exclusively (as parking_lot's).
        pub(crate) unsafe fn unlock_exclusive(&self) {
            let mut s = self.state.lock().unwrap();
            assert!(s.1, "exclusive unlock of a lock not held so");
            s.1 = false;
            self.cv.notify_all();
        }
        /// # Safety
        /// Held shared (as parking_lot's).
        pub(crate) unsafe fn unlock_shared(&self) {
            let mut s = self.state.lock().unwrap();
            assert!(s.0 > 0, "shared unlock of a lock not held so");
            s.0 -= 1;
            self.cv.notify_all();
        }
    }

    /// Thread ids: distinct and non-zero within an execution.
    pub(crate) fn tid() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        loom::thread_local! {
            static TID: std::cell::Cell<usize> = std::cell::Cell::new(0);
        }
        TID.with(|t| {
            if t.get() == 0 {
                t.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            t.get()
        })
    }

    pub(crate) fn processors() -> usize {
        2
    }

    pub(crate) fn blocking() {}

    struct Parked {
        key: usize,
        woken: Mutex<bool>,
        cv: Condvar,
    }

    loom::lazy_static! {
        static ref QUEUE: Mutex<Vec<Arc<Parked>>> = Mutex::new(Vec::new());
    }

    /// See the real `park`.
    ///
    /// # Safety
    /// As the real one's.
    pub(crate) unsafe fn park(
        key: usize,
        before_sleep: impl FnOnce(),
        deadline: Option<Instant>,
    ) -> bool {
        let me = Arc::new(Parked {
            key,
            woken: Mutex::new(false),
            cv: Condvar::new(),
        });
        QUEUE.lock().unwrap().push(me.clone());
        before_sleep();
        if deadline.is_some() {
            let mut q = QUEUE.lock().unwrap();
            if let Some(i) = q.iter().position(|p| Arc::ptr_eq(p, &me)) {
                q.remove(i);
                return false;
            }
        }
        let mut woken = me.woken.lock().unwrap();
        while !*woken {
            woken = me.cv.wait(woken).unwrap();
        }
        true
    }

    fn wake(p: Arc<Parked>) {
        *p.woken.lock().unwrap() = true;
        p.cv.notify_one();
    }

    pub(crate) fn unpark_one(key: usize) {
        let p = {
            let mut q = QUEUE.lock().unwrap();
            q.iter().position(|p| p.key == key).map(|i| q.remove(i))
        };
        if let Some(p) = p {
            wake(p);
        }
    }

    pub(crate) fn unpark_all(key: usize) {
        let all: Vec<_> = {
            let mut q = QUEUE.lock().unwrap();
            let (mine, rest) = q.drain(..).partition(|p| p.key == key);
            *q = rest;
            mine
        };
        for p in all {
            wake(p);
        }
    }

    /// How many threads are queued on `key`.
    pub(crate) fn parked(key: usize) -> usize {
        QUEUE
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.key == key)
            .count()
    }
}

/// Checks the lock until `try_take` succeeds or `spins` checks (a pause between each) are spent,
/// then blocks in `take` inside a blocking section. Where `is_free` says the lock is taken, no
/// `try_take` is attempted (test and test-and-set: the line stays shared while it is held).
fn contend(
    spins: usize,
    is_free: impl Fn() -> bool,
    try_take: impl Fn() -> bool,
    take: impl FnOnce(),
) {
    for _ in 0..spins {
        std::hint::spin_loop();
        if is_free() && try_take() {
            return;
        }
    }
    let _blocked = sys::blocking();
    take();
}

/// How many checks a contended lock spends before blocking: none on a uniprocessor.
fn spin_budget(spin_count: usize) -> usize {
    if sys::processors() < 2 {
        0
    } else if spin_count & RTL_CRITICAL_SECTION_FLAG_DYNAMIC_SPIN as usize != 0 {
        (spin_count & SPIN_MASK).min(DYNAMIC_SPINS)
    } else {
        spin_count & SPIN_MASK
    }
}

// ---- CRITICAL_SECTION ----------------------------------------------------------------------------

/// The lock word of a section, in `LockSemaphore`'s 8 bytes (Windows keeps an event handle there,
/// made when the section is first contended).
#[repr(C, align(8))]
struct LockWord(RawMutex);

/// `CRITICAL_SECTION` (`RTL_CRITICAL_SECTION`): 40 bytes, Windows' fields at Windows' offsets.
/// Every field is an atomic (or the raw lock, an atomic byte): any 40 bytes are a valid value.
#[repr(C)]
pub struct CRITICAL_SECTION {
    /// `(PVOID)-1` once initialised (Windows 8 and later keep no debug information), NULL after
    /// `DeleteCriticalSection`.
    DebugInfo: AtomicPtr<c_void>,
    /// -1 while free, -2 while held (`LOCK_COUNT_HELD`).
    LockCount: AtomicI32,
    /// The owner's depth of entries; 0 while free. Written by the owner only.
    RecursionCount: AtomicI32,
    /// The owner's thread id; 0 while free. Written by the owner only: its own id after it takes
    /// the lock word, 0 before it releases it.
    OwningThread: AtomicUsize,
    /// The lock word: parking_lot's raw mutex (non-zero while held or waited for, else 0).
    LockSemaphore: LockWord,
    /// The spin count (low 24 bits) and the flags Windows keeps there.
    SpinCount: AtomicUsize,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<RawMutex>() <= 8 && align_of::<RawMutex>() <= 8);
    assert!(size_of::<LockWord>() == 8);
    assert!(size_of::<CRITICAL_SECTION>() == 40);
    assert!(align_of::<CRITICAL_SECTION>() == 8);
    assert!(offset_of!(CRITICAL_SECTION, DebugInfo) == 0);
    assert!(offset_of!(CRITICAL_SECTION, LockCount) == 8);
    assert!(offset_of!(CRITICAL_SECTION, RecursionCount) == 12);
    assert!(offset_of!(CRITICAL_SECTION, OwningThread) == 16);
    assert!(offset_of!(CRITICAL_SECTION, LockSemaphore) == 24);
    assert!(offset_of!(CRITICAL_SECTION, SpinCount) == 32);
};

impl CRITICAL_SECTION {
    /// A fresh section, for the models (the C entry points initialise in place).
    #[cfg(loom)]
    fn new(spin_count: usize) -> CRITICAL_SECTION {
        CRITICAL_SECTION {
            DebugInfo: AtomicPtr::new(NO_DEBUG_INFO),
            LockCount: AtomicI32::new(LOCK_COUNT_FREE),
            RecursionCount: AtomicI32::new(0),
            OwningThread: AtomicUsize::new(0),
            LockSemaphore: LockWord(RawMutex::new()),
            SpinCount: AtomicUsize::new(spin_count),
        }
    }

    fn raw(&self) -> &RawMutex {
        &self.LockSemaphore.0
    }

    /// Whether thread `me` owns the section. Only `me` ever stores `me` in `OwningThread`, and it
    /// stores 0 there before it releases the lock word: by coherence it cannot read its own id
    /// back after that, so `Relaxed` suffices (as in std's `ReentrantLock`).
    fn owned_by(&self, me: usize) -> bool {
        self.OwningThread.load(Relaxed) == me
    }

    /// The owner enters once more.
    fn deepen(&self) {
        let depth = self.RecursionCount.load(Relaxed);
        let deeper = depth
            .checked_add(1)
            .expect("CRITICAL_SECTION entered 2^31 times");
        self.RecursionCount.store(deeper, Relaxed);
    }

    /// Thread `me` has just taken the lock word: it owns the section at `depth`.
    fn took(&self, me: usize, depth: i32) {
        self.OwningThread.store(me, Relaxed);
        self.RecursionCount.store(depth, Relaxed);
        self.LockCount.store(LOCK_COUNT_HELD, Relaxed);
    }

    /// Takes the lock word for thread `me` at `depth` (not owned by `me` yet), blocking if need be.
    fn lock_at(&self, me: usize, depth: i32) {
        let raw = self.raw();
        if !raw.try_lock() {
            let spins = spin_budget(self.SpinCount.load(Relaxed));
            contend(spins, || !raw.is_locked(), || raw.try_lock(), || raw.lock());
        }
        self.took(me, depth);
    }

    /// `EnterCriticalSection`.
    fn enter(&self) {
        let me = sys::tid();
        if self.owned_by(me) {
            self.deepen();
        } else {
            self.lock_at(me, 1);
        }
    }

    /// `TryEnterCriticalSection`.
    fn try_enter(&self) -> bool {
        let me = sys::tid();
        if self.owned_by(me) {
            self.deepen();
            true
        } else if self.raw().try_lock() {
            self.took(me, 1);
            true
        } else {
            false
        }
    }

    /// `LeaveCriticalSection`: `false` (and nothing done) if the calling thread is not the owner.
    fn leave(&self) -> bool {
        if !self.owned_by(sys::tid()) {
            return false;
        }
        let depth = self.RecursionCount.load(Relaxed);
        if depth > 1 {
            self.RecursionCount.store(depth - 1, Relaxed);
        } else {
            self.release_all();
        }
        true
    }

    /// The owner gives the section up whatever its depth, which it returns. Only atomic stores
    /// and parking_lot's unlock: it neither panics nor parks (it runs as `park`'s `before_sleep`).
    fn release_all(&self) -> i32 {
        let depth = self.RecursionCount.load(Relaxed);
        self.RecursionCount.store(0, Relaxed);
        self.OwningThread.store(0, Relaxed);
        self.LockCount.store(LOCK_COUNT_FREE, Relaxed);
        // SAFETY: the caller owns the section, so it holds the lock word (the owner took it and
        // has not released it: ownership ends only here).
        unsafe { self.raw().unlock() };
        depth
    }

    /// `DeleteCriticalSection`: released if the caller holds it (whatever the depth); marked
    /// deleted (`DebugInfo` NULL) unless another thread holds it, which is then left alone.
    fn delete(&self) {
        if self.owned_by(sys::tid()) {
            self.release_all();
        }
        if self.raw().try_lock() {
            self.DebugInfo.store(std::ptr::null_mut(), Relaxed);
            self.LockCount.store(LOCK_COUNT_FREE, Relaxed);
            // SAFETY: taken just above.
            unsafe { self.raw().unlock() };
        }
    }
}

/// What `SpinCount` holds for a requested spin count (its low 24 bits) and flags: Windows' default
/// for 0, nothing but the flags on a uniprocessor.
fn spin_field(spin: DWORD, flags: DWORD) -> usize {
    let flags = (flags & KEPT_FLAGS) as usize;
    if sys::processors() < 2 {
        return flags;
    }
    match spin as usize & SPIN_MASK {
        0 => DEFAULT_SPIN_COUNT | flags,
        n => n | flags,
    }
}

// ---- SRWLOCK -------------------------------------------------------------------------------------

/// `SRWLOCK` (`RTL_SRWLOCK`): one pointer-sized word, parking_lot's raw reader/writer lock.
#[repr(C)]
pub struct SRWLOCK {
    Ptr: RawRwLock,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<SRWLOCK>() == size_of::<*mut c_void>());
    assert!(align_of::<SRWLOCK>() == align_of::<*mut c_void>());
};

impl SRWLOCK {
    #[cfg(loom)]
    fn new() -> SRWLOCK {
        SRWLOCK {
            Ptr: RawRwLock::new(),
        }
    }

    fn acquire_exclusive(&self) {
        let raw = &self.Ptr;
        if !raw.try_lock_exclusive() {
            let spins = spin_budget(DEFAULT_SPIN_COUNT);
            contend(
                spins,
                || !raw.is_locked(),
                || raw.try_lock_exclusive(),
                || raw.lock_exclusive(),
            );
        }
    }

    fn acquire_shared(&self) {
        let raw = &self.Ptr;
        if !raw.try_lock_shared() {
            let spins = spin_budget(DEFAULT_SPIN_COUNT);
            contend(
                spins,
                || !raw.is_locked_exclusive(),
                || raw.try_lock_shared(),
                || raw.lock_shared(),
            );
        }
    }

    /// Releases an exclusive hold; ignored if the lock is not held exclusively by anyone. Neither
    /// panics nor parks.
    fn release_exclusive(&self) {
        if self.Ptr.is_locked_exclusive() {
            // SAFETY: the caller declares it holds the lock exclusively; a caller that does not is
            // a bug Windows leaves undefined too. The lock is at worst left in a wrong state
            // (integers), never unsafe memory.
            unsafe { self.Ptr.unlock_exclusive() };
        }
    }

    /// Releases a shared hold; ignored if the lock is not held at all. (While readers hold it a
    /// waiting writer already shows in the state, so "held exclusively" cannot be refused here.)
    fn release_shared(&self) {
        if self.Ptr.is_locked() {
            // SAFETY: as `release_exclusive`, for a shared hold.
            unsafe { self.Ptr.unlock_shared() };
        }
    }
}

// ---- CONDITION_VARIABLE --------------------------------------------------------------------------

/// `CONDITION_VARIABLE` (`RTL_CONDITION_VARIABLE`): one pointer-sized word, the number of threads
/// between the start and the end of a sleep on it. Sleepers park on the variable's address.
#[repr(C)]
pub struct CONDITION_VARIABLE {
    Ptr: AtomicUsize,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<CONDITION_VARIABLE>() == size_of::<*mut c_void>());
    assert!(align_of::<CONDITION_VARIABLE>() == align_of::<*mut c_void>());
};

impl CONDITION_VARIABLE {
    #[cfg(loom)]
    fn new() -> CONDITION_VARIABLE {
        CONDITION_VARIABLE {
            Ptr: AtomicUsize::new(0),
        }
    }

    fn key(&self) -> usize {
        self as *const CONDITION_VARIABLE as usize
    }

    /// Sleeps until woken (`true`) or until `deadline` (`false`). `release` gives up the caller's
    /// lock once the thread is queued, so a wake that comes after it finds the thread; `reacquire`
    /// takes the lock back, woken or not.
    ///
    /// The count: a sleeper counts itself while it still holds the lock. A waker that changed the
    /// predicate under that lock (after the sleeper saw it false) holds it after the sleeper's
    /// release, so it sees the count (the lock orders them), and the sleeper is already queued.
    /// A waker outside that protocol races on Windows as well.
    ///
    /// # Safety
    /// `release` must not panic nor park (it runs as `park`'s `before_sleep`).
    unsafe fn sleep(
        &self,
        deadline: Option<Instant>,
        release: impl FnOnce(),
        reacquire: impl FnOnce(),
    ) -> bool {
        self.Ptr.fetch_add(1, SeqCst);
        let _blocked = sys::blocking();
        // SAFETY: the key is this variable's address, where no lock lives; `release` keeps the
        // rules by this function's contract.
        let woken = unsafe { sys::park(self.key(), release, deadline) };
        self.Ptr.fetch_sub(1, SeqCst);
        reacquire();
        woken
    }

    /// Sleeps on a section the caller owns: releases it fully, restores its depth after.
    fn sleep_cs(&self, cs: &CRITICAL_SECTION, deadline: Option<Instant>) -> Result<(), DWORD> {
        let me = sys::tid();
        if !cs.owned_by(me) {
            return Err(ERROR_NOT_OWNER);
        }
        let depth = cs.RecursionCount.load(Relaxed).max(1);
        // SAFETY: `release_all` only stores atomics and unlocks (no panic, no park).
        let woken = unsafe {
            self.sleep(
                deadline,
                || {
                    cs.release_all();
                },
                || cs.lock_at(me, depth),
            )
        };
        if woken {
            Ok(())
        } else {
            Err(ERROR_TIMEOUT)
        }
    }

    /// Sleeps on an SRW lock the caller holds, shared or exclusive.
    fn sleep_srw(
        &self,
        lock: &SRWLOCK,
        deadline: Option<Instant>,
        shared: bool,
    ) -> Result<(), DWORD> {
        let held = if shared {
            lock.Ptr.is_locked()
        } else {
            lock.Ptr.is_locked_exclusive()
        };
        if !held {
            return Err(ERROR_NOT_OWNER);
        }
        // SAFETY: the releases neither panic nor park.
        let woken = unsafe {
            if shared {
                self.sleep(deadline, || lock.release_shared(), || lock.acquire_shared())
            } else {
                self.sleep(
                    deadline,
                    || lock.release_exclusive(),
                    || lock.acquire_exclusive(),
                )
            }
        };
        if woken {
            Ok(())
        } else {
            Err(ERROR_TIMEOUT)
        }
    }

    /// `WakeConditionVariable`: wakes one sleeper, if any.
    fn wake_one(&self) {
        if self.Ptr.load(SeqCst) != 0 {
            sys::unpark_one(self.key());
        }
    }

    /// `WakeAllConditionVariable`: wakes every sleeper.
    fn wake_all(&self) {
        if self.Ptr.load(SeqCst) != 0 {
            sys::unpark_all(self.key());
        }
    }
}

/// The deadline of a wait of `ms` milliseconds; `None` for `INFINITE` (and for a deadline too far
/// to represent).
fn deadline(ms: DWORD) -> Option<Instant> {
    if ms == INFINITE {
        return None;
    }
    Instant::now().checked_add(Duration::from_millis(u64::from(ms)))
}

// ---- The C entry points --------------------------------------------------------------------------

/// The object behind a caller's pointer, if it is not NULL and is aligned as the C type is.
///
/// # Safety
/// A non-NULL `p` points to memory of `size_of::<T>()` bytes that stays valid for `'a`, as the
/// Win32 function's contract requires. Any bytes there are a valid `T` (every `T` here is made of
/// atomics), and every access goes through atomics, so C code touching it meanwhile is no data
/// race on our side.
#[cfg(not(loom))]
unsafe fn object<'a, T>(p: *mut T) -> Option<&'a T> {
    if p.is_null() || p as usize % std::mem::align_of::<T>() != 0 {
        return None;
    }
    // SAFETY: non-NULL and aligned; valid for 'a by the caller's contract; any bytes are a T.
    Some(unsafe { &*p })
}

/// Initialises a section in place.
///
/// # Safety
/// `cs` is valid for writes of a `CRITICAL_SECTION` and not in use (as Windows requires).
#[cfg(not(loom))]
unsafe fn init_section(cs: *mut CRITICAL_SECTION, spin_count: usize) {
    // SAFETY: valid for writes (caller). All-zero bytes are a free section: zero atomics and
    // parking_lot's `RawMutex::INIT`, whose bytes are zero (`tests::raw_inits_are_zero_bytes`).
    unsafe { cs.write_bytes(0, 1) };
    // SAFETY: just initialised.
    let cs = unsafe { &*cs };
    cs.DebugInfo.store(NO_DEBUG_INFO, Relaxed);
    cs.LockCount.store(LOCK_COUNT_FREE, Relaxed);
    cs.SpinCount.store(spin_count, Relaxed);
}

/// Initialises a critical section (`InitializeCriticalSection`), with Windows' default spin count.
/// NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn InitializeCriticalSection(lpCriticalSection: *mut CRITICAL_SECTION) {
    guard((), || {
        // SAFETY: a non-NULL, aligned pointer to a CRITICAL_SECTION the caller initialises.
        if unsafe { object(lpCriticalSection) }.is_some() {
            // SAFETY: as above.
            unsafe { init_section(lpCriticalSection, spin_field(0, 0)) };
        }
    })
}

/// Initialises a critical section with a spin count (`InitializeCriticalSectionAndSpinCount`).
/// Only the low 24 bits of the count are used (as Windows: the old high-bit flag is ignored); 0
/// means Windows' default. Always TRUE, but FALSE with `ERROR_INVALID_PARAMETER` for NULL.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn InitializeCriticalSectionAndSpinCount(
    lpCriticalSection: *mut CRITICAL_SECTION,
    dwSpinCount: DWORD,
) -> BOOL {
    guard(FALSE, || {
        // SAFETY: see `object`.
        if unsafe { object(lpCriticalSection) }.is_none() {
            set_last_error(ERROR_INVALID_PARAMETER);
            return FALSE;
        }
        // SAFETY: a valid pointer to a CRITICAL_SECTION the caller initialises.
        unsafe { init_section(lpCriticalSection, spin_field(dwSpinCount, 0)) };
        TRUE
    })
}

/// Initialises a critical section with a spin count and flags (`InitializeCriticalSectionEx`).
/// FALSE with `ERROR_INVALID_PARAMETER` for a spin count above 24 bits or flags Windows refuses
/// (outside 0x1FFFFFFF), as Windows; and for NULL. `CRITICAL_SECTION_NO_DEBUG_INFO`,
/// `RTL_CRITICAL_SECTION_FLAG_DYNAMIC_SPIN` and `RTL_CRITICAL_SECTION_FLAG_RESOURCE_TYPE` are
/// kept in `SpinCount` as Windows keeps them; no debug information is ever allocated.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn InitializeCriticalSectionEx(
    lpCriticalSection: *mut CRITICAL_SECTION,
    dwSpinCount: DWORD,
    Flags: DWORD,
) -> BOOL {
    guard(FALSE, || {
        // SAFETY: see `object`.
        if unsafe { object(lpCriticalSection) }.is_none()
            || dwSpinCount as usize & !SPIN_MASK != 0
            || Flags & !ALLOWED_FLAGS != 0
        {
            set_last_error(ERROR_INVALID_PARAMETER);
            return FALSE;
        }
        // SAFETY: a valid pointer to a CRITICAL_SECTION the caller initialises.
        unsafe { init_section(lpCriticalSection, spin_field(dwSpinCount, Flags)) };
        TRUE
    })
}

/// Enters a critical section, waiting for it if another thread owns it; the owner enters again at
/// once (`RecursionCount` counts). A contended wait spins first (the spin count), then blocks,
/// outside the port's concurrency count. NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn EnterCriticalSection(lpCriticalSection: *mut CRITICAL_SECTION) {
    crate::guard_or_abort("EnterCriticalSection", || {
        // SAFETY: see `object`.
        if let Some(cs) = unsafe { object(lpCriticalSection) } {
            cs.enter();
        }
    })
}

/// Enters a critical section if that needs no wait: TRUE if the caller now owns it (or already
/// did: one level deeper), FALSE if another thread owns it (last error untouched, as Windows).
/// FALSE with `ERROR_INVALID_PARAMETER` for NULL.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn TryEnterCriticalSection(lpCriticalSection: *mut CRITICAL_SECTION) -> BOOL {
    guard(FALSE, || {
        // SAFETY: see `object`.
        match unsafe { object(lpCriticalSection) } {
            Some(cs) => BOOL::from(cs.try_enter()),
            None => {
                set_last_error(ERROR_INVALID_PARAMETER);
                FALSE
            }
        }
    })
}

/// Leaves a critical section once; the last leave releases it.
///
/// Windows leaves a leave by a thread that does not own the section undefined (it corrupts the
/// section). Here it is ignored: the owner keeps the section, its depth is unchanged and the last
/// error is untouched. NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn LeaveCriticalSection(lpCriticalSection: *mut CRITICAL_SECTION) {
    guard((), || {
        // SAFETY: see `object`.
        if let Some(cs) = unsafe { object(lpCriticalSection) } {
            cs.leave();
        }
    })
}

/// Deletes a critical section. It holds no resources, so nothing is freed; `DebugInfo` becomes
/// NULL. Windows leaves deleting a held section undefined; here a section the caller holds is
/// released (whatever its depth) and one another thread holds is left alone, still working. A
/// deleted section works as a fresh one if used again. NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn DeleteCriticalSection(lpCriticalSection: *mut CRITICAL_SECTION) {
    guard((), || {
        // SAFETY: see `object`.
        if let Some(cs) = unsafe { object(lpCriticalSection) } {
            cs.delete();
        }
    })
}

/// Sets a critical section's spin count; returns the previous `SpinCount` (as Wine and ReactOS
/// do). On a uniprocessor the count stays 0, as on Windows. 0 with `ERROR_INVALID_PARAMETER` for
/// NULL.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn SetCriticalSectionSpinCount(
    lpCriticalSection: *mut CRITICAL_SECTION,
    dwSpinCount: DWORD,
) -> DWORD {
    guard(0, || {
        // SAFETY: see `object`.
        let Some(cs) = (unsafe { object(lpCriticalSection) }) else {
            set_last_error(ERROR_INVALID_PARAMETER);
            return 0;
        };
        let old = cs.SpinCount.load(Relaxed);
        if sys::processors() > 1 {
            cs.SpinCount.store(dwSpinCount as usize, Relaxed);
        }
        old as DWORD
    })
}

/// Initialises an SRW lock (unlocked: the word is 0, as `SRWLOCK_INIT`). NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn InitializeSRWLock(SRWLock: *mut SRWLOCK) {
    guard((), || {
        // SAFETY: see `object`.
        if unsafe { object(SRWLock) }.is_some() {
            // SAFETY: non-NULL and aligned; the caller initialises the lock (not in use). Zero
            // bytes are parking_lot's `RawRwLock::INIT` (`tests::raw_inits_are_zero_bytes`).
            unsafe { SRWLock.write_bytes(0, 1) };
        }
    })
}

/// Takes an SRW lock exclusively, waiting (spin, then block outside the port's concurrency count)
/// while it is held. Not recursive: a thread that holds it and asks again waits forever, as on
/// Windows. NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn AcquireSRWLockExclusive(SRWLock: *mut SRWLOCK) {
    crate::guard_or_abort("AcquireSRWLockExclusive", || {
        // SAFETY: see `object`.
        if let Some(l) = unsafe { object(SRWLock) } {
            l.acquire_exclusive();
        }
    })
}

/// Takes an SRW lock shared, waiting while a writer holds it or waits for it (writers are not
/// starved). Not recursive. NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn AcquireSRWLockShared(SRWLock: *mut SRWLOCK) {
    crate::guard_or_abort("AcquireSRWLockShared", || {
        // SAFETY: see `object`.
        if let Some(l) = unsafe { object(SRWLock) } {
            l.acquire_shared();
        }
    })
}

/// Releases an exclusive hold. Windows raises `STATUS_RESOURCE_NOT_OWNED` when the lock is not
/// held so; here that is ignored. NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn ReleaseSRWLockExclusive(SRWLock: *mut SRWLOCK) {
    guard((), || {
        // SAFETY: see `object`.
        if let Some(l) = unsafe { object(SRWLock) } {
            l.release_exclusive();
        }
    })
}

/// Releases a shared hold. A release of a lock nobody holds is ignored (Windows raises
/// `STATUS_RESOURCE_NOT_OWNED`). NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn ReleaseSRWLockShared(SRWLock: *mut SRWLOCK) {
    guard((), || {
        // SAFETY: see `object`.
        if let Some(l) = unsafe { object(SRWLock) } {
            l.release_shared();
        }
    })
}

/// Takes an SRW lock exclusively if that needs no wait: TRUE (1) or FALSE (0), a `BOOLEAN`. FALSE
/// with `ERROR_INVALID_PARAMETER` for NULL.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn TryAcquireSRWLockExclusive(SRWLock: *mut SRWLOCK) -> u8 {
    guard(0, || {
        // SAFETY: see `object`.
        match unsafe { object(SRWLock) } {
            Some(l) => u8::from(l.Ptr.try_lock_exclusive()),
            None => {
                set_last_error(ERROR_INVALID_PARAMETER);
                0
            }
        }
    })
}

/// Takes an SRW lock shared if that needs no wait: TRUE (1) or FALSE (0), a `BOOLEAN`. FALSE with
/// `ERROR_INVALID_PARAMETER` for NULL.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn TryAcquireSRWLockShared(SRWLock: *mut SRWLOCK) -> u8 {
    guard(0, || {
        // SAFETY: see `object`.
        match unsafe { object(SRWLock) } {
            Some(l) => u8::from(l.Ptr.try_lock_shared()),
            None => {
                set_last_error(ERROR_INVALID_PARAMETER);
                0
            }
        }
    })
}

/// Initialises a condition variable (its word is 0, as `CONDITION_VARIABLE_INIT`). NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn InitializeConditionVariable(ConditionVariable: *mut CONDITION_VARIABLE) {
    guard((), || {
        // SAFETY: see `object`.
        if let Some(cv) = unsafe { object(ConditionVariable) } {
            cv.Ptr.store(0, Relaxed);
        }
    })
}

/// Sleeps on a condition variable, releasing a critical section the caller owns (fully, however
/// deep) and entering it again at the same depth before returning, woken or not. TRUE when woken
/// (spuriously too, as Windows allows); FALSE with `ERROR_TIMEOUT` once `dwMilliseconds` passed
/// (`INFINITE`: never). FALSE with `ERROR_INVALID_PARAMETER` for NULL, and with `ERROR_NOT_OWNER`
/// if the caller does not own the section (undefined on Windows), without sleeping.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn SleepConditionVariableCS(
    ConditionVariable: *mut CONDITION_VARIABLE,
    CriticalSection: *mut CRITICAL_SECTION,
    dwMilliseconds: DWORD,
) -> BOOL {
    crate::guard_or_abort("SleepConditionVariableCS", || {
        // SAFETY: see `object`.
        let (cv, cs) = unsafe { (object(ConditionVariable), object(CriticalSection)) };
        let r = match (cv, cs) {
            (Some(cv), Some(cs)) => cv.sleep_cs(cs, deadline(dwMilliseconds)),
            _ => Err(ERROR_INVALID_PARAMETER),
        };
        crate::status::bool_ret(r)
    })
}

/// Sleeps on a condition variable, releasing an SRW lock the caller holds (shared with
/// `CONDITION_VARIABLE_LOCKMODE_SHARED`, else exclusive) and taking it back the same way before
/// returning. Results as `SleepConditionVariableCS`; other flags fail with
/// `ERROR_INVALID_PARAMETER` (as Windows), and a lock not held in that mode by anyone with
/// `ERROR_NOT_OWNER`.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn SleepConditionVariableSRW(
    ConditionVariable: *mut CONDITION_VARIABLE,
    SRWLock: *mut SRWLOCK,
    dwMilliseconds: DWORD,
    Flags: ULONG,
) -> BOOL {
    crate::guard_or_abort("SleepConditionVariableSRW", || {
        // SAFETY: see `object`.
        let (cv, lock) = unsafe { (object(ConditionVariable), object(SRWLock)) };
        let r = match (cv, lock) {
            (Some(cv), Some(lock)) if Flags & !CONDITION_VARIABLE_LOCKMODE_SHARED == 0 => {
                let shared = Flags == CONDITION_VARIABLE_LOCKMODE_SHARED;
                cv.sleep_srw(lock, deadline(dwMilliseconds), shared)
            }
            _ => Err(ERROR_INVALID_PARAMETER),
        };
        crate::status::bool_ret(r)
    })
}

/// Wakes one thread sleeping on the condition variable, if any. NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn WakeConditionVariable(ConditionVariable: *mut CONDITION_VARIABLE) {
    guard((), || {
        // SAFETY: see `object`.
        if let Some(cv) = unsafe { object(ConditionVariable) } {
            cv.wake_one();
        }
    })
}

/// Wakes every thread sleeping on the condition variable. NULL is ignored.
#[no_mangle]
#[cfg(not(loom))]
pub unsafe extern "C" fn WakeAllConditionVariable(ConditionVariable: *mut CONDITION_VARIABLE) {
    guard((), || {
        // SAFETY: see `object`.
        if let Some(cv) = unsafe { object(ConditionVariable) } {
            cv.wake_all();
        }
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::mem::{size_of, MaybeUninit};
    use std::sync::Arc;

    use parking_lot::lock_api::{RawMutex as _, RawRwLock as _};

    use super::*;
    use crate::status::last_error;

    /// The in-place scheme rests on this: parking_lot's unlocked states are all-zero bytes, the
    /// bytes of `SRWLOCK_INIT`, of a zeroed `CRITICAL_SECTION` lock word and of `init_section`.
    #[test]
    fn raw_inits_are_zero_bytes() {
        // SAFETY: both raw locks are one atomic integer (sizes asserted at compile time), so
        // their bytes are all initialised; transmute checks that the sizes match.
        let (m, rw) = unsafe {
            (
                std::mem::transmute::<RawMutex, [u8; size_of::<RawMutex>()]>(RawMutex::INIT),
                std::mem::transmute::<RawRwLock, [u8; size_of::<RawRwLock>()]>(RawRwLock::INIT),
            )
        };
        assert!(m.iter().all(|&b| b == 0), "RawMutex::INIT is {m:?}");
        assert!(rw.iter().all(|&b| b == 0), "RawRwLock::INIT is {rw:?}");
    }

    /// A section of zero bytes, as a static one that was never initialised.
    fn zeroed_section() -> CRITICAL_SECTION {
        // SAFETY: any bytes are a valid CRITICAL_SECTION (atomics and parking_lot's raw mutex,
        // whose zero bytes are its INIT: `raw_inits_are_zero_bytes`).
        unsafe { MaybeUninit::zeroed().assume_init() }
    }

    /// A section from zeroed memory works.
    #[test]
    fn zeroed_section_works() {
        let cs = zeroed_section();
        assert!(cs.try_enter());
        assert!(cs.try_enter());
        assert_eq!(cs.RecursionCount.load(Relaxed), 2);
        assert_eq!(cs.OwningThread.load(Relaxed), sys::tid());
        assert!(cs.leave());
        assert!(cs.leave());
        assert!(!cs.leave(), "a leave by a non-owner is refused");
        assert!(!cs.raw().is_locked());
    }

    #[test]
    fn initialised_fields_are_windows() {
        let mut cs = MaybeUninit::<CRITICAL_SECTION>::uninit();
        // SAFETY: a valid, unused section.
        unsafe { InitializeCriticalSection(cs.as_mut_ptr()) };
        // SAFETY: initialised just above.
        let cs = unsafe { cs.assume_init_ref() };
        assert_eq!(cs.DebugInfo.load(Relaxed), NO_DEBUG_INFO);
        assert_eq!(cs.LockCount.load(Relaxed), -1);
        assert_eq!(cs.OwningThread.load(Relaxed), 0);
        cs.enter();
        assert_eq!(cs.LockCount.load(Relaxed), -2);
        assert_eq!(cs.RecursionCount.load(Relaxed), 1);
        assert_eq!(cs.OwningThread.load(Relaxed), sys::tid());
        assert!(cs.leave());
        assert_eq!(cs.LockCount.load(Relaxed), -1);
    }

    #[test]
    fn spin_fields() {
        if sys::processors() > 1 {
            assert_eq!(spin_field(0, 0), 0x0200_07D0);
            assert_eq!(spin_field(0xFF00_0000, 0), 0x0200_07D0);
            assert_eq!(spin_field(0x1234, 0), 0x1234);
            assert_eq!(
                spin_field(0, RTL_CRITICAL_SECTION_FLAG_NO_DEBUG_INFO),
                0x0300_07D0
            );
            assert_eq!(spin_budget(0x0200_07D0), DYNAMIC_SPINS);
            assert_eq!(spin_budget(40), 40);
        } else {
            assert_eq!(spin_field(0x1234, 0), 0);
            assert_eq!(spin_budget(40), 0);
        }
    }

    #[test]
    fn sleep_needs_the_section() {
        let cs = zeroed_section();
        let cv = CONDITION_VARIABLE {
            Ptr: AtomicUsize::new(0),
        };
        assert_eq!(cv.sleep_cs(&cs, deadline(0)), Err(ERROR_NOT_OWNER));
        cs.enter();
        cs.enter();
        let start = Instant::now();
        assert_eq!(cv.sleep_cs(&cs, deadline(20)), Err(ERROR_TIMEOUT));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(cs.RecursionCount.load(Relaxed), 2, "the depth is restored");
        assert_eq!(cs.OwningThread.load(Relaxed), sys::tid());
        assert_eq!(cv.Ptr.load(Relaxed), 0, "no sleeper is counted any more");
        cs.leave();
        cs.leave();
    }

    #[test]
    fn null_fails_safely() {
        // SAFETY: NULL is what is being tested.
        unsafe {
            crate::status::set_last_error(0);
            assert_eq!(TryEnterCriticalSection(std::ptr::null_mut()), FALSE);
            assert_eq!(last_error(), ERROR_INVALID_PARAMETER);
            crate::status::set_last_error(7);
            EnterCriticalSection(std::ptr::null_mut());
            LeaveCriticalSection(std::ptr::null_mut());
            WakeConditionVariable(std::ptr::null_mut());
            assert_eq!(last_error(), 7, "void functions leave the last error alone");
            assert_eq!(TryAcquireSRWLockShared(std::ptr::null_mut()), 0);
            assert_eq!(last_error(), ERROR_INVALID_PARAMETER);
        }
    }

    /// A wake after the sleeper released the section always finds it (many rounds of ping-pong
    /// with the wake outside the lock).
    #[test]
    fn ping_pong() {
        struct Shared {
            cs: CRITICAL_SECTION,
            cv: CONDITION_VARIABLE,
            turn: std::cell::UnsafeCell<u32>,
        }
        // SAFETY: `turn` is only touched inside `cs`.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared {
            cs: zeroed_section(),
            cv: CONDITION_VARIABLE {
                Ptr: AtomicUsize::new(0),
            },
            turn: std::cell::UnsafeCell::new(0),
        });
        const ROUNDS: u32 = 2000;
        let player = |me: u32| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    s.cs.enter();
                    // SAFETY: inside the section.
                    while unsafe { *s.turn.get() } % 2 != me {
                        assert_eq!(s.cv.sleep_cs(&s.cs, deadline(10_000)), Ok(()));
                    }
                    // SAFETY: inside the section.
                    unsafe { *s.turn.get() += 1 };
                    s.cs.leave();
                    s.cv.wake_one();
                }
            })
        };
        let (a, b) = (player(0), player(1));
        a.join().unwrap();
        b.join().unwrap();
        // SAFETY: both threads are done.
        assert_eq!(unsafe { *s.turn.get() }, 2 * ROUNDS);
    }
}

/// Every interleaving (to loom's preemption bound) of two threads on a section, and of a sleeper
/// against a waker on a condition variable, over models of parking_lot's locks and parking: the
/// ownership and recursion bookkeeping excludes and recurses, a sleep gives up and restores the
/// whole depth, a wake that follows the release is never lost, a timeout that races a wake leaves
/// nothing queued or counted.
#[cfg(all(test, loom))]
mod loom_models {
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    /// A section, a condition variable and a value they guard.
    struct Shared {
        cs: CRITICAL_SECTION,
        srw: SRWLOCK,
        cv: CONDITION_VARIABLE,
        value: UnsafeCell<u32>,
    }

    // SAFETY: `value` is touched only under `cs` or `srw`, which loom checks.
    unsafe impl Sync for Shared {}
    // SAFETY: as above.
    unsafe impl Send for Shared {}

    impl Shared {
        /// The guarded value; the caller holds `cs` or `srw` (loom checks it: a read that races a
        /// write fails the model).
        fn get(&self) -> u32 {
            // SAFETY: the caller holds a lock that excludes writers (and loom checks it).
            self.value.with(|v| unsafe { *v })
        }
        /// Sets the guarded value; the caller holds `cs` or `srw` exclusively.
        fn set(&self, n: u32) {
            // SAFETY: the caller holds a lock exclusively (and loom checks it).
            self.value.with_mut(|v| unsafe { *v = n });
        }
    }

    fn shared(spin_count: usize) -> Arc<Shared> {
        Arc::new(Shared {
            cs: CRITICAL_SECTION::new(spin_count),
            srw: SRWLOCK::new(),
            cv: CONDITION_VARIABLE::new(),
            value: UnsafeCell::new(0),
        })
    }

    fn owned_at(cs: &CRITICAL_SECTION, depth: i32) {
        assert_eq!(cs.OwningThread.load(Relaxed), sys::tid());
        assert_eq!(cs.RecursionCount.load(Relaxed), depth);
        assert_eq!(cs.LockCount.load(Relaxed), LOCK_COUNT_HELD);
    }

    fn is_free(cs: &CRITICAL_SECTION) {
        assert_eq!(cs.OwningThread.load(Relaxed), 0);
        assert_eq!(cs.RecursionCount.load(Relaxed), 0);
        assert_eq!(cs.LockCount.load(Relaxed), LOCK_COUNT_FREE);
        assert!(!cs.raw().is_locked());
    }

    /// Enter twice, bump the value, leave twice: from two threads the updates never overlap (loom
    /// would flag the cell) and both count; the owner and depth are right throughout.
    #[test]
    fn section_excludes_and_recurses() {
        loom::model(|| {
            let s = shared(0);
            let body = |s: &Shared| {
                s.cs.enter();
                s.cs.enter();
                owned_at(&s.cs, 2);
                s.set(s.get() + 1);
                assert!(s.cs.leave());
                owned_at(&s.cs, 1);
                assert!(s.cs.leave());
            };
            let t = {
                let s = s.clone();
                thread::spawn(move || body(&s))
            };
            body(&s);
            t.join().unwrap();
            is_free(&s.cs);
            assert_eq!(s.get(), 2);
        });
    }

    /// TryEnter against an Enter/Leave and a Leave by the wrong thread: a try that succeeds owns
    /// the section; the stray leave changes nothing.
    #[test]
    fn try_enter_and_stray_leave() {
        loom::model(|| {
            let s = shared(0);
            let t = {
                let s = s.clone();
                thread::spawn(move || {
                    s.cs.enter();
                    s.set(s.get() + 1);
                    s.cs.leave();
                })
            };
            if s.cs.try_enter() {
                owned_at(&s.cs, 1);
                s.set(s.get() + 10);
                assert!(s.cs.leave());
            } else {
                // Not the owner: refused, whoever holds it keeps it.
                assert!(!s.cs.leave());
            }
            t.join().unwrap();
            is_free(&s.cs);
        });
    }

    /// A sleeper at depth 2 against a waker that sets the flag under the section and wakes after
    /// leaving it (or, with `wake_inside`, before): the sleeper always wakes (loom reports a
    /// deadlock otherwise) and gets its depth back; nothing stays queued or counted.
    fn no_lost_wakeup(wake_inside: bool) {
        loom::model(move || {
            let s = shared(0);
            let t = {
                let s = s.clone();
                thread::spawn(move || {
                    s.cs.enter();
                    s.set(1);
                    if wake_inside {
                        s.cv.wake_one();
                    }
                    s.cs.leave();
                    if !wake_inside {
                        s.cv.wake_one();
                    }
                })
            };
            s.cs.enter();
            s.cs.enter();
            while s.get() == 0 {
                assert_eq!(s.cv.sleep_cs(&s.cs, None), Ok(()));
                owned_at(&s.cs, 2);
            }
            s.cs.leave();
            s.cs.leave();
            t.join().unwrap();
            is_free(&s.cs);
            assert_eq!(s.cv.Ptr.load(SeqCst), 0);
            assert_eq!(sys::parked(s.cv.key()), 0);
        });
    }

    #[test]
    fn no_lost_wakeup_wake_after_leave() {
        no_lost_wakeup(false);
    }

    #[test]
    fn no_lost_wakeup_wake_inside() {
        no_lost_wakeup(true);
    }

    /// A sleep with a deadline against a wake: whichever wins, the sleeper holds the section at
    /// its depth after, and nothing stays queued or counted.
    #[test]
    fn timeout_against_wake() {
        loom::model(|| {
            let s = shared(0);
            let t = {
                let s = s.clone();
                thread::spawn(move || {
                    s.cs.enter();
                    s.set(1);
                    s.cs.leave();
                    s.cv.wake_one();
                })
            };
            s.cs.enter();
            if s.get() == 0 {
                let r = s.cv.sleep_cs(&s.cs, deadline(5));
                assert!(r == Ok(()) || r == Err(ERROR_TIMEOUT));
                owned_at(&s.cs, 1);
            }
            s.cs.leave();
            t.join().unwrap();
            is_free(&s.cs);
            assert_eq!(s.cv.Ptr.load(SeqCst), 0);
            assert_eq!(sys::parked(s.cv.key()), 0);
        });
    }

    /// A reader sleeping with the SRW lock held shared against a writer that sets the flag
    /// exclusively and wakes everyone: the reader wakes and holds the lock shared again.
    #[test]
    fn srw_shared_sleep_wake_all() {
        loom::model(|| {
            let s = shared(0);
            let t = {
                let s = s.clone();
                thread::spawn(move || {
                    s.srw.acquire_exclusive();
                    s.set(1);
                    s.srw.release_exclusive();
                    s.cv.wake_all();
                })
            };
            s.srw.acquire_shared();
            while s.get() == 0 {
                assert_eq!(s.cv.sleep_srw(&s.srw, None, true), Ok(()));
                assert!(s.srw.Ptr.is_locked() && !s.srw.Ptr.is_locked_exclusive());
            }
            s.srw.release_shared();
            t.join().unwrap();
            assert!(!s.srw.Ptr.is_locked());
            assert_eq!(sys::parked(s.cv.key()), 0);
        });
    }
}
