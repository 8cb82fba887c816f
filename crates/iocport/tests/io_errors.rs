//! Synchronous errors and edge conditions of the I/O API: fds associated twice, empty and oversize
//! buffers, operations on a closed port, ids from another port, the error messages, and a tiny
//! ring flooded with operations (none may be lost).

#[path = "util/io.rs"]
mod uio;
mod util;

use std::collections::HashSet;
use std::io::Write;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use iocport::{Builder, CompletionPort, Data, Error, IoBuf, OpError, Started};
use uio::{get, get_n, TempDir};

/// Associates a second owner of `raw` (same number) and expects AlreadyAssociated; the library
/// forgets that owner on this error, so the fd is not closed twice.
fn associate_again<B: IoBuf>(port: &CompletionPort<u32, B>, raw: i32) -> Error {
    // SAFETY: `raw` is open (another handle owns it). The second owner never closes it: the
    // library forgets it on AlreadyAssociated, and if the association wrongly succeeds we forget the
    // handle (leaking it) before failing the test.
    let second = unsafe { OwnedFd::from_raw_fd(raw) };
    match port.associate(second, 99) {
        Err(e) => e,
        Ok(h) => {
            std::mem::forget(h);
            panic!("fd {raw} associated twice");
        }
    }
}

// Catches: an fd associated with two ports (or twice with one), the failed association closing
// the fd under its first handle, the number staying "associated" after its handle is gone.
#[test]
fn associating_an_fd_twice_fails() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let other: CompletionPort<u32> = CompletionPort::new(1);
    let (a, mut b) = UnixStream::pair().unwrap();
    let raw = a.as_raw_fd();
    let h = port.associate(a, 1).unwrap();
    for p in [&port, &other] {
        match associate_again(p, raw) {
            Error::AlreadyAssociated { fd } => assert_eq!(fd, raw),
            e => panic!("expected AlreadyAssociated, got {e}"),
        }
    }
    let msg = associate_again(&port, raw).to_string();
    assert!(
        msg.contains(&format!("fd {raw}")) && msg.contains("already associated"),
        "{msg}"
    );
    // The first handle still works: its fd was not closed by the failed attempts.
    h.recv(vec![0; 4], 0, 1).unwrap();
    b.write_all(b"ok").unwrap();
    let p = get(&port, "recv on the first handle");
    assert_eq!((p.bytes, p.status.is_ok()), (2, true), "{p:?}");
    drop(h);
    // The number is free again once the handle is gone: the next fd with it can be associated.
    // (Other tests of this binary open fds concurrently and may take the number first; then this
    // part is skipped.)
    let mut spare = Vec::new();
    let again = loop {
        let (x, y) = UnixStream::pair().unwrap();
        if x.as_raw_fd() == raw {
            break Some(x);
        }
        if y.as_raw_fd() == raw {
            break Some(y);
        }
        spare.push((x, y));
        if spare.len() >= 100 {
            break None;
        }
    };
    match again {
        Some(fd) => {
            let h2 = other
                .associate(fd, 2)
                .unwrap_or_else(|e| panic!("fd {raw} reused after its handle was dropped: {e}"));
            drop(h2);
        }
        None => eprintln!("fd {raw} was taken by a concurrent test; reuse not checked"),
    }
    drop(spare);
    port.close();
    other.close();
}

#[track_caller]
fn expect_invalid_buffer<T: PartialEq + std::fmt::Debug, B>(
    r: Result<Started<T, B>, OpError<T, B>>,
    op: &str,
    fd: i32,
    value: T,
) -> Data<B> {
    match r {
        Err(e) => {
            let msg = e.to_string();
            match &e.error {
                Error::InvalidBuffer {
                    op: o, fd: f, len, ..
                } => {
                    assert_eq!((*o, *f), (op, fd), "{msg}");
                    assert!(
                        msg.contains(&format!("{op} on fd {fd}")),
                        "message names op and fd: {msg}"
                    );
                    let _ = len;
                }
                other => panic!("{op}: expected InvalidBuffer, got {other}"),
            }
            assert_eq!(e.value, value, "{op}: value handed back");
            e.data
        }
        Ok(_) => panic!("{op} with an invalid buffer started"),
    }
}

// Catches: empty buffers submitted to the kernel (a 0-byte recv completes at once and looks like
// EOF), the error not naming the op and fd, the value or the buffers not handed back, a packet
// queued for an op that failed synchronously, skip-on-success bypassing the check.
#[test]
fn empty_buffers_are_rejected_with_everything_handed_back() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let dir = TempDir::new("errors");
    let f = port.associate(dir.file("f"), 1).unwrap();
    let ff = f.as_raw_fd();
    let (a, _b) = UnixStream::pair().unwrap();
    let s = port.associate(a, 2).unwrap();
    let sf = s.as_raw_fd();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = udp.local_addr().unwrap();
    let u = port.associate(udp, 3).unwrap();
    let uf = u.as_raw_fd();
    let buf = |d: Data<Vec<u8>>| match d {
        Data::Buf(b) | Data::From(b, _) => b,
        d => panic!("buffer not handed back: {d:?}"),
    };
    for skip in [false, true] {
        for h in [&f, &s, &u] {
            h.set_skip_on_success(skip);
        }
        let d = expect_invalid_buffer(f.read_at(Vec::new(), 0, 1), "read_at", ff, 1);
        assert!(buf(d).is_empty());
        expect_invalid_buffer(f.write_at(Vec::new(), 0, 2), "write_at", ff, 2);
        expect_invalid_buffer(f.read(Vec::new(), 3), "read", ff, 3);
        expect_invalid_buffer(f.write(Vec::new(), 4), "write", ff, 4);
        expect_invalid_buffer(s.recv(Vec::new(), 0, 5), "recv", sf, 5);
        expect_invalid_buffer(s.send(Vec::new(), 0, 6), "send", sf, 6);
        expect_invalid_buffer(u.recv_from(Vec::new(), 7), "recv_from", uf, 7);
        expect_invalid_buffer(u.send_to(Vec::new(), to, 8), "send_to", uf, 8);
        match expect_invalid_buffer(f.readv_at(Vec::new(), 0, 9), "readv", ff, 9) {
            Data::Bufs(b) => assert!(b.is_empty()),
            d => panic!("{d:?}"),
        }
        // One empty buffer among good ones: all of them come back, in order.
        let bufs = vec![vec![1; 4], Vec::new(), vec![3; 2]];
        match expect_invalid_buffer(f.writev_at(bufs.clone(), 0, 10), "writev", ff, 10) {
            Data::Bufs(b) => assert_eq!(b, bufs),
            d => panic!("{d:?}"),
        }
        expect_invalid_buffer(f.readv(vec![Vec::new()], 11), "readv", ff, 11);
        // More iovecs than IOV_MAX.
        let many = vec![vec![0u8; 1]; libc::UIO_MAXIOV as usize + 1];
        match expect_invalid_buffer(f.writev(many, 12), "writev", ff, 12) {
            Data::Bufs(b) => assert_eq!(b.len(), libc::UIO_MAXIOV as usize + 1),
            d => panic!("{d:?}"),
        }
        uio::assert_quiet_for(&port, Duration::from_millis(20), "no packet for failed ops");
    }
    drop((f, s, u));
    port.close();
}

/// A buffer larger than io_uring can move in one request (4 GiB), backed by an address-space
/// reservation: no memory is touched or committed.
struct Huge {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by the value alone and freed once, in drop.
unsafe impl Send for Huge {}

impl Huge {
    fn new(len: usize) -> Option<Huge> {
        // SAFETY: an anonymous private mapping at an address of the kernel's choice; no existing
        // memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then(|| Huge {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Huge {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, unmapped only here.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

// SAFETY: `ptr` points to a mapping of `len` bytes that lives (at the same address) as long as the
// value; moving the value does not move the mapping.
unsafe impl IoBuf for Huge {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
}

// Catches: a length over u32::MAX truncated into the SQE (a 4 GiB + 1 read silently becoming a
// 1-byte read), the oversize buffer not handed back; and a custom IoBuf type working at all.
#[test]
fn oversize_buffer_is_rejected() {
    let Some(huge) = Huge::new(u32::MAX as usize + 1) else {
        eprintln!("skipped: cannot reserve 4 GiB of address space");
        return;
    };
    let addr = huge.ptr;
    let port: CompletionPort<u32, Huge> = CompletionPort::with_concurrency(1);
    let dir = TempDir::new("huge");
    let mut file = dir.file("f");
    file.write_all(b"abc").unwrap();
    let h = port.associate(file, 1).unwrap();
    let raw = h.as_raw_fd();
    match expect_invalid_buffer(h.read_at(huge, 0, 1), "read_at", raw, 1) {
        Data::Buf(b) => assert_eq!((b.ptr, b.len), (addr, u32::MAX as usize + 1)),
        _ => panic!("the huge buffer is not handed back"),
    }
    // A small buffer of the same type works.
    h.read_at(Huge::new(4096).unwrap(), 0, 2).unwrap();
    let mut p = get(&port, "read into a mapped buffer");
    assert_eq!((p.bytes, p.status.is_ok()), (3, true));
    let b = p.take_buf().unwrap();
    // SAFETY: the mapping has 4096 bytes, 3 of them just read.
    assert_eq!(unsafe { std::slice::from_raw_parts(b.ptr, 3) }, b"abc");
    drop(h);
    port.close();
}

// Catches: operations started on a closed port (they would never get a packet), the value or
// buffer not handed back with Error::Closed, and associate succeeding on a closed port.
#[test]
fn operations_on_a_closed_port_fail_with_closed() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (a, _b) = UnixStream::pair().unwrap();
    let h = port.associate(a, 1).unwrap();
    assert!(port.close().is_empty());
    let e = port.nop(0, 1).unwrap_err();
    assert!(matches!(e.error, Error::Closed), "nop: {e}");
    assert_eq!(e.value, 1);
    assert_eq!(e.to_string(), "the completion port is closed");
    let e = port.timer(Duration::from_millis(1), 0, 2).unwrap_err();
    assert!(matches!(e.error, Error::Closed), "timer: {e}");
    assert_eq!(e.value, 2);
    let e = h.recv(vec![7; 5], 0, 3).unwrap_err();
    assert!(matches!(e.error, Error::Closed), "recv: {e}");
    assert_eq!(e.value, 3);
    assert!(matches!(e.data, Data::Buf(ref b) if b == &[7; 5]));
    let e = h.writev(vec![vec![1], vec![2]], 4).unwrap_err();
    assert!(matches!(e.error, Error::Closed), "writev: {e}");
    assert!(matches!(e.data, Data::Bufs(ref b) if b.len() == 2));
    // Inside a batch as well.
    let r = port.batch(|| port.nop(0, 5));
    assert!(matches!(
        r,
        Err(OpError {
            error: Error::Closed,
            value: 5,
            ..
        })
    ));
    assert_eq!(
        port.get(Some(Duration::ZERO)).unwrap_err(),
        iocport::GetError::Closed,
        "nothing was queued, and get reports the close"
    );
    drop(h);

    // A port that never did I/O refuses associations once closed.
    let fresh: CompletionPort<u32> = CompletionPort::new(1);
    fresh.close();
    let (c, _d) = UnixStream::pair().unwrap();
    assert!(matches!(fresh.associate(c, 1), Err(Error::Closed)));
}

// Catches: associate accepting an fd on a port that was closed after its first I/O: the handle's
// operations can never complete, and the fd number stays taken.
#[test]
fn associate_on_a_closed_port_with_io_fails() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    port.nop(0, 0).unwrap();
    get(&port, "nop");
    port.close();
    let (c, _d) = UnixStream::pair().unwrap();
    match port.associate(c, 1) {
        Err(Error::Closed) => {}
        Err(e) => panic!("expected Closed, got {e}"),
        Ok(h) => panic!("associate on a closed port succeeded: {h:?}"),
    }
}

// Catches: an id from one port cancelling an operation of another port (ids without a port tag).
#[test]
fn an_id_from_another_port_cancels_nothing() {
    let a: CompletionPort<u32> = CompletionPort::new(1);
    let b: CompletionPort<u32> = CompletionPort::new(1);
    let (x, _x) = UnixStream::pair().unwrap();
    let (y, mut y_peer) = UnixStream::pair().unwrap();
    let ha = a.associate(x, 1).unwrap();
    let hb = b.associate(y, 2).unwrap();
    let ida = ha.recv(vec![0; 4], 0, 1).unwrap().id().unwrap();
    let idb = hb.recv(vec![0; 4], 0, 2).unwrap().id().unwrap();
    let r = b.cancel(ida);
    assert!(
        matches!(r, Err(Error::NotFound { .. })),
        "port b cancelled port a's id {ida:?} (its own op is {idb:?}): {r:?}"
    );
    y_peer.write_all(b"b").unwrap();
    let p = get(&b, "b's recv unaffected");
    assert_eq!(
        (p.op, p.status.is_ok(), p.bytes),
        (Some(idb), true, 1),
        "{p:?}"
    );
    drop((ha, hb));
    a.close();
    b.close();
}

/// Checks that `packets` hold each value of `0..n` exactly once, all successful.
fn assert_each_once(packets: Vec<iocport::Packet<u32>>, n: usize, what: &str) {
    let mut seen = HashSet::with_capacity(n);
    for p in packets {
        assert!(p.status.is_ok(), "{what}: {p:?}");
        assert!(
            seen.insert(p.value),
            "{what}: two packets for op {}",
            p.value
        );
    }
    assert_eq!(seen.len(), n, "{what}: every op yields a packet");
    assert!(seen.iter().all(|&v| (v as usize) < n));
}

// Catches: completions lost when far more ops are in flight than the ring's submission and
// completion queues hold (CQ overflow not flushed, EBUSY not handled, a full SQ dropping entries),
// in single submissions and in batches.
#[test]
fn tiny_ring_flooded_loses_nothing() {
    const N: usize = 5_000;
    let port: CompletionPort<u32> = Builder::new().concurrency(1).entries(2).build().unwrap();
    // Unbatched nops.
    for i in 0..N {
        port.nop(1, i as u32).unwrap();
    }
    assert_each_once(get_n(&port, N, "nops"), N, "unbatched nops");
    uio::assert_no_packet(&port, "after the nops");
    // Batched nops: 5,000 in one batch, then in batches of 100.
    port.batch(|| {
        for i in 0..N {
            port.nop(2, i as u32).unwrap();
        }
    });
    assert_each_once(get_n(&port, N, "one batch"), N, "nops in one batch");
    for chunk in 0..N / 100 {
        port.batch(|| {
            for i in chunk * 100..(chunk + 1) * 100 {
                port.nop(3, i as u32).unwrap();
            }
        });
    }
    assert_each_once(get_n(&port, N, "batches"), N, "nops in batches of 100");

    // Reads in flight on a file, half batched.
    let dir = TempDir::new("flood");
    let mut f = dir.file("f");
    f.write_all(&uio::pattern_bytes(0, 64 * 1024)).unwrap();
    let h = port.associate(f, 4).unwrap();
    let read = |i: usize| {
        let off = (i * 13) as u64 % (64 * 1024 - 16);
        h.read_at(vec![0; 16], off, i as u32).unwrap();
    };
    (0..N / 2).for_each(read);
    port.batch(|| (N / 2..N).for_each(read));
    let packets = get_n(&port, N, "reads");
    for p in &packets {
        let off = (p.value as usize * 13) as u64 % (64 * 1024 - 16);
        assert_eq!(p.bytes, 16);
        assert!(
            matches!(&p.data, Data::Buf(b) if *b == uio::pattern_bytes(off, 16)),
            "read {} at {off} got the wrong bytes",
            p.value
        );
    }
    assert_each_once(packets, N, "reads");
    uio::assert_no_packet(&port, "no extra packets");
    drop(h);
    port.close();
}
