//! Operations in flight: the op table, submission, and turning completions into packets.
//!
//! Each operation gets a slot in a slab ([`Ops`]), indexed by the low half of its io_uring
//! `user_data`; the high half is the slot's generation, so a completion or a cancel for an operation
//! that has ended can never touch the slot's next tenant. A slot is boxed and never moves, and owns
//! everything the kernel may touch (buffers, `iovec`s, `msghdr`, socket address, timespec) until the
//! completion is reaped; it also holds a reference to the handle's fd, so the fd is closed only after
//! its last operation ended and its number cannot be reused under an operation in flight. Slots are
//! reused, so a port in a steady state does not allocate per operation.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::{Duration, Instant};

use io_uring::{cqueue, types};

use crate::buf::IoBuf;
use crate::driver::{Uring, CANCEL, WAKE};
use crate::error::{Error, OpError};
use crate::op::{IoVecs, Lent, OpId, Request, GENERATION_BITS, INDEX_BITS, MAX_TAG};
use crate::port::{Data, Packet, Status};
use crate::sync::{lock, Mutex};

/// Every fd associated with some port in this process: a handle belongs to one port only.
fn associated() -> &'static StdMutex<HashSet<RawFd>> {
    static SET: OnceLock<StdMutex<HashSet<RawFd>>> = OnceLock::new();
    SET.get_or_init(Default::default)
}

/// An fd associated with a port. Dropped (closing the fd) when its handle and every operation that
/// uses it are gone.
pub(crate) struct FdEntry {
    fd: OwnedFd,
    /// FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: try operations synchronously first.
    /// Which operations skip-on-success applies to: [`SKIP_READS`] and/or [`SKIP_WRITES`].
    pub(crate) skip_on_success: AtomicU8,
    /// Operations in flight on this fd.
    pub(crate) pending: AtomicUsize,
    /// Opened with `O_DIRECT`: a synchronous first try would wait for the device, so skip-on-success
    /// sends its reads and writes straight to the ring.
    pub(crate) direct: bool,
}

impl FdEntry {
    pub(crate) fn new(fd: OwnedFd) -> Result<FdEntry, Error> {
        let raw = fd.as_raw_fd();
        // SAFETY: F_GETFD takes no argument and only reads the fd table.
        if unsafe { libc::fcntl(raw, libc::F_GETFD) } == -1 {
            return Err(Error::BadFd {
                fd: raw,
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: F_GETFL takes no argument and only reads the fd's flags.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
        let direct = flags != -1 && flags & libc::O_DIRECT != 0;
        if !lock_set().insert(raw) {
            // Someone else owns the number too (a duplicated `from_raw_fd`): give it back unclosed,
            // which is what its other owner expects.
            std::mem::forget(fd);
            return Err(Error::AlreadyAssociated { fd: raw });
        }
        Ok(FdEntry {
            fd,
            skip_on_success: AtomicU8::new(0),
            pending: AtomicUsize::new(0),
            direct,
        })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn lock_set() -> std::sync::MutexGuard<'static, HashSet<RawFd>> {
    associated().lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for FdEntry {
    fn drop(&mut self) {
        // Still open here (`fd` closes after this): the number cannot be taken by a new file before
        // it leaves the set.
        lock_set().remove(&self.fd.as_raw_fd());
    }
}

/// One operation's slot.
struct Slot<T, B> {
    generation: u32,
    live: bool,
    timer: bool,
    key: usize,
    value: Option<T>,
    lent: Lent<B>,
    iov: IoVecs,
    fd: Option<Arc<FdEntry>>,
}

/// A completed operation's packet, and the fd reference its slot held.
type Completed<T, B> = (Packet<T, B>, Option<Arc<FdEntry>>);

/// The op table.
struct Ops<T, B> {
    slots: Vec<Box<Slot<T, B>>>,
    free: Vec<u32>,
    /// Set when the port closes: no operation starts after it.
    closed: bool,
    /// Operations started whose packet has not yet been placed.
    in_flight: usize,
}

/// The I/O half of a port: the ring and the operations in flight on it.
pub(crate) struct Io<T, B: IoBuf> {
    pub(crate) ring: Uring,
    /// This port's tag in every [`OpId`].
    tag: u16,
    /// The op table; its lock also makes the holder the submission queue's only producer.
    ops: Mutex<Ops<T, B>>,
}

/// How an operation should be started.
pub(crate) struct Start<'a> {
    pub(crate) key: usize,
    pub(crate) fd: Option<&'a Arc<FdEntry>>,
    /// Inside [`CompletionPort::batch`](crate::CompletionPort::batch): queue, submit later.
    pub(crate) defer: bool,
}

impl<T, B: IoBuf> Io<T, B> {
    pub(crate) fn new(entries: u32) -> Result<Io<T, B>, Error> {
        static NEXT_TAG: AtomicUsize = AtomicUsize::new(0);
        let tag = (NEXT_TAG.fetch_add(1, Ordering::Relaxed) % usize::from(MAX_TAG)) as u16 + 1;
        Ok(Io {
            ring: Uring::new(entries)?,
            tag,
            ops: Mutex::new(Ops {
                slots: Vec::new(),
                free: Vec::new(),
                closed: false,
                in_flight: 0,
            }),
        })
    }

    /// Takes a slot for `req`, builds its entry and submits it. `reap` is called if the kernel asks
    /// for completions to be reaped before it takes more.
    pub(crate) fn submit(
        &self,
        start: Start<'_>,
        req: Request<B>,
        value: T,
        reap: &mut dyn FnMut(),
    ) -> Result<OpId, OpError<T, B>> {
        let raw = start.fd.map_or(-1, |f| f.raw());
        let op = req.name();
        if let Err((reason, len)) = req.check_buffers() {
            return Err(OpError {
                error: Error::InvalidBuffer {
                    op,
                    fd: raw,
                    len,
                    reason,
                },
                value,
                data: req.into_data(),
            });
        }
        if !self.ring.supports(req.opcode()) {
            return Err(OpError {
                error: Error::Unsupported { op },
                value,
                data: req.into_data(),
            });
        }
        let queued = {
            let mut ops = lock(&self.ops);
            if ops.closed {
                return Err(OpError {
                    error: Error::Closed,
                    value,
                    data: req.into_data(),
                });
            }
            let index = match ops.free.pop() {
                Some(i) => i,
                None if ops.slots.len() >= 1 << INDEX_BITS => {
                    drop(ops);
                    return Err(OpError {
                        error: Error::InvalidArgument {
                            op,
                            fd: raw,
                            reason: "more than 2^24 operations in flight on one port",
                        },
                        value,
                        data: req.into_data(),
                    });
                }
                None => {
                    let i = ops.slots.len() as u32;
                    ops.slots.push(Box::new(Slot {
                        generation: 0,
                        live: false,
                        timer: false,
                        key: 0,
                        value: None,
                        lent: Lent::None,
                        iov: IoVecs::default(),
                        fd: None,
                    }));
                    i
                }
            };
            let slot = &mut ops.slots[index as usize];
            slot.generation = (slot.generation + 1) & ((1 << GENERATION_BITS) - 1);
            slot.generation = slot.generation.max(1);
            slot.live = true;
            slot.timer = matches!(req, Request::Timer(_));
            slot.key = start.key;
            slot.value = Some(value);
            slot.fd = start.fd.cloned();
            // Only vectored operations use (and give back) the cached iovec array.
            let iov = match req {
                Request::Readv { .. } | Request::Writev { .. } => std::mem::take(&mut slot.iov),
                _ => IoVecs::default(),
            };
            let id = OpId::new(self.tag, index, slot.generation);
            let entry = slot.lent.prepare(raw, req, iov).user_data(id.user_data());
            // Counted under the lock: `cancel_all_and_drain` either refused us or waits for us.
            ops.in_flight += 1;
            // SAFETY: we hold the op table's lock, so we are the submission queue's only producer;
            // every pointer in `entry` points into the slot (boxed: it never moves), which keeps its
            // contents until `reap` takes this entry's completion; the port waits for every operation
            // in flight before it frees the slots.
            let queued = unsafe { self.ring.queue(&entry) };
            (id, entry, queued)
        };
        if let Some(fd) = start.fd {
            fd.pending.fetch_add(1, Ordering::Relaxed);
        }
        let (id, entry, queued) = queued;
        if !queued {
            self.queue_when_room(&entry, reap);
        }
        if !start.defer {
            if let Err(e) = self.ring.submit(reap) {
                // The entry stays queued; the next `io_uring_enter` (the leader's wait) submits it.
                tracing_hint(op, raw, &e);
            }
        }
        Ok(id)
    }

    /// The submission queue was full: submit what is there and queue `entry` once there is room.
    fn queue_when_room(&self, entry: &io_uring::squeue::Entry, reap: &mut dyn FnMut()) {
        loop {
            if let Err(e) = self.ring.submit(reap) {
                tracing_hint("submit", -1, &e);
                std::thread::yield_now();
            }
            let _ops = lock(&self.ops);
            // SAFETY: as in `submit`: the lock is held, the entry's memory is the slot's (or none).
            if unsafe { self.ring.queue(entry) } {
                return;
            }
        }
    }

    /// Queues and submits one of the port's own entries (cancellations).
    fn control(&self, entry: io_uring::squeue::Entry) -> std::io::Result<()> {
        let queued = {
            let _ops = lock(&self.ops);
            // SAFETY: the lock is held; a cancellation points to no memory of ours.
            unsafe { self.ring.queue(&entry) }
        };
        if !queued {
            self.queue_when_room(&entry, &mut || {});
        }
        self.ring.submit(&mut || {})
    }

    /// Operations started whose packet has not yet been placed.
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.ops).in_flight
    }
}

impl<T, B: IoBuf> Io<T, B> {
    /// Submits what `batch` left queued.
    pub(crate) fn flush(&self, reap: &mut dyn FnMut()) {
        if let Err(e) = self.ring.submit(reap) {
            tracing_hint("batch", -1, &e);
        }
    }

    /// Reaps up to `max` completions and hands each operation's packet to `place` (the port's own
    /// entries, wake-ups and cancels, are skipped); returns how many packets. The op table is locked
    /// once for the lot. `in_flight` drops after each packet is placed, so `close` never misses one.
    pub(crate) fn reap(
        &self,
        block: bool,
        max: usize,
        place: &mut dyn FnMut(Packet<T, B>),
    ) -> usize {
        let mut ops = None;
        let mut placed = 0;
        self.ring.reap(block, max, &mut |cqe| {
            let ops = ops.get_or_insert_with(|| lock(&self.ops));
            if cqe.user_data() == WAKE && !cqueue::more(cqe.flags()) && !ops.closed {
                // The kernel ended the multishot wake-up poll: arm it again (the next
                // `io_uring_enter` submits it). If the queue is full, the entry waits in the
                // overflow of the next submission, so try again on the next reap.
                // SAFETY: the lock is held; the poll points to no memory of ours.
                let _ = unsafe { self.ring.queue(&self.ring.wake_poll()) };
            }
            if let Some((packet, fd)) = self.complete(ops, &cqe) {
                if let Some(fd) = fd {
                    fd.pending.fetch_sub(1, Ordering::Relaxed);
                    // The last operation on a dropped handle closes the fd here.
                    drop(fd);
                }
                place(packet);
                placed += 1;
                ops.in_flight -= 1;
            }
        });
        placed
    }

    /// Turns a completion into its packet, freeing the slot; `None` for the port's own entries.
    fn complete(&self, ops: &mut Ops<T, B>, cqe: &cqueue::Entry) -> Option<Completed<T, B>> {
        let ud = cqe.user_data();
        if ud == WAKE || ud == CANCEL {
            return None;
        }
        let id = OpId::from_user_data(ud)?;
        if id.tag() != self.tag {
            return None;
        }
        let slot = ops.slots.get_mut(id.index())?;
        if !slot.live || slot.generation != id.generation() {
            return None;
        }
        let (bytes, status, data, iov) = slot.lent.finish(cqe.result(), slot.timer);
        if iov.has_capacity() {
            slot.iov = iov;
        }
        slot.live = false;
        let value = slot.value.take().expect("a live slot holds its value");
        let fd = slot.fd.take();
        let key = slot.key;
        ops.free.push(id.index() as u32);
        let packet = Packet {
            key,
            bytes,
            status,
            op: Some(id),
            value,
            data,
        };
        Some((packet, fd))
    }

    /// Requests cancellation of `id` if it is in flight.
    pub(crate) fn cancel(&self, id: OpId) -> Result<(), Error> {
        {
            let ops = lock(&self.ops);
            match ops.slots.get(id.index()) {
                Some(s) if id.tag() == self.tag && s.live && s.generation == id.generation() => {}
                _ => return Err(Error::NotFound { id }),
            }
        }
        self.control(cancel_entry(types::CancelBuilder::user_data(
            id.user_data(),
        )))
        .map_err(|source| Error::Submit {
            op: "cancel",
            fd: -1,
            source,
        })
    }

    /// Requests cancellation of every operation on `fd`.
    pub(crate) fn cancel_fd(&self, fd: &FdEntry) -> Result<(), Error> {
        if fd.pending.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        self.control(cancel_entry(
            types::CancelBuilder::fd(types::Fd(fd.raw())).all(),
        ))
        .map_err(|source| Error::Submit {
            op: "cancel",
            fd: fd.raw(),
            source,
        })
    }

    /// Cancels everything in flight and hands each packet to `place` until nothing is left. Cancels
    /// are repeated while operations remain, so one submitted concurrently cannot escape.
    pub(crate) fn cancel_all_and_drain(&self, place: &mut dyn FnMut(Packet<T, B>)) {
        lock(&self.ops).closed = true;
        let mut next_cancel = Instant::now();
        while self.in_flight() > 0 {
            if Instant::now() >= next_cancel {
                let _ = self.control(cancel_entry(types::CancelBuilder::any().all()));
                next_cancel = Instant::now() + Duration::from_millis(10);
            }
            let _ = self
                .ring
                .wait(Some(Instant::now() + Duration::from_millis(10)));
            self.reap(true, usize::MAX, place);
        }
    }
}

/// A cancellation request; its own completion is ignored.
fn cancel_entry(builder: types::CancelBuilder) -> io_uring::squeue::Entry {
    io_uring::opcode::AsyncCancel2::new(builder)
        .build()
        .user_data(CANCEL)
}

/// Submission errors leave the entry queued for the next `io_uring_enter`; nothing is lost, but the
/// program may want to know.
fn tracing_hint(op: &str, fd: RawFd, e: &std::io::Error) {
    tracing::warn!(op, fd, error = %e, "io_uring_enter failed; the entry stays queued for the next one");
}

impl<T, B: IoBuf> Drop for Io<T, B> {
    /// The last safety net: if operations are still in flight (every handle and port dropped without
    /// a `close` that waited), cancel them and wait for the kernel before the slots are freed.
    fn drop(&mut self) {
        if self.in_flight() > 0 {
            self.cancel_all_and_drain(&mut drop);
        }
    }
}

/// Skip-on-success for `read`, `read_at` and `recv`.
pub(crate) const SKIP_READS: u8 = 1;
/// Skip-on-success for `write`, `write_at` and `send`.
pub(crate) const SKIP_WRITES: u8 = 2;

/// Whether `req` is one that skip-on-success set to `mode` tries at once.
pub(crate) fn skips<B>(mode: u8, req: &Request<B>) -> bool {
    match req {
        Request::Read { .. } | Request::Recv { .. } => mode & SKIP_READS != 0,
        Request::Write { .. } | Request::Send { .. } => mode & SKIP_WRITES != 0,
        _ => false,
    }
}

/// The synchronous first try of an operation on a skip-on-success handle: `Some(result)` if it
/// completed (or failed) at once, `None` if it would block and must go to the kernel.
pub(crate) fn try_now<B: IoBuf>(fd: &FdEntry, req: &mut Request<B>) -> Option<isize> {
    let direct = fd.direct;
    let fd = fd.raw();
    let rc = match req {
        Request::Read { .. } | Request::Write { .. } if direct => return None,
        Request::Read { buf, offset } => {
            let iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: `iov` describes the buffer's `len` bytes, which it owns; the call returns before
            // the buffer can move. An offset of -1 means the file position.
            unsafe { libc::preadv2(fd, &iov, 1, *offset as i64, libc::RWF_NOWAIT) }
        }
        Request::Write { buf, offset } => {
            let iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: as for the read; the kernel only reads the buffer.
            unsafe { libc::pwritev2(fd, &iov, 1, *offset as i64, libc::RWF_NOWAIT) }
        }
        Request::Recv { buf, flags } => {
            let len = buf.len();
            // SAFETY: the buffer's `len` bytes are valid for writes for the length of the call.
            unsafe {
                libc::recv(
                    fd,
                    buf.as_mut_ptr().cast(),
                    len,
                    *flags | libc::MSG_DONTWAIT,
                )
            }
        }
        Request::Send { buf, flags } => {
            let len = buf.len();
            // SAFETY: the buffer's `len` bytes are valid for reads for the length of the call.
            unsafe {
                libc::send(
                    fd,
                    buf.as_mut_ptr().cast(),
                    len,
                    *flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            }
        }
        _ => return None,
    };
    if rc >= 0 {
        return Some(rc);
    }
    let errno = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    match errno {
        libc::EAGAIN | libc::EOPNOTSUPP | libc::EINTR => None,
        e => Some(-(e as isize)),
    }
}

/// The packet of an operation that completed synchronously.
pub(crate) fn done_now<T, B: IoBuf>(
    key: usize,
    rc: isize,
    req: Request<B>,
    value: T,
) -> Packet<T, B> {
    let (bytes, status) = if rc < 0 {
        (0, Status::from_errno(-rc as i32))
    } else {
        (rc as usize, Status::SUCCESS)
    };
    let data = match req.into_data() {
        Data::From(b, _) => Data::Buf(b),
        d => d,
    };
    Packet {
        key,
        bytes,
        status,
        op: None,
        value,
        data,
    }
}
