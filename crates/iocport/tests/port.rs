//! Integration tests of the port's semantics (DESIGN.md Part 1: "The port", "Packets", "Threads and
//! the concurrency value").
//!
//! Each test says in a one-line comment which broken implementation it catches. States are reached by
//! polling `stats()` with a bounded deadline (see `util`), never by sleeping alone.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use iocport::{CompletionPort, GetError, Packet, PostError, Status};
use util::{recv, wait_for, wait_stats, wait_waiting, DropCounter, DEADLINE};

/// Long enough to never fire in a passing test, short enough that a broken port fails instead of hanging.
const LONG: Option<Duration> = Some(DEADLINE);
const POLL: Option<Duration> = Some(Duration::ZERO);

// ---------------------------------------------------------------------------------------------------
// FIFO
// ---------------------------------------------------------------------------------------------------

// Catches: a LIFO/unordered queue, or losing/duplicating packets with one consumer.
#[test]
fn fifo_one_consumer() {
    const N: usize = 10_000;
    let port = CompletionPort::new(1);
    for i in 0..N {
        port.post(i, i * 2, i as u64).unwrap();
    }
    assert_eq!(port.stats().queued, N);
    for i in 0..N {
        let p = port.get(LONG).unwrap();
        assert_eq!((p.key, p.bytes, p.value), (i, i * 2, i as u64));
        assert!(p.status.is_ok());
    }
    assert_eq!(port.get(POLL), Err(GetError::TimedOut));
    let s = port.stats();
    assert_eq!((s.posted, s.delivered, s.queued), (N as u64, N as u64, 0));
}

// Catches: get_many draining from the wrong end, returning more than max, or reporting a wrong count.
#[test]
fn fifo_get_many() {
    const N: usize = 10_000;
    const MAX: usize = 64;
    let port = CompletionPort::new(1);
    for i in 0..N {
        port.post(i, 0, ()).unwrap();
    }
    let mut out = Vec::with_capacity(N);
    while out.len() < N {
        let before = out.len();
        let n = port.get_many(&mut out, MAX, LONG).unwrap();
        assert!((1..=MAX).contains(&n), "get_many returned {n}");
        assert_eq!(out.len(), before + n, "count must match what was appended");
    }
    let keys: Vec<usize> = out.iter().map(|p| p.key).collect();
    assert_eq!(keys, (0..N).collect::<Vec<_>>());
    assert_eq!(port.get_many(&mut out, MAX, POLL), Err(GetError::TimedOut));
    assert_eq!(out.len(), N, "a failed get_many appends nothing");
}

// Catches: a hand-off to a waiting consumer overtaking packets already queued (reordering between the
// direct hand-off path and the queue).
#[test]
fn fifo_with_concurrent_producer() {
    const N: usize = 20_000;
    let port = CompletionPort::new(1);
    thread::scope(|s| {
        let producer = s.spawn(|| {
            for i in 0..N {
                port.post(i, 0, ()).unwrap();
                if i % 512 == 0 {
                    thread::yield_now();
                }
            }
        });
        let mut out = Vec::with_capacity(64);
        let mut next = 0;
        while next < N {
            if next % 2 == 0 {
                let p = port.get(LONG).unwrap();
                assert_eq!(p.key, next);
                next += 1;
            } else {
                out.clear();
                port.get_many(&mut out, 7, LONG).unwrap();
                for p in &out {
                    assert_eq!(p.key, next);
                    next += 1;
                }
            }
        }
        producer.join().unwrap();
    });
    assert_eq!(port.stats().queued, 0);
}

// ---------------------------------------------------------------------------------------------------
// LIFO release of waiters
// ---------------------------------------------------------------------------------------------------

// Catches: FIFO (or arbitrary) waiter release, e.g. waking the longest waiter or a condvar's pick.
#[test]
fn waiters_released_lifo() {
    let port = CompletionPort::new(3);
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        for i in 0..3 {
            wait_waiting(&port, i);
            let (port, tx) = (&port, tx.clone());
            s.spawn(move || {
                let p = port.get(LONG).unwrap();
                tx.send((i, p.key)).unwrap();
            });
        }
        wait_waiting(&port, 3);
        // The thread that waited last gets the first packet, then the middle one, then the first.
        for (key, expected_thread) in [(100, 2), (101, 1), (102, 0)] {
            port.post(key, 0, ()).unwrap();
            assert_eq!(recv(&rx, "a waiter got the packet"), (expected_thread, key));
        }
    });
    assert_eq!(port.stats().waiting, 0);
}

// ---------------------------------------------------------------------------------------------------
// Concurrency value
// ---------------------------------------------------------------------------------------------------

/// Runs `workers` threads serving `packets` packets on a port of concurrency `n`; returns the highest
/// number of handlers seen running at once.
fn max_running(n: usize, workers: usize, packets: usize) -> usize {
    let port = CompletionPort::new(n);
    let running = AtomicUsize::new(0);
    let max = AtomicUsize::new(0);
    let processed = AtomicUsize::new(0);
    thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| loop {
                    match port.get(None) {
                        Ok(_) => {
                            // Counted after `get` returned, uncounted before the next `get`: this
                            // can only exceed n if the port lets more than n threads run.
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            max.fetch_max(now, Ordering::SeqCst);
                            for _ in 0..3 {
                                thread::yield_now();
                            }
                            processed.fetch_add(1, Ordering::SeqCst);
                            running.fetch_sub(1, Ordering::SeqCst);
                        }
                        Err(GetError::Closed) => return,
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        // Every worker is waiting, so a port that ignored n would release up to `workers` at once.
        wait_waiting(&port, workers);
        for i in 0..packets {
            port.post(i, 0, ()).unwrap();
            if i % 16 == 0 {
                thread::yield_now();
            }
        }
        wait_for("all packets processed", || {
            processed.load(Ordering::SeqCst) == packets
        });
        let s = port.stats();
        assert!(s.active <= n, "active {} > concurrency {n}", s.active);
        assert!(port.close().is_empty());
        for h in handles {
            h.join().unwrap();
        }
    });
    assert_eq!(processed.load(Ordering::SeqCst), packets);
    assert_eq!(port.stats().delivered, packets as u64);
    max.load(Ordering::SeqCst)
}

// Catches: releasing a waiter regardless of the active count (more than N handlers at once).
#[test]
fn concurrency_one_runs_one_at_a_time() {
    let max = max_running(1, 4, 1_000);
    assert_eq!(max, 1, "with N = 1 at most one handler may run");
}

// Catches: an off-by-one in the limit (`<=` instead of `<`), or a limit that ignores N > 1.
#[test]
fn concurrency_two_never_three() {
    let max = max_running(2, 4, 1_000);
    assert!(
        (1..=2).contains(&max),
        "with N = 2 saw {max} handlers at once"
    );
}

// Catches: a queued packet handed to a waiter while active == N (post path or release path).
#[test]
fn packet_queued_while_active_at_limit() {
    let port = CompletionPort::new(1);
    port.post(1, 0, ()).unwrap();
    assert_eq!(port.get(POLL).unwrap().key, 1); // this thread is active: 1 of 1
    thread::scope(|s| {
        let w = s.spawn(|| port.get(LONG));
        wait_waiting(&port, 1);
        port.post(2, 0, ()).unwrap();
        let st = port.stats();
        assert_eq!((st.queued, st.waiting, st.active), (1, 1, 1));
        // Calling get again gives the slot back and takes packet 2 itself (no context switch); the
        // waiter keeps waiting.
        assert_eq!(port.get(POLL).unwrap().key, 2);
        let st = port.stats();
        assert_eq!((st.queued, st.waiting, st.active), (0, 1, 1));
        port.close();
        assert_eq!(w.join().unwrap(), Err(GetError::Closed));
    });
}

// ---------------------------------------------------------------------------------------------------
// Blocking sections
// ---------------------------------------------------------------------------------------------------

enum Cmd {
    Get,
    /// Enter `iocport::blocking` and stay inside until the next command.
    Block,
    Leave,
}

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Got(usize, usize),
    GetErr(usize, GetError),
    Entered(usize),
    Left(usize),
}

/// A worker thread driven step by step through a channel; reports each step's outcome on `ev`.
fn scripted_worker(
    id: usize,
    port: &CompletionPort<()>,
    cmds: mpsc::Receiver<Cmd>,
    ev: mpsc::Sender<Ev>,
) {
    // A dropped sender (the test failed) ends the worker.
    while let Ok(cmd) = cmds.recv_timeout(DEADLINE * 3) {
        match cmd {
            Cmd::Get => match port.get(LONG) {
                Ok(p) => ev.send(Ev::Got(id, p.key)).unwrap(),
                Err(e) => {
                    ev.send(Ev::GetErr(id, e)).unwrap();
                    return;
                }
            },
            Cmd::Block => {
                iocport::blocking(|| {
                    ev.send(Ev::Entered(id)).unwrap();
                    assert!(matches!(cmds.recv_timeout(DEADLINE * 3), Ok(Cmd::Leave)));
                });
                ev.send(Ev::Left(id)).unwrap();
            }
            Cmd::Leave => panic!("Leave outside a blocking section"),
        }
    }
}

fn no_event(rx: &mpsc::Receiver<Ev>) {
    assert_eq!(rx.try_recv().err(), Some(TryRecvError::Empty));
}

// Catches: a blocking section that does not free the slot (worker 2 never runs), that does not hand a
// queued packet over when it frees it, that does not count the thread again when it ends, or a
// release of a new thread while the overshoot keeps active >= N.
#[test]
fn blocking_section_lets_another_worker_run() {
    let port = CompletionPort::new(1);
    let (ev_tx, ev) = mpsc::channel();
    thread::scope(|s| {
        let (c1, r1) = mpsc::channel();
        let (c2, r2) = mpsc::channel();
        let (port_ref, tx) = (&port, ev_tx.clone());
        let w1 = s.spawn(move || scripted_worker(1, port_ref, r1, tx));
        let tx = ev_tx.clone();
        let w2 = s.spawn(move || scripted_worker(2, port_ref, r2, tx));

        // Worker 1 takes packet 1 and is active: 1 of 1.
        c1.send(Cmd::Get).unwrap();
        wait_waiting(&port, 1);
        port.post(1, 0, ()).unwrap();
        assert_eq!(recv(&ev, "worker 1 gets packet 1"), Ev::Got(1, 1));

        // Worker 2 waits; packet 2 must stay queued while worker 1 runs.
        c2.send(Cmd::Get).unwrap();
        wait_waiting(&port, 1);
        port.post(2, 0, ()).unwrap();
        let st = port.stats();
        assert_eq!((st.queued, st.waiting, st.active), (1, 1, 1), "{st:?}");
        no_event(&ev);

        // Worker 1 blocks: worker 2 is released with packet 2 (in either order of the two reports).
        c1.send(Cmd::Block).unwrap();
        let mut evs = [recv(&ev, "block/release"), recv(&ev, "block/release")];
        evs.sort_by_key(|e| matches!(e, Ev::Got(..)));
        assert_eq!(evs, [Ev::Entered(1), Ev::Got(2, 2)]);
        let st = port.stats();
        assert_eq!((st.queued, st.waiting, st.active), (0, 0, 1), "{st:?}");

        // Worker 2 runs (1 of 1), worker 1 is blocked: packet 3 is queued.
        port.post(3, 0, ()).unwrap();
        assert_eq!(port.stats().queued, 1);

        // Worker 1 leaves the section: both count, active overshoots to 2, and packet 3 stays queued.
        c1.send(Cmd::Leave).unwrap();
        assert_eq!(recv(&ev, "worker 1 leaves"), Ev::Left(1));
        let st = port.stats();
        assert_eq!((st.queued, st.waiting, st.active), (1, 0, 2), "{st:?}");

        // Worker 2 asks again: active drops to 1, still not below N, so it waits; packet 3 stays.
        c2.send(Cmd::Get).unwrap();
        let st = wait_waiting(&port, 1);
        assert_eq!((st.queued, st.active), (1, 1), "{st:?}");
        no_event(&ev);

        // Worker 1 asks again: active drops to 0 and it takes packet 3 itself, without waiting.
        c1.send(Cmd::Get).unwrap();
        assert_eq!(recv(&ev, "worker 1 gets packet 3"), Ev::Got(1, 3));
        let st = port.stats();
        assert_eq!((st.queued, st.waiting, st.active), (0, 1, 1), "{st:?}");

        // Both wait: nobody is active.
        c1.send(Cmd::Get).unwrap();
        let st = wait_waiting(&port, 2);
        assert_eq!(st.active, 0, "{st:?}");

        port.close();
        let mut evs = [recv(&ev, "close"), recv(&ev, "close")];
        evs.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(
            evs,
            [
                Ev::GetErr(1, GetError::Closed),
                Ev::GetErr(2, GetError::Closed)
            ]
        );
        w1.join().unwrap();
        w2.join().unwrap();
    });
}

// Catches: nested sections releasing or reacquiring the slot more than once, or too early.
#[test]
fn nested_blocking_sections_count_once() {
    let port = CompletionPort::new(1);
    port.post(1, 0, ()).unwrap();
    port.get(POLL).unwrap();
    assert_eq!(port.stats().active, 1);
    let outer = iocport::enter_blocking();
    assert_eq!(port.stats().active, 0);
    let v = iocport::blocking(|| {
        assert_eq!(port.stats().active, 0);
        7
    });
    assert_eq!(v, 7);
    assert_eq!(
        port.stats().active,
        0,
        "inner section ended: still inside the outer one"
    );
    drop(outer);
    assert_eq!(port.stats().active, 1);
    // Giving the slot back by asking again.
    assert_eq!(port.get(POLL), Err(GetError::TimedOut));
    assert_eq!(port.stats().active, 0);
    // Outside a worker (not active), a section just runs its closure and touches no count.
    assert_eq!(iocport::blocking(|| 42), 42);
    assert_eq!(port.stats().active, 0);
}

// Catches: a blocking section that reacquires its slot on exit although the thread started afresh
// inside it (a get on the same port: counted twice; a get on another port: counted on the old one).
#[test]
fn get_inside_blocking_section_restarts_the_association() {
    let a = CompletionPort::new(1);
    let b: CompletionPort<()> = CompletionPort::new(1);
    a.post(1, 0, ()).unwrap();
    a.post(2, 0, ()).unwrap();
    assert_eq!(a.get(POLL).unwrap().key, 1);
    iocport::blocking(|| {
        assert_eq!(a.stats().active, 0);
        // The slot freed by the section lets this thread take packet 2 right here.
        assert_eq!(a.get(POLL).unwrap().key, 2);
        assert_eq!(a.stats().active, 1);
    });
    assert_eq!(a.stats().active, 1, "one thread, counted once");
    a.post(3, 0, ()).unwrap();
    iocport::blocking(|| {
        assert_eq!(a.stats().active, 0);
        assert_eq!(b.get(POLL), Err(GetError::TimedOut));
    });
    let st = a.stats();
    assert_eq!(
        (st.active, st.queued),
        (0, 1),
        "the thread moved to port B: {st:?}"
    );
    assert_eq!(b.stats().active, 0);
}

// ---------------------------------------------------------------------------------------------------
// Fast path, timeouts
// ---------------------------------------------------------------------------------------------------

// Catches: a get that parks (or queues itself as a waiter) even though a packet is there.
#[test]
fn get_with_packet_queued_does_not_park() {
    let port = CompletionPort::new(1);
    for i in 0..100 {
        port.post(i, 0, ()).unwrap();
        let parks = port.stats().parks;
        assert_eq!(port.get(None).unwrap().key, i);
        let s = port.stats();
        assert_eq!((s.parks, s.wakeups, s.waiting), (parks, 0, 0), "{s:?}");
    }
    assert_eq!(port.stats().parks, 0);
}

// Catches: a zero timeout that waits (or parks) instead of polling, or that ignores a queued packet.
#[test]
fn zero_timeout_polls() {
    let port = CompletionPort::new(1);
    let t = Instant::now();
    assert_eq!(port.get(POLL), Err(GetError::TimedOut));
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    let mut out = Vec::new();
    assert_eq!(port.get_many(&mut out, 4, POLL), Err(GetError::TimedOut));
    port.post(5, 6, ()).unwrap();
    assert_eq!(port.get(POLL).map(|p| (p.key, p.bytes)), Ok((5, 6)));
    let s = port.stats();
    assert_eq!((s.parks, s.waiting), (0, 0), "{s:?}");
}

// Catches: a timed wait returning early, or a timed-out waiter left on the stack to swallow the
// next packet.
#[test]
fn timeout_waits_at_least_its_duration() {
    let port = CompletionPort::new(1);
    let timeout = Duration::from_millis(50);
    let t = Instant::now();
    assert_eq!(port.get(Some(timeout)), Err(GetError::TimedOut));
    let elapsed = t.elapsed();
    assert!(elapsed >= timeout, "returned after {elapsed:?}");
    assert_eq!(
        port.stats().waiting,
        0,
        "a timed-out thread must leave the stack"
    );
    port.post(1, 0, ()).unwrap();
    assert_eq!(
        port.stats().queued,
        1,
        "nobody is waiting: the packet is queued"
    );
    assert_eq!(port.get(POLL).unwrap().key, 1);
}

// Catches: a huge timeout overflowing into "poll" (Instant + Duration::MAX).
#[test]
fn huge_timeout_waits() {
    let port = CompletionPort::new(1);
    thread::scope(|s| {
        let h = s.spawn(|| port.get(Some(Duration::MAX)).map(|p| p.key));
        wait_waiting(&port, 1);
        port.post(9, 0, ()).unwrap();
        assert_eq!(h.join().unwrap(), Ok(9));
    });
}

// ---------------------------------------------------------------------------------------------------
// Close
// ---------------------------------------------------------------------------------------------------

// Catches: close waking only some waiters (or none), or a closed port that still lets get wait.
#[test]
fn close_wakes_every_waiter() {
    let port: CompletionPort<()> = CompletionPort::new(2);
    thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| port.get(None))).collect();
        wait_waiting(&port, 4);
        assert!(port.close().is_empty());
        for h in hs {
            assert_eq!(h.join().unwrap(), Err(GetError::Closed));
        }
    });
    let s = port.stats();
    assert!(s.closed && port.is_closed());
    assert_eq!(s.waiting, 0);
    let t = Instant::now();
    assert_eq!(port.get(LONG), Err(GetError::Closed));
    assert_eq!(port.get(None), Err(GetError::Closed));
    assert_eq!(port.get(POLL), Err(GetError::Closed));
    assert_eq!(
        port.get_many(&mut Vec::new(), 3, LONG),
        Err(GetError::Closed)
    );
    assert!(
        t.elapsed() < DEADLINE / 2,
        "get on a closed port must not wait"
    );
}

// Catches: close dropping queued packets, returning them out of order, or returning them twice.
#[test]
fn close_returns_queued_packets_fifo() {
    let port = CompletionPort::new(1);
    for i in 0..5 {
        port.post(i, i + 10, format!("v{i}")).unwrap();
    }
    port.post_packet(Packet::new(5, 0, "err".to_string()).with_status(Status::from_errno(104)))
        .unwrap();
    let left = port.close();
    let got: Vec<_> = left
        .iter()
        .map(|p| (p.key, p.bytes, p.value.as_str(), p.status.errno()))
        .collect();
    assert_eq!(
        got,
        [
            (0, 10, "v0", None),
            (1, 11, "v1", None),
            (2, 12, "v2", None),
            (3, 13, "v3", None),
            (4, 14, "v4", None),
            (5, 0, "err", Some(104)),
        ]
    );
    assert_eq!(port.stats().queued, 0);
    assert!(port.close().is_empty(), "a second close returns nothing");
    assert_eq!(port.get(POLL), Err(GetError::Closed));
}

// Catches: post on a closed port that drops (or queues) the packet instead of handing it back.
#[test]
fn post_after_close_hands_packet_back() {
    let port = CompletionPort::new(1);
    port.close();
    let err = port.post(3, 4, vec![1u8, 2, 3]).unwrap_err();
    assert_eq!(err.0.key, 3);
    assert_eq!(err.0.bytes, 4);
    assert!(err.0.status.is_ok());
    assert_eq!(err.into_inner().value, vec![1, 2, 3]);
    let p = || Packet::new(1, 2, vec![9u8]).with_status(Status::from_errno(5));
    assert_eq!(port.post_packet(p()), Err(PostError(p())));
    let s = port.stats();
    assert_eq!((s.posted, s.queued), (0, 0));
}

// ---------------------------------------------------------------------------------------------------
// Wake-ups
// ---------------------------------------------------------------------------------------------------

// Catches: a post that wakes every waiter (notify_all / thundering herd).
#[test]
fn one_packet_wakes_one_thread() {
    let port = CompletionPort::new(4);
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let (port, tx) = (&port, tx.clone());
                s.spawn(move || {
                    if let Ok(p) = port.get(None) {
                        tx.send((i, p.key)).unwrap();
                    }
                })
            })
            .collect();
        let st = wait_stats(&port, "4 threads parked", |s| {
            s.waiting == 4 && s.parks == 4
        });
        assert_eq!(st.wakeups, 0, "{st:?}");
        port.post(1, 0, ()).unwrap();
        let (_, key) = recv(&rx, "one thread gets the packet");
        assert_eq!(key, 1);
        // Give any wrongly woken thread time to show up in the counters.
        thread::sleep(Duration::from_millis(50));
        let st = port.stats();
        assert_eq!((st.wakeups, st.waiting), (1, 3), "{st:?}");
        port.close();
        for h in hs {
            h.join().unwrap();
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// Association: exit, other ports
// ---------------------------------------------------------------------------------------------------

// Catches: a thread that exits while active keeping its slot forever (the port starves at N).
#[test]
fn exiting_thread_gives_slot_back() {
    let port = CompletionPort::new(1);
    port.post(1, 0, ()).unwrap();
    port.post(2, 0, ()).unwrap();
    thread::scope(|s| {
        s.spawn(|| assert_eq!(port.get(POLL).unwrap().key, 1))
            .join()
            .unwrap();
    });
    let st = port.stats();
    assert_eq!((st.active, st.queued), (0, 1), "{st:?}");
    // Without the release, active == N and this poll would time out.
    assert_eq!(port.get(POLL).unwrap().key, 2);
}

// Catches: a panicking handler leaking its slot; an exit release that frees the slot but does not
// hand the queued packet to a waiting thread.
#[test]
fn exiting_thread_releases_queued_packet_to_waiter() {
    let port = CompletionPort::new(1);
    port.post(1, 0, ()).unwrap();
    thread::scope(|s| {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (got_tx, got_rx) = mpsc::channel();
        let port = &port;
        let active = s.spawn(move || {
            let p = port_get_key(port);
            got_tx.send(p).unwrap();
            let _ = go_rx.recv_timeout(DEADLINE);
            panic!("handler fails while active");
        });
        assert_eq!(recv(&got_rx, "first thread active"), 1);
        let waiter = s.spawn(move || port.get(LONG).map(|p| p.key));
        wait_waiting(port, 1);
        port.post(2, 0, ()).unwrap();
        assert_eq!(port.stats().queued, 1);
        go_tx.send(()).unwrap();
        assert!(active.join().is_err(), "the handler panicked");
        assert_eq!(waiter.join().unwrap(), Ok(2));
    });
    assert_eq!(port.stats().active, 0, "both threads exited");
}

fn port_get_key(port: &CompletionPort<()>) -> usize {
    port.get(LONG).unwrap().key
}

// Catches: an association that survives a get on another port (port A stays at N forever), or a
// release on A that does not dispatch A's queued packet.
#[test]
fn get_on_another_port_releases_slot() {
    let a = CompletionPort::new(1);
    let b: CompletionPort<()> = CompletionPort::new(1);
    a.post(1, 0, ()).unwrap();
    assert_eq!(a.get(POLL).unwrap().key, 1);
    assert_eq!(a.stats().active, 1);
    thread::scope(|s| {
        let waiter = s.spawn(|| a.get(LONG).map(|p| p.key));
        wait_waiting(&a, 1);
        a.post(2, 0, ()).unwrap();
        assert_eq!(a.stats().queued, 1);
        // This thread moves to port B: its slot on A is given back and packet 2 goes to the waiter.
        assert_eq!(b.get(POLL), Err(GetError::TimedOut));
        assert_eq!(waiter.join().unwrap(), Ok(2));
    });
    let st = a.stats();
    assert_eq!((st.active, st.queued), (0, 0), "{st:?}");
    assert_eq!(b.stats().active, 0);
}

// Catches: ports sharing state (a slot on one port counting against another).
#[test]
fn ports_are_independent() {
    let a = CompletionPort::new(1);
    let b = CompletionPort::new(1);
    a.post(1, 0, ()).unwrap();
    b.post(2, 0, ()).unwrap();
    thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<()>();
        let a = &a;
        let on_a = s.spawn(move || {
            let p = a.get(POLL).unwrap();
            let _ = rx.recv_timeout(DEADLINE);
            p.key
        });
        wait_stats(a, "a thread active on A", |s| s.active == 1);
        let on_b = s.spawn(|| b.get(POLL).map(|p| p.key));
        assert_eq!(on_b.join().unwrap(), Ok(2));
        tx.send(()).unwrap();
        assert_eq!(on_a.join().unwrap(), 1);
    });
}

// ---------------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------------

// Catches: get_many waiting for max packets instead of returning as soon as one is there, or
// ignoring max.
#[test]
fn get_many_returns_between_one_and_max() {
    let port = CompletionPort::new(1);
    for i in 0..5 {
        port.post(i, 0, ()).unwrap();
    }
    let mut out = Vec::new();
    assert_eq!(port.get_many(&mut out, 3, POLL), Ok(3));
    assert_eq!(port.get_many(&mut out, 10, POLL), Ok(2));
    assert_eq!(
        out.iter().map(|p| p.key).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    // Give this thread's slot back (it is active from the batches above), so a waiter may run.
    assert_eq!(port.get(POLL), Err(GetError::TimedOut));
    thread::scope(|s| {
        let h = s.spawn(|| {
            let mut out = Vec::new();
            let n = port.get_many(&mut out, 10, LONG);
            (n, out.len())
        });
        wait_waiting(&port, 1);
        port.post(7, 0, ()).unwrap();
        assert_eq!(h.join().unwrap(), (Ok(1), 1));
    });
}

// Catches: get_many_min returning before min packets arrived (or not waiting at all).
#[test]
fn get_many_min_waits_for_min() {
    let port = CompletionPort::new(1);
    thread::scope(|s| {
        let poster = s.spawn(|| {
            for i in 0..3 {
                // Post only once the consumer waits again, so each packet arrives separately.
                wait_waiting(&port, 1);
                thread::sleep(Duration::from_millis(5));
                port.post(i, 0, ()).unwrap();
            }
        });
        let mut out = Vec::new();
        assert_eq!(port.get_many_min(&mut out, 3, 10, LONG), Ok(3));
        assert_eq!(out.iter().map(|p| p.key).collect::<Vec<_>>(), [0, 1, 2]);
        poster.join().unwrap();
    });
    assert_eq!(
        port.stats().active,
        1,
        "one thread, one slot, however many packets"
    );
}

// Catches: a get_many_min that keeps waiting past its timeout, drops what arrived, or reports an
// error although packets arrived.
#[test]
fn get_many_min_timeout_returns_what_arrived() {
    let port = CompletionPort::new(1);
    let mut out = Vec::new();
    let timeout = Duration::from_millis(50);
    let t = Instant::now();
    assert_eq!(
        port.get_many_min(&mut out, 3, 10, Some(timeout)),
        Err(GetError::TimedOut)
    );
    assert!(t.elapsed() >= timeout);
    assert!(out.is_empty());
    port.post(1, 0, ()).unwrap();
    let t = Instant::now();
    assert_eq!(port.get_many_min(&mut out, 3, 10, Some(timeout)), Ok(1));
    assert!(t.elapsed() >= timeout, "waited for more until the timeout");
    assert_eq!(out.len(), 1);
    assert_eq!(port.stats().waiting, 0);
    // A zero timeout polls: takes what is there, at most max.
    for i in 0..4 {
        port.post(i, 0, ()).unwrap();
    }
    out.clear();
    assert_eq!(port.get_many_min(&mut out, 2, 3, POLL), Ok(3));
    assert_eq!(port.get_many_min(&mut out, 2, 3, POLL), Ok(1));
    assert_eq!(out.iter().map(|p| p.key).collect::<Vec<_>>(), [0, 1, 2, 3]);
}

// Catches: a thread waiting for more packets in get_many_min not being handed them while its own slot
// makes active == N (it already counts), or another waiter being released past N instead.
#[test]
fn get_many_min_keeps_its_slot() {
    let port = CompletionPort::new(1);
    thread::scope(|s| {
        let batch = s.spawn(|| {
            let mut out = Vec::new();
            let n = port.get_many_min(&mut out, 2, 2, LONG);
            (n, out.iter().map(|p| p.key).collect::<Vec<_>>())
        });
        wait_waiting(&port, 1);
        port.post(1, 0, ()).unwrap();
        // It took packet 1 (active 1 of 1) and waits for a second one, still counted.
        wait_stats(&port, "batch thread waits for more", |s| {
            s.delivered == 1 && s.waiting == 1
        });
        let other = s.spawn(|| port.get(LONG).map(|p| p.key));
        let st = wait_waiting(&port, 2);
        assert_eq!(st.active, 1, "{st:?}");
        port.post(2, 0, ()).unwrap();
        assert_eq!(batch.join().unwrap(), (Ok(2), vec![1, 2]));
        // The other thread still waits; the batch thread exited, giving its slot back.
        let st = port.stats();
        assert_eq!((st.waiting, st.active, st.queued), (1, 0, 0), "{st:?}");
        port.close();
        assert_eq!(other.join().unwrap(), Err(GetError::Closed));
    });
}

// Catches: get_many_min treating a timeout too large for `Instant` as "poll" for its later rounds.
#[test]
fn get_many_min_huge_timeout_waits_for_min() {
    let port = CompletionPort::new(1);
    thread::scope(|s| {
        let poster = s.spawn(|| {
            for i in 0..3 {
                let st = wait_stats(&port, "consumer waits", |s| s.waiting == 1 || s.closed);
                if st.closed {
                    return;
                }
                port.post(i, 0, ()).unwrap();
            }
        });
        let mut out = Vec::new();
        let n = port.get_many_min(&mut out, 3, 3, Some(Duration::MAX));
        if n != Ok(3) {
            // Unblock the poster before failing, so the scope can join it.
            port.close();
        }
        poster.join().ok();
        assert_eq!(n, Ok(3), "Some(Duration::MAX) must wait like None");
    });
}

// Catches: a get_many_min that is not woken by close while waiting for more, or that loses the
// packets it already has.
#[test]
fn get_many_min_close_returns_what_arrived() {
    let port = CompletionPort::new(1);
    port.post(1, 0, ()).unwrap();
    thread::scope(|s| {
        let h = s.spawn(|| {
            let mut out = Vec::new();
            (port.get_many_min(&mut out, 3, 3, None), out.len())
        });
        wait_stats(&port, "batch waits for more", |s| {
            s.delivered == 1 && s.waiting == 1
        });
        port.close();
        assert_eq!(h.join().unwrap(), (Ok(1), 1));
    });
}

// ---------------------------------------------------------------------------------------------------
// Handles, construction, types
// ---------------------------------------------------------------------------------------------------

// Catches: a port that leaks its queued packets when the last handle goes (or drops them while a
// clone is still alive), including when a thread still holds an association with it.
#[test]
fn dropping_last_handle_drops_queued_packets() {
    let drops = Arc::new(AtomicUsize::new(0));
    let port = CompletionPort::new(1);
    let clone = port.clone();
    for i in 0..6 {
        port.post(i, 0, DropCounter::new(i, &drops)).unwrap();
    }
    // This thread becomes active on the port: its association keeps the port's core alive.
    let first = port.get(POLL).unwrap();
    assert_eq!(first.value.id, 0);
    drop(first);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(port);
    assert!(!clone.is_closed(), "a clone is still alive");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(clone.stats().queued, 5);
    drop(clone);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        6,
        "queued packets dropped with the last handle"
    );
}

// Catches: a port whose last handle is dropped staying open for a worker that still holds a clone of
// nothing: checked through a handle moved to and dropped in another thread.
#[test]
fn last_handle_dropped_on_another_thread() {
    let drops = Arc::new(AtomicUsize::new(0));
    let port = CompletionPort::new(2);
    for i in 0..3 {
        port.post(i, 0, DropCounter::new(i, &drops)).unwrap();
    }
    thread::spawn(move || drop(port)).join().unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

// Catches: 0 taken literally (a port nobody may run) or mapped to a constant.
#[test]
fn concurrency_zero_means_cpus() {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let port: CompletionPort<()> = CompletionPort::new(0);
    assert_eq!(port.concurrency(), cpus);
    assert_eq!(port.stats().concurrency, cpus);
    assert_eq!(CompletionPort::<()>::default().concurrency(), cpus);
    assert_eq!(CompletionPort::<()>::new(3).stats().concurrency, 3);
    // And it is usable: a packet goes through.
    port.post(1, 0, ()).unwrap();
    assert!(port.get(POLL).is_ok());
}

// Catches: post_packet losing the status, Status accessors inverted, empty Display strings.
#[test]
fn status_packet_and_errors() {
    let port = CompletionPort::new(1);
    let failed = || Packet::new(1, 0, 'x').with_status(Status::from_errno(104));
    port.post_packet(failed()).unwrap();
    let got = port.get(POLL).unwrap();
    assert_eq!(got, failed());
    assert!(!got.status.is_ok());
    assert_eq!(got.status.errno(), Some(104));
    assert_eq!(got.status.error().unwrap().raw_os_error(), Some(104));
    assert!(format!("{:?}", got.status).contains("104"));

    assert!(Status::SUCCESS.is_ok());
    assert_eq!(Status::SUCCESS, Status::default());
    assert_eq!(Status::SUCCESS.errno(), None);
    assert!(Status::SUCCESS.error().is_none());
    assert!(Status::from_errno(0).is_ok());
    let ok: Packet<char> = Packet::new(2, 3, 'y');
    assert_eq!(
        (ok.key, ok.bytes, ok.status, ok.value),
        (2, 3, Status::SUCCESS, 'y')
    );

    for e in [GetError::TimedOut, GetError::Closed] {
        assert!(!e.to_string().is_empty());
    }
    assert_ne!(GetError::TimedOut.to_string(), GetError::Closed.to_string());
    let e: PostError<()> = PostError(Packet::new(77, 0, ()));
    assert!(e.to_string().contains("77"));
    assert!(!format!("{e:?}").is_empty());
    let _: &dyn std::error::Error = &e;
    let _: &dyn std::error::Error = &GetError::Closed;
    assert!(format!("{port:?}").contains("CompletionPort"));
}

// Catches: a port that cannot be shared between threads, or one that needs T: Sync / T: Debug.
#[test]
fn port_is_send_sync() {
    struct NotSync(std::cell::Cell<u8>);
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CompletionPort<NotSync>>();
    send_sync::<CompletionPort<Box<dyn std::any::Any + Send>>>();
    let port = CompletionPort::new(1);
    port.post(0, 0, NotSync(std::cell::Cell::new(1))).unwrap();
    assert_eq!(port.get(POLL).unwrap().value.0.get(), 1);
    // Many handles on many threads, one port.
    let barrier = Barrier::new(4);
    thread::scope(|s| {
        for i in 0..4 {
            let (port, barrier) = (port.clone(), &barrier);
            s.spawn(move || {
                barrier.wait();
                port.post(i, 0, NotSync(std::cell::Cell::new(0))).unwrap();
            });
        }
    });
    assert_eq!(port.stats().queued, 4);
}
