//! The Win32 types and constants of `include/iocport/windows.h`, with the Win64 layouts on LP64
//! Linux, and the checks that keep the two in step (the header asserts the same sizes and offsets).

#![allow(non_camel_case_types, non_snake_case, missing_docs, dead_code)]
#![allow(clippy::upper_case_acronyms)]

use std::ffi::{c_char, c_void};
use std::mem::{offset_of, size_of};

pub type BOOL = i32;
pub type DWORD = u32;
pub type ULONG = u32;
pub type NTSTATUS = i32;
pub type ULONG_PTR = usize;
pub type HANDLE = *mut c_void;
pub type SOCKET = usize;
pub type SIZE_T = usize;

pub const TRUE: BOOL = 1;
pub const FALSE: BOOL = 0;
pub const INVALID_HANDLE_VALUE: HANDLE = usize::MAX as HANDLE;
pub const INVALID_SOCKET: SOCKET = usize::MAX;
pub const SOCKET_ERROR: i32 = -1;
pub const INFINITE: DWORD = u32::MAX;

/// `OVERLAPPED` (and `WSAOVERLAPPED`): 32 bytes. `Offset`/`OffsetHigh` share their 8 bytes with
/// `Pointer` in C; the library reads them as offsets only.
#[repr(C)]
pub struct OVERLAPPED {
    pub Internal: ULONG_PTR,
    pub InternalHigh: ULONG_PTR,
    pub Offset: DWORD,
    pub OffsetHigh: DWORD,
    pub hEvent: HANDLE,
}

#[repr(C)]
pub struct OVERLAPPED_ENTRY {
    pub lpCompletionKey: ULONG_PTR,
    pub lpOverlapped: *mut OVERLAPPED,
    pub Internal: ULONG_PTR,
    pub dwNumberOfBytesTransferred: DWORD,
}

#[repr(C)]
pub struct WSABUF {
    pub len: ULONG,
    pub buf: *mut c_char,
}

#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GUID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}

#[repr(C)]
pub struct WSADATA {
    pub wVersion: u16,
    pub wHighVersion: u16,
    pub iMaxSockets: u16,
    pub iMaxUdpDg: u16,
    pub lpVendorInfo: *mut c_char,
    pub szDescription: [c_char; 257],
    pub szSystemStatus: [c_char; 129],
}

#[repr(C)]
pub struct TRANSMIT_FILE_BUFFERS {
    pub Head: *mut c_void,
    pub HeadLength: DWORD,
    pub Tail: *mut c_void,
    pub TailLength: DWORD,
}

const _: () = {
    assert!(size_of::<OVERLAPPED>() == 32);
    assert!(offset_of!(OVERLAPPED, InternalHigh) == 8);
    assert!(offset_of!(OVERLAPPED, Offset) == 16);
    assert!(offset_of!(OVERLAPPED, OffsetHigh) == 20);
    assert!(offset_of!(OVERLAPPED, hEvent) == 24);
    assert!(size_of::<OVERLAPPED_ENTRY>() == 32);
    assert!(offset_of!(OVERLAPPED_ENTRY, lpOverlapped) == 8);
    assert!(offset_of!(OVERLAPPED_ENTRY, Internal) == 16);
    assert!(offset_of!(OVERLAPPED_ENTRY, dwNumberOfBytesTransferred) == 24);
    assert!(size_of::<WSABUF>() == 16);
    assert!(offset_of!(WSABUF, buf) == 8);
    assert!(size_of::<GUID>() == 16);
    assert!(size_of::<SOCKET>() == size_of::<*mut c_void>());
};

// NTSTATUS values (the operation status in `OVERLAPPED.Internal`).
pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_ABANDONED_WAIT_0: NTSTATUS = 0x80;
pub const STATUS_TIMEOUT: NTSTATUS = 0x102;
pub const STATUS_PENDING: NTSTATUS = 0x103;
pub const STATUS_BUFFER_OVERFLOW: NTSTATUS = 0x8000_0005_u32 as i32;
pub const STATUS_UNSUCCESSFUL: NTSTATUS = 0xC000_0001_u32 as i32;
pub const STATUS_NOT_IMPLEMENTED: NTSTATUS = 0xC000_0002_u32 as i32;
pub const STATUS_ACCESS_VIOLATION: NTSTATUS = 0xC000_0005_u32 as i32;
pub const STATUS_INVALID_HANDLE: NTSTATUS = 0xC000_0008_u32 as i32;
pub const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;
pub const STATUS_END_OF_FILE: NTSTATUS = 0xC000_0011_u32 as i32;
pub const STATUS_NO_MEMORY: NTSTATUS = 0xC000_0017_u32 as i32;
pub const STATUS_ACCESS_DENIED: NTSTATUS = 0xC000_0022_u32 as i32;
pub const STATUS_BUFFER_TOO_SMALL: NTSTATUS = 0xC000_0023_u32 as i32;
pub const STATUS_OBJECT_TYPE_MISMATCH: NTSTATUS = 0xC000_0024_u32 as i32;
pub const STATUS_OBJECT_NAME_NOT_FOUND: NTSTATUS = 0xC000_0034_u32 as i32;
pub const STATUS_OBJECT_NAME_COLLISION: NTSTATUS = 0xC000_0035_u32 as i32;
pub const STATUS_OBJECT_PATH_NOT_FOUND: NTSTATUS = 0xC000_003A_u32 as i32;
pub const STATUS_SHARING_VIOLATION: NTSTATUS = 0xC000_0043_u32 as i32;
pub const STATUS_DISK_FULL: NTSTATUS = 0xC000_007F_u32 as i32;
pub const STATUS_MEDIA_WRITE_PROTECTED: NTSTATUS = 0xC000_00A2_u32 as i32;
pub const STATUS_DEVICE_NOT_READY: NTSTATUS = 0xC000_00A3_u32 as i32;
pub const STATUS_DEVICE_BUSY: NTSTATUS = 0xC000_00AE_u32 as i32;
pub const STATUS_PIPE_DISCONNECTED: NTSTATUS = 0xC000_00B0_u32 as i32;
pub const STATUS_IO_TIMEOUT: NTSTATUS = 0xC000_00B5_u32 as i32;
pub const STATUS_FILE_IS_A_DIRECTORY: NTSTATUS = 0xC000_00BA_u32 as i32;
pub const STATUS_NOT_SUPPORTED: NTSTATUS = 0xC000_00BB_u32 as i32;
pub const STATUS_NETWORK_BUSY: NTSTATUS = 0xC000_00BF_u32 as i32;
pub const STATUS_DIRECTORY_NOT_EMPTY: NTSTATUS = 0xC000_0101_u32 as i32;
pub const STATUS_NOT_A_DIRECTORY: NTSTATUS = 0xC000_0103_u32 as i32;
pub const STATUS_TOO_MANY_OPENED_FILES: NTSTATUS = 0xC000_011F_u32 as i32;
pub const STATUS_CANCELLED: NTSTATUS = 0xC000_0120_u32 as i32;
pub const STATUS_LOCAL_DISCONNECT: NTSTATUS = 0xC000_013B_u32 as i32;
pub const STATUS_INVALID_CONNECTION: NTSTATUS = 0xC000_0140_u32 as i32;
pub const STATUS_PIPE_BROKEN: NTSTATUS = 0xC000_014B_u32 as i32;
pub const STATUS_CONNECTION_DISCONNECTED: NTSTATUS = 0xC000_020C_u32 as i32;
pub const STATUS_CONNECTION_RESET: NTSTATUS = 0xC000_020D_u32 as i32;
pub const STATUS_CONNECTION_REFUSED: NTSTATUS = 0xC000_0236_u32 as i32;
pub const STATUS_CONNECTION_ACTIVE: NTSTATUS = 0xC000_023B_u32 as i32;
pub const STATUS_NETWORK_UNREACHABLE: NTSTATUS = 0xC000_023C_u32 as i32;
pub const STATUS_HOST_UNREACHABLE: NTSTATUS = 0xC000_023D_u32 as i32;
pub const STATUS_CONNECTION_ABORTED: NTSTATUS = 0xC000_0241_u32 as i32;

// Win32 errors (GetLastError).
pub const ERROR_SUCCESS: DWORD = 0;
pub const ERROR_INVALID_FUNCTION: DWORD = 1;
pub const ERROR_FILE_NOT_FOUND: DWORD = 2;
pub const ERROR_PATH_NOT_FOUND: DWORD = 3;
pub const ERROR_TOO_MANY_OPEN_FILES: DWORD = 4;
pub const ERROR_ACCESS_DENIED: DWORD = 5;
pub const ERROR_INVALID_HANDLE: DWORD = 6;
pub const ERROR_NOT_ENOUGH_MEMORY: DWORD = 8;
pub const ERROR_WRITE_PROTECT: DWORD = 19;
pub const ERROR_NOT_READY: DWORD = 21;
pub const ERROR_GEN_FAILURE: DWORD = 31;
pub const ERROR_SHARING_VIOLATION: DWORD = 32;
pub const ERROR_HANDLE_EOF: DWORD = 38;
pub const ERROR_NOT_SUPPORTED: DWORD = 50;
pub const ERROR_NETNAME_DELETED: DWORD = 64;
pub const ERROR_NETWORK_BUSY: DWORD = 54;
pub const ERROR_FILE_EXISTS: DWORD = 80;
pub const ERROR_INVALID_PARAMETER: DWORD = 87;
pub const ERROR_BROKEN_PIPE: DWORD = 109;
pub const ERROR_DISK_FULL: DWORD = 112;
pub const ERROR_CALL_NOT_IMPLEMENTED: DWORD = 120;
pub const ERROR_SEM_TIMEOUT: DWORD = 121;
pub const ERROR_INSUFFICIENT_BUFFER: DWORD = 122;
pub const ERROR_INVALID_NAME: DWORD = 123;
pub const ERROR_DIR_NOT_EMPTY: DWORD = 145;
pub const ERROR_BUSY: DWORD = 170;
pub const ERROR_ALREADY_EXISTS: DWORD = 183;
pub const ERROR_PIPE_NOT_CONNECTED: DWORD = 233;
pub const ERROR_MORE_DATA: DWORD = 234;
pub const WAIT_TIMEOUT: DWORD = 258;
pub const WAIT_OBJECT_0: DWORD = 0;
pub const WAIT_FAILED: DWORD = u32::MAX;
pub const ERROR_DIRECTORY: DWORD = 267;
pub const ERROR_MR_MID_NOT_FOUND: DWORD = 317;
pub const ERROR_ABANDONED_WAIT_0: DWORD = 735;
pub const ERROR_OPERATION_ABORTED: DWORD = 995;
pub const ERROR_IO_INCOMPLETE: DWORD = 996;
pub const ERROR_IO_PENDING: DWORD = 997;
pub const ERROR_NOACCESS: DWORD = 998;
pub const ERROR_NOT_FOUND: DWORD = 1168;
pub const ERROR_CONNECTION_REFUSED: DWORD = 1225;
pub const ERROR_CONNECTION_INVALID: DWORD = 1229;
pub const ERROR_CONNECTION_ACTIVE: DWORD = 1230;
pub const ERROR_NETWORK_UNREACHABLE: DWORD = 1231;
pub const ERROR_HOST_UNREACHABLE: DWORD = 1232;
pub const ERROR_CONNECTION_ABORTED: DWORD = 1236;
pub const ERROR_INTERNAL_ERROR: DWORD = 1359;

// Winsock errors (WSAGetLastError).
pub const WSA_IO_PENDING: DWORD = 997;
pub const WSA_INVALID_PARAMETER: DWORD = 87;
pub const WSAEINTR: DWORD = 10004;
pub const WSAEBADF: DWORD = 10009;
pub const WSAEACCES: DWORD = 10013;
pub const WSAEFAULT: DWORD = 10014;
pub const WSAEINVAL: DWORD = 10022;
pub const WSAEMFILE: DWORD = 10024;
pub const WSAEWOULDBLOCK: DWORD = 10035;
pub const WSAEINPROGRESS: DWORD = 10036;
pub const WSAEALREADY: DWORD = 10037;
pub const WSAENOTSOCK: DWORD = 10038;
pub const WSAEDESTADDRREQ: DWORD = 10039;
pub const WSAEMSGSIZE: DWORD = 10040;
pub const WSAEPROTOTYPE: DWORD = 10041;
pub const WSAENOPROTOOPT: DWORD = 10042;
pub const WSAEPROTONOSUPPORT: DWORD = 10043;
pub const WSAESOCKTNOSUPPORT: DWORD = 10044;
pub const WSAEOPNOTSUPP: DWORD = 10045;
pub const WSAEPFNOSUPPORT: DWORD = 10046;
pub const WSAEAFNOSUPPORT: DWORD = 10047;
pub const WSAEADDRINUSE: DWORD = 10048;
pub const WSAEADDRNOTAVAIL: DWORD = 10049;
pub const WSAENETDOWN: DWORD = 10050;
pub const WSAENETUNREACH: DWORD = 10051;
pub const WSAENETRESET: DWORD = 10052;
pub const WSAECONNABORTED: DWORD = 10053;
pub const WSAECONNRESET: DWORD = 10054;
pub const WSAENOBUFS: DWORD = 10055;
pub const WSAEISCONN: DWORD = 10056;
pub const WSAENOTCONN: DWORD = 10057;
pub const WSAESHUTDOWN: DWORD = 10058;
pub const WSAETIMEDOUT: DWORD = 10060;
pub const WSAECONNREFUSED: DWORD = 10061;
pub const WSAEHOSTUNREACH: DWORD = 10065;
pub const WSAVERNOTSUPPORTED: DWORD = 10092;
pub const WSANOTINITIALISED: DWORD = 10093;
pub const WSAEDISCON: DWORD = 10101;

// Flags and options.
pub const GENERIC_READ: DWORD = 0x8000_0000;
pub const GENERIC_WRITE: DWORD = 0x4000_0000;
pub const GENERIC_ALL: DWORD = 0x1000_0000;
pub const CREATE_NEW: DWORD = 1;
pub const CREATE_ALWAYS: DWORD = 2;
pub const OPEN_EXISTING: DWORD = 3;
pub const OPEN_ALWAYS: DWORD = 4;
pub const TRUNCATE_EXISTING: DWORD = 5;
pub const FILE_FLAG_WRITE_THROUGH: DWORD = 0x8000_0000;
pub const FILE_FLAG_OVERLAPPED: DWORD = 0x4000_0000;
pub const FILE_FLAG_NO_BUFFERING: DWORD = 0x2000_0000;
pub const FILE_FLAG_DELETE_ON_CLOSE: DWORD = 0x0400_0000;
pub const FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: u8 = 1;
pub const FILE_SKIP_SET_EVENT_ON_HANDLE: u8 = 2;
pub const SIO_GET_EXTENSION_FUNCTION_POINTER: DWORD = 0xC800_0006;
pub const SO_UPDATE_ACCEPT_CONTEXT: i32 = 0x700B;
pub const SO_UPDATE_CONNECT_CONTEXT: i32 = 0x7010;
pub const TF_DISCONNECT: DWORD = 0x01;
pub const TF_REUSE_SOCKET: DWORD = 0x02;
pub const TF_WRITE_BEHIND: DWORD = 0x04;
pub const TF_USE_DEFAULT_WORKER: DWORD = 0x00;
pub const TF_USE_SYSTEM_THREAD: DWORD = 0x10;
pub const TF_USE_KERNEL_APC: DWORD = 0x20;

const fn mswsock(data1: u32) -> GUID {
    GUID {
        Data1: data1,
        Data2: 0xcbac,
        Data3: 0x11cf,
        Data4: [0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92],
    }
}
pub const WSAID_ACCEPTEX: GUID = mswsock(0xb536_7df1);
pub const WSAID_GETACCEPTEXSOCKADDRS: GUID = mswsock(0xb536_7df2);
pub const WSAID_TRANSMITFILE: GUID = mswsock(0xb536_7df0);
pub const WSAID_CONNECTEX: GUID = GUID {
    Data1: 0x25a2_07b9,
    Data2: 0xddf3,
    Data3: 0x4660,
    Data4: [0x8e, 0xe9, 0x76, 0xe5, 0x8c, 0x74, 0x06, 0x3e],
};
pub const WSAID_DISCONNECTEX: GUID = GUID {
    Data1: 0x7fda_2e11,
    Data2: 0x8630,
    Data3: 0x436f,
    Data4: [0xa0, 0x31, 0xf5, 0x36, 0xa6, 0xee, 0xc1, 0x57],
};

/// A pointer-sized `void *` for the signatures.
pub type PVOID = *mut c_void;
