//! Winsock: sockets, `WSARecv`/`WSASend` and their datagram forms, the Microsoft extensions
//! (`AcceptEx`, `ConnectEx`, `DisconnectEx`, `GetAcceptExSockaddrs`, `TransmitFile`, found through
//! `WSAIoctl`), and the few socket options Winsock adds.

use std::ffi::c_void;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use iocport::{Data, Interest, IoBuf, Packet};

use crate::core::{
    assoc_of, associate, begin_ov, check_ov, identity, lock, rebind, start, start_stage, write_ov,
    AcceptInfo, Assoc, Ctx, Extra, Kind, Outcome, RawBuf,
};
use crate::guard;
use crate::status::{errno, errno_to_wsa, nt_success, set_last_error, status_to_wsa};
use crate::types::*;

/// `WSAStartup` calls not yet matched by `WSACleanup`.
static STARTED: AtomicU32 = AtomicU32::new(0);

/// Turns a Winsock call's result into its return value and last error.
fn wsa_int(r: Result<(), DWORD>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            set_last_error(e);
            SOCKET_ERROR
        }
    }
}

/// Turns an extension function's result into its BOOL and last error.
fn wsa_bool(r: Result<(), DWORD>) -> BOOL {
    match r {
        Ok(()) => TRUE,
        Err(e) => {
            set_last_error(e);
            FALSE
        }
    }
}

/// The fd of a SOCKET value, or WSAENOTSOCK.
fn sock_fd(s: SOCKET) -> Result<RawFd, DWORD> {
    if s > i32::MAX as usize {
        return Err(WSAENOTSOCK);
    }
    Ok(s as RawFd)
}

/// The association of a socket that overlapped operations need: WSAENOTSOCK if `s` is not a
/// socket, WSAEINVAL if it is one that is not associated with a port.
fn sock_assoc(s: SOCKET) -> Result<std::sync::Arc<Assoc>, DWORD> {
    let fd = sock_fd(s)?;
    match assoc_of(fd) {
        Some(a) if a.socket => Ok(a),
        Some(_) => Err(WSAENOTSOCK),
        None => match identity(fd) {
            Some((_, kind)) if kind == libc::S_IFSOCK => Err(WSAEINVAL),
            _ => Err(WSAENOTSOCK),
        },
    }
}

/// Checks that `s` is an open socket.
fn is_socket(s: SOCKET) -> Result<RawFd, DWORD> {
    let fd = sock_fd(s)?;
    match identity(fd) {
        Some((_, kind)) if kind == libc::S_IFSOCK => Ok(fd),
        _ => Err(WSAENOTSOCK),
    }
}

/// Moves a new fd to 3 or above, so that no socket or file is ever fd 0 (a NULL HANDLE) or
/// takes the place of a standard stream.
pub(crate) fn lift(fd: RawFd) -> RawFd {
    if fd > 2 {
        return fd;
    }
    // SAFETY: F_DUPFD_CLOEXEC creates a new fd at 3 or above; `fd` is ours (just created).
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    // SAFETY: `fd` is ours and no longer needed, whether or not the dup worked.
    unsafe { libc::close(fd) };
    high
}

// ---- Start-up and errors -------------------------------------------------------------------------

/// Starts Winsock: versions 1.0 to 2.2 are accepted, as Windows does.
#[no_mangle]
pub unsafe extern "C" fn WSAStartup(wVersionRequested: u16, lpWSAData: *mut WSADATA) -> i32 {
    guard(WSASYSNOTREADY_I, || {
        let (lo, hi) = (wVersionRequested & 0xff, wVersionRequested >> 8);
        if !lpWSAData.is_null() {
            let version = if lo == 0 || lo > 2 || (lo == 2 && hi > 2) {
                0x0202
            } else if lo == 1 && hi > 1 {
                0x0101
            } else {
                wVersionRequested
            };
            // SAFETY: checked not NULL; the caller's WSADATA.
            let d = unsafe { &mut *lpWSAData };
            d.wVersion = version;
            d.wHighVersion = 0x0202;
            d.iMaxSockets = if lo == 1 { 32767 } else { 0 };
            d.iMaxUdpDg = if lo == 1 { 65467 } else { 0 };
            d.lpVendorInfo = std::ptr::null_mut();
            copy_cstr(&mut d.szDescription, "WinSock 2.0 (iocport)");
            copy_cstr(&mut d.szSystemStatus, "Running");
        }
        if lo == 0 {
            return WSAVERNOTSUPPORTED as i32;
        }
        if lpWSAData.is_null() {
            return WSAEFAULT as i32;
        }
        crate::core::ignore_sigpipe();
        STARTED.fetch_add(1, Ordering::AcqRel);
        0
    })
}

const WSASYSNOTREADY_I: i32 = 10091;

fn copy_cstr(dst: &mut [std::ffi::c_char], s: &str) {
    let n = s.len().min(dst.len() - 1);
    for (d, b) in dst.iter_mut().zip(s.bytes().take(n)) {
        *d = b as std::ffi::c_char;
    }
    dst[n] = 0;
}

/// Ends one `WSAStartup`.
#[no_mangle]
pub extern "C" fn WSACleanup() -> i32 {
    guard(SOCKET_ERROR, || {
        let r = STARTED.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        wsa_int(r.map(|_| ()).map_err(|_| WSANOTINITIALISED))
    })
}

/// The calling thread's last error (the same value as `GetLastError`).
#[no_mangle]
pub extern "C" fn WSAGetLastError() -> i32 {
    crate::status::last_error() as i32
}

/// Sets the calling thread's last error.
#[no_mangle]
pub extern "C" fn WSASetLastError(iError: i32) {
    set_last_error(iError as DWORD)
}

// ---- Sockets -------------------------------------------------------------------------------------

fn new_socket(af: i32, ty: i32, protocol: i32, info: *mut c_void) -> Result<SOCKET, DWORD> {
    if STARTED.load(Ordering::Acquire) == 0 {
        return Err(WSANOTINITIALISED);
    }
    if !info.is_null() {
        return Err(WSAEINVAL);
    }
    // SAFETY: socket(2) takes plain integers.
    let fd = unsafe { libc::socket(af, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(errno_to_wsa(errno()));
    }
    let fd = lift(fd);
    if fd < 0 {
        return Err(errno_to_wsa(errno()));
    }
    Ok(fd as SOCKET)
}

fn socket_ret(r: Result<SOCKET, DWORD>) -> SOCKET {
    match r {
        Ok(s) => s,
        Err(e) => {
            set_last_error(e);
            INVALID_SOCKET
        }
    }
}

/// Creates a socket (overlapped or not: every socket here can take overlapped operations).
#[no_mangle]
pub unsafe extern "C" fn WSASocketA(
    af: i32,
    ty: i32,
    protocol: i32,
    lpProtocolInfo: *mut c_void,
    _g: u32,
    _dwFlags: DWORD,
) -> SOCKET {
    guard(INVALID_SOCKET, || {
        socket_ret(new_socket(af, ty, protocol, lpProtocolInfo))
    })
}

/// As `WSASocketA`.
#[no_mangle]
pub unsafe extern "C" fn WSASocketW(
    af: i32,
    ty: i32,
    protocol: i32,
    lpProtocolInfo: *mut c_void,
    _g: u32,
    _dwFlags: DWORD,
) -> SOCKET {
    guard(INVALID_SOCKET, || {
        socket_ret(new_socket(af, ty, protocol, lpProtocolInfo))
    })
}

/// Winsock's `socket` (the header maps `socket` to it).
#[no_mangle]
pub extern "C" fn iocp_socket(af: i32, ty: i32, protocol: i32) -> SOCKET {
    guard(INVALID_SOCKET, || {
        socket_ret(new_socket(af, ty, protocol, std::ptr::null_mut()))
    })
}

/// Closes a socket: its pending operations end with `ERROR_CONNECTION_ABORTED` (receives and
/// sends) or `ERROR_OPERATION_ABORTED`.
#[no_mangle]
pub extern "C" fn closesocket(s: SOCKET) -> i32 {
    guard(SOCKET_ERROR, || {
        wsa_int(is_socket(s).and_then(|fd| {
            crate::port::close_fd(fd).map_err(|e| {
                if e == libc::EBADF {
                    WSAENOTSOCK
                } else {
                    errno_to_wsa(e)
                }
            })
        }))
    })
}

/// Winsock's `setsockopt` (the header maps `setsockopt` to it): `SO_UPDATE_ACCEPT_CONTEXT` and
/// `SO_UPDATE_CONNECT_CONTEXT` are accepted (Linux sockets need no update); the rest reaches libc.
#[no_mangle]
pub unsafe extern "C" fn iocp_setsockopt(
    s: SOCKET,
    level: i32,
    optname: i32,
    optval: *const c_void,
    optlen: i32,
) -> i32 {
    guard(SOCKET_ERROR, || {
        wsa_int((|| {
            let fd = is_socket(s)?;
            if level == libc::SOL_SOCKET
                && (optname == SO_UPDATE_ACCEPT_CONTEXT || optname == SO_UPDATE_CONNECT_CONTEXT)
            {
                if optname == SO_UPDATE_ACCEPT_CONTEXT {
                    if optval.is_null() || (optlen != 4 && optlen != 8) {
                        return Err(WSAEFAULT);
                    }
                    // SAFETY: checked not NULL; `optlen` says how many bytes the caller gave.
                    let listener = unsafe {
                        if optlen == 8 {
                            (optval as *const u64).read_unaligned() as usize
                        } else {
                            (optval as *const u32).read_unaligned() as usize
                        }
                    };
                    is_socket(listener)?;
                }
                return Ok(());
            }
            if optlen < 0 {
                return Err(WSAEFAULT);
            }
            // SAFETY: the caller's option buffer of `optlen` bytes, as setsockopt(2) takes it.
            let rc =
                unsafe { libc::setsockopt(fd, level, optname, optval, optlen as libc::socklen_t) };
            if rc != 0 {
                return Err(errno_to_wsa(errno()));
            }
            Ok(())
        })())
    })
}

// ---- Addresses -----------------------------------------------------------------------------------

/// `addr` as a kernel socket address.
pub(crate) fn to_raw(addr: &SocketAddr) -> (libc::sockaddr_storage, usize) {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { (&mut st as *mut _ as *mut libc::sockaddr_in).write(sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo().to_be(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { (&mut st as *mut _ as *mut libc::sockaddr_in6).write(sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (st, len)
}

/// The socket address at `ptr` (`len` bytes), if it is an IPv4 or IPv6 one.
///
/// # Safety
///
/// `ptr` must point to `len` readable bytes.
pub(crate) unsafe fn from_raw(ptr: *const libc::sockaddr, len: usize) -> Option<SocketAddr> {
    if ptr.is_null() || len < size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: at least the family is readable (checked above; the caller vouches for `len`).
    let family = unsafe { std::ptr::addr_of!((*ptr).sa_family).read_unaligned() };
    match family as i32 {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: `len` covers a sockaddr_in.
            let sin = unsafe { (ptr as *const libc::sockaddr_in).read_unaligned() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: `len` covers a sockaddr_in6.
            let sin6 = unsafe { (ptr as *const libc::sockaddr_in6).read_unaligned() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A socket address argument: WSAEFAULT if it is missing or shorter than its family's address,
/// WSAEAFNOSUPPORT if its family is not IPv4 or IPv6.
///
/// # Safety
///
/// `ptr` must point to `len` readable bytes (when not NULL).
pub(crate) unsafe fn addr_arg(ptr: *const libc::sockaddr, len: i32) -> Result<SocketAddr, DWORD> {
    if ptr.is_null() || len < size_of::<libc::sa_family_t>() as i32 {
        return Err(WSAEFAULT);
    }
    // SAFETY: the caller vouches for `len` bytes.
    match unsafe { from_raw(ptr, len as usize) } {
        Some(a) => Ok(a),
        None => {
            // SAFETY: at least the family is readable (checked above).
            let family = unsafe { std::ptr::addr_of!((*ptr).sa_family).read_unaligned() };
            Err(match family as i32 {
                libc::AF_INET | libc::AF_INET6 => WSAEFAULT,
                _ => WSAEAFNOSUPPORT,
            })
        }
    }
}

/// Writes `addr` to the caller's `(sockaddr *out, int *len)` pair: at most `*len` bytes, and the
/// full length into `*len`.
pub(crate) fn write_sockaddr(addr: &SocketAddr, out: usize, lenp: usize) {
    if out == 0 || lenp == 0 {
        return;
    }
    let (st, len) = to_raw(addr);
    // SAFETY: `lenp` and `out` are the caller's out-parameters of an operation in flight
    // (WSARecvFrom), valid until it completes; at most `*lenp` bytes are written to `out`.
    unsafe {
        let lenp = lenp as *mut i32;
        let cap = lenp.read_unaligned().max(0) as usize;
        std::ptr::copy_nonoverlapping(&st as *const _ as *const u8, out as *mut u8, len.min(cap));
        lenp.write_unaligned(len as i32);
    }
}

/// A socket's own or its peer's address.
fn sock_name(fd: RawFd, peer: bool) -> Option<SocketAddr> {
    let mut st = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `st` has room for `len` bytes; the call writes at most that.
    let rc = unsafe {
        if peer {
            libc::getpeername(fd, st.as_mut_ptr() as *mut libc::sockaddr, &mut len)
        } else {
            libc::getsockname(fd, st.as_mut_ptr() as *mut libc::sockaddr, &mut len)
        }
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: the kernel wrote `len` bytes of `st`.
    unsafe { from_raw(st.as_ptr() as *const libc::sockaddr, len as usize) }
}

/// The smallest address area `AcceptEx` takes: Windows asks for 16 bytes more than the largest
/// address (`sizeof(sockaddr_in) + 16`); an IPv6 address fits too in this layout.
const MIN_ADDR_AREA: u32 = 32;

/// Writes an address into one of `AcceptEx`'s areas, in Wine's layout: an `int` length, then the
/// address.
fn write_area(area: usize, cap: u32, addr: Option<SocketAddr>) {
    let Some(addr) = addr else {
        // Not an IP address (a Unix socket's): an empty one.
        // SAFETY: `area` is at least MIN_ADDR_AREA bytes of the caller's buffer (see below).
        unsafe { (area as *mut i32).write_unaligned(0) };
        return;
    };
    let (st, len) = to_raw(&addr);
    let n = len.min(cap as usize - size_of::<i32>());
    // SAFETY: `area` is `cap` bytes of the caller's AcceptEx buffer (cap >= MIN_ADDR_AREA, checked
    // when the call was made), valid until the operation completes, which is now.
    unsafe {
        (area as *mut i32).write_unaligned(len as i32);
        std::ptr::copy_nonoverlapping(
            &st as *const _ as *const u8,
            (area as *mut u8).add(size_of::<i32>()),
            n,
        );
    }
}

// ---- Receives and sends --------------------------------------------------------------------------

/// The caller's WSABUF array.
///
/// # Safety
///
/// `bufs` must point to `count` WSABUFs (checked not NULL here).
unsafe fn wsabufs<'a>(bufs: *const WSABUF, count: DWORD) -> Result<&'a [WSABUF], DWORD> {
    if bufs.is_null() || (bufs as usize) % std::mem::align_of::<WSABUF>() != 0 {
        return Err(WSAEFAULT);
    }
    if count == 0 {
        return Err(WSAEINVAL);
    }
    // SAFETY: the caller vouches for `count` entries.
    let v = unsafe { std::slice::from_raw_parts(bufs, count as usize) };
    if v.iter().any(|b| b.buf.is_null() && b.len > 0) {
        return Err(WSAEFAULT);
    }
    Ok(v)
}

/// The iovecs of a WSABUF array (converted: the layouts differ).
fn iovecs(bufs: &[WSABUF]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|b| libc::iovec {
            iov_base: b.buf as *mut c_void,
            iov_len: b.len as usize,
        })
        .collect()
}

/// The receive flags Winsock callers may pass: MSG_OOB, MSG_PEEK, MSG_WAITALL.
const RECV_FLAGS: i32 = libc::MSG_OOB | libc::MSG_PEEK | libc::MSG_WAITALL;
/// The send flags: MSG_OOB, MSG_DONTROUTE.
const SEND_FLAGS: i32 = libc::MSG_OOB | libc::MSG_DONTROUTE;

/// A blocking receive or send (no OVERLAPPED): `recvmsg`/`sendmsg` on the caller's buffers.
fn sync_msg(
    fd: RawFd,
    bufs: &[WSABUF],
    flags: i32,
    addr: Option<(usize, usize)>,
    to: Option<SocketAddr>,
    send: bool,
) -> Result<usize, DWORD> {
    let mut iov = iovecs(bufs);
    // SAFETY: an all-zero msghdr is valid (no name, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    let mut st = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut to_raw_buf;
    if let Some(a) = to {
        to_raw_buf = to_raw(&a);
        msg.msg_name = &mut to_raw_buf.0 as *mut _ as *mut c_void;
        msg.msg_namelen = to_raw_buf.1 as libc::socklen_t;
    } else if addr.is_some() {
        msg.msg_name = st.as_mut_ptr() as *mut c_void;
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    }
    let n = loop {
        // SAFETY: `msg` points to iovecs over the caller's buffers and to our address storage.
        let n = unsafe {
            if send {
                libc::sendmsg(fd, &msg, flags | libc::MSG_NOSIGNAL)
            } else {
                libc::recvmsg(fd, &mut msg, flags)
            }
        };
        if n >= 0 {
            break n;
        }
        match errno() {
            libc::EINTR => continue,
            // The epoll backend made the associated socket non-blocking; a blocking call waits.
            libc::EAGAIN if assoc_of(fd).is_some() && !crate::bsd::program_nonblocking(fd) => {
                let mut p = libc::pollfd {
                    fd,
                    events: if send { libc::POLLOUT } else { libc::POLLIN },
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, -1) };
            }
            e => return Err(errno_to_wsa(e)),
        }
    };
    if let Some((from, fromlen)) = addr {
        if msg.msg_namelen > 0 {
            // SAFETY: the kernel wrote `msg_namelen` bytes of `st`.
            if let Some(a) = unsafe {
                from_raw(
                    st.as_ptr() as *const libc::sockaddr,
                    msg.msg_namelen as usize,
                )
            } {
                write_sockaddr(&a, from, fromlen);
            }
        }
    }
    Ok(n as usize)
}

/// Hands a completed-at-once result to a Winsock caller: the byte count, or the error.
fn now_result(status: NTSTATUS, bytes: usize, lp_bytes: *mut DWORD) -> Result<(), DWORD> {
    if nt_success(status) {
        if !lp_bytes.is_null() {
            // SAFETY: checked not NULL; the caller's out-parameter.
            unsafe { lp_bytes.write_unaligned(bytes as DWORD) };
        }
        Ok(())
    } else {
        Err(status_to_wsa(status))
    }
}

/// Queues the packet of an operation that completed at once with nothing to transfer (a
/// zero-length send or write), unless skip-on-success or `hEvent` says not to.
pub(crate) fn complete_empty(assoc: &Assoc, ov: *mut OVERLAPPED, kind: Kind, silent: bool) {
    write_ov(ov as usize, STATUS_SUCCESS, 0);
    assoc.post_now(Ctx::new(ov, kind, silent), 0);
}

struct RecvArgs {
    s: SOCKET,
    bufs: *mut WSABUF,
    count: DWORD,
    lp_bytes: *mut DWORD,
    lp_flags: *mut DWORD,
    from: Option<(usize, usize)>,
    ov: *mut OVERLAPPED,
    routine: *mut c_void,
}

fn recv_impl(a: RecvArgs) -> Result<(), DWORD> {
    let fd = sock_fd(a.s)?;
    if !a.routine.is_null() {
        return Err(WSAEOPNOTSUPP);
    }
    // SAFETY: the caller passes `count` WSABUFs (NULL is refused inside).
    let bufs = unsafe { wsabufs(a.bufs, a.count) }?;
    if a.lp_flags.is_null() {
        return Err(WSAEFAULT);
    }
    // SAFETY: checked not NULL; the caller's in/out flags (read unaligned: C may misalign them).
    let flags = unsafe { a.lp_flags.read_unaligned() } as i32;
    if flags & !RECV_FLAGS != 0 {
        return Err(WSAEOPNOTSUPP);
    }
    if a.ov.is_null() {
        let fd = is_socket(a.s)?;
        let n = sync_msg(fd, bufs, flags, a.from, None, false)?;
        // SAFETY: checked not NULL above.
        unsafe { a.lp_flags.write_unaligned(0) };
        return now_result(STATUS_SUCCESS, n, a.lp_bytes);
    }
    if !check_ov(a.ov) {
        return Err(WSAEFAULT);
    }
    let assoc = sock_assoc(fd as SOCKET)?;
    let live: Vec<&WSABUF> = bufs.iter().filter(|b| b.len > 0).collect();
    if a.from.is_some() && flags != 0 {
        return Err(WSAEOPNOTSUPP);
    }
    if live.len() > 1 && flags != 0 {
        return Err(WSAEOPNOTSUPP);
    }
    let silent = begin_ov(a.ov);
    let outcome = if let Some((from, fromlen)) = a.from {
        let mut ctx = Ctx::new(a.ov, Kind::RecvFrom, silent);
        // A datagram lands in one buffer of ours when the caller gave several; the hook scatters
        // it into theirs.
        let (scatter, mut owned) = if live.len() > 1 {
            let total = live.iter().map(|b| b.len as usize).sum();
            let v: Vec<(usize, usize)> = live
                .iter()
                .map(|b| (b.buf as usize, b.len as usize))
                .collect();
            (v, vec![0u8; total])
        } else {
            (Vec::new(), Vec::new())
        };
        let target = match (live.first(), owned.is_empty()) {
            (Some(b), true) => Some(RawBuf::new(b.buf as *mut u8, b.len as usize)),
            (Some(_), false) => Some(RawBuf::new(owned.as_mut_ptr(), owned.len())),
            (None, _) => None,
        };
        ctx.extra = Some(Box::new(Extra::From {
            from,
            fromlen,
            scatter,
            owned,
        }));
        match target {
            Some(buf) => start(&assoc, ctx, |h, c| h.recv_from(buf, c)),
            None => start(
                &assoc,
                Ctx {
                    kind: Kind::RecvZero,
                    ..ctx
                },
                |h, c| h.poll(Interest::READABLE, c),
            ),
        }
    } else {
        match live.as_slice() {
            [] => start(&assoc, Ctx::new(a.ov, Kind::RecvZero, silent), |h, c| {
                h.poll(Interest::READABLE, c)
            }),
            [b] => {
                let buf = RawBuf::new(b.buf as *mut u8, b.len as usize);
                start(&assoc, Ctx::new(a.ov, Kind::Recv, silent), |h, c| {
                    h.recv(buf, flags, c)
                })
            }
            many => {
                let v = many
                    .iter()
                    .map(|b| RawBuf::new(b.buf as *mut u8, b.len as usize))
                    .collect();
                start(&assoc, Ctx::new(a.ov, Kind::Recv, silent), |h, c| {
                    h.readv(v, c)
                })
            }
        }
    };
    match outcome {
        Outcome::Pending => Err(WSA_IO_PENDING),
        Outcome::Now { status, bytes, ctx } => {
            if nt_success(status) {
                // SAFETY: checked not NULL above.
                unsafe { a.lp_flags.write_unaligned(0) };
                assoc.post_now(ctx, bytes);
            }
            now_result(status, bytes, a.lp_bytes)
        }
    }
}

/// Receives on a connected socket: overlapped (with `lpOverlapped`) or blocking.
#[no_mangle]
pub unsafe extern "C" fn WSARecv(
    s: SOCKET,
    lpBuffers: *mut WSABUF,
    dwBufferCount: DWORD,
    lpNumberOfBytesRecvd: *mut DWORD,
    lpFlags: *mut DWORD,
    lpOverlapped: *mut OVERLAPPED,
    lpCompletionRoutine: *mut c_void,
) -> i32 {
    guard(SOCKET_ERROR, || {
        wsa_int(recv_impl(RecvArgs {
            s,
            bufs: lpBuffers,
            count: dwBufferCount,
            lp_bytes: lpNumberOfBytesRecvd,
            lp_flags: lpFlags,
            from: None,
            ov: lpOverlapped,
            routine: lpCompletionRoutine,
        }))
    })
}

/// Receives a datagram and its sender's address.
#[no_mangle]
pub unsafe extern "C" fn WSARecvFrom(
    s: SOCKET,
    lpBuffers: *mut WSABUF,
    dwBufferCount: DWORD,
    lpNumberOfBytesRecvd: *mut DWORD,
    lpFlags: *mut DWORD,
    lpFrom: *mut libc::sockaddr,
    lpFromlen: *mut i32,
    lpOverlapped: *mut OVERLAPPED,
    lpCompletionRoutine: *mut c_void,
) -> i32 {
    guard(SOCKET_ERROR, || {
        if !lpFrom.is_null() && lpFromlen.is_null() {
            set_last_error(WSAEFAULT);
            return SOCKET_ERROR;
        }
        wsa_int(recv_impl(RecvArgs {
            s,
            bufs: lpBuffers,
            count: dwBufferCount,
            lp_bytes: lpNumberOfBytesRecvd,
            lp_flags: lpFlags,
            from: Some((lpFrom as usize, lpFromlen as usize)),
            ov: lpOverlapped,
            routine: lpCompletionRoutine,
        }))
    })
}

struct SendArgs {
    s: SOCKET,
    bufs: *mut WSABUF,
    count: DWORD,
    lp_bytes: *mut DWORD,
    flags: DWORD,
    to: Option<SocketAddr>,
    ov: *mut OVERLAPPED,
    routine: *mut c_void,
}

fn send_impl(a: SendArgs) -> Result<(), DWORD> {
    let fd = sock_fd(a.s)?;
    if !a.routine.is_null() {
        return Err(WSAEOPNOTSUPP);
    }
    // SAFETY: the caller passes `count` WSABUFs (NULL is refused inside).
    let bufs = unsafe { wsabufs(a.bufs, a.count) }?;
    let flags = a.flags as i32;
    if flags & !SEND_FLAGS != 0 {
        return Err(WSAEOPNOTSUPP);
    }
    if a.ov.is_null() {
        let fd = is_socket(a.s)?;
        let n = sync_msg(fd, bufs, flags, None, a.to, true)?;
        return now_result(STATUS_SUCCESS, n, a.lp_bytes);
    }
    if !check_ov(a.ov) {
        return Err(WSAEFAULT);
    }
    let assoc = sock_assoc(fd as SOCKET)?;
    let live: Vec<&WSABUF> = bufs.iter().filter(|b| b.len > 0).collect();
    if flags != 0 && live.len() > 1 {
        return Err(WSAEOPNOTSUPP);
    }
    let silent = begin_ov(a.ov);
    let kind = if a.to.is_some() {
        Kind::SendTo
    } else {
        Kind::Send
    };
    let outcome = match live.as_slice() {
        [] => {
            complete_empty(&assoc, a.ov, kind, silent);
            return now_result(STATUS_SUCCESS, 0, a.lp_bytes);
        }
        many if a.to.is_some() && many.len() > 1 => {
            // One datagram from several buffers: gathered into one of ours, kept until the send
            // completes.
            let mut owned = Vec::with_capacity(many.iter().map(|b| b.len as usize).sum());
            for b in many {
                // SAFETY: the caller's buffer of `len` bytes (checked not NULL by `wsabufs`).
                owned.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(b.buf as *const u8, b.len as usize)
                });
            }
            let buf = RawBuf::new(owned.as_mut_ptr(), owned.len());
            let mut ctx = Ctx::new(a.ov, kind, silent);
            ctx.extra = Some(Box::new(Extra::Owned(owned)));
            let to = a.to.expect("checked by the guard");
            start(&assoc, ctx, |h, c| h.send_to(buf, to, c))
        }
        [b] => {
            let buf = RawBuf::new(b.buf as *mut u8, b.len as usize);
            match a.to {
                Some(to) => start(&assoc, Ctx::new(a.ov, kind, silent), |h, c| {
                    h.send_to(buf, to, c)
                }),
                None => {
                    let flags = if assoc.stream {
                        flags | libc::MSG_WAITALL
                    } else {
                        flags
                    };
                    start(&assoc, Ctx::new(a.ov, kind, silent), |h, c| {
                        h.send(buf, flags, c)
                    })
                }
            }
        }
        many => {
            let v = many
                .iter()
                .map(|b| RawBuf::new(b.buf as *mut u8, b.len as usize))
                .collect();
            start(&assoc, Ctx::new(a.ov, kind, silent), |h, c| h.writev(v, c))
        }
    };
    match outcome {
        Outcome::Pending => Err(WSA_IO_PENDING),
        Outcome::Now { status, ctx, .. } if nt_success(status) && ctx.follow => {
            // Part of a stream send went at once: the rest goes on as one operation.
            let sent = ctx.done;
            let data = Data::Bufs(
                live.iter()
                    .map(|b| RawBuf::new(b.buf as *mut u8, b.len as usize))
                    .collect(),
            );
            match send_rest(&assoc, ctx, remainder(&data, sent), assoc.key) {
                None => Err(WSA_IO_PENDING),
                Some(p) if nt_success(p.value.status) => {
                    let bytes = p.bytes;
                    assoc.post_now(p.value, bytes);
                    now_result(STATUS_SUCCESS, bytes, a.lp_bytes)
                }
                Some(p) => Err(status_to_wsa(p.value.status)),
            }
        }
        Outcome::Now { status, bytes, ctx } => {
            if nt_success(status) {
                assoc.post_now(ctx, bytes);
            }
            now_result(status, bytes, a.lp_bytes)
        }
    }
}

/// Sends on a connected socket: overlapped (with `lpOverlapped`) or blocking.
#[no_mangle]
pub unsafe extern "C" fn WSASend(
    s: SOCKET,
    lpBuffers: *mut WSABUF,
    dwBufferCount: DWORD,
    lpNumberOfBytesSent: *mut DWORD,
    dwFlags: DWORD,
    lpOverlapped: *mut OVERLAPPED,
    lpCompletionRoutine: *mut c_void,
) -> i32 {
    guard(SOCKET_ERROR, || {
        wsa_int(send_impl(SendArgs {
            s,
            bufs: lpBuffers,
            count: dwBufferCount,
            lp_bytes: lpNumberOfBytesSent,
            flags: dwFlags,
            to: None,
            ov: lpOverlapped,
            routine: lpCompletionRoutine,
        }))
    })
}

/// Sends a datagram to `lpTo`.
#[no_mangle]
pub unsafe extern "C" fn WSASendTo(
    s: SOCKET,
    lpBuffers: *mut WSABUF,
    dwBufferCount: DWORD,
    lpNumberOfBytesSent: *mut DWORD,
    dwFlags: DWORD,
    lpTo: *const libc::sockaddr,
    iTolen: i32,
    lpOverlapped: *mut OVERLAPPED,
    lpCompletionRoutine: *mut c_void,
) -> i32 {
    guard(SOCKET_ERROR, || {
        // SAFETY: the caller's address of `iTolen` bytes (NULL and short lengths refused inside).
        let to = match unsafe { addr_arg(lpTo, iTolen) } {
            Ok(a) => a,
            Err(e) => {
                set_last_error(e);
                return SOCKET_ERROR;
            }
        };
        wsa_int(send_impl(SendArgs {
            s,
            bufs: lpBuffers,
            count: dwBufferCount,
            lp_bytes: lpNumberOfBytesSent,
            flags: dwFlags,
            to: Some(to),
            ov: lpOverlapped,
            routine: lpCompletionRoutine,
        }))
    })
}

/// The outcome of an overlapped socket operation, as a Winsock error.
#[no_mangle]
pub unsafe extern "C" fn WSAGetOverlappedResult(
    s: SOCKET,
    lpOverlapped: *mut OVERLAPPED,
    lpcbTransfer: *mut DWORD,
    fWait: BOOL,
    lpdwFlags: *mut DWORD,
) -> BOOL {
    guard(FALSE, || {
        wsa_bool((|| {
            is_socket(s)?;
            if lpcbTransfer.is_null() || lpdwFlags.is_null() {
                return Err(WSAEFAULT);
            }
            let fd = sock_fd(s).ok();
            let (status, bytes) = crate::port::overlapped_result(fd, lpOverlapped, fWait != 0)
                .map_err(|e| {
                    if e == ERROR_INVALID_PARAMETER {
                        WSAEFAULT
                    } else {
                        e
                    }
                })?;
            // SAFETY: checked not NULL; the caller's out-parameters.
            unsafe {
                *lpcbTransfer = bytes as DWORD;
                *lpdwFlags = 0;
            }
            if nt_success(status) {
                Ok(())
            } else {
                Err(status_to_wsa(status))
            }
        })())
    })
}

// ---- The Microsoft extensions ---------------------------------------------------------------------

/// A program socket that an operation will put a new connection or socket under (`AcceptEx`,
/// `DisconnectEx(TF_REUSE_SOCKET)`), so that closing the socket meanwhile is seen: the number may
/// name another file right after `closesocket`, and must then not be touched.
struct Ticket {
    fd: RawFd,
    no: u64,
    /// The program closed `fd`.
    closed: bool,
    /// The operation goes on from a dequeuing thread with `fd` in use: `closesocket` leaves the
    /// number open (so it cannot name another file meanwhile) and the operation closes it.
    follow: bool,
    /// The pending `AcceptEx` to cancel when `fd` is closed first: its listener and OVERLAPPED.
    accept: Option<(Weak<Assoc>, usize)>,
}

static TICKETS: Mutex<Vec<Ticket>> = Mutex::new(Vec::new());
static NEXT_TICKET: AtomicU64 = AtomicU64::new(1);

fn new_ticket(fd: RawFd, follow: bool, accept: Option<(Weak<Assoc>, usize)>) -> u64 {
    let no = NEXT_TICKET.fetch_add(1, Ordering::Relaxed);
    lock(&TICKETS).push(Ticket {
        fd,
        no,
        closed: false,
        follow,
        accept,
    });
    no
}

/// Takes ticket `no` out; returns whether the program closed its socket meanwhile.
fn take_ticket(no: u64) -> bool {
    let mut t = lock(&TICKETS);
    match t.iter().position(|e| e.no == no) {
        Some(i) => t.swap_remove(i).closed,
        None => true,
    }
}

/// Closes the program's fd `fd`: pending `AcceptEx` calls into it are cancelled (Windows fails
/// them at once), and operations that will put a socket under it see it closed. The number is
/// closed here, or, if an operation is using it right now, by that operation when it ends.
pub(crate) fn close_accepting(fd: RawFd) -> Result<(), i32> {
    let mut defer = false;
    let mut accepts = Vec::new();
    for e in lock(&TICKETS)
        .iter_mut()
        .filter(|e| e.fd == fd && !e.closed)
    {
        e.closed = true;
        defer |= e.follow;
        accepts.extend(e.accept.clone());
    }
    // Outside the lock: a cancel may drop the last reference to the listener's association.
    for (listener, ov) in accepts {
        if let Some(l) = listener.upgrade() {
            l.cancel(Some(ov), None);
            l.handle.port().poll_completions();
        }
    }
    if defer {
        return Ok(());
    }
    // SAFETY: the program gave up `fd` (closesocket/CloseHandle). A completing AcceptEx checks
    // the ticket, marked above under the lock, before it puts a connection under the number.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Closes `fd` for a program that closed it while an operation was using it.
fn close_deferred(fd: RawFd) {
    if let Some(a) = crate::core::unassociate(fd) {
        a.close();
    }
    // SAFETY: the program closed `fd` (its closesocket left the closing to this operation).
    unsafe { libc::close(fd) };
}

/// Forgets the ticket of an `AcceptEx` that did not accept.
pub(crate) fn accept_abandoned(info: &AcceptInfo) {
    take_ticket(info.ticket);
}

/// A packet of an operation that was to go on was dropped with its port: its ticket goes, and a
/// socket the program closed meanwhile is closed.
pub(crate) fn abandon_follow(ctx: &Ctx) {
    let ticket = match ctx.extra.as_deref() {
        Some(Extra::Accept(info)) => Some((info.ticket, info.accept_fd)),
        Some(Extra::Reuse { ticket, fd }) => Some((*ticket, *fd)),
        Some(Extra::Transmit(t)) => t.reuse,
        _ => None,
    };
    if let Some((no, fd)) = ticket {
        if take_ticket(no) {
            close_deferred(fd);
        }
    }
}

/// Puts an accepted connection under the program's accept socket (the analogue of Windows'
/// handle swap) and writes the two addresses into the output buffer. Runs in the completion hook
/// (the op table is locked: nothing here may drop an association).
pub(crate) fn accept_done(ctx: &mut Ctx, data: &mut Data<RawBuf>) -> NTSTATUS {
    let Some(Extra::Accept(info)) = ctx.extra.as_deref() else {
        return STATUS_UNSUCCESSFUL;
    };
    let Data::Accepted(conn, peer) = std::mem::take(data) else {
        return STATUS_UNSUCCESSFUL;
    };
    let local = sock_name(conn.as_raw_fd(), false);
    let follow = info.recv_len > 0 || crate::core::is_associated(info.accept_fd);
    {
        let mut t = lock(&TICKETS);
        let Some(i) = t.iter().position(|e| e.no == info.ticket) else {
            return STATUS_CANCELLED;
        };
        if t[i].closed {
            // The program closed its socket: the connection is dropped, as Windows aborts it.
            t.swap_remove(i);
            return STATUS_CANCELLED;
        }
        // SAFETY: `conn` is ours; `accept_fd` is the program's open socket (not closed: checked
        // under the lock its closesocket takes), which dup3 atomically makes refer to `conn`.
        if unsafe { libc::dup3(conn.as_raw_fd(), info.accept_fd, libc::O_CLOEXEC) } < 0 {
            t.swap_remove(i);
            return crate::status::errno_to_status(errno(), crate::status::Origin::Socket);
        }
        if follow {
            // The follow-up uses the number: a closesocket meanwhile leaves it to the follow-up.
            t[i].follow = true;
            t[i].accept = None;
        } else {
            t.swap_remove(i);
        }
    }
    let peer = peer
        .map(|a| *a)
        .or_else(|| sock_name(conn.as_raw_fd(), true));
    drop(conn);
    let area = info.buf + info.recv_len as usize;
    write_area(area, info.local_len, local);
    write_area(area + info.local_len as usize, info.remote_len, peer);
    ctx.follow = follow;
    STATUS_SUCCESS
}

/// Goes on with an operation whose first part completed: runs on the thread that dequeued its
/// packet. Returns the packet to hand to the program, or `None` if the operation goes on.
pub(crate) fn follow_up(packet: Packet<Ctx, RawBuf>) -> Option<Packet<Ctx, RawBuf>> {
    let key = packet.key;
    let part = packet.bytes;
    let mut ctx = packet.value;
    match ctx.kind {
        Kind::Accept => {
            let Some(Extra::Accept(info)) = ctx.extra.as_deref() else {
                return None;
            };
            let (fd, no, buf, recv_len, port, listen_key) = (
                info.accept_fd,
                info.ticket,
                info.buf,
                info.recv_len,
                info.port.clone(),
                info.listen_key,
            );
            let closed = lock(&TICKETS)
                .iter()
                .find(|e| e.no == no)
                .is_none_or(|e| e.closed);
            if closed {
                take_ticket(no);
                close_deferred(fd);
                return Some(finished(key, ctx, STATUS_CANCELLED, 0));
            }
            // An association made before the accept refers to the old socket: renew it.
            rebind(fd, None);
            if recv_len == 0 {
                if take_ticket(no) {
                    close_deferred(fd);
                }
                return Some(finished(key, ctx, STATUS_SUCCESS, 0));
            }
            let assoc = match assoc_of(fd) {
                Some(a) => a,
                None => match associate(fd, &port, listen_key, true) {
                    Ok(a) => a,
                    Err(_) => {
                        if take_ticket(no) {
                            close_deferred(fd);
                        }
                        return Some(finished(key, ctx, STATUS_INVALID_HANDLE, 0));
                    }
                },
            };
            ctx.kind = Kind::AcceptRecv;
            let rb = RawBuf::new(buf as *mut u8, recv_len as usize);
            let outcome = start(&assoc, ctx, |h, c| h.recv(rb, 0, c));
            if take_ticket(no) {
                // Closed while the receive was being started: closing aborts it.
                close_deferred(fd);
            }
            finish_now(outcome, key)
        }
        Kind::Connect => {
            let Some(Extra::Connect { data, len }) = ctx.extra.as_deref() else {
                return None;
            };
            let rb = RawBuf::new(*data as *mut u8, *len as usize);
            let (assoc, _) = ctx.op.clone()?;
            ctx.kind = Kind::ConnectSend;
            finish_now(start(&assoc, ctx, |h, c| h.send(rb, 0, c)), key)
        }
        Kind::Send => {
            // The rest of a stream send.
            let (assoc, _) = ctx.op.clone()?;
            let rest = remainder(&packet.data, part);
            send_rest(&assoc, ctx, rest, key)
        }
        Kind::Transmit => {
            let (assoc, _) = ctx.op.clone()?;
            transmit_next(&assoc, ctx, key)
        }
        Kind::Disconnect => {
            let Some(Extra::Reuse { ticket, fd }) = ctx.extra.as_deref() else {
                return None;
            };
            let (no, fd) = (*ticket, *fd);
            let expected = ctx.op.as_ref().map(|(a, _)| a.clone());
            let status = reuse_socket(fd, no, expected.as_ref());
            Some(finished(key, ctx, status, 0))
        }
        _ => {
            let status = ctx.status;
            Some(finished(key, ctx, status, part))
        }
    }
}

/// The packet of an operation that ends on the dequeuing thread: its `OVERLAPPED` written now.
fn finished(key: usize, mut ctx: Ctx, status: NTSTATUS, bytes: usize) -> Packet<Ctx, RawBuf> {
    ctx.status = status;
    let event = ctx.event.take();
    crate::core::write_ov_event(ctx.ov, status, bytes, event);
    Packet::new(key, bytes, ctx)
}

/// The part of `data`'s buffers after the first `skip` bytes.
fn remainder(data: &Data<RawBuf>, skip: usize) -> Vec<(usize, usize)> {
    let mut bufs: Vec<(usize, usize)> = match data {
        Data::Buf(b) => vec![(b.ptr(), b.len())],
        Data::Bufs(v) => v.iter().map(|b| (b.ptr(), b.len())).collect(),
        _ => Vec::new(),
    };
    let mut skip = skip;
    bufs.retain_mut(|(p, l)| {
        let cut = skip.min(*l);
        skip -= cut;
        *p += cut;
        *l -= cut;
        *l > 0
    });
    bufs
}

/// Sends `rest` as the next part of a stream send: `None` if it went pending, else the packet
/// for the program (the whole send done, or failed).
pub(crate) fn send_rest(
    assoc: &Arc<Assoc>,
    mut ctx: Ctx,
    mut rest: Vec<(usize, usize)>,
    key: usize,
) -> Option<Packet<Ctx, RawBuf>> {
    loop {
        if rest.is_empty() {
            let done = ctx.done;
            return Some(finished(key, ctx, STATUS_SUCCESS, done));
        }
        let before = ctx.done;
        ctx.follow = false;
        let outcome = match rest.as_slice() {
            [(p, l)] => {
                let rb = RawBuf::new(*p as *mut u8, *l);
                start(assoc, ctx, |h, c| h.send(rb, libc::MSG_WAITALL, c))
            }
            many => {
                let v = many
                    .iter()
                    .map(|(p, l)| RawBuf::new(*p as *mut u8, *l))
                    .collect();
                start(assoc, ctx, |h, c| h.writev(v, c))
            }
        };
        match outcome {
            Outcome::Pending => return None,
            // Failed, or all sent: `finish` wrote the OVERLAPPED.
            Outcome::Now { bytes, ctx, .. } if !ctx.follow => {
                return Some(Packet::new(key, bytes, ctx));
            }
            // Part of it sent at once: on with the rest.
            Outcome::Now { ctx: c, .. } => {
                ctx = c;
                let sent = ctx.done - before;
                let data = Data::Bufs(
                    rest.iter()
                        .map(|(p, l)| RawBuf::new(*p as *mut u8, *l))
                        .collect(),
                );
                rest = remainder(&data, sent);
            }
        }
    }
}

/// The packet for a follow-up operation that did not go pending.
fn finish_now(outcome: Outcome, key: usize) -> Option<Packet<Ctx, RawBuf>> {
    match outcome {
        Outcome::Pending => None,
        Outcome::Now { bytes, ctx, .. } => Some(Packet::new(key, bytes, ctx)),
    }
}

/// An int socket option at `SOL_SOCKET`.
pub(crate) fn int_opt(fd: RawFd, name: i32) -> Option<i32> {
    let mut v: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: `v` has room for an int.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            &mut v as *mut i32 as *mut c_void,
            &mut len,
        )
    };
    (rc == 0).then_some(v)
}

/// `TF_REUSE_SOCKET`: puts a new, unconnected socket of the same kind under the program's `fd`,
/// unless the program closed it meanwhile (ticket `no`).
fn reuse_socket(fd: RawFd, no: u64, expected: Option<&Arc<Assoc>>) -> NTSTATUS {
    let opt = |name| int_opt(fd, name);
    let status = 'reuse: {
        let (Some(domain), Some(ty), Some(proto)) = (
            opt(libc::SO_DOMAIN),
            opt(libc::SO_TYPE),
            opt(libc::SO_PROTOCOL),
        ) else {
            break 'reuse crate::status::errno_to_status(errno(), crate::status::Origin::Socket);
        };
        // SAFETY: socket(2) takes plain integers.
        let new = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
        if new < 0 {
            break 'reuse crate::status::errno_to_status(errno(), crate::status::Origin::Socket);
        }
        // SAFETY: `fd` is the program's socket, kept open by the ticket until this ends (a
        // closesocket meanwhile leaves the closing to us); dup3 makes it refer to `new`.
        let rc = unsafe { libc::dup3(new, fd, libc::O_CLOEXEC) };
        // SAFETY: `new` is ours and no longer needed.
        unsafe { libc::close(new) };
        if rc < 0 {
            break 'reuse crate::status::errno_to_status(errno(), crate::status::Origin::Socket);
        }
        rebind(fd, expected);
        STATUS_SUCCESS
    };
    if no != 0 && take_ticket(no) {
        close_deferred(fd);
        return STATUS_CANCELLED;
    }
    status
}

#[allow(clippy::too_many_arguments)]
fn accept_ex(
    listen: SOCKET,
    accept: SOCKET,
    buf: *mut c_void,
    recv_len: DWORD,
    local_len: DWORD,
    remote_len: DWORD,
    lp_bytes: *mut DWORD,
    ov: *mut OVERLAPPED,
) -> Result<(), DWORD> {
    if !check_ov(ov) {
        return Err(WSA_INVALID_PARAMETER);
    }
    let silent = begin_ov(ov);
    if buf.is_null() {
        return Err(WSAEINVAL);
    }
    if local_len < MIN_ADDR_AREA || remote_len < MIN_ADDR_AREA {
        return Err(WSAEFAULT);
    }
    let assoc = sock_assoc(listen)?;
    if int_opt(assoc.fd, libc::SO_ACCEPTCONN) != Some(1) {
        // Windows: the listening socket must be listening.
        return Err(WSAEINVAL);
    }
    let accept_fd = is_socket(accept)?;
    if accept_fd == assoc.fd || sock_name(accept_fd, false).is_some_and(|a| a.port() != 0) {
        // Windows: the accept socket must be neither bound nor connected.
        return Err(WSAEINVAL);
    }
    if lock(&TICKETS)
        .iter()
        .any(|t| t.fd == accept_fd && !t.closed)
    {
        // An AcceptEx into this socket is pending already.
        return Err(WSAEINVAL);
    }
    let ticket = new_ticket(
        accept_fd,
        false,
        Some((Arc::downgrade(&assoc), ov as usize)),
    );
    let info = AcceptInfo {
        accept_fd,
        ticket,
        buf: buf as usize,
        recv_len,
        local_len,
        remote_len,
        listen_key: assoc.key,
        port: assoc.handle.port().clone(),
    };
    let mut ctx = Ctx::new(ov, Kind::Accept, silent);
    ctx.extra = Some(Box::new(Extra::Accept(info)));
    match start(&assoc, ctx, |h, c| h.accept(c)) {
        Outcome::Pending => Err(ERROR_IO_PENDING),
        Outcome::Now { status, ctx, .. } => {
            if let Some(Extra::Accept(info)) = ctx.extra.as_deref() {
                accept_abandoned(info);
            }
            now_result(status, 0, lp_bytes)
        }
    }
}

/// Accepts a connection into the already-created socket `sAcceptSocket`, writing both addresses
/// (and, with `dwReceiveDataLength` > 0, the connection's first bytes) into `lpOutputBuffer`.
#[no_mangle]
pub unsafe extern "C" fn AcceptEx(
    sListenSocket: SOCKET,
    sAcceptSocket: SOCKET,
    lpOutputBuffer: *mut c_void,
    dwReceiveDataLength: DWORD,
    dwLocalAddressLength: DWORD,
    dwRemoteAddressLength: DWORD,
    lpdwBytesReceived: *mut DWORD,
    lpOverlapped: *mut OVERLAPPED,
) -> BOOL {
    guard(FALSE, || {
        wsa_bool(accept_ex(
            sListenSocket,
            sAcceptSocket,
            lpOutputBuffer,
            dwReceiveDataLength,
            dwLocalAddressLength,
            dwRemoteAddressLength,
            lpdwBytesReceived,
            lpOverlapped,
        ))
    })
}

/// Finds the two addresses in an `AcceptEx` output buffer.
#[no_mangle]
pub unsafe extern "C" fn GetAcceptExSockaddrs(
    lpOutputBuffer: *mut c_void,
    dwReceiveDataLength: DWORD,
    dwLocalAddressLength: DWORD,
    _dwRemoteAddressLength: DWORD,
    LocalSockaddr: *mut *mut libc::sockaddr,
    LocalSockaddrLength: *mut i32,
    RemoteSockaddr: *mut *mut libc::sockaddr,
    RemoteSockaddrLength: *mut i32,
) {
    guard((), || {
        if lpOutputBuffer.is_null()
            || LocalSockaddr.is_null()
            || LocalSockaddrLength.is_null()
            || RemoteSockaddr.is_null()
            || RemoteSockaddrLength.is_null()
        {
            return;
        }
        let local = lpOutputBuffer as usize + dwReceiveDataLength as usize;
        let remote = local + dwLocalAddressLength as usize;
        // SAFETY: the caller's AcceptEx buffer, laid out as AcceptEx wrote it (an int length, then
        // the address, in each area); the out-parameters were checked not NULL.
        unsafe {
            *LocalSockaddrLength = (local as *const i32).read_unaligned();
            *LocalSockaddr = (local + size_of::<i32>()) as *mut libc::sockaddr;
            *RemoteSockaddrLength = (remote as *const i32).read_unaligned();
            *RemoteSockaddr = (remote + size_of::<i32>()) as *mut libc::sockaddr;
        }
    })
}

fn connect_ex(
    s: SOCKET,
    name: *const libc::sockaddr,
    namelen: i32,
    data: *mut c_void,
    len: DWORD,
    lp_sent: *mut DWORD,
    ov: *mut OVERLAPPED,
) -> Result<(), DWORD> {
    if !check_ov(ov) {
        return Err(WSA_INVALID_PARAMETER);
    }
    // SAFETY: the caller's address of `namelen` bytes (NULL and short lengths refused inside).
    let addr = unsafe { addr_arg(name, namelen) }?;
    if data.is_null() && len > 0 {
        return Err(WSAEFAULT);
    }
    let assoc = sock_assoc(s)?;
    if sock_name(assoc.fd, true).is_some() {
        return Err(WSAEISCONN);
    }
    // Windows: the socket must be bound first.
    match sock_name(assoc.fd, false) {
        Some(a) if a.port() != 0 => {}
        _ => return Err(WSAEINVAL),
    }
    let silent = begin_ov(ov);
    let mut ctx = Ctx::new(ov, Kind::Connect, silent);
    let len = if data.is_null() { 0 } else { len };
    ctx.extra = Some(Box::new(Extra::Connect {
        data: data as usize,
        len,
    }));
    match start(&assoc, ctx, |h, c| h.connect(addr, c)) {
        Outcome::Pending => Err(ERROR_IO_PENDING),
        Outcome::Now { status, .. } => now_result(status, 0, lp_sent),
    }
}

/// Connects a bound socket, then sends `lpSendBuffer` if given.
#[no_mangle]
pub unsafe extern "C" fn ConnectEx(
    s: SOCKET,
    name: *const libc::sockaddr,
    namelen: i32,
    lpSendBuffer: *mut c_void,
    dwSendDataLength: DWORD,
    lpdwBytesSent: *mut DWORD,
    lpOverlapped: *mut OVERLAPPED,
) -> BOOL {
    guard(FALSE, || {
        wsa_bool(connect_ex(
            s,
            name,
            namelen,
            lpSendBuffer,
            dwSendDataLength,
            lpdwBytesSent,
            lpOverlapped,
        ))
    })
}

fn disconnect_ex(
    s: SOCKET,
    ov: *mut OVERLAPPED,
    flags: DWORD,
    reserved: DWORD,
) -> Result<(), DWORD> {
    if reserved != 0 || flags & !(TF_REUSE_SOCKET) != 0 {
        return Err(WSAEINVAL);
    }
    let reuse = flags & TF_REUSE_SOCKET != 0;
    if ov.is_null() {
        let fd = is_socket(s)?;
        // SAFETY: shutdown(2) on the program's socket.
        if unsafe { libc::shutdown(fd, libc::SHUT_RDWR) } != 0 {
            return Err(errno_to_wsa(errno()));
        }
        if reuse {
            let st = reuse_socket(fd, 0, assoc_of(fd).as_ref());
            if !nt_success(st) {
                return Err(status_to_wsa(st));
            }
        }
        return Ok(());
    }
    if !check_ov(ov) {
        return Err(WSAEFAULT);
    }
    let assoc = sock_assoc(s)?;
    if sock_name(assoc.fd, true).is_none() {
        return Err(WSAENOTCONN);
    }
    let silent = begin_ov(ov);
    let mut ctx = Ctx::new(ov, Kind::Disconnect, silent);
    if reuse {
        let fd = assoc.fd;
        ctx.extra = Some(Box::new(Extra::Reuse {
            ticket: new_ticket(fd, true, None),
            fd,
        }));
    }
    match start(&assoc, ctx, |h, c| h.shutdown(Shutdown::Both, c)) {
        Outcome::Pending => Err(ERROR_IO_PENDING),
        Outcome::Now { status, .. } => now_result(status, 0, std::ptr::null_mut()),
    }
}

/// Closes a connection; with `TF_REUSE_SOCKET` the socket can then take `AcceptEx` or
/// `ConnectEx` again.
#[no_mangle]
pub unsafe extern "C" fn DisconnectEx(
    s: SOCKET,
    lpOverlapped: *mut OVERLAPPED,
    dwFlags: DWORD,
    dwReserved: DWORD,
) -> BOOL {
    guard(FALSE, || {
        wsa_bool(disconnect_ex(s, lpOverlapped, dwFlags, dwReserved))
    })
}

// ---- TransmitFile ----------------------------------------------------------------------------------

/// The most bytes one `TransmitFile` sends from the file (Windows' limit, and `iocport`'s).
const MAX_TRANSMIT: u64 = 2_147_483_646;

/// The flags `TransmitFile` takes; the thread choices and `TF_WRITE_BEHIND` are accepted and
/// change nothing here.
const TF_FLAGS: DWORD = TF_DISCONNECT
    | TF_REUSE_SOCKET
    | TF_WRITE_BEHIND
    | TF_USE_DEFAULT_WORKER
    | TF_USE_SYSTEM_THREAD
    | TF_USE_KERNEL_APC;

/// Which part of a `TransmitFile` is in flight.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Stage {
    Head,
    File,
    Tail,
    Shutdown,
}

/// An overlapped `TransmitFile`: what is left to send, and what to do after. It runs as one
/// operation of stages (the head buffer, the file, the tail buffer, the shutdown of
/// `TF_DISCONNECT`, the new socket of `TF_REUSE_SOCKET`), each started from the thread that
/// dequeues the previous one's packet, as `AcceptEx` with data does; the program sees one packet,
/// whose byte count is every byte sent.
pub(crate) struct Transmit {
    /// The rest of the head buffer (address, length).
    head: (usize, usize),
    /// The file, duplicated: it stays open whatever the program closes meanwhile.
    file: Option<Arc<OwnedFd>>,
    /// Where the rest of the file starts.
    offset: u64,
    /// File bytes still to send (0 once the file ended).
    left: u64,
    /// The rest of the tail buffer.
    tail: (usize, usize),
    /// `TF_DISCONNECT`, not done yet.
    disconnect: bool,
    /// `TF_REUSE_SOCKET`: its ticket and the program's socket, until the new socket is in place.
    pub(crate) reuse: Option<(u64, RawFd)>,
    /// The stage in flight, and how many bytes it was asked to send.
    stage: Stage,
    asked: usize,
}

impl Transmit {
    /// Whether a stage is left to start.
    fn more(&self) -> bool {
        self.head.1 > 0 || self.left > 0 || self.tail.1 > 0 || self.disconnect
    }
}

/// Counts a completed stage of a `TransmitFile` (in the completion hook): returns the packet's
/// byte count (every byte sent so far), and sets `ctx.follow` when the operation goes on (a stage
/// left, or a `TF_REUSE_SOCKET` ticket to settle on the dequeuing thread).
pub(crate) fn transmit_part(ctx: &mut Ctx, ok: bool, bytes: usize) -> usize {
    let Some(Extra::Transmit(t)) = ctx.extra.as_deref_mut() else {
        return bytes;
    };
    // A failed stage still reports what it sent (a transmission cut short by a reset).
    ctx.done += bytes;
    if !ok {
        ctx.follow = t.reuse.is_some();
        return ctx.done;
    }
    match t.stage {
        Stage::Head => {
            let n = bytes.min(t.head.1);
            t.head = (t.head.0 + n, t.head.1 - n);
        }
        Stage::File => {
            t.offset += bytes as u64;
            // Fewer bytes than asked: the file ended.
            t.left = if bytes < t.asked {
                0
            } else {
                t.left.saturating_sub(bytes as u64)
            };
        }
        Stage::Tail => {
            let n = bytes.min(t.tail.1);
            t.tail = (t.tail.0 + n, t.tail.1 - n);
        }
        Stage::Shutdown => t.disconnect = false,
    }
    ctx.follow = t.more() || t.reuse.is_some();
    ctx.done
}

/// Settles a `TF_REUSE_SOCKET` ticket of a transmission that ends without a new socket: a socket
/// the program closed meanwhile is closed now.
fn transmit_drop_ticket(ctx: &mut Ctx) {
    if let Some(Extra::Transmit(t)) = ctx.extra.as_deref_mut() {
        if let Some((no, fd)) = t.reuse.take() {
            if take_ticket(no) {
                close_deferred(fd);
            }
        }
    }
}

/// Starts the next stage of a `TransmitFile` (or ends it): `None` if one went pending, else the
/// packet for the program (done, or failed), whose byte count is every byte sent.
///
/// After the first stage the operation's in-flight record stays between stages (`Assoc::pause`,
/// in the completion hook): a `CancelIoEx` or `closesocket` that comes while no stage is in the
/// kernel finds it, and the next stage does not start; the operation ends cancelled (aborted, for
/// a close), as on Windows, with the bytes sent so far.
fn transmit_next(assoc: &Arc<Assoc>, mut ctx: Ctx, key: usize) -> Option<Packet<Ctx, RawBuf>> {
    /// Forgets the record a previous stage left, if any.
    fn forget(ctx: &Ctx) {
        if let Some((a, seq)) = &ctx.op {
            a.forget(*seq);
        }
    }
    loop {
        ctx.follow = false;
        let status = ctx.status;
        let done = ctx.done;
        if !nt_success(status) {
            // A stage failed (its packet came here only to settle the ticket).
            forget(&ctx);
            transmit_drop_ticket(&mut ctx);
            return Some(finished(key, ctx, status, done));
        }
        // Past the first stage: the record goes on under a new number, unless a cancel (or a
        // close) came since the last stage started.
        let resumed = match ctx.op.as_mut() {
            None => None,
            Some((_, seq)) => match assoc.resume(*seq) {
                Some(new) => {
                    *seq = new;
                    Some(new)
                }
                None => {
                    forget(&ctx);
                    transmit_drop_ticket(&mut ctx);
                    let status = if assoc.closing.load(Ordering::Relaxed) {
                        STATUS_CONNECTION_ABORTED
                    } else {
                        STATUS_CANCELLED
                    };
                    return Some(finished(key, ctx, status, done));
                }
            },
        };
        macro_rules! stage {
            ($f:expr) => {
                match resumed {
                    Some(seq) => start_stage(assoc, ctx, seq, $f),
                    None => start(assoc, ctx, $f),
                }
            };
        }
        let Some(Extra::Transmit(t)) = ctx.extra.as_deref_mut() else {
            forget(&ctx);
            return Some(finished(key, ctx, STATUS_UNSUCCESSFUL, done));
        };
        let outcome = if t.head.1 > 0 {
            t.stage = Stage::Head;
            t.asked = t.head.1;
            let rb = RawBuf::new(t.head.0 as *mut u8, t.head.1);
            stage!(|h, c| h.send(rb, libc::MSG_WAITALL, c))
        } else if let (true, Some(file)) = (t.left > 0, t.file.clone()) {
            let len = t.left.min(MAX_TRANSMIT) as u32;
            t.stage = Stage::File;
            t.asked = len as usize;
            let off = t.offset;
            stage!(|h, c| h.transmit_file(file, off, len, c))
        } else if t.tail.1 > 0 {
            t.stage = Stage::Tail;
            t.asked = t.tail.1;
            let rb = RawBuf::new(t.tail.0 as *mut u8, t.tail.1);
            stage!(|h, c| h.send(rb, libc::MSG_WAITALL, c))
        } else if t.disconnect {
            t.stage = Stage::Shutdown;
            t.asked = 0;
            stage!(|h, c| h.shutdown(Shutdown::Both, c))
        } else if let Some((no, fd)) = t.reuse.take() {
            forget(&ctx);
            let status = reuse_socket(fd, no, Some(assoc));
            return Some(finished(key, ctx, status, done));
        } else {
            forget(&ctx);
            return Some(finished(key, ctx, STATUS_SUCCESS, done));
        };
        match outcome {
            Outcome::Pending => return None,
            // Completed at once, and more to do (or a ticket to settle).
            Outcome::Now { ctx: c, .. } if c.follow => ctx = c,
            // All done, or failed (at once, or it could not start): the OVERLAPPED is written,
            // with every byte sent, the earlier stages' too.
            Outcome::Now { ctx: mut c, .. } => {
                transmit_drop_ticket(&mut c);
                let bytes = c.done;
                return Some(Packet::new(key, bytes, c));
            }
        }
    }
}

/// What `hFile` names: `None` for NULL; the fd of an open regular file or block device; else
/// the error (`WSAENOTSOCK` for a handle that is not open, as Wine's `NtStatusToWSAError` makes
/// of `STATUS_INVALID_HANDLE`; `WSAEINVAL` for one that is not a file: a socket, pipe, directory,
/// port or event).
fn transmit_source(file: HANDLE) -> Result<Option<RawFd>, DWORD> {
    if file.is_null() {
        return Ok(None);
    }
    let Some(fd) = crate::port::handle_fd(file) else {
        return Err(if crate::handles::get(file).is_some() {
            WSAEINVAL
        } else {
            status_to_wsa(STATUS_INVALID_HANDLE)
        });
    };
    match identity(fd) {
        Some((_, kind)) if kind == libc::S_IFREG || kind == libc::S_IFBLK => Ok(Some(fd)),
        Some(_) => Err(WSAEINVAL),
        None => Err(status_to_wsa(STATUS_INVALID_HANDLE)),
    }
}

/// The size of the file behind `fd` (a block device's too).
fn file_size(fd: RawFd) -> Result<u64, DWORD> {
    // SAFETY: an all-zero stat is a valid value; fstat writes it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes; fstat only reads the fd table.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(errno_to_wsa(errno()));
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFBLK {
        let mut size: u64 = 0;
        // BLKGETSIZE64 = _IOR(0x12, 114, size_t).
        const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
        // SAFETY: the ioctl writes one u64 into `size`.
        if unsafe { libc::ioctl(fd, BLKGETSIZE64 as _, &mut size as *mut u64) } != 0 {
            return Err(errno_to_wsa(errno()));
        }
        return Ok(size);
    }
    Ok(st.st_size.max(0) as u64)
}

/// How many file bytes a transmission from `offset` sends: `count`, or with 0 the rest of the
/// file (none past its end); over `MAX_TRANSMIT` is `WSAEINVAL`, as on Windows.
fn transmit_len(fd: RawFd, offset: u64, count: DWORD) -> Result<u64, DWORD> {
    let n = if count == 0 {
        file_size(fd)?.saturating_sub(offset)
    } else {
        u64::from(count)
    };
    if n > MAX_TRANSMIT {
        return Err(WSAEINVAL);
    }
    Ok(n)
}

/// Waits until a blocking socket call can go on after EAGAIN: the epoll backend made the
/// associated socket non-blocking, and a blocking call waits as it would have; a socket the
/// program made non-blocking gets `WSAEWOULDBLOCK`.
fn wait_writable(fd: RawFd) -> Result<(), DWORD> {
    if assoc_of(fd).is_none() || crate::bsd::program_nonblocking(fd) {
        return Err(WSAEWOULDBLOCK);
    }
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, -1) };
    Ok(())
}

/// Sends all of `len` bytes at `ptr`, blocking.
fn send_all_blocking(fd: RawFd, ptr: usize, len: usize) -> Result<(), DWORD> {
    let mut sent = 0;
    while sent < len {
        // SAFETY: the caller's buffer of `len` bytes (checked not NULL).
        let n = unsafe {
            libc::send(
                fd,
                (ptr + sent) as *const c_void,
                len - sent,
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            sent += n as usize;
            continue;
        }
        match errno() {
            libc::EINTR => {}
            libc::EAGAIN => wait_writable(fd)?,
            e => return Err(errno_to_wsa(e)),
        }
    }
    Ok(())
}

/// `TransmitFile` without an `OVERLAPPED`: blocking, from the file's current position, which moves
/// past the bytes sent (Wine reads the file with read(2) here, which moves it too).
fn transmit_sync(
    fd: RawFd,
    file: Option<RawFd>,
    count: DWORD,
    head: (usize, usize),
    tail: (usize, usize),
    flags: DWORD,
) -> Result<(), DWORD> {
    send_all_blocking(fd, head.0, head.1)?;
    if let Some(ffd) = file {
        // SAFETY: lseek(2) on the program's open file; SEEK_CUR with 0 only reads the position.
        let start = unsafe { libc::lseek(ffd, 0, libc::SEEK_CUR) };
        if start < 0 {
            return Err(errno_to_wsa(errno()));
        }
        let mut left = transmit_len(ffd, start as u64, count)?;
        let mut off: libc::off_t = start;
        let result = loop {
            if left == 0 {
                break Ok(());
            }
            // SAFETY: sendfile(2) between the program's socket and file; `off` is ours.
            let n = unsafe { libc::sendfile(fd, ffd, &mut off, left as usize) };
            if n > 0 {
                left -= n as u64;
                continue;
            }
            if n == 0 {
                // The file ended.
                break Ok(());
            }
            match errno() {
                libc::EINTR => {}
                libc::EAGAIN => {
                    if let Err(e) = wait_writable(fd) {
                        break Err(e);
                    }
                }
                e => break Err(errno_to_wsa(e)),
            }
        };
        // SAFETY: as above: the position moves past what was sent.
        unsafe { libc::lseek(ffd, off, libc::SEEK_SET) };
        result?;
    }
    send_all_blocking(fd, tail.0, tail.1)?;
    if flags & TF_DISCONNECT != 0 {
        // SAFETY: shutdown(2) on the program's socket.
        if unsafe { libc::shutdown(fd, libc::SHUT_RDWR) } != 0 {
            return Err(errno_to_wsa(errno()));
        }
        if flags & TF_REUSE_SOCKET != 0 {
            let st = reuse_socket(fd, 0, assoc_of(fd).as_ref());
            if !nt_success(st) {
                return Err(status_to_wsa(st));
            }
        }
    }
    Ok(())
}

fn transmit_file(
    s: SOCKET,
    file: HANDLE,
    count: DWORD,
    ov: *mut OVERLAPPED,
    bufs: *mut TRANSMIT_FILE_BUFFERS,
    flags: DWORD,
) -> Result<(), DWORD> {
    let fd = is_socket(s)?;
    if flags & !TF_FLAGS != 0 || (flags & TF_REUSE_SOCKET != 0 && flags & TF_DISCONNECT == 0) {
        // Windows: TF_REUSE_SOCKET is valid only with TF_DISCONNECT.
        return Err(WSAEINVAL);
    }
    if u64::from(count) > MAX_TRANSMIT {
        return Err(WSAEINVAL);
    }
    let (head, tail) = if bufs.is_null() {
        ((0, 0), (0, 0))
    } else {
        // SAFETY: checked not NULL; the caller's TRANSMIT_FILE_BUFFERS (read unaligned).
        let b = unsafe { bufs.read_unaligned() };
        if (b.Head.is_null() && b.HeadLength > 0) || (b.Tail.is_null() && b.TailLength > 0) {
            return Err(WSAEFAULT);
        }
        (
            (b.Head as usize, b.HeadLength as usize),
            (b.Tail as usize, b.TailLength as usize),
        )
    };
    if sock_name(fd, true).is_none() {
        return Err(WSAENOTCONN);
    }
    match int_opt(fd, libc::SO_TYPE) {
        Some(libc::SOCK_STREAM) | Some(libc::SOCK_SEQPACKET) => {}
        // Windows: a connection-oriented socket only.
        _ => return Err(WSAEOPNOTSUPP),
    }
    let source = transmit_source(file)?;
    if ov.is_null() {
        return transmit_sync(fd, source, count, head, tail, flags);
    }
    if !check_ov(ov) {
        return Err(WSAEFAULT);
    }
    let assoc = sock_assoc(s)?;
    // SAFETY: `ov` is valid and aligned (`check_ov`); the offsets are the caller's input.
    let offset = unsafe { u64::from((*ov).Offset) | u64::from((*ov).OffsetHigh) << 32 };
    let (file, left) = match source {
        Some(ffd) => {
            let left = transmit_len(ffd, offset, count)?;
            // SAFETY: F_DUPFD_CLOEXEC creates a new fd; `ffd` is the program's open file.
            let dup = unsafe { libc::fcntl(ffd, libc::F_DUPFD_CLOEXEC, 3) };
            if dup < 0 {
                return Err(errno_to_wsa(errno()));
            }
            // SAFETY: `dup` is a new fd that nothing else owns.
            (Some(Arc::new(unsafe { OwnedFd::from_raw_fd(dup) })), left)
        }
        None => (None, 0),
    };
    let silent = begin_ov(ov);
    let disconnect = flags & TF_DISCONNECT != 0;
    if head.1 == 0 && left == 0 && tail.1 == 0 && !disconnect {
        // Nothing to send (an empty file, or an offset past its end): done at once.
        complete_empty(&assoc, ov, Kind::Transmit, silent);
        return Ok(());
    }
    let reuse =
        (flags & TF_REUSE_SOCKET != 0).then(|| (new_ticket(assoc.fd, true, None), assoc.fd));
    let mut ctx = Ctx::new(ov, Kind::Transmit, silent);
    ctx.extra = Some(Box::new(Extra::Transmit(Transmit {
        head,
        file,
        offset,
        left,
        tail,
        disconnect,
        reuse,
        stage: Stage::Head,
        asked: 0,
    })));
    match transmit_next(&assoc, ctx, assoc.key) {
        None => Err(WSA_IO_PENDING),
        Some(p) if nt_success(p.value.status) => {
            let bytes = p.bytes;
            assoc.post_now(p.value, bytes);
            Ok(())
        }
        Some(p) => Err(status_to_wsa(p.value.status)),
    }
}

/// Sends a file's bytes (from `lpOverlapped`'s offset, or without one, blocking, from the file's
/// position), with `lpTransmitBuffers`' head before them and tail after, on a connected socket;
/// then, with `TF_DISCONNECT`, shuts the connection down, and with `TF_REUSE_SOCKET` makes the
/// socket ready for `AcceptEx` or `ConnectEx` again. One packet, whose byte count is every byte
/// sent. See docs/porting.md.
#[no_mangle]
pub unsafe extern "C" fn TransmitFile(
    hSocket: SOCKET,
    hFile: HANDLE,
    nNumberOfBytesToWrite: DWORD,
    _nNumberOfBytesPerSend: DWORD,
    lpOverlapped: *mut OVERLAPPED,
    lpTransmitBuffers: *mut TRANSMIT_FILE_BUFFERS,
    dwReserved: DWORD,
) -> BOOL {
    guard(FALSE, || {
        wsa_bool(transmit_file(
            hSocket,
            hFile,
            nNumberOfBytesToWrite,
            lpOverlapped,
            lpTransmitBuffers,
            dwReserved,
        ))
    })
}

/// `SIO_GET_EXTENSION_FUNCTION_POINTER` with the GUIDs of `AcceptEx`, `ConnectEx`,
/// `DisconnectEx`, `GetAcceptExSockaddrs` and `TransmitFile`; other codes fail with `WSAEINVAL`.
#[no_mangle]
pub unsafe extern "C" fn WSAIoctl(
    s: SOCKET,
    dwIoControlCode: DWORD,
    lpvInBuffer: *mut c_void,
    cbInBuffer: DWORD,
    lpvOutBuffer: *mut c_void,
    cbOutBuffer: DWORD,
    lpcbBytesReturned: *mut DWORD,
    _lpOverlapped: *mut OVERLAPPED,
    lpCompletionRoutine: *mut c_void,
) -> i32 {
    guard(SOCKET_ERROR, || {
        wsa_int((|| {
            is_socket(s)?;
            if !lpCompletionRoutine.is_null() {
                return Err(WSAEOPNOTSUPP);
            }
            if dwIoControlCode != SIO_GET_EXTENSION_FUNCTION_POINTER {
                return Err(WSAEINVAL);
            }
            if lpvInBuffer.is_null() || (cbInBuffer as usize) < size_of::<GUID>() {
                return Err(WSAEFAULT);
            }
            if lpvOutBuffer.is_null() || (cbOutBuffer as usize) < size_of::<usize>() {
                return Err(WSAEFAULT);
            }
            // SAFETY: checked: at least a GUID's bytes.
            let guid = unsafe { (lpvInBuffer as *const GUID).read_unaligned() };
            let f: usize = if guid == WSAID_ACCEPTEX {
                AcceptEx as *const () as usize
            } else if guid == WSAID_CONNECTEX {
                ConnectEx as *const () as usize
            } else if guid == WSAID_DISCONNECTEX {
                DisconnectEx as *const () as usize
            } else if guid == WSAID_GETACCEPTEXSOCKADDRS {
                GetAcceptExSockaddrs as *const () as usize
            } else if guid == WSAID_TRANSMITFILE {
                TransmitFile as *const () as usize
            } else {
                return Err(WSAEINVAL);
            };
            // SAFETY: checked: room for a pointer.
            unsafe { (lpvOutBuffer as *mut usize).write_unaligned(f) };
            if !lpcbBytesReturned.is_null() {
                // SAFETY: checked not NULL; the caller's out-parameter.
                unsafe { *lpcbBytesReturned = size_of::<usize>() as DWORD };
            }
            Ok(())
        })())
    })
}
