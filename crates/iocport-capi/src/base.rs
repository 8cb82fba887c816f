//! System information and time: `GetSystemInfo`, `GetNativeSystemInfo`, `GetTickCount`,
//! `GetTickCount64`, `QueryPerformanceCounter`, `QueryPerformanceFrequency`,
//! `GetCurrentProcessId` (declared in `include/iocport/base.h`, with the typedefs and macros that
//! need no code: `ZeroMemory`, `LOWORD`, `min`, ...).
//!
//! The heaps are in `heap.rs`, the console control handler in `console.rs`, `FormatMessage` in
//! `fmtmsg.rs`.

#![allow(non_camel_case_types, clippy::upper_case_acronyms)]

use std::ffi::c_void;
use std::mem::{offset_of, size_of, MaybeUninit};

use crate::guard;
use crate::status::set_last_error;
use crate::types::*;

/// `WORD`.
pub type WORD = u16;
/// `ULONGLONG`.
pub type ULONGLONG = u64;

/// `PROCESSOR_ARCHITECTURE_AMD64`.
pub const PROCESSOR_ARCHITECTURE_AMD64: WORD = 9;
/// `PROCESSOR_ARCHITECTURE_ARM64`.
pub const PROCESSOR_ARCHITECTURE_ARM64: WORD = 12;
/// `PROCESSOR_ARCHITECTURE_INTEL` (32-bit x86).
pub const PROCESSOR_ARCHITECTURE_INTEL: WORD = 0;
/// `PROCESSOR_ARCHITECTURE_ARM` (32-bit ARM).
pub const PROCESSOR_ARCHITECTURE_ARM: WORD = 5;
/// `PROCESSOR_ARCHITECTURE_UNKNOWN`.
pub const PROCESSOR_ARCHITECTURE_UNKNOWN: WORD = 0xffff;
/// `PROCESSOR_AMD_X8664`: `dwProcessorType` on x86-64.
pub const PROCESSOR_AMD_X8664: DWORD = 8664;
/// `PROCESSOR_INTEL_PENTIUM`: `dwProcessorType` on 32-bit x86.
pub const PROCESSOR_INTEL_PENTIUM: DWORD = 586;

/// Windows' allocation granularity (the alignment of `VirtualAlloc` reservations), which programs
/// round to.
pub const ALLOCATION_GRANULARITY: DWORD = 65536;

/// `QueryPerformanceFrequency`: 10 MHz, as modern Windows (the counter is in units of 100 ns).
pub const QPC_FREQUENCY: i64 = 10_000_000;

/// `SYSTEM_INFO`, 48 bytes on Win64 (`dwOemId` shares its 4 bytes with
/// `wProcessorArchitecture` and `wReserved` in C).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SYSTEM_INFO {
    /// The processor architecture (`PROCESSOR_ARCHITECTURE_*`).
    pub wProcessorArchitecture: WORD,
    /// Reserved: 0.
    pub wReserved: WORD,
    /// The page size.
    pub dwPageSize: DWORD,
    /// The lowest address a program can map.
    pub lpMinimumApplicationAddress: *mut c_void,
    /// The highest address a program can map.
    pub lpMaximumApplicationAddress: *mut c_void,
    /// The CPUs the process may run on, as a mask (the first 64).
    pub dwActiveProcessorMask: usize,
    /// How many CPUs the process may run on.
    pub dwNumberOfProcessors: DWORD,
    /// `PROCESSOR_AMD_X8664` and the like (obsolete on Windows too).
    pub dwProcessorType: DWORD,
    /// 65536, as on Windows.
    pub dwAllocationGranularity: DWORD,
    /// The CPU family (x86), or 0.
    pub wProcessorLevel: WORD,
    /// The CPU's model and stepping as `model << 8 | stepping` (x86), or 0.
    pub wProcessorRevision: WORD,
}

const _: () = {
    assert!(size_of::<SYSTEM_INFO>() == 48);
    assert!(offset_of!(SYSTEM_INFO, dwPageSize) == 4);
    assert!(offset_of!(SYSTEM_INFO, lpMinimumApplicationAddress) == 8);
    assert!(offset_of!(SYSTEM_INFO, lpMaximumApplicationAddress) == 16);
    assert!(offset_of!(SYSTEM_INFO, dwActiveProcessorMask) == 24);
    assert!(offset_of!(SYSTEM_INFO, dwNumberOfProcessors) == 32);
    assert!(offset_of!(SYSTEM_INFO, dwProcessorType) == 36);
    assert!(offset_of!(SYSTEM_INFO, dwAllocationGranularity) == 40);
    assert!(offset_of!(SYSTEM_INFO, wProcessorLevel) == 44);
    assert!(offset_of!(SYSTEM_INFO, wProcessorRevision) == 46);
};

/// The CPUs this process may run on: their count and the mask of the first 64.
fn affinity() -> (u32, usize) {
    let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into `set`.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), set.as_mut_ptr()) };
    if rc != 0 {
        // More CPUs than a cpu_set_t holds, or a seccomp filter: count the online ones.
        // SAFETY: sysconf takes a plain integer.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
        let mask = if n >= usize::BITS {
            usize::MAX
        } else {
            (1usize << n) - 1
        };
        return (n, mask);
    }
    // SAFETY: initialised by sched_getaffinity (and zeroed before).
    let set = unsafe { set.assume_init() };
    let mut count = 0u32;
    let mut mask = 0usize;
    for cpu in 0..libc::CPU_SETSIZE as usize {
        // SAFETY: `cpu` is below CPU_SETSIZE, inside the set.
        if unsafe { libc::CPU_ISSET(cpu, &set) } {
            count += 1;
            if cpu < usize::BITS as usize {
                mask |= 1 << cpu;
            }
        }
    }
    (count.max(1), mask)
}

/// The page size.
fn page_size() -> usize {
    // SAFETY: sysconf takes a plain integer.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// The lowest address a program may map (`vm.mmap_min_addr`, usually 65536 as on Windows).
fn min_address() -> usize {
    std::fs::read_to_string("/proc/sys/vm/mmap_min_addr")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&a| a > 0)
        .unwrap_or(65536)
}

/// The highest address of the user address space (the default mmap limit: 47 bits on x86-64,
/// 48 on arm64), less the guard page at the top.
fn max_address(page: usize) -> usize {
    let bits = if cfg!(target_arch = "x86_64") {
        47
    } else if cfg!(target_arch = "aarch64") {
        48
    } else if cfg!(target_pointer_width = "64") {
        47
    } else {
        31
    };
    (1usize << bits) - page - 1
}

/// The architecture's `wProcessorArchitecture` and `dwProcessorType`.
fn architecture() -> (WORD, DWORD) {
    if cfg!(target_arch = "x86_64") {
        (PROCESSOR_ARCHITECTURE_AMD64, PROCESSOR_AMD_X8664)
    } else if cfg!(target_arch = "aarch64") {
        (PROCESSOR_ARCHITECTURE_ARM64, 0)
    } else if cfg!(target_arch = "x86") {
        (PROCESSOR_ARCHITECTURE_INTEL, PROCESSOR_INTEL_PENTIUM)
    } else if cfg!(target_arch = "arm") {
        (PROCESSOR_ARCHITECTURE_ARM, 0)
    } else {
        (PROCESSOR_ARCHITECTURE_UNKNOWN, 0)
    }
}

/// `wProcessorLevel` and `wProcessorRevision`: on x86, the CPU's family, and its model and
/// stepping (`model << 8 | stepping`), from `cpuid` as Windows reads them.
#[cfg(target_arch = "x86_64")]
fn level_and_revision() -> (WORD, WORD) {
    // Leaf 1 exists on every x86-64 CPU.
    let r = std::arch::x86_64::__cpuid(1);
    let eax = r.eax;
    let base_family = (eax >> 8) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((eax >> 20) & 0xff)
    } else {
        base_family
    };
    let mut model = (eax >> 4) & 0xf;
    if base_family == 6 || base_family == 0xf {
        model |= ((eax >> 16) & 0xf) << 4;
    }
    let stepping = eax & 0xf;
    (family as WORD, ((model << 8) | stepping) as WORD)
}

/// `wProcessorLevel` and `wProcessorRevision` where there is no `cpuid`: 0.
#[cfg(not(target_arch = "x86_64"))]
fn level_and_revision() -> (WORD, WORD) {
    (0, 0)
}

/// The system information `GetSystemInfo` gives.
pub(crate) fn system_info() -> SYSTEM_INFO {
    let (count, mask) = affinity();
    let page = page_size();
    let (arch, kind) = architecture();
    let (level, revision) = level_and_revision();
    SYSTEM_INFO {
        wProcessorArchitecture: arch,
        wReserved: 0,
        dwPageSize: page as DWORD,
        lpMinimumApplicationAddress: min_address() as *mut c_void,
        lpMaximumApplicationAddress: max_address(page) as *mut c_void,
        dwActiveProcessorMask: mask,
        dwNumberOfProcessors: count,
        dwProcessorType: kind,
        dwAllocationGranularity: ALLOCATION_GRANULARITY,
        wProcessorLevel: level,
        wProcessorRevision: revision,
    }
}

/// Fills a `SYSTEM_INFO`: the CPUs this process may run on (its affinity), the page size, the
/// allocation granularity (65536, as Windows), the address range and the architecture. A NULL
/// pointer is ignored (Windows would fault).
#[no_mangle]
pub unsafe extern "C" fn GetSystemInfo(lpSystemInfo: *mut SYSTEM_INFO) {
    guard((), || {
        if lpSystemInfo.is_null() {
            return;
        }
        let info = system_info();
        // SAFETY: the caller's SYSTEM_INFO (48 bytes, checked not NULL); written unaligned in
        // case it is packed in a struct of the program's.
        unsafe { lpSystemInfo.write_unaligned(info) };
    })
}

/// `GetSystemInfo` for a native process: the same here (there is no WOW64).
#[no_mangle]
pub unsafe extern "C" fn GetNativeSystemInfo(lpSystemInfo: *mut SYSTEM_INFO) {
    // SAFETY: the caller's pointer, passed on.
    unsafe { GetSystemInfo(lpSystemInfo) }
}

/// A clock's reading in nanoseconds.
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = MaybeUninit::<libc::timespec>::zeroed();
    // SAFETY: the kernel writes one timespec.
    let rc = unsafe { libc::clock_gettime(clock, ts.as_mut_ptr()) };
    if rc != 0 {
        // CLOCK_BOOTTIME refused (a seccomp filter): CLOCK_MONOTONIC is always there.
        // SAFETY: as above.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, ts.as_mut_ptr()) };
    }
    // SAFETY: zeroed, then written by the kernel.
    let ts = unsafe { ts.assume_init() };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Milliseconds since the system started (`CLOCK_BOOTTIME`, which counts suspended time as
/// Windows' tick count does).
#[no_mangle]
pub extern "C" fn GetTickCount64() -> ULONGLONG {
    guard(0, || clock_ns(libc::CLOCK_BOOTTIME) / 1_000_000)
}

/// `GetTickCount64` truncated to 32 bits: it wraps every 2^32 ms (49.7 days), as on Windows.
#[no_mangle]
pub extern "C" fn GetTickCount() -> DWORD {
    GetTickCount64() as DWORD
}

/// The performance counter: `CLOCK_MONOTONIC` in units of 100 ns (a 10 MHz counter, as on
/// modern Windows, so programs' arithmetic with it overflows no sooner than there). FALSE with
/// `ERROR_NOACCESS` for a NULL pointer.
#[no_mangle]
pub unsafe extern "C" fn QueryPerformanceCounter(lpPerformanceCount: *mut i64) -> BOOL {
    guard(FALSE, || {
        if lpPerformanceCount.is_null() {
            set_last_error(ERROR_NOACCESS);
            return FALSE;
        }
        let ticks = (clock_ns(libc::CLOCK_MONOTONIC) / 100) as i64;
        // SAFETY: the caller's LARGE_INTEGER (8 bytes, checked not NULL).
        unsafe { lpPerformanceCount.write_unaligned(ticks) };
        TRUE
    })
}

/// The performance counter's frequency: 10,000,000 (10 MHz). FALSE with `ERROR_NOACCESS` for a
/// NULL pointer.
#[no_mangle]
pub unsafe extern "C" fn QueryPerformanceFrequency(lpFrequency: *mut i64) -> BOOL {
    guard(FALSE, || {
        if lpFrequency.is_null() {
            set_last_error(ERROR_NOACCESS);
            return FALSE;
        }
        // SAFETY: the caller's LARGE_INTEGER (8 bytes, checked not NULL).
        unsafe { lpFrequency.write_unaligned(QPC_FREQUENCY) };
        TRUE
    })
}

/// The process id (`getpid`).
#[no_mangle]
pub extern "C" fn GetCurrentProcessId() -> DWORD {
    // SAFETY: getpid has no preconditions.
    guard(0, || unsafe { libc::getpid() } as DWORD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_info_is_plausible() {
        let si = system_info();
        assert!(si.dwNumberOfProcessors >= 1);
        assert_eq!(si.dwAllocationGranularity, 65536);
        assert!(si.dwPageSize.is_power_of_two());
        assert!(si.lpMinimumApplicationAddress < si.lpMaximumApplicationAddress);
        if si.dwNumberOfProcessors <= 64 {
            assert_eq!(
                si.dwActiveProcessorMask.count_ones(),
                si.dwNumberOfProcessors
            );
        }
        let std_count = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        assert!(std_count <= si.dwNumberOfProcessors);
    }

    #[test]
    fn ticks_and_counter_move_forward() {
        let t0 = GetTickCount64();
        let mut q0 = 0i64;
        // SAFETY: a valid i64.
        assert_eq!(unsafe { QueryPerformanceCounter(&mut q0) }, TRUE);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let t1 = GetTickCount64();
        let mut q1 = 0i64;
        // SAFETY: a valid i64.
        assert_eq!(unsafe { QueryPerformanceCounter(&mut q1) }, TRUE);
        assert!(t1 >= t0 + 19, "{t0} → {t1}");
        assert!(q1 - q0 >= 190_000, "{q0} → {q1}");
        // SAFETY: NULL is refused, not written.
        let r = unsafe { QueryPerformanceCounter(std::ptr::null_mut()) };
        assert_eq!(r, FALSE);
    }
}
