//! The epoll backend's threads for what cannot wait for readiness: reads and writes of regular
//! files and block devices that would block, `fsync`, operations on fds epoll refuses.
//!
//! A job is *claimed* by the one thread that takes it out of the queue, under the queue's lock:
//! queued (a cancel takes it out and completes it with `ECANCELED`), running (a cancel no longer
//! finds it; it completes with its real result), done (its completion is queued). So a job is
//! completed exactly once and its memory is never released under the thread running it.
//!
//! The pool starts threads as jobs wait, up to its bound, and a thread that has had nothing to do
//! for [`IDLE`] exits. Its threads belong to the port, not to any caller: no operation depends on
//! the thread that started it.

use std::sync::{Arc, Condvar};
use std::time::Duration;

use crate::sync::{lock, Mutex};

use super::super::claim::Waiting;
use super::run::{Outcome, Sqe};
use super::Shared;

/// How long a pool thread waits for a job before it exits.
const IDLE: Duration = Duration::from_secs(10);

pub(super) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    work: Condvar,
    shared: Arc<Shared>,
    max_threads: usize,
}

struct State {
    jobs: Waiting<Sqe>,
    /// Threads waiting for a job.
    idle: usize,
    threads: usize,
    shutdown: bool,
}

impl Pool {
    pub(super) fn new(shared: Arc<Shared>, max_threads: usize) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    jobs: Waiting::default(),
                    idle: 0,
                    threads: 0,
                    shutdown: false,
                }),
                work: Condvar::new(),
                shared,
                max_threads: max_threads.max(1),
            }),
        }
    }

    /// Queues `job` for a pool thread, starting one if every thread is busy and the bound allows.
    pub(super) fn push(&self, job: Sqe) {
        let inner = &self.inner;
        let mut st = lock(&inner.state);
        st.jobs.push(job);
        if st.idle > 0 {
            inner.work.notify_one();
        }
        if st.jobs.len() > st.idle && st.threads < inner.max_threads {
            let me = inner.clone();
            let spawned = std::thread::Builder::new()
                .name("iocport-file".into())
                .spawn(move || me.work_loop());
            match spawned {
                Ok(_) => st.threads += 1,
                Err(e) if st.threads == 0 => {
                    // No thread to run it: it ends with EAGAIN (as a system call that cannot
                    // start a thread does), rather than never or blocking the caller.
                    tracing::warn!(error = %e, "starting a file I/O thread failed");
                    let job = st.jobs.claim().expect("pushed above");
                    drop(st);
                    inner.shared.push(job.user_data, -libc::EAGAIN);
                    inner.shared.notify();
                }
                Err(e) => tracing::debug!(error = %e, "starting another file I/O thread failed"),
            }
        }
    }

    /// Takes the queued (not yet running) jobs `pick` chooses out of the queue and completes them
    /// with `ECANCELED`; returns how many.
    pub(super) fn cancel(&self, pick: impl Fn(&Sqe) -> bool) -> usize {
        let shared = &self.inner.shared;
        lock(&self.inner.state)
            .jobs
            .cancel(pick, |job, r| shared.push(job.user_data, r))
    }
}

impl Inner {
    fn work_loop(self: Arc<Inner>) {
        loop {
            let job = {
                let mut st = lock(&self.state);
                loop {
                    if let Some(job) = st.jobs.claim() {
                        break Some(job);
                    }
                    if st.shutdown {
                        st.threads -= 1;
                        break None;
                    }
                    st.idle += 1;
                    let (back, timeout) = self
                        .work
                        .wait_timeout(st, IDLE)
                        .unwrap_or_else(|e| e.into_inner());
                    st = back;
                    st.idle -= 1;
                    if timeout.timed_out() && st.jobs.is_empty() {
                        st.threads -= 1;
                        break None;
                    }
                }
            };
            match job {
                Some(job) => self.finish(job),
                None => return,
            }
        }
    }

    /// Runs a claimed job to its end and queues its completion.
    fn finish(&self, mut job: Sqe) {
        let result = match job.run(false) {
            Outcome::Done(r) => r,
            // Only a pollable fd's multishot receive says this, and it never comes here; if it
            // did, its first message would end it (its buffer kept).
            Outcome::More(r, flags) => {
                job.flags = flags & !crate::io::CQE_F_MORE;
                r
            }
            // Only an fd the program made non-blocking itself says this to a blocking call.
            Outcome::Again => -libc::EAGAIN,
        };
        self.shared.finish(&job, result);
        self.shared.notify();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Every operation has completed (the port drains before its backend goes): the threads are
        // idle and leave.
        lock(&self.inner.state).shutdown = true;
        self.inner.work.notify_all();
    }
}
