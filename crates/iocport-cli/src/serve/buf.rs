//! The buffer type of the server's port: bytes, how many of them are in use, and the window of them
//! that the next operation reads into or sends from.
//!
//! Operations take their buffer by value and hand it back in their packet ([`iocport::IoBuf`]), and
//! they always use the buffer's first `len()` bytes. A `Vec<u8>` would therefore force a copy to
//! receive behind bytes already there (a request that arrived in parts) or to send the rest of a
//! partly sent response. [`Buf`] moves a window instead: a recv fills the free tail, a read of a
//! file chunk lands right behind the response headers, and a partial send resumes where it stopped.

use std::sync::{Mutex, MutexGuard};

use iocport::IoBuf;

/// A heap buffer: `data` (every byte initialised, so growing zero-fills once and reuse never does),
/// `used` bytes of content at its start, and the window `[lo, hi)` the next operation uses.
///
/// Invariant: `lo <= hi <= data.len()` and `used <= data.len()`.
#[derive(Debug, Default)]
pub(super) struct Buf {
    data: Vec<u8>,
    used: usize,
    lo: usize,
    hi: usize,
}

impl Buf {
    /// An empty buffer with `size` bytes of room.
    pub(super) fn with_size(size: usize) -> Buf {
        Buf {
            data: vec![0; size],
            used: 0,
            lo: 0,
            hi: 0,
        }
    }

    /// The bytes in use.
    pub(super) fn content(&self) -> &[u8] {
        &self.data[..self.used]
    }

    /// How many bytes are in use.
    pub(super) fn used(&self) -> usize {
        self.used
    }

    /// How many bytes the buffer can hold without growing.
    pub(super) fn size(&self) -> usize {
        self.data.len()
    }

    /// Makes room for at least `size` bytes in all.
    pub(super) fn grow_to(&mut self, size: usize) {
        if self.data.len() < size {
            self.data.resize(size, 0);
        }
    }

    /// Replaces the storage by a fresh one of `size` bytes if it is larger than `limit` and holds
    /// nothing.
    pub(super) fn shrink_if_over(&mut self, limit: usize, size: usize) {
        if self.used == 0 && self.data.len() > limit {
            *self = Buf::with_size(size);
        }
    }

    /// Moves the content into `storage` (which must hold it) and returns the old storage; the
    /// window is emptied.
    pub(super) fn swap_storage(&mut self, mut storage: Vec<u8>) -> Vec<u8> {
        if storage.len() < self.used {
            storage.resize(self.used, 0);
        }
        storage[..self.used].copy_from_slice(&self.data[..self.used]);
        self.lo = self.used;
        self.hi = self.used;
        std::mem::replace(&mut self.data, storage)
    }

    /// Empties the buffer (keeping its storage).
    pub(super) fn clear(&mut self) {
        self.used = 0;
        self.lo = 0;
        self.hi = 0;
    }

    /// Appends `bytes`, growing the storage if needed.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        let end = self.used + bytes.len();
        if end > self.data.len() {
            // At least double, so that a response built piece by piece grows a few times at most.
            self.data.resize(end.max(2 * self.data.len()), 0);
        }
        self.data[self.used..end].copy_from_slice(bytes);
        self.used = end;
    }

    /// Drops the first `n` bytes in use, moving the rest to the front.
    pub(super) fn consume(&mut self, n: usize) {
        let n = n.min(self.used);
        self.data.copy_within(n..self.used, 0);
        self.used -= n;
    }

    /// Sets the window to the free tail `[used, used + n)`, growing the storage if needed: the next
    /// recv or read fills it, and [`filled`](Self::filled) then counts what arrived as used.
    pub(super) fn window_tail(&mut self, n: usize) {
        self.grow_to(self.used + n);
        self.lo = self.used;
        self.hi = self.used + n;
    }

    /// Counts the first `n` bytes of the window (as just filled by a recv or read) as used.
    pub(super) fn filled(&mut self, n: usize) {
        let n = n.min(self.hi - self.lo);
        self.used = self.lo + n;
        self.lo = self.used;
        self.hi = self.used;
    }

    /// Sets the window to the bytes in use from `from` on: the next send sends them.
    pub(super) fn window_content(&mut self, from: usize) {
        self.lo = from.min(self.used);
        self.hi = self.used;
    }
}

// SAFETY: `as_mut_ptr` points into `data`, a Vec whose heap storage does not move when the `Buf` is
// moved; `data[lo..hi]` is in bounds by the invariant (slicing checks it), and `len` is `hi - lo`,
// exactly the bytes of that slice, all initialised. Neither the storage nor the window changes
// except through `&mut self` methods, which the port never calls while an operation owns the value.
unsafe impl IoBuf for Buf {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.data[self.lo..self.hi].as_mut_ptr()
    }

    fn len(&self) -> usize {
        self.hi - self.lo
    }
}

/// Large buffers kept for reuse, so that streaming a file does not allocate and zero-fill a chunk
/// buffer per response.
#[derive(Debug)]
pub(super) struct Pool {
    bufs: Mutex<Vec<Vec<u8>>>,
    /// The size of the buffers handed out.
    size: usize,
    /// The most buffers kept.
    keep: usize,
}

impl Pool {
    /// A pool of buffers of `size` bytes, keeping at most `keep` of them.
    pub(super) fn new(size: usize, keep: usize) -> Pool {
        Pool {
            bufs: Mutex::new(Vec::new()),
            size,
            keep,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.bufs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The size of the buffers handed out.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// A buffer of at least [`size`](Self::size) bytes: a kept one, or a new one.
    pub(super) fn take(&self) -> Vec<u8> {
        let kept = self.lock().pop();
        kept.unwrap_or_else(|| vec![0; self.size])
    }

    /// Keeps `buf` for reuse if it is large enough and the pool is not full.
    pub(super) fn give(&self, buf: Vec<u8>) {
        if buf.len() >= self.size {
            let mut bufs = self.lock();
            if bufs.len() < self.keep {
                bufs.push(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_follows_content() {
        let mut b = Buf::with_size(4);
        b.push(b"abc");
        b.window_tail(8);
        assert_eq!(IoBuf::len(&b), 8);
        assert!(b.size() >= 11);
        b.filled(2);
        assert_eq!(b.used(), 5);
        b.window_content(1);
        assert_eq!(IoBuf::len(&b), 4);
        b.consume(2);
        assert_eq!(&b.content()[..1], b"c");
        assert_eq!(b.used(), 3);
        b.clear();
        assert_eq!(b.used(), 0);
        assert_eq!(IoBuf::len(&b), 0);
    }

    #[test]
    fn storage_moves_with_its_content() {
        let mut b = Buf::with_size(4);
        b.push(b"abcd");
        let old = b.swap_storage(vec![0; 100]);
        assert_eq!((old.len(), b.size(), b.content()), (4, 100, &b"abcd"[..]));
        let pool = Pool::new(64, 1);
        pool.give(b.swap_storage(vec![0; 8]));
        pool.give(vec![0; 64]);
        assert_eq!(pool.take().len(), 100);
        assert_eq!(pool.take().len(), 64);
        assert_eq!(b.content(), b"abcd");
    }
}
