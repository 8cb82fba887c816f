//! The BSD socket calls with Winsock's behaviour (`bind`, `listen`, `connect`, `accept`,
//! `getsockname`, `getpeername`, `getsockopt`, `shutdown`, `send`, `recv`, `sendto`, `recvfrom`,
//! `ioctlsocket`): the header routes Winsock-style calls here, so that a failure sets
//! `WSAGetLastError()` as Windows programs expect when they print their errors.
//!
//! Each call reaches libc on the SOCKET's fd; a blocking call on a socket the epoll backend made
//! non-blocking waits for readiness instead of failing with `WSAEWOULDBLOCK`, and an interrupted
//! one is retried.

use std::collections::HashSet;
use std::ffi::c_void;
use std::os::fd::RawFd;
use std::sync::Mutex;

use crate::core::{assoc_of, lock};
use crate::guard;
use crate::sock::lift;
use crate::status::{errno, errno_to_wsa, set_last_error};
use crate::types::*;

/// `FIONBIO` and `FIONREAD` as Windows spells them (`_IOW('f', 126, u_long)`, `_IOR('f', 127,
/// u_long)`).
const WIN_FIONBIO: libc::c_long = 0x8004_667E_u32 as i32 as libc::c_long;
const WIN_FIONREAD: libc::c_long = 0x4004_667F;

/// Sockets the program made non-blocking (`ioctlsocket(FIONBIO)`): their calls fail with
/// WSAEWOULDBLOCK rather than wait, even where the epoll backend set `O_NONBLOCK` itself.
static NONBLOCKING: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

/// Whether the program made `fd` non-blocking.
pub(crate) fn program_nonblocking(fd: RawFd) -> bool {
    lock(&NONBLOCKING).as_ref().is_some_and(|s| s.contains(&fd))
}

/// Forgets `fd` when the program closes it.
pub(crate) fn forget(fd: RawFd) {
    if let Some(s) = lock(&NONBLOCKING).as_mut() {
        s.remove(&fd);
    }
}

/// The fd of a SOCKET, or WSAENOTSOCK.
fn fd_of(s: SOCKET) -> Result<RawFd, DWORD> {
    if s > i32::MAX as usize {
        Err(WSAENOTSOCK)
    } else {
        Ok(s as RawFd)
    }
}

/// Runs `call` until it does not fail with EINTR, waiting for `events` when it fails with EAGAIN
/// on a socket the library made non-blocking (an associated one on the epoll backend); `events`
/// 0 never waits.
fn blocking(fd: RawFd, events: i16, mut call: impl FnMut() -> isize) -> Result<isize, DWORD> {
    loop {
        let rc = call();
        if rc >= 0 {
            return Ok(rc);
        }
        match errno() {
            libc::EINTR => {}
            libc::EAGAIN if events != 0 && assoc_of(fd).is_some() && !program_nonblocking(fd) => {
                let mut p = libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, -1) };
            }
            e => return Err(errno_to_wsa(e)),
        }
    }
}

/// A Winsock call's return value and last error.
fn ret(r: Result<isize, DWORD>) -> i32 {
    match r {
        Ok(n) => n as i32,
        Err(e) => {
            set_last_error(e);
            SOCKET_ERROR
        }
    }
}

/// Runs a Winsock call on `s`'s fd: its return value, or SOCKET_ERROR with the last error set; a
/// panic never crosses into C.
fn on_socket(s: SOCKET, call: impl FnOnce(RawFd) -> Result<isize, DWORD>) -> i32 {
    guard(SOCKET_ERROR, || ret(fd_of(s).and_then(call)))
}

/// A length argument as libc takes it; negative lengths are WSAEFAULT.
fn len_arg(len: i32) -> Result<libc::socklen_t, DWORD> {
    u32::try_from(len).map_err(|_| WSAEFAULT)
}

/// Reads the caller's in/out length (an int or a socklen_t: 4 bytes).
///
/// # Safety
///
/// `p` must be NULL or point to 4 readable bytes.
unsafe fn read_len(p: *mut c_void) -> Result<libc::socklen_t, DWORD> {
    if p.is_null() {
        return Err(WSAEFAULT);
    }
    // SAFETY: the caller vouches for 4 bytes.
    let v = unsafe { (p as *const i32).read_unaligned() };
    len_arg(v)
}

/// An address argument's length: WSAEFAULT if the address is missing or shorter than its
/// family's (Windows' rule; Linux says EINVAL).
///
/// # Safety
///
/// `name` must be NULL or point to `len` readable bytes.
unsafe fn addr_len(name: *const libc::sockaddr, len: i32) -> Result<libc::socklen_t, DWORD> {
    if name.is_null() || len < std::mem::size_of::<libc::sa_family_t>() as i32 {
        return Err(WSAEFAULT);
    }
    // SAFETY: at least the family is readable (checked above).
    let family = unsafe { std::ptr::addr_of!((*name).sa_family).read_unaligned() };
    let need = match family as i32 {
        libc::AF_INET => std::mem::size_of::<libc::sockaddr_in>(),
        libc::AF_INET6 => std::mem::size_of::<libc::sockaddr_in6>(),
        _ => 0,
    };
    if (len as usize) < need {
        return Err(WSAEFAULT);
    }
    len_arg(len)
}

/// Binds a socket to a local address.
#[no_mangle]
pub unsafe extern "C" fn iocp_bind(s: SOCKET, name: *const libc::sockaddr, namelen: i32) -> i32 {
    on_socket(s, |fd| {
        // SAFETY: the caller's address of `namelen` bytes.
        let len = unsafe { addr_len(name, namelen) }?;
        // SAFETY: as above.
        blocking(fd, 0, || unsafe { libc::bind(fd, name, len) as isize })
    })
}

/// Makes a socket listen.
#[no_mangle]
pub extern "C" fn iocp_listen(s: SOCKET, backlog: i32) -> i32 {
    on_socket(s, |fd| {
        // SAFETY: listen(2) takes plain integers.
        blocking(fd, 0, || unsafe { libc::listen(fd, backlog) as isize })
    })
}

/// Connects a socket (blocking, unless the program made it non-blocking).
#[no_mangle]
pub unsafe extern "C" fn iocp_connect(s: SOCKET, name: *const libc::sockaddr, namelen: i32) -> i32 {
    on_socket(s, |fd| {
        // SAFETY: the caller's address of `namelen` bytes.
        let len = unsafe { addr_len(name, namelen) }?;
        // SAFETY: as above.
        let rc = unsafe { libc::connect(fd, name, len) };
        if rc == 0 {
            return Ok(0);
        }
        match errno() {
            // The epoll backend made it non-blocking: wait for the outcome as a blocking
            // connect would.
            libc::EINPROGRESS | libc::EINTR
                if assoc_of(fd).is_some() && !program_nonblocking(fd) =>
            {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, -1) };
                match crate::sock::int_opt(fd, libc::SO_ERROR) {
                    Some(0) => Ok(0),
                    Some(e) => Err(errno_to_wsa(e)),
                    None => Err(errno_to_wsa(errno())),
                }
            }
            // A non-blocking connect under way: Winsock says WSAEWOULDBLOCK.
            libc::EINPROGRESS => Err(WSAEWOULDBLOCK),
            e => Err(errno_to_wsa(e)),
        }
    })
}

/// Accepts a connection; the new socket is never fd 0, 1 or 2.
#[no_mangle]
pub unsafe extern "C" fn iocp_accept(
    s: SOCKET,
    addr: *mut libc::sockaddr,
    addrlen: *mut c_void,
) -> SOCKET {
    guard(INVALID_SOCKET, || {
        let r = (|| {
            let fd = fd_of(s)?;
            let mut len = if addr.is_null() {
                0
            } else {
                // SAFETY: the caller's length, 4 bytes when not NULL.
                unsafe { read_len(addrlen) }?
            };
            let lenp = if addr.is_null() {
                std::ptr::null_mut()
            } else {
                &mut len as *mut libc::socklen_t
            };
            let new = blocking(fd, libc::POLLIN, || {
                // SAFETY: `addr` has room for `len` bytes (the caller's promise).
                unsafe { libc::accept4(fd, addr, lenp, libc::SOCK_CLOEXEC) as isize }
            })?;
            if !addr.is_null() {
                // SAFETY: checked not NULL by `read_len`.
                unsafe { (addrlen as *mut i32).write_unaligned(len as i32) };
            }
            let new = lift(new as RawFd);
            if new < 0 {
                return Err(errno_to_wsa(errno()));
            }
            Ok(new as SOCKET)
        })();
        match r {
            Ok(s) => s,
            Err(e) => {
                set_last_error(e);
                INVALID_SOCKET
            }
        }
    })
}

/// `WSAAccept`'s condition function (`LPCONDITIONPROC`); only NULL is accepted.
pub type ConditionProc = unsafe extern "C" fn(
    *mut WSABUF,
    *mut WSABUF,
    *mut c_void,
    *mut c_void,
    *mut WSABUF,
    *mut WSABUF,
    *mut u32,
    usize,
) -> i32;

/// Accepts a connection as `accept` does when `lpfnCondition` is NULL (Winsock errors, never fd
/// 0-2). A condition function is refused with `WSAEOPNOTSUPP` (after the socket is checked:
/// `WSAENOTSOCK` first), and the connection stays queued for a later accept.
#[no_mangle]
pub unsafe extern "C" fn WSAAccept(
    s: SOCKET,
    addr: *mut libc::sockaddr,
    addrlen: *mut i32,
    lpfnCondition: Option<ConditionProc>,
    dwCallbackData: usize,
) -> SOCKET {
    let _ = dwCallbackData;
    if lpfnCondition.is_none() {
        // SAFETY: the caller's address and length, passed on.
        return unsafe { iocp_accept(s, addr, addrlen as *mut c_void) };
    }
    guard(INVALID_SOCKET, || {
        let e = match fd_of(s) {
            Err(e) => e,
            Ok(fd) => match crate::sock::int_opt(fd, libc::SO_TYPE) {
                Some(_) => WSAEOPNOTSUPP,
                None => WSAENOTSOCK,
            },
        };
        set_last_error(e);
        INVALID_SOCKET
    })
}

/// `getsockname` or `getpeername`.
unsafe fn name(s: SOCKET, out: *mut libc::sockaddr, outlen: *mut c_void, peer: bool) -> i32 {
    on_socket(s, |fd| {
        // SAFETY: the caller's length, 4 bytes when not NULL.
        let mut len = unsafe { read_len(outlen) }?;
        if out.is_null() {
            return Err(WSAEFAULT);
        }
        // SAFETY: `out` has room for `len` bytes (the caller's promise).
        let rc = unsafe {
            if peer {
                libc::getpeername(fd, out, &mut len)
            } else {
                libc::getsockname(fd, out, &mut len)
            }
        };
        if rc != 0 {
            return Err(errno_to_wsa(errno()));
        }
        // SAFETY: checked not NULL by `read_len`.
        unsafe { (outlen as *mut i32).write_unaligned(len as i32) };
        Ok(0)
    })
}

/// A socket's local address.
#[no_mangle]
pub unsafe extern "C" fn iocp_getsockname(
    s: SOCKET,
    out: *mut libc::sockaddr,
    outlen: *mut c_void,
) -> i32 {
    // SAFETY: the caller's pointers, passed on.
    unsafe { name(s, out, outlen, false) }
}

/// A socket's peer address.
#[no_mangle]
pub unsafe extern "C" fn iocp_getpeername(
    s: SOCKET,
    out: *mut libc::sockaddr,
    outlen: *mut c_void,
) -> i32 {
    // SAFETY: the caller's pointers, passed on.
    unsafe { name(s, out, outlen, true) }
}

/// Reads a socket option.
#[no_mangle]
pub unsafe extern "C" fn iocp_getsockopt(
    s: SOCKET,
    level: i32,
    optname: i32,
    optval: *mut c_void,
    optlen: *mut c_void,
) -> i32 {
    on_socket(s, |fd| {
        // SAFETY: the caller's length, 4 bytes when not NULL.
        let mut len = unsafe { read_len(optlen) }?;
        if optval.is_null() {
            return Err(WSAEFAULT);
        }
        // SAFETY: `optval` has room for `len` bytes (the caller's promise).
        if unsafe { libc::getsockopt(fd, level, optname, optval, &mut len) } != 0 {
            return Err(errno_to_wsa(errno()));
        }
        // SAFETY: checked not NULL by `read_len`.
        unsafe { (optlen as *mut i32).write_unaligned(len as i32) };
        Ok(0)
    })
}

/// Shuts down part or all of a connection (`SD_RECEIVE`, `SD_SEND`, `SD_BOTH` are Linux's values).
#[no_mangle]
pub extern "C" fn iocp_shutdown(s: SOCKET, how: i32) -> i32 {
    on_socket(s, |fd| {
        // SAFETY: shutdown(2) takes plain integers.
        blocking(fd, 0, || unsafe { libc::shutdown(fd, how) as isize })
    })
}

/// Sends on a connected socket (blocking; a closed peer is WSAECONNRESET, never SIGPIPE).
#[no_mangle]
pub unsafe extern "C" fn iocp_send(s: SOCKET, buf: *const c_void, len: i32, flags: i32) -> i32 {
    // SAFETY: the caller's buffer, passed on.
    unsafe { iocp_sendto(s, buf, len, flags, std::ptr::null(), 0) }
}

/// Receives on a connected socket (blocking).
#[no_mangle]
pub unsafe extern "C" fn iocp_recv(s: SOCKET, buf: *mut c_void, len: i32, flags: i32) -> i32 {
    // SAFETY: the caller's buffer, passed on.
    unsafe {
        iocp_recvfrom(
            s,
            buf,
            len,
            flags,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// Sends a datagram (or stream data when `to` is NULL).
#[no_mangle]
pub unsafe extern "C" fn iocp_sendto(
    s: SOCKET,
    buf: *const c_void,
    len: i32,
    flags: i32,
    to: *const libc::sockaddr,
    tolen: i32,
) -> i32 {
    on_socket(s, |fd| {
        let n = len_arg(len)? as usize;
        if buf.is_null() && n > 0 {
            return Err(WSAEFAULT);
        }
        let tolen = if to.is_null() {
            0
        } else {
            // SAFETY: the caller's address of `tolen` bytes.
            unsafe { addr_len(to, tolen) }?
        };
        blocking(fd, libc::POLLOUT, || {
            // SAFETY: the caller's buffer of `len` bytes and address of `tolen` bytes.
            unsafe { libc::sendto(fd, buf, n, flags | libc::MSG_NOSIGNAL, to, tolen) }
        })
        .map_err(|e| {
            if e != WSAECONNRESET || errno() != libc::EPIPE {
                return e;
            }
            // Linux says EPIPE for a socket shut down for sending and for one never
            // connected; Windows tells them apart.
            let mut st = std::mem::MaybeUninit::<libc::sockaddr_storage>::zeroed();
            let mut l = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: `st` has room for `l` bytes.
            let peer = unsafe { libc::getpeername(fd, st.as_mut_ptr().cast(), &mut l) };
            if peer == 0 {
                WSAESHUTDOWN
            } else if errno() == libc::ENOTCONN {
                WSAENOTCONN
            } else {
                e
            }
        })
    })
}

/// Receives a datagram and its sender (or stream data when `from` is NULL).
#[no_mangle]
pub unsafe extern "C" fn iocp_recvfrom(
    s: SOCKET,
    buf: *mut c_void,
    len: i32,
    flags: i32,
    from: *mut libc::sockaddr,
    fromlen: *mut c_void,
) -> i32 {
    on_socket(s, |fd| {
        let n = len_arg(len)? as usize;
        if buf.is_null() && n > 0 {
            return Err(WSAEFAULT);
        }
        let mut flen = if from.is_null() {
            0
        } else {
            // SAFETY: the caller's length, 4 bytes when not NULL.
            unsafe { read_len(fromlen) }?
        };
        let flenp = if from.is_null() {
            std::ptr::null_mut()
        } else {
            &mut flen as *mut libc::socklen_t
        };
        let got = blocking(fd, libc::POLLIN, || {
            // SAFETY: the caller's buffer of `len` bytes and address room of `flen` bytes.
            unsafe { libc::recvfrom(fd, buf, n, flags, from, flenp) }
        })?;
        if !from.is_null() {
            // SAFETY: checked not NULL by `read_len`.
            unsafe { (fromlen as *mut i32).write_unaligned(flen as i32) };
        }
        Ok(got)
    })
}

/// `FIONBIO` (non-blocking mode on or off) and `FIONREAD` (bytes ready to read), with Windows'
/// or Linux's command values.
#[no_mangle]
pub unsafe extern "C" fn ioctlsocket(
    s: SOCKET,
    cmd: libc::c_long,
    argp: *mut libc::c_ulong,
) -> i32 {
    on_socket(s, |fd| {
        if argp.is_null() {
            return Err(WSAEFAULT);
        }
        // Windows' values as a 32-bit long (negative) or zero-extended, or Linux's.
        let low = cmd as u32 as libc::c_long;
        let win = |v: libc::c_long| cmd == v || low == v as u32 as libc::c_long;
        if win(WIN_FIONBIO) || cmd == libc::FIONBIO as libc::c_long {
            // SAFETY: checked not NULL; the caller's u_long.
            let on = unsafe { argp.read_unaligned() } != 0;
            // SAFETY: F_GETFL/F_SETFL on the program's socket.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 {
                return Err(errno_to_wsa(errno()));
            }
            let flags = if on {
                flags | libc::O_NONBLOCK
            } else {
                flags & !libc::O_NONBLOCK
            };
            // SAFETY: as above.
            if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
                return Err(errno_to_wsa(errno()));
            }
            let mut set = lock(&NONBLOCKING);
            let set = set.get_or_insert_with(HashSet::new);
            if on {
                set.insert(fd);
            } else {
                set.remove(&fd);
            }
            Ok(0)
        } else if win(WIN_FIONREAD) || cmd == libc::FIONREAD as libc::c_long {
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes an int.
            if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } < 0 {
                return Err(errno_to_wsa(errno()));
            }
            // SAFETY: checked not NULL; the caller's u_long.
            unsafe { argp.write_unaligned(n as libc::c_ulong) };
            Ok(0)
        } else {
            Err(WSAEINVAL)
        }
    })
}
