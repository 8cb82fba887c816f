//! `transmit_file`: a file range sent on a socket without a copy through user space, ending in one
//! packet, on both backends (io_uring splices through a pipe in stages, epoll uses `sendfile`):
//! whole ranges larger than a pipe, a range past the end of the file, bad lengths, the file let go
//! of while it runs, a peer that goes away (no signal), cancel, the handle dropped, the port
//! closed, and the thread that started it exiting.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use iocport::{CompletionPort, Error, Started};
use uio::{get, join_bounded, pattern_bytes, tcp_pair, TempDir};
use util::DEADLINE;

/// A file of `len` bytes of the test pattern.
fn pattern_file(dir: &TempDir, name: &str, len: usize) -> Arc<File> {
    let mut f = dir.file(name);
    f.write_all(&pattern_bytes(0, len)).unwrap();
    Arc::new(f)
}

/// Reads from `s` until end of stream (or `limit` bytes), on a thread.
fn reader(mut s: TcpStream, limit: usize) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0; 256 * 1024];
        while out.len() < limit {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out
    })
}

fn as_file(f: &Arc<File>) -> Arc<dyn AsFd + Send + Sync> {
    f.clone()
}

// Catches: a range larger than one pipe (several splice stages) cut short, reordered or sent from
// the wrong offset; a packet before the last byte is sent; `bytes` other than the count.
#[test]
fn a_range_larger_than_a_pipe_arrives_whole_in_one_packet() {
    let dir = TempDir::new("transmit");
    let size = 3 * 1024 * 1024 + 4321;
    let file = pattern_file(&dir, "big", size);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (client, server) = tcp_pair();
    let h = port.associate(server, 7).unwrap();
    let (offset, len) = (5000u64, (size - 5000 - 17) as u32);
    let read = reader(client, len as usize);
    match h.transmit_file(as_file(&file), offset, len, 42).unwrap() {
        Started::Pending(_) => {}
        Started::Done(_) => panic!("transmit_file never completes at once"),
    }
    let p = get(&port, "transmit_file");
    assert_eq!((p.key, p.value), (7, 42));
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.bytes, len as usize);
    drop(h);
    let got = join_bounded(read, "reader");
    assert_eq!(got.len(), len as usize);
    assert!(
        got == pattern_bytes(offset, len as usize),
        "the bytes differ from the file's"
    );
    // The file's own position (at the end, where writing it left it) was neither used nor moved.
    let pos = std::io::Seek::stream_position(&mut &*file).unwrap();
    assert_eq!(pos, size as u64);
}

// Catches: a range past the end of the file hanging (waiting for bytes that never come) or failing;
// the count must be what the file had.
#[test]
fn a_range_past_the_end_sends_what_the_file_has() {
    let dir = TempDir::new("transmit");
    let file = pattern_file(&dir, "short", 100_000);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    let read = reader(client, usize::MAX);
    h.transmit_file(as_file(&file), 60_000, 1_000_000, 3)
        .unwrap();
    let p = get(&port, "transmit_file");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.bytes, 40_000);
    // A range that starts past the end sends nothing and succeeds.
    h.transmit_file(as_file(&file), 200_000, 10, 4).unwrap();
    let p = get(&port, "transmit_file past the end");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!((p.bytes, p.value), (0, 4));
    drop(h);
    assert_eq!(join_bounded(read, "reader"), pattern_bytes(60_000, 40_000));
}

// Catches: a zero or oversized length reaching the kernel instead of a typed error naming the
// operation and fd, with the value handed back.
#[test]
fn bad_lengths_are_typed_errors_with_the_value_back() {
    let dir = TempDir::new("transmit");
    let file = pattern_file(&dir, "f", 10);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (_client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    for len in [0, u32::MAX, i32::MAX as u32] {
        let e = h.transmit_file(as_file(&file), 0, len, 9).unwrap_err();
        assert_eq!(e.value, 9);
        match e.error {
            Error::InvalidBuffer { op, fd, .. } => {
                assert_eq!(op, "transmit_file");
                assert!(fd >= 0);
            }
            other => panic!("len {len}: {other:?}"),
        }
    }
    // A range past the largest offset (u64::MAX would read as the file position on io_uring).
    for offset in [u64::MAX, i64::MAX as u64] {
        let e = h.transmit_file(as_file(&file), offset, 10, 9).unwrap_err();
        assert!(
            matches!(e.error, Error::InvalidBuffer { .. }),
            "{:?}",
            e.error
        );
    }
    assert_eq!(port.stats().queued, 0);
}

// Catches: the operation using the file's fd after the program dropped its reference (closed and
// perhaps reused): the operation holds the file until its packet.
#[test]
fn the_file_stays_open_while_the_operation_runs() {
    let dir = TempDir::new("transmit");
    let size = 2 * 1024 * 1024;
    let file = pattern_file(&dir, "held", size);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    h.transmit_file(as_file(&file), 0, size as u32, 5).unwrap();
    drop(file);
    // Files opened now would take the number of a closed fd.
    let others: Vec<File> = (0..4).map(|i| dir.file(&format!("other{i}"))).collect();
    let read = reader(client, size);
    let p = get(&port, "transmit_file");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.bytes, size);
    drop(h);
    assert!(join_bounded(read, "reader") == pattern_bytes(0, size));
    drop(others);
}

// Catches: a peer that has gone killing the process with SIGPIPE (sendfile and splice raise it;
// there is no MSG_NOSIGNAL for them) instead of an error packet. The test runs with SIGPIPE's
// default action (death), as a C program has it.
#[test]
fn a_peer_that_has_gone_is_an_error_packet_not_a_signal() {
    // SAFETY: sets the process's SIGPIPE action back to the default; no handler is installed.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let dir = TempDir::new("transmit");
    let size = 8 * 1024 * 1024;
    let file = pattern_file(&dir, "gone", size);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    for round in 0..3 {
        let (client, server) = tcp_pair();
        let h = port.associate(server, 1).unwrap();
        // Reset on close: the peer goes away with data unread.
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        h.transmit_file(as_file(&file), 0, size as u32, round)
            .unwrap();
        thread::sleep(Duration::from_millis(20));
        drop(client);
        let p = get(&port, "transmit_file to a gone peer");
        assert_eq!(p.value, round);
        let e = p.status.errno();
        assert!(
            matches!(e, Some(libc::EPIPE) | Some(libc::ECONNRESET)),
            "round {round}: {:?}, {} bytes",
            p.status,
            p.bytes
        );
        assert!(
            p.bytes < size,
            "{} bytes sent to a peer that reset",
            p.bytes
        );
        // Once the reset is reported, every later send fails with EPIPE, the error that raises
        // the signal.
        h.transmit_file(as_file(&file), 0, 1000, 100 + round)
            .unwrap();
        let p = get(&port, "transmit_file after the reset");
        assert_eq!(p.status.errno(), Some(libc::EPIPE));
        assert_eq!((p.bytes, p.value), (0, 100 + round));
    }
}

// Catches: a cancel that lands between two stages being lost (the next stage started anyway, the
// operation never ending while the peer does not read), or a cancelled transmission's partly
// filled pipe being reused by the next one (its leftover bytes would corrupt the next stream).
#[test]
fn cancel_ends_it_and_the_next_transmission_is_clean() {
    let dir = TempDir::new("transmit");
    let size = 32 * 1024 * 1024;
    let file = pattern_file(&dir, "cancel", size);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    for round in 0..3u32 {
        let (client, server) = tcp_pair();
        let h = port.associate(server, 1).unwrap();
        // The peer reads nothing: the socket buffer fills and the transmission waits.
        let id = match h
            .transmit_file(as_file(&file), 0, size as u32, round)
            .unwrap()
        {
            Started::Pending(id) => id,
            Started::Done(_) => unreachable!(),
        };
        thread::sleep(Duration::from_millis(10 * u64::from(round)));
        port.cancel(id).unwrap();
        let p = get(&port, "cancelled transmit_file");
        assert_eq!(p.status.errno(), Some(libc::ECANCELED), "round {round}");
        assert!(p.bytes < size);
        drop((h, client));
        // A fresh connection, on the same thread (whose pipes are reused): clean bytes.
        let (client, server) = tcp_pair();
        let h = port.associate(server, 2).unwrap();
        let read = reader(client, 300_000);
        h.transmit_file(as_file(&file), 1000, 300_000, 99).unwrap();
        let p = get(&port, "transmit_file after a cancel");
        assert!(p.status.is_ok(), "{:?}", p.status);
        assert_eq!(p.bytes, 300_000);
        drop(h);
        assert!(
            join_bounded(read, "reader") == pattern_bytes(1000, 300_000),
            "round {round}: bytes of the cancelled transmission leaked into the next"
        );
    }
}

// Catches: a handle dropped (or a port closed) while a transmission waits on a peer that does not
// read: the operation must end with one packet (ECANCELED), not hang the drop or close.
#[test]
fn dropping_the_handle_or_closing_the_port_ends_it() {
    let dir = TempDir::new("transmit");
    let size = 32 * 1024 * 1024;
    let file = pattern_file(&dir, "drop", size);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (_client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    h.transmit_file(as_file(&file), 0, size as u32, 1).unwrap();
    thread::sleep(Duration::from_millis(20));
    drop(h);
    let p = get(&port, "transmit_file of a dropped handle");
    assert_eq!(p.status.errno(), Some(libc::ECANCELED));

    let (_client2, server2) = tcp_pair();
    let h2 = port.associate(server2, 2).unwrap();
    h2.transmit_file(as_file(&file), 0, size as u32, 2).unwrap();
    thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    let left = port.close();
    assert!(start.elapsed() < DEADLINE);
    assert_eq!(
        left.len(),
        1,
        "the transmission's packet comes back from close"
    );
    assert_eq!(left[0].value, 2);
    assert_eq!(left[0].status.errno(), Some(libc::ECANCELED));
}

// Catches: a transmission ended because the thread that started it exited (io_uring ties requests
// to their submitting thread), which IOCP never does; its later stages are started by whichever
// thread reaps.
#[test]
fn it_outlives_the_thread_that_started_it() {
    let dir = TempDir::new("transmit");
    let size = 16 * 1024 * 1024;
    let file = pattern_file(&dir, "thread", size);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (client, server) = tcp_pair();
    let h = Arc::new(port.associate(server, 1).unwrap());
    let (h2, f2) = (Arc::clone(&h), as_file(&file));
    join_bounded(
        thread::spawn(move || {
            h2.transmit_file(f2, 0, size as u32, 8).unwrap();
        }),
        "starter",
    );
    // The starter is gone before the peer reads a byte.
    thread::sleep(Duration::from_millis(20));
    let read = reader(client, size);
    let p = get(&port, "transmit_file after its thread exited");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.bytes, size);
    drop(h);
    assert!(join_bounded(read, "reader") == pattern_bytes(0, size));
}

// Catches: transmissions on many connections at once mixing their stages or pipes.
#[test]
fn many_connections_at_once_each_get_their_own_bytes() {
    let dir = TempDir::new("transmit");
    let size = 1024 * 1024 + 7;
    let file = pattern_file(&dir, "many", size);
    let port: CompletionPort<usize> = CompletionPort::new(2);
    let mut readers = Vec::new();
    let mut handles = Vec::new();
    for i in 0..16 {
        let (client, server) = tcp_pair();
        let h = port.associate(server, i).unwrap();
        let offset = (i * 1000) as u64;
        let len = size - i * 1000;
        h.transmit_file(as_file(&file), offset, len as u32, i)
            .unwrap();
        readers.push((i, offset, len, reader(client, len)));
        handles.push(h);
    }
    let mut seen = [false; 16];
    for _ in 0..16 {
        let p = get(&port, "transmit_file");
        assert!(p.status.is_ok(), "{:?}", p.status);
        assert_eq!(p.key, p.value);
        assert_eq!(p.bytes, size - p.value * 1000);
        assert!(!seen[p.value]);
        seen[p.value] = true;
    }
    drop(handles);
    for (i, offset, len, r) in readers {
        let got = join_bounded(r, "reader");
        assert!(got == pattern_bytes(offset, len), "connection {i}");
    }
}

/// Fills `s`'s send buffer (the peer reads nothing yet) with zeros until it takes no more, without
/// blocking whatever its mode; returns how many bytes it took.
fn fill(s: &TcpStream) -> usize {
    let zeros = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        // SAFETY: `zeros` is valid for reads of its length for the length of the call.
        let rc = unsafe {
            libc::send(
                uio::raw(s),
                zeros.as_ptr().cast(),
                zeros.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if rc <= 0 {
            return total;
        }
        total += rc as usize;
    }
}

/// Checks what a `reader` got: `filler` zeros, then the file's `size` bytes.
fn check_after_filler(read: thread::JoinHandle<Vec<u8>>, filler: usize, size: usize, round: u32) {
    let got = join_bounded(read, "reader");
    assert_eq!(got.len(), filler + size, "round {round}");
    assert!(got[..filler].iter().all(|&b| b == 0), "round {round}");
    assert!(
        got[filler..] == pattern_bytes(0, size),
        "round {round}: the bytes differ from the file's"
    );
}

/// Starts a transmission of all of `file` (`size` bytes) on `h`; returns its id.
fn start_all(h: &iocport::Handle<u32>, file: &Arc<File>, size: usize, value: u32) -> iocport::OpId {
    match h
        .transmit_file(as_file(file), 0, size as u32, value)
        .unwrap()
    {
        Started::Pending(id) => id,
        Started::Done(_) => panic!("transmit_file never completes at once"),
    }
}

// Catches: a sending socket in non-blocking mode (O_NONBLOCK, as most servers set) making the
// pipe-to-socket splice fail with EAGAIN once the socket buffer is full, instead of waiting for
// room as a blocking socket (and the epoll backend) does.
#[test]
fn a_non_blocking_socket_waits_for_room_instead_of_failing() {
    let dir = TempDir::new("transmit");
    let size = 8 * 1024 * 1024 + 123;
    let file = pattern_file(&dir, "nonblocking", size);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (client, server) = tcp_pair();
    server.set_nonblocking(true).unwrap();
    let h = port.associate(server, 1).unwrap();
    start_all(&h, &file, size, 1);
    // The peer reads late: the socket buffers are full before it starts.
    thread::sleep(Duration::from_millis(50));
    let read = reader(client, size);
    let p = get(&port, "transmit_file on a non-blocking socket");
    assert!(p.status.is_ok(), "{:?} after {} bytes", p.status, p.bytes);
    assert_eq!(p.bytes, size);
    drop(h);
    assert!(join_bounded(read, "reader") == pattern_bytes(0, size));
}

/// The rounds of the tests below: the sending socket blocking or not, and its buffer full before
/// the transmission starts or not (then a splice into it waits before it has moved a byte, and an
/// interruption ends it with EINTR or ERESTARTSYS rather than a count).
const ROUNDS: [(u32, bool, bool); 4] = [
    (0, false, true),
    (1, true, false),
    (2, false, false),
    (3, true, true),
];

// Catches: a stage waiting in the kernel when the thread that submitted it exits ending the
// transmission (io_uring interrupts it: EINTR, ERESTARTSYS, or ECANCELED for a poll) instead of
// the stage being started again. Here the thread that exits is the one that reaped the earlier
// stages and so submitted the one that waits, on a blocking and on a non-blocking socket.
#[test]
fn a_waiting_stage_outlives_the_thread_that_submitted_it() {
    let dir = TempDir::new("transmit");
    let size = 8 * 1024 * 1024;
    let file = pattern_file(&dir, "exiting", size);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    for (round, nonblocking, full) in ROUNDS {
        let (client, server) = tcp_pair();
        server.set_nonblocking(nonblocking).unwrap();
        let filler = if full { fill(&server) } else { 0 };
        let h = Arc::new(port.associate(server, 1).unwrap());
        let (h2, port2, f2) = (Arc::clone(&h), port.clone(), Arc::clone(&file));
        join_bounded(
            thread::spawn(move || {
                start_all(&h2, &f2, size, round);
                // Reaps (and so submits) the stages until the socket is full, then exits.
                match port2.get(Some(Duration::from_millis(100))) {
                    Err(iocport::GetError::TimedOut) => {}
                    Ok(p) => panic!("round {round}: a packet before the peer read: {p:?}"),
                    Err(e) => panic!("round {round}: {e}"),
                }
            }),
            "starter",
        );
        let read = reader(client, filler + size);
        let p = get(&port, "transmit_file after its thread exited");
        assert!(
            p.status.is_ok(),
            "round {round}: {:?} after {} bytes",
            p.status,
            p.bytes
        );
        assert_eq!(p.bytes, size);
        drop(h);
        check_after_filler(read, filler, size, round);
    }
}

// Catches: a cancel that interrupts a stage blocked in the kernel (a splice into a full blocking
// socket ends with EINTR or ERESTARTSYS, a poll for room with ECANCELED) reported as that error,
// or as two packets, rather than ECANCELED once, with no more than the file sent.
#[test]
fn cancel_while_blocked_on_a_full_socket_is_ecanceled_once() {
    let dir = TempDir::new("transmit");
    let size = 32 * 1024 * 1024;
    let file = pattern_file(&dir, "blocked", size);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    for (round, nonblocking, full) in ROUNDS {
        let (client, server) = tcp_pair();
        server.set_nonblocking(nonblocking).unwrap();
        if full {
            fill(&server);
        }
        let h = port.associate(server, 1).unwrap();
        let id = start_all(&h, &file, size, round);
        // Reaps the stages until the socket is full and one waits in the kernel.
        uio::assert_quiet_for(&port, Duration::from_millis(100), "a blocked transmission");
        port.cancel(id).unwrap();
        let p = get(&port, "cancelled transmit_file");
        assert_eq!(p.value, round);
        assert_eq!(
            p.status.errno(),
            Some(libc::ECANCELED),
            "round {round} (non-blocking: {nonblocking}): {:?}",
            p.status
        );
        assert!(p.bytes < size, "round {round}: {} bytes", p.bytes);
        uio::assert_quiet_for(&port, Duration::from_millis(30), "after the cancel");
        drop((h, client));
    }
}

/// Reads `want` bytes from `s` (for at most `limit`); returns them and when the last came.
fn arrival(mut s: TcpStream, want: usize, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0; 256 * 1024];
    while got.len() < want {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return (got, None);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
    (got, Some(Instant::now()))
}

// Catches: the last chunk of a range longer than the file sent with SPLICE_F_MORE (more was due,
// but the file ended), which leaves its tail corked in the socket (Nagle on) for 200 ms or more
// though the packet says it is sent. The file ends within a chunk (a short read from the file;
// rounds 0 and 2) and on a pipe's edge (the next read finds the end; round 1).
#[test]
fn a_file_shorter_than_the_range_is_not_left_corked() {
    let dir = TempDir::new("transmit");
    let port: CompletionPort<u32> = CompletionPort::new(1);
    for (round, size) in [(0u32, 1000usize), (1, 2 * 1024 * 1024), (2, 70_001)] {
        let file = pattern_file(&dir, &format!("corked{round}"), size);
        let (client, server) = tcp_pair();
        server.set_nodelay(false).unwrap();
        let h = port.associate(server, 1).unwrap();
        let read = thread::spawn(move || arrival(client, size, Duration::from_secs(2)));
        h.transmit_file(as_file(&file), 0, size as u32 + 100_000, round)
            .unwrap();
        let p = get(&port, "transmit_file past the end");
        let sent = Instant::now();
        assert!(p.status.is_ok(), "{:?}", p.status);
        assert_eq!(p.bytes, size);
        let (got, last) = join_bounded(read, "reader");
        assert!(
            got == pattern_bytes(0, size),
            "round {round}: {} bytes",
            got.len()
        );
        // Sent without MORE, the last bytes are in the peer's socket when the splice returns
        // (loopback): the reader has them at once. The margin is for a loaded machine, under the
        // 200 ms that corked bytes wait.
        let late = last.map(|t| t.saturating_duration_since(sent));
        assert!(
            late.is_some_and(|l| l < Duration::from_millis(150)),
            "round {round}: the last bytes came {late:?} after the packet (corked)"
        );
        drop(h);
    }
}

// Catches: a range that starts inside a page, sent to a peer that reads only after the socket
// buffers are full (so a splice stage moves part of the pipe and the rest waits), losing or
// repeating bytes around the offset's page boundary; on a blocking and a non-blocking socket.
#[test]
fn an_offset_inside_a_page_survives_a_peer_that_pauses() {
    let dir = TempDir::new("transmit");
    let size = 4 * 1024 * 1024 + 777;
    let file = pattern_file(&dir, "unaligned", size);
    let port: CompletionPort<u32> = CompletionPort::new(1);
    for (round, offset) in [100u64, 1000, 4096 + 100, 65_536 + 4000]
        .into_iter()
        .enumerate()
    {
        for nonblocking in [false, true] {
            let (client, server) = tcp_pair();
            server.set_nonblocking(nonblocking).unwrap();
            let h = port.associate(server, 1).unwrap();
            let len = (size as u64 - offset) as u32;
            let Started::Pending(_) = h
                .transmit_file(as_file(&file), offset, len, round as u32)
                .unwrap()
            else {
                panic!("transmit_file never completes at once");
            };
            // The peer reads late, in small pieces with pauses between them.
            thread::sleep(Duration::from_millis(30));
            let read = thread::spawn(move || {
                let mut s = client;
                s.set_read_timeout(Some(DEADLINE)).unwrap();
                let mut out = Vec::new();
                let mut buf = vec![0; 100 * 1024];
                while out.len() < len as usize {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                    }
                    if out.len() % 7 == 0 {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
                out
            });
            let p = get(&port, "transmit_file from an offset inside a page");
            assert!(
                p.status.is_ok(),
                "offset {offset}: {:?} after {} bytes",
                p.status,
                p.bytes
            );
            assert_eq!(p.bytes, len as usize, "offset {offset}");
            drop(h);
            let got = join_bounded(read, "reader");
            assert_eq!(
                got.len(),
                len as usize,
                "offset {offset}, non-blocking {nonblocking}"
            );
            assert!(
                got == pattern_bytes(offset, len as usize),
                "offset {offset}, non-blocking {nonblocking}: the bytes differ from the file's"
            );
        }
    }
}
