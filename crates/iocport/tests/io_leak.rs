//! No heap allocation per operation in the steady state of I/O: nop, read_at, send/recv and
//! batched submissions, each with `get`, after a warm-up.
//!
//! A counting global allocator counts the allocations of the current thread while counting is on
//! for it (a thread-local flag set only around a measured section), so the harness and the other
//! tests of this binary do not disturb the counts.

#[path = "util/counting.rs"]
mod counting;
#[path = "util/io.rs"]
mod uio;
mod util;

use std::io::Write;
use std::os::unix::net::UnixStream;

use counting::allocations_in;
use iocport::{Builder, CompletionPort};
use util::DEADLINE;

const WAIT: Option<std::time::Duration> = Some(DEADLINE);
const OPS: u64 = 10_000;

// Catches: an allocation per operation on the nop + get path (a boxed slot per op, a packet or
// waiter allocated per get, a free list that shrinks and regrows, an allocation in the leader's
// wait).
#[test]
fn nop_get_allocates_nothing() {
    let port: CompletionPort<u64> = Builder::new().concurrency(1).build().unwrap();
    for i in 0..1_000 {
        port.nop(1, i).unwrap();
        port.get(WAIT).unwrap();
    }
    let (n, bad) = allocations_in(|| {
        let mut bad = 0u64;
        for i in 0..OPS {
            port.nop(1, i).unwrap();
            let p = port.get(WAIT).unwrap();
            bad += u64::from(p.value != i || !p.status.is_ok());
        }
        bad
    });
    assert_eq!(bad, 0);
    assert_eq!(
        n,
        0,
        "allocations in {OPS} nop+get cycles ({} per op)",
        n as f64 / OPS as f64
    );
    port.close();
}

// Catches: the same on the batched path (64 ops submitted with one system call, then 64 gets).
#[test]
fn batched_nops_allocate_nothing() {
    let port: CompletionPort<u64> = Builder::new().concurrency(1).build().unwrap();
    let round = |port: &CompletionPort<u64>| {
        port.batch(|| {
            for i in 0..64 {
                port.nop(2, i).unwrap();
            }
        });
        let mut sum = 0;
        for _ in 0..64 {
            sum += port.get(WAIT).unwrap().value;
        }
        sum
    };
    for _ in 0..20 {
        round(&port);
    }
    let (n, bad) = allocations_in(|| (0..OPS / 64).filter(|_| round(&port) != 63 * 32).count());
    assert_eq!(bad, 0);
    assert_eq!(n, 0, "allocations in {} batched nops", OPS / 64 * 64);
    port.close();
}

// Catches: an allocation per read (the buffer's slot, an iovec, the packet), with the buffer handed
// back by each packet reused for the next read.
#[test]
fn read_at_get_allocates_nothing() {
    let dir = uio::TempDir::new("leak");
    let mut f = dir.file("f");
    f.write_all(&uio::pattern_bytes(0, 8192)).unwrap();
    let port: CompletionPort<u64> = Builder::new().concurrency(1).build().unwrap();
    let h = port.associate(f, 3).unwrap();
    let mut buf = Some(vec![0u8; 512]);
    let mut cycle = |i: u64| {
        let off = (i * 512) % 8192;
        h.read_at(buf.take().unwrap(), off, i).unwrap();
        let mut p = port.get(WAIT).unwrap();
        let ok = p.value == i && p.bytes == 512;
        let b = p.take_buf().unwrap();
        let ok = ok && b[0] == uio::pattern(off) && b[511] == uio::pattern(off + 511);
        buf = Some(b);
        ok
    };
    for i in 0..1_000 {
        assert!(cycle(i));
    }
    let (n, bad) = allocations_in(|| (0..OPS).filter(|&i| !cycle(i)).count());
    assert_eq!(bad, 0);
    assert_eq!(
        n,
        0,
        "allocations in {OPS} read_at+get cycles ({} per op)",
        n as f64 / OPS as f64
    );
    drop(h);
    port.close();
}

// Catches: an allocation per socket op (send and recv on a Unix pair, buffers reused).
#[test]
fn send_recv_allocates_nothing() {
    let port: CompletionPort<u64> = Builder::new().concurrency(1).build().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let ha = port.associate(a, 1).unwrap();
    let hb = port.associate(b, 2).unwrap();
    let mut sbuf = Some(vec![7u8; 64]);
    let mut rbuf = Some(vec![0u8; 64]);
    let mut cycle = |i: u64| {
        ha.send(sbuf.take().unwrap(), 0, i).unwrap();
        let mut p = port.get(WAIT).unwrap();
        let ok = p.bytes == 64 && p.value == i;
        sbuf = p.take_buf();
        hb.recv(rbuf.take().unwrap(), 0, i).unwrap();
        let mut p = port.get(WAIT).unwrap();
        rbuf = p.take_buf();
        ok && p.bytes == 64 && rbuf.as_ref().is_some_and(|b| b[63] == 7)
    };
    for i in 0..500 {
        assert!(cycle(i));
    }
    let (n, bad) = allocations_in(|| (0..OPS / 2).filter(|&i| !cycle(i)).count());
    assert_eq!(bad, 0);
    assert_eq!(
        n,
        0,
        "allocations in {OPS} send/recv ops ({} per op)",
        n as f64 / OPS as f64
    );
    drop((ha, hb));
    port.close();
}

/// `rounds` of writev (2 buffers) on `ha` then, if `mixed`, a plain recv on `hb`, else a readv.
fn vectored_cycles(mixed: bool, rounds: u64) -> u64 {
    let port: CompletionPort<u64> = Builder::new().concurrency(1).build().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let ha = port.associate(a, 1).unwrap();
    let hb = port.associate(b, 2).unwrap();
    let mut wbufs = Some(vec![vec![1u8; 16], vec![2u8; 16]]);
    let mut rbufs = Some(vec![vec![0u8; 16], vec![0u8; 16]]);
    let mut rbuf = Some(vec![0u8; 64]);
    let mut cycle = |i: u64| {
        ha.writev(wbufs.take().unwrap(), i).unwrap();
        let mut p = port.get(WAIT).unwrap();
        let mut ok = p.bytes == 32;
        wbufs = p.take_bufs();
        if mixed {
            hb.recv(rbuf.take().unwrap(), 0, i).unwrap();
            let mut p = port.get(WAIT).unwrap();
            ok &= p.bytes == 32;
            rbuf = p.take_buf();
        } else {
            hb.readv(rbufs.take().unwrap(), i).unwrap();
            let mut p = port.get(WAIT).unwrap();
            ok &= p.bytes == 32;
            rbufs = p.take_bufs();
        }
        ok
    };
    for i in 0..500 {
        assert!(cycle(i));
    }
    let (n, bad) = allocations_in(|| (0..rounds).filter(|&i| !cycle(i)).count());
    assert_eq!(bad, 0);
    drop((ha, hb));
    port.close();
    n
}

// Catches: an allocation per vectored op (the iovec array not kept in the slot between ops).
#[test]
fn vectored_ops_allocate_nothing() {
    let n = vectored_cycles(false, OPS / 2);
    assert_eq!(n, 0, "allocations in {OPS} writev/readv ops");
}

// Catches: the slot's cached iovec array thrown away by a non-vectored op that uses the slot in
// between, so every vectored op in a mixed workload allocates it again.
#[test]
fn mixed_vectored_and_plain_ops_allocate_nothing() {
    let n = vectored_cycles(true, OPS / 2);
    assert_eq!(
        n,
        0,
        "allocations in {} writev + {} recv ops",
        OPS / 2,
        OPS / 2
    );
}
