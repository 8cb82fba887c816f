//! Timers of the epoll backend: a heap ordered by deadline behind one timerfd, armed for the
//! earliest. Whichever thread sees the timerfd readable fires what is due.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::sync::{lock, Mutex};

use super::Shared;

pub(super) struct Timers {
    fd: OwnedFd,
    state: Mutex<State>,
}

struct State {
    /// Pending timers by deadline, then `user_data` (unique while the timer is pending).
    due: BTreeMap<(Instant, u64), ()>,
    /// What the timerfd is set to.
    armed: Option<Instant>,
}

impl Timers {
    pub(super) fn new(fd: OwnedFd) -> Timers {
        Timers {
            fd,
            state: Mutex::new(State {
                due: BTreeMap::new(),
                armed: None,
            }),
        }
    }

    /// Starts timer `user_data`, due `after` from now.
    pub(super) fn add(&self, user_data: u64, after: Duration) {
        let now = Instant::now();
        // Beyond what an Instant holds: as good as never.
        let at = now
            .checked_add(after)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        let mut st = lock(&self.state);
        st.due.insert((at, user_data), ());
        if st.armed.is_none_or(|a| at < a) {
            self.arm(&mut st, at, now);
        }
    }

    /// Sets the timerfd to fire at `at`.
    fn arm(&self, st: &mut State, at: Instant, now: Instant) {
        // 0 would disarm it: at least a nanosecond.
        let left = at
            .saturating_duration_since(now)
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: left.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec for the length of the call; no old value is asked.
        unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        st.armed = Some(at);
    }

    /// Fires every timer that is due (its completion: `ETIME`, a timer's success, as io_uring's)
    /// and sets the timerfd for the next.
    pub(super) fn fire(&self, shared: &Shared) {
        let mut st = lock(&self.state);
        let mut expirations: u64 = 0;
        // SAFETY: reads 8 bytes into `expirations`; the fd is non-blocking (EAGAIN if it has not
        // expired, which needs no handling).
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut expirations as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        let now = Instant::now();
        while let Some(entry) = st.due.first_entry() {
            let (at, user_data) = *entry.key();
            if at > now {
                break;
            }
            entry.remove();
            shared.push(user_data, -libc::ETIME);
        }
        st.armed = None;
        if let Some(&(at, _)) = st.due.keys().next() {
            self.arm(&mut st, at, now);
        }
    }

    /// Cancels the pending timers `pick` chooses (`ECANCELED`); returns how many.
    pub(super) fn cancel(&self, shared: &Shared, pick: impl Fn(u64) -> bool) -> usize {
        let mut st = lock(&self.state);
        let before = st.due.len();
        st.due.retain(|&(_, user_data), _| {
            if pick(user_data) {
                shared.push(user_data, -libc::ECANCELED);
                false
            } else {
                true
            }
        });
        // The timerfd may still fire for a cancelled timer: `fire` then finds nothing due.
        before - st.due.len()
    }
}
