//! A one-shot event for the loom models (`tests/loom.rs`, `tests/loom_io.rs`).
//!
//! Included with `#[path = "util/loom_event.rs"] mod loom_event;` by a `#![cfg(loom)]` test.

use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Notify;

/// A one-shot event for one waiting thread (`loom::sync::Notify` alone may wake spuriously).
#[derive(Default)]
pub struct Event {
    set: AtomicBool,
    notify: Notify,
}

impl Event {
    pub fn set(&self) {
        self.set.store(true, SeqCst);
        self.notify.notify();
    }

    pub fn wait(&self) {
        while !self.set.load(SeqCst) {
            self.notify.wait();
        }
    }
}
