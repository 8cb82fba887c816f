//! The README's first example as a program: a worker pool on one port.
//!
//! Four workers serve 1,000 posted packets; at most two of them run at once (the concurrency
//! value), the others wait and are released last-in first-out. Once the queue is drained the port
//! is closed, every worker wakes with `Closed`, and the packets they handled add up to 1,000.
//!
//! ```sh
//! cargo run -p iocport --example worker_pool
//! ```
//!
//! Exits 0 on success; 1 with a message on failure; 3 if it has not finished within 30 seconds.

use iocport::{CompletionPort, GetError};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

/// How long the whole program may take before it gives up.
const DEADLINE: Duration = Duration::from_secs(30);
/// Packets posted.
const PACKETS: usize = 1000;
/// Worker threads, and how many of them may run at once.
const WORKERS: usize = 4;
const CONCURRENCY: usize = 2;

fn main() -> ExitCode {
    watchdog(DEADLINE);
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker_pool: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo test --all-targets` builds the examples as test binaries, with the test harness in place
/// of `main`: there this test runs the example (the seccomp tests of `iocport-cli` run whichever
/// build they find, with the arguments that pick this test).
#[test]
fn runs() {
    watchdog(DEADLINE);
    if let Err(e) = run() {
        panic!("{e}");
    }
}

/// The example: `Err` with what went wrong.
fn run() -> Result<(), String> {
    // At most 2 of the 4 workers run at once; the others wait, and are released last-in
    // first-out.
    let port: CompletionPort<String> = CompletionPort::new(CONCURRENCY);

    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let port = port.clone();
            thread::spawn(move || -> Result<usize, String> {
                let mut done = 0;
                loop {
                    match port.get(None) {
                        Ok(packet) => {
                            // packet.key: which source; packet.bytes, packet.status; packet.value:
                            // the context.
                            if !packet.value.starts_with("request") || packet.bytes != 128 {
                                return Err(format!("unexpected packet {packet:?}"));
                            }
                            done += 1;
                        }
                        Err(GetError::Closed) => return Ok(done),
                        Err(e) => return Err(format!("get: {e}")),
                    }
                }
            })
        })
        .collect();

    for i in 0..PACKETS {
        port.post(i % 8, 128, format!("request {i}"))
            .map_err(|e| format!("post: {e}"))?;
    }
    // Wait (bounded) for the queue to drain, then close: every waiting worker wakes with `Closed`.
    let start = Instant::now();
    while port.stats().queued > 0 {
        if start.elapsed() > DEADLINE {
            port.close();
            return Err("the workers did not drain the queue".to_owned());
        }
        thread::sleep(Duration::from_millis(1));
    }
    // Packets still queued come back here, never dropped unseen.
    let left = port.close();
    if !left.is_empty() {
        return Err(format!("{} packets were left on the port", left.len()));
    }
    let mut done = 0;
    for w in workers {
        done += w.join().map_err(|_| "a worker panicked".to_owned())??;
    }
    if done != PACKETS {
        return Err(format!("the workers handled {done} packets, not {PACKETS}"));
    }
    println!(
        "worker_pool: {WORKERS} workers (at most {CONCURRENCY} at once) handled {done} packets"
    );
    Ok(())
}

/// Ends the process with exit code 3 if it is still running after `after`, so that a bug can never
/// leave it hanging.
fn watchdog(after: Duration) {
    thread::spawn(move || {
        thread::sleep(after);
        eprintln!("worker_pool: not finished after {after:?}; giving up");
        std::process::exit(3);
    });
}
