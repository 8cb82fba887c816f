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
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
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
    Read {
        buf: B,
        offset: u64,
    },
    Write {
        buf: B,
        offset: u64,
    },
    Readv {
        bufs: Vec<B>,
        offset: u64,
    },
    Writev {
        bufs: Vec<B>,
        offset: u64,
    },
    Recv {
        buf: B,
        flags: i32,
    },
    Send {
        buf: B,
        flags: i32,
    },
    RecvFrom {
        buf: B,
    },
    SendTo {
        buf: B,
        addr: SocketAddr,
    },
    Accept,
    /// An accept that stays armed: a packet per connection.
    AcceptMulti,
    Connect(SocketAddr),
    Shutdown(Shutdown),
    Fsync {
        datasync: bool,
    },
    Poll(Interest),
    /// Sends `len` bytes of `file` from `offset` on the handle's socket; `pipe` is the pipe the
    /// bytes go through where the backend splices (io_uring), made before any lock is taken.
    TransmitFile {
        file: Arc<dyn AsFd + Send + Sync>,
        offset: u64,
        len: u32,
        pipe: Option<Pipe>,
    },
    /// A receive into a buffer the port provides when data arrives (`io/provided.rs`); `pool` is
    /// the epoll backend's list of them. `multishot`: it stays armed, one packet per message.
    RecvProvided {
        flags: i32,
        pool: Arc<crate::io::Available>,
        multishot: bool,
    },
}

/// The most bytes one [`Request::TransmitFile`] sends, as Windows' `TransmitFile`
/// (2,147,483,646): every count fits a completion's `i32` result.
pub(crate) const TRANSMIT_MAX: u32 = i32::MAX as u32 - 1;

/// An operation's arguments, without the memory it lends: what a backend needs besides [`Lent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Nop,
    Timer,
    Read {
        offset: u64,
    },
    Write {
        offset: u64,
    },
    Readv {
        offset: u64,
    },
    Writev {
        offset: u64,
    },
    Recv {
        flags: i32,
    },
    Send {
        flags: i32,
    },
    RecvFrom,
    SendTo,
    Accept,
    /// A multishot accept: a completion per connection (`IORING_CQE_F_MORE` on all but the last).
    AcceptMulti,
    Connect,
    Shutdown(Shutdown),
    Fsync {
        datasync: bool,
    },
    Poll(Interest),
    TransmitFile,
    /// `multishot`: one request, a completion per message (`IORING_CQE_F_MORE` on all but the
    /// last).
    RecvProvided {
        flags: i32,
        multishot: bool,
    },
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
            Op::AcceptMulti => "accept_multishot",
            Op::Connect => "connect",
            Op::Shutdown(_) => "shutdown",
            Op::Fsync { datasync: false } => "fsync",
            Op::Fsync { datasync: true } => "fdatasync",
            Op::Poll(_) => "poll",
            Op::TransmitFile => "transmit_file",
            Op::RecvProvided {
                multishot: false, ..
            } => "recv_provided",
            Op::RecvProvided {
                multishot: true, ..
            } => "recv_multishot",
        }
    }
}

impl<B: IoBuf> Request<B> {
    /// The operation's arguments.
    #[inline]
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
            Request::AcceptMulti => Op::AcceptMulti,
            Request::Connect(_) => Op::Connect,
            Request::Shutdown(how) => Op::Shutdown(*how),
            Request::Fsync { datasync } => Op::Fsync {
                datasync: *datasync,
            },
            Request::Poll(i) => Op::Poll(*i),
            Request::TransmitFile { .. } => Op::TransmitFile,
            Request::RecvProvided {
                flags, multishot, ..
            } => Op::RecvProvided {
                flags: *flags,
                multishot: *multishot,
            },
        }
    }

    /// Checks the buffers: none may be empty, none may exceed what one request can move.
    #[inline]
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
            Request::TransmitFile { len: 0, .. } => Err(("nothing to send (0 bytes)", 0)),
            Request::TransmitFile { len, .. } if *len > TRANSMIT_MAX => Err((
                "more than 2,147,483,646 bytes in one transmit_file",
                *len as usize,
            )),
            // Splice and sendfile take a signed offset (-1 would mean the file position).
            Request::TransmitFile { offset, len, .. }
                if offset.saturating_add(u64::from(*len)) > i64::MAX as u64 =>
            {
                Err((
                    "the range ends past the largest file offset (2^63 - 1)",
                    *len as usize,
                ))
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
            Request::TransmitFile { pipe: Some(p), .. } => {
                p.give_back();
                Data::None
            }
            _ => Data::None,
        }
    }

    /// Moves the buffers (and addresses) into the memory the operation lends the kernel, reading
    /// each buffer's address and length now. This is where [`IoBuf`] methods run: call it before
    /// taking any lock. A panic in them drops the request here, with nothing taken yet.
    #[inline]
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
                Lent::Msg { buf, raw, to: None }
            }
            Request::SendTo { mut buf, addr } => {
                let raw = RawBuf::of(&mut buf);
                Lent::Msg {
                    buf,
                    raw,
                    to: Some(addr),
                }
            }
            Request::Accept => Lent::Peer,
            // Its peers' addresses are read per connection (`getpeername`), not written by the
            // kernel into the slot, where the next connection's would overwrite them.
            Request::AcceptMulti => Lent::None,
            Request::Connect(addr) => Lent::Addr(addr),
            Request::RecvProvided { pool, .. } => Lent::Pool(pool),
            Request::TransmitFile {
                file,
                offset,
                len,
                pipe,
            } => {
                // The one call into the file's `AsFd`, before any lock; the `Arc` keeps the fd
                // open until the operation completes.
                let raw = file.as_fd().as_raw_fd();
                // Where splicing (io_uring), where the file ends: the chunk that reaches it is
                // the last, sent without SPLICE_F_MORE. (sendfile says nothing of more.)
                let end = match pipe {
                    Some(_) => file_end(raw, offset, len),
                    None => len,
                };
                Lent::File {
                    file,
                    raw,
                    offset,
                    len,
                    end,
                    pipe,
                }
            }
        };
        (op, lent)
    }
}

/// How many of the `len` bytes from `offset` the file `fd` has now: its size past `offset` if it
/// is a regular file, else `len` (a block device's or a pipe's `fstat` says nothing of its end).
fn file_end(fd: RawFd, offset: u64, len: u32) -> u32 {
    // SAFETY: all-zero bytes are a valid `stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes for the length of the call; the fd is the file's own, kept
    // open by the caller's `Arc`.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return len;
    }
    let left = u64::try_from(st.st_size)
        .unwrap_or(0)
        .saturating_sub(offset);
    u32::try_from(left).map_or(len, |left| left.min(len))
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

/// The memory an operation lends the kernel while it runs: its buffers (with the addresses read
/// when it was lent) and small arguments. Kept small, since it moves from the caller into the slot;
/// the larger memory the kernel reads or writes for addresses lives in the slot's [`KernelArea`].
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
    /// `recvmsg` (`to: None`) or `sendmsg`; the `msghdr` and the address are in the [`KernelArea`].
    Msg {
        buf: B,
        raw: RawBuf,
        to: Option<SocketAddr>,
    },
    /// Accept; the peer's address is written into the [`KernelArea`].
    Peer,
    /// Connect's address, copied into the [`KernelArea`] for the kernel.
    Addr(#[cfg_attr(loom, allow(dead_code))] SocketAddr),
    /// A timer's duration (the model ring of the loom tests reads it not).
    Timer(#[cfg_attr(loom, allow(dead_code))] Timespec),
    /// `transmit_file`'s file (kept open by the `Arc` while the operation runs; `raw` is its fd,
    /// read when lent), its range, where the file ended then (see [`Transmit::end`]), and the
    /// pipe where the backend splices; the progress is in the [`KernelArea`].
    File {
        #[cfg_attr(loom, allow(dead_code))]
        file: Arc<dyn AsFd + Send + Sync>,
        raw: RawFd,
        offset: u64,
        len: u32,
        end: u32,
        pipe: Option<Pipe>,
    },
    /// `recv_provided` while it waits: the epoll backend's list of provided buffers (io_uring's
    /// are in the kernel's ring).
    Pool(#[cfg_attr(loom, allow(dead_code))] Arc<crate::io::Available>),
    /// `recv_provided` once done: the provided buffer it was given, taken out of the port's pool
    /// by the op table.
    Picked(B),
}

/// A pipe that `transmit_file` splices through on io_uring: file to pipe, pipe to socket, with no
/// copy through user space. Pipes are kept per thread and reused (an empty one only).
#[cfg_attr(loom, allow(dead_code))] // the model ring runs no transmissions
pub(crate) struct Pipe {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
    /// Its capacity: the most one splice from the file moves.
    pub(crate) capacity: u32,
}

/// Pipes kept by one thread at most.
const PIPES_KEPT: usize = 8;
/// The capacity asked for a new pipe (the default is 64 KiB; up to `/proc/sys/fs/pipe-max-size`,
/// 1 MiB by default, may be asked without privilege). Fewer, larger splices per transmission.
const PIPE_SIZE: i32 = 1 << 20;

std::thread_local! {
    static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

impl Pipe {
    /// A pipe from this thread's spares, or a new one.
    pub(crate) fn take() -> std::io::Result<Pipe> {
        if let Some(p) = PIPES.with(|p| p.borrow_mut().pop()) {
            return Ok(p);
        }
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two fds `pipe2` writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `pipe2` just created both fds; nothing else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: takes no pointers. Where the larger size is refused (the user's pipe quota),
        // the pipe keeps the size it has.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        let size = if size > 0 {
            size
        } else {
            // SAFETY: takes no pointers.
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) }
        };
        Ok(Pipe {
            read,
            write,
            capacity: u32::try_from(size).unwrap_or(0).max(4096),
        })
    }

    /// Keeps an empty pipe among this thread's spares (else closes it).
    fn give_back(self) {
        let _ = PIPES.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < PIPES_KEPT {
                p.push(self);
            }
        });
    }
}

/// Where a `transmit_file` stands: its file and range, the bytes sent, and the bytes in its pipe
/// (io_uring: each stage is a splice, file to pipe while `in_pipe` is 0, else pipe to socket; or,
/// where the splice said `EAGAIN`, a poll until it may be tried again).
#[derive(Clone, Copy, Default, Debug)]
#[cfg_attr(loom, allow(dead_code))]
pub(crate) struct Transmit {
    pub(crate) file: RawFd,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) done: u32,
    pub(crate) in_pipe: u32,
    /// Where the file ended when the operation started, counted from `offset` (at most `len`):
    /// the chunk that reaches it is sent without `SPLICE_F_MORE`, or its tail would stay corked
    /// in the socket.
    pub(crate) end: u32,
    /// The last splice from the file brought fewer bytes than asked: the file may have ended
    /// there (it shrank, or grows as it is sent), so that chunk goes without `SPLICE_F_MORE` too.
    pub(crate) short: bool,
    /// The socket (non-blocking) had no room for the pipe's bytes: the stage in the kernel is a
    /// poll for `POLLOUT`, then the splice is tried again.
    pub(crate) waiting_writable: bool,
    /// The file (non-blocking, not a regular file) had no bytes: the stage is a poll for
    /// `POLLIN` on it, then the splice is tried again.
    pub(crate) waiting_readable: bool,
}

/// A `msghdr` and the `iovec` it points to.
pub(crate) struct MsgParts {
    pub(crate) hdr: libc::msghdr,
    pub(crate) iov: libc::iovec,
}

// SAFETY: the raw pointers in `hdr` and `iov` point into the same slot (its buffer and address),
// which moves between threads as a whole; nothing is shared.
unsafe impl Send for MsgParts {}

/// A slot's memory for the kernel's side of addresses: the socket address a `connect` or
/// `send_to` gives and an `accept` or `recv_from` receives, its length, and the `msghdr` of
/// `recv_from`/`send_to`. Reused by every tenant of the slot; filled under the op table's lock by
/// [`Lending::install`], which runs no user code.
pub(crate) struct KernelArea {
    pub(crate) addr: SockAddrStorage,
    pub(crate) addr_len: libc::socklen_t,
    pub(crate) msg: MsgParts,
    pub(crate) transmit: Transmit,
    /// The provided buffer a `recv_provided` used on the epoll backend: its id + 1 (0: none).
    /// (io_uring reports it in the completion's flags.)
    pub(crate) picked: u32,
}

impl Default for KernelArea {
    fn default() -> Self {
        KernelArea {
            addr: SockAddrStorage::zeroed(),
            addr_len: 0,
            // SAFETY: all-zero bytes are a valid `msghdr` and `iovec` (null pointers, zero
            // lengths).
            msg: unsafe { std::mem::zeroed::<MsgParts>() },
            transmit: Transmit::default(),
            picked: 0,
        }
    }
}

/// What an operation's slot lends the kernel: the [`Lent`] memory and the slot's [`KernelArea`].
/// The slot is boxed and never moves, so pointers into it stay valid until the operation
/// completes.
pub(crate) struct Lending<B> {
    pub(crate) lent: Lent<B>,
    pub(crate) area: KernelArea,
}

impl<B> Default for Lending<B> {
    fn default() -> Self {
        Lending {
            lent: Lent::None,
            area: KernelArea::default(),
        }
    }
}

impl<B> Lending<B> {
    /// Takes `lent` in and prepares the kernel area for it: the address and `msghdr` that the
    /// operation's request points to. Runs no user code.
    #[inline]
    pub(crate) fn install(&mut self, lent: Lent<B>) {
        self.lent = lent;
        let area = &mut self.area;
        match &self.lent {
            Lent::Msg { raw, to, .. } => {
                area.addr_len = match to {
                    Some(a) => {
                        let a = SockAddr::from(*a);
                        let len = a.len();
                        area.addr = a.as_storage();
                        len
                    }
                    None => std::mem::size_of::<SockAddrStorage>() as libc::socklen_t,
                };
                area.msg.iov = libc::iovec {
                    iov_base: raw.ptr.cast(),
                    iov_len: raw.len,
                };
                area.msg.hdr.msg_name = (&mut area.addr as *mut SockAddrStorage).cast();
                area.msg.hdr.msg_namelen = area.addr_len;
                area.msg.hdr.msg_iov = &mut area.msg.iov;
                area.msg.hdr.msg_iovlen = 1;
                area.msg.hdr.msg_control = std::ptr::null_mut();
                area.msg.hdr.msg_controllen = 0;
                area.msg.hdr.msg_flags = 0;
            }
            Lent::Peer => {
                area.addr_len = std::mem::size_of::<SockAddrStorage>() as libc::socklen_t;
            }
            Lent::Addr(a) => {
                let a = SockAddr::from(*a);
                area.addr_len = a.len();
                area.addr = a.as_storage();
            }
            Lent::File {
                raw,
                offset,
                len,
                end,
                ..
            } => {
                area.transmit = Transmit {
                    file: *raw,
                    offset: *offset,
                    len: *len,
                    end: *end,
                    ..Transmit::default()
                };
            }
            _ => {}
        }
    }

    /// A `transmit_file` stage completed with `res` (io_uring, which splices in stages): `None`
    /// if the transmission goes on (the next stage is what the request now builds), else its
    /// result: the bytes sent (fewer than asked if the file ended first), or the error.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn transmit_step(&mut self, res: i32) -> Option<i32> {
        let capacity = match &self.lent {
            Lent::File { pipe: Some(p), .. } => p.capacity,
            _ => u32::MAX,
        };
        let t = &mut self.area.transmit;
        if t.waiting_writable || t.waiting_readable {
            // A poll for readiness ended: the splice it waited for is tried again (an error the
            // poll saw, POLLERR or POLLHUP, is the splice's to report).
            t.waiting_writable = false;
            t.waiting_readable = false;
            return if res < 0 { Some(res) } else { None };
        }
        if res == -libc::EAGAIN {
            // A non-blocking socket with no room (or a non-blocking file with no bytes): wait
            // for it, as a blocking one would, rather than fail.
            if t.in_pipe == 0 {
                t.waiting_readable = true;
            } else {
                t.waiting_writable = true;
            }
            return None;
        }
        if res < 0 {
            return Some(res);
        }
        let n = res as u32;
        if t.in_pipe == 0 {
            // File to pipe: 0 is the end of the file.
            if n == 0 {
                return Some(t.done as i32);
            }
            t.short = n < (t.len - t.done).min(capacity);
            t.in_pipe = n;
            return None;
        }
        // Pipe to socket. (0 would mean nothing moved; stop rather than spin.)
        if n == 0 {
            return Some(-libc::EIO);
        }
        let n = n.min(t.in_pipe);
        t.in_pipe -= n;
        t.done += n;
        if t.in_pipe > 0 || t.done < t.len {
            return None;
        }
        Some(t.done as i32)
    }
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

impl<B> Lending<B> {
    /// Turns the kernel's result and the lent memory into the packet's `bytes`, `status` and `data`;
    /// leaves the lent memory empty and returns the iovec array for reuse.
    #[inline]
    pub(crate) fn finish(&mut self, res: i32, op: Op) -> (usize, Status, Data<B>, IoVecs) {
        let lent = std::mem::replace(&mut self.lent, Lent::None);
        let area = &mut self.area;
        let (bytes, status) = match res {
            // A timer's "timed out" is its success.
            r if op == Op::Timer && r == -libc::ETIME => (0, Status::SUCCESS),
            r if r < 0 => (0, Status::from_errno(-r)),
            r => (r as usize, Status::SUCCESS),
        };
        let mut iov_back = IoVecs::default();
        let data = match lent {
            Lent::None | Lent::Addr(_) | Lent::Timer(_) | Lent::Pool(_) => Data::None,
            Lent::Picked(buf) => Data::Buf(buf),
            Lent::File { file, pipe, .. } => {
                // A failed transmission reports what it sent before it failed (the io_uring
                // stages count it; 0 on epoll, which sends it all in one completion).
                let sent = std::mem::take(&mut area.transmit.done) as usize;
                let in_pipe = std::mem::take(&mut area.transmit.in_pipe);
                if let Some(p) = pipe {
                    if in_pipe == 0 {
                        p.give_back();
                    }
                }
                // The file closes here if the program let go of it meanwhile.
                drop(file);
                let bytes = if res < 0 { sent } else { bytes };
                return (bytes, status, Data::None, iov_back);
            }
            Lent::Buf { buf, .. } => Data::Buf(buf),
            Lent::Bufs { bufs, iov } => {
                iov_back = iov;
                Data::Bufs(bufs)
            }
            Lent::Msg { buf, .. } => {
                let len = area.msg.hdr.msg_namelen;
                let from = (res >= 0 && len > 0)
                    // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes of the
                    // family it stored (or, for `send_to`, `install` did), into storage that is
                    // large enough for any.
                    .then(|| unsafe { SockAddr::new(take_addr(area), len) }.as_socket())
                    .flatten();
                Data::From(buf, from.map(Box::new))
            }
            Lent::Peer => {
                if res >= 0 {
                    // SAFETY: `res` is the fd the kernel just created for the accepted connection;
                    // nothing else owns it.
                    let socket = unsafe { OwnedFd::from_raw_fd(res) };
                    let len = area.addr_len;
                    // SAFETY: the kernel wrote the peer's address, `addr_len` bytes of its family.
                    let peer = unsafe { SockAddr::new(take_addr(area), len) }.as_socket();
                    return (
                        0,
                        status,
                        Data::Accepted(socket, peer.map(Box::new)),
                        iov_back,
                    );
                }
                Data::None
            }
        };
        (bytes, status, data, iov_back)
    }
}

/// The address the kernel wrote into `area` (left zeroed behind).
fn take_addr(area: &mut KernelArea) -> SockAddrStorage {
    std::mem::replace(&mut area.addr, SockAddrStorage::zeroed())
}

impl<B> Lent<B> {
    /// Hands the buffers back, for an operation that was lent but never started.
    pub(crate) fn into_data(self) -> Data<B> {
        match self {
            Lent::Buf { buf, .. } => Data::Buf(buf),
            Lent::Bufs { bufs, iov } => {
                iov.recycle();
                Data::Bufs(bufs)
            }
            Lent::Msg { buf, .. } => Data::From(buf, None),
            Lent::Picked(buf) => Data::Buf(buf),
            Lent::File { pipe: Some(p), .. } => {
                p.give_back();
                Data::None
            }
            _ => Data::None,
        }
    }
}
