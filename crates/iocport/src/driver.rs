//! The io_uring ring behind a port: set-up, the probe, submission and the completion queue.
//!
//! The ring is a *source* of completions, not the queue threads wait on (the port's queue is). Any
//! thread may submit: the submission queue has one producer at a time (`sq` lock) and every entry is
//! published before `io_uring_enter` is called, which the kernel serialises itself. The completion
//! queue has one consumer at a time (`cq` lock): whichever thread reaps turns entries into packets.
//! One waiting thread at a time (the port's *leader*) blocks in `io_uring_enter` for completions; a
//! `post` that has to reach it submits a NOP tagged [`WAKE`].
//!
//! Completions are never lost: the ring is set up with a completion queue four times the
//! submission queue, and the kernel's `IORING_FEAT_NODROP` (required) keeps any overflow until it is
//! reaped; a submission that meets `EBUSY` reaps and tries again.

use std::io;
use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use crate::error::Error;
use crate::sync::{lock, Mutex};

/// `user_data` of the NOPs that wake the leader.
pub(crate) const WAKE: u64 = u64::MAX;
/// `user_data` of cancellation requests, whose own completions are ignored.
pub(crate) const CANCEL: u64 = u64::MAX - 1;

pub(crate) struct Uring {
    ring: IoUring,
    sq: Mutex<()>,
    cq: Mutex<()>,
    probe: Probe,
}

impl Uring {
    /// Sets up a ring with `entries` submission entries (rounded up to a power of two by the kernel).
    pub(crate) fn new(entries: u32) -> Result<Uring, Error> {
        let ring = IoUring::builder()
            .setup_cqsize(entries.saturating_mul(4))
            .setup_clamp()
            .build(entries)
            .map_err(|e| {
                let reason = match e.raw_os_error() {
                    Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)".to_owned(),
                    Some(libc::EPERM) => "io_uring_setup is not permitted (EPERM): a seccomp \
                        profile (as Docker's default) or the sysctl kernel.io_uring_disabled \
                        forbids it"
                        .to_owned(),
                    Some(libc::ENOMEM) => "not enough locked memory for the ring (ENOMEM): \
                        raise RLIMIT_MEMLOCK or use fewer entries"
                        .to_owned(),
                    _ => format!("io_uring_setup failed: {e}"),
                };
                Error::Unavailable { reason, source: e }
            })?;
        let params = ring.params();
        if !params.is_feature_nodrop() || !params.is_feature_ext_arg() {
            return Err(Error::Unavailable {
                reason: "the kernel's io_uring lacks IORING_FEAT_NODROP or IORING_FEAT_EXT_ARG \
                    (Linux 5.11 or later is needed)"
                    .to_owned(),
                source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            });
        }
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| Error::Unavailable {
                reason: format!("probing io_uring opcodes failed: {e}"),
                source: e,
            })?;
        Ok(Uring {
            ring,
            sq: Mutex::new(()),
            cq: Mutex::new(()),
            probe,
        })
    }

    /// Whether the kernel supports `opcode`.
    pub(crate) fn supports(&self, opcode: u8) -> bool {
        self.probe.is_supported(opcode)
    }

    /// Queues entries built by `next` (called until it returns `None`) and submits them, with one
    /// `io_uring_enter` unless the submission queue fills up on the way.
    ///
    /// # Safety
    ///
    /// Every pointer in every entry must stay valid until its completion has been reaped.
    pub(crate) unsafe fn push(
        &self,
        entries: &mut dyn Iterator<Item = squeue::Entry>,
        submit: bool,
        reap: &mut dyn FnMut(),
    ) -> io::Result<()> {
        let _sq = lock(&self.sq);
        // SAFETY: the `sq` lock makes us the submission queue's only producer.
        let mut sq = unsafe { self.ring.submission_shared() };
        for entry in entries {
            // SAFETY: the caller keeps the entry's memory valid until its completion is reaped.
            while unsafe { sq.push(&entry) }.is_err() {
                sq.sync();
                self.enter_submit(reap)?;
                sq.sync();
            }
        }
        sq.sync();
        drop(sq);
        if submit {
            self.enter_submit(reap)?;
        }
        Ok(())
    }

    /// Submits what is queued. On `EBUSY` (completions waiting to be reaped) reaps and retries.
    fn enter_submit(&self, reap: &mut dyn FnMut()) -> io::Result<()> {
        loop {
            match self.ring.submitter().submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    reap();
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Submits what is queued and waits until at least one completion is there, `deadline` passes,
    /// or a signal or wake NOP arrives.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> io::Result<()> {
        let result = match deadline {
            None => self.ring.submitter().submit_and_wait(1),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                let ts = types::Timespec::from(left);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Hands up to `max` of the completions that are there to `f`, oldest first; returns how many.
    /// With `block` false it gives up at once if another thread is reaping.
    pub(crate) fn reap(&self, block: bool, max: usize, f: &mut dyn FnMut(cqueue::Entry)) -> usize {
        let _cq = if block {
            lock(&self.cq)
        } else {
            match self.cq.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return 0,
            }
        };
        let mut n = 0;
        loop {
            // SAFETY: the `cq` lock makes us the completion queue's only consumer.
            let cq = unsafe { self.ring.completion_shared() };
            if cq.is_empty() || n == max {
                return n;
            }
            // Entries not taken stay in the queue (the view writes back the head it reached).
            for cqe in cq.take(max - n) {
                n += 1;
                f(cqe);
            }
        }
    }

    /// Submits a NOP that makes the thread waiting in `wait` return.
    pub(crate) fn wake(&self) -> io::Result<()> {
        let nop = opcode::Nop::new().build().user_data(WAKE);
        // SAFETY: a NOP points to no memory.
        unsafe { self.push(&mut std::iter::once(nop), true, &mut || {}) }
    }

    /// Submits a cancellation matching `builder`.
    pub(crate) fn cancel(&self, builder: types::CancelBuilder) -> io::Result<()> {
        let entry = opcode::AsyncCancel2::new(builder).build().user_data(CANCEL);
        // SAFETY: a cancellation points to no memory of ours.
        unsafe { self.push(&mut std::iter::once(entry), true, &mut || {}) }
    }
}
