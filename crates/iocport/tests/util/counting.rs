//! A counting global allocator for the allocation tests: counts the allocations of the current thread
//! while counting is on for it (a thread-local flag set only around a measured section), so the test
//! harness and the other tests of the binary do not disturb the counts. Include it with
//! `#[path = "util/counting.rs"] mod counting;` and `use counting::allocations_in;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note_alloc() {
    // `try_with`: the allocator may run while this thread's locals are being torn down.
    let _ = ENABLED.try_with(|on| {
        if on.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches only const-initialised
// thread-locals of `Cell` type, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns how many allocations the calling thread made during it.
pub fn allocations_in<R>(f: impl FnOnce() -> R) -> (u64, R) {
    ALLOCS.with(|n| n.set(0));
    ENABLED.with(|on| on.set(true));
    let r = f();
    ENABLED.with(|on| on.set(false));
    (ALLOCS.with(Cell::get), r)
}

// Catches: a counter that does not count (every test of a binary that includes this module would
// pass vacuously). Runs in each binary that uses the allocator.
#[test]
fn counter_counts() {
    let (n, v) = allocations_in(|| std::hint::black_box(Box::new(5u64)));
    assert_eq!(*v, 5);
    assert_eq!(n, 1);
    let (n, _) = allocations_in(|| ());
    assert_eq!(n, 0);
}
