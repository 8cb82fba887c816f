//! Owned buffers that operations borrow from the program and hand back in their packet.
//!
//! An operation takes its buffer by value; the port keeps it (in the operation's slot) until the
//! kernel is done with it, and returns it in the completion packet ([`Data`](crate::Data)). Safe code
//! therefore can never free or move memory the kernel still reads or writes, whatever it does with
//! its handles.

/// A buffer the kernel may read from and write into while an operation runs.
///
/// Reads fill the first [`len`](IoBuf::len) bytes (a `Vec<u8>` made with `vec![0; n]` reads up to
/// `n` bytes; the packet's `bytes` says how many arrived); writes send the first `len` bytes.
///
/// # Safety
///
/// Implementations must guarantee that `as_mut_ptr()` points to `len()` bytes that stay valid and at
/// the same address while the value is moved around (its storage is on the heap or otherwise
/// pinned), and that neither changes as long as the value is not accessed through `&mut`. The port
/// relies on this to hand the pointer to the kernel.
pub unsafe trait IoBuf: Send + 'static {
    /// A pointer to the first byte.
    fn as_mut_ptr(&mut self) -> *mut u8;
    /// How many bytes the kernel may read or write.
    fn len(&self) -> usize;
    /// Whether the buffer has no bytes (operations reject such buffers).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: a Vec's elements live on the heap and do not move when the Vec is moved; `len` bytes are
// initialised and owned by it.
unsafe impl IoBuf for Vec<u8> {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_slice().as_mut_ptr()
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

// SAFETY: a boxed slice lives on the heap and does not move when the box is moved.
unsafe impl IoBuf for Box<[u8]> {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        <[u8]>::as_mut_ptr(self)
    }
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
}

// SAFETY: a BytesMut's bytes live in a heap allocation it owns (or shares, read-only parts aside:
// `as_mut` gives a unique view); moving the handle does not move them.
#[cfg(feature = "bytes")]
unsafe impl IoBuf for bytes::BytesMut {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        AsMut::<[u8]>::as_mut(self).as_mut_ptr()
    }
    fn len(&self) -> usize {
        bytes::BytesMut::len(self)
    }
}
