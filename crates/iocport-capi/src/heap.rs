//! The process heap and the Global/Local allocators: `GetProcessHeap`, `HeapAlloc`,
//! `HeapReAlloc`, `HeapFree`, `HeapSize`, `GlobalAlloc`, `GlobalFree`, `GlobalLock`,
//! `GlobalUnlock`, `GlobalSize` and their `Local` twins.
//!
//! Every block is a `malloc` block with a 16-byte header in front: the size the program asked for
//! (`HeapSize` answers it, as Windows does, not the larger usable size), a tag that marks a live
//! block, and the `GMEM_MOVEABLE` bit with the lock count. glibc's blocks are 16-byte aligned and
//! the header is 16 bytes, so the program's pointer is 16-byte aligned too, as Windows' heap
//! guarantees on Win64. Freeing clears the tag first (glibc then reuses those bytes for its own
//! lists), so a second free of the same pointer is usually recognised and refused rather than
//! corrupting the heap; a pointer the heap never gave is recognised the same way, provided the 16
//! bytes before it are readable (Windows makes no promise there either).
//!
//! There is one heap, the process heap: `GetProcessHeap` returns a fixed handle that has none of
//! the shapes of the library's other handles (not NULL, not `INVALID_HANDLE_VALUE`, not an fd,
//! not a table handle of `handles.rs`, whose two low bits are clear, not `GetCurrentThread`'s -2).
//! Global and Local blocks are blocks of that heap, as on today's Windows: `LocalFree` frees what
//! `FormatMessage` allocates, and `HeapFree` frees a fixed `GlobalAlloc` block.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::guard;
use crate::status::set_last_error;
use crate::types::*;

/// `GetProcessHeap()`: "HEAP" in the high half, 2 in the low bits, which no table handle has
/// (theirs are clear) and no fd reaches.
pub const PROCESS_HEAP: usize = 0x4845_4150_0000_0002;

// `HEAP_NO_SERIALIZE` (1) is accepted and ignored: the heap is always thread-safe.

/// `HEAP_GENERATE_EXCEPTIONS`: a failure aborts the process (Windows raises an exception).
pub const HEAP_GENERATE_EXCEPTIONS: DWORD = 0x4;
/// `HEAP_ZERO_MEMORY`: the new bytes are zeroed.
pub const HEAP_ZERO_MEMORY: DWORD = 0x8;
/// `HEAP_REALLOC_IN_PLACE_ONLY`: `HeapReAlloc` never moves the block.
pub const HEAP_REALLOC_IN_PLACE_ONLY: DWORD = 0x10;

/// `GMEM_MOVEABLE` (`LMEM_MOVEABLE`): a handle to lock; the handle is the address here.
pub const GMEM_MOVEABLE: u32 = 0x0002;
/// `GMEM_ZEROINIT` (`LMEM_ZEROINIT`): the block is zeroed.
pub const GMEM_ZEROINIT: u32 = 0x0040;
/// The `GlobalAlloc` flags Windows documents (the obsolete ones are accepted and ignored):
/// MOVEABLE, NOCOMPACT, NODISCARD, ZEROINIT, DISCARDABLE, NOT_BANKED/LOWER, SHARE/DDESHARE,
/// NOTIFY.
const GMEM_VALID: u32 = 0x0002 | 0x0010 | 0x0020 | 0x0040 | 0x0100 | 0x1000 | 0x2000 | 0x4000;
/// The `LocalAlloc` flags: MOVEABLE, NOCOMPACT, NODISCARD, ZEROINIT and the DISCARDABLE bits.
const LMEM_VALID: u32 = 0x0002 | 0x0010 | 0x0020 | 0x0040 | 0x0F00;

/// `ERROR_NOT_LOCKED`: `GlobalUnlock`/`LocalUnlock` of a block that is not locked.
pub const ERROR_NOT_LOCKED: DWORD = 158;

/// The tag of a live block.
const LIVE: u32 = 0x1CA4_9EA9;
/// The header's size: the blocks' alignment.
const HEADER: usize = 16;
/// `state`: the block was allocated `GMEM_MOVEABLE`.
const MOVEABLE: u32 = 1 << 31;
/// `state`: the lock count's bits.
const LOCKS: u32 = 0xFF;

/// What precedes every block.
#[repr(C, align(16))]
struct Header {
    /// The size the program asked for.
    size: usize,
    /// `LIVE` while the block is allocated.
    tag: AtomicU32,
    /// `MOVEABLE` and the lock count.
    state: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER);

/// Whether `h` is the process heap's handle.
fn is_heap(h: HANDLE) -> bool {
    h as usize == PROCESS_HEAP
}

/// Allocates a block of `size` bytes (zeroed with `zero`); `None` if memory is short.
fn alloc(size: usize, zero: bool, moveable: bool) -> Option<*mut c_void> {
    let total = size.checked_add(HEADER)?;
    // SAFETY: malloc/calloc take plain sizes; a NULL result is handled.
    let base = unsafe {
        if zero {
            libc::calloc(1, total)
        } else {
            libc::malloc(total)
        }
    } as *mut Header;
    if base.is_null() {
        return None;
    }
    debug_assert_eq!(base as usize % HEADER, 0);
    let state = if moveable { MOVEABLE } else { 0 };
    // SAFETY: `base` is a fresh block of at least HEADER bytes, 16-byte aligned.
    unsafe {
        base.write(Header {
            size,
            tag: AtomicU32::new(LIVE),
            state: AtomicU32::new(state),
        })
    };
    // SAFETY: within the block (HEADER <= total).
    Some(unsafe { (base as *mut u8).add(HEADER) } as *mut c_void)
}

/// The header of the live block `p`, or `None` (NULL, misaligned, or not a live block).
///
/// # Safety
///
/// `p` must be NULL or a pointer whose 16 preceding bytes are readable: a block of this heap, or
/// (the mistake this detects) a block freed or never allocated here.
unsafe fn header<'a>(p: *const c_void) -> Option<&'a Header> {
    if p.is_null() || p as usize % HEADER != 0 {
        return None;
    }
    // SAFETY: the caller vouches for the 16 bytes before `p`; they are 16-byte aligned.
    let h = unsafe { &*((p as *const u8).sub(HEADER) as *const Header) };
    (h.tag.load(Ordering::Acquire) == LIVE).then_some(h)
}

/// Frees the live block whose header is `h`; false if another free won the race.
///
/// # Safety
///
/// `h` must be the header of a block of this heap.
unsafe fn free(h: &Header) -> bool {
    if h.tag
        .compare_exchange(LIVE, 0, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    // SAFETY: the block's base, allocated by malloc or calloc; the tag, cleared above, keeps a
    // second free from getting here.
    unsafe { libc::free(h as *const Header as *mut c_void) };
    true
}

/// A failed allocation: NULL with `ERROR_NOT_ENOUGH_MEMORY`, or, with
/// `HEAP_GENERATE_EXCEPTIONS`, the end of the process (Windows raises `STATUS_NO_MEMORY`, which
/// ends a process that does not catch it; there is no SEH to catch it here).
fn out_of_memory(what: &str, size: usize, flags: DWORD) -> *mut c_void {
    if flags & HEAP_GENERATE_EXCEPTIONS != 0 {
        eprintln!(
            "iocport: {what} of {size} bytes failed with HEAP_GENERATE_EXCEPTIONS \
             (STATUS_NO_MEMORY, an exception on Windows): aborting"
        );
        std::process::abort();
    }
    set_last_error(ERROR_NOT_ENOUGH_MEMORY);
    std::ptr::null_mut()
}

/// The process heap's handle.
#[no_mangle]
pub extern "C" fn GetProcessHeap() -> HANDLE {
    PROCESS_HEAP as HANDLE
}

/// Allocates `dwBytes` from the heap, 16-byte aligned; zeroed with `HEAP_ZERO_MEMORY`. NULL with
/// `ERROR_INVALID_HANDLE` for a heap handle other than `GetProcessHeap()`'s, NULL with
/// `ERROR_NOT_ENOUGH_MEMORY` when memory is short (the process aborts instead with
/// `HEAP_GENERATE_EXCEPTIONS`).
#[no_mangle]
pub extern "C" fn HeapAlloc(hHeap: HANDLE, dwFlags: DWORD, dwBytes: usize) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        if !is_heap(hHeap) {
            set_last_error(ERROR_INVALID_HANDLE);
            return std::ptr::null_mut();
        }
        match alloc(dwBytes, dwFlags & HEAP_ZERO_MEMORY != 0, false) {
            Some(p) => p,
            None => out_of_memory("HeapAlloc", dwBytes, dwFlags),
        }
    })
}

/// Resizes a block, keeping its contents up to the smaller size; with `HEAP_ZERO_MEMORY` the
/// bytes it grows by are zeroed; with `HEAP_REALLOC_IN_PLACE_ONLY` it fails with
/// `ERROR_NOT_ENOUGH_MEMORY` rather than move. NULL with `ERROR_INVALID_HANDLE` for a bad heap,
/// `ERROR_INVALID_PARAMETER` for a pointer that is not a live block.
#[no_mangle]
pub unsafe extern "C" fn HeapReAlloc(
    hHeap: HANDLE,
    dwFlags: DWORD,
    lpMem: *mut c_void,
    dwBytes: usize,
) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        if !is_heap(hHeap) {
            set_last_error(ERROR_INVALID_HANDLE);
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's block (or the mistake `header` detects).
        let Some(h) = (unsafe { header(lpMem) }) else {
            set_last_error(ERROR_INVALID_PARAMETER);
            return std::ptr::null_mut();
        };
        let old = h.size;
        let zero = dwFlags & HEAP_ZERO_MEMORY != 0;
        let base = (h as *const Header).cast_mut();
        let Some(total) = dwBytes.checked_add(HEADER) else {
            return out_of_memory("HeapReAlloc", dwBytes, dwFlags);
        };
        let new_base = if dwFlags & HEAP_REALLOC_IN_PLACE_ONLY != 0 {
            // SAFETY: a live malloc block.
            let usable = unsafe { libc::malloc_usable_size(base as *mut c_void) };
            if total > usable {
                return out_of_memory("HeapReAlloc in place", dwBytes, dwFlags);
            }
            base
        } else {
            // The old place stops being a live block if the block moves: a later free of the
            // stale pointer must not find the tag there. Put back if realloc fails.
            h.tag.store(0, Ordering::Release);
            // SAFETY: a live malloc block; on failure it is left as it was.
            let b = unsafe { libc::realloc(base as *mut c_void, total) } as *mut Header;
            if b.is_null() {
                h.tag.store(LIVE, Ordering::Release);
                return out_of_memory("HeapReAlloc", dwBytes, dwFlags);
            }
            // SAFETY: the (possibly moved) block starts with its header, copied by realloc.
            unsafe { (*b).tag.store(LIVE, Ordering::Release) };
            b
        };
        // SAFETY: `new_base` is the (possibly moved) live block of at least `total` bytes; its
        // header moved with it.
        let p = unsafe {
            (*new_base).size = dwBytes;
            (new_base as *mut u8).add(HEADER)
        };
        if zero && dwBytes > old {
            // SAFETY: bytes old..dwBytes of the block, which has room for dwBytes.
            unsafe { std::ptr::write_bytes(p.add(old), 0, dwBytes - old) };
        }
        p as *mut c_void
    })
}

/// Frees a block. TRUE for NULL (nothing to free); FALSE with `ERROR_INVALID_HANDLE` for a bad
/// heap, `ERROR_INVALID_PARAMETER` for a pointer that is not a live block.
#[no_mangle]
pub unsafe extern "C" fn HeapFree(hHeap: HANDLE, dwFlags: DWORD, lpMem: *mut c_void) -> BOOL {
    let _ = dwFlags;
    guard(FALSE, || {
        if !is_heap(hHeap) {
            set_last_error(ERROR_INVALID_HANDLE);
            return FALSE;
        }
        if lpMem.is_null() {
            return TRUE;
        }
        // SAFETY: the caller's block (or the mistake `header` detects).
        match unsafe { header(lpMem) } {
            // SAFETY: a block of this heap.
            Some(h) if unsafe { free(h) } => TRUE,
            _ => {
                set_last_error(ERROR_INVALID_PARAMETER);
                FALSE
            }
        }
    })
}

/// The size a block was allocated with. `(SIZE_T)-1` for a bad heap (`ERROR_INVALID_HANDLE`)
/// or a pointer that is not a live block (`ERROR_INVALID_PARAMETER`; Windows leaves the last
/// error alone).
#[no_mangle]
pub unsafe extern "C" fn HeapSize(hHeap: HANDLE, dwFlags: DWORD, lpMem: *const c_void) -> usize {
    let _ = dwFlags;
    guard(usize::MAX, || {
        if !is_heap(hHeap) {
            set_last_error(ERROR_INVALID_HANDLE);
            return usize::MAX;
        }
        // SAFETY: the caller's block (or the mistake `header` detects).
        match unsafe { header(lpMem) } {
            Some(h) => h.size,
            None => {
                set_last_error(ERROR_INVALID_PARAMETER);
                usize::MAX
            }
        }
    })
}

/// `GlobalAlloc` and `LocalAlloc`: flags outside `valid` fail with `ERROR_INVALID_PARAMETER`.
fn global_alloc(what: &str, flags: u32, valid: u32, size: usize) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        if flags & !valid != 0 {
            set_last_error(ERROR_INVALID_PARAMETER);
            return std::ptr::null_mut();
        }
        let moveable = flags & GMEM_MOVEABLE != 0;
        match alloc(size, flags & GMEM_ZEROINIT != 0, moveable) {
            Some(p) => p,
            None => out_of_memory(what, size, 0),
        }
    })
}

/// `GlobalFree` and `LocalFree`: NULL on success (and for NULL), the handle with
/// `ERROR_INVALID_HANDLE` if it is not a live block. A locked block is freed all the same, as on
/// Windows.
///
/// # Safety
///
/// As `header`.
unsafe fn global_free(mem: *mut c_void) -> *mut c_void {
    guard(mem, || {
        if mem.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's block (or the mistake `header` detects).
        match unsafe { header(mem) } {
            // SAFETY: a block of this heap.
            Some(h) if unsafe { free(h) } => std::ptr::null_mut(),
            _ => {
                set_last_error(ERROR_INVALID_HANDLE);
                mem
            }
        }
    })
}

/// `GlobalLock` and `LocalLock`: the block's address; a moveable block's lock count goes up
/// (up to 255, where Windows stops counting). NULL with `ERROR_INVALID_HANDLE` if `mem` is not a
/// live block.
///
/// # Safety
///
/// As `header`.
unsafe fn global_lock(mem: *mut c_void) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        // SAFETY: the caller's block (or the mistake `header` detects).
        let Some(h) = (unsafe { header(mem) }) else {
            set_last_error(ERROR_INVALID_HANDLE);
            return std::ptr::null_mut();
        };
        let _ = h
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & MOVEABLE != 0 && s & LOCKS < LOCKS).then_some(s + 1)
            });
        mem
    })
}

/// `GlobalUnlock` and `LocalUnlock`: a moveable block's lock count goes down; TRUE while it is
/// still locked, FALSE with `NO_ERROR` once it is not, FALSE with `ERROR_NOT_LOCKED` if it was not
/// locked. A fixed block: `fixed` (Windows' `GlobalUnlock` says TRUE, `LocalUnlock` FALSE with
/// `ERROR_NOT_LOCKED`). FALSE with `ERROR_INVALID_HANDLE` if `mem` is not a live block.
///
/// # Safety
///
/// As `header`.
unsafe fn global_unlock(mem: *mut c_void, fixed: BOOL) -> BOOL {
    guard(FALSE, || {
        // SAFETY: the caller's block (or the mistake `header` detects).
        let Some(h) = (unsafe { header(mem) }) else {
            set_last_error(ERROR_INVALID_HANDLE);
            return FALSE;
        };
        if h.state.load(Ordering::Acquire) & MOVEABLE == 0 {
            if fixed == FALSE {
                set_last_error(ERROR_NOT_LOCKED);
            }
            return fixed;
        }
        match h
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & LOCKS != 0).then_some(s - 1)
            }) {
            Ok(prev) if prev & LOCKS > 1 => TRUE,
            Ok(_) => {
                set_last_error(ERROR_SUCCESS);
                FALSE
            }
            Err(_) => {
                set_last_error(ERROR_NOT_LOCKED);
                FALSE
            }
        }
    })
}

/// `GlobalSize` and `LocalSize`: the size asked for; 0 with `ERROR_INVALID_HANDLE` if `mem` is
/// not a live block.
///
/// # Safety
///
/// As `header`.
unsafe fn global_size(mem: *mut c_void) -> usize {
    guard(0, || {
        // SAFETY: the caller's block (or the mistake `header` detects).
        match unsafe { header(mem) } {
            Some(h) => h.size,
            None => {
                set_last_error(ERROR_INVALID_HANDLE);
                0
            }
        }
    })
}

/// Allocates `dwBytes` (`GMEM_FIXED`, `GMEM_MOVEABLE`, `GMEM_ZEROINIT`, `GPTR`, `GHND`). A
/// moveable block's handle is its address (memory never moves here). NULL with
/// `ERROR_INVALID_PARAMETER` for undocumented flags, `ERROR_NOT_ENOUGH_MEMORY` when memory is
/// short.
#[no_mangle]
pub extern "C" fn GlobalAlloc(uFlags: u32, dwBytes: usize) -> *mut c_void {
    global_alloc("GlobalAlloc", uFlags, GMEM_VALID, dwBytes)
}

/// Frees a `GlobalAlloc` block: NULL on success (and for NULL), `hMem` with
/// `ERROR_INVALID_HANDLE` on failure.
#[no_mangle]
pub unsafe extern "C" fn GlobalFree(hMem: *mut c_void) -> *mut c_void {
    // SAFETY: the caller's handle, passed on.
    unsafe { global_free(hMem) }
}

/// Locks a block: its address (a moveable block's lock count goes up).
#[no_mangle]
pub unsafe extern "C" fn GlobalLock(hMem: *mut c_void) -> *mut c_void {
    // SAFETY: the caller's handle, passed on.
    unsafe { global_lock(hMem) }
}

/// Unlocks a moveable block: TRUE while still locked, FALSE (`NO_ERROR`) once unlocked, FALSE
/// (`ERROR_NOT_LOCKED`) if it was not locked. TRUE for a fixed block, as Windows.
#[no_mangle]
pub unsafe extern "C" fn GlobalUnlock(hMem: *mut c_void) -> BOOL {
    // SAFETY: the caller's handle, passed on.
    unsafe { global_unlock(hMem, TRUE) }
}

/// The size a `GlobalAlloc` block was allocated with; 0 with `ERROR_INVALID_HANDLE` for a bad
/// handle.
#[no_mangle]
pub unsafe extern "C" fn GlobalSize(hMem: *mut c_void) -> usize {
    // SAFETY: the caller's handle, passed on.
    unsafe { global_size(hMem) }
}

/// Allocates `uBytes` (`LMEM_FIXED`, `LMEM_MOVEABLE`, `LMEM_ZEROINIT`, `LPTR`, `LHND`); as
/// `GlobalAlloc`.
#[no_mangle]
pub extern "C" fn LocalAlloc(uFlags: u32, uBytes: usize) -> *mut c_void {
    global_alloc("LocalAlloc", uFlags, LMEM_VALID, uBytes)
}

/// Frees a `LocalAlloc` block (and `FormatMessage`'s buffers): NULL on success (and for NULL),
/// `hMem` with `ERROR_INVALID_HANDLE` on failure.
#[no_mangle]
pub unsafe extern "C" fn LocalFree(hMem: *mut c_void) -> *mut c_void {
    // SAFETY: the caller's handle, passed on.
    unsafe { global_free(hMem) }
}

/// Locks a block: its address (a moveable block's lock count goes up).
#[no_mangle]
pub unsafe extern "C" fn LocalLock(hMem: *mut c_void) -> *mut c_void {
    // SAFETY: the caller's handle, passed on.
    unsafe { global_lock(hMem) }
}

/// Unlocks a moveable block, as `GlobalUnlock`; a fixed block gives FALSE with
/// `ERROR_NOT_LOCKED`, as Windows' `LocalUnlock`.
#[no_mangle]
pub unsafe extern "C" fn LocalUnlock(hMem: *mut c_void) -> BOOL {
    // SAFETY: the caller's handle, passed on.
    unsafe { global_unlock(hMem, FALSE) }
}

/// The size a `LocalAlloc` block was allocated with; 0 with `ERROR_INVALID_HANDLE` for a bad
/// handle.
#[no_mangle]
pub unsafe extern "C" fn LocalSize(hMem: *mut c_void) -> usize {
    // SAFETY: the caller's handle, passed on.
    unsafe { global_size(hMem) }
}

/// Allocates `len` bytes for the library's own results (`FormatMessage`'s buffers), as
/// `LocalAlloc(LMEM_FIXED)`.
pub(crate) fn local_alloc(len: usize) -> Option<*mut c_void> {
    alloc(len, false, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::last_error;

    #[test]
    fn blocks_are_aligned_sized_and_zeroed() {
        let heap = GetProcessHeap();
        for size in [0usize, 1, 15, 16, 17, 4096, 100_000] {
            let p = HeapAlloc(heap, HEAP_ZERO_MEMORY, size) as *mut u8;
            assert!(!p.is_null());
            assert_eq!(p as usize % 16, 0);
            // SAFETY: a live block of `size` bytes.
            unsafe {
                assert_eq!(HeapSize(heap, 0, p as *const c_void), size);
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                std::ptr::write_bytes(p, 0xAB, size);
                let q =
                    HeapReAlloc(heap, HEAP_ZERO_MEMORY, p as *mut c_void, size + 100) as *mut u8;
                assert!(!q.is_null());
                assert_eq!(q as usize % 16, 0);
                let s = std::slice::from_raw_parts(q, size + 100);
                assert!(s[..size].iter().all(|&b| b == 0xAB));
                assert!(s[size..].iter().all(|&b| b == 0));
                assert_eq!(HeapFree(heap, 0, q as *mut c_void), TRUE);
            }
        }
    }

    #[test]
    fn bad_heaps_and_sizes_fail() {
        for bad in [0usize, usize::MAX, 3, 1 << 32, PROCESS_HEAP + 4] {
            assert!(HeapAlloc(bad as HANDLE, 0, 8).is_null());
            assert_eq!(last_error(), ERROR_INVALID_HANDLE);
        }
        assert!(HeapAlloc(GetProcessHeap(), 0, usize::MAX).is_null());
        assert_eq!(last_error(), ERROR_NOT_ENOUGH_MEMORY);
        assert!(HeapAlloc(GetProcessHeap(), 0, 1 << 62).is_null());
        assert_eq!(last_error(), ERROR_NOT_ENOUGH_MEMORY);
    }

    #[test]
    fn moveable_blocks_count_their_locks() {
        let h = GlobalAlloc(GMEM_MOVEABLE | GMEM_ZEROINIT, 10);
        assert!(!h.is_null());
        // SAFETY: a live block.
        unsafe {
            assert_eq!(GlobalLock(h), h);
            assert_eq!(GlobalLock(h), h);
            assert_eq!(GlobalUnlock(h), TRUE);
            set_last_error(77);
            assert_eq!(GlobalUnlock(h), FALSE);
            assert_eq!(last_error(), ERROR_SUCCESS);
            assert_eq!(GlobalUnlock(h), FALSE);
            assert_eq!(last_error(), ERROR_NOT_LOCKED);
            assert_eq!(GlobalSize(h), 10);
            assert!(GlobalFree(h).is_null());
        }
        assert!(GlobalAlloc(0x8000, 10).is_null());
        assert_eq!(last_error(), ERROR_INVALID_PARAMETER);
    }
}
