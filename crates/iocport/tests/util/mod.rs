//! Helpers shared by the integration tests: bounded waits on a port's counters and a drop counter.
//!
//! Every wait here is bounded by [`DEADLINE`] and fails the test with the last snapshot it saw, so a
//! hung port shows up as a clear failure instead of a stuck test binary.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iocport::{CompletionPort, PortStats};

/// How long any "wait until the port reaches this state" may take before the test fails. Generous:
/// the machine is small and noisy, and a correct port reaches every state these tests wait for.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds, for at most [`DEADLINE`]; panics with `what` otherwise.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut polls: u64 = 0;
    while !cond() {
        polls += 1;
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {polls} polls waiting for: {what}"
        );
        if polls < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Waits until the port's counters satisfy `cond` (see [`wait_for`]) and returns that snapshot.
pub fn wait_stats<T: Send + 'static>(
    port: &CompletionPort<T>,
    what: &str,
    mut cond: impl FnMut(&PortStats) -> bool,
) -> PortStats {
    let start = Instant::now();
    let mut polls: u64 = 0;
    loop {
        let s = port.stats();
        if cond(&s) {
            return s;
        }
        polls += 1;
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {polls} polls waiting for: {what}; last stats: {s:?}"
        );
        if polls < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Waits until exactly `n` threads wait in `get` on `port`.
pub fn wait_waiting<T: Send + 'static>(port: &CompletionPort<T>, n: usize) -> PortStats {
    wait_stats(port, &format!("{n} waiting threads"), |s| s.waiting == n)
}

/// Receives from `rx` within [`DEADLINE`], failing the test with `what` otherwise.
pub fn recv<T>(rx: &std::sync::mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|e| panic!("no message within {DEADLINE:?} for: {what} ({e})"))
}

/// A value that counts how many of its kind were dropped.
#[derive(Debug)]
pub struct DropCounter {
    pub id: usize,
    drops: Arc<AtomicUsize>,
}

impl DropCounter {
    pub fn new(id: usize, drops: &Arc<AtomicUsize>) -> DropCounter {
        DropCounter {
            id,
            drops: drops.clone(),
        }
    }
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}
