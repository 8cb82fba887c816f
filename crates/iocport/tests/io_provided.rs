//! `recv_provided`: receives that take a buffer from the port only when data arrives, on both
//! backends (io_uring: a provided buffer ring; epoll: the port's list): round trips that give the
//! buffer back each time, `ENOBUFS` when the port has none, pending receives that hold no buffer,
//! cancel, end of stream, and the limits of `provide_buffer`.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use iocport::{CompletionPort, Data, Error, Started};
use uio::{get, tcp_pair};

fn pending(s: Started<u32, Vec<u8>>) -> iocport::OpId {
    match s {
        Started::Pending(id) => id,
        Started::Done(p) => panic!("completed at once: {p:?}"),
    }
}

// Catches: a received buffer that is not one of those provided, bytes lost or misplaced, a buffer
// that cannot be provided again after it came back.
#[test]
fn round_trips_take_a_provided_buffer_and_give_it_back() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (mut client, server) = tcp_pair();
    client.set_nodelay(true).unwrap();
    let h = port.associate(server, 5).unwrap();
    for i in 0..2u8 {
        port.provide_buffer(vec![i; 1024]).unwrap();
    }
    for round in 0..200u32 {
        pending(h.recv_provided(0, round).unwrap());
        let msg = format!("message {round}");
        client.write_all(msg.as_bytes()).unwrap();
        let mut p = get(&port, "recv_provided");
        assert_eq!((p.key, p.value), (5, round));
        assert!(p.status.is_ok(), "{:?}", p.status);
        assert_eq!(p.bytes, msg.len());
        let buf = p.take_buf().expect("a provided buffer");
        assert_eq!(buf.len(), 1024, "one of the buffers given, whole");
        assert_eq!(&buf[..p.bytes], msg.as_bytes());
        port.provide_buffer(buf).unwrap();
    }
}

// Catches: a receive that runs while the port has no buffer blocking or failing otherwise than
// with ENOBUFS, and the data being lost: it stays in the socket for the next receive.
#[test]
fn without_a_buffer_a_receive_ends_with_enobufs_and_loses_nothing() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (mut client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    client.write_all(b"kept").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    pending(h.recv_provided(0, 1).unwrap());
    let p = get(&port, "recv_provided with no buffer");
    assert_eq!(p.status.errno(), Some(libc::ENOBUFS), "{:?}", p.status);
    assert_eq!((p.bytes, p.value), (0, 1));
    assert!(matches!(p.data, Data::None));
    port.provide_buffer(vec![0; 64]).unwrap();
    pending(h.recv_provided(0, 2).unwrap());
    let mut p = get(&port, "recv_provided after providing");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(&p.take_buf().unwrap()[..p.bytes], b"kept");
}

// Catches: pending receives holding buffers (the point of providing them at completion time):
// ten connections wait with four buffers in the port; when six receive data, four get a buffer
// and two ENOBUFS, and their data waits in their sockets.
#[test]
fn waiting_receives_hold_no_buffer() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    for _ in 0..4 {
        port.provide_buffer(vec![0; 256]).unwrap();
    }
    let mut clients = Vec::new();
    let mut handles = Vec::new();
    for i in 0..10u32 {
        let (c, s) = tcp_pair();
        let h = port.associate(s, i as usize).unwrap();
        pending(h.recv_provided(0, i).unwrap());
        clients.push(c);
        handles.push(h);
    }
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(port.stats().queued, 0, "no receive ends before its data");
    // The last six: receives that had taken a buffer while waiting would be the first four.
    for c in &mut clients[4..] {
        c.write_all(b"data").unwrap();
    }
    let (mut got, mut short) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        let mut p = get(&port, "recv_provided");
        match p.status.errno() {
            None => {
                assert_eq!(p.bytes, 4);
                got.push(p.take_buf().unwrap());
            }
            Some(libc::ENOBUFS) => short.push(p.value),
            e => panic!("{e:?}"),
        }
    }
    assert_eq!((got.len(), short.len()), (4, 2));
    // The four others still wait, holding nothing.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(port.stats().queued, 0);
    for b in got {
        port.provide_buffer(b).unwrap();
    }
    for &i in &short {
        pending(handles[i as usize].recv_provided(0, 100 + i).unwrap());
        let mut p = get(&port, "recv_provided again");
        assert!(p.status.is_ok(), "{:?}", p.status);
        assert_eq!(&p.take_buf().unwrap()[..p.bytes], b"data");
    }
}

// Catches: a cancelled receive consuming a buffer, or end of stream mishandled.
#[test]
fn cancel_and_end_of_stream_keep_the_buffers() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (mut client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    port.provide_buffer(vec![0; 32]).unwrap();
    let id = pending(h.recv_provided(0, 1).unwrap());
    port.cancel(id).unwrap();
    let p = get(&port, "cancelled recv_provided");
    assert_eq!(p.status.errno(), Some(libc::ECANCELED));
    assert!(matches!(p.data, Data::None));
    // The one buffer is still there for the next receive.
    pending(h.recv_provided(0, 2).unwrap());
    client.write_all(b"x").unwrap();
    let mut p = get(&port, "recv_provided after a cancel");
    assert_eq!(p.bytes, 1);
    port.provide_buffer(p.take_buf().unwrap()).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    pending(h.recv_provided(0, 3).unwrap());
    let mut p = get(&port, "recv_provided at end of stream");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.bytes, 0);
    // A buffer that came back with the end of stream is the program's again.
    if let Some(b) = p.take_buf() {
        port.provide_buffer(b).unwrap();
    }
    let mut rest = Vec::new();
    drop(h);
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

// Catches: an empty buffer or a 4,097th accepted (the ring holds 4,096), or a rejected buffer
// not handed back.
#[test]
fn provide_buffer_checks_and_hands_back() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (e, b) = port.provide_buffer(Vec::new()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    assert!(b.is_empty());
    for i in 0..4096u32 {
        port.provide_buffer(i.to_le_bytes().to_vec()).unwrap();
    }
    let (e, b) = port.provide_buffer(vec![9; 3]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    assert_eq!(b, vec![9; 3]);
    // Buffers are taken oldest first.
    let (mut client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    client.write_all(b"ab").unwrap();
    pending(h.recv_provided(0, 1).unwrap());
    let mut p = get(&port, "recv_provided");
    assert_eq!(
        p.take_buf().unwrap(),
        b"ab\0\0".to_vec(),
        "the first buffer given"
    );
    port.close();
}

// Catches: the backends disagreeing on a receive started while the port has no buffer left (and
// no data has come): it ends with ENOBUFS at once on both, instead of waiting on one of them.
#[test]
fn a_receive_started_with_the_pool_empty_ends_with_enobufs_at_once() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    port.provide_buffer(vec![0; 16]).unwrap();
    let (mut a, sa) = tcp_pair();
    let (_b, sb) = tcp_pair();
    let (ha, hb) = (
        port.associate(sa, 1).unwrap(),
        port.associate(sb, 2).unwrap(),
    );
    a.write_all(b"a").unwrap();
    pending(ha.recv_provided(0, 1).unwrap());
    let mut p = get(&port, "the only buffer");
    let kept = p.take_buf().unwrap();
    pending(hb.recv_provided(0, 2).unwrap());
    let p = get(&port, "recv_provided with the pool empty");
    assert_eq!(p.status.errno(), Some(libc::ENOBUFS), "{:?}", p.status);
    drop(kept);
}

// Catches: a receive started before any buffer was ever provided waiting (on io_uring, with no
// ring registered yet) instead of ending with ENOBUFS at once as on the epoll backend.
#[test]
fn a_receive_before_any_buffer_ends_with_enobufs_at_once() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (_a, sa) = tcp_pair();
    let ha = port.associate(sa, 1).unwrap();
    pending(ha.recv_provided(0, 1).unwrap());
    let p = get(&port, "recv_provided before any buffer");
    assert_eq!(p.status.errno(), Some(libc::ENOBUFS), "{:?}", p.status);
}

// Catches: the backends disagreeing on a receive whose flags say MSG_DONTWAIT on a socket with no
// data: it ends at once with EAGAIN on both (as `recv` with MSG_DONTWAIT does, and io_uring), not
// waiting for data on one of them; the buffer it did not use stays the port's.
#[test]
fn msg_dontwait_with_no_data_ends_with_eagain_at_once() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    port.provide_buffer(vec![0; 64]).unwrap();
    let (mut client, server) = tcp_pair();
    let h = port.associate(server, 1).unwrap();
    let start = std::time::Instant::now();
    let p = match h.recv_provided(libc::MSG_DONTWAIT, 1).unwrap() {
        Started::Pending(_) => get(&port, "recv_provided with MSG_DONTWAIT"),
        Started::Done(p) => p,
    };
    assert_eq!(p.status.errno(), Some(libc::EAGAIN), "{:?}", p.status);
    assert_eq!((p.bytes, p.value), (0, 1));
    assert!(matches!(p.data, Data::None));
    assert!(start.elapsed() < Duration::from_secs(1));
    // Not left waiting: data sent now is for the next receive, which gets the one buffer.
    client.write_all(b"later").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    uio::assert_no_packet(&port, "after the EAGAIN");
    let p = match h.recv_provided(libc::MSG_DONTWAIT, 2).unwrap() {
        Started::Pending(_) => get(&port, "recv_provided with MSG_DONTWAIT and data"),
        Started::Done(p) => p,
    };
    let mut p = p;
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(&p.take_buf().unwrap()[..p.bytes], b"later");
}
