//! The wake-up protocol between the port's leader, blocked in the kernel, and every other thread,
//! for backends whose wake-up is a completion that any thread may reap (io_uring's eventfd poll,
//! and the model ring of the loom tests, which run this very code).
//!
//! The leader decides to sleep under the port's lock (`leader_asleep`, `port.rs`) and enters the
//! kernel after releasing it; a poster that sees it asleep sends one wake-up. In that window, or
//! while the leader sleeps, another thread may reap the wake-up's completion (a `get` that reaps
//! directly, the close drain). So: [`sending`](WakeState::sending) raises `pending` before the
//! wake-up is written; [`leader_back`](WakeState::leader_back) lowers it once the leader has come
//! back from the kernel; and a thread that reaps a wake-up while `pending` is still raised writes it
//! again ([`reaped`](WakeState::reaped) says so). Whoever takes it, the leader gets one. A wake-up
//! reaped after the leader came back was not needed.
//!
//! The wake-up's poll may end (one-shot polls after every wake-up; a multishot one when its
//! completion meets a full completion queue): `armed` is lowered by the thread that reaps its last
//! completion, and raised again by whichever thread next holds the submission lock and finds room
//! to queue it; the leader never sleeps without it.
//!
//! Under `cfg(loom)` a process-wide switch (`iocport::testing::set_legacy_wake`) brings back
//! the scheme this replaced, so that the loom models (`tests/loom_io.rs`) can show that they catch
//! its two bugs: a wake-up reaped by another thread was never written again, and the poll was
//! re-armed only by the thread that reaped its end, once, and lost if the submission queue was
//! full.

use crate::sync::{fence, AtomicBool, Ordering};

/// Whether ports made from now on use the old wake-up scheme (loom models only).
#[cfg(loom)]
static LEGACY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(loom)]
impl super::Config {
    /// Makes the ports created from now on use the old wake-up scheme (`on`) or the current one.
    /// Reached through `iocport::testing::set_legacy_wake`; a method here only because `wake` is
    /// private to `io`.
    pub(crate) fn set_legacy_wake(on: bool) {
        LEGACY.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The old scheme's re-arm rule: only the thread that reaped the poll's end may re-arm it, and
/// only once. Bookkeeping for the model, outside loom's view (std, not loom, primitives): the
/// interleavings that matter are those of `armed`.
#[cfg(loom)]
#[derive(Default)]
struct Legacy {
    /// The thread that reaped the poll's last completion, until it has tried to re-arm it.
    ender: std::sync::Mutex<Option<loom::thread::ThreadId>>,
}

#[cfg(loom)]
impl Legacy {
    fn ender(&self) -> std::sync::MutexGuard<'_, Option<loom::thread::ThreadId>> {
        self.ender.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct WakeState {
    /// A wake-up was sent and the leader has not come back from the kernel since.
    pending: AtomicBool,
    /// The wake-up poll is in the kernel.
    armed: AtomicBool,
    /// Set if [`LEGACY`] was on when the state was made: the old scheme's rules apply.
    #[cfg(loom)]
    legacy: Option<Legacy>,
}

impl WakeState {
    pub(crate) fn new() -> WakeState {
        WakeState {
            pending: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            #[cfg(loom)]
            legacy: LEGACY
                .load(std::sync::atomic::Ordering::SeqCst)
                .then(Legacy::default),
        }
    }

    /// Sends a wake-up: raises `pending`, then `write`s it (the backend's eventfd write).
    pub(crate) fn send(&self, write: impl FnOnce()) {
        self.sending();
        write();
    }

    /// A wake-up is about to be written.
    fn sending(&self) {
        self.pending.store(true, Ordering::SeqCst);
    }

    /// The leader is back from the kernel: a wake-up reaped from now on was not needed.
    pub(crate) fn leader_back(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    /// A wake-up's completion was reaped, by whichever thread: `ended` if its poll is no longer
    /// armed; `one_shot` if the backend re-arms a one-shot poll after each wake-up, whose eventfd
    /// `drain` then empties (so that the next poll waits for a new write). Returns whether the
    /// wake-up must be written again (the leader may not have come back yet); the reaper writes it
    /// once its reap is over, so that it never takes its own wake-up back.
    pub(crate) fn reaped_completion(
        &self,
        ended: bool,
        one_shot: bool,
        drain: impl FnOnce(),
    ) -> bool {
        if ended && one_shot {
            drain();
        }
        self.reaped(ended)
    }

    /// [`reaped_completion`](Self::reaped_completion) after the eventfd is dealt with.
    fn reaped(&self, ended: bool) -> bool {
        #[cfg(loom)]
        if let Some(legacy) = &self.legacy {
            // Old scheme: the reaper re-arms the poll it saw end (below), and never writes a
            // wake-up again: the one it took may have been the leader's.
            if ended {
                *legacy.ender() = Some(crate::sync::current().id());
                self.armed.store(false, Ordering::SeqCst);
            }
            return false;
        }
        if ended {
            self.armed.store(false, Ordering::SeqCst);
        }
        self.pending.load(Ordering::SeqCst)
    }

    /// Whether the poll must be armed again.
    #[inline]
    pub(crate) fn needs_rearm(&self) -> bool {
        let needed = !self.armed.load(Ordering::SeqCst);
        #[cfg(loom)]
        if let Some(legacy) = &self.legacy {
            // Old scheme: only the thread that reaped the poll's end re-arms it.
            return needed && *legacy.ender() == Some(crate::sync::current().id());
        }
        needed
    }

    /// The poll was queued (by the holder of the submission lock).
    pub(crate) fn rearmed(&self) {
        self.armed.store(true, Ordering::SeqCst);
        #[cfg(loom)]
        if let Some(legacy) = &self.legacy {
            *legacy.ender() = None;
        }
    }

    /// The model ring (`mock.rs`) found no room to re-arm the poll. Nothing to do: the next holder
    /// of the submission lock tries again. Under the old scheme the re-arm is lost: the poll stays
    /// down and nobody tries again.
    #[cfg(loom)]
    pub(crate) fn rearm_failed(&self) {
        if let Some(legacy) = &self.legacy {
            *legacy.ender() = None;
        }
    }
}

/// Whether a thread that queues a completion it will not reap (the epoll backend's pool threads)
/// must wake the port's leader: a handshake on `asleep` and the completion count, each side
/// writing its own and then, after a full fence, reading the other's, so that either the
/// leader sees the completion before it blocks or the other thread sees the leader asleep and
/// wakes it. Model-checked in `tests/loom_claim.rs`.
#[doc(hidden)]
#[derive(Default)]
pub struct LeaderSleep {
    asleep: AtomicBool,
}

impl LeaderSleep {
    /// The leader is about to block: returns whether it may (`queued`, the completion count read
    /// after it is marked asleep, is 0).
    pub fn may_sleep(&self, queued: impl FnOnce() -> usize) -> bool {
        self.asleep.store(true, Ordering::SeqCst);
        // A store then a load of another location: only a full fence keeps them in that order
        // (loom finds the lost wake-up without it, as in the port's own sleep, `port.rs`).
        fence(Ordering::SeqCst);
        queued() == 0
    }

    /// The leader is back from the kernel.
    pub fn awake(&self) {
        self.asleep.store(false, Ordering::SeqCst);
    }

    /// A completion was queued and counted (sequentially consistent): whether the leader must be
    /// woken for it.
    pub fn must_wake(&self) -> bool {
        // Pairs with the fence in `may_sleep`.
        fence(Ordering::SeqCst);
        self.asleep.load(Ordering::SeqCst)
    }
}

/// Writes one wake-up to the eventfd `fd` (the io_uring and epoll backends' wake-up).
#[cfg(not(loom))]
pub(crate) fn signal(fd: std::os::fd::RawFd) {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of `one`, which outlives the call. An eventfd write fails only
    // when the counter would overflow (2^64 - 1 wake-ups without a read), and then the eventfd is
    // readable already, which is all a wake-up needs.
    unsafe { libc::write(fd, (&one as *const u64).cast(), std::mem::size_of::<u64>()) };
}
