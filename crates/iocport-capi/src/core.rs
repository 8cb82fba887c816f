//! What every operation shares: the port type, the caller's buffers, each packet's context, the
//! fds associated with ports, the operations in flight on each, and the completion hook that
//! writes the caller's `OVERLAPPED`.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use iocport::{CompletionPort, Data, Error, Handle, IoBuf, OpError, OpId, Packet, Started};

use crate::inflight::Inflight;
use crate::status::{errno_to_status, Origin};
use crate::types::*;

/// A completion port of the C API.
pub(crate) type Port = CompletionPort<Ctx, RawBuf>;

/// Locks `m`, ignoring poisoning (no invariant of ours spans a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A buffer of the C program: a pointer and a length it promised to keep valid until the
/// operation's packet is queued (the Win32 contract for overlapped I/O).
pub(crate) struct RawBuf {
    ptr: *mut u8,
    len: usize,
}

impl RawBuf {
    /// `len` bytes at `ptr`, which the caller keeps valid while the operation is in flight.
    pub(crate) fn new(ptr: *mut u8, len: usize) -> RawBuf {
        RawBuf { ptr, len }
    }

    /// The address of the first byte.
    pub(crate) fn ptr(&self) -> usize {
        self.ptr as usize
    }
}

// SAFETY: the bytes belong to the C program, which may touch them from any thread; the library
// only hands the pointer to the kernel (or to a pool thread of the epoll backend).
unsafe impl Send for RawBuf {}

// SAFETY: the pointer and length never change, and the memory does not move with this value: it
// is the C program's, kept valid for the operation's lifetime as overlapped I/O requires.
unsafe impl IoBuf for RawBuf {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// What an operation is, for finishing its packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// A packet of `PostQueuedCompletionStatus`.
    Posted,
    /// `WSARecv` (or `ReadFile` on a socket).
    Recv,
    /// A zero-byte `WSARecv`: completes, with 0 bytes, once data can be read.
    RecvZero,
    /// `WSASend` (or `WriteFile` on a socket).
    Send,
    /// `WSARecvFrom`.
    RecvFrom,
    /// `WSASendTo`.
    SendTo,
    /// `ReadFile` on a file or pipe.
    Read,
    /// `WriteFile` on a file or pipe.
    Write,
    /// `AcceptEx`, waiting for a connection.
    Accept,
    /// `AcceptEx`, waiting for the connection's first bytes.
    AcceptRecv,
    /// `ConnectEx`, connecting.
    Connect,
    /// `ConnectEx`, sending its data once connected.
    ConnectSend,
    /// `DisconnectEx`.
    Disconnect,
    /// `TransmitFile`: one of its stages (head, file, tail, shutdown), see
    /// [`Transmit`](crate::sock::Transmit).
    Transmit,
}

/// What some operations need beyond their kind.
pub(crate) enum Extra {
    /// `AcceptEx`'s arguments.
    Accept(AcceptInfo),
    /// `WSARecvFrom`'s address out-parameters, and, when it was given several buffers, theirs
    /// and the one the datagram lands in first.
    From {
        from: usize,
        fromlen: usize,
        scatter: Vec<(usize, usize)>,
        owned: Vec<u8>,
    },
    /// A buffer of ours the operation uses (a datagram gathered from several): kept alive here
    /// until the operation completes, never read.
    #[allow(dead_code)]
    Owned(Vec<u8>),
    /// `ConnectEx`'s data to send once connected.
    Connect { data: usize, len: u32 },
    /// `DisconnectEx(TF_REUSE_SOCKET)`: the program's socket and its ticket.
    Reuse { ticket: u64, fd: RawFd },
    /// `TransmitFile`'s arguments and how far it got.
    Transmit(crate::sock::Transmit),
}

/// `AcceptEx`'s arguments, kept until it completes.
pub(crate) struct AcceptInfo {
    /// The socket the connection goes into (the program's fd).
    pub(crate) accept_fd: RawFd,
    /// Its `ACCEPTING` ticket.
    pub(crate) ticket: u64,
    /// The output buffer: received data, then the local and the remote address areas.
    pub(crate) buf: usize,
    pub(crate) recv_len: u32,
    pub(crate) local_len: u32,
    pub(crate) remote_len: u32,
    /// The listener's completion key (the packet's key, whichever socket finishes it).
    pub(crate) listen_key: usize,
    /// The listener's port (where the packet goes).
    pub(crate) port: Port,
}

/// The value every packet of a C port carries.
pub(crate) struct Ctx {
    /// The caller's `OVERLAPPED` (0 for posted packets without one).
    pub(crate) ov: usize,
    pub(crate) kind: Kind,
    /// The final NTSTATUS, once known.
    pub(crate) status: NTSTATUS,
    /// The operation goes on from the thread that dequeues it (`AcceptEx` with data to receive,
    /// `ConnectEx` with data to send, `DisconnectEx` reusing the socket): the `OVERLAPPED` is
    /// written only once it is done.
    pub(crate) follow: bool,
    /// `hEvent` had its low bit set: no packet reaches the program.
    pub(crate) silent: bool,
    /// The event the operation's `hEvent` named when it started: held for the operation's life
    /// (closing the handle meanwhile does not lose it, as on Windows) and set at its end.
    pub(crate) event: Option<Arc<crate::wait::Signal>>,
    /// The operation is counted in `wait::EVENT_IO` until the hook sees it complete.
    pub(crate) event_io: bool,
    /// The association and the in-flight record of the operation.
    pub(crate) op: Option<(Arc<Assoc>, u64)>,
    /// Bytes a stream send moved in earlier parts (a send completes only once all is sent).
    pub(crate) done: usize,
    pub(crate) extra: Option<Box<Extra>>,
}

impl Ctx {
    /// The context of an operation on `assoc` with the caller's `ov`.
    pub(crate) fn new(ov: *mut OVERLAPPED, kind: Kind, silent: bool) -> Ctx {
        Ctx {
            ov: ov as usize,
            kind,
            status: STATUS_PENDING,
            follow: false,
            silent,
            event: None,
            event_io: false,
            op: None,
            done: 0,
            extra: None,
        }
    }

    /// A posted packet's context.
    pub(crate) fn posted(ov: *mut OVERLAPPED) -> Ctx {
        Ctx {
            status: STATUS_SUCCESS,
            ..Ctx::new(ov, Kind::Posted, false)
        }
    }
}

/// Writes the outcome of an operation that did not go through the port (it completed or failed
/// at once) into the caller's `OVERLAPPED`, and for a final status sets the event its `hEvent`
/// names now, if any. See [`write_ov_event`].
pub(crate) fn write_ov(ov: usize, status: NTSTATUS, bytes: usize) {
    if ov == 0 {
        return;
    }
    let event = if status != STATUS_PENDING {
        // SAFETY: `ov` is the caller's valid, aligned OVERLAPPED (as in `write_ov_event`); its
        // hEvent is the caller's, unchanged while the operation is in flight.
        crate::wait::event_of_overlapped(unsafe {
            std::ptr::addr_of!((*(ov as *mut OVERLAPPED)).hEvent).read()
        })
    } else {
        None
    };
    write_ov_event(ov, status, bytes, event);
}

/// Writes an operation's outcome into the caller's `OVERLAPPED`: the byte count, then the status
/// (release), so that a thread that sees `Internal` change sees the count too; then sets `event`
/// (the one its `hEvent` named when it started). Called once per operation, before its packet
/// can be dequeued; the `OVERLAPPED` is not touched after.
pub(crate) fn write_ov_event(
    ov: usize,
    status: NTSTATUS,
    bytes: usize,
    event: Option<Arc<crate::wait::Signal>>,
) {
    if ov == 0 {
        return;
    }
    let ov = ov as *mut OVERLAPPED;
    // SAFETY: `ov` is the caller's OVERLAPPED, 8-byte aligned (checked when the operation started)
    // and valid until the operation completes (the Win32 contract); this is that completion.
    // Other threads may read `Internal` meanwhile (HasOverlappedIoCompleted), hence atomics.
    unsafe {
        AtomicUsize::from_ptr(std::ptr::addr_of_mut!((*ov).InternalHigh))
            .store(bytes, Ordering::Relaxed);
        AtomicUsize::from_ptr(std::ptr::addr_of_mut!((*ov).Internal))
            .store(status as u32 as usize, Ordering::Release);
    }
    if let Some(e) = event {
        e.set();
    }
}

/// Reads `Internal` and `InternalHigh` of the caller's `OVERLAPPED`.
pub(crate) fn read_ov(ov: *mut OVERLAPPED) -> (NTSTATUS, usize) {
    // SAFETY: the caller passed a valid, aligned OVERLAPPED (checked by `check_ov`); the library
    // writes it with atomics, so these loads pair with `write_ov`'s release store.
    unsafe {
        let status =
            AtomicUsize::from_ptr(std::ptr::addr_of_mut!((*ov).Internal)).load(Ordering::Acquire);
        let bytes = AtomicUsize::from_ptr(std::ptr::addr_of_mut!((*ov).InternalHigh))
            .load(Ordering::Relaxed);
        (status as u32 as i32, bytes)
    }
}

/// Whether `ov` can be used: not NULL and 8-byte aligned.
pub(crate) fn check_ov(ov: *mut OVERLAPPED) -> bool {
    !ov.is_null() && (ov as usize) % std::mem::align_of::<OVERLAPPED>() == 0
}

/// Marks the caller's `OVERLAPPED` as in flight (`Internal` = STATUS_PENDING, `InternalHigh` 0),
/// before the operation is handed on; returns whether its `hEvent` asks for no packet.
pub(crate) fn begin_ov(ov: *mut OVERLAPPED) -> bool {
    write_ov(ov as usize, STATUS_PENDING, 0);
    // SAFETY: `ov` is valid and aligned (`check_ov`); hEvent is the caller's to set before the call.
    let event = unsafe { std::ptr::addr_of!((*ov).hEvent).read() };
    event as usize & 1 == 1
}

// ---- Associations ------------------------------------------------------------------------------

/// An fd associated with a port: the `iocport` handle on a duplicate of it, and the operations in
/// flight on it.
pub(crate) struct Assoc {
    /// The program's fd.
    pub(crate) fd: RawFd,
    pub(crate) handle: Handle<Ctx, RawBuf>,
    pub(crate) key: usize,
    /// A socket (Winsock semantics and errors).
    pub(crate) socket: bool,
    /// A stream socket: an overlapped send completes only once all of it is sent.
    pub(crate) stream: bool,
    /// A regular file or block device: reads and writes take the offset in the OVERLAPPED.
    pub(crate) seekable: bool,
    /// Made by `AcceptEx` to receive a new connection's first bytes; the program's own
    /// `CreateIoCompletionPort` replaces it.
    pub(crate) provisional: bool,
    /// `closesocket`/`CloseHandle` was called: operations cancelled now were aborted locally.
    pub(crate) closing: AtomicBool,
    /// `SetFileCompletionNotificationModes` flags.
    pub(crate) modes: AtomicU8,
    inflight: Inflight<OpId>,
    /// The file's identity, to tell a stale entry (the program closed the fd with `close`) from a
    /// live one.
    ino: (u64, u64),
}

static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

/// A number for the calling thread (CancelIo cancels only the calling thread's operations).
pub(crate) fn thread_no() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NO: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NO.with(|n| *n)
}

/// The fds associated with ports, by the program's fd number.
static FDS: RwLock<Option<HashMap<RawFd, Arc<Assoc>>>> = RwLock::new(None);

/// The association of `fd`, if any.
pub(crate) fn assoc_of(fd: RawFd) -> Option<Arc<Assoc>> {
    let map = FDS.read().unwrap_or_else(PoisonError::into_inner);
    map.as_ref()?.get(&fd).cloned()
}

/// Whether `fd` is associated (without taking a reference: safe inside the completion hook,
/// where dropping the last reference to an association would deadlock).
pub(crate) fn is_associated(fd: RawFd) -> bool {
    let map = FDS.read().unwrap_or_else(PoisonError::into_inner);
    map.as_ref().is_some_and(|m| m.contains_key(&fd))
}

/// Takes `fd`'s association out of the table (`closesocket`); the caller drops it, which cancels
/// its operations.
pub(crate) fn unassociate(fd: RawFd) -> Option<Arc<Assoc>> {
    let mut map = FDS.write().unwrap_or_else(PoisonError::into_inner);
    map.as_mut()?.remove(&fd)
}

/// The identity of the file `fd` refers to, and its type bits.
pub(crate) fn identity(fd: RawFd) -> Option<((u64, u64), libc::mode_t)> {
    // SAFETY: an all-zero stat is a valid value; fstat writes it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes; fstat only reads the fd table.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some(((st.st_dev, st.st_ino), st.st_mode & libc::S_IFMT))
}

/// Ignores SIGPIPE if nothing else handles it: Windows programs never get it, and a send or
/// write on a broken connection (in the kernel, for io_uring) must be an error, not the end of
/// the process.
pub(crate) fn ignore_sigpipe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: queries and sets SIGPIPE's disposition; a handler the program installed is kept.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_DFL
            {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            }
        }
    });
}

/// Why an association failed, as a Win32 error.
pub(crate) fn associate(
    fd: RawFd,
    port: &Port,
    key: usize,
    provisional: bool,
) -> Result<Arc<Assoc>, DWORD> {
    let Some((ino, kind)) = identity(fd) else {
        return Err(ERROR_INVALID_HANDLE);
    };
    if kind == 0 || kind == libc::S_IFDIR || kind == libc::S_IFLNK {
        // Not a file, pipe, device or socket (an eventfd, epoll or io_uring instance, a
        // directory): nothing a Windows program could have opened for overlapped I/O.
        return Err(ERROR_INVALID_HANDLE);
    }
    if crate::file::is_synchronous(fd, ino) {
        // Windows: a handle opened without FILE_FLAG_OVERLAPPED cannot be associated.
        return Err(ERROR_INVALID_PARAMETER);
    }
    let stale;
    {
        let map = FDS.read().unwrap_or_else(PoisonError::into_inner);
        match map.as_ref().and_then(|m| m.get(&fd)) {
            Some(old) if !old.provisional && old.ino == ino => return Err(ERROR_INVALID_PARAMETER),
            Some(_) => stale = true,
            None => stale = false,
        }
    }
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument and only creates a new fd.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(crate::status::status_to_win32(errno_to_status(
            crate::status::errno(),
            Origin::File,
        )));
    }
    // SAFETY: `dup` is a new fd that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    let handle = port.associate(owned, key).map_err(|e| match e {
        Error::Closed => ERROR_INVALID_HANDLE,
        Error::BadFd { .. } => ERROR_INVALID_HANDLE,
        Error::Register { source, .. } => crate::status::status_to_win32(errno_to_status(
            source.raw_os_error().unwrap_or(libc::EINVAL),
            Origin::File,
        )),
        _ => ERROR_INVALID_PARAMETER,
    })?;
    let assoc = Arc::new(Assoc {
        fd,
        handle,
        key,
        socket: kind == libc::S_IFSOCK,
        stream: kind == libc::S_IFSOCK
            && crate::sock::int_opt(fd, libc::SO_TYPE) == Some(libc::SOCK_STREAM),
        seekable: kind == libc::S_IFREG || kind == libc::S_IFBLK,
        provisional,
        closing: AtomicBool::new(false),
        modes: AtomicU8::new(0),
        inflight: Inflight::new(),
        ino,
    });
    assoc.set_modes(0);
    let old = {
        let mut map = FDS.write().unwrap_or_else(PoisonError::into_inner);
        let map = map.get_or_insert_with(HashMap::new);
        match map.get(&fd) {
            Some(o) if !stale && !o.provisional && o.ino == ino => {
                // Associated by another thread meanwhile.
                return Err(ERROR_INVALID_PARAMETER);
            }
            _ => map.insert(fd, assoc.clone()),
        }
    };
    // Dropped outside the table's lock: dropping cancels the old entry's operations.
    drop(old);
    Ok(assoc)
}

/// Gives `fd`'s association a new duplicate after the program's fd was made to refer to another
/// socket (`AcceptEx` into an associated socket, `DisconnectEx(TF_REUSE_SOCKET)`): same port, key
/// and modes.
pub(crate) fn rebind(fd: RawFd, expected: Option<&Arc<Assoc>>) {
    let Some(old) = assoc_of(fd) else { return };
    if expected.is_some_and(|e| !Arc::ptr_eq(e, &old)) {
        // The program closed the socket and the number names another one now.
        return;
    }
    let port = old.handle.port().clone();
    let modes = old.modes.load(Ordering::Relaxed);
    let (key, provisional) = (old.key, old.provisional);
    drop(old);
    if let Some(old) = unassociate(fd) {
        drop(old);
    }
    if let Ok(new) = associate(fd, &port, key, provisional) {
        new.set_modes(modes);
    }
}

impl Assoc {
    /// Records an operation about to start with `ov`; returns its sequence number, or `None` if
    /// the fd is being closed.
    pub(crate) fn begin(&self, ov: *mut OVERLAPPED) -> Option<u64> {
        let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
        self.inflight
            .begin(seq, ov as usize, thread_no())
            .then_some(seq)
    }

    /// The program closed the fd: no operation starts on it from now on, and every one in flight
    /// (also one still being started) is cancelled; their packets still come. Completions already
    /// there are moved to the port at once, so their `OVERLAPPED`s are written even if no thread
    /// waits on the port.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        for id in self.inflight.close() {
            let _ = self.handle.port().cancel(id);
        }
        let _ = self.handle.cancel_all();
        self.handle.port().poll_completions();
    }

    /// The operation `seq` is in flight as `id`; cancels it if a cancel came meanwhile.
    fn started(&self, seq: u64, id: OpId) {
        if let Some(id) = self.inflight.started(seq, id) {
            let _ = self.handle.port().cancel(id);
        }
    }

    /// The operation `seq` is over.
    pub(crate) fn forget(&self, seq: u64) {
        self.inflight.forget(seq);
    }

    /// A stage of the operation `seq` is over and another follows (`TransmitFile`): it stays
    /// recorded, so that a cancel before the next stage starts finds it and stops that stage.
    pub(crate) fn pause(&self, seq: u64) {
        self.inflight.pause(seq);
    }

    /// The next stage of the paused operation `seq` is about to start: its new sequence number,
    /// or `None` if a cancel or a close came meanwhile (the stage must not start; the operation
    /// is still recorded, for [`forget`](Self::forget)).
    pub(crate) fn resume(&self, seq: u64) -> Option<u64> {
        let new = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
        self.inflight.resume(seq, new).then_some(new)
    }

    /// Cancels the operations started with `ov` (any if `None`) by `thread` (any if `None`);
    /// returns whether there was one.
    pub(crate) fn cancel(&self, ov: Option<usize>, thread: Option<u64>) -> bool {
        let (found, ids) = self.inflight.cancel(ov, thread);
        for id in ids {
            let _ = self.handle.port().cancel(id);
        }
        found
    }

    /// Sets the `SetFileCompletionNotificationModes` flags.
    ///
    /// Writes and sends are always tried at once first (`iocport`'s skip-on-success for writes):
    /// one that completes then costs a system call on the calling thread and a posted packet,
    /// instead of a trip through the ring, whose submission lock the worker threads would
    /// otherwise contend for (measured: 12% of the C echo server's time spun on it). Without
    /// `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` the packet is still queued ([`Assoc::post_now`]), as
    /// Windows does for an operation that succeeds at once; with it, reads are tried at once too
    /// and no packet is queued.
    pub(crate) fn set_modes(&self, modes: u8) {
        self.modes.store(modes, Ordering::Relaxed);
        if modes & FILE_SKIP_COMPLETION_PORT_ON_SUCCESS != 0 {
            self.handle.set_skip_on_success(true);
        } else {
            self.handle.set_skip_on_success_writes(true);
        }
    }

    /// Queues the packet of an operation that succeeded at once, unless the program set
    /// skip-on-success or the `OVERLAPPED`'s `hEvent` asks for no packet. Its `OVERLAPPED` is
    /// written already.
    pub(crate) fn post_now(&self, mut ctx: Ctx, bytes: usize) {
        let skip = self.modes.load(Ordering::Relaxed) & FILE_SKIP_COMPLETION_PORT_ON_SUCCESS != 0;
        if skip || ctx.silent {
            return;
        }
        ctx.op = None;
        ctx.status = STATUS_SUCCESS;
        let _ = self
            .handle
            .port()
            .post_packet(Packet::new(self.key, bytes, ctx));
    }

    /// The origin of this fd's errors.
    pub(crate) fn origin(&self) -> Origin {
        if self.socket {
            Origin::Socket
        } else {
            Origin::File
        }
    }
}

/// How an operation started.
pub(crate) enum Outcome {
    /// In flight: its packet will come.
    Pending,
    /// Completed at once (skip-on-success), or failed at once; no packet will come. The
    /// `OVERLAPPED` holds the outcome; `ctx` is the operation's context, handed back.
    Now {
        status: NTSTATUS,
        bytes: usize,
        ctx: Ctx,
    },
}

/// Starts an operation on `assoc` with `ctx` (whose `OVERLAPPED` is marked in flight) through
/// `start`, and records it for cancellation.
pub(crate) fn start(
    assoc: &Arc<Assoc>,
    ctx: Ctx,
    start: impl FnOnce(&Handle<Ctx, RawBuf>, Ctx) -> Result<Started<Ctx, RawBuf>, OpError<Ctx, RawBuf>>,
) -> Outcome {
    start_recorded(assoc, ctx, None, start)
}

/// Starts the next stage of an operation whose record [`Assoc::resume`] renewed as `seq`: as
/// [`start`], but under that record, and a stage that cannot start reports the bytes the earlier
/// ones sent (`ctx.done`).
pub(crate) fn start_stage(
    assoc: &Arc<Assoc>,
    ctx: Ctx,
    seq: u64,
    start: impl FnOnce(&Handle<Ctx, RawBuf>, Ctx) -> Result<Started<Ctx, RawBuf>, OpError<Ctx, RawBuf>>,
) -> Outcome {
    start_recorded(assoc, ctx, Some(seq), start)
}

fn start_recorded(
    assoc: &Arc<Assoc>,
    mut ctx: Ctx,
    resumed: Option<u64>,
    start: impl FnOnce(&Handle<Ctx, RawBuf>, Ctx) -> Result<Started<Ctx, RawBuf>, OpError<Ctx, RawBuf>>,
) -> Outcome {
    let ov = ctx.ov;
    // A later stage of an operation reports what the earlier ones sent if it cannot start.
    let before = if resumed.is_some() { ctx.done } else { 0 };
    let Some(seq) = resumed.or_else(|| assoc.begin(ov as *mut OVERLAPPED)) else {
        // Closed meanwhile, as if the program had passed a closed socket.
        write_ov(ov, STATUS_INVALID_HANDLE, 0);
        ctx.status = STATUS_INVALID_HANDLE;
        return Outcome::Now {
            status: STATUS_INVALID_HANDLE,
            bytes: 0,
            ctx,
        };
    };
    ctx.op = Some((assoc.clone(), seq));
    // An operation with an event: the event is reset now and set at completion, and waits on
    // events move completions into the ports' queues while such operations are in flight.
    // SAFETY: `ov` (if not 0) is the caller's OVERLAPPED, checked and marked in flight.
    let hevent =
        (ov != 0).then(|| unsafe { std::ptr::addr_of!((*(ov as *mut OVERLAPPED)).hEvent).read() });
    if let Some(e) = hevent.and_then(crate::wait::event_of_overlapped) {
        e.begin_io();
        ctx.event = Some(e);
        ctx.event_io = true;
    }
    match start(&assoc.handle, ctx) {
        Ok(Started::Pending(id)) => {
            assoc.started(seq, id);
            Outcome::Pending
        }
        Ok(Started::Done(mut packet)) => {
            // Completed at once on a skip-on-success handle: finished as the hook would, and no
            // packet.
            finish(&mut packet);
            Outcome::Now {
                status: packet.value.status,
                bytes: packet.bytes,
                ctx: packet.value,
            }
        }
        Err(e) => {
            assoc.forget(seq);
            let mut ctx = e.value;
            if std::mem::take(&mut ctx.event_io) {
                crate::wait::event_io_end();
            }
            let status = error_status(&e.error, assoc.origin());
            write_ov_event(ov, status, before, ctx.event.take());
            ctx.status = status;
            Outcome::Now {
                status,
                bytes: before,
                ctx,
            }
        }
    }
}

/// The NTSTATUS of an operation that could not be started.
pub(crate) fn error_status(e: &Error, origin: Origin) -> NTSTATUS {
    match e {
        Error::Closed | Error::BadFd { .. } => STATUS_INVALID_HANDLE,
        Error::InvalidBuffer { .. } | Error::InvalidArgument { .. } => STATUS_INVALID_PARAMETER,
        Error::Unsupported { .. } => STATUS_NOT_SUPPORTED,
        Error::Submit { source, .. } | Error::Register { source, .. } => {
            errno_to_status(source.raw_os_error().unwrap_or(libc::EIO), origin)
        }
        _ => STATUS_UNSUCCESSFUL,
    }
}

// ---- Completion ----------------------------------------------------------------------------------

/// The ports' completion hook: finishes each operation's packet before it can be dequeued.
pub(crate) fn hook(packet: &mut Packet<Ctx, RawBuf>) {
    // A panic must not unwind into the port's reaping; the OVERLAPPED then says "failed".
    let ov = packet.value.ov;
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| finish(packet))).is_err() {
        packet.value.status = STATUS_UNSUCCESSFUL;
        packet.value.follow = false;
        if std::mem::take(&mut packet.value.event_io) {
            crate::wait::event_io_end();
        }
        write_ov_event(ov, STATUS_UNSUCCESSFUL, 0, packet.value.event.take());
    }
}

/// Computes the packet's NTSTATUS and byte count, does the work that must happen before anyone
/// can see the operation as done (an accepted connection put under the program's socket, a
/// sender's address written), then writes the `OVERLAPPED` unless the operation goes on.
pub(crate) fn finish(packet: &mut Packet<Ctx, RawBuf>) {
    let errno = packet.status.errno().unwrap_or(0);
    let peer = packet.peer_addr();
    let ctx = &mut packet.value;
    if std::mem::take(&mut ctx.event_io) {
        crate::wait::event_io_end();
    }
    let (origin, closing, stream) = match &ctx.op {
        Some((assoc, seq)) => {
            if ctx.kind != Kind::Transmit {
                // A transmission's record may stay for its next stage: settled below.
                assoc.forget(*seq);
            }
            (
                assoc.origin(),
                assoc.closing.load(Ordering::Relaxed),
                assoc.stream,
            )
        }
        None => (Origin::Socket, false, false),
    };
    let mut status = errno_to_status(errno, origin);
    let mut bytes = packet.bytes;
    let ok = errno == 0;
    match ctx.kind {
        Kind::Posted => {}
        Kind::Recv | Kind::RecvZero | Kind::Send | Kind::RecvFrom | Kind::SendTo => {
            if !ok && stream && ctx.kind == Kind::Send {
                // A stream send that fails after parts of it went reports what went with the
                // error, as Wine's AFD layer does (`sent_len` in the IO_STATUS_BLOCK).
                bytes = ctx.done;
            }
            if errno == libc::ECANCELED && closing {
                // Windows: a local closesocket aborts the socket's pending I/O.
                status = STATUS_CONNECTION_ABORTED;
            } else if ok && stream && ctx.kind == Kind::Send {
                // A stream send completes once all is sent: a short part goes on from the thread
                // that dequeues it.
                ctx.done += bytes;
                if bytes > 0 && bytes < data_len(&packet.data) {
                    ctx.follow = true;
                } else {
                    bytes = ctx.done;
                }
            } else if ok && ctx.kind == Kind::RecvZero {
                bytes = 0;
            } else if ok && ctx.kind == Kind::RecvFrom {
                if let Some(Extra::From {
                    from,
                    fromlen,
                    scatter,
                    owned,
                }) = ctx.extra.as_deref()
                {
                    if let Some(addr) = peer {
                        crate::sock::write_sockaddr(&addr, *from, *fromlen);
                    }
                    let mut left = &owned[..bytes.min(owned.len())];
                    for &(ptr, len) in scatter {
                        let n = len.min(left.len());
                        // SAFETY: the caller's buffer of `len` bytes, valid until this operation
                        // completes, which is now.
                        unsafe { std::ptr::copy_nonoverlapping(left.as_ptr(), ptr as *mut u8, n) };
                        left = &left[n..];
                    }
                }
            }
        }
        Kind::Read => {
            let asked = match &packet.data {
                Data::Buf(b) => b.len(),
                _ => 0,
            };
            if ok && bytes == 0 && asked > 0 {
                status = match &ctx.op {
                    Some((a, _)) if a.socket => STATUS_SUCCESS,
                    Some((a, _)) if !a.seekable => STATUS_PIPE_BROKEN,
                    _ => STATUS_END_OF_FILE,
                };
            }
        }
        Kind::Write => {}
        Kind::Accept => {
            if ok {
                status = crate::sock::accept_done(ctx, &mut packet.data);
                if status == STATUS_SUCCESS {
                    bytes = 0;
                }
            } else if errno == libc::ECANCELED {
                status = STATUS_CANCELLED;
            }
            if let Some(Extra::Accept(info)) = ctx.extra.as_deref() {
                packet.key = info.listen_key;
                if status != STATUS_SUCCESS {
                    crate::sock::accept_abandoned(info);
                }
            }
        }
        Kind::AcceptRecv => {
            if let Some(Extra::Accept(info)) = ctx.extra.as_deref() {
                packet.key = info.listen_key;
            }
        }
        Kind::Connect => {
            if ok && matches!(ctx.extra.as_deref(), Some(Extra::Connect { len, .. }) if *len > 0) {
                ctx.follow = true;
            }
        }
        Kind::ConnectSend => {}
        Kind::Disconnect => {
            if ok && matches!(ctx.extra.as_deref(), Some(Extra::Reuse { .. })) {
                ctx.follow = true;
            }
        }
        Kind::Transmit => {
            if errno == libc::ECANCELED && closing {
                // As for sends: a local closesocket aborts the transmission.
                status = STATUS_CONNECTION_ABORTED;
            }
            bytes = crate::sock::transmit_part(ctx, ok, bytes);
            if let Some((assoc, seq)) = &ctx.op {
                if ctx.follow {
                    // Goes on from the dequeuing thread: a cancel meanwhile must still find it.
                    assoc.pause(*seq);
                } else {
                    assoc.forget(*seq);
                }
            }
        }
    }
    ctx.status = status;
    packet.bytes = bytes;
    if !ctx.follow {
        write_ov_event(ctx.ov, status, bytes, ctx.event.take());
    }
}

/// How many bytes an operation's buffers hold.
pub(crate) fn data_len(data: &Data<RawBuf>) -> usize {
    match data {
        Data::Buf(b) | Data::From(b, _) => b.len(),
        Data::Bufs(v) => v.iter().map(|b| b.len()).sum(),
        _ => 0,
    }
}

/// A packet as the program should see it, after what has to happen on the dequeuing thread:
/// `None` if it is not for the program (its operation goes on, or `hEvent` asked for no packet).
pub(crate) fn deliver(mut packet: Packet<Ctx, RawBuf>) -> Option<Packet<Ctx, RawBuf>> {
    if packet.value.follow {
        packet.value.follow = false;
        packet = crate::sock::follow_up(packet)?;
    }
    if packet.value.silent {
        return None;
    }
    Some(packet)
}

/// A packet that the closing of its port took out of the queue: an operation that was to go on
/// ends here, cancelled, so that its `OVERLAPPED` is written.
pub(crate) fn abandon(mut packet: Packet<Ctx, RawBuf>) {
    if packet.value.follow {
        if let Some((assoc, seq)) = &packet.value.op {
            // A transmission's record kept for its next stage.
            assoc.forget(*seq);
        }
        crate::sock::abandon_follow(&packet.value);
        let event = packet.value.event.take();
        write_ov_event(packet.value.ov, STATUS_CANCELLED, 0, event);
    }
}

/// The fd of `assoc` as the program knows it.
impl AsRawFd for Assoc {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}
