//! The `port` suite: the completion port as a queue between threads, against channels and futexes.
//!
//! Cases:
//! - `post_get_1thread`: one thread posts a packet and takes it back (the uncontended fast path);
//!   peers `crossbeam-channel` (unbounded `send` + `try_recv`) and `std-mpsc` (`send` + `try_recv`)
//!   carrying the same packet, and `crossbeam-32B`, crossbeam carrying a bare 32-byte record.
//! - `mpmc_PxC`: P producers post a fixed number of packets, C consumers take them one at a time;
//!   peers `crossbeam-channel` (unbounded) and `std-mpsc` (unbounded; with more than one consumer
//!   the receiver is shared as `Arc<Mutex<Receiver>>`, the usual way, since `std::sync::mpmc` is not
//!   stable). `mpmc_1x1_batch` takes up to 64 packets per call (`get_many`; crossbeam: a blocking
//!   `recv` then draining with `try_iter`).
//! - `pingpong`: two threads bounce a token; per round-trip latency percentiles. Peers
//!   `crossbeam-channel` (two `bounded(1)` channels) and `futex`: two `AtomicU32` words and raw
//!   `FUTEX_WAIT_PRIVATE`/`FUTEX_WAKE_PRIVATE`, no spinning, the bare kernel round trip.
//!
//! Every blocking wait, in every system, has a timeout ([`WAIT`]): a lost wake-up shows as an error,
//! never as a hung benchmark.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use iocport::{CompletionPort, GetError, Packet};

use super::{percentile, run_case, Config, Contender, Goal, Record, Report, Target, IOCPORT};

const SUITE: &str = "port";
const CROSSBEAM: &str = "crossbeam-channel";
const MPSC: &str = "std-mpsc";
const FUTEX: &str = "futex";

/// The longest any single blocking wait may take before the round fails.
const WAIT: Duration = Duration::from_secs(10);

/// Completion key of data packets.
const DATA: usize = 1;
/// Completion key of the stop packets posted after all data: one per consumer.
const STOP: usize = 2;

/// What the channel peers carry: the same packet a port carries (key, bytes, status, operation id,
/// a `usize` value and the data field: 80 bytes), so that every system moves the same data.
type Msg = Packet<usize>;

/// The bare completion record of Windows' `OVERLAPPED_ENTRY` (key, bytes, status, a `usize`
/// value: 32 bytes), which `crossbeam-32B` carries in `post_get_1thread`: what a queue of the
/// smallest possible record costs, beside the same queue carrying iocport's packet.
#[derive(Debug)]
struct Entry32 {
    key: usize,
    bytes: usize,
    status: i32,
    value: usize,
}
const _: () = assert!(std::mem::size_of::<Entry32>() == 32);

const CROSSBEAM_32: &str = "crossbeam-32B";

/// The `(metric, value)` pairs of one round.
type Values = Vec<(&'static str, f64)>;

/// Runs the suite.
pub(crate) fn run(cfg: &Config) -> Result<Report, String> {
    let mut report = Report::default();
    report.records.extend(post_get_1thread(cfg)?);
    for (producers, consumers) in [(1, 1), (2, 2), (1, 4)] {
        report.records.extend(mpmc(cfg, producers, consumers)?);
    }
    report.records.extend(mpmc_batch(cfg)?);
    report.records.extend(pingpong(cfg)?);
    report.notes.extend([
        format!(
            "mpmc_*: iocport's concurrency value is max(CPUs = {}, consumers), so the limit never \
             holds a consumer back; all systems wait with a {}s timeout",
            cpus(),
            WAIT.as_secs()
        ),
        "mpmc_2x2, mpmc_1x4: std-mpsc has one receiver, shared by the consumers as \
         Arc<Mutex<Receiver>> (std::sync::mpmc is unstable)"
            .to_owned(),
        "mpmc_1x1_batch: iocport get_many(out, 64); crossbeam-channel blocking recv then \
         try_iter().take(63)"
            .to_owned(),
        "post_get_1thread: crossbeam-channel and std-mpsc carry iocport's own packet (80 bytes); \
         crossbeam-32B carries a bare 32-byte OVERLAPPED_ENTRY-like record (key, bytes, status, \
         value), the floor of a queue"
            .to_owned(),
        "pingpong: crossbeam-channel uses two bounded(1) channels; futex is FUTEX_WAIT/WAKE_PRIVATE \
         on two words, no spinning; iocport uses two ports of concurrency 1"
            .to_owned(),
    ]);
    report
        .targets
        .extend(["mpmc_1x1", "mpmc_2x2", "mpmc_1x4"].map(|case| Target {
            case,
            metric: "packets_per_s",
            goal: Goal::AtLeastFactorOf {
                peer: CROSSBEAM,
                factor: 1.0,
            },
        }));
    report.targets.extend([
        Target {
            case: "post_get_1thread",
            metric: "ns_per_op",
            goal: Goal::WithinFactorOf {
                peer: CROSSBEAM,
                factor: 1.0,
            },
        },
        Target {
            case: "pingpong",
            metric: "rtt_p50_ns",
            goal: Goal::WithinFactorOf {
                peer: CROSSBEAM,
                factor: 1.2,
            },
        },
    ]);
    Ok(report)
}

/// The number of CPUs this process may run on (what a concurrency value of 0 means).
fn cpus() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// Nanoseconds per operation.
fn ns_per(elapsed: Duration, ops: usize) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

/// Joins a scoped thread, turning a panic into an error.
fn join<T>(h: thread::ScopedJoinHandle<'_, Result<T, String>>) -> Result<T, String> {
    h.join()
        .unwrap_or_else(|_| Err("a benchmark thread panicked".to_owned()))
}

// ---------------------------------------------------------------------------------------------
// post_get_1thread

/// Case `post_get_1thread`: one post and one get per operation, on one thread.
fn post_get_1thread(cfg: &Config) -> Result<Vec<Record>, String> {
    let ops = cfg.size(5_000_000, 200_000);
    let metric = "ns_per_op";
    run_case(
        cfg,
        SUITE,
        "post_get_1thread",
        vec![
            Contender::new(IOCPORT, move || {
                // One thread: a concurrency value of 1 is all it needs.
                let port = CompletionPort::<usize>::new(1);
                let start = Instant::now();
                for i in 0..ops {
                    port.post(DATA, 0, i).map_err(|e| e.to_string())?;
                    // A packet is queued, so this is the fast path: no wait.
                    let p = port.get(Some(Duration::ZERO)).map_err(|e| e.to_string())?;
                    black_box(p.value);
                }
                Ok(vec![(metric, ns_per(start.elapsed(), ops))])
            }),
            Contender::new(CROSSBEAM, move || {
                let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
                let start = Instant::now();
                for i in 0..ops {
                    tx.send(Packet::new(DATA, 0, i))
                        .map_err(|e| e.to_string())?;
                    black_box(rx.try_recv().map_err(|e| e.to_string())?);
                }
                Ok(vec![(metric, ns_per(start.elapsed(), ops))])
            }),
            Contender::new(MPSC, move || {
                let (tx, rx) = mpsc::channel::<Msg>();
                let start = Instant::now();
                for i in 0..ops {
                    tx.send(Packet::new(DATA, 0, i))
                        .map_err(|e| e.to_string())?;
                    black_box(rx.try_recv().map_err(|e| e.to_string())?);
                }
                Ok(vec![(metric, ns_per(start.elapsed(), ops))])
            }),
            Contender::new(CROSSBEAM_32, move || {
                let (tx, rx) = crossbeam_channel::unbounded::<Entry32>();
                let start = Instant::now();
                for i in 0..ops {
                    let e = Entry32 {
                        key: DATA,
                        bytes: 0,
                        status: 0,
                        value: i,
                    };
                    tx.send(e).map_err(|e| e.to_string())?;
                    let e = black_box(rx.try_recv().map_err(|e| e.to_string())?);
                    black_box((e.key, e.bytes, e.status, e.value));
                }
                Ok(vec![(metric, ns_per(start.elapsed(), ops))])
            }),
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// mpmc

/// How many of `total` packets producer `i` of `producers` sends.
fn share(total: usize, producers: usize, i: usize) -> usize {
    total / producers + usize::from(i < total % producers)
}

/// Case `mpmc_{producers}x{consumers}`: throughput, one packet per dequeue.
fn mpmc(cfg: &Config, producers: usize, consumers: usize) -> Result<Vec<Record>, String> {
    let total = cfg.size(2_000_000, 50_000);
    let case = format!("mpmc_{producers}x{consumers}");
    run_case(
        cfg,
        SUITE,
        &case,
        vec![
            Contender::new(IOCPORT, move || {
                mpmc_iocport(total, producers, consumers, false)
            }),
            Contender::new(CROSSBEAM, move || {
                mpmc_crossbeam(total, producers, consumers, false)
            }),
            Contender::new(MPSC, move || mpmc_mpsc(total, producers, consumers)),
        ],
    )
}

/// Case `mpmc_1x1_batch`: throughput with up to [`BATCH`] packets per dequeue.
fn mpmc_batch(cfg: &Config) -> Result<Vec<Record>, String> {
    let total = cfg.size(2_000_000, 50_000);
    run_case(
        cfg,
        SUITE,
        "mpmc_1x1_batch",
        vec![
            Contender::new(IOCPORT, move || mpmc_iocport(total, 1, 1, true)),
            Contender::new(CROSSBEAM, move || mpmc_crossbeam(total, 1, 1, true)),
        ],
    )
}

/// A producer's or consumer's work in one round; a consumer's returns how many packets it took.
type Job<'a, R> = Box<dyn FnOnce() -> Result<R, String> + Send + 'a>;

/// The producers of a channel peer: producer `i` sends its share of `total` packets through its own
/// clone of `tx` with `send`, and drops it when done (so the consumers see the channel disconnect).
fn channel_producers<'a, S: Clone + Send + 'a>(
    total: usize,
    producers: usize,
    tx: S,
    send: fn(&S, Msg) -> Result<(), String>,
) -> Vec<Job<'a, ()>> {
    (0..producers)
        .map(|i| -> Job<'a, ()> {
            let tx = tx.clone();
            Box::new(move || {
                for v in 0..share(total, producers, i) {
                    send(&tx, Packet::new(DATA, 0, v))?;
                }
                Ok(())
            })
        })
        .collect()
}

/// Runs one throughput round: every job on its own thread, all released together by a barrier.
/// Each thread stamps the time right after the barrier and right after its job; the round lasts from
/// the first start to the last end (so a late-scheduled coordinator cannot shorten it). `on_error`
/// runs on a thread whose job failed, to wake the others before their timeout.
fn mpmc_round<'a>(
    total: usize,
    producers: Vec<Job<'a, ()>>,
    consumers: Vec<Job<'a, usize>>,
    on_error: &(dyn Fn() + Sync),
) -> Result<Values, String> {
    let barrier = Barrier::new(producers.len() + consumers.len());
    thread::scope(|s| {
        let spawn = |job: Job<'a, usize>| {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let r = job();
                if r.is_err() {
                    on_error();
                }
                r.map(|n| (n, start, Instant::now()))
            })
        };
        let mut handles: Vec<_> = producers
            .into_iter()
            .map(|p| spawn(Box::new(move || p().map(|()| 0))))
            .collect();
        handles.extend(consumers.into_iter().map(spawn));
        let mut result = Ok(());
        let (mut received, mut first, mut last) = (0, None::<Instant>, None::<Instant>);
        for h in handles {
            match h.join() {
                Ok(Ok((n, start, end))) => {
                    received += n;
                    first = Some(first.map_or(start, |f| f.min(start)));
                    last = Some(last.map_or(end, |l| l.max(end)));
                }
                Ok(Err(e)) => result = result.and(Err(e)),
                Err(_) => result = result.and(Err("a benchmark thread panicked".to_owned())),
            }
        }
        result?;
        let (Some(first), Some(last)) = (first, last) else {
            return Err("no thread ran".to_owned());
        };
        if received != total {
            return Err(format!("received {received} packets, expected {total}"));
        }
        Ok(vec![(
            "packets_per_s",
            total as f64 / (last - first).as_secs_f64(),
        )])
    })
}

/// Up to this many packets per dequeue in the `_batch` case.
const BATCH: usize = 64;

/// One iocport round. Each producer posts its share; the last one to finish posts one `STOP` packet
/// per consumer. Packets are FIFO, so the stops come out after all the data, and a consumer stops
/// at its first. With `batch` (one consumer only) the consumer dequeues with `get_many`.
fn mpmc_iocport(
    total: usize,
    producers: usize,
    consumers: usize,
    batch: bool,
) -> Result<Values, String> {
    assert!(
        !batch || consumers == 1,
        "the batch consumer takes every STOP"
    );
    // Concurrency value max(CPUs, consumers) (0 would mean CPUs): a smaller one would let the port
    // hold consumers back, and this case measures the queue, not the limit.
    let port = CompletionPort::<usize>::new(cpus().max(consumers));
    let left = AtomicUsize::new(producers);
    let (port, left) = (&port, &left);
    let prods = (0..producers)
        .map(|i| -> Job<'_, ()> {
            Box::new(move || {
                for v in 0..share(total, producers, i) {
                    port.post(DATA, 0, v).map_err(|e| e.to_string())?;
                }
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    for _ in 0..consumers {
                        port.post(STOP, 0, 0).map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    let cons = (0..consumers)
        .map(|_| -> Job<'_, usize> {
            Box::new(move || {
                let mut n = 0;
                if batch {
                    let mut out = Vec::with_capacity(BATCH);
                    loop {
                        out.clear();
                        port.get_many(&mut out, BATCH, Some(WAIT))
                            .map_err(|e| format!("consumer: {e}"))?;
                        let mut stop = false;
                        for p in &out {
                            if p.key == STOP {
                                stop = true;
                            } else {
                                black_box(p.value);
                                n += 1;
                            }
                        }
                        if stop {
                            return Ok(n);
                        }
                    }
                }
                loop {
                    let p = port.get(Some(WAIT)).map_err(|e| format!("consumer: {e}"))?;
                    if p.key == STOP {
                        return Ok(n);
                    }
                    black_box(p.value);
                    n += 1;
                }
            })
        })
        .collect();
    mpmc_round(total, prods, cons, &|| {
        port.close();
    })
}

/// One crossbeam-channel round: each producer owns a `Sender` and drops it when done; consumers
/// receive until the channel is empty and disconnected. With `batch`, each blocking `recv` is
/// followed by draining up to `BATCH - 1` more with `try_iter`.
fn mpmc_crossbeam(
    total: usize,
    producers: usize,
    consumers: usize,
    batch: bool,
) -> Result<Values, String> {
    let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
    let prods = channel_producers(total, producers, tx, |tx, m| {
        tx.send(m).map_err(|e| e.to_string())
    });
    let cons = (0..consumers)
        .map(|_| -> Job<'_, usize> {
            let rx = rx.clone();
            Box::new(move || {
                let mut n = 0;
                loop {
                    match rx.recv_timeout(WAIT) {
                        Ok(v) => {
                            black_box(v);
                            n += 1;
                            if batch {
                                for v in rx.try_iter().take(BATCH - 1) {
                                    black_box(v);
                                    n += 1;
                                }
                            }
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(n),
                        Err(e) => return Err(format!("consumer: {e}")),
                    }
                }
            })
        })
        .collect();
    drop(rx);
    // A failed thread drops its channel end, which is enough to wake the others.
    mpmc_round(total, prods, cons, &|| {})
}

/// One std::sync::mpsc round: as crossbeam, but the single `Receiver` is shared by the consumers
/// behind a mutex (locked for each `recv`), as is usual for a pool of workers on an mpsc channel.
fn mpmc_mpsc(total: usize, producers: usize, consumers: usize) -> Result<Values, String> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let rx = Arc::new(Mutex::new(rx));
    let prods = channel_producers(total, producers, tx, |tx, m| {
        tx.send(m).map_err(|e| e.to_string())
    });
    let cons = (0..consumers)
        .map(|_| -> Job<'_, usize> {
            let rx = Arc::clone(&rx);
            Box::new(move || {
                let mut n = 0;
                loop {
                    let r = rx
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .recv_timeout(WAIT);
                    match r {
                        Ok(v) => {
                            black_box(v);
                            n += 1;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(n),
                        Err(e) => return Err(format!("consumer: {e}")),
                    }
                }
            })
        })
        .collect();
    drop(rx);
    mpmc_round(total, prods, cons, &|| {})
}

// ---------------------------------------------------------------------------------------------
// pingpong

/// Case `pingpong`: round-trip latency between two threads.
fn pingpong(cfg: &Config) -> Result<Vec<Record>, String> {
    let trips = cfg.size(100_000, 5_000);
    run_case(
        cfg,
        SUITE,
        "pingpong",
        vec![
            Contender::new(IOCPORT, move || pingpong_iocport(trips)),
            Contender::new(CROSSBEAM, move || pingpong_crossbeam(trips)),
            Contender::new(FUTEX, move || pingpong_futex(trips)),
        ],
    )
}

/// Latency percentiles of one round, from per-trip nanoseconds.
fn rtt(mut lat: Vec<u64>, trips: usize) -> Result<Values, String> {
    if lat.len() != trips {
        return Err(format!("{} round trips, expected {trips}", lat.len()));
    }
    lat.sort_unstable();
    Ok(vec![
        ("rtt_p50_ns", percentile(&lat, 50.0) as f64),
        ("rtt_p99_ns", percentile(&lat, 99.0) as f64),
    ])
}

/// Nanoseconds since `t`, saturating.
fn ns_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Two ports of concurrency 1: A posts to `ping` and gets from `pong`, B the reverse. On an error
/// either side closes both ports so the other wakes at once.
fn pingpong_iocport(trips: usize) -> Result<Values, String> {
    let ping = CompletionPort::<usize>::new(1);
    let pong = CompletionPort::<usize>::new(1);
    let fail = |e: String| {
        ping.close();
        pong.close();
        e
    };
    let describe = |e: GetError| format!("get: {e}");
    thread::scope(|s| {
        let b = s.spawn(|| -> Result<(), String> {
            for _ in 0..trips {
                let p = ping.get(Some(WAIT)).map_err(describe).map_err(fail)?;
                pong.post(DATA, 0, p.value)
                    .map_err(|e| e.to_string())
                    .map_err(fail)?;
            }
            Ok(())
        });
        let a = s.spawn(|| -> Result<Vec<u64>, String> {
            let mut lat = Vec::with_capacity(trips);
            for i in 0..trips {
                let t = Instant::now();
                ping.post(DATA, 0, i)
                    .map_err(|e| e.to_string())
                    .map_err(fail)?;
                let p = pong.get(Some(WAIT)).map_err(describe).map_err(fail)?;
                lat.push(ns_since(t));
                black_box(p.value);
            }
            Ok(lat)
        });
        let lat = join(a);
        join(b)?;
        rtt(lat?, trips)
    })
}

/// Two `bounded(1)` channels. An error drops that side's channel ends, which wakes the other side.
fn pingpong_crossbeam(trips: usize) -> Result<Values, String> {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<Msg>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<Msg>(1);
    thread::scope(|s| {
        let b = s.spawn(move || -> Result<(), String> {
            for _ in 0..trips {
                let v = ping_rx
                    .recv_timeout(WAIT)
                    .map_err(|e| format!("recv: {e}"))?;
                pong_tx
                    .send_timeout(v, WAIT)
                    .map_err(|e| format!("send: {e}"))?;
            }
            Ok(())
        });
        let a = s.spawn(move || -> Result<Vec<u64>, String> {
            let mut lat = Vec::with_capacity(trips);
            for i in 0..trips {
                let t = Instant::now();
                ping_tx
                    .send_timeout(Packet::new(DATA, 0, i), WAIT)
                    .map_err(|e| format!("send: {e}"))?;
                let v = pong_rx
                    .recv_timeout(WAIT)
                    .map_err(|e| format!("recv: {e}"))?;
                lat.push(ns_since(t));
                black_box(v);
            }
            Ok(lat)
        });
        let lat = join(a);
        join(b)?;
        rtt(lat?, trips)
    })
}

/// Blocks until `word` holds something other than `current`, a wake-up, a signal, or `timeout`.
fn futex_wait(word: &AtomicU32, current: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 1e9: fits a c_long on every target.
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word.as_ptr()` points to a live, aligned u32 for the whole call (borrowed from
    // `word`), and `ts` is a valid timespec on our stack; FUTEX_WAIT reads both only during the call
    // and ignores the remaining arguments. Any error (EAGAIN: value changed, ETIMEDOUT, EINTR) is
    // handled by the caller re-checking the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            current,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes one thread blocked in [`futex_wait`] on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word.as_ptr()` is a live, aligned u32; FUTEX_WAKE only uses the address as a key and
    // ignores the timeout and second-address arguments.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1i32,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Waits until `word == want`, sleeping in the kernel at once (no spinning), for at most [`WAIT`].
fn futex_await(word: &AtomicU32, want: u32) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = word.load(Ordering::Acquire);
        if v == want {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("futex: waited {WAIT:?} for {want}, word is {v}"));
        }
        futex_wait(word, v, deadline - now);
    }
}

/// Two words: A stores trip number `i` in `ping` and wakes B, then waits for `pong == i`; B the
/// reverse. Every wait goes to the kernel and every store is followed by a wake syscall.
fn pingpong_futex(trips: usize) -> Result<Values, String> {
    let trips_u32 = u32::try_from(trips).map_err(|_| "too many trips for a u32 futex word")?;
    let ping = AtomicU32::new(0);
    let pong = AtomicU32::new(0);
    thread::scope(|s| {
        let b = s.spawn(|| -> Result<(), String> {
            for i in 1..=trips_u32 {
                futex_await(&ping, i)?;
                pong.store(i, Ordering::Release);
                futex_wake(&pong);
            }
            Ok(())
        });
        let a = s.spawn(|| -> Result<Vec<u64>, String> {
            let mut lat = Vec::with_capacity(trips);
            for i in 1..=trips_u32 {
                let t = Instant::now();
                ping.store(i, Ordering::Release);
                futex_wake(&ping);
                futex_await(&pong, i)?;
                lat.push(ns_since(t));
            }
            Ok(lat)
        });
        let lat = join(a);
        join(b)?;
        rtt(lat?, trips)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (total, p) in [(10, 3), (2_000_000, 2), (7, 7), (5, 1)] {
            assert_eq!((0..p).map(|i| share(total, p, i)).sum::<usize>(), total);
        }
    }

    #[test]
    fn every_system_runs() {
        for (p, c) in [(1, 1), (2, 2), (1, 4)] {
            mpmc_iocport(1000, p, c, false).unwrap();
            mpmc_crossbeam(1000, p, c, false).unwrap();
            mpmc_mpsc(1000, p, c).unwrap();
        }
        mpmc_iocport(1000, 1, 1, true).unwrap();
        mpmc_crossbeam(1000, 1, 1, true).unwrap();
        pingpong_iocport(100).unwrap();
        pingpong_crossbeam(100).unwrap();
        pingpong_futex(100).unwrap();
    }
}
