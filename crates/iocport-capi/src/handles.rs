//! The table of objects that are not fds (completion ports, threads, events): their `HANDLE`
//! values and lookup.
//!
//! A handle is `generation << 32 | slot << 2`, with generations from 1: it is at least 2^32, so it
//! never equals an fd (a socket's or a file's `HANDLE`), NULL or `INVALID_HANDLE_VALUE`; its low
//! two bits are clear, as Windows keeps them (`hEvent | 1` means "no packet"); and a closed
//! handle's value comes back only after 2^32 reuses of its slot.

use std::sync::{PoisonError, RwLock};

use std::sync::Arc;

use crate::core::Port;
use crate::thread::ThreadObj;
use crate::types::HANDLE;
use crate::wait::Signal;

/// An object a handle names.
#[derive(Clone)]
pub(crate) enum Object {
    /// A completion port.
    Port(Port),
    /// A thread made by `CreateThread` or `_beginthreadex`.
    Thread(Arc<ThreadObj>),
    /// An event.
    Event(Arc<Signal>),
}

struct Entry {
    generation: u32,
    object: Option<Object>,
}

struct Table {
    entries: Vec<Entry>,
    free: Vec<u32>,
}

static TABLE: RwLock<Table> = RwLock::new(Table {
    entries: Vec::new(),
    free: Vec::new(),
});

/// The largest slot number: slots take bits 2..32 of the handle.
const MAX_SLOTS: usize = 1 << 30;

/// Whether `h` has the shape of a table handle (not an fd, NULL or INVALID_HANDLE_VALUE).
pub(crate) fn is_object_handle(h: HANDLE) -> bool {
    let v = h as usize;
    v >> 32 != 0 && v != usize::MAX && v & 3 == 0
}

fn split(h: HANDLE) -> Option<(usize, u32)> {
    if !is_object_handle(h) {
        return None;
    }
    let v = h as usize;
    Some((((v & 0xFFFF_FFFF) >> 2), (v >> 32) as u32))
}

/// Stores `object`; returns its handle, or `None` if the table is full.
pub(crate) fn insert(object: Object) -> Option<HANDLE> {
    let mut t = TABLE.write().unwrap_or_else(PoisonError::into_inner);
    let slot = match t.free.pop() {
        Some(s) => s as usize,
        None => {
            if t.entries.len() >= MAX_SLOTS {
                return None;
            }
            t.entries.push(Entry {
                generation: 0,
                object: None,
            });
            t.entries.len() - 1
        }
    };
    let e = &mut t.entries[slot];
    // Generation 0 is never used (a handle below 2^32 would be an fd), nor u32::MAX with every
    // slot bit set (that would be INVALID_HANDLE_VALUE's neighbour; skipped for simplicity).
    e.generation = match e.generation.wrapping_add(1) {
        0 | u32::MAX => 1,
        g => g,
    };
    e.object = Some(object);
    Some(((e.generation as usize) << 32 | slot << 2) as HANDLE)
}

/// What `f` makes of the object `h` names, if it is open (under the table's read lock).
fn with<R>(h: HANDLE, f: impl FnOnce(&Object) -> Option<R>) -> Option<R> {
    let (slot, generation) = split(h)?;
    let t = TABLE.read().unwrap_or_else(PoisonError::into_inner);
    let e = t.entries.get(slot)?;
    if e.generation != generation {
        return None;
    }
    f(e.object.as_ref()?)
}

/// The object `h` names, if it is open.
pub(crate) fn get(h: HANDLE) -> Option<Object> {
    with(h, |o| Some(o.clone()))
}

/// The event `h` names, if it is an open event (no other object is cloned: the completion hook
/// looks events up, and must not end up dropping a port).
pub(crate) fn event(h: HANDLE) -> Option<Arc<Signal>> {
    with(h, |o| match o {
        Object::Event(s) => Some(s.clone()),
        _ => None,
    })
}

/// Every open completion port.
pub(crate) fn ports() -> Vec<Port> {
    let t = TABLE.read().unwrap_or_else(PoisonError::into_inner);
    t.entries
        .iter()
        .filter_map(|e| match &e.object {
            Some(Object::Port(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// Takes `h` out of the table (its value no longer names anything); returns what it named.
pub(crate) fn remove(h: HANDLE) -> Option<Object> {
    let (slot, generation) = split(h)?;
    let mut t = TABLE.write().unwrap_or_else(PoisonError::into_inner);
    let e = t.entries.get_mut(slot)?;
    if e.generation != generation {
        return None;
    }
    let object = e.object.take()?;
    t.free.push(slot as u32);
    Some(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_never_look_like_fds_and_never_alias_after_close() {
        let port = Port::with_concurrency(1);
        let a = insert(Object::Port(port.clone())).unwrap();
        assert!(a as usize >= 1 << 32 && a as usize & 3 == 0);
        assert!(get(a).is_some());
        assert!(remove(a).is_some());
        assert!(get(a).is_none());
        assert!(remove(a).is_none());
        let b = insert(Object::Port(port)).unwrap();
        assert_ne!(a, b, "a reused slot gets a new generation");
        assert!(get(a).is_none());
        assert!(remove(b).is_some());
        for bad in [0usize, 3, 1 << 20, usize::MAX, (1 << 32) | 1] {
            assert!(get(bad as HANDLE).is_none());
        }
    }
}
