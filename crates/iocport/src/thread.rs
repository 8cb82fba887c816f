//! Which port the calling thread belongs to, and whether it counts as *active* there.
//!
//! NT keeps this in the thread object (`KTHREAD::Queue`); iocport keeps it in a thread-local. A thread
//! becomes associated with a port when a `get` on it returns a packet, and stays so until it exits or
//! calls `get` on another port. While associated it is either *active* (it counts against the port's
//! concurrency value), *idle* (waiting in `get`, or done), or *blocked* (inside [`blocking`]).
//!
//! The thread-local holds a strong reference to the port's core, so a thread that exits while active
//! can always give its slot back (its destructor calls [`Associated::release`]).

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::sync::thread_local;

/// What the thread-local needs from a port, without knowing its packet type.
pub(crate) trait Associated {
    /// A stable identity for the port, for comparing associations.
    fn id(&self) -> usize;
    /// The thread of [`mark`] `mark` stops counting as active: the active count drops, and a
    /// queued packet may be handed to a waiting thread now that a slot is free.
    fn release(&self, mark: usize);
    /// The thread counts as active again after a blocking section. The active count may exceed the
    /// concurrency value for a while; no new thread is released until it drops below again.
    fn reacquire(&self);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Idle,
    Active,
    /// Inside `depth` nested blocking sections; was active before the outermost one.
    Blocked(u32),
}

struct Association {
    port: Option<Box<dyn Associated>>,
    /// `port`'s [`Associated::id`], or 0: compared on every `get` without a virtual call.
    id: usize,
    role: Role,
    /// The thread's [`mark`], taken when the thread-local is set up: while the thread exits,
    /// loom's `thread::current` is gone.
    mark: usize,
}

impl Drop for Association {
    fn drop(&mut self) {
        if self.role == Role::Active {
            if let Some(port) = &self.port {
                port.release(self.mark);
            }
        }
    }
}

/// Everything iocport keeps per thread, in one thread-local so that its parts are torn down in a fixed
/// order when the thread exits: the association first (giving back an active slot), then the cached
/// waiter. (Loom drops separate thread-locals in an unspecified order.)
struct Local {
    association: RefCell<Association>,
    waiter: RefCell<Option<Box<dyn std::any::Any>>>,
}

thread_local! {
    static LOCAL: Local = Local {
        association: RefCell::new(Association { port: None, id: 0, role: Role::Idle, mark: mark() }),
        waiter: RefCell::new(None),
    };
}

/// This thread's number for picking one of a port's counter shards (callers reduce it modulo their
/// shard count). Threads are numbered round-robin in the order they first ask. A separate
/// thread-local without a destructor, so that it still works while `LOCAL` is being torn down (a thread
/// exiting while active releases its slot, and that may dispatch a packet).
#[cfg(not(loom))]
pub(crate) fn shard() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1));
        }
        s.get()
    })
}

/// Under loom every thread uses shard 0: a global counter would differ between executions.
#[cfg(loom)]
pub(crate) fn shard() -> usize {
    0
}

#[cfg(not(loom))]
std::thread_local! {
    /// Has no destructor, so it can be reached at any time, even while the thread's other
    /// thread-locals are being destroyed: its address tells this thread from the other live ones.
    static MARK: u8 = const { 0 };
}

/// A number that no other live thread has (the address of a thread-local), available even while
/// the thread exits: how a port tells whether the thread it is told about is its leader.
#[cfg(not(loom))]
pub(crate) fn mark() -> usize {
    MARK.with(|m| m as *const u8 as usize)
}

/// Under loom every model thread runs on one OS thread, so `MARK`'s address would be one for all:
/// the mark is the model thread's id instead (never 0, which the port reads as "nobody"). Not
/// available while the thread exits (see `Association::mark`).
#[cfg(loom)]
pub(crate) fn mark() -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    loom::thread::current().id().hash(&mut h);
    h.finish() as usize | 1
}

/// Runs `f` on this thread's cached waiter (see `port.rs`).
pub(crate) fn with_waiter<R>(f: impl FnOnce(&RefCell<Option<Box<dyn std::any::Any>>>) -> R) -> R {
    LOCAL.with(|l| f(&l.waiter))
}

/// Called when the thread enters `get` on port `id`. Returns `true` if the thread was active on that
/// port: the caller gives the slot back under its own lock. A slot held on another port is released here.
pub(crate) fn begin_get(id: usize) -> bool {
    let other = LOCAL.with(|l| {
        let a = &l.association;
        let mut a = a.borrow_mut();
        let was_active = a.role == Role::Active;
        a.role = Role::Idle;
        if a.id == id {
            return Err(was_active);
        }
        // A `get` on another port ends the old association.
        a.id = 0;
        Ok(a.port.take().filter(|_| was_active))
    });
    match other {
        Err(was_active) => was_active,
        Ok(old) => {
            if let Some(old) = old {
                old.release(mark());
            }
            false
        }
    }
}

/// Called when `get` on port `id` hands the thread a packet: the thread is now active there.
/// `make` builds the association the first time (one allocation per change of port, not per packet).
pub(crate) fn set_active(id: usize, make: impl FnOnce() -> Box<dyn Associated>) {
    LOCAL.with(|l| {
        let a = &l.association;
        let mut a = a.borrow_mut();
        if a.id != id {
            let port = make();
            debug_assert_eq!(port.id(), id);
            a.port = Some(port);
            a.id = id;
        }
        a.role = Role::Active;
    });
}

/// Runs `f` as a blocking section: while it runs, the calling thread does not count as active on its
/// port, so another thread may be released to run a queued packet. When `f` returns the thread counts
/// again, even if that briefly puts the port above its concurrency value.
///
/// NT does this automatically whenever an active thread blocks in the kernel. Linux gives user space no
/// such hook, so iocport asks the program to mark the places where a worker may block for long (a lock
/// held by another worker, a synchronous read, a call to a remote service). Outside a worker thread
/// (a thread that got no packet yet, or is not active) this simply runs `f`.
///
/// # Examples
///
/// ```
/// use iocport::CompletionPort;
///
/// let port = CompletionPort::new(1);
/// port.post(1, 0, ()).unwrap();
/// port.post(2, 0, ()).unwrap();
/// let _first = port.get(None).unwrap(); // this thread is now active: 1 of 1
/// // While we wait on something slow, the port may release another worker for packet 2.
/// let answer = iocport::blocking(|| 6 * 7);
/// assert_eq!(answer, 42);
/// ```
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    let _guard = enter_blocking();
    f()
}

/// Starts a blocking section that lasts until the returned guard is dropped. See [`blocking`].
pub fn enter_blocking() -> BlockingGuard {
    // `try_with`: in a thread's teardown (a thread-local or pthread key destructor that blocks)
    // the thread's state may be gone; such a thread is on no port, and the section counts nothing.
    let release = LOCAL.try_with(|l| {
        let a = &l.association;
        let mut a = a.borrow_mut();
        match a.role {
            Role::Idle => false,
            Role::Active => {
                a.role = Role::Blocked(1);
                if let Some(port) = &a.port {
                    port.release(mark());
                }
                true
            }
            Role::Blocked(depth) => {
                a.role = Role::Blocked(depth + 1);
                true
            }
        }
    });
    let release = release.unwrap_or(false);
    BlockingGuard {
        counted: release,
        _not_send: PhantomData,
    }
}

/// A blocking section; the thread counts as active on its port again when this is dropped.
///
/// Created by [`enter_blocking`]. It must be dropped on the thread that created it.
#[must_use = "the blocking section ends when the guard is dropped"]
pub struct BlockingGuard {
    counted: bool,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for BlockingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingGuard").finish_non_exhaustive()
    }
}

impl Drop for BlockingGuard {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let _ = LOCAL.try_with(|l| {
            let a = &l.association;
            let mut a = a.borrow_mut();
            match a.role {
                Role::Blocked(1) => {
                    a.role = Role::Active;
                    if let Some(port) = &a.port {
                        port.reacquire();
                    }
                }
                Role::Blocked(depth) => a.role = Role::Blocked(depth - 1),
                // The thread called `get` inside the section: its association started afresh.
                Role::Idle | Role::Active => {}
            }
        });
    }
}
