//! loom models of how the epoll backend claims an operation (`io/claim.rs`, the code its fd queues
//! and its thread pool run): a thread that runs an operation, a cancel of one operation, and a
//! port's close (cancel everything, wait for every completion, then free the slots), in every
//! interleaving. Each model checks that every operation ends exactly once (its real result or
//! `ECANCELED`) and that no operation's memory is freed while a thread runs it. A third model runs
//! the handshake by which a pool thread that queues a completion wakes a leader about to block in
//! `epoll_wait` (`LeaderSleep`, `io/wake.rs`): the leader never blocks with a completion queued and
//! nobody to wake it.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p iocport --release --test loom_claim`
//! (`scripts/test.sh` does).
#![cfg(loom)]

#[path = "util/loom_event.rs"]
mod loom_event;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use iocport::testing::{LeaderSleep, Waiting};
use loom_event::Event;

/// Operations per model.
const OPS: u32 = 2;

/// One operation: its id and the memory its slot owns (freed once its completion is reaped).
struct Job {
    id: u32,
    freed: Arc<AtomicBool>,
}

/// A port with `OPS` operations queued: the queue, the completions, each slot's memory.
struct Model {
    queue: Mutex<Waiting<Job>>,
    completions: Mutex<Vec<(u32, i32)>>,
    slots: Vec<Arc<AtomicBool>>,
}

impl Model {
    fn new() -> Arc<Model> {
        let slots: Vec<_> = (0..OPS).map(|_| Arc::new(AtomicBool::new(false))).collect();
        let mut queue = Waiting::default();
        for (id, freed) in slots.iter().enumerate() {
            queue.push(Job {
                id: id as u32,
                freed: freed.clone(),
            });
        }
        Arc::new(Model {
            queue: Mutex::new(queue),
            completions: Mutex::new(Vec::new()),
            slots,
        })
    }

    fn complete(&self, job: Job, result: i32) {
        self.completions.lock().unwrap().push((job.id, result));
    }

    /// The operation runs: its memory must still be there.
    fn run(job: &Job) -> i32 {
        assert!(
            !job.freed.load(Ordering::SeqCst),
            "operation {} runs on freed memory",
            job.id
        );
        100 + job.id as i32
    }

    /// A port's close: cancel everything, wait until every operation has completed (reaping),
    /// then free the slots. Checks that each operation ended exactly once.
    fn close(&self) {
        let mut q = self.queue.lock().unwrap();
        q.cancel(|_| true, |job, r| self.complete(job, r));
        drop(q);
        while self.completions.lock().unwrap().len() < OPS as usize {
            thread::yield_now();
        }
        for freed in &self.slots {
            freed.store(true, Ordering::SeqCst);
        }
        let mut done = self.completions.lock().unwrap().clone();
        done.sort_unstable();
        let ids: Vec<u32> = done.iter().map(|&(id, _)| id).collect();
        assert_eq!(
            ids,
            (0..OPS).collect::<Vec<_>>(),
            "each operation ends once"
        );
        for (id, r) in done {
            assert!(
                r == -libc::ECANCELED || r == 100 + id as i32,
                "operation {id} ended with {r}"
            );
        }
    }
}

/// The thread pool: a worker claims jobs under the lock and runs them without it, while one job
/// is cancelled by its id and the port closes.
#[test]
fn pool_claim_against_cancel_and_close() {
    loom::model(|| {
        let m = Model::new();
        let worker = {
            let m = m.clone();
            thread::spawn(move || loop {
                let claimed = m.queue.lock().unwrap().claim();
                let Some(job) = claimed else { break };
                let r = Model::run(&job);
                m.complete(job, r);
            })
        };
        let canceller = {
            let m = m.clone();
            thread::spawn(move || {
                let mut q = m.queue.lock().unwrap();
                q.cancel(|j| j.id == 1, |job, r| m.complete(job, r));
            })
        };
        m.close();
        worker.join().unwrap();
        canceller.join().unwrap();
    });
}

/// An fd's queue: an event runs the waiting jobs in order while they are queued, under the lock
/// (the first completes, the second would block), while one job is cancelled and the port closes.
#[test]
fn fd_queue_run_against_cancel_and_close() {
    loom::model(|| {
        let m = Model::new();
        let event = {
            let m = m.clone();
            thread::spawn(move || {
                let mut q = m.queue.lock().unwrap();
                q.run_front(
                    |job| {
                        let r = Model::run(job);
                        (job.id == 0).then_some(r)
                    },
                    |job, r| m.complete(job, r),
                );
            })
        };
        let canceller = {
            let m = m.clone();
            thread::spawn(move || {
                let mut q = m.queue.lock().unwrap();
                q.cancel(|j| j.id == 0, |job, r| m.complete(job, r));
            })
        };
        m.close();
        event.join().unwrap();
        canceller.join().unwrap();
    });
}

/// A pool thread queues a completion (counted) and wakes the leader if it is asleep; the leader,
/// about to block, blocks (on the model's eventfd) only if nothing is queued. If the handshake
/// were wrong, some interleaving would leave the leader blocked with the completion queued and
/// nothing to wake it: loom reports that as a deadlock.
#[test]
fn a_pool_completion_wakes_a_leader_about_to_block() {
    loom::model(|| {
        let sleep = Arc::new(LeaderSleep::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let eventfd = Arc::new(Event::default());
        let pool = {
            let (sleep, queued, eventfd) = (sleep.clone(), queued.clone(), eventfd.clone());
            thread::spawn(move || {
                queued.fetch_add(1, Ordering::SeqCst);
                if sleep.must_wake() {
                    eventfd.set();
                }
            })
        };
        if sleep.may_sleep(|| queued.load(Ordering::SeqCst)) {
            eventfd.wait();
        }
        sleep.awake();
        assert_eq!(
            queued.load(Ordering::SeqCst),
            1,
            "the leader woke with nothing queued"
        );
        pool.join().unwrap();
    });
}
