//! One operation of the epoll backend as it waits to run ([`Sqe`]: its arguments and raw pointers
//! into the memory its slot lends), and the system call that runs it.
//!
//! Like an io_uring entry, an `Sqe` is built under the op table's lock from the slot's
//! [`Lending`], and from then on nothing in user space reads or writes that memory but the system
//! calls made here: the slot keeps it in place, untouched, until the operation's one completion has
//! been reaped.

use std::net::Shutdown;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use socket2::SockAddrStorage;

use crate::io::Available;
use crate::op::{Lending, Lent, Op, Transmit};

use super::Pollable;

/// Where an operation runs.
pub(super) enum Target {
    /// No fd (`nop`, `timer`).
    None,
    /// A socket, pipe or other fd registered with epoll (non-blocking since it was associated).
    Poll(Arc<Pollable>),
    /// A regular file, block device, or any fd epoll refuses: tried at once where that cannot block
    /// (`RWF_NOWAIT`), else on the thread pool.
    File {
        /// Opened with `O_DIRECT`: no first try (it would wait for the device).
        direct: bool,
    },
}

/// The memory an operation's system call uses: raw pointers into its slot and buffers.
#[derive(Clone, Copy)]
pub(super) enum Mem {
    None,
    Buf(*mut u8, usize),
    Iov(*const libc::iovec, usize),
    Msg(*mut libc::msghdr),
    Accept(*mut libc::sockaddr, *mut libc::socklen_t),
    /// `started`: `connect(2)` said `EINPROGRESS`; the operation now waits for the outcome.
    Connect {
        addr: *const libc::sockaddr,
        len: libc::socklen_t,
        started: bool,
    },
    Timer(Duration),
    /// `transmit_file`: its file, range and progress, in the slot's kernel area.
    File(*mut Transmit),
    /// `recv_provided`: the port's list of provided buffers (kept alive by the slot's `Lent`),
    /// and where in the slot to say which one it used.
    Pool(*const Available, *mut u32),
}

/// An operation of the epoll backend, from its start until its completion is queued.
pub(super) struct Sqe {
    pub(super) user_data: u64,
    pub(super) op: Op,
    pub(super) fd: RawFd,
    pub(super) target: Target,
    pub(super) mem: Mem,
    /// The bytes the operation's buffers hold.
    len: usize,
    /// Bytes moved so far by a `recv` or `send` with `MSG_WAITALL` on a stream, which is done only
    /// once its buffer is (as io_uring's).
    progress: usize,
    /// The flags of its last completion (io_uring's `IORING_CQE_F_*`): a multishot receive's last
    /// buffer.
    pub(super) flags: u32,
}

// SAFETY: the raw pointers point into the operation's slot (boxed, kept in place) and the buffers it
// owns, which nothing else touches until the operation's completion is reaped; only the system calls
// made for the operation use them, from whichever one thread holds the `Sqe`.
unsafe impl Send for Sqe {}

/// What an attempt at an operation came to.
pub(super) enum Outcome {
    /// Its result: a count, an fd, poll events, or a negated errno.
    Done(i32),
    /// It would block: wait for readiness (or, for a file, go to the thread pool).
    Again,
    /// A multishot receive's message: its result and completion flags (`IORING_CQE_F_MORE`, the
    /// buffer's id); the operation stays, to be tried again at once.
    More(i32, u32),
}

impl Sqe {
    /// The entry for `op` on `fd`, its pointers into `lending` (prepared by `Lending::install`).
    pub(super) fn build<B>(
        op: Op,
        fd: RawFd,
        target: Target,
        lending: &mut Lending<B>,
        user_data: u64,
    ) -> Sqe {
        let Lending { lent, area } = lending;
        let mem = match (op, lent) {
            (Op::Timer, Lent::Timer(ts)) => Mem::Timer(Duration::new(
                u64::try_from(ts.sec).unwrap_or(0),
                u32::try_from(ts.nsec).unwrap_or(0),
            )),
            (_, Lent::Buf { raw, .. }) => Mem::Buf(raw.ptr, raw.len),
            (_, Lent::Bufs { iov, .. }) => Mem::Iov(iov.0.as_ptr(), iov.0.len()),
            (_, Lent::Msg { .. }) => Mem::Msg(&mut area.msg.hdr),
            (Op::Accept, _) => Mem::Accept(
                (&mut area.addr as *mut SockAddrStorage).cast(),
                &mut area.addr_len,
            ),
            (Op::TransmitFile, _) => Mem::File(&mut area.transmit),
            (Op::RecvProvided { .. }, Lent::Pool(pool)) => {
                Mem::Pool(std::sync::Arc::as_ptr(pool), &mut area.picked)
            }
            (Op::Connect, _) => Mem::Connect {
                addr: (&area.addr as *const SockAddrStorage).cast(),
                len: area.addr_len,
                started: false,
            },
            _ => Mem::None,
        };
        let len = match mem {
            Mem::Buf(_, n) => n,
            // SAFETY: the iovec array is the operation's own, `n` entries, kept in place.
            Mem::Iov(p, n) => unsafe { std::slice::from_raw_parts(p, n) }
                .iter()
                .map(|v| v.iov_len)
                .sum(),
            _ => 0,
        };
        Sqe {
            user_data,
            op,
            fd,
            target,
            mem,
            len,
            progress: 0,
            flags: 0,
        }
    }

    /// A read or write of a file at an offset, which may be tried at once with `RWF_NOWAIT`: done
    /// if the data is cached, else done again, whole, on the pool (the same bytes at the same
    /// offset). At the file position a short try would have moved the position: never tried.
    pub(super) fn nowait_first(&self) -> bool {
        matches!(self.target, Target::File { direct: false })
            && matches!(
                self.op,
                Op::Read { offset } | Op::Write { offset } | Op::Readv { offset } | Op::Writev { offset }
                    if offset != crate::op::CURRENT_POSITION
            )
    }

    /// Tried at once whatever waits before it: a `recv`/`recv_provided`/`send` that must not wait
    /// (`MSG_DONTWAIT`) or reads the error queue (`MSG_ERRQUEUE`, which data never settles).
    pub(super) fn unordered(&self) -> bool {
        self.dont_wait() || matches!(self.op, Op::Recv { flags } if flags & libc::MSG_ERRQUEUE != 0)
    }

    /// A `recv` or `send` with `MSG_WAITALL` on a stream.
    fn wait_all(&self) -> bool {
        matches!(&self.target, Target::Poll(p) if p.socket)
            && matches!(self.op, Op::Recv { flags } | Op::Send { flags } if flags & libc::MSG_WAITALL != 0)
    }

    /// Which readiness the operation waits for: `Some(true)` reading, `Some(false)` writing, `None`
    /// for a `poll` (any event may settle it).
    pub(super) fn reads(&self) -> Option<bool> {
        match self.op {
            Op::Read { .. }
            | Op::Readv { .. }
            | Op::Recv { .. }
            | Op::RecvProvided { .. }
            | Op::RecvFrom
            | Op::Accept
            | Op::AcceptMulti => Some(true),
            Op::Poll(_) => None,
            _ => Some(false),
        }
    }

    /// One attempt: without blocking on a pollable fd (`nonblocking`), or as a plain blocking call on
    /// a pool thread. File reads and writes tried at once use `RWF_NOWAIT`.
    pub(super) fn run(&mut self, nonblocking: bool) -> Outcome {
        let fd = self.fd;
        let socket_flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        let file = matches!(self.target, Target::File { .. });
        let rw_flags = if nonblocking && file {
            libc::RWF_NOWAIT
        } else {
            0
        };
        loop {
            let rc: isize = match (self.op, self.mem) {
                (Op::Nop, _) => 0,
                (Op::Connect, Mem::Connect { started: true, .. }) => {
                    return self.connect_outcome(nonblocking);
                }
                (Op::Connect, Mem::Connect { addr, len, .. }) => {
                    // SAFETY: `addr` points to `len` bytes of the slot's address, kept in place
                    // until the operation's completion is reaped.
                    let rc = unsafe { libc::connect(fd, addr, len) };
                    if rc == 0 {
                        return Outcome::Done(0);
                    }
                    match errno() {
                        // (EAGAIN means no connection was started: a Unix listener's backlog is
                        // full, or no local port is left; it is the result, as on io_uring.)
                        libc::EINTR | libc::EINPROGRESS => {
                            // The connection goes on in the kernel: wait for its outcome.
                            if let Mem::Connect { started, .. } = &mut self.mem {
                                *started = true;
                            }
                            return self.connect_outcome(nonblocking);
                        }
                        e => return Outcome::Done(-e),
                    }
                }
                (Op::Shutdown(how), _) => {
                    let how = match how {
                        Shutdown::Read => libc::SHUT_RD,
                        Shutdown::Write => libc::SHUT_WR,
                        Shutdown::Both => libc::SHUT_RDWR,
                    };
                    // SAFETY: takes no pointers.
                    unsafe { libc::shutdown(fd, how) as isize }
                }
                (Op::Fsync { datasync }, _) => {
                    // SAFETY: takes no pointers.
                    unsafe {
                        if datasync {
                            libc::fdatasync(fd) as isize
                        } else {
                            libc::fsync(fd) as isize
                        }
                    }
                }
                (
                    Op::RecvProvided {
                        flags,
                        multishot: true,
                    },
                    Mem::Pool(pool, _),
                ) => {
                    // The buffer's id goes in the completion's flags, as io_uring's does: the slot
                    // is not written while the operation goes on (its packets are reaped
                    // meanwhile).
                    let mut picked = 0;
                    // SAFETY: the list is kept alive by the slot's `Lent`.
                    let mut outcome =
                        unsafe { recv_provided(fd, flags | socket_flags, &*pool, &mut picked) };
                    if matches!(outcome, Outcome::Done(r) if r == -libc::ENOBUFS)
                        && self.progress > 0
                        && nonblocking
                        && !readable(fd)
                    {
                        // As io_uring's: out of buffers at its start, it ends at once; after a
                        // message, only once data (or the end of the stream) is there to take.
                        outcome = Outcome::Again;
                    }
                    let buffer = match picked.checked_sub(1) {
                        Some(bid) => crate::io::CQE_F_BUFFER | (bid << 16),
                        None => 0,
                    };
                    return match outcome {
                        // On a pool thread (never: a receive needs a socket, and sockets are
                        // polled), the first message would end it.
                        Outcome::Done(r) if r > 0 && nonblocking => {
                            // `progress` counts the messages (a receive uses it for MSG_WAITALL
                            // only, which a multishot one refuses).
                            self.progress += 1;
                            Outcome::More(r, buffer | crate::io::CQE_F_MORE)
                        }
                        Outcome::Done(r) => {
                            self.flags = buffer;
                            Outcome::Done(r)
                        }
                        o => o,
                    };
                }
                (Op::RecvProvided { flags, .. }, Mem::Pool(pool, picked)) => {
                    // SAFETY: the list is kept alive by the slot's `Lent` and `picked` points into
                    // the slot, kept in place until the completion is reaped.
                    let outcome =
                        unsafe { recv_provided(fd, flags | socket_flags, &*pool, &mut *picked) };
                    return match outcome {
                        // The program asked not to wait: EAGAIN is the result, as for `recv`
                        // (and on io_uring).
                        Outcome::Again if self.dont_wait() => Outcome::Done(-libc::EAGAIN),
                        o => o,
                    };
                }
                (Op::AcceptMulti, _) => {
                    // No address: the op table reads each peer's (`getpeername`).
                    // SAFETY: null address and length are allowed; the new socket is blocking, as
                    // io_uring's accept gives it.
                    let rc = unsafe {
                        libc::accept4(
                            fd,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_CLOEXEC,
                        )
                    };
                    match rc {
                        // On a pool thread (never: a listener is polled), the first connection
                        // would end it.
                        fd if fd >= 0 && nonblocking => {
                            return Outcome::More(fd, crate::io::CQE_F_MORE)
                        }
                        fd if fd >= 0 => return Outcome::Done(fd),
                        _ => match errno() {
                            libc::EINTR => continue,
                            libc::EAGAIN => return Outcome::Again,
                            e => return Outcome::Done(-e),
                        },
                    }
                }
                (Op::TransmitFile, Mem::File(t)) => {
                    // SAFETY: `t` points into the slot's kernel area, kept in place and touched by
                    // nothing else until the operation's completion is reaped.
                    return transmit(fd, unsafe { &mut *t });
                }
                (Op::Poll(interest), _) => {
                    return match poll_now(fd, interest.bits() as i16) {
                        0 => Outcome::Again,
                        r => Outcome::Done(r),
                    };
                }
                // SAFETY: the pointers come from `build` and point into the slot and buffers the
                // operation owns, valid for the lengths given until its completion is reaped (see
                // `Sqe`'s `Send`).
                _ => unsafe { self.transfer(file, socket_flags, rw_flags) },
            };
            if rc >= 0 {
                let rc = rc as usize;
                if rw_flags != 0 && rc < self.len && !crate::io::short_at_end(fd, self.op, rc) {
                    // Part of the range was not cached: the pool does it all again.
                    return Outcome::Again;
                }
                if self.wait_all() {
                    self.progress += rc;
                    if rc > 0 && self.progress < self.len {
                        continue;
                    }
                    return Outcome::Done(i32::try_from(self.progress).unwrap_or(i32::MAX));
                }
                return Outcome::Done(i32::try_from(rc).unwrap_or(i32::MAX));
            }
            let e = errno();
            if self.progress > 0 && e != libc::EINTR && (e != libc::EAGAIN || self.dont_wait()) {
                // A MSG_WAITALL transfer that moved bytes reports them.
                return Outcome::Done(i32::try_from(self.progress).unwrap_or(i32::MAX));
            }
            match e {
                libc::EINTR => continue,
                // The program asked not to wait (as io_uring, which then reports EAGAIN).
                libc::EAGAIN if self.dont_wait() => return Outcome::Done(-libc::EAGAIN),
                libc::EAGAIN => return Outcome::Again,
                // A file that cannot take RWF_NOWAIT: the pool makes the plain call.
                libc::EOPNOTSUPP | libc::EINVAL if rw_flags != 0 => return Outcome::Again,
                e => return Outcome::Done(-e),
            }
        }
    }

    /// A `recv`, `recv_provided` or `send` whose flags say `MSG_DONTWAIT`.
    fn dont_wait(&self) -> bool {
        matches!(
            self.op,
            Op::Recv { flags } | Op::RecvProvided { flags, .. } | Op::Send { flags }
                if flags & libc::MSG_DONTWAIT != 0
        )
    }

    /// The system call of a read, write, send, receive or accept.
    ///
    /// # Safety
    ///
    /// `self.mem` must point to memory valid for the operation: the slot and buffers it owns,
    /// until its completion is reaped.
    unsafe fn transfer(&self, file: bool, socket_flags: i32, rw_flags: i32) -> isize {
        let fd = self.fd;
        // SAFETY: as the caller guarantees; every pointer and length is the operation's own.
        unsafe {
            match (self.op, self.mem) {
                (Op::Read { offset }, Mem::Buf(p, n)) if file => {
                    let iov = libc::iovec {
                        iov_base: p.cast(),
                        iov_len: n,
                    };
                    libc::preadv2(fd, &iov, 1, offset as i64, rw_flags)
                }
                (Op::Write { offset }, Mem::Buf(p, n)) if file => {
                    let iov = libc::iovec {
                        iov_base: p.cast(),
                        iov_len: n,
                    };
                    libc::pwritev2(fd, &iov, 1, offset as i64, rw_flags)
                }
                (Op::Readv { offset }, Mem::Iov(p, n)) if file => {
                    libc::preadv2(fd, p, n as i32, offset as i64, rw_flags)
                }
                (Op::Writev { offset }, Mem::Iov(p, n)) if file => {
                    libc::pwritev2(fd, p, n as i32, offset as i64, rw_flags)
                }
                // Streams: the offset means nothing (as on io_uring). Sockets say MSG_DONTWAIT
                // themselves, whatever the fd's flags.
                (Op::Read { .. }, Mem::Buf(p, n)) if self.is_socket() => {
                    libc::recv(fd, p.cast(), n, socket_flags)
                }
                (Op::Readv { .. }, Mem::Iov(p, n)) if self.is_socket() => {
                    let mut hdr: libc::msghdr = std::mem::zeroed();
                    hdr.msg_iov = p.cast_mut();
                    hdr.msg_iovlen = n;
                    libc::recvmsg(fd, &mut hdr, socket_flags)
                }
                (Op::Read { .. }, Mem::Buf(p, n)) => libc::read(fd, p.cast(), n),
                (Op::Readv { .. }, Mem::Iov(p, n)) => libc::readv(fd, p, n as i32),
                (Op::Write { .. }, Mem::Buf(p, n)) if self.is_socket() => {
                    libc::send(fd, p.cast(), n, libc::MSG_NOSIGNAL | socket_flags)
                }
                (Op::Write { .. }, Mem::Buf(p, n)) => libc::write(fd, p.cast(), n),
                (Op::Writev { .. }, Mem::Iov(p, n)) if self.is_socket() => {
                    let mut hdr: libc::msghdr = std::mem::zeroed();
                    hdr.msg_iov = p.cast_mut();
                    hdr.msg_iovlen = n;
                    libc::sendmsg(fd, &hdr, libc::MSG_NOSIGNAL | socket_flags)
                }
                (Op::Writev { .. }, Mem::Iov(p, n)) => libc::writev(fd, p, n as i32),
                // `progress` is 0 but for MSG_WAITALL.
                (Op::Recv { flags }, Mem::Buf(p, n)) => libc::recv(
                    fd,
                    p.add(self.progress).cast(),
                    n - self.progress,
                    flags | socket_flags,
                ),
                (Op::Send { flags }, Mem::Buf(p, n)) => libc::send(
                    fd,
                    p.add(self.progress).cast(),
                    n - self.progress,
                    flags | libc::MSG_NOSIGNAL | socket_flags,
                ),
                (Op::RecvFrom, Mem::Msg(h)) => libc::recvmsg(fd, h, socket_flags),
                (Op::SendTo, Mem::Msg(h)) => {
                    libc::sendmsg(fd, h, libc::MSG_NOSIGNAL | socket_flags)
                }
                (Op::Accept, Mem::Accept(a, l)) => {
                    // The new socket in blocking mode, as io_uring's accept gives it.
                    libc::accept4(fd, a, l, libc::SOCK_CLOEXEC) as isize
                }
                (op, _) => unreachable!("{} lends what it needs", op.name()),
            }
        }
    }

    fn is_socket(&self) -> bool {
        matches!(&self.target, Target::Poll(p) if p.socket)
    }

    /// A connection in progress: done once the socket is writable (or failed), with `SO_ERROR`.
    fn connect_outcome(&self, nonblocking: bool) -> Outcome {
        if nonblocking {
            if poll_now(self.fd, libc::POLLOUT) == 0 {
                return Outcome::Again;
            }
        } else {
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid `pollfd`, for the length of the call.
            while unsafe { libc::poll(&mut pfd, 1, -1) } < 0 && errno() == libc::EINTR {}
        }
        Outcome::Done(crate::io::socket_error(self.fd))
    }
}

/// A receive into the oldest provided buffer: `ENOBUFS` if there is none; if it would block, the
/// buffer goes back first in line and the receive waits for readability (`Again`; the caller
/// makes it `EAGAIN` where the program said `MSG_DONTWAIT`); else the buffer is the operation's
/// (its id + 1 in `picked`).
///
/// # Safety
///
/// The buffers in `pool` must be the port's provided buffers, valid for their lengths.
unsafe fn recv_provided(fd: RawFd, flags: i32, pool: &Available, picked: &mut u32) -> Outcome {
    let Some((bid, addr, len)) = pool.take() else {
        return Outcome::Done(-libc::ENOBUFS);
    };
    loop {
        // SAFETY: as the caller guarantees: `addr` is `len` bytes of a buffer the pool owns and
        // nothing else uses while this receive has it.
        let rc = unsafe { libc::recv(fd, addr.cast(), len, flags) };
        if rc >= 0 {
            *picked = u32::from(bid) + 1;
            return Outcome::Done(i32::try_from(rc).unwrap_or(i32::MAX));
        }
        match errno() {
            libc::EINTR => {}
            e => {
                pool.put_back(bid, addr, len);
                return if e == libc::EAGAIN && flags & libc::MSG_DONTWAIT != 0 {
                    Outcome::Again
                } else {
                    Outcome::Done(-e)
                };
            }
        }
    }
}

/// Whether a receive on `fd` would find something now: data, the end of the stream or an error
/// (a one-byte `MSG_PEEK` that does not say `EAGAIN`).
fn readable(fd: RawFd) -> bool {
    let mut byte = 0u8;
    loop {
        // SAFETY: one byte of a local, for the length of the call.
        let rc = unsafe {
            libc::recv(
                fd,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match rc {
            r if r >= 0 => return true,
            _ if errno() == libc::EINTR => continue,
            _ => return errno() != libc::EAGAIN,
        }
    }
}

/// Sends what is left of a `transmit_file` with `sendfile(2)` until it is all sent (or the file
/// ends), the socket would block (non-blocking sockets: wait for it to be writable, progress kept
/// in `t`), or an error.
fn transmit(fd: RawFd, t: &mut Transmit) -> Outcome {
    loop {
        if t.done >= t.len {
            return Outcome::Done(t.done as i32);
        }
        let mut off = (t.offset + u64::from(t.done)) as libc::off_t;
        let rc = sendfile_nosignal(fd, t.file, &mut off, (t.len - t.done) as usize);
        match rc {
            Ok(0) => return Outcome::Done(t.done as i32),
            Ok(n) => t.done += n as u32,
            Err(libc::EINTR) => {}
            Err(libc::EAGAIN) => return Outcome::Again,
            Err(e) => return Outcome::Done(-e),
        }
    }
}

/// `sendfile(2)`, without the `SIGPIPE` it raises when the peer has gone (there is no
/// `MSG_NOSIGNAL` for it): the signal is blocked around the call and, if the call raised it,
/// taken back before it is unblocked. A thread that blocks `SIGPIPE` itself keeps its own mask
/// (the signal stays pending, as after any write of its own).
fn sendfile_nosignal(
    out: RawFd,
    file: RawFd,
    off: &mut libc::off_t,
    n: usize,
) -> Result<usize, i32> {
    // SAFETY: `set` and `old` are valid sigsets for the calls that fill and read them; `off` is a
    // valid `off_t`; the fds are the operation's own (kept open by its slot).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        let ours = libc::sigismember(&old, libc::SIGPIPE) == 0;
        let rc = libc::sendfile(out, file, off, n);
        let e = if rc < 0 { errno() } else { 0 };
        if ours {
            if e == libc::EPIPE {
                // Unblocked before the call, so no SIGPIPE was pending for this thread then: one
                // pending now is this call's.
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
        if rc < 0 {
            Err(e)
        } else {
            Ok(rc as usize)
        }
    }
}

/// The `poll(2)` events `fd` has now among `events` (always with `POLLERR`, `POLLHUP`, `POLLNVAL`),
/// or a negated errno.
fn poll_now(fd: RawFd, events: i16) -> i32 {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid `pollfd`, for the length of the call.
        match unsafe { libc::poll(&mut pfd, 1, 0) } {
            n if n >= 0 => return i32::from(pfd.revents as u16),
            _ if errno() == libc::EINTR => continue,
            _ => return -errno(),
        }
    }
}

pub(super) fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
