//! The three error tables and the thread's last error.
//!
//! An operation's outcome travels as an NTSTATUS, as on Windows: the kernel's errno becomes one
//! ([`errno_to_status`]), `OVERLAPPED.Internal` holds it, and each API turns it into the code its
//! callers expect: a Win32 error for `GetQueuedCompletionStatus` and `GetOverlappedResult`
//! ([`status_to_win32`]), a Winsock error for `WSARecv` and `WSAGetOverlappedResult`
//! ([`status_to_wsa`]). So the same reset reads as `ERROR_NETNAME_DELETED` after
//! `GetQueuedCompletionStatus` and as `WSAECONNRESET` from Winsock, as on Windows.
//!
//! The tables follow Wine's (`sock_errno_to_status` and `errno_to_status` in `ntdll/unix`,
//! `RtlNtStatusToDosError`'s table in `ntdll/error.c`, `NtStatusToWSAError` in `ws2_32/socket.c`),
//! which were written against Windows' observed behaviour.

use std::cell::Cell;

use crate::types::*;

thread_local! {
    static LAST_ERROR: Cell<DWORD> = const { Cell::new(0) };
}

/// Sets the calling thread's last error (`SetLastError`).
pub(crate) fn set_last_error(code: DWORD) {
    LAST_ERROR.with(|e| e.set(code));
}

/// The calling thread's last error (`GetLastError`).
pub(crate) fn last_error() -> DWORD {
    LAST_ERROR.with(|e| e.get())
}

/// What the file or socket an errno came from is: a few errnos mean different things for each.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Origin {
    /// A socket (Winsock semantics).
    Socket,
    /// A file, pipe or other fd.
    File,
}

/// errno (positive, from the kernel or libc) → NTSTATUS.
pub(crate) fn errno_to_status(errno: i32, origin: Origin) -> NTSTATUS {
    use libc::*;
    match errno {
        0 => STATUS_SUCCESS,
        EBADF => STATUS_INVALID_HANDLE,
        EBUSY => STATUS_DEVICE_BUSY,
        EPERM | EACCES => STATUS_ACCESS_DENIED,
        EFAULT => STATUS_ACCESS_VIOLATION,
        EINVAL | ENOPROTOOPT | EDESTADDRREQ => STATUS_INVALID_PARAMETER,
        ENFILE | EMFILE => STATUS_TOO_MANY_OPENED_FILES,
        EAGAIN | EINPROGRESS => STATUS_DEVICE_NOT_READY,
        EALREADY => STATUS_NETWORK_BUSY,
        ENOTSOCK => STATUS_OBJECT_TYPE_MISMATCH,
        EMSGSIZE => STATUS_BUFFER_OVERFLOW,
        EPROTONOSUPPORT | ESOCKTNOSUPPORT | EPFNOSUPPORT | EAFNOSUPPORT | EPROTOTYPE
        | EOPNOTSUPP | ENOSYS => STATUS_NOT_SUPPORTED,
        EADDRINUSE => STATUS_SHARING_VIOLATION,
        EADDRNOTAVAIL => STATUS_INVALID_PARAMETER,
        ECONNREFUSED => STATUS_CONNECTION_REFUSED,
        ESHUTDOWN => STATUS_PIPE_DISCONNECTED,
        ENOTCONN => STATUS_INVALID_CONNECTION,
        ETIMEDOUT => STATUS_IO_TIMEOUT,
        ENETUNREACH => STATUS_NETWORK_UNREACHABLE,
        EHOSTUNREACH => STATUS_HOST_UNREACHABLE,
        ENETDOWN => STATUS_NETWORK_BUSY,
        EPIPE if origin == Origin::File => STATUS_PIPE_BROKEN,
        EPIPE | ECONNRESET => STATUS_CONNECTION_RESET,
        ECONNABORTED => STATUS_CONNECTION_ABORTED,
        EISCONN => STATUS_CONNECTION_ACTIVE,
        ECANCELED | EINTR => STATUS_CANCELLED,
        ENOMEM | ENOBUFS => STATUS_NO_MEMORY,
        ENOSPC | EDQUOT | EFBIG => STATUS_DISK_FULL,
        ENOENT => STATUS_OBJECT_NAME_NOT_FOUND,
        EEXIST => STATUS_OBJECT_NAME_COLLISION,
        ENOTDIR => STATUS_OBJECT_PATH_NOT_FOUND,
        EISDIR => STATUS_FILE_IS_A_DIRECTORY,
        ENOTEMPTY => STATUS_DIRECTORY_NOT_EMPTY,
        EROFS => STATUS_MEDIA_WRITE_PROTECTED,
        ENAMETOOLONG => STATUS_OBJECT_PATH_NOT_FOUND,
        ESPIPE => STATUS_INVALID_PARAMETER,
        _ => STATUS_UNSUCCESSFUL,
    }
}

/// NTSTATUS → Win32 error (`RtlNtStatusToDosError`).
pub(crate) fn status_to_win32(status: NTSTATUS) -> DWORD {
    match status {
        STATUS_SUCCESS => ERROR_SUCCESS,
        STATUS_PENDING => ERROR_IO_PENDING,
        STATUS_TIMEOUT => WAIT_TIMEOUT,
        STATUS_ABANDONED_WAIT_0 => ERROR_ABANDONED_WAIT_0,
        STATUS_BUFFER_OVERFLOW => ERROR_MORE_DATA,
        STATUS_UNSUCCESSFUL => ERROR_GEN_FAILURE,
        STATUS_NOT_IMPLEMENTED => ERROR_INVALID_FUNCTION,
        STATUS_ACCESS_VIOLATION => ERROR_NOACCESS,
        STATUS_INVALID_HANDLE | STATUS_OBJECT_TYPE_MISMATCH => ERROR_INVALID_HANDLE,
        STATUS_INVALID_PARAMETER => ERROR_INVALID_PARAMETER,
        STATUS_END_OF_FILE => ERROR_HANDLE_EOF,
        STATUS_NO_MEMORY => ERROR_NOT_ENOUGH_MEMORY,
        STATUS_ACCESS_DENIED | STATUS_FILE_IS_A_DIRECTORY => ERROR_ACCESS_DENIED,
        STATUS_BUFFER_TOO_SMALL => ERROR_INSUFFICIENT_BUFFER,
        STATUS_OBJECT_NAME_NOT_FOUND => ERROR_FILE_NOT_FOUND,
        STATUS_OBJECT_NAME_COLLISION => ERROR_ALREADY_EXISTS,
        STATUS_OBJECT_PATH_NOT_FOUND => ERROR_PATH_NOT_FOUND,
        STATUS_SHARING_VIOLATION => ERROR_SHARING_VIOLATION,
        STATUS_DISK_FULL => ERROR_DISK_FULL,
        STATUS_MEDIA_WRITE_PROTECTED => ERROR_WRITE_PROTECT,
        STATUS_DEVICE_NOT_READY => ERROR_NOT_READY,
        STATUS_DEVICE_BUSY => ERROR_BUSY,
        STATUS_PIPE_DISCONNECTED => ERROR_PIPE_NOT_CONNECTED,
        STATUS_IO_TIMEOUT => ERROR_SEM_TIMEOUT,
        STATUS_NOT_SUPPORTED => ERROR_NOT_SUPPORTED,
        STATUS_NETWORK_BUSY => ERROR_NETWORK_BUSY,
        STATUS_DIRECTORY_NOT_EMPTY => ERROR_DIR_NOT_EMPTY,
        STATUS_NOT_A_DIRECTORY => ERROR_DIRECTORY,
        STATUS_TOO_MANY_OPENED_FILES => ERROR_TOO_MANY_OPEN_FILES,
        STATUS_CANCELLED => ERROR_OPERATION_ABORTED,
        STATUS_LOCAL_DISCONNECT | STATUS_CONNECTION_RESET | STATUS_CONNECTION_DISCONNECTED => {
            ERROR_NETNAME_DELETED
        }
        STATUS_INVALID_CONNECTION => ERROR_CONNECTION_INVALID,
        STATUS_PIPE_BROKEN => ERROR_BROKEN_PIPE,
        STATUS_CONNECTION_REFUSED => ERROR_CONNECTION_REFUSED,
        STATUS_CONNECTION_ACTIVE => ERROR_CONNECTION_ACTIVE,
        STATUS_NETWORK_UNREACHABLE => ERROR_NETWORK_UNREACHABLE,
        STATUS_HOST_UNREACHABLE => ERROR_HOST_UNREACHABLE,
        STATUS_CONNECTION_ABORTED => ERROR_CONNECTION_ABORTED,
        _ => ERROR_MR_MID_NOT_FOUND,
    }
}

/// NTSTATUS → Winsock error (`NtStatusToWSAError`).
pub(crate) fn status_to_wsa(status: NTSTATUS) -> DWORD {
    match status {
        STATUS_SUCCESS => 0,
        STATUS_PENDING => WSA_IO_PENDING,
        STATUS_BUFFER_OVERFLOW => WSAEMSGSIZE,
        STATUS_NOT_IMPLEMENTED | STATUS_NOT_SUPPORTED => WSAEOPNOTSUPP,
        STATUS_ACCESS_VIOLATION | STATUS_BUFFER_TOO_SMALL => WSAEFAULT,
        STATUS_INVALID_HANDLE | STATUS_OBJECT_TYPE_MISMATCH => WSAENOTSOCK,
        STATUS_NO_MEMORY => WSAENOBUFS,
        STATUS_ACCESS_DENIED => WSAEACCES,
        STATUS_SHARING_VIOLATION => WSAEADDRINUSE,
        STATUS_DEVICE_NOT_READY => WSAEWOULDBLOCK,
        STATUS_PIPE_DISCONNECTED => WSAESHUTDOWN,
        STATUS_IO_TIMEOUT => WSAETIMEDOUT,
        STATUS_NETWORK_BUSY => WSAENETDOWN,
        STATUS_CANCELLED => ERROR_OPERATION_ABORTED,
        STATUS_LOCAL_DISCONNECT | STATUS_CONNECTION_ABORTED => WSAECONNABORTED,
        STATUS_CONNECTION_RESET | STATUS_CONNECTION_DISCONNECTED => WSAECONNRESET,
        STATUS_INVALID_CONNECTION => WSAENOTCONN,
        STATUS_CONNECTION_REFUSED => WSAECONNREFUSED,
        STATUS_CONNECTION_ACTIVE => WSAEISCONN,
        STATUS_NETWORK_UNREACHABLE => WSAENETUNREACH,
        STATUS_HOST_UNREACHABLE => WSAEHOSTUNREACH,
        STATUS_TOO_MANY_OPENED_FILES => WSAEMFILE,
        s if s >= 0 => status_to_win32(s),
        _ => WSAEINVAL,
    }
}

/// errno → Winsock error, for the synchronous socket calls (`socket`, `setsockopt`, ...).
pub(crate) fn errno_to_wsa(errno: i32) -> DWORD {
    match errno {
        // Winsock reports these directly where the status tables would blur them.
        libc::EINVAL => WSAEINVAL,
        libc::EAFNOSUPPORT => WSAEAFNOSUPPORT,
        libc::EPROTONOSUPPORT => WSAEPROTONOSUPPORT,
        libc::ESOCKTNOSUPPORT => WSAESOCKTNOSUPPORT,
        libc::EPROTOTYPE => WSAEPROTOTYPE,
        libc::ENOPROTOOPT => WSAENOPROTOOPT,
        libc::EADDRNOTAVAIL => WSAEADDRNOTAVAIL,
        libc::EINPROGRESS => WSAEINPROGRESS,
        libc::EALREADY => WSAEALREADY,
        libc::EDESTADDRREQ => WSAEDESTADDRREQ,
        libc::EBADF => WSAENOTSOCK,
        libc::EINTR => WSAEINTR,
        e => status_to_wsa(errno_to_status(e, Origin::Socket)),
    }
}

/// The calling thread's errno.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Whether an NTSTATUS is a success or information code (`NT_SUCCESS`): the operation's packet
/// dequeues as TRUE.
pub(crate) fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

/// A Win32 BOOL result: TRUE, or FALSE with the error as the thread's last error.
pub(crate) fn bool_ret(r: Result<(), crate::types::DWORD>) -> crate::types::BOOL {
    match r {
        Ok(()) => crate::types::TRUE,
        Err(e) => {
            set_last_error(e);
            crate::types::FALSE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_reset_reads_per_api() {
        let st = errno_to_status(libc::ECONNRESET, Origin::Socket);
        assert_eq!(st, STATUS_CONNECTION_RESET);
        assert_eq!(status_to_win32(st), ERROR_NETNAME_DELETED);
        assert_eq!(status_to_wsa(st), WSAECONNRESET);
    }

    #[test]
    fn cancels_aborts_and_eof() {
        assert_eq!(
            status_to_win32(errno_to_status(libc::ECANCELED, Origin::Socket)),
            ERROR_OPERATION_ABORTED
        );
        assert_eq!(
            status_to_win32(STATUS_CONNECTION_ABORTED),
            ERROR_CONNECTION_ABORTED
        );
        assert_eq!(status_to_wsa(STATUS_CONNECTION_ABORTED), WSAECONNABORTED);
        assert_eq!(status_to_win32(STATUS_END_OF_FILE), ERROR_HANDLE_EOF);
        assert_eq!(
            status_to_win32(errno_to_status(libc::EPIPE, Origin::File)),
            ERROR_BROKEN_PIPE
        );
        assert_eq!(status_to_wsa(STATUS_BUFFER_OVERFLOW), WSAEMSGSIZE);
        assert_eq!(status_to_win32(STATUS_BUFFER_OVERFLOW), ERROR_MORE_DATA);
    }

    #[test]
    fn every_errno_maps_to_a_failure() {
        for e in 1..134 {
            for origin in [Origin::Socket, Origin::File] {
                let st = errno_to_status(e, origin);
                assert!(st < 0 || st == STATUS_PENDING, "errno {e} → {st:#x}");
                assert_ne!(status_to_win32(st), ERROR_SUCCESS, "errno {e}");
                assert_ne!(status_to_wsa(st), 0, "errno {e}");
            }
        }
    }

    #[test]
    fn last_error_is_per_thread() {
        set_last_error(5);
        std::thread::spawn(|| {
            assert_eq!(last_error(), 0);
            set_last_error(7);
        })
        .join()
        .unwrap();
        assert_eq!(last_error(), 5);
    }
}
