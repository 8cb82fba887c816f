//! No lost wake-up between the leader (the waiting thread blocked in the kernel) and the threads that
//! post, reap directly or close. A test-only hook holds the leader in the window between deciding to
//! sleep and entering the kernel, so each race below happens every time.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use iocport::{Builder, CompletionPort, GetError, SubmitMode};

/// The hook is process-wide: these tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

const FREE: u8 = 0;
const HELD: u8 = 1;
const RELEASED: u8 = 2;
static CATCH_NEXT: AtomicBool = AtomicBool::new(false);
static LEADER: AtomicU8 = AtomicU8::new(FREE);

/// The leader hook: holds the first leader that passes after [`catch_leader`] until [`release`].
fn hold_leader() {
    if CATCH_NEXT.swap(false, Ordering::AcqRel) {
        LEADER.store(HELD, Ordering::Release);
        let start = Instant::now();
        while LEADER.load(Ordering::Acquire) != RELEASED && start.elapsed() < util::DEADLINE {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

fn catch_leader() {
    LEADER.store(FREE, Ordering::Release);
    CATCH_NEXT.store(true, Ordering::Release);
    iocport::testing::set_leader_hook(Some(hold_leader));
}

fn wait_until_held() {
    util::wait_for("the leader to reach the hook", || {
        LEADER.load(Ordering::Acquire) == HELD
    });
}

fn release() {
    LEADER.store(RELEASED, Ordering::Release);
    iocport::testing::set_leader_hook(None);
}

/// Every submission mode: the wake-up protocol is the same whoever owns the operations.
const MODES: [SubmitMode; 3] = [
    SubmitMode::Caller,
    SubmitMode::CallerInterrupted,
    SubmitMode::KernelThread,
];

fn io_port(entries: u32, mode: SubmitMode) -> CompletionPort<u32> {
    Builder::new()
        .concurrency(2)
        .entries(entries)
        .submit_mode(mode)
        .build()
        .expect("port")
}

/// A thread becomes the leader and sleeps in the kernel; a post must reach it within a second.
fn a_post_reaches_a_sleeping_leader(port: &CompletionPort<u32>, what: &str) {
    std::thread::scope(|s| {
        let leader = s.spawn(|| {
            let got = port.get(Some(Duration::from_secs(5)));
            (got.map(|p| p.value), Instant::now())
        });
        util::wait_stats(port, "a thread waiting", |st| st.waiting == 1);
        std::thread::sleep(SETTLE);
        let posted = Instant::now();
        port.post(1, 0, 2).unwrap();
        let (got, at) = leader.join().unwrap();
        assert_eq!(got, Ok(2), "{what}");
        let delay = at.saturating_duration_since(posted);
        assert!(
            delay < Duration::from_secs(1),
            "{what}: the post waited {delay:?}: the wake-up poll was not armed"
        );
    });
}

/// Time for the kernel to turn an eventfd write or a NOP into a completion.
const SETTLE: Duration = Duration::from_millis(30);

// Catches (shape a): a thread that reaps directly (a zero-timeout `get` that finds nothing queued)
// took the wake-up meant for the leader, which had decided to sleep but not yet entered the kernel;
// the leader then slept with a packet queued behind it, and later posts sent no wake-up at all.
#[test]
fn a_wake_taken_by_a_direct_reaper_still_reaches_the_leader() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for mode in MODES {
        let port = io_port(64, mode);
        catch_leader();
        let result = std::thread::scope(|s| {
            let leader = s.spawn(|| {
                let got = port.get(Some(Duration::from_secs(5)));
                (got.map(|p| p.value), Instant::now())
            });
            wait_until_held();
            // The leader is asleep as far as posters know: this post wakes it through the kernel.
            port.post(1, 0, 1).unwrap();
            std::thread::sleep(SETTLE);
            // This thread takes the packet, then polls again and reaps the wake-up completion.
            assert_eq!(port.get(Some(Duration::ZERO)).map(|p| p.value), Ok(1));
            assert_eq!(
                port.get(Some(Duration::ZERO)).map(|p| p.value),
                Err(GetError::TimedOut)
            );
            release();
            std::thread::sleep(SETTLE);
            let posted = Instant::now();
            port.post(2, 0, 2).unwrap();
            let (got, at) = leader.join().unwrap();
            (got, at.saturating_duration_since(posted))
        });
        port.close();
        let (got, delay) = result;
        assert_eq!(
            got,
            Ok(2),
            "the leader never got the packet posted after it slept"
        );
        assert!(
            delay < Duration::from_secs(1),
            "the packet waited {delay:?} for a leader that was never woken"
        );
    }
}

// Catches (shape c): a zero-timeout poll that counted the port's own wake-up completion against its
// limit of one and reported "timed out" with an operation's completion right behind it.
#[test]
fn a_zero_timeout_poll_returns_a_completion_behind_internal_ones() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for mode in MODES {
        let port = io_port(64, mode);
        catch_leader();
        std::thread::scope(|s| {
            let leader = s.spawn(|| port.get(Some(Duration::from_secs(5))).map(|p| p.value));
            wait_until_held();
            port.post(1, 0, 1).unwrap(); // a wake-up completion for the leader
            std::thread::sleep(SETTLE);
            assert_eq!(port.get(Some(Duration::ZERO)).map(|p| p.value), Ok(1));
            port.nop(1, 42).unwrap(); // an operation's completion behind it
            std::thread::sleep(SETTLE);
            assert_eq!(
                port.get(Some(Duration::ZERO)).map(|p| p.value),
                Ok(42),
                "the NOP's completion was there"
            );
            release();
            port.post(1, 0, 3).unwrap();
            assert_eq!(leader.join().unwrap(), Ok(3));
        });
        port.close();
    }
}

// Catches (shape b): the wake-up poll ended by the kernel (its completion met a full completion
// queue) and never armed again, after which every post waited for the leader's timeout. A ring of
// 2 submission and 8 completion entries; 12 NOPs fill the completion queue while the leader is held.
#[test]
fn the_wake_survives_a_full_completion_queue() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for mode in MODES {
        let port = io_port(2, mode);
        for round in 0..5 {
            catch_leader();
            std::thread::scope(|s| {
                let leader = s.spawn(|| port.get(Some(Duration::from_secs(5))).map(|p| p.value));
                wait_until_held();
                for i in 0..12 {
                    port.nop(1, 100 + i).unwrap();
                }
                std::thread::sleep(SETTLE);
                port.post(1, 0, 1).unwrap();
                std::thread::sleep(SETTLE);
                release();
                let first = leader.join().unwrap().expect("the leader wakes");
                let mut seen = vec![first];
                while seen.len() < 13 {
                    seen.push(uio::get(&port, "the NOPs and the post").value);
                }
                seen.sort();
                assert_eq!(seen[0], 1, "round {round}");
                assert_eq!(
                    seen[1..],
                    (100..112).collect::<Vec<_>>()[..],
                    "round {round}"
                );
            });
            // A new leader sleeps in the kernel; a post must still reach it.
            a_post_reaches_a_sleeping_leader(&port, &format!("{mode:?} round {round}"));
        }
        port.close();
    }
}

// Catches (shape b, the submission side): the wake-up poll's re-arm dropped because the submission
// queue was full when the ended poll was reaped. Inside a batch two NOPs fill the 2-entry queue
// (not submitted yet) when this thread reaps the wake-up completion; with a one-shot poll (kernels
// before 5.13, or `IOCPORT_TEST_MISSING=multishot_poll`) every wake-up ends it, so the re-arm meets
// the full queue every time. With a multishot poll the wake-up does not end it and the test shows
// that the wake-up still works.
#[test]
fn the_wake_is_rearmed_after_a_full_submission_queue() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Each caller submits (with the kernel's submission thread the queue would drain by itself).
    let port: CompletionPort<u32> = Builder::new()
        .concurrency(2)
        .entries(2)
        .submit_mode(SubmitMode::Caller)
        .build()
        .expect("port");
    catch_leader();
    std::thread::scope(|s| {
        let leader = s.spawn(|| port.get(Some(Duration::from_secs(5))).map(|p| p.value));
        wait_until_held();
        port.post(1, 0, 1).unwrap();
        std::thread::sleep(SETTLE);
        assert_eq!(port.get(Some(Duration::ZERO)).map(|p| p.value), Ok(1));
        port.batch(|| {
            port.nop(1, 10).unwrap();
            port.nop(1, 11).unwrap();
            // Reaps the wake-up completion with the submission queue full.
            assert_eq!(
                port.get(Some(Duration::ZERO)).map(|p| p.value),
                Err(GetError::TimedOut)
            );
        });
        release();
        let first = leader.join().unwrap().expect("the leader wakes");
        let second = uio::get(&port, "the other NOP").value;
        let mut nops = [first, second];
        nops.sort();
        assert_eq!(nops, [10, 11]);
    });
    a_post_reaches_a_sleeping_leader(&port, "after the re-arm");
    port.close();
}

// Catches: `close` with the leader asleep in the kernel while another thread's zero-timeout poll
// takes the wake-up that `close` sent; the leader must still wake with `Closed` at once.
#[test]
fn close_wakes_the_leader_whoever_reaps() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for mode in MODES {
        let port = io_port(64, mode);
        std::thread::scope(|s| {
            let leader = s.spawn(|| {
                let got = port.get(None);
                (got.map(|p| p.value), Instant::now())
            });
            util::wait_stats(&port, "a thread waiting", |st| st.waiting == 1);
            std::thread::sleep(SETTLE);
            let closed = Instant::now();
            port.close();
            let (got, at) = leader.join().unwrap();
            assert_eq!(got, Err(GetError::Closed));
            let delay = at.saturating_duration_since(closed);
            assert!(
                delay < Duration::from_secs(1),
                "close took {delay:?} to wake the leader"
            );
        });
    }
}

/// What the leader does with the packet it takes in [`an_away_leader`].
#[derive(Clone, Copy, PartialEq, Debug)]
enum Away {
    /// Sleeps without saying so (a handler that blocks where the port cannot see it).
    Silent,
    /// Sleeps inside `iocport::blocking`.
    Blocking,
    /// Looks for another packet with `get(0)`, finds none, then sleeps without saying so.
    Polls,
}

/// The leader takes a timer's completion and then stays away for 2 s; meanwhile a follower waits,
/// and a 20 ms timer started after the leader left must reach it. Returns how long the follower
/// waited for the timer's packet and the port's takeovers.
fn an_away_leader(away: Away) -> (Duration, u64) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port: CompletionPort<u32> = Builder::new().concurrency(2).build().unwrap();
    // The port's I/O is set up by a thread that then exits, so that it does not count as running.
    std::thread::scope(|s| {
        s.spawn(|| {
            port.nop(0, 0).unwrap();
            assert_eq!(port.get(Some(util::DEADLINE)).unwrap().value, 0, "set-up");
        });
    });
    std::thread::scope(|s| {
        let leader = s.spawn(|| {
            let p = port.get(Some(util::DEADLINE)).unwrap();
            assert_eq!(p.value, 1);
            let nap = || std::thread::sleep(Duration::from_secs(2));
            match away {
                Away::Silent => nap(),
                Away::Blocking => iocport::blocking(nap),
                Away::Polls => {
                    assert_eq!(port.get(Some(Duration::ZERO)), Err(GetError::TimedOut));
                    nap();
                }
            }
        });
        util::wait_stats(&port, "the leader waits", |s| s.waiting == 1);
        let follower = s.spawn(|| {
            let p = port.get(Some(util::DEADLINE)).unwrap();
            (p.value, Instant::now())
        });
        util::wait_stats(&port, "the follower waits too", |s| s.waiting == 2);
        // A timer, so that its completion comes while the leader waits for it in the kernel
        // (a NOP may complete inside the call, and be handed to the follower).
        port.timer(Duration::from_millis(30), 0, 1).unwrap();
        util::wait_stats(&port, "the leader took its packet", |s| {
            s.delivered >= 2 && s.waiting == 1
        });
        let start = Instant::now();
        port.timer(Duration::from_millis(20), 0, 2).unwrap();
        let (value, at) = follower.join().unwrap();
        assert_eq!(value, 2);
        leader.join().unwrap();
        (at - start, port.stats().takeovers)
    })
}

/// A follower's wait for a 20 ms timer started while the leader was away: far below the leader's
/// 2 s absence.
fn prompt(waited: Duration) {
    assert!(
        waited < Duration::from_millis(500),
        "the follower waited {waited:?} for a 20 ms timer"
    );
}

// Catches: a leader that keeps its role while it runs its packet and never comes back leaving
// nobody to wait in the kernel: the follower's completion would wait for the leader's return
// (2 s here). The top follower takes the role over within two periods of 5 ms.
#[test]
fn a_leader_away_for_long_is_replaced_by_a_follower() {
    let (waited, takeovers) = an_away_leader(Away::Silent);
    prompt(waited);
    assert_eq!(takeovers, 1);
}

// Catches: a leader that enters a blocking section keeping the role (it must hand it on at once,
// with no takeover delay).
#[test]
fn a_leader_that_blocks_hands_its_role_on() {
    let (waited, takeovers) = an_away_leader(Away::Blocking);
    prompt(waited);
    assert_eq!(takeovers, 0, "handed on, not taken over");
}

// Catches: a leader that polls with `get(0)`, finds nothing and goes on with other work keeping
// the role: it is not waiting, so it hands the role on at once, as a blocking section does.
#[test]
fn a_leader_whose_poll_finds_nothing_hands_its_role_on() {
    let (waited, takeovers) = an_away_leader(Away::Polls);
    prompt(waited);
    assert_eq!(takeovers, 0, "handed on, not taken over");
}

// Catches: only the follower on top of the stack when it parked keeping watch over an away
// leader. Here the leader runs a packet for 2 s, the top follower is handed a posted packet and
// runs it for 2 s too, and the follower below, now on top, must take the role over: a timer
// started then must reach it long before either comes back.
#[test]
fn a_follower_that_comes_to_the_top_keeps_watch() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port: CompletionPort<u32> = Builder::new().concurrency(3).build().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            port.nop(0, 0).unwrap();
            assert_eq!(port.get(Some(util::DEADLINE)).unwrap().value, 0, "set-up");
        });
    });
    let nap = || std::thread::sleep(Duration::from_secs(2));
    std::thread::scope(|s| {
        let leader = s.spawn(|| {
            assert_eq!(port.get(Some(util::DEADLINE)).unwrap().value, 1);
            nap();
        });
        util::wait_stats(&port, "the leader waits", |s| s.waiting == 1);
        // Each follower runs a posted packet for 2 s, and reports when it got its packet. (The
        // top one normally gets the post; should it take the role over first, the post goes to
        // the one below and the timer to the new leader.)
        let follower = || {
            let p = port.get(Some(util::DEADLINE)).unwrap();
            let at = Instant::now();
            if p.value == 2 {
                nap();
            }
            (p.value, at)
        };
        let below = s.spawn(follower);
        util::wait_stats(&port, "a follower waits", |s| s.waiting == 2);
        let top = s.spawn(follower);
        util::wait_stats(&port, "a second follower waits", |s| s.waiting == 3);
        port.timer(Duration::from_millis(30), 0, 1).unwrap();
        util::wait_stats(&port, "the leader took its packet", |s| {
            s.delivered >= 2 && s.waiting == 2
        });
        port.post(0, 0, 2).unwrap();
        util::wait_stats(&port, "a follower took the post", |s| {
            s.delivered >= 3 && s.waiting == 1
        });
        let start = Instant::now();
        port.timer(Duration::from_millis(20), 0, 3).unwrap();
        let got = [below.join().unwrap(), top.join().unwrap()];
        let mut values: Vec<u32> = got.iter().map(|g| g.0).collect();
        values.sort_unstable();
        assert_eq!(values, [2, 3]);
        let at = got.iter().find(|g| g.0 == 3).unwrap().1;
        prompt(at - start);
        leader.join().unwrap();
    });
}

// Catches: the follower on top waking every takeover period while the port is idle (the leader
// waits in the kernel, nothing happens): about 200 wake-ups a second for nothing.
#[test]
fn an_idle_port_lets_its_followers_sleep() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port: CompletionPort<u32> = Builder::new().concurrency(2).build().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            port.nop(0, 0).unwrap();
            assert_eq!(port.get(Some(util::DEADLINE)).unwrap().value, 0, "set-up");
        });
    });
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..2)
            .map(|_| s.spawn(|| port.get(Some(util::DEADLINE)).unwrap().value))
            .collect();
        util::wait_stats(&port, "two threads wait", |s| s.waiting == 2);
        std::thread::sleep(Duration::from_millis(50));
        let before = port.stats().wakeups;
        std::thread::sleep(Duration::from_millis(300));
        let woke = port.stats().wakeups - before;
        port.post(0, 0, 1).unwrap();
        port.post(0, 0, 1).unwrap();
        for w in waiters {
            assert_eq!(w.join().unwrap(), 1);
        }
        assert!(woke <= 3, "{woke} wake-ups in 300 ms of an idle port");
    });
}
