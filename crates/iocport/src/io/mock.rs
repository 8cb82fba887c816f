//! A model of the io_uring ring, for the loom models of the port over I/O (`tests/loom_io.rs`): the
//! port (`port.rs`), the op table (`../mod.rs`) and the wake-up protocol (`../wake.rs`) run
//! unchanged over it, and loom explores their interleavings. Compiled only under `cfg(loom)`, in
//! place of `uring/`, with the same contract (see `../mod.rs`).
//!
//! # What it models
//!
//! - **The submission queue** holds `config.entries` requests (not rounded up), so a model can make
//!   it 1 or 2 and fill it. The "kernel" takes every queued request when a thread submits
//!   (`submit`, `make_room`) or waits (`wait`), as without `IORING_SETUP_SQPOLL`.
//! - **The completion queue** is as large as the submission queue (the kernel's is four times as
//!   large): a few completions fill it. Nothing is dropped when it is full (`IORING_FEAT_NODROP`),
//!   but the multishot wake-up poll ends there, as in the kernel: a wake-up that meets a full
//!   queue completes without `IORING_CQE_F_MORE` and the poll is gone until re-armed.
//! - **Operations**: a NOP completes when it is taken; a timer never fires (no model runs long
//!   enough) and ends only when cancelled, with `ECANCELED`; nothing else is supported.
//!   Cancellations end their targets and complete themselves (`CANCEL`), as `AsyncCancel2`.
//! - **The wake-up**: an eventfd (`readable`, never read in multishot mode, as in `uring/`) and a
//!   multishot poll on it (`WAKE`). A write fires the armed poll; arming it while the eventfd is
//!   readable fires it at once. Reaping a `WAKE` completion goes through [`WakeState`] with the
//!   very calls `uring/` makes; a wake-up to write again is written once a `reap` has finished
//!   its loop, not from within it (see `reap`).
//! - **The wait** submits, then blocks (a loom `Condvar`) until the completion queue is not empty.
//!   A finite deadline has passed at once (loom has no time, see `sync.rs`): the wait only submits.
//!
//! Not modelled: `EBUSY` from a submission that meets an overflowing completion queue (no
//! submission fails here), signals, and `IORING_SETUP_SQPOLL`'s own thread.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use loom::sync::Condvar;

use crate::error::Error;
use crate::op::{Lending, Op};
use crate::sync::{lock, lock_or_skip, Mutex, MutexGuard};

use super::wake::WakeState;
use super::{Backend, BackendInfo, CancelTarget, Completion, Config, FdEntry, Feature, Features};

/// `user_data` of the wake-up poll's completions.
const WAKE: u64 = u64::MAX;
/// `user_data` of cancellations' own completions, which are ignored.
const CANCEL: u64 = u64::MAX - 1;

/// A request in the submission queue; kept by the caller when the queue is full.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Entry {
    /// An operation of the op table.
    Op { op: Op, fd: RawFd, user_data: u64 },
    /// A cancellation.
    Cancel(CancelTarget),
    /// The multishot poll on the wake-up eventfd.
    WakePoll,
}

/// A completion queue entry.
struct Cqe {
    user_data: u64,
    result: i32,
    /// `IORING_CQE_F_MORE`: the request (the wake-up poll) stays armed.
    more: bool,
}

/// The ring's state: both queues and what the kernel holds.
struct Ring {
    sq: VecDeque<Entry>,
    cq: VecDeque<Cqe>,
    /// Operations taken by the kernel that end only when cancelled (timers): `user_data`, fd.
    held: Vec<(u64, RawFd)>,
    /// The wake-up poll is in the kernel.
    poll_armed: bool,
    /// The eventfd's counter is not 0.
    readable: bool,
}

impl Ring {
    /// Posts a completion. The completion queue never drops one (`IORING_FEAT_NODROP`).
    fn post(&mut self, user_data: u64, result: i32, more: bool) {
        self.cq.push_back(Cqe {
            user_data,
            result,
            more,
        });
    }

    /// The eventfd is readable: the armed poll completes, and ends if the completion queue is full
    /// (a multishot completion that cannot be posted ends the request). Returns whether it posted.
    fn fire(&mut self, cq_entries: usize) -> bool {
        if !self.poll_armed {
            return false;
        }
        let more = self.cq.len() < cq_entries;
        self.post(WAKE, i32::from(libc::POLLIN), more);
        self.poll_armed = more;
        true
    }

    /// The kernel takes every queued request. Returns whether it posted a completion.
    fn take_requests(&mut self, cq_entries: usize) -> bool {
        let before = self.cq.len();
        while let Some(entry) = self.sq.pop_front() {
            match entry {
                Entry::Op {
                    op: Op::Nop,
                    user_data,
                    ..
                } => self.post(user_data, 0, false),
                Entry::Op {
                    op: Op::Timer,
                    fd,
                    user_data,
                } => self.held.push((user_data, fd)),
                Entry::Op { user_data, .. } => self.post(user_data, -libc::EINVAL, false),
                Entry::Cancel(target) => {
                    let matches = |&(ud, fd): &(u64, RawFd)| match target {
                        CancelTarget::Op(t, _) => ud == t,
                        CancelTarget::Fd(t) => fd == t,
                        CancelTarget::Any => true,
                    };
                    let (ended, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
                        .into_iter()
                        .partition(matches);
                    self.held = kept;
                    for &(ud, _) in &ended {
                        self.post(ud, -libc::ECANCELED, false);
                    }
                    let result = if ended.is_empty() {
                        -libc::ENOENT
                    } else {
                        ended.len() as i32
                    };
                    self.post(CANCEL, result, false);
                }
                Entry::WakePoll => {
                    // `WakeState` lets one thread re-arm, only once the poll's end was reaped.
                    assert!(!self.poll_armed, "the wake-up poll was armed twice");
                    self.poll_armed = true;
                    if self.readable {
                        self.fire(cq_entries);
                    }
                }
            }
        }
        self.cq.len() != before
    }
}

/// The model ring (see the module docs), with the `uring::Driver` API.
pub(crate) struct Driver {
    ring: Mutex<Ring>,
    /// Notified whenever a completion is posted: what wakes a thread in [`wait`](Self::wait).
    posted: Condvar,
    /// One consumer of the completion queue at a time.
    cq: Mutex<()>,
    sq_entries: usize,
    cq_entries: usize,
    features: Features,
    report: Vec<Feature>,
    wake: WakeState,
}

impl Driver {
    /// A ring of `config.entries` submission and completion entries, its wake-up poll armed and
    /// its eventfd readable (as `uring/` leaves them after probing for multishot polls).
    pub(crate) fn new(config: &Config) -> Result<(Driver, BackendInfo), Error> {
        let entries = config.entries.max(1) as usize;
        let driver = Driver {
            ring: Mutex::new(Ring {
                sq: VecDeque::with_capacity(entries),
                cq: VecDeque::new(),
                held: Vec::new(),
                poll_armed: true,
                readable: true,
            }),
            posted: Condvar::new(),
            cq: Mutex::new(()),
            sq_entries: entries,
            cq_entries: entries,
            features: Features {
                cancel_fd: true,
                cancel_any: true,
                multishot_poll: true,
                recv_multishot: false,
                coop_taskrun: false,
            },
            report: vec![Feature::new(
                "model ring",
                true,
                "the loom models' stand-in for io_uring (io/mock.rs)",
            )],
            wake: WakeState::new(),
        };
        driver.wake.rearmed();
        driver.wake.leader_back();
        let info = BackendInfo {
            backend: Backend::IoUring,
            reason: "the loom models' ring".to_owned(),
        };
        Ok((driver, info))
    }

    /// Nothing to prepare for a newly associated fd.
    pub(crate) fn attach(&self, _fd: &FdEntry) -> Result<(), Error> {
        Ok(())
    }

    /// What the ring offers.
    pub(crate) fn report(&self) -> &[Feature] {
        &self.report
    }

    /// The features modelled: all of them.
    pub(crate) fn features(&self) -> Features {
        self.features
    }

    /// NOPs and timers only.
    pub(crate) fn supports(&self, op: Op) -> bool {
        matches!(op, Op::Nop | Op::Timer)
    }

    /// Nothing runs in stages here.
    pub(crate) fn staged(&self, _op: Op) -> bool {
        false
    }

    /// No kernel ring: provided buffers stay in the list.
    pub(crate) fn register_buf_ring(&self) -> Result<Option<super::provided::Ring>, Error> {
        Ok(None)
    }

    /// Queues `op` without submitting it; gives the entry back if the submission queue is full.
    ///
    /// # Safety
    ///
    /// As `uring::Driver::push_op`: the caller holds the op table's lock and keeps `lent` where it
    /// is until the completion is reaped (the model reads no memory, but keeps the contract).
    pub(crate) unsafe fn push_op<B>(
        &self,
        op: Op,
        fd: Option<&FdEntry>,
        _lending: &mut Lending<B>,
        user_data: u64,
    ) -> Result<(), Entry> {
        let fd = fd.map_or(-1, FdEntry::raw);
        let entry = Entry::Op { op, fd, user_data };
        // SAFETY: as the caller guarantees.
        if unsafe { self.push_entry(&entry) } {
            Ok(())
        } else {
            Err(entry)
        }
    }

    /// Queues `entry` without submitting it; `false` if the submission queue is full.
    ///
    /// # Safety
    ///
    /// As `uring::Driver::push_entry`: the caller holds the op table's lock.
    pub(crate) unsafe fn push_entry(&self, entry: &Entry) -> bool {
        let mut ring = self.ring();
        if ring.sq.len() >= self.sq_entries {
            return false;
        }
        ring.sq.push_back(*entry);
        true
    }

    /// Queues a cancellation; `false` if the submission queue is full.
    ///
    /// # Safety
    ///
    /// As `uring::Driver::push_cancel`: the caller holds the op table's lock.
    pub(crate) unsafe fn push_cancel(&self, target: CancelTarget) -> bool {
        // SAFETY: as the caller guarantees.
        unsafe { self.push_entry(&Entry::Cancel(target)) }
    }

    /// Whether the wake-up poll must be armed again.
    pub(crate) fn needs_rearm(&self) -> bool {
        self.wake.needs_rearm()
    }

    /// Arms the wake-up poll again if it ended; `false` if it is still not armed (the submission
    /// queue is full). As `uring::Driver::rearm`, and tells [`WakeState`] of a failure (which only
    /// the old scheme, re-created for the models, acts on).
    ///
    /// # Safety
    ///
    /// As `uring::Driver::rearm`: the caller holds the op table's lock.
    pub(crate) unsafe fn rearm(&self) -> bool {
        if !self.wake.needs_rearm() {
            return true;
        }
        // SAFETY: as the caller guarantees; the poll points to no memory.
        if unsafe { self.push_entry(&Entry::WakePoll) } {
            self.wake.rearmed();
            true
        } else {
            self.wake.rearm_failed();
            false
        }
    }

    /// Submits what is queued: the kernel takes it all. Never fails, so `reap` is not called.
    pub(crate) fn submit(&self, _reap: &mut dyn FnMut()) -> io::Result<()> {
        let mut ring = self.ring();
        if ring.take_requests(self.cq_entries) {
            self.posted.notify_all();
        }
        Ok(())
    }

    /// One attempt at submitting what is queued; never refused here (`Ok(true)`).
    pub(crate) fn try_submit(&self) -> io::Result<bool> {
        self.submit(&mut || {})?;
        Ok(true)
    }

    /// The submission queue was full: submitting empties it.
    pub(crate) fn make_room(&self, reap: &mut dyn FnMut()) -> io::Result<()> {
        self.submit(reap)
    }

    /// Submits what is queued, then, without a deadline, blocks until a completion is there (a
    /// finite deadline has passed at once). The leader's return is reported to [`WakeState`] as in
    /// `uring/`.
    pub(crate) fn wait(&self, deadline: Option<Instant>, leader: bool) -> io::Result<()> {
        let mut ring = self.ring();
        if ring.take_requests(self.cq_entries) {
            self.posted.notify_all();
        }
        if deadline.is_none() {
            while ring.cq.is_empty() {
                ring = self.posted.wait(ring).unwrap_or_else(|e| e.into_inner());
            }
        }
        drop(ring);
        if leader {
            self.wake.leader_back();
        }
        Ok(())
    }

    /// Hands operation completions to `f`, oldest first, until `f` has said `true` (the completion
    /// became a packet) `max` times; returns how many times it did. Wake-ups and cancellations are
    /// handled here and do not count. With `block` false it gives up at once if another thread is
    /// reaping.
    pub(crate) fn reap(
        &self,
        block: bool,
        max: usize,
        f: &mut dyn FnMut(Completion) -> bool,
    ) -> usize {
        let Some(_cq) = lock_or_skip(&self.cq, block) else {
            return 0;
        };
        let mut n = 0;
        let mut write_again = false;
        while n < max {
            let Some(cqe) = self.ring().cq.pop_front() else {
                break;
            };
            match cqe.user_data {
                WAKE => {
                    write_again |= self.wake.reaped_completion(
                        !cqe.more,
                        !self.features.multishot_poll,
                        || self.drain_eventfd(),
                    );
                }
                CANCEL => {}
                user_data => {
                    let counted = f(Completion {
                        user_data,
                        result: cqe.result,
                        flags: 0,
                    });
                    n += usize::from(counted);
                }
            }
        }
        if write_again {
            // Once, after the loop: written at once, the wake-up's completion would be back in
            // this very loop (the poll fires on the write), to be written again while the leader
            // has not come back from the kernel, which it cannot while it is the one reaping here.
            // Written into a full queue, it would also end the poll.
            self.write_wake();
        }
        n
    }

    /// Makes the thread waiting in `wait` return.
    pub(crate) fn wake(&self) {
        self.wake.send(|| self.write_wake());
    }

    /// A write to the eventfd: it becomes readable and the armed poll fires.
    fn write_wake(&self) {
        let mut ring = self.ring();
        ring.readable = true;
        if ring.fire(self.cq_entries) {
            self.posted.notify_all();
        }
    }

    /// Reads the eventfd's counter to 0 (one-shot polls only, which the model does not offer).
    fn drain_eventfd(&self) {
        self.ring().readable = false;
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        lock(&self.ring)
    }
}
