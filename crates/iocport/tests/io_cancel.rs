//! Cancellation through the port: cancel-right-after-submit races, cancel of completed and stale
//! ids, timer cancel, `cancel_all`, handle drop with operations pending (and when its fd closes),
//! and closing a port with 1,000 receives in flight.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iocport::{CompletionPort, Data, Error, GetError, Interest, OpId, Started};
use uio::get;
use util::DEADLINE;

fn pending(s: Result<Started<u32, Vec<u8>>, iocport::OpError<u32, Vec<u8>>>) -> OpId {
    match s {
        Ok(Started::Pending(id)) => id,
        other => panic!("expected a pending op, got {other:?}"),
    }
}

/// The slot index in an id's debug form `OpId(index#generation)`.
fn slot_of(id: OpId) -> (String, String) {
    let s = format!("{id:?}");
    let inner = s
        .strip_prefix("OpId(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected OpId debug form {s}"));
    let (i, g) = inner.split_once('#').expect("index#generation");
    (i.to_owned(), g.to_owned())
}

// Catches: an op that ends in zero or two packets when its cancel races with its completion (with
// and without data arriving at the same moment), a buffer not handed back, a cancelled recv that
// consumed data (bytes lost from the stream) or a packet carrying another socket's data, cancel
// failing with anything but NotFound, a slot freed twice or reused while in flight.
#[test]
fn ten_thousand_cancel_races() {
    const OPS: usize = 10_000;
    const PAIRS: usize = 8;
    const MAX_IN_FLIGHT: usize = 256;
    const BUF: usize = 16;
    const CHUNK: usize = 8;
    const CHUNKS_PER_PAIR: usize = 300;
    let port: CompletionPort<u32> = CompletionPort::new(2);
    let mut handles = Vec::new();
    let mut peers = Vec::new();
    for i in 0..PAIRS {
        let (ours, theirs) = UnixStream::pair().unwrap();
        handles.push(port.associate(ours, i).unwrap());
        peers.push(theirs);
    }
    let received = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Two workers take the packets while the main thread submits and cancels.
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let port = port.clone();
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let start = Instant::now();
                while !stop.load(Ordering::SeqCst) && start.elapsed() < DEADLINE * 2 {
                    match port.get(Some(Duration::from_millis(20))) {
                        Ok(mut p) => {
                            let buf = match std::mem::take(&mut p.data) {
                                Data::Buf(b) => Some(b),
                                _ => None,
                            };
                            seen.push((p.key, p.value, p.bytes, p.status.errno(), buf));
                            received.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(GetError::TimedOut) => {}
                        Err(GetError::Closed) => break,
                    }
                }
                seen
            })
        })
        .collect();
    // The peers send data during the first part of the run, so that some cancels meet a recv that
    // is completing with data.
    let sender = std::thread::spawn(move || {
        let mut sent = [0usize; PAIRS];
        for round in 0..CHUNKS_PER_PAIR {
            for (i, peer) in peers.iter_mut().enumerate() {
                peer.write_all(&[i as u8 + 1; CHUNK]).unwrap();
                sent[i] += CHUNK;
            }
            if round % 8 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        (peers, sent)
    });

    let mut not_found = 0usize;
    let start = Instant::now();
    for j in 0..OPS {
        while j - received.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
            assert!(
                start.elapsed() < DEADLINE * 2,
                "stuck: {j} submitted, {} packets",
                received.load(Ordering::SeqCst)
            );
            std::thread::yield_now();
        }
        let h = &handles[j % PAIRS];
        let id = pending(h.recv(vec![0; BUF], 0, j as u32));
        match port.cancel(id) {
            Ok(()) => {}
            Err(Error::NotFound { id: nf }) => {
                assert_eq!(nf, id);
                not_found += 1;
            }
            Err(e) => panic!("cancel {id:?}: {e}"),
        }
    }
    util::wait_for("a packet for every op", || {
        received.load(Ordering::SeqCst) >= OPS
    });
    // Nothing more may come.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    let mut seen: Vec<_> = workers
        .into_iter()
        .flat_map(|w| uio::join_bounded(w, "worker"))
        .collect();
    let (mut peers, sent) = uio::join_bounded(sender, "sender");
    assert_eq!(seen.len(), OPS, "exactly one packet per op (total)");
    seen.sort_by_key(|s| s.1);
    let mut got = [0usize; PAIRS];
    let (mut cancelled, mut completed, mut bufs) = (0, 0, 0);
    for (j, (key, value, bytes, errno, buf)) in seen.into_iter().enumerate() {
        assert_eq!(value as usize, j, "op {j}: missing or duplicated packet");
        assert_eq!(key, j % PAIRS, "op {j}: key");
        let buf = buf.unwrap_or_else(|| panic!("op {j}: no buffer back"));
        assert_eq!(buf.len(), BUF);
        bufs += 1;
        match errno {
            Some(libc::ECANCELED) => {
                assert_eq!(bytes, 0, "op {j}: cancelled with bytes");
                assert!(buf.iter().all(|&b| b == 0), "op {j}: cancelled recv wrote");
                cancelled += 1;
            }
            None => {
                assert!(bytes > 0 && bytes <= BUF, "op {j}: {bytes} bytes");
                assert!(
                    buf[..bytes].iter().all(|&b| b == key as u8 + 1),
                    "op {j} on pair {key} got someone else's data: {:?}",
                    &buf[..bytes]
                );
                got[key] += bytes;
                completed += 1;
            }
            Some(e) => panic!("op {j}: unexpected errno {e}"),
        }
    }
    assert_eq!(bufs, OPS, "every buffer handed back");
    assert_eq!(cancelled + completed, OPS);
    assert!(
        cancelled > OPS / 2,
        "only {cancelled} of {OPS} recvs were cancelled"
    );
    assert!(
        completed > 0,
        "no recv met data: the data race was not exercised"
    );
    // No byte was lost or duplicated: what the recvs got plus what is left equals what was sent.
    for (i, peer) in peers.iter_mut().enumerate() {
        let h = &handles[i];
        let start = Instant::now();
        loop {
            assert!(start.elapsed() < DEADLINE, "draining pair {i}");
            h.recv(vec![0; 4096], libc::MSG_DONTWAIT, 0).unwrap();
            let p = get(&port, "drain");
            if p.status.errno() == Some(libc::EAGAIN) {
                break;
            }
            assert!(p.status.is_ok(), "drain: {:?}", p.status);
            got[i] += p.bytes;
        }
        peer.set_nonblocking(true).unwrap();
        assert_eq!(
            peer.read(&mut [0; 1]).map_err(|e| e.kind()).unwrap_err(),
            ErrorKind::WouldBlock
        );
    }
    assert_eq!(got, sent, "bytes received per pair == bytes sent");
    eprintln!(
        "{OPS} races: {cancelled} cancelled, {completed} completed, {not_found} cancels NotFound, {:?}",
        start.elapsed()
    );
    drop(handles);
    port.close();
}

// Catches: cancel of an op whose packet was delivered succeeding (or cancelling something else)
// instead of NotFound.
#[test]
fn cancel_of_completed_op_is_not_found() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let id = port.nop(1, 1).unwrap();
    let p = get(&port, "nop");
    assert_eq!(p.op, Some(id), "the packet names its op");
    match port.cancel(id) {
        Err(Error::NotFound { id: nf }) => assert_eq!(nf, id),
        other => panic!("cancel of a completed nop: {other:?}"),
    }
    // A recv cancelled once: the second cancel, after its packet, is NotFound too.
    let (a, _b) = UnixStream::pair().unwrap();
    let h = port.associate(a, 2).unwrap();
    let id = pending(h.recv(vec![0; 8], 0, 2));
    port.cancel(id).unwrap();
    let p = get(&port, "cancelled recv");
    assert_eq!(p.status.errno(), Some(libc::ECANCELED));
    assert!(matches!(port.cancel(id), Err(Error::NotFound { .. })));
    let e = port.cancel(id).unwrap_err().to_string();
    assert!(e.contains("not pending"), "NotFound display: {e}");
    drop(h);
    port.close();
}

// Catches: a stale id (its slot reused by a newer op) cancelling the new tenant: the generation
// check missing or compared wrongly.
#[test]
fn stale_id_never_cancels_the_slots_new_tenant() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (a, mut b) = UnixStream::pair().unwrap();
    let h = port.associate(a, 1).unwrap();
    for round in 0..100u32 {
        let stale = port.nop(0, round).unwrap();
        assert_eq!(get(&port, "nop A").op, Some(stale));
        let fresh = pending(h.recv(vec![0; 8], 0, round));
        let (si, sg) = slot_of(stale);
        let (fi, fg) = slot_of(fresh);
        assert_eq!(
            si, fi,
            "round {round}: B does not reuse A's slot; the test is moot"
        );
        assert_ne!(sg, fg, "round {round}: same slot, same generation");
        assert_ne!(stale, fresh);
        match port.cancel(stale) {
            Err(Error::NotFound { id }) => assert_eq!(id, stale),
            other => panic!("round {round}: cancel of the stale id: {other:?}"),
        }
        if round % 20 == 0 {
            uio::assert_quiet_for(&port, Duration::from_millis(10), "B still pending");
        } else {
            uio::assert_no_packet(&port, "B still pending");
        }
        b.write_all(&round.to_le_bytes()).unwrap();
        let mut p = get(&port, "B completes with its data");
        assert_eq!(p.op, Some(fresh));
        assert!(p.status.is_ok(), "round {round}: B got {:?}", p.status);
        assert_eq!(p.bytes, 4);
        assert_eq!(p.take_buf().unwrap()[..4], round.to_le_bytes());
    }
    drop(h);
    port.close();
}

// Catches: a cancelled timer that still waits for its deadline, or reports success.
#[test]
fn cancelled_timer_reports_ecanceled() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let start = Instant::now();
    let long = port.timer(Duration::from_secs(30), 1, 1).unwrap();
    let short = port.timer(Duration::from_millis(20), 2, 2).unwrap();
    port.cancel(long).unwrap();
    let p = get(&port, "cancelled timer");
    assert_eq!((p.key, p.value, p.op), (1, 1, Some(long)));
    assert_eq!(p.status.errno(), Some(libc::ECANCELED), "{:?}", p.status);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let p = get(&port, "the other timer is unaffected");
    assert_eq!((p.op, p.status.is_ok()), (Some(short), true));
    assert!(matches!(port.cancel(long), Err(Error::NotFound { .. })));
    port.close();
}

// Catches: cancel_all missing some of a handle's ops, touching ops on other handles, or leaving the
// handle unusable.
#[test]
fn cancel_all_cancels_only_this_handles_ops() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (a, mut a_peer) = UnixStream::pair().unwrap();
    let (c, mut c_peer) = UnixStream::pair().unwrap();
    let ha = port.associate(a, 1).unwrap();
    let hc = port.associate(c, 2).unwrap();
    for i in 0..5 {
        pending(ha.recv(vec![0; 8], 0, i));
    }
    pending(ha.poll(Interest::READABLE, 5));
    let other = pending(hc.recv(vec![0; 8], 0, 100));
    ha.cancel_all().unwrap();
    let mut values: Vec<u32> = uio::get_n(&port, 6, "cancel_all")
        .into_iter()
        .map(|p| {
            assert_eq!(p.key, 1, "an op of the other handle completed: {p:?}");
            assert_eq!(p.status.errno(), Some(libc::ECANCELED), "{p:?}");
            p.value
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, [0, 1, 2, 3, 4, 5]);
    uio::assert_quiet_for(&port, Duration::from_millis(20), "the other handle's recv");
    // Both handles still work.
    c_peer.write_all(b"c").unwrap();
    let p = get(&port, "other handle's recv");
    assert_eq!((p.op, p.bytes), (Some(other), 1));
    pending(ha.recv(vec![0; 8], 0, 6));
    a_peer.write_all(b"again").unwrap();
    let p = get(&port, "recv after cancel_all");
    assert_eq!((p.value, p.bytes, p.status.is_ok()), (6, 5, true));
    drop((ha, hc));
    port.close();
}

// Catches: dropping a handle that leaves its ops pending forever (no packet), loses their buffers,
// closes the fd while the kernel still uses it, or never closes it.
#[test]
fn handle_drop_cancels_ops_and_closes_the_fd_after_the_last() {
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let raw = uio::raw(&ours);
    let ident = uio::fd_identity(raw).unwrap();
    let h = port.associate(ours, 9).unwrap();
    for i in 0..3 {
        pending(h.recv(vec![0; 32], 0, i));
    }
    pending(h.poll(Interest::READABLE, 3));
    drop(h);
    // The fd stays open while any op has not completed (the kernel may still be using it, and its
    // number must not be reused under the ops). On io_uring nobody has reaped the cancellations
    // yet; the epoll backend completes them on the dropping thread, whose packets are then queued
    // already, and the fd may be closed.
    if uio::fd_identity(raw) == Some(ident) {
        theirs.set_nonblocking(true).unwrap();
        assert_eq!(
            theirs.read(&mut [0; 1]).map_err(|e| e.kind()).unwrap_err(),
            ErrorKind::WouldBlock,
            "the peer sees EOF before the ops' packets are in"
        );
    } else {
        assert_eq!(port.stats().queued, 4, "fd closed before its ops completed");
    }
    let mut bufs = 0;
    let mut values = Vec::new();
    for mut p in uio::get_n(&port, 4, "ops of a dropped handle") {
        assert_eq!(p.key, 9);
        assert_eq!(p.status.errno(), Some(libc::ECANCELED), "{p:?}");
        if let Some(b) = p.take_buf() {
            assert_eq!(b.len(), 32);
            bufs += 1;
        }
        values.push(p.value);
    }
    values.sort_unstable();
    assert_eq!(values, [0, 1, 2, 3]);
    assert_eq!(bufs, 3, "the three recv buffers come back");
    // All packets are in: the fd is closed (the number is free, or now names something else), by
    // the closer thread, so that no port thread waits for close(2).
    util::wait_for("the fd closed after the last op", || {
        uio::fd_identity(raw) != Some(ident)
    });
    theirs.set_nonblocking(false).unwrap();
    theirs.set_read_timeout(Some(DEADLINE)).unwrap();
    assert_eq!(theirs.read(&mut [0; 1]).unwrap(), 0, "peer sees EOF");
    uio::assert_no_packet(&port, "exactly one packet per op");
    port.close();
}

/// `PAIRS` socket pairs with `PER` recvs in flight on each of ours (submitted in one batch).
fn recvs_in_flight(
    port: &CompletionPort<u32>,
    pairs: usize,
    per: usize,
) -> (Vec<iocport::Handle<u32>>, Vec<UnixStream>) {
    let mut handles = Vec::new();
    let mut peers = Vec::new();
    for i in 0..pairs {
        let (ours, theirs) = UnixStream::pair().unwrap();
        handles.push(port.associate(ours, i).unwrap());
        peers.push(theirs);
    }
    port.batch(|| {
        for j in 0..pairs * per {
            pending(handles[j % pairs].recv(vec![0; 64], 0, j as u32));
        }
    });
    (handles, peers)
}

/// Checks what `close` returned: one ECANCELED packet per recv, buffers back untouched.
fn check_closed_packets(left: Vec<iocport::Packet<u32>>, pairs: usize, total: usize) {
    assert_eq!(left.len(), total, "close returns every op's packet");
    let mut values: Vec<u32> = Vec::with_capacity(left.len());
    for p in left {
        assert_eq!(p.status.errno(), Some(libc::ECANCELED), "{p:?}");
        assert_eq!(p.key, p.value as usize % pairs);
        match &p.data {
            Data::Buf(b) => assert!(b.len() == 64 && b.iter().all(|&x| x == 0)),
            d => panic!("op {}: buffer not back: {d:?}", p.value),
        }
        values.push(p.value);
    }
    values.sort_unstable();
    assert!(
        values.iter().copied().eq(0..total as u32),
        "one packet per op"
    );
}

// Catches: close() not cancelling ops in flight, returning fewer (or more) packets than ops,
// dropping buffers, a get after close that does not return Closed, ops accepted after close, and
// fds not closed once their handles are gone. (Single-threaded: scripts/valgrind.sh runs it.)
#[test]
fn close_with_thousand_recvs_in_flight() {
    const PAIRS: usize = 10;
    const PER: usize = 100;
    let port: CompletionPort<u32> = CompletionPort::new(2);
    let (handles, peers) = recvs_in_flight(&port, PAIRS, PER);
    // One of them already completed and queued: close returns it too.
    port.nop(0, 5_000).unwrap();
    let start = Instant::now();
    let mut left = port.close();
    let took = start.elapsed();
    let nop = left
        .iter()
        .position(|p| p.value == 5_000)
        .expect("the completed nop's packet is returned by close");
    assert!(left.remove(nop).status.is_ok());
    check_closed_packets(left, PAIRS, PAIRS * PER);
    assert_eq!(
        port.get(Some(Duration::ZERO)).unwrap_err(),
        GetError::Closed
    );
    assert_eq!(
        port.get(Some(Duration::from_millis(10))).unwrap_err(),
        GetError::Closed
    );
    assert!(port.close().is_empty(), "a second close returns nothing");
    // Ops on the closed port fail at once, with the buffer back.
    let e = handles[0].recv(vec![1; 3], 0, 7).unwrap_err();
    assert!(matches!(e.error, Error::Closed), "{e}");
    assert_eq!(
        (e.value, matches!(e.data, Data::Buf(ref b) if b == &[1; 3])),
        (7, true)
    );
    drop(handles);
    for (i, mut peer) in peers.into_iter().enumerate() {
        peer.set_read_timeout(Some(DEADLINE)).unwrap();
        assert_eq!(
            peer.read(&mut [0; 1]).unwrap(),
            0,
            "pair {i}: fd not closed"
        );
    }
    eprintln!("close with {} recvs in flight took {took:?}", PAIRS * PER);
}

/// Starts 2 threads waiting in `get` on a port with 200 recvs in flight, waits until both sleep,
/// closes the port, and returns what close returned and what each waiter got.
#[allow(clippy::type_complexity)]
fn close_under_waiters() -> (
    Vec<iocport::Packet<u32>>,
    Vec<Result<iocport::Packet<u32>, GetError>>,
) {
    let port: CompletionPort<u32> = CompletionPort::new(2);
    let (handles, _peers) = recvs_in_flight(&port, 4, 50);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let port = port.clone();
            std::thread::spawn(move || port.get(Some(DEADLINE)))
        })
        .collect();
    // Both asleep: with I/O one of them is the leader, blocked in io_uring_enter, which `waiting`
    // does not count (only the parked followers); every sleep counts in `parks`.
    util::wait_stats(&port, "both waiters asleep", |s| {
        s.parks >= 2 && s.waiting >= 1
    });
    let start = Instant::now();
    let left = port.close();
    let got: Vec<_> = waiters
        .into_iter()
        .map(|w| uio::join_bounded(w, "waiter"))
        .collect();
    assert!(
        start.elapsed() < DEADLINE / 2,
        "waiters took {:?} to wake",
        start.elapsed()
    );
    drop(handles);
    (left, got)
}

// Catches: threads waiting in get (the leader blocked in io_uring_enter and a parked follower) not
// woken by close, and a cancelled op's packet lost or duplicated between close's result and a
// waiter. (A waiter that gets a cancelled op's packet instead of Closed is the known bug checked
// strictly by `close_gives_waiters_closed_never_a_cancelled_packet`.)
#[test]
fn close_wakes_waiters_while_ops_are_in_flight() {
    let (mut left, got) = close_under_waiters();
    for g in got {
        match g {
            Err(GetError::Closed) => {}
            Ok(p) if p.status.errno() == Some(libc::ECANCELED) => left.push(p),
            other => panic!("a waiter woke with {other:?}"),
        }
    }
    check_closed_packets(left, 4, 200);
}

// Catches: the leader keeping a cancellation completion (produced by close itself) as its own
// packet: get returns Ok(ECANCELED packet) after close began, and close returns that op short.
#[test]
fn close_gives_waiters_closed_never_a_cancelled_packet() {
    for round in 0..30 {
        let (left, got) = close_under_waiters();
        for g in got {
            assert!(
                matches!(g, Err(GetError::Closed)),
                "round {round}: a waiter woke with {:?}",
                g.map(|p| (p.value, p.status))
            );
        }
        check_closed_packets(left, 4, 200);
    }
}

// Catches: a cancel that found the submission queue full being dropped, or retried later by the
// bare fd number (which a new file may have taken by then). Inside a batch two NOPs fill a 2-entry
// queue before `cancel_all`: the cancel waits in the port under the handle's identity and still
// reaches this handle's recv, and only it.
#[test]
fn a_cancel_that_finds_the_queue_full_is_queued_later() {
    let port: CompletionPort<u32> = iocport::Builder::new()
        .concurrency(1)
        .entries(2)
        .submit_mode(iocport::SubmitMode::Caller)
        .build()
        .unwrap();
    let (a, _a_peer) = UnixStream::pair().unwrap();
    let (c, mut c_peer) = UnixStream::pair().unwrap();
    let ha = port.associate(a, 1).unwrap();
    let hc = port.associate(c, 2).unwrap();
    pending(ha.recv(vec![0; 8], 0, 1));
    pending(hc.recv(vec![0; 8], 0, 2));
    port.batch(|| {
        port.nop(3, 3).unwrap();
        port.nop(3, 4).unwrap();
        ha.cancel_all().unwrap();
    });
    let mut got: Vec<(u32, Option<i32>)> = uio::get_n(&port, 3, "two NOPs and the cancelled recv")
        .into_iter()
        .map(|p| (p.value, p.status.errno()))
        .collect();
    got.sort_unstable();
    assert_eq!(got, [(1, Some(libc::ECANCELED)), (3, None), (4, None)]);
    uio::assert_quiet_for(&port, Duration::from_millis(20), "the other handle's recv");
    c_peer.write_all(b"c").unwrap();
    assert_eq!(get(&port, "the other recv").value, 2);
    drop((ha, hc));
    port.close();
}
