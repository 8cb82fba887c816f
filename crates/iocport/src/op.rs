//! What an operation is, whatever backend runs it: its request (fd, buffers, arguments), the memory
//! it lends the kernel while it runs, and how its result becomes a packet.
//!
//! A [`Request`] is split by [`Request::lend`] into its arguments ([`Op`], plain data) and the memory
//! it lends ([`Lent`]: the buffers, with their addresses and lengths read *before* any lock is
//! taken, so that no user code ([`IoBuf`] methods) ever runs under the op table's lock). A backend
//! turns `Op` + `Lent` into its own request (an io_uring entry, a system call) and [`Lent::finish`]
//! turns the kernel's result and the lent memory back into a packet's `bytes`, `status` and `data`.

use std::cell::RefCell;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use socket2::{SockAddr, SockAddrStorage};

use crate::buf::IoBuf;
use crate::packet::{Data, Status};

/// Readiness to wait for with [`Handle::poll`](crate::Handle::poll).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Interest(u32);

impl Interest {
    /// The fd has data to read (or a peer closed, or an error is pending): `POLLIN`.
    pub const READABLE: Interest = Interest(libc::POLLIN as u32);
    /// The fd can take data to write: `POLLOUT`.
    pub const WRITABLE: Interest = Interest(libc::POLLOUT as u32);

    /// Both interests.
    pub const fn and(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// The `poll(2)` event mask.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// Read or write at the file's current position rather than at an offset.
pub(crate) const CURRENT_POSITION: u64 = u64::MAX;

/// One operation as the program asked for it.
pub(crate) enum Request<B> {
    Nop,
    Timer(Duration),
    Read { buf: B, offset: u64 },
    Write { buf: B, offset: u64 },
    Readv { bufs: Vec<B>, offset: u64 },
    Writev { bufs: Vec<B>, offset: u64 },
    Recv { buf: B, flags: i32 },
    Send { buf: B, flags: i32 },
    RecvFrom { buf: B },
    SendTo { buf: B, addr: SocketAddr },
    Accept,
    Connect(SocketAddr),
    Shutdown(Shutdown),
    Fsync { datasync: bool },
    Poll(Interest),
}

/// An operation's arguments, without the memory it lends: what a backend needs besides [`Lent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Nop,
    Timer,
    Read { offset: u64 },
    Write { offset: u64 },
    Readv { offset: u64 },
    Writev { offset: u64 },
    Recv { flags: i32 },
    Send { flags: i32 },
    RecvFrom,
    SendTo,
    Accept,
    Connect,
    Shutdown(Shutdown),
    Fsync { datasync: bool },
    Poll(Interest),
}

impl Op {
    /// The operation's name, for errors and logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Nop => "nop",
            Op::Timer => "timer",
            Op::Read { offset } if offset == CURRENT_POSITION => "read",
            Op::Read { .. } => "read_at",
            Op::Write { offset } if offset == CURRENT_POSITION => "write",
            Op::Write { .. } => "write_at",
            Op::Readv { .. } => "readv",
            Op::Writev { .. } => "writev",
            Op::Recv { .. } => "recv",
            Op::Send { .. } => "send",
            Op::RecvFrom => "recv_from",
            Op::SendTo => "send_to",
            Op::Accept => "accept",
            Op::Connect => "connect",
            Op::Shutdown(_) => "shutdown",
            Op::Fsync { datasync: false } => "fsync",
            Op::Fsync { datasync: true } => "fdatasync",
            Op::Poll(_) => "poll",
        }
    }
}

impl<B: IoBuf> Request<B> {
    /// The operation's arguments.
    pub(crate) fn op(&self) -> Op {
        match self {
            Request::Nop => Op::Nop,
            Request::Timer(_) => Op::Timer,
            Request::Read { offset, .. } => Op::Read { offset: *offset },
            Request::Write { offset, .. } => Op::Write { offset: *offset },
            Request::Readv { offset, .. } => Op::Readv { offset: *offset },
            Request::Writev { offset, .. } => Op::Writev { offset: *offset },
            Request::Recv { flags, .. } => Op::Recv { flags: *flags },
            Request::Send { flags, .. } => Op::Send { flags: *flags },
            Request::RecvFrom { .. } => Op::RecvFrom,
            Request::SendTo { .. } => Op::SendTo,
            Request::Accept => Op::Accept,
            Request::Connect(_) => Op::Connect,
            Request::Shutdown(how) => Op::Shutdown(*how),
            Request::Fsync { datasync } => Op::Fsync {
                datasync: *datasync,
            },
            Request::Poll(i) => Op::Poll(*i),
        }
    }

    /// Checks the buffers: none may be empty, none may exceed what one request can move.
    pub(crate) fn check_buffers(&self) -> Result<(), (&'static str, usize)> {
        let check = |b: &B| match b.len() {
            0 => Err(("the buffer is empty", 0)),
            n if n > u32::MAX as usize => Err(("the buffer is larger than 4 GiB - 1", n)),
            _ => Ok(()),
        };
        match self {
            Request::Read { buf, .. }
            | Request::Write { buf, .. }
            | Request::Recv { buf, .. }
            | Request::Send { buf, .. }
            | Request::RecvFrom { buf }
            | Request::SendTo { buf, .. } => check(buf),
            Request::Readv { bufs, .. } | Request::Writev { bufs, .. } => {
                if bufs.is_empty() {
                    return Err(("no buffers were given", 0));
                }
                if bufs.len() > libc::UIO_MAXIOV as usize {
                    return Err(("more buffers than IOV_MAX", bufs.len()));
                }
                bufs.iter().try_for_each(check)
            }
            _ => Ok(()),
        }
    }

    /// Hands the buffers back, for an operation that was never started.
    pub(crate) fn into_data(self) -> Data<B> {
        match self {
            Request::Read { buf, .. }
            | Request::Write { buf, .. }
            | Request::Recv { buf, .. }
            | Request::Send { buf, .. } => Data::Buf(buf),
            Request::RecvFrom { buf } | Request::SendTo { buf, .. } => Data::From(buf, None),
            Request::Readv { bufs, .. } | Request::Writev { bufs, .. } => Data::Bufs(bufs),
            _ => Data::None,
        }
    }

    /// Moves the buffers (and addresses) into the memory the operation lends the kernel, reading
    /// each buffer's address and length now. This is where [`IoBuf`] methods run: call it before
    /// taking any lock. A panic in them drops the request here, with nothing taken yet.
    pub(crate) fn lend(self) -> (Op, Lent<B>) {
        let op = self.op();
        let lent = match self {
            Request::Nop | Request::Shutdown(_) | Request::Fsync { .. } | Request::Poll(_) => {
                Lent::None
            }
            Request::Timer(after) => Lent::Timer(Timespec {
                sec: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                nsec: i64::from(after.subsec_nanos()),
            }),
            Request::Read { mut buf, .. }
            | Request::Write { mut buf, .. }
            | Request::Recv { mut buf, .. }
            | Request::Send { mut buf, .. } => {
                let raw = RawBuf::of(&mut buf);
                Lent::Buf { buf, raw }
            }
            Request::Readv { mut bufs, .. } | Request::Writev { mut bufs, .. } => {
                let mut iov = IoVecs::scratch();
                iov.0.extend(bufs.iter_mut().map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                }));
                Lent::Bufs { bufs, iov }
            }
            Request::RecvFrom { mut buf } => {
                let raw = RawBuf::of(&mut buf);
                Lent::msg(buf, raw, None)
            }
            Request::SendTo { mut buf, addr } => {
                let raw = RawBuf::of(&mut buf);
                Lent::msg(buf, raw, Some(addr))
            }
            Request::Accept => Lent::Peer {
                addr: SockAddrStorage::zeroed(),
                len: std::mem::size_of::<SockAddrStorage>() as libc::socklen_t,
            },
            Request::Connect(addr) => Lent::Addr(SockAddr::from(addr)),
        };
        (op, lent)
    }
}

/// A buffer's address and length, read from its [`IoBuf`] before the operation starts.
#[derive(Clone, Copy)]
pub(crate) struct RawBuf {
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
}

// SAFETY: the pointer is into a buffer owned by the same `Lent`, which moves between threads as a
// whole; it is only dereferenced by the kernel (or a backend's system call) while the operation runs.
unsafe impl Send for RawBuf {}

impl RawBuf {
    fn of<B: IoBuf>(buf: &mut B) -> RawBuf {
        RawBuf {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }
}

/// A kernel `timespec` (`struct __kernel_timespec`), kept in the slot while a timer runs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timespec {
    pub(crate) sec: i64,
    pub(crate) nsec: i64,
}

/// A `msghdr` and the `iovec` it points to, kept together in the slot.
pub(crate) struct MsgParts {
    pub(crate) hdr: libc::msghdr,
    pub(crate) iov: libc::iovec,
}

// SAFETY: the raw pointers in `hdr` and `iov` point into the same slot (its buffer and address),
// which moves between threads as a whole; nothing is shared.
unsafe impl Send for MsgParts {}

/// The memory an operation lends the kernel while it runs. It lives in the operation's slot, which
/// is boxed and never moves, so pointers into it stay valid until the operation completes. Buffer
/// addresses were read when the request was lent ([`RawBuf`]); pointers into the slot itself
/// (`msghdr`, socket address, timespec) are taken by the backend once the slot holds it.
pub(crate) enum Lent<B> {
    None,
    Buf {
        buf: B,
        raw: RawBuf,
    },
    Bufs {
        bufs: Vec<B>,
        iov: IoVecs,
    },
    Msg {
        buf: B,
        parts: MsgParts,
        addr: SockAddrStorage,
    },
    /// Accept's output address.
    Peer {
        addr: SockAddrStorage,
        len: libc::socklen_t,
    },
    /// Connect's input address.
    Addr(#[cfg_attr(loom, allow(dead_code))] SockAddr),
    /// A timer's duration (the model ring of the loom tests reads neither).
    Timer(#[cfg_attr(loom, allow(dead_code))] Timespec),
}

/// An `iovec` array. Built before the operation starts from a per-thread scratch array; the slot
/// keeps the array it last used and gives it back to the submitting thread's scratch, so vectored
/// I/O allocates only when it needs more entries than before.
#[derive(Default)]
pub(crate) struct IoVecs(pub(crate) Vec<libc::iovec>);

// SAFETY: the iovecs point into buffers owned by the same `Lent`, which moves between threads as a
// whole.
unsafe impl Send for IoVecs {}

std::thread_local! {
    static SCRATCH: RefCell<Vec<libc::iovec>> = const { RefCell::new(Vec::new()) };
}

impl IoVecs {
    /// This thread's scratch array, empty.
    fn scratch() -> IoVecs {
        let mut v = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        v.clear();
        IoVecs(v)
    }

    /// Gives an array back to this thread's scratch (if it has none).
    pub(crate) fn recycle(self) {
        if self.0.capacity() > 0 {
            let mut v = self.0;
            v.clear();
            let _ = SCRATCH.try_with(|s| {
                let mut s = s.borrow_mut();
                if s.capacity() < v.capacity() {
                    *s = v;
                }
            });
        }
    }

    /// Whether keeping this array saves an allocation later.
    pub(crate) fn has_capacity(&self) -> bool {
        self.0.capacity() > 0
    }
}

impl<B> Lent<B> {
    /// Points the `msghdr` at the slot's own `iovec` and address; call once the slot holds `self`
    /// (it does not move afterwards). Returns the `msghdr`.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn pin_msg(&mut self) -> *mut libc::msghdr {
        match self {
            Lent::Msg { parts, addr, .. } => {
                parts.hdr.msg_name = (addr as *mut SockAddrStorage).cast();
                parts.hdr.msg_iov = &mut parts.iov;
                &mut parts.hdr
            }
            _ => std::ptr::null_mut(),
        }
    }
}

impl<B: IoBuf> Lent<B> {
    fn msg(buf: B, raw: RawBuf, to: Option<SocketAddr>) -> Lent<B> {
        // SAFETY: all-zero bytes are a valid `msghdr` and `iovec` (null pointers, zero lengths).
        let mut parts = unsafe { std::mem::zeroed::<MsgParts>() };
        let (addr, name_len) = match to {
            Some(a) => {
                let a = SockAddr::from(a);
                let len = a.len();
                (a.as_storage(), len)
            }
            None => (
                SockAddrStorage::zeroed(),
                std::mem::size_of::<SockAddrStorage>() as libc::socklen_t,
            ),
        };
        parts.iov = libc::iovec {
            iov_base: raw.ptr.cast(),
            iov_len: raw.len,
        };
        parts.hdr.msg_namelen = name_len;
        parts.hdr.msg_iovlen = 1;
        Lent::Msg { buf, parts, addr }
    }

    /// Turns the kernel's result and the lent memory into the packet's `bytes`, `status` and `data`;
    /// leaves `self` empty and returns the iovec array for reuse.
    pub(crate) fn finish(&mut self, res: i32, op: Op) -> (usize, Status, Data<B>, IoVecs) {
        let lent = std::mem::replace(self, Lent::None);
        let (bytes, status) = match res {
            // A timer's "timed out" is its success.
            r if op == Op::Timer && r == -libc::ETIME => (0, Status::SUCCESS),
            r if r < 0 => (0, Status::from_errno(-r)),
            r => (r as usize, Status::SUCCESS),
        };
        let mut iov_back = IoVecs::default();
        let data = match lent {
            Lent::None | Lent::Addr(_) | Lent::Timer(_) => Data::None,
            Lent::Buf { buf, .. } => Data::Buf(buf),
            Lent::Bufs { bufs, iov } => {
                iov_back = iov;
                Data::Bufs(bufs)
            }
            Lent::Msg { buf, parts, addr } => {
                let from = (res >= 0 && parts.hdr.msg_namelen > 0)
                    // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes of the
                    // family it stored, into storage that is large enough for any.
                    .then(|| unsafe { SockAddr::new(addr, parts.hdr.msg_namelen) }.as_socket())
                    .flatten();
                Data::From(buf, from)
            }
            Lent::Peer { addr, len } => {
                if res >= 0 {
                    // SAFETY: `res` is the fd the kernel just created for the accepted connection;
                    // nothing else owns it.
                    let socket = unsafe { OwnedFd::from_raw_fd(res) };
                    // SAFETY: the kernel wrote the peer's address, `len` bytes of its family.
                    let peer = unsafe { SockAddr::new(addr, len) }.as_socket();
                    return (0, status, Data::Accepted(socket, peer), iov_back);
                }
                Data::None
            }
        };
        (bytes, status, data, iov_back)
    }

    /// Hands the buffers back, for an operation that was lent but never started.
    pub(crate) fn into_data(self) -> Data<B> {
        match self {
            Lent::Buf { buf, .. } => Data::Buf(buf),
            Lent::Bufs { bufs, iov } => {
                iov.recycle();
                Data::Bufs(bufs)
            }
            Lent::Msg { buf, .. } => Data::From(buf, None),
            _ => Data::None,
        }
    }
}
