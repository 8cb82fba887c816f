//! Buffers the program gives the port ([`CompletionPort::provide_buffers`]) for
//! [`Handle::recv_provided`]: a receive that takes no buffer when it starts and is given one only
//! when data arrives, so that a connection waiting for its next request holds no buffer.
//!
//! Each buffer has an id (its index in the port's table). On io_uring the ids and addresses go
//! into a *provided buffer ring* registered with the kernel (`IORING_REGISTER_PBUF_RING`, Linux
//! 5.19): a receive started with `IOSQE_BUFFER_SELECT` takes the oldest entry when it runs and
//! reports its id in the completion's flags. On the epoll backend the same ring is a list the
//! receive takes from when its socket is readable, reporting the id through the slot. Either way
//! the op table takes the buffer out of the table by id and hands it back in the packet; the
//! program gives it to the port again when it is done with it.
//!
//! A receive that runs while the port has no buffer ends with `ENOBUFS` (both backends): the
//! program provides more and receives again.
//!
//! [`CompletionPort::provide_buffers`]: crate::CompletionPort::provide_buffers
//! [`Handle::recv_provided`]: crate::Handle::recv_provided

use std::alloc::Layout;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::buf::IoBuf;
use crate::sync::{lock, Mutex};

/// The most buffers a port holds at once (the ring's size; the kernel allows 32768).
pub(crate) const CAPACITY: usize = 4096;
/// The buffer group id of the port's ring.
#[cfg_attr(loom, allow(dead_code))] // the model ring has no provided buffers
pub(crate) const GROUP: u16 = 0x10c;

/// One entry of the kernel's provided buffer ring (`struct io_uring_buf`); the `resv` field of
/// the first entry is the ring's tail.
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<RingEntry>() == 16);

/// The ring's memory: page-aligned, `CAPACITY` entries, registered with the kernel by the
/// io_uring backend; on the epoll backend it is unused.
pub(crate) struct Ring {
    base: *mut RingEntry,
}

// SAFETY: the memory is owned by the ring and only written under the pool's lock (the kernel
// reads it); the pointer is never handed out but for registration.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

#[cfg_attr(loom, allow(dead_code))]
impl Ring {
    fn layout() -> Layout {
        Layout::from_size_align(CAPACITY * std::mem::size_of::<RingEntry>(), 4096)
            .expect("a valid layout")
    }

    pub(crate) fn new() -> Ring {
        // SAFETY: the layout has a non-zero size; zeroed memory is a valid empty ring (tail 0).
        let base = unsafe { std::alloc::alloc_zeroed(Self::layout()) }.cast::<RingEntry>();
        if base.is_null() {
            std::alloc::handle_alloc_error(Self::layout());
        }
        Ring { base }
    }

    /// The ring's address, for `io_uring_register`.
    pub(crate) fn addr(&self) -> u64 {
        self.base as u64
    }

    /// The tail, in the first entry's `resv` field (`struct io_uring_buf_ring`).
    fn tail(&self) -> &AtomicU16 {
        // SAFETY: `resv` of entry 0 is a u16 inside the ring's memory, aligned to 2, and is only
        // accessed atomically (the kernel reads it with acquire semantics).
        unsafe { &*std::ptr::addr_of!((*self.base).resv).cast::<AtomicU16>() }
    }

    /// Appends an entry and publishes it.
    fn push(&self, addr: u64, len: u32, bid: u16) {
        let tail = self.tail().load(Ordering::Relaxed);
        let i = usize::from(tail) & (CAPACITY - 1);
        // SAFETY: `i` is within the ring; the entry past the tail is not the kernel's until the
        // tail moves over it. Field by field, so that entry 0's `resv` (the tail) is not written.
        unsafe {
            let e = self.base.add(i);
            std::ptr::addr_of_mut!((*e).addr).write(addr);
            std::ptr::addr_of_mut!((*e).len).write(len);
            std::ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail().store(tail.wrapping_add(1), Ordering::Release);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout. The ring is dropped with the port's I/O,
        // after the backend (and with it the kernel's registration) is gone.
        unsafe { std::alloc::dealloc(self.base.cast(), Self::layout()) };
    }
}

/// What the epoll backend's receive takes from: the buffers not yet taken, oldest first, as
/// `(id, address, length)`. Type-free, so that the backend needs no buffer type.
#[derive(Default)]
pub(crate) struct Available {
    list: Mutex<VecDeque<(u16, usize, u32)>>,
}

#[cfg_attr(loom, allow(dead_code))]
impl Available {
    /// Takes the oldest buffer, if any.
    pub(crate) fn take(&self) -> Option<(u16, *mut u8, usize)> {
        lock(&self.list)
            .pop_front()
            .map(|(bid, addr, len)| (bid, addr as *mut u8, len as usize))
    }

    /// Puts back a buffer a receive took but did not use (it would have blocked), first in line.
    pub(crate) fn put_back(&self, bid: u16, addr: *mut u8, len: usize) {
        lock(&self.list).push_front((bid, addr as usize, len as u32));
    }
}

/// The port's provided buffers.
pub(crate) struct Provided<B> {
    /// Buffers by id; `None` where a receive has it (or the id is free).
    table: Vec<Option<B>>,
    /// Ids not in use.
    free: Vec<u16>,
    /// The kernel's ring (io_uring), created with the first buffers or receive.
    pub(crate) ring: Option<Ring>,
    /// The backend keeps the buffers in the list (`Available`) instead (epoll).
    pub(crate) listed: bool,
}

impl<B> Default for Provided<B> {
    fn default() -> Self {
        Provided {
            table: Vec::new(),
            free: Vec::new(),
            ring: None,
            listed: false,
        }
    }
}

impl<B: IoBuf> Provided<B> {
    /// Buffers the port can take now (at most).
    pub(crate) fn room(&self) -> usize {
        CAPACITY - self.table.len() + self.free.len()
    }

    /// Adds `buf`, whose memory is `addr` and `len` bytes (read before any lock was taken), to the
    /// pool: into the table under a free id, and into the kernel's ring (or the epoll backend's
    /// list). The caller has checked there is room.
    pub(crate) fn add(&mut self, buf: B, addr: *mut u8, len: u32, available: &Available) {
        let bid = match self.free.pop() {
            Some(bid) => bid,
            None => {
                self.table.push(None);
                (self.table.len() - 1) as u16
            }
        };
        self.table[usize::from(bid)] = Some(buf);
        match &self.ring {
            Some(ring) => ring.push(addr as u64, len, bid),
            None => lock(&available.list).push_back((bid, addr as usize, len)),
        }
    }

    /// Takes buffer `bid` out of the pool: a receive has used it.
    pub(crate) fn take(&mut self, bid: u16) -> Option<B> {
        let buf = self.table.get_mut(usize::from(bid))?.take()?;
        self.free.push(bid);
        Some(buf)
    }
}
