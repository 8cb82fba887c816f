//! The operations in flight on one associated fd, for `CancelIo`, `CancelIoEx` and `closesocket`.
//!
//! An operation is recorded before it is handed to the port (`begin`) and gets its id once the
//! port has it (`started`); its completion takes it out (`forget`). A cancel or a close can come at
//! any point in between, from any thread: one that comes before the id is known marks the entry,
//! and `started` then hands the id back for cancelling, so no operation escapes a cancel that
//! found it. A close also makes every later `begin` fail, so no operation starts on a closed fd.
//!
//! An operation of several stages (`TransmitFile`) keeps its entry between them: the end of a
//! stage `pause`s it (no id), and the next stage `resume`s it under a new sequence number, unless
//! a cancel or a close came meanwhile. A cancel is remembered for the operation's whole life, so
//! one that comes while no stage is in the kernel (or as one completes anyway) stops the next.
//! The model checks at the end of this file run these races under loom
//! (`RUSTFLAGS="--cfg loom" cargo test -p iocport-capi --lib inflight`).

#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(not(loom))]
use std::sync::Mutex;

/// The operations in flight on one fd; `Id` is what cancels one (the port's operation id).
pub(crate) struct Inflight<Id> {
    state: Mutex<State<Id>>,
}

struct State<Id> {
    /// The fd is being closed: nothing begins any more.
    closing: bool,
    ops: Vec<Entry<Id>>,
}

struct Entry<Id> {
    seq: u64,
    /// The caller's OVERLAPPED (CancelIoEx matches on it).
    ov: usize,
    /// Known once started.
    id: Option<Id>,
    /// The thread that started it (CancelIo matches on it).
    thread: u64,
    /// A cancel (or a close) found the operation: an id not known yet is cancelled by `started`,
    /// and a next stage does not start.
    cancel: bool,
}

impl<Id: Copy> Inflight<Id> {
    pub(crate) fn new() -> Inflight<Id> {
        Inflight {
            state: Mutex::new(State {
                closing: false,
                ops: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> impl std::ops::DerefMut<Target = State<Id>> + '_ {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records operation `seq` with `ov`, started by `thread`; `false` if the fd is being closed
    /// (the operation must not start).
    pub(crate) fn begin(&self, seq: u64, ov: usize, thread: u64) -> bool {
        let mut st = self.lock();
        if st.closing {
            return false;
        }
        st.ops.push(Entry {
            seq,
            ov,
            id: None,
            thread,
            cancel: false,
        });
        true
    }

    /// Operation `seq` is in flight as `id`: `Some(id)` if a cancel came meanwhile, for the caller
    /// to cancel it now.
    pub(crate) fn started(&self, seq: u64, id: Id) -> Option<Id> {
        let mut st = self.lock();
        let e = st.ops.iter_mut().find(|e| e.seq == seq)?;
        e.id = Some(id);
        e.cancel.then_some(id)
    }

    /// Operation `seq` is over (completed, or it did not start).
    pub(crate) fn forget(&self, seq: u64) {
        let mut st = self.lock();
        if let Some(i) = st.ops.iter().position(|e| e.seq == seq) {
            st.ops.swap_remove(i);
        }
    }

    /// Finds the operations started with `ov` (any if `None`) by `thread` (any if `None`): whether
    /// there is one, and the ids to cancel now (the others are cancelled by `started`).
    pub(crate) fn cancel(&self, ov: Option<usize>, thread: Option<u64>) -> (bool, Vec<Id>) {
        let mut st = self.lock();
        let mut ids = Vec::new();
        let mut found = false;
        for e in st.ops.iter_mut() {
            if ov.is_some_and(|o| o != e.ov) || thread.is_some_and(|t| t != e.thread) {
                continue;
            }
            found = true;
            e.cancel = true;
            ids.extend(e.id);
        }
        (found, ids)
    }

    /// The fd is being closed: nothing begins from now on; returns the ids to cancel now (those
    /// still being started are cancelled by `started`).
    pub(crate) fn close(&self) -> Vec<Id> {
        let mut st = self.lock();
        st.closing = true;
        let mut ids = Vec::new();
        for e in st.ops.iter_mut() {
            e.cancel = true;
            ids.extend(e.id);
        }
        ids
    }

    /// A stage of operation `seq` is over and another follows: the entry stays, without an id,
    /// so that a cancel meanwhile finds the operation and is kept for `resume`.
    pub(crate) fn pause(&self, seq: u64) {
        let mut st = self.lock();
        if let Some(e) = st.ops.iter_mut().find(|e| e.seq == seq) {
            e.id = None;
        }
    }

    /// The next stage of the paused operation `seq` is about to start, as `new` (its `started`
    /// then names `new`; a late `started` of the stage before finds nothing): `false` if a cancel
    /// or a close came (the stage must not start; the entry stays until `forget`).
    pub(crate) fn resume(&self, seq: u64, new: u64) -> bool {
        let mut st = self.lock();
        let Some(e) = st.ops.iter_mut().find(|e| e.seq == seq) else {
            return false;
        };
        if e.cancel {
            return false;
        }
        e.seq = new;
        e.id = None;
        true
    }

    /// How many operations are recorded.
    #[cfg(any(test, loom))]
    fn len(&self) -> usize {
        self.lock().ops.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_before_the_id_is_known_is_handed_back_by_started() {
        let f = Inflight::<u32>::new();
        assert!(f.begin(1, 0x10, 7));
        assert_eq!(f.cancel(Some(0x10), None), (true, vec![]));
        assert_eq!(f.started(1, 99), Some(99));
        assert_eq!(f.cancel(Some(0x10), None), (true, vec![99]));
        assert_eq!(f.cancel(Some(0x20), None), (false, vec![]));
        assert_eq!(f.cancel(None, Some(8)), (false, vec![]));
        f.forget(1);
        assert_eq!(f.cancel(None, None), (false, vec![]));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn close_refuses_new_operations_and_cancels_the_rest() {
        let f = Inflight::<u32>::new();
        assert!(f.begin(1, 0x10, 7));
        assert!(f.begin(2, 0x20, 7));
        assert_eq!(f.started(1, 11), None);
        assert_eq!(f.close(), vec![11]);
        assert!(!f.begin(3, 0x30, 7));
        assert_eq!(f.started(2, 22), Some(22));
    }

    #[test]
    fn a_cancel_between_stages_stops_the_next() {
        let f = Inflight::<u32>::new();
        assert!(f.begin(1, 0x10, 7));
        assert_eq!(f.started(1, 11), None);
        f.pause(1);
        assert!(f.resume(1, 2));
        // A late `started` of the first stage finds nothing.
        assert_eq!(f.started(1, 11), None);
        assert_eq!(f.started(2, 22), None);
        f.pause(2);
        assert_eq!(f.cancel(Some(0x10), None), (true, vec![]));
        assert!(!f.resume(2, 3));
        f.forget(2);
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn a_cancel_of_a_stage_that_completes_anyway_stops_the_next() {
        let f = Inflight::<u32>::new();
        assert!(f.begin(1, 0x10, 7));
        assert_eq!(f.started(1, 11), None);
        assert_eq!(f.cancel(None, Some(7)), (true, vec![11]));
        f.pause(1);
        assert!(!f.resume(1, 2));
        assert!(f.begin(5, 0x20, 7));
        f.pause(5);
        assert_eq!(f.close(), Vec::<u32>::new());
        assert!(!f.resume(5, 6));
    }

    #[test]
    fn an_operation_that_completes_before_started_leaves_nothing() {
        let f = Inflight::<u32>::new();
        assert!(f.begin(1, 0x10, 7));
        f.forget(1);
        assert_eq!(f.started(1, 11), None);
        assert_eq!(f.len(), 0);
    }
}

/// Every interleaving of an operation being started against a close, a cancel and its own
/// completion: an operation that began is cancelled exactly once, by whichever side learns both
/// that it must be and its id; nothing is left recorded.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    /// One thread starts operation 1 (id 7); another runs `other`, which returns the ids it
    /// cancels. Returns whether the operation began and every id cancelled.
    fn race(
        other: impl Fn(&Inflight<u32>) -> (bool, Vec<u32>) + Send + Sync + 'static,
    ) -> (bool, bool, Vec<u32>) {
        let f = Arc::new(Inflight::<u32>::new());
        let cancelled = Arc::new(Mutex::new(Vec::new()));
        let t = {
            let (f, cancelled) = (f.clone(), cancelled.clone());
            thread::spawn(move || {
                if !f.begin(1, 0x10, 1) {
                    return false;
                }
                // The port has it now, as id 7.
                if let Some(id) = f.started(1, 7) {
                    cancelled.lock().unwrap().push(id);
                }
                true
            })
        };
        let (found, ids) = other(&f);
        cancelled.lock().unwrap().extend(ids);
        let began = t.join().unwrap();
        let ids = cancelled.lock().unwrap().clone();
        (began, found, ids)
    }

    #[test]
    fn close_against_start() {
        loom::model(|| {
            let (began, _, ids) = race(|f| (true, f.close()));
            if began {
                assert_eq!(ids, vec![7], "a started operation is cancelled once");
            } else {
                assert!(ids.is_empty());
            }
        });
    }

    #[test]
    fn cancel_against_start() {
        loom::model(|| {
            let (began, found, ids) = race(|f| f.cancel(Some(0x10), None));
            assert!(began);
            if found {
                assert_eq!(ids, vec![7], "a found operation is cancelled once");
            } else {
                assert!(ids.is_empty());
            }
        });
    }

    #[test]
    fn completion_against_start() {
        loom::model(|| {
            let f = Arc::new(Inflight::<u32>::new());
            assert!(f.begin(1, 0x10, 1));
            let t = {
                let f = f.clone();
                thread::spawn(move || f.forget(1))
            };
            assert_eq!(f.started(1, 7), None);
            t.join().unwrap();
            assert_eq!(f.len(), 0, "nothing is left recorded");
        });
    }
}
