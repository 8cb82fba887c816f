//! Loom model checks of leader/followers over I/O: the real port (`port.rs`), op table
//! (`io/mod.rs`) and wake-up protocol (`io/wake.rs`) over a model of the ring (`io/mock.rs`, which
//! replaces `io/uring/` under `cfg(loom)`).
//!
//! Run (bounded; 3 models, each checked over both schemes, about 10 s in all plus the build):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p iocport --release --test loom_io
//! ```
//!
//! Each model runs twice: over the current wake-up scheme, where it must pass, and over the old
//! one (`iocport::testing::set_legacy_wake`), where loom must find the bug the test is named
//! after. The old scheme had two: a thread other than the leader that reaped the leader's wake-up
//! discarded it, and the wake-up poll, once ended by the kernel, was re-armed only by the thread
//! that reaped its end, and not at all if the submission queue was full then. Either leaves the
//! leader asleep in the kernel with a packet for it: every thread then waits, which loom reports
//! as a deadlock. The old-scheme tests check that loom reports exactly that.
//!
//! # How these models are built
//!
//! - `tests/loom.rs` explains how loom differs from std for the port (time, thread-locals);
//!   the same holds here, and [`detach`] is its helper.
//! - The leader is the model's main thread, and the others wait until it is the leader before they
//!   act: one by yielding until the port's counters say so ([`until`]), a second one, if any, on an
//!   [`Event`] from the first (loom's scheduler is not fair: two threads that spin can yield to
//!   each other forever). The port's own waiting threads spin once (a yield) before they sleep,
//!   and a yield hands over to another thread: without these waits, getting the leader into the
//!   kernel before the step that matters would cost preemptions of its own, and the bugs would
//!   lie beyond `LOOM_MAX_PREEMPTIONS=2`.
//! - `CompletionPort::batch` keeps its state in a std thread-local, which under loom all the
//!   threads of a model share: only one thread of a model starts operations.
//! - A model that loom finds failing cannot be caught in-process: loom's panic unwinds through
//!   the model's destructors, which call into loom again, and the process aborts. So each test runs
//!   its model in a child process (this test binary, run again on that one test with [`CHILD`]
//!   naming the scheme), and checks how the child ended and what it wrote: a failure over the
//!   current scheme is reported with loom's message, and a failure of one model does not take the
//!   others down.
#![cfg(loom)]

#[path = "util/loom_event.rs"]
mod loom_event;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iocport::{Builder, CompletionPort, GetError, PortStats};
use loom::sync::Arc;
use loom::thread;
use loom_event::Event;

/// Set in the child process that runs a model: `old` or `current`, the scheme to run it over.
const CHILD: &str = "IOCPORT_LOOM_IO_SCHEME";

/// Executions explored by the current [`model`] run.
static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);

/// Yields until the port's counters satisfy `cond`. Loom's scheduler is not fair: a model may have
/// one such spinning thread, not two, or they can yield to each other forever.
fn until(port: &CompletionPort<usize>, cond: impl Fn(&PortStats) -> bool) {
    while !cond(&port.stats()) {
        thread::yield_now();
    }
}

/// Runs `f` under loom with a preemption bound: `LOOM_MAX_PREEMPTIONS` if set (then through
/// `loom::model`, which also honours `LOOM_LOG=trace`), else 2.
fn model(f: fn()) {
    let counted = move || {
        EXECUTIONS.fetch_add(1, Ordering::Relaxed);
        f();
    };
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_some() {
        loom::model(counted);
    } else {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(counted);
    }
}

/// In the child process (see the module docs): runs model `f` over the scheme [`CHILD`] names and
/// returns `None`. In the test's own process: runs test `test` (the caller) again in a child over
/// `scheme`, and returns whether the child succeeded and what it wrote to stderr.
fn in_child(test: &str, scheme: &str, f: fn()) -> Option<(bool, String)> {
    if let Ok(scheme) = std::env::var(CHILD) {
        iocport::testing::set_legacy_wake(scheme == "old");
        model(f);
        eprintln!(
            "loom: {} executions, no failure",
            EXECUTIONS.load(Ordering::Relaxed)
        );
        return None;
    }
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, scheme)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running the test binary again");
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Model `f` passes over the current scheme. `test` is the name of the calling test.
fn passes(test: &str, f: fn()) {
    let start = Instant::now();
    let Some((ok, stderr)) = in_child(test, "current", f) else {
        return;
    };
    let found = stderr.lines().find(|l| l.starts_with("loom: "));
    match found {
        Some(line) if ok => eprintln!("current scheme, {:.1?}: {line}", start.elapsed()),
        _ => panic!("the model failed over the current wake-up scheme:\n{stderr}"),
    }
}

/// Loom finds model `f` deadlocked over the old scheme (the leader sleeps through its wake-up).
/// `test` is the name of the calling test.
fn deadlocks_on_old_scheme(test: &str, f: fn()) {
    let start = Instant::now();
    let Some((ok, stderr)) = in_child(test, "old", f) else {
        return;
    };
    let found = stderr.lines().find(|l| l.contains("deadlock; threads"));
    match found {
        Some(line) if !ok => eprintln!("old scheme, {:.1?}: loom found {line}", start.elapsed()),
        _ => panic!("loom did not find the old scheme deadlocked:\n{stderr}"),
    }
}

/// Ends the calling thread's association with its port in program order (see `tests/loom.rs`).
fn detach() {
    let other: CompletionPort<usize> = CompletionPort::new(1);
    assert_eq!(other.get(Some(Duration::ZERO)), Err(GetError::TimedOut));
}

/// Asserts that nothing is left on `port` and that every packet was delivered once.
fn all_delivered(port: &CompletionPort<usize>) {
    assert_eq!(port.get(Some(Duration::ZERO)), Err(GetError::TimedOut));
    let s = port.stats();
    assert_eq!((s.queued, s.posted), (0, s.delivered));
}

// ---------------------------------------------------------------------------------------------
// (a) A wake-up reaped by a thread that is not the leader
// ---------------------------------------------------------------------------------------------

/// The leader (main thread) waits for a packet; once it leads, a poster posts one and sends it a
/// wake-up, and a third thread (let go by the poster) has a zero-timeout `get` reap completions
/// directly, so it may take the wake-up's completion before the leader sees it (while the leader
/// is on its way into the kernel, or asleep there). The leader must still get the packet. If the
/// third thread takes the packet itself it posts it again, so the leader ends with it, once.
fn wake_up_reaped_by_direct_get() {
    let port: CompletionPort<usize> = Builder::new().concurrency(2).entries(2).build().unwrap();
    let leading = Arc::new(Event::default());
    let poster = {
        let port = port.clone();
        let leading = leading.clone();
        thread::spawn(move || {
            until(&port, |s| s.waiting == 1);
            leading.set();
            port.post(1, 0, 7).unwrap();
        })
    };
    let reaper = {
        let port = port.clone();
        thread::spawn(move || {
            leading.wait();
            match port.get(Some(Duration::ZERO)) {
                Ok(p) => port.post(p.key, p.bytes, p.value).unwrap(),
                Err(e) => assert_eq!(e, GetError::TimedOut),
            }
            detach();
        })
    };
    assert_eq!(port.get(None).unwrap().value, 7);
    poster.join().unwrap();
    reaper.join().unwrap();
    all_delivered(&port);
    detach();
}

#[test]
fn old_scheme_loses_wake_up_reaped_by_direct_get() {
    deadlocks_on_old_scheme(
        "old_scheme_loses_wake_up_reaped_by_direct_get",
        wake_up_reaped_by_direct_get,
    );
}

#[test]
fn wake_up_reaped_by_direct_get_is_written_again() {
    passes(
        "wake_up_reaped_by_direct_get_is_written_again",
        wake_up_reaped_by_direct_get,
    );
}

// ---------------------------------------------------------------------------------------------
// (b) The wake-up poll ends while the submission queue is full
// ---------------------------------------------------------------------------------------------

/// A ring of one submission and one completion entry. The leader (main thread) takes four
/// packets. The other thread, once the leader leads: a NOP, whose completion fills the completion
/// queue; a post, whose wake-up (if the leader is asleep) meets the full queue and ends the
/// multishot poll; a NOP started in a `batch`, which keeps the submission queue full until the
/// batch ends, so that whoever reaps the poll's end then (the leader, woken by the first NOP)
/// cannot re-arm it; and, once the leader has taken three packets and leads again, a post that
/// must still wake it.
fn wake_poll_ends_while_submission_queue_full() {
    let port: CompletionPort<usize> = Builder::new().concurrency(2).entries(1).build().unwrap();
    let other = {
        let port = port.clone();
        thread::spawn(move || {
            until(&port, |s| s.waiting == 1);
            port.nop(0, 1).unwrap();
            port.post(0, 0, 2).unwrap();
            port.batch(|| port.nop(0, 3).unwrap());
            until(&port, |s| s.delivered == 3 && s.waiting == 1);
            port.post(0, 0, 4).unwrap();
        })
    };
    let mut got: Vec<usize> = (0..4).map(|_| port.get(None).unwrap().value).collect();
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3, 4]);
    other.join().unwrap();
    all_delivered(&port);
    detach();
}

#[test]
fn old_scheme_drops_rearm_when_submission_queue_full() {
    deadlocks_on_old_scheme(
        "old_scheme_drops_rearm_when_submission_queue_full",
        wake_poll_ends_while_submission_queue_full,
    );
}

#[test]
fn rearm_waits_for_room_in_submission_queue() {
    passes(
        "rearm_waits_for_room_in_submission_queue",
        wake_poll_ends_while_submission_queue_full,
    );
}

// ---------------------------------------------------------------------------------------------
// (c) Close while the leader sleeps and another thread reaps
// ---------------------------------------------------------------------------------------------

/// A ring of two submission and two completion entries, and an operation in flight that only a
/// cancel ends (a timer, which never fires in a model). The leader (main thread) takes packets
/// until the port closes. Once it leads, another thread starts two NOPs, whose completions fill
/// the completion queue (the leader, woken by the first, may not have run yet), then closes the
/// port: `close` wakes the leader (a wake-up that may meet the full queue and end the poll) and
/// drains: it cancels the timer and reaps until every completion is in, the leader's wake-up
/// among them. The leader must return `Closed`; every packet reaches the leader or `close`, once,
/// and the timer's says it was cancelled.
fn close_drain_reaps_leaders_wake_up() {
    let port: CompletionPort<usize> = Builder::new().concurrency(2).entries(2).build().unwrap();
    port.timer(Duration::from_secs(3600), 0, 9).unwrap();
    let closer = {
        let port = port.clone();
        thread::spawn(move || {
            until(&port, |s| s.waiting == 1);
            port.nop(0, 1).unwrap();
            port.nop(0, 2).unwrap();
            port.close()
        })
    };
    let mut got = Vec::new();
    loop {
        match port.get(None) {
            Ok(p) => got.push(p),
            Err(e) => {
                assert_eq!(e, GetError::Closed);
                break;
            }
        }
    }
    // A `get` that began before `close` may still take a packet (the cancelled timer's too).
    got.extend(closer.join().unwrap());
    let mut values: Vec<(usize, Option<i32>)> =
        got.iter().map(|p| (p.value, p.status.errno())).collect();
    values.sort_unstable();
    assert_eq!(values, [(1, None), (2, None), (9, Some(libc::ECANCELED))]);
    detach();
}

#[test]
fn old_scheme_close_drain_swallows_leaders_wake_up() {
    deadlocks_on_old_scheme(
        "old_scheme_close_drain_swallows_leaders_wake_up",
        close_drain_reaps_leaders_wake_up,
    );
}

#[test]
fn close_drain_leaves_leader_its_wake_up() {
    passes(
        "close_drain_leaves_leader_its_wake_up",
        close_drain_reaps_leaders_wake_up,
    );
}

// ---------------------------------------------------------------------------------------------
// (c) A leader that takes a packet and never comes back
// ---------------------------------------------------------------------------------------------

/// The leader (main thread) keeps its role while it runs the packet it took (port.rs, "The leader
/// keeps its role"). Here it takes a NOP's completion and never calls `get` again, while a
/// follower waits on top of the stack; a second NOP, started only once the leader has left,
/// must still reach the follower: it takes the role over (its periodic look, modelled as a
/// wake-up) and reaps it. Without the takeover nobody waits in the kernel and the follower
/// sleeps forever, which loom reports as a deadlock. The follower may have parked until woken
/// (the port was quiet when it looked): the leader going away must wake it to keep watch
/// (`keep_watch`); without that wake-up loom finds the same deadlock.
fn away_leader_is_replaced() {
    let port: CompletionPort<usize> = Builder::new().concurrency(2).entries(4).build().unwrap();
    let follower_waits = Arc::new(Event::default());
    let starter = {
        let port = port.clone();
        let follower_waits = follower_waits.clone();
        thread::spawn(move || {
            // The main thread leads and the follower waits (both counted once it parks).
            follower_waits.wait();
            until(&port, |s| s.waiting == 2);
            port.nop(1, 1).unwrap();
            // The leader took it and left: only the follower waits.
            until(&port, |s| s.waiting == 1 && s.delivered == 1);
            port.nop(2, 2).unwrap();
            detach();
        })
    };
    let follower = {
        let port = port.clone();
        thread::spawn(move || {
            until(&port, |s| s.waiting == 1);
            follower_waits.set();
            let p = port.get(None).unwrap();
            assert_eq!(p.value, 2);
            detach();
        })
    };
    assert_eq!(port.get(None).unwrap().value, 1);
    starter.join().unwrap();
    follower.join().unwrap();
    all_delivered(&port);
    detach();
}

#[test]
fn an_away_leader_is_replaced() {
    passes("an_away_leader_is_replaced", away_leader_is_replaced);
}
