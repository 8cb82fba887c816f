//! How the epoll backend's waiting operations are claimed, so that each ends exactly once and none
//! is freed under the thread running it. Shared by its two queues, each kept under its own lock:
//!
//! - an fd's queue of operations waiting for readiness ([`Waiting::run_front`]): the operation at
//!   the front runs *while still queued*, under the fd's lock, and leaves the queue only once it
//!   is done; a cancel, which needs the same lock, finds it either waiting (and ends it with
//!   `ECANCELED`) or gone (it ended with its real result);
//! - the thread pool's queue ([`Waiting::claim`]): a pool thread takes the job out under the pool's
//!   lock, which claims it (queued → running), then runs it without the lock; a cancel no longer
//!   finds it, and it ends with its real result (done).
//!
//! Either way an operation is in exactly one place (queued, running, or its completion queued), and
//! its slot, which owns its memory, is freed only when that completion is reaped. The loom model
//! `tests/loom_claim.rs` runs this code against cancels and a port's close.

use std::collections::VecDeque;

/// Operations waiting in one queue, oldest first.
#[doc(hidden)]
pub struct Waiting<J> {
    queue: VecDeque<J>,
}

impl<J> Default for Waiting<J> {
    fn default() -> Self {
        Waiting {
            queue: VecDeque::new(),
        }
    }
}

/// What one attempt at an operation came to: `Some(result)` once it is done, `None` if it would
/// block (it keeps its place).
pub type Attempt = Option<i32>;

impl<J> Waiting<J> {
    /// Queues `job` behind the others.
    pub fn push(&mut self, job: J) {
        self.queue.push_back(job);
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Claims the oldest job (queued → running): from now on no cancel finds it, and its taker
    /// must complete it.
    pub fn claim(&mut self) -> Option<J> {
        self.queue.pop_front()
    }

    /// Runs the waiting jobs in order, each while still queued (the caller holds the queue's lock),
    /// until one would block; each that is done leaves the queue and goes to `done` with its
    /// result.
    pub fn run_front(
        &mut self,
        mut attempt: impl FnMut(&mut J) -> Attempt,
        mut done: impl FnMut(J, i32),
    ) {
        while let Some(job) = self.queue.front_mut() {
            match attempt(job) {
                Some(result) => {
                    let job = self.queue.pop_front().expect("the front was there");
                    done(job, result);
                }
                None => break,
            }
        }
    }

    /// Runs every waiting job once, under the caller's lock (jobs that do not depend on each other's
    /// order, as polls); each that is done leaves the queue and goes to `done`.
    pub fn run_all(
        &mut self,
        mut attempt: impl FnMut(&mut J) -> Attempt,
        mut done: impl FnMut(J, i32),
    ) {
        let mut i = 0;
        while i < self.queue.len() {
            match attempt(&mut self.queue[i]) {
                Some(result) => {
                    let job = self.queue.remove(i).expect("in range");
                    done(job, result);
                }
                None => i += 1,
            }
        }
    }

    /// Takes the waiting jobs `pick` chooses out of the queue and ends each with `ECANCELED`
    /// (`done`); returns how many. A job running now is not here: it ends with its result.
    pub fn cancel(
        &mut self,
        mut pick: impl FnMut(&J) -> bool,
        mut done: impl FnMut(J, i32),
    ) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.queue.len() {
            if pick(&self.queue[i]) {
                let job = self.queue.remove(i).expect("in range");
                done(job, -libc::ECANCELED);
                n += 1;
            } else {
                i += 1;
            }
        }
        n
    }

    /// The number of waiting jobs.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}
