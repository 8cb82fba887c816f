//! `recv_multishot` and `accept_multishot`: one request that receives every message (in provided
//! buffers) or accepts every connection, on both backends (io_uring: `IORING_RECV_MULTISHOT`,
//! `IORING_ACCEPT_MULTISHOT`; epoll: each readiness event drained). A packet per message or
//! connection under one id, the last one telling how it ended (end of stream, `ENOBUFS`,
//! `ECANCELED`), no byte lost when the kernel ends the request for its own reasons (a full
//! completion queue, the exit of the thread that started it), every buffer handed back.
//!
//! Under `IOCPORT_TEST_MISSING=all` the io_uring backend believes the kernel has no multishot
//! operations: each test then checks the refusal ([`Error::Unsupported`], the value handed back).

#[path = "util/io.rs"]
mod uio;
mod util;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use iocport::{Backend, CompletionPort, Data, Error, OpId, Packet};
use uio::{assert_quiet_for, get, join_bounded, pattern, pattern_bytes, tcp_pair};

/// Starts a multishot receive, or checks that the backend refuses it where the kernel's multishot
/// receive is pretended missing (`None`: the test has nothing more to do).
#[track_caller]
fn start<T: Clone + Send + std::fmt::Debug + PartialEq + 'static>(
    h: &iocport::Handle<T>,
    value: T,
) -> Option<OpId> {
    let missing = std::env::var("IOCPORT_TEST_MISSING")
        .is_ok_and(|m| m.split(',').any(|f| f == "all" || f == "recv_multishot"));
    match h.recv_multishot(0, value.clone()) {
        Ok(id) => {
            assert!(
                !missing || h.port().backend().expect("set up").backend == Backend::Epoll,
                "started where the kernel's multishot receive is pretended missing"
            );
            Some(id)
        }
        Err(e) if missing && h.port().backend().expect("set up").backend == Backend::IoUring => {
            assert!(matches!(e.error, Error::Unsupported { .. }), "{e}");
            assert_eq!(e.value, value, "the value comes back");
            None
        }
        Err(e) => panic!("recv_multishot: {e}"),
    }
}

/// The packet's buffer, its `bytes` filled: the message.
fn message(p: &mut Packet<u32>) -> Vec<u8> {
    let mut buf = p.take_buf().expect("a message comes in a provided buffer");
    buf.truncate(p.bytes);
    buf
}

// Catches: a multishot receive that ends after its first message, packets under another id or
// without the value, bytes lost or misplaced, a buffer not handed back, an end of stream that is
// not the last packet, a slot not freed after it (the id still cancellable).
#[test]
fn every_message_comes_in_its_own_packet_until_end_of_stream() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (mut client, server) = tcp_pair();
    client.set_nodelay(true).unwrap();
    let h = port.associate(server, 9).unwrap();
    for i in 0..2u8 {
        port.provide_buffer(vec![i; 512]).unwrap();
    }
    let Some(id) = start(&h, 77) else { return };
    for round in 0..300u32 {
        let msg = format!("message {round}");
        client.write_all(msg.as_bytes()).unwrap();
        let mut p = get(&port, "a message");
        assert_eq!((p.key, p.value, p.op), (9, 77, Some(id)), "round {round}");
        assert!(p.status.is_ok(), "{:?}", p.status);
        assert_eq!(message(&mut p), msg.as_bytes(), "round {round}");
        // Back to the port: two buffers serve every round.
        port.provide_buffer(vec![0; 512]).unwrap();
    }
    client.shutdown(Shutdown::Write).unwrap();
    let p = get(&port, "end of stream");
    assert_eq!((p.key, p.value, p.op), (9, 77, Some(id)));
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.bytes, 0, "end of stream is the last packet");
    if let Data::Buf(b) = &p.data {
        assert_eq!(b.len(), 512, "a provided buffer, whole");
    }
    assert!(
        matches!(port.cancel(id), Err(Error::NotFound { .. })),
        "the operation is over"
    );
    assert_quiet_for(&port, Duration::from_millis(50), "after the last packet");
}

// Catches: ordinals that skip, repeat or restart (after the request is started again the count
// goes on), a last packet that does not carry the operation's own value.
#[test]
fn each_message_gets_its_ordinal() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (mut client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    port.provide_buffer(vec![0; 64]).unwrap();
    let missing = std::env::var("IOCPORT_TEST_MISSING").is_ok_and(|m| m.contains("all"));
    let id = match h.recv_multishot_with(0, 5, |v, n| v * 1000 + n as u32) {
        Ok(id) => id,
        Err(e) if missing && matches!(e.error, Error::Unsupported { .. }) => return,
        Err(e) => panic!("{e}"),
    };
    for n in 0..50u32 {
        client.write_all(&[n as u8]).unwrap();
        let mut p = get(&port, "a message");
        assert_eq!((p.op, p.value), (Some(id), 5000 + n));
        assert_eq!(message(&mut p), [n as u8]);
        port.provide_buffer(vec![0; 64]).unwrap();
    }
    client.shutdown(Shutdown::Write).unwrap();
    let p = get(&port, "end of stream");
    assert_eq!((p.op, p.value, p.bytes), (Some(id), 5, 0));
}

// Catches: a multishot receive that blocks or loses data when the port runs out of buffers: it
// ends with ENOBUFS, and the message it had no buffer for waits in the socket.
#[test]
fn without_a_buffer_it_ends_with_enobufs_and_loses_nothing() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (mut client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    port.provide_buffer(vec![0; 64]).unwrap();
    let Some(id) = start(&h, 5) else { return };
    client.write_all(b"first").unwrap();
    let mut first = get(&port, "the first message");
    assert_eq!(message(&mut first), b"first");
    // The only buffer is the program's now.
    client.write_all(b"second").unwrap();
    let p = get(&port, "no buffer for the second");
    assert_eq!(p.status.errno(), Some(libc::ENOBUFS), "{:?}", p.status);
    assert_eq!((p.bytes, p.value, p.op), (0, 5, Some(id)));
    assert!(matches!(p.data, Data::None));
    port.provide_buffer(vec![0; 64]).unwrap();
    let Some(again) = start(&h, 6) else { return };
    assert_ne!(again, id, "a new operation, a new id");
    let mut p = get(&port, "the second, after providing");
    assert_eq!((p.value, p.op), (6, Some(again)));
    assert_eq!(message(&mut p), b"second");
    drop(h);
    let p = get(&port, "the handle dropped");
    assert_eq!(p.status.errno(), Some(libc::ECANCELED), "{:?}", p.status);
    assert_eq!((p.value, p.op), (6, Some(again)));
}

// Catches: the backends disagreeing on when a multishot receive runs out of buffers: with none at
// its start it ends at once (ENOBUFS), as io_uring's does; once it has received, it waits for the
// next message before it says so.
#[test]
fn out_of_buffers_at_its_start_it_ends_at_once() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (mut client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    let Some(id) = start(&h, 3) else { return };
    let p = get(&port, "no buffer at the start");
    assert_eq!(p.status.errno(), Some(libc::ENOBUFS), "{:?}", p.status);
    assert_eq!((p.op, p.value), (Some(id), 3));
    port.provide_buffer(vec![0; 64]).unwrap();
    let Some(id) = start(&h, 4) else { return };
    client.write_all(b"one").unwrap();
    let mut p = get(&port, "the first message");
    assert_eq!(message(&mut p), b"one");
    assert_quiet_for(&port, Duration::from_millis(100), "no data: no ENOBUFS yet");
    client.write_all(b"two").unwrap();
    let p = get(&port, "data and no buffer");
    assert_eq!(p.status.errno(), Some(libc::ENOBUFS), "{:?}", p.status);
    assert_eq!(p.op, Some(id));
}

// Catches: a cancel that leaves the request armed (more packets after it), ends it twice, or
// loses the value; messages before it still come.
#[test]
fn cancel_ends_it_once_with_its_value() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (mut client, server) = tcp_pair();
    let h = port.associate(server, 3).unwrap();
    for _ in 0..4 {
        port.provide_buffer(vec![0; 64]).unwrap();
    }
    let Some(id) = start(&h, 40) else { return };
    client.write_all(b"before").unwrap();
    let mut p = get(&port, "a message before the cancel");
    assert_eq!(message(&mut p), b"before");
    port.cancel(id).unwrap();
    let p = get(&port, "the cancel");
    assert_eq!(p.status.errno(), Some(libc::ECANCELED), "{:?}", p.status);
    assert_eq!((p.value, p.op, p.bytes), (40, Some(id), 0));
    client.write_all(b"after").unwrap();
    assert_quiet_for(&port, Duration::from_millis(100), "after the cancel");
    assert!(matches!(port.cancel(id), Err(Error::NotFound { .. })));
}

// Catches: a flood losing or reordering bytes, a request that stops for good when the kernel ends
// it for its own reasons, or buffers not coming back. The ring is small (2 entries, 8 completions)
// so that kernels that end a multishot request whose completion finds the queue full do so here
// (its last completion carries data, and the port starts it again; Linux 6.18 queues the
// completion in its overflow list instead and goes on). One thread takes every packet, so they
// come in the order of the data.
#[test]
fn a_flood_through_a_small_ring_loses_no_byte() {
    const TOTAL: usize = 4 << 20;
    let port: CompletionPort<u32> = iocport::Builder::new().entries(2).build().unwrap();
    let (mut client, server) = tcp_pair();
    let h = port.associate(server, 2).unwrap();
    for _ in 0..64 {
        port.provide_buffer(vec![0; 4096]).unwrap();
    }
    let Some(mut id) = start(&h, 1) else { return };
    let writer = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < TOTAL {
            let n = (TOTAL - sent).min(1000 + sent % 3000);
            client.write_all(&pattern_bytes(sent as u64, n)).unwrap();
            sent += n;
        }
        client.shutdown(Shutdown::Write).unwrap();
        client
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut got, mut packets, mut restarts) = (0usize, 0usize, 0usize);
    loop {
        assert!(Instant::now() < deadline, "{got} of {TOTAL} bytes in 30 s");
        let mut p = get(&port, "the flood");
        assert_eq!(p.op, Some(id));
        packets += 1;
        match p.status.errno() {
            None if p.bytes == 0 => break,
            None => {
                let buf = p.take_buf().expect("a buffer");
                for (i, &b) in buf[..p.bytes].iter().enumerate() {
                    assert_eq!(b, pattern((got + i) as u64), "byte {}", got + i);
                }
                got += p.bytes;
                port.provide_buffer(buf).unwrap();
            }
            // Buffers all out at once (the program gives them back only as it takes packets):
            // start another.
            Some(libc::ENOBUFS) => {
                restarts += 1;
                id = start(&h, 1).expect("started before");
            }
            Some(e) => panic!("the flood ended with errno {e}"),
        }
    }
    assert_eq!(got, TOTAL, "every byte, in order");
    assert!(packets > 64, "one request served many messages: {packets}");
    assert!(
        restarts < packets,
        "{restarts} restarts for {packets} packets"
    );
    drop(join_bounded(writer, "the writer"));
}

// Catches: a multishot receive ended (ECANCELED) because the thread that started it exited
// (io_uring ties a request to its submitter): it must go on serving messages, as on Windows.
#[test]
fn it_outlives_the_thread_that_started_it() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (mut client, server) = tcp_pair();
    let h = std::sync::Arc::new(port.associate(server, 4).unwrap());
    for _ in 0..4 {
        port.provide_buffer(vec![0; 64]).unwrap();
    }
    let h2 = h.clone();
    let id = join_bounded(std::thread::spawn(move || start(&h2, 8)), "the starter");
    let Some(id) = id else { return };
    for round in 0..20u32 {
        let msg = format!("after the exit {round}");
        client.write_all(msg.as_bytes()).unwrap();
        let mut p = get(&port, "a message after the starter exited");
        assert!(p.status.is_ok(), "round {round}: {:?}", p.status);
        assert_eq!((p.op, p.value), (Some(id), 8));
        assert_eq!(message(&mut p), msg.as_bytes());
        port.provide_buffer(vec![0; 64]).unwrap();
    }
}

// Catches: flags the request cannot honour taken silently; the value not handed back.
#[test]
fn dontwait_and_waitall_are_refused_with_the_value() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (_client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    for flag in [libc::MSG_DONTWAIT, libc::MSG_WAITALL] {
        let e = h.recv_multishot(flag, 12).unwrap_err();
        assert!(
            matches!(
                e.error,
                Error::InvalidArgument {
                    op: "recv_multishot",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.value, 12);
    }
}

// Catches: closing the port leaving a multishot receive armed (close would wait forever) or
// losing its last packet.
#[test]
fn close_ends_it() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (_client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    port.provide_buffer(vec![0; 64]).unwrap();
    let Some(id) = start(&h, 99) else { return };
    let packets = port.close();
    let last: Vec<_> = packets.iter().filter(|p| p.op == Some(id)).collect();
    assert_eq!(last.len(), 1, "{packets:?}");
    assert_eq!(last[0].status.errno(), Some(libc::ECANCELED));
    assert_eq!(last[0].value, 99);
}

/// Starts a multishot accept, or checks the refusal where multishot operations are pretended
/// missing (`None`).
#[track_caller]
fn start_accept(h: &iocport::Handle<u32>, value: u32) -> Option<OpId> {
    let missing = std::env::var("IOCPORT_TEST_MISSING")
        .is_ok_and(|m| m.split(',').any(|f| f == "all" || f == "recv_multishot"));
    let uring = h.port().backend().expect("set up").backend == Backend::IoUring;
    match h.accept_multishot(value) {
        Ok(id) => {
            assert!(!(missing && uring), "started where it is pretended missing");
            Some(id)
        }
        Err(e) if missing && uring => {
            assert!(matches!(e.error, Error::Unsupported { .. }), "{e}");
            assert_eq!(e.value, value, "the value comes back");
            None
        }
        Err(e) => panic!("accept_multishot: {e}"),
    }
}

// Catches: a multishot accept that ends after one connection, a packet without its socket or
// with the wrong peer, sockets mixed up between packets, one that stays armed after a cancel.
#[test]
fn a_multishot_accept_takes_every_connection_until_cancelled() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let lh = port.associate(listener, 6).unwrap();
    let Some(id) = start_accept(&lh, 21) else {
        return;
    };
    for round in 0..40u8 {
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let mut p = get(&port, "a connection");
        assert!(p.status.is_ok(), "round {round}: {:?}", p.status);
        assert_eq!((p.key, p.value, p.op), (6, 21, Some(id)));
        assert_eq!(
            p.peer_addr(),
            Some(client.local_addr().unwrap()),
            "round {round}"
        );
        let socket = std::net::TcpStream::from(p.take_socket().expect("the new socket"));
        client.write_all(&[round]).unwrap();
        let mut byte = [0u8];
        std::io::Read::read_exact(&mut &socket, &mut byte).unwrap();
        assert_eq!(byte[0], round, "the socket is this connection's");
    }
    port.cancel(id).unwrap();
    let p = get(&port, "the cancel");
    assert_eq!(p.status.errno(), Some(libc::ECANCELED), "{:?}", p.status);
    assert_eq!((p.value, p.op), (21, Some(id)));
    assert!(matches!(p.data, Data::None), "no socket in the last packet");
    let _late = std::net::TcpStream::connect(addr).unwrap();
    assert_quiet_for(&port, Duration::from_millis(100), "after the cancel");
}

// Catches: connections that arrive together (one readiness event, or one poll wake-up) not
// each getting a packet; the accept not outliving the thread that started it.
#[test]
fn a_burst_of_connections_each_gets_a_packet_after_the_starter_exited() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let lh = std::sync::Arc::new(port.associate(listener, 6).unwrap());
    let lh2 = lh.clone();
    let started = join_bounded(std::thread::spawn(move || start_accept(&lh2, 1)), "starter");
    let Some(id) = started else { return };
    let clients: Vec<_> = (0..50)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut peers: Vec<_> = (0..50)
        .map(|_| {
            let p = get(&port, "one of the burst");
            assert!(p.status.is_ok(), "{:?}", p.status);
            assert_eq!(p.op, Some(id));
            p.peer_addr().expect("the peer")
        })
        .collect();
    let mut locals: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    peers.sort();
    locals.sort();
    assert_eq!(peers, locals, "every connection, once");
    drop(lh);
    let p = get(&port, "the handle dropped");
    assert_eq!(p.status.errno(), Some(libc::ECANCELED), "{:?}", p.status);
}
