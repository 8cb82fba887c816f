//! The port's FIFO of queued packets: lock-free rings for the common case, with an overflow list
//! behind the port lock for bursts larger than every ring.
//!
//! Each ring is a `crossbeam_queue::ArrayQueue` (Vyukov's bounded MPMC queue with per-slot
//! stamps): a push or a pop is one CAS on a shared index and no allocation. The first holds 1,024
//! packets; when it is full the next, four times larger, is allocated and posts go there, up to six
//! levels (about 1.4 M packets). A 2,000,000-packet backlog measured 0.46x crossbeam-channel's
//! throughput through the locked overflow, and 1.6x once the rings could hold it (`bench port`,
//! 2x2). Levels are kept for reuse. When the last is full, the poster takes the port lock, appends to
//! the overflow `VecDeque` and raises `spilled`; while `spilled` is up, posts go to the overflow too,
//! so packets posted one after another never overtake each other. Getters empty the rings first
//! (they hold the older packets), then the overflow, and lower `spilled` when it is empty. Nothing
//! shrinks, so a port in a steady state allocates nothing.
//!
//! Under loom the ring is a `Mutex<VecDeque>` with room for one packet, so that the models exercise
//! the overflow path and treat the ring as the linearizable black box it is.

/// How many ring levels there are; level `i` holds `CAPACITY << (2 * i)` packets.
#[cfg(not(loom))]
const LEVELS: usize = 6;

#[cfg(not(loom))]
pub(crate) struct Ring<T> {
    /// Allocated one after the other, each when the one before is full; never freed before the
    /// port, so a steady state allocates nothing (like a `Vec`'s capacity).
    levels: [std::sync::OnceLock<crossbeam_queue::ArrayQueue<T>>; LEVELS],
    /// The highest level allocated: posts go there. It only grows.
    top: std::sync::atomic::AtomicUsize,
    /// Serialises growth.
    grow: std::sync::Mutex<()>,
}

#[cfg(not(loom))]
impl<T> Ring<T> {
    /// Packets the first level holds.
    pub(crate) const CAPACITY: usize = 1024;

    pub(crate) fn new() -> Ring<T> {
        let ring = Ring {
            levels: Default::default(),
            top: std::sync::atomic::AtomicUsize::new(0),
            grow: std::sync::Mutex::new(()),
        };
        let _ = ring.levels[0].set(crossbeam_queue::ArrayQueue::new(Self::CAPACITY));
        ring
    }

    fn level(&self, i: usize) -> Option<&crossbeam_queue::ArrayQueue<T>> {
        self.levels[i].get()
    }

    /// Queues `value` on the top level, growing a level when it is full; `Err` only when the last
    /// level is full.
    pub(crate) fn push(&self, mut value: T) -> Result<(), T> {
        use std::sync::atomic::Ordering;
        loop {
            let top = self.top.load(Ordering::Acquire);
            let level = self.level(top).expect("levels up to `top` are allocated");
            match level.push(value) {
                Ok(()) => return Ok(()),
                Err(back) => value = back,
            }
            if top + 1 == LEVELS {
                return Err(value);
            }
            let _grow = self.grow.lock().unwrap_or_else(|e| e.into_inner());
            if self.top.load(Ordering::Acquire) == top {
                let capacity = Self::CAPACITY << (2 * (top + 1));
                let _ = self.levels[top + 1].set(crossbeam_queue::ArrayQueue::new(capacity));
                self.top.store(top + 1, Ordering::Release);
            }
        }
    }

    /// Takes the oldest packet: lower levels hold older packets (a post only moves up a level once
    /// the one below is full; a post racing that move is concurrent with the posts above it, so
    /// either order is FIFO).
    pub(crate) fn pop(&self) -> Option<T> {
        let top = self.top.load(std::sync::atomic::Ordering::Acquire);
        if top == 0 {
            return self.levels[0].get()?.pop();
        }
        // Lower levels are usually drained: look (two loads) before trying (a fence when empty).
        (0..=top).find_map(|i| {
            let q = self.level(i)?;
            if i < top && q.is_empty() {
                return None;
            }
            q.pop()
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        let top = self.top.load(std::sync::atomic::Ordering::Acquire);
        (0..=top).all(|i| self.level(i).is_none_or(|q| q.is_empty()))
    }

    pub(crate) fn len(&self) -> usize {
        let top = self.top.load(std::sync::atomic::Ordering::Acquire);
        (0..=top)
            .map(|i| self.level(i).map_or(0, |q| q.len()))
            .sum()
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Ring;

    // Catches: a level that is not used, packets out of order across levels, a lost packet when a
    // level fills, a count that misses a level.
    #[test]
    fn grows_through_levels_in_order() {
        let ring = Ring::new();
        let n = Ring::<u32>::CAPACITY * (1 + 4 + 16) + 7;
        for i in 0..n as u32 {
            ring.push(i).unwrap();
        }
        assert_eq!(ring.len(), n);
        assert!(!ring.is_empty());
        for i in 0..n as u32 {
            assert_eq!(ring.pop(), Some(i));
        }
        assert_eq!(ring.pop(), None);
        assert!(ring.is_empty());
        // Grown levels are reused: posting again starts at the top level.
        ring.push(7).unwrap();
        assert_eq!((ring.len(), ring.pop()), (1, Some(7)));
    }

    // Catches: packets of a lower level overtaken by a higher one when pushes and pops interleave.
    #[test]
    fn interleaved_pushes_and_pops_stay_fifo() {
        let ring = Ring::new();
        let (mut next_in, mut next_out) = (0u32, 0u32);
        for round in 0..200 {
            for _ in 0..(round * 37) % 3000 {
                ring.push(next_in).unwrap();
                next_in += 1;
            }
            for _ in 0..(round * 53) % 2500 {
                match ring.pop() {
                    Some(v) => {
                        assert_eq!(v, next_out);
                        next_out += 1;
                    }
                    None => break,
                }
            }
        }
        while let Some(v) = ring.pop() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert_eq!(next_in, next_out);
    }
}
