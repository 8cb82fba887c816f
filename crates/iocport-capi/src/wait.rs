//! Waitable objects and the waits on them: the signal state of events and threads, and the
//! `WaitForSingleObject`/`WaitForMultipleObjects` logic over signals and completion ports.
//!
//! Each signal (an event, or a thread's "has ended") has its own lock, holding whether it is
//! signalled and the waiters registered on it. A wait takes rounds: it checks its objects, each
//! under its lock, and either is satisfied (taking the signal of an auto-reset event) or
//! registers its [`Parker`] on every signal before that signal's lock is released, then sleeps.
//! `set` wakes every registered waiter, which then checks again: a signal set after a waiter
//! looked at it finds the waiter registered, so no wake-up is lost, and an auto-reset event's
//! signal goes to exactly one waiter, whichever takes it first.
//!
//! Wait-all locks every signal at once, in address order (so two wait-alls cannot deadlock), and
//! takes them all or none: an auto-reset event is reset only when every object is signalled.
//!
//! A completion port is signalled while it holds a packet (as on Windows). It keeps no waiter
//! list: a wait that includes one moves the kernel's completions into the port's queue and looks
//! at it every millisecond, and [`wake_port_waiters`] (called by `PostQueuedCompletionStatus`)
//! wakes such waits at once.
//!
//! The model checks at the end of this file run the signal/wait races under loom
//! (`RUSTFLAGS="--cfg loom" cargo test -p iocport-capi --lib wait`).

// Signals are shared as std's `Arc` also under loom: their reference counts are not part of the
// protocol being checked.
#[cfg(loom)]
use loom::sync::{Condvar, Mutex, MutexGuard};
use std::sync::Arc;
#[cfg(not(loom))]
use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::core::Port;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a waiting thread sleeps on: a flag and a condition variable, one per thread.
pub(crate) struct Parker {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    pub(crate) fn new() -> Parker {
        Parker {
            woken: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    /// Forgets a wake-up from an earlier round.
    fn reset(&self) {
        *lock(&self.woken) = false;
    }

    fn unpark(&self) {
        *lock(&self.woken) = true;
        self.cv.notify_one();
    }

    /// Sleeps until woken or until `until` (`None`: no limit).
    fn park(&self, until: Option<Instant>) {
        let mut woken = lock(&self.woken);
        while !*woken {
            match until {
                None => woken = self.cv.wait(woken).unwrap_or_else(|e| e.into_inner()),
                Some(t) => {
                    #[cfg(loom)]
                    {
                        let _ = t;
                        unreachable!("loom models wait without a deadline");
                    }
                    #[cfg(not(loom))]
                    {
                        let now = Instant::now();
                        if now >= t {
                            return;
                        }
                        woken = self
                            .cv
                            .wait_timeout(woken, t - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
        }
    }
}

struct State {
    manual: bool,
    signalled: bool,
    waiters: Vec<Arc<Parker>>,
}

/// The signal states of every event and thread, under one lock (NT's dispatcher lock has the
/// same role): a wait checks all its objects, takes their signals and registers on them in one
/// critical section, so wait-all is atomic without ordering locks.
pub(crate) struct Dispatch {
    table: Mutex<Table>,
}

struct Table {
    slots: Vec<Option<State>>,
    free: Vec<usize>,
}

impl Table {
    fn get(&mut self, key: usize) -> &mut State {
        self.slots[key]
            .as_mut()
            .expect("a live signal's slot is occupied")
    }
}

impl Dispatch {
    #[cfg(not(loom))]
    const fn new() -> Dispatch {
        Dispatch {
            table: Mutex::new(Table {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    #[cfg(loom)]
    fn new() -> Dispatch {
        Dispatch {
            table: Mutex::new(Table {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }
}

#[cfg(not(loom))]
static DISPATCH: Dispatch = Dispatch::new();

/// The signal state of an event (manual or auto-reset) or of a thread (manual: set once, when
/// it ends).
pub(crate) struct Signal {
    dispatch: &'static Dispatch,
    key: usize,
}

impl Signal {
    #[cfg(not(loom))]
    pub(crate) fn new(manual: bool, signalled: bool) -> Signal {
        Signal::within(&DISPATCH, manual, signalled)
    }

    /// Under loom, each signal made outside a model's own dispatch gets a dispatch of its own
    /// (only the models in this file wait under loom).
    #[cfg(loom)]
    pub(crate) fn new(manual: bool, signalled: bool) -> Signal {
        Signal::within(Box::leak(Box::new(Dispatch::new())), manual, signalled)
    }

    fn within(dispatch: &'static Dispatch, manual: bool, signalled: bool) -> Signal {
        let state = State {
            manual,
            signalled,
            waiters: Vec::new(),
        };
        let mut t = lock(&dispatch.table);
        let key = match t.free.pop() {
            Some(k) => {
                t.slots[k] = Some(state);
                k
            }
            None => {
                t.slots.push(Some(state));
                t.slots.len() - 1
            }
        };
        Signal { dispatch, key }
    }

    /// Signals it and wakes every waiter registered on it (they check again).
    pub(crate) fn set(&self) {
        let mut t = lock(&self.dispatch.table);
        let st = t.get(self.key);
        st.signalled = true;
        for w in &st.waiters {
            w.unpark();
        }
    }

    pub(crate) fn reset(&self) {
        lock(&self.dispatch.table).get(self.key).signalled = false;
    }

    /// Resets it and wakes its waiters without signalling it: an operation with this event has
    /// begun, and they must now move completions along while they wait (see `EVENT_IO`).
    pub(crate) fn begin_io(&self) {
        event_io_begin();
        let mut t = lock(&self.dispatch.table);
        let st = t.get(self.key);
        st.signalled = false;
        for w in &st.waiters {
            w.unpark();
        }
    }

    #[cfg(any(test, loom))]
    pub(crate) fn is_set(&self) -> bool {
        lock(&self.dispatch.table).get(self.key).signalled
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        let mut t = lock(&self.dispatch.table);
        t.slots[self.key] = None;
        t.free.push(self.key);
    }
}

/// Takes the signal if it is set (resetting an auto-reset event); whether it was.
fn take(st: &mut State) -> bool {
    if st.signalled && !st.manual {
        st.signalled = false;
        return true;
    }
    st.signalled
}

/// One object of a wait.
#[derive(Clone)]
pub(crate) enum Target {
    Signal(Arc<Signal>),
    /// Signalled while it holds a packet.
    Port(Port),
    /// Never signalled while the waiter runs (the calling thread's own pseudo-handle).
    Never,
}

/// How often a wait that includes a port looks at it.
const PORT_SLICE: Duration = Duration::from_millis(1);

/// Operations in flight whose `OVERLAPPED.hEvent` names an event.
static EVENT_IO: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// An operation with an event has started (see [`Signal::begin_io`]).
fn event_io_begin() {
    EVENT_IO.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// An operation with an event has completed (its completion was reaped).
pub(crate) fn event_io_end() {
    EVENT_IO.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
}

/// The event an `OVERLAPPED.hEvent` names (its low bit, "no packet", masked off), if any.
pub(crate) fn event_of_overlapped(h: crate::types::HANDLE) -> Option<Arc<Signal>> {
    let h = (h as usize & !1) as crate::types::HANDLE;
    if !crate::handles::is_object_handle(h) {
        return None;
    }
    crate::handles::event(h)
}

/// Moves every port's completions into its queue, so that operations whose events a thread waits
/// for complete even when no thread waits on their port (on Windows the kernel completes them).
/// Operations in stages (`AcceptEx` with data, `ConnectEx` with data, a stream send taken in
/// parts) go on from the thread that dequeues their first stage, so their events still need a
/// thread in GetQueuedCompletionStatus (docs/porting.md, section 3.6).
fn drive_ports() {
    for p in crate::handles::ports() {
        p.poll_completions();
    }
}

fn port_ready(port: &Port) -> bool {
    port.poll_completions();
    port.stats().queued > 0
}

/// Waits registered on ports (for [`wake_port_waiters`]).
#[cfg(not(loom))]
static PORT_WAITING: AtomicUsize = AtomicUsize::new(0);
#[cfg(not(loom))]
static PORT_WAITERS: std::sync::Mutex<Vec<Arc<Parker>>> = std::sync::Mutex::new(Vec::new());

/// Wakes the waits that include a port, after a packet was posted to one.
#[cfg(loom)]
pub(crate) fn wake_port_waiters() {}

/// Wakes the waits that include a port, after a packet was posted to one.
#[cfg(not(loom))]
pub(crate) fn wake_port_waiters() {
    // Pairs with the fence in `PortRegistration::new`: either this sees the registration, or
    // the waiter's check sees the packet.
    fence(Ordering::SeqCst);
    if PORT_WAITING.load(Ordering::Relaxed) == 0 {
        return;
    }
    for w in PORT_WAITERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        w.unpark();
    }
}

/// A wait's registration for posts to ports, for as long as it waits.
struct PortRegistration {
    #[cfg(not(loom))]
    me: Option<Arc<Parker>>,
}

impl PortRegistration {
    fn new(me: &Arc<Parker>, targets: &[Target]) -> PortRegistration {
        #[cfg(not(loom))]
        {
            if !targets.iter().any(|t| matches!(t, Target::Port(_))) {
                return PortRegistration { me: None };
            }
            PORT_WAITERS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(me.clone());
            PORT_WAITING.fetch_add(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            PortRegistration {
                me: Some(me.clone()),
            }
        }
        #[cfg(loom)]
        {
            let _ = (me, targets);
            PortRegistration {}
        }
    }
}

impl Drop for PortRegistration {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        if let Some(me) = self.me.take() {
            let mut all = PORT_WAITERS.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = all.iter().position(|w| Arc::ptr_eq(w, &me)) {
                all.swap_remove(i);
            }
            PORT_WAITING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Waits until one of `targets` (`all`: every one) is signalled or `deadline` passes; `Some(i)`
/// gives the satisfied wait's index (the lowest signalled one for wait-any, 0 for wait-all),
/// `None` a timeout. `me` is the calling thread's parker. Every signal among `targets` belongs to
/// the same [`Dispatch`].
pub(crate) fn wait(
    me: &Arc<Parker>,
    targets: &[Target],
    all: bool,
    deadline: Option<Instant>,
) -> Option<usize> {
    let _ports = PortRegistration::new(me, targets);
    let has_port = targets.iter().any(|t| matches!(t, Target::Port(_)));
    let dispatch = targets.iter().find_map(|t| match t {
        Target::Signal(s) => Some(s.dispatch),
        _ => None,
    });
    let mut ready = vec![false; targets.len()];
    loop {
        me.reset();
        let drive = dispatch.is_some() && EVENT_IO.load(std::sync::atomic::Ordering::SeqCst) > 0;
        if drive {
            drive_ports();
        }
        // Ports first, outside the lock: looking at one moves its completions into its queue.
        for (r, t) in ready.iter_mut().zip(targets) {
            *r = matches!(t, Target::Port(p) if port_ready(p));
        }
        let done = match dispatch {
            Some(d) => {
                let mut t = lock(&d.table);
                if all {
                    check_all(me, &mut t, targets, &ready)
                } else {
                    check_any(me, &mut t, targets, &ready)
                }
            }
            None if all => ready.iter().all(|&r| r).then_some(0),
            None => ready.iter().position(|&r| r),
        };
        if done.is_some() {
            return done;
        }
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        if !expired {
            // Read again after registering: an operation with an event that began meanwhile
            // either found this wait registered (and nudged it) or is counted here.
            let drive_now =
                dispatch.is_some() && EVENT_IO.load(std::sync::atomic::Ordering::SeqCst) > 0;
            let until = if has_port || drive || drive_now {
                let slice = Instant::now() + PORT_SLICE;
                Some(deadline.map_or(slice, |d| d.min(slice)))
            } else {
                deadline
            };
            // A worker that blocks here no longer counts against its port's concurrency value,
            // as NT releases another thread when an active one waits.
            #[cfg(not(loom))]
            let _blocked = iocport::enter_blocking();
            me.park(until);
        }
        if let Some(d) = dispatch {
            deregister(me, &mut lock(&d.table), targets);
        }
        if expired {
            return None;
        }
    }
}

fn deregister(me: &Arc<Parker>, t: &mut Table, targets: &[Target]) {
    for target in targets {
        if let Target::Signal(s) = target {
            let st = t.get(s.key);
            if let Some(i) = st.waiters.iter().position(|w| Arc::ptr_eq(w, me)) {
                st.waiters.swap_remove(i);
            }
        }
    }
}

/// One round of wait-any: the first signalled object (taking an auto-reset event's signal), or
/// `None` with `me` registered on every signal.
fn check_any(me: &Arc<Parker>, t: &mut Table, targets: &[Target], ready: &[bool]) -> Option<usize> {
    for (i, target) in targets.iter().enumerate() {
        let hit = match target {
            Target::Signal(s) => take(t.get(s.key)),
            Target::Port(_) => ready[i],
            Target::Never => false,
        };
        if hit {
            return Some(i);
        }
    }
    for target in targets {
        if let Target::Signal(s) = target {
            t.get(s.key).waiters.push(me.clone());
        }
    }
    None
}

/// One round of wait-all: `Some(0)` with every signal taken if all are signalled, else `None`
/// with `me` registered on every signal.
fn check_all(me: &Arc<Parker>, t: &mut Table, targets: &[Target], ready: &[bool]) -> Option<usize> {
    let all = targets.iter().enumerate().all(|(i, target)| match target {
        Target::Signal(s) => t.get(s.key).signalled,
        Target::Port(_) => ready[i],
        Target::Never => false,
    });
    for target in targets {
        if let Target::Signal(s) = target {
            let st = t.get(s.key);
            if all {
                take(st);
            } else {
                st.waiters.push(me.clone());
            }
        }
    }
    all.then_some(0)
}

#[cfg(not(loom))]
thread_local! {
    static PARKER: Arc<Parker> = Arc::new(Parker::new());
}

/// The calling thread's parker (a fresh one in the thread's teardown, once the thread-local is
/// gone: a wait in a thread-local or pthread key destructor still works).
#[cfg(not(loom))]
pub(crate) fn my_parker() -> Arc<Parker> {
    PARKER
        .try_with(|p| p.clone())
        .unwrap_or_else(|_| Arc::new(Parker::new()))
}

/// A parker for the calling thread (loom's primitives cannot live in a thread-local).
#[cfg(loom)]
pub(crate) fn my_parker() -> Arc<Parker> {
    Arc::new(Parker::new())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::thread;

    fn sig(manual: bool, set: bool) -> Arc<Signal> {
        Arc::new(Signal::new(manual, set))
    }

    #[test]
    fn wait_any_gives_the_lowest_signalled_index_and_takes_auto_reset_signals() {
        let me = my_parker();
        let (a, b, c) = (sig(false, false), sig(false, true), sig(true, true));
        let t = [
            Target::Signal(a.clone()),
            Target::Signal(b.clone()),
            Target::Signal(c.clone()),
        ];
        assert_eq!(wait(&me, &t, false, Some(Instant::now())), Some(1));
        assert!(!b.is_set(), "an auto-reset event is taken");
        assert_eq!(wait(&me, &t, false, Some(Instant::now())), Some(2));
        assert!(c.is_set(), "a manual-reset event stays set");
        for s in [&a, &b, &c] {
            assert!(
                lock(&DISPATCH.table).get(s.key).waiters.is_empty(),
                "no registration is left"
            );
        }
    }

    #[test]
    fn wait_all_takes_all_or_nothing() {
        let me = my_parker();
        let (a, b) = (sig(false, true), sig(false, false));
        let t = [Target::Signal(a.clone()), Target::Signal(b.clone())];
        let start = Instant::now();
        assert_eq!(
            wait(&me, &t, true, Some(start + Duration::from_millis(20))),
            None
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(a.is_set(), "a timed-out wait-all takes nothing");
        b.set();
        assert_eq!(wait(&me, &t, true, None), Some(0));
        assert!(!a.is_set() && !b.is_set());
    }

    #[test]
    fn a_set_from_another_thread_wakes_the_waiter() {
        let me = my_parker();
        let a = sig(false, false);
        let setter = {
            let a = a.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(10));
                a.set();
            })
        };
        let t = [Target::Never, Target::Signal(a.clone())];
        assert_eq!(
            wait(
                &me,
                &t,
                false,
                Some(Instant::now() + Duration::from_secs(10))
            ),
            Some(1)
        );
        setter.join().unwrap();
    }
}

/// Every interleaving of sets against waits: no wake-up is lost (loom reports a deadlock if a
/// waiter sleeps forever), an auto-reset signal goes to one waiter, and wait-all takes all
/// signals at once.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::thread;

    /// A signal in a dispatch of the model's own (loom's objects live in one execution).
    fn signal(d: &'static Dispatch, manual: bool) -> Arc<Signal> {
        Arc::new(Signal::within(d, manual, false))
    }

    fn dispatch() -> &'static Dispatch {
        Box::leak(Box::new(Dispatch::new()))
    }

    #[test]
    fn wait_any_against_a_set() {
        loom::model(|| {
            let d = dispatch();
            let (a, b) = (signal(d, false), signal(d, true));
            let setter = {
                let b = b.clone();
                thread::spawn(move || b.set())
            };
            let me = Arc::new(Parker::new());
            let t = [Target::Signal(a.clone()), Target::Signal(b.clone())];
            assert_eq!(wait(&me, &t, false, None), Some(1));
            setter.join().unwrap();
            assert!(b.is_set() && !a.is_set());
        });
    }

    #[test]
    fn two_waiters_two_sets_of_one_auto_reset_event() {
        loom::model(|| {
            let e = signal(dispatch(), false);
            // How many waits returned, and a condition variable to wait for that on.
            let woken = Arc::new((Mutex::new(0usize), Condvar::new()));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let (e, woken) = (e.clone(), woken.clone());
                    thread::spawn(move || {
                        let me = Arc::new(Parker::new());
                        assert_eq!(wait(&me, &[Target::Signal(e)], false, None), Some(0));
                        *lock(&woken.0) += 1;
                        woken.1.notify_one();
                    })
                })
                .collect();
            // One set releases one waiter (not both: the second set is needed for the other).
            e.set();
            {
                let mut n = lock(&woken.0);
                while *n == 0 {
                    n = woken.1.wait(n).unwrap();
                }
            }
            e.set();
            for w in waiters {
                w.join().unwrap();
            }
            assert_eq!(*lock(&woken.0), 2);
            assert!(!e.is_set(), "each set was taken by one waiter");
        });
    }

    #[test]
    fn wait_all_against_two_setters() {
        loom::model(|| {
            let d = dispatch();
            let (a, b) = (signal(d, false), signal(d, true));
            let ta = {
                let a = a.clone();
                thread::spawn(move || a.set())
            };
            let tb = {
                let b = b.clone();
                thread::spawn(move || b.set())
            };
            let me = Arc::new(Parker::new());
            let t = [Target::Signal(a.clone()), Target::Signal(b.clone())];
            assert_eq!(wait(&me, &t, true, None), Some(0));
            ta.join().unwrap();
            tb.join().unwrap();
            assert!(!a.is_set(), "wait-all took the auto-reset event");
            assert!(b.is_set(), "and left the manual-reset one set");
        });
    }
}
