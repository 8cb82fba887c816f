//! Edges where a readiness backend easily differs from io_uring (found in the review of the epoll
//! backend; `scripts/test.sh` runs this file on both backends): a file read whose range is only
//! partly cached, a shutdown behind a send that waits, a `MSG_DONTWAIT` receive behind one that
//! waits, and `MSG_WAITALL`.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use iocport::{CompletionPort, Started};
use uio::{get, pattern_bytes, TempDir};

fn pending<T, B>(s: Started<T, B>) {
    assert!(matches!(s, Started::Pending(_)), "completed at once");
}

/// A file of `len` bytes whose second half is not in the page cache (written, synced, dropped
/// from the cache) and whose first half is.
fn half_cached_file(dir: &TempDir, len: usize) -> std::fs::File {
    let mut f = dir.file("half");
    f.write_all(&pattern_bytes(0, len)).unwrap();
    f.sync_all().unwrap();
    let fd = f.as_raw_fd();
    // SAFETY: no pointers; advice on the fd's own pages.
    let rc = unsafe { libc::posix_fadvise(fd, 0, len as i64, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
    let mut first = vec![0; len / 2];
    let mut r = dir.reopen("half");
    r.read_exact(&mut first).unwrap();
    r
}

// Catches: a read at an offset tried at once with RWF_NOWAIT (the epoll backend's first try, and
// skip-on-success on either backend) whose range is only partly cached came back short, as if the
// file ended there.
#[test]
fn a_partly_cached_read_is_whole() {
    const LEN: usize = 4 << 20;
    let dir = TempDir::new("edges-cache");
    for skip in [false, true] {
        let file = half_cached_file(&dir, LEN);
        let port: CompletionPort<u32> = CompletionPort::new(2);
        let h = port.associate(file, 1).unwrap();
        h.set_skip_on_success(skip);
        let mut p = match h.read_at(vec![0; LEN], 0, 7).unwrap() {
            Started::Done(p) => p,
            Started::Pending(_) => get(&port, "the read"),
        };
        assert!(p.status.is_ok(), "{:?}", p.status);
        assert_eq!(p.bytes, LEN, "skip-on-success {skip}: a short read");
        let buf = p.take_buf().unwrap();
        assert!(
            buf == pattern_bytes(0, LEN),
            "skip-on-success {skip}: wrong data"
        );
        drop(h);
        port.close();
    }
}

// Catches: a shutdown queued behind a send that waits for the peer (the epoll backend kept the
// operations of one direction in order), so a program could not end a stuck connection.
#[test]
fn shutdown_does_not_wait_behind_a_stuck_send() {
    let port: CompletionPort<u32> = CompletionPort::new(2);
    let (mut ours, _theirs) = uio::tcp_pair();
    // Fill the socket's buffers (the peer never reads), so that the send below waits.
    ours.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 1 << 16];
    while ours.write(&chunk).is_ok() {}
    ours.set_nonblocking(false).unwrap();
    let h = port.associate(ours, 1).unwrap();
    pending(h.send(chunk, 0, 1).unwrap());
    std::thread::sleep(Duration::from_millis(50));
    uio::assert_no_packet(&port, "a send into full buffers");
    let start = Instant::now();
    let _ = h.shutdown(Shutdown::Both, 2).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let p = get(&port, "the shutdown and the send");
        if p.value == 2 {
            assert!(p.status.is_ok(), "shutdown: {:?}", p.status);
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "the shutdown waited {:?}",
                start.elapsed()
            );
        }
        seen.push(p.value);
    }
    seen.sort_unstable();
    assert_eq!(seen, [1, 2]);
    drop(h);
    port.close();
}

// Catches: a MSG_DONTWAIT receive queued behind a receive that waits for data, instead of ending
// at once with EAGAIN as it does on io_uring.
#[test]
fn a_dontwait_recv_does_not_wait_behind_another() {
    let port: CompletionPort<u32> = CompletionPort::new(2);
    let (ours, mut theirs) = uio::tcp_pair();
    let h = port.associate(ours, 1).unwrap();
    pending(h.recv(vec![0; 16], 0, 1).unwrap());
    match h.recv(vec![0; 16], libc::MSG_DONTWAIT, 2).unwrap() {
        Started::Done(p) => panic!("not a skip-on-success handle: {p:?}"),
        Started::Pending(_) => {}
    }
    let p = get(&port, "the MSG_DONTWAIT recv");
    assert_eq!(p.value, 2, "the waiting recv completed first: {p:?}");
    assert_eq!(p.status.errno(), Some(libc::EAGAIN));
    theirs.write_all(b"x").unwrap();
    let p = get(&port, "the waiting recv");
    assert_eq!((p.value, p.bytes), (1, 1));
    drop(h);
    port.close();
}

// Catches: MSG_WAITALL ignored (a receive completing with what had arrived so far), where io_uring
// completes it only once the buffer is full, the peer closes, or an error comes.
#[test]
fn msg_waitall_fills_the_buffer() {
    let port: CompletionPort<u32> = CompletionPort::new(2);
    let (ours, mut theirs) = uio::tcp_pair();
    let h = port.associate(ours, 1).unwrap();
    pending(h.recv(vec![0; 100], libc::MSG_WAITALL, 1).unwrap());
    theirs.write_all(&[1; 40]).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    uio::assert_no_packet(&port, "40 of 100 bytes");
    theirs.write_all(&[2; 60]).unwrap();
    let mut p = get(&port, "the MSG_WAITALL recv");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.bytes, 100);
    let buf = p.take_buf().unwrap();
    assert!(buf[..40].iter().all(|&b| b == 1) && buf[40..].iter().all(|&b| b == 2));
    // The peer closes early: what arrived.
    pending(h.recv(vec![0; 100], libc::MSG_WAITALL, 2).unwrap());
    theirs.write_all(&[3; 10]).unwrap();
    theirs.shutdown(Shutdown::Write).unwrap();
    let p = get(&port, "the MSG_WAITALL recv at EOF");
    assert_eq!((p.value, p.bytes), (2, 10));
    drop(h);
    port.close();
}
