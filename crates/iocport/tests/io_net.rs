//! Sockets and readiness through the port, on 127.0.0.1 and Unix sockets: TCP round trips, 1,000
//! accepts, connect refused, peer reset, half close, UDP addresses, Unix stream pairs and listeners,
//! poll readiness on a pipe and an eventfd, and timer packets.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iocport::{CompletionPort, Data, Handle, Interest, Started};
use socket2::{Domain, SockRef, Socket, Type};
use uio::{get, TempDir};
use util::DEADLINE;

/// Receives exactly `n` bytes on `h` through the port (one recv in flight at a time).
fn recv_exact(port: &CompletionPort<u32>, h: &Handle<u32>, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let start = Instant::now();
    while out.len() < n {
        assert!(
            start.elapsed() < DEADLINE,
            "recv_exact: {} of {n}",
            out.len()
        );
        h.recv(vec![0; n - out.len()], 0, 77).unwrap();
        let mut p = get(port, "recv");
        assert_eq!(p.value, 77);
        assert!(p.status.is_ok(), "recv: {:?}", p.status);
        assert!(p.bytes > 0, "EOF after {} of {n} bytes", out.len());
        let k = p.bytes;
        out.extend_from_slice(&p.take_buf().unwrap()[..k]);
    }
    out
}

/// Sends all of `data` on `h` through the port.
fn send_all(port: &CompletionPort<u32>, h: &Handle<u32>, data: &[u8]) {
    let mut sent = 0;
    let start = Instant::now();
    while sent < data.len() {
        assert!(
            start.elapsed() < DEADLINE,
            "send_all: {sent} of {}",
            data.len()
        );
        h.send(data[sent..].to_vec(), 0, 78).unwrap();
        let p = get(port, "send");
        assert_eq!(p.value, 78);
        assert!(p.status.is_ok(), "send: {:?}", p.status);
        assert!(p.bytes > 0);
        sent += p.bytes;
    }
}

/// A TCP socket that is not connected yet, for `connect` through the port.
fn fresh_tcp_socket() -> OwnedFd {
    Socket::new(Domain::IPV4, Type::STREAM, None)
        .unwrap()
        .into()
}

// Catches: connect/accept/send/recv through the port failing or mixing up buffers; accept's peer
// address wrong; data corrupted or reordered over many round trips of varied sizes.
#[test]
fn tcp_round_trips_connect_accept_send_recv() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let lh = port.associate(listener, 1).unwrap();
    let client = port.associate(fresh_tcp_socket(), 2).unwrap();
    lh.accept(10).unwrap();
    client.connect(addr, 20).unwrap();
    let mut server = None;
    let mut peer = None;
    for mut p in uio::get_n(&port, 2, "accept and connect") {
        assert!(p.status.is_ok(), "{:?} (value {})", p.status, p.value);
        match p.value {
            10 => {
                assert_eq!(p.key, 1);
                peer = p.peer_addr();
                server = Some(
                    port.associate(p.take_socket().expect("accepted"), 3)
                        .unwrap(),
                );
            }
            20 => assert_eq!((p.key, p.bytes), (2, 0)),
            v => panic!("unexpected value {v}"),
        }
    }
    let server = server.unwrap();
    let client_addr = SockRef::from(&client).local_addr().unwrap().as_socket();
    assert_eq!(peer, client_addr, "accept reports the client's address");
    assert_eq!(peer.unwrap().ip(), addr.ip());

    for round in 0..200u32 {
        let len = 1 + (round as usize * 97) % 3000;
        let msg: Vec<u8> = (0..len).map(|i| (i as u32 ^ round) as u8).collect();
        send_all(&port, &client, &msg);
        let got = recv_exact(&port, &server, len);
        assert_eq!(got, msg, "round {round} client to server");
        let back: Vec<u8> = got.iter().rev().copied().collect();
        send_all(&port, &server, &back);
        assert_eq!(recv_exact(&port, &client, len), back, "round {round} back");
    }
    uio::assert_no_packet(&port, "after the round trips");
    drop((client, server, lh));
    port.close();
}

// Catches: accepts lost or duplicated under a steady stream of connections, accepted sockets with
// a wrong peer address, accepted fds leaked (1,000 of them would show in the fd table).
#[test]
fn thousand_accepts() {
    const N: usize = 1_000;
    const IN_FLIGHT: usize = 32;
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let lh = port.associate(listener, 7).unwrap();
    let mut armed = 0;
    while armed < IN_FLIGHT {
        lh.accept(armed as u32).unwrap();
        armed += 1;
    }
    // The clients stay at most 64 connections ahead of the accepts, so the listen backlog (128)
    // never overflows (a dropped SYN is retried only after a second).
    let accepted = Arc::new(AtomicUsize::new(0));
    let clients = {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            // The streams stay open to the end: a closed client's port could be reused by a later
            // connection (legitimately accepted twice from the same address).
            let mut locals = HashSet::new();
            let mut streams = Vec::with_capacity(N);
            let start = Instant::now();
            for i in 0..N {
                while i >= accepted.load(Ordering::SeqCst) + 64 && start.elapsed() < DEADLINE {
                    std::thread::sleep(Duration::from_micros(100));
                }
                let s = TcpStream::connect(addr).unwrap();
                locals.insert(s.local_addr().unwrap());
                streams.push(s);
            }
            (locals, streams)
        })
    };
    let mut peers = HashSet::new();
    let mut values = HashSet::new();
    let start = Instant::now();
    while peers.len() < N {
        assert!(
            start.elapsed() < DEADLINE * 2,
            "{} of {N} accepts after {:?}",
            peers.len(),
            start.elapsed()
        );
        let mut p = get(&port, "accept");
        assert!(p.status.is_ok(), "accept: {:?}", p.status);
        assert_eq!(p.key, 7);
        assert!(values.insert(p.value), "two packets for accept {}", p.value);
        let peer = p.peer_addr().expect("accept reports the peer");
        let sock = p.take_socket().expect("accept hands the socket over");
        assert!(uio::fd_identity(uio::raw(&sock)).is_some());
        drop(sock);
        assert!(peers.insert(peer), "peer {peer} accepted twice");
        accepted.fetch_add(1, Ordering::SeqCst);
        if armed < N {
            lh.accept(armed as u32).unwrap();
            armed += 1;
        }
    }
    let (locals, streams) = uio::join_bounded(clients, "connecting clients");
    assert_eq!(locals.len(), N, "the clients' addresses are distinct");
    assert_eq!(
        peers, locals,
        "every client accepted once, with its address"
    );
    uio::assert_no_packet(&port, "no extra accept packets");
    drop((lh, streams));
    port.close();
}

// Catches: a refused connect returned as an OpError (a synchronous failure) or a lost packet,
// instead of a packet whose status is ECONNREFUSED.
#[test]
fn connect_refused_is_a_packet() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    // A port nobody listens on: bound, then closed.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let h = port.associate(fresh_tcp_socket(), 4).unwrap();
    let started = h.connect(addr, 1);
    assert!(
        matches!(started, Ok(Started::Pending(_))),
        "connect must start: {started:?}"
    );
    let p = get(&port, "refused connect");
    assert_eq!((p.key, p.value, p.bytes), (4, 1, 0));
    assert_eq!(p.status.errno(), Some(libc::ECONNREFUSED), "{:?}", p.status);
    assert_eq!(
        p.result().unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    drop(h);
    port.close();
}

// Catches: a reset connection reported other than as packet status (lost packet, OpError, SIGPIPE
// or a panic), and send on a reset connection not ending in EPIPE/ECONNRESET.
#[test]
fn peer_reset_is_packet_status() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (ours, theirs) = uio::tcp_pair();
    let h = port.associate(ours, 5).unwrap();
    h.recv(vec![0; 64], 0, 1).unwrap();
    uio::assert_quiet_for(&port, Duration::from_millis(20), "recv waits for data");
    // Close with SO_LINGER 0: the kernel sends RST instead of FIN.
    SockRef::from(&theirs)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(theirs);
    let mut p = get(&port, "recv on a reset connection");
    assert_eq!(p.value, 1);
    assert_eq!(p.status.errno(), Some(libc::ECONNRESET), "{:?}", p.status);
    assert_eq!(p.bytes, 0);
    assert_eq!(p.take_buf().map(|b| b.len()), Some(64), "buffer back");
    // The connection is gone: send fails with EPIPE (or ECONNRESET), as a packet.
    h.send(b"anyone?".to_vec(), 0, 2).unwrap();
    let mut p = get(&port, "send on a reset connection");
    assert_eq!(p.value, 2);
    assert!(
        matches!(p.status.errno(), Some(libc::EPIPE | libc::ECONNRESET)),
        "send after reset: {:?}",
        p.status
    );
    assert_eq!(p.take_buf().unwrap(), b"anyone?");
    drop(h);
    port.close();
}

// Catches: shutdown(Write) not reaching the socket (peer sees no EOF), shutting down the read side
// too (we could not receive the reply), and EOF on recv not reported as 0 bytes.
#[test]
fn half_close() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (ours, mut theirs) = uio::tcp_pair();
    theirs.set_read_timeout(Some(DEADLINE)).unwrap();
    let h = port.associate(ours, 6).unwrap();
    send_all(&port, &h, b"request");
    h.shutdown(Shutdown::Write, 1).unwrap();
    let p = get(&port, "shutdown");
    assert_eq!(p.value, 1);
    assert!(p.status.is_ok(), "shutdown: {:?}", p.status);
    // The peer reads the request, then EOF.
    let mut got = Vec::new();
    theirs.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"request");
    // It can still answer; we can still receive.
    theirs.write_all(b"response").unwrap();
    assert_eq!(recv_exact(&port, &h, 8), b"response");
    drop(theirs);
    h.recv(vec![0; 8], 0, 2).unwrap();
    let p = get(&port, "recv after the peer closed");
    assert_eq!((p.value, p.bytes), (2, 0), "EOF is 0 bytes");
    assert!(p.status.is_ok());
    // Sending on our shut-down side fails as a packet.
    h.send(b"late".to_vec(), 0, 3).unwrap();
    let p = get(&port, "send after shutdown(Write)");
    assert_eq!(p.status.errno(), Some(libc::EPIPE), "{:?}", p.status);
    drop(h);
    port.close();
}

// Catches: recv_from not reporting the sender's address (or a wrong one), send_to ignoring its
// address, datagram boundaries not kept.
#[test]
fn udp_send_to_recv_from_addresses() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    let (a_addr, b_addr, c_addr) = (
        a.local_addr().unwrap(),
        b.local_addr().unwrap(),
        c.local_addr().unwrap(),
    );
    let ha = port.associate(a, 1).unwrap();
    let hb = port.associate(b, 2).unwrap();

    // Port to port, in both directions.
    hb.recv_from(vec![0; 100], 10).unwrap();
    ha.send_to(b"ping".to_vec(), b_addr, 11).unwrap();
    let mut recv = None;
    for p in uio::get_n(&port, 2, "send_to and recv_from") {
        assert!(p.status.is_ok(), "{:?}", p.status);
        match p.value {
            11 => {
                assert_eq!((p.key, p.bytes), (1, 4));
                assert!(
                    matches!(&p.data, Data::From(b, _) if b == b"ping"),
                    "{:?}",
                    p.data
                );
            }
            10 => recv = Some(p),
            v => panic!("unexpected value {v}"),
        }
    }
    let p = recv.unwrap();
    assert_eq!((p.key, p.bytes), (2, 4));
    match &p.data {
        Data::From(buf, from) => {
            assert_eq!(&buf[..4], b"ping");
            assert_eq!(
                from.as_deref(),
                Some(&a_addr),
                "recv_from reports the sender"
            );
        }
        d => panic!("recv_from data: {d:?}"),
    }

    // From a third, plain socket: two datagrams stay two.
    hb.recv_from(vec![0; 100], 20).unwrap();
    c.send_to(b"one", b_addr).unwrap();
    c.send_to(b"second", b_addr).unwrap();
    let p = get(&port, "first datagram");
    assert_eq!((p.value, p.bytes), (20, 3));
    assert_eq!(p.peer_addr(), Some(c_addr));
    hb.recv_from(vec![0; 100], 21).unwrap();
    let p = get(&port, "second datagram");
    assert_eq!((p.value, p.bytes), (21, 6));
    assert_eq!(p.peer_addr(), Some(c_addr));

    // send_to goes where it is told.
    hb.send_to(b"to c".to_vec(), c_addr, 30).unwrap();
    assert!(get(&port, "send_to c").status.is_ok());
    let mut buf = [0; 16];
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"to c"[..], b_addr));
    drop((ha, hb));
    port.close();
}

// Catches: operations on AF_UNIX sockets failing (address handling that assumes IP), accept on a
// Unix listener not handing over a working socket.
#[test]
fn unix_stream_pair_and_listener() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (a, b) = UnixStream::pair().unwrap();
    let ha = port.associate(a, 1).unwrap();
    let hb = port.associate(b, 2).unwrap();
    hb.recv(vec![0; 32], 0, 1).unwrap();
    ha.send(b"over a unix pair".to_vec(), 0, 2).unwrap();
    let mut by_value: Vec<_> = uio::get_n(&port, 2, "unix send/recv");
    by_value.sort_by_key(|p| p.value);
    assert!(by_value.iter().all(|p| p.status.is_ok()), "{by_value:?}");
    assert_eq!((by_value[0].key, by_value[0].bytes), (2, 16));
    assert_eq!(&by_value[0].take_buf().unwrap()[..16], b"over a unix pair");
    assert_eq!((by_value[1].key, by_value[1].bytes), (1, 16));

    let dir = TempDir::new("unix");
    let path = dir.path().join("sock");
    let lh = port
        .associate(UnixListener::bind(&path).unwrap(), 3)
        .unwrap();
    lh.accept(3).unwrap();
    let mut client = UnixStream::connect(&path).unwrap();
    client.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut p = get(&port, "unix accept");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!((p.key, p.value), (3, 3));
    assert!(
        matches!(p.data, Data::Accepted(_, None)),
        "a Unix peer has no IP address: {:?}",
        p.data
    );
    let hs = port.associate(p.take_socket().unwrap(), 4).unwrap();
    hs.send(b"hi".to_vec(), 0, 4).unwrap();
    assert!(get(&port, "send on accepted").status.is_ok());
    let mut buf = [0; 2];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
    drop((ha, hb, lh, hs));
    port.close();
}

// Catches: poll completing before the fd is ready (or never), a wrong event mask in `bytes`, poll
// not working on non-socket fds (pipe, eventfd).
#[test]
fn poll_readiness_on_pipe_and_eventfd() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (reader, mut writer) = std::io::pipe().unwrap();
    let hr = port.associate(reader, 1).unwrap();
    hr.poll(Interest::READABLE, 1).unwrap();
    uio::assert_quiet_for(
        &port,
        Duration::from_millis(30),
        "empty pipe is not readable",
    );
    writer.write_all(b"x").unwrap();
    let p = get(&port, "pipe readable");
    assert_eq!((p.key, p.value), (1, 1));
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_ne!(
        p.bytes & libc::POLLIN as usize,
        0,
        "POLLIN in {:#x}",
        p.bytes
    );
    // Still readable (nobody read): a second poll completes at once.
    hr.poll(Interest::READABLE, 2).unwrap();
    assert_ne!(
        get(&port, "still readable").bytes & libc::POLLIN as usize,
        0
    );

    // The write end of a pipe with room is writable at once.
    let hw = port.associate(writer, 2).unwrap();
    hw.poll(Interest::WRITABLE, 3).unwrap();
    let p = get(&port, "pipe writable");
    assert_eq!(p.value, 3);
    assert_ne!(
        p.bytes & libc::POLLOUT as usize,
        0,
        "POLLOUT in {:#x}",
        p.bytes
    );

    // An eventfd: wait-on-any-fd.
    // SAFETY: eventfd takes no pointers; a non-negative result is a new fd that we own.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(raw >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` was just created and nothing else owns it.
    let efd = unsafe { OwnedFd::from_raw_fd(raw) };
    let he = port.associate(efd, 3).unwrap();
    he.poll(Interest::READABLE, 4).unwrap();
    uio::assert_quiet_for(&port, Duration::from_millis(30), "eventfd at 0");
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a live array to an fd the handle keeps open.
    let n = unsafe { libc::write(raw, one.as_ptr().cast(), 8) };
    assert_eq!(n, 8);
    let p = get(&port, "eventfd readable");
    assert_eq!((p.key, p.value), (3, 4));
    assert_ne!(p.bytes & libc::POLLIN as usize, 0);
    drop((hr, hw, he));
    port.close();
}

// Catches: timers firing in submission order instead of by deadline, firing early, or reporting the
// kernel's ETIME as an error.
#[test]
fn timers_fire_by_deadline() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let start = Instant::now();
    port.timer(Duration::from_millis(150), 1, 1).unwrap();
    port.timer(Duration::from_millis(30), 2, 2).unwrap();
    let first = get(&port, "first timer");
    let t1 = start.elapsed();
    let second = get(&port, "second timer");
    let t2 = start.elapsed();
    assert_eq!((first.key, first.value), (2, 2), "the shorter timer first");
    assert_eq!((second.key, second.value), (1, 1));
    for p in [&first, &second] {
        assert!(
            p.status.is_ok(),
            "a timer that fires succeeds: {:?}",
            p.status
        );
        assert_eq!(p.bytes, 0);
        assert!(p.op.is_some());
    }
    assert!(t1 >= Duration::from_millis(30), "first timer early: {t1:?}");
    assert!(
        t2 >= Duration::from_millis(150),
        "second timer early: {t2:?}"
    );
    port.close();
}

// Catches: skip-on-success queuing a packet for an op that completed at once (two results for one
// op), returning Done without the data, or completing at once when it would block (a bogus EAGAIN
// result instead of going Pending); a handle without the flag skipping the port.
#[test]
fn skip_on_success() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let h = port.associate(ours, 8).unwrap();
    h.set_skip_on_success(true);
    theirs.write_all(b"ready").unwrap();
    match h.recv(vec![0; 16], 0, 1) {
        Ok(Started::Done(mut p)) => {
            assert_eq!((p.key, p.value, p.bytes, p.op), (8, 1, 5, None));
            assert!(p.status.is_ok(), "{:?}", p.status);
            assert_eq!(&p.take_buf().unwrap()[..5], b"ready");
        }
        other => panic!("recv with data available: {other:?}"),
    }
    uio::assert_no_packet(&port, "an op that completed at once queues no packet");
    // Send completes at once too.
    match h.send(b"back".to_vec(), 0, 2) {
        Ok(Started::Done(p)) => assert_eq!((p.bytes, p.status.is_ok()), (4, true)),
        other => panic!("send with room: {other:?}"),
    }
    uio::assert_no_packet(&port, "after send");
    let mut back = [0; 4];
    theirs.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"back");
    // No data: the recv goes to the kernel and its packet arrives later.
    let id = match h.recv(vec![0; 16], 0, 3) {
        Ok(Started::Pending(id)) => id,
        other => panic!("recv without data must go pending: {other:?}"),
    };
    uio::assert_quiet_for(&port, Duration::from_millis(20), "pending recv");
    theirs.write_all(b"later").unwrap();
    let mut p = get(&port, "pending recv completes");
    assert_eq!((p.value, p.bytes, p.op), (3, 5, Some(id)));
    assert_eq!(&p.take_buf().unwrap()[..5], b"later");
    // Turned off again: an op that could complete at once still queues its packet.
    h.set_skip_on_success(false);
    theirs.write_all(b"x").unwrap();
    assert!(matches!(h.recv(vec![0; 16], 0, 4), Ok(Started::Pending(_))));
    let p = get(&port, "packet without skip-on-success");
    assert_eq!((p.value, p.bytes), (4, 1));

    // Files: a page-cached read_at completes at once.
    let dir = TempDir::new("skip");
    let mut f = dir.file("f");
    f.write_all(b"cached bytes").unwrap();
    let hf = port.associate(f, 9).unwrap();
    hf.set_skip_on_success(true);
    let mut done = 0;
    for _ in 0..10 {
        match hf.read_at(vec![0; 6], 7, 5).unwrap() {
            Started::Done(mut p) => {
                assert_eq!((p.key, p.bytes), (9, 5));
                assert_eq!(&p.take_buf().unwrap()[..5], b"bytes");
                done += 1;
            }
            Started::Pending(_) => {
                let mut p = get(&port, "read_at that went to the kernel");
                assert_eq!(&p.take_buf().unwrap()[..5], b"bytes");
            }
        }
    }
    assert!(done > 0, "a page-cached read never completed at once");
    uio::assert_no_packet(&port, "after the file reads");
    drop((h, hf));
    port.close();
}
