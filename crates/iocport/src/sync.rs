//! The one place where iocport's synchronisation primitives come from.
//!
//! Normal builds use `std`; `RUSTFLAGS="--cfg loom"` swaps in [loom]'s model-checked versions so that the
//! port's state machine can be explored exhaustively (`tests/loom.rs`). Nothing else in the crate names
//! `std::sync` or `std::thread` directly.
//!
//! [loom]: https://docs.rs/loom

use std::time::Instant;

#[cfg(not(loom))]
pub(crate) use std::{
    sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    sync::{Arc, Mutex, MutexGuard},
    thread::{current, Thread},
    thread_local,
};

#[cfg(loom)]
pub(crate) use loom::{
    sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    sync::{Arc, Mutex, MutexGuard},
    thread::{current, Thread},
    thread_local,
};

/// Locks `m`, ignoring poisoning: the port's state is only mutated by code that cannot panic between
/// two consistent states, so a panic elsewhere under the lock (a user's `Drop`) leaves it usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locks `m` if `block`; otherwise only if no other thread holds it (`None` then). Ignores
/// poisoning, as [`lock`] does.
pub(crate) fn lock_or_skip<T>(m: &Mutex<T>, block: bool) -> Option<MutexGuard<'_, T>> {
    if block {
        return Some(lock(m));
    }
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Parks the calling thread until it is unparked or `deadline` passes. Returns `true` if the deadline
/// has passed. Spurious returns are allowed; callers loop on their own condition.
#[cfg(not(loom))]
pub(crate) fn park_until(deadline: Option<Instant>) -> bool {
    match deadline {
        None => {
            std::thread::park();
            false
        }
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                return true;
            }
            std::thread::park_timeout(d - now);
            Instant::now() >= d
        }
    }
}

/// Under loom time does not pass: a finite deadline is treated as already expired, which makes every
/// model explore the timeout path as well.
#[cfg(loom)]
pub(crate) fn park_until(deadline: Option<Instant>) -> bool {
    match deadline {
        None => {
            loom::thread::park();
            false
        }
        Some(_) => true,
    }
}

/// Bounded busy-wait used before parking: a cross-core futex wake costs tens of microseconds on small
/// VMs, while a handoff usually lands within a few hundred nanoseconds. Returns once `done()` holds or
/// the budget is spent. Spins with exponentially more `spin_loop` hints, then yields the CPU a few
/// times, so that a peer scheduled on the same core gets to run (the crossbeam `Backoff` scheme).
#[cfg(not(loom))]
pub(crate) fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    const SPIN_LIMIT: u32 = 6;
    const YIELD_LIMIT: u32 = 10;
    for step in 0..=YIELD_LIMIT {
        if done() {
            return true;
        }
        if step <= SPIN_LIMIT {
            for _ in 0..(1u32 << step) {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
    }
    done()
}

/// Under loom a spin is one yield: enough to let the model schedule the peer.
#[cfg(loom)]
pub(crate) fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    if done() {
        return true;
    }
    loom::thread::yield_now();
    done()
}
