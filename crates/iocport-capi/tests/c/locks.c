/*
 * CRITICAL_SECTION, SRWLOCK and CONDITION_VARIABLE with Windows' results: the section's fields
 * as Windows shows them (LockCount, RecursionCount, OwningThread = the owner's thread id,
 * SpinCount, DebugInfo), recursion, TryEnter from another thread, InitializeCriticalSectionEx's
 * parameter checks; readers sharing an SRW lock while a writer excludes them; condition variables
 * with producers and consumers, no lost wake-up, timeouts (ERROR_TIMEOUT after at least the
 * timeout), a recursively entered section released fully and restored across a sleep, Wake
 * against WakeAll, shared-mode sleeps; a thread blocked in these stops counting against its
 * port's concurrency value; misuse Windows leaves undefined, and NULL for every entry point.
 *
 * Threads are pthreads; every wait is bounded (timeouts, wait_flag, the program's deadline).
 */
#include "common.h"

/* The calling thread's id, as OwningThread holds it (GetCurrentThreadId: Linux's gettid). */
#define TID() ((HANDLE)(uintptr_t)gettid())

/* How long a sleep that must be woken may take before the test calls the wake-up lost. */
#define WAKE_MS 10000u

static int multiprocessor;

/* What SpinCount holds for a spin count of 0: 2000 with the dynamic-spin flag, 0 on one CPU. */
static ULONG_PTR default_spin(void)
{
    return multiprocessor ? (ULONG_PTR)0x020007D0u : 0;
}

/* ---- Running a probe on another thread ---------------------------------------------------- */

typedef int (*probe_fn)(void *);

struct probe {
    probe_fn fn;
    void *arg;
    int result;
};

static void *probe_main(void *p)
{
    struct probe *pr = (struct probe *)p;
    pr->result = pr->fn(pr->arg);
    return NULL;
}

/* Runs fn(arg) on a new thread (fn never blocks) and returns its result. */
static int on_other_thread(probe_fn fn, void *arg)
{
    pthread_t t;
    struct probe pr;
    pr.fn = fn;
    pr.arg = arg;
    pr.result = -1;
    CHECK_EQ(pthread_create(&t, NULL, probe_main, &pr), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    return pr.result;
}

/* TryEnterCriticalSection from this thread: on success the section is this thread's at depth 1
 * (then left); on failure the last error is untouched, as on Windows. */
static int try_enter_probe(void *arg)
{
    CRITICAL_SECTION *cs = (CRITICAL_SECTION *)arg;
    BOOL r;
    SetLastError(4321);
    r = TryEnterCriticalSection(cs);
    if (r) {
        CHECK_EQ(r, TRUE);
        CHECK_EQ(cs->OwningThread, TID());
        CHECK_EQ(cs->RecursionCount, 1);
        CHECK_EQ(cs->LockCount, -2);
        LeaveCriticalSection(cs);
    } else {
        CHECK_ERR(4321);
    }
    return r;
}

static int try_exclusive_probe(void *arg)
{
    SRWLOCK *l = (SRWLOCK *)arg;
    BOOLEAN r = TryAcquireSRWLockExclusive(l);
    CHECK(r == TRUE || r == FALSE);
    if (r) {
        ReleaseSRWLockExclusive(l);
    }
    return r;
}

static int try_shared_probe(void *arg)
{
    SRWLOCK *l = (SRWLOCK *)arg;
    BOOLEAN r = TryAcquireSRWLockShared(l);
    CHECK(r == TRUE || r == FALSE);
    if (r) {
        ReleaseSRWLockShared(l);
    }
    return r;
}

/* A thread that holds a section (or an SRW lock, exclusive or shared) until told to let go. */
struct holder {
    CRITICAL_SECTION *cs;
    SRWLOCK *srw;
    int shared;
    HANDLE tid;
    int holding;
    int release;
    pthread_t thread;
};

static void *holder_main(void *arg)
{
    struct holder *h = (struct holder *)arg;
    if (h->cs) {
        EnterCriticalSection(h->cs);
    } else if (h->shared) {
        AcquireSRWLockShared(h->srw);
    } else {
        AcquireSRWLockExclusive(h->srw);
    }
    h->tid = TID();
    ASTORE(&h->holding, 1);
    wait_flag(&h->release, PACKET_WAIT_MS);
    if (h->cs) {
        LeaveCriticalSection(h->cs);
    } else if (h->shared) {
        ReleaseSRWLockShared(h->srw);
    } else {
        ReleaseSRWLockExclusive(h->srw);
    }
    return NULL;
}

static void hold(struct holder *h, CRITICAL_SECTION *cs, SRWLOCK *srw, int shared)
{
    memset(h, 0, sizeof *h);
    h->cs = cs;
    h->srw = srw;
    h->shared = shared;
    CHECK_EQ(pthread_create(&h->thread, NULL, holder_main, h), 0);
    wait_flag(&h->holding, PACKET_WAIT_MS);
}

static void let_go(struct holder *h)
{
    ASTORE(&h->release, 1);
    CHECK_EQ(pthread_join(h->thread, NULL), 0);
}

/* ---- CRITICAL_SECTION -------------------------------------------------------------------- */

static void cs_fields(void)
{
    CRITICAL_SECTION cs;

    test_step("CRITICAL_SECTION: Windows' fields when free, entered and entered again");
    memset(&cs, 0xab, sizeof cs);
    InitializeCriticalSection(&cs);
    CHECK_EQ(cs.DebugInfo, (PRTL_CRITICAL_SECTION_DEBUG)(intptr_t)-1);
    CHECK_EQ(cs.LockCount, -1);
    CHECK_EQ(cs.RecursionCount, 0);
    CHECK_EQ(cs.OwningThread, NULL);
    CHECK_EQ(cs.LockSemaphore, NULL);
    CHECK_EQ(cs.SpinCount, default_spin());

    EnterCriticalSection(&cs);
    CHECK_EQ(cs.LockCount, -2);
    CHECK_EQ(cs.RecursionCount, 1);
    CHECK_EQ(cs.OwningThread, TID());
    EnterCriticalSection(&cs);
    CHECK_EQ(cs.RecursionCount, 2);
    CHECK_EQ(TryEnterCriticalSection(&cs), TRUE);
    CHECK_EQ(cs.RecursionCount, 3);
    CHECK_EQ(cs.OwningThread, TID());
    CHECK_EQ(cs.LockCount, -2);
    CHECK_EQ(cs.SpinCount, default_spin());

    LeaveCriticalSection(&cs);
    CHECK_EQ(cs.RecursionCount, 2);
    LeaveCriticalSection(&cs);
    CHECK_EQ(cs.RecursionCount, 1);
    CHECK_EQ(cs.OwningThread, TID());
    LeaveCriticalSection(&cs);
    CHECK_EQ(cs.RecursionCount, 0);
    CHECK_EQ(cs.OwningThread, NULL);
    CHECK_EQ(cs.LockCount, -1);
    CHECK_EQ(cs.LockSemaphore, NULL);

    test_step("DeleteCriticalSection: DebugInfo NULL; InitializeCriticalSection again works");
    DeleteCriticalSection(&cs);
    CHECK_EQ(cs.DebugInfo, NULL);
    InitializeCriticalSection(&cs);
    EnterCriticalSection(&cs);
    CHECK_EQ(cs.RecursionCount, 1);
    LeaveCriticalSection(&cs);
    DeleteCriticalSection(&cs);
}

static void cs_spin_counts(void)
{
    CRITICAL_SECTION cs;
    ULONG_PTR def = default_spin();
    ULONG_PTR one = multiprocessor ? 1 : 0; /* counts stay 0 on a uniprocessor */
    int i;

    test_step("InitializeCriticalSectionAndSpinCount: TRUE; the low 24 bits; 0 is the default");
    CHECK_EQ(InitializeCriticalSectionAndSpinCount(&cs, 0), TRUE);
    CHECK_EQ(cs.SpinCount, def);
    CHECK_EQ(cs.LockCount, -1);
    CHECK_EQ(cs.OwningThread, NULL);
    CHECK_EQ(InitializeCriticalSectionAndSpinCount(&cs, 0x1234), TRUE);
    CHECK_EQ(cs.SpinCount, 0x1234 * one);
    CHECK_EQ(InitializeCriticalSectionAndSpinCount(&cs, 0xFF000000u), TRUE);
    CHECK_EQ(cs.SpinCount, def);
    CHECK_EQ(InitializeCriticalSectionAndSpinCount(&cs, 0x80000400u), TRUE);
    CHECK_EQ(cs.SpinCount, 0x400 * one);

    test_step("InitializeCriticalSectionEx: counts above 24 bits and flags outside 0x1FFFFFFF "
              "fail with ERROR_INVALID_PARAMETER");
    CHECK_EQ(InitializeCriticalSectionEx(&cs, 0, 0), TRUE);
    CHECK_EQ(cs.SpinCount, def);
    CHECK_EQ(cs.DebugInfo, (PRTL_CRITICAL_SECTION_DEBUG)(intptr_t)-1);
    CHECK_EQ(InitializeCriticalSectionEx(&cs, 0x00FFFFFF, 0), TRUE);
    CHECK_EQ(cs.SpinCount, 0x00FFFFFF * one);
    CHECK_EQ(InitializeCriticalSectionEx(&cs, 4000, CRITICAL_SECTION_NO_DEBUG_INFO), TRUE);
    CHECK_EQ(cs.SpinCount, (4000 * one) | CRITICAL_SECTION_NO_DEBUG_INFO);
    SetLastError(0);
    CHECK_EQ(InitializeCriticalSectionEx(&cs, 0x01000000, 0), FALSE);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(InitializeCriticalSectionEx(&cs, 0x80000000u, 0), FALSE);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(InitializeCriticalSectionEx(&cs, 0, 0xFFFFFFFFu), FALSE);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    /* Every single flag bit: Windows 7 and later accept 0x1FFFFFFF and keep
     * NO_DEBUG_INFO, DYNAMIC_SPIN and RESOURCE_TYPE in SpinCount. */
    for (i = 0; i < 32; i++) {
        DWORD flags = (DWORD)1u << i;
        BOOL ok;
        SetLastError(0);
        ok = InitializeCriticalSectionEx(&cs, 0, flags);
        if (flags & ~0x1FFFFFFFu) {
            CHECK_EQ(ok, FALSE);
            CHECK_ERR(ERROR_INVALID_PARAMETER);
        } else {
            CHECK_EQ(ok, TRUE);
            CHECK_EQ(cs.SpinCount, def | (flags & 0x0B000000u));
            CHECK_EQ(cs.LockCount, -1);
        }
    }
    CHECK_EQ(InitializeCriticalSectionEx(&cs, 0, RTL_CRITICAL_SECTION_FLAG_FORCE_DEBUG_INFO),
             TRUE);
    /* Windows allocates debug information here; iocport never does. */
    CHECK_EQ(cs.DebugInfo, (PRTL_CRITICAL_SECTION_DEBUG)(intptr_t)-1);

    test_step("SetCriticalSectionSpinCount returns the previous SpinCount");
    InitializeCriticalSection(&cs);
    CHECK_EQ(SetCriticalSectionSpinCount(&cs, 4000), def);
    CHECK_EQ(cs.SpinCount, 4000 * one);
    CHECK_EQ(SetCriticalSectionSpinCount(&cs, 0), 4000 * one);
    CHECK_EQ(cs.SpinCount, 0);
    DeleteCriticalSection(&cs);
}

static void cs_other_threads(void)
{
    CRITICAL_SECTION cs;
    struct holder h;

    test_step("TryEnter from another thread fails while the section is held (at any depth) and "
              "succeeds once it is left");
    InitializeCriticalSection(&cs);
    EnterCriticalSection(&cs);
    EnterCriticalSection(&cs);
    CHECK_EQ(on_other_thread(try_enter_probe, &cs), FALSE);
    LeaveCriticalSection(&cs);
    CHECK_EQ(on_other_thread(try_enter_probe, &cs), FALSE);
    CHECK_EQ(cs.OwningThread, TID());
    LeaveCriticalSection(&cs);
    CHECK_EQ(on_other_thread(try_enter_probe, &cs), TRUE);
    CHECK_EQ(cs.OwningThread, NULL);

    test_step("held by another thread: OwningThread is its id; TryEnter here fails");
    hold(&h, &cs, NULL, 0);
    CHECK_EQ(cs.OwningThread, h.tid);
    CHECK_NE(h.tid, TID());
    CHECK_EQ(cs.RecursionCount, 1);
    SetLastError(4321);
    CHECK_EQ(TryEnterCriticalSection(&cs), FALSE);
    CHECK_ERR(4321);
    let_go(&h);
    CHECK_EQ(TryEnterCriticalSection(&cs), TRUE);
    CHECK_EQ(cs.OwningThread, TID());
    LeaveCriticalSection(&cs);
    DeleteCriticalSection(&cs);
}

struct enterer {
    CRITICAL_SECTION *cs;
    int trying;
    int entered;
    HANDLE owner_seen;
};

static void *enterer_main(void *arg)
{
    struct enterer *e = (struct enterer *)arg;
    ASTORE(&e->trying, 1);
    EnterCriticalSection(e->cs);
    e->owner_seen = e->cs->OwningThread;
    CHECK_EQ(e->owner_seen, TID());
    CHECK_EQ(e->cs->RecursionCount, 1);
    ASTORE(&e->entered, 1);
    LeaveCriticalSection(e->cs);
    return NULL;
}

static void cs_blocking_enter(void)
{
    CRITICAL_SECTION cs;
    struct enterer e;
    pthread_t t;

    test_step("EnterCriticalSection waits while another thread holds the section");
    InitializeCriticalSectionAndSpinCount(&cs, 4000);
    memset(&e, 0, sizeof e);
    e.cs = &cs;
    EnterCriticalSection(&cs);
    CHECK_EQ(pthread_create(&t, NULL, enterer_main, &e), 0);
    wait_flag(&e.trying, PACKET_WAIT_MS);
    sleep_ms(100);
    CHECK(!ALOAD(&e.entered));
    CHECK_EQ(cs.OwningThread, TID());
    LeaveCriticalSection(&cs);
    wait_flag(&e.entered, PACKET_WAIT_MS);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(cs.OwningThread, NULL);
    DeleteCriticalSection(&cs);
}

/* ---- Counting under each lock ------------------------------------------------------------ */

#define THREADS 4
#define ROUNDS 40000

enum how { BY_ENTER, BY_TRY_ENTER, BY_SRW };

struct counting {
    enum how how;
    CRITICAL_SECTION cs;
    SRWLOCK srw;
    long a, b; /* plain: only the lock keeps the increments whole */
    int writers_done;
    long reads;
};

static void *count_main(void *arg)
{
    struct counting *c = (struct counting *)arg;
    int i;
    for (i = 0; i < ROUNDS; i++) {
        switch (c->how) {
        case BY_ENTER:
            EnterCriticalSection(&c->cs);
            if (i & 1) {
                EnterCriticalSection(&c->cs); /* recursively, now and then */
            }
            c->a++;
            if (i & 1) {
                LeaveCriticalSection(&c->cs);
            }
            LeaveCriticalSection(&c->cs);
            break;
        case BY_TRY_ENTER:
            while (!TryEnterCriticalSection(&c->cs)) {
                sched_yield();
            }
            c->a++;
            LeaveCriticalSection(&c->cs);
            break;
        case BY_SRW:
            AcquireSRWLockExclusive(&c->srw);
            c->a++;
            c->b++;
            ReleaseSRWLockExclusive(&c->srw);
            break;
        }
    }
    return NULL;
}

/* Reads a and b shared until the writers are done: they are always equal. */
static void *read_main(void *arg)
{
    struct counting *c = (struct counting *)arg;
    while (!ALOAD(&c->writers_done)) {
        AcquireSRWLockShared(&c->srw);
        CHECK_EQ(c->a, c->b);
        c->reads++; /* one reader thread only */
        ReleaseSRWLockShared(&c->srw);
    }
    return NULL;
}

static void count_under(enum how how, DWORD spin)
{
    static struct counting c; /* static: zeroed, so the SRW lock starts as SRWLOCK_INIT */
    pthread_t t[THREADS], reader;
    int i;

    memset(&c, 0, sizeof c);
    c.how = how;
    InitializeCriticalSectionAndSpinCount(&c.cs, spin);
    if (how == BY_SRW) {
        CHECK_EQ(pthread_create(&reader, NULL, read_main, &c), 0);
    }
    for (i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_create(&t[i], NULL, count_main, &c), 0);
    }
    for (i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    }
    ASTORE(&c.writers_done, 1);
    if (how == BY_SRW) {
        CHECK_EQ(pthread_join(reader, NULL), 0);
        CHECK_EQ(c.b, (long)THREADS * ROUNDS);
    }
    CHECK_EQ(c.a, (long)THREADS * ROUNDS);
    CHECK_EQ(c.cs.OwningThread, NULL);
    CHECK_EQ(c.cs.RecursionCount, 0);
    DeleteCriticalSection(&c.cs);
}

static void counts(void)
{
    test_step("%d threads x %d increments under EnterCriticalSection (spin 0, recursive "
              "half the time): exactly %d", THREADS, ROUNDS, THREADS * ROUNDS);
    count_under(BY_ENTER, 0);
    test_step("the same with a spin count of 4000");
    count_under(BY_ENTER, 4000);
    test_step("the same through TryEnterCriticalSection");
    count_under(BY_TRY_ENTER, 0);
    test_step("the same under AcquireSRWLockExclusive, with a reader checking shared");
    count_under(BY_SRW, 0);
}

/* ---- SRWLOCK ----------------------------------------------------------------------------- */

static void srw_basics(void)
{
    SRWLOCK init = SRWLOCK_INIT;
    SRWLOCK l;

    test_step("SRWLOCK: pointer-sized, SRWLOCK_INIT is 0, InitializeSRWLock zeroes it");
    CHECK_EQ(sizeof(SRWLOCK), sizeof(void *));
    CHECK_EQ(sizeof(BOOLEAN), 1);
    CHECK_EQ(init.Ptr, NULL);
    memset(&l, 0xab, sizeof l);
    InitializeSRWLock(&l);
    CHECK_EQ(l.Ptr, NULL);

    test_step("exclusive: TryAcquire of either kind fails elsewhere; TRUE is 1 (BOOLEAN)");
    CHECK_EQ(TryAcquireSRWLockExclusive(&init), TRUE);
    CHECK_EQ(TryAcquireSRWLockExclusive(&init), FALSE); /* not recursive */
    CHECK_EQ(TryAcquireSRWLockShared(&init), FALSE);
    CHECK_EQ(on_other_thread(try_exclusive_probe, &init), FALSE);
    CHECK_EQ(on_other_thread(try_shared_probe, &init), FALSE);
    ReleaseSRWLockExclusive(&init);
    CHECK_EQ(init.Ptr, NULL);
    CHECK_EQ(on_other_thread(try_exclusive_probe, &init), TRUE);

    test_step("shared: other readers get in, writers do not");
    AcquireSRWLockShared(&l);
    CHECK_EQ(on_other_thread(try_shared_probe, &l), TRUE);
    CHECK_EQ(on_other_thread(try_exclusive_probe, &l), FALSE);
    CHECK_EQ(TryAcquireSRWLockShared(&l), TRUE);
    ReleaseSRWLockShared(&l);
    CHECK_EQ(on_other_thread(try_exclusive_probe, &l), FALSE);
    ReleaseSRWLockShared(&l);
    CHECK_EQ(on_other_thread(try_exclusive_probe, &l), TRUE);
    CHECK_EQ(l.Ptr, NULL);

    test_step("AcquireSRWLockExclusive then AcquireSRWLockShared on a free lock");
    AcquireSRWLockExclusive(&l);
    CHECK_EQ(on_other_thread(try_shared_probe, &l), FALSE);
    ReleaseSRWLockExclusive(&l);
    AcquireSRWLockShared(&l);
    CHECK_EQ(on_other_thread(try_shared_probe, &l), TRUE);
    ReleaseSRWLockShared(&l);
}

struct readers {
    SRWLOCK l;
    int inside;
    int leave;
    int writer_trying;
    int writer_in;
};

static void *reader_main(void *arg)
{
    struct readers *r = (struct readers *)arg;
    uint64_t end = now_ms() + PACKET_WAIT_MS;
    AcquireSRWLockShared(&r->l);
    AADD(&r->inside, 1);
    /* All readers are inside at once: the lock is shared. */
    while (ALOAD(&r->inside) < 3) {
        BREAK_IF_LATE(end);
        sleep_ms(1);
    }
    wait_flag(&r->leave, PACKET_WAIT_MS);
    AADD(&r->inside, -1);
    ReleaseSRWLockShared(&r->l);
    return NULL;
}

static void *writer_main(void *arg)
{
    struct readers *r = (struct readers *)arg;
    ASTORE(&r->writer_trying, 1);
    AcquireSRWLockExclusive(&r->l);
    CHECK_EQ(ALOAD(&r->inside), 0);
    ASTORE(&r->writer_in, 1);
    ReleaseSRWLockExclusive(&r->l);
    return NULL;
}

static void srw_readers_share(void)
{
    static struct readers r;
    pthread_t t[3], w;
    int i;

    test_step("three readers hold an SRW lock at once; a writer waits until they leave");
    memset(&r, 0, sizeof r);
    InitializeSRWLock(&r.l);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(pthread_create(&t[i], NULL, reader_main, &r), 0);
    }
    {
        uint64_t end = now_ms() + PACKET_WAIT_MS;
        while (ALOAD(&r.inside) < 3) {
            BREAK_IF_LATE(end);
            sleep_ms(1);
        }
    }
    CHECK_EQ(pthread_create(&w, NULL, writer_main, &r), 0);
    wait_flag(&r.writer_trying, PACKET_WAIT_MS);
    sleep_ms(100);
    CHECK(!ALOAD(&r.writer_in));
    ASTORE(&r.leave, 1);
    wait_flag(&r.writer_in, PACKET_WAIT_MS);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    }
    CHECK_EQ(pthread_join(w, NULL), 0);
    CHECK_EQ(r.l.Ptr, NULL);
}

/* ---- CONDITION_VARIABLE ------------------------------------------------------------------ */

static void cv_timeouts(void)
{
    CRITICAL_SECTION cs;
    CONDITION_VARIABLE cv = CONDITION_VARIABLE_INIT;
    SRWLOCK l = SRWLOCK_INIT;
    uint64_t start, took;

    test_step("CONDITION_VARIABLE: pointer-sized, CONDITION_VARIABLE_INIT is 0");
    CHECK_EQ(sizeof(CONDITION_VARIABLE), sizeof(void *));
    CHECK_EQ(cv.Ptr, NULL);
    InitializeConditionVariable(&cv);
    CHECK_EQ(cv.Ptr, NULL);

    test_step("SleepConditionVariableCS times out: FALSE, ERROR_TIMEOUT, after at least 100 ms, "
              "the section held again at its depth");
    InitializeCriticalSection(&cs);
    EnterCriticalSection(&cs);
    EnterCriticalSection(&cs);
    SetLastError(0);
    start = now_ms();
    CHECK_EQ(SleepConditionVariableCS(&cv, &cs, 100), FALSE);
    took = now_ms() - start;
    CHECK_ERR(ERROR_TIMEOUT);
    CHECK(took >= 100);
    CHECK(took < 100 + PACKET_WAIT_MS);
    CHECK_EQ(cs.OwningThread, TID());
    CHECK_EQ(cs.RecursionCount, 2);
    CHECK_EQ(cs.LockCount, -2);
    CHECK_EQ(on_other_thread(try_enter_probe, &cs), FALSE);

    test_step("a timeout of 0 returns at once with ERROR_TIMEOUT");
    SetLastError(0);
    start = now_ms();
    CHECK_EQ(SleepConditionVariableCS(&cv, &cs, 0), FALSE);
    CHECK_ERR(ERROR_TIMEOUT);
    CHECK(now_ms() - start < PACKET_WAIT_MS);
    CHECK_EQ(cs.RecursionCount, 2);
    LeaveCriticalSection(&cs);
    LeaveCriticalSection(&cs);
    DeleteCriticalSection(&cs);

    test_step("SleepConditionVariableSRW times out, exclusive: the lock is held exclusively after");
    AcquireSRWLockExclusive(&l);
    SetLastError(0);
    start = now_ms();
    CHECK_EQ(SleepConditionVariableSRW(&cv, &l, 50, 0), FALSE);
    took = now_ms() - start;
    CHECK_ERR(ERROR_TIMEOUT);
    CHECK(took >= 50);
    CHECK_EQ(on_other_thread(try_shared_probe, &l), FALSE);
    ReleaseSRWLockExclusive(&l);

    test_step("SleepConditionVariableSRW times out, shared: the lock is held shared after");
    AcquireSRWLockShared(&l);
    SetLastError(0);
    start = now_ms();
    CHECK_EQ(SleepConditionVariableSRW(&cv, &l, 50, CONDITION_VARIABLE_LOCKMODE_SHARED), FALSE);
    took = now_ms() - start;
    CHECK_ERR(ERROR_TIMEOUT);
    CHECK(took >= 50);
    CHECK_EQ(on_other_thread(try_shared_probe, &l), TRUE);
    CHECK_EQ(on_other_thread(try_exclusive_probe, &l), FALSE);
    ReleaseSRWLockShared(&l);
    CHECK_EQ(l.Ptr, NULL);
}

struct recursive {
    CRITICAL_SECTION cs;
    CONDITION_VARIABLE cv;
    int ready; /* under cs */
    int entered_while_asleep;
};

static void *recursive_waker(void *arg)
{
    struct recursive *r = (struct recursive *)arg;
    uint64_t end = now_ms() + PACKET_WAIT_MS;
    /* The main thread holds the section three deep until its sleep releases it fully. */
    while (!TryEnterCriticalSection(&r->cs)) {
        BREAK_IF_LATE(end);
        sleep_ms(1);
    }
    CHECK_EQ(r->cs.OwningThread, TID());
    CHECK_EQ(r->cs.RecursionCount, 1);
    ASTORE(&r->entered_while_asleep, 1);
    r->ready = 1;
    LeaveCriticalSection(&r->cs);
    WakeConditionVariable(&r->cv);
    return NULL;
}

static void cv_recursive_section(void)
{
    static struct recursive r;
    pthread_t t;

    test_step("a section entered three times is released fully by the sleep and held three "
              "deep again after it");
    memset(&r, 0, sizeof r);
    InitializeCriticalSection(&r.cs);
    InitializeConditionVariable(&r.cv);
    EnterCriticalSection(&r.cs);
    EnterCriticalSection(&r.cs);
    EnterCriticalSection(&r.cs);
    CHECK_EQ(pthread_create(&t, NULL, recursive_waker, &r), 0);
    while (!r.ready) {
        BOOL ok = SleepConditionVariableCS(&r.cv, &r.cs, WAKE_MS);
        CHECK(ok);
        if (!ok) {
            break;
        }
        CHECK_EQ(r.cs.OwningThread, TID());
        CHECK_EQ(r.cs.RecursionCount, 3);
    }
    CHECK(ALOAD(&r.entered_while_asleep));
    CHECK_EQ(r.cs.OwningThread, TID());
    CHECK_EQ(r.cs.RecursionCount, 3);
    CHECK_EQ(r.cs.LockCount, -2);
    LeaveCriticalSection(&r.cs);
    LeaveCriticalSection(&r.cs);
    CHECK_EQ(on_other_thread(try_enter_probe, &r.cs), FALSE);
    LeaveCriticalSection(&r.cs);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(on_other_thread(try_enter_probe, &r.cs), TRUE);
    DeleteCriticalSection(&r.cs);
}

/* A bounded queue of ints under a section (or an SRW lock) with two condition variables. */
#define QCAP 8
#define PRODUCERS 2
#define CONSUMERS 2
#define ITEMS 20000

struct queue {
    int use_srw;
    CRITICAL_SECTION cs;
    SRWLOCK srw;
    CONDITION_VARIABLE not_empty, not_full;
    int items[QCAP];
    int head, count;
    long long consumed_sum;
    long consumed;
    int lost; /* a sleep that timed out: a lost wake-up */
};

static void q_lock(struct queue *q)
{
    if (q->use_srw) {
        AcquireSRWLockExclusive(&q->srw);
    } else {
        EnterCriticalSection(&q->cs);
    }
}

static void q_unlock(struct queue *q)
{
    if (q->use_srw) {
        ReleaseSRWLockExclusive(&q->srw);
    } else {
        LeaveCriticalSection(&q->cs);
    }
}

static void q_sleep(struct queue *q, CONDITION_VARIABLE *cv)
{
    BOOL ok = q->use_srw ? SleepConditionVariableSRW(cv, &q->srw, WAKE_MS, 0)
                         : SleepConditionVariableCS(cv, &q->cs, WAKE_MS);
    if (!ok) {
        CHECK_ERR(ERROR_TIMEOUT);
        q->lost++;
        CHECK(!"a sleep on the queue timed out: a wake-up was lost");
    }
}

static void q_put(struct queue *q, int v)
{
    q_lock(q);
    while (q->count == QCAP) {
        q_sleep(q, &q->not_full);
    }
    q->items[(q->head + q->count) % QCAP] = v;
    q->count++;
    q_unlock(q);
    /* Woken after the lock is released: the sleeper must still be found. */
    WakeConditionVariable(&q->not_empty);
}

static int q_take(struct queue *q)
{
    int v;
    q_lock(q);
    while (q->count == 0) {
        q_sleep(q, &q->not_empty);
    }
    v = q->items[q->head];
    q->head = (q->head + 1) % QCAP;
    q->count--;
    /* Woken with the lock held, the other common style. */
    WakeConditionVariable(&q->not_full);
    q_unlock(q);
    return v;
}

static void *producer_main(void *arg)
{
    struct queue *q = (struct queue *)arg;
    int i;
    for (i = 1; i <= ITEMS; i++) {
        q_put(q, i);
    }
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct queue *q = (struct queue *)arg;
    long long sum = 0;
    long n = 0;
    for (;;) {
        int v = q_take(q);
        if (v == 0) {
            break;
        }
        sum += v;
        n++;
    }
    q_lock(q);
    q->consumed_sum += sum;
    q->consumed += n;
    q_unlock(q);
    return NULL;
}

static void producers_consumers(int use_srw)
{
    static struct queue q;
    pthread_t p[PRODUCERS], c[CONSUMERS];
    int i;

    memset(&q, 0, sizeof q);
    q.use_srw = use_srw;
    InitializeCriticalSection(&q.cs);
    InitializeSRWLock(&q.srw);
    InitializeConditionVariable(&q.not_empty);
    InitializeConditionVariable(&q.not_full);
    for (i = 0; i < CONSUMERS; i++) {
        CHECK_EQ(pthread_create(&c[i], NULL, consumer_main, &q), 0);
    }
    for (i = 0; i < PRODUCERS; i++) {
        CHECK_EQ(pthread_create(&p[i], NULL, producer_main, &q), 0);
    }
    for (i = 0; i < PRODUCERS; i++) {
        CHECK_EQ(pthread_join(p[i], NULL), 0);
    }
    for (i = 0; i < CONSUMERS; i++) {
        q_put(&q, 0); /* one end mark per consumer */
    }
    for (i = 0; i < CONSUMERS; i++) {
        CHECK_EQ(pthread_join(c[i], NULL), 0);
    }
    CHECK_EQ(q.lost, 0);
    CHECK_EQ(q.consumed, (long)PRODUCERS * ITEMS);
    CHECK_EQ(q.consumed_sum, (long long)PRODUCERS * ITEMS * (ITEMS + 1) / 2);
    CHECK_EQ(q.count, 0);
    DeleteCriticalSection(&q.cs);
}

static void cv_producers_consumers(void)
{
    test_step("%d producers, %d consumers, %d items each through a queue of %d under a "
              "CRITICAL_SECTION: every item arrives once, no sleep times out",
              PRODUCERS, CONSUMERS, ITEMS, QCAP);
    producers_consumers(0);
    test_step("the same under an SRW lock (exclusive)");
    producers_consumers(1);
}

/* Two threads take turns many times; each waits for its turn, and the other wakes it after
 * leaving the lock. A lost wake-up shows as a sleep that times out. */
#define TURNS 10000

struct turns {
    int use_srw;
    CRITICAL_SECTION cs;
    SRWLOCK srw;
    CONDITION_VARIABLE cv;
    int turn; /* under the lock */
    int lost;
};

struct player {
    struct turns *t;
    int me;
};

static void *player_main(void *arg)
{
    struct player *p = (struct player *)arg;
    struct turns *t = p->t;
    int i;
    for (i = 0; i < TURNS; i++) {
        if (t->use_srw) {
            AcquireSRWLockExclusive(&t->srw);
        } else {
            EnterCriticalSection(&t->cs);
        }
        while (t->turn % 2 != p->me) {
            BOOL ok = t->use_srw ? SleepConditionVariableSRW(&t->cv, &t->srw, WAKE_MS, 0)
                                 : SleepConditionVariableCS(&t->cv, &t->cs, WAKE_MS);
            if (!ok) {
                AADD(&t->lost, 1);
                CHECK(!"a turn's sleep timed out: a wake-up was lost");
                break;
            }
        }
        t->turn++;
        if (t->use_srw) {
            ReleaseSRWLockExclusive(&t->srw);
        } else {
            LeaveCriticalSection(&t->cs);
        }
        WakeConditionVariable(&t->cv);
    }
    return NULL;
}

static void take_turns(int use_srw)
{
    static struct turns t;
    struct player a, b;
    pthread_t ta, tb;

    memset(&t, 0, sizeof t);
    t.use_srw = use_srw;
    InitializeCriticalSection(&t.cs);
    a.t = &t;
    a.me = 0;
    b.t = &t;
    b.me = 1;
    CHECK_EQ(pthread_create(&ta, NULL, player_main, &a), 0);
    CHECK_EQ(pthread_create(&tb, NULL, player_main, &b), 0);
    CHECK_EQ(pthread_join(ta, NULL), 0);
    CHECK_EQ(pthread_join(tb, NULL), 0);
    CHECK_EQ(ALOAD(&t.lost), 0);
    CHECK_EQ(t.turn, 2 * TURNS);
    DeleteCriticalSection(&t.cs);
}

static void cv_no_lost_wakeup(void)
{
    test_step("two threads take %d turns each on a CRITICAL_SECTION, woken after the leave: no "
              "wake-up is lost", TURNS);
    take_turns(0);
    test_step("the same on an SRW lock");
    take_turns(1);
}

/* Three sleepers waiting for tokens: one Wake lets exactly one through, WakeAll the rest. */
struct tokens {
    CRITICAL_SECTION cs;
    CONDITION_VARIABLE cv;
    int tokens, waiting, done; /* under cs */
    int lost;
};

static void *token_main(void *arg)
{
    struct tokens *t = (struct tokens *)arg;
    EnterCriticalSection(&t->cs);
    t->waiting++;
    while (t->tokens == 0) {
        if (!SleepConditionVariableCS(&t->cv, &t->cs, WAKE_MS)) {
            AADD(&t->lost, 1);
            break;
        }
    }
    if (t->tokens > 0) {
        t->tokens--;
    }
    t->waiting--;
    t->done++;
    LeaveCriticalSection(&t->cs);
    return NULL;
}

/* Reads a field under the section. */
static int under(struct tokens *t, int *field)
{
    int v;
    EnterCriticalSection(&t->cs);
    v = *field;
    LeaveCriticalSection(&t->cs);
    return v;
}

static void wait_under(struct tokens *t, int *field, int want)
{
    uint64_t end = now_ms() + PACKET_WAIT_MS;
    while (under(t, field) != want) {
        BREAK_IF_LATE(end);
        sleep_ms(1);
    }
}

static void cv_wake_one_and_all(void)
{
    static struct tokens t;
    pthread_t th[3];
    int i;

    test_step("three sleepers: WakeConditionVariable lets one through, "
              "WakeAllConditionVariable the other two");
    memset(&t, 0, sizeof t);
    InitializeCriticalSection(&t.cs);
    InitializeConditionVariable(&t.cv);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, token_main, &t), 0);
    }
    /* Seen under the section: all three are asleep (they release it only by sleeping). */
    wait_under(&t, &t.waiting, 3);
    EnterCriticalSection(&t.cs);
    t.tokens = 1;
    LeaveCriticalSection(&t.cs);
    WakeConditionVariable(&t.cv);
    wait_under(&t, &t.done, 1);
    sleep_ms(100);
    CHECK_EQ(under(&t, &t.done), 1);
    CHECK_EQ(under(&t, &t.waiting), 2);

    EnterCriticalSection(&t.cs);
    t.tokens = 2;
    LeaveCriticalSection(&t.cs);
    WakeAllConditionVariable(&t.cv);
    wait_under(&t, &t.done, 3);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    CHECK_EQ(ALOAD(&t.lost), 0);
    CHECK_EQ(t.tokens, 0);
    DeleteCriticalSection(&t.cs);
}

/* Readers sleeping in shared mode release the lock: a writer gets it while they sleep. */
struct shared_sleep {
    SRWLOCK l;
    CONDITION_VARIABLE cv;
    int go;
    int asleep;
    int awake;
    int lost;
};

static void *shared_sleeper(void *arg)
{
    struct shared_sleep *s = (struct shared_sleep *)arg;
    AcquireSRWLockShared(&s->l);
    AADD(&s->asleep, 1);
    while (!ALOAD(&s->go)) {
        if (!SleepConditionVariableSRW(&s->cv, &s->l, WAKE_MS,
                                       CONDITION_VARIABLE_LOCKMODE_SHARED)) {
            AADD(&s->lost, 1);
            break;
        }
    }
    AADD(&s->awake, 1);
    /* Held shared again: all three get here together. */
    ReleaseSRWLockShared(&s->l);
    return NULL;
}

static void cv_shared_mode(void)
{
    static struct shared_sleep s;
    pthread_t th[3];
    uint64_t end;
    int i;

    test_step("three readers sleep in shared mode; a writer takes the lock while they sleep; "
              "WakeAll wakes them all");
    memset(&s, 0, sizeof s);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, shared_sleeper, &s), 0);
    }
    end = now_ms() + PACKET_WAIT_MS;
    while (ALOAD(&s.asleep) < 3) {
        BREAK_IF_LATE(end);
        sleep_ms(1);
    }
    /* Exclusive only once every reader has released the lock, i.e. sleeps. */
    AcquireSRWLockExclusive(&s.l);
    CHECK_EQ(ALOAD(&s.awake), 0);
    ASTORE(&s.go, 1);
    ReleaseSRWLockExclusive(&s.l);
    WakeAllConditionVariable(&s.cv);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    CHECK_EQ(ALOAD(&s.awake), 3);
    CHECK_EQ(ALOAD(&s.lost), 0);
    CHECK_EQ(s.l.Ptr, NULL);
}

/* ---- The port's concurrency value -------------------------------------------------------- */

/*
 * On a port of concurrency 1, a worker that blocks on a lock or a condition variable stops
 * counting, as on Windows, so the port hands the next packet to another worker. Key 1: sleep on
 * the condition variable until key 2's worker sets the flag. Key 3: enter a section the main
 * thread holds; meanwhile key 4 must reach the other worker.
 */
struct port_test {
    HANDLE port;
    CRITICAL_SECTION cs, held;
    CONDITION_VARIABLE cv;
    int flag; /* under cs */
    int slept_ok;
    int got4;
    int entered3;
};

static void *port_worker(void *arg)
{
    struct port_test *p = (struct port_test *)arg;
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = NULL;
    BOOL ok = GetQueuedCompletionStatus(p->port, &bytes, &key, &ov, PACKET_WAIT_MS);
    CHECK(ok);
    if (!ok) {
        return NULL;
    }
    switch (key) {
    case 1:
        EnterCriticalSection(&p->cs);
        while (!p->flag) {
            if (!SleepConditionVariableCS(&p->cv, &p->cs, PACKET_WAIT_MS)) {
                CHECK(!"key 2 never came while key 1 slept: the sleep kept the port's slot");
                break;
            }
        }
        ASTORE(&p->slept_ok, p->flag);
        LeaveCriticalSection(&p->cs);
        break;
    case 2:
        EnterCriticalSection(&p->cs);
        p->flag = 1;
        LeaveCriticalSection(&p->cs);
        WakeConditionVariable(&p->cv);
        break;
    case 3:
        EnterCriticalSection(&p->held);
        ASTORE(&p->entered3, 1);
        LeaveCriticalSection(&p->held);
        break;
    case 4:
        ASTORE(&p->got4, 1);
        break;
    }
    return NULL;
}

static void two_workers(struct port_test *p, pthread_t t[2])
{
    CHECK_EQ(pthread_create(&t[0], NULL, port_worker, p), 0);
    CHECK_EQ(pthread_create(&t[1], NULL, port_worker, p), 0);
    sleep_ms(50); /* both wait in GetQueuedCompletionStatus */
}

static void blocked_workers_free_their_slot(void)
{
    static struct port_test p;
    pthread_t t[2];

    test_step("concurrency 1: a worker asleep on a condition variable lets the port release "
              "another worker");
    memset(&p, 0, sizeof p);
    p.port = new_port(1);
    InitializeCriticalSection(&p.cs);
    InitializeCriticalSection(&p.held);
    InitializeConditionVariable(&p.cv);
    two_workers(&p, t);
    CHECK(PostQueuedCompletionStatus(p.port, 0, 1, NULL));
    sleep_ms(50);
    CHECK(PostQueuedCompletionStatus(p.port, 0, 2, NULL));
    CHECK_EQ(pthread_join(t[0], NULL), 0);
    CHECK_EQ(pthread_join(t[1], NULL), 0);
    CHECK_EQ(ALOAD(&p.slept_ok), 1);

    test_step("concurrency 1: a worker blocked in EnterCriticalSection lets the port release "
              "another worker");
    EnterCriticalSection(&p.held);
    two_workers(&p, t);
    CHECK(PostQueuedCompletionStatus(p.port, 0, 3, NULL));
    sleep_ms(50);
    CHECK(PostQueuedCompletionStatus(p.port, 0, 4, NULL));
    wait_flag(&p.got4, PACKET_WAIT_MS);
    CHECK(!ALOAD(&p.entered3));
    LeaveCriticalSection(&p.held);
    CHECK_EQ(pthread_join(t[0], NULL), 0);
    CHECK_EQ(pthread_join(t[1], NULL), 0);
    CHECK_EQ(ALOAD(&p.entered3), 1);
    CHECK(CloseHandle(p.port));
    DeleteCriticalSection(&p.cs);
    DeleteCriticalSection(&p.held);
}

/* ---- Misuse Windows leaves undefined ----------------------------------------------------- */

static int leave_probe(void *arg)
{
    SetLastError(555);
    LeaveCriticalSection((CRITICAL_SECTION *)arg);
    CHECK_ERR(555);
    return 0;
}

static int sleep_cs_probe(void *arg)
{
    static CONDITION_VARIABLE cv = CONDITION_VARIABLE_INIT;
    SetLastError(0);
    CHECK_EQ(SleepConditionVariableCS(&cv, (CRITICAL_SECTION *)arg, INFINITE), FALSE);
    CHECK_ERR(ERROR_NOT_OWNER);
    return 0;
}

static void misuse(void)
{
    static CRITICAL_SECTION never_initialised; /* zero bytes, as a static */
    CRITICAL_SECTION cs;
    CONDITION_VARIABLE cv = CONDITION_VARIABLE_INIT;
    SRWLOCK l = SRWLOCK_INIT;
    struct holder h;

    test_step("LeaveCriticalSection by a thread that does not own it is ignored");
    InitializeCriticalSection(&cs);
    EnterCriticalSection(&cs);
    on_other_thread(leave_probe, &cs);
    CHECK_EQ(cs.OwningThread, TID());
    CHECK_EQ(cs.RecursionCount, 1);
    CHECK_EQ(on_other_thread(try_enter_probe, &cs), FALSE);
    LeaveCriticalSection(&cs);
    SetLastError(555);
    LeaveCriticalSection(&cs); /* of a free section */
    CHECK_ERR(555);
    CHECK_EQ(cs.RecursionCount, 0);
    CHECK_EQ(cs.LockCount, -1);
    EnterCriticalSection(&cs);
    CHECK_EQ(cs.RecursionCount, 1);
    LeaveCriticalSection(&cs);
    CHECK_EQ(on_other_thread(try_enter_probe, &cs), TRUE);

    test_step("DeleteCriticalSection of a section the caller holds releases it");
    EnterCriticalSection(&cs);
    EnterCriticalSection(&cs);
    DeleteCriticalSection(&cs);
    CHECK_EQ(cs.OwningThread, NULL);
    CHECK_EQ(on_other_thread(try_enter_probe, &cs), TRUE);

    test_step("DeleteCriticalSection of a section another thread holds leaves it working");
    InitializeCriticalSection(&cs);
    hold(&h, &cs, NULL, 0);
    DeleteCriticalSection(&cs);
    CHECK_EQ(cs.OwningThread, h.tid);
    CHECK_EQ(cs.RecursionCount, 1);
    CHECK_EQ(TryEnterCriticalSection(&cs), FALSE);
    let_go(&h);
    CHECK_EQ(cs.OwningThread, NULL);
    CHECK_EQ(TryEnterCriticalSection(&cs), TRUE);
    LeaveCriticalSection(&cs);

    test_step("a deleted section works as a fresh one; so does a never-initialised zeroed one");
    DeleteCriticalSection(&cs);
    EnterCriticalSection(&cs);
    CHECK_EQ(cs.OwningThread, TID());
    LeaveCriticalSection(&cs);
    EnterCriticalSection(&never_initialised);
    EnterCriticalSection(&never_initialised);
    CHECK_EQ(never_initialised.RecursionCount, 2);
    CHECK_EQ(never_initialised.OwningThread, TID());
    LeaveCriticalSection(&never_initialised);
    LeaveCriticalSection(&never_initialised);
    CHECK_EQ(on_other_thread(try_enter_probe, &never_initialised), TRUE);

    test_step("sleeping on a section the caller does not own: FALSE, ERROR_NOT_OWNER, no sleep");
    InitializeCriticalSection(&cs);
    on_other_thread(sleep_cs_probe, &cs); /* free */
    EnterCriticalSection(&cs);
    on_other_thread(sleep_cs_probe, &cs); /* held by the main thread */
    CHECK_EQ(cs.OwningThread, TID());
    CHECK_EQ(cs.RecursionCount, 1);
    LeaveCriticalSection(&cs);
    DeleteCriticalSection(&cs);

    test_step("sleeping on an SRW lock not held in that mode: FALSE, ERROR_NOT_OWNER");
    SetLastError(0);
    CHECK_EQ(SleepConditionVariableSRW(&cv, &l, INFINITE, 0), FALSE);
    CHECK_ERR(ERROR_NOT_OWNER);
    SetLastError(0);
    CHECK_EQ(SleepConditionVariableSRW(&cv, &l, INFINITE, CONDITION_VARIABLE_LOCKMODE_SHARED),
             FALSE);
    CHECK_ERR(ERROR_NOT_OWNER);
    AcquireSRWLockShared(&l);
    SetLastError(0);
    CHECK_EQ(SleepConditionVariableSRW(&cv, &l, INFINITE, 0), FALSE);
    CHECK_ERR(ERROR_NOT_OWNER);
    ReleaseSRWLockShared(&l);

    test_step("SleepConditionVariableSRW with flags other than 0 and SHARED: "
              "ERROR_INVALID_PARAMETER, the lock still held");
    AcquireSRWLockExclusive(&l);
    SetLastError(0);
    CHECK_EQ(SleepConditionVariableSRW(&cv, &l, INFINITE, 2), FALSE);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    CHECK_EQ(on_other_thread(try_shared_probe, &l), FALSE);
    ReleaseSRWLockExclusive(&l);

    test_step("releasing an SRW lock not held in that mode is ignored");
    SetLastError(555);
    ReleaseSRWLockExclusive(&l);
    ReleaseSRWLockShared(&l);
    CHECK_ERR(555);
    CHECK_EQ(l.Ptr, NULL);
    AcquireSRWLockShared(&l);
    ReleaseSRWLockExclusive(&l); /* held shared: ignored */
    CHECK_EQ(on_other_thread(try_exclusive_probe, &l), FALSE);
    CHECK_EQ(on_other_thread(try_shared_probe, &l), TRUE);
    ReleaseSRWLockShared(&l);
    CHECK_EQ(on_other_thread(try_exclusive_probe, &l), TRUE);
    CHECK_EQ(l.Ptr, NULL);
}

/* ---- NULL to every entry point ----------------------------------------------------------- */

#define EXPECT_INVALID(call)                                                            \
    do {                                                                                \
        SetLastError(0);                                                                \
        CHECK_EQ((call), FALSE);                                                        \
        CHECK_ERR(ERROR_INVALID_PARAMETER);                                             \
    } while (0)

static void bad_input(void)
{
    CRITICAL_SECTION cs;
    CONDITION_VARIABLE cv = CONDITION_VARIABLE_INIT;
    SRWLOCK l = SRWLOCK_INIT;

    test_step("NULL to the void functions: nothing happens, the last error is untouched");
    SetLastError(1234);
    InitializeCriticalSection(NULL);
    EnterCriticalSection(NULL);
    LeaveCriticalSection(NULL);
    DeleteCriticalSection(NULL);
    InitializeSRWLock(NULL);
    AcquireSRWLockExclusive(NULL);
    AcquireSRWLockShared(NULL);
    ReleaseSRWLockExclusive(NULL);
    ReleaseSRWLockShared(NULL);
    InitializeConditionVariable(NULL);
    WakeConditionVariable(NULL);
    WakeAllConditionVariable(NULL);
    CHECK_ERR(1234);

    test_step("NULL to the others: FALSE (0) with ERROR_INVALID_PARAMETER, at once");
    InitializeCriticalSection(&cs);
    EnterCriticalSection(&cs);
    AcquireSRWLockExclusive(&l);
    EXPECT_INVALID(InitializeCriticalSectionAndSpinCount(NULL, 0));
    EXPECT_INVALID(InitializeCriticalSectionEx(NULL, 0, 0));
    EXPECT_INVALID(InitializeCriticalSectionEx(NULL, 0x12345678, 0xFFFFFFFFu));
    EXPECT_INVALID(TryEnterCriticalSection(NULL));
    EXPECT_INVALID(SetCriticalSectionSpinCount(NULL, 10));
    EXPECT_INVALID(TryAcquireSRWLockExclusive(NULL));
    EXPECT_INVALID(TryAcquireSRWLockShared(NULL));
    EXPECT_INVALID(SleepConditionVariableCS(NULL, &cs, INFINITE));
    EXPECT_INVALID(SleepConditionVariableCS(&cv, NULL, INFINITE));
    EXPECT_INVALID(SleepConditionVariableCS(NULL, NULL, 0));
    EXPECT_INVALID(SleepConditionVariableSRW(NULL, &l, INFINITE, 0));
    EXPECT_INVALID(SleepConditionVariableSRW(&cv, NULL, INFINITE, 0));
    EXPECT_INVALID(SleepConditionVariableSRW(&cv, NULL, INFINITE,
                                             CONDITION_VARIABLE_LOCKMODE_SHARED));
    EXPECT_INVALID(SleepConditionVariableSRW(NULL, NULL, 0, 0));
    /* The locks passed with a NULL partner are untouched. */
    CHECK_EQ(cs.OwningThread, TID());
    CHECK_EQ(cs.RecursionCount, 1);
    CHECK_EQ(on_other_thread(try_shared_probe, &l), FALSE);
    ReleaseSRWLockExclusive(&l);
    LeaveCriticalSection(&cs);
    DeleteCriticalSection(&cs);
}

int main(void)
{
    test_init("locks");
    multiprocessor = sysconf(_SC_NPROCESSORS_ONLN) > 1;
    cs_fields();
    cs_spin_counts();
    cs_other_threads();
    cs_blocking_enter();
    counts();
    srw_basics();
    srw_readers_share();
    cv_timeouts();
    cv_recursive_section();
    cv_producers_consumers();
    cv_no_lost_wakeup();
    cv_wake_one_and_all();
    cv_shared_mode();
    blocked_workers_free_their_slot();
    misuse();
    bad_input();
    return test_done();
}
