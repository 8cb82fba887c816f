//! The port's FIFO of queued packets: lock-free rings for the common case, with an overflow list
//! behind the port lock for bursts larger than every ring.
//!
//! Each ring level is a `crossbeam_queue::ArrayQueue` (Vyukov's bounded MPMC queue with per-slot
//! stamps): a push or a pop is one CAS on a shared index and no allocation. The first holds 1,024
//! packets; when it is full the next, four times larger, is added and posts go there, up to six
//! levels (about 1.4 M packets). A 2,000,000-packet backlog measured 0.46x crossbeam-channel's
//! throughput through the locked overflow, and 1.6x once the rings could hold it (`bench port`,
//! 2x2). Levels are kept for reuse. When the last is full, the poster takes the port lock, appends to
//! the overflow `VecDeque` and raises `spilled`; while `spilled` is up, posts go to the overflow too,
//! so packets posted one after another never overtake each other. Getters empty the rings first
//! (they hold the older packets), then the overflow, and lower `spilled` when it is empty. Nothing
//! shrinks, so a port in a steady state allocates nothing.
//!
//! # Why growing is sealed
//!
//! Pops take from the lowest level that is not empty, so FIFO needs every push to a level to be done
//! before the first push to the level above. A push reads `top`, then pushes to that level; a poster
//! that read `top` just before another thread added a level would otherwise push below packets that
//! are already above (consumers drain the lower level meanwhile, so it has room), and a getter that
//! had found the lower level empty a moment before takes the poster's next packet first. So
//! [`Ring::push`] never grows: it reports [`Full::Grow`], and the port adds the level with
//! [`Ring::grow`] only once no push is under way (the port's posts already count themselves in a
//! word they update anyway; see `Inner::grow` in `port.rs`). Then every level below `top` only
//! drains, and a getter that reads `top` and finds a lower level empty knows it stays empty.
//!
//! Under loom a level is a `Mutex<VecDeque>` with room for one packet and there are two levels, so
//! that the models exercise growth and the overflow path with a handful of packets.

#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering};

/// How many ring levels there are.
#[cfg(not(loom))]
const LEVELS: usize = 6;
#[cfg(loom)]
const LEVELS: usize = 2;

/// Each level holds `1 << GROWTH` times as many packets as the one below.
#[cfg(not(loom))]
const GROWTH: u32 = 2;
#[cfg(loom)]
const GROWTH: u32 = 0;

#[cfg(not(loom))]
type Level<T> = crossbeam_queue::ArrayQueue<T>;

/// A bounded FIFO with the `ArrayQueue` methods the ring uses, made of loom primitives.
#[cfg(loom)]
struct Level<T> {
    queue: loom::sync::Mutex<std::collections::VecDeque<T>>,
    capacity: usize,
}

#[cfg(loom)]
impl<T> Level<T> {
    fn new(capacity: usize) -> Level<T> {
        Level {
            queue: loom::sync::Mutex::new(std::collections::VecDeque::new()),
            capacity,
        }
    }

    fn push(&self, value: T) -> Result<(), T> {
        let mut q = self.queue.lock().unwrap();
        if q.len() == self.capacity {
            return Err(value);
        }
        q.push_back(value);
        Ok(())
    }

    fn pop(&self) -> Option<T> {
        self.queue.lock().unwrap().pop_front()
    }

    fn is_empty(&self) -> bool {
        self.queue.lock().unwrap().is_empty()
    }

    fn len(&self) -> usize {
        self.queue.lock().unwrap().len()
    }
}

/// Why [`Ring::push`] handed a value back.
pub(crate) enum Full<T> {
    /// Level `.1` (the top) is full and a level can be added above it: see [`Ring::grow`].
    Grow(T, usize),
    /// Every level is allocated and the last is full.
    Last(T),
}

impl<T> Full<T> {
    pub(crate) fn into_inner(self) -> T {
        match self {
            Full::Grow(value, _) | Full::Last(value) => value,
        }
    }
}

pub(crate) struct Ring<T> {
    /// Allocated one after the other, each when the one before is full; never freed before the
    /// port, so a steady state allocates nothing (like a `Vec`'s capacity).
    levels: [std::sync::OnceLock<Level<T>>; LEVELS],
    /// The highest level allocated: pushes go there. It only grows.
    top: AtomicUsize,
    /// Packets the first level holds.
    first: usize,
}

impl<T> Ring<T> {
    /// Packets the first level holds.
    #[cfg(not(loom))]
    pub(crate) const CAPACITY: usize = 1024;
    #[cfg(loom)]
    pub(crate) const CAPACITY: usize = 1;

    pub(crate) fn new() -> Ring<T> {
        Self::with_first(Self::CAPACITY)
    }

    /// A ring whose first level holds `first` packets (tests use tiny ones).
    pub(crate) fn with_first(first: usize) -> Ring<T> {
        let ring = Ring {
            levels: Default::default(),
            top: AtomicUsize::new(0),
            first,
        };
        let _ = ring.levels[0].set(Level::new(first));
        ring
    }

    fn level(&self, i: usize) -> Option<&Level<T>> {
        self.levels[i].get()
    }

    /// Queues `value` on the top level.
    #[inline]
    pub(crate) fn push(&self, value: T) -> Result<(), Full<T>> {
        let top = self.top.load(Ordering::Acquire);
        let level = self.level(top).expect("levels up to `top` are allocated");
        level.push(value).map_err(|value| {
            if top + 1 == LEVELS {
                Full::Last(value)
            } else {
                Full::Grow(value, top)
            }
        })
    }

    /// Adds the level above `top` unless that was done already.
    ///
    /// The caller must make sure that no [`push`](Self::push) is under way, and that none starts
    /// until this returns (see the module docs); `grow` calls themselves must be serialised.
    pub(crate) fn grow(&self, top: usize) {
        if self.top.load(Ordering::Acquire) != top || top + 1 >= LEVELS {
            return;
        }
        let capacity = self.first << (GROWTH as usize * (top + 1));
        let _ = self.levels[top + 1].set(Level::new(capacity));
        self.top.store(top + 1, Ordering::Release);
    }

    /// Takes the oldest packet: lower levels hold older packets, and once `top` is above a level
    /// nothing is pushed to it any more.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        let top = self.top.load(Ordering::Acquire);
        if top == 0 {
            return self.level(0)?.pop();
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
        let top = self.top.load(Ordering::Acquire);
        (0..=top).all(|i| self.level(i).is_none_or(|q| q.is_empty()))
    }

    pub(crate) fn len(&self) -> usize {
        let top = self.top.load(Ordering::Acquire);
        (0..=top)
            .map(|i| self.level(i).map_or(0, |q| q.len()))
            .sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Full, Ring};

    /// Pushes, growing as the port does (single-threaded, so no push is ever under way).
    fn push(ring: &Ring<u32>, value: u32) -> Result<(), u32> {
        match ring.push(value) {
            Ok(()) => Ok(()),
            Err(Full::Grow(value, top)) => {
                ring.grow(top);
                ring.push(value).map_err(Full::into_inner)
            }
            Err(Full::Last(value)) => Err(value),
        }
    }

    // Catches: a level that is not used, packets out of order across levels, a lost packet when a
    // level fills, a count that misses a level.
    #[test]
    fn grows_through_levels_in_order() {
        let ring = Ring::new();
        let n = Ring::<u32>::CAPACITY * (1 + 4 + 16) + 7;
        for i in 0..n as u32 {
            push(&ring, i).unwrap();
        }
        assert_eq!(ring.len(), n);
        assert!(!ring.is_empty());
        for i in 0..n as u32 {
            assert_eq!(ring.pop(), Some(i));
        }
        assert_eq!(ring.pop(), None);
        assert!(ring.is_empty());
        // Grown levels are reused: posting again starts at the top level.
        push(&ring, 7).unwrap();
        assert_eq!((ring.len(), ring.pop()), (1, Some(7)));
    }

    // Catches: growth that does not stop at the last level, or a last level that is not full.
    #[test]
    fn last_level_full_hands_back() {
        let ring = Ring::with_first(1);
        let total = 1 + 4 + 16 + 64 + 256 + 1024;
        for i in 0..total {
            push(&ring, i).unwrap();
        }
        assert_eq!(push(&ring, total), Err(total));
        assert!(matches!(ring.push(total), Err(Full::Last(_))));
        assert_eq!(ring.len(), total as usize);
    }

    // Catches: packets of a lower level overtaken by a higher one when pushes and pops interleave.
    #[test]
    fn interleaved_pushes_and_pops_stay_fifo() {
        let ring = Ring::new();
        let (mut next_in, mut next_out) = (0u32, 0u32);
        for round in 0..200 {
            for _ in 0..(round * 37) % 3000 {
                push(&ring, next_in).unwrap();
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
