//! Skip-on-success (Win32 `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`): an operation on a handle that
//! opted in is first tried synchronously, without blocking; if that settles it, its result is
//! returned at once and no packet is queued. Shared by every backend.

use crate::buf::IoBuf;
use crate::op::{Lent, Op, CURRENT_POSITION};
use crate::packet::{Data, Packet, Status};

use super::fd::FdEntry;

/// Skip-on-success for `read`, `read_at` and `recv`.
pub(crate) const SKIP_READS: u8 = 1;
/// Skip-on-success for `write`, `write_at` and `send`.
pub(crate) const SKIP_WRITES: u8 = 2;

/// Whether `op` is one that skip-on-success set to `mode` tries at once.
pub(crate) fn skips(mode: u8, op: Op) -> bool {
    match op {
        Op::Read { .. } | Op::Recv { .. } => mode & SKIP_READS != 0,
        Op::Write { .. } | Op::Send { .. } => mode & SKIP_WRITES != 0,
        _ => false,
    }
}

/// The synchronous first try of an operation on a skip-on-success handle: `Some(result)` if it
/// completed (or failed) at once, `None` if it would block and must go to the backend.
pub(crate) fn try_now<B>(fd: &FdEntry, op: Op, lent: &Lent<B>) -> Option<isize> {
    let (direct, regular) = (fd.direct, fd.regular());
    let fd = fd.raw();
    let Lent::Buf { raw, .. } = lent else {
        return None;
    };
    let iov = libc::iovec {
        iov_base: raw.ptr.cast(),
        iov_len: raw.len,
    };
    let rc = match op {
        Op::Read { .. } | Op::Write { .. } if direct => return None,
        // At the file position a short first try would have moved the position: no first try.
        Op::Read { offset } | Op::Write { offset } if regular && offset == CURRENT_POSITION => {
            return None
        }
        // SAFETY: `iov` describes the buffer's `len` bytes, which `lent` owns and keeps in place for
        // the length of the call. An offset of -1 means the file position.
        Op::Read { offset } => unsafe {
            libc::preadv2(fd, &iov, 1, offset as i64, libc::RWF_NOWAIT)
        },
        // SAFETY: as for the read; the kernel only reads the buffer.
        Op::Write { offset } => unsafe {
            libc::pwritev2(fd, &iov, 1, offset as i64, libc::RWF_NOWAIT)
        },
        // SAFETY: the buffer's `len` bytes are valid for writes for the length of the call.
        Op::Recv { flags } => unsafe {
            libc::recv(fd, raw.ptr.cast(), raw.len, flags | libc::MSG_DONTWAIT)
        },
        // SAFETY: the buffer's `len` bytes are valid for reads for the length of the call.
        Op::Send { flags } => unsafe {
            libc::send(
                fd,
                raw.ptr.cast(),
                raw.len,
                flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        },
        _ => return None,
    };
    if rc >= 0 {
        if regular && (rc as usize) < raw.len && !short_at_end(fd, op, rc as usize) {
            // Part of the range was not in the page cache: the backend does the whole operation
            // again (at an offset: the same bytes, the same result).
            return None;
        }
        return Some(rc);
    }
    let errno = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    match errno {
        libc::EAGAIN | libc::EOPNOTSUPP | libc::EINTR => None,
        e => Some(-(e as isize)),
    }
}

/// Whether a short `RWF_NOWAIT` result of `op` (`done` bytes) is its real result: a read that
/// reached the end of the file. Anything else came back short because part of the range was not
/// cached (or a write could not go on without waiting).
pub(crate) fn short_at_end(fd: std::os::fd::RawFd, op: Op, done: usize) -> bool {
    let offset = match op {
        Op::Read { offset } | Op::Readv { offset } => offset,
        _ => return false,
    };
    // SAFETY: `st` is valid for writes of a `stat` for the length of the call.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    offset.saturating_add(done as u64) >= st.st_size as u64
}

/// The packet of an operation that completed synchronously.
pub(crate) fn done_now<T, B: IoBuf>(
    key: usize,
    rc: isize,
    lent: Lent<B>,
    value: T,
) -> Packet<T, B> {
    let (bytes, status) = if rc < 0 {
        (0, Status::from_errno(-rc as i32))
    } else {
        (rc as usize, Status::SUCCESS)
    };
    let data = match lent.into_data() {
        Data::From(b, _) => Data::Buf(b),
        d => d,
    };
    Packet {
        key,
        bytes,
        status,
        op: None,
        value,
        data,
    }
}
