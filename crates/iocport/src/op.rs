//! What an operation is: its request (fd, buffers, arguments), the memory it lends the kernel while
//! it runs, the submission entry that describes it, and how its result becomes a packet.
//!
//! Every operation is declared once here: [`Request`] is the portable description, `prepare` turns it
//! into an io_uring entry whose pointers all point into the operation's slot, and `finish` turns the
//! kernel's result and the slot's contents back into a packet's `bytes`, `status` and `data`.

use std::fmt;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::{opcode, squeue, types};
use socket2::{SockAddr, SockAddrStorage};

use crate::buf::IoBuf;
use crate::port::{Data, Status};

/// Identifies one operation started on a port, for [`cancel`](crate::CompletionPort::cancel) and in
/// its completion packet ([`Packet::op`](crate::Packet::op)).
///
/// An id names one operation only: it carries its port's tag and its slot's generation, and the slot
/// is reused afterwards under a new generation, so a stale id, or one from another port, can never
/// cancel someone else's operation. (Generations wrap after 2^24 reuses of one slot.)
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId(pub(crate) std::num::NonZeroU64);

/// Bits of an [`OpId`] (its io_uring `user_data`): slot index, generation, port tag.
pub(crate) const INDEX_BITS: u32 = 24;
pub(crate) const GENERATION_BITS: u32 = 24;
/// Port tags run from 1 to `MAX_TAG`; the all-ones tag is left to the port's own entries (`WAKE`,
/// `CANCEL`).
pub(crate) const MAX_TAG: u16 = u16::MAX - 1;

impl OpId {
    /// `tag` and `generation` are never 0, so neither is the id (an `Option<OpId>` costs nothing).
    pub(crate) fn new(tag: u16, index: u32, generation: u32) -> OpId {
        let raw = (u64::from(tag) << (INDEX_BITS + GENERATION_BITS))
            | (u64::from(generation) << INDEX_BITS)
            | u64::from(index);
        OpId(std::num::NonZeroU64::new(raw).expect("port tags start at 1"))
    }

    /// From a completion's `user_data`; `None` for 0, which no operation uses.
    pub(crate) fn from_user_data(ud: u64) -> Option<OpId> {
        std::num::NonZeroU64::new(ud).map(OpId)
    }

    /// The io_uring `user_data` of the operation.
    pub(crate) fn user_data(self) -> u64 {
        self.0.get()
    }

    pub(crate) fn index(self) -> usize {
        (self.user_data() & ((1 << INDEX_BITS) - 1)) as usize
    }

    pub(crate) fn generation(self) -> u32 {
        ((self.user_data() >> INDEX_BITS) & ((1 << GENERATION_BITS) - 1)) as u32
    }

    pub(crate) fn tag(self) -> u16 {
        (self.user_data() >> (INDEX_BITS + GENERATION_BITS)) as u16
    }
}

impl fmt::Debug for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OpId({}#{}@{})",
            self.index(),
            self.generation(),
            self.tag()
        )
    }
}

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

impl<B: IoBuf> Request<B> {
    /// The operation's name, for errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Request::Nop => "nop",
            Request::Timer(_) => "timer",
            Request::Read { offset, .. } if *offset == CURRENT_POSITION => "read",
            Request::Read { .. } => "read_at",
            Request::Write { offset, .. } if *offset == CURRENT_POSITION => "write",
            Request::Write { .. } => "write_at",
            Request::Readv { .. } => "readv",
            Request::Writev { .. } => "writev",
            Request::Recv { .. } => "recv",
            Request::Send { .. } => "send",
            Request::RecvFrom { .. } => "recv_from",
            Request::SendTo { .. } => "send_to",
            Request::Accept => "accept",
            Request::Connect(_) => "connect",
            Request::Shutdown(_) => "shutdown",
            Request::Fsync { datasync: false } => "fsync",
            Request::Fsync { datasync: true } => "fdatasync",
            Request::Poll(_) => "poll",
        }
    }

    /// The io_uring opcode, for probing.
    pub(crate) fn opcode(&self) -> u8 {
        match self {
            Request::Nop => opcode::Nop::CODE,
            Request::Timer(_) => opcode::Timeout::CODE,
            Request::Read { .. } => opcode::Read::CODE,
            Request::Write { .. } => opcode::Write::CODE,
            Request::Readv { .. } => opcode::Readv::CODE,
            Request::Writev { .. } => opcode::Writev::CODE,
            Request::Recv { .. } => opcode::Recv::CODE,
            Request::Send { .. } => opcode::Send::CODE,
            Request::RecvFrom { .. } => opcode::RecvMsg::CODE,
            Request::SendTo { .. } => opcode::SendMsg::CODE,
            Request::Accept => opcode::Accept::CODE,
            Request::Connect(_) => opcode::Connect::CODE,
            Request::Shutdown(_) => opcode::Shutdown::CODE,
            Request::Fsync { .. } => opcode::Fsync::CODE,
            Request::Poll(_) => opcode::PollAdd::CODE,
        }
    }

    /// Checks the buffers: none may be empty, none may exceed what one io_uring request can move.
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
}

/// A `msghdr` and the `iovec` it points to, kept together in the slot.
pub(crate) struct MsgParts {
    hdr: libc::msghdr,
    iov: libc::iovec,
}

// SAFETY: the raw pointers in `hdr` and `iov` point into the same slot (its buffer and address),
// which moves between threads as a whole; nothing is shared.
unsafe impl Send for MsgParts {}

/// The memory an operation lends the kernel while it runs. It lives in the operation's slot, which
/// is boxed and never moves, so the pointers in the submission entry stay valid until the
/// completion is reaped.
pub(crate) enum Lent<B> {
    None,
    Buf(B),
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
    /// Connect's or sendmsg's input address.
    Addr(SockAddr),
    Timer(types::Timespec),
}

/// An `iovec` array; kept (cleared) in the slot between operations so vectored I/O allocates only
/// when it needs more entries than before.
#[derive(Default)]
pub(crate) struct IoVecs(Vec<libc::iovec>);

// SAFETY: the iovecs point into buffers owned by the same slot, which moves between threads as a
// whole.
unsafe impl Send for IoVecs {}

impl IoVecs {
    /// Whether keeping this array saves an allocation later.
    pub(crate) fn has_capacity(&self) -> bool {
        self.0.capacity() > 0
    }
}

impl<B: IoBuf> Lent<B> {
    /// Builds the submission entry for `req` on `fd`, moving its buffers into `self` first so that
    /// every pointer in the entry points into this (boxed, pinned) slot.
    pub(crate) fn prepare(
        &mut self,
        fd: RawFd,
        req: Request<B>,
        iov_cache: IoVecs,
    ) -> squeue::Entry {
        let fd = types::Fd(fd);
        // Offsets: io_uring takes -1 (u64::MAX) as "the file position", as CURRENT_POSITION is.
        match req {
            Request::Nop => {
                *self = Lent::None;
                opcode::Nop::new().build()
            }
            Request::Timer(after) => {
                *self = Lent::Timer(
                    types::Timespec::new()
                        .sec(after.as_secs())
                        .nsec(after.subsec_nanos()),
                );
                let Lent::Timer(ts) = self else {
                    unreachable!()
                };
                opcode::Timeout::new(ts as *const types::Timespec).build()
            }
            Request::Read { buf, offset } => {
                let (ptr, len) = self.lend(buf);
                opcode::Read::new(fd, ptr, len).offset(offset).build()
            }
            Request::Write { buf, offset } => {
                let (ptr, len) = self.lend(buf);
                opcode::Write::new(fd, ptr, len).offset(offset).build()
            }
            Request::Recv { buf, flags } => {
                let (ptr, len) = self.lend(buf);
                opcode::Recv::new(fd, ptr, len).flags(flags).build()
            }
            Request::Send { buf, flags } => {
                let (ptr, len) = self.lend(buf);
                opcode::Send::new(fd, ptr, len)
                    .flags(flags | libc::MSG_NOSIGNAL)
                    .build()
            }
            Request::Readv { bufs, offset } => {
                let (iov, n) = self.lend_all(bufs, iov_cache);
                opcode::Readv::new(fd, iov, n).offset(offset).build()
            }
            Request::Writev { bufs, offset } => {
                let (iov, n) = self.lend_all(bufs, iov_cache);
                opcode::Writev::new(fd, iov, n).offset(offset).build()
            }
            Request::RecvFrom { buf } => {
                let hdr = self.lend_msg(buf, None);
                opcode::RecvMsg::new(fd, hdr).build()
            }
            Request::SendTo { buf, addr } => {
                let hdr = self.lend_msg(buf, Some(addr));
                opcode::SendMsg::new(fd, hdr)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build()
            }
            Request::Accept => {
                *self = Lent::Peer {
                    addr: SockAddrStorage::zeroed(),
                    len: std::mem::size_of::<SockAddrStorage>() as libc::socklen_t,
                };
                let Lent::Peer { addr, len } = self else {
                    unreachable!()
                };
                opcode::Accept::new(
                    fd,
                    (addr as *mut SockAddrStorage).cast::<libc::sockaddr>(),
                    len as *mut libc::socklen_t,
                )
                .flags(libc::SOCK_CLOEXEC)
                .build()
            }
            Request::Connect(addr) => {
                *self = Lent::Addr(SockAddr::from(addr));
                let Lent::Addr(addr) = self else {
                    unreachable!()
                };
                opcode::Connect::new(fd, addr.as_ptr().cast::<libc::sockaddr>(), addr.len()).build()
            }
            Request::Shutdown(how) => {
                *self = Lent::None;
                let how = match how {
                    Shutdown::Read => libc::SHUT_RD,
                    Shutdown::Write => libc::SHUT_WR,
                    Shutdown::Both => libc::SHUT_RDWR,
                };
                opcode::Shutdown::new(fd, how).build()
            }
            Request::Fsync { datasync } => {
                *self = Lent::None;
                let flags = if datasync {
                    types::FsyncFlags::DATASYNC
                } else {
                    types::FsyncFlags::empty()
                };
                opcode::Fsync::new(fd).flags(flags).build()
            }
            Request::Poll(interest) => {
                *self = Lent::None;
                opcode::PollAdd::new(fd, interest.bits()).build()
            }
        }
    }

    fn lend(&mut self, buf: B) -> (*mut u8, u32) {
        *self = Lent::Buf(buf);
        let Lent::Buf(buf) = self else { unreachable!() };
        // `check_buffers` has bounded the length by u32::MAX.
        (buf.as_mut_ptr(), buf.len() as u32)
    }

    fn lend_all(&mut self, bufs: Vec<B>, iov: IoVecs) -> (*const libc::iovec, u32) {
        *self = Lent::Bufs { bufs, iov };
        let Lent::Bufs { bufs, iov } = self else {
            unreachable!()
        };
        iov.0.clear();
        iov.0.extend(bufs.iter_mut().map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        }));
        (iov.0.as_ptr(), iov.0.len() as u32)
    }

    fn lend_msg(&mut self, buf: B, to: Option<SocketAddr>) -> *mut libc::msghdr {
        // SAFETY: all-zero bytes are a valid `msghdr` and `iovec` (null pointers, zero lengths).
        let parts = unsafe { std::mem::zeroed::<MsgParts>() };
        let addr = match to {
            Some(a) => SockAddr::from(a).as_storage(),
            None => SockAddrStorage::zeroed(),
        };
        let name_len = match to {
            Some(a) => SockAddr::from(a).len(),
            None => std::mem::size_of::<SockAddrStorage>() as libc::socklen_t,
        };
        *self = Lent::Msg { buf, parts, addr };
        let Lent::Msg { buf, parts, addr } = self else {
            unreachable!()
        };
        parts.iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        parts.hdr.msg_name = (addr as *mut SockAddrStorage).cast();
        parts.hdr.msg_namelen = name_len;
        parts.hdr.msg_iov = &mut parts.iov;
        parts.hdr.msg_iovlen = 1;
        &mut parts.hdr
    }

    /// Turns the kernel's result and the lent memory into the packet's `bytes`, `status` and `data`;
    /// leaves `self` empty and returns the iovec array for reuse.
    pub(crate) fn finish(&mut self, res: i32, timer: bool) -> (usize, Status, Data<B>, IoVecs) {
        let lent = std::mem::replace(self, Lent::None);
        let (bytes, status) = match res {
            // A timer's "timed out" is its success.
            r if timer && r == -libc::ETIME => (0, Status::SUCCESS),
            r if r < 0 => (0, Status::from_errno(-r)),
            r => (r as usize, Status::SUCCESS),
        };
        let mut iov_back = IoVecs::default();
        let data = match lent {
            Lent::None | Lent::Addr(_) | Lent::Timer(_) => Data::None,
            Lent::Buf(buf) => Data::Buf(buf),
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
}
