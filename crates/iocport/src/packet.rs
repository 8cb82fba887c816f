//! Completion packets: what a port queues and what `get` hands out.
//!
//! Kept apart from the port and the I/O layer, which both produce packets, so that neither imports
//! the other for them.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use crate::id::OpId;

/// The outcome carried by a packet: success, or the OS error of the operation it reports.
///
/// User packets posted with [`CompletionPort::post`](crate::CompletionPort::post) always carry [`Status::SUCCESS`]. A failed I/O is
/// reported as a packet whose status holds the error, not as a failed [`get`](crate::CompletionPort::get).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status(i32);

impl Status {
    /// The operation succeeded.
    pub const SUCCESS: Status = Status(0);

    /// A status carrying the OS error `errno` (a positive `E*` value; 0 means success).
    pub const fn from_errno(errno: i32) -> Status {
        Status(errno)
    }

    /// Whether the operation succeeded.
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// The OS error number, or `None` on success.
    pub const fn errno(self) -> Option<i32> {
        if self.0 == 0 {
            None
        } else {
            Some(self.0)
        }
    }

    /// The error as an [`std::io::Error`], or `None` on success.
    pub fn error(self) -> Option<std::io::Error> {
        self.errno().map(std::io::Error::from_raw_os_error)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error() {
            None => f.write_str("Status::SUCCESS"),
            Some(e) => write!(f, "Status({}: {e})", self.0),
        }
    }
}

/// A completion packet: what [`get`](crate::CompletionPort::get) returns.
///
/// The Win32 equivalent is an `OVERLAPPED_ENTRY`: the completion key, the number of bytes transferred,
/// the status, and the operation's own context (here an owned value of the program's choosing, and
/// the buffers or socket the operation hands back in [`data`](Packet::data)).
#[doc(alias = "OVERLAPPED_ENTRY")]
#[derive(Debug)]
pub struct Packet<T, B = Vec<u8>> {
    /// The completion key of the handle (or the key given to [`post`](crate::CompletionPort::post)).
    #[doc(alias = "lpCompletionKey")]
    pub key: usize,
    /// The number of bytes transferred (for [`poll`](crate::Handle::poll): the `poll(2)` events
    /// that are ready).
    #[doc(alias = "lpNumberOfBytesTransferred")]
    pub bytes: usize,
    /// Success, or the error of the operation this packet reports.
    pub status: Status,
    /// The operation this packet reports; `None` for posted packets and for operations that
    /// completed at once on a skip-on-success handle.
    pub op: Option<OpId>,
    /// The operation's context, handed back.
    #[doc(alias = "lpOverlapped")]
    pub value: T,
    /// What the operation hands back: its buffers, or the accepted socket.
    pub data: Data<B>,
}

impl<T, B> Packet<T, B> {
    /// A successful packet carrying no data.
    pub const fn new(key: usize, bytes: usize, value: T) -> Packet<T, B> {
        Packet {
            key,
            bytes,
            status: Status::SUCCESS,
            op: None,
            value,
            data: Data::None,
        }
    }

    /// The same packet with `status`.
    pub fn with_status(mut self, status: Status) -> Packet<T, B> {
        self.status = status;
        self
    }

    /// The operation's result in `std` form: the bytes transferred, or the error.
    pub fn result(&self) -> std::io::Result<usize> {
        match self.status.error() {
            None => Ok(self.bytes),
            Some(e) => Err(e),
        }
    }

    /// Takes the buffer out of [`data`](Packet::data) (single-buffer operations and `recv_from`).
    pub fn take_buf(&mut self) -> Option<B> {
        match std::mem::replace(&mut self.data, Data::None) {
            Data::Buf(b) | Data::From(b, _) => Some(b),
            other => {
                self.data = other;
                None
            }
        }
    }

    /// Takes the buffers of a vectored operation out of [`data`](Packet::data).
    pub fn take_bufs(&mut self) -> Option<Vec<B>> {
        match std::mem::replace(&mut self.data, Data::None) {
            Data::Bufs(b) => Some(b),
            other => {
                self.data = other;
                None
            }
        }
    }

    /// Takes the socket an `accept` created out of [`data`](Packet::data).
    pub fn take_socket(&mut self) -> Option<OwnedFd> {
        match std::mem::replace(&mut self.data, Data::None) {
            Data::Accepted(s, _) => Some(s),
            other => {
                self.data = other;
                None
            }
        }
    }

    /// The peer address of `accept` or `recv_from`, if the kernel reported one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match &self.data {
            Data::From(_, a) | Data::Accepted(_, a) => a.as_deref().copied(),
            _ => None,
        }
    }
}

impl<T: PartialEq, B: PartialEq> PartialEq for Packet<T, B> {
    fn eq(&self, other: &Self) -> bool {
        (self.key, self.bytes, self.status, self.op)
            == (other.key, other.bytes, other.status, other.op)
            && self.value == other.value
            && self.data == other.data
    }
}

impl<T: Eq, B: Eq> Eq for Packet<T, B> {}

/// Compares sockets by fd number.
impl<B: PartialEq> PartialEq for Data<B> {
    fn eq(&self, other: &Self) -> bool {
        use std::os::fd::AsRawFd;
        match (self, other) {
            (Data::None, Data::None) => true,
            (Data::Buf(a), Data::Buf(b)) => a == b,
            (Data::Bufs(a), Data::Bufs(b)) => a == b,
            (Data::From(a, x), Data::From(b, y)) => a == b && x == y,
            (Data::Accepted(a, x), Data::Accepted(b, y)) => {
                a.as_raw_fd() == b.as_raw_fd() && x == y
            }
            _ => false,
        }
    }
}

impl<B: Eq> Eq for Data<B> {}

/// What an operation hands back in its packet, whatever its outcome.
#[derive(Debug, Default)]
pub enum Data<B> {
    /// Nothing: posted packets, `nop`, `timer`, `connect`, `shutdown`, `fsync`, `poll`, and `accept`
    /// when it failed.
    #[default]
    None,
    /// The buffer of `read`, `write`, `read_at`, `write_at`, `recv`, `send`.
    Buf(B),
    /// The buffers of `readv`, `writev`.
    Bufs(Vec<B>),
    /// The buffer of `recv_from` (with the sender's address) or `send_to`. The address is boxed,
    /// so that every packet stays small (80 bytes with a `usize` value and `Vec` buffers, where
    /// an inline address would make it 104): a packet that carries one costs one small
    /// allocation.
    From(B, Option<Box<SocketAddr>>),
    /// The socket `accept` created (close-on-exec, blocking mode as the listener's), and the peer's
    /// address. Associate it with a port to start operations on it.
    Accepted(OwnedFd, Option<Box<SocketAddr>>),
}
