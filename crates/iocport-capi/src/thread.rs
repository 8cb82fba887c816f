//! Threads: `CreateThread`, `_beginthreadex`, `ExitThread`, `GetExitCodeThread`,
//! `ResumeThread`, `GetCurrentThreadId`, `Sleep`, `SwitchToThread` and their kin.
//!
//! A thread is a pthread; its handle names a [`ThreadObj`], which the thread itself also holds (in
//! a thread-local) until it ends, so closing the handle never touches the thread. When the thread
//! ends, however it ends (its start routine returns, it calls `ExitThread`, or it calls
//! `pthread_exit`), the thread-local's destructor hands it to the reaper, a thread of the library
//! that joins it and only then signals the object: a wait on the handle returns once the thread
//! is gone, its pthread key destructors run too, as Windows signals a thread after its detach
//! callbacks.
//!
//! `ExitThread` is `pthread_exit`, which unwinds the thread's stack (glibc's forced unwind). The
//! Rust frames it can cross are declared `extern "C-unwind"` and hold nothing with a destructor
//! while the start routine runs ("plain old frames"), which is what Rust requires of frames a
//! forced unwind crosses.
//!
//! Thread ids are Linux's (`gettid`), which are never 0, as Windows' are not.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::core::lock;
use crate::guard;
use crate::handles::{self, Object};
use crate::status::set_last_error;
use crate::types::*;
use crate::wait::Signal;

/// `GetCurrentThread()`: a pseudo-handle meaning "the calling thread" (-2, as Windows).
pub(crate) const CURRENT_THREAD: HANDLE = -2isize as HANDLE;
/// `GetExitCodeThread`'s answer while the thread runs.
pub const STILL_ACTIVE: DWORD = 259;
/// `dwCreationFlags`: the thread starts only at `ResumeThread`.
pub const CREATE_SUSPENDED: DWORD = 0x4;
/// `dwCreationFlags`: `dwStackSize` is the reserve, not the commit (both are the size here).
pub const STACK_SIZE_PARAM_IS_A_RESERVATION: DWORD = 0x0001_0000;

/// A thread's start routine. Declared "C-unwind": `ExitThread` unwinds out of it.
pub type ThreadStart = unsafe extern "C-unwind" fn(*mut c_void) -> DWORD;

/// A thread made by `CreateThread` or `_beginthreadex`.
pub(crate) struct ThreadObj {
    /// Set when the thread has ended (a manual-reset signal that is never reset).
    pub(crate) ended: Arc<Signal>,
    /// `STILL_ACTIVE` until the thread ends.
    exit: AtomicU32,
    gate: Mutex<Gate>,
    cv: Condvar,
}

struct Gate {
    /// The thread's id, once it has started (0 before).
    tid: u32,
    /// `ResumeThread` calls still needed before the start routine runs.
    suspend: u32,
}

impl ThreadObj {
    pub(crate) fn tid(&self) -> u32 {
        lock(&self.gate).tid
    }

    pub(crate) fn exit_code(&self) -> DWORD {
        self.exit.load(Ordering::Acquire)
    }
}

/// The thread-local that holds a `CreateThread` thread's object until the thread ends.
struct Current(RefCell<Option<Arc<ThreadObj>>>);

impl Drop for Current {
    fn drop(&mut self) {
        if let Some(obj) = self.0.get_mut().take() {
            // SAFETY: pthread_self has no preconditions.
            reap_later(unsafe { libc::pthread_self() }, obj);
        }
    }
}

thread_local! {
    static CURRENT: Current = const { Current(RefCell::new(None)) };
    /// The thread's id, once asked. No destructor: it works in any thread's teardown.
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// In a fork child, the thread that forked is a new thread: forget its parent's id.
extern "C" fn forget_tid_in_child() {
    let _ = TID.try_with(|t| t.set(0));
}

/// The calling thread's id (Linux's `gettid`), cached: `GetCurrentThreadId`, and the owner of a
/// `CRITICAL_SECTION`.
pub(crate) fn current_tid() -> u32 {
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only writes a thread-local without a destructor.
        unsafe { libc::pthread_atfork(None, None, Some(forget_tid_in_child)) };
    });
    TID.with(|t| {
        if t.get() == 0 {
            // SAFETY: gettid takes no arguments and cannot fail.
            t.set(unsafe { libc::gettid() } as u32);
        }
        t.get()
    })
}

/// Threads that have ended their routine, to be joined and then signalled.
struct Reaper {
    queue: Mutex<Ended>,
    cv: Condvar,
}

struct Ended {
    /// The threads to join.
    threads: VecDeque<(libc::pthread_t, Arc<ThreadObj>)>,
    /// The process the reaper thread runs in (0: none yet).
    pid: u32,
}

static REAPER: Reaper = Reaper {
    queue: Mutex::new(Ended {
        threads: VecDeque::new(),
        pid: 0,
    }),
    cv: Condvar::new(),
};

/// Hands an ending thread to the reaper (starting it in this process if needed).
fn reap_later(native: libc::pthread_t, obj: Arc<ThreadObj>) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let mut q = lock(&REAPER.queue);
    if q.pid != pid {
        // First use in this process (or in a fork child: the parent's threads are not ours).
        q.threads.clear();
        let started = std::thread::Builder::new()
            .name("iocport-reaper".into())
            .spawn(reaper);
        if started.is_err() {
            drop(q);
            // No reaper: let the thread go and signal it now.
            // SAFETY: `native` is the calling thread, joinable and not joined by anyone.
            unsafe { libc::pthread_detach(native) };
            obj.ended.set();
            return;
        }
        q.pid = pid;
    }
    q.threads.push_back((native, obj));
    REAPER.cv.notify_one();
}

/// The reaper: joins each ended thread, then signals its handle.
fn reaper() {
    loop {
        let (native, obj) = {
            let mut q = lock(&REAPER.queue);
            loop {
                if let Some(next) = q.threads.pop_front() {
                    break next;
                }
                q = REAPER.cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        // SAFETY: a joinable thread of this process, queued once (at its end), joined once.
        unsafe { libc::pthread_join(native, std::ptr::null_mut()) };
        obj.ended.set();
    }
}

/// What the new thread needs: its object, its routine and the routine's parameter.
struct Start {
    obj: Arc<ThreadObj>,
    routine: ThreadStart,
    param: *mut c_void,
}

extern "C" {
    /// pthread_create, taking a "C-unwind" start routine (the same calling convention).
    #[link_name = "pthread_create"]
    fn pthread_create_unwind(
        native: *mut libc::pthread_t,
        attr: *const libc::pthread_attr_t,
        f: extern "C-unwind" fn(*mut c_void) -> *mut c_void,
        value: *mut c_void,
    ) -> c_int;
}

extern "C-unwind" {
    /// pthread_exit, which unwinds (glibc's forced unwind).
    #[link_name = "pthread_exit"]
    fn pthread_exit_unwind(retval: *mut c_void) -> !;
}

/// The new thread's first frame: a plain old frame (nothing with a destructor is live while the
/// start routine runs), so `ExitThread`'s forced unwind may cross it.
extern "C-unwind" fn trampoline(arg: *mut c_void) -> *mut c_void {
    let (routine, param) = enter(arg);
    // SAFETY: the program's start routine with its own parameter, as CreateThread was asked.
    let code = unsafe { routine(param) };
    leave(code);
    std::ptr::null_mut()
}

/// Reports the thread's id, waits while the thread is suspended, then puts the thread's object in
/// the thread-local. The id comes first: registering a thread-local destructor takes the dynamic
/// loader's lock, which a `CreateThread` called from a library constructor (under `dlopen`)
/// holds while it waits for the id.
#[inline(never)]
fn enter(arg: *mut c_void) -> (ThreadStart, *mut c_void) {
    // SAFETY: `arg` is the Box<Start> CreateThread leaked for this thread, taken back once.
    let start = unsafe { Box::from_raw(arg as *mut Start) };
    let Start {
        obj,
        routine,
        param,
    } = *start;
    {
        let mut g = lock(&obj.gate);
        g.tid = current_tid();
        obj.cv.notify_all();
        while g.suspend > 0 {
            g = obj.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
    CURRENT.with(|c| *c.0.borrow_mut() = Some(obj));
    (routine, param)
}

/// Records the exit code of the calling thread, if `CreateThread` made it; the thread-local's
/// destructor signals the end.
#[inline(never)]
fn leave(code: DWORD) {
    let _ = CURRENT.try_with(|c| {
        if let Some(obj) = c.0.borrow().as_ref() {
            obj.exit.store(code, Ordering::Release);
        }
    });
}

/// The stack a thread gets for `dwStackSize`. Without `STACK_SIZE_PARAM_IS_A_RESERVATION`
/// Windows takes the size as the initial commit and reserves at least the program's default
/// (1 MiB), so only a larger size counts, and 0 (the system's default, 8 MiB on most Linux
/// systems) otherwise; with the flag it is the size, at least `PTHREAD_STACK_MIN`. Whole pages.
/// `None` if that overflows.
fn stack_size(requested: usize, flags: DWORD) -> Option<usize> {
    const WINDOWS_DEFAULT_RESERVE: usize = 1 << 20;
    let size = if flags & STACK_SIZE_PARAM_IS_A_RESERVATION != 0 && requested != 0 {
        requested.max(libc::PTHREAD_STACK_MIN)
    } else if requested > WINDOWS_DEFAULT_RESERVE {
        requested
    } else {
        return Some(0);
    };
    // SAFETY: sysconf reads a system value; it has no memory arguments.
    let page = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as usize;
    size.checked_next_multiple_of(page)
}

fn new_obj(suspended: bool) -> Arc<ThreadObj> {
    Arc::new(ThreadObj {
        ended: Arc::new(Signal::new(true, false)),
        exit: AtomicU32::new(STILL_ACTIVE),
        gate: Mutex::new(Gate {
            tid: 0,
            suspend: u32::from(suspended),
        }),
        cv: Condvar::new(),
    })
}

/// Starts a thread; its handle, or the last error to fail with.
fn create_thread(
    stack: usize,
    routine: Option<ThreadStart>,
    param: *mut c_void,
    flags: DWORD,
    id_out: *mut DWORD,
) -> Result<HANDLE, DWORD> {
    let Some(routine) = routine else {
        return Err(ERROR_INVALID_PARAMETER);
    };
    if flags & !(CREATE_SUSPENDED | STACK_SIZE_PARAM_IS_A_RESERVATION) != 0 {
        return Err(ERROR_INVALID_PARAMETER);
    }
    let stack = stack_size(stack, flags).ok_or(ERROR_NOT_ENOUGH_MEMORY)?;
    let obj = new_obj(flags & CREATE_SUSPENDED != 0);
    let handle = handles::insert(Object::Thread(obj.clone())).ok_or(ERROR_NOT_ENOUGH_MEMORY)?;
    if let Err(e) = start_thread(&obj, stack, routine, param) {
        handles::remove(handle);
        return Err(e);
    }
    if !id_out.is_null() {
        // SAFETY: not NULL: the caller's out-parameter.
        unsafe { *id_out = obj.tid() };
    }
    Ok(handle)
}

/// Starts a thread with no handle, for the library's own use: console control events run on
/// these, so that `ExitThread` in a handler ends only that thread, as on Windows.
pub(crate) fn spawn(routine: ThreadStart, param: *mut c_void) -> Result<(), DWORD> {
    start_thread(&new_obj(false), 0, routine, param)
}

/// Creates the pthread of `obj` (joinable: the reaper joins it) and waits for its id.
fn start_thread(
    obj: &Arc<ThreadObj>,
    stack: usize,
    routine: ThreadStart,
    param: *mut c_void,
) -> Result<(), DWORD> {
    let start = Box::into_raw(Box::new(Start {
        obj: obj.clone(),
        routine,
        param,
    }));
    // SAFETY: attr is initialised before use and destroyed after; pthread_create gets a valid
    // start routine and the Box<Start> it takes over.
    let rc = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        let mut rc = 0;
        if stack != 0 {
            rc = libc::pthread_attr_setstacksize(&mut attr, stack);
        }
        if rc == 0 {
            let mut native: libc::pthread_t = 0;
            rc = pthread_create_unwind(&mut native, &attr, trampoline, start as *mut c_void);
        }
        libc::pthread_attr_destroy(&mut attr);
        rc
    };
    if rc != 0 {
        // SAFETY: the thread was not created, so `start` is still ours, taken back once.
        drop(unsafe { Box::from_raw(start) });
        return Err(if rc == libc::EINVAL {
            ERROR_INVALID_PARAMETER
        } else {
            ERROR_NOT_ENOUGH_MEMORY
        });
    }
    // The id is the new thread's own: wait for it to say it (a suspended thread says it too).
    let mut g = lock(&obj.gate);
    while g.tid == 0 {
        g = obj.cv.wait(g).unwrap_or_else(|e| e.into_inner());
    }
    Ok(())
}

/// The thread object a handle names.
fn thread_of(h: HANDLE) -> Result<Arc<ThreadObj>, DWORD> {
    match handles::get(h) {
        Some(Object::Thread(t)) => Ok(t),
        _ => Err(ERROR_INVALID_HANDLE),
    }
}

/// Starts a thread running `lpStartAddress(lpParameter)`.
#[no_mangle]
pub unsafe extern "C" fn CreateThread(
    _lpThreadAttributes: *mut c_void,
    dwStackSize: SIZE_T,
    lpStartAddress: Option<ThreadStart>,
    lpParameter: *mut c_void,
    dwCreationFlags: DWORD,
    lpThreadId: *mut DWORD,
) -> HANDLE {
    guard(std::ptr::null_mut(), || {
        match create_thread(
            dwStackSize,
            lpStartAddress,
            lpParameter,
            dwCreationFlags,
            lpThreadId,
        ) {
            Ok(h) => h,
            Err(e) => {
                set_last_error(e);
                std::ptr::null_mut()
            }
        }
    })
}

/// The C runtime's thread start: as `CreateThread`; 0 and `errno` (EINVAL, EAGAIN) on failure.
#[no_mangle]
pub unsafe extern "C" fn _beginthreadex(
    _security: *mut c_void,
    stack_size: c_uint,
    start_address: Option<ThreadStart>,
    arglist: *mut c_void,
    initflag: c_uint,
    thrdaddr: *mut c_uint,
) -> usize {
    guard(0, || {
        match create_thread(
            stack_size as usize,
            start_address,
            arglist,
            initflag,
            thrdaddr,
        ) {
            Ok(h) => h as usize,
            Err(e) => {
                set_last_error(e);
                let errno = if e == ERROR_INVALID_PARAMETER {
                    libc::EINVAL
                } else {
                    libc::EAGAIN
                };
                // SAFETY: errno is this thread's.
                unsafe { *libc::__errno_location() = errno };
                0
            }
        }
    })
}

/// Ends the calling thread with `dwExitCode`: its handle becomes signalled and
/// `GetExitCodeThread` gives the code. The stack unwinds (C++ destructors run, as with
/// `pthread_exit`).
#[no_mangle]
pub unsafe extern "C-unwind" fn ExitThread(dwExitCode: DWORD) -> ! {
    leave(dwExitCode);
    // SAFETY: ends this thread; every Rust frame the unwind crosses is a plain old frame
    // (`trampoline`, this function), as forced unwinding requires.
    unsafe { pthread_exit_unwind(std::ptr::null_mut()) }
}

/// `_beginthreadex`'s `ExitThread`.
#[no_mangle]
pub unsafe extern "C-unwind" fn _endthreadex(retval: c_uint) -> ! {
    leave(retval);
    // SAFETY: as in ExitThread.
    unsafe { pthread_exit_unwind(std::ptr::null_mut()) }
}

/// The calling thread's id (its Linux thread id).
#[no_mangle]
pub extern "C" fn GetCurrentThreadId() -> DWORD {
    current_tid()
}

/// A pseudo-handle meaning "the calling thread" (no need to close it).
#[no_mangle]
pub extern "C" fn GetCurrentThread() -> HANDLE {
    CURRENT_THREAD
}

/// The id of the thread `Thread` names; 0 with `ERROR_INVALID_HANDLE` if it names none.
#[no_mangle]
pub unsafe extern "C" fn GetThreadId(Thread: HANDLE) -> DWORD {
    guard(0, || {
        if Thread == CURRENT_THREAD {
            return current_tid();
        }
        match thread_of(Thread) {
            Ok(t) => t.tid(),
            Err(e) => {
                set_last_error(e);
                0
            }
        }
    })
}

/// The thread's exit code, or `STILL_ACTIVE` while it runs.
#[no_mangle]
pub unsafe extern "C" fn GetExitCodeThread(hThread: HANDLE, lpExitCode: *mut DWORD) -> BOOL {
    guard(FALSE, || {
        let code = if hThread == CURRENT_THREAD {
            STILL_ACTIVE
        } else {
            match thread_of(hThread) {
                Ok(t) => t.exit_code(),
                Err(e) => {
                    set_last_error(e);
                    return FALSE;
                }
            }
        };
        if lpExitCode.is_null() {
            set_last_error(ERROR_INVALID_PARAMETER);
            return FALSE;
        }
        // SAFETY: not NULL: the caller's out-parameter.
        unsafe { *lpExitCode = code };
        TRUE
    })
}

/// Takes one from a `CREATE_SUSPENDED` thread's suspend count, starting it at 0; returns the
/// count before (0 for a running thread), or `(DWORD)-1` with `ERROR_INVALID_HANDLE`.
#[no_mangle]
pub unsafe extern "C" fn ResumeThread(hThread: HANDLE) -> DWORD {
    guard(DWORD::MAX, || {
        if hThread == CURRENT_THREAD {
            return 0;
        }
        match thread_of(hThread) {
            Ok(t) => {
                let mut g = lock(&t.gate);
                let before = g.suspend;
                if before > 0 {
                    g.suspend -= 1;
                    if g.suspend == 0 {
                        t.cv.notify_all();
                    }
                }
                before
            }
            Err(e) => {
                set_last_error(e);
                DWORD::MAX
            }
        }
    })
}

/// Sleeps `dwMilliseconds` (`INFINITE`: for ever); `Sleep(0)` gives the CPU to another ready
/// thread, if any.
#[no_mangle]
pub extern "C" fn Sleep(dwMilliseconds: DWORD) {
    sleep_ms(dwMilliseconds);
}

/// Sleeps (a worker asleep does not count against its port's concurrency value, as on NT).
fn sleep_ms(ms: DWORD) {
    if ms == 0 {
        std::thread::yield_now();
        return;
    }
    let _blocked = iocport::enter_blocking();
    match ms {
        0 => {}
        INFINITE => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        ms => std::thread::sleep(Duration::from_millis(ms.into())),
    }
}

/// As `Sleep`. There are no APCs on Linux, so an alertable sleep is never cut short and the
/// result is always 0 (never `WAIT_IO_COMPLETION`).
#[no_mangle]
pub extern "C" fn SleepEx(dwMilliseconds: DWORD, _bAlertable: BOOL) -> DWORD {
    sleep_ms(dwMilliseconds);
    0
}

/// Gives the CPU to another ready thread (`sched_yield`). Linux does not say whether one ran:
/// the result is always TRUE.
#[no_mangle]
pub extern "C" fn SwitchToThread() -> BOOL {
    std::thread::yield_now();
    TRUE
}
