//! Files: `CreateFileA`/`CreateFileW` on POSIX paths, `ReadFile` and `WriteFile` (overlapped at
//! the offset in `Offset`/`OffsetHigh`, or synchronous).

use std::collections::HashSet;
use std::ffi::{c_char, c_void, CStr, CString};
use std::os::fd::RawFd;
use std::sync::Mutex;

use crate::core::{
    assoc_of, begin_ov, check_ov, identity, lock, start, write_ov, Ctx, Kind, Outcome, RawBuf,
};
use crate::guard;
use crate::port::handle_fd;
use crate::sock::{complete_empty, lift};
use crate::status::bool_ret;
use crate::status::{errno, errno_to_status, nt_success, set_last_error, status_to_win32, Origin};
use crate::types::*;

/// Files opened without `FILE_FLAG_OVERLAPPED` (fd and identity): they cannot be associated with
/// a port, and their reads and writes are synchronous, as on Windows.
static SYNCHRONOUS: Mutex<Option<HashSet<SyncFile>>> = Mutex::new(None);

/// An fd and the identity (device, inode) of the file it was opened on.
type SyncFile = (RawFd, (u64, u64));

/// Whether `fd` (with identity `ino`) was opened without `FILE_FLAG_OVERLAPPED`.
pub(crate) fn is_synchronous(fd: RawFd, ino: (u64, u64)) -> bool {
    lock(&SYNCHRONOUS)
        .as_ref()
        .is_some_and(|s| s.contains(&(fd, ino)))
}

/// Forgets `fd` when the program closes it.
pub(crate) fn forget(fd: RawFd) {
    if let Some(s) = lock(&SYNCHRONOUS).as_mut() {
        s.retain(|e| e.0 != fd);
    }
}

fn win32_of_errno(e: i32) -> DWORD {
    status_to_win32(errno_to_status(e, Origin::File))
}

/// The error of an `open` that failed with `e`: a missing directory on the way is
/// ERROR_PATH_NOT_FOUND, a missing file ERROR_FILE_NOT_FOUND, as on Windows.
fn open_error(path: &CStr, e: i32) -> DWORD {
    if e != libc::ENOENT {
        return win32_of_errno(e);
    }
    let bytes = path.to_bytes();
    let parent = match bytes.iter().rposition(|&b| b == b'/') {
        Some(0) => return ERROR_FILE_NOT_FOUND,
        Some(i) => &bytes[..i],
        None => return ERROR_FILE_NOT_FOUND,
    };
    let Ok(parent) = CString::new(parent) else {
        return ERROR_PATH_NOT_FOUND;
    };
    // SAFETY: an all-zero stat is valid; stat(2) writes it and reads the NUL-terminated path.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let dir = unsafe { libc::stat(parent.as_ptr(), &mut st) } == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if dir {
        ERROR_FILE_NOT_FOUND
    } else {
        ERROR_PATH_NOT_FOUND
    }
}

fn create_file(
    path: &CStr,
    access: DWORD,
    disposition: DWORD,
    flags: DWORD,
) -> Result<HANDLE, DWORD> {
    if path.is_empty() {
        return Err(ERROR_PATH_NOT_FOUND);
    }
    crate::core::ignore_sigpipe();
    let mut oflags = libc::O_CLOEXEC;
    oflags |= match (
        access & (GENERIC_READ | GENERIC_ALL) != 0,
        access & (GENERIC_WRITE | GENERIC_ALL) != 0,
    ) {
        (_, false) => libc::O_RDONLY,
        (false, true) => libc::O_WRONLY,
        (true, true) => libc::O_RDWR,
    };
    let writable = access & (GENERIC_WRITE | GENERIC_ALL) != 0;
    if flags & FILE_FLAG_NO_BUFFERING != 0 {
        oflags |= libc::O_DIRECT;
    }
    if flags & FILE_FLAG_WRITE_THROUGH != 0 {
        oflags |= libc::O_DSYNC;
    }
    let mode: libc::mode_t = if flags & 1 != 0 { 0o444 } else { 0o666 };
    let open = |extra: i32| {
        // SAFETY: `path` is a NUL-terminated string; open(2) copies it.
        let fd = unsafe { libc::open(path.as_ptr(), oflags | extra, mode as libc::c_uint) };
        if fd < 0 {
            Err(errno())
        } else {
            Ok(lift(fd))
        }
    };
    let mut existed = false;
    let fd = match disposition {
        CREATE_NEW => open(libc::O_CREAT | libc::O_EXCL).map_err(|e| {
            if e == libc::EEXIST {
                ERROR_FILE_EXISTS
            } else {
                open_error(path, e)
            }
        })?,
        CREATE_ALWAYS | OPEN_ALWAYS => {
            let trunc = if disposition == CREATE_ALWAYS {
                libc::O_TRUNC
            } else {
                0
            };
            if disposition == CREATE_ALWAYS && !writable {
                return Err(ERROR_ACCESS_DENIED);
            }
            match open(libc::O_CREAT | libc::O_EXCL) {
                Ok(fd) => fd,
                Err(libc::EEXIST) => {
                    existed = true;
                    open(trunc).map_err(|e| open_error(path, e))?
                }
                Err(e) => return Err(open_error(path, e)),
            }
        }
        OPEN_EXISTING => open(0).map_err(|e| open_error(path, e))?,
        TRUNCATE_EXISTING => {
            if !writable {
                return Err(ERROR_INVALID_PARAMETER);
            }
            open(libc::O_TRUNC).map_err(|e| open_error(path, e))?
        }
        _ => return Err(ERROR_INVALID_PARAMETER),
    };
    if fd < 0 {
        return Err(win32_of_errno(errno()));
    }
    if let Some((ino, kind)) = identity(fd) {
        if kind == libc::S_IFDIR {
            // SAFETY: `fd` is ours.
            unsafe { libc::close(fd) };
            return Err(ERROR_ACCESS_DENIED);
        }
        if flags & FILE_FLAG_OVERLAPPED == 0 {
            lock(&SYNCHRONOUS)
                .get_or_insert_with(HashSet::new)
                .insert((fd, ino));
        }
    }
    if flags & FILE_FLAG_DELETE_ON_CLOSE != 0 {
        // The name goes now; the file itself when its last fd closes.
        // SAFETY: `path` is a NUL-terminated string.
        unsafe { libc::unlink(path.as_ptr()) };
    }
    // Windows sets the last error on success too: whether an "always" disposition found a file.
    set_last_error(if existed { ERROR_ALREADY_EXISTS } else { 0 });
    Ok(fd as usize as HANDLE)
}

fn create_ret(r: Result<HANDLE, DWORD>) -> HANDLE {
    match r {
        Ok(h) => h,
        Err(e) => {
            set_last_error(e);
            INVALID_HANDLE_VALUE
        }
    }
}

/// Opens or creates a file by POSIX path.
#[no_mangle]
pub unsafe extern "C" fn CreateFileA(
    lpFileName: *const c_char,
    dwDesiredAccess: DWORD,
    _dwShareMode: DWORD,
    _lpSecurityAttributes: *mut c_void,
    dwCreationDisposition: DWORD,
    dwFlagsAndAttributes: DWORD,
    _hTemplateFile: HANDLE,
) -> HANDLE {
    guard(INVALID_HANDLE_VALUE, || {
        if lpFileName.is_null() {
            set_last_error(ERROR_PATH_NOT_FOUND);
            return INVALID_HANDLE_VALUE;
        }
        // SAFETY: a NUL-terminated string from the caller.
        let path = unsafe { CStr::from_ptr(lpFileName) };
        create_ret(create_file(
            path,
            dwDesiredAccess,
            dwCreationDisposition,
            dwFlagsAndAttributes,
        ))
    })
}

/// As `CreateFileA`, with a wide (`wchar_t`, UTF-32) path, converted to UTF-8.
#[no_mangle]
pub unsafe extern "C" fn CreateFileW(
    lpFileName: *const libc::wchar_t,
    dwDesiredAccess: DWORD,
    _dwShareMode: DWORD,
    _lpSecurityAttributes: *mut c_void,
    dwCreationDisposition: DWORD,
    dwFlagsAndAttributes: DWORD,
    _hTemplateFile: HANDLE,
) -> HANDLE {
    guard(INVALID_HANDLE_VALUE, || {
        if lpFileName.is_null() {
            set_last_error(ERROR_PATH_NOT_FOUND);
            return INVALID_HANDLE_VALUE;
        }
        let mut s = String::new();
        for i in 0.. {
            // SAFETY: a NUL-terminated wide string from the caller; read up to its NUL.
            let c = unsafe { *lpFileName.add(i) };
            if c == 0 {
                break;
            }
            match char::from_u32(c as u32) {
                Some(ch) => s.push(ch),
                None => {
                    set_last_error(ERROR_INVALID_NAME);
                    return INVALID_HANDLE_VALUE;
                }
            }
        }
        let Ok(path) = CString::new(s) else {
            set_last_error(ERROR_INVALID_NAME);
            return INVALID_HANDLE_VALUE;
        };
        create_ret(create_file(
            &path,
            dwDesiredAccess,
            dwCreationDisposition,
            dwFlagsAndAttributes,
        ))
    })
}

/// The offset an OVERLAPPED carries.
fn offset_of(ov: *mut OVERLAPPED) -> u64 {
    // SAFETY: `ov` is valid and aligned (`check_ov`); the offsets are the caller's input.
    unsafe { u64::from((*ov).Offset) | u64::from((*ov).OffsetHigh) << 32 }
}

fn rw(
    h: HANDLE,
    buf: *mut u8,
    len: DWORD,
    lp_done: *mut DWORD,
    ov: *mut OVERLAPPED,
    write: bool,
) -> Result<(), DWORD> {
    let Some(fd) = handle_fd(h).filter(|_| !h.is_null()) else {
        return Err(ERROR_INVALID_HANDLE);
    };
    if buf.is_null() && len > 0 {
        return Err(ERROR_NOACCESS);
    }
    let set_done = |n: usize| {
        if !lp_done.is_null() {
            // SAFETY: checked not NULL; the caller's out-parameter.
            unsafe { *lp_done = n as DWORD };
        }
    };
    let assoc = assoc_of(fd);
    if ov.is_null() || assoc.is_none() {
        // Synchronous: at the OVERLAPPED's offset if given, else at the file position.
        let Some((ino, _)) = identity(fd) else {
            return Err(ERROR_INVALID_HANDLE);
        };
        if ov.is_null() && lp_done.is_null() {
            return Err(ERROR_INVALID_PARAMETER);
        }
        if !ov.is_null() {
            if !check_ov(ov) {
                return Err(ERROR_INVALID_PARAMETER);
            }
            if !is_synchronous(fd, ino) {
                // An overlapped handle must be associated with a port to report completions.
                return Err(ERROR_INVALID_PARAMETER);
            }
        }
        let n = if ov.is_null() {
            loop {
                // SAFETY: the caller's buffer of `len` bytes.
                let n = unsafe {
                    if write {
                        libc::write(fd, buf as *const c_void, len as usize)
                    } else {
                        libc::read(fd, buf as *mut c_void, len as usize)
                    }
                };
                if n >= 0 {
                    break n;
                }
                match errno() {
                    libc::EINTR => {}
                    // The epoll backend made the associated fd non-blocking; a synchronous
                    // call waits, as it would have.
                    libc::EAGAIN if assoc.is_some() => {
                        let mut p = libc::pollfd {
                            fd,
                            events: if write { libc::POLLOUT } else { libc::POLLIN },
                            revents: 0,
                        };
                        // SAFETY: one valid pollfd.
                        unsafe { libc::poll(&mut p, 1, -1) };
                    }
                    _ => break n,
                }
            }
        } else {
            let off = offset_of(ov) as libc::off_t;
            // SAFETY: as above.
            unsafe {
                if write {
                    libc::pwrite(fd, buf as *const c_void, len as usize, off)
                } else {
                    libc::pread(fd, buf as *mut c_void, len as usize, off)
                }
            }
        };
        if n < 0 {
            let st = errno_to_status(errno(), Origin::File);
            if !ov.is_null() {
                write_ov(ov as usize, st, 0);
            }
            return Err(status_to_win32(st));
        }
        if !ov.is_null() {
            let st = if !write && n == 0 && len > 0 {
                STATUS_END_OF_FILE
            } else {
                STATUS_SUCCESS
            };
            write_ov(ov as usize, st, n as usize);
            if st != STATUS_SUCCESS {
                return Err(status_to_win32(st));
            }
        }
        set_done(n as usize);
        return Ok(());
    }
    let assoc = assoc.expect("checked above");
    if !check_ov(ov) {
        return Err(ERROR_INVALID_PARAMETER);
    }
    let silent = begin_ov(ov);
    let kind = match (assoc.socket, write) {
        (true, false) => Kind::Recv,
        (true, true) => Kind::Send,
        (false, false) => Kind::Read,
        (false, true) => Kind::Write,
    };
    if len == 0 {
        complete_empty(&assoc, ov, kind, silent);
        set_done(0);
        return Ok(());
    }
    let rb = RawBuf::new(buf, len as usize);
    let ctx = Ctx::new(ov, kind, silent);
    let outcome = if assoc.socket {
        if write {
            start(&assoc, ctx, |h, c| h.send(rb, 0, c))
        } else {
            start(&assoc, ctx, |h, c| h.recv(rb, 0, c))
        }
    } else if assoc.seekable {
        let mut off = offset_of(ov);
        if write && off == u64::MAX {
            // Offset and OffsetHigh both 0xFFFFFFFF: Windows writes at the end of the file.
            // SAFETY: an all-zero stat is valid; fstat writes it.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: as above, on the program's fd.
            if unsafe { libc::fstat(fd, &mut st) } == 0 {
                off = st.st_size as u64;
            }
        }
        if write {
            start(&assoc, ctx, |h, c| h.write_at(rb, off, c))
        } else {
            start(&assoc, ctx, |h, c| h.read_at(rb, off, c))
        }
    } else if write {
        start(&assoc, ctx, |h, c| h.write(rb, c))
    } else {
        start(&assoc, ctx, |h, c| h.read(rb, c))
    };
    match outcome {
        Outcome::Pending => Err(ERROR_IO_PENDING),
        Outcome::Now { status, bytes, ctx } => {
            if nt_success(status) {
                assoc.post_now(ctx, bytes);
                set_done(bytes);
                Ok(())
            } else {
                Err(status_to_win32(status))
            }
        }
    }
}

/// Reads from a file, pipe or socket: overlapped at the `OVERLAPPED`'s offset, or synchronous.
#[no_mangle]
pub unsafe extern "C" fn ReadFile(
    hFile: HANDLE,
    lpBuffer: *mut c_void,
    nNumberOfBytesToRead: DWORD,
    lpNumberOfBytesRead: *mut DWORD,
    lpOverlapped: *mut OVERLAPPED,
) -> BOOL {
    guard(FALSE, || {
        bool_ret(rw(
            hFile,
            lpBuffer as *mut u8,
            nNumberOfBytesToRead,
            lpNumberOfBytesRead,
            lpOverlapped,
            false,
        ))
    })
}

/// Writes to a file, pipe or socket: overlapped at the `OVERLAPPED`'s offset, or synchronous.
#[no_mangle]
pub unsafe extern "C" fn WriteFile(
    hFile: HANDLE,
    lpBuffer: *const c_void,
    nNumberOfBytesToWrite: DWORD,
    lpNumberOfBytesWritten: *mut DWORD,
    lpOverlapped: *mut OVERLAPPED,
) -> BOOL {
    guard(FALSE, || {
        bool_ret(rw(
            hFile,
            lpBuffer as *mut u8,
            nNumberOfBytesToWrite,
            lpNumberOfBytesWritten,
            lpOverlapped,
            true,
        ))
    })
}
