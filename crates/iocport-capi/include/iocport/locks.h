/*
 * iocport/locks.h: part of iocport/windows.h; include that header, not this one.
 *
 * CRITICAL_SECTION, SRWLOCK and CONDITION_VARIABLE with Windows' layouts (Win64) and semantics,
 * and the Interlocked family as inline functions (on x64 Windows these are compiler intrinsics;
 * here they are GCC/Clang __atomic builtins with __ATOMIC_SEQ_CST, Windows' full barrier).
 *
 * - A CRITICAL_SECTION is recursive. OwningThread holds the owner's thread id (GetCurrentThreadId,
 *   Linux's gettid) and RecursionCount its depth; LockCount reads -1 while free and -2 while held
 *   (Windows subtracts 4 more per waiting thread; iocport does not). LockSemaphore holds the lock
 *   word itself (Windows keeps an event handle there): non-zero while held or waited for.
 *   SpinCount holds the spin count and flags as Windows does (0x020007D0, "2000, dynamic", by
 *   default on a multiprocessor). DebugInfo is (PVOID)-1, as on Windows 8 and later; NULL once
 *   deleted.
 * - SRWLOCK and CONDITION_VARIABLE are one pointer-sized word; SRWLOCK_INIT and
 *   CONDITION_VARIABLE_INIT ({0}) are valid as they are, and need no destroying.
 * - A thread blocked in one of these (a contended lock, a condition-variable sleep) stops
 *   counting against its completion port's concurrency value, as on Windows.
 * - Misuse that Windows leaves undefined is harmless here where it can be seen: a Leave by a
 *   thread that does not own the section is ignored; DeleteCriticalSection releases a section the
 *   caller holds and leaves one another thread holds alone; releasing an SRW lock nobody holds
 *   is ignored (releasing it in the other mode than it is held in is undefined, as on Windows,
 *   and can leave it unusable); sleeping on a lock the caller does not hold fails with
 *   ERROR_NOT_OWNER. NULL pointers never crash: functions that return a value fail with
 *   ERROR_INVALID_PARAMETER, void ones do nothing and leave the last error alone.
 */
#ifndef IOCPORT_LOCKS_H
#define IOCPORT_LOCKS_H
#ifndef IOCPORT_WINDOWS_H
#error "include <iocport/windows.h>, not <iocport/locks.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * BOOLEAN and LONG64 are base.h's, which comes after this part: the same typedefs here (C11 and
 * C++ allow an identical typedef again), so this part stands on windows.h's types alone.
 */
typedef BYTE BOOLEAN, *PBOOLEAN;
typedef int64_t LONG64, *PLONG64;

#ifndef ERROR_NOT_OWNER
#define ERROR_NOT_OWNER 288L
#endif
#ifndef ERROR_TIMEOUT
#define ERROR_TIMEOUT 1460L
#endif

/* ---- CRITICAL_SECTION ------------------------------------------------------------------- */
typedef struct _RTL_CRITICAL_SECTION_DEBUG RTL_CRITICAL_SECTION_DEBUG,
    *PRTL_CRITICAL_SECTION_DEBUG; /* never allocated: DebugInfo is (PVOID)-1 */

typedef struct _RTL_CRITICAL_SECTION {
    PRTL_CRITICAL_SECTION_DEBUG DebugInfo;
    LONG LockCount;
    LONG RecursionCount;
    HANDLE OwningThread;  /* the owner's thread id (not a handle), as on Windows */
    HANDLE LockSemaphore; /* the lock word */
    ULONG_PTR SpinCount;
} RTL_CRITICAL_SECTION, *PRTL_CRITICAL_SECTION;
typedef RTL_CRITICAL_SECTION CRITICAL_SECTION, *PCRITICAL_SECTION, *LPCRITICAL_SECTION;

#define CRITICAL_SECTION_NO_DEBUG_INFO 0x01000000u
#define RTL_CRITICAL_SECTION_FLAG_NO_DEBUG_INFO 0x01000000u
#define RTL_CRITICAL_SECTION_FLAG_DYNAMIC_SPIN 0x02000000u
#define RTL_CRITICAL_SECTION_FLAG_STATIC_INIT 0x04000000u
#define RTL_CRITICAL_SECTION_FLAG_RESOURCE_TYPE 0x08000000u
#define RTL_CRITICAL_SECTION_FLAG_FORCE_DEBUG_INFO 0x10000000u

IOCP_STATIC_ASSERT(sizeof(CRITICAL_SECTION) == 40, "CRITICAL_SECTION is 40 bytes");
IOCP_STATIC_ASSERT(offsetof(CRITICAL_SECTION, LockCount) == 8, "LockCount at 8");
IOCP_STATIC_ASSERT(offsetof(CRITICAL_SECTION, RecursionCount) == 12, "RecursionCount at 12");
IOCP_STATIC_ASSERT(offsetof(CRITICAL_SECTION, OwningThread) == 16, "OwningThread at 16");
IOCP_STATIC_ASSERT(offsetof(CRITICAL_SECTION, LockSemaphore) == 24, "LockSemaphore at 24");
IOCP_STATIC_ASSERT(offsetof(CRITICAL_SECTION, SpinCount) == 32, "SpinCount at 32");

IOCP_API void WINAPI InitializeCriticalSection(LPCRITICAL_SECTION lpCriticalSection);
/* Always TRUE (FALSE/ERROR_INVALID_PARAMETER for NULL); the low 24 bits of the count are used. */
IOCP_API BOOL WINAPI InitializeCriticalSectionAndSpinCount(LPCRITICAL_SECTION lpCriticalSection,
                                                           DWORD dwSpinCount);
/* FALSE/ERROR_INVALID_PARAMETER for a count above 24 bits or flags outside 0x1FFFFFFF. */
IOCP_API BOOL WINAPI InitializeCriticalSectionEx(LPCRITICAL_SECTION lpCriticalSection,
                                                 DWORD dwSpinCount, DWORD Flags);
IOCP_API void WINAPI EnterCriticalSection(LPCRITICAL_SECTION lpCriticalSection);
IOCP_API BOOL WINAPI TryEnterCriticalSection(LPCRITICAL_SECTION lpCriticalSection);
IOCP_API void WINAPI LeaveCriticalSection(LPCRITICAL_SECTION lpCriticalSection);
IOCP_API void WINAPI DeleteCriticalSection(LPCRITICAL_SECTION lpCriticalSection);
/* Returns the previous SpinCount. */
IOCP_API DWORD WINAPI SetCriticalSectionSpinCount(LPCRITICAL_SECTION lpCriticalSection,
                                                  DWORD dwSpinCount);

/* ---- SRWLOCK ---------------------------------------------------------------------------- */
typedef struct _RTL_SRWLOCK {
    PVOID Ptr;
} RTL_SRWLOCK, *PRTL_SRWLOCK;
typedef RTL_SRWLOCK SRWLOCK, *PSRWLOCK;
#define RTL_SRWLOCK_INIT {0}
#define SRWLOCK_INIT RTL_SRWLOCK_INIT

IOCP_STATIC_ASSERT(sizeof(SRWLOCK) == sizeof(void *), "SRWLOCK is pointer-sized");

IOCP_API void WINAPI InitializeSRWLock(PSRWLOCK SRWLock);
IOCP_API void WINAPI AcquireSRWLockExclusive(PSRWLOCK SRWLock);
IOCP_API void WINAPI AcquireSRWLockShared(PSRWLOCK SRWLock);
IOCP_API void WINAPI ReleaseSRWLockExclusive(PSRWLOCK SRWLock);
IOCP_API void WINAPI ReleaseSRWLockShared(PSRWLOCK SRWLock);
IOCP_API BOOLEAN WINAPI TryAcquireSRWLockExclusive(PSRWLOCK SRWLock);
IOCP_API BOOLEAN WINAPI TryAcquireSRWLockShared(PSRWLOCK SRWLock);

/* ---- CONDITION_VARIABLE ----------------------------------------------------------------- */
typedef struct _RTL_CONDITION_VARIABLE {
    PVOID Ptr;
} RTL_CONDITION_VARIABLE, *PRTL_CONDITION_VARIABLE;
typedef RTL_CONDITION_VARIABLE CONDITION_VARIABLE, *PCONDITION_VARIABLE;
#define RTL_CONDITION_VARIABLE_INIT {0}
#define CONDITION_VARIABLE_INIT RTL_CONDITION_VARIABLE_INIT
#define CONDITION_VARIABLE_LOCKMODE_SHARED 0x1

IOCP_STATIC_ASSERT(sizeof(CONDITION_VARIABLE) == sizeof(void *),
                   "CONDITION_VARIABLE is pointer-sized");

IOCP_API void WINAPI InitializeConditionVariable(PCONDITION_VARIABLE ConditionVariable);
/* FALSE with ERROR_TIMEOUT when dwMilliseconds pass first; the lock is held again either way. */
IOCP_API BOOL WINAPI SleepConditionVariableCS(PCONDITION_VARIABLE ConditionVariable,
                                              PCRITICAL_SECTION CriticalSection,
                                              DWORD dwMilliseconds);
IOCP_API BOOL WINAPI SleepConditionVariableSRW(PCONDITION_VARIABLE ConditionVariable,
                                               PSRWLOCK SRWLock, DWORD dwMilliseconds,
                                               ULONG Flags);
IOCP_API void WINAPI WakeConditionVariable(PCONDITION_VARIABLE ConditionVariable);
IOCP_API void WINAPI WakeAllConditionVariable(PCONDITION_VARIABLE ConditionVariable);

/* ---- The Interlocked family ------------------------------------------------------------- */
/*
 * Full barriers, as on Windows. Increment, Decrement and Add return the new value; Exchange,
 * CompareExchange, ExchangeAdd, And, Or and Xor the old one. Arithmetic wraps (two's complement).
 * On x86 a sequentially consistent read-modify-write is a locked instruction, a full barrier by
 * itself; elsewhere a trailing fence makes it one, as MSVC does on ARM64.
 */
#if defined(__x86_64__) || defined(__i386__)
#define IOCPORT_TRAILING_FENCE_() ((void)0)
#else
#define IOCPORT_TRAILING_FENCE_() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif
static inline LONG InterlockedIncrement(LONG volatile *Addend)
{
    LONG r_ = __atomic_add_fetch(Addend, 1, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG InterlockedDecrement(LONG volatile *Addend)
{
    LONG r_ = __atomic_sub_fetch(Addend, 1, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG InterlockedExchange(LONG volatile *Target, LONG Value)
{
    LONG r_ = __atomic_exchange_n(Target, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG InterlockedCompareExchange(LONG volatile *Destination, LONG ExChange,
                                              LONG Comperand)
{
    /* On failure the builtin writes the value it found into Comperand: the old value either way. */
    __atomic_compare_exchange_n(Destination, &Comperand, ExChange, 0, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return Comperand;
}
static inline LONG InterlockedExchangeAdd(LONG volatile *Addend, LONG Value)
{
    LONG r_ = __atomic_fetch_add(Addend, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG InterlockedAdd(LONG volatile *Addend, LONG Value)
{
    LONG r_ = __atomic_add_fetch(Addend, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG InterlockedAnd(LONG volatile *Destination, LONG Value)
{
    LONG r_ = __atomic_fetch_and(Destination, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG InterlockedOr(LONG volatile *Destination, LONG Value)
{
    LONG r_ = __atomic_fetch_or(Destination, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG InterlockedXor(LONG volatile *Destination, LONG Value)
{
    LONG r_ = __atomic_fetch_xor(Destination, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}

static inline LONG64 InterlockedIncrement64(LONG64 volatile *Addend)
{
    LONG64 r_ = __atomic_add_fetch(Addend, 1, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG64 InterlockedDecrement64(LONG64 volatile *Addend)
{
    LONG64 r_ = __atomic_sub_fetch(Addend, 1, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG64 InterlockedExchange64(LONG64 volatile *Target, LONG64 Value)
{
    LONG64 r_ = __atomic_exchange_n(Target, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG64 InterlockedCompareExchange64(LONG64 volatile *Destination, LONG64 ExChange,
                                                  LONG64 Comperand)
{
    __atomic_compare_exchange_n(Destination, &Comperand, ExChange, 0, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return Comperand;
}
static inline LONG64 InterlockedExchangeAdd64(LONG64 volatile *Addend, LONG64 Value)
{
    LONG64 r_ = __atomic_fetch_add(Addend, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG64 InterlockedAdd64(LONG64 volatile *Addend, LONG64 Value)
{
    LONG64 r_ = __atomic_add_fetch(Addend, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG64 InterlockedAnd64(LONG64 volatile *Destination, LONG64 Value)
{
    LONG64 r_ = __atomic_fetch_and(Destination, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG64 InterlockedOr64(LONG64 volatile *Destination, LONG64 Value)
{
    LONG64 r_ = __atomic_fetch_or(Destination, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline LONG64 InterlockedXor64(LONG64 volatile *Destination, LONG64 Value)
{
    LONG64 r_ = __atomic_fetch_xor(Destination, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}

static inline PVOID InterlockedExchangePointer(PVOID volatile *Target, PVOID Value)
{
    PVOID r_ = __atomic_exchange_n(Target, Value, __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return r_;
}
static inline PVOID InterlockedCompareExchangePointer(PVOID volatile *Destination, PVOID Exchange,
                                                      PVOID Comperand)
{
    __atomic_compare_exchange_n(Destination, &Comperand, Exchange, 0, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    IOCPORT_TRAILING_FENCE_();
    return Comperand;
}

/* A full memory barrier and a spin-wait hint, macros as on Windows. */
static inline void iocport_memory_barrier_(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
static inline void iocport_yield_processor_(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}
#define MemoryBarrier iocport_memory_barrier_
#define YieldProcessor iocport_yield_processor_

#ifdef __cplusplus
}
#endif
#endif /* IOCPORT_LOCKS_H */
