//! The io_uring ring behind a port: set-up, the probe, submission and the completion queue.
//!
//! The ring is a *source* of completions, not the queue threads wait on (the port's queue is). Any
//! thread may submit: the submission queue has one producer at a time (the caller holds the op
//! table's lock, `io.rs`, so taking a slot and queueing its entry is one critical section), and every
//! entry is published before `io_uring_enter` is called, which the kernel serialises itself. The
//! completion queue has one consumer at a time (`cq` lock): whichever thread reaps turns entries into
//! packets. One waiting thread at a time (the port's *leader*) blocks in `io_uring_enter` for
//! completions; a `post` that has to reach it writes to an eventfd that a multishot poll on the ring
//! watches (tagged [`WAKE`]), which needs no submission.
//!
//! Completions are never lost: the ring is set up with a completion queue four times the
//! submission queue, and the kernel's `IORING_FEAT_NODROP` (required) keeps any overflow until it is
//! reaped; a submission that meets `EBUSY` reaps and tries again.

use std::io;
use std::time::Instant;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use crate::error::Error;
use crate::sync::{lock, Mutex};

/// `user_data` of the wake-up poll on the eventfd.
pub(crate) const WAKE: u64 = u64::MAX;
/// `user_data` of cancellation requests, whose own completions are ignored.
pub(crate) const CANCEL: u64 = u64::MAX - 1;

pub(crate) struct Uring {
    ring: IoUring,
    cq: Mutex<()>,
    probe: Probe,
    /// Written to wake the leader; a multishot poll on the ring turns each write into a completion.
    wake_fd: OwnedFd,
}

impl Uring {
    /// Sets up a ring with `entries` submission entries (rounded up to a power of two by the kernel).
    pub(crate) fn new(entries: u32) -> Result<Uring, Error> {
        // COOP_TASKRUN (Linux 5.19): completions that need work on the submitting thread wait for
        // its next system call instead of interrupting it. Measured on the echo benchmark: 1.75x
        // the requests per second. Older kernels refuse the flag; then go without.
        let build = |coop: bool| {
            let mut b = IoUring::builder();
            b.setup_cqsize(entries.saturating_mul(4)).setup_clamp();
            if coop {
                b.setup_coop_taskrun();
            }
            b.build(entries)
        };
        let ring = build(true)
            .or_else(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => build(false),
                _ => Err(e),
            })
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
        // SAFETY: eventfd takes no pointers; a non-negative return is a new fd that we own.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(Error::Unavailable {
                reason: format!("creating the port's wake-up eventfd failed: {e}"),
                source: e,
            });
        }
        // SAFETY: `raw` was just created and is owned by nobody else.
        let wake_fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let uring = Uring {
            ring,
            cq: Mutex::new(()),
            probe,
            wake_fd,
        };
        // SAFETY: nothing else can use the ring yet, so we are its only producer; the poll entry
        // points to no memory.
        let armed = unsafe { uring.queue(&uring.wake_poll()) };
        debug_assert!(armed, "a new ring has room");
        uring.submit(&mut || {}).map_err(|e| Error::Unavailable {
            reason: format!("arming the wake-up poll failed: {e}"),
            source: e,
        })?;
        Ok(uring)
    }

    /// Whether the kernel supports `opcode`.
    pub(crate) fn supports(&self, opcode: u8) -> bool {
        self.probe.is_supported(opcode)
    }

    /// The multishot poll on the wake-up eventfd.
    pub(crate) fn wake_poll(&self) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.wake_fd.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(WAKE)
    }

    /// Queues `entry` without submitting it; `false` if the submission queue is full (submit, then
    /// queue again).
    ///
    /// # Safety
    ///
    /// The caller must be the submission queue's only producer (it holds the op table's lock), and
    /// every pointer in `entry` must stay valid until its completion has been reaped.
    pub(crate) unsafe fn queue(&self, entry: &squeue::Entry) -> bool {
        // SAFETY: the caller makes us the only producer.
        let mut sq = unsafe { self.ring.submission_shared() };
        // SAFETY: the caller keeps the entry's memory valid until its completion is reaped. The view
        // publishes the new tail when it is dropped.
        unsafe { sq.push(entry) }.is_ok()
    }

    /// Submits what is queued. On `EBUSY` (completions waiting to be reaped) reaps and retries.
    /// Call it without the op table's lock: `reap` takes it.
    pub(crate) fn submit(&self, reap: &mut dyn FnMut()) -> io::Result<()> {
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

    /// Makes the thread waiting in `wait` return: one write to the eventfd its poll watches.
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which outlives the call. An eventfd write fails only
        // when the counter would overflow (it is never read: 2^64 wake-ups away), and then the
        // leader already has a wake-up pending.
        unsafe {
            libc::write(
                self.wake_fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}
