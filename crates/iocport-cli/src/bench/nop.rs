//! The `nop` suite: the cost of one operation's trip through the kernel and back, with the
//! operation doing nothing (`IORING_OP_NOP`).
//!
//! Cases `nop_batch1` and `nop_batch32`: operations submitted one at a time or 32 per system call.
//! - `iocport`: `port.nop(key, value)` then `get`; in batches, 32 `nop`s inside one `port.batch`
//!   (one `io_uring_enter` for the lot), then `get_many(out, 32)` until all 32 are back.
//! - `iocport-interrupted`, `iocport-sqpoll`: the same in the other submission modes.
//! - `iocport-epoll`: the same on the epoll backend, forced (`BackendChoice::Epoll`).
//! - `io-uring`: the raw `io-uring` crate on one thread, one ring of 256 entries: push 1 (or 32)
//!   `opcode::Nop` SQEs, `submit_and_wait(1 or 32)`, reap the completion queue. This is the floor:
//!   no port, no op table, no packets.
//!
//! Every loop is bounded in count and in time ([`MAX_TIME`], a quarter of it with `--quick`).

use std::time::{Duration, Instant};

use io_uring::{opcode, IoUring};

use super::{
    epoll_note, run_case, Config, Contender, Flavor, Goal, Record, Report, Target, Values,
    IOCPORT_FLAVORS, IO_WAIT,
};

const SUITE: &str = "nop";
/// The raw `io-uring` crate.
const RAW: &str = "io-uring";
/// The completion key of the port's NOPs.
const KEY: usize = 1;
/// Submission queue entries of the raw ring (and of the port's).
const ENTRIES: u32 = 256;
/// The longest one round may run, whatever its count.
const MAX_TIME: Duration = Duration::from_secs(3);

/// Runs the suite.
pub(crate) fn run(cfg: &Config) -> Result<Report, String> {
    let mut report = Report::default();
    for batch in [1, 32] {
        report.records.extend(nop_case(cfg, batch)?);
    }
    report.notes.push(format!(
        "nop_*: io-uring is the raw crate on one thread, one ring of {ENTRIES} entries \
         (push, submit_and_wait(batch), reap); iocport submits inside port.batch and reaps \
         with get/get_many"
    ));
    report
        .notes
        .push(epoll_note("Builder::backend(BackendChoice::Epoll)"));
    report.targets.push(Target {
        case: "nop_batch32",
        metric: "ops_per_s",
        goal: Goal::AtLeastFactorOf {
            peer: RAW,
            factor: 0.8,
        },
    });
    Ok(report)
}

/// How long a round may last at most.
fn max_time(cfg: &Config) -> Duration {
    if cfg.quick {
        MAX_TIME / 4
    } else {
        MAX_TIME
    }
}

/// Case `nop_batch{batch}`.
fn nop_case(cfg: &Config, batch: usize) -> Result<Vec<Record>, String> {
    let ops = if batch == 1 {
        cfg.size(2_000_000, 50_000)
    } else {
        cfg.size(20_000_000, 320_000)
    };
    let limit = max_time(cfg);
    let mut contenders: Vec<Contender<'_>> = IOCPORT_FLAVORS
        .iter()
        .map(|&(system, flavor)| {
            Contender::new(system, move || nop_iocport(batch, ops, limit, flavor))
        })
        .collect();
    contenders.push(Contender::new(RAW, move || nop_raw(batch, ops, limit)));
    run_case(cfg, SUITE, &format!("nop_batch{batch}"), contenders)
}

/// Operations per second from a count and the time it took.
fn rate(ops: usize, elapsed: Duration) -> Values {
    vec![("ops_per_s", ops as f64 / elapsed.as_secs_f64())]
}

/// The raw ring: `ops` NOPs (rounded up to whole batches), or fewer if `limit` passes first.
fn nop_raw(batch: usize, ops: usize, limit: Duration) -> Result<Values, String> {
    let mut ring = IoUring::new(ENTRIES).map_err(|e| format!("io_uring_setup: {e}"))?;
    let nop = opcode::Nop::new().build();
    let start = Instant::now();
    let mut done = 0;
    while done < ops {
        {
            let mut sq = ring.submission();
            for i in 0..batch {
                let sqe = nop.clone().user_data(i as u64);
                // SAFETY: a NOP SQE refers to no memory, so nothing has to outlive its completion.
                unsafe { sq.push(&sqe) }.map_err(|_| "submission queue full".to_owned())?;
            }
        }
        ring.submit_and_wait(batch)
            .map_err(|e| format!("io_uring_enter: {e}"))?;
        let mut reaped = 0;
        for cqe in ring.completion() {
            if cqe.result() < 0 {
                return Err(format!("NOP failed: errno {}", -cqe.result()));
            }
            reaped += 1;
        }
        if reaped != batch {
            return Err(format!("reaped {reaped} completions, expected {batch}"));
        }
        done += batch;
        if start.elapsed() >= limit {
            break;
        }
    }
    Ok(rate(done, start.elapsed()))
}

/// The port: `ops` NOPs (rounded up to whole batches), or fewer if `limit` passes first. One
/// thread, so a concurrency value of 1. A batch is started inside `port.batch` (one system call)
/// and reaped with `get_many`; a batch of 1 is `nop` then `get`.
fn nop_iocport(
    batch: usize,
    ops: usize,
    limit: Duration,
    flavor: Flavor,
) -> Result<Values, String> {
    let port = flavor
        .builder()
        .concurrency(1)
        .entries(ENTRIES)
        .build::<usize, Vec<u8>>()
        .map_err(|e| format!("port: {e}"))?;
    if let Err(e) = flavor.check(&port) {
        port.close();
        return Err(e);
    }
    let check = |p: &iocport::Packet<usize>| match p.status.error() {
        None => Ok(()),
        Some(e) => Err(format!("NOP failed: {e}")),
    };
    let mut out = Vec::with_capacity(batch);
    let start = Instant::now();
    let mut done = 0;
    while done < ops {
        if batch == 1 {
            port.nop(KEY, done).map_err(|e| format!("nop: {e}"))?;
            let p = port.get(Some(IO_WAIT)).map_err(|e| format!("get: {e}"))?;
            check(&p)?;
        } else {
            port.batch(|| -> Result<(), String> {
                for i in 0..batch {
                    port.nop(KEY, i).map_err(|e| format!("nop: {e}"))?;
                }
                Ok(())
            })?;
            let mut got = 0;
            while got < batch {
                out.clear();
                got += port
                    .get_many(&mut out, batch - got, Some(IO_WAIT))
                    .map_err(|e| format!("get_many: {e}"))?;
                out.iter().try_for_each(check)?;
            }
        }
        done += batch;
        if start.elapsed() >= limit {
            break;
        }
    }
    let values = rate(done, start.elapsed());
    port.close();
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_runs() {
        for batch in [1, 32] {
            let v = nop_raw(batch, 1000, Duration::from_secs(5)).unwrap();
            assert!(v[0].1 > 0.0);
            for (system, flavor) in IOCPORT_FLAVORS {
                let v = nop_iocport(batch, 1000, Duration::from_secs(5), flavor)
                    .unwrap_or_else(|e| panic!("{system}: {e}"));
                assert!(v[0].1 > 0.0);
            }
        }
    }
}
