//! Loom model checks of the port's state machine: packet queue, LIFO waiter stack, active count,
//! hand-off, timeout, close, batch dequeue, blocking sections and thread association.
//!
//! Run (bounded; 21 models, about 2.5 min of model checking on 2 cores, plus ~35 s to build a
//! cold `target/loom`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p iocport --release --test loom
//! ```
//!
//! Without `LOOM_MAX_PREEMPTIONS` each model still uses a bound of 2 (see [`model`]). Use
//! `CARGO_TARGET_DIR=target/loom` so that the loom build does not invalidate the normal one.
//!
//! Loom reports a deadlock (every thread parked) as a failure: in these models that is a lost wake-up
//! or a slot never given back.
//!
//! # How loom differs here
//!
//! - `src/sync.rs`: a finite timeout counts as already expired and a spin is one yield. So every
//!   `get(Some(t))` with `t > 0` registers as a waiter, then takes the timeout path at once, racing
//!   whatever else the model does.
//! - Loom runs thread-local destructors when a model thread ends, so a thread that exits while
//!   active gives its slot back as under std. But loom's `JoinHandle::join` returns as soon as the
//!   thread's closure has returned, *before* its thread-locals are dropped (loom 0.7.3:
//!   `spawn_internal` notifies the joiner inside the closure, `rt::thread_done` drops the locals
//!   afterwards). A count read right after `join` may still include the joined thread's slot: models
//!   that test the exit path wait for it with [`settle_active`].
//! - Loom 0.7.3 drops a thread's thread-locals in `HashMap` iteration order, which changes from one
//!   execution to the next (`rt::thread::Thread::drop_locals`). iocport has two thread-locals whose
//!   destructors do synchronised work: the association (`thread.rs`, which releases the slot and
//!   drops an `Arc` of the port) and the cached waiter (`port.rs`, an `Arc`). A thread that exits
//!   holding both makes the model non-deterministic, and loom aborts with "Reached unexpected
//!   exploration state. Is the model fully deterministic?". iocport therefore keeps everything per
//!   thread in one thread-local (`thread.rs`, `Local`), whose fields drop in a fixed order:
//!   `exit_after_waiting_is_deterministic` checks it. Most models still call [`detach`] at the end
//!   of a thread, to give the slot back in program order and keep the explored state space small.
//! - Loom 0.7.3 may drop a pending unpark when the unparker then releases a mutex the parked thread
//!   waits for (loom issue 249); `wait()` in `port.rs` therefore checks its state before every park,
//!   which `timeout_with_slot_release_and_other_getter` and `get_many_min_timeout_races_post` cover.
#![cfg(loom)]

#[path = "util/loom_event.rs"]
mod loom_event;

use std::time::Duration;

use iocport::{CompletionPort, GetError, PostError};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use loom_event::Event;

/// A finite timeout: under loom it expires at once, after the waiter registered.
const SOON: Duration = Duration::from_secs(1);

/// Runs `f` under loom with a preemption bound: `LOOM_MAX_PREEMPTIONS` if set (then through
/// `loom::model`, which also honours `LOOM_LOG=trace` for a trace of the failing execution), else 2.
fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_some() {
        loom::model(f);
    } else {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(f);
    }
}

/// Ends the calling thread's association with whatever port it was on, in program order, by polling a
/// throwaway port: `get` on another port releases the slot held on the old one and drops the
/// thread-local's reference to it. See the module docs for why threads that may have waited call it.
fn detach() {
    let other: CompletionPort<usize> = CompletionPort::new(1);
    assert_eq!(other.get(Some(Duration::ZERO)), Err(GetError::TimedOut));
}

/// Waits until the port's active count is `want`: an exited thread releases its slot in its
/// thread-local destructor, which under loom may still be running after `join` returned. A slot that
/// is never given back makes loom fail (branch limit), as a deadlock would.
fn settle_active<T: Send + 'static>(port: &CompletionPort<T>, want: usize) {
    while port.stats().active != want {
        thread::yield_now();
    }
}

/// Sorted values, for exactly-once checks.
fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v
}

// ---------------------------------------------------------------------------------------------
// 1. post / get
// ---------------------------------------------------------------------------------------------

/// One poster, one getter: both packets arrive, in FIFO order, exactly once.
#[test]
fn post_get_fifo() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        let poster = {
            let port = port.clone();
            thread::spawn(move || {
                port.post(1, 10, 1).unwrap();
                port.post(2, 20, 2).unwrap();
            })
        };
        let a = port.get(None).unwrap();
        let b = port.get(None).unwrap();
        assert_eq!((a.key, a.bytes, a.value), (1, 10, 1));
        assert_eq!((b.key, b.bytes, b.value), (2, 20, 2));
        poster.join().unwrap();
        assert_eq!(port.get(Some(Duration::ZERO)), Err(GetError::TimedOut));
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.posted, s.delivered), (0, 0, 2, 2));
        // The zero-timeout poll gave the main thread's slot back.
        assert_eq!(s.active, 0);
        detach();
    });
}

// ---------------------------------------------------------------------------------------------
// 2. several getters and posters
// ---------------------------------------------------------------------------------------------

/// Two getters, one poster posting 2, concurrency 2: every packet exactly once, nobody stuck.
#[test]
fn two_getters_one_poster() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(2);
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let port = port.clone();
                thread::spawn(move || {
                    let v = port.get(None).unwrap().value;
                    detach();
                    v
                })
            })
            .collect();
        port.post(0, 0, 1).unwrap();
        port.post(0, 0, 2).unwrap();
        let got: Vec<usize> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(sorted(got), [1, 2]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active), (0, 0, 0));
        assert_eq!((s.posted, s.delivered), (2, 2));
    });
}

/// Two posters, two getters (the main thread is one of them), concurrency 1: the getter that takes
/// the first packet holds the only slot until it moves to another port ([`detach`]), and the second
/// packet is handed over then.
#[test]
fn two_getters_two_posters_n1() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        let posters: Vec<_> = (1..=2)
            .map(|i| {
                let port = port.clone();
                thread::spawn(move || port.post(i, 0, i).unwrap())
            })
            .collect();
        let getter = {
            let port = port.clone();
            thread::spawn(move || {
                let v = port.get(None).unwrap().value;
                detach();
                v
            })
        };
        let mine = port.get(None).unwrap().value;
        assert_eq!(port.stats().active, 1);
        // Give the slot back without taking another packet, so that the other getter gets the one
        // that is left.
        detach();
        let theirs = getter.join().unwrap();
        for p in posters {
            p.join().unwrap();
        }
        assert_eq!(sorted(vec![mine, theirs]), [1, 2]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active), (0, 0, 0));
        assert_eq!((s.posted, s.delivered), (2, 2));
    });
}

/// Concurrency 1: a thread that exits while active gives its slot back in its thread-local
/// destructor, and the queued packet goes to the thread waiting for it (else: deadlock). The exiting
/// thread takes a queued packet without waiting, so its only thread-local with a destructor is the
/// association (see the module docs).
#[test]
fn exit_releases_slot() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        port.post(1, 0, 1).unwrap();
        port.post(2, 0, 2).unwrap();
        let got_first = Arc::new(Event::default());
        let first = {
            let (port, got_first) = (port.clone(), got_first.clone());
            thread::spawn(move || {
                let v = port.get(None).unwrap().value;
                got_first.set();
                v // exits while active
            })
        };
        let second = {
            let port = port.clone();
            thread::spawn(move || {
                got_first.wait();
                let v = port.get(None).unwrap().value;
                detach();
                v
            })
        };
        assert_eq!(first.join().unwrap(), 1);
        assert_eq!(second.join().unwrap(), 2);
        settle_active(&port, 0);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.delivered), (0, 0, 2));
    });
}

/// Two getters that wait and then exit while active (no [`detach`]), concurrency 1: the slot comes back
/// through the thread-local destructor, deterministically (one thread-local, fields dropped in order).
#[test]
fn exit_after_waiting_is_deterministic() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let port = port.clone();
                thread::spawn(move || port.get(None).unwrap().value)
            })
            .collect();
        port.post(0, 0, 1).unwrap();
        port.post(0, 0, 2).unwrap();
        let got: Vec<usize> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(sorted(got), [1, 2]);
        settle_active(&port, 0);
    });
}

/// Waiting threads are released LIFO, and one post wakes exactly one of them.
#[test]
fn lifo_wake_one() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(2);
        let spawn_getter = |port: &CompletionPort<usize>| {
            let port = port.clone();
            thread::spawn(move || {
                let v = port.get(None).unwrap().value;
                detach();
                v
            })
        };
        let earlier = spawn_getter(&port);
        while port.stats().waiting < 1 {
            thread::yield_now();
        }
        let later = spawn_getter(&port);
        while port.stats().waiting < 2 {
            thread::yield_now();
        }
        port.post(1, 0, 1).unwrap();
        // One packet released one waiter.
        assert_eq!(port.stats().waiting, 1);
        assert_eq!(
            later.join().unwrap(),
            1,
            "the thread that waited last runs first"
        );
        port.post(2, 0, 2).unwrap();
        assert_eq!(earlier.join().unwrap(), 2);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active, s.delivered), (0, 0, 0, 2));
    });
}

/// Two posters whose packets overflow the first ring level (under loom each level holds one
/// packet), one getter: each poster's packets arrive in the order it posted them. Catches a ring
/// level added while a post that read the old top is still pushing below it (`queue.rs`, "Why
/// growing is sealed").
#[test]
fn ring_growth_keeps_each_posters_order() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        let posters: Vec<_> = [10, 20]
            .into_iter()
            .map(|base| {
                let port = port.clone();
                thread::spawn(move || {
                    port.post(0, 0, base + 1).unwrap();
                    port.post(0, 0, base + 2).unwrap();
                })
            })
            .collect();
        let got: Vec<usize> = (0..4).map(|_| port.get(None).unwrap().value).collect();
        for base in [10, 20] {
            let mine: Vec<usize> = got
                .iter()
                .copied()
                .filter(|v| v / 10 == base / 10)
                .collect();
            assert_eq!(mine, [base + 1, base + 2], "{got:?}");
        }
        for p in posters {
            p.join().unwrap();
        }
        let s = port.stats();
        assert_eq!((s.queued, s.posted, s.delivered), (0, 4, 4));
        detach();
    });
}

// ---------------------------------------------------------------------------------------------
// 3. close
// ---------------------------------------------------------------------------------------------

/// `close` races a waiting getter and a poster: the getter ends with packets or `Closed`, and every
/// posted packet is received, returned by `close`, or handed back by `PostError`, exactly once.
#[test]
fn close_races_get_and_post() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(2);
        let getter = {
            let port = port.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match port.get(None) {
                        Ok(p) => got.push(p.value),
                        Err(GetError::Closed) => break,
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
                detach();
                got
            })
        };
        let poster = {
            let port = port.clone();
            thread::spawn(move || {
                let mut refused = Vec::new();
                for i in 1..=2 {
                    if let Err(PostError(p)) = port.post(i, 0, i) {
                        refused.push(p.value);
                    }
                }
                refused
            })
        };
        let returned: Vec<usize> = port.close().into_iter().map(|p| p.value).collect();
        let refused = poster.join().unwrap();
        let got = getter.join().unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "FIFO: {got:?}");
        let all: Vec<usize> = got
            .iter()
            .chain(&returned)
            .chain(&refused)
            .copied()
            .collect();
        assert_eq!(
            sorted(all),
            [1, 2],
            "got {got:?} returned {returned:?} refused {refused:?}"
        );
        let s = port.stats();
        assert!(s.closed);
        assert_eq!((s.queued, s.waiting), (0, 0));
        assert_eq!(s.posted, 2 - refused.len() as u64);
        assert_eq!(s.delivered, got.len() as u64);
        assert!(port.close().is_empty());
        assert_eq!(port.get(None), Err(GetError::Closed));
        detach();
    });
}

/// A single `get(None)` racing `close` and one post at concurrency 1: a packet or `Closed`, and the
/// packet is never lost.
#[test]
fn close_races_single_get() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        let getter = {
            let port = port.clone();
            thread::spawn(move || {
                let r = port.get(None).map(|p| p.value);
                detach();
                r
            })
        };
        let poster = {
            let port = port.clone();
            thread::spawn(move || port.post(7, 0, 7).err().map(|e| e.into_inner().value))
        };
        let returned: Vec<usize> = port.close().into_iter().map(|p| p.value).collect();
        let refused = poster.join().unwrap();
        let got = getter.join().unwrap();
        let mut n = returned.len() + usize::from(refused.is_some());
        match got {
            Ok(v) => {
                assert_eq!(v, 7);
                n += 1;
            }
            Err(e) => assert_eq!(e, GetError::Closed),
        }
        assert_eq!(
            n, 1,
            "got {got:?} returned {returned:?} refused {refused:?}"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 4. the concurrency value
// ---------------------------------------------------------------------------------------------

/// Concurrency 1, two workers each taking 2 of 4 pre-loaded packets: never two running at once.
/// `running` is raised after `get` returns and lowered before the next `get` (or the end).
#[test]
fn concurrency_bound_n1() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        for i in 1..=4 {
            port.post(i, 0, i).unwrap();
        }
        let running = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let port = port.clone();
                let running = running.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        let p = port.get(None).unwrap();
                        assert_eq!(
                            running.fetch_add(1, SeqCst),
                            0,
                            "two threads running at N=1"
                        );
                        got.push(p.value);
                        running.fetch_sub(1, SeqCst);
                    }
                    detach();
                    got
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            let got = w.join().unwrap();
            assert!(got[0] < got[1], "FIFO per thread: {got:?}");
            all.extend(got);
        }
        assert_eq!(sorted(all), [1, 2, 3, 4]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active, s.delivered), (0, 0, 0, 4));
    });
}

/// Concurrency 1 with a blocking section. Worker 1 takes a packet; only then does worker 2 ask for
/// one. Worker 1 waits inside `blocking` until worker 2 has run a packet, which worker 2 can only get
/// because the blocking section released worker 1's slot (otherwise: deadlock). Worker 1 then counts
/// again, above N (active = 2), and only after that does worker 2 ask for the third packet: it must not
/// be released until worker 1 stops counting. `running` is raised after a thread starts counting (a
/// `get` returned, or a blocking section ended) and lowered before it stops (before `get`, a blocking
/// section, or the end), so whenever `get` returns it must be below N.
#[test]
fn blocking_section_lets_another_run() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        for i in 1..=3 {
            port.post(i, 0, i).unwrap();
        }
        let running = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(Event::default());
        let ran = Arc::new(Event::default());
        let back = Arc::new(Event::default());
        let w1 = {
            let (port, running) = (port.clone(), running.clone());
            let (started, ran, back) = (started.clone(), ran.clone(), back.clone());
            thread::spawn(move || {
                let p = port.get(None).unwrap();
                assert_eq!(
                    running.fetch_add(1, SeqCst),
                    0,
                    "released while N threads run"
                );
                started.set();
                running.fetch_sub(1, SeqCst);
                iocport::blocking(|| ran.wait());
                // Counting again: above N while worker 2 still holds its packet.
                running.fetch_add(1, SeqCst);
                let s = port.stats();
                assert_eq!(s.active, 2, "{s:?}");
                back.set();
                running.fetch_sub(1, SeqCst);
                detach();
                p.value
            })
        };
        let w2 = {
            let (port, running) = (port.clone(), running.clone());
            thread::spawn(move || {
                let mut got = Vec::new();
                started.wait(); // worker 1 holds the only slot
                for round in 0..2 {
                    let p = port.get(None).unwrap();
                    assert_eq!(
                        running.fetch_add(1, SeqCst),
                        0,
                        "released while N threads run"
                    );
                    got.push(p.value);
                    running.fetch_sub(1, SeqCst);
                    if round == 0 {
                        ran.set();
                        back.wait();
                    }
                }
                detach();
                got
            })
        };
        let mut all = vec![w1.join().unwrap()];
        all.extend(w2.join().unwrap());
        assert_eq!(sorted(all), [1, 2, 3]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active, s.delivered), (0, 0, 0, 3));
    });
}

/// The active count follows the definition: after `get` returns the thread is active until it calls
/// `get` again or exits (here through its thread-local destructor; neither thread ever waits).
#[test]
fn active_count_tracks_threads() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(2);
        port.post(1, 0, 1).unwrap();
        port.post(2, 0, 2).unwrap();
        let worker = {
            let port = port.clone();
            thread::spawn(move || {
                let v = port.get(None).unwrap().value;
                let active = port.stats().active;
                assert!((1..=2).contains(&active), "active {active}");
                v
            })
        };
        let mine = port.get(None).unwrap().value;
        let theirs = worker.join().unwrap();
        assert_eq!(sorted(vec![mine, theirs]), [1, 2]);
        // The worker exited (slot released by its thread-local destructor); the main thread is active.
        settle_active(&port, 1);
        // A zero-timeout poll gives the main thread's slot back.
        assert_eq!(port.get(Some(Duration::ZERO)), Err(GetError::TimedOut));
        assert_eq!(port.stats().active, 0);
    });
}

// ---------------------------------------------------------------------------------------------
// 5. timeouts
// ---------------------------------------------------------------------------------------------

/// A getter with a finite timeout (expiring at once under loom) races a poster: it gets the packet or
/// times out, and then the packet is still queued. Nothing is lost, and the waiter stack is clean.
#[test]
fn timeout_races_post() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        let poster = {
            let port = port.clone();
            thread::spawn(move || port.post(5, 0, 5).unwrap())
        };
        let r = port.get(Some(SOON));
        poster.join().unwrap();
        match r {
            Ok(p) => {
                assert_eq!(p.value, 5);
                assert_eq!(port.get(Some(Duration::ZERO)), Err(GetError::TimedOut));
            }
            Err(e) => {
                assert_eq!(e, GetError::TimedOut);
                assert_eq!(port.stats().queued, 1);
                assert_eq!(port.get(Some(Duration::ZERO)).unwrap().value, 5);
            }
        }
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.posted, s.delivered), (0, 0, 1, 1));
        detach();
    });
}

/// An active thread's timed `get` (which first gives its slot back) races a poster at concurrency 1:
/// it gets the packet or times out, the packet is never lost, and no slot leaks.
#[test]
fn timeout_with_slot_release() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        port.post(1, 0, 1).unwrap();
        let mut got = vec![port.get(None).unwrap().value]; // the main thread is active: 1 of 1
        let poster = {
            let port = port.clone();
            thread::spawn(move || port.post(2, 0, 2).unwrap())
        };
        match port.get(Some(SOON)) {
            Ok(p) => got.push(p.value),
            Err(e) => assert_eq!(e, GetError::TimedOut),
        }
        poster.join().unwrap();
        while let Ok(p) = port.get(Some(Duration::ZERO)) {
            got.push(p.value);
        }
        assert_eq!(got, [1, 2]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active, s.delivered), (0, 0, 0, 2));
        detach();
    });
}

/// As above, with a second timed getter. Ignored for the same loom 0.7.3 false deadlock as
/// `get_many_min_timeout_races_post`: the poster pops the main thread and unparks it while it is
/// about to lock the port in `unregister`; the other getter then locks the port first, and loom's
/// `Mutex::post_acquire`/`release_lock` (`set_blocked`, then `set_runnable`) drop the main thread's
/// unpark token, so its `park` after the failed `unregister` never returns.
#[test]
fn timeout_with_slot_release_and_other_getter() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        port.post(1, 0, 1).unwrap();
        let mut got = vec![port.get(None).unwrap().value]; // the main thread is active: 1 of 1
        let poster = {
            let port = port.clone();
            thread::spawn(move || port.post(2, 0, 2).unwrap())
        };
        let other = {
            let port = port.clone();
            thread::spawn(move || {
                let r = port.get(Some(SOON)).ok().map(|p| p.value);
                detach();
                r
            })
        };
        if let Ok(p) = port.get(Some(SOON)) {
            got.push(p.value);
        }
        poster.join().unwrap();
        got.extend(other.join().unwrap());
        while let Ok(p) = port.get(Some(Duration::ZERO)) {
            got.push(p.value);
        }
        assert_eq!(sorted(got), [1, 2]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active, s.delivered), (0, 0, 0, 2));
        detach();
    });
}

// ---------------------------------------------------------------------------------------------
// 6. batch dequeue
// ---------------------------------------------------------------------------------------------

/// `get_many` racing a poster: all 3 packets delivered exactly once, in FIFO order.
#[test]
fn get_many_races_post() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        let poster = {
            let port = port.clone();
            thread::spawn(move || {
                for i in 1..=3 {
                    port.post(i, 0, i).unwrap();
                }
            })
        };
        let mut out = Vec::new();
        while out.len() < 3 {
            let before = out.len();
            let n = port.get_many(&mut out, 2, None).unwrap();
            assert!((1..=2).contains(&n));
            assert_eq!(out.len(), before + n);
        }
        poster.join().unwrap();
        let got: Vec<usize> = out.iter().map(|p| p.value).collect();
        assert_eq!(got, [1, 2, 3]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active, s.delivered), (0, 0, 1, 3));
        detach();
    });
}

/// `get_many_min(min 2, max 2)` on one thread and `get` on another race a poster posting 3 at
/// concurrency 2: the batch holds exactly 2, the other thread gets 1, all exactly once, and the
/// batch counts as one active thread.
#[test]
fn get_many_min_and_get_race_post() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(2);
        let poster = {
            let port = port.clone();
            thread::spawn(move || {
                for i in 1..=3 {
                    port.post(i, 0, i).unwrap();
                }
            })
        };
        let getter = {
            let port = port.clone();
            thread::spawn(move || {
                let v = port.get(None).unwrap().value;
                detach();
                v
            })
        };
        let mut out = Vec::new();
        let n = port.get_many_min(&mut out, 2, 2, None).unwrap();
        assert_eq!(n, 2);
        let mut got: Vec<usize> = out.iter().map(|p| p.value).collect();
        assert!(got[0] < got[1], "FIFO within a batch: {got:?}");
        poster.join().unwrap();
        got.push(getter.join().unwrap());
        assert_eq!(sorted(got), [1, 2, 3]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active, s.delivered), (0, 0, 1, 3));
        detach();
    });
}

/// `get_many_min` with a finite timeout (expiring at once) races a poster posting one packet: the
/// first round gets it or times out; a second round (holding its slot) times out and unregisters.
#[test]
fn get_many_min_timeout_races_one_post() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        let poster = {
            let port = port.clone();
            thread::spawn(move || port.post(1, 0, 1).unwrap())
        };
        let mut out = Vec::new();
        match port.get_many_min(&mut out, 2, 2, Some(SOON)) {
            Ok(n) => assert_eq!((n, out.len()), (1, 1)),
            Err(e) => assert_eq!(e, GetError::TimedOut),
        }
        poster.join().unwrap();
        assert_eq!(port.stats().waiting, 0);
        while let Ok(p) = port.get(Some(Duration::ZERO)) {
            out.push(p);
        }
        let got: Vec<usize> = out.iter().map(|p| p.value).collect();
        assert_eq!(got, [1]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active, s.delivered), (0, 0, 0, 1));
        detach();
    });
}

/// As above with two posts. Ignored: loom 0.7.3 loses the hand-off's unpark in one interleaving and
/// reports a false deadlock. The poster pops the timed-out waiter, stores `READY` and unparks it
/// while the waiter is about to lock the port (in `unregister`); the poster's *second* post then
/// locks and unlocks the port, and loom's `Mutex::release_lock` calls `set_runnable()` on every
/// thread about to lock it, which drops that thread's pending unpark token. The waiter's
/// `unregister` fails (it was popped), it sets `deadline = None` and parks without checking
/// `is_waiting()` again, so under loom it never wakes. Under std the token survives and `park`
/// returns at once: no bug in std builds. Fix (port.rs `wait`): re-check `w.is_waiting()` before every
/// park (`while w.is_waiting() { park ... }`), which loom handles since its unpark also joins the
/// parked thread's causality with the poster's `READY` store.
#[test]
fn get_many_min_timeout_races_post() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        let poster = {
            let port = port.clone();
            thread::spawn(move || {
                port.post(1, 0, 1).unwrap();
                port.post(2, 0, 2).unwrap();
            })
        };
        let mut out = Vec::new();
        match port.get_many_min(&mut out, 2, 2, Some(SOON)) {
            Ok(n) => assert!((1..=2).contains(&n) && n == out.len()),
            Err(e) => assert_eq!(e, GetError::TimedOut),
        }
        poster.join().unwrap();
        assert_eq!(port.stats().waiting, 0);
        while let Ok(p) = port.get(Some(Duration::ZERO)) {
            out.push(p);
        }
        let got: Vec<usize> = out.iter().map(|p| p.value).collect();
        assert_eq!(got, [1, 2]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting, s.active, s.delivered), (0, 0, 0, 2));
        detach();
    });
}

/// `get_many_min(min 2)` waiting for its second packet races `close` and a post: it returns what it
/// has (at least one packet) or `Closed`; every packet is received, returned or refused exactly once.
#[test]
fn get_many_min_races_close() {
    model(|| {
        let port: CompletionPort<usize> = CompletionPort::new(1);
        let poster = {
            let port = port.clone();
            thread::spawn(move || port.post(1, 0, 1).err().map(|e| e.into_inner().value))
        };
        let closer = {
            let port = port.clone();
            thread::spawn(move || {
                port.close()
                    .into_iter()
                    .map(|p| p.value)
                    .collect::<Vec<_>>()
            })
        };
        let mut out = Vec::new();
        match port.get_many_min(&mut out, 2, 2, None) {
            Ok(n) => assert_eq!(n, 1),
            Err(e) => assert_eq!(e, GetError::Closed),
        }
        let refused = poster.join().unwrap();
        let returned = closer.join().unwrap();
        let mut all: Vec<usize> = out.iter().map(|p| p.value).collect();
        all.extend(refused);
        all.extend(returned);
        assert_eq!(all, [1]);
        let s = port.stats();
        assert_eq!((s.queued, s.waiting), (0, 0));
        detach();
    });
}

// ---------------------------------------------------------------------------------------------
// 7. thread association across ports
// ---------------------------------------------------------------------------------------------

/// A thread active on port A (N=1) calls `get` on port B: A's active count drops, so a waiter on A
/// can take A's queued packet while the first thread is still alive (otherwise: deadlock).
#[test]
fn get_on_other_port_releases_slot() {
    model(|| {
        let a: CompletionPort<usize> = CompletionPort::new(1);
        let b: CompletionPort<usize> = CompletionPort::new(1);
        a.post(1, 0, 1).unwrap();
        a.post(2, 0, 2).unwrap();
        b.post(3, 0, 3).unwrap();
        let done = Arc::new(Event::default());
        let t1 = {
            let (a, b, done) = (a.clone(), b.clone(), done.clone());
            thread::spawn(move || {
                let pa = a.get(None).unwrap().value;
                assert_eq!(b.get(None).unwrap().value, 3);
                // Still alive, and active on B only: A's other packet must reach the other thread.
                done.wait();
                assert_eq!(b.stats().active, 1);
                detach();
                pa
            })
        };
        let t2 = {
            let (a, done) = (a.clone(), done.clone());
            thread::spawn(move || {
                let v = a.get(None).unwrap().value;
                done.set();
                detach();
                v
            })
        };
        let v1 = t1.join().unwrap();
        let v2 = t2.join().unwrap();
        assert_eq!(sorted(vec![v1, v2]), [1, 2]);
        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!((sa.active, sb.active), (0, 0));
        assert_eq!((sa.queued, sb.queued), (0, 0));
        assert_eq!((sa.delivered, sb.delivered), (2, 1));
    });
}
