//! Building each operation's io_uring entry from its arguments ([`Op`]) and the memory it lends
//! ([`Lent`]), and the opcode each one needs (for the probe).

use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, squeue, types};
use socket2::SockAddrStorage;

use crate::op::{Lending, Lent, Op, Timespec};

/// The io_uring opcode `op` needs.
pub(crate) fn opcode_of(op: Op) -> u8 {
    match op {
        Op::Nop => opcode::Nop::CODE,
        Op::Timer => opcode::Timeout::CODE,
        Op::Read { .. } => opcode::Read::CODE,
        Op::Write { .. } => opcode::Write::CODE,
        Op::Readv { .. } => opcode::Readv::CODE,
        Op::Writev { .. } => opcode::Writev::CODE,
        Op::Recv { .. } => opcode::Recv::CODE,
        Op::Send { .. } => opcode::Send::CODE,
        Op::RecvFrom => opcode::RecvMsg::CODE,
        Op::SendTo => opcode::SendMsg::CODE,
        Op::Accept | Op::AcceptMulti => opcode::Accept::CODE,
        Op::Connect => opcode::Connect::CODE,
        Op::Shutdown(_) => opcode::Shutdown::CODE,
        Op::Fsync { .. } => opcode::Fsync::CODE,
        Op::Poll(_) => opcode::PollAdd::CODE,
        Op::TransmitFile => opcode::Splice::CODE,
        Op::RecvProvided { .. } => opcode::Recv::CODE,
    }
}

const _: () = assert!(std::mem::size_of::<Timespec>() == std::mem::size_of::<types::Timespec>());

/// The entry for `op` on `fd`. Every pointer in it points into `lending` (its kernel area, prepared
/// by [`Lending::install`]) or into the buffers it owns; the caller keeps it at the same address (a
/// boxed slot) until the operation's completion has been reaped. Buffer addresses were read when
/// the request was lent.
#[inline]
pub(crate) fn build<B>(op: Op, fd: RawFd, lending: &mut Lending<B>) -> squeue::Entry {
    let fd = types::Fd(fd);
    let Lending { lent, area } = lending;
    let (ptr, len) = match lent {
        // `check_buffers` has bounded every length by u32::MAX.
        Lent::Buf { raw, .. } => (raw.ptr, raw.len as u32),
        _ => (std::ptr::null_mut(), 0),
    };
    // Offsets: io_uring takes -1 (u64::MAX) as "the file position", as CURRENT_POSITION is.
    match op {
        Op::Nop => opcode::Nop::new().build(),
        Op::Timer => {
            let Lent::Timer(ts) = lent else {
                unreachable!("a timer lends its timespec")
            };
            // `Timespec` has the layout of `struct __kernel_timespec`, as `types::Timespec` does
            // (asserted above).
            opcode::Timeout::new((ts as *const Timespec).cast::<types::Timespec>()).build()
        }
        Op::Read { offset } => opcode::Read::new(fd, ptr, len).offset(offset).build(),
        Op::Write { offset } => opcode::Write::new(fd, ptr, len).offset(offset).build(),
        Op::Recv { flags } => opcode::Recv::new(fd, ptr, len).flags(flags).build(),
        // No buffer now: the kernel takes one from the port's ring when data is there (length 0:
        // the whole buffer).
        // One request that stays armed: a completion per message, each in a buffer of the ring
        // (Linux 6.0; `Driver::supports` checks the probe).
        Op::RecvProvided {
            flags,
            multishot: true,
        } => opcode::RecvMulti::new(fd, crate::io::PROVIDED_GROUP)
            .flags(flags)
            .build(),
        Op::RecvProvided {
            flags,
            multishot: false,
        } => opcode::Recv::new(fd, std::ptr::null_mut(), 0)
            .flags(flags)
            .buf_group(crate::io::PROVIDED_GROUP)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT),
        Op::Send { flags } => opcode::Send::new(fd, ptr, len)
            .flags(flags | libc::MSG_NOSIGNAL)
            .build(),
        Op::Readv { offset } | Op::Writev { offset } => {
            let Lent::Bufs { iov, .. } = lent else {
                unreachable!("vectored I/O lends an iovec array")
            };
            let (p, n) = (iov.0.as_ptr(), iov.0.len() as u32);
            if matches!(op, Op::Readv { .. }) {
                opcode::Readv::new(fd, p, n).offset(offset).build()
            } else {
                opcode::Writev::new(fd, p, n).offset(offset).build()
            }
        }
        Op::RecvFrom => opcode::RecvMsg::new(fd, &mut area.msg.hdr).build(),
        Op::SendTo => opcode::SendMsg::new(fd, &area.msg.hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build(),
        Op::Accept => opcode::Accept::new(
            fd,
            (&mut area.addr as *mut SockAddrStorage).cast::<libc::sockaddr>(),
            &mut area.addr_len,
        )
        .flags(libc::SOCK_CLOEXEC)
        .build(),
        // Linux 5.19; `Driver::supports` checks the probe.
        Op::AcceptMulti => opcode::AcceptMulti::new(fd)
            .flags(libc::SOCK_CLOEXEC)
            .build(),
        Op::Connect => opcode::Connect::new(
            fd,
            (&area.addr as *const SockAddrStorage).cast::<libc::sockaddr>(),
            area.addr_len,
        )
        .build(),
        Op::Shutdown(how) => {
            let how = match how {
                Shutdown::Read => libc::SHUT_RD,
                Shutdown::Write => libc::SHUT_WR,
                Shutdown::Both => libc::SHUT_RDWR,
            };
            opcode::Shutdown::new(fd, how).build()
        }
        Op::Fsync { datasync } => {
            let flags = if datasync {
                types::FsyncFlags::DATASYNC
            } else {
                types::FsyncFlags::empty()
            };
            opcode::Fsync::new(fd).flags(flags).build()
        }
        Op::Poll(interest) => opcode::PollAdd::new(fd, interest.bits()).build(),
        Op::TransmitFile => {
            let Lent::File {
                pipe: Some(pipe), ..
            } = lent
            else {
                unreachable!("transmit_file on io_uring lends a pipe")
            };
            // The stage `area.transmit` stands at: from the file into the empty pipe, else from the
            // pipe into the socket, saying more follows unless this is the end.
            let t = &area.transmit;
            if t.waiting_writable {
                // The non-blocking socket had no room: wait for it, then splice again.
                return opcode::PollAdd::new(fd, libc::POLLOUT as u32).build();
            }
            if t.waiting_readable {
                return opcode::PollAdd::new(types::Fd(t.file), libc::POLLIN as u32).build();
            }
            if t.in_pipe == 0 {
                let chunk = (t.len - t.done).min(pipe.capacity);
                opcode::Splice::new(
                    types::Fd(t.file),
                    (t.offset + u64::from(t.done)) as i64,
                    types::Fd(pipe.write.as_raw_fd()),
                    -1,
                    chunk,
                )
                .build()
            } else {
                // The chunk that ends the range, or the file (where it ended when the operation
                // started, or where a short read says it may end now), goes without MORE: its
                // tail would stay corked in the socket.
                let more = if !t.short && t.done + t.in_pipe < t.end.min(t.len) {
                    libc::SPLICE_F_MORE
                } else {
                    0
                };
                opcode::Splice::new(types::Fd(pipe.read.as_raw_fd()), -1, fd, -1, t.in_pipe)
                    .flags(more)
                    .build()
            }
        }
    }
}
