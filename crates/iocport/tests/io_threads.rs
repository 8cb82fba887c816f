//! Operations outlive the thread that started them: threads start a `recv`, an `accept`, a readiness
//! poll, a timer, or buffered `write_at`s and `read_at`s on one file, then exit at once; every
//! operation still completes with its real result (Windows never cancels I/O on a port-bound handle
//! because the issuing thread exited). Each test runs on both submission modes: the kernel's
//! submission thread owns the operations, or (`SubmitMode::Caller`) the port starts again what the
//! kernel ended for the exit. And a submitter that spins in user space does not hold back its own
//! operation's packet.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use iocport::{Builder, CompletionPort, Interest, SubmitMode};
use uio::{get, get_n, pattern_bytes, tcp_pair, TempDir};

const MODES: [SubmitMode; 3] = [
    SubmitMode::Caller,
    SubmitMode::CallerInterrupted,
    SubmitMode::KernelThread,
];

fn port(mode: SubmitMode) -> CompletionPort<u32> {
    Builder::new()
        .concurrency(4)
        .submit_mode(mode)
        .build()
        .expect("port")
}

/// Runs `f` on a new thread and waits until that thread has exited.
fn on_a_thread_that_exits(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        s.spawn(f);
    });
}

// Catches: a recv started on a thread that exits before the data arrives completing with ECANCELED.
#[test]
fn recv_outlives_its_thread() {
    for mode in MODES {
        let port = port(mode);
        let (mut client, server) = tcp_pair();
        let h = port.associate(server, 7).unwrap();
        on_a_thread_that_exits(|| {
            h.recv(vec![0; 64], 0, 1).unwrap();
        });
        std::thread::sleep(Duration::from_millis(20));
        client.write_all(b"after the thread is gone").unwrap();
        let mut p = get(&port, "the recv");
        assert_eq!((p.key, p.value), (7, 1), "{mode:?}");
        assert_eq!(p.result().unwrap(), 24, "{mode:?}: {:?}", p.status);
        assert_eq!(&p.take_buf().unwrap()[..24], b"after the thread is gone");
        port.close();
    }
}

// Catches: an accept started on a thread that exits before a client connects completing with
// ECANCELED.
#[test]
fn accept_outlives_its_thread() {
    for mode in MODES {
        let port = port(mode);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let h = port.associate(listener, 1).unwrap();
        on_a_thread_that_exits(|| {
            h.accept(2).unwrap();
        });
        std::thread::sleep(Duration::from_millis(20));
        let _client = TcpStream::connect(addr).unwrap();
        let mut p = get(&port, "the accept");
        assert!(p.status.is_ok(), "{mode:?}: {:?}", p.status);
        assert!(p.take_socket().is_some(), "{mode:?}");
        port.close();
    }
}

// Catches: a connect left waiting for the handshake (the listener's queue is full, so the SYN is
// dropped and sent again a second later) by a thread that exits, ending with ECANCELED, or, started
// again as a connect, with EALREADY.
#[test]
fn connect_outlives_its_thread() {
    use socket2::{Domain, Socket, Type};
    for mode in MODES {
        let port = port(mode);
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        listener.listen(0).unwrap();
        let listener: TcpListener = listener.into();
        let addr = listener.local_addr().unwrap();
        // Fills the accept queue (a backlog of 0 holds one).
        let _first = TcpStream::connect(addr).unwrap();
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let h = port.associate(OwnedFd::from(socket), 1).unwrap();
        on_a_thread_that_exits(|| {
            h.connect(addr, 2).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        // Room in the queue: the retransmitted SYN gets through.
        let (_accepted, _) = listener.accept().unwrap();
        let p = get(&port, "the connect");
        assert_eq!(p.value, 2);
        assert!(p.status.is_ok(), "{mode:?}: {:?}", p.status);
        port.close();
    }
}

// Catches: a readiness poll started on a thread that exits before the fd is ready ending early.
#[test]
fn poll_outlives_its_thread() {
    for mode in MODES {
        let port = port(mode);
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two fds pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both fds were just created and are owned by nothing else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let h = port.associate(r, 3).unwrap();
        on_a_thread_that_exits(|| {
            h.poll(Interest::READABLE, 4).unwrap();
        });
        std::thread::sleep(Duration::from_millis(20));
        std::fs::File::from(w).write_all(b"x").unwrap();
        let p = get(&port, "the poll");
        assert!(p.status.is_ok(), "{mode:?}: {:?}", p.status);
        assert_ne!(p.bytes & libc::POLLIN as usize, 0, "{mode:?}");
        port.close();
    }
}

// Catches: a timer started on a thread that exits ending early or never.
#[test]
fn timer_outlives_its_thread() {
    for mode in MODES {
        let port = port(mode);
        let start = Instant::now();
        on_a_thread_that_exits(|| {
            port.timer(Duration::from_millis(40), 5, 6).unwrap();
        });
        let p = get(&port, "the timer");
        assert!(p.status.is_ok(), "{mode:?}: {:?}", p.status);
        assert!(start.elapsed() >= Duration::from_millis(40), "{mode:?}");
        port.close();
    }
}

// Catches: buffered writes queued on the io-wq of threads that exit at once being cancelled (17 of
// 30 rounds lost some before), and reads started the same way.
#[test]
fn file_writes_and_reads_outlive_their_threads() {
    const THREADS: u64 = 4;
    const WRITES: u64 = 16;
    const BLOCK: usize = 4096;
    for mode in MODES {
        let dir = TempDir::new("threads");
        for round in 0..10 {
            let port = port(mode);
            let name = format!("f{round}");
            let h = port.associate(dir.file(&name), 9).unwrap();
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let h = &h;
                    s.spawn(move || {
                        for i in 0..WRITES {
                            let off = (t * WRITES + i) * BLOCK as u64;
                            h.write_at(pattern_bytes(off, BLOCK), off, (t * WRITES + i) as u32)
                                .unwrap();
                        }
                    });
                }
            });
            for p in get_n(&port, (THREADS * WRITES) as usize, "the writes") {
                assert_eq!(
                    p.result().ok(),
                    Some(BLOCK),
                    "{mode:?} round {round}: write {} ended with {:?}",
                    p.value,
                    p.status
                );
            }
            let total = THREADS * WRITES * BLOCK as u64;
            let mut on_disk = Vec::new();
            dir.reopen(&name).read_to_end(&mut on_disk).unwrap();
            assert_eq!(on_disk.len() as u64, total);
            assert!(
                on_disk == pattern_bytes(0, total as usize),
                "{mode:?}: the file's bytes"
            );
            // And reads started by threads that exit at once.
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let h = &h;
                    s.spawn(move || {
                        let off = t * BLOCK as u64;
                        h.read_at(vec![0; BLOCK], off, t as u32).unwrap();
                    });
                }
            });
            for mut p in get_n(&port, THREADS as usize, "the reads") {
                let off = u64::from(p.value) * BLOCK as u64;
                assert_eq!(p.result().ok(), Some(BLOCK), "{mode:?}: {:?}", p.status);
                assert!(p.take_buf().unwrap() == pattern_bytes(off, BLOCK));
            }
            port.close();
        }
    }
}

// Catches: with the caller owning its operations and COOP_TASKRUN, a recv's completion waits for
// the submitting thread to enter the kernel, so a submitter busy in user space held its packet back
// (~3 ms median, up to a 4 ms tick and more under load) while another thread waited on the port.
// With the kernel interrupting the submitter, or its submission thread owning the operation, the
// packet arrives as soon as the data: the median of five delays (from the write to the packet)
// stays within 2 ms. In the default mode the delay is bounded by the submitter's next timer tick:
// within 20 ms even on a loaded machine. On a shared 2-CPU machine another process can push one
// measurement just past the bound (2.1 ms seen while a build ran), so a mode gets up to three
// measurements and passes if one is within it; the bug held every one back by ~3 ms or more.
#[test]
fn a_busy_submitter_does_not_hold_back_its_packet() {
    for (mode, bound) in [
        (SubmitMode::CallerInterrupted, Duration::from_millis(2)),
        (SubmitMode::KernelThread, Duration::from_millis(2)),
        (SubmitMode::Caller, Duration::from_millis(20)),
    ] {
        let mut medians = Vec::new();
        for _ in 0..3 {
            let median = busy_submitter_delay(mode);
            eprintln!("{mode:?}: median delay behind a busy submitter {median:?}");
            medians.push(median);
            if median < bound {
                break;
            }
        }
        assert!(
            medians.iter().any(|m| *m < bound),
            "{mode:?}: median delays {medians:?} behind a busy submitter, all at least {bound:?}"
        );
    }
}

/// The median, over five rounds, of the delay from the data's arrival to its recv's packet, while
/// the thread that started the recv spins in user space for 100 ms.
fn busy_submitter_delay(mode: SubmitMode) -> Duration {
    let port = port(mode);
    let mut delays = Vec::new();
    for _ in 0..5 {
        let (mut client, server) = tcp_pair();
        let h = port.associate(server, 1).unwrap();
        let started = std::sync::Barrier::new(2);
        let delay = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let p = port.get(Some(util::DEADLINE)).expect("the recv's packet");
                assert!(p.status.is_ok(), "{:?}", p.status);
                Instant::now()
            });
            let spinner = s.spawn(|| {
                h.recv(vec![0; 16], 0, 1).unwrap();
                started.wait();
                // Busy in user space for 100 ms: no system call.
                let until = Instant::now() + Duration::from_millis(100);
                let mut x = 0u64;
                while Instant::now() < until {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            });
            started.wait();
            std::thread::sleep(Duration::from_millis(10));
            let written = Instant::now();
            client.write_all(b"ping").unwrap();
            let got = waiter.join().unwrap();
            spinner.join().unwrap();
            got - written
        });
        delays.push(delay);
        drop(h);
    }
    port.close();
    delays.sort();
    delays[delays.len() / 2]
}
