//! Idle timeouts, the completion-port way: a sweep timer and cancellation.
//!
//! Every connection has a [`Watch`] in one registry ([`Watches`]): the id of its pending network
//! operation and the instant by which that operation must complete. A recv waiting for a request
//! must complete by the deadline set when the connection started waiting for that request (so a
//! client trickling bytes gains nothing); a send (of a response or one file chunk) must complete
//! within the idle timeout of its start, so a client that stops reading is cut off too.
//! One timer packet ([`CompletionPort::timer`](iocport::CompletionPort::timer)) is kept in flight;
//! the worker that gets it sweeps the registry and cancels
//! ([`CompletionPort::cancel`](iocport::CompletionPort::cancel)) every overdue operation, then
//! starts the next timer. A cancelled operation ends in its own packet (`ECANCELED`), and the
//! worker that gets that packet closes the connection, as for any failed recv or send. No thread
//! ever waits on a connection, and the cost is one timer packet per sweep interval, not one per
//! request.
//!
//! Arming a watch happens after the operation has started, so its packet may already be in another
//! worker's hands, which may have started (and armed) the connection's next operation. Each arming
//! therefore carries the connection's operation sequence number, and an older one never overwrites
//! a newer one. An id that is stale by the time the sweep cancels it is harmless: the port refuses
//! it (`NotFound`); operation ids carry a generation and are never reused for another operation.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use iocport::OpId;

/// What one connection is waiting for.
#[derive(Debug, Default)]
struct Armed {
    /// The sequence number of the operation armed last.
    seq: u64,
    /// The operation, until it is cancelled.
    op: Option<OpId>,
    /// When it becomes overdue.
    deadline: Option<Instant>,
}

/// One connection's entry in the registry.
#[derive(Debug, Default)]
pub(super) struct Watch {
    armed: Mutex<Armed>,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, Armed> {
        self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that operation `op`, the connection's `seq`-th, must complete by `deadline`, unless
    /// a later operation has been armed already.
    pub(super) fn arm(&self, seq: u64, op: OpId, deadline: Instant) {
        let mut armed = self.lock();
        if seq > armed.seq {
            *armed = Armed {
                seq,
                op: Some(op),
                deadline: Some(deadline),
            };
        }
    }
}

/// Slots of the registry, reused through a free list.
#[derive(Debug, Default)]
struct Slots {
    entries: Vec<Option<Arc<Watch>>>,
    free: Vec<usize>,
}

/// Every open connection's [`Watch`]. The registry lock is taken when a connection opens or closes
/// and by the sweep, never per request.
#[derive(Debug, Default)]
pub(super) struct Watches {
    slots: Mutex<Slots>,
}

impl Watches {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection: its slot (to [`remove`](Self::remove) it by) and its watch.
    pub(super) fn insert(&self) -> (usize, Arc<Watch>) {
        let watch = Arc::new(Watch::default());
        let mut slots = self.lock();
        let slot = match slots.free.pop() {
            Some(i) => {
                slots.entries[i] = Some(Arc::clone(&watch));
                i
            }
            None => {
                slots.entries.push(Some(Arc::clone(&watch)));
                slots.entries.len() - 1
            }
        };
        (slot, watch)
    }

    /// Unregisters a closed connection.
    pub(super) fn remove(&self, slot: usize) {
        let mut slots = self.lock();
        if let Some(entry) = slots.entries.get_mut(slot) {
            if entry.take().is_some() {
                slots.free.push(slot);
            }
        }
    }

    /// Appends to `out` the operations overdue at `now` and disarms them (each is cancelled once).
    pub(super) fn overdue(&self, now: Instant, out: &mut Vec<OpId>) {
        let slots = self.lock();
        for watch in slots.entries.iter().flatten() {
            let mut armed = watch.lock();
            if armed.deadline.is_some_and(|d| d <= now) {
                if let Some(op) = armed.op.take() {
                    out.push(op);
                }
                armed.deadline = None;
            }
        }
    }

    /// How many connections are open.
    pub(super) fn len(&self) -> usize {
        let slots = self.lock();
        slots.entries.len() - slots.free.len()
    }
}
