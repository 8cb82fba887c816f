//! The `wake` suite: how fast a completion reaches a sleeping worker, leader/followers against a
//! dedicated reaper thread (the design choice `port.rs` documents).
//!
//! Case `completion_wake`: a worker waits in `get` on an idle port (asleep); another thread starts a
//! NOP; the latency is from the submission to the worker holding the packet, p50 and p99 over many
//! samples, each taken after the worker has gone back to sleep.
//! - `iocport` (leader/followers): the worker itself waits in `io_uring_enter`; the kernel wakes it
//!   with the completion (one wake-up).
//! - `iocport-reaper`: the design we compared against: a reaper thread waits in `io_uring_enter` on
//!   one port and posts each completion to a second port where the worker sleeps (two wake-ups).
//! - `iocport-epoll`: as `iocport`, on the epoll backend, forced: the worker waits in
//!   `epoll_wait`, which the completed NOP wakes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use iocport::{CompletionPort, GetError};

use super::{
    epoll_note, percentile, run_case, Config, Contender, Flavor, Report, IOCPORT, IOCPORT_EPOLL,
};

const SUITE: &str = "wake";
const REAPER: &str = "iocport-reaper";
/// How long the submitter lets the worker fall asleep before each sample.
const NAP: Duration = Duration::from_micros(200);
const WAIT: Duration = Duration::from_secs(10);

/// Runs the suite.
pub(crate) fn run(cfg: &Config) -> Result<Report, String> {
    let samples = cfg.size(2_000, 100);
    let mut report = Report::default();
    report.records.extend(run_case(
        cfg,
        SUITE,
        "completion_wake",
        vec![
            Contender::new(IOCPORT, move || wake_round(samples, false, Flavor::DEFAULT)),
            Contender::new(REAPER, move || wake_round(samples, true, Flavor::DEFAULT)),
            Contender::new(IOCPORT_EPOLL, move || {
                wake_round(samples, false, Flavor::EPOLL)
            }),
        ],
    )?);
    report.notes.push(format!(
        "completion_wake: a NOP started while the worker sleeps ({} us nap before each of {samples} \
         samples); iocport-reaper: a reaper thread in io_uring_enter posts each completion to the \
         worker's port",
        NAP.as_micros()
    ));
    report
        .notes
        .push(epoll_note("Builder::backend(BackendChoice::Epoll)"));
    Ok(report)
}

/// One round: `samples` wake-up latencies in ns, as p50 and p99. The NOPs go through a port of
/// `flavor`.
fn wake_round(
    samples: usize,
    reaper: bool,
    flavor: Flavor,
) -> Result<Vec<(&'static str, f64)>, String> {
    let io_port: CompletionPort<Instant> = flavor
        .builder()
        .concurrency(1)
        .build()
        .map_err(|e| format!("port: {e}"))?;
    if let Err(e) = flavor.check(&io_port) {
        io_port.close();
        return Err(e);
    }
    let worker_port: CompletionPort<Instant> = CompletionPort::new(1);
    let got = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut lat: Vec<u64> = Vec::new();
    thread::scope(|s| -> Result<(), String> {
        let reaper_thread = reaper.then(|| {
            s.spawn(|| loop {
                match io_port.get(Some(WAIT)) {
                    Ok(p) => {
                        if worker_port.post(p.key, p.bytes, p.value).is_err() {
                            return;
                        }
                    }
                    Err(GetError::Closed) => return,
                    Err(GetError::TimedOut) if stop.load(Ordering::Relaxed) => return,
                    Err(GetError::TimedOut) => {}
                }
            })
        });
        let waiting_on = if reaper { &worker_port } else { &io_port };
        let worker = s.spawn(|| -> Result<Vec<u64>, String> {
            let mut lat = Vec::with_capacity(samples);
            for _ in 0..samples {
                let p = waiting_on
                    .get(Some(WAIT))
                    .map_err(|e| format!("worker: {e}"))?;
                lat.push(p.value.elapsed().as_nanos() as u64);
                got.fetch_add(1, Ordering::Release);
            }
            Ok(lat)
        });
        // Set up the ring before the first sample.
        io_port.nop(0, Instant::now()).map_err(|e| e.to_string())?;
        wait_for(&got, 1)?;
        for i in 1..samples {
            thread::sleep(NAP);
            io_port.nop(0, Instant::now()).map_err(|e| e.to_string())?;
            wait_for(&got, i + 1)?;
        }
        lat = worker.join().map_err(|_| "worker panicked")??;
        stop.store(true, Ordering::Relaxed);
        io_port.close();
        worker_port.close();
        if let Some(r) = reaper_thread {
            r.join().map_err(|_| "reaper panicked")?;
        }
        Ok(())
    })?;
    // The first sample set up the ring; it is not a wake-up.
    lat.remove(0);
    lat.sort_unstable();
    Ok(vec![
        ("wake_p50_ns", percentile(&lat, 50.0) as f64),
        ("wake_p99_ns", percentile(&lat, 99.0) as f64),
    ])
}

fn wait_for(got: &AtomicUsize, n: usize) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while got.load(Ordering::Acquire) < n {
        if Instant::now() > deadline {
            return Err("the worker did not receive its packet".into());
        }
        thread::yield_now();
    }
    Ok(())
}
