//! No heap allocation per packet or per operation in the steady state.
//!
//! A counting global allocator counts allocations made by the current thread while counting is enabled
//! for that thread (a thread-local flag set only around a measured section), so the test harness and the
//! other tests of this binary running in parallel do not disturb the counts.

#[path = "util/counting.rs"]
mod counting;
mod util;

use std::sync::Barrier;
use std::thread;

use counting::allocations_in;
use iocport::{CompletionPort, GetError};
use util::DEADLINE;

const WAIT: Option<std::time::Duration> = Some(DEADLINE);

// Catches: a per-packet allocation on the post/get fast path (a boxed node per packet, a waiter or
// association allocated per get, a queue that shrinks and regrows).
#[test]
fn post_get_one_thread_allocates_nothing() {
    let port = CompletionPort::new(1);
    // Warm-up: the queue grows to 64, this thread becomes associated with the port.
    for round in 0..10 {
        for i in 0..64 {
            port.post(i, round, i as u64).unwrap();
        }
        while port.get(Some(std::time::Duration::ZERO)).is_ok() {}
    }
    let (n, bad) = allocations_in(|| {
        let mut bad = 0u64;
        for i in 0..100_000usize {
            port.post(i, 1, i as u64).unwrap();
            let p = port.get(WAIT).unwrap();
            bad += u64::from(p.key != i || p.value != i as u64);
        }
        // Deeper queue, and a blocking section per packet.
        for _ in 0..1_000 {
            for i in 0..64 {
                port.post(i, 0, 0).unwrap();
            }
            for _ in 0..64 {
                port.get(WAIT).unwrap();
                iocport::blocking(|| ());
            }
        }
        bad
    });
    assert_eq!(bad, 0);
    assert_eq!(n, 0, "allocations in 100,000 post+get pairs");
}

/// Waits until `port` has seen `parks` parks and one waiting thread: the peer is asleep in `get`.
fn wait_parked(port: &CompletionPort<u64>, parks: u64) {
    util::wait_stats(port, "peer parked", |s| s.parks == parks && s.waiting == 1);
}

// Catches: an allocation per hand-off to a waiting thread (a fresh waiter node, a boxed packet, an
// Arc per wake-up), on the spinning path (free running) and on the parked path (each post waits
// until the peer is asleep in `get`).
#[test]
fn ping_pong_between_threads_allocates_nothing() {
    const ROUNDS: usize = 10_000;
    const PARKED_ROUNDS: u64 = 200;
    let ping: CompletionPort<u64> = CompletionPort::new(1);
    let pong: CompletionPort<u64> = CompletionPort::new(1);
    // Grow both queues once (a post that finds nobody waiting queues the packet), on a thread that
    // then exits.
    thread::scope(|s| {
        s.spawn(|| {
            for port in [&ping, &pong] {
                for i in 0..16 {
                    port.post(i, 0, 0).unwrap();
                }
                while port.get(Some(std::time::Duration::ZERO)).is_ok() {}
            }
        });
    });
    let barrier = Barrier::new(2);
    // Free-running rounds: hand-offs mostly land while the peer spins.
    let echo = |rounds: usize| {
        for _ in 0..rounds {
            let p = ping.get(WAIT).unwrap();
            pong.post(p.key, p.bytes, p.value + 1).unwrap();
        }
    };
    let serve = |rounds: usize| {
        let mut bad = 0u64;
        for i in 0..rounds {
            ping.post(i, 0, i as u64).unwrap();
            let p = pong.get(WAIT).unwrap();
            bad += u64::from(p.value != i as u64 + 1);
        }
        bad
    };
    // Parked rounds: every post waits until the peer sleeps in `get`, so it is a hand-off plus an
    // unpark. Only the serving thread waits on `pong` and only the echo thread on `ping`, so each
    // port's park count is known in advance.
    let echo_parked = |rounds: u64| {
        barrier.wait();
        let base = pong.stats().parks;
        barrier.wait();
        for r in 1..=rounds {
            let p = ping.get(WAIT).unwrap();
            wait_parked(&pong, base + r);
            pong.post(p.key, p.bytes, p.value + 1).unwrap();
        }
    };
    let serve_parked = |rounds: u64| {
        barrier.wait();
        let base = ping.stats().parks;
        barrier.wait();
        let mut bad = 0u64;
        for r in 1..=rounds {
            wait_parked(&ping, base + r);
            ping.post(0, 0, r).unwrap();
            bad += u64::from(pong.get(WAIT).unwrap().value != r + 1);
        }
        bad
    };
    let (echo_allocs, serve_allocs, bad) = thread::scope(|s| {
        let echoer = s.spawn(|| {
            echo_parked(10);
            echo(1_000);
            barrier.wait();
            let free = allocations_in(|| echo(ROUNDS)).0;
            let parked = allocations_in(|| echo_parked(PARKED_ROUNDS)).0;
            (free, parked)
        });
        let mut bad = serve_parked(10) + serve(1_000);
        barrier.wait();
        let (free, b) = allocations_in(|| serve(ROUNDS));
        bad += b;
        let (parked, b) = allocations_in(|| serve_parked(PARKED_ROUNDS));
        bad += b;
        (echoer.join().unwrap(), (free, parked), bad)
    });
    assert_eq!(bad, 0);
    assert_eq!(
        (echo_allocs, serve_allocs),
        ((0, 0), (0, 0)),
        "allocations (free-running, parked) on the (echo, serving) thread; stats {:?} {:?}",
        ping.stats(),
        pong.stats()
    );
}

// Catches: get_many / get_many_min allocating (a temporary Vec, a drain buffer) when the output has
// room.
#[test]
fn get_many_into_vec_with_capacity_allocates_nothing() {
    let port = CompletionPort::new(1);
    let mut out = Vec::with_capacity(64);
    for _ in 0..10 {
        for i in 0..64 {
            port.post(i, 0, ()).unwrap();
        }
        out.clear();
        port.get_many(&mut out, 64, WAIT).unwrap();
    }
    let (n, total) = allocations_in(|| {
        let mut total = 0usize;
        for _ in 0..2_000 {
            for i in 0..64 {
                port.post(i, 0, ()).unwrap();
            }
            out.clear();
            total += port.get_many(&mut out, 32, WAIT).unwrap();
            total += port.get_many_min(&mut out, 16, 32, WAIT).unwrap();
        }
        total += usize::from(
            port.get_many(&mut out, 1, Some(std::time::Duration::ZERO)) == Err(GetError::TimedOut),
        );
        total
    });
    assert_eq!(total, 2_000 * 64 + 1);
    assert_eq!(n, 0, "allocations in 4,000 batch dequeues");
}

// Catches: an allocation per operation or per I/O packet in the steady state: a boxed request, a
// per-operation slot or fd entry, a fresh waker or iovec array, a packet that boxes its buffer, a
// pipe made per transmission. NOPs, timers, socket sends and receives (the buffers come back in
// the packets and are used again), vectored sends, file reads and `transmit_file`, on whichever
// backend the run forces.
#[test]
fn operations_allocate_nothing_in_the_steady_state() {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::sync::Arc;
    use std::time::Duration;

    let port: CompletionPort<u64> = CompletionPort::new(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    // No Nagle delay between the small sends of a round.
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    let h = port.associate(server, 1).unwrap();
    let path = std::env::temp_dir().join(format!("iocport-alloc-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&[7u8; 256 * 1024]).unwrap();
    drop(f);
    let file = port
        .associate(std::fs::File::open(&path).unwrap(), 2)
        .unwrap();
    let plain: Arc<dyn AsFd + Send + Sync> = Arc::new(std::fs::File::open(&path).unwrap());
    let _ = std::fs::remove_file(&path);
    let mut buf = Some(vec![0u8; 4096]);
    let mut bufs = Some(vec![vec![1u8; 100], vec![2u8; 200]]);
    let mut sink = vec![0u8; 256 * 1024];
    let mut round = |port: &CompletionPort<u64>, client: &mut std::net::TcpStream| -> u64 {
        let mut bad = 0u64;
        port.nop(9, 1).unwrap();
        port.timer(Duration::from_micros(1), 9, 2).unwrap();
        for _ in 0..2 {
            bad += u64::from(port.get(WAIT).unwrap().status.errno().is_some());
        }
        // A receive waits for the client's bytes.
        h.recv(buf.take().unwrap(), 0, 3).unwrap();
        client.write_all(&[5u8; 64]).unwrap();
        let mut p = port.get(WAIT).unwrap();
        bad += u64::from(p.bytes != 64);
        buf = p.take_buf();
        // A send, and a vectored send, of bytes the client then reads.
        let mut b = buf.take().unwrap();
        b.truncate(64);
        h.send(b, 0, 4).unwrap();
        let mut p = port.get(WAIT).unwrap();
        bad += u64::from(p.bytes != 64);
        let mut b = p.take_buf().unwrap();
        b.resize(4096, 0);
        buf = Some(b);
        h.writev(bufs.take().unwrap(), 5).unwrap();
        let mut p = port.get(WAIT).unwrap();
        bad += u64::from(p.bytes != 300);
        bufs = p.take_bufs();
        client.read_exact(&mut sink[..364]).unwrap();
        // A file read, and a transmission of the file to the client.
        file.read_at(buf.take().unwrap(), 4096, 6).unwrap();
        let mut p = port.get(WAIT).unwrap();
        bad += u64::from(p.bytes != 4096);
        buf = p.take_buf();
        h.transmit_file(plain.clone(), 0, 100_000, 7).unwrap();
        let p = port.get(WAIT).unwrap();
        bad += u64::from(p.bytes != 100_000);
        client.read_exact(&mut sink[..100_000]).unwrap();
        bad
    };
    assert_steady(|| round(&port, &mut client), "rounds of 7 operations");
}

// Catches: an allocation per message of a multishot receive (a packet's value or buffer boxed, the
// provided buffer's bookkeeping growing), on the backend the run forces.
#[test]
fn multishot_messages_allocate_nothing_in_the_steady_state() {
    use std::io::Write;

    let port: CompletionPort<u64> = CompletionPort::new(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.set_nodelay(true).unwrap();
    let h = port.associate(server, 1).unwrap();
    for _ in 0..4 {
        port.provide_buffer(vec![0u8; 4096]).unwrap();
    }
    match h.recv_multishot(0, 3) {
        Ok(_) => {}
        // Where the kernel's multishot receive is pretended missing: nothing to measure.
        Err(e) if matches!(e.error, iocport::Error::Unsupported { .. }) => return,
        Err(e) => panic!("{e}"),
    }
    let round = |port: &CompletionPort<u64>, client: &mut std::net::TcpStream| -> u64 {
        client.write_all(&[5u8; 64]).unwrap();
        let mut p = port.get(WAIT).unwrap();
        let bad = u64::from(p.bytes != 64 || p.value != 3);
        port.provide_buffer(p.take_buf().unwrap()).unwrap();
        bad
    };
    assert_steady(|| round(&port, &mut client), "multishot messages");
}

/// Runs `round` 50 times to warm up, then 500 times counting allocations: asserts none, and no
/// round that went wrong (`round` returns how many of its checks failed).
#[track_caller]
fn assert_steady(mut round: impl FnMut() -> u64, what: &str) {
    let mut bad: u64 = (0..50).map(|_| round()).sum();
    let (n, b) = allocations_in(|| (0..500).map(|_| round()).sum::<u64>());
    bad += b;
    assert_eq!(bad, 0, "{what}: checks failed");
    assert_eq!(n, 0, "allocations in 500 {what}");
}
