//! The io_uring backend: the ring's set-up and the probe of every kernel feature it uses, submission,
//! the port leader's wait in the kernel, reaping, and the wake-up. Nothing outside this folder names
//! the ring.
//!
//! # Who submits, and why requests outlive their thread
//!
//! io_uring ties a request to the task that submitted it: when that thread exits, its poll-driven
//! requests (a `recv` with no data yet, `accept`, `poll`, `connect`) end with `ECANCELED` and the
//! work queued on its io-wq (buffered file writes) is cancelled; and with `COOP_TASKRUN` a
//! completion's last step (task work) waits until the submitting thread next enters the kernel.
//! Windows never cancels I/O because the thread that issued it exited, and a pool retires threads.
//! [`SubmitMode`] chooses how the port answers that; measured on this project's 2-vCPU machine
//! (`iocport bench nop echo file`, all three side by side in one run, see `BENCHMARKS.md`):
//!
//! - [`SubmitMode::Caller`], the default: callers submit, with `COOP_TASKRUN`. A request the kernel
//!   ends for its thread's exit comes back as an `ECANCELED` that nobody asked for (no `cancel`,
//!   `cancel_all`, handle drop or close: the op table knows), and such a request had done nothing,
//!   so the thread that reaps it submits it again from the same slot; a `connect` resumes as a
//!   poll for writability and reports `SO_ERROR`. Costs nothing until a thread exits. A completion
//!   waits for its submitter's next kernel entry, at most a timer tick while it computes.
//! - [`SubmitMode::CallerInterrupted`]: the same without `COOP_TASKRUN`; the kernel interrupts a
//!   busy submitter at once. The echo server lost about a third of its requests per second.
//! - [`SubmitMode::KernelThread`]: `IORING_SETUP_SQPOLL`, one kernel submission thread per process
//!   (`IORING_SETUP_ATTACH_WQ`; a thread per port made a test suite of 6 ports 25x slower on 2
//!   CPUs), which owns every request. It polls for `SQ_IDLE_MS` after its last work: a CPU taken
//!   from the workers. On 2 vCPUs the echo server lost a third of its requests per second and
//!   one-at-a-time NOPs ran 8x slower (each waits for the kernel thread to pick it up); with a core
//!   to spare it gives the lowest latency.
//!
//! A port-owned submitting thread in user space (every request handed to it, every completion
//! handed back) was measured too, in a separate harness: 15-100x fewer one-at-a-time NOPs and a
//! quarter of the page-cached read rate; it was not kept.
//!
//! # The wake-up
//!
//! One thread at a time (the port's leader) blocks in `io_uring_enter` for completions. A `post`
//! that must reach it writes to an eventfd that a multishot poll on the ring watches (`WAKE`; a
//! one-shot poll, re-armed each time, where the kernel lacks multishot). Any thread may reap that
//! completion; `../wake.rs` has the rules that make sure the leader gets its wake-up all the same
//! and that the poll is armed whenever it sleeps.
//!
//! # Completions are never lost
//!
//! The completion queue has four times the submission queue's entries and the kernel's
//! `IORING_FEAT_NODROP` (required) keeps any overflow until it is reaped; a submission that meets
//! `EBUSY` reaps in place and tries again.

mod sqe;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use crate::error::Error;
use crate::op::{Lending, Op};
use crate::sync::{lock_or_skip, Mutex};

use super::wake::WakeState;
use super::{CancelTarget, Completion, Config, Feature, Features, SubmitMode};

/// A request that found the submission queue full, to queue once there is room.
pub(crate) type Entry = squeue::Entry;

/// `user_data` of the wake-up poll on the eventfd.
const WAKE: u64 = u64::MAX;
/// `user_data` of cancellation requests, whose own completions are ignored.
const CANCEL: u64 = u64::MAX - 1;
/// `user_data` of the probes made at set-up. Operations' `user_data` never reaches these three: its
/// low half is a slot index, below 2^30.
const PROBE: u64 = u64::MAX - 2;
/// The buffer group the multishot receive probe names: never registered (the port's is
/// [`super::PROVIDED_GROUP`]).
const PROBE_GROUP: u16 = 0xfffe;

/// How long the kernel's submission thread polls after its last work before it sleeps.
const SQ_IDLE_MS: u32 = 50;

pub(crate) struct Driver {
    ring: IoUring,
    /// One consumer of the completion queue at a time.
    cq: Mutex<()>,
    probe: Probe,
    features: Features,
    mode: SubmitMode,
    /// Every probe's answer, for `iocport info`.
    report: Vec<Feature>,
    /// Written to wake the leader; a poll on the ring turns each write into a `WAKE` completion.
    wake_fd: OwnedFd,
    wake: WakeState,
}

fn unavailable(reason: String, source: io::Error) -> Error {
    Error::Unavailable { reason, source }
}

/// Names of the features `IOCPORT_TEST_MISSING` pretends are missing (`all` for every one).
fn pretended_missing() -> Vec<String> {
    std::env::var("IOCPORT_TEST_MISSING")
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default()
}

impl Driver {
    /// Sets up a ring with `config.entries` submission entries (rounded up to a power of two by the
    /// kernel) and probes what the kernel offers.
    pub(crate) fn new(config: &Config) -> Result<Driver, Error> {
        let missing = pretended_missing();
        let pretend = |name: &str| missing.iter().any(|m| m == name || m == "all");
        let entries = config.entries;
        let anchor = match config.mode {
            SubmitMode::KernelThread => anchor_fd(),
            SubmitMode::Caller | SubmitMode::CallerInterrupted => None,
        };
        let build = |coop: bool| {
            let mut b = IoUring::builder();
            b.setup_cqsize(entries.saturating_mul(4)).setup_clamp();
            match config.mode {
                SubmitMode::KernelThread => {
                    b.setup_sqpoll(SQ_IDLE_MS);
                    if let Some(fd) = anchor {
                        b.setup_attach_wq(fd);
                    }
                }
                SubmitMode::Caller if coop => {
                    b.setup_coop_taskrun();
                }
                SubmitMode::Caller | SubmitMode::CallerInterrupted => {}
            }
            b.build(entries)
        };
        let mut coop_taskrun = config.mode == SubmitMode::Caller && !pretend("coop_taskrun");
        let ring = match build(coop_taskrun) {
            Err(e) if coop_taskrun && e.raw_os_error() == Some(libc::EINVAL) => {
                coop_taskrun = false;
                build(false)
            }
            Err(e) if anchor.is_some() => {
                tracing::debug!(error = %e, "sharing the submission thread failed; the ring gets its own");
                let mut b = IoUring::builder();
                b.setup_cqsize(entries.saturating_mul(4)).setup_clamp();
                b.setup_sqpoll(SQ_IDLE_MS);
                b.build(entries)
            }
            r => r,
        }
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
                Some(libc::EINVAL) if config.mode == SubmitMode::KernelThread => {
                    "the kernel refused IORING_SETUP_SQPOLL (EINVAL); Linux 5.11 or later is needed"
                        .to_owned()
                }
                _ => format!("io_uring_setup failed: {e}"),
            };
            unavailable(reason, e)
        })?;
        let params = ring.params();
        let mut required = vec![
            ("IORING_FEAT_NODROP", params.is_feature_nodrop()),
            ("IORING_FEAT_EXT_ARG", params.is_feature_ext_arg()),
        ];
        if config.mode == SubmitMode::KernelThread {
            required.push((
                "IORING_FEAT_SQPOLL_NONFIXED",
                params.is_feature_sqpoll_nonfixed(),
            ));
        }
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| unavailable(format!("probing io_uring opcodes failed: {e}"), e))?;
        required.push((
            "IORING_OP_ASYNC_CANCEL",
            probe.is_supported(opcode::AsyncCancel::CODE),
        ));
        required.push((
            "IORING_OP_POLL_ADD",
            probe.is_supported(opcode::PollAdd::CODE),
        ));
        if let Some((name, _)) = required.iter().find(|(_, ok)| !ok) {
            return Err(unavailable(
                format!("the kernel's io_uring lacks {name} (Linux 5.11 or later is needed)"),
                io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            ));
        }
        // SAFETY: eventfd takes no pointers; a non-negative return is a new fd that we own.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(unavailable(
                format!("creating the port's wake-up eventfd failed: {e}"),
                e,
            ));
        }
        // SAFETY: `raw` was just created and is owned by nobody else.
        let wake_fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut driver = Driver {
            ring,
            cq: Mutex::new(()),
            probe,
            features: Features {
                cancel_fd: false,
                cancel_any: false,
                multishot_poll: false,
                recv_multishot: false,
                coop_taskrun,
            },
            mode: config.mode,
            report: Vec::new(),
            wake_fd,
            wake: WakeState::new(),
        };
        // Nothing is in flight yet: a cancel finds nothing (ENOENT) if the kernel knows its flags,
        // and is refused (EINVAL) if not.
        let ring_fd = types::Fd(driver.ring.as_raw_fd());
        let fd_ok = driver.probe_once(cancel_entry(types::CancelBuilder::fd(ring_fd).all()))?;
        let any_ok = driver.probe_once(cancel_entry(types::CancelBuilder::any()))?;
        driver.features.cancel_fd = fd_ok != -libc::EINVAL && !pretend("cancel_fd");
        driver.features.cancel_any = any_ok != -libc::EINVAL && !pretend("cancel_any");
        driver.features.recv_multishot =
            driver.probe_recv_multishot()? && !pretend("recv_multishot");
        // A multishot poll on a readable eventfd completes at once with IORING_CQE_F_MORE if the
        // kernel knows the flag, and with EINVAL if not. It then stays armed as the wake-up poll.
        driver.wake();
        let (res, more) = driver.probe_wake(true)?;
        driver.features.multishot_poll = res >= 0 && more && !pretend("multishot_poll");
        if !driver.features.multishot_poll {
            if more {
                // Pretending: take the multishot poll out again.
                driver.probe_once(cancel_entry(types::CancelBuilder::user_data(WAKE)))?;
                driver.drain_wake_completions();
            }
            driver.drain_eventfd();
            driver.probe_wake(false)?;
            driver.drain_eventfd();
        }
        driver.wake.rearmed();
        driver.wake.leader_back();
        let f = driver.features;
        let mut report: Vec<Feature> = vec![
            Feature::new(
                "IORING_FEAT_NODROP",
                true,
                "completions never dropped (required)",
            ),
            Feature::new(
                "IORING_FEAT_EXT_ARG",
                true,
                "the leader's timed wait (required)",
            ),
        ];
        if config.mode == SubmitMode::KernelThread {
            report.push(Feature::new(
                "IORING_SETUP_SQPOLL",
                true,
                "operations owned by the kernel's submission thread, not the caller (required)",
            ));
        }
        report.extend([
            Feature::new(
                "IORING_ASYNC_CANCEL_FD",
                f.cancel_fd,
                "cancel a handle's operations at once (else one by one)",
            ),
            Feature::new(
                "IORING_ASYNC_CANCEL_ANY",
                f.cancel_any,
                "cancel everything on close at once (else one by one)",
            ),
            Feature::new(
                "IORING_POLL_ADD_MULTI",
                f.multishot_poll,
                "one wake-up poll (else re-armed per wake-up)",
            ),
            Feature::new(
                "IORING_RECV_MULTISHOT",
                f.recv_multishot,
                "recv_multishot and accept_multishot (else refused as unsupported)",
            ),
        ]);
        if config.mode == SubmitMode::Caller {
            report.push(Feature::new(
                "IORING_SETUP_COOP_TASKRUN",
                f.coop_taskrun,
                "fewer interrupts of the submitting thread",
            ));
        }
        for op in ALL_OPS {
            report.push(Feature::new(
                op.0,
                driver.probe.is_supported(op.1),
                "an operation",
            ));
        }
        driver.report = report;
        Ok(driver)
    }

    /// Set-up only (no other thread can use the ring yet): submits `entry` and returns its result.
    fn probe_once(&self, entry: squeue::Entry) -> Result<i32, Error> {
        let entry = entry.user_data(PROBE);
        // SAFETY: set-up runs before the ring is shared: we are its only producer; a cancel points
        // to no memory.
        let queued = unsafe { self.push_entry(&entry) };
        debug_assert!(queued, "a new ring has room");
        Ok(self.setup_completion(PROBE, "probing io_uring")?.result())
    }

    /// Set-up only: whether the kernel takes a multishot receive (Linux 6.0). One is tried on a
    /// socket pair with a byte waiting, from a buffer group nobody registered: a kernel that knows
    /// `IORING_RECV_MULTISHOT` looks for a buffer and ends it with `ENOBUFS`; one that does not
    /// refuses the request with `EINVAL`.
    fn probe_recv_multishot(&self) -> Result<bool, Error> {
        let mut fds = [-1; 2];
        // SAFETY: `fds` has room for the two fds `socketpair` writes.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            // Nothing to try it on: without the probe, not used.
            return Ok(false);
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: one byte from a valid one-byte buffer.
        if unsafe { libc::send(a.as_raw_fd(), [0u8].as_ptr().cast(), 1, 0) } != 1 {
            return Ok(false);
        }
        let entry = opcode::RecvMulti::new(types::Fd(b.as_raw_fd()), PROBE_GROUP).build();
        // The request points to no memory: no buffer group is registered under `PROBE_GROUP`.
        let res = self.probe_once(entry)?;
        Ok(res == -libc::ENOBUFS)
    }

    /// Set-up only: submits what is queued and waits for the completion tagged `user_data`,
    /// dropping any other that comes first.
    fn setup_completion(&self, user_data: u64, what: &str) -> Result<cqueue::Entry, Error> {
        loop {
            self.ring
                .submitter()
                .submit_and_wait(1)
                .map_err(|e| unavailable(format!("{what} failed: {e}"), e))?;
            // SAFETY: set-up: we are the only consumer.
            let cq = unsafe { self.ring.completion_shared() };
            if let Some(cqe) = cq.into_iter().find(|c| c.user_data() == user_data) {
                return Ok(cqe);
            }
        }
    }

    /// Set-up only: arms the wake-up poll. A multishot one, on the eventfd made readable first,
    /// completes at once: this waits for that completion and returns its result and whether the
    /// poll stays armed (`IORING_CQE_F_MORE`). A one-shot one, on the drained eventfd, stays armed
    /// without a completion: this returns `(0, false)` at once.
    fn probe_wake(&self, multi: bool) -> Result<(i32, bool), Error> {
        let entry = self.wake_poll(multi);
        // SAFETY: set-up: the only producer; the poll points to no memory.
        let queued = unsafe { self.push_entry(&entry) };
        debug_assert!(queued, "a new ring has room");
        if !multi {
            self.ring
                .submitter()
                .submit()
                .map_err(|e| unavailable(format!("arming the wake-up poll failed: {e}"), e))?;
            return Ok((0, false));
        }
        let cqe = self.setup_completion(WAKE, "arming the wake-up poll")?;
        Ok((cqe.result(), cqueue::more(cqe.flags())))
    }

    /// Set-up only: reaps the `WAKE` completions that are there.
    fn drain_wake_completions(&self) {
        // SAFETY: set-up: we are the only consumer.
        let cq = unsafe { self.ring.completion_shared() };
        cq.for_each(drop);
    }

    /// Reads the eventfd's counter to 0 (the one-shot fallback: the next poll then waits for a
    /// new write).
    fn drain_eventfd(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads at most 8 bytes into `n`, which outlives the call; the fd is non-blocking,
        // so an empty counter is EAGAIN, which needs no handling.
        unsafe {
            libc::read(
                self.wake_fd.as_raw_fd(),
                (&mut n as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Every probe's answer.
    pub(crate) fn report(&self) -> &[Feature] {
        &self.report
    }

    /// The features probed.
    pub(crate) fn features(&self) -> Features {
        self.features
    }

    /// Makes the port's provided buffer ring and registers it (`IORING_REGISTER_PBUF_RING`, Linux
    /// 5.19).
    pub(crate) fn register_buf_ring(&self) -> Result<super::provided::Ring, Error> {
        let ring = super::provided::Ring::new();
        // SAFETY: the ring's memory is page-aligned, `CAPACITY` entries, and lives until after
        // the ring fd is closed (the port's I/O drops the driver first).
        let r = unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                ring.addr(),
                super::provided::CAPACITY as u16,
                super::provided::GROUP,
                0,
            )
        };
        match r {
            Ok(()) => Ok(ring),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                Err(Error::Unsupported {
                    op: "recv_provided (provided buffer rings, Linux 5.19)",
                })
            }
            Err(source) => Err(Error::Resources {
                op: "provide_buffer",
                fd: -1,
                what: "the provided buffer ring",
                source,
            }),
        }
    }

    /// Whether the kernel supports `op`.
    #[inline]
    pub(crate) fn supports(&self, op: Op) -> bool {
        // Multishot accept came in Linux 5.19, multishot receive in 6.0: a kernel with the one
        // probed has both.
        if matches!(
            op,
            Op::RecvProvided {
                multishot: true,
                ..
            } | Op::AcceptMulti
        ) && !self.features.recv_multishot
        {
            return false;
        }
        self.probe.is_supported(sqe::opcode_of(op))
    }

    /// The poll on the wake-up eventfd.
    fn wake_poll(&self, multi: bool) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.wake_fd.as_raw_fd()), libc::POLLIN as u32)
            .multi(multi)
            .build()
            .user_data(WAKE)
    }

    /// Builds `op`'s entry and queues it without submitting it; gives the entry back if the
    /// submission queue is full (make room, then [`push_entry`](Self::push_entry) it).
    ///
    /// # Safety
    ///
    /// The caller must be the submission queue's only producer (it holds the op table's lock), and
    /// `lending` must stay at its address, untouched, until the operation's completion is reaped.
    pub(crate) unsafe fn push_op<B>(
        &self,
        op: Op,
        fd: RawFd,
        lending: &mut Lending<B>,
        user_data: u64,
    ) -> Result<(), Entry> {
        let entry = sqe::build(op, fd, lending).user_data(user_data);
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
    /// The caller must be the submission queue's only producer (it holds the op table's lock), and
    /// every pointer in `entry` must stay valid until its completion has been reaped.
    pub(crate) unsafe fn push_entry(&self, entry: &Entry) -> bool {
        // SAFETY: the caller makes us the only producer.
        let mut sq = unsafe { self.ring.submission_shared() };
        // SAFETY: the caller keeps the entry's memory valid until its completion is reaped. The view
        // publishes the new tail when it is dropped.
        unsafe { sq.push(entry) }.is_ok()
    }

    /// Queues a cancellation; `false` if the submission queue is full.
    ///
    /// # Safety
    ///
    /// The caller must be the submission queue's only producer (it holds the op table's lock).
    pub(crate) unsafe fn push_cancel(&self, target: CancelTarget) -> bool {
        let builder = match target {
            CancelTarget::Op(ud, _) => types::CancelBuilder::user_data(ud),
            CancelTarget::Fd(fd) => types::CancelBuilder::fd(types::Fd(fd)).all(),
            CancelTarget::Any => types::CancelBuilder::any(),
        };
        // SAFETY: as the caller guarantees; a cancellation points to no memory.
        unsafe { self.push_entry(&cancel_entry(builder)) }
    }

    /// Whether the wake-up poll must be armed again.
    #[inline]
    pub(crate) fn needs_rearm(&self) -> bool {
        self.wake.needs_rearm()
    }

    /// Arms the wake-up poll again if the kernel ended it; `false` if it is still not armed (the
    /// submission queue is full).
    ///
    /// # Safety
    ///
    /// The caller must be the submission queue's only producer (it holds the op table's lock).
    pub(crate) unsafe fn rearm(&self) -> bool {
        if !self.wake.needs_rearm() {
            return true;
        }
        // SAFETY: as the caller guarantees; the poll points to no memory.
        if unsafe { self.push_entry(&self.wake_poll(self.features.multishot_poll)) } {
            self.wake.rearmed();
            true
        } else {
            false
        }
    }

    /// Submits what is queued. On `EBUSY` (completions must be reaped first) calls `reap`, which
    /// reaps in place, and tries again. Call it without the op table's lock: `reap` takes it.
    pub(crate) fn submit(&self, reap: &mut dyn FnMut()) -> io::Result<()> {
        loop {
            match self.ring.submitter().submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => reap(),
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt at submitting what is queued: `Ok(false)` if the kernel wants completions reaped
    /// first (`EBUSY`) or a signal interrupted it; the entries stay queued.
    pub(crate) fn try_submit(&self) -> io::Result<bool> {
        match self.ring.submitter().submit() {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EINTR)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The submission queue was full: returns once the kernel has taken entries from it (the
    /// caller's own submission, or, with the kernel's submission thread, `IORING_ENTER_SQ_WAIT`).
    pub(crate) fn make_room(&self, reap: &mut dyn FnMut()) -> io::Result<()> {
        self.submit(reap)?;
        if self.mode == SubmitMode::KernelThread {
            loop {
                match self.ring.submitter().squeue_wait() {
                    Ok(_) => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => reap(),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Submits what is queued and waits until at least one completion is there, `deadline` passes,
    /// a wake-up arrives or a signal interrupts. The port's leader calls it with `leader` set and the
    /// wake-up poll armed; the close drain calls it with a deadline.
    pub(crate) fn wait(&self, deadline: Option<Instant>, leader: bool) -> io::Result<()> {
        let result = match deadline {
            None => self.ring.submitter().submit_and_wait(1),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                let ts = types::Timespec::from(left);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        if leader {
            self.wake.leader_back();
        }
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

    /// Hands operation completions to `f`, oldest first, until `f` has said `true` (the completion
    /// became a packet) `max` times; returns how many times it did. The backend's own completions
    /// (wake-ups, cancels) are handled here and do not count. With `block` false it gives up at once
    /// if another thread is reaping.
    pub(crate) fn reap(
        &self,
        block: bool,
        max: usize,
        f: &mut dyn FnMut(Completion) -> bool,
    ) -> usize {
        let Some(cq_lock) = lock_or_skip(&self.cq, block) else {
            return 0;
        };
        let mut n = 0;
        let mut resend = false;
        while n < max {
            // SAFETY: the `cq` lock makes us the completion queue's only consumer.
            let mut cq = unsafe { self.ring.completion_shared() };
            if cq.is_empty() {
                break;
            }
            // Entries not taken stay in the queue (the view writes back the head it reached).
            while n < max {
                let Some(cqe) = cq.next() else { break };
                match cqe.user_data() {
                    WAKE => {
                        resend |= self.wake.reaped_completion(
                            !cqueue::more(cqe.flags()),
                            !self.features.multishot_poll,
                            || self.drain_eventfd(),
                        );
                    }
                    CANCEL | PROBE => {}
                    user_data => {
                        let counted = f(Completion {
                            user_data,
                            result: cqe.result(),
                            flags: cqe.flags(),
                        });
                        n += usize::from(counted);
                    }
                }
            }
        }
        drop(cq_lock);
        if resend {
            // The leader has not come back from the kernel since the wake-up we took was sent: it
            // may still be on its way in, and would sleep through it. Send it again, once, after
            // this reap (its completion is for the leader, or for the next reaper, not for us).
            self.write_wake();
        }
        n
    }

    /// Makes the thread waiting in `wait` return.
    pub(crate) fn wake(&self) {
        self.wake.send(|| self.write_wake());
    }

    fn write_wake(&self) {
        super::wake::signal(self.wake_fd.as_raw_fd());
    }
}

/// The ring whose kernel submission thread every port of the process shares
/// (`IORING_SETUP_ATTACH_WQ`): one polling thread per process, however many ports, rather than one
/// per port competing for the CPUs. It is never used for I/O and lives as long as the process (its
/// thread sleeps while no port has work). `None` if it cannot be set up (each ring then has its own
/// thread); a forked child makes its own.
fn anchor_fd() -> Option<RawFd> {
    static ANCHOR: std::sync::Mutex<Option<(u32, IoUring)>> = std::sync::Mutex::new(None);
    let mut anchor = ANCHOR.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if anchor.as_ref().is_none_or(|(p, _)| *p != pid) {
        let ring = IoUring::builder().setup_sqpoll(SQ_IDLE_MS).build(1).ok()?;
        if let Some((_, old)) = anchor.replace((pid, ring)) {
            // The parent's ring, inherited across fork: not ours to share.
            std::mem::forget(old);
        }
    }
    anchor.as_ref().map(|(_, ring)| ring.as_raw_fd())
}

/// A cancellation request; its own completion is ignored.
fn cancel_entry(builder: types::CancelBuilder) -> squeue::Entry {
    opcode::AsyncCancel2::new(builder).build().user_data(CANCEL)
}

/// Every opcode an operation may need, for the report.
const ALL_OPS: [(&str, u8); 15] = [
    ("IORING_OP_NOP", opcode::Nop::CODE),
    ("IORING_OP_TIMEOUT", opcode::Timeout::CODE),
    ("IORING_OP_READ", opcode::Read::CODE),
    ("IORING_OP_WRITE", opcode::Write::CODE),
    ("IORING_OP_READV", opcode::Readv::CODE),
    ("IORING_OP_WRITEV", opcode::Writev::CODE),
    ("IORING_OP_RECV", opcode::Recv::CODE),
    ("IORING_OP_SEND", opcode::Send::CODE),
    ("IORING_OP_RECVMSG", opcode::RecvMsg::CODE),
    ("IORING_OP_SENDMSG", opcode::SendMsg::CODE),
    ("IORING_OP_ACCEPT", opcode::Accept::CODE),
    ("IORING_OP_CONNECT", opcode::Connect::CODE),
    ("IORING_OP_SHUTDOWN", opcode::Shutdown::CODE),
    ("IORING_OP_FSYNC", opcode::Fsync::CODE),
    ("IORING_OP_POLL_ADD", opcode::PollAdd::CODE),
];
