//! The port's FIFO of queued packets: a bounded lock-free ring for the common case, with an overflow
//! list behind the port lock for bursts larger than the ring.
//!
//! The ring is `crossbeam_queue::ArrayQueue` (Vyukov's bounded MPMC queue with per-slot stamps): a push
//! or a pop is one CAS on a shared index and no allocation. When the ring is full, the poster takes the
//! port lock, appends to the overflow `VecDeque` and raises `spilled`; while `spilled` is up, posts go
//! to the overflow too, so packets posted one after another never overtake each other. Getters empty
//! the ring first (it holds the older packets), then the overflow, and lower `spilled` when it is
//! empty. Both parts only grow, never shrink, so a port in a steady state allocates nothing.
//!
//! Under loom the ring is a `Mutex<VecDeque>` with room for one packet, so that the models exercise
//! the overflow path and treat the ring as the linearizable black box it is.

#[cfg(not(loom))]
pub(crate) struct Ring<T>(crossbeam_queue::ArrayQueue<T>);

#[cfg(not(loom))]
impl<T> Ring<T> {
    /// Packets the ring holds before posts spill to the overflow list.
    pub(crate) const CAPACITY: usize = 1024;

    pub(crate) fn new() -> Ring<T> {
        Ring(crossbeam_queue::ArrayQueue::new(Self::CAPACITY))
    }

    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        self.0.push(value)
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.0.pop()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(loom)]
pub(crate) struct Ring<T>(loom::sync::Mutex<std::collections::VecDeque<T>>);

#[cfg(loom)]
impl<T> Ring<T> {
    pub(crate) const CAPACITY: usize = 1;

    pub(crate) fn new() -> Ring<T> {
        Ring(loom::sync::Mutex::new(std::collections::VecDeque::new()))
    }

    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        let mut q = self.0.lock().unwrap();
        if q.len() == Self::CAPACITY {
            return Err(value);
        }
        q.push_back(value);
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.0.lock().unwrap().pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().unwrap().is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}
